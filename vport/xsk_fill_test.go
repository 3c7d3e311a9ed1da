package vport

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestXSKNoFillFrameIsFullRxRing shows where the kernel's "no fill frame"
// drops come from. A socket's fill ring holds as many frames as its rx
// ring has descriptors, and Receive hands every frame it consumes back to
// the fill ring before it returns. So the fill ring runs empty exactly
// when the rx ring is full of frames nobody consumed yet; the kernel takes
// a fill frame before it looks for room on the rx ring, and counts the
// drop as "no fill frame" (rx_dropped, with rx_fill_ring_empty_descs), not
// "rx ring full". The drops measure a consumer that falls behind, not a
// late refill: right after one Receive, the frames are back on the fill
// ring and the next datagrams arrive without a drop.
func TestXSKNoFillFrameIsFullRxRing(t *testing.T) {
	const ring, sent = 16, 100
	tp := newXSKTopo(t, 1)
	p := tp.open(t, XSKConfig{Frames: 2 * ring, RingSize: ring})
	s := p.socks[0]
	c := tp.udpIn(t, "10.0.0.1:4200", "10.0.0.2:9")
	send := func(prefix string, n int) {
		for i := range n {
			if _, err := c.Write([]byte(fmt.Sprintf("%s-%03d", prefix, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// waitStats waits until the kernel has counted want frames, received
	// (on the rx ring) or dropped.
	waitStats := func(want uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ks, err := s.kernelStats()
			if err != nil {
				t.Fatal(err)
			}
			onRing := uint64(atomic.LoadUint32(s.rx.prod) - atomic.LoadUint32(s.rx.cons))
			if ks.Rx_dropped+ks.Rx_ring_full+onRing+s.rxPackets.Load() >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("kernel stats %+v, %d on the rx ring: want %d frames counted", ks, onRing, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	send("burst", sent)
	waitStats(sent)
	ks, err := s.kernelStats()
	if err != nil {
		t.Fatal(err)
	}
	onRing := atomic.LoadUint32(s.rx.prod) - atomic.LoadUint32(s.rx.cons)
	t.Logf("after %d datagrams unread: rx ring holds %d of %d; kernel stats %+v", sent, onRing, ring, ks)
	if onRing != ring {
		t.Errorf("rx ring holds %d frames, want %d (full)", onRing, ring)
	}
	if ks.Rx_ring_full != 0 || ks.Rx_dropped != sent-ring || ks.Rx_fill_ring_empty_descs == 0 {
		t.Errorf("kernel stats %+v: want %d drops for want of a fill frame, none for a full rx ring", ks, sent-ring)
	}

	// One Receive gives the frames back before it returns.
	b := newRxBatch()
	fillBefore := atomic.LoadUint32(s.fill.prod)
	n, err := p.Receive(0, b.bufs, b.sizes, b.info)
	if err != nil {
		t.Fatal(err)
	}
	if back := atomic.LoadUint32(s.fill.prod) - fillBefore; n != ring || back != uint32(n) {
		t.Errorf("received %d frames, %d back on the fill ring; want %d and %d", n, back, ring, ring)
	}

	send("after", ring)
	got := 0
	receiveUntil(t, p, 10*time.Second, func(q int, frame []byte, info RxInfo) bool {
		pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
		if app := pkt.ApplicationLayer(); app != nil && bytes.HasPrefix(app.Payload(), []byte("after-")) {
			got++
		}
		return got == ring
	})
	if got != ring {
		t.Errorf("received %d of the %d datagrams sent after the refill", got, ring)
	}
	if ks2, err := s.kernelStats(); err != nil || ks2.Rx_dropped != ks.Rx_dropped || ks2.Rx_ring_full != 0 {
		t.Errorf("kernel stats after the refill %+v, %v: want no new drop", ks2, err)
	}
}
