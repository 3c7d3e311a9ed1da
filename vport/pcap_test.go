package vport

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// udpFrames builds n UDP frames from 10.0.0.1 to 10.0.0.2 with source
// ports 1000+i and growing payloads.
func udpFrames(t *testing.T, n int) [][]byte {
	t.Helper()
	frames := make([][]byte, n)
	for i := range frames {
		eth := &layers.Ethernet{
			SrcMAC:       net.HardwareAddr{2, 0, 0, 0, 0, 1},
			DstMAC:       net.HardwareAddr{2, 0, 0, 0, 0, 2},
			EthernetType: layers.EthernetTypeIPv4,
		}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
			SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
		udp := &layers.UDP{SrcPort: layers.UDPPort(1000 + i), DstPort: 80}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		payload := bytes.Repeat([]byte{byte(i)}, 18+i*97%1400)
		buf := gopacket.NewSerializeBuffer()
		opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
		if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(payload)); err != nil {
			t.Fatal(err)
		}
		frames[i] = buf.Bytes()
	}
	return frames
}

// writePcap writes frames to a new pcap file with gopacket's writer.
func writePcap(t *testing.T, frames [][]byte, link layers.LinkType) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	must(t, w.WriteFileHeader(PcapSnaplen, link))
	ts := time.Unix(1700000000, 0)
	for i, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(fr), Length: len(fr)}
		must(t, w.WritePacket(ci, fr))
	}
	must(t, f.Close())
	return path
}

func newTestPcap(t *testing.T, cfg PcapConfig) *PcapPort {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "pcap0"
	}
	p, err := NewPcapPort(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// transmitAll sends frames through p in batches.
func transmitAll(t *testing.T, p Port, frames [][]byte) {
	t.Helper()
	for off := 0; off < len(frames); {
		n, err := p.Transmit(0, frames[off:])
		if err != nil {
			t.Fatal(err)
		}
		off += n
	}
}

func TestPcapWriteReadBack(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.pcap")
	p := newTestPcap(t, PcapConfig{WriteFile: out})
	frames := udpFrames(t, 40)
	frames = append(frames, make([]byte, 9000)) // a jumbo frame
	start := time.Now().Truncate(time.Microsecond)
	transmitAll(t, p, frames)
	must(t, p.Close())
	end := time.Now()

	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet || r.Snaplen() != PcapSnaplen {
		t.Errorf("link type %s snaplen %d, want Ethernet 65535", r.LinkType(), r.Snaplen())
	}
	for i := 0; ; i++ {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			if i != len(frames) {
				t.Errorf("read %d frames (%v), want %d", i, err, len(frames))
			}
			break
		}
		if !bytes.Equal(data, frames[i]) || ci.Length != len(frames[i]) {
			t.Errorf("frame %d differs", i)
		}
		if ci.Timestamp.Before(start) || ci.Timestamp.After(end) {
			t.Errorf("frame %d: timestamp %v outside [%v, %v]", i, ci.Timestamp, start, end)
		}
	}
	if st := p.Stats(); st.TxPackets != uint64(len(frames)) {
		t.Errorf("stats %+v", st)
	}
}

func TestPcapTcpdumpReads(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tcpdump is required in CI: %v", err)
		}
		t.Skip("tcpdump not installed (apt-get install tcpdump)")
	}
	out := filepath.Join(t.TempDir(), "out.pcap")
	p := newTestPcap(t, PcapConfig{WriteFile: out})
	frames := udpFrames(t, 5)
	transmitAll(t, p, frames)
	must(t, p.Close())
	cmd := exec.Command(tcpdump, "-r", out, "-nn")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tcpdump: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != len(frames) {
		t.Fatalf("tcpdump listed %d packets, want %d:\n%s", len(lines), len(frames), stdout.String())
	}
	for i, line := range lines {
		want := fmt.Sprintf("IP 10.0.0.1.%d > 10.0.0.2.80: UDP, length %d", 1000+i, len(frames[i])-42)
		if !strings.Contains(line, want) {
			t.Errorf("tcpdump line %d: %q, want it to contain %q", i, line, want)
		}
	}
}

func receiveAll(t *testing.T, p Port, limit int) [][]byte {
	t.Helper()
	var got [][]byte
	bufs, sizes := batchBufs(MaxBatch, 2048)
	info := make([]RxInfo, MaxBatch)
	for range limit {
		n, err := p.Receive(0, bufs, sizes, info)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		for i := range n {
			got = append(got, bytes.Clone(bufs[i][:sizes[i]]))
		}
	}
	return got
}

func TestPcapReplay(t *testing.T) {
	frames := udpFrames(t, 70)
	in := writePcap(t, frames, layers.LinkTypeEthernet)
	tests := []struct {
		name     string
		inLoop   int
		wantPass int
	}{
		{"once", 0, 1},
		{"once explicitly", 1, 1},
		{"three passes", 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPcap(t, PcapConfig{ReadFile: in, Loop: tt.inLoop, RecordRxQueue: true})
			got := receiveAll(t, p, 100)
			if len(got) != tt.wantPass*len(frames) {
				t.Fatalf("received %d frames, want %d", len(got), tt.wantPass*len(frames))
			}
			for i, g := range got {
				if !bytes.Equal(g, frames[i%len(frames)]) {
					t.Fatalf("frame %d differs", i)
				}
			}
			// EOF is the end of traffic, not an error; nothing wakes a waiter.
			if n, err := p.Receive(0, make([][]byte, 1), make([]int, 1), nil); n != 0 || err != nil {
				t.Errorf("Receive after the end = %d, %v, want 0, nil", n, err)
			}
			if ready, err := WaitRx(p, 0, 10*time.Millisecond); ready || err != nil {
				t.Errorf("WaitRx after the end = %v, %v, want false, nil", ready, err)
			}
		})
	}
	t.Run("forever", func(t *testing.T) {
		p := newTestPcap(t, PcapConfig{ReadFile: in, Loop: -1})
		if got := receiveAll(t, p, 50); len(got) != 50*MaxBatch {
			t.Errorf("received %d frames in 50 full batches, want %d", len(got), 50*MaxBatch)
		}
	})
	t.Run("empty file", func(t *testing.T) {
		p := newTestPcap(t, PcapConfig{ReadFile: writePcap(t, nil, layers.LinkTypeEthernet), Loop: -1})
		if got := receiveAll(t, p, 5); len(got) != 0 {
			t.Errorf("received %d frames from an empty file", len(got))
		}
	})
}

func TestPcapReplayPaced(t *testing.T) {
	frames := udpFrames(t, 6)
	const rate = 100
	file := writePcap(t, frames, layers.LinkTypeEthernet)
	// The port's pacing clock starts when it is built: the test's clock
	// starts before, so that time lost to a loaded machine in between
	// cannot make a paced replay look too fast.
	start := time.Now()
	p := newTestPcap(t, PcapConfig{ReadFile: file, Rate: rate})
	var got int
	bufs, sizes := batchBufs(MaxBatch, 2048)
	for got < len(frames) && time.Since(start) < 30*time.Second {
		ready, err := WaitRx(p, 0, 5*time.Second)
		if err != nil || !ready {
			t.Fatalf("WaitRx = %v, %v with frames left, want woken when one is due", ready, err)
		}
		n, err := p.Receive(0, bufs, sizes, nil)
		if err != nil {
			t.Fatal(err)
		}
		got += n
		if limit := int(rate*time.Since(start).Seconds()) + 1; got > limit {
			t.Fatalf("received %d frames after %v at %d/s: pacing not applied", got, time.Since(start), rate)
		}
	}
	if got != len(frames) {
		t.Errorf("received %d frames, want %d", got, len(frames))
	}
}

func TestPcapReadErrors(t *testing.T) {
	frames := udpFrames(t, 3)
	full := writePcap(t, frames, layers.LinkTypeEthernet)
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "trunc.pcap")
	must(t, os.WriteFile(truncated, data[:len(data)-5], 0o644))

	p := newTestPcap(t, PcapConfig{ReadFile: truncated})
	bufs, sizes := batchBufs(MaxBatch, 2048)
	n, err := p.Receive(0, bufs, sizes, nil)
	if n != 2 || err == nil || !strings.Contains(err.Error(), "trunc.pcap") {
		t.Errorf("Receive of a truncated file = %d, %v, want 2 frames and an error naming the file", n, err)
	}
	if n, err := p.Receive(0, bufs, sizes, nil); n != 0 || err != nil {
		t.Errorf("Receive after the error = %d, %v, want 0, nil", n, err)
	}

	tests := []struct {
		name    string
		in      PcapConfig
		wantErr string
	}{
		{"no files", PcapConfig{Name: "x"}, "neither a file to read nor one to write"},
		{"missing file", PcapConfig{Name: "x", ReadFile: "/nonexistent/in.pcap"}, "/nonexistent/in.pcap"},
		{"not ethernet", PcapConfig{Name: "x", ReadFile: writePcap(t, frames, layers.LinkTypeRaw)}, "want Ethernet"},
		{"not a pcap", PcapConfig{Name: "x", ReadFile: "pcap_test.go"}, "pcap_test.go"},
		{"no name", PcapConfig{WriteFile: "x"}, "empty name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPcapPort(tt.in)
			if err == nil {
				p.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPcapStateAndClose(t *testing.T) {
	frames := udpFrames(t, 3)
	p := newTestPcap(t, PcapConfig{ReadFile: writePcap(t, frames, layers.LinkTypeEthernet), WriteFile: filepath.Join(t.TempDir(), "o.pcap")})
	if s := p.Device().Snapshot(); s.String() != "registered,running,carrier,txq=1" {
		t.Errorf("device %s", s)
	}
	// A frame longer than the next buffer is dropped and counted.
	n, err := p.Receive(0, [][]byte{make([]byte, 2048), make([]byte, 10)}, make([]int, 2), nil)
	if n != 1 || err != nil || p.Stats().RxDropped != 2 {
		t.Errorf("Receive with a short buffer = %d, %v, dropped %d; want 1, nil, 2", n, err, p.Stats().RxDropped)
	}
	p.Device().Close()
	if _, err := p.Transmit(0, frames); !errors.Is(err, ErrPortDown) {
		t.Errorf("Transmit on a down device: %v", err)
	}
	if _, err := p.Receive(0, make([][]byte, 1), make([]int, 1), nil); !errors.Is(err, ErrPortDown) {
		t.Errorf("Receive on a down device: %v", err)
	}
	if _, err := p.Transmit(1, frames); !errors.Is(err, ErrBadQueue) {
		t.Errorf("Transmit on queue 1: %v", err)
	}
	must(t, p.Close())
	must(t, p.Close())
	if _, err := p.Transmit(0, frames); !errors.Is(err, ErrClosed) {
		t.Errorf("Transmit after Close: %v", err)
	}
}
