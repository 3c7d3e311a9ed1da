package datapath

import (
	"net"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestAdaptiveHoldsNapOnXSK is TestAdaptiveHoldsNapWhileFramesWait on a
// real AF_XDP socket: frames sent from the veth's other end wait on the
// port's rx ring, and a thread that is due a nap after a light poll polls
// again instead; once they are received, it naps.
func TestAdaptiveHoldsNapOnXSK(t *testing.T) {
	const sent = vport.MaxBatch // a whole batch: nothing left to gather
	sw := netns.New(t, "sw")
	peer := netns.New(t, "peer")
	v := netns.AddVeth(t, sw, "h0", peer, "p0", 1)
	open := func(dev, ns string) *vport.XSKPort {
		t.Helper()
		p, err := vport.OpenXSK(vport.XSKConfig{Device: dev, Netns: ns, Queues: 1, Frames: 64, RingSize: 32})
		if err != nil {
			t.Fatalf("open %s: %v", dev, err)
		}
		t.Cleanup(func() {
			if err := p.Close(); err != nil {
				t.Errorf("close %s: %v", dev, err)
			}
		})
		return p
	}
	rx := open(v.Host, sw.Path())
	tx := open(v.Peer, peer.Path())

	buf := gopacket.NewSerializeBuffer()
	eth := &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 1},
		DstMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetType(0x88b5), // local experimental
	}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, gopacket.Payload(make([]byte, 46))); err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, sent)
	for i := range frames {
		frames[i] = buf.Bytes()
	}
	if n, err := tx.Transmit(0, frames); n != sent || err != nil {
		t.Fatalf("transmit: %d of %d, %v", n, sent, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rx.RxPending(0) < sent {
		if time.Now().After(deadline) {
			t.Fatalf("%d frames on the rx ring after 10s, want %d", rx.RxPending(0), sent)
		}
		time.Sleep(5 * time.Millisecond)
	}

	p := &pmd{}
	rqs := []rxq{{port: &Port{Name: v.Host, vp: rx}}}
	p.rxqs.Store(&rqs)
	th := &thread{ms: []*pmd{p}} // its only member
	end := time.Now()
	start := end.Add(-time.Microsecond)
	prevBusy := start.Add(-5 * time.Microsecond) // light load: a nap is due
	if next := th.adapt(2, 0, start, end, prevBusy); next != 0 {
		t.Errorf("with frames on the rx ring: next nap %v, want 0", next)
	}
	if naps, held := p.idle.naps.Load(), p.idle.held.Load(); naps != 0 || held != 1 {
		t.Fatalf("with %d frames on the rx ring: %d naps, %d held; want 0 naps, 1 held", rx.RxPending(0), naps, held)
	}

	bufs := make([][]byte, vport.MaxBatch)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	sizes := make([]int, vport.MaxBatch)
	for rx.RxPending(0) > 0 {
		if _, err := rx.Receive(0, bufs, sizes, nil); err != nil {
			t.Fatal(err)
		}
	}
	if next := th.adapt(2, 0, start, end, prevBusy); next != napStep {
		t.Errorf("with the rx ring empty: next nap %v, want %v", next, napStep)
	}
	if naps, held := p.idle.naps.Load(), p.idle.held.Load(); naps != 1 || held != 1 {
		t.Errorf("with the rx ring empty: %d naps, %d held; want 1 nap, still 1 held", naps, held)
	}
}
