package flow

import (
	"encoding/hex"
	"strings"
	"testing"
)

// pauseSink records what Execute does: outputs and packet ins.
type pauseSink struct {
	outs []uint32
	pins []*PacketIn
}

func (s *pauseSink) Output(port uint32, _ []byte)    { s.outs = append(s.outs, port) }
func (s *pauseSink) PacketIn(pi *PacketIn, _ []byte) { s.pins = append(s.pins, pi) }

// TestPauseAndResume: controller(pause) in table 1, reached from table
// 0, freezes the pipeline: the packet in carries the rest of table 1's
// actions and of table 0's, each with its rule's table and cookie, and
// the stack; nothing after the pause runs. Resumed with the registers
// the packet in reported, the rest runs: table 1's output, then table
// 0's pop, which finds the pushed value, and its resubmit to table 3,
// whose match needs it. test/TestContinuationMatchesOVS holds the
// continuation to Open vSwitch 3.1's.
func TestPauseAndResume(t *testing.T) {
	tbl := NewTable()
	for _, s := range []string{
		"cookie=0x10,priority=10,ip,actions=load:0x9->NXM_NX_REG1[],push:NXM_NX_REG1[],load:0x5->NXM_NX_REG1[],resubmit(,1),pop:NXM_NX_REG3[],resubmit(,3)",
		"table=1,cookie=0x11,actions=controller(pause),output:2",
		"table=3,reg3=9,actions=output:3",
	} {
		if err := tbl.Add(mustParseFlow(t, s)); err != nil {
			t.Fatal(err)
		}
	}
	// A UDP datagram from 192.168.0.1 to 192.168.0.2.
	frame, _ := hex.DecodeString("ffffffffffff00000000000108004500001c0001000040110000c0a80001c0a800020035003500080000")
	var k Key
	var off Offsets
	Extract(&k, &off, frame, 1)
	tr := tbl.Snapshot().Translate(&k, false)
	var sink pauseSink
	Execute(append([]byte(nil), frame...), &k, &off, tr.Actions, &sink)
	if len(sink.outs) != 0 || len(sink.pins) != 1 || sink.pins[0].Continuation == nil {
		t.Fatalf("paused: outputs %v, packet ins %d, want none and one with a continuation", sink.outs, len(sink.pins))
	}
	pi := sink.pins[0]
	c := pi.Continuation
	var frames []string
	for _, f := range c.Frames {
		frames = append(frames, strings.Join([]string{itoa(int(f.Table)), itoa(int(f.Cookie)), FormatActions(f.Actions)}, " "))
	}
	if got, want := strings.Join(frames, "; "), "1 17 output:2; 0 16 pop:NXM_NX_REG3[],resubmit(,3)"; got != want {
		t.Errorf("frames %q, want %q", got, want)
	}
	if len(c.Stack) != 1 || c.Stack[0].Lo != 9 || pi.Regs[1] != 5 || pi.Table != 0 || pi.Cookie != 0x10 {
		t.Errorf("stack %v, reg1 %d, table %d, cookie %#x; want [9], 5, 0, 0x10", c.Stack, pi.Regs[1], pi.Table, pi.Cookie)
	}

	// The controller resumes it: the key has the reported registers.
	var rk Key
	Extract(&rk, &off, frame, 1)
	rk.Regs = pi.Regs
	rtr := tbl.Snapshot().TranslateContinuation(&rk, c)
	sink = pauseSink{}
	Execute(append([]byte(nil), frame...), &rk, &off, rtr.Actions, &sink)
	if itoaList(sink.outs) != "2 3" || len(sink.pins) != 0 {
		t.Errorf("resumed: outputs %v, packet ins %d; want 2 then 3, none", sink.outs, len(sink.pins))
	}
}

func itoaList(ps []uint32) string {
	var s []string
	for _, p := range ps {
		s = append(s, itoa(int(p)))
	}
	return strings.Join(s, " ")
}

// TestPauseSyntax: controller(pause) reads and prints as ovs-ofctl
// prints it, pause after the userdata.
func TestPauseSyntax(t *testing.T) {
	for in, want := range map[string]string{
		"actions=controller(pause)":                       "actions=controller(pause)",
		"actions=controller(pause,userdata=01.02,id=3)":   "actions=controller(id=3,userdata=01.02,pause)",
		"actions=controller(meter_id=2,pause,max_len=64)": "actions=controller(max_len=64,pause,meter_id=2)",
	} {
		if got := FormatFlow(mustParseFlow(t, in)); got != want {
			t.Errorf("%q printed %q, want %q", in, got, want)
		}
	}
}
