package flow

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// This file writes datapath flows in Open vSwitch's datapath (ODP) syntax,
// as dpctl/dump-flows and ofproto/trace's "Datapath actions" print them:
// "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(dst=10.0.0.0/255.255.255.0,frag=no)"
// and "set(ipv4(src=10.0.0.1)),2".

// FormatODPActions formats datapath actions as FormatDatapathActions
// does for a megaflow whose masked key is zero, with outputs by port
// number.
func FormatODPActions(acts []Action) string {
	return FormatDatapathActions(acts, &Key{}, nil)
}

// FormatDatapathActions formats a megaflow's actions as Open vSwitch's
// dpctl/dump-flows prints a datapath flow's: the packet's header changes
// before each output, ct, recirc or controller action as the set,
// push_vlan and pop_vlan actions ODPSetActions writes (translation keeps
// one action per changed field, where the datapath's syntax groups them
// by header), then the action itself; "drop" when nothing is sent. start
// is the megaflow's masked key: translation consulted every field it
// changes, so the key holds each one's value before the change. output
// writes an output to a bridge port from its OpenFlow number and the
// packet as it leaves (a tunnel port's output is its encapsulation); nil
// writes the number. Outputs to reserved ports, which the datapath
// resolves per packet, are written by name; LOCAL, the bridge's own port,
// by output when there is one.
//
// A check_pkt_len's branches are written the same way, each from the
// packet as it is at the check ("drop" for an empty one).
func FormatDatapathActions(acts []Action, start *Key, output func(port uint32, k *Key) string) string {
	var parts []string
	last, cur := *start, *start
	var tosMatched uint8 // of the TOS sets since the last commit (isTOSSet)
	commit := func() {
		parts = append(parts, ODPMaskedSetActions(&last, &cur, tosMatched)...)
		last, tosMatched = cur, 0
	}
	for i := 0; i < len(acts); i++ {
		a := &acts[i]
		switch a.Type {
		case ActCheckPktLen:
			commit()
			gt, le, next := CheckPktLenBranches(acts, i)
			parts = append(parts, "check_pkt_len(size="+strconv.FormatUint(a.Value, 10)+
				",gt("+FormatDatapathActions(gt, &cur, output)+"),le("+FormatDatapathActions(le, &cur, output)+"))")
			i = next - 1
		case ActSetField, ActDecTTL, ActPushVLAN, ActPopVLAN, ActSetVLANVID, ActSetVLANPCP:
			if isTOSSet(a) {
				tosMatched |= uint8(a.Mask)
			}
			applyDatapathAction(&cur, a)
		case ActOutput:
			commit()
			switch {
			case a.Port >= PortMax && (a.Port != PortLocal || output == nil):
				parts = append(parts, FormatActions(acts[i:i+1]))
			case output != nil:
				parts = append(parts, output(a.Port, &cur))
			default:
				parts = append(parts, strconv.FormatUint(uint64(a.Port), 10))
			}
		case ActController:
			commit()
			parts = append(parts, formatODPController(a))
		case ActCT:
			commit()
			parts = append(parts, FormatODPCT(a.CT))
		case ActCTClear:
			commit()
			parts = append(parts, "ct_clear")
		case ActMeter:
			commit()
			parts = append(parts, "meter("+strconv.FormatUint(a.Value, 10)+")")
		case ActRecirc:
			commit()
			parts = append(parts, "recirc("+hexZero(a.Value)+")")
		case ActHash:
			commit()
			alg := "l4("
			if dpHashAlg(a.Value) == dpHashSymL4 {
				alg = "sym_l4("
			}
			parts = append(parts, "hash("+alg+strconv.FormatUint(a.Value&(1<<32-1), 10)+"))")
		default:
			// Translation keeps no other action; written as a flow
			// would write it, it still shows.
			parts = append(parts, FormatActions(acts[i:i+1]))
		}
	}
	if len(parts) == 0 {
		return "drop"
	}
	return strings.Join(parts, ",")
}

// isTOSSet reports whether datapath action a sets the DSCP or ECN bits;
// its Mask holds the TOS bits the megaflow matched at its commit.
func isTOSSet(a *Action) bool {
	return a.Type == ActSetField && (a.Field == FieldNwTos || a.Field == FieldNwECN)
}

// TOSCommitMasks returns, for each commit of datapath actions acts that
// changes the TOS byte, in order, the TOS bits the megaflow matched by
// then (see ODPMaskedSetActions): a commit's sets are adjacent actions.
func TOSCommitMasks(acts []Action) []uint8 {
	var masks []uint8
	inSets := false // in a run of set actions that has a TOS set
	for i := range acts {
		a := &acts[i]
		switch {
		case isTOSSet(a):
			if !inSets {
				masks = append(masks, 0)
				inSets = true
			}
			masks[len(masks)-1] |= uint8(a.Mask)
		case a.Type != ActSetField:
			inSets = false
		}
	}
	return masks
}

// applyDatapathAction changes k as datapath action a changes the packet.
func applyDatapathAction(k *Key, a *Action) {
	switch a.Type {
	case ActSetField:
		if a.Field == FieldTunMeta0 { // commitTunMeta's whole metadata
			k.TunMeta, k.TunMetaPresent = a.IPv6, a.Value
			return
		}
		f := fieldByID[a.Field]
		if f == nil {
			return
		}
		v, m := setFieldOperand(f, a)
		setFieldBits(k, f, v, m)
	case ActDecTTL:
		if k.NwTTL > 0 {
			k.NwTTL--
		}
	case ActPushVLAN:
		// VID 0 and priority 0, as the datapath pushes it.
		k.VLANs[1], k.VLANs[0] = k.VLANs[0], VLAN{TPID: uint16(a.Value), TCI: VLANPresent}
	case ActPopVLAN:
		k.VLANs[0], k.VLANs[1] = k.VLANs[1], VLAN{}
	case ActSetVLANVID:
		k.VLANs[0].TCI = k.VLANs[0].TCI&^VLANVIDMask | VLANPresent | uint16(a.Value)&VLANVIDMask
		if k.VLANs[0].TPID == 0 {
			k.VLANs[0].TPID = EthTypeVLAN
		}
	case ActSetVLANPCP:
		k.VLANs[0].TCI = k.VLANs[0].TCI&^VLANPCPMask | VLANPresent | uint16(a.Value&7)<<13
		if k.VLANs[0].TPID == 0 {
			k.VLANs[0].TPID = EthTypeVLAN
		}
	}
}

// odpWriter writes "name(field=value,...)" groups, leaving out fields whose
// mask is zero and groups with no field left.
type odpWriter struct {
	b      strings.Builder
	fields []string
}

func (w *odpWriter) sep() {
	if w.b.Len() > 0 {
		w.b.WriteByte(',')
	}
}

// raw writes a whole item.
func (w *odpWriter) raw(s string) {
	w.sep()
	w.b.WriteString(s)
}

// field adds "name=text" to the group being built when mask is non-zero.
func (w *odpWriter) field(name, text string, masked bool) {
	if masked {
		w.fields = append(w.fields, name+"="+text)
	}
}

// group writes the fields gathered since the last group as name(...).
func (w *odpWriter) group(name string) {
	if len(w.fields) == 0 {
		return
	}
	w.raw(name + "(" + strings.Join(w.fields, ",") + ")")
	w.fields = w.fields[:0]
}

func macODP(v, m [6]byte) string {
	s := macString(v)
	if m != [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} {
		s += "/" + macString(m)
	}
	return s
}

func macString(a [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4], a[5])
}

func ipv4ODP(v, m uint32) string {
	s := ipv4Text(v)
	if m != ^uint32(0) {
		s += "/" + ipv4Text(m)
	}
	return s
}

func ipv6ODP(v, m *[16]byte) string {
	s := netip.AddrFrom16(*v).String()
	if *m != [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff} {
		s += "/" + netip.AddrFrom16(*m).String()
	}
	return s
}

// numODP writes a number in decimal, with a hexadecimal mask when partial.
func numODP(v, m, ones uint64) string {
	s := strconv.FormatUint(v, 10)
	if m != ones {
		s += "/0x" + strconv.FormatUint(m, 16)
	}
	return s
}

// hexODP writes a number in hexadecimal, with its mask when partial.
func hexODP(v, m, ones uint64) string {
	s := "0x" + strconv.FormatUint(v, 16)
	if m != ones {
		s += "/0x" + strconv.FormatUint(m, 16)
	}
	return s
}

// ethTypeODP formats an Ethertype and its mask with four hex digits each,
// as Open vSwitch does ("0x0800").
func ethTypeODP(v, m uint16) string {
	s := fmt.Sprintf("0x%04x", v)
	if m != 0xffff {
		s += fmt.Sprintf("/0x%04x", m)
	}
	return s
}

func fragODP(v, m uint8) string {
	switch {
	case m&FragAny != 0 && v == 0:
		return "no" // not a fragment: the later bit cannot be set
	case m == FragAny|FragLater && v == FragAny:
		return "first"
	case m == FragAny|FragLater && v == FragAny|FragLater:
		return "later"
	}
	return hexODP(uint64(v), uint64(m), FragAny|FragLater)
}

// FormatODPMatch formats a megaflow's match in datapath syntax, in Open
// vSwitch's userspace datapath order: the tunnel fields of a decapsulated
// packet the megaflow consulted (its Geneve options named by class and
// type through tlv, the bridge's TLV map), the connection tracking fields
// it consulted, recirc_id (always: every megaflow matches it exactly),
// in_port, packet_type (always Ethernet, and always exact in the
// userspace datapath), then the packet's headers. Fields outside the mask
// are left out, and partly masked fields carry their mask.
func FormatODPMatch(m *Match, tlv *TLVMap) string {
	return FormatODPMatchNamed(m, tlv, "")
}

// FormatODPMatchNamed is FormatODPMatch with in_port written as inPort,
// the port's name, when the match has the whole of it (by number when
// inPort is "").
func FormatODPMatchNamed(m *Match, tlv *TLVMap, inPort string) string {
	k, mk := &m.Key, &m.Mask
	var w odpWriter
	odpTunnel(&w, k, mk, tlv)
	odpCT(&w, k, mk)
	w.raw("recirc_id(" + hexZero(uint64(k.RecircID)) + ")")
	if mk.DpHash != 0 {
		w.raw("dp_hash(" + maskedHexZero(uint64(k.DpHash), uint64(mk.DpHash), 1<<32-1) + ")")
	}
	switch {
	case inPort != "" && mk.InPort == 0xffffffff:
		w.raw("in_port(" + inPort + ")")
	case mk.InPort != 0:
		w.raw("in_port(" + numODP(uint64(k.InPort), uint64(mk.InPort), 0xffffffff) + ")")
	}
	w.raw("packet_type(ns=0,id=0)")
	noMAC := [6]byte{}
	w.field("src", macODP(k.DlSrc, mk.DlSrc), mk.DlSrc != noMAC)
	w.field("dst", macODP(k.DlDst, mk.DlDst), mk.DlDst != noMAC)
	w.group("eth")

	var l3 odpWriter
	odpL3(&l3, k, mk)
	if mk.VLANs[0].TCI&VLANPresent == 0 || k.VLANs[0].TCI&VLANPresent == 0 {
		if l3.b.Len() > 0 {
			w.raw(l3.b.String())
		}
		return w.b.String()
	}
	tpid := k.VLANs[0].TPID
	if tpid == 0 {
		tpid = EthTypeVLAN
	}
	w.raw("eth_type(" + ethTypeODP(tpid, 0xffff) + ")")
	tci, tm := k.VLANs[0].TCI, mk.VLANs[0].TCI
	w.field("vid", numODP(uint64(tci&VLANVIDMask), uint64(tm&VLANVIDMask), VLANVIDMask), tm&VLANVIDMask != 0)
	w.field("pcp", numODP(uint64(tci>>13), uint64(tm>>13), 7), tm&VLANPCPMask != 0)
	w.raw("vlan(" + strings.Join(w.fields, ",") + ")")
	w.fields = w.fields[:0]
	w.raw("encap(" + l3.b.String() + ")")
	return w.b.String()
}

// odpL3 writes eth_type and the L3 and L4 groups.
func odpL3(w *odpWriter, k, mk *Key) {
	if mk.DlType != 0 {
		w.raw("eth_type(" + ethTypeODP(k.DlType, mk.DlType) + ")")
	}
	switch k.DlType {
	case EthTypeIPv4:
		w.field("src", ipv4ODP(k.NwSrc, mk.NwSrc), mk.NwSrc != 0)
		w.field("dst", ipv4ODP(k.NwDst, mk.NwDst), mk.NwDst != 0)
		odpIPCommon(w, k, mk, "tos", "ttl")
		w.group("ipv4")
	case EthTypeIPv6:
		var none [16]byte
		w.field("src", ipv6ODP(&k.IPv6Src, &mk.IPv6Src), mk.IPv6Src != none)
		w.field("dst", ipv6ODP(&k.IPv6Dst, &mk.IPv6Dst), mk.IPv6Dst != none)
		w.field("label", hexODP(uint64(k.IPv6Label), uint64(mk.IPv6Label), 0xfffff), mk.IPv6Label != 0)
		odpIPCommon(w, k, mk, "tclass", "hlimit")
		w.group("ipv6")
	case EthTypeARP, EthTypeRARP:
		noMAC := [6]byte{}
		w.field("sip", ipv4ODP(k.NwSrc, mk.NwSrc), mk.NwSrc != 0)
		w.field("tip", ipv4ODP(k.NwDst, mk.NwDst), mk.NwDst != 0)
		w.field("op", numODP(uint64(k.NwProto), uint64(mk.NwProto), 0xff), mk.NwProto != 0)
		w.field("sha", macODP(k.ArpSha, mk.ArpSha), mk.ArpSha != noMAC)
		w.field("tha", macODP(k.ArpTha, mk.ArpTha), mk.ArpTha != noMAC)
		w.group("arp")
		return
	default:
		return
	}
	if mk.NwProto != 0xff {
		return // the transport protocol is not known for the whole megaflow
	}
	ports := func(name string) {
		w.field("src", numODP(uint64(k.TpSrc), uint64(mk.TpSrc), 0xffff), mk.TpSrc != 0)
		w.field("dst", numODP(uint64(k.TpDst), uint64(mk.TpDst), 0xffff), mk.TpDst != 0)
		w.group(name)
	}
	switch k.NwProto {
	case IPProtoTCP:
		ports("tcp")
		if mk.TcpFlags != 0 {
			w.raw("tcp_flags(" + hexODP(uint64(k.TcpFlags), uint64(mk.TcpFlags), 0xfff) + ")")
		}
	case IPProtoUDP:
		ports("udp")
	case IPProtoSCTP:
		ports("sctp")
	case IPProtoICMP, IPProtoICMPv6:
		name := "icmp"
		if k.NwProto == IPProtoICMPv6 {
			name = "icmpv6"
		}
		w.field("type", numODP(uint64(k.TpSrc), uint64(mk.TpSrc), 0xffff), mk.TpSrc != 0)
		w.field("code", numODP(uint64(k.TpDst), uint64(mk.TpDst), 0xffff), mk.TpDst != 0)
		w.group(name)
		if name == "icmpv6" {
			var none [16]byte
			noMAC := [6]byte{}
			w.field("target", ipv6ODP(&k.NdTarget, &mk.NdTarget), mk.NdTarget != none)
			w.field("sll", macODP(k.ArpSha, mk.ArpSha), mk.ArpSha != noMAC)
			w.field("tll", macODP(k.ArpTha, mk.ArpTha), mk.ArpTha != noMAC)
			w.group("nd")
		}
	}
}

// odpIPCommon adds the fields IPv4 and IPv6 share, under their names.
func odpIPCommon(w *odpWriter, k, mk *Key, tos, ttl string) {
	w.field("proto", numODP(uint64(k.NwProto), uint64(mk.NwProto), 0xff), mk.NwProto != 0)
	w.field(tos, maskedHexZero(uint64(k.NwTos), uint64(mk.NwTos), 0xff), mk.NwTos != 0) // %#x, as Open vSwitch: 0 for zero
	w.field(ttl, numODP(uint64(k.NwTTL), uint64(mk.NwTTL), 0xff), mk.NwTTL != 0)
	w.field("frag", fragODP(k.NwFrag, mk.NwFrag), mk.NwFrag != 0)
}

// tosODP writes a changed TOS byte as a masked set writes it: with the
// mask of the DSCP or ECN bits when only those changed, and the bits the
// megaflow matches (matched), which Open vSwitch's commit of a set puts
// in its mask too. The ECN bits of a packet decapsulated with congestion
// experienced (ceIn) are in the mask whatever changed: every megaflow of
// such a packet matches them (tunnelReceived). A set whose mask covers
// the whole byte is written without it: a rule that reads the DSCP of
// such a packet gets tos=0xbb, not tos=0x3/0x3. Values are written as
// C's %#x writes them: 0 without 0x.
func tosODP(from, to, matched uint8, ceIn bool) string {
	hex := func(v uint8) string {
		if v == 0 {
			return "0"
		}
		return "0x" + strconv.FormatUint(uint64(v), 16)
	}
	d, m := from^to, matched
	if d&0xfc != 0 {
		m |= 0xfc
	}
	if d&ecnMask != 0 || ceIn {
		m |= ecnMask
	}
	if m == 0xff {
		return hex(to)
	}
	return hex(to&m) + "/" + hex(m)
}

// ODPSetActions returns the datapath actions that turn a packet with key
// from into one with key to, in Open vSwitch's commit order: Ethernet
// addresses, VLAN tags (pop_vlan/push_vlan when they differ), then L3 and
// L4. A set is set(group(field=value,...)) with the changed fields only.
func ODPSetActions(from, to *Key) []string {
	return ODPMaskedSetActions(from, to, 0)
}

// ODPMaskedSetActions is ODPSetActions where the megaflow matches the
// TOS bits tosMatched when the sets are committed: a TOS or traffic
// class set's mask also covers them (see tosODP and TOSCommitMasks).
func ODPMaskedSetActions(from, to *Key, tosMatched uint8) []string {
	acts := odpSetHeaders(from, to, tosMatched)
	if from.PktMark != to.PktMark {
		acts = append(acts, "set(skb_mark(0x"+strconv.FormatUint(uint64(to.PktMark), 16)+"))")
	}
	return acts
}

// vlanDepth is how many leading tags have the present bit.
func vlanDepth(v *[2]VLAN) int {
	n := 0
	for n < len(v) && v[n].TCI&VLANPresent != 0 {
		n++
	}
	return n
}

// sameTag reports whether two tags are alike on the wire (a TPID of 0
// is 802.1Q's).
func sameTag(a, b VLAN) bool {
	tpid := func(v VLAN) uint16 {
		if v.TPID == 0 {
			return EthTypeVLAN
		}
		return v.TPID
	}
	return a.TCI == b.TCI && tpid(a) == tpid(b)
}

// odpSetHeaders is ODPSetActions for the packet's headers; matchedTos
// are the TOS bits the megaflow matches.
func odpSetHeaders(from, to *Key, matchedTos uint8) []string {
	var acts []string
	set := func(group string, fields []string) {
		if len(fields) > 0 {
			acts = append(acts, "set("+group+"("+strings.Join(fields, ",")+"))")
		}
	}
	var f []string
	add := func(changed bool, name, text string) {
		if changed {
			f = append(f, name+"="+text)
		}
	}
	add(from.DlSrc != to.DlSrc, "src", macString(to.DlSrc))
	add(from.DlDst != to.DlDst, "dst", macString(to.DlDst))
	set("eth", f)

	if from.VLANs != to.VLANs {
		// As Open vSwitch commits tags: the inner tags both have alike
		// stay, the packet's other tags are popped and the flow's pushed.
		nf, nt := vlanDepth(&from.VLANs), vlanDepth(&to.VLANs)
		for nf > 0 && nt > 0 && sameTag(from.VLANs[nf-1], to.VLANs[nt-1]) {
			nf, nt = nf-1, nt-1
		}
		for range nf {
			acts = append(acts, "pop_vlan")
		}
		for i := nt - 1; i >= 0; i-- {
			v := to.VLANs[i]
			s := "push_vlan("
			if v.TPID != 0 && v.TPID != EthTypeVLAN {
				s += "tpid=0x" + strconv.FormatUint(uint64(v.TPID), 16) + ","
			}
			acts = append(acts, s+"vid="+strconv.Itoa(int(v.TCI&VLANVIDMask))+",pcp="+strconv.Itoa(int(v.TCI>>13))+")")
		}
	}
	f = nil
	switch to.DlType {
	case EthTypeIPv4:
		add(from.NwSrc != to.NwSrc, "src", ipv4Text(to.NwSrc))
		add(from.NwDst != to.NwDst, "dst", ipv4Text(to.NwDst))
		add(from.NwTos != to.NwTos, "tos", tosODP(from.NwTos, to.NwTos, matchedTos, from.ceIn()))
		add(from.NwTTL != to.NwTTL, "ttl", strconv.Itoa(int(to.NwTTL)))
		set("ipv4", f)
	case EthTypeIPv6:
		add(from.IPv6Src != to.IPv6Src, "src", netip.AddrFrom16(to.IPv6Src).String())
		add(from.IPv6Dst != to.IPv6Dst, "dst", netip.AddrFrom16(to.IPv6Dst).String())
		add(from.IPv6Label != to.IPv6Label, "label", "0x"+strconv.FormatUint(uint64(to.IPv6Label), 16))
		add(from.NwTos != to.NwTos, "tclass", tosODP(from.NwTos, to.NwTos, matchedTos, from.ceIn()))
		add(from.NwTTL != to.NwTTL, "hlimit", strconv.Itoa(int(to.NwTTL)))
		set("ipv6", f)
	case EthTypeARP, EthTypeRARP:
		add(from.NwSrc != to.NwSrc, "sip", ipv4Text(to.NwSrc))
		add(from.NwDst != to.NwDst, "tip", ipv4Text(to.NwDst))
		add(from.NwProto != to.NwProto, "op", strconv.Itoa(int(to.NwProto)))
		add(from.ArpSha != to.ArpSha, "sha", macString(to.ArpSha))
		add(from.ArpTha != to.ArpTha, "tha", macString(to.ArpTha))
		set("arp", f)
		return acts
	default:
		return acts
	}

	f = nil
	add(from.TpSrc != to.TpSrc, "src", strconv.Itoa(int(to.TpSrc)))
	add(from.TpDst != to.TpDst, "dst", strconv.Itoa(int(to.TpDst)))
	switch to.NwProto {
	case IPProtoTCP:
		set("tcp", f)
	case IPProtoUDP:
		set("udp", f)
	case IPProtoSCTP:
		set("sctp", f)
	case IPProtoICMP, IPProtoICMPv6:
		f = nil
		add(from.TpSrc != to.TpSrc, "type", strconv.Itoa(int(to.TpSrc)))
		add(from.TpDst != to.TpDst, "code", strconv.Itoa(int(to.TpDst)))
		if to.NwProto == IPProtoICMP {
			set("icmp", f)
			break
		}
		set("icmpv6", f)
		f = nil
		add(from.NdTarget != to.NdTarget, "target", netip.AddrFrom16(to.NdTarget).String())
		add(from.ArpSha != to.ArpSha, "sll", macString(to.ArpSha))
		add(from.ArpTha != to.ArpTha, "tll", macString(to.ArpTha))
		set("nd", f)
	}
	return acts
}

// hexZero writes v as C's %#x: 0, or hexadecimal with 0x.
func hexZero(v uint64) string {
	if v == 0 {
		return "0"
	}
	return "0x" + strconv.FormatUint(v, 16)
}

// maskedHexZero writes v as %#x, with "/mask" when the mask is partial.
func maskedHexZero(v, m, ones uint64) string {
	s := hexZero(v)
	if m != ones {
		s += "/" + hexZero(m)
	}
	return s
}

// u128Hex writes a 128-bit big-endian number as %#x would.
func u128Hex(b *[16]byte) string {
	v := u128FromBytes(b)
	if v.hi == 0 {
		return hexZero(v.lo)
	}
	lo := strconv.FormatUint(v.lo, 16)
	return "0x" + strconv.FormatUint(v.hi, 16) + strings.Repeat("0", 16-len(lo)) + lo
}

// odpCT writes the connection tracking fields of a datapath match.
func odpCT(w *odpWriter, k, mk *Key) {
	if mk.CtState != 0 {
		w.raw("ct_state(" + maskedFlagsText(ctStateNames[:], uint64(k.CtState), uint64(mk.CtState)) + ")")
	}
	if mk.CtZone != 0 {
		w.raw("ct_zone(" + maskedHexZero(uint64(k.CtZone), uint64(mk.CtZone), 0xffff) + ")")
	}
	if mk.CtMark != 0 {
		w.raw("ct_mark(" + maskedHexZero(uint64(k.CtMark), uint64(mk.CtMark), 0xffffffff) + ")")
	}
	var none, all [16]byte
	for i := range all {
		all[i] = 0xff
	}
	if mk.CtLabel != none {
		s := u128Hex(&k.CtLabel)
		if mk.CtLabel != all {
			s += "/" + u128Hex(&mk.CtLabel)
		}
		w.raw("ct_label(" + s + ")")
	}
	tuple := func(name string) {
		w.field("proto", numODP(uint64(k.CtNwProto), uint64(mk.CtNwProto), 0xff), mk.CtNwProto != 0)
		w.field("tp_src", numODP(uint64(k.CtTpSrc), uint64(mk.CtTpSrc), 0xffff), mk.CtTpSrc != 0)
		w.field("tp_dst", numODP(uint64(k.CtTpDst), uint64(mk.CtTpDst), 0xffff), mk.CtTpDst != 0)
		w.group(name)
	}
	if mk.CtNwSrc != 0 || mk.CtNwDst != 0 {
		w.field("src", ipv4ODP(k.CtNwSrc, mk.CtNwSrc), mk.CtNwSrc != 0)
		w.field("dst", ipv4ODP(k.CtNwDst, mk.CtNwDst), mk.CtNwDst != 0)
		tuple("ct_tuple4")
	} else if mk.CtIPv6Src != none || mk.CtIPv6Dst != none {
		w.field("src", ipv6ODP(&k.CtIPv6Src, &mk.CtIPv6Src), mk.CtIPv6Src != none)
		w.field("dst", ipv6ODP(&k.CtIPv6Dst, &mk.CtIPv6Dst), mk.CtIPv6Dst != none)
		tuple("ct_tuple6")
	} else if mk.CtNwProto != 0 || mk.CtTpSrc != 0 || mk.CtTpDst != 0 {
		tuple("ct_tuple4")
	}
}

// FormatODPCT writes a resolved ct datapath action as Open vSwitch's
// datapath prints it: ct, or ct(commit,zone=N,mark=V/M,label=V/M,
// helper=ftp,nat(...)) with the arguments it has.
func FormatODPCT(c *CT) string {
	if c == nil {
		return "ct"
	}
	var args []string
	switch {
	case c.Commit && c.Force:
		args = append(args, "force_commit")
	case c.Commit:
		args = append(args, "commit")
	}
	if c.Zone != 0 {
		args = append(args, "zone="+strconv.Itoa(int(c.Zone)))
	}
	if c.SetMark {
		args = append(args, "mark="+hexZero(uint64(c.Mark))+"/"+hexZero(uint64(c.MarkMask)))
	}
	if c.SetLabel {
		args = append(args, "label="+u128Hex(&c.Label)+"/"+u128Hex(&c.LabelMask))
	}
	switch c.Alg {
	case 21:
		args = append(args, "helper=ftp")
	case 69:
		args = append(args, "helper=tftp")
	}
	if c.NAT != nil {
		args = append(args, formatODPNAT(c.NAT))
	}
	if len(args) == 0 {
		return "ct"
	}
	return "ct(" + strings.Join(args, ",") + ")"
}

// formatODPNAT writes a nat argument: nat, or nat(src=A[-B][:P[-Q]],...).
func formatODPNAT(n *NAT) string {
	if n.Kind == NATRestore {
		return "nat"
	}
	s := "src"
	if n.Kind == NATDst {
		s = "dst"
	}
	addr := func(a netip.Addr) string {
		if a.Is6() && !a.Is4In6() {
			return "[" + a.String() + "]"
		}
		return a.String()
	}
	if n.AddrMin.IsValid() {
		s += "=" + addr(n.AddrMin)
		if n.AddrMax.IsValid() && n.AddrMax != n.AddrMin {
			s += "-" + addr(n.AddrMax)
		}
		if n.PortMin != 0 {
			s += ":" + strconv.Itoa(int(n.PortMin))
			if n.PortMax != 0 && n.PortMax != n.PortMin {
				s += "-" + strconv.Itoa(int(n.PortMax))
			}
		}
	}
	if n.Persistent {
		s += ",persistent"
	}
	if n.Hash {
		s += ",hash"
	}
	if n.Random {
		s += ",random"
	}
	return "nat(" + s + ")"
}

// odpTunnelFlags are Open vSwitch's datapath tunnel flags in the order it
// prints them (FLOW_TNL_F_DONT_FRAGMENT, _CSUM, _KEY, _OAM), each with
// ovsxdp's bit.
var odpTunnelFlags = []struct {
	name string
	bit  uint16
}{{"df", TunFlagDF}, {"csum", TunFlagCsum}, {"key", TunFlagKey}, {"oam", TunFlagOAM}}

// odpTunnel writes the tunnel group of a decapsulated packet's megaflow as
// Open vSwitch does: "tunnel(tun_id=0x1,src=192.0.2.1,dst=192.0.2.2,
// geneve({class=0x102,type=0x80,len=4,0x10003/0x7fffffff}),flags(+csum))",
// with only the fields the megaflow consulted. Open vSwitch prints the
// group only for a packet that came out of a tunnel, whose tunnel
// destination is set; a megaflow's key is masked, so here the group is
// left out when every field it consulted is zero, as all are for a packet
// that did not come out of a tunnel (a pipeline that writes tun_id
// consults it). A decapsulated packet whose consulted fields are all zero
// (a match on VNI 0 alone) is not told apart and shows none either.
func odpTunnel(w *odpWriter, k, mk *Key, tlv *TLVMap) {
	if k.TunID == 0 && k.TunSrc == 0 && k.TunDst == 0 && k.TunIPv6Src == ([16]byte{}) && k.TunIPv6Dst == ([16]byte{}) &&
		k.TunTOS == 0 && k.TunTTL == 0 && k.TunFlags&mk.TunFlags == 0 && k.TunMetaPresent&mk.TunMetaPresent == 0 {
		return
	}
	var f []string
	if mk.TunID != 0 {
		f = append(f, "tun_id="+hexODP(k.TunID, mk.TunID, 1<<64-1))
	}
	if mk.TunSrc != 0 {
		f = append(f, "src="+ipv4ODP(k.TunSrc, mk.TunSrc))
	}
	if mk.TunDst != 0 {
		f = append(f, "dst="+ipv4ODP(k.TunDst, mk.TunDst))
	}
	if mk.TunIPv6Src != ([16]byte{}) {
		f = append(f, "ipv6_src="+ipv6ODP(&k.TunIPv6Src, &mk.TunIPv6Src))
	}
	if mk.TunIPv6Dst != ([16]byte{}) {
		f = append(f, "ipv6_dst="+ipv6ODP(&k.TunIPv6Dst, &mk.TunIPv6Dst))
	}
	if mk.TunTOS != 0 && k.TunTOS != 0 {
		// Open vSwitch's key leaves out a TOS of 0, so its dump shows
		// none; it prints one with %#x, which writes zero as 0.
		tos := "tos=" + hexZero(uint64(k.TunTOS))
		if mk.TunTOS != 0xff {
			tos += "/" + hexZero(uint64(mk.TunTOS))
		}
		f = append(f, tos)
	}
	if mk.TunTTL != 0 {
		f = append(f, "ttl="+numODP(uint64(k.TunTTL), uint64(mk.TunTTL), 0xff))
	}
	var opts strings.Builder
	k.TunMetaFields(mk, func(index int, v, msk []byte) {
		opts.WriteByte('{')
		if mp, _, ok := tlv.Lookup(index); ok {
			opts.WriteString("class=" + hexZero(uint64(mp.Class)) + ",type=" + hexZero(uint64(mp.Type)) + ",")
		}
		fmt.Fprintf(&opts, "len=%d", len(v))
		allZero, allOnes := true, true
		for _, c := range msk {
			allZero = allZero && c == 0
			allOnes = allOnes && c == 0xff
		}
		if !allZero {
			opts.WriteString("," + hexBytes(v))
			if !allOnes {
				opts.WriteString("/" + hexBytes(msk))
			}
		}
		opts.WriteByte('}')
	})
	if opts.Len() > 0 || k.TunFlags&mk.TunFlags&TunFlagGeneve != 0 {
		// Options that came but that the megaflow does not match show
		// as Open vSwitch shows them, geneve({}); no option, geneve().
		if opts.Len() == 0 && k.TunFlags&mk.TunFlags&TunFlagOpts != 0 {
			opts.WriteString("{}")
		}
		f = append(f, "geneve("+opts.String()+")")
	}
	var flags strings.Builder
	for _, fl := range odpTunnelFlags {
		if mk.TunFlags&fl.bit == 0 {
			continue
		}
		if k.TunFlags&fl.bit != 0 {
			flags.WriteByte('+')
		} else {
			flags.WriteByte('-')
		}
		flags.WriteString(fl.name)
	}
	if flags.Len() > 0 {
		f = append(f, "flags("+flags.String()+")")
	}
	if len(f) > 0 {
		w.raw("tunnel(" + strings.Join(f, ",") + ")")
	}
}
