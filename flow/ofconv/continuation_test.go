package ofconv

import (
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TestContinuationRoundTrip: a continuation encoded in each version, in
// an NXT_RESUME, decodes to the same frames (as Open vSwitch groups
// them), stack, tracking and action set, and carries its bridge's id.
func TestContinuationRoundTrip(t *testing.T) {
	parse := func(s string) []flow.Action {
		f, err := flow.ParseFlow("actions="+s, flow.CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		return f.Actions
	}
	c := &flow.Continuation{
		Frames: []flow.ContinuationFrame{
			{Table: 1, Cookie: 5, Actions: parse("load:0x7->NXM_NX_REG2[],resubmit(,2)")},
			{Table: 0, Cookie: 9, Actions: parse("note:01,mod_nw_tos:0x20,output:2,resubmit(,3)")},
		},
		Stack:       []flow.StackValue{{Lo: 5}, {Hi: 1, Lo: 2}},
		Conntracked: true,
		ActionSet:   parse("output:4"),
	}
	// Open vSwitch's groups: the first frame's actions with no table of
	// their own, the second frame's note left out and its mod_nw_tos with
	// them, then, from output:2 on, table 0 and cookie 9.
	want := []string{"table 0 cookie 0x0: load:0x7->NXM_NX_REG2[],resubmit(,2),mod_nw_tos:32", "table 0 cookie 0x9: output:2,resubmit(,3)"}
	id := [16]byte{1, 2, 3}
	frame, _ := hex.DecodeString("ffffffffffff00000000000108004500001c0001000040110000c0a80001c0a800020035003500080000")
	for _, v := range []uint8{openflow.Version10, openflow.Version13, openflow.Version15} {
		cb, err := EncodeContinuation(v, id, 1, c)
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		b, err := openflow.Encode(v, 1, &openflow.Resume{PacketIn2: openflow.PacketIn2{Packet: frame, Reason: 1,
			Metadata: FieldsFromMatch(&flow.Match{}, false), Continuation: cb, HasContinuation: true}})
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		_, m, err := openflow.Decode(b)
		if err != nil {
			t.Fatalf("v%d: decode: %v", v, err)
		}
		r := m.(*openflow.Resume)
		got, bridge, err := DecodeContinuation(nil, v, r.Continuation)
		if err != nil {
			t.Fatalf("v%d: decode the continuation: %v", v, err)
		}
		var frames []string
		for _, f := range got.Frames {
			frames = append(frames, fmt.Sprintf("table %d cookie %#x: %s", f.Table, f.Cookie, flow.FormatActions(f.Actions)))
		}
		if len(frames) != len(want) || frames[0] != want[0] || frames[1] != want[1] {
			t.Errorf("v%d: frames %q, want %q", v, frames, want)
		}
		if bridge != id || !got.Conntracked || len(got.Stack) != 2 || got.Stack[1] != c.Stack[1] || flow.FormatActions(got.ActionSet) != "output:4" {
			t.Errorf("v%d: bridge %x, conntracked %v, stack %v, action set %v", v, bridge, got.Conntracked, got.Stack, got.ActionSet)
		}
	}
}
