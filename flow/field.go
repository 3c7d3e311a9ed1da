package flow

import "strconv"

// This file is the field table that drives both the ovs-ofctl syntax parser
// (parse.go) and the formatter (format.go): for every field a flow may name,
// its spellings, how its value is written, where it lives in Key, which bits
// of that storage it covers, whether it takes a mask, its prerequisites and
// how a set_field action on it is printed.

// valueKind is how a field's value is written.
type valueKind uint8

const (
	kindNum      valueKind = iota // decimal, or hexadecimal with 0x
	kindMAC                       // xx:xx:xx:xx:xx:xx
	kindIPv4                      // dotted quad; masks as /N or /a.b.c.d
	kindIPv6                      // RFC 4291 text; masks as /N or /address
	kindPort                      // OpenFlow port number or reserved name
	kindFrag                      // no, yes, first, later, not_later
	kindTCPFlags                  // +syn-ack, names joined by |, or a number
	kindNum128                    // a number of up to 128 bits (xxreg, ct_label)
	kindCtState                   // +trk-new, names joined by |, or value/mask
	kindTunFlags                  // +oam-oam, or value/mask (field_tun.go)
)

// storage names the Key member a field lives in.
type storage uint8

const (
	stInPort storage = iota + 1
	stDlSrc
	stDlDst
	stDlType
	stTCI
	stNwSrc
	stNwDst
	stNwProto
	stNwTos
	stNwTTL
	stNwFrag
	stIPv6Src
	stIPv6Dst
	stIPv6Label
	stNdTarget
	stArpSha
	stArpTha
	stTpSrc
	stTpDst
	stTCPFlags
	stMetadata
	stPktMark
	stConjID
	stCtState
	stCtZone
	stCtMark
	stCtNwSrc
	stCtNwDst
	stCtNwProto
	stCtTpSrc
	stCtTpDst
	stCtLabel   // 128 bits, big-endian bytes
	stCtIPv6Src // 128 bits
	stCtIPv6Dst // 128 bits
	stTunID
	stTunSrc
	stTunDst
	stTunFlags
	stTunIPv6Src                       // 128 bits
	stTunIPv6Dst                       // 128 bits
	stReg0                             // reg N is stReg0+N
	stXReg0      = stReg0 + NumRegs    // xreg N is stXReg0+N: reg 2N (high half) and reg 2N+1
	stXXReg0     = stXReg0 + NumRegs/2 // xxreg N is stXXReg0+N: regs 4N (high) to 4N+3
	stEnd        = stXXReg0 + NumRegs/4
	stTunMeta0   = stEnd // tun_metadataN is stTunMeta0+N (placed by the key's descriptors)
	stTunMetaEnd = stTunMeta0 + NumTunMeta
)

// prereq is a field's prerequisite: what the rest of the match must say
// for the field to be meaningful.
type prereq uint8

const (
	preNone      prereq = iota
	preIPv4             // ip
	preIPv6             // ipv6
	preIP               // ip or ipv6
	preIPv4OrARP        // ip, arp or rarp (nw_src/nw_dst share storage with arp_spa/arp_tpa)
	preIPOrARP          // ip, ipv6, arp or rarp (nw_proto doubles as arp_op)
	preARP              // arp or rarp
	preL4               // tcp, udp or sctp, over IPv4 or IPv6
	preTCP              // tcp or tcp6
	preUDP              // udp or udp6
	preSCTP             // sctp or sctp6
	preICMPAny          // icmp or icmp6 (icmp_type/icmp_code print for both)
	preICMPv4           // icmp
	preICMPv6           // icmp6
	preND               // icmp6 with icmp_type 135 or 136 and icmp_code 0
	preNDSolicit        // icmp6 with icmp_type 135 and icmp_code 0
	preNDAdvert         // icmp6 with icmp_type 136 and icmp_code 0
	preVLAN             // a VLAN header (set_field on vlan_vid/vlan_pcp)
	preCtIPv4           // ip and a ct_state that says the packet has a connection
	preCtIPv6           // ipv6 and such a ct_state
	preCtIP             // ip or ipv6 and such a ct_state
	preCtProto          // as preCtIP, and a non-zero ct_nw_proto
)

// prereqText says in words what a prerequisite asks for; error messages
// use it.
var prereqText = [...]string{
	preNone:      "nothing",
	preIPv4:      "ip (dl_type=0x0800)",
	preIPv6:      "ipv6 (dl_type=0x86dd)",
	preIP:        "ip or ipv6",
	preIPv4OrARP: "ip, arp or rarp",
	preIPOrARP:   "ip, ipv6, arp or rarp",
	preARP:       "arp or rarp",
	preL4:        "tcp, udp or sctp (or tcp6, udp6, sctp6)",
	preTCP:       "tcp or tcp6",
	preUDP:       "udp or udp6",
	preSCTP:      "sctp or sctp6",
	preICMPAny:   "icmp or icmp6",
	preICMPv4:    "icmp",
	preICMPv6:    "icmp6",
	preND:        "icmp6 with icmp_type=135 or 136 and icmp_code=0",
	preNDSolicit: "icmp6 with icmp_type=135 and icmp_code=0",
	preNDAdvert:  "icmp6 with icmp_type=136 and icmp_code=0",
	preVLAN:      "a VLAN header (dl_vlan, vlan_vid or vlan_tci with the present bit)",
	preCtIPv4:    "ip and a tracked connection (ct_state=+est, +new, +trk-inv...)",
	preCtIPv6:    "ipv6 and a tracked connection (ct_state=+est, +new, +trk-inv...)",
	preCtIP:      "ip or ipv6 and a tracked connection (ct_state=+est, +trk-inv...)",
	preCtProto:   "ct_nw_proto and a tracked connection (ct_state=+est, +trk-inv..)",
}

// of10 says whether OpenFlow 1.0 can carry a match on the field. ovs-ofctl
// picks OpenFlow 1.0 when every field allows it and NXM otherwise, and an
// OpenFlow 1.0 round trip rewrites some VLAN matches (see Parser).
type of10 uint8

const (
	of10No    of10 = iota // NXM only
	of10Exact             // exact matches only
	of10CIDR              // exact and prefix matches
)

// field describes one field name that flows may use.
type field struct {
	id      FieldID
	name    string   // the name ovs-fields(7) gives it
	aliases []string // other accepted spellings
	kind    valueKind
	st      storage
	// For numeric fields: the largest value that may be written, the left
	// shift that places it in the storage, and the storage bits the field
	// covers (a match on it replaces exactly those bits).
	max   uint64
	shift uint8
	bits  uint64
	// maskable fields accept value/mask; others accept only a full mask.
	maskable bool
	pre      prereq
	of10     of10
	// set is how set_field on the field is written in an action list:
	// setNone (read-only), or the action it becomes.
	set    setKind
	setPre prereq // prerequisite of set_field (and load) on this field
	nxm    string // NXM/OXM name printed by load:...->NAME[] (setLoad)
}

// setKind is what set_field on a field becomes.
type setKind uint8

const (
	setNone    setKind = iota // read-only
	setMod                    // printed as a mod_* action
	setLoad                   // printed as load:V->NXM[]
	setVLANVID                // ActSetVLANVID
	setVLANPCP                // ActSetVLANPCP
	setReg                    // pipeline state (registers, metadata, pkt_mark, in_port): ActLoad, printed as load:V->NXM[]
	setTCI                    // vlan_tci: load and move (ActLoad, ActMove) push, rewrite or pop the tag
	setCT                     // ct_mark, ct_label: ActLoad and ActMove, only inside ct(exec(...))
)

// fields is the field table. The order is irrelevant; lookups go through
// fieldByName and fieldByID.
var fields = append(append(append(append(packetFields, pipelineFields()...), ctFields...), tunFields...), tunMetaFields()...)

// ctFields are the connection tracking fields (ovs-fields(7) "Connection
// Tracking Fields"): what the last ct action found, all NXM only. ct_mark
// and ct_label are written only by the actions inside ct(exec(...)).
var ctFields = []field{
	// ct_state is 32 bits wide as NXM carries it; 8 of them are defined.
	{id: FieldCtState, name: "ct_state", kind: kindCtState, st: stCtState, max: 1<<32 - 1, bits: 0xff, maskable: true, nxm: "NXM_NX_CT_STATE"},
	{id: FieldCtZone, name: "ct_zone", kind: kindNum, st: stCtZone, max: 0xffff, bits: 0xffff, nxm: "NXM_NX_CT_ZONE"},
	{id: FieldCtMark, name: "ct_mark", kind: kindNum, st: stCtMark, max: 1<<32 - 1, bits: 1<<32 - 1, maskable: true, set: setCT, nxm: "NXM_NX_CT_MARK"},
	{id: FieldCtLabel, name: "ct_label", kind: kindNum128, st: stCtLabel, maskable: true, set: setCT, nxm: "NXM_NX_CT_LABEL"},
	{id: FieldCtNwSrc, name: "ct_nw_src", kind: kindIPv4, st: stCtNwSrc, maskable: true, pre: preCtIPv4, nxm: "NXM_NX_CT_NW_SRC"},
	{id: FieldCtNwDst, name: "ct_nw_dst", kind: kindIPv4, st: stCtNwDst, maskable: true, pre: preCtIPv4, nxm: "NXM_NX_CT_NW_DST"},
	{id: FieldCtIPv6Src, name: "ct_ipv6_src", kind: kindIPv6, st: stCtIPv6Src, maskable: true, pre: preCtIPv6, nxm: "NXM_NX_CT_IPV6_SRC"},
	{id: FieldCtIPv6Dst, name: "ct_ipv6_dst", kind: kindIPv6, st: stCtIPv6Dst, maskable: true, pre: preCtIPv6, nxm: "NXM_NX_CT_IPV6_DST"},
	{id: FieldCtNwProto, name: "ct_nw_proto", kind: kindNum, st: stCtNwProto, max: 0xff, bits: 0xff, pre: preCtIP, nxm: "NXM_NX_CT_NW_PROTO"},
	{id: FieldCtTpSrc, name: "ct_tp_src", kind: kindNum, st: stCtTpSrc, max: 0xffff, bits: 0xffff, maskable: true, pre: preCtProto, nxm: "NXM_NX_CT_TP_SRC"},
	{id: FieldCtTpDst, name: "ct_tp_dst", kind: kindNum, st: stCtTpDst, max: 0xffff, bits: 0xffff, maskable: true, pre: preCtProto, nxm: "NXM_NX_CT_TP_DST"},
}

// pipelineFields are the fields of the OpenFlow pipeline's own state:
// metadata, pkt_mark and the registers.
func pipelineFields() []field {
	const all32, all64 = 1<<32 - 1, 1<<64 - 1
	fs := []field{
		{id: FieldMetadata, name: "metadata", kind: kindNum, st: stMetadata, max: all64, bits: all64, maskable: true, set: setReg, nxm: "OXM_OF_METADATA"},
		{id: FieldPktMark, name: "pkt_mark", kind: kindNum, st: stPktMark, max: all32, bits: all32, maskable: true, set: setReg, nxm: "NXM_NX_PKT_MARK"},
		{id: FieldConjID, name: "conj_id", kind: kindNum, st: stConjID, max: all32, bits: all32},
	}
	for i := range NumRegs {
		n := strconv.Itoa(i)
		fs = append(fs, field{id: FieldReg0 + FieldID(i), name: "reg" + n, kind: kindNum, st: stReg0 + storage(i), max: all32, bits: all32, maskable: true, set: setReg, nxm: "NXM_NX_REG" + n})
	}
	for i := range NumRegs / 2 {
		n := strconv.Itoa(i)
		fs = append(fs, field{id: FieldXReg0 + FieldID(i), name: "xreg" + n, kind: kindNum, st: stXReg0 + storage(i), max: all64, bits: all64, maskable: true, set: setReg, nxm: "OXM_OF_PKT_REG" + n})
	}
	for i := range NumRegs / 4 {
		n := strconv.Itoa(i)
		fs = append(fs, field{id: FieldXXReg0 + FieldID(i), name: "xxreg" + n, kind: kindNum128, st: stXXReg0 + storage(i), maskable: true, set: setReg, nxm: "NXM_NX_XXREG" + n})
	}
	return fs
}

// packetFields are the fields of the packet's headers and ingress port.
var packetFields = []field{
	// in_port is written as pipeline state: set_field, load, move and pop
	// change the port translation takes the packet to have come in on.
	{id: FieldInPort, name: "in_port", kind: kindPort, st: stInPort, of10: of10Exact, set: setReg},
	{id: FieldDlSrc, name: "eth_src", aliases: []string{"dl_src"}, kind: kindMAC, st: stDlSrc, maskable: true, of10: of10Exact, set: setMod},
	{id: FieldDlDst, name: "eth_dst", aliases: []string{"dl_dst"}, kind: kindMAC, st: stDlDst, maskable: true, of10: of10Exact, set: setMod},
	{id: FieldDlType, name: "eth_type", aliases: []string{"dl_type"}, kind: kindNum, st: stDlType, max: 0xffff, bits: 0xffff, of10: of10Exact},
	{id: FieldVLANTCI, name: "vlan_tci", kind: kindNum, st: stTCI, max: 0xffff, bits: 0xffff, maskable: true, of10: of10Exact, set: setTCI},
	{id: FieldDlVLAN, name: "dl_vlan", kind: kindNum, st: stTCI, max: 0xffff, bits: VLANPresent | VLANVIDMask, of10: of10Exact},
	{id: FieldDlVLANPCP, name: "dl_vlan_pcp", kind: kindNum, st: stTCI, max: 7, shift: 13, bits: VLANPCPMask | VLANPresent, of10: of10Exact},
	{id: FieldVLANVID, name: "vlan_vid", kind: kindNum, st: stTCI, max: VLANPresent | VLANVIDMask, bits: VLANPresent | VLANVIDMask, maskable: true, of10: of10Exact, set: setVLANVID, setPre: preVLAN},
	{id: FieldVLANPCP, name: "vlan_pcp", kind: kindNum, st: stTCI, max: 7, shift: 13, bits: VLANPCPMask | VLANPresent, of10: of10Exact, set: setVLANPCP, setPre: preVLAN},
	{id: FieldNwSrc, name: "ip_src", aliases: []string{"nw_src"}, kind: kindIPv4, st: stNwSrc, maskable: true, pre: preIPv4OrARP, of10: of10CIDR, set: setMod, setPre: preIPv4},
	{id: FieldNwDst, name: "ip_dst", aliases: []string{"nw_dst"}, kind: kindIPv4, st: stNwDst, maskable: true, pre: preIPv4OrARP, of10: of10CIDR, set: setMod, setPre: preIPv4},
	{id: FieldNwProto, name: "nw_proto", aliases: []string{"ip_proto"}, kind: kindNum, st: stNwProto, max: 0xff, bits: 0xff, pre: preIPOrARP, of10: of10Exact},
	{id: FieldNwTos, name: "nw_tos", kind: kindNum, st: stNwTos, max: 0xfc, bits: 0xfc, pre: preIP, of10: of10Exact, set: setMod, setPre: preIP},
	{id: FieldIPDSCP, name: "ip_dscp", kind: kindNum, st: stNwTos, max: 0x3f, shift: 2, bits: 0xfc, pre: preIP, of10: of10Exact, set: setMod, setPre: preIP},
	{id: FieldNwECN, name: "nw_ecn", aliases: []string{"ip_ecn"}, kind: kindNum, st: stNwTos, max: 3, bits: 3, pre: preIP, set: setLoad, setPre: preIP, nxm: "NXM_NX_IP_ECN"},
	{id: FieldNwTTL, name: "nw_ttl", kind: kindNum, st: stNwTTL, max: 0xff, bits: 0xff, pre: preIP, set: setLoad, setPre: preIP, nxm: "NXM_NX_IP_TTL"},
	{id: FieldIPFrag, name: "ip_frag", aliases: []string{"nw_frag"}, kind: kindFrag, st: stNwFrag, bits: FragAny | FragLater, pre: preIP},
	{id: FieldArpOp, name: "arp_op", kind: kindNum, st: stNwProto, max: 0xff, bits: 0xff, pre: preARP, of10: of10Exact, set: setLoad, setPre: preARP, nxm: "NXM_OF_ARP_OP"},
	{id: FieldArpSpa, name: "arp_spa", kind: kindIPv4, st: stNwSrc, maskable: true, pre: preARP, of10: of10CIDR, set: setLoad, setPre: preARP, nxm: "NXM_OF_ARP_SPA"},
	{id: FieldArpTpa, name: "arp_tpa", kind: kindIPv4, st: stNwDst, maskable: true, pre: preARP, of10: of10CIDR, set: setLoad, setPre: preARP, nxm: "NXM_OF_ARP_TPA"},
	{id: FieldArpSha, name: "arp_sha", kind: kindMAC, st: stArpSha, maskable: true, pre: preARP, set: setLoad, setPre: preARP, nxm: "NXM_NX_ARP_SHA"},
	{id: FieldArpTha, name: "arp_tha", kind: kindMAC, st: stArpTha, maskable: true, pre: preARP, set: setLoad, setPre: preARP, nxm: "NXM_NX_ARP_THA"},
	{id: FieldIPv6Src, name: "ipv6_src", kind: kindIPv6, st: stIPv6Src, maskable: true, pre: preIPv6, set: setLoad, setPre: preIPv6, nxm: "NXM_NX_IPV6_SRC"},
	{id: FieldIPv6Dst, name: "ipv6_dst", kind: kindIPv6, st: stIPv6Dst, maskable: true, pre: preIPv6, set: setLoad, setPre: preIPv6, nxm: "NXM_NX_IPV6_DST"},
	{id: FieldIPv6Label, name: "ipv6_label", kind: kindNum, st: stIPv6Label, max: 0xfffff, bits: 0xfffff, maskable: true, pre: preIPv6, set: setLoad, setPre: preIPv6, nxm: "NXM_NX_IPV6_LABEL"},
	{id: FieldNdTarget, name: "nd_target", kind: kindIPv6, st: stNdTarget, maskable: true, pre: preND, set: setLoad, setPre: preND, nxm: "NXM_NX_ND_TARGET"},
	{id: FieldNdSll, name: "nd_sll", kind: kindMAC, st: stArpSha, maskable: true, pre: preNDSolicit, set: setLoad, setPre: preNDSolicit, nxm: "NXM_NX_ND_SLL"},
	{id: FieldNdTll, name: "nd_tll", kind: kindMAC, st: stArpTha, maskable: true, pre: preNDAdvert, set: setLoad, setPre: preNDAdvert, nxm: "NXM_NX_ND_TLL"},
	{id: FieldTpSrc, name: "tp_src", kind: kindNum, st: stTpSrc, max: 0xffff, bits: 0xffff, maskable: true, pre: preL4, of10: of10Exact, set: setMod, setPre: preTCP},
	{id: FieldTpDst, name: "tp_dst", kind: kindNum, st: stTpDst, max: 0xffff, bits: 0xffff, maskable: true, pre: preL4, of10: of10Exact, set: setMod, setPre: preTCP},
	{id: FieldTCPSrc, name: "tcp_src", kind: kindNum, st: stTpSrc, max: 0xffff, bits: 0xffff, maskable: true, pre: preTCP, of10: of10Exact, set: setMod, setPre: preTCP},
	{id: FieldTCPDst, name: "tcp_dst", kind: kindNum, st: stTpDst, max: 0xffff, bits: 0xffff, maskable: true, pre: preTCP, of10: of10Exact, set: setMod, setPre: preTCP},
	{id: FieldUDPSrc, name: "udp_src", kind: kindNum, st: stTpSrc, max: 0xffff, bits: 0xffff, maskable: true, pre: preUDP, of10: of10Exact, set: setMod, setPre: preUDP},
	{id: FieldUDPDst, name: "udp_dst", kind: kindNum, st: stTpDst, max: 0xffff, bits: 0xffff, maskable: true, pre: preUDP, of10: of10Exact, set: setMod, setPre: preUDP},
	{id: FieldSCTPSrc, name: "sctp_src", kind: kindNum, st: stTpSrc, max: 0xffff, bits: 0xffff, maskable: true, pre: preSCTP, set: setLoad, setPre: preSCTP, nxm: "OXM_OF_SCTP_SRC"},
	{id: FieldSCTPDst, name: "sctp_dst", kind: kindNum, st: stTpDst, max: 0xffff, bits: 0xffff, maskable: true, pre: preSCTP, set: setLoad, setPre: preSCTP, nxm: "OXM_OF_SCTP_DST"},
	{id: FieldTCPFlags, name: "tcp_flags", kind: kindTCPFlags, st: stTCPFlags, max: 0xfff, bits: 0xfff, maskable: true, pre: preTCP},
	{id: FieldICMPType, name: "icmp_type", kind: kindNum, st: stTpSrc, max: 0xff, bits: 0xffff, pre: preICMPAny, of10: of10Exact, set: setLoad, setPre: preICMPv4, nxm: "NXM_OF_ICMP_TYPE"},
	{id: FieldICMPCode, name: "icmp_code", kind: kindNum, st: stTpDst, max: 0xff, bits: 0xffff, pre: preICMPAny, of10: of10Exact, set: setLoad, setPre: preICMPv4, nxm: "NXM_OF_ICMP_CODE"},
	{id: FieldICMPv6Type, name: "icmpv6_type", kind: kindNum, st: stTpSrc, max: 0xff, bits: 0xffff, pre: preICMPv6, set: setLoad, setPre: preICMPv6, nxm: "NXM_NX_ICMPV6_TYPE"},
	{id: FieldICMPv6Code, name: "icmpv6_code", kind: kindNum, st: stTpDst, max: 0xff, bits: 0xffff, pre: preICMPv6, set: setLoad, setPre: preICMPv6, nxm: "NXM_NX_ICMPV6_CODE"},
}

var (
	fieldByName = map[string]*field{}
	fieldByNXM  = map[string]*field{}
	fieldByID   [numFields]*field
)

func init() {
	for i := range fields {
		f := &fields[i]
		fieldByName[f.name] = f
		for _, a := range f.aliases {
			fieldByName[a] = f
		}
		if f.nxm != "" {
			fieldByNXM[f.nxm] = f
		}
		fieldByID[f.id] = f
	}
}

// fieldName returns the ovs-fields(7) name of id.
func fieldName(id FieldID) string {
	if int(id) < len(fieldByID) && fieldByID[id] != nil {
		return fieldByID[id].name
	}
	return "field?"
}

// getNum returns the numeric storage st of k. MACs are returned in the low
// 48 bits; IPv6 storages are not numeric and return 0.
func getNum(k *Key, st storage) uint64 {
	switch st {
	case stInPort:
		return uint64(k.InPort)
	case stDlSrc:
		return macNum(k.DlSrc)
	case stDlDst:
		return macNum(k.DlDst)
	case stArpSha:
		return macNum(k.ArpSha)
	case stArpTha:
		return macNum(k.ArpTha)
	case stDlType:
		return uint64(k.DlType)
	case stTCI:
		return uint64(k.VLANs[0].TCI)
	case stNwSrc:
		return uint64(k.NwSrc)
	case stNwDst:
		return uint64(k.NwDst)
	case stNwProto:
		return uint64(k.NwProto)
	case stNwTos:
		return uint64(k.NwTos)
	case stNwTTL:
		return uint64(k.NwTTL)
	case stNwFrag:
		return uint64(k.NwFrag)
	case stIPv6Label:
		return uint64(k.IPv6Label)
	case stTpSrc:
		return uint64(k.TpSrc)
	case stTpDst:
		return uint64(k.TpDst)
	case stTCPFlags:
		return uint64(k.TcpFlags)
	case stMetadata:
		return k.Metadata
	case stPktMark:
		return uint64(k.PktMark)
	case stConjID:
		return uint64(k.ConjID)
	case stCtState:
		return uint64(k.CtState)
	case stCtZone:
		return uint64(k.CtZone)
	case stCtMark:
		return uint64(k.CtMark)
	case stCtNwSrc:
		return uint64(k.CtNwSrc)
	case stCtNwDst:
		return uint64(k.CtNwDst)
	case stCtNwProto:
		return uint64(k.CtNwProto)
	case stCtTpSrc:
		return uint64(k.CtTpSrc)
	case stCtTpDst:
		return uint64(k.CtTpDst)
	case stTunID:
		return k.TunID
	case stTunSrc:
		return uint64(k.TunSrc)
	case stTunDst:
		return uint64(k.TunDst)
	case stTunFlags:
		return uint64(k.TunFlags)
	}
	switch {
	case st >= stReg0 && st < stXReg0:
		return uint64(k.Regs[st-stReg0])
	case st >= stXReg0 && st < stXXReg0:
		i := 2 * (st - stXReg0)
		return uint64(k.Regs[i])<<32 | uint64(k.Regs[i+1])
	}
	return 0
}

// setNum stores v into the numeric storage st of k, truncating it to the
// storage's width.
func setNum(k *Key, st storage, v uint64) {
	switch st {
	case stInPort:
		k.InPort = uint32(v)
	case stDlSrc:
		k.DlSrc = numMAC(v)
	case stDlDst:
		k.DlDst = numMAC(v)
	case stArpSha:
		k.ArpSha = numMAC(v)
	case stArpTha:
		k.ArpTha = numMAC(v)
	case stDlType:
		k.DlType = uint16(v)
	case stTCI:
		k.VLANs[0].TCI = uint16(v)
	case stNwSrc:
		k.NwSrc = uint32(v)
	case stNwDst:
		k.NwDst = uint32(v)
	case stNwProto:
		k.NwProto = uint8(v)
	case stNwTos:
		k.NwTos = uint8(v)
	case stNwTTL:
		k.NwTTL = uint8(v)
	case stNwFrag:
		k.NwFrag = uint8(v)
	case stIPv6Label:
		k.IPv6Label = uint32(v)
	case stTpSrc:
		k.TpSrc = uint16(v)
	case stTpDst:
		k.TpDst = uint16(v)
	case stTCPFlags:
		k.TcpFlags = uint16(v)
	case stMetadata:
		k.Metadata = v
	case stPktMark:
		k.PktMark = uint32(v)
	case stConjID:
		k.ConjID = uint32(v)
	case stCtState:
		k.CtState = uint8(v)
	case stCtZone:
		k.CtZone = uint16(v)
	case stCtMark:
		k.CtMark = uint32(v)
	case stCtNwSrc:
		k.CtNwSrc = uint32(v)
	case stCtNwDst:
		k.CtNwDst = uint32(v)
	case stCtNwProto:
		k.CtNwProto = uint8(v)
	case stCtTpSrc:
		k.CtTpSrc = uint16(v)
	case stCtTpDst:
		k.CtTpDst = uint16(v)
	case stTunID:
		k.TunID = v
	case stTunSrc:
		k.TunSrc = uint32(v)
	case stTunDst:
		k.TunDst = uint32(v)
	case stTunFlags:
		k.TunFlags = uint16(v)
	}
	switch {
	case st >= stReg0 && st < stXReg0:
		k.Regs[st-stReg0] = uint32(v)
	case st >= stXReg0 && st < stXXReg0:
		i := 2 * (st - stXReg0)
		k.Regs[i], k.Regs[i+1] = uint32(v>>32), uint32(v)
	}
}

// ip6Of returns the 128-bit storage st of k, or nil if st is numeric.
func ip6Of(k *Key, st storage) *[16]byte {
	switch st {
	case stIPv6Src:
		return &k.IPv6Src
	case stIPv6Dst:
		return &k.IPv6Dst
	case stNdTarget:
		return &k.NdTarget
	case stCtLabel:
		return &k.CtLabel
	case stCtIPv6Src:
		return &k.CtIPv6Src
	case stCtIPv6Dst:
		return &k.CtIPv6Dst
	case stTunIPv6Src:
		return &k.TunIPv6Src
	case stTunIPv6Dst:
		return &k.TunIPv6Dst
	}
	return nil
}

// storageBits is the mask of all bits of a numeric storage.
func storageBits(st storage) uint64 {
	switch st {
	case stDlSrc, stDlDst, stArpSha, stArpTha:
		return 1<<48 - 1
	case stInPort, stNwSrc, stNwDst, stCtMark, stCtNwSrc, stCtNwDst, stTunSrc, stTunDst:
		return 1<<32 - 1
	case stIPv6Label:
		return 0xfffff
	case stNwProto, stNwTos, stNwTTL, stCtState, stCtNwProto:
		return 0xff
	case stNwFrag:
		return FragAny | FragLater
	case stTCPFlags:
		return 0xfff
	case stPktMark, stConjID:
		return 1<<32 - 1
	case stMetadata, stTunID:
		return 1<<64 - 1
	}
	switch {
	case st >= stReg0 && st < stXReg0:
		return 1<<32 - 1
	case st >= stXReg0 && st < stXXReg0:
		return 1<<64 - 1
	}
	return 0xffff
}

func macNum(m [6]byte) uint64 {
	return uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 |
		uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}

func numMAC(v uint64) [6]byte {
	return [6]byte{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// prereqMet reports whether match m satisfies p. Only values matter: Key
// bits outside the mask are zero, so an unmatched field reads as zero. A
// nil m (a group's bucket, which has no match) satisfies everything:
// translation checks the packet instead.
func prereqMet(m *Match, p prereq) bool {
	if m == nil {
		return true
	}
	k := &m.Key
	ip4 := k.DlType == EthTypeIPv4 && m.Mask.DlType == 0xffff
	ip6 := k.DlType == EthTypeIPv6 && m.Mask.DlType == 0xffff
	arp := (k.DlType == EthTypeARP || k.DlType == EthTypeRARP) && m.Mask.DlType == 0xffff
	proto := func(p uint8) bool { return (ip4 || ip6) && k.NwProto == p && m.Mask.NwProto == 0xff }
	icmp6 := ip6 && proto(IPProtoICMPv6)
	nd := func(t uint16) bool {
		return icmp6 && k.TpSrc == t && m.Mask.TpSrc == 0xffff && k.TpDst == 0
	}
	switch p {
	case preNone:
		return true
	case preIPv4:
		return ip4
	case preIPv6:
		return ip6
	case preIP:
		return ip4 || ip6
	case preIPv4OrARP:
		return ip4 || arp
	case preIPOrARP:
		return ip4 || ip6 || arp
	case preARP:
		return arp
	case preL4:
		return proto(IPProtoTCP) || proto(IPProtoUDP) || proto(IPProtoSCTP)
	case preTCP:
		return proto(IPProtoTCP)
	case preUDP:
		return proto(IPProtoUDP)
	case preSCTP:
		return proto(IPProtoSCTP)
	case preICMPAny:
		return (ip4 && proto(IPProtoICMP)) || icmp6
	case preICMPv4:
		return ip4 && proto(IPProtoICMP)
	case preICMPv6:
		return icmp6
	case preND:
		return nd(135) || nd(136)
	case preNDSolicit:
		return nd(135)
	case preNDAdvert:
		return nd(136)
	case preVLAN:
		return k.VLANs[0].TCI&VLANPresent != 0
	case preCtIPv4:
		return ip4 && ctValid(m)
	case preCtIPv6:
		return ip6 && ctValid(m)
	case preCtIP:
		return (ip4 || ip6) && ctValid(m)
	case preCtProto:
		return (ip4 || ip6) && ctValid(m) && k.CtNwProto != 0 && m.Mask.CtNwProto == 0xff
	}
	return false
}

// ctValid reports whether m's ct_state says the packet has a connection,
// as Open vSwitch requires for a match on the connection's original
// tuple: one of new, est, rel, rpl, snat or dnat must be set, or trk set
// and inv clear.
func ctValid(m *Match) bool {
	k, mk := &m.Key, &m.Mask
	const conn = CtStateNew | CtStateEst | CtStateRel | CtStateRpl | CtStateSNAT | CtStateDNAT
	return k.CtState&conn != 0 ||
		k.CtState&CtStateTracked != 0 && mk.CtState&CtStateInv != 0 && k.CtState&CtStateInv == 0
}

// WirePrereqMet reports whether match m meets the prerequisites of the
// field named name (as the OpenFlow codec names wire fields) for an
// action that reads or writes it, as Open vSwitch checks a set_field,
// move, stack push or pop, output to a field or learn against a flow's
// match: a field that actions may write has them in setPre, which names
// the protocol precisely (ip_src needs IPv4, where its match also takes
// ARP), the others in pre. vlan_vid and vlan_tci have none (an action
// that needs a tag checks for one itself). Unknown names have none.
func WirePrereqMet(m *Match, name string) bool {
	f := fieldByName[name]
	if f == nil || f.id == FieldVLANVID || f.id == FieldVLANTCI {
		return true
	}
	p := f.pre
	if f.set != setNone {
		p = f.setPre
	}
	return prereqMet(m, p)
}
