package test

import (
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestAFXDPLinkState takes a port's link down, then its carrier (by taking
// the peer down), under a steady stream of pings: the datapath drops the
// copies it cannot send, counted under the right reason (the link monitor
// feeds the device state output reads), and traffic resumes once the link
// is back. The counters balance throughout.
func TestAFXDPLinkState(t *testing.T) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	d := newDPTopo(t)
	a := d.addEndpoint(t, "a", "10.0.0.1", 1, 2, 512)
	b := d.addEndpoint(t, "b", "10.0.0.2", 2, 2, 512)
	addFlows(t, d.br, l2Flows...)
	// No ARP needed while b is unreachable.
	a.ns.SetNeigh(t, a.veth.Peer, b.ip, b.ns.MAC(t, b.veth.Peer))
	a.ping(t, b.ip, 2)
	stream := a.ns.Start(t, "ping", "-n", "-i", "0.005", b.ip)

	for _, tc := range []struct {
		name       string
		down, up   func(t *testing.T)
		wantReason datapath.DropReason
	}{
		{
			name:       "link-down",
			down:       func(t *testing.T) { d.sw.IP(t, "link", "set", b.veth.Host, "down") },
			up:         func(t *testing.T) { d.sw.IP(t, "link", "set", b.veth.Host, "up") },
			wantReason: datapath.DropNotRunning,
		},
		{
			name:       "carrier-loss",
			down:       func(t *testing.T) { b.ns.IP(t, "link", "set", b.veth.Peer, "down") },
			up:         func(t *testing.T) { b.ns.IP(t, "link", "set", b.veth.Peer, "up") },
			wantReason: datapath.DropNoCarrier,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.dp.Stats().Drops[tc.wantReason]
			beforeTx := b.dp.Stats().TxDrops[tc.wantReason]
			tc.down(t)
			// Carrier changes reach netlink through the kernel's linkwatch,
			// which may hold them up to a second.
			if !netns.Eventually(20*time.Second, func() bool { return a.dp.Stats().Drops[tc.wantReason] >= before+20 }) {
				t.Fatalf("%s drops of a's traffic: %d before, %d after 5s down (all: %s)",
					tc.wantReason, before, a.dp.Stats().Drops[tc.wantReason], nonZeroDrops(a.dp.Stats().Drops))
			}
			tc.up(t)
			if !a.reach(b.ip, 10*time.Second) {
				t.Fatalf("traffic does not resume after %s", tc.name)
			}
			after, afterTx := a.dp.Stats().Drops[tc.wantReason], b.dp.Stats().TxDrops[tc.wantReason]
			if afterTx-beforeTx != after-before {
				t.Errorf("%s: %d drops on a's ledger, %d on b's egress", tc.wantReason, after-before, afterTx-beforeTx)
			}
			t.Logf("%s: %d copies dropped as %s", tc.name, after-before, tc.wantReason)
		})
	}
	stream.Kill()
	stats := quiesceStats(t, d.br)
	checkBalanced(t, stats...)
	for _, s := range stats {
		t.Logf("%s: rx %d sent %d drops %s", s.Name, s.RxPackets, s.Sent, nonZeroDrops(s.Drops))
	}
}
