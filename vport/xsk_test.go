package vport

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestXSKRoundTrip receives frames sent from the peer namespace and
// transmits frames that a socket of the peer namespace receives, in each
// XDP mode, on a veth with 4 queues.
func TestXSKRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inMode   XDPMode
		wantMode XDPMode
	}{
		{name: "best-effort", inMode: XDPBestEffort, wantMode: XDPNative},
		{name: "native", inMode: XDPNative, wantMode: XDPNative},
		{name: "generic", inMode: XDPGeneric, wantMode: XDPGeneric},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newXSKTopo(t, 4)
			p := tp.open(t, XSKConfig{Mode: tc.inMode})
			if p.Mode() != tc.wantMode {
				t.Errorf("attached in %v mode, want %v", p.Mode(), tc.wantMode)
			}
			if p.RxQueues() != 4 || p.TxQueues() != 4 {
				t.Errorf("%d rx, %d tx queues, want 4, 4", p.RxQueues(), p.TxQueues())
			}
			if st := p.Device().Snapshot(); !st.Running() || !st.Carrier() || st.TxQueues() != 4 || st.Registration() != Registered {
				t.Errorf("device state %v, want registered, running, carrier, 4 tx queues", st)
			}

			// Rx: several source ports spread the frames over the peer's
			// tx queues, hence over the port's rx queues.
			const flows = 16
			for i := range flows {
				c := tp.udpIn(t, fmt.Sprintf("10.0.0.1:%d", 4000+i), "10.0.0.2:9")
				if _, err := c.Write([]byte(fmt.Sprintf("rx-%02d", i))); err != nil {
					t.Fatal(err)
				}
			}
			seen := map[string]bool{}
			queues := map[int]bool{}
			receiveUntil(t, p, 5*time.Second, func(q int, frame []byte, info RxInfo) bool {
				if info.RxQueue != RecordRxQueue(q) {
					t.Errorf("frame on queue %d records rx queue %d", q, info.RxQueue.Queue())
				}
				pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
				if app := pkt.ApplicationLayer(); app != nil && bytes.HasPrefix(app.Payload(), []byte("rx-")) {
					seen[string(app.Payload())] = true
					queues[q] = true
				}
				return len(seen) == flows
			})
			if len(seen) != flows {
				t.Fatalf("received %d of %d flows", len(seen), flows)
			}
			t.Logf("%d flows arrived on rx queues %v", flows, queues)

			// Tx on every tx queue.
			srv := tp.udpIn(t, "10.0.0.1:7000", "")
			for q := range p.TxQueues() {
				f := udpFrame(t, remoteMAC, tp.peerMAC, remoteIP, peerIP, 5000, 7000, []byte(fmt.Sprintf("tx-%d", q)))
				if n, err := p.Transmit(q, [][]byte{f}); n != 1 || err != nil {
					t.Fatalf("transmit on queue %d: %d, %v", q, n, err)
				}
			}
			got := map[string]bool{}
			buf := make([]byte, 100)
			for range p.TxQueues() {
				srv.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := srv.Read(buf)
				if err != nil {
					t.Fatalf("peer received %d of %d frames: %v", len(got), p.TxQueues(), err)
				}
				got[string(buf[:n])] = true
			}
			st := p.Stats()
			if st.RxPackets < flows || st.TxPackets != uint64(p.TxQueues()) {
				t.Errorf("stats %+v: want at least %d rx packets, %d tx packets", st, flows, p.TxQueues())
			}
		})
	}
}

// TestXSKTxRingFull takes the peer down, so that the device drops every
// frame and the kernel consumes the tx ring one frame per kick (EBUSY):
// Transmit neither blocks nor loops, and reports the frames the ring could
// not take. With the peer back up, whole batches go again.
func TestXSKTxRingFull(t *testing.T) {
	tp := newXSKTopo(t, 1)
	p := tp.open(t, XSKConfig{Frames: 64, RingSize: 32})
	f := udpFrame(t, remoteMAC, tp.peerMAC, remoteIP, peerIP, 5000, 7001, make([]byte, 1000))
	batch := make([][]byte, MaxBatch)
	for i := range batch {
		batch[i] = f
	}
	transmit := func(rounds int) (sent, refused int) {
		for range rounds {
			start := time.Now()
			n, err := p.Transmit(0, batch)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("transmit took %v", d)
			}
			if n < 0 || n > len(batch) {
				t.Fatalf("transmit returned %d of %d", n, len(batch))
			}
			sent += n
			refused += len(batch) - n
		}
		return sent, refused
	}

	tp.peer.IP(t, "link", "set", "p0", "down")
	sent, refused := transmit(100)
	t.Logf("peer down: taken %d, refused %d", sent, refused)
	if refused == 0 {
		t.Error("no frame refused while the device drops everything")
	}

	tp.peer.IP(t, "link", "set", "p0", "up")
	time.Sleep(100 * time.Millisecond)
	transmit(5) // the ring drains
	sent, refused = transmit(20)
	t.Logf("peer up: taken %d, refused %d", sent, refused)
	if refused != 0 {
		t.Errorf("%d frames refused with the peer up", refused)
	}
}

// TestXSKOversizedFrame checks that a frame larger than a UMEM frame is
// taken and dropped, and that the frames around it still go.
func TestXSKOversizedFrame(t *testing.T) {
	tp := newXSKTopo(t, 1)
	p := tp.open(t, XSKConfig{})
	small := udpFrame(t, remoteMAC, tp.peerMAC, remoteIP, peerIP, 5000, 7002, []byte("ok"))
	big := make([]byte, 3000)
	n, err := p.Transmit(0, [][]byte{small, big, small})
	if n != 3 || err != nil {
		t.Fatalf("transmit: %d, %v; want 3, nil", n, err)
	}
	if st := p.Stats(); st.TxPackets != 2 || st.TxDropped != 1 {
		t.Errorf("stats %+v: want 2 tx packets, 1 tx dropped", st)
	}
}

// TestXSKKernelDrops sends more datagrams than a socket has rx frames
// while nobody receives: the kernel drops the rest, and the port's stats
// name why (no fill frame, or the rx ring full), so that what arrived is
// all accounted for.
func TestXSKKernelDrops(t *testing.T) {
	const ring, sent = 16, 100
	tp := newXSKTopo(t, 1)
	p := tp.open(t, XSKConfig{Frames: 2 * ring, RingSize: ring})
	c := tp.udpIn(t, "10.0.0.1:4000", "10.0.0.2:9")
	for i := range sent {
		if _, err := c.Write([]byte(fmt.Sprintf("drop-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	got := 0
	receiveUntil(t, p, 300*time.Millisecond, func(q int, frame []byte, info RxInfo) bool {
		pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
		if app := pkt.ApplicationLayer(); app != nil && bytes.HasPrefix(app.Payload(), []byte("drop-")) {
			got++
		}
		return false
	})
	st := p.Stats()
	kernel := st.RxRingFull + st.RxNoFrame
	t.Logf("received %d of %d; kernel drops: rx ring full %d, no fill frame %d", got, sent, st.RxRingFull, st.RxNoFrame)
	if got != ring {
		t.Errorf("received %d datagrams, want %d (the rx frames)", got, ring)
	}
	if kernel < uint64(sent-got) || st.RxDropped != kernel {
		t.Errorf("stats %+v: want at least %d kernel drops, all of RxDropped", st, sent-got)
	}
	var sum uint64
	for _, d := range st.RxDrops() {
		sum += d.Count
	}
	if sum != st.RxDropped {
		t.Errorf("RxDrops %v sum to %d, RxDropped is %d", st.RxDrops(), sum, st.RxDropped)
	}
}

// TestXSKBadQueue checks the queue bounds of every packet-path method.
func TestXSKBadQueue(t *testing.T) {
	tp := newXSKTopo(t, 2)
	p := tp.open(t, XSKConfig{})
	b := newRxBatch()
	for _, q := range []int{-1, 2, 1 << 20} {
		if _, err := p.Receive(q, b.bufs, b.sizes, b.info); !errors.Is(err, ErrBadQueue) {
			t.Errorf("receive queue %d: %v, want ErrBadQueue", q, err)
		}
		if _, err := p.Transmit(q, nil); !errors.Is(err, ErrBadQueue) {
			t.Errorf("transmit queue %d: %v, want ErrBadQueue", q, err)
		}
		if _, _, err := p.PrepareWait(q); !errors.Is(err, ErrBadQueue) {
			t.Errorf("prepare wait queue %d: %v, want ErrBadQueue", q, err)
		}
	}
}

// TestXSKClosed checks that a closed port says so and that Close is
// idempotent.
func TestXSKClosed(t *testing.T) {
	tp := newXSKTopo(t, 1)
	p := tp.open(t, XSKConfig{})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	b := newRxBatch()
	if _, err := p.Receive(0, b.bufs, b.sizes, b.info); !errors.Is(err, ErrClosed) {
		t.Errorf("receive: %v, want ErrClosed", err)
	}
	if _, err := p.Transmit(0, [][]byte{{1}}); !errors.Is(err, ErrClosed) {
		t.Errorf("transmit: %v, want ErrClosed", err)
	}
	if _, _, err := p.PrepareWait(0); !errors.Is(err, ErrClosed) {
		t.Errorf("prepare wait: %v, want ErrClosed", err)
	}
	if tp.sw.XDPAttached(t, "h0") {
		t.Error("XDP program still attached after close")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// TestXSKNoAllocs proves that Receive and Transmit do not allocate.
func TestXSKNoAllocs(t *testing.T) {
	tp := newXSKTopo(t, 1)
	p := tp.open(t, XSKConfig{})
	c := tp.udpIn(t, "10.0.0.1:4100", "10.0.0.2:9")
	f := udpFrame(t, remoteMAC, tp.peerMAC, remoteIP, peerIP, 5000, 7003, []byte("x"))
	frames := [][]byte{f, f, f, f}
	b := newRxBatch()
	for range 64 {
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := WaitRx(p, 0, 5*time.Second); !ok || err != nil {
		t.Fatalf("no traffic to receive: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // let the rest arrive
	received := 0
	allocs := testing.AllocsPerRun(100, func() {
		n, err := p.Receive(0, b.bufs, b.sizes, b.info)
		if err != nil {
			t.Fatal(err)
		}
		received += n
		if _, err := p.Transmit(0, frames); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Receive+Transmit, want 0", allocs)
	}
	if received == 0 {
		t.Error("no frame received during the measurement")
	}
}

// TestXSKCloseWhilePreparingWait closes a port while a poll thread keeps
// preparing to sleep on it, as a thread that has not yet noticed the
// port's removal does: Close waits for it, and it then sees ErrClosed.
func TestXSKCloseWhilePreparingWait(t *testing.T) {
	tp := newXSKTopo(t, 2)
	p := tp.open(t, XSKConfig{})
	errc := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if _, _, err := p.PrepareWait(i % 2); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("prepare wait: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("prepare wait still succeeding 5s after Close")
	}
}
