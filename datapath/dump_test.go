package datapath

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

func TestMegaflowsDump(t *testing.T) {
	b := newTestBridge(t, Config{PMDs: 2, Idle: IdleSleep})
	in, _ := addMemPort(t, b, vport.MemConfig{Name: "p1", RxQueues: 2}, 1)
	out, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	addFlows(t, b,
		"priority=100,udp,in_port=1,nw_dst=10.0.0.0/24,actions=output:2",
		"priority=10,actions=drop",
	)
	frame := buildFrame(t, frameSpec{src: "10.1.0.1", dst: "10.0.0.7", proto: "udp", sport: 1, dport: 2, payloadSz: 20})
	const n = 10
	for i := range n {
		if in.Inject(i%2, [][]byte{frame}) != 1 {
			t.Fatal("inject failed")
		}
	}
	quiesce(t, b, in)
	if got := len(drainAll(out)); got != n {
		t.Fatalf("p2 transmitted %d frames, want %d", got, n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mfs, err := b.Megaflows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var k flow.Key
	var off flow.Offsets
	flow.Extract(&k, &off, frame, 1)
	rule := b.Table().Snapshot().Lookup(&k, nil)
	wc := b.Table().Snapshot().Translate(&k, false).Mask
	var packets, bytes uint64
	for _, e := range mfs {
		if e.Match.Mask != wc || e.Rule != rule {
			t.Errorf("pmd %d megaflow %s: want the translation's mask and rule", e.PMD, ODPMatch(&e.Match))
		}
		if e.Stale || e.LastUsed.IsZero() {
			t.Errorf("megaflow stale=%v lastUsed=%v", e.Stale, e.LastUsed)
		}
		packets += e.Packets
		bytes += e.Bytes
	}
	if packets != n || bytes != n*uint64(len(frame)) {
		t.Errorf("megaflows counted %d packets, %d bytes; want %d, %d", packets, bytes, n, n*len(frame))
	}
	if p, _ := rule.Stats(); p != n {
		t.Errorf("rule counted %d packets, want %d", p, n)
	}
	line := mfs[0].String(mfs[0].LastUsed.Add(1500 * time.Millisecond))
	want := "recirc_id(0),in_port(1),eth_type(0x800),ipv4(dst=10.0.0.0/255.255.255.0,proto=17,frag=no), packets:"
	if !strings.HasPrefix(line, want) || !strings.HasSuffix(line, ", used:1.500s, actions:2") {
		t.Errorf("dump line\n %s\nwant %s... used:1.500s, actions:2", line, want)
	}

	b.Table().Add(&flow.Flow{Priority: 200, Actions: []flow.Action{{Type: flow.ActOutput, Port: 2}}})
	mfs, err = b.Megaflows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range mfs {
		if !e.Stale {
			t.Errorf("after a table change the megaflow is not stale")
		}
	}
	if err := b.FlushMegaflows(ctx); err != nil {
		t.Fatal(err)
	}
	if mfs, err = b.Megaflows(ctx); err != nil || len(mfs) != 0 {
		t.Errorf("after a flush: %d megaflows, %v", len(mfs), err)
	}
}

func TestODPMatch(t *testing.T) {
	tests := []struct {
		name string
		in   string // a match in ovs-ofctl syntax
		want string
	}{
		{"catch-all", "", "recirc_id(0)"},
		{"in_port", "in_port=3", "recirc_id(0),in_port(3)"},
		{"ipv4 prefix", "ip,nw_dst=10.0.0.0/24,nw_frag=no", "recirc_id(0),eth_type(0x800),ipv4(dst=10.0.0.0/255.255.255.0,frag=no)"},
		{"tcp port mask", "tcp,tp_dst=0x10/0xfff0", "recirc_id(0),eth_type(0x800),ipv4(proto=6),tcp(dst=16/0xfff0)"},
		{"eth", "dl_src=00:00:00:00:00:01,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00", "recirc_id(0),eth(src=00:00:00:00:00:01,dst=01:00:00:00:00:00/01:00:00:00:00:00)"},
		{"vlan", "dl_vlan=5,udp,tp_src=53", "recirc_id(0),eth_type(0x8100),vlan(vid=5),encap(eth_type(0x800),ipv4(proto=17),udp(src=53))"},
		{"ipv6 icmp nd", "icmp6,icmp_type=135,icmp_code=0,nd_target=fe80::1,ipv6_src=2001:db8::/32",
			"recirc_id(0),eth_type(0x86dd),ipv6(src=2001:db8::/ffff:ffff::,proto=58),icmpv6(type=135,code=0),nd(target=fe80::1)"},
		{"arp", "arp,arp_op=1,arp_tpa=10.0.0.1", "recirc_id(0),eth_type(0x806),arp(tip=10.0.0.1,op=1)"},
		{"tos and ttl", "ip,nw_tos=8,nw_ttl=64", "recirc_id(0),eth_type(0x800),ipv4(tos=0x8/0xfc,ttl=64)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := flow.ParseMatch(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := ODPMatch(m); got != tt.want {
				t.Errorf("ODPMatch(%q)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestODPSetActions(t *testing.T) {
	key := func(s string) flow.Key {
		k, err := flow.ParseMicroflow(s)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	tests := []struct {
		name     string
		from, to string
		want     string
	}{
		{"unchanged", "tcp,nw_src=1.1.1.1", "tcp,nw_src=1.1.1.1", ""},
		{"ipv4 and tcp", "tcp,nw_src=1.1.1.1,tp_dst=80,nw_ttl=64", "tcp,nw_src=10.9.9.9,tp_dst=8080,nw_ttl=63", "set(ipv4(src=10.9.9.9,ttl=63)) set(tcp(dst=8080))"},
		{"eth", "udp", "udp,dl_src=00:11:22:33:44:55", "set(eth(src=00:11:22:33:44:55))"},
		{"push", "udp", "udp,dl_vlan=7", "push_vlan(vid=7,pcp=0)"},
		{"pop", "udp,dl_vlan=7", "udp", "pop_vlan"},
		{"retag", "udp,dl_vlan=7", "udp,dl_vlan=8,dl_vlan_pcp=3", "pop_vlan push_vlan(vid=8,pcp=3)"},
		{"ipv6", "udp6,ipv6_dst=::1,nw_ttl=5", "udp6,ipv6_dst=::2,nw_ttl=4", "set(ipv6(dst=::2,hlimit=4))"},
		{"icmp", "icmp,icmp_type=8", "icmp,icmp_type=0", "set(icmp(type=0))"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to := key(tt.from), key(tt.to)
			if got := strings.Join(odpSetActions(&from, &to), " "); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
