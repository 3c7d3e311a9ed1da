package datapath

import (
	"context"
	"os"
	"regexp"
	"strconv"
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
// replies come back; p2's new connections are dropped. (The same flows,
// with ct(...) and ct_state written, gave testdata/ovs-trace-ct.txt.)
func statefulFirewall(t testing.TB, b *Bridge) {
	const zone = 5
	addCTFlow(t, b, "in_port=1,ip,actions=drop", 0, 0, ctAction(flow.CT{Commit: true, Zone: zone, Table: 1}))
	addCTFlow(t, b, "in_port=2,ip,actions=drop", 0, 0, ctAction(flow.CT{Zone: zone, Table: 1}))
	addCTFlow(t, b, "table=1,priority=10,in_port=1,actions=output:2", flow.CtStateTracked|flow.CtStateNew, flow.CtStateTracked|flow.CtStateNew)
	addCTFlow(t, b, "table=1,priority=20,in_port=1,actions=output:2", flow.CtStateTracked|flow.CtStateEst, flow.CtStateTracked|flow.CtStateEst)
	addCTFlow(t, b, "table=1,priority=20,in_port=2,actions=output:1", flow.CtStateTracked|flow.CtStateEst, flow.CtStateTracked|flow.CtStateEst)
	addCTFlow(t, b, "table=1,priority=10,in_port=2,actions=drop", flow.CtStateTracked|flow.CtStateNew, flow.CtStateTracked|flow.CtStateNew)
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
		recircs += st.Recircs
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
		"recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(frag=no), packets:2, bytes:",
		"actions:ct(commit,zone=5),recirc(0x",
		"ct_state(+new-est+trk),recirc_id(0x",
		"ct_state(+est+trk),recirc_id(0x",
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
			if tt.tracker != nil && tt.want == DropConntrackFull {
				return // a trace runs no tracker: it takes the connection as new
			}
			// The trace says the same.
			k, err := flow.ParseMicroflow("in_port=1,udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1,tp_dst=2")
			if err != nil {
				t.Fatal(err)
			}
			tr := b.Trace(k)
			if rs := tr.DropReasons(); len(rs) != 1 || rs[0] != tt.want {
				t.Errorf("trace drop reasons %v, want %s\n%s", rs, tt.want, tr)
			}
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
		"Megaflow: recirc_id=" + hex + ",ct_state=+new-est+trk,eth,ip,in_port=1,nw_frag=no\n",
		"Datapath actions: 2\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("trace has no %q:\n%s", want, text)
		}
	}
}

// TestConntrackTraceThawedState traces a pipeline that loads a register
// before ct(table=1) and clears the connection state after it: the
// recirculated pass's flow carries the register, as the translation that
// thaws it sees it, and its datapath actions clear the state.
func TestConntrackTraceThawedState(t *testing.T) {
	b := newTestBridge(t, Config{Idle: IdleSleep, Conntrack: newCTTracker(10)})
	addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	addCTFlow(t, b, "in_port=1,ip,actions=drop", 0, 0,
		flow.Action{Type: flow.ActLoad, Dst: flow.Subfield{Field: flow.FieldReg0, NBits: 32}, Value: 5},
		ctAction(flow.CT{Commit: true, Table: 1}))
	addCTFlow(t, b, "table=1,reg0=5,actions=output:2", flow.CtStateTracked, flow.CtStateTracked,
		flow.Action{Type: flow.ActCTClear})
	k, err := flow.ParseMicroflow("in_port=1,udp,nw_src=10.0.0.1,nw_dst=10.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	tr := b.Trace(k)
	if len(tr.Recirculations) != 1 {
		t.Fatalf("%d recirculated passes, want 1\n%s", len(tr.Recirculations), tr)
	}
	r := tr.Recirculations[0]
	if got := r.DatapathActions(); got != "ct_clear,2" {
		t.Errorf("second pass: datapath actions %q, want ct_clear,2", got)
	}
	text := tr.String()
	if want := "Flow: recirc_id=" + hexZero(uint64(r.RecircID)) + ",ct_state=new|trk,eth,udp,reg0=0x5,in_port=1,"; !strings.Contains(text, want) {
		t.Errorf("trace has no %q:\n%s", want, text)
	}
}

// TestConntrackTraceMatchesOpenVSwitch traces ct pipelines and compares
// the text with what Open vSwitch 3.1's ofproto/trace printed for them
// (testdata/ovs-trace-ct.txt): both passes, the thaw, the megaflows with
// recirc_id and ct_state, and the datapath actions with ct and recirc.
// Recirculation ids are compared as ID (each switch numbers its own);
// lines the ct text syntax writes are marked there and skipped.
func TestConntrackTraceMatchesOpenVSwitch(t *testing.T) {
	data, err := os.ReadFile("testdata/ovs-trace-ct.txt")
	if err != nil {
		t.Fatal(err)
	}
	type tcase struct {
		name, trace string
		want        []string
	}
	var cases []tcase
	var cur *tcase
	in := false
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case in && l == "end":
			in = false
		case in:
			cur.want = append(cur.want, l)
		case strings.HasPrefix(l, "case: "):
			cases = append(cases, tcase{name: l[len("case: "):]})
			cur = &cases[len(cases)-1]
		case strings.HasPrefix(l, "trace: "):
			cur.trace = l[len("trace: "):]
			in = true
		}
	}
	if len(cases) != 3 {
		t.Fatalf("%d cases in testdata/ovs-trace-ct.txt", len(cases))
	}
	ids := regexp.MustCompile(`recirc\(0x[0-9a-f]+\)|recirc_id=0x[0-9a-f]+`)
	norm := func(s string) string {
		return ids.ReplaceAllStringFunc(s, func(m string) string {
			if strings.HasPrefix(m, "recirc(") {
				return "recirc(ID)"
			}
			return "recirc_id=ID"
		})
	}
	pipelines := []func(t testing.TB, b *Bridge){
		statefulFirewall,
		statefulFirewall,
		func(t testing.TB, b *Bridge) {
			reg0 := flow.Subfield{Field: flow.FieldReg0, NBits: 32}
			addCTFlow(t, b, "in_port=1,ip,actions=output:2", 0, 0,
				flow.Action{Type: flow.ActLoad, Dst: reg0, Value: 5},
				ctAction(flow.CT{Commit: true, Table: 1, Exec: []flow.Action{
					{Type: flow.ActLoad, Dst: flow.Subfield{Field: flow.FieldCtMark, NBits: 1}, Value: 1},
					{Type: flow.ActMove, Src: reg0, Dst: flow.Subfield{Field: flow.FieldCtLabel, Ofs: 96, NBits: 32}},
				}}))
			addCTFlow(t, b, "table=1,reg0=5,actions=output:2", flow.CtStateTracked, flow.CtStateTracked,
				flow.Action{Type: flow.ActCTClear})
		},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newTestBridge(t, Config{Idle: IdleSleep, Conntrack: newCTTracker(10)})
			addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
			addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
			pipelines[i](t, b)
			k, err := flow.ParseMicroflow(c.trace)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimRight(b.Trace(k).String(), "\n"), "\n") {
				if strings.HasPrefix(l, "Drop reason: ") || strings.HasPrefix(l, "     >> output to port ") {
					continue
				}
				got = append(got, l)
			}
			if len(got) != len(c.want) {
				t.Fatalf("%d lines, Open vSwitch %d\novsxdp:\n%s\nOpen vSwitch:\n%s", len(got), len(c.want), strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			for j, w := range c.want {
				if strings.HasPrefix(w, "?") {
					continue
				}
				if g := norm(got[j]); g != norm(w) {
					t.Errorf("line %d:\n ovsxdp:       %q\n Open vSwitch: %q", j+1, got[j], w)
				}
			}
		})
	}
}

// newCTPipelineBench is a pipelineBench, without frames yet, of a bridge
// with a tracker of conns connections that runs the stateful firewall's
// flows (statefulFirewall) from port 1 to port 2.
func newCTPipelineBench(b *testing.B, conns int) *pipelineBench {
	br, err := New(Config{Name: "bench", Conntrack: newCTTracker(conns)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	src, _ := addMemPort(b, br, vport.MemConfig{Name: "src", RecordRxQueue: true, RingSize: 64}, 1)
	dst, _ := addMemPort(b, br, vport.MemConfig{Name: "dst", TxQueues: 4, RingSize: 256}, 2)
	statefulFirewall(b, br)
	pb := &pipelineBench{b: br, src: src, dst: dst, drain: make([][]byte, vport.MaxBatch), sizes: make([]int, vport.MaxBatch)}
	for i := range pb.drain {
		pb.drain[i] = make([]byte, dst.FrameSize())
	}
	return pb
}

// BenchmarkPipelineCT is the whole packet path of the stateful firewall's
// established connections on one poll thread: each packet runs ct (the
// test tracker, a map behind a mutex), recirculates, and is looked up
// again, both passes exact-match hits. Compare with BenchmarkPipeline/emc,
// the same path without ct.
func BenchmarkPipelineCT(b *testing.B) {
	pb := newCTPipelineBench(b, 1<<20)
	for i := range 64 {
		pb.frames = append(pb.frames, buildFrame(b, frameSpec{src: "10.0.0." + strconv.Itoa(i+1), dst: "192.168.0.1", proto: "udp", sport: 1024, dport: 80}))
	}
	// Commit the connections and fill the caches before the clock runs.
	for range 4 {
		pb.pollOnce(pb.frames[:32])
		pb.pollOnce(pb.frames[32:])
	}
	pb.run(b)
	if n := pb.b.pmds[0].counters.recircs.Load(); n < uint64(b.N) {
		b.Fatalf("%d recirculations for %d packets", n, b.N)
	}
}

// BenchmarkPipelineCTManyConns is BenchmarkPipelineCT with 16,384
// connections, each packet of a batch another's, as a stateful firewall
// between many clients sees them: the recirculated passes miss the
// exact-match cache and take the megaflow their ct_state selects.
func BenchmarkPipelineCTManyConns(b *testing.B) {
	const conns = 16384
	pb := newCTPipelineBench(b, 2*conns)
	for i := range conns {
		pb.frames = append(pb.frames, buildFrame(b, frameSpec{src: "10.0." + strconv.Itoa(i>>8) + "." + strconv.Itoa(i&0xff), dst: "192.168.0.1", proto: "udp", sport: uint16(1024 + i%7), dport: 80}))
	}
	for i := 0; i < conns; i += vport.MaxBatch {
		pb.pollOnce(pb.frames[i : i+vport.MaxBatch])
	}
	pb.run(b)
	if n := pb.b.pmds[0].counters.recircs.Load(); n < uint64(b.N) {
		b.Fatalf("%d recirculations for %d packets", n, b.N)
	}
}

// TestPacketOutCT runs a packet out whose actions are ct(commit,table=1):
// its recirculated copy goes through table 1 (+trk+new) and out, and a
// recirculated output to IN_PORT is the packet out's in_port, as for its
// own outputs.
func TestPacketOutCT(t *testing.T) {
	b := newTestBridge(t, Config{Idle: IdleSleep, Conntrack: newCTTracker(10)})
	m1, _ := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	m2, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	addCTFlow(t, b, "table=1,udp,actions=output:2,IN_PORT", flow.CtStateTracked|flow.CtStateNew, flow.CtStateTracked|flow.CtStateNew)
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 7, dport: 9})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.PacketOut(ctx, frame, 1, []flow.Action{ctAction(flow.CT{Commit: true, Table: 1})}); err != nil {
		t.Fatal(err)
	}
	quiesce(t, b, m1, m2)
	if got := drainAll(m2); len(got) != 1 || string(got[0]) != string(frame) {
		t.Errorf("p2 got %d frames, want the packet out's", len(got))
	}
	if got := drainAll(m1); len(got) != 1 {
		t.Errorf("p1 (the packet out's in_port) got %d frames, want 1", len(got))
	}
}

// TestConntrackFork checks the actions after ct(table=1): the packet goes
// on with them untracked while its tracked copy recirculates, and both
// copies are accounted on the port that received it.
func TestConntrackFork(t *testing.T) {
	b := newTestBridge(t, Config{Idle: IdleSleep, Conntrack: newCTTracker(10)})
	m1, p1 := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	m2, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	m3, _ := addMemPort(t, b, vport.MemConfig{Name: "p3"}, 3)
	addCTFlow(t, b, "in_port=1,ip,actions=resubmit(,2)", 0, 0, ctAction(flow.CT{Commit: true, Table: 1}))
	addCTFlow(t, b, "table=1,actions=output:2", flow.CtStateTracked|flow.CtStateNew, flow.CtStateTracked|flow.CtStateNew)
	// After ct, the packet is untracked: table 2's -trk rule takes it.
	addCTFlow(t, b, "table=2,priority=10,actions=output:3", 0, flow.CtStateTracked)
	addCTFlow(t, b, "table=2,priority=5,actions=drop", 0, 0)
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 7, dport: 9})
	if m1.Inject(0, [][]byte{frame}) != 1 {
		t.Fatal("inject failed")
	}
	quiesce(t, b, m1, m2, m3)
	if n2, n3 := len(drainAll(m2)), len(drainAll(m3)); n2 != 1 || n3 != 1 {
		t.Errorf("p2 got %d frames, p3 %d; want 1 each", n2, n3)
	}
	s := p1.Stats()
	if s.RxPackets != 1 || s.Copies != 1 || s.Sent != 2 || s.RxDropped() != 0 {
		t.Errorf("p1: rx %d copies %d sent %d drops %v", s.RxPackets, s.Copies, s.Sent, s.Drops)
	}
	checkAccounting(t, b)
}

// TestRecircsOfABatch sends a full batch whose packets recirculate twice
// each (ct(table=1) and ct(table=2)), more copies than a batch holds back
// for its end: every copy runs, in the order the copies were made, and is
// accounted on the port that received its packet.
func TestRecircsOfABatch(t *testing.T) {
	b, err := New(Config{Name: "recircs", Conntrack: newCTTracker(1000)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	m1, p1 := addMemPort(t, b, vport.MemConfig{Name: "p1", RingSize: 64}, 1)
	m2, _ := addMemPort(t, b, vport.MemConfig{Name: "p2", RingSize: 64}, 2)
	addCTFlow(t, b, "in_port=1,ip,actions=drop", 0, 0, ctAction(flow.CT{Commit: true, Table: 1}), ctAction(flow.CT{Table: 2}))
	addCTFlow(t, b, "table=1,actions=output:2", flow.CtStateTracked, flow.CtStateTracked)
	addCTFlow(t, b, "table=2,actions=drop", flow.CtStateTracked, flow.CtStateTracked)
	var batch [][]byte
	for i := range vport.MaxBatch {
		batch = append(batch, buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: uint16(1000 + i), dport: 9}))
	}
	if n := m1.Inject(0, batch); n != len(batch) {
		t.Fatalf("injected %d of %d frames", n, len(batch))
	}
	p := b.pmds[0]
	p.rd.enter()
	p.poll(timeNow())
	p.rd.leave()
	got := drainAll(m2)
	if len(got) != len(batch) {
		t.Fatalf("p2 got %d frames, want %d", len(got), len(batch))
	}
	for i, f := range got {
		if string(f) != string(batch[i]) {
			t.Fatalf("p2's frame %d is not the batch's frame %d: the copies ran out of order", i, i)
		}
	}
	s := p1.Stats()
	if s.RxPackets != uint64(len(batch)) || s.Copies != uint64(len(batch)) || s.Sent != uint64(len(batch)) || s.RxDropped() != uint64(len(batch)) {
		t.Errorf("p1: rx %d copies %d sent %d drops %v", s.RxPackets, s.Copies, s.Sent, s.Drops)
	}
	if n := p.counters.recircs.Load(); n != 2*uint64(len(batch)) {
		t.Errorf("%d recirculations, want %d", n, 2*len(batch))
	}
	checkAccounting(t, b)
}
