package flow

// Match is a key with a mask: a packet matches when its key, masked, equals
// Key. Bits of Key outside Mask are always zero (Normalize keeps it so).
type Match struct {
	Key  Key
	Mask Key
}

// Matches reports whether k matches m.
func (m *Match) Matches(k *Key) bool {
	w, v, mk := k.Words(), m.Key.Words(), m.Mask.Words()
	for i := range w {
		if w[i]&mk[i] != v[i] {
			return false
		}
	}
	return true
}

// Normalize clears the bits of Key that Mask does not cover.
func (m *Match) Normalize() {
	m.Key.Masked(&m.Mask, &m.Key)
}

// Catchall reports whether m matches every packet.
func (m *Match) Catchall() bool {
	return m.Mask == Key{}
}

// FieldID names a matchable or settable field of Key, as OVS names them in
// ovs-fields(7). Several FieldIDs may share storage in Key (tp_src is
// tcp_src, udp_src, sctp_src, icmp_type...); the parser's field table gives
// each its name, aliases, width and prerequisites.
type FieldID uint8

// The fields.
const (
	FieldNone FieldID = iota
	FieldInPort
	FieldDlSrc
	FieldDlDst
	FieldDlType
	FieldVLANTCI // vlan_tci, of the outer tag
	FieldDlVLAN  // dl_vlan / vlan_vid (OpenFlow 1.0 and 1.2+ flavours differ in the present bit)
	FieldDlVLANPCP
	FieldVLANVID // vlan_vid (OXM: includes the present bit)
	FieldVLANPCP
	FieldNwSrc // ip_src, and arp_spa with arp
	FieldNwDst
	FieldNwProto // ip_proto, and arp_op with arp
	FieldNwTos   // whole tos byte as mod_nw_tos / nw_tos see it (DSCP bits only)
	FieldIPDSCP  // DSCP value (tos >> 2)
	FieldNwECN
	FieldNwTTL
	FieldIPFrag
	FieldArpOp
	FieldArpSpa
	FieldArpTpa
	FieldArpSha
	FieldArpTha
	FieldIPv6Src
	FieldIPv6Dst
	FieldIPv6Label
	FieldNdTarget
	FieldNdSll
	FieldNdTll
	FieldTpSrc
	FieldTpDst
	FieldTCPSrc
	FieldTCPDst
	FieldUDPSrc
	FieldUDPDst
	FieldSCTPSrc
	FieldSCTPDst
	FieldTCPFlags
	FieldICMPType
	FieldICMPCode
	FieldICMPv6Type
	FieldICMPv6Code
	FieldMetadata // metadata (64 bits)
	FieldPktMark  // pkt_mark (32 bits)
	FieldConjID   // conj_id (32 bits, read-only, exact match only)
	FieldCtState  // ct_state (8 bits of CtState* flags)
	FieldCtZone   // ct_zone (16 bits)
	FieldCtMark   // ct_mark (32 bits)
	FieldCtLabel  // ct_label (128 bits)
	FieldCtNwSrc  // ct_nw_src: original-direction IPv4 source
	FieldCtNwDst  // ct_nw_dst
	FieldCtIPv6Src
	FieldCtIPv6Dst
	FieldCtNwProto
	FieldCtTpSrc
	FieldCtTpDst
	FieldTunID      // tun_id (64 bits)
	FieldTunSrc     // tun_src: outer IPv4 source
	FieldTunDst     // tun_dst
	FieldTunIPv6Src // tun_ipv6_src: outer IPv6 source
	FieldTunIPv6Dst // tun_ipv6_dst
	FieldTunFlags   // tun_flags (the oam bit)
	FieldReg0       // reg0; reg N is FieldReg0+N
)

// The register fields that follow FieldReg0.
const (
	FieldXReg0  = FieldReg0 + NumRegs // xreg0; xreg N is FieldXReg0+N
	FieldXXReg0 = FieldXReg0 + NumRegs/2
	// FieldTunMeta0 is tun_metadata0; tun_metadataN is FieldTunMeta0+N.
	FieldTunMeta0 = FieldXXReg0 + NumRegs/4
	numFields     = FieldTunMeta0 + NumTunMeta
)
