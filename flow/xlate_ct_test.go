package flow

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// ctAct returns a ct action with the given arguments (Table CTNoTable
// unless set).
func ctAct(c CT) Action {
	if c.Table == 0 {
		c.Table = CTNoTable
	}
	return Action{Type: ActCT, CT: &c}
}

// ctFlow parses a flow (ovs-ofctl syntax, its actions after the ones
// given) and puts acts before its actions; ctState and ctMask, when mask
// is not zero, are its ct_state match.
func ctFlow(t testing.TB, s string, ctState, ctMask uint8, acts ...Action) *Flow {
	t.Helper()
	f, err := ParseFlow(s, CmdAdd)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	f.Actions = append(append([]Action(nil), acts...), f.Actions...)
	f.Match.Key.CtState, f.Match.Mask.CtState = ctState&ctMask, ctMask
	return f
}

func ctTable(t testing.TB, flows ...*Flow) *Table {
	t.Helper()
	tbl := NewTable()
	for _, f := range flows {
		if err := tbl.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	return tbl
}

// recircOf returns the id of the recirc action in acts, 0 if none.
func recircOf(acts []Action) uint32 {
	for _, a := range acts {
		if a.Type == ActRecirc {
			return uint32(a.Value)
		}
	}
	return 0
}

func TestTranslateCT(t *testing.T) {
	reg13 := Subfield{Field: FieldReg0 + 13, Ofs: 0, NBits: 16}
	tests := []struct {
		name     string
		flows    []*Flow
		in       string
		want     string // FormatODPActions, with recirc ids written as recirc(ID)
		wantMask func(m *Key) string
	}{
		{name: "ct without a table, then output",
			flows: []*Flow{ctFlow(t, "ip,actions=output:2", 0, 0, ctAct(CT{Commit: true, Zone: 5}))},
			in:    "in_port=1,tcp", want: "ct(commit,zone=5),2"},
		{name: "zone from a register the pipeline loaded",
			flows: []*Flow{ctFlow(t, "ip,actions=output:2", 0, 0,
				Action{Type: ActLoad, Dst: reg13, Value: 0x1234},
				ctAct(CT{ZoneSrc: reg13}))},
			in: "in_port=1,tcp", want: "ct(zone=4660),2"},
		{name: "zone from a packet field unwildcards its bits",
			flows: []*Flow{ctFlow(t, "ip,actions=output:2", 0, 0,
				ctAct(CT{ZoneSrc: Subfield{Field: FieldNwSrc, Ofs: 0, NBits: 16}}))},
			in: "in_port=1,tcp,nw_src=10.0.1.7", want: "ct(zone=263),2",
			wantMask: func(m *Key) string {
				if m.NwSrc != 0xffff {
					return "nw_src mask not 0.0.255.255"
				}
				return ""
			}},
		{name: "exec sets the mark and label",
			flows: []*Flow{ctFlow(t, "ip,actions=output:2", 0, 0,
				Action{Type: ActLoad, Dst: Subfield{Field: FieldReg0, NBits: 32}, Value: 0xabcd},
				ctAct(CT{Commit: true, Exec: []Action{
					{Type: ActSetField, Field: FieldCtMark, Value: 0x1, Mask: 0x1},
					{Type: ActMove, Src: Subfield{Field: FieldReg0, NBits: 32}, Dst: Subfield{Field: FieldCtLabel, Ofs: 96, NBits: 32}},
				}}))},
			in:   "in_port=1,tcp",
			want: "ct(commit,mark=0x1/0x1,label=0xabcd000000000000000000000000/0xffffffff000000000000000000000000),2"},
		{name: "a header rewrite before ct is committed before it",
			flows: []*Flow{ctFlow(t, "ip,actions=output:2", 0, 0,
				Action{Type: ActSetField, Field: FieldNwDst, Value: 0x0a000009},
				ctAct(CT{Commit: true}))},
			in: "in_port=1,tcp,nw_dst=10.0.0.1", want: "set(ipv4(dst=10.0.0.9)),ct(commit),2"},
		{name: "ct with a table recirculates, and the actions after it go on untracked",
			flows: []*Flow{
				ctFlow(t, "ip,actions=resubmit(,2)", 0, 0, ctAct(CT{Commit: true, Table: 1})),
				ctFlow(t, "table=2,priority=10,actions=output:8", CtStateTracked, CtStateTracked),
				ctFlow(t, "table=2,priority=5,actions=output:9", 0, 0),
			},
			in: "in_port=1,tcp", want: "ct(commit),recirc(ID),9",
			wantMask: func(m *Key) string {
				if m.CtState != CtStateTracked {
					return "ct_state not consulted for trk"
				}
				return ""
			}},
		{name: "ct_clear on an untracked packet emits nothing",
			flows: []*Flow{ctFlow(t, "ip,actions=output:2", 0, 0, Action{Type: ActCTClear})},
			in:    "in_port=1,tcp", want: "2"},
		{name: "ct_state before any ct is zero",
			flows: []*Flow{
				ctFlow(t, "priority=10,actions=output:2", CtStateTracked, CtStateTracked),
				ctFlow(t, "priority=5,actions=output:3", 0, CtStateTracked),
			},
			in: "in_port=1,tcp", want: "3",
			wantMask: func(m *Key) string {
				if m.CtState != CtStateTracked {
					return "ct_state's trk bit not consulted"
				}
				return ""
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := ctTable(t, tt.flows...)
			k := microflow(t, tt.in)
			tr := tbl.Snapshot().Translate(&k, false)
			if tr.Verdict != VerdictOK {
				t.Fatalf("verdict %v", tr.Verdict)
			}
			want := tt.want
			if id := recircOf(tr.Actions); id != 0 {
				want = replaceID(want, id)
			}
			if got := FormatDatapathActions(tr.Actions, &k, nil); got != want {
				t.Errorf("actions %q, want %q", got, want)
			}
			if tr.Mask.RecircID != ^uint32(0) {
				t.Errorf("recirc_id mask %#x, want exact", tr.Mask.RecircID)
			}
			if tt.wantMask != nil {
				if msg := tt.wantMask(&tr.Mask); msg != "" {
					t.Error(msg)
				}
			} else if tr.Mask.CtState != 0 {
				t.Errorf("ct_state in the mask (%#x), though nothing consulted it", tr.Mask.CtState)
			}
			checkSoundCT(t, tbl.Snapshot(), &k, tr, rand.New(rand.NewPCG(3, 4)), 100)
		})
	}
}

// checkSoundCT is checkSound for translations with ct actions, whose
// resolved arguments are new values each time: it compares the actions
// as the datapath prints them. The random keys get k's recirculation id
// and ct fields, as every packet of its megaflow has them.
func checkSoundCT(t *testing.T, s *TableSnapshot, k *Key, tr *Translation, rng *rand.Rand, n int) {
	t.Helper()
	want := FormatODPActions(tr.Actions)
	for range n {
		other := randomKey(rng)
		other.RecircID = k.RecircID
		var ct ctSnapshot
		ct.save(k)
		ct.restore(&other)
		q, ok := agreeLike(k, &other, &tr.Mask)
		if !ok {
			continue
		}
		got := s.Translate(&q, false)
		if g := FormatODPActions(got.Actions); g != want || got.Verdict != tr.Verdict {
			t.Fatalf("unsound megaflow: %s gets %s (%v), but %s in the same megaflow gets %s (%v)",
				FormatMatch(&Match{Key: *k, Mask: fullMask()}, DefaultPriority), want, tr.Verdict,
				FormatMatch(&Match{Key: q, Mask: fullMask()}, DefaultPriority), g, got.Verdict)
		}
	}
}

func replaceID(s string, id uint32) string {
	const tag = "recirc(ID)"
	for i := 0; i+len(tag) <= len(s); i++ {
		if s[i:i+len(tag)] == tag {
			return s[:i] + "recirc(" + hexZero(uint64(id)) + ")" + s[i+len(tag):]
		}
	}
	return s
}

// TestTranslateCTRecirculation follows a packet through ct(table=1): the
// first pass freezes the pipeline's state under an id, the second pass
// (RecircID set, ct fields as the tracker left them) thaws it and goes on
// at table 1, where its registers, stack and in_port are as they were.
func TestTranslateCTRecirculation(t *testing.T) {
	reg0 := Subfield{Field: FieldReg0, NBits: 32}
	reg1 := Subfield{Field: FieldReg0 + 1, NBits: 32}
	tbl := ctTable(t,
		ctFlow(t, "in_port=1,ip,actions=drop", 0, 0,
			Action{Type: ActLoad, Dst: reg0, Value: 7},
			Action{Type: ActLoad, Dst: reg1, Value: 9},
			Action{Type: ActPush, Src: reg1},
			ctAct(CT{Commit: true, Zone: 3, Table: 1})),
		ctFlow(t, "in_port=2,ip,actions=drop", 0, 0,
			Action{Type: ActLoad, Dst: reg0, Value: 8},
			ctAct(CT{Zone: 3, Table: 1})),
		ctFlow(t, "table=1,priority=10,reg0=7,actions=pop:NXM_NX_REG2[],resubmit(,2)", CtStateTracked|CtStateNew, CtStateTracked|CtStateNew),
		ctFlow(t, "table=1,priority=5,actions=output:5", 0, 0),
		ctFlow(t, "table=2,reg2=9,actions=resubmit(,3)", 0, 0, Action{Type: ActCTClear}),
		ctFlow(t, "table=3,priority=10,actions=output:3", 0, CtStateTracked),
		ctFlow(t, "table=3,priority=5,actions=output:4", 0, 0),
	)
	s := tbl.Snapshot()
	k := microflow(t, "in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1000,tp_dst=80")
	tr := s.Translate(&k, false)
	id := recircOf(tr.Actions)
	if id == 0 {
		t.Fatalf("no recirc in %s", FormatODPActions(tr.Actions))
	}
	if got, want := FormatODPActions(tr.Actions), "ct(commit,zone=3),recirc("+hexZero(uint64(id))+")"; got != want {
		t.Errorf("first pass %q, want %q", got, want)
	}

	t.Run("same state, same id", func(t *testing.T) {
		k2 := microflow(t, "in_port=1,udp,nw_src=10.9.9.9")
		if got := recircOf(s.Translate(&k2, false).Actions); got != id {
			t.Errorf("id %#x for the same frozen state, want %#x", got, id)
		}
		k3 := microflow(t, "in_port=2,tcp")
		if got := recircOf(s.Translate(&k3, false).Actions); got == id || got == 0 {
			t.Errorf("id %#x for another frozen state (first %#x)", got, id)
		}
	})

	t.Run("the second pass resumes at table 1", func(t *testing.T) {
		k2 := k
		k2.RecircID = id
		k2.CtState = CtStateTracked | CtStateNew
		k2.CtZone = 3
		tr2 := s.Translate(&k2, true)
		if tr2.Verdict != VerdictOK {
			t.Fatalf("verdict %v", tr2.Verdict)
		}
		// ct_clear runs on a tracked packet: the datapath clears it,
		// and table 3's ct_state=-trk then matches.
		if got := FormatODPActions(tr2.Actions); got != "ct_clear,3" {
			t.Errorf("second pass %q, want ct_clear,3", got)
		}
		if tr2.Final.Regs[0] != 7 || tr2.Final.Regs[2] != 9 {
			t.Errorf("registers after the thaw: reg0 %d reg2 %d, want 7 and 9", tr2.Final.Regs[0], tr2.Final.Regs[2])
		}
		if tr2.Mask.RecircID != ^uint32(0) || tr2.Mask.CtState&(CtStateTracked|CtStateNew) != CtStateTracked|CtStateNew {
			t.Errorf("mask recirc_id %#x ct_state %#x", tr2.Mask.RecircID, tr2.Mask.CtState)
		}
		if tr2.Mask.Regs != ([NumRegs]uint32{}) {
			t.Error("registers in the second pass's mask")
		}
		var b strings.Builder
		FormatTrace(&b, tr2.Trace)
		if got := b.String(); !strings.Contains(got, "thaw\n") || !strings.Contains(got, "Resuming from table 1") {
			t.Errorf("trace has no thaw step:\n%s", got)
		}
		checkSoundCT(t, s, &k2, tr2, rand.New(rand.NewPCG(5, 6)), 100)
	})

	t.Run("a pass that is not new takes the other rule", func(t *testing.T) {
		k2 := k
		k2.RecircID = id
		k2.CtState = CtStateTracked | CtStateEst
		if got := FormatODPActions(s.Translate(&k2, false).Actions); got != "5" {
			t.Errorf("established: %q, want 5", got)
		}
	})

	t.Run("an unknown id drops", func(t *testing.T) {
		k2 := k
		k2.RecircID = 0xdead
		tr2 := s.Translate(&k2, true)
		if tr2.Verdict != VerdictNoRecircContext || len(tr2.Actions) != 0 {
			t.Errorf("verdict %v, actions %s; want no-recirc-context and none", tr2.Verdict, FormatODPActions(tr2.Actions))
		}
		if !tr2.Verdict.Failed() {
			t.Error("an unknown recirculation id is not a translation failure")
		}
	})
}

// TestRecircsExpire checks that a frozen state lives while a megaflow
// holds it, or something used it within RecircIdle, and goes after; its
// id is not given to another state.
func TestRecircsExpire(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRecircs(func() time.Time { return now })
	a := r.alloc(&frozenState{table: 1, regs: [NumRegs]uint32{1}})
	b := r.alloc(&frozenState{table: 1, regs: [NumRegs]uint32{2}})
	c := r.alloc(&frozenState{table: 1, regs: [NumRegs]uint32{3}})
	if a.id == b.id || r.Len() != 3 {
		t.Fatalf("ids %d %d, %d states", a.id, b.id, r.Len())
	}
	if again := r.alloc(&frozenState{table: 1, regs: [NumRegs]uint32{1}}); again != a {
		t.Fatal("the same state got another node")
	}
	// A megaflow in a classifier holds a.
	mfs := NewMegaflows()
	k := Key{InPort: 1}
	mf := mfs.Insert(&k, &Translation{Mask: Key{InPort: ^uint32(0)}, recircs: []*recircNode{a}}, 1)
	// c is used (a packet took a megaflow that recirculates to it) just
	// before the sweep.
	now = now.Add(RecircIdle + time.Second)
	used := &Megaflow{recircs: []*recircNode{c}}
	used.Account(1, 60, now.Add(-time.Second).UnixNano())
	used.Credit()
	if n := r.Expire(now); n != 1 {
		t.Fatalf("expired %d, want 1 (b, which nothing holds or used)", n)
	}
	for _, tt := range []struct {
		n    *recircNode
		want bool
	}{{a, true}, {b, false}, {c, true}} {
		if _, ok := r.Table(tt.n.id); ok != tt.want {
			t.Errorf("state %d kept %v, want %v", tt.n.id, ok, tt.want)
		}
	}
	// Once its megaflow goes, a expires too.
	mfs.Remove(mf)
	now = now.Add(RecircIdle + time.Second)
	r.Expire(now)
	if _, ok := r.Table(a.id); ok {
		t.Error("a state no megaflow holds any more did not expire")
	}
	d := r.alloc(&frozenState{table: 1, regs: [NumRegs]uint32{2}})
	if d.id == b.id || d.id == a.id {
		t.Errorf("id %d given again after it expired", d.id)
	}
}

// TestCacheRecirculatedKeys checks the caches with recirculated keys: a
// key that comes back (RecircID set, ct fields set) never takes the
// megaflow or exact-match entry of the arriving key it was.
func TestCacheRecirculatedKeys(t *testing.T) {
	tbl := ctTable(t,
		ctFlow(t, "ip,actions=drop", 0, 0, ctAct(CT{Commit: true, Table: 1})),
		ctFlow(t, "table=1,priority=10,actions=output:2", CtStateTracked|CtStateNew, CtStateTracked|CtStateNew),
		ctFlow(t, "table=1,priority=5,actions=output:3", 0, 0),
	)
	c, err := NewCache(tbl, 64, 1)
	if err != nil {
		t.Fatal(err)
	}
	k := microflow(t, "in_port=1,tcp,nw_src=10.0.0.1")
	mf0, _ := c.Lookup(&k)
	id := recircOf(mf0.Actions)
	if id == 0 {
		t.Fatalf("first pass: %s", FormatODPActions(mf0.Actions))
	}
	k1 := k
	k1.RecircID = id
	k1.CtState = CtStateTracked | CtStateNew
	mf1, src := c.Lookup(&k1)
	if src != SourceUpcall || mf1 == mf0 {
		t.Fatalf("recirculated key answered by %v", src)
	}
	if got := FormatODPActions(mf1.Actions); got != "2" {
		t.Errorf("second pass %q, want 2", got)
	}
	if got, want := FormatODPMatch(new(mf1.Match()), nil), "ct_state(+new+trk),recirc_id("+hexZero(uint64(id))+"),in_port(1),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(frag=no)"; got != want {
		t.Errorf("dump-flows match %q, want %q", got, want)
	}
	if got := FormatODPMatch(new(mf0.Match()), nil); got != "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(frag=no)" {
		t.Errorf("first pass match %q", got)
	}
	// Both come from the exact-match cache now, each its own.
	for range 2 {
		if mf, src := c.Lookup(&k); mf != mf0 || src != SourceEMC {
			t.Errorf("arriving key: %v, same megaflow %v", src, mf == mf0)
		}
		if mf, src := c.Lookup(&k1); mf != mf1 || src != SourceEMC {
			t.Errorf("recirculated key: %v, same megaflow %v", src, mf == mf1)
		}
	}
	// An established connection's second pass is another megaflow.
	k2 := k1
	k2.CtState = CtStateTracked | CtStateEst
	if mf, _ := c.Lookup(&k2); mf == mf1 || FormatODPActions(mf.Actions) != "3" {
		t.Errorf("established second pass: %s", FormatODPActions(mf.Actions))
	}
}

func TestFormatODPCT(t *testing.T) {
	var label, lmask [16]byte
	label[15], lmask[15] = 1, 1
	tests := []struct {
		in   CT
		want string
	}{
		{CT{}, "ct"},
		{CT{Commit: true, Zone: 5}, "ct(commit,zone=5)"},
		{CT{Commit: true, Force: true}, "ct(force_commit)"},
		{CT{Zone: 4, NAT: &NAT{}}, "ct(zone=4,nat)"},
		{CT{Commit: true, SetMark: true, Mark: 0, MarkMask: 1, SetLabel: true, Label: label, LabelMask: lmask}, "ct(commit,mark=0/0x1,label=0x1/0x1)"},
		{CT{Commit: true, Alg: 21}, "ct(commit,helper=ftp)"},
	}
	for _, tt := range tests {
		if got := FormatODPCT(&tt.in); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.in, got, tt.want)
		}
	}
	acts := []Action{ctAct(CT{Commit: true, Zone: 5}), {Type: ActRecirc, Value: 2}, {Type: ActCTClear}, {Type: ActOutput, Port: 3}}
	if got := FormatODPActions(acts); got != "ct(commit,zone=5),recirc(0x2),ct_clear,3" {
		t.Errorf("actions %q", got)
	}
}

func TestFormatODPMatchCT(t *testing.T) {
	var m Match
	m.Key.RecircID, m.Mask.RecircID = 0x1f, ^uint32(0)
	m.Key.InPort, m.Mask.InPort = 3, ^uint32(0)
	m.Key.CtState, m.Mask.CtState = CtStateTracked|CtStateEst|CtStateRpl, CtStateTracked|CtStateEst|CtStateRpl|CtStateInv
	m.Key.CtZone, m.Mask.CtZone = 5, 0xffff
	m.Key.CtMark, m.Mask.CtMark = 0, 3
	m.Key.CtLabel[15], m.Mask.CtLabel[15] = 1, 1
	m.Key.CtNwSrc, m.Mask.CtNwSrc = 0x0a000001, ^uint32(0)
	m.Key.CtNwProto, m.Mask.CtNwProto = IPProtoTCP, 0xff
	m.Key.CtTpDst, m.Mask.CtTpDst = 80, 0xffff
	want := "ct_state(+est+rpl-inv+trk),ct_zone(0x5),ct_mark(0/0x3),ct_label(0x1/0x1),ct_tuple4(src=10.0.0.1,proto=6,tp_dst=80),recirc_id(0x1f),in_port(3),packet_type(ns=0,id=0)"
	if got := FormatODPMatch(&m, nil); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got, want := FormatCTMatch(&m.Key, &m.Mask, false), "ct_state=+est+rpl-inv+trk,ct_zone=5,ct_mark=0/0x3,ct_label=0x1/0x1,ct_nw_src=10.0.0.1,ct_nw_proto=6,ct_tp_dst=80"; got != want {
		t.Errorf("match: got %s, want %s", got, want)
	}
	if got, want := FormatCTMatch(&m.Key, &m.Mask, true), "ct_state=est|rpl|trk,ct_zone=5,ct_mark=0/0x3,ct_label=0x1/0x1,ct_nw_src=10.0.0.1,ct_nw_proto=6,ct_tp_dst=80"; got != want {
		t.Errorf("flow: got %s, want %s", got, want)
	}
}

// TestCacheRecircRevalidate changes the table under cached ct megaflows:
// both passes revalidate, the recirculation id stays, and the frozen state
// is held once per megaflow that recirculates to it or resumes from it.
func TestCacheRecircRevalidate(t *testing.T) {
	tbl := ctTable(t,
		ctFlow(t, "ip,actions=drop", 0, 0, ctAct(CT{Commit: true, Table: 1})),
		ctFlow(t, "table=1,priority=10,actions=output:2", CtStateTracked|CtStateNew, CtStateTracked|CtStateNew),
	)
	c, err := NewCache(tbl, 64, 1)
	if err != nil {
		t.Fatal(err)
	}
	k := microflow(t, "in_port=1,udp,nw_src=10.0.0.1")
	mf0, _ := c.Lookup(&k)
	id := recircOf(mf0.Actions)
	k1 := k
	k1.RecircID, k1.CtState = id, CtStateTracked|CtStateNew
	c.Lookup(&k1)
	n := mf0.recircs[0]
	if got := n.refs.Load(); got != 2 {
		t.Fatalf("state held %d times, want 2 (both passes' megaflows)", got)
	}

	// A new rule in table 1 for another port: both megaflows stay right.
	if err := tbl.Add(ctFlow(t, "table=1,priority=20,in_port=9,actions=output:3", 0, 0)); err != nil {
		t.Fatal(err)
	}
	if mf, src := c.Lookup(&k); src != SourceMegaflow || recircOf(mf.Actions) != id {
		t.Errorf("first pass after the change: %v, %s", src, FormatODPActions(mf.Actions))
	}
	if mf, src := c.Lookup(&k1); src != SourceMegaflow || FormatODPActions(mf.Actions) != "2" {
		t.Errorf("second pass after the change: %v, %s", src, FormatODPActions(mf.Actions))
	}
	if got := n.refs.Load(); got != 2 {
		t.Errorf("after revalidation the state is held %d times, want 2", got)
	}
	if st := c.Stats(); st.Revalidated != 2 {
		t.Errorf("%d megaflows revalidated, want 2", st.Revalidated)
	}
	c.Flush()
	if got := n.refs.Load(); got != 0 {
		t.Errorf("after a flush the state is held %d times, want 0", got)
	}
}
