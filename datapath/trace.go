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
	Start     flow.Key
	Mismatch  bool
	Malformed flow.Malformed
	// Final is the packet's OpenFlow flow at the end of the pipeline,
	// registers and metadata included.
	Final flow.Key
	// Verdict is why the packet was dropped short of its outputs: the
	// translation's verdict, or the datapath actions' if they stopped.
	Verdict flow.Verdict
	// Outputs are the copies the datapath actions sent, in order.
	Outputs []TraceOutput
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
	t := &Trace{Bridge: b.cfg.Name, Policy: b.Policy(), Flow: k}
	frame := flow.BuildFrame(&k)
	var off flow.Offsets
	t.Malformed = flow.Extract(&t.Start, &off, frame, k.InPort)
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
	tc := tracer{b: b, t: t, ports: ports, in: in, key: &run, now: time.Now().UnixNano()}
	_, t.Verdict = flow.Execute(frame, &run, &off, tr.Actions, &tc)
	if t.Verdict == flow.VerdictOK {
		t.Verdict = tr.Verdict
	}
	return t
}

// tracer records the outputs of a traced packet as resolveOutput, which
// the poll threads also use, decides them.
type tracer struct {
	b      *Bridge
	t      *Trace
	ports  *portTable
	in     *Port
	key    *flow.Key // the packet's key as the actions change it
	now    int64
	action uint32 // the port of the output action being resolved
}

// Output implements flow.Outputter.
func (tr *tracer) Output(port uint32, _ []byte) {
	tr.action = port
	resolveOutput(tr.ports, tr.in, tr.t.Start.InPort, port, tr)
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
	b.WriteString("Flow: " + flow.FormatMicroflow(&t.Flow) + "\n")
	switch {
	case t.Mismatch && t.Malformed != flow.MalformedNone:
		b.WriteString("(no packet has exactly this flow: a frame built from it parses as " + t.Malformed.String() + "; the actions ran on that frame)\n")
	case t.Mismatch:
		b.WriteString("(no packet has exactly this flow; the actions ran on: " + flow.FormatMicroflow(&t.Start) + ")\n")
	}
	title := "bridge(\"" + t.Bridge + "\")"
	b.WriteString("\n" + title + "\n" + strings.Repeat("-", len(title)) + "\n")
	if t.Translation != nil {
		flow.FormatTrace(&b, t.Translation.Trace)
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
	if t.Final == t.Start {
		b.WriteString("unchanged\n")
	} else {
		b.WriteString(flow.FormatMicroflow(&t.Final) + "\n")
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
	mf := flow.FormatMatch(&mfm, flow.DefaultPriority)
	if mf != "" {
		mf = "," + mf
	}
	b.WriteString("Megaflow: " + mark + "recirc_id=0,eth" + mf + "\n")
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
	return b.String()
}

// DropReasons returns why the datapath drops the traced packet, as its
// counters name it, when it sends no copy of it: the verdict that stopped
// the actions (action-cap, ttl-exceeded, no-room), no-rule when no rule
// matches or the actions output nowhere, or else the reasons its copies
// were dropped for, each once, in order. It is nil when a copy is sent;
// copies dropped beside it are in Outputs.
func (t *Trace) DropReasons() []DropReason {
	var rs []DropReason
	for _, o := range t.Outputs {
		if !o.Dropped {
			return nil
		}
		if !slices.Contains(rs, o.Reason) {
			rs = append(rs, o.Reason)
		}
	}
	if len(rs) == 0 {
		rs = append(rs, verdictDrop(t.Verdict))
	}
	return rs
}

// DatapathActions returns the traced packet's datapath actions as Open
// vSwitch writes them: before each output, set actions for the headers that
// changed since the last output (or push_vlan/pop_vlan), then the OpenFlow
// port number; "drop" when nothing is sent.
func (t *Trace) DatapathActions() string {
	var acts []string
	last := t.Start
	for _, o := range t.Outputs {
		if o.Dropped {
			continue
		}
		acts = append(acts, flow.ODPSetActions(&last, &o.Key)...)
		if o.PacketIn != nil {
			acts = append(acts, flow.FormatODPPacketIn(o.PacketIn, true))
		} else {
			acts = append(acts, strconv.FormatUint(uint64(o.Port), 10))
		}
		last = o.Key
	}
	if len(acts) == 0 {
		return "drop"
	}
	return strings.Join(acts, ",")
}
