package flow

import "slices"

// Continuations, as Open vSwitch's: a controller(pause) action freezes
// the pipeline where it runs. The packet in it sends carries what the
// rest of the pipeline needs (a Continuation: the actions still to run,
// list by list, with the table and cookie of the rule each list belongs
// to, the stack, whether the packet was tracked, and the action set);
// the controller may look at the packet, and sends it back with the
// continuation (NXT_RESUME), which TranslateContinuation translates from
// where it stopped. The packet's metadata (in_port, registers, ...)
// travel in the packet in's match and come back in NXT_RESUME's.
//
// Inside a clone or a group's bucket, pause is not honoured: the action
// sends its packet in and the pipeline goes on.

// Continuation is a frozen pipeline.
type Continuation struct {
	// Frames are the action lists still to run, innermost first.
	Frames      []ContinuationFrame
	Stack       []StackValue // bottom first
	Conntracked bool
	ActionSet   []Action
}

// ContinuationFrame is one action list still to run, and the table and
// cookie of the rule it belongs to (as packet ins from it report them).
type ContinuationFrame struct {
	Table   uint8
	Cookie  uint64
	Actions []Action
}

// StackValue is one value of the push/pop stack, as 128 bits.
type StackValue struct{ Hi, Lo uint64 }

// pause freezes the pipeline at controller(pause) action a: the packet in
// is made now, from the flow as it is, and sent with the continuation
// once the lists around have left the rest of their actions
// (finishPause).
func (x *xlate) pause(a *Action) {
	x.paused = x.packetIn(a, false)
	x.freezing, x.freezeHere = true, false
	x.frozenTable = x.table
	x.report(TraceDetail, "Pausing: the controller resumes the pipeline")
}

// frame is the table and cookie of the list that runs now.
func (x *xlate) frame() ContinuationFrame {
	f := ContinuationFrame{Table: x.table}
	switch {
	case x.rule != nil:
		f.Cookie = x.rule.Cookie
	case x.resumed != nil:
		f.Table, f.Cookie = x.resumed.Table, x.resumed.Cookie
	}
	return f
}

// finishPause emits the paused packet in with its continuation. As in
// Open vSwitch, which makes it once the lists around the pause have left
// their rest, it reports the table and cookie of the outermost list
// (table 0 and no cookie for a packet out's own actions).
func (x *xlate) finishPause() {
	c := &Continuation{Conntracked: x.conntracked, ActionSet: slices.Clone(x.actset)}
	for i, acts := range x.frozen {
		f := x.frozenFrames[i]
		f.Actions = acts
		c.Frames = append(c.Frames, f)
	}
	for _, v := range x.stack {
		c.Stack = append(c.Stack, StackValue{Hi: v.hi, Lo: v.lo})
	}
	pi := *x.paused
	pi.Continuation = c
	f := x.frame()
	pi.Table, pi.Cookie = f.Table, CookieNone
	switch {
	case x.rule != nil || x.resumed != nil:
		pi.Cookie = f.Cookie
	case !x.packetOut && len(x.tr.Rules) > 0:
		pi.Cookie = x.tr.Rules[0].Cookie // the first rule's, table 0's
	}
	x.emit(Action{Type: ActController, Table: uint8(pi.Reason), Value: uint64(pi.MaxLen), Mask: uint64(pi.ControllerID),
		Pause: true, PacketIn: &pi})
}

// TranslateContinuation translates continuation c for a packet with key
// k (whose pipeline fields are those the packet in reported, as
// NXT_RESUME gives them back): its lists run in order, each as its
// rule's, then the action set, as Open vSwitch resumes a pipeline. It
// returns what the packet does.
func (s *TableSnapshot) TranslateContinuation(k *Key, c *Continuation) *Translation {
	x := xlate{s: s, flow: *k, base: *k, orig: k}
	x.wc.RecircID, x.wc.InPort, x.wc.DlType = ^uint32(0), ^uint32(0), 0xffff
	x.conntracked = c.Conntracked || k.CtState&CtStateTracked != 0
	for _, v := range c.Stack {
		x.stack = append(x.stack, u128{hi: v.Hi, lo: v.Lo})
	}
	x.actset = slices.Clone(c.ActionSet)
	for i := range c.Frames {
		if x.exit || x.err != VerdictOK {
			break
		}
		f := &c.Frames[i]
		x.table, x.resumed = f.Table, f
		x.run(f.Actions)
		if x.freezing {
			// Frozen again: the frames after this one are the lists
			// around it, still to run.
			for _, g := range c.Frames[i+1:] {
				x.frozen = append(x.frozen, g.Actions)
				if x.paused != nil {
					x.frozenFrames = append(x.frozenFrames, ContinuationFrame{Table: g.Table, Cookie: g.Cookie})
				}
			}
			break
		}
	}
	if !x.freezing && x.err == VerdictOK {
		x.runActionSet()
	}
	if x.freezing {
		x.finishFreeze()
	}
	return x.result()
}

// SetFields sets in k the bits that m's mask covers to m's key: the
// pipeline fields a packet in reported, for its resumption.
func (k *Key) SetFields(m *Match) {
	kw, vw, mw := k.Words(), m.Key.Words(), m.Mask.Words()
	for i := range kw {
		kw[i] = kw[i]&^mw[i] | vw[i]&mw[i]
	}
}
