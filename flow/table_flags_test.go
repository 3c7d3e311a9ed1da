package flow

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestFlowFlagsSyntax: the flow mod flags parse and print as ovs-ofctl's
// parse-flow prints them (Open vSwitch 3.1: "ADD priority=5,ip cookie:0x5
// idle:3 hard:4 send_flow_rem check_overlap actions=drop"), in its order
// whatever order they were written in, and read back the same.
func TestFlowFlagsSyntax(t *testing.T) {
	tests := []struct{ in, want string }{
		{"priority=5,ip,send_flow_rem,check_overlap,idle_timeout=3,hard_timeout=4,cookie=0x5,actions=drop",
			"priority=5,ip cookie:0x5 idle:3 hard:4 send_flow_rem check_overlap actions=drop"},
		{"no_byte_counts,no_packet_counts,reset_counts,check_overlap,send_flow_rem,actions=drop",
			"send_flow_rem check_overlap reset_counts no_packet_counts no_byte_counts actions=drop"},
		{"in_port=1,reset_counts,actions=output:2", "in_port=1 reset_counts actions=output:2"},
	}
	for _, tt := range tests {
		f, err := ParseFlow(tt.in, CmdAdd)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if got := FormatFlow(f); got != tt.want {
			t.Errorf("%q: printed %q, want %q", tt.in, got, tt.want)
		}
		again, err := ParseFlow(FormatFlowAsWritten(f), CmdAdd)
		if err != nil || again.Flags != f.Flags {
			t.Errorf("%q: read back flags %q (%v), want %q", tt.in, again.Flags, err, f.Flags)
		}
	}
	m, err := ParseFlow("ip,send_flow_rem,actions=drop", CmdModify)
	if err != nil || m.Flags != FlagSendFlowRem {
		t.Errorf("mod-flows with send_flow_rem: flags %v (%v), want send_flow_rem", m, err)
	}
	refused := []struct{ in, want string }{
		{"ip,send_flow_rem", "send_flow_rem is not allowed with del-flows"},
		{"check_overlap", "check_overlap is not allowed with del-flows"},
	}
	for _, tt := range refused {
		if _, err := ParseFlow(tt.in, CmdDelete); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("del-flows %q: error %v, want %q", tt.in, err, tt.want)
		}
	}
	if _, err := ParseFlow("ip,send_flow_rem=1,actions=drop", CmdAdd); err == nil || !strings.Contains(err.Error(), "send_flow_rem takes no value") {
		t.Errorf("send_flow_rem=1: error %v, want \"takes no value\"", err)
	}
}

func mustParseFlow(t *testing.T, s string) *Flow {
	t.Helper()
	f, err := ParseFlow(s, CmdAdd)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return f
}

// TestCheckOverlap: an add with check_overlap is refused when a packet
// could match it and a rule of its table and priority; not when the
// rule is identical (it is replaced), of another priority or table, or
// when the matches disagree on a field both look at.
// test/TestFlowModFlagsMatchOVS holds Open vSwitch 3.1 to the same cases.
func TestCheckOverlap(t *testing.T) {
	tests := []struct {
		installed, add string
		overlap        bool
	}{
		{"priority=5,ip,nw_src=10.0.0.1", "priority=5,ip,nw_dst=10.0.0.2", true},
		{"priority=5,ip,nw_src=10.0.0.1", "priority=5,ip,nw_src=10.0.0.0/24", true},
		{"priority=5,ip,nw_src=10.0.0.1", "priority=5,ip,nw_src=10.0.1.0/24", false},
		{"priority=5,ip,nw_src=10.0.0.1", "priority=6,ip,nw_src=10.0.0.1", false},
		{"priority=5,ip,nw_src=10.0.0.1", "priority=5,ip,nw_src=10.0.0.1", false}, // identical: replaced
		{"priority=5,ip", "priority=5,arp", false},
		{"priority=5,ip", "priority=5", true},
		{"table=1,priority=5,ip", "priority=5,ip", false},
		{"priority=5,in_port=1", "priority=5,in_port=2,ip", false},
	}
	for _, tt := range tests {
		tbl := NewTable()
		if err := tbl.Add(mustParseFlow(t, tt.installed+",actions=drop")); err != nil {
			t.Fatal(err)
		}
		f := mustParseFlow(t, tt.add+",check_overlap,actions=output:3")
		err := tbl.Add(f)
		if got := errors.Is(err, ErrOverlap); got != tt.overlap {
			t.Errorf("%q over %q: error %v, want overlap %v", tt.add, tt.installed, err, tt.overlap)
		}
		want := 2
		if tt.overlap || tt.installed == tt.add {
			want = 1
		}
		if n := tbl.Len(); n != want {
			t.Errorf("%q over %q: %d rules, want %d", tt.add, tt.installed, n, want)
		}
		// Without the flag the add is taken.
		f.Flags = 0
		if err := tbl.Add(f); err != nil {
			t.Errorf("%q over %q without check_overlap: %v", tt.add, tt.installed, err)
		}
	}

	// In one batch, each flow is checked against those before it.
	tbl := NewTable()
	err := tbl.AddFlows([]Flow{*mustParseFlow(t, "priority=5,ip,actions=drop"), *mustParseFlow(t, "priority=5,check_overlap,actions=drop")})
	var ae *AddError
	if !errors.As(err, &ae) || ae.Index != 1 || !errors.Is(err, ErrOverlap) || tbl.Len() != 0 {
		t.Errorf("batch: error %v, %d rules; want flow 1 refused with ErrOverlap and none added", err, tbl.Len())
	}
}

// TestRemovedRecords: each removal of a rule with send_flow_rem is
// recorded with its reason, whatever removed it; rules without the flag
// are not, nor is anything before someone takes the records, nor what an
// atomic change that failed removed.
func TestRemovedRecords(t *testing.T) {
	clock := time.Unix(1000, 0)
	tbl := NewTable()
	tbl.now = func() time.Time { return clock }
	tbl.Add(mustParseFlow(t, "priority=1,send_flow_rem,actions=drop"))
	tbl.Delete(&Flow{Table: TableAll}, false)
	kick := tbl.NotifyRemoved()
	if rs, _ := tbl.TakeRemoved(); len(rs) != 0 {
		t.Fatalf("recorded %d removals before anyone took them", len(rs))
	}
	g, err := ParseGroup("group_id=7,type=all,bucket=output:1", GroupCmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.AddGroups([]*Group{g}); err != nil {
		t.Fatal(err)
	}
	m, err := ParseMeter("meter=9,pktps,band=type=drop,rate=10", MeterCmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.AddMeter(m); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"priority=10,ip,send_flow_rem,idle_timeout=5,actions=drop",
		"priority=11,ip,send_flow_rem,hard_timeout=5,idle_timeout=1,actions=drop",
		"priority=12,ip,send_flow_rem,actions=group:7",
		"priority=13,ip,send_flow_rem,actions=meter:9,output:1",
		"priority=14,ip,send_flow_rem,cookie=0x3,actions=drop",
		"priority=15,ip,idle_timeout=5,actions=drop", // no send_flow_rem
	} {
		if err := tbl.Add(mustParseFlow(t, s)); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
	}
	// An atomic change that fails removes nothing.
	fail := errors.New("fail")
	if err := tbl.UpdateAtomic(func(tx *TableTxn) error {
		tx.Delete(&Flow{Table: TableAll}, false)
		return fail
	}); err != fail || tbl.Len() != 6 {
		t.Fatalf("failed change: %v, %d rules left, want 6", err, tbl.Len())
	}
	clock = clock.Add(5 * time.Second)
	tbl.Expire(clock)
	tbl.DeleteGroups(7)
	tbl.DeleteMeters(9)
	tbl.Delete(&Flow{Table: TableAll, Cookie: 3, CookieMask: ^uint64(0)}, false)
	select {
	case <-kick:
	default:
		t.Error("no notice of the removals")
	}
	rs, dropped := tbl.TakeRemoved()
	var got []string
	for _, r := range rs {
		got = append(got, strings.Join([]string{itoa(int(r.Rule.Priority)), r.Reason.String()}, ":"))
		if !r.At.Equal(clock) {
			t.Errorf("priority %d removed at %v, want %v", r.Rule.Priority, r.At, clock)
		}
	}
	want := "10:idle 11:hard 12:group_delete 13:meter_delete 14:delete"
	if strings.Join(got, " ") != want || dropped != 0 {
		t.Errorf("removals %q (%d dropped), want %q", strings.Join(got, " "), dropped, want)
	}
	if rs, _ := tbl.TakeRemoved(); len(rs) != 0 {
		t.Errorf("%d removals taken twice", len(rs))
	}
}

// TestRemovedRecordsBounded: a taker that does not keep up loses the
// removals beyond maxRemovedKept, counted, not the table's memory.
func TestRemovedRecordsBounded(t *testing.T) {
	tbl := NewTable()
	tbl.NotifyRemoved()
	r := newRule(mustParseFlow(t, "send_flow_rem,actions=drop"), newRuleMask(&Key{}))
	tbl.mu.Lock()
	for range maxRemovedKept + 3 {
		tbl.noteRemovedLocked(r, RemovedDelete)
	}
	tbl.mu.Unlock()
	if rs, dropped := tbl.TakeRemoved(); len(rs) != maxRemovedKept || dropped != 3 {
		t.Errorf("kept %d, dropped %d; want %d and 3", len(rs), dropped, maxRemovedKept)
	}
}

// TestLearnedSendFlowRem: a learn action with send_flow_rem learns a
// flow that has it (Open vSwitch's learn sets the flag in its flow mod),
// so that the learned flow's removal is recorded; one without does not.
func TestLearnedSendFlowRem(t *testing.T) {
	tbl := NewTable()
	tbl.NotifyRemoved()
	var k Key
	k.DlSrc = [6]byte{2, 0, 0, 0, 0, 1}
	for _, tt := range []struct {
		learn string
		want  FlowFlags
	}{
		{"learn(table=1,send_flow_rem,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])", FlagSendFlowRem},
		{"learn(table=2,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])", 0},
	} {
		f := mustParseFlow(t, "actions="+tt.learn)
		lf := f.Actions[0].Learn.learnedFlow(&k)
		if lf.Flags != tt.want {
			t.Errorf("%s: learned flags %q, want %q", tt.learn, lf.Flags, tt.want)
		}
		tbl.Learn([]Flow{lf})
	}
	tbl.Delete(&Flow{Table: TableAll}, false)
	if rs, _ := tbl.TakeRemoved(); len(rs) != 1 || rs[0].Rule.Table != 1 || rs[0].Reason != RemovedDelete {
		t.Errorf("removals %+v, want table 1's learned flow's, deleted", rs)
	}
}
