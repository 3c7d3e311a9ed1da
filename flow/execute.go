package flow

import (
	"encoding/binary"
	"strconv"
)

// Verdict is the outcome of running a packet's actions. Anything but
// VerdictOK names the reason the actions stopped; outputs made before that
// point stand, and a packet that was not output is a drop for that reason.
type Verdict uint8

// The verdicts.
const (
	VerdictOK          Verdict = iota // all actions ran
	VerdictActionCap                  // more than MaxActions actions: none ran
	VerdictTTLExceeded                // dec_ttl on a TTL or hop limit ≤ 1; the remaining actions did not run
	VerdictNoRoom                     // a VLAN push found no spare capacity after the frame
	VerdictBadAction                  // an action type or set_field target that cannot be executed
	// Translation verdicts: the pipeline could not be run to its end, and
	// the packet is dropped whatever it output before.
	VerdictResubmitDepth // resubmits nested over MaxResubmitDepth deep
	VerdictResubmitLimit // more than MaxResubmits resubmits for one packet
	VerdictStackTooDeep  // push past MaxStack entries
	// VerdictCTFull: a ct action could not commit a new connection
	// because the tracker, or the zone's limit, is full.
	VerdictCTFull
	// VerdictNoConntrack: a ct action ran where no connection tracker
	// is (an Outputter that is not a Recirculator, or a datapath built
	// without one): the packet is dropped rather than taken as tracked.
	VerdictNoConntrack
	// VerdictNoRecircContext: a packet came back with a recirculation
	// id that names no frozen pipeline state (it expired, or never
	// was), or a recirc action ran where nothing recirculates.
	VerdictNoRecircContext
	// VerdictTaken: the datapath took the packet over at a ct action
	// (fragment reassembly held it, to run the remaining actions itself
	// when it releases it): the remaining actions do not run on it here,
	// and it is not a drop of the actions.
	VerdictTaken
	// VerdictMeterDrop: the packet exceeded a meter's band (a meter
	// action); the remaining actions did not run.
	VerdictMeterDrop
	numVerdicts
)

var verdictNames = [numVerdicts]string{
	VerdictOK:              "ok",
	VerdictActionCap:       "action-cap",
	VerdictTTLExceeded:     "ttl-exceeded",
	VerdictNoRoom:          "no-room",
	VerdictBadAction:       "bad-action",
	VerdictResubmitDepth:   "resubmit-depth",
	VerdictResubmitLimit:   "resubmit-limit",
	VerdictStackTooDeep:    "stack-too-deep",
	VerdictCTFull:          "conntrack-full",
	VerdictNoConntrack:     "no-conntrack",
	VerdictNoRecircContext: "no-recirc-context",
	VerdictTaken:           "taken",
	VerdictMeterDrop:       "meter-drop",
}

// Failed reports whether v is a translation failure: the pipeline could
// not run to its end and the packet is dropped.
func (v Verdict) Failed() bool {
	return v == VerdictResubmitDepth || v == VerdictResubmitLimit || v == VerdictStackTooDeep || v == VerdictActionCap ||
		v == VerdictNoRecircContext
}

// Explain says what a translation failure is, as Open vSwitch's trace
// words it.
func (v Verdict) Explain() string {
	switch v {
	case VerdictResubmitDepth:
		return "Recursion too deep"
	case VerdictResubmitLimit:
		return "Too many resubmits"
	case VerdictStackTooDeep:
		return "Stack too deep"
	case VerdictActionCap:
		return "Too many datapath actions"
	case VerdictNoRecircContext:
		return "No recirculation context"
	}
	return v.String()
}

// String returns the verdict's name as drop counters show it.
func (v Verdict) String() string {
	if v < numVerdicts {
		return verdictNames[v]
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// Outputter receives the frames that output actions send.
type Outputter interface {
	// Output is called for each output action, in order, with the frame as
	// it is at that point. The frame is only valid during the call: later
	// actions rewrite it in place, so the callee copies what it keeps.
	Output(port uint32, frame []byte)
}

// InPortOutputter is what an Outputter also implements to resolve an
// output to flood, all or normal against an in_port the flow wrote
// (Action.AsInPort), as Open vSwitch does: flood and all then leave out
// the written port, not the one the packet came in on, and normal
// forwards as if the packet had come in on the written port. Without it,
// Execute calls Output.
type InPortOutputter interface {
	OutputAs(port, inPort uint32, frame []byte)
}

// FrameCopier is what an Outputter also implements to lend Execute room
// for a copy of the packet: a check_pkt_len branch that other actions
// follow runs on a copy (ActCheckPktLen). CopyFrame returns frame copied
// into a buffer with room to push tags after it, valid until the
// matching ReleaseFrame; copies nest, and are released in reverse order.
// Without it, Execute allocates the copy.
type FrameCopier interface {
	CopyFrame(frame []byte) []byte
	ReleaseFrame()
}

// Recirculator is what an Outputter also implements when the datapath
// runs connection tracking and recirculation: Execute hands it the ct and
// recirc datapath actions. Execute looks for it only when it meets one of
// them, so packets that never do pay nothing for it.
type Recirculator interface {
	// Conntrack runs ct (a resolved datapath CT: see CT) on the packet,
	// as Conntrack.Track does, with the datapath's tracker and clock. It
	// returns VerdictNoConntrack when the datapath has no tracker. rest
	// is the list of actions after the ct action: a datapath that holds
	// the packet (fragments until their packet is whole) returns
	// VerdictTaken and runs rest itself on what it releases.
	Conntrack(frame []byte, k *Key, off *Offsets, ct *CT, rest []Action) Verdict
	// Recirculate sends a copy of the packet through the datapath's
	// lookup again: k is its key as the actions so far left it, with
	// RecircID set to the recirculation's id. frame, k and off are only
	// valid during the call (later actions go on with them), so the
	// callee copies them. What becomes of the copy (outputs, drops) is
	// the callee's to count.
	Recirculate(frame []byte, k *Key, off *Offsets)
}

// Execute runs acts on frame, in place, and returns the frame (resliced when
// a VLAN tag was pushed or popped) and the verdict.
//
// k and off describe frame as Extract found it, and Execute keeps them
// describing the frame after each action, so that later actions and the
// caller see the new key and offsets. frame may be a prefix of a larger
// buffer: a push needs 4 bytes of spare capacity after it, or the packet
// stops with VerdictNoRoom.
//
// Checksums (IPv4 header, TCP, UDP, ICMP, ICMPv6, SCTP) are updated
// incrementally; a UDP checksum of 0 stays 0. An action whose header the
// packet does not have (mod_tp_dst on ICMP, mod_nw_src on IPv6, ...) does
// nothing, as in Open vSwitch. A list of more than MaxActions actions (which
// no parsed flow has) runs none of them and returns VerdictActionCap.
//
// Execute does not allocate (but for a copy of the packet that out does
// not lend: FrameCopier) and does not panic, whatever the frame and
// offsets hold. out may be nil, in which case outputs are discarded.
func Execute(frame []byte, k *Key, off *Offsets, acts []Action, out Outputter) ([]byte, Verdict) {
	if len(acts) > MaxActions {
		return frame, VerdictActionCap
	}
	var p packet // assigned field by field: a composite literal compiles to a copy that stalls store forwarding
	p.b, p.k, p.off = frame, k, off
	for i := 0; i < len(acts); i++ {
		a := &acts[i]
		v := VerdictOK
		switch a.Type {
		case ActCheckPktLen:
			gt, le, next := CheckPktLenBranches(acts, i)
			branch := le
			if uint64(len(p.b)) > a.Value {
				branch = gt
			}
			if next >= len(acts) {
				// Nothing follows: the branch runs on the packet itself.
				return Execute(p.b, p.k, p.off, branch, out)
			}
			if v = checkPktLenCopy(p.b, p.k, p.off, branch, out); v != VerdictOK {
				return p.b, v
			}
			i = next - 1
			continue
		case ActOutput:
			if out == nil {
				break
			}
			if in, ok := a.AsInPort(); ok {
				if o, ok := out.(InPortOutputter); ok {
					o.OutputAs(a.Port, in, p.b)
					break
				}
			}
			out.Output(a.Port, p.b)
		case ActSetField:
			v = p.setField(a)
		case ActDecTTL:
			v = p.decTTL()
		case ActSetVLANVID:
			v = p.setVLAN(VLANVIDMask, uint16(a.Value)&VLANVIDMask)
		case ActSetVLANPCP:
			v = p.setVLAN(VLANPCPMask, uint16(a.Value&7)<<13)
		case ActPushVLAN:
			v = p.pushVLAN(uint16(a.Value))
		case ActPopVLAN:
			p.popVLAN()
		case ActController:
			if sink, ok := out.(PacketInSink); ok && a.PacketIn != nil {
				sink.PacketIn(a.PacketIn, p.b)
			}
		case ActCT:
			v = VerdictNoConntrack
			if rc, ok := out.(Recirculator); ok && a.CT != nil {
				v = rc.Conntrack(p.b, p.k, p.off, a.CT, acts[i+1:])
			}
		case ActCTClear:
			p.k.clearCT()
		case ActMeter:
			if m, ok := out.(Meterer); ok && a.Meter != nil && !m.Meter(uint32(a.Value), a.Meter, len(p.b)) {
				v = VerdictMeterDrop
			}
		case ActHash:
			p.k.DpHash = DpHashOf(p.k, a.Value)
		case ActRecirc:
			rc, ok := out.(Recirculator)
			if !ok {
				v = VerdictNoRecircContext
				break
			}
			// The copy that recirculates carries the id; this packet
			// goes on with its own.
			id := p.k.RecircID
			p.k.RecircID = uint32(a.Value)
			rc.Recirculate(p.b, p.k, p.off)
			p.k.RecircID = id
		default:
			v = VerdictBadAction
		}
		if v != VerdictOK {
			return p.b, v
		}
	}
	return p.b, VerdictOK
}

// checkPktLenCopy runs branch on a copy of the packet, from out
// (FrameCopier) when it lends one, and returns the branch's verdict. The
// branch changes k and off where they are, as it changes the copy, since
// the Outputter may read the key from there (the normal action does);
// afterwards they describe the packet as it was again.
func checkPktLenCopy(frame []byte, k *Key, off *Offsets, branch []Action, out Outputter) Verdict {
	var cp []byte
	fc, ok := out.(FrameCopier)
	if ok {
		cp = fc.CopyFrame(frame)
		defer fc.ReleaseFrame()
	} else {
		cp = make([]byte, len(frame), len(frame)+FrameSpare)
		copy(cp, frame)
	}
	saved, savedOff := *k, *off
	_, v := Execute(cp, k, off, branch, out)
	*k, *off = saved, savedOff
	return v
}

// OnlyOutput reports whether acts are a single output to a port, not
// resolved against a written in_port, and returns the port: Execute runs
// such a list as one call of the Outputter's Output with the frame as it
// is, and VerdictOK, so a caller that is the Outputter may make that call
// itself (the datapath does, for most packets).
func OnlyOutput(acts []Action) (port uint32, ok bool) {
	if len(acts) != 1 || acts[0].Type != ActOutput || acts[0].Value&outputAsInPort != 0 {
		return 0, false
	}
	return acts[0].Port, true
}

// packet is a frame being rewritten, with its key and offsets.
type packet struct {
	b   []byte
	k   *Key
	off *Offsets
}

// Header lengths that actions rely on: a layer's fields are in the key only
// when extraction found at least this much of its header.
const (
	minEth   = 14
	tagLen   = 4
	minIPv4  = 20
	minIPv6  = 40
	minARP   = 28
	minTCP   = 20
	minUDP   = 8
	minSCTP  = 12
	minICMP  = 8  // ICMP and ICMPv6 alike
	minNDMsg = 24 // ICMPv6 header, reserved/flags word, target
	macsLen  = 12 // the Ethernet addresses, after which tags are pushed
)

// ICMPv6 neighbour discovery.
const (
	icmpv6NS     = 135
	icmpv6NA     = 136
	ndOptSrcLL   = 1
	ndOptTgtLL   = 2
	ndOptUnitLen = 8
)

var be = binary.BigEndian

// span returns the n bytes of the frame at offset o, or nil when o is
// NoOffset or they are not all inside the frame.
func (p *packet) span(o uint16, n int) []byte {
	if o == NoOffset || n < 0 || int(o)+n > len(p.b) {
		return nil
	}
	return p.b[o : int(o)+n]
}

// reextract derives the key and offsets from the frame again. Execute uses it
// after rewrites that change how the rest of the frame is interpreted (a VLAN
// tag pushed beyond the two the key holds, an ICMPv6 type change, a neighbour
// discovery field), which are rare enough not to need an incremental path.
func (p *packet) reextract() {
	// Not in the frame: the datapath's metadata.
	mark, recirc := p.k.PktMark, p.k.RecircID
	var ct ctSnapshot
	ct.save(p.k)
	Extract(p.k, p.off, p.b, p.k.InPort)
	p.k.PktMark, p.k.RecircID = mark, recirc
	ct.restore(p.k)
}

// ipv4 returns the IPv4 header, options included, when extraction read the
// packet's IPv4 fields into the key: its lengths fit in the frame (the
// version is not checked, as extraction does not check it).
func (p *packet) ipv4() []byte {
	if p.k.DlType != EthTypeIPv4 {
		return nil
	}
	h := p.span(p.off.L3, minIPv4)
	if h == nil {
		return nil
	}
	ihl := int(h[0]&0x0f) * 4
	tot := int(be.Uint16(h[2:]))
	if ihl < minIPv4 || tot < ihl || int(p.off.L3)+tot > len(p.b) {
		return nil
	}
	return p.b[p.off.L3 : int(p.off.L3)+ihl]
}

// ipv6 returns the fixed IPv6 header when extraction read the packet's IPv6
// addresses into the key: the header and payload fit in the frame.
func (p *packet) ipv6() []byte {
	if p.k.DlType != EthTypeIPv6 {
		return nil
	}
	h := p.span(p.off.L3, minIPv6)
	if h == nil || int(p.off.L3)+minIPv6+int(be.Uint16(h[4:])) > len(p.b) {
		return nil
	}
	return h
}

// ipv6Fields returns the fixed IPv6 header when extraction also read the
// traffic class, flow label and hop limit, which it does only when the
// extension header chain is well formed. A well-formed chain always ends in
// a protocol other than 0 (hop-by-hop options come only first, and a walk
// that fails leaves NwProto 0), so NwProto tells.
func (p *packet) ipv6Fields() []byte {
	if p.k.NwProto == 0 {
		return nil
	}
	return p.ipv6()
}

// ipLen returns the length of the IP packet (header and payload) that starts
// at L3, and whether the packet is IPv4 or IPv6 with a valid header.
func (p *packet) ipLen() (int, bool) {
	if h := p.ipv4(); h != nil {
		return int(be.Uint16(h[2:])), true
	}
	if h := p.ipv6(); h != nil {
		return minIPv6 + int(be.Uint16(h[4:])), true
	}
	return 0, false
}

// l4 returns the first n bytes of the L4 header of an IP packet whose
// protocol is proto, or nil when the packet has no such header (another
// protocol, a later fragment, a truncated frame).
func (p *packet) l4(proto uint8, n int) []byte {
	if p.k.NwProto != proto || p.k.NwFrag&FragLater != 0 {
		return nil
	}
	if _, ok := p.ipLen(); !ok {
		return nil
	}
	return p.span(p.off.L4, n)
}

// pseudoCsum returns the L4 checksum that covers the IP pseudo-header:
// TCP and UDP, and ICMPv6 for IPv6.
func (p *packet) pseudoCsum(v6 bool) csumRef {
	switch p.k.NwProto {
	case IPProtoTCP:
		if h := p.l4(IPProtoTCP, minTCP); h != nil {
			return csumRef{b: h[16:18]}
		}
	case IPProtoUDP:
		if h := p.l4(IPProtoUDP, minUDP); h != nil {
			return csumRef{b: h[6:8], udp: true}
		}
	case IPProtoICMPv6:
		if h := p.l4(IPProtoICMPv6, minICMP); v6 && h != nil {
			return csumRef{b: h[2:4]}
		}
	}
	return csumRef{}
}

// arp returns the ARP header of an Ethernet/IPv4 ARP or RARP packet.
func (p *packet) arp() []byte {
	if p.k.DlType != EthTypeARP && p.k.DlType != EthTypeRARP {
		return nil
	}
	h := p.span(p.off.L3, minARP)
	if h == nil || be.Uint16(h[0:]) != 1 || be.Uint16(h[2:]) != EthTypeIPv4 || h[4] != 6 || h[5] != 4 {
		return nil
	}
	return h
}

// ARP header offsets.
const (
	arpOp  = 6
	arpSha = 8
	arpSpa = 14
	arpTha = 18
	arpTpa = 24
)

// macFromValue unpacks a MAC address held in the low 48 bits of v.
func macFromValue(v uint64) (m [6]byte) {
	for i := range m {
		m[i] = byte(v >> (40 - 8*i))
	}
	return m
}

// setField runs one set_field action.
func (p *packet) setField(a *Action) Verdict {
	v := a.Value
	k := p.k
	switch a.Field {
	case FieldInPort:
		k.InPort = uint32(v)
	case FieldPktMark:
		k.PktMark = uint32(v)
	case FieldTunID: // tunnel metadata: the key only, for a tunnel port's output
		k.TunID = v
	case FieldTunMeta0: // the whole tunnel metadata (commitTunMeta)
		k.TunMeta, k.TunMetaPresent = a.IPv6, v
	case FieldTunSrc:
		k.TunSrc = uint32(v)
	case FieldTunDst:
		k.TunDst = uint32(v)
	case FieldTunIPv6Src:
		k.TunIPv6Src = a.IPv6
	case FieldTunIPv6Dst:
		k.TunIPv6Dst = a.IPv6
	case FieldDlDst:
		p.setEthAddr(0, &k.DlDst, macFromValue(v))
	case FieldDlSrc:
		p.setEthAddr(6, &k.DlSrc, macFromValue(v))

	case FieldVLANTCI:
		if uint16(v)&VLANPresent == 0 {
			p.popVLAN()
			return VerdictOK
		}
		return p.setVLAN(VLANVIDMask|VLANPCPMask, uint16(v)&(VLANVIDMask|VLANPCPMask))
	case FieldDlVLAN:
		if uint16(v) == 0xffff { // OpenFlow 1.0's OFP_VLAN_NONE: strip the tag
			p.popVLAN()
			return VerdictOK
		}
		return p.setVLAN(VLANVIDMask, uint16(v)&VLANVIDMask)
	case FieldVLANVID:
		return p.setVLAN(VLANVIDMask, uint16(v)&VLANVIDMask)
	case FieldDlVLANPCP, FieldVLANPCP:
		return p.setVLAN(VLANPCPMask, uint16(v&7)<<13)

	case FieldNwSrc:
		if !p.setARPAddr(arpSpa, &k.NwSrc, uint32(v)) {
			p.setIPv4Addr(12, &k.NwSrc, uint32(v))
		}
	case FieldNwDst:
		if !p.setARPAddr(arpTpa, &k.NwDst, uint32(v)) {
			p.setIPv4Addr(16, &k.NwDst, uint32(v))
		}
	case FieldArpSpa:
		p.setARPAddr(arpSpa, &k.NwSrc, uint32(v))
	case FieldArpTpa:
		p.setARPAddr(arpTpa, &k.NwDst, uint32(v))
	case FieldArpSha:
		p.setARPHw(arpSha, &k.ArpSha, macFromValue(v))
	case FieldArpTha:
		p.setARPHw(arpTha, &k.ArpTha, macFromValue(v))
	case FieldArpOp:
		if h := p.arp(); h != nil {
			be.PutUint16(h[arpOp:], uint16(uint8(v)))
			k.NwProto = uint8(v)
		}

	case FieldIPv6Src:
		p.setIPv6Addr(8, &k.IPv6Src, &a.IPv6)
	case FieldIPv6Dst:
		p.setIPv6Addr(24, &k.IPv6Dst, &a.IPv6)
	case FieldIPv6Label:
		if h := p.ipv6Fields(); h != nil {
			w := be.Uint32(h)&^0xfffff | uint32(v)&0xfffff
			be.PutUint32(h, w)
			k.IPv6Label = w & 0xfffff
		}

	case FieldNwTos:
		p.setTOS(0xfc, uint8(v)&0xfc)
	case FieldIPDSCP:
		p.setTOS(0xfc, uint8(v<<2))
	case FieldNwECN:
		p.setTOS(0x03, uint8(v)&0x03)
	case FieldNwTTL:
		p.setTTL(uint8(v))

	case FieldTpSrc:
		p.setPort(0, 0, uint16(v))
	case FieldTpDst:
		p.setPort(2, 0, uint16(v))
	case FieldTCPSrc:
		p.setPort(0, IPProtoTCP, uint16(v))
	case FieldTCPDst:
		p.setPort(2, IPProtoTCP, uint16(v))
	case FieldUDPSrc:
		p.setPort(0, IPProtoUDP, uint16(v))
	case FieldUDPDst:
		p.setPort(2, IPProtoUDP, uint16(v))
	case FieldSCTPSrc:
		p.setPort(0, IPProtoSCTP, uint16(v))
	case FieldSCTPDst:
		p.setPort(2, IPProtoSCTP, uint16(v))

	case FieldICMPType:
		p.setICMP(IPProtoICMP, 0, uint8(v))
	case FieldICMPCode:
		p.setICMP(IPProtoICMP, 1, uint8(v))
	case FieldICMPv6Type:
		p.setICMP(IPProtoICMPv6, 0, uint8(v))
	case FieldICMPv6Code:
		p.setICMP(IPProtoICMPv6, 1, uint8(v))

	case FieldNdTarget:
		if m := p.nd(); m != nil {
			p.setNDBytes(m, m[8:24], a.IPv6[:])
		}
	case FieldNdSll:
		p.setNDOption(ndOptSrcLL, macFromValue(v))
	case FieldNdTll:
		p.setNDOption(ndOptTgtLL, macFromValue(v))

	default: // read-only fields (dl_type, nw_proto, ip_frag, tcp_flags) and unknown IDs
		return VerdictBadAction
	}
	return VerdictOK
}

// setEthAddr sets the Ethernet address at offset at (0 destination, 6
// source).
func (p *packet) setEthAddr(at uint16, kf *[6]byte, m [6]byte) {
	if len(p.b) < minEth {
		return
	}
	copy(p.b[at:at+6], m[:])
	*kf = m
}

// setIPv4Addr sets the IPv4 address at offset at of the IPv4 header (12
// source, 16 destination), updating the header checksum and the TCP/UDP
// checksum over the pseudo-header.
func (p *packet) setIPv4Addr(at int, kf *uint32, addr uint32) {
	h := p.ipv4()
	if h == nil {
		return
	}
	old := be.Uint32(h[at:])
	change := csumAdd16(csumAdd16(0, uint16(old>>16), uint16(addr>>16)), uint16(old), uint16(addr))
	csumRef{b: h[10:12]}.update(change)
	p.pseudoCsum(false).update(change)
	be.PutUint32(h[at:], addr)
	*kf = addr
}

// setIPv6Addr sets the IPv6 address at offset at of the IPv6 header (8
// source, 24 destination), updating the TCP/UDP/ICMPv6 checksum over the
// pseudo-header. As for the kernel and Open vSwitch, a destination change
// leaves the L4 checksum alone when a routing header with segments left
// holds the final destination that the checksum covers.
func (p *packet) setIPv6Addr(at int, kf *[16]byte, addr *[16]byte) {
	h := p.ipv6()
	if h == nil {
		return
	}
	old := h[at : at+16]
	if at == 8 || !p.ipv6RoutingPending() {
		p.pseudoCsum(true).update(csumAddBytes(0, old, addr[:]))
	}
	copy(old, addr[:])
	*kf = *addr
}

// IPv6 extension headers that may come before the L4 header.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6AH       = 51
	ipv6DestOpts = 60
)

// ipv6RoutingPending reports whether the IPv6 packet carries a routing header
// with segments left, between the fixed header and L4.
func (p *packet) ipv6RoutingPending() bool {
	if p.off.L4 == NoOffset {
		return false
	}
	at, end := int(p.off.L3)+minIPv6, min(int(p.off.L4), len(p.b))
	next := p.b[int(p.off.L3)+6]
	// Every extension header is at least 8 bytes, so the walk ends after
	// at most (end-at)/8 steps.
	for at+8 <= end {
		var n int
		switch next {
		case ipv6HopByHop, ipv6DestOpts:
			n = (int(p.b[at+1]) + 1) * 8
		case ipv6Routing:
			if p.b[at+3] != 0 {
				return true
			}
			n = (int(p.b[at+1]) + 1) * 8
		case ipv6Fragment:
			n = 8
		case ipv6AH:
			n = (int(p.b[at+1]) + 2) * 4
		default:
			return false
		}
		next = p.b[at]
		at += n
	}
	return false
}

// setARPAddr sets the ARP protocol address at offset at (spa or tpa) and
// reports whether the packet is ARP.
func (p *packet) setARPAddr(at int, kf *uint32, addr uint32) bool {
	h := p.arp()
	if h == nil {
		return false
	}
	be.PutUint32(h[at:], addr)
	*kf = addr
	return true
}

// setARPHw sets the ARP hardware address at offset at (sha or tha).
func (p *packet) setARPHw(at int, kf *[6]byte, m [6]byte) {
	if h := p.arp(); h != nil {
		copy(h[at:at+6], m[:])
		*kf = m
	}
}

// setIPv4Byte sets byte i of the IPv4 header h, updating its checksum.
func setIPv4Byte(h []byte, i int, v byte) {
	w := i &^ 1
	old := be.Uint16(h[w:])
	h[i] = v
	csumRef{b: h[10:12]}.update(csumAdd16(0, old, be.Uint16(h[w:])))
}

// setTOS sets the bits of the IPv4 TOS or IPv6 traffic class under mask.
func (p *packet) setTOS(mask, bits uint8) {
	if h := p.ipv4(); h != nil {
		setIPv4Byte(h, 1, h[1]&^mask|bits)
		p.k.NwTos = h[1]
		return
	}
	if h := p.ipv6Fields(); h != nil {
		w := be.Uint32(h)
		tc := uint8(w>>20)&^mask | bits
		be.PutUint32(h, w&^(0xff<<20)|uint32(tc)<<20)
		p.k.NwTos = tc
	}
}

// setTTL sets the IPv4 TTL or IPv6 hop limit.
func (p *packet) setTTL(ttl uint8) {
	if h := p.ipv4(); h != nil {
		setIPv4Byte(h, 8, ttl)
		p.k.NwTTL = ttl
		return
	}
	if h := p.ipv6Fields(); h != nil {
		h[7] = ttl
		p.k.NwTTL = ttl
	}
}

// decTTL decrements the IPv4 TTL or IPv6 hop limit. A packet that is not IP
// is left alone.
func (p *packet) decTTL() Verdict {
	if h := p.ipv4(); h != nil {
		if h[8] <= 1 {
			return VerdictTTLExceeded
		}
		setIPv4Byte(h, 8, h[8]-1)
		p.k.NwTTL = h[8]
		return VerdictOK
	}
	if h := p.ipv6Fields(); h != nil {
		if h[7] <= 1 {
			return VerdictTTLExceeded
		}
		h[7]--
		p.k.NwTTL = h[7]
	}
	return VerdictOK
}

// setPort sets the TCP, UDP or SCTP source (at 0) or destination (at 2)
// port. only restricts the rewrite to one protocol; 0 allows all three.
func (p *packet) setPort(at int, only uint8, port uint16) {
	proto := p.k.NwProto
	if only != 0 && proto != only {
		return
	}
	var h []byte
	switch proto {
	case IPProtoTCP:
		if h = p.l4(IPProtoTCP, minTCP); h != nil {
			csumRef{b: h[16:18]}.update(csumAdd16(0, be.Uint16(h[at:]), port))
		}
	case IPProtoUDP:
		if h = p.l4(IPProtoUDP, minUDP); h != nil {
			csumRef{b: h[6:8], udp: true}.update(csumAdd16(0, be.Uint16(h[at:]), port))
		}
	case IPProtoSCTP:
		if h = p.l4(IPProtoSCTP, minSCTP); h != nil {
			p.updateSCTPCRC(h, at, port)
		}
	}
	if h == nil {
		return
	}
	be.PutUint16(h[at:], port)
	if at == 0 {
		p.k.TpSrc = port
	} else {
		p.k.TpDst = port
	}
}

// updateSCTPCRC updates the CRC32c of the SCTP packet whose common header is
// h for the 16-bit word at offset at becoming v. The CRC covers the SCTP
// packet to the end of the IP payload, whose length the IP header gives.
func (p *packet) updateSCTPCRC(h []byte, at int, v uint16) {
	ipLen, _ := p.ipLen()
	n := int(p.off.L3) + ipLen - int(p.off.L4)
	if n < minSCTP {
		return
	}
	crc := binary.LittleEndian.Uint32(h[8:]) ^ sctpCRCDelta(n, at, be.Uint16(h[at:]), v)
	binary.LittleEndian.PutUint32(h[8:], crc)
}

// setICMP sets the ICMP or ICMPv6 type (at 0) or code (at 1).
func (p *packet) setICMP(proto uint8, at int, v uint8) {
	n := minICMP
	if proto == IPProtoICMPv6 {
		n = minICMP
	}
	h := p.l4(proto, n)
	if h == nil || (proto == IPProtoICMP) != (p.ipv4() != nil) {
		return
	}
	old := be.Uint16(h)
	h[at] = v
	csumRef{b: h[2:4]}.update(csumAdd16(0, old, be.Uint16(h)))
	if proto == IPProtoICMPv6 {
		// The type decides whether the message is neighbour discovery,
		// whose target and options are part of the key.
		p.reextract()
		return
	}
	if at == 0 {
		p.k.TpSrc = uint16(v)
	} else {
		p.k.TpDst = uint16(v)
	}
}

// nd returns the ICMPv6 neighbour solicitation or advertisement, from its
// header to the end of the IPv6 payload, when the key says the packet is one.
func (p *packet) nd() []byte {
	if p.k.TpDst != 0 || (p.k.TpSrc != icmpv6NS && p.k.TpSrc != icmpv6NA) {
		return nil
	}
	if p.l4(IPProtoICMPv6, minNDMsg) == nil || p.ipv6() == nil {
		return nil
	}
	ipLen, _ := p.ipLen()
	end := min(int(p.off.L3)+ipLen, len(p.b))
	if int(p.off.L4)+minNDMsg > end {
		return nil
	}
	return p.b[p.off.L4:end]
}

// setNDBytes rewrites field, a part of the ND message m that starts at an
// even offset in it, to v, updating the ICMPv6 checksum and the key.
func (p *packet) setNDBytes(m, field, v []byte) {
	csumRef{b: m[2:4]}.update(csumAddBytes(0, field, v))
	copy(field, v)
	p.reextract()
}

// setNDOption rewrites the link-layer address of the first ND option of type
// typ. A message without such an option is left alone.
func (p *packet) setNDOption(typ byte, mac [6]byte) {
	m := p.nd()
	if m == nil {
		return
	}
	// Each step consumes at least one 8-byte option unit.
	for opts := m[minNDMsg:]; len(opts) >= ndOptUnitLen; {
		n := int(opts[1]) * ndOptUnitLen
		if n == 0 || n > len(opts) {
			return
		}
		if opts[0] == typ && n == ndOptUnitLen {
			p.setNDBytes(m, opts[2:8], mac[:])
			return
		}
		opts = opts[n:]
	}
}

// isVLANType reports whether t is a VLAN tag's TPID.
func isVLANType(t uint16) bool {
	return t == EthTypeVLAN || t == EthTypeQinQ
}

// plainTags reports whether the frame's tags are exactly those in the key,
// directly followed by L3: then a push or pop only shifts the offsets.
func (p *packet) plainTags() bool {
	tags := 0
	for _, v := range p.k.VLANs {
		if v.TCI&VLANPresent != 0 {
			tags++
		}
	}
	return !isVLANType(p.k.DlType) && int(p.off.L3) == minEth+tags*tagLen && int(p.off.L3) <= len(p.b)
}

// setVLAN sets the outer tag's TCI bits under mask to bits, or pushes an
// 802.1Q tag whose TCI is bits when the packet has no tag.
func (p *packet) setVLAN(mask, bits uint16) Verdict {
	if p.k.VLANs[0].TCI&VLANPresent == 0 {
		return p.push(EthTypeVLAN, bits)
	}
	t := p.span(12, tagLen)
	if t == nil {
		return VerdictOK
	}
	tci := be.Uint16(t[2:])&^mask | bits
	be.PutUint16(t[2:], tci)
	p.k.VLANs[0].TCI = tci | VLANPresent
	return VerdictOK
}

// pushVLAN pushes a tag with the given TPID, copying the TCI of the current
// outer tag, if any.
func (p *packet) pushVLAN(tpid uint16) Verdict {
	// As Open vSwitch pushes it: VID 0 and priority 0, whatever tag the
	// packet had (not the OpenFlow 1.1 copy of the outer tag).
	return p.push(tpid, 0)
}

// push inserts a tag after the Ethernet addresses.
func (p *packet) push(tpid, tci uint16) Verdict {
	n := len(p.b)
	if n < minEth {
		return VerdictOK
	}
	if cap(p.b)-n < tagLen {
		return VerdictNoRoom
	}
	plain := p.plainTags() && p.k.VLANs[1].TCI&VLANPresent == 0 && isVLANType(tpid)
	b := p.b[:n+tagLen]
	copy(b[12+tagLen:], b[12:n])
	be.PutUint16(b[12:], tpid)
	be.PutUint16(b[14:], tci)
	p.b = b
	if !plain || p.off.L3 > NoOffset-1-tagLen || (p.off.L4 != NoOffset && p.off.L4 > NoOffset-1-tagLen) {
		p.reextract()
		return VerdictOK
	}
	p.k.VLANs[1] = p.k.VLANs[0]
	p.k.VLANs[0] = VLAN{TPID: tpid, TCI: tci | VLANPresent}
	p.off.L3 += tagLen
	if p.off.L4 != NoOffset {
		p.off.L4 += tagLen
	}
	return VerdictOK
}

// popVLAN removes the outer tag, if the packet has one.
func (p *packet) popVLAN() {
	n := len(p.b)
	if p.k.VLANs[0].TCI&VLANPresent == 0 || n < 12+tagLen {
		return
	}
	plain := p.plainTags()
	copy(p.b[12:], p.b[12+tagLen:])
	p.b = p.b[:n-tagLen]
	if !plain || p.off.L3 < minEth+tagLen || (p.off.L4 != NoOffset && p.off.L4 < p.off.L3) {
		p.reextract()
		return
	}
	p.k.VLANs[0] = p.k.VLANs[1]
	p.k.VLANs[1] = VLAN{}
	p.off.L3 -= tagLen
	if p.off.L4 != NoOffset {
		p.off.L4 -= tagLen
	}
}
