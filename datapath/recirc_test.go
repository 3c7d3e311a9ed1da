package datapath

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// ctTuple is a connection of ctTracker: its zone and IPv4 5-tuple in the
// original direction.
type ctTuple struct {
	zone       uint16
	src, dst   uint32
	proto      uint8
	sport, dpt uint16
}

// ctTracker is a small connection tracker for the datapath's tests (the
// real one is datapath/conntrack): IPv4 TCP and UDP by 5-tuple and zone,
// new until committed, then established both ways (+rpl the other way),
// at most max connections; anything else is +inv.
type ctTracker struct {
	mu    sync.Mutex // guards conns
	conns map[ctTuple]bool
	max   int
}

var _ flow.Conntrack = (*ctTracker)(nil)

func newCTTracker(max int) *ctTracker {
	return &ctTracker{conns: make(map[ctTuple]bool), max: max}
}

func (c *ctTracker) Track(_ []byte, k *flow.Key, _ *flow.Offsets, ct *flow.CT, _ int64) flow.Verdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	k.CtZone = ct.Zone
	if k.DlType != flow.EthTypeIPv4 || (k.NwProto != flow.IPProtoTCP && k.NwProto != flow.IPProtoUDP) {
		k.CtState = flow.CtStateTracked | flow.CtStateInv
		return flow.VerdictOK
	}
	fwd := ctTuple{ct.Zone, k.NwSrc, k.NwDst, k.NwProto, k.TpSrc, k.TpDst}
	rev := ctTuple{ct.Zone, k.NwDst, k.NwSrc, k.NwProto, k.TpDst, k.TpSrc}
	switch {
	case c.conns[fwd]:
		k.CtState = flow.CtStateTracked | flow.CtStateEst
	case c.conns[rev]:
		k.CtState = flow.CtStateTracked | flow.CtStateEst | flow.CtStateRpl
	default:
		k.CtState = flow.CtStateTracked | flow.CtStateNew
		if ct.Commit {
			if len(c.conns) >= c.max {
				return flow.VerdictCTFull
			}
			c.conns[fwd] = true
		}
	}
	return flow.VerdictOK
}

func (c *ctTracker) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

// addCTFlow installs a flow parsed from s with acts before its actions and
// a ct_state match of state under mask (none when mask is 0).
func addCTFlow(t testing.TB, b *Bridge, s string, state, mask uint8, acts ...flow.Action) {
	t.Helper()
	f, err := flow.ParseFlow(s, flow.CmdAdd)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	f.Actions = append(append([]flow.Action(nil), acts...), f.Actions...)
	f.Match.Key.CtState, f.Match.Mask.CtState = state&mask, mask
	if err := b.Table().Add(f); err != nil {
		t.Fatal(err)
	}
}

func ctAction(c flow.CT) flow.Action {
	return flow.Action{Type: flow.ActCT, CT: &c}
}

// statefulFirewall installs a stateful firewall between p1 and p2: p1 may
// open connections to p2 (ct(commit,table=1), then +new is allowed), and
// replies come back; p2's new connections are dropped.
func statefulFirewall(t testing.TB, b *Bridge) {
	const zone = 5
	addCTFlow(t, b, "in_port=1,ip,actions=drop", 0, 0, ctAction(flow.CT{Commit: true, Zone: zone, Table: 1}))
	addCTFlow(t, b, "in_port=2,ip,actions=drop", 0, 0, ctAction(flow.CT{Zone: zone, Table: 1}))
	addCTFlow(t, b, "table=1,in_port=1,actions=output:2", flow.CtStateTracked|flow.CtStateNew, flow.CtStateTracked|flow.CtStateNew)
	addCTFlow(t, b, "table=1,in_port=1,actions=output:2", flow.CtStateTracked|flow.CtStateEst, flow.CtStateTracked|flow.CtStateEst)
	addCTFlow(t, b, "table=1,in_port=2,actions=output:1", flow.CtStateTracked|flow.CtStateEst, flow.CtStateTracked|flow.CtStateEst)
	addCTFlow(t, b, "table=1,in_port=2,actions=drop", flow.CtStateTracked|flow.CtStateNew, flow.CtStateTracked|flow.CtStateNew)
}

// TestConntrackRecirculation sends both directions of a TCP connection
// through ct(commit,table=1): the first packet is +trk+new in table 1 and
// goes out; the reply is +trk+est and comes back; a new connection from
// the other side is dropped. Every pass is accounted on the port that
// received the packet, and the megaflows show recirc_id and ct_state as
// Open vSwitch's dump-flows does.
func TestConntrackRecirculation(t *testing.T) {
	tracker := newCTTracker(100)
	b := newTestBridge(t, Config{Idle: IdleSleep, Conntrack: tracker})
	m1, p1 := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	m2, p2 := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	statefulFirewall(t, b)

	syn := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "tcp", sport: 40000, dport: 80})
	reply := buildFrame(t, frameSpec{src: "10.0.0.2", dst: "10.0.0.1", proto: "tcp", sport: 80, dport: 40000})
	other := buildFrame(t, frameSpec{src: "10.0.0.2", dst: "10.0.0.1", proto: "tcp", sport: 5555, dport: 22})

	send := func(mp *vport.MemPort, frame []byte) {
		t.Helper()
		if mp.Inject(0, [][]byte{frame}) != 1 {
			t.Fatal("inject failed")
		}
		quiesce(t, b, m1, m2)
	}
	send(m1, syn)
	if got := drainAll(m2); len(got) != 1 || string(got[0]) != string(syn) {
		t.Fatalf("p2 got %d frames after the first packet, want it", len(got))
	}
	if tracker.len() != 1 {
		t.Fatalf("%d connections committed, want 1", tracker.len())
	}
	send(m2, reply)
	if got := drainAll(m1); len(got) != 1 || string(got[0]) != string(reply) {
		t.Fatalf("p1 got %d frames after the reply, want it", len(got))
	}
	send(m1, syn) // established now
	if got := drainAll(m2); len(got) != 1 {
		t.Fatalf("p2 got %d frames after the second packet, want 1", len(got))
	}
	send(m2, other)
	if got := drainAll(m1); len(got) != 0 {
		t.Fatalf("p1 got %d frames of a connection p2 opened, want none", len(got))
	}

	checkAccounting(t, b)
	s1, s2 := p1.Stats(), p2.Stats()
	if s1.RxPackets != 2 || s1.Sent != 2 || s1.RxDropped() != 0 {
		t.Errorf("p1: rx %d sent %d drops %v", s1.RxPackets, s1.Sent, s1.Drops)
	}
	if s2.RxPackets != 2 || s2.Sent != 1 || s2.Drops[DropNoRule] != 1 {
		t.Errorf("p2: rx %d sent %d drops %v, want the new connection dropped as no-rule", s2.RxPackets, s2.Sent, s2.Drops)
	}
	var recircs, lookups, packets uint64
	for _, st := range b.PMDStats() {
		recircs += st.Recirculations
		lookups += st.EMCHits + st.MegaflowHit + st.Upcalls
		packets += st.Packets - st.Lost
	}
	if recircs != 4 || lookups != packets+recircs {
		t.Errorf("recirculations %d (want 4), lookups %d for %d packets", recircs, lookups, packets)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mfs, err := b.Megaflows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var dump []string
	for _, e := range mfs {
		dump = append(dump, e.String(time.Now()))
	}
	text := strings.Join(dump, "\n")
	for _, want := range []string{
		"recirc_id(0),in_port(1),eth_type(0x800),ipv4(frag=no), packets:2, bytes:",
		"actions:ct(commit,zone=5),recirc(0x",
		"ct_state(+new+trk),recirc_id(0x",
		"ct_state(-new+est+trk),recirc_id(0x",
		"actions:drop",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("dump-flows has no %q:\n%s", want, text)
		}
	}
}

// TestConntrackAccounting checks the drops ct and recirculation name: no
// tracker, a full tracker, and a pipeline that recirculates forever.
func TestConntrackAccounting(t *testing.T) {
	tests := []struct {
		name    string
		tracker flow.Conntrack
		flows   func(t testing.TB, b *Bridge)
		want    DropReason
	}{
		{"no tracker", nil, statefulFirewall, DropNoConntrack},
		{"tracker full", newCTTracker(0), statefulFirewall, DropConntrackFull},
		{"recirculation loop", newCTTracker(10), func(t testing.TB, b *Bridge) {
			addCTFlow(t, b, "ip,actions=drop", 0, 0, ctAction(flow.CT{Table: 1}))
			addCTFlow(t, b, "table=1,ip,actions=drop", 0, 0, ctAction(flow.CT{Table: 1}))
		}, DropRecircDepth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBridge(t, Config{Idle: IdleSleep, Conntrack: tt.tracker})
			m1, p1 := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
			m2, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
			tt.flows(t, b)
			frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2})
			if m1.Inject(0, [][]byte{frame, frame}) != 2 {
				t.Fatal("inject failed")
			}
			quiesce(t, b, m1, m2)
			if got := drainAll(m2); len(got) != 0 {
				t.Errorf("%d frames went out", len(got))
			}
			s := p1.Stats()
			if s.Drops[tt.want] != 2 || s.RxDropped() != 2 {
				t.Errorf("drops %v, want 2 %s", s.Drops, tt.want)
			}
			checkAccounting(t, b)
		})
	}
}

// TestConntrackTrace traces the stateful firewall's first packet: the
// first pass shows the ct and the recirculation, and the recirculated
// pass resumes at table 1 as Open vSwitch's ofproto/trace shows it,
// taking the connection as new.
func TestConntrackTrace(t *testing.T) {
	b := newTestBridge(t, Config{Idle: IdleSleep, Conntrack: newCTTracker(10)})
	addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	statefulFirewall(t, b)
	k, err := flow.ParseMicroflow("in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=40000,tp_dst=80")
	if err != nil {
		t.Fatal(err)
	}
	tr := b.Trace(k)
	if len(tr.Recirculations) != 1 {
		t.Fatalf("%d recirculated passes, want 1\n%s", len(tr.Recirculations), tr)
	}
	id := tr.Recirculations[0].RecircID
	hex := hexZero(uint64(id))
	if got, want := tr.DatapathActions(), "ct(commit,zone=5),recirc("+hex+")"; got != want {
		t.Errorf("first pass: datapath actions %q, want %q", got, want)
	}
	if got := tr.Recirculations[0].DatapathActions(); got != "2" {
		t.Errorf("second pass: datapath actions %q, want 2", got)
	}
	if rs := tr.DropReasons(); len(rs) != 0 {
		t.Errorf("drop reasons %v for a packet that goes out", rs)
	}
	text := tr.String()
	for _, want := range []string{
		"     -> A clone of the packet is forked to recirculate. The forked pipeline will be resumed at table 1.\n",
		"     -> Sets the packet to an untracked state, and clears all the conntrack fields.\n",
		"Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no\n",
		"Datapath actions: ct(commit,zone=5),recirc(" + hex + ")\n",
		"\n" + strings.Repeat("=", 79) + "\nrecirc(" + hex + ") - resume conntrack with default ct_state=trk|new (use --ct-next to customize)\n" + strings.Repeat("=", 79) + "\n\n",
		"Flow: recirc_id=" + hex + ",ct_state=new|trk,ct_zone=5,",
		"    thaw\n        Resuming from table 1\n",
		"Megaflow: recirc_id=" + hex + ",ct_state=+new+trk,eth,ip,in_port=1,nw_frag=no\n",
		"Datapath actions: 2\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("trace has no %q:\n%s", want, text)
		}
	}
}
