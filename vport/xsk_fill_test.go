package vport

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/test/netns"
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
	// The gauge shows it without a system call: no frame posted, and the
	// port tells the poll thread not to nap.
	if fs := p.FillStats(); fs.Size != ring || fs.Posted != 0 || fs.Low != ring || fs.FoundEmpty != 0 || !p.RxLow(0) || p.RxRoom(0) != 0 {
		t.Errorf("before the Receive: %+v, low %v, room %d; want %d frames, none posted, none found empty yet, low, no room", fs, p.RxLow(0), p.RxRoom(0), ring)
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
	if fs := p.FillStats(); fs.Posted != ring || fs.Low != 0 || fs.FoundEmpty != 1 || fs.RxHigh != ring || fs.HeldHigh != 0 || p.RxLow(0) {
		t.Errorf("after the Receive: %+v, low %v; want all %d posted, fewest 0, found empty by 1 poll, rx ring full at it, none held, not low", fs, p.RxLow(0), ring)
	}
	// A benchmark phase starts the gauges afresh; the polls that follow
	// set them again.
	p.ResetFillLow()
	if fs := p.FillStats(); fs.Low != ring || fs.FoundEmpty != 1 || fs.RxHigh != 0 || fs.HeldHigh != 0 {
		t.Errorf("after ResetFillLow: %+v; want fewest %d, found empty still 1, rx and held highs 0", fs, ring)
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
	if fs := p.FillStats(); fs.Low >= ring {
		t.Errorf("after the polls that followed ResetFillLow: %+v; want fewest below %d", fs, ring)
	}
	if ks2, err := s.kernelStats(); err != nil || ks2.Rx_dropped != ks.Rx_dropped || ks2.Rx_ring_full != 0 {
		t.Errorf("kernel stats after the refill %+v, %v: want no new drop", ks2, err)
	}
}

// TestXSKLentFramesLeaveFillRing checks the fill ring's level while frames
// are lent: they are neither on the rx ring nor posted to the kernel, so
// RxRoom counts them out and RxLow reports the ring low once more than
// half are lent; Release posts them back at once, topping the ring up to
// its size.
func TestXSKLentFramesLeaveFillRing(t *testing.T) {
	const ring = 32
	const sent = ring/2 + 4 // more than half lent
	tp := newXSKTopo(t, 1)
	p := tp.open(t, XSKConfig{Frames: 2 * ring, RingSize: ring})
	c := tp.udpIn(t, "10.0.0.1:4200", "10.0.0.2:9")
	for i := range sent {
		if _, err := c.Write([]byte(fmt.Sprintf("lent-%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.RxPending(0) < sent {
		if time.Now().After(deadline) {
			t.Fatalf("%d frames pending after 10s, want %d", p.RxPending(0), sent)
		}
		time.Sleep(5 * time.Millisecond)
	}
	lent := make([][]byte, MaxBatch)
	got := 0
	for got < sent {
		n, err := p.ReceiveLent(0, lent[got:], nil)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		got += n
	}
	if got < sent {
		t.Fatalf("lent %d frames, %d were pending", got, sent)
	}
	pending := p.RxPending(0) // a frame of the peer's own, if any
	fs := p.FillStats()
	if fs.Posted != ring-got-pending || !p.RxLow(0) || p.RxRoom(0) != fs.Posted {
		t.Errorf("with %d frames lent, %d pending: %+v, low %v, room %d; want %d posted, low, room %d",
			got, pending, fs, p.RxLow(0), p.RxRoom(0), ring-got-pending, ring-got-pending)
	}
	// A poll while they are lent finds them on neither ring.
	if _, err := c.Write([]byte("lent-more")); err != nil {
		t.Fatal(err)
	}
	more := make([][]byte, MaxBatch)
	moreN := 0
	for deadline := time.Now().Add(10 * time.Second); moreN == 0 && time.Now().Before(deadline); {
		n, err := p.ReceiveLent(0, more, nil)
		if err != nil {
			t.Fatal(err)
		}
		moreN = n
		time.Sleep(time.Millisecond)
	}
	if fs := p.FillStats(); moreN == 0 || fs.HeldHigh < got || fs.HeldHigh > ring || fs.RxHigh < 1 {
		t.Errorf("a poll with %d frames lent took %d: %+v; want at least %d held, at least 1 waiting", got, moreN, fs, got)
	}
	p.Release(0, more[:moreN])
	p.Release(0, lent[:got])
	if fs := p.FillStats(); fs.Posted != ring-pending || p.RxLow(0) || fs.FoundEmpty != 0 {
		t.Errorf("after the Release: %+v, low %v; want %d posted, not low, never found empty", fs, p.RxLow(0), ring-pending)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if fs := p.FillStats(); fs != (FillStats{}) || p.RxLow(0) {
		t.Errorf("after close: %+v, low %v; want zero", fs, p.RxLow(0))
	}
}

// TestXSKDefaultRingsRideOutGap counts, with real sockets, what a poll
// thread off its CPU for a while costs at the default sizes: 6,000 frames
// arrive while nobody reads the socket, as in 12 ms at 500,000 packets/s.
// The default fill ring (8,192 frames) takes them all; the 4,096 rx frames
// of 8,192-frame sockets drop the rest as "no fill frame".
func TestXSKDefaultRingsRideOutGap(t *testing.T) {
	const sent = 6000
	for _, c := range []struct {
		name        string
		inFrames    int
		wantDropped uint64
	}{
		{"default", DefaultXSKFrames, 0},
		{"8192 frames", 8192, sent - 4096},
	} {
		t.Run(c.name, func(t *testing.T) {
			tp := newXSKTopo(t, 1)
			p := tp.open(t, XSKConfig{Frames: c.inFrames})
			s := p.socks[0]
			u := tp.udpIn(t, "10.0.0.1:4200", "10.0.0.2:9")
			payload := make([]byte, 18)
			for range sent {
				if _, err := u.Write(payload); err != nil {
					t.Fatal(err)
				}
			}
			// Bounded wait until the kernel has counted every frame, on
			// the rx ring or dropped.
			var ks unix.XDPStatistics
			var onRing uint64
			counted := netns.Eventually(10*time.Second, func() bool {
				var err error
				if ks, err = s.kernelStats(); err != nil {
					t.Fatal(err)
				}
				onRing = uint64(p.RxPending(0))
				return ks.Rx_dropped+ks.Rx_ring_full+onRing >= sent
			})
			fs := p.FillStats()
			t.Logf("%d frames unread: %d on the rx ring, kernel stats %+v, fill ring %+v", sent, onRing, ks, fs)
			if !counted {
				t.Fatalf("the kernel counted %d of %d frames after 10s", ks.Rx_dropped+ks.Rx_ring_full+onRing, sent)
			}
			if ks.Rx_dropped != c.wantDropped || ks.Rx_ring_full != 0 {
				t.Errorf("dropped for want of a fill frame %d, for a full rx ring %d; want %d and 0", ks.Rx_dropped, ks.Rx_ring_full, c.wantDropped)
			}
			if want := fs.Size - int(onRing); fs.Posted != want {
				t.Errorf("fill ring holds %d frames with %d on the rx ring, want %d", fs.Posted, onRing, want)
			}
		})
	}
}
