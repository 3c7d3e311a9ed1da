package flow

import (
	"strconv"
	"strings"
)

// This file is translation: what a cache miss does, and what ofproto/trace
// shows. It runs a packet through the OpenFlow pipeline once, from table 0,
// and produces the datapath actions the packet's megaflow holds and the
// megaflow's mask: the union of every key bit that a table lookup or an
// action consulted. The poll threads, ofproto/trace and the tests all call
// Translate; nothing else resolves what a rule's actions do to a packet.

// Limits of one translation, as Open vSwitch's.
const (
	// MaxResubmitDepth is how deep resubmits (and goto_table) may nest.
	// As in Open vSwitch, only a resubmit to the same or an earlier table
	// nests deeper; one to a later table continues the pipeline.
	MaxResubmitDepth = 64
	// MaxResubmits is how many resubmits one packet may take in all.
	MaxResubmits = 4096
	// MaxStack is how many values push may hold (64 KiB of 16-byte
	// values, as Open vSwitch's bound).
	MaxStack = 4096
)

// Translation is what the pipeline does with one packet.
type Translation struct {
	// Actions are the datapath actions: set fields (ActSetField),
	// VLAN pushes, pops and rewrites, outputs (ActOutput, to bridge
	// ports or to the reserved ports the datapath resolves: in_port,
	// flood, all, normal, local), and connection tracking (ActCT with a
	// resolved CT, ActCTClear, ActRecirc: see xlate_ct.go). Empty: the
	// packet is dropped.
	Actions []Action
	// Mask is the megaflow mask: every packet whose key agrees with the
	// translated one on Mask gets the same Actions. Registers and metadata
	// are never in it: they are zero on every packet that arrives.
	Mask Key
	// Final is the packet's OpenFlow flow at the end, registers and
	// metadata included.
	Final Key
	// Rules are the rules the packet hit, in order (for their counters).
	Rules []*Rule
	// Groups are the groups the packet ran, and their buckets (for their
	// counters).
	Groups []GroupHit
	// Verdict is VerdictOK, a translation failure (VerdictResubmitDepth,
	// VerdictResubmitLimit, VerdictStackTooDeep, VerdictActionCap: Actions
	// is then empty), or why the pipeline stopped short without failing
	// (VerdictTTLExceeded), which is the drop reason when nothing is
	// output.
	Verdict Verdict
	// Trace is the pipeline's steps, when translation was asked to trace.
	Trace []*TraceNode
	// Learned are the flows the learn actions the packet ran learned, in
	// order, when translation was asked to learn (TranslateLearning); the
	// caller installs them (Table.Learn).
	Learned []Flow
	// FinTimeouts are the fin_timeout actions the packet ran on TCP:
	// packets of the megaflow that carry FIN or RST reduce the timeouts
	// of these rules.
	FinTimeouts []FinTimeout
	// recircs are the frozen states the translation froze (its recirc
	// actions) or thawed (the key's RecircID): the megaflow keeps them
	// alive while packets take it.
	recircs []*recircNode
}

// FinTimeout is what fin_timeout(idle_timeout=Idle,hard_timeout=Hard)
// does to Rule, the rule that ran it, once a TCP packet with FIN or RST
// takes it.
type FinTimeout struct {
	Rule       *Rule
	Idle, Hard uint16
}

// TraceNode is one step of a traced translation, as ofproto/trace prints
// it: a table lookup (whose Subs are the rule's actions and the lookups
// they made), an action, or an error.
type TraceNode struct {
	Kind TraceKind
	Text string
	Subs []*TraceNode
}

// TraceKind is the kind of a TraceNode.
type TraceKind uint8

// The trace node kinds.
const (
	TraceTable TraceKind = iota + 1
	TraceAction
	TraceWarn
	TraceError
	TraceDetail
	// TraceEnd is a step after the pipeline, the action set's
	// execution: a top-level step written as a table lookup is, at the
	// left margin, and the steps before it are written as if it were not
	// there.
	TraceEnd
)

// Translate runs a packet with key k through the pipeline of s from table
// 0 and returns what it does. With trace set, it also records the steps.
//
// Its learn actions learn nothing (as Open vSwitch's ofproto/trace without
// a packet, it suppresses side effects); TranslateLearning does learn.
func (s *TableSnapshot) Translate(k *Key, trace bool) *Translation {
	var x xlate
	x.translate(s, k, trace, false)
	tr := x.tr
	return &tr
}

// TranslateLearning is Translate for a packet that is really forwarded:
// its learn actions also build the flows they learn, in tr.Learned, which
// the caller installs with Table.Learn.
func (s *TableSnapshot) TranslateLearning(k *Key, trace bool) *Translation {
	var x xlate
	x.translate(s, k, trace, true)
	tr := x.tr
	return &tr
}

// translate runs the translation into x.tr, reusing x's buffers: x.tr's
// slices are valid until the next call. With learn set, learn actions
// build the flows they learn into x.tr.Learned.
func (x *xlate) translate(s *TableSnapshot, k *Key, trace, learn bool) {
	acts, rules, groups, stack, learned := x.acts[:0], x.tr.Rules[:0], x.tr.Groups[:0], x.stack[:0], x.tr.Learned[:0]
	fins, recircs, frozen, actset := x.tr.FinTimeouts[:0], x.tr.recircs[:0], x.frozen[:0], x.actset[:0]
	clear(x.tr.recircs[:cap(x.tr.recircs)])
	clear(x.frozen[:cap(x.frozen)])
	*x = xlate{s: s, flow: *k, base: *k, orig: k, acts: acts, stack: stack, learn: learn, frozen: frozen, actset: actset}
	x.tr.Rules, x.tr.Groups = rules, groups
	x.tr.Learned = learned
	x.tr.FinTimeouts = fins
	x.tr.recircs = recircs
	x.conntracked = k.CtState&CtStateTracked != 0
	if trace {
		x.trace = &x.tr.Trace
	}
	// Fields Open vSwitch always examines, so that its megaflows and
	// ovsxdp's agree: the recirculation id, in_port, the Ethertype and an
	// IP packet's fragment type.
	x.wc.RecircID, x.wc.InPort, x.wc.DlType = ^uint32(0), ^uint32(0), 0xffff
	if k.DlType == EthTypeIPv4 || k.DlType == EthTypeIPv6 {
		x.wc.NwFrag = FragAny | FragLater
	}
	x.wc.tunnelReceived(k)
	if k.RecircID == 0 && k.ceOverECT() {
		// RFC 6040, as Open vSwitch's tnl_process_ecn: congestion the
		// outer header saw is copied to the inner one. The flow carries
		// it from the start and the base does not, so the first commit
		// writes it into the packet.
		x.flow.NwTos |= ecnCE
	}
	if k.RecircID == 0 && k.ceNotECT() {
		// As Open vSwitch's tnl_process_ecn: the pipeline does not run,
		// but Open vSwitch has looked table 0 up already, and its
		// megaflow matches what that lookup read.
		x.s.LookupIn(0, &x.flow, &x.wc)
		x.report(TraceWarn, "dropping tunnel packet marked ECN CE but is not ECN capable")
	} else if k.RecircID != 0 {
		x.thaw(k.RecircID)
	} else if x.failOpen() {
		x.report(TraceDetail, "fail-open: the normal action")
		x.output(PortNormal)
	} else {
		x.lookupAndRun(0, false, k.InPort)
	}
	if !x.freezing && x.err == VerdictOK {
		// The pipeline has ended: its action set runs (a frozen
		// pipeline keeps it for the pass that resumes it).
		x.runActionSet()
	}
	if x.freezing {
		x.finishFreeze()
	}
	x.commit()
	tr := &x.tr
	tr.Actions = x.acts
	tr.Final = x.flow
	tr.Mask = x.wc
	finishMask(&tr.Mask, k)
	tr.Verdict = x.stop
	if x.err != VerdictOK {
		tr.Actions = nil
		tr.Verdict = x.err
	}
}

// xlate is the state of one translation.
type xlate struct {
	s    *TableSnapshot
	orig *Key
	flow Key // the packet's OpenFlow flow as the actions change it
	base Key // the packet as the datapath actions so far leave it
	wc   Key // the key bits consulted so far
	acts []Action
	tr   Translation

	table uint8
	depth int
	// conntracked: the packet is tracked in the datapath (it went
	// through ct before it recirculated to this pass), so ct_clear
	// emits a datapath ct_clear.
	conntracked bool
	resubmits   int
	stack       []u128
	exit        bool
	// actset is the action set: the bodies of the write_actions run so
	// far (actionset.go).
	actset   []Action
	inBucket int // how many group buckets are running
	inClone  int // how many clones are running
	// freezing: a dp_hash group froze the pipeline (triggerFreeze);
	// every action list that runs stops and leaves the rest of its
	// actions in frozen, innermost first, for the recirculated pass.
	// freezeHere: the list that ran the group has yet to leave it.
	freezing, freezeHere bool
	frozen               [][]Action
	frozenTable          uint8
	// paused is the packet in of the controller(pause) action that
	// froze the pipeline, nil when a dp_hash group did; frozenFrames
	// are then the table and cookie of each list in frozen
	// (continuation.go). resumed is the frame whose actions a resumed
	// continuation runs.
	paused       *PacketIn
	frozenFrames []ContinuationFrame
	resumed      *ContinuationFrame
	groups       int     // group actions run (bounded as resubmits are)
	learn        bool    // learn actions build their flows (tr.Learned)
	packetOut    bool    // translating a packet out's actions
	rule         *Rule   // the rule whose actions run (fin_timeout's)
	err          Verdict // a failure: the packet is dropped
	stop         Verdict // the first early stop that is not a failure
	trace        *[]*TraceNode
}

func (x *xlate) report(kind TraceKind, text string) *TraceNode {
	if x.trace == nil {
		return nil
	}
	n := &TraceNode{Kind: kind, Text: text}
	*x.trace = append(*x.trace, n)
	return n
}

func (x *xlate) fail(v Verdict, text string) {
	if x.err == VerdictOK {
		x.err = v
		x.report(TraceError, text)
	}
}

// lookupAndRun looks the flow up in table and runs the actions of the rule
// it finds.
func (x *xlate) lookupAndRun(table uint8, deepens bool, inPort uint32) {
	// As in Open vSwitch, resubmit(PORT,...) looks up with in_port PORT,
	// and the rule's actions then run with the packet's own in_port.
	in := x.flow.InPort
	x.flow.InPort = inPort
	r := x.s.LookupIn(table, &x.flow, &x.wc)
	x.flow.InPort = in
	var node *TraceNode
	if x.trace != nil {
		text := strconv.Itoa(int(table)) + ". "
		if table < 10 {
			text = " " + text
		}
		if r == nil {
			text += "No match."
		} else {
			match := r.Match()
			m := FormatMatch(&match, DefaultPriority)
			text += m
			if m != "" {
				text += ", "
			}
			text += "priority " + strconv.Itoa(int(r.Priority))
			if r.Cookie != 0 {
				text += ", cookie 0x" + strconv.FormatUint(r.Cookie, 16)
			}
		}
		node = x.report(TraceTable, text)
	}
	oldTrace, oldTable := x.trace, x.table
	if node != nil {
		x.trace = &node.Subs
	}
	x.table = table
	if deepens {
		x.depth++
	}
	if r == nil && x.missToController() {
		x.report(TraceAction, "CONTROLLER:65535")
		miss := ControllerAction(ReasonImplicitMiss, MaxLenAll)
		x.controller(&miss, true)
	} else if r == nil {
		x.report(TraceAction, "drop")
	} else {
		x.tr.Rules = append(x.tr.Rules, r)
		if len(r.Actions) == 0 {
			x.report(TraceAction, "drop")
		}
		oldRule := x.rule
		x.rule = r
		x.run(r.Actions)
		x.rule = oldRule
	}
	if deepens {
		x.depth--
	}
	x.trace, x.table = oldTrace, oldTable
}

// run runs an action list.
func (x *xlate) run(acts []Action) {
	for i := 0; i < len(acts) && !x.exit && x.err == VerdictOK; i++ {
		a := &acts[i]
		if a.Type == ActClone || a.Type == ActWriteActions {
			body := nestedBody(acts, i)
			i += len(body)
			if x.trace != nil {
				x.report(TraceAction, FormatActions(acts[i-len(body):i+1]))
			}
			if a.Type == ActClone {
				x.clone(body)
			} else {
				x.writeActions(body)
			}
			continue
		}
		if x.trace != nil {
			x.report(TraceAction, FormatActions(acts[i:i+1]))
		}
		if a.Type == ActCheckPktLarger {
			// The rest of the list runs in the two branches.
			x.checkPktLarger(a, acts[i+1:])
			return
		}
		if !x.action(a) {
			return
		}
		if x.freezing {
			x.unroll(acts, i)
			return
		}
	}
}

// action runs one action and reports whether the list goes on.
func (x *xlate) action(a *Action) bool {
	switch a.Type {
	case ActOutput:
		x.output(a.Port)
	case ActOutputReg:
		a.Src.consult(&x.wc)
		port := uint32(a.Src.read(&x.flow).lo)
		x.report(TraceDetail, "output port is "+portText(port))
		x.output(port)
	case ActSetField:
		x.setField(a)
	case ActDecTTL:
		return x.decTTL()
	case ActSetVLANVID, ActSetVLANPCP, ActPushVLAN, ActPopVLAN:
		x.vlan(a)
	case ActLoad:
		if !x.tunMetaDst(a.Dst) {
			break
		}
		a.Dst.write(&x.flow, u128{lo: a.Value})
		a.Dst.consult(&x.wc)
		x.wroteField(a.Dst)
	case ActMove:
		v := a.Src.read(&x.flow)
		a.Src.consult(&x.wc)
		x.tunMetaSrc(a.Src)
		if !x.tunMetaDst(a.Dst) {
			break
		}
		a.Dst.consult(&x.wc)
		a.Dst.write(&x.flow, v)
		x.wroteField(a.Dst)
		if x.trace != nil {
			x.report(TraceDetail, a.Dst.String()+" is now "+u128Text(a.Dst.read(&x.flow)))
		}
	case ActWriteMetadata:
		x.flow.Metadata = x.flow.Metadata&^a.Mask | a.Value&a.Mask
	case ActPush:
		if len(x.stack) >= MaxStack {
			x.fail(VerdictStackTooDeep, "stack too deep: over "+strconv.Itoa(MaxStack)+" values pushed")
			return false
		}
		a.Src.consult(&x.wc)
		x.tunMetaSrc(a.Src)
		x.stack = append(x.stack, a.Src.read(&x.flow))
	case ActPop:
		if len(x.stack) == 0 {
			x.report(TraceError, "stack underflow") // as in Open vSwitch, the actions go on
			break
		}
		v := x.stack[len(x.stack)-1]
		x.stack = x.stack[:len(x.stack)-1]
		if !x.tunMetaDst(a.Dst) {
			break
		}
		a.Dst.consult(&x.wc)
		a.Dst.write(&x.flow, v)
	case ActLearn:
		x.learnAction(a.Learn)
	case ActFinTimeout:
		x.wc.NwProto = 0xff // as Open vSwitch, which looks whether it is TCP
		if x.rule != nil && x.flow.NwProto == IPProtoTCP && (x.flow.DlType == EthTypeIPv4 || x.flow.DlType == EthTypeIPv6) {
			// Whether the packets carry FIN or RST is not in the
			// megaflow: as Open vSwitch, the datapath tells it with the
			// packets' counts (Cache.AccountTCPFlags), and the megaflow
			// then reduces the rule's timeouts.
			x.tr.FinTimeouts = append(x.tr.FinTimeouts, FinTimeout{Rule: x.rule, Idle: uint16(a.Value), Hard: uint16(a.Mask)})
		}
	case ActNote, ActConjunction:
	case ActExit:
		x.exit = true
	case ActResubmit:
		x.resubmit(a.Port, a.Table)
	case ActGroup:
		return x.group(uint32(a.Value))
	case ActController:
		if a.Pause && x.inClone == 0 && x.inBucket == 0 {
			x.pause(a) // continuation.go
			return true
		}
		x.controller(a, false)
	case ActMeter:
		x.meter(uint32(a.Value))
	case ActCT:
		if a.CT != nil {
			x.ct(a.CT)
		}
	case ActCTClear:
		x.ctClear()
	case ActClearActions:
		x.clearActions()
	}
	return true
}

// learnAction runs a learn action: the fields it copies from the packet
// are consulted, and when translation learns, the flow it learns is built
// from the flow as the actions so far left it.
func (x *xlate) learnAction(l *Learn) {
	for i := range l.Specs {
		if sp := &l.Specs[i]; !sp.Imm {
			sp.Src.consult(&x.wc)
		}
	}
	if !x.learn {
		x.report(TraceWarn, "suppressing side effects, so learn action ignored")
		return
	}
	f := l.learnedFlow(&x.flow)
	if x.trace != nil {
		x.report(TraceDetail, learnedFlowText(&f))
	}
	x.tr.Learned = append(x.tr.Learned, f)
}

// resubmit looks the flow up again in table (TableCurrent: this table),
// with in_port port unless it is PortInPort, and runs what it finds.
func (x *xlate) resubmit(port uint32, table uint8) {
	if table == TableCurrent {
		table = x.table
	}
	deepens := table <= x.table
	switch {
	case deepens && x.depth >= MaxResubmitDepth:
		x.fail(VerdictResubmitDepth, "over max translation depth "+strconv.Itoa(MaxResubmitDepth))
		return
	case x.resubmits >= MaxResubmits:
		x.fail(VerdictResubmitLimit, "over "+strconv.Itoa(MaxResubmits)+" resubmit actions")
		return
	}
	x.resubmits++
	if port == PortInPort {
		port = x.flow.InPort
	}
	x.lookupAndRun(table, deepens, port)
}

// checkPktLarger runs check_pkt_larger(a.Value)->a.Dst, which rest, the
// actions after it in its list, follow: as Open vSwitch does, it commits
// the flow's changes, then translates rest twice, into the two branches
// of the datapath action check_pkt_len, once with the bit set (a packet
// longer than a.Value bytes) and once with it clear. Each branch starts
// from the flow, stack and action set as they are here, and runs the
// action set at its end, or freezes what it has left when a group froze
// the pipeline in it. Afterwards all of that is as it was here, and the
// lists around this one go on: the datapath runs them after either
// branch, with the packet as it was before them.
func (x *xlate) checkPktLarger(a *Action, rest []Action) {
	x.commit()
	flow, base, conntracked := x.flow, x.base, x.conntracked
	stack := append([]u128(nil), x.stack...)
	actset := append([]Action(nil), x.actset...)
	at := len(x.acts)
	x.emit(Action{Type: ActCheckPktLen, Value: a.Value})
	if x.err != VerdictOK {
		return
	}
	var lens [2]int
	for i, bit := range []uint64{1, 0} {
		start := len(x.acts)
		a.Dst.write(&x.flow, u128{lo: bit})
		x.wroteField(a.Dst)
		x.run(rest)
		if !x.freezing && x.err == VerdictOK {
			x.runActionSet()
		}
		if x.freezing {
			x.finishFreeze()
			x.freezing, x.freezeHere, x.frozen = false, false, x.frozen[:0]
			x.paused, x.frozenFrames = nil, x.frozenFrames[:0]
		}
		lens[i] = len(x.acts) - start
		x.flow, x.base, x.conntracked, x.exit = flow, base, conntracked, false
		x.stack = append(x.stack[:0], stack...)
		x.actset = append(x.actset[:0], actset...)
		if x.err != VerdictOK {
			return
		}
	}
	x.acts[at].Mask = uint64(lens[0])<<32 | uint64(lens[1])
}

// clone runs body on a copy of the flow: afterwards the flow is as before,
// and later outputs undo what the body changed.
func (x *xlate) clone(body []Action) {
	saved, exit := x.flow, x.exit
	stack := len(x.stack)
	x.inClone++
	x.run(body)
	x.inClone--
	x.flow, x.exit = saved, exit
	if len(x.stack) > stack {
		x.stack = x.stack[:stack]
	}
}

// output commits the flow's changes and outputs to port.
//
// As in Open vSwitch, the output to the ingress port that is skipped is
// the one to the flow's in_port, which set_field, load, move or pop may
// have changed; the in_port port is then the written one, and an output
// to the port the packet came in on is no longer skipped: the datapath
// sends it back there (its in_port port, as it knows the packet's own).
func (x *xlate) output(port uint32) {
	if x.flow.InPort != x.orig.InPort {
		x.outputWritten(port)
		return
	}
	if port == x.flow.InPort && x.inBucket > 0 {
		// As in Open vSwitch, a bucket's output to the ingress port is
		// skipped: no copy, and nothing committed for it.
		x.report(TraceWarn, "skipping output to input port")
		return
	}
	if port == x.flow.InPort {
		// The datapath drops it (and counts it as same-port); in_port
		// is in every megaflow's mask.
		x.report(TraceWarn, "skipping output to input port")
	}
	x.commit()
	x.emit(Action{Type: ActOutput, Port: port})
}

// outputWritten is output for a flow whose in_port was written.
func (x *xlate) outputWritten(port uint32) {
	if port == PortInPort {
		port = x.flow.InPort
		if port == PortNone {
			x.report(TraceError, "Nonexistent output port")
			return
		}
	} else if port == x.flow.InPort {
		x.report(TraceWarn, "skipping output to input port")
		return
	}
	if port == x.orig.InPort {
		port = PortInPort
	}
	x.commit()
	out := Action{Type: ActOutput, Port: port}
	if port == PortFlood || port == PortAll || port == PortNormal {
		// The datapath resolves these against the written in_port.
		out.Value = outputAsInPort | uint64(x.flow.InPort)
	}
	x.emit(out)
}

func (x *xlate) emit(a Action) {
	if len(x.acts) >= MaxActions {
		x.fail(VerdictActionCap, "over "+strconv.Itoa(MaxActions)+" datapath actions")
		return
	}
	x.acts = append(x.acts, a)
}

// prereqKey reports whether the flow has what p asks for, and consults the
// fields that tell.
func (x *xlate) prereqKey(p prereq) bool {
	if p == preNone {
		return true
	}
	if p == preVLAN {
		x.wc.VLANs[0].TCI |= VLANPresent
		return x.flow.VLANs[0].TCI&VLANPresent != 0
	}
	x.wc.DlType = 0xffff
	switch p {
	case preIPv4, preIPv6, preIP, preIPv4OrARP, preIPOrARP, preARP:
	default:
		x.wc.NwProto = 0xff
		x.wc.NwFrag |= FragLater
		if p == preND || p == preNDSolicit || p == preNDAdvert {
			x.wc.TpSrc, x.wc.TpDst = 0xffff, 0xffff
		}
	}
	full := Match{Key: x.flow}
	for i := range full.Mask.Words() {
		full.Mask.Words()[i] = ^uint64(0)
	}
	return prereqMet(&full, p)
}

// setFieldOperand returns the value set_field action a writes into field
// f and the mask of the bits it writes, in the field's own units.
func setFieldOperand(f *field, a *Action) (v, m u128) {
	switch f.kind {
	case kindIPv6:
		for i := 0; i < 8; i++ {
			v.hi = v.hi<<8 | uint64(a.IPv6[i])
			v.lo = v.lo<<8 | uint64(a.IPv6[8+i])
		}
		return v, ones(128)
	case kindMAC, kindIPv4:
		return u128{lo: a.Value}, ones(f.width())
	default:
		return u128{lo: a.Value}, u128{lo: f.bits >> f.shift}
	}
}

// setField runs a set_field (or mod_*) on the flow when the packet has the
// header, as Open vSwitch does.
func (x *xlate) setField(a *Action) {
	f := fieldByID[a.Field]
	if f == nil {
		return
	}
	pre := f.setPre
	switch a.Field {
	case FieldNwSrc, FieldNwDst:
		pre = preIPv4
	case FieldTpSrc, FieldTpDst:
		pre = preL4
	}
	if !x.prereqKey(pre) {
		return
	}
	v, m := setFieldOperand(f, a)
	setFieldBits(&x.flow, f, v, m)
	setFieldBits(&x.wc, f, getField(&x.wc, f).or(m), ones(f.width()))
	if isL3Field(a.Field) {
		x.wc.NwProto = 0xff // as Open vSwitch, which examines it to write L3
	}
}

// isL3Field reports whether id is an IPv4 or IPv6 header field.
func isL3Field(id FieldID) bool {
	switch id {
	case FieldNwSrc, FieldNwDst, FieldNwTos, FieldIPDSCP, FieldNwECN, FieldNwTTL,
		FieldIPv6Src, FieldIPv6Dst, FieldIPv6Label:
		return true
	}
	return false
}

// decTTL decrements the IP TTL; on a TTL of 1 or 0 it stops the action
// list (and reports false).
func (x *xlate) decTTL() bool {
	if !x.prereqKey(preIP) {
		return true
	}
	x.wc.NwTTL, x.wc.NwProto = 0xff, 0xff
	if x.flow.NwTTL <= 1 {
		if x.stop == VerdictOK {
			x.stop = VerdictTTLExceeded
		}
		if x.flow.DlType == EthTypeIPv6 {
			x.report(TraceWarn, "IPv6 decrement TTL exception")
		} else {
			x.report(TraceWarn, "IPv4 decrement TTL exception")
		}
		return false
	}
	x.flow.NwTTL--
	return true
}

// wroteField finishes a write (load, move, pop) into sf. A write into
// vlan_tci is a VLAN change, as in Open vSwitch: with the present (CFI)
// bit set the packet gets a tag (an 802.1Q one if it had none) or its tag
// is rewritten, with it clear the tag goes; commit writes the pushes and
// pops. What that does depends on the tags the packet has, which are
// consulted.
func (x *xlate) wroteField(sf Subfield) {
	if sf.field().st != stTCI {
		return
	}
	x.wc.VLANs[0] = VLAN{TPID: 0xffff, TCI: 0xffff}
	x.wc.VLANs[1] = VLAN{TPID: 0xffff, TCI: 0xffff}
	if v := &x.flow.VLANs[0]; v.TCI&VLANPresent != 0 && v.TPID == 0 {
		v.TPID = EthTypeVLAN
	}
}

// vlan runs a VLAN action on the flow.
func (x *xlate) vlan(a *Action) {
	x.wc.VLANs[0] = VLAN{TPID: 0xffff, TCI: 0xffff}
	x.wc.VLANs[1] = VLAN{TPID: 0xffff, TCI: 0xffff}
	v := &x.flow.VLANs
	present := v[0].TCI&VLANPresent != 0
	switch a.Type {
	case ActPushVLAN:
		// VID 0, priority 0, as Open vSwitch pushes a tag.
		v[1], v[0] = v[0], VLAN{TPID: uint16(a.Value), TCI: VLANPresent}
	case ActPopVLAN:
		// As Open vSwitch's flow_pop_vlan: the tags are the leading
		// headers with the present bit; the last of them is cleared
		// after the others move out by one. A header without the
		// present bit (a TCI written without it) stays where it is.
		switch {
		case present && v[1].TCI&VLANPresent != 0:
			v[0], v[1] = v[1], VLAN{}
		case present:
			v[0] = VLAN{}
		}
	case ActSetVLANVID, ActSetVLANPCP:
		if !present {
			v[1], v[0] = v[0], VLAN{TPID: EthTypeVLAN, TCI: VLANPresent}
		}
		if a.Type == ActSetVLANVID {
			v[0].TCI = v[0].TCI&^VLANVIDMask | uint16(a.Value)&VLANVIDMask
		} else {
			v[0].TCI = v[0].TCI&^VLANPCPMask | uint16(a.Value&7)<<13
		}
	}
}

// commitFields are the fields whose changes commit writes as set actions,
// in the order it writes them.
var commitFields = []FieldID{
	FieldDlSrc, FieldDlDst, FieldNwSrc, FieldNwDst, FieldNwTos, FieldNwECN,
	FieldNwTTL, FieldIPv6Src, FieldIPv6Dst, FieldIPv6Label, FieldArpOp,
	FieldTpSrc, FieldTpDst, FieldArpSha, FieldArpTha, FieldNdTarget, FieldPktMark,
	// The tunnel metadata a tunnel port's output encapsulates with
	// (remote_ip=flow, key=flow), as Open vSwitch's set(tunnel(...)).
	FieldTunID, FieldTunSrc, FieldTunDst, FieldTunIPv6Src, FieldTunIPv6Dst,
}

// commit writes datapath actions that bring the packet (base) to the flow,
// and consults every field it writes.
//
// As Open vSwitch's, it writes no IPv4 or IPv6 header change for an IP
// packet whose protocol is 0 (it is taken not to have a full L3 header):
// such a change stays pending. Whether an IP header change is written
// depends on the protocol, which it then consults.
func (x *xlate) commit() {
	x.commitVLAN()
	base := x.base
	ip := x.flow.DlType == EthTypeIPv4 || x.flow.DlType == EthTypeIPv6
	noL3 := ip && x.flow.NwProto == 0
	for _, id := range commitFields {
		f := fieldByID[id]
		v := getField(&x.flow, f)
		bits := ones(f.width())
		if !is128(f) && f.kind != kindMAC && f.kind != kindIPv4 {
			bits = u128{lo: f.bits >> f.shift}
		}
		if v.and(bits) == getField(&x.base, f).and(bits) {
			continue
		}
		if ip && isL3Field(id) {
			// Open vSwitch writes the CE mark a decapsulation copies
			// inward without consulting the protocol (an OpenFlow
			// action's change consults it); where it would write none
			// (noL3), the protocol stays consulted, or the megaflow
			// would also skip the mark of packets that need it.
			if id != FieldNwECN || !x.ceMarkOnly() || noL3 {
				proto := fieldByID[FieldNwProto]
				setFieldBits(&x.wc, proto, ones(proto.width()), ones(proto.width()))
			}
			if noL3 {
				continue
			}
		}
		setFieldBits(&x.wc, f, getField(&x.wc, f).or(bits), ones(f.width()))
		a := Action{Type: ActSetField, Field: x.datapathField(id), Value: v.lo}
		if f.kind == kindIPv6 {
			for i := 0; i < 8; i++ {
				a.IPv6[i] = byte(v.hi >> (56 - 8*i))
				a.IPv6[8+i] = byte(v.lo >> (56 - 8*i))
			}
		}
		if id == FieldNwTos {
			a.Value = v.lo & 0xfc
		}
		if id == FieldNwTos || id == FieldNwECN {
			// Open vSwitch's set of the TOS byte has in its mask every
			// bit the megaflow matches by this commit, not only those
			// that change (tos=0xbb rather than tos=0x3/0x3 once a rule
			// read the DSCP): FormatDatapathActions writes it so.
			a.Mask = uint64(x.wc.NwTos)
		}
		x.emit(a)
	}
	x.commitTunMeta()
	x.base = x.flow
	if noL3 {
		for _, id := range commitFields {
			if isL3Field(id) {
				f := fieldByID[id]
				setFieldBits(&x.base, f, getField(&base, f), ones(f.width()))
			}
		}
	}
}

// ceMarkOnly reports whether the packet's ECN bits differ from the
// datapath's only by the CE mark its decapsulation copies inward.
func (x *xlate) ceMarkOnly() bool {
	return x.orig.ceOverECT() && x.flow.NwTos&ecnMask == ecnCE && x.base.NwTos&ecnMask == x.orig.NwTos&ecnMask
}

// datapathField names a changed field as the datapath's set action for
// this packet's protocol needs it.
func (x *xlate) datapathField(id FieldID) FieldID {
	k := &x.flow
	arp := k.DlType == EthTypeARP || k.DlType == EthTypeRARP
	switch id {
	case FieldNwSrc:
		if arp {
			return FieldArpSpa
		}
	case FieldNwDst:
		if arp {
			return FieldArpTpa
		}
	case FieldTpSrc, FieldTpDst:
		src := id == FieldTpSrc
		switch {
		case k.NwProto == IPProtoICMP && k.DlType == EthTypeIPv4 && src:
			return FieldICMPType
		case k.NwProto == IPProtoICMP && k.DlType == EthTypeIPv4:
			return FieldICMPCode
		case k.NwProto == IPProtoICMPv6 && k.DlType == EthTypeIPv6 && src:
			return FieldICMPv6Type
		case k.NwProto == IPProtoICMPv6 && k.DlType == EthTypeIPv6:
			return FieldICMPv6Code
		}
	case FieldArpSha:
		if !arp {
			return FieldNdSll
		}
	case FieldArpTha:
		if !arp {
			return FieldNdTll
		}
	}
	return id
}

// commitVLAN writes the VLAN pushes, pops and rewrites that bring the
// packet's tags to the flow's.
func (x *xlate) commitVLAN() {
	f, b := &x.flow.VLANs, &x.base.VLANs
	if *f == *b {
		return
	}
	depth := func(v *[2]VLAN) int {
		n := 0
		for n < 2 && v[n].TCI&VLANPresent != 0 {
			n++
		}
		return n
	}
	for depth(b) > depth(f) {
		x.emit(Action{Type: ActPopVLAN})
		b[0], b[1] = b[1], VLAN{}
	}
	if n := depth(f); n > 0 && n == depth(b) && f[0].TPID != b[0].TPID {
		// The outer tag's TPID changed (strip_vlan, then push_vlan of
		// another TPID): as Open vSwitch, the tag is popped and pushed
		// again.
		x.emit(Action{Type: ActPopVLAN})
		b[0], b[1] = b[1], VLAN{}
	}
	for d := depth(b); d < depth(f); d++ {
		tpid := f[depth(f)-1-d].TPID
		x.emit(Action{Type: ActPushVLAN, Value: uint64(tpid)})
		b[1], b[0] = b[0], VLAN{TPID: tpid, TCI: VLANPresent}
	}
	if depth(f) == 0 {
		return // no tag left: what the flow holds in its TCI is not sent
	}
	if b[0].TCI&VLANVIDMask != f[0].TCI&VLANVIDMask {
		x.emit(Action{Type: ActSetVLANVID, Value: uint64(f[0].TCI & VLANVIDMask)})
	}
	if b[0].TCI&VLANPCPMask != f[0].TCI&VLANPCPMask {
		x.emit(Action{Type: ActSetVLANPCP, Value: uint64(f[0].TCI >> 13)})
	}
}

// u128Text writes v as Open vSwitch writes a subfield's value: 0, or
// hexadecimal with 0x.
func u128Text(v u128) string {
	if v.hi == 0 {
		return loadValue(v.lo)
	}
	lo := strconv.FormatUint(v.lo, 16)
	return "0x" + strconv.FormatUint(v.hi, 16) + strings.Repeat("0", 16-len(lo)) + lo
}

// FormatTrace writes the steps of a traced translation as ofproto/trace
// prints them: each step on its own line, a step's sub-steps indented
// under it, except that the last step of a list that is a table lookup
// continues at its parent's indentation.
func FormatTrace(b *strings.Builder, nodes []*TraceNode) {
	formatTrace(b, nodes, 0)
}

func formatTrace(b *strings.Builder, nodes []*TraceNode, level int) {
	last := len(nodes) - 1
	for last > 0 && nodes[last].Kind == TraceEnd {
		last--
	}
	for i, n := range nodes {
		more := 0
		if i < last || n.Kind != TraceTable && n.Kind != TraceEnd {
			more = 1
		}
		b.WriteString(strings.Repeat(" ", (level+more)*4))
		switch n.Kind {
		case TraceWarn:
			b.WriteString(" >> " + n.Text + "\n")
		case TraceError:
			b.WriteString(" >>>> " + n.Text + " <<<<\n")
		case TraceDetail:
			b.WriteString(" -> " + n.Text + "\n")
		default:
			b.WriteString(n.Text + "\n")
		}
		formatTrace(b, n.Subs, level+2*more)
	}
}
