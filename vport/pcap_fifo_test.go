package vport

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
)

// bounded runs fn and fails the test if it has not returned after a
// generous bound: the calls it checks must never block.
func bounded(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s has not returned after 20s", what)
	}
}

func mkfifo(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	return path
}

func TestPcapFIFONoWriter(t *testing.T) {
	fifo := mkfifo(t)
	var p *PcapPort
	bounded(t, "NewPcapPort on a FIFO without a writer", func() {
		var err error
		if p, err = NewPcapPort(PcapConfig{Name: "fifo0", ReadFile: fifo}); err != nil {
			t.Error(err)
		}
	})
	if p == nil {
		return
	}
	bufs, sizes := batchBufs(MaxBatch, 2048)
	if n, err := p.Receive(0, bufs, sizes, nil); n != 0 || err != nil {
		t.Errorf("Receive without a writer = %d, %v, want 0, nil", n, err)
	}
	if ready, err := WaitRx(p, 0, 10*time.Millisecond); ready || err != nil {
		t.Errorf("WaitRx without a writer = %v, %v, want false, nil", ready, err)
	}
	bounded(t, "Close of a FIFO port without a writer", func() { must(t, p.Close()) })
	if _, err := p.Receive(0, bufs, sizes, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Receive after Close: %v", err)
	}
}

func TestPcapFIFOReplay(t *testing.T) {
	frames := udpFrames(t, 300) // more than the port queues: the writer waits for the reader
	data, err := os.ReadFile(writePcap(t, frames, layers.LinkTypeEthernet))
	if err != nil {
		t.Fatal(err)
	}
	fifo := mkfifo(t)
	p := newTestPcap(t, PcapConfig{Name: "fifo0", ReadFile: fifo, RecordRxQueue: true})
	// The writer comes after the port is open, as tcpdump -w FIFO would.
	wrote := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			wrote <- err
			return
		}
		_, err = f.Write(data)
		wrote <- errors.Join(err, f.Close())
	}()
	var got [][]byte
	bufs, sizes := batchBufs(MaxBatch, 2048)
	info := make([]RxInfo, MaxBatch)
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < len(frames) && time.Now().Before(deadline) {
		if _, err := WaitRx(p, 0, time.Second); err != nil {
			t.Fatal(err)
		}
		n, err := p.Receive(0, bufs, sizes, info)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			got = append(got, append([]byte(nil), bufs[i][:sizes[i]]...))
			if info[i].RxQueue != RecordRxQueue(0) {
				t.Fatalf("frame %d: rx queue %v, want 0 recorded", len(got)-1, info[i].RxQueue)
			}
		}
	}
	if len(got) != len(frames) {
		t.Fatalf("received %d frames through the FIFO, want %d", len(got), len(frames))
	}
	for i := range got {
		if !bytes.Equal(got[i], frames[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	// The writer closed its end: the stream is over, not an error.
	if n, err := p.Receive(0, bufs, sizes, nil); n != 0 || err != nil {
		t.Errorf("Receive after the stream ended = %d, %v, want 0, nil", n, err)
	}
	if st := p.Stats(); st.RxPackets != uint64(len(frames)) {
		t.Errorf("rx packets %d, want %d", st.RxPackets, len(frames))
	}
}

func TestPcapFIFOErrors(t *testing.T) {
	fifo := mkfifo(t)
	frames := udpFrames(t, 2)
	data, err := os.ReadFile(writePcap(t, frames, layers.LinkTypeRaw))
	if err != nil {
		t.Fatal(err)
	}
	// A FIFO cannot be rewound.
	if p, err := NewPcapPort(PcapConfig{Name: "x", ReadFile: fifo, Loop: 2}); err == nil {
		p.Close()
		t.Error("a FIFO with Loop 2 was accepted")
	}
	// Neither a regular file nor a FIFO.
	if p, err := NewPcapPort(PcapConfig{Name: "x", ReadFile: "/dev/null"}); err == nil {
		p.Close()
		t.Error("/dev/null was accepted")
	}
	// A capture that is not Ethernet: the error comes from Receive, once.
	p := newTestPcap(t, PcapConfig{Name: "x", ReadFile: fifo})
	go func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Write(data)
			f.Close()
		}
	}()
	bufs, sizes := batchBufs(MaxBatch, 2048)
	var rerr error
	for deadline := time.Now().Add(30 * time.Second); rerr == nil && time.Now().Before(deadline); {
		if _, err := WaitRx(p, 0, time.Second); err != nil {
			t.Fatal(err)
		}
		_, rerr = p.Receive(0, bufs, sizes, nil)
	}
	if rerr == nil || !bytes.Contains([]byte(rerr.Error()), []byte("want Ethernet")) {
		t.Errorf("Receive of a raw-IP capture through a FIFO: %v, want an error naming the link type", rerr)
	}
}

func TestPcapWriteExisting(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.pcap")

	p := newTestPcap(t, PcapConfig{Name: "cap", WriteFile: out})
	must(t, p.Close())
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("a new capture has mode %v under umask 0, want 0600", fi.Mode().Perm())
	}

	must(t, os.WriteFile(out, []byte("precious"), 0o644))
	if p, err := NewPcapPort(PcapConfig{Name: "cap", WriteFile: out}); !errors.Is(err, ErrFileExists) {
		if err == nil {
			p.Close()
		}
		t.Errorf("an existing file: %v, want ErrFileExists", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Errorf("the refused file now holds %q", b)
	}

	p = newTestPcap(t, PcapConfig{Name: "cap", WriteFile: out, Overwrite: true})
	transmitAll(t, p, udpFrames(t, 1))
	must(t, p.Close())
	fi, err = os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() <= 24 {
		t.Errorf("overwritten capture: mode %v size %d, want 0600 and a header and a frame", fi.Mode().Perm(), fi.Size())
	}

	fifo := mkfifo(t)
	bounded(t, "NewPcapPort writing to a FIFO", func() {
		if p, err := NewPcapPort(PcapConfig{Name: "cap", WriteFile: fifo, Overwrite: true}); err == nil {
			p.Close()
			t.Error("a FIFO to write was accepted")
		}
	})
}
