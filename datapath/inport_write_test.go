package datapath

import (
	"slices"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/vport"
)

// TestOutputAfterInPortWrite: on the poll threads, flood and normal after
// a write to in_port resolve against the written port, as Open vSwitch
// does (and as ofproto/trace shows, which the differential test compares
// with Open vSwitch): flood leaves the written port out and sends back out
// of the port the packet came in on; normal learns the source on the
// written port, and learns nothing when the written port is none. Every
// packet is accounted for on its ingress port.
func TestOutputAfterInPortWrite(t *testing.T) {
	b := newTestBridge(t, Config{Idle: IdleSleep})
	var mps []*vport.MemPort
	for i := uint32(1); i <= 4; i++ {
		mp, _ := addMemPort(t, b, vport.MemConfig{Name: "p" + string(rune('0'+i))}, i)
		mps = append(mps, mp)
	}
	addFlows(t, b,
		"priority=100,ip,nw_dst=10.0.0.1,actions=load:3->NXM_OF_IN_PORT[],output:flood",
		"priority=100,ip,nw_dst=10.0.0.5,actions=load:3->NXM_OF_IN_PORT[],NORMAL",
		"priority=100,ip,nw_dst=10.0.0.6,actions=set_field:ANY->in_port,NORMAL",
		"priority=100,ip,nw_dst=10.0.0.7,actions=output:flood",
		"priority=0,actions=drop",
	)
	src := [6]byte{0x02, 0, 0, 0, 0, 1} // buildFrame's source MAC
	cases := []struct {
		dst       string
		want      []int // ports (1-based) that transmit the packet
		learnedOn uint32
	}{
		{"10.0.0.7", []int{2, 3, 4}, 0},
		{"10.0.0.1", []int{1, 2, 4}, 0},
		{"10.0.0.6", []int{1, 2, 3, 4}, 0},
		{"10.0.0.5", []int{1, 2, 4}, 3},
	}
	for _, c := range cases {
		frame := buildFrame(t, frameSpec{src: "10.0.0.9", dst: c.dst, proto: "udp", sport: 1, dport: 2, payloadSz: 10})
		if mps[0].Inject(0, [][]byte{frame}) != 1 {
			t.Fatal("inject failed")
		}
		quiesce(t, b, mps[0])
		var got []int
		for i, mp := range mps {
			if n := len(drainAll(mp)); n == 1 {
				got = append(got, i+1)
			} else if n != 0 {
				t.Errorf("nw_dst=%s: port %d sent %d copies", c.dst, i+1, n)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("nw_dst=%s: sent on ports %v, want %v", c.dst, got, c.want)
		}
		port, learned := b.MACs().Lookup(src, 0, time.Now().UnixNano())
		switch {
		case c.learnedOn == 0 && learned:
			t.Errorf("nw_dst=%s: source learned on port %d, want not learned", c.dst, port)
		case c.learnedOn != 0 && (!learned || port != c.learnedOn):
			t.Errorf("nw_dst=%s: source learned on %d (%v), want on %d", c.dst, port, learned, c.learnedOn)
		}
	}
	checkAccounting(t, b)
	var s PortStats
	for _, p := range b.Ports() {
		if p.OFPort == 1 {
			s = p.Stats()
		}
	}
	if s.RxPackets != uint64(len(cases)) || s.Sent != 13 {
		t.Errorf("p1 received %d, sent %d copies; want %d and 13", s.RxPackets, s.Sent, len(cases))
	}
}
