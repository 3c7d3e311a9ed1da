package ofconv

import (
	"errors"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TestActionSetFromWire: write_actions and clear_actions instructions
// become the flow's action set in any order on the wire, and what an
// action set may not hold is refused with an OpenFlow error.
func TestActionSetFromWire(t *testing.T) {
	out := func(p uint32) openflow.Action { return &openflow.ActOutput{Port: p} }
	tests := []struct {
		name      string
		insts     []openflow.Instruction
		want      string // FormatFlowAsWritten's actions
		wantType  uint16 // the error's type, when refused
		wantCode  uint16
		wantError bool
	}{
		{name: "in the text's order",
			insts: []openflow.Instruction{{Type: openflow.InstGotoTable, TableID: 2}, {Type: openflow.InstWriteActions, Actions: []openflow.Action{out(3)}},
				{Type: openflow.InstClearActions}, {Type: openflow.InstApplyActions, Actions: []openflow.Action{out(1)}}},
			want: "output:1,clear_actions,write_actions(output:3),goto_table:2"},
		{name: "an empty write_actions is left out",
			insts: []openflow.Instruction{{Type: openflow.InstWriteActions}}, want: "drop"},
		{name: "a note in an action set", wantError: true, wantType: openflow.ErrTypeBadAction, wantCode: openflow.CodeBadActionType,
			insts: []openflow.Instruction{{Type: openflow.InstWriteActions, Actions: []openflow.Action{&openflow.ActNote{Data: []byte{1}}}}}},
		{name: "exit in an action set", wantError: true, wantType: openflow.ErrTypeBadAction, wantCode: openflow.CodeBadActionType,
			insts: []openflow.Instruction{{Type: openflow.InstWriteActions, Actions: []openflow.Action{&openflow.ActNX{Subtype: openflow.NXActExit}}}}},
		{name: "write_actions twice", wantError: true, wantType: openflow.ErrTypeBadInstruction, wantCode: codeUnsupInst,
			insts: []openflow.Instruction{{Type: openflow.InstWriteActions, Actions: []openflow.Action{out(3)}}, {Type: openflow.InstWriteActions, Actions: []openflow.Action{out(2)}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fm := &openflow.FlowMod{Command: openflow.FlowAdd, Priority: 5, OutPort: openflow.PortAny, Instructions: tc.insts}
			b, err := openflow.Encode(openflow.Version13, 1, fm)
			if err != nil {
				t.Fatal(err)
			}
			_, m, err := openflow.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			mod, err := fromWire(nil, openflow.Version13, m.(*openflow.FlowMod))
			if tc.wantError {
				var oe *openflow.Error
				if !errors.As(err, &oe) || oe.Type != tc.wantType || oe.Code != tc.wantCode {
					t.Fatalf("got %v, want an OpenFlow error of type %d code %d", err, tc.wantType, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := flow.FormatActionsIn(flow.OpenFlow13, &mod.Flow.Match, mod.Flow.Actions); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestActionSetMalformed: instructions whose lengths do not add up are
// refused by the decoder with an OpenFlow error, never a panic.
func TestActionSetMalformed(t *testing.T) {
	good, err := openflow.EncodeInstructions(openflow.Version13, []openflow.Instruction{
		{Type: openflow.InstClearActions},
		{Type: openflow.InstWriteActions, Actions: []openflow.Action{&openflow.ActOutput{Port: 2}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openflow.DecodeInstructions(openflow.Version13, good); err != nil {
		t.Fatalf("the well-formed list: %v", err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"truncated", good[:len(good)-4]},
		{"write_actions longer than the list", patch(good, 8+2, 0x00, 0x40)},
		{"write_actions of 4 bytes", patch(good, 8+2, 0x00, 0x04)},
		{"output inside of 4 bytes", patch(good, 8+8+2, 0x00, 0x04)},
		{"clear_actions holding an action", append(patch(good[:8], 2, 0x00, 0x18), good[16:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openflow.DecodeInstructions(openflow.Version13, tc.b)
			var oe *openflow.Error
			if !errors.As(err, &oe) {
				t.Fatalf("got %v, want an OpenFlow error", err)
			}
		})
	}
}

// patch returns a copy of b with the bytes at off replaced.
func patch(b []byte, off int, v ...byte) []byte {
	c := append([]byte(nil), b...)
	copy(c[off:], v)
	return c
}

// TestActionSetStats10: a flow with an action set, dumped in OpenFlow 1.0
// (NXST_FLOW), carries only its other actions, as Open vSwitch encodes
// it; in OpenFlow 1.3 it carries all of them.
func TestActionSetStats10(t *testing.T) {
	f, err := flow.ParseFlow("priority=5,actions=output:1,clear_actions,write_actions(output:2),goto_table:3", flow.CmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		v    uint8
		want string
	}{
		{openflow.Version10, "output:1,resubmit(,3)"},
		{openflow.Version13, "output:1,clear_actions,write_actions(output:2),goto_table:3"},
	} {
		got, err := roundTrip(tc.v, f)
		if err != nil {
			t.Fatalf("v0x%02x: %v", tc.v, err)
		}
		if s := flow.FormatActionsIn(flow.OpenFlow13, &got.Match, got.Actions); s != tc.want {
			t.Errorf("v0x%02x: got %s, want %s", tc.v, s, tc.want)
		}
	}
	_ = time.Now
}
