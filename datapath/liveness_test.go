package datapath

import (
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestFastFailoverFollowsDeviceState runs packets through a fast_failover
// group whose first bucket watches a port, and closes that port's device
// (the first step of its teardown) between two packets of the same flow:
// the rule table takes a new generation before Close returns, and the next
// packet, which would have hit the cached megaflow, fails over to the
// second bucket's port. Bringing the device back up, and removing the
// port, move the traffic again.
func TestFastFailoverFollowsDeviceState(t *testing.T) {
	b := newTestBridge(t, Config{Idle: IdleSleep})
	var mps []*vport.MemPort
	var ports []*Port
	for i, name := range []string{"p1", "p2", "p3"} {
		mp, p := addMemPort(t, b, vport.MemConfig{Name: name}, uint32(i+1))
		mps, ports = append(mps, mp), append(ports, p)
	}
	g, err := flow.ParseGroup("group_id=1,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3", flow.GroupCmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Table().AddGroups([]*flow.Group{g}); err != nil {
		t.Fatal(err)
	}
	addFlows(t, b, "in_port=1,actions=group:1")
	k, err := flow.ParseMicroflow("in_port=1,udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_ttl=64,tp_src=1,tp_dst=2")
	if err != nil {
		t.Fatal(err)
	}
	frame := flow.BuildFrame(&k)
	// send injects the packet and returns how many frames p2 and p3 sent.
	send := func() (p2, p3 int) {
		t.Helper()
		if mps[0].Inject(0, [][]byte{frame}) != 1 {
			t.Fatal("inject failed")
		}
		quiesce(t, b, mps...)
		return len(drainAll(mps[1])), len(drainAll(mps[2]))
	}
	if p2, p3 := send(); p2 != 1 || p3 != 0 {
		t.Fatalf("with p2 live: p2 sent %d, p3 %d; want 1 and 0", p2, p3)
	}
	if got := b.Trace(k).DatapathActions(); got != "2" {
		t.Errorf("trace with p2 live: %s, want 2", got)
	}

	dev := ports[1].VPort().Device()
	gen := b.Table().Generation()
	dev.Close()
	if b.Table().Generation() == gen {
		t.Fatal("closing p2's device did not invalidate the megaflows before it returned")
	}
	if b.PortLive(2) {
		t.Error("p2 is live with its device closed")
	}
	if p2, p3 := send(); p2 != 0 || p3 != 1 {
		t.Errorf("with p2's device closed: p2 sent %d, p3 %d; want 0 and 1", p2, p3)
	}
	if got := b.Trace(k).DatapathActions(); got != "3" {
		t.Errorf("trace with p2 down: %s, want 3", got)
	}

	if err := dev.SetUp(); err != nil {
		t.Fatal(err)
	}
	if p2, p3 := send(); p2 != 1 || p3 != 0 {
		t.Errorf("with p2 up again: p2 sent %d, p3 %d; want 1 and 0", p2, p3)
	}
	checkAccounting(t, b)
}
