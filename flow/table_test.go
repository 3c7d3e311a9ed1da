package flow

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// Helpers that build flows the way ovs-ofctl's syntax reads.

func out(ports ...uint32) []Action {
	as := make([]Action, len(ports))
	for i, p := range ports {
		as[i] = Action{Type: ActOutput, Port: p}
	}
	return as
}

type flowOpt func(*Flow)

func mkFlow(priority uint16, actions []Action, opts ...flowOpt) Flow {
	f := Flow{Priority: priority, Actions: actions}
	for _, o := range opts {
		o(&f)
	}
	return f
}

func inPort(p uint32) flowOpt {
	return func(f *Flow) { f.Match.Key.InPort, f.Match.Mask.InPort = p, ^uint32(0) }
}

func dlType(t uint16) flowOpt {
	return func(f *Flow) { f.Match.Key.DlType, f.Match.Mask.DlType = t, 0xffff }
}

func nwSrc(a uint32, plen int) flowOpt {
	return func(f *Flow) { f.Match.Key.NwSrc, f.Match.Mask.NwSrc = a, prefix32(plen) }
}

func nwDst(a uint32, plen int) flowOpt {
	return func(f *Flow) { f.Match.Key.NwDst, f.Match.Mask.NwDst = a, prefix32(plen) }
}

func tcpFlagsOpt(v, mask uint16) flowOpt {
	return func(f *Flow) { f.Match.Key.TcpFlags, f.Match.Mask.TcpFlags = v, mask }
}

func nwProto(p uint8) flowOpt {
	return func(f *Flow) { f.Match.Key.NwProto, f.Match.Mask.NwProto = p, 0xff }
}

func tpDst(p, mask uint16) flowOpt {
	return func(f *Flow) { f.Match.Key.TpDst, f.Match.Mask.TpDst = p, mask }
}

func cookie(c, mask uint64) flowOpt {
	return func(f *Flow) { f.Cookie, f.CookieMask = c, mask }
}

func outPort(p uint32) flowOpt {
	return func(f *Flow) { f.OutPort = p }
}

// ruleSummary is what the semantics tests compare: a rule's priority,
// actions and cookie, in dump order.
type ruleSummary struct {
	priority uint16
	actions  []Action
	cookie   uint64
}

func summarize(rs []*Rule) []ruleSummary {
	out := make([]ruleSummary, len(rs))
	for i, r := range rs {
		out[i] = ruleSummary{r.Priority, r.Actions, r.Cookie}
	}
	return out
}

func equalSummaries(a, b []ruleSummary) bool {
	return slices.EqualFunc(a, b, func(x, y ruleSummary) bool {
		return x.priority == y.priority && x.cookie == y.cookie && slices.Equal(x.actions, y.actions)
	})
}

func newTestTable(flows ...Flow) *Table {
	t := NewTable()
	t.AddFlows(flows)
	return t
}

func TestTableAdd(t *testing.T) {
	tests := []struct {
		name    string
		inFlows []Flow
		want    []ruleSummary
	}{
		{
			name: "same match and priority replaces",
			inFlows: []Flow{
				mkFlow(100, out(1), inPort(1), cookie(1, 0)),
				mkFlow(100, out(2), inPort(1), cookie(2, 0)),
			},
			want: []ruleSummary{{100, out(2), 2}},
		},
		{
			name: "same match, other priority coexists",
			inFlows: []Flow{
				mkFlow(100, out(1), inPort(1)),
				mkFlow(200, out(2), inPort(1)),
			},
			want: []ruleSummary{{200, out(2), 0}, {100, out(1), 0}},
		},
		{
			name: "key bits outside the mask do not make another match",
			inFlows: []Flow{
				mkFlow(100, out(1), nwSrc(0x0a000001, 24)),
				mkFlow(100, out(2), nwSrc(0x0a000002, 24)),
			},
			want: []ruleSummary{{100, out(2), 0}},
		},
		{
			name: "dump order is priority then install order",
			inFlows: []Flow{
				mkFlow(1, out(1), inPort(1)),
				mkFlow(5, out(2), inPort(2)),
				mkFlow(5, out(3), dlType(EthTypeIPv4)),
				mkFlow(9, out(4)),
				mkFlow(5, out(5), inPort(3)),
			},
			want: []ruleSummary{{9, out(4), 0}, {5, out(2), 0}, {5, out(3), 0}, {5, out(5), 0}, {1, out(1), 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := NewTable()
			for i := range tt.inFlows {
				tbl.Add(&tt.inFlows[i])
			}
			if got := summarize(tbl.Dump(nil)); !equalSummaries(got, tt.want) {
				t.Errorf("rules: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestTableCountersFollowResetCounts: a modify keeps a rule's counters,
// an add over it keeps them too, and either starts them afresh with
// reset_counts (every OpenFlow 1.0 add has it), as in Open vSwitch.
func TestTableCountersFollowResetCounts(t *testing.T) {
	clock := time.Unix(1000, 0)
	tbl := NewTable()
	tbl.now = func() time.Time { return clock }
	f := mkFlow(100, out(1), inPort(1))
	tbl.Add(&f)
	tbl.Dump(nil)[0].AddStats(3, 300, clock.UnixNano())

	clock = clock.Add(time.Second)
	mod := mkFlow(100, out(2), inPort(1))
	if n, added := tbl.Modify(&mod, true); n != 1 || added {
		t.Fatalf("modify: got (%d, %v), want (1, false)", n, added)
	}
	r := tbl.Dump(nil)[0]
	if p, b := r.Stats(); p != 3 || b != 300 {
		t.Errorf("after modify: counters (%d, %d), want (3, 300)", p, b)
	}
	if !r.Installed.Equal(time.Unix(1000, 0)) || !r.Modified.Equal(clock) {
		t.Errorf("after modify: installed %v modified %v, want installed at 1000 and modified at 1001", r.Installed, r.Modified)
	}

	clock = clock.Add(time.Second)
	tbl.Add(&f)
	r = tbl.Dump(nil)[0]
	if p, b := r.Stats(); p != 3 || b != 300 {
		t.Errorf("after an add over it: counters (%d, %d), want (3, 300)", p, b)
	}
	r.AddStats(1, 100, clock.UnixNano())
	mod.Flags = FlagResetCounts
	tbl.Modify(&mod, true)
	r = tbl.Dump(nil)[0]
	if p, b := r.Stats(); p != 0 || b != 0 {
		t.Errorf("after a modify with reset_counts: counters (%d, %d), want (0, 0)", p, b)
	}
	if r.Flags != 0 {
		t.Errorf("after a modify with reset_counts: flags %q, want the old ones, none", r.Flags)
	}
	r.AddStats(2, 200, clock.UnixNano())

	clock = clock.Add(time.Second)
	f.Flags = FlagResetCounts
	tbl.Add(&f)
	r = tbl.Dump(nil)[0]
	if p, b := r.Stats(); p != 0 || b != 0 {
		t.Errorf("after an add with reset_counts over it: counters (%d, %d), want (0, 0)", p, b)
	}
	if r.Flags != FlagResetCounts {
		t.Errorf("after an add with reset_counts: flags %q, want the add's", r.Flags)
	}
	if !r.Installed.Equal(clock) {
		t.Errorf("after add over it: installed %v, want %v", r.Installed, clock)
	}
	if got := r.Duration(clock.Add(5 * time.Second)); got != 5*time.Second {
		t.Errorf("duration: got %v, want 5s", got)
	}
}

func TestTableModify(t *testing.T) {
	base := []Flow{
		mkFlow(100, out(1), dlType(EthTypeIPv4), nwSrc(0x0a000001, 32), cookie(1, 0)),
		mkFlow(200, out(2), dlType(EthTypeIPv4), cookie(2, 0)),
		mkFlow(300, out(3), dlType(EthTypeARP), cookie(3, 0)),
		mkFlow(0, out(4)),
	}
	tests := []struct {
		name      string
		inMod     Flow
		inStrict  bool
		wantN     int
		wantAdded bool
		want      []ruleSummary
	}{
		{
			name:  "non-strict selects rules at least as specific, any priority",
			inMod: mkFlow(DefaultPriority, out(9), dlType(EthTypeIPv4)),
			wantN: 2,
			want:  []ruleSummary{{300, out(3), 3}, {200, out(9), 2}, {100, out(9), 1}, {0, out(4), 0}},
		},
		{
			name:  "non-strict catch-all selects all",
			inMod: mkFlow(DefaultPriority, out(9)),
			wantN: 4,
			want:  []ruleSummary{{300, out(9), 3}, {200, out(9), 2}, {100, out(9), 1}, {0, out(9), 0}},
		},
		{
			name:  "non-strict does not select less specific rules",
			inMod: mkFlow(DefaultPriority, out(9), dlType(EthTypeIPv4), nwSrc(0x0a000000, 8)),
			wantN: 1,
			want:  []ruleSummary{{300, out(3), 3}, {200, out(2), 2}, {100, out(9), 1}, {0, out(4), 0}},
		},
		{
			name:     "strict needs the same priority (the cookie mask stops the add)",
			inMod:    mkFlow(201, out(9), dlType(EthTypeIPv4), cookie(0, 1)),
			inStrict: true,
			want:     []ruleSummary{{300, out(3), 3}, {200, out(2), 2}, {100, out(1), 1}, {0, out(4), 0}},
		},
		{
			name:     "strict same match and priority",
			inMod:    mkFlow(200, out(9), dlType(EthTypeIPv4)),
			inStrict: true,
			wantN:    1,
			want:     []ruleSummary{{300, out(3), 3}, {200, out(9), 2}, {100, out(1), 1}, {0, out(4), 0}},
		},
		{
			name:  "cookie mask filters",
			inMod: mkFlow(DefaultPriority, out(9), cookie(2, 0xff)),
			wantN: 1,
			want:  []ruleSummary{{300, out(3), 3}, {200, out(9), 2}, {100, out(1), 1}, {0, out(4), 0}},
		},
		{
			name:  "cookie mask on some bits",
			inMod: mkFlow(DefaultPriority, out(9), cookie(1, 1)),
			wantN: 2,
			want:  []ruleSummary{{300, out(9), 3}, {200, out(2), 2}, {100, out(9), 1}, {0, out(4), 0}},
		},
		{
			name:  "cookie without mask sets the cookie",
			inMod: mkFlow(DefaultPriority, out(9), dlType(EthTypeARP), cookie(7, 0)),
			wantN: 1,
			want:  []ruleSummary{{300, out(9), 7}, {200, out(2), 2}, {100, out(1), 1}, {0, out(4), 0}},
		},
		{
			name:      "no match adds the flow",
			inMod:     mkFlow(50, out(9), dlType(EthTypeIPv6), cookie(5, 0)),
			wantAdded: true,
			want:      []ruleSummary{{300, out(3), 3}, {200, out(2), 2}, {100, out(1), 1}, {50, out(9), 5}, {0, out(4), 0}},
		},
		{
			name:      "strict with no match adds the flow",
			inMod:     mkFlow(150, out(9), dlType(EthTypeIPv4)),
			inStrict:  true,
			wantAdded: true,
			want:      []ruleSummary{{300, out(3), 3}, {200, out(2), 2}, {150, out(9), 0}, {100, out(1), 1}, {0, out(4), 0}},
		},
		{
			name:  "no match with a cookie mask adds nothing",
			inMod: mkFlow(50, out(9), dlType(EthTypeIPv6), cookie(5, 0xff)),
			want:  []ruleSummary{{300, out(3), 3}, {200, out(2), 2}, {100, out(1), 1}, {0, out(4), 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := newTestTable(base...)
			gen := tbl.Generation()
			n, added := tbl.Modify(&tt.inMod, tt.inStrict)
			if n != tt.wantN || added != tt.wantAdded {
				t.Errorf("Modify: got (%d, %v), want (%d, %v)", n, added, tt.wantN, tt.wantAdded)
			}
			if got := summarize(tbl.Dump(nil)); !equalSummaries(got, tt.want) {
				t.Errorf("rules: got %+v, want %+v", got, tt.want)
			}
			if changed := tbl.Generation() != gen; changed != (n > 0 || added) {
				t.Errorf("generation changed %v, want %v", changed, n > 0 || added)
			}
		})
	}
}

func TestTableDelete(t *testing.T) {
	base := []Flow{
		mkFlow(100, out(1), dlType(EthTypeIPv4), nwSrc(0x0a000000, 24), cookie(0x11, 0)),
		mkFlow(100, out(2, 3), dlType(EthTypeIPv4), nwSrc(0x0a000000, 8), cookie(0x12, 0)),
		mkFlow(200, out(3), dlType(EthTypeIPv4), cookie(0x21, 0)),
		mkFlow(0, out(PortNormal)),
	}
	tests := []struct {
		name     string
		inDel    Flow
		inStrict bool
		want     []ruleSummary
	}{
		{
			name:  "catch-all deletes everything",
			inDel: mkFlow(DefaultPriority, nil),
			want:  []ruleSummary{},
		},
		{
			name:  "non-strict prefix selects longer prefixes only",
			inDel: mkFlow(DefaultPriority, nil, dlType(EthTypeIPv4), nwSrc(0x0a000000, 16)),
			want:  []ruleSummary{{200, out(3), 0x21}, {100, out(2, 3), 0x12}, {0, out(PortNormal), 0}},
		},
		{
			name:  "non-strict ignores priority",
			inDel: mkFlow(7, nil, dlType(EthTypeIPv4)),
			want:  []ruleSummary{{0, out(PortNormal), 0}},
		},
		{
			name:     "strict needs match and priority",
			inDel:    mkFlow(100, nil, dlType(EthTypeIPv4)),
			inStrict: true,
			want:     []ruleSummary{{200, out(3), 0x21}, {100, out(1), 0x11}, {100, out(2, 3), 0x12}, {0, out(PortNormal), 0}},
		},
		{
			name:     "strict exact",
			inDel:    mkFlow(100, nil, dlType(EthTypeIPv4), nwSrc(0x0a000000, 8)),
			inStrict: true,
			want:     []ruleSummary{{200, out(3), 0x21}, {100, out(1), 0x11}, {0, out(PortNormal), 0}},
		},
		{
			name:  "cookie mask",
			inDel: mkFlow(DefaultPriority, nil, cookie(0x10, 0xf0)),
			want:  []ruleSummary{{200, out(3), 0x21}, {0, out(PortNormal), 0}},
		},
		{
			name:  "cookie without mask selects any cookie",
			inDel: mkFlow(DefaultPriority, nil, cookie(0x10, 0)),
			want:  []ruleSummary{},
		},
		{
			name:  "out_port",
			inDel: mkFlow(DefaultPriority, nil, outPort(3)),
			want:  []ruleSummary{{100, out(1), 0x11}, {0, out(PortNormal), 0}},
		},
		{
			name:  "out_port reserved",
			inDel: mkFlow(DefaultPriority, nil, outPort(PortNormal)),
			want:  []ruleSummary{{200, out(3), 0x21}, {100, out(1), 0x11}, {100, out(2, 3), 0x12}},
		},
		{
			name:  "out_port none means any",
			inDel: mkFlow(DefaultPriority, nil, dlType(EthTypeIPv4), outPort(PortNone)),
			want:  []ruleSummary{{0, out(PortNormal), 0}},
		},
		{
			name:  "nothing selected",
			inDel: mkFlow(DefaultPriority, nil, dlType(EthTypeARP)),
			want:  []ruleSummary{{200, out(3), 0x21}, {100, out(1), 0x11}, {100, out(2, 3), 0x12}, {0, out(PortNormal), 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := newTestTable(base...)
			gen := tbl.Generation()
			removed := tbl.Delete(&tt.inDel, tt.inStrict)
			got := summarize(tbl.Dump(nil))
			if !equalSummaries(got, tt.want) {
				t.Errorf("rules: got %+v, want %+v", got, tt.want)
			}
			if len(removed)+len(got) != len(base) {
				t.Errorf("removed %d rules, %d left, of %d", len(removed), len(got), len(base))
			}
			if changed := tbl.Generation() != gen; changed != (len(removed) > 0) {
				t.Errorf("generation changed %v, want %v", changed, len(removed) > 0)
			}
		})
	}
}

func TestTableDumpFilter(t *testing.T) {
	tbl := newTestTable(
		mkFlow(100, out(1), dlType(EthTypeIPv4), nwSrc(0x0a000000, 24), cookie(1, 0)),
		mkFlow(200, out(2), dlType(EthTypeARP), cookie(2, 0)),
	)
	f := mkFlow(0, nil, dlType(EthTypeIPv4))
	if got, want := summarize(tbl.Dump(&f)), []ruleSummary{{100, out(1), 1}}; !equalSummaries(got, want) {
		t.Errorf("dump ip: got %+v, want %+v", got, want)
	}
	f = mkFlow(0, nil, outPort(2))
	if got, want := summarize(tbl.Dump(&f)), []ruleSummary{{200, out(2), 2}}; !equalSummaries(got, want) {
		t.Errorf("dump out_port=2: got %+v, want %+v", got, want)
	}
}

func TestTableExpire(t *testing.T) {
	clock := time.Unix(1000, 0)
	tbl := NewTable()
	tbl.now = func() time.Time { return clock }
	hard := mkFlow(1, out(1), inPort(1))
	hard.HardTimeout = 10
	idle := mkFlow(2, out(2), inPort(2))
	idle.IdleTimeout = 5
	forever := mkFlow(3, out(3), inPort(3))
	tbl.AddFlows([]Flow{hard, idle, forever})

	// The idle rule is used at 1004, so it lives until 1009.
	for _, r := range tbl.Dump(nil) {
		if r.Priority == 2 {
			r.AddStats(1, 60, clock.Add(4*time.Second).UnixNano())
		}
	}
	tests := []struct {
		name   string
		inAt   time.Duration
		wantNs []uint16 // priorities removed
	}{
		{name: "nothing yet", inAt: 8 * time.Second},
		{name: "idle after last use", inAt: 9 * time.Second, wantNs: []uint16{2}},
		{name: "hard", inAt: 10 * time.Second, wantNs: []uint16{1}},
		{name: "never", inAt: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			removed := tbl.Expire(clock.Add(tt.inAt))
			var got []uint16
			for _, r := range removed {
				got = append(got, r.Priority)
			}
			if !slices.Equal(got, tt.wantNs) {
				t.Errorf("expired priorities %v, want %v", got, tt.wantNs)
			}
		})
	}
	if tbl.Len() != 1 {
		t.Errorf("%d rules left, want 1", tbl.Len())
	}
}

func TestTableGenerationAndSnapshots(t *testing.T) {
	tbl := NewTable()
	s0 := tbl.Snapshot()
	f := mkFlow(10, out(1), inPort(1))
	tbl.Add(&f)
	s1 := tbl.Snapshot()
	if s1.Generation() <= s0.Generation() {
		t.Fatalf("generation did not grow: %d then %d", s0.Generation(), s1.Generation())
	}
	k := Key{InPort: 1}
	if r := s0.Lookup(&k, nil); r != nil {
		t.Errorf("the old snapshot sees a rule added after it")
	}
	if r := s1.Lookup(&k, nil); r == nil || r.Priority != 10 {
		t.Errorf("the new snapshot does not see the rule: %v", r)
	}
	tbl.Delete(&f, true)
	if r := s1.Lookup(&k, nil); r == nil {
		t.Errorf("deleting changed an older snapshot")
	}
	if tbl.Len() != 0 || tbl.Snapshot().Len() != 0 {
		t.Errorf("rules left after delete: %d", tbl.Len())
	}
}

// TestLookupConsultsFewBits checks the megaflow masks that lookups build in
// simple cases, where the narrowest correct mask is known, in both subtable
// organisations.
func TestLookupConsultsFewBits(t *testing.T) {
	tcp80 := mkFlow(300, out(1), dlType(EthTypeIPv4), nwProto(IPProtoTCP), tpDst(80, 0xffff))
	tests := []struct {
		name    string
		inFlows []Flow
		inKey   Key
		wantPri int // -1: no rule
		wantWC  Key
	}{
		{
			name:    "catch-all only",
			inFlows: []Flow{mkFlow(0, out(1))},
			inKey:   Key{InPort: 5, DlType: EthTypeIPv4},
			wantPri: 0,
		},
		{
			name:    "higher rule told apart by one field",
			inFlows: []Flow{tcp80, mkFlow(0, out(2))},
			inKey:   Key{DlType: EthTypeARP, NwProto: 1},
			wantPri: 0,
			wantWC:  Key{DlType: 0xffff},
		},
		{
			name:    "higher rule told apart at L3",
			inFlows: []Flow{tcp80, mkFlow(0, out(2))},
			inKey:   Key{DlType: EthTypeIPv4, NwProto: IPProtoUDP, TpDst: 80},
			wantPri: 0,
			// The L3 stage is reached through the L2 stage.
			wantWC: Key{DlType: 0xffff, NwProto: 0xff},
		},
		{
			name:    "winner's whole mask",
			inFlows: []Flow{tcp80, mkFlow(0, out(2))},
			inKey:   Key{DlType: EthTypeIPv4, NwProto: IPProtoTCP, TpDst: 80, TpSrc: 9},
			wantPri: 300,
			wantWC:  Key{DlType: 0xffff, NwProto: 0xff, TpDst: 0xffff},
		},
		{
			name:    "lower rules are not consulted",
			inFlows: []Flow{mkFlow(300, out(1), inPort(1)), mkFlow(10, out(2), dlType(EthTypeIPv4))},
			inKey:   Key{InPort: 1, DlType: EthTypeIPv4},
			wantPri: 300,
			wantWC:  Key{InPort: ^uint32(0)},
		},
		{
			name:    "no rule",
			inFlows: []Flow{mkFlow(300, out(1), inPort(1))},
			inKey:   Key{InPort: 2},
			wantPri: -1,
			wantWC:  Key{InPort: ^uint32(0)},
		},
		{
			name:    "prefix",
			inFlows: []Flow{mkFlow(300, out(1), dlType(EthTypeIPv4), nwSrc(0x0a000000, 8))},
			inKey:   Key{DlType: EthTypeIPv4, NwSrc: 0x0a010203},
			wantPri: 300,
			wantWC:  Key{DlType: 0xffff, NwSrc: 0xff000000},
		},
		{
			// The nw_dst trie holds 10.1.0.0/16: one bit tells
			// 172.16.0.1 apart from it, as in Open vSwitch.
			name:    "prefix trie rules a subtable out on one bit",
			inFlows: []Flow{mkFlow(300, out(1), dlType(EthTypeIPv4), nwDst(0x0a010000, 16)), mkFlow(0, out(2))},
			inKey:   Key{DlType: EthTypeIPv4, NwDst: 0xac100001},
			wantPri: 0,
			wantWC:  Key{DlType: 0xffff, NwDst: 0x80000000},
		},
		{
			// 10.0.0.5 and 10.0.0.66 first differ in their 26th bit.
			name:    "prefix trie on nw_src",
			inFlows: []Flow{mkFlow(300, out(1), dlType(EthTypeIPv4), nwSrc(0x0a000042, 32)), mkFlow(0, out(2))},
			inKey:   Key{DlType: EthTypeIPv4, NwSrc: 0x0a000005},
			wantPri: 0,
			wantWC:  Key{DlType: 0xffff, NwSrc: 0xffffffc0},
		},
		{
			// 443 (0x1bb) and 80 (0x50) first differ in bit 7 of
			// tp_dst: the ports trie consults tp_dst's high byte.
			name:    "ports trie",
			inFlows: []Flow{tcp80, mkFlow(0, out(2))},
			inKey:   Key{DlType: EthTypeIPv4, NwProto: IPProtoTCP, TpDst: 443},
			wantPri: 0,
			wantWC:  Key{DlType: 0xffff, NwProto: 0xff, TpDst: 0xff00},
		},
		{
			// A rule with the packet's ports differs from it in
			// tcp_flags, which shares the last stage: Open vSwitch's
			// ports trie would consult tp_dst alone, a megaflow that
			// also holds SYN packets to port 80.
			name:    "ports trie keeps the other last-stage fields",
			inFlows: []Flow{mkFlow(300, out(1), dlType(EthTypeIPv4), nwProto(IPProtoTCP), tpDst(80, 0xffff), tcpFlagsOpt(0x002, 0x002)), mkFlow(0, out(2))},
			inKey:   Key{DlType: EthTypeIPv4, NwProto: IPProtoTCP, TpDst: 80, TcpFlags: 0x010},
			wantPri: 0,
			wantWC:  Key{DlType: 0xffff, NwProto: 0xff, TpDst: 0xffff, TcpFlags: 0x002},
		},
		{
			name:    "bits already consulted are reused",
			inFlows: []Flow{mkFlow(300, out(1), inPort(1), dlType(EthTypeARP)), mkFlow(200, out(1), inPort(2)), mkFlow(0, out(2))},
			inKey:   Key{InPort: 3, DlType: EthTypeARP},
			wantPri: 0,
			wantWC:  Key{InPort: ^uint32(0)},
		},
	}
	{
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tbl := NewTable()
				tbl.AddFlows(tt.inFlows)
				var wc Key
				r := tbl.Snapshot().Lookup(&tt.inKey, &wc)
				gotPri := -1
				if r != nil {
					gotPri = int(r.Priority)
				}
				if gotPri != tt.wantPri {
					t.Errorf("rule priority %d, want %d", gotPri, tt.wantPri)
				}
				if want := tt.wantWC; wc != want {
					t.Errorf("consulted %+v, want %+v", wc, want)
				}
			})
		}
	}
}

// TestLookupMegaflowProperty checks the lookup's consulted bits directly on
// snapshots: packets that agree with a key on them get the key's rule.
func TestLookupMegaflowProperty(t *testing.T) {
	for _, seed := range []uint64{100, 108, 109} {
		g := newFlowGen(seed)
		tbl := NewTable()
		ref := &refTable{}
		fs := make([]Flow, 300)
		for i := range fs {
			fs[i] = g.flow()
			ref.add(&fs[i])
		}
		tbl.AddFlows(fs)
		s := tbl.Snapshot()
		var bits, union int
		var all Key
		for i := range fs {
			orWords(&all, &fs[i].Match.Mask)
		}
		keys := raceRounds(3000)
		for range keys {
			var k Key
			if g.coin(1, 2) {
				k = g.keyFor(&ref.rules[g.r.IntN(len(ref.rules))].match)
			} else {
				k = g.key()
			}
			var wc Key
			r := s.Lookup(&k, &wc)
			want := ref.lookup(&k)
			if !sameRule(r, want) {
				t.Fatalf("seed %d: lookup %+v: got %s, want %s", seed, k, describeRule(r), describeRef(want))
			}
			if !maskCovers(&all, &wc) {
				t.Fatalf("seed %d: consulted bits %+v that no rule matches on", seed, wc)
			}
			checkMegaflowProperty(t, g, ref, &k, &wc, want)
			bits += popcount(&wc)
			union += popcount(&all)
		}
		t.Logf("seed %d: consulted %.1f bits per lookup on average; the rules' masks cover %d", seed, float64(bits)/float64(keys), union/keys)
	}
}

func popcount(k *Key) int {
	n := 0
	for _, w := range k.Words() {
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return n
}

// TestKeySegments checks that the lookup's field segments cover every bit
// of the key except the padding, once each, and that the stages partition
// them.
func TestKeySegments(t *testing.T) {
	var seen, stages Key
	sw := seen.Words()
	for _, seg := range keySegments {
		if sw[seg.word]&seg.bits != 0 {
			t.Errorf("segment %+v overlaps another", seg)
		}
		sw[seg.word] |= seg.bits
	}
	for i := range stageBits {
		if maskCovers(&stages, &stageBits[i]) && stageBits[i] != (Key{}) {
			t.Errorf("stage %d overlaps an earlier one", i)
		}
		orWords(&stages, &stageBits[i])
	}
	// Every byte of the key is a field.
	var want Key
	wb := unsafe.Slice((*byte)(unsafe.Pointer(&want)), unsafe.Sizeof(want))
	for i := range wb {
		wb[i] = 0xff
	}
	if seen != want {
		t.Errorf("segments cover %+v, want every field bit %+v", seen, want)
	}
	if stages != want {
		t.Errorf("stages cover %+v, want every field bit", stages)
	}
}

// TestTableConcurrent runs lookups on several goroutines, through snapshots
// and through per-goroutine caches, while another goroutine changes the
// table. Run it with -race.
func TestTableConcurrent(t *testing.T) {
	g := newFlowGen(42)
	tbl := NewTable()
	pool := make([]Flow, 200)
	for i := range pool {
		pool[i] = g.flow()
	}
	tbl.AddFlows(pool[:100])

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lookups atomic.Int64
	const readers = 4
	errs := make(chan string, readers)
	for i := range readers {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rg := newFlowGen(seed)
			c, err := NewCache(tbl, 256, 1)
			if err != nil {
				errs <- err.Error()
				return
			}
			lastGen := uint64(0)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				lookups.Add(1)
				k := rg.key()
				s := tbl.Snapshot()
				if s.Generation() < lastGen {
					errs <- "generation went backwards"
					return
				}
				lastGen = s.Generation()
				var wc Key
				r := s.Lookup(&k, &wc)
				if want := linearScan(s, &k); r != want {
					errs <- "snapshot lookup disagrees with a scan of the same snapshot"
					return
				}
				if r != nil {
					r.AddStats(1, 64, int64(n))
				}
				mf, _ := c.Lookup(&k)
				if mf.Generation < lastGen {
					errs <- "cache returned a megaflow older than a snapshot already seen"
					return
				}
			}
		}(uint64(i))
	}

	// Change the table until the readers have done plenty of lookups
	// meanwhile: under the race detector, which makes each about ten
	// times slower, a fifth as many, still all of them beside the writes.
	wantLookups := int64(20000)
	if raceEnabled {
		wantLookups /= 5
	}
	wr := rand.New(rand.NewPCG(7, 7))
	for ops := 0; ops < 300 || lookups.Load() < wantLookups; ops++ {
		f := pool[wr.IntN(len(pool))]
		switch wr.IntN(3) {
		case 0:
			tbl.Add(&f)
		case 1:
			f.Actions = out(uint32(wr.IntN(9)))
			tbl.Modify(&f, wr.IntN(2) == 0)
		case 2:
			tbl.Delete(&f, wr.IntN(2) == 0)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// linearScan is the reference lookup over one snapshot's rules.
func linearScan(s *TableSnapshot, k *Key) *Rule {
	var best *Rule
	for _, st := range s.subtables(0) {
		for _, r := range st.rules {
			if m := r.Match(); m.Matches(k) && (best == nil || r.beats(best)) {
				best = r
			}
		}
	}
	return best
}
