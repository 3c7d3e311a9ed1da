package datapath

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestDpHashGroupConnections sends many TCP connections to a VIP through
// a dp_hash group whose buckets commit in conntrack and recirculate, as
// OVN's load balancers do: each packet takes three passes (the hash, the
// bucket's ct, the output), the first matches no L4 port, the second
// dp_hash under the group's mask, so the megaflows stay a handful however
// many connections there are; every connection keeps its backend, both
// backends are used, and every packet is accounted.
func TestDpHashGroupConnections(t *testing.T) {
	tracker := newCTTracker(10000)
	b := newTestBridge(t, Config{Idle: IdleSleep, Conntrack: tracker})
	m1, _ := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	m2, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	m3, _ := addMemPort(t, b, vport.MemConfig{Name: "p3"}, 3)
	g, err := flow.ParseGroup("group_id=1,type=select,selection_method=dp_hash,"+
		"bucket=bucket_id=0,weight=100,actions=set_field:1->reg0,ct(commit,table=1,zone=5),"+
		"bucket=bucket_id=1,weight=100,actions=set_field:2->reg0,ct(commit,table=1,zone=5)", flow.GroupCmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Table().AddGroups([]*flow.Group{g}); err != nil {
		t.Fatal(err)
	}
	addFlows(t, b,
		"priority=10,in_port=1,tcp,nw_dst=10.0.0.10,actions=group:1",
		"table=1,priority=10,reg0=1,actions=output:2",
		"table=1,priority=10,reg0=2,actions=output:3",
	)

	const conns = 300
	backend := make([]int, conns)
	for round := range 2 {
		for i := range conns {
			syn := buildFrame(t, frameSpec{src: "10.0.1.1", dst: "10.0.0.10", proto: "tcp", sport: uint16(20000 + i), dport: 80})
			if m1.Inject(0, [][]byte{syn}) != 1 {
				t.Fatal("inject failed")
			}
			quiesce(t, b, m1, m2, m3)
			n2, n3 := len(drainAll(m2)), len(drainAll(m3))
			got := 0
			switch {
			case n2 == 1 && n3 == 0:
				got = 2
			case n2 == 0 && n3 == 1:
				got = 3
			default:
				t.Fatalf("connection %d: %d frames out of p2, %d out of p3, want one", i, n2, n3)
			}
			if round == 1 && got != backend[i] {
				t.Fatalf("connection %d went to p%d, then to p%d", i, backend[i], got)
			}
			backend[i] = got
		}
	}
	used := map[int]int{}
	for _, p := range backend {
		used[p]++
	}
	if used[2] == 0 || used[3] == 0 {
		t.Errorf("backends used %v, want both", used)
	}
	checkAccounting(t, b)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mfs, err := b.Megaflows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One first pass, at most 16 hash passes (each with its bucket), and
	// the ct passes (new, then established, per backend).
	if len(mfs) > 1+16+4 {
		t.Errorf("%d connections took %d megaflows", conns, len(mfs))
	}
	var dump []string
	for _, e := range mfs {
		dump = append(dump, e.String(time.Now()))
	}
	text := strings.Join(dump, "\n")
	for _, want := range []string{
		"recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(dst=10.0.0.10,proto=6,frag=no), packets:600,",
		"actions:hash(l4(0)),recirc(0x",
		"dp_hash(0x",
		"/0xf),in_port(1),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(frag=no), packets:",
		"actions:ct(commit,zone=5),recirc(0x",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("dump-flows has no %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "tcp(") {
		t.Errorf("a megaflow matches TCP ports:\n%s", text)
	}
}
