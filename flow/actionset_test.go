package flow

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestParseActionSet: write_actions and clear_actions parse, and print
// back as ovs-ofctl -O OpenFlow13 parse-flow prints them (Open vSwitch
// 3.1's output, copied); OpenFlow 1.0 carries neither.
func TestParseActionSet(t *testing.T) {
	tests := []struct {
		name, in string
		want13   string // FormatActionsIn(OpenFlow13)
		want10   string // FormatActionsIn(OpenFlow10)
	}{
		{name: "write_actions with goto_table",
			in:     "actions=write_actions(output:1,set_field:1->reg0,mod_dl_src:00:00:00:00:00:01,group:1),goto_table:1",
			want13: "write_actions(output:1,set_field:0x1->reg0,set_field:00:00:00:00:00:01->eth_src,group:1),goto_table:1",
			want10: "resubmit(,1)"},
		{name: "clear then write",
			in: "actions=clear_actions,write_actions(output:2)", want13: "clear_actions,write_actions(output:2)", want10: "drop"},
		{name: "after apply actions",
			in: "actions=output:1,write_actions(output:2)", want13: "output:1,write_actions(output:2)", want10: "output:1"},
		{name: "an empty write_actions is left out",
			in: "actions=output:1,write_actions(drop)", want13: "output:1", want10: "output:1"},
		{name: "empty", in: "actions=write_actions()", want13: "drop", want10: "drop"},
		{name: "vlan, ttl, resubmit",
			in:     "ip,actions=write_actions(strip_vlan,push_vlan:0x8100,dec_ttl,mod_nw_ttl:5,resubmit(,2))",
			want13: "write_actions(pop_vlan,push_vlan:0x8100,dec_ttl,mod_nw_ttl:5,resubmit(,2))", want10: "drop"},
		{name: "load and move",
			in:     "actions=write_actions(load:1->reg0,move:reg0[]->reg1[],output:IN_PORT)",
			want13: "write_actions(load:0x1->NXM_NX_REG0[],move:NXM_NX_REG0[]->NXM_NX_REG1[],IN_PORT)", want10: "drop"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFlow(tc.in, CmdAdd)
			if err != nil {
				t.Fatal(err)
			}
			if got := FormatActionsIn(OpenFlow13, &f.Match, f.Actions); got != tc.want13 {
				t.Errorf("OpenFlow13: got %s, want %s", got, tc.want13)
			}
			if got := FormatActionsIn(OpenFlow10, &f.Match, f.Actions); got != tc.want10 {
				t.Errorf("OpenFlow10: got %s, want %s", got, tc.want10)
			}
			// As a state save writes it, and read back: the same actions.
			text := FormatFlowAsWritten(f)
			again, err := ParseFlow(text, CmdAdd)
			if err != nil {
				t.Fatalf("%s: %v", text, err)
			}
			if !slices.Equal(again.Actions, f.Actions) {
				t.Errorf("round trip: %s, then %s", text, FormatFlowAsWritten(again))
			}
		})
	}
}

// TestParseActionSetErrors: misplaced, repeated and nested instructions
// and actions an action set cannot hold are refused with a position and a
// reason (Open vSwitch's words where it has them).
func TestParseActionSetErrors(t *testing.T) {
	tests := []struct {
		name, in        string
		wantPos         int // 0-based offset of the offending token
		wantReason      string
		wantUnsupported bool
	}{
		{name: "clear after write", in: "actions=write_actions(output:2),clear_actions", wantPos: 32,
			wantReason: "invalid instruction ordering: clear_actions must appear before write_actions, for OpenFlow 1.1+ compatibility"},
		{name: "apply after clear", in: "actions=clear_actions,output:1", wantPos: 22,
			wantReason: "invalid instruction ordering: apply_actions must appear before clear_actions"},
		{name: "apply after write", in: "actions=write_actions(output:1),output:2", wantPos: 32,
			wantReason: "apply_actions must appear before write_actions"},
		{name: "two write_actions", in: "actions=write_actions(output:1),write_actions(output:2)", wantPos: 32,
			wantReason: "duplicate write_actions instruction not allowed"},
		{name: "write after goto_table", in: "actions=goto_table:1,write_actions(output:1)", wantPos: 21,
			wantReason: "write_actions must appear before goto_table"},
		{name: "apply after write_metadata after write", in: "actions=write_actions(output:1),write_metadata:1,output:2", wantPos: 49,
			wantReason: "apply_actions must appear before write_metadata"},
		{name: "inside clone", in: "actions=clone(write_actions(output:1))", wantPos: 14,
			wantReason: "instruction write_actions may not be used in an action list"},
		{name: "nested", in: "actions=write_actions(clear_actions)", wantPos: 22,
			wantReason: "instruction clear_actions may not be used"},
		{name: "note", in: "actions=write_actions(note:01)", wantPos: 8, wantReason: "disallowed action in action set: note"},
		{name: "exit", in: "actions=write_actions(exit)", wantPos: 8, wantReason: "disallowed action in action set: exit"},
		{name: "clone", in: "actions=write_actions(clone(output:1))", wantPos: 8, wantReason: "disallowed action in action set: clone"},
		{name: "push", in: "actions=write_actions(push:reg0[])", wantPos: 8, wantReason: "disallowed action in action set: push"},
		{name: "output_reg", in: "actions=write_actions(output:reg0[])", wantPos: 8, wantReason: "disallowed action in action set: output"},
		{name: "ct", in: "ip,actions=write_actions(ct(commit))", wantPos: 11, wantReason: "ct in an action set is not supported", wantUnsupported: true},
		{name: "no body", in: "actions=write_actions:1", wantPos: 8, wantReason: "write_actions needs (actions)"},
		{name: "clear with argument", in: "actions=clear_actions:1", wantPos: 8, wantReason: "clear_actions takes no argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFlow(tc.in, CmdAdd)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a SyntaxError", err)
			}
			if se.Pos != tc.wantPos || !strings.Contains(se.Reason, tc.wantReason) {
				t.Errorf("got %q at %d, want %q at %d", se.Reason, se.Pos, tc.wantReason, tc.wantPos)
			}
			if errors.Is(err, ErrUnsupportedSyntax) != tc.wantUnsupported {
				t.Errorf("%v: unsupported is %v, want %v", err, !tc.wantUnsupported, tc.wantUnsupported)
			}
		})
	}
}

// TestTranslateActionSet: the action set runs when the pipeline ends, in
// Open vSwitch's order, one output (the last written; a group before it),
// and clear_actions empties it. The expectations are Open vSwitch 3.1's
// ofproto/trace results for the same flows.
func TestTranslateActionSet(t *testing.T) {
	tests := []struct {
		name        string
		flows       []string
		in          string
		wantActions string
		wantFinal   string
	}{
		{name: "runs at the end, after the apply actions",
			flows:       []string{"actions=output:2,write_actions(output:3)"},
			in:          "in_port=1",
			wantActions: "output:2,output:3"},
		{name: "the last output written wins, and runs after the sets",
			flows: []string{"udp,actions=write_actions(output:1,set_field:10.0.0.9->ip_dst,mod_dl_src:00:00:00:00:00:01,dec_ttl),goto_table:1",
				"table=1,actions=write_actions(output:2,strip_vlan,push_vlan:0x8100)"},
			in:          "in_port=1,udp,nw_ttl=64",
			wantActions: "push_vlan:0x8100,mod_dl_src:00:00:00:00:00:01,mod_nw_dst:10.0.0.9,load:0x3f->NXM_NX_IP_TTL[],output:2"},
		{name: "strip_vlan runs first, then push_vlan, then the set field: the TPID changes",
			flows:       []string{"udp,actions=write_actions(push_vlan:0x88a8,set_field:4105->vlan_vid,strip_vlan,output:2)"},
			in:          "in_port=1,dl_vlan=7,udp",
			wantActions: "strip_vlan,push_vlan:0x88a8,mod_vlan_vid:9,output:2"},
		{name: "clear_actions empties it",
			flows:       []string{"actions=write_actions(output:1),goto_table:1", "table=1,actions=clear_actions,write_actions(output:4)"},
			in:          "in_port=2",
			wantActions: "output:4"},
		{name: "clear_actions alone drops",
			flows:       []string{"actions=write_actions(output:1),goto_table:1", "table=1,actions=clear_actions"},
			in:          "in_port=2",
			wantActions: "drop"},
		{name: "without an output the set does nothing",
			flows:       []string{"actions=write_actions(load:5->reg0,dec_ttl),goto_table:1", "table=1,actions=output:3"},
			in:          "in_port=2",
			wantActions: "output:3", wantFinal: ""},
		{name: "a group wins over an output",
			flows:       []string{"actions=write_actions(group:1,output:2)"},
			in:          "in_port=1",
			wantActions: "output:3"},
		{name: "resubmit in the set runs its table, with the set's loads before it",
			flows: []string{"actions=write_actions(resubmit(,3),load:7->reg1),goto_table:1",
				"table=1,actions=write_actions(load:8->reg2)", "table=3,reg1=7,actions=output:4"},
			in:          "in_port=1",
			wantActions: "output:4", wantFinal: "reg1=0x7,reg2=0x8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl := NewTable()
			if err := tbl.AddGroups([]*Group{mustGroup(t, "group_id=1,type=all,bucket=output:3")}); err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.flows {
				f, err := ParseFlow(s, CmdAdd)
				if err != nil {
					t.Fatalf("%s: %v", s, err)
				}
				if err := tbl.Add(f); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			k := microflow(t, tc.in)
			tr := tbl.Snapshot().Translate(&k, true)
			if got := FormatActions(tr.Actions); got != tc.wantActions {
				var b strings.Builder
				FormatTrace(&b, tr.Trace)
				t.Errorf("got %s, want %s\n%s", got, tc.wantActions, b.String())
			}
			if tc.wantFinal != "" {
				var m Match
				m.Key.Regs, m.Mask.Regs = tr.Final.Regs, [NumRegs]uint32{^uint32(0), ^uint32(0), ^uint32(0)}
				if got := FormatMatch(&m, DefaultPriority); !strings.Contains(got, tc.wantFinal) {
					t.Errorf("final registers %s, want %s", got, tc.wantFinal)
				}
			}
			checkSound(t, tbl.Snapshot(), &k, tr, rand.New(rand.NewPCG(1, 2)), 200)
		})
	}
}

// TestTraceActionSet: ofproto/trace shows the set after each change and
// its execution at the end, as Open vSwitch's does.
func TestTraceActionSet(t *testing.T) {
	tbl := pipeline(t, "actions=clear_actions,write_actions(dec_ttl),goto_table:1",
		"table=1,actions=write_actions(load:7->reg1,output:2)")
	k := microflow(t, "in_port=1,udp,nw_ttl=64")
	tr := tbl.Snapshot().Translate(&k, true)
	var b strings.Builder
	FormatTrace(&b, tr.Trace)
	want := ` 0. priority 32768
    clear_actions
     -> action set was empty
    write_actions(dec_ttl)
     -> action set is empty
    resubmit(,1)
 1. priority 32768
    write_actions(load:0x7->NXM_NX_REG1[],output:2)
     -> action set is: dec_ttl,load:0x7->NXM_NX_REG1[],output:2
--. Executing action set:
    dec_ttl
    load:0x7->NXM_NX_REG1[]
    output:2
`
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestActionSetRecirc: a ct(table=T) that recirculates forks the
// pipeline with the action set written so far: the pass that goes on
// runs it at its end, and so does the resumed pass after table T.
// (Open vSwitch 3.1's ovs-vswitchd dies tracing this pipeline, so the
// expectation is the semantics of its frozen state, which keeps the
// action set.)
func TestActionSetRecirc(t *testing.T) {
	tbl := pipeline(t, "udp,actions=write_actions(output:2),goto_table:2",
		"table=2,udp,actions=ct(table=1)",
		"table=1,udp,actions=output:3,write_actions(mod_nw_ttl:9)")
	c, err := NewCache(tbl, 64, 1)
	if err != nil {
		t.Fatal(err)
	}
	k := microflow(t, "in_port=1,udp,nw_ttl=64")
	mf0, _ := c.Lookup(&k)
	id := recircOf(mf0.Actions)
	if got, want := FormatODPActions(mf0.Actions), "ct,recirc(0x"+strconv.FormatUint(uint64(id), 16)+"),2"; id == 0 || got != want {
		t.Fatalf("first pass: %s, want %s", got, want)
	}
	k1 := k
	k1.RecircID, k1.CtState = id, CtStateTracked|CtStateNew
	mf1, _ := c.Lookup(&k1)
	if got, want := FormatActions(mf1.Actions), "output:3,load:0x9->NXM_NX_IP_TTL[],output:2"; got != want {
		t.Errorf("resumed pass: %s, want %s", got, want)
	}
}
