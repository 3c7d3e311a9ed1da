package datapath

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// Trace is what ofproto/trace reports for one microflow: the pipeline's
// translation of it (the same Translate a poll thread's cache miss runs),
// the megaflow the datapath would install for it, and what its datapath
// actions do, run on a frame built from the microflow with the datapath's
// own action code and output resolver.
type Trace struct {
	Bridge string
	Policy Policy
	// Flow is the microflow as given.
	Flow flow.Key
	// Rule is the rule table 0 gives the packet; nil when none matches.
	Rule *flow.Rule
	// Translation is the pipeline's translation of Start, with its steps.
	Translation *flow.Translation
	// Megaflow is Start under the translation's mask: exactly the
	// megaflow a poll thread installs for it.
	Megaflow flow.Match
	// Start is the key the pipeline ran on: Flow, unless no frame carries
	// Flow exactly (Mismatch), in which case it is the key of the frame
	// built for it, which Extract may also report as Malformed (an IPv6
	// microflow whose nw_proto is an extension header, for instance).
	Start flow.Key
	// output writes an output to one of the bridge's ports as a
	// datapath action (Bridge.ODPOutput).
	output    func(port uint32, k *flow.Key) string
	Mismatch  bool
	Malformed flow.Malformed
	// Final is the packet's OpenFlow flow at the end of the pipeline,
	// registers and metadata included.
	Final flow.Key
	// Verdict is why the packet was dropped short of its outputs: the
	// translation's verdict, or the datapath actions' if they stopped.
	Verdict flow.Verdict
	// Outputs are the copies the datapath actions sent, in order, and
	// their ct and recirc actions (TraceOutput.ODP).
	Outputs []TraceOutput
	// Recirculations are the passes of the packet's recirculated copies
	// (ct(table=T)), in the order they ran; each is traced as the packet's
	// first pass is, from Flow, the key it came back with. A pass's own
	// recirculations are in the first pass's list, after it.
	Recirculations []*Trace
	// RecircID is the id a recirculated pass came back with (0 for the
	// first pass); CTState is the ct_state the trace gave it: as Open
	// vSwitch's ofproto/trace, which runs no tracker, the connection is
	// taken as new (trk|new).
	RecircID uint32
	CTState  uint8
}

// TraceOutput is one copy an output action sent.
type TraceOutput struct {
	// Action is the port the output action names (maybe a reserved port
	// such as flow.PortFlood); Port the bridge port it resolved to.
	Action uint32
	Port   uint32
	// Key is the packet as it leaves (set-field actions before the output
	// applied).
	Key flow.Key
	// Dropped reports that the copy is dropped, for Reason.
	Dropped bool
	Reason  DropReason
	// PacketIn is set for a copy a controller action sends to the
	// controllers (Port is flow.PortController).
	PacketIn *flow.PacketIn
	// ODP is set for a datapath action that is not an output: ct(...) or
	// recirc(ID), as the datapath prints it (Key is the packet then).
	ODP string
}

// Trace runs microflow k through the bridge as a packet received on
// k.InPort would go, without sending anything, learning MAC addresses or
// touching any counter.
func (b *Bridge) Trace(k flow.Key) *Trace {
	return b.trace(k, false)
}

// TraceGenerate traces microflow k as Trace does, and then has the packet's
// side effects as a packet received would (ofproto/trace -generate): the
// flows its learn actions learned are installed.
func (b *Bridge) TraceGenerate(k flow.Key) *Trace {
	return b.trace(k, true)
}

func (b *Bridge) trace(k flow.Key, generate bool) *Trace {
	t := &Trace{Bridge: b.cfg.Name, Policy: b.Policy(), Flow: k, output: b.ODPOutput}
	frame := flow.BuildFrame(&k)
	var off flow.Offsets
	t.Malformed = flow.Extract(&t.Start, &off, frame, k.InPort)
	// A frame carries no tunnel metadata: the packet has the
	// microflow's, as one a tunnel port decapsulated has its outer
	// header's.
	t.Start.SetTunnel(&k)
	t.Mismatch = t.Malformed != flow.MalformedNone || t.Start != k

	var tr *flow.Translation
	if generate {
		tr = b.table.Snapshot().TranslateLearning(&t.Start, true)
		b.table.Learn(tr.Learned)
	} else {
		tr = b.table.Snapshot().Translate(&t.Start, true)
	}
	t.Translation = tr
	if len(tr.Rules) > 0 && tr.Rules[0].Table == 0 {
		t.Rule = tr.Rules[0]
	}
	t.Start.Masked(&tr.Mask, &t.Megaflow.Key)
	t.Megaflow.Mask = tr.Mask
	t.Final = tr.Final

	run := t.Start
	ports := b.ports.Load()
	in := ports.lookup(t.Start.InPort)
	tc := tracer{b: b, t: t, root: t, ports: ports, in: in, key: &run, now: time.Now().UnixNano(), generate: generate}
	_, t.Verdict = flow.Execute(frame, &run, &off, tr.Actions, &tc)
	if t.Verdict == flow.VerdictOK {
		t.Verdict = tr.Verdict
	}
	return t
}

// Conntrack implements flow.Recirculator for a traced packet: as Open
// vSwitch's ofproto/trace, it runs no tracker (a trace has no side
// effects) and takes the connection as new: the packet comes out with
// ct_state trk|new, the ct's zone, and the mark and label its exec
// actions set. On a bridge without a tracker the packet stops there, as
// a poll thread drops it.
func (tr *tracer) Conntrack(_ []byte, k *flow.Key, _ *flow.Offsets, ct *flow.CT, _ []flow.Action) flow.Verdict {
	if tr.b.cfg.Conntrack == nil {
		return flow.VerdictNoConntrack
	}
	tr.t.Outputs = append(tr.t.Outputs, TraceOutput{Key: *k, ODP: flow.FormatODPCT(ct)})
	k.CtState = flow.CtStateTracked | flow.CtStateNew
	k.CtZone = ct.Zone
	if ct.SetMark {
		k.CtMark = k.CtMark&^ct.MarkMask | ct.Mark&ct.MarkMask
	}
	if ct.SetLabel {
		for i := range k.CtLabel {
			k.CtLabel[i] = k.CtLabel[i]&^ct.LabelMask[i] | ct.Label[i]&ct.LabelMask[i]
		}
	}
	return flow.VerdictOK
}

// hashBefore returns the datapath hash action that computed the dp_hash
// of recirc(id) in acts (a dp_hash group's), as dpctl/dump-flows prints
// it, or "" when none did: Execute runs it on the key, which the trace
// sees only at the recirculation.
func hashBefore(acts []flow.Action, id uint32) string {
	for i := 1; i < len(acts); i++ {
		if acts[i].Type == flow.ActRecirc && uint32(acts[i].Value) == id && acts[i-1].Type == flow.ActHash {
			return flow.FormatODPActions(acts[i-1 : i])
		}
	}
	return ""
}

// Recirculate implements flow.Recirculator for a traced packet: the copy
// is traced as a pass of its own (Trace.Recirculations), translated from
// the frozen state its id names, as a poll thread would.
func (tr *tracer) Recirculate(frame []byte, k *flow.Key, off *flow.Offsets) {
	odp := "recirc(0x" + strconv.FormatUint(uint64(k.RecircID), 16) + ")"
	if tr.t.Translation != nil {
		if h := hashBefore(tr.t.Translation.Actions, k.RecircID); h != "" {
			odp = h + "," + odp
		}
	}
	tr.t.Outputs = append(tr.t.Outputs, TraceOutput{Key: *k, ODP: odp})
	if tr.depth >= MaxRecircDepth {
		tr.drop(k.InPort, DropRecircDepth)
		return
	}
	sub := &Trace{Bridge: tr.t.Bridge, Policy: tr.t.Policy, Flow: *k, Start: *k, RecircID: k.RecircID, CTState: k.CtState}
	// The pass's flow, as Open vSwitch's trace shows it, is the packet
	// with the pipeline state its translation thaws.
	tr.b.table.Recircs().Thaw(&sub.Flow)
	tr.root.Recirculations = append(tr.root.Recirculations, sub)
	var t *flow.Translation
	if tr.generate {
		t = tr.b.table.Snapshot().TranslateLearning(&sub.Start, true)
		tr.b.table.Learn(t.Learned)
	} else {
		t = tr.b.table.Snapshot().Translate(&sub.Start, true)
	}
	sub.Translation = t
	sub.Start.Masked(&t.Mask, &sub.Megaflow.Key)
	sub.Megaflow.Mask = t.Mask
	sub.Final = t.Final
	buf := make([]byte, len(frame), len(frame)+flow.FrameSpare)
	copy(buf, frame)
	run, o := *k, *off
	tc := tracer{b: tr.b, t: sub, root: tr.root, ports: tr.ports, in: tr.in, key: &run, now: tr.now, depth: tr.depth + 1, generate: tr.generate}
	_, sub.Verdict = flow.Execute(buf, &run, &o, t.Actions, &tc)
	if sub.Verdict == flow.VerdictOK {
		sub.Verdict = t.Verdict
	}
}

// tracer records the outputs of a traced packet as resolveOutput, which
// the poll threads also use, decides them.
type tracer struct {
	b     *Bridge
	t     *Trace // the pass being traced
	root  *Trace // the packet's first pass
	depth int    // how many recirculations deep the pass is
	// generate: learn actions install what they learn (TraceGenerate).
	generate bool
	ports    *portTable
	in       *Port
	key      *flow.Key // the packet's key as the actions change it
	now      int64
	action   uint32 // the port of the output action being resolved
}

// Output implements flow.Outputter.
func (tr *tracer) Output(port uint32, _ []byte) {
	tr.action = port
	resolveOutput(tr.ports, tr.in, tr.t.Start.InPort, port, tr)
}

// OutputAs implements flow.InPortOutputter, as pmd.OutputAs.
func (tr *tracer) OutputAs(port, inPort uint32, _ []byte) {
	tr.action = port
	saved := tr.key.InPort
	tr.key.InPort = inPort
	resolveOutput(tr.ports, tr.ports.lookup(inPort), inPort, port, tr)
	tr.key.InPort = saved
}

// normal is the normal action's decision, without learning.
func (tr *tracer) normal() uint32 { return tr.b.macs.Forward(tr.key, tr.now) }

// send records a copy to dst, dropped if the output policy refuses dst's
// device as it is now, or if picking its tx queue would spin.
func (tr *tracer) send(dst *Port) {
	st := dst.dev.Snapshot()
	if reason, ok := checkOutput(tr.t.Policy, st); !ok {
		tr.drop(dst.OFPort, reason)
		return
	}
	if tr.in != nil && queueSpins(tr.t.Policy, st.TxQueues(), tr.in.rxRecorded.Load()) {
		// The kernel's queue pick spins for a packet with a recorded
		// rx queue; the watchdog then drops it as a lockup.
		tr.drop(dst.OFPort, DropLockup)
		return
	}
	tr.t.Outputs = append(tr.t.Outputs, TraceOutput{Action: tr.action, Port: dst.OFPort, Key: *tr.key})
}

func (tr *tracer) drop(port uint32, reason DropReason) {
	tr.t.Outputs = append(tr.t.Outputs, TraceOutput{Action: tr.action, Port: port, Key: *tr.key, Dropped: true, Reason: reason})
}

// String formats the trace as ovs-appctl ofproto/trace prints one: the
// flow, the bridge's table with the rule hit and its actions, the final
// flow, the megaflow and the datapath actions. Ports are OpenFlow port
// numbers; copies the datapath would drop are listed under the actions
// with their drop reason.
func (t *Trace) String() string {
	var b strings.Builder
	t.writePass(&b)
	for _, r := range t.Recirculations {
		rule := strings.Repeat("=", 79)
		b.WriteString("\n" + rule + "\nrecirc(0x" + strconv.FormatUint(uint64(r.RecircID), 16) + ")")
		if r.CTState == flow.CtStateTracked|flow.CtStateNew {
			b.WriteString(" - resume conntrack with default ct_state=trk|new (use --ct-next to customize)")
		}
		b.WriteString("\n" + rule + "\n\n")
		r.writePass(&b)
	}
	return b.String()
}

// writePass writes one pass of the trace: its flow, the bridge's tables,
// the final flow, the megaflow and the datapath actions.
func (t *Trace) writePass(b *strings.Builder) {
	b.WriteString("Flow: " + traceFlowText(&t.Flow) + "\n")
	switch {
	case t.Mismatch && t.Malformed != flow.MalformedNone:
		b.WriteString("(no packet has exactly this flow: a frame built from it parses as " + t.Malformed.String() + "; the actions ran on that frame)\n")
	case t.Mismatch:
		b.WriteString("(no packet has exactly this flow; the actions ran on: " + traceFlowText(&t.Start) + ")\n")
	}
	title := "bridge(\"" + t.Bridge + "\")"
	b.WriteString("\n" + title + "\n" + strings.Repeat("-", len(title)) + "\n")
	if t.Translation != nil {
		flow.FormatTrace(b, t.Translation.Trace)
	}
	for _, o := range t.Outputs {
		if o.Dropped {
			b.WriteString("     >> output to port " + strconv.FormatUint(uint64(o.Port), 10) + " dropped: " + o.Reason.String() + "\n")
		}
	}
	failed := t.Translation != nil && len(t.Translation.Actions) == 0 && t.Verdict.Failed()
	if t.Verdict != flow.VerdictOK && !failed && t.Verdict != flow.VerdictTTLExceeded {
		b.WriteString("     >> actions stopped: " + t.Verdict.String() + "\n")
	}
	b.WriteString("\nFinal flow: ")
	begin := t.Start
	if t.RecircID != 0 {
		begin = t.Flow // with the thawed pipeline state
	}
	if t.Final == begin {
		b.WriteString("unchanged\n")
	} else {
		b.WriteString(traceFlowText(&t.Final) + "\n")
	}
	// Open vSwitch writes pkt_mark before recirc_id.
	mark := ""
	if m := t.Megaflow; m.Mask.PktMark != 0 {
		var pm flow.Match
		pm.Key.PktMark, pm.Mask.PktMark = m.Key.PktMark, m.Mask.PktMark
		mark = flow.FormatMatch(&pm, flow.DefaultPriority) + ","
	}
	mfm := t.Megaflow
	mfm.Key.PktMark, mfm.Mask.PktMark = 0, 0
	// Open vSwitch writes dp_hash after recirc_id, before the ct fields.
	dp := ""
	if mfm.Mask.DpHash != 0 {
		var dm flow.Match
		dm.Key.DpHash, dm.Mask.DpHash = mfm.Key.DpHash, mfm.Mask.DpHash
		dp = flow.FormatMatch(&dm, flow.DefaultPriority) + ","
		mfm.Key.DpHash, mfm.Mask.DpHash = 0, 0
	}
	ct := flow.FormatCTMatch(&mfm.Key, &mfm.Mask, false)
	clearCTMatch(&mfm)
	mf := flow.FormatMatch(&mfm, flow.DefaultPriority)
	if mf != "" {
		mf = "," + mf
	}
	if ct != "" {
		ct += ","
	}
	b.WriteString("Megaflow: " + mark + "recirc_id=" + hexZero(uint64(t.Megaflow.Key.RecircID)) + "," + dp + ct + "eth" + mf + "\n")
	b.WriteString("Datapath actions: " + t.DatapathActions() + "\n")
	if failed {
		b.WriteString("Translation failed (" + t.Verdict.Explain() + "), packet is dropped.\n")
	}
	if rs := t.DropReasons(); len(rs) > 0 {
		names := make([]string, len(rs))
		for i, r := range rs {
			names[i] = r.String()
		}
		b.WriteString("Drop reason: " + strings.Join(names, ", ") + "\n")
	}
}

// traceFlowText writes a packet's flow as ofproto/trace does: its
// recirculation id and connection tracking fields when set, then the
// microflow.
func traceFlowText(k *flow.Key) string {
	c := *k
	text := ""
	if c.RecircID != 0 {
		text = "recirc_id=" + hexZero(uint64(c.RecircID)) + ","
	}
	if c.DpHash != 0 {
		text += "dp_hash=" + hexZero(uint64(c.DpHash)) + ","
	}
	mask := ctMask(&c)
	if ct := flow.FormatCTMatch(&c, &mask, true); ct != "" {
		text += ct + ","
	}
	if c.RecircID != 0 {
		text += "eth," // as Open vSwitch writes a flow with a recirc_id
	}
	c.RecircID, c.DpHash = 0, 0
	clearCTKey(&c)
	return text + flow.FormatMicroflowTunnel(&c, flow.TraceTunnelText(k))
}

// ctMask is an exact mask of the connection tracking fields k has set.
func ctMask(k *flow.Key) flow.Key {
	var m flow.Key
	if k.CtState != 0 {
		m.CtState = 0xff
	}
	if k.CtZone != 0 {
		m.CtZone = 0xffff
	}
	if k.CtMark != 0 {
		m.CtMark = ^uint32(0)
	}
	if k.CtLabel != ([16]byte{}) {
		for i := range m.CtLabel {
			m.CtLabel[i] = 0xff
		}
	}
	if k.CtNwProto != 0 {
		m.CtNwProto = 0xff
		m.CtNwSrc, m.CtNwDst = ^uint32(0), ^uint32(0)
		m.CtTpSrc, m.CtTpDst = 0xffff, 0xffff
		for i := range m.CtIPv6Src {
			m.CtIPv6Src[i], m.CtIPv6Dst[i] = 0xff, 0xff
		}
	}
	return m
}

// clearCTKey zeroes k's recirculation-related fields, which the trace
// writes itself.
func clearCTKey(k *flow.Key) {
	k.CtState, k.CtZone, k.CtMark, k.CtLabel = 0, 0, 0, [16]byte{}
	k.CtNwSrc, k.CtNwDst, k.CtIPv6Src, k.CtIPv6Dst = 0, 0, [16]byte{}, [16]byte{}
	k.CtNwProto, k.CtTpSrc, k.CtTpDst = 0, 0, 0
}

// clearCTMatch takes the recirculation id and ct fields out of m.
func clearCTMatch(m *flow.Match) {
	clearCTKey(&m.Key)
	clearCTKey(&m.Mask)
	m.Key.RecircID, m.Mask.RecircID = 0, 0
}

// hexZero writes v as C's %#x: 0, or hexadecimal with 0x.
func hexZero(v uint64) string {
	if v == 0 {
		return "0"
	}
	return "0x" + strconv.FormatUint(v, 16)
}

// DropReasons returns why the datapath drops the traced packet, as its
// counters name it, when it sends no copy of it: the verdict that stopped
// the actions (action-cap, ttl-exceeded, no-room), no-rule when no rule
// matches or the actions output nowhere, or else the reasons its copies
// were dropped for, each once, in order. It is nil when a copy is sent;
// copies dropped beside it are in Outputs.
func (t *Trace) DropReasons() []DropReason {
	var rs []DropReason
	passes := append([]*Trace{t}, t.Recirculations...)
	for _, p := range passes {
		for _, o := range p.Outputs {
			if o.ODP == "" && !o.Dropped {
				return nil
			}
		}
	}
	for _, p := range passes {
		for _, o := range p.Outputs {
			if o.Dropped && !slices.Contains(rs, o.Reason) {
				rs = append(rs, o.Reason)
			}
		}
	}
	if len(rs) == 0 {
		// The last pass's verdict says why nothing went out.
		rs = append(rs, verdictDrop(passes[len(passes)-1].Verdict))
	}
	return rs
}

// DatapathActions returns the traced packet's datapath actions as Open
// vSwitch writes them: before each output, set actions for the headers that
// changed since the last output (or push_vlan/pop_vlan), then the OpenFlow
// port number; "drop" when nothing is sent.
func (t *Trace) DatapathActions() string {
	if t.Translation != nil && t.output != nil && flow.HasCheckPktLen(t.Translation.Actions) {
		// The branches of a check_pkt_len are the translation's, not
		// the traced packet's: both are written, as Open vSwitch does.
		return flow.FormatDatapathActions(t.Translation.Actions, &t.Start, t.output)
	}
	var acts []string
	last := t.Start
	// The TOS sets' masks are the bits the megaflow matched at each
	// commit, which only the translation's actions record.
	var tosMasks []uint8
	if t.Translation != nil {
		tosMasks = flow.TOSCommitMasks(t.Translation.Actions)
	}
	for _, o := range t.Outputs {
		if o.Dropped {
			continue
		}
		var tosMatched uint8
		if last.NwTos != o.Key.NwTos && len(tosMasks) > 0 {
			tosMatched, tosMasks = tosMasks[0], tosMasks[1:]
		}
		acts = append(acts, flow.ODPMaskedSetActions(&last, &o.Key, tosMatched)...)
		if last.CtState != 0 && o.Key.CtState == 0 {
			acts = append(acts, "ct_clear") // only ct_clear untracks a packet
		}
		switch {
		case o.ODP != "":
			acts = append(acts, o.ODP)
		case o.PacketIn != nil:
			acts = append(acts, flow.FormatODPPacketIn(o.PacketIn, true))
		default:
			acts = append(acts, strconv.FormatUint(uint64(o.Port), 10))
		}
		last = o.Key
	}
	if len(acts) == 0 {
		return "drop"
	}
	return strings.Join(acts, ",")
}
