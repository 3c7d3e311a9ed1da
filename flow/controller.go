package flow

import (
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// This file is the controller action: controller, controller:MAX_LEN and
// controller(reason=R,max_len=N,id=I,userdata=HEX), as ovs-actions(7)
// describes them, its text, its translation into a datapath action that
// carries what the packet in reports, and how Execute hands the packet to
// whoever sends packet ins.

// PacketInReason is why a packet went to the controller (OFPR_*).
type PacketInReason uint8

// The packet in reasons, with OpenFlow's numbers.
const (
	ReasonNoMatch    PacketInReason = 0 // no_match: a table miss
	ReasonAction     PacketInReason = 1 // action: a controller action
	ReasonInvalidTTL PacketInReason = 2 // invalid_ttl
	ReasonActionSet  PacketInReason = 3 // action_set
	ReasonGroup      PacketInReason = 4 // group
	ReasonPacketOut  PacketInReason = 5 // packet_out

	// Reasons of Open vSwitch's own that never appear in an action: a
	// controller action of a table-miss flow (priority 0, matching
	// everything), which OpenFlow 1.3 and later report as no_match and
	// earlier versions as action; and a table miss sent to the controller
	// without any flow (MissPolicy), reported as no_match.
	ReasonExplicitMiss PacketInReason = 6
	ReasonImplicitMiss PacketInReason = 7

	numReasons = 6 // the reasons an action may name
)

var reasonNames = [numReasons]string{"no_match", "action", "invalid_ttl", "action_set", "group", "packet_out"}

// IsMiss reports whether the reason is a table miss of some kind: such
// packet ins are cut to the connection's miss_send_len.
func (r PacketInReason) IsMiss() bool {
	return r == ReasonNoMatch || r == ReasonExplicitMiss || r == ReasonImplicitMiss
}

// String returns the reason as ovs-ofctl writes it.
func (r PacketInReason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return strconv.Itoa(int(r))
}

// MaxLenAll is the max_len that sends the whole packet (OFPCML_NO_BUFFER).
const MaxLenAll = 0xffff

// CookieNone is the cookie of a packet in that no rule sent (a table miss,
// a packet out's own actions), as OpenFlow 1.3 asks.
const CookieNone = ^uint64(0)

// TableNone is the table of a packet in that no table sent (a packet
// out's own actions): 0, as Open vSwitch reports it (its translation of
// a packet out's actions starts in table 0), not OFPTT_ALL.
const TableNone = 0

// ControllerAction returns the action controller(reason=reason,max_len=maxLen).
func ControllerAction(reason PacketInReason, maxLen uint16) Action {
	return Action{Type: ActController, Value: uint64(maxLen), Table: uint8(reason)}
}

// PacketIn is what a controller action's packet in carries besides the
// packet: the action's arguments and the pipeline's state when it ran.
// Translation builds it; the datapath action holds it, immutable, so
// every packet of a megaflow reports the same (the registers, metadata
// and in_port are functions of the key bits the megaflow matches).
type PacketIn struct {
	Reason       PacketInReason
	MaxLen       uint16 // bytes of the packet to send; MaxLenAll: all
	ControllerID uint16
	Userdata     []byte
	Table        uint8  // the table of the rule that ran the action, or TableNone
	Cookie       uint64 // that rule's cookie, or CookieNone
	// Meter, when not nil, is the meter the action's meter_id names
	// (datapath meter MeterDpID): the packet in is sent only if the
	// packet passes it.
	Meter     *Meter
	MeterDpID uint32
	// Pipeline fields as the packet in's match reports them.
	InPort   uint32
	Metadata uint64
	Regs     [NumRegs]uint32
	PktMark  uint32
	// Tunnel fields: a decapsulated packet's, as the actions left them
	// (set_field may also give them to any packet). TunFlags holds only
	// the bits OpenFlow sees (TunFlagsOpenFlow).
	TunID      uint64
	TunSrc     uint32
	TunDst     uint32
	TunIPv6Src [16]byte
	TunIPv6Dst [16]byte
	TunFlags   uint16
	// TunMetadata are the tun_metadata fields the packet carries, by
	// index.
	TunMetadata []PacketInTunMeta
	// Connection tracking fields of a packet tracked in this pass (it
	// came back from ct(...,table=T)), zero otherwise; the tuple only
	// when the tracker found the packet valid. DlType goes with them:
	// Open vSwitch reports it whenever ct_state is set, as the key to
	// the tuple's family.
	DlType    uint16
	CtState   uint8
	CtZone    uint16
	CtMark    uint32
	CtLabel   [16]byte
	CtNwSrc   uint32
	CtNwDst   uint32
	CtIPv6Src [16]byte
	CtIPv6Dst [16]byte
	CtNwProto uint8
	CtTpSrc   uint16
	CtTpDst   uint16
	// Continuation, when not nil, is the pipeline a controller(pause)
	// action froze (continuation.go): the controller resumes it with
	// NXT_RESUME.
	Continuation *Continuation
}

// PacketInTunMeta is one tun_metadata field of a packet in: its index
// (tun_metadata<Index>) and its value, as long as the TLV map made it.
type PacketInTunMeta struct {
	Index int
	Value []byte
}

// PacketInSink receives the packets that controller actions send. An
// Outputter that also implements it gets them from Execute; the frame is
// only valid during the call, and PacketIn must not block.
type PacketInSink interface {
	PacketIn(pi *PacketIn, frame []byte)
}

// MissPolicy is implemented by the PortLiveness a table was given
// (SetPortLiveness) when it can tell translation that a table miss goes
// to the controller: Open vSwitch sends table misses to controllers while
// one that speaks OpenFlow 1.0 to 1.2 is connected, and drops them
// otherwise (OpenFlow 1.3's default). A change of the answer needs a new
// generation: call SetPortLiveness again.
type MissPolicy interface {
	MissToController() bool
}

// FailOpenPolicy is implemented by the PortLiveness a table was given
// when it can tell translation that the bridge is in fail-open: every
// packet then takes the normal action and no table is consulted, as Open
// vSwitch's hidden fail-open flow does. A change of the answer needs a new
// generation: call SetPortLiveness again.
type FailOpenPolicy interface {
	FailOpen() bool
}

// failOpen reports whether the bridge is in fail-open.
func (x *xlate) failOpen() bool {
	f, ok := x.s.live.(FailOpenPolicy)
	return ok && f.FailOpen()
}

// formatController writes a controller action as ovs-ofctl does.
func formatController(b *strings.Builder, a *Action) {
	reason := PacketInReason(a.Table)
	if reason == ReasonAction && a.Mask == 0 && a.Note == "" && a.Port == 0 && !a.Pause {
		b.WriteString("CONTROLLER:" + strconv.FormatUint(a.Value, 10))
		return
	}
	var parts []string
	if reason != ReasonAction {
		parts = append(parts, "reason="+reason.String())
	}
	if a.Value != MaxLenAll {
		parts = append(parts, "max_len="+strconv.FormatUint(a.Value, 10))
	}
	if a.Mask != 0 {
		parts = append(parts, "id="+strconv.FormatUint(a.Mask, 10))
	}
	if a.Note != "" {
		parts = append(parts, "userdata="+noteText(a.Note))
	}
	if a.Pause {
		parts = append(parts, "pause")
	}
	if a.Port != 0 {
		parts = append(parts, "meter_id="+strconv.FormatUint(uint64(a.Port), 10))
	}
	b.WriteString("controller(" + strings.Join(parts, ",") + ")")
}

// controller parses controller, controller:MAX_LEN and controller(...).
func (ap *actionParser) controller(t *token) error {
	s := ap.s
	a := ControllerAction(ReasonAction, MaxLenAll)
	switch {
	case t.hasValue:
		// As Open vSwitch: decimal digits only.
		if t.value == "" || strings.Trim(t.value, "0123456789") != "" {
			return errAt(s, t, "unknown key %q parsing controller action", t.value)
		}
		v, err := strconv.ParseUint(t.value, 10, 16)
		if err != nil {
			return errAt(s, t, "invalid max_len %q", t.value)
		}
		a.Value = v
	case t.paren:
		lx := lexer{s: s, i: t.valPos, end: t.valPos + len(t.value)}
		for {
			at, ok, err := lx.next()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if err := controllerArg(s, &at, &a); err != nil {
				return err
			}
		}
	}
	ap.add(a)
	return nil
}

// controllerArg parses one argument of controller(...) into a.
func controllerArg(s string, at *token, a *Action) error {
	switch strings.ToLower(at.key) {
	case "reason":
		for r, name := range reasonNames {
			if at.value == name {
				a.Table = uint8(r)
				return nil
			}
		}
		return errAt(s, at, "unknown reason %q", at.value)
	case "max_len":
		v, err := parseNum(at.value, 16)
		if err != nil {
			return errAt(s, at, "invalid max_len %q", at.value)
		}
		a.Value = v
	case "id":
		v, err := parseNum(at.value, 16)
		if err != nil {
			return errAt(s, at, "invalid id %q", at.value)
		}
		a.Mask = v
	case "userdata":
		b, err := hex.DecodeString(strings.ReplaceAll(at.value, ".", ""))
		if err != nil {
			return errAt(s, at, "bad hex digit in `controller' action `userdata'")
		}
		if len(b) > MaxUserdata {
			return errAt(s, at, "userdata of %d bytes is longer than %d", len(b), MaxUserdata)
		}
		a.Note = string(b)
	case "pause":
		a.Pause = true
	case "meter_id":
		v, err := parseNum(at.value, 32)
		if err != nil {
			return errAt(s, at, "invalid meter_id %q", at.value)
		}
		a.Port = uint32(v)
	default:
		return errAt(s, at, "unknown key %q parsing controller action", at.key)
	}
	return nil
}

// MaxUserdata bounds a controller action's userdata: what fits in one
// NXAST_CONTROLLER2 action with its header and padding.
const MaxUserdata = 0xffff - 64

// controller translates a controller action (or a table miss that goes to
// the controller, with r nil): the datapath action carries the state the
// packet in reports.
func (x *xlate) controller(a *Action, miss bool) {
	d := *a
	d.PacketIn = x.packetIn(a, miss)
	x.emit(d)
}

// packetIn commits the flow's changes and returns the packet in that
// controller action a (or a table miss, with miss set) sends.
func (x *xlate) packetIn(a *Action, miss bool) *PacketIn {
	x.commit()
	reason := PacketInReason(a.Table)
	if reason == ReasonAction && a.Mask == 0 && a.Note == "" && a.Port == 0 {
		// Written as an output to CONTROLLER: as Open vSwitch, the
		// reason tells a packet out's actions and a group's buckets.
		switch {
		case x.packetOut:
			reason = ReasonPacketOut
		case x.inBucket > 0:
			reason = ReasonGroup
		}
	}
	if reason == ReasonAction && x.rule != nil && x.rule.Priority == 0 && x.rule.Catchall() {
		reason = ReasonExplicitMiss
	}
	pi := &PacketIn{
		Reason:       reason,
		MaxLen:       uint16(a.Value),
		ControllerID: uint16(a.Mask),
		Userdata:     []byte(a.Note),
		Table:        TableNone,
		Cookie:       CookieNone,
		InPort:       x.flow.InPort,
		Metadata:     x.flow.Metadata,
		Regs:         x.flow.Regs,
		PktMark:      x.flow.PktMark,
	}
	x.packetInTunnel(pi)
	x.packetInCT(pi)
	if x.rule != nil || miss {
		pi.Table = x.table
	}
	if x.rule != nil && !miss {
		pi.Cookie = x.rule.Cookie
	}
	if f := x.resumed; f != nil && x.rule == nil {
		// A resumed continuation's own actions: the rule's they were.
		pi.Table, pi.Cookie = f.Table, f.Cookie
	}
	// As Open vSwitch: without a meter_id, or with one that names no
	// meter, the packet ins of a controller action go through the
	// "controller" meter, if there is one.
	m := x.s.meters.get(a.Port)
	if m == nil {
		m = x.s.meters.get(MeterController)
	}
	if m != nil {
		pi.Meter, pi.MeterDpID = m.Run, m.DpID
	}
	return pi
}

// packetInTunnel gives pi the tunnel fields the packet has now. Those of
// a decapsulated packet come from its key: the megaflow then matches
// them, as every packet it holds reports the same. A packet that came in
// without a tunnel has none in its key (its in_port is not a tunnel's),
// and any it reports were set by the actions.
func (x *xlate) packetInTunnel(pi *PacketIn) {
	f := &x.flow
	pi.TunID, pi.TunSrc, pi.TunDst = f.TunID, f.TunSrc, f.TunDst
	pi.TunIPv6Src, pi.TunIPv6Dst = f.TunIPv6Src, f.TunIPv6Dst
	pi.TunFlags = f.TunFlags & TunFlagsOpenFlow
	f.TunMetaFields(nil, func(index int, val, _ []byte) {
		pi.TunMetadata = append(pi.TunMetadata, PacketInTunMeta{Index: index, Value: slices.Clone(val)})
	})
	slices.SortFunc(pi.TunMetadata, func(a, b PacketInTunMeta) int { return a.Index - b.Index })
	o := x.orig
	if o.TunID == 0 && o.TunSrc == 0 && o.TunDst == 0 && o.TunIPv6Src == ([16]byte{}) && o.TunIPv6Dst == ([16]byte{}) && o.TunMetaPresent == 0 {
		return
	}
	w := &x.wc
	w.TunID, w.TunSrc, w.TunDst = ^uint64(0), ^uint32(0), ^uint32(0)
	w.TunIPv6Src, w.TunIPv6Dst = allOnes16, allOnes16
	w.TunFlags |= TunFlagsOpenFlow
	w.TunMetaPresent = ^uint64(0)
	for i := range w.TunMeta {
		w.TunMeta[i] = 0xff
	}
}

// packetInCT gives pi the connection tracking fields of a packet tracked
// in this pass, as Open vSwitch reports them: the state, and the zone,
// mark and label when they are not zero; the original direction's tuple
// when the packet is valid and the tuple has a protocol. They come from
// the tracker, through the key: the megaflow matches them.
func (x *xlate) packetInCT(pi *PacketIn) {
	f := &x.flow
	if !x.conntracked || f.CtState == 0 {
		return
	}
	w := &x.wc
	pi.DlType, pi.CtState = f.DlType, f.CtState
	w.CtState = 0xff
	pi.CtZone, pi.CtMark, pi.CtLabel = f.CtZone, f.CtMark, f.CtLabel
	w.CtZone, w.CtMark, w.CtLabel = ^uint16(0), ^uint32(0), allOnes16
	if f.CtState&CtStateInv != 0 || f.CtState&CtStateTracked == 0 || f.CtNwProto == 0 {
		return
	}
	switch f.DlType {
	case EthTypeIPv4:
		pi.CtNwSrc, pi.CtNwDst = f.CtNwSrc, f.CtNwDst
		w.CtNwSrc, w.CtNwDst = ^uint32(0), ^uint32(0)
	case EthTypeIPv6:
		pi.CtIPv6Src, pi.CtIPv6Dst = f.CtIPv6Src, f.CtIPv6Dst
		w.CtIPv6Src, w.CtIPv6Dst = allOnes16, allOnes16
	default:
		return
	}
	pi.CtNwProto, pi.CtTpSrc, pi.CtTpDst = f.CtNwProto, f.CtTpSrc, f.CtTpDst
	w.CtNwProto, w.CtTpSrc, w.CtTpDst = 0xff, ^uint16(0), ^uint16(0)
}

// allOnes16 is the mask of a whole 128-bit field.
var allOnes16 = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// missToController reports whether a table miss goes to the controller.
func (x *xlate) missToController() bool {
	m, ok := x.s.live.(MissPolicy)
	return ok && m.MissToController()
}

// formatODPController writes a controller datapath action as Open
// vSwitch's dpctl prints its userspace action.
func formatODPController(a *Action) string {
	pi := a.PacketIn
	if pi == nil {
		pi = &PacketIn{Reason: PacketInReason(a.Table), MaxLen: uint16(a.Value), ControllerID: uint16(a.Mask)}
	}
	return FormatODPPacketIn(pi, false)
}

// FormatODPPacketIn writes the userspace action that sends pi to the
// controllers as Open vSwitch prints it (in a sample through the meter of
// a controller action's meter_id); dontSend is set in traces, which
// send nothing. ovsxdp keeps a continuation with the packet in, not
// under a recirculation id, so its recirc_id is always 0.
func FormatODPPacketIn(pi *PacketIn, dontSend bool) string {
	if pi.Meter != nil {
		// As Open vSwitch: a clone of the packet (a sample of 100%)
		// goes through the meter to the userspace action.
		return "sample(sample=100.0%,actions(meter(" + strconv.FormatUint(uint64(pi.MeterDpID), 10) + ")," + formatODPUserspace(pi, dontSend) + "))"
	}
	return formatODPUserspace(pi, dontSend)
}

// formatODPUserspace is FormatODPPacketIn's userspace action.
func formatODPUserspace(pi *PacketIn, dontSend bool) string {
	c := "0"
	if pi.Cookie != 0 && pi.Cookie != CookieNone {
		c = "0x" + strconv.FormatUint(pi.Cookie, 16)
	}
	ds, cont := "0", "0"
	if dontSend {
		ds = "1"
	}
	if pi.Continuation != nil {
		cont = "1"
	}
	return "userspace(pid=0,controller(reason=" + strconv.Itoa(int(pi.Reason)) +
		",dont_send=" + ds + ",continuation=" + cont + ",recirc_id=0,rule_cookie=" + c +
		",controller_id=" + strconv.Itoa(int(pi.ControllerID)) +
		",max_len=" + strconv.Itoa(int(pi.MaxLen)) + "))"
}
