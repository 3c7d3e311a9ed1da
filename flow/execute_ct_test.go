package flow

import (
	"testing"
)

// testTuple is a connection's key in testTracker: zone and the IPv4
// 5-tuple of its original direction.
type testTuple struct {
	zone       uint16
	src, dst   uint32
	proto      uint8
	sport, dpt uint16
}

// testConn is a committed connection of testTracker.
type testConn struct {
	mark  uint32
	label [16]byte
}

// testTracker is a small connection tracker for tests: IPv4 TCP and UDP
// connections by 5-tuple and zone, new until committed, established in
// both directions after, reply in the other; anything else is invalid. It
// holds at most max connections (then VerdictCTFull).
type testTracker struct {
	conns map[testTuple]*testConn
	max   int
	calls int
}

var _ Conntrack = (*testTracker)(nil)

func newTestTracker(max int) *testTracker {
	return &testTracker{conns: make(map[testTuple]*testConn), max: max}
}

func (c *testTracker) Track(_ []byte, k *Key, _ *Offsets, ct *CT, _ int64) Verdict {
	c.calls++
	k.CtZone = ct.Zone
	if k.DlType != EthTypeIPv4 || (k.NwProto != IPProtoTCP && k.NwProto != IPProtoUDP) {
		k.CtState = CtStateTracked | CtStateInv
		return VerdictOK
	}
	fwd := testTuple{ct.Zone, k.NwSrc, k.NwDst, k.NwProto, k.TpSrc, k.TpDst}
	rev := testTuple{ct.Zone, k.NwDst, k.NwSrc, k.NwProto, k.TpDst, k.TpSrc}
	orig, state := fwd, uint8(CtStateTracked|CtStateEst)
	conn := c.conns[fwd]
	if conn == nil {
		if conn = c.conns[rev]; conn != nil {
			orig, state = rev, CtStateTracked|CtStateEst|CtStateRpl
		}
	}
	if conn == nil {
		state = CtStateTracked | CtStateNew
		if ct.Commit {
			if len(c.conns) >= c.max {
				return VerdictCTFull
			}
			conn = &testConn{}
			c.conns[fwd] = conn
		}
	}
	if conn != nil && ct.Commit {
		if ct.SetMark {
			conn.mark = conn.mark&^ct.MarkMask | ct.Mark&ct.MarkMask
		}
		if ct.SetLabel {
			for i := range conn.label {
				conn.label[i] = conn.label[i]&^ct.LabelMask[i] | ct.Label[i]&ct.LabelMask[i]
			}
		}
	}
	k.CtState = state
	if conn != nil {
		k.CtMark, k.CtLabel = conn.mark, conn.label
	}
	k.CtNwSrc, k.CtNwDst, k.CtNwProto, k.CtTpSrc, k.CtTpDst = orig.src, orig.dst, orig.proto, orig.sport, orig.dpt
	return VerdictOK
}

// ctSink is an Outputter and Recirculator for Execute tests: it runs ct
// with its tracker and records outputs and recirculated keys.
type ctSink struct {
	tracker Conntrack
	outputs []uint32
	recircs []Key
	record  bool // record the recirculated keys
}

func (s *ctSink) Output(port uint32, _ []byte) { s.outputs = append(s.outputs, port) }

func (s *ctSink) Conntrack(frame []byte, k *Key, off *Offsets, ct *CT, _ []Action) Verdict {
	if s.tracker == nil {
		return VerdictNoConntrack
	}
	return s.tracker.Track(frame, k, off, ct, 0)
}

func (s *ctSink) Recirculate(_ []byte, k *Key, _ *Offsets) {
	if s.record {
		s.recircs = append(s.recircs, *k)
	}
}

func TestExecuteCT(t *testing.T) {
	in := ipv4TCP().build(t)
	tr := newTestTracker(10)
	commit := ctAct(CT{Commit: true, Zone: 5, SetMark: true, Mark: 0x3, MarkMask: 0xff})
	acts := []Action{commit, {Type: ActRecirc, Value: 0x11}, output(2)}

	buf := withSpare(in, 8)
	k, off := extracted(buf, execInPort)
	sink := &ctSink{tracker: tr, record: true}
	if _, v := Execute(buf, &k, &off, acts, sink); v != VerdictOK {
		t.Fatalf("verdict %v", v)
	}
	if len(sink.recircs) != 1 {
		t.Fatalf("%d recirculations, want 1", len(sink.recircs))
	}
	r := sink.recircs[0]
	if r.RecircID != 0x11 || r.CtState != CtStateTracked|CtStateNew || r.CtZone != 5 || r.CtMark != 0x3 {
		t.Errorf("recirculated key: recirc_id %#x ct_state %#x zone %d mark %#x", r.RecircID, r.CtState, r.CtZone, r.CtMark)
	}
	if r.CtNwSrc != k.NwSrc || r.CtTpDst != k.TpDst || r.CtNwProto != IPProtoTCP {
		t.Error("the original-direction tuple is not the packet's")
	}
	if k.RecircID != 0 {
		t.Errorf("the packet itself goes on with recirc_id %#x, want 0", k.RecircID)
	}
	if len(sink.outputs) != 1 || sink.outputs[0] != 2 {
		t.Errorf("outputs %v, want [2]: the actions after the recirculation run", sink.outputs)
	}

	// The same packet again is established; its reply is too, in the
	// reply direction.
	k, off = extracted(withSpare(in, 8), execInPort)
	Execute(buf, &k, &off, []Action{ctAct(CT{Zone: 5})}, sink)
	if k.CtState != CtStateTracked|CtStateEst || k.CtMark != 0x3 {
		t.Errorf("second packet: ct_state %#x mark %#x", k.CtState, k.CtMark)
	}
	rk := k
	rk.NwSrc, rk.NwDst, rk.TpSrc, rk.TpDst = k.NwDst, k.NwSrc, k.TpDst, k.TpSrc
	Execute(buf, &rk, &off, []Action{ctAct(CT{Zone: 5})}, sink)
	if rk.CtState != CtStateTracked|CtStateEst|CtStateRpl {
		t.Errorf("reply: ct_state %#x, want trk|est|rpl", rk.CtState)
	}
	// Another zone knows nothing of it.
	Execute(buf, &rk, &off, []Action{ctAct(CT{Zone: 6})}, sink)
	if rk.CtState != CtStateTracked|CtStateNew {
		t.Errorf("other zone: ct_state %#x, want trk|new", rk.CtState)
	}

	// ct_clear zeroes what ct set.
	Execute(buf, &k, &off, []Action{{Type: ActCTClear}}, sink)
	var ct ctSnapshot
	ct.save(&k)
	if ct != (ctSnapshot{}) {
		t.Errorf("ct fields after ct_clear: %+v", ct)
	}
}

func TestExecuteCTVerdicts(t *testing.T) {
	in := ipv4UDP().build(t)
	tests := []struct {
		name string
		out  Outputter
		acts []Action
		want Verdict
	}{
		{"no tracker", &ctSink{}, []Action{ctAct(CT{Commit: true}), output(2)}, VerdictNoConntrack},
		{"an outputter that runs no ct", &discard{}, []Action{ctAct(CT{}), output(2)}, VerdictNoConntrack},
		{"nil outputter", nil, []Action{ctAct(CT{})}, VerdictNoConntrack},
		{"a recirc nothing takes", &discard{}, []Action{{Type: ActRecirc, Value: 1}}, VerdictNoRecircContext},
		{"tracker full", &ctSink{tracker: newTestTracker(0)}, []Action{ctAct(CT{Commit: true}), output(2)}, VerdictCTFull},
		{"a full tracker still tracks without commit", &ctSink{tracker: newTestTracker(0)}, []Action{ctAct(CT{}), output(2)}, VerdictOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := withSpare(in, 8)
			k, off := extracted(buf, execInPort)
			if _, v := Execute(buf, &k, &off, tt.acts, tt.out); v != tt.want {
				t.Errorf("verdict %v, want %v", v, tt.want)
			}
		})
	}
}

// TestExecuteCTAllocs checks that ct, ct_clear and recirc add no
// allocation to Execute (the tracker's own hit path does not allocate
// either).
func TestExecuteCTAllocs(t *testing.T) {
	in := ipv4TCP().build(t)
	buf := withSpare(in, 8)
	k, off := extracted(buf, execInPort)
	tr := newTestTracker(10)
	sink := &ctSink{tracker: tr}
	acts := []Action{ctAct(CT{Commit: true, Zone: 1}), {Type: ActRecirc, Value: 3}, {Type: ActCTClear}, output(2)}
	Execute(buf, &k, &off, acts, sink) // commits the connection
	allocs := testing.AllocsPerRun(100, func() {
		sink.outputs = sink.outputs[:0]
		if _, v := Execute(buf, &k, &off, acts, sink); v != VerdictOK {
			t.Fatalf("verdict %v", v)
		}
	})
	if allocs != 0 {
		t.Errorf("Execute with ct allocates %v times per packet, want 0", allocs)
	}
}

// TestReextractKeepsCT checks that an action that extracts the key again
// (a VLAN push beyond the two tags the key holds) keeps the recirculation
// id and ct fields, which are not in the frame.
func TestReextractKeepsCT(t *testing.T) {
	in := ipv4TCP().build(t)
	buf := withSpare(in, 16)
	k, off := extracted(buf, execInPort)
	k.RecircID, k.CtState, k.CtZone, k.CtMark = 4, CtStateTracked|CtStateEst, 9, 0x77
	p := packet{b: buf, k: &k, off: &off}
	p.reextract()
	if k.RecircID != 4 || k.CtState != CtStateTracked|CtStateEst || k.CtZone != 9 || k.CtMark != 0x77 {
		t.Errorf("after re-extraction: recirc_id %d ct_state %#x zone %d mark %#x", k.RecircID, k.CtState, k.CtZone, k.CtMark)
	}
}
