package datapath

import (
	"strconv"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// traceBridge is a bridge with three mem ports and rules that rewrite
// headers, for the trace tests.
func traceBridge(t *testing.T) (*Bridge, []*vport.MemPort) {
	t.Helper()
	b := newTestBridge(t, Config{Idle: IdleSleep})
	var mps []*vport.MemPort
	for i, name := range []string{"p1", "p2", "p3"} {
		mp, _ := addMemPort(t, b, vport.MemConfig{Name: name}, uint32(i+1))
		mps = append(mps, mp)
	}
	addFlows(t, b,
		"priority=100,ip,in_port=1,actions=output:2",
		"priority=200,tcp,in_port=1,tp_dst=80,actions=mod_nw_src:10.9.9.9,mod_tp_dst:8080,dec_ttl,output:2",
		"priority=150,udp,actions=mod_dl_src:00:11:22:33:44:55,mod_vlan_vid:7,output:2,strip_vlan,output:3",
		"cookie=0x5,priority=10,in_port=2,actions=drop",
		"priority=300,icmp,actions=flood",
	)
	return b, mps
}

func TestTrace(t *testing.T) {
	b, _ := traceBridge(t)
	tests := []struct {
		name        string
		in          string
		wantRule    string // the rule's match as FormatMatch prints it, "" for none
		wantFinal   string // "" when unchanged
		wantActions string
	}{
		{name: "rewrite", in: "in_port=1,tcp,nw_src=10.1.1.1,tp_dst=80,nw_ttl=64",
			wantRule:    "priority=200,tcp,in_port=1,tp_dst=80",
			wantFinal:   "tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=10.9.9.9,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=63,nw_frag=no,tp_src=0,tp_dst=8080,tcp_flags=0",
			wantActions: "set(ipv4(src=10.9.9.9,ttl=63)),set(tcp(dst=8080)),2"},
		{name: "ttl exceeded", in: "in_port=1,tcp,tp_dst=80",
			wantRule:    "priority=200,tcp,in_port=1,tp_dst=80",
			wantFinal:   "tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=10.9.9.9,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=8080,tcp_flags=0",
			wantActions: "drop"},
		{name: "plain", in: "in_port=1,udp6", wantRule: "", wantActions: "drop"},
		{name: "ip", in: "in_port=1,ip,nw_proto=47", wantRule: "priority=100,ip,in_port=1", wantActions: "2"},
		{name: "two outputs", in: "in_port=1,udp,udp_dst=53",
			wantRule:    "priority=150,udp",
			wantActions: "set(eth(src=00:11:22:33:44:55)),push_vlan(vid=7,pcp=0),2,pop_vlan,3",
			wantFinal:   "udp,in_port=1,vlan_tci=0x0000,dl_src=00:11:22:33:44:55,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=53"},
		{name: "flood", in: "in_port=2,icmp", wantRule: "priority=300,icmp", wantActions: "1,3"},
		{name: "cookie drop", in: "in_port=2,arp", wantRule: "priority=10,in_port=2", wantActions: "drop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := flow.ParseMicroflow(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			tr := b.Trace(k)
			wantRule := b.Table().Snapshot().Lookup(&k, nil)
			if tr.Rule != wantRule || tr.Megaflow.Mask != b.Table().Snapshot().Translate(&k, false).Mask {
				t.Errorf("rule or megaflow mask differ from the translation's")
			}
			ruleMatch := func(r *flow.Rule) string {
				m := r.Match()
				return flow.FormatMatch(&m, r.Priority)
			}
			switch {
			case tt.wantRule == "" && tr.Rule != nil:
				t.Errorf("rule %s, want none", ruleMatch(tr.Rule))
			case tt.wantRule != "" && (tr.Rule == nil || ruleMatch(tr.Rule) != tt.wantRule):
				t.Errorf("rule %v, want %s", tr.Rule, tt.wantRule)
			}
			gotFinal := ""
			if tr.Final != tr.Flow {
				gotFinal = flow.FormatMicroflow(&tr.Final)
			}
			if gotFinal != tt.wantFinal {
				t.Errorf("final flow\n got %s\nwant %s", gotFinal, tt.wantFinal)
			}
			if got := tr.DatapathActions(); got != tt.wantActions {
				t.Errorf("datapath actions %q, want %q", got, tt.wantActions)
			}
			if tr.Mismatch {
				t.Errorf("frame does not carry the microflow")
			}
		})
	}
}

// TestTraceAgreesWithDatapath sends the traced packet through the bridge
// and checks that what each port transmits has the key the trace predicts.
func TestTraceAgreesWithDatapath(t *testing.T) {
	b, mps := traceBridge(t)
	for _, in := range []string{
		"in_port=1,tcp,nw_src=10.1.1.1,tp_dst=80,nw_ttl=64",
		"in_port=1,ip,nw_proto=47,nw_ttl=3",
		"in_port=1,udp,udp_dst=53,nw_ttl=9",
		"in_port=3,udp,udp_dst=53,nw_ttl=9",
		"in_port=2,icmp,icmp_type=8,nw_ttl=1",
	} {
		t.Run(in, func(t *testing.T) {
			k, err := flow.ParseMicroflow(in)
			if err != nil {
				t.Fatal(err)
			}
			tr := b.Trace(k)
			src := mps[k.InPort-1]
			if src.Inject(0, [][]byte{flow.BuildFrame(&k)}) != 1 {
				t.Fatal("inject failed")
			}
			quiesce(t, b, src)
			checkSentAsTraced(t, tr, mps, &k)
		})
	}
}

func TestTraceOutputPolicy(t *testing.T) {
	b, mps := traceBridge(t)
	mps[1].Device().Close() // p2 goes down
	k, err := flow.ParseMicroflow("in_port=1,ip")
	if err != nil {
		t.Fatal(err)
	}
	tr := b.Trace(k)
	if len(tr.Outputs) != 1 || !tr.Outputs[0].Dropped || tr.Outputs[0].Reason != DropNotRunning {
		t.Fatalf("outputs %+v, want one dropped as not-running", tr.Outputs)
	}
	if got := tr.DatapathActions(); got != "drop" {
		t.Errorf("datapath actions %q, want drop", got)
	}
	if s := tr.String(); !strings.Contains(s, "     >> output to port 2 dropped: not-running\n") {
		t.Errorf("trace does not name the drop:\n%s", s)
	}
}

func TestTraceMismatch(t *testing.T) {
	b, _ := traceBridge(t)
	for _, tt := range []struct{ in, want string }{
		// Next header 0 is an extension header: no packet ends its chain on it.
		{"in_port=1,ipv6", "(no packet has exactly this flow: a frame built from it parses as truncated-ipv6-ext; the actions ran on that frame)\n"},
		// Without an Ethertype the frame is 802.3.
		{"in_port=1", "(no packet has exactly this flow; the actions ran on: in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x05ff)\n"},
	} {
		k, err := flow.ParseMicroflow(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		tr := b.Trace(k)
		if !tr.Mismatch {
			t.Errorf("%s: no mismatch reported", tt.in)
		}
		if s := tr.String(); !strings.Contains(s, tt.want) {
			t.Errorf("%s: trace lacks %q:\n%s", tt.in, tt.want, s)
		}
	}
}

func TestTraceString(t *testing.T) {
	b, _ := traceBridge(t)
	for _, tt := range []struct {
		name, in, want string
	}{
		{"hit", "in_port=1,tcp,nw_src=10.1.1.1,tp_dst=22,nw_ttl=64", `Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=10.1.1.1,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=0,tp_dst=22,tcp_flags=0

bridge("br0")
-------------
 0. ip,in_port=1, priority 100
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,tcp,in_port=1,nw_frag=no,tp_dst=0x0/0xffc0
Datapath actions: 2
`},
		{"cookie", "in_port=2,arp", `Flow: arp,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,arp_spa=0.0.0.0,arp_tpa=0.0.0.0,arp_op=0,arp_sha=00:00:00:00:00:00,arp_tha=00:00:00:00:00:00

bridge("br0")
-------------
 0. in_port=2, priority 10, cookie 0x5
    drop

Final flow: unchanged
Megaflow: recirc_id=0,eth,arp,in_port=2
Datapath actions: drop
Drop reason: no-rule
`},
		{"no match", "in_port=3,arp", `Flow: arp,in_port=3,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,arp_spa=0.0.0.0,arp_tpa=0.0.0.0,arp_op=0,arp_sha=00:00:00:00:00:00,arp_tha=00:00:00:00:00:00

bridge("br0")
-------------
 0. No match.
    drop

Final flow: unchanged
Megaflow: recirc_id=0,eth,arp,in_port=3
Datapath actions: drop
Drop reason: no-rule
`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := flow.ParseMicroflow(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := b.Trace(k).String(); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestManyOutputs checks that a flow with 100 output actions, which
// ovs-ofctl accepts and Open vSwitch forwards, sends a copy to each of
// the 100 ports, and that trace agrees.
func TestManyOutputs(t *testing.T) {
	const n = 100
	b := newTestBridge(t, Config{Watchdog: WatchdogConfig{Log: discardLog}})
	src, _ := addMemPort(t, b, vport.MemConfig{Name: "src"}, 1)
	dsts := make([]*vport.MemPort, n)
	acts, ports := make([]string, n), make([]string, n)
	for i := range dsts {
		dsts[i], _ = addMemPort(t, b, vport.MemConfig{Name: "d" + strconv.Itoa(i)}, uint32(i+2))
		ports[i] = strconv.Itoa(i + 2)
		acts[i] = "output:" + ports[i]
	}
	addFlows(t, b, "in_port=1,actions="+strings.Join(acts, ","))

	k, err := flow.ParseMicroflow("in_port=1,udp")
	if err != nil {
		t.Fatal(err)
	}
	tr := b.Trace(k)
	if got := tr.DatapathActions(); got != strings.Join(ports, ",") {
		t.Errorf("trace: datapath actions %q", got)
	}
	if rs := tr.DropReasons(); rs != nil {
		t.Errorf("trace: drop reasons %v", rs)
	}
	src.Inject(0, [][]byte{flow.BuildFrame(&k)})
	quiesce(t, b, src)
	for i, d := range dsts {
		if got := len(drainAll(d)); got != 1 {
			t.Errorf("port %d: %d frames, want 1", i+2, got)
		}
	}
	p, _ := b.Port("src")
	if s := p.Stats(); s.Sent != n || s.RxDropped() != 0 {
		t.Errorf("src: sent %d, dropped %v; want %d sent", s.Sent, s.Drops, n)
	}
	checkAccounting(t, b)
}

// TestTraceNamesDropReason checks that trace names the reason whenever the
// datapath drops the packet, as its counters do: no rule, an explicit
// drop, a stopping verdict (here the action cap, for a list built in code:
// parsing refuses one), and dropped copies.
func TestTraceNamesDropReason(t *testing.T) {
	b, mps := traceBridge(t)
	tooMany := make([]flow.Action, flow.MaxActions+1)
	for i := range tooMany {
		tooMany[i] = flow.Action{Type: flow.ActOutput, Port: 2}
	}
	b.Table().Add(&flow.Flow{Match: flow.Match{Key: flow.Key{InPort: 3, DlType: flow.EthTypeARP}, Mask: flow.Key{InPort: ^uint32(0), DlType: 0xffff}}, Priority: 400, Actions: tooMany})
	for _, tt := range []struct{ in, want string }{
		{"in_port=3,arp", "action-cap"},
		{"in_port=2,arp", "no-rule"},
		{"in_port=4,arp", "no-rule"},
		{"in_port=1,tcp,tp_dst=80", "ttl-exceeded"},
	} {
		k, err := flow.ParseMicroflow(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		s := b.Trace(k).String()
		if !strings.Contains(s, "\nDatapath actions: drop\n") || !strings.Contains(s, "\nDrop reason: "+tt.want+"\n") {
			t.Errorf("%s: trace does not name %s:\n%s", tt.in, tt.want, s)
		}
	}
	// The datapath counts the same reason.
	k, _ := flow.ParseMicroflow("in_port=3,arp")
	mps[2].Inject(0, [][]byte{flow.BuildFrame(&k)})
	quiesce(t, b, mps[2])
	if p, _ := b.Port("p3"); p.Stats().Drops[DropActionCap] != 1 {
		t.Errorf("p3 drops %v, want one action-cap", p.Stats().Drops)
	}

	mps[1].Device().Close() // p2 goes down
	k, _ = flow.ParseMicroflow("in_port=1,ip")
	if s := b.Trace(k).String(); !strings.Contains(s, "\nDatapath actions: drop\nDrop reason: not-running\n") {
		t.Errorf("trace does not name not-running:\n%s", s)
	}
}

// checkSentAsTraced checks that each port of mps (OpenFlow port i+1) sent
// exactly the frames trace tr predicted for packet k, in order.
func checkSentAsTraced(t *testing.T, tr *Trace, mps []*vport.MemPort, k *flow.Key) {
	t.Helper()
	want := map[uint32][]flow.Key{}
	for _, o := range tr.Outputs {
		if !o.Dropped {
			want[o.Port] = append(want[o.Port], o.Key)
		}
	}
	for i, mp := range mps {
		port := uint32(i + 1)
		got := drainAll(mp)
		if len(got) != len(want[port]) {
			t.Fatalf("port %d sent %d frames, trace says %d", port, len(got), len(want[port]))
		}
		for j, f := range got {
			var gk flow.Key
			var off flow.Offsets
			flow.Extract(&gk, &off, f, k.InPort)
			if gk != want[port][j] {
				t.Errorf("port %d frame %d: key %s, trace says %s", port, j, flow.FormatMicroflow(&gk), flow.FormatMicroflow(&want[port][j]))
			}
		}
	}
}

// TestTraceTunnelMegaflow traces packets that came out of a tunnel, their
// tunnel metadata given in the microflow: the packet keeps it (no
// mismatch), and the megaflow and datapath actions are what Open
// vSwitch 3.1's ofproto/trace printed for the same flows and microflows.
func TestTraceTunnelMegaflow(t *testing.T) {
	const tun = "in_port=1,tun_id=5,tun_src=192.0.2.2,tun_dst=192.0.2.1,"
	for _, tt := range []struct {
		name, flow, in      string
		megaflow, datapathA string
	}{
		{name: "tunnel fields", flow: "in_port=1,tun_id=5,udp,actions=output:2", in: tun + "udp",
			megaflow:  "recirc_id=0,eth,udp,tun_id=0x5,tun_src=192.0.2.2,tun_dst=192.0.2.1,tun_tos=0,tun_flags=-df-csum-key,in_port=1,nw_frag=no",
			datapathA: "2"},
		{name: "ce over ect0", flow: "in_port=1,actions=output:2", in: tun + "tun_tos=3,udp,nw_ecn=2",
			megaflow:  "recirc_id=0,eth,ip,tun_id=0x5,tun_src=192.0.2.2,tun_dst=192.0.2.1,tun_tos=3,tun_flags=-df-csum-key,in_port=1,nw_ecn=2,nw_frag=no",
			datapathA: "set(ipv4(tos=0x3/0x3)),2"},
		{name: "outer tos in hexadecimal", flow: "in_port=1,actions=output:2", in: tun + "tun_tos=0x2e,udp",
			megaflow:  "recirc_id=0,eth,ip,tun_id=0x5,tun_src=192.0.2.2,tun_dst=192.0.2.1,tun_tos=2e,tun_flags=-df-csum-key,in_port=1,nw_frag=no",
			datapathA: "2"},
		{name: "every flag", flow: "in_port=1,tun_flags=+oam,actions=output:2", in: tun + "tun_flags=oam,udp",
			megaflow:  "recirc_id=0,eth,ip,tun_id=0x5,tun_src=192.0.2.2,tun_dst=192.0.2.1,tun_tos=0,tun_flags=oam,in_port=1,nw_frag=no",
			datapathA: "2"},
		{name: "ipv6 underlay", flow: "in_port=1,actions=output:2", in: "in_port=1,tun_id=5,tun_ipv6_src=2001:db8::2,tun_ipv6_dst=2001:db8::1,tun_tos=0xbb,udp,nw_ecn=2",
			megaflow:  "recirc_id=0,eth,ip,tun_id=0x5,tun_ipv6_src=2001:db8::2,tun_ipv6_dst=2001:db8::1,tun_tos=bb,tun_flags=-df-csum-key,in_port=1,nw_ecn=2,nw_frag=no",
			datapathA: "set(ipv4(tos=0x3/0x3)),2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBridge(t, Config{Idle: IdleSleep})
			for i, name := range []string{"p1", "p2"} {
				addMemPort(t, b, vport.MemConfig{Name: name}, uint32(i+1))
			}
			addFlows(t, b, tt.flow)
			k, err := flow.ParseMicroflow(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			tr := b.Trace(k)
			if tr.Mismatch {
				t.Errorf("the traced packet lost its tunnel metadata:\n%s", tr)
			}
			s := tr.String()
			for _, want := range []string{"\nMegaflow: " + tt.megaflow + "\n", "\nDatapath actions: " + tt.datapathA + "\n"} {
				if !strings.Contains(s, want) {
					t.Errorf("trace lacks %q:\n%s", strings.TrimSpace(want), s)
				}
			}
		})
	}
}
