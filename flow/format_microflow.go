package flow

import "strings"

// FormatMicroflow formats k as ofproto/trace prints a flow: every field the
// packet has, given its Ethertype and protocol, including zero ones.
func FormatMicroflow(k *Key) string {
	return FormatMicroflowTunnel(k, "")
}

// FormatMicroflowTunnel formats k as FormatMicroflow does, with tun (the
// packet's tunnel metadata as TraceTunnelText writes it) where Open
// vSwitch writes a flow's tunnel fields: after the protocol and the
// registers, before metadata and in_port.
func FormatMicroflowTunnel(k *Key, tun string) string {
	m := Match{Key: *k, Mask: microflowMask(k)}
	// The pipeline's state shows when it is not zero, as Open vSwitch
	// prints a flow.
	for i, r := range k.Regs {
		if r != 0 {
			m.Mask.Regs[i] = ^uint32(0)
		}
	}
	if k.Metadata != 0 {
		m.Mask.Metadata = ^uint64(0)
	}
	if k.PktMark != 0 {
		m.Mask.PktMark = ^uint32(0)
	}
	microflowCtMask(k, &m)
	// Open vSwitch shows the inner tag of a tagged packet, also when
	// there is none, and so of a packet whose TCI a write left without
	// the present bit but not zero (its tag is gone).
	inner := k.VLANs[0].TCI != 0
	if inner {
		m.Mask.VLANs[1].TCI = 0xffff
	}
	m.Normalize()
	var b strings.Builder
	formatMatchTunnel(&b, &m, DefaultPriority, tun, inner)
	return b.String()
}

// microflowMask returns the mask of the fields a packet with key k has.
func microflowMask(k *Key) Key {
	var m Key
	m.InPort = ^uint32(0)
	m.VLANs[0].TCI = 0xffff
	m.DlSrc = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	m.DlDst = m.DlSrc
	m.DlType = 0xffff
	ip := false
	switch k.DlType {
	case EthTypeIPv4:
		ip = true
		m.NwSrc, m.NwDst = ^uint32(0), ^uint32(0)
	case EthTypeIPv6:
		ip = true
		for i := range m.IPv6Src {
			m.IPv6Src[i], m.IPv6Dst[i] = 0xff, 0xff
		}
		m.IPv6Label = 0xfffff
	case EthTypeARP, EthTypeRARP:
		m.NwSrc, m.NwDst, m.NwProto = ^uint32(0), ^uint32(0), 0xff
		m.ArpSha, m.ArpTha = m.DlSrc, m.DlSrc
		return m
	default:
		return m
	}
	if ip {
		m.NwProto, m.NwTos, m.NwTTL, m.NwFrag = 0xff, 0xff, 0xff, FragAny|FragLater
	}
	if k.NwFrag&FragLater != 0 {
		return m
	}
	switch k.NwProto {
	case IPProtoTCP:
		m.TcpFlags = 0xfff
		fallthrough
	case IPProtoUDP, IPProtoSCTP, IPProtoICMP:
		m.TpSrc, m.TpDst = 0xffff, 0xffff
	case IPProtoICMPv6:
		m.TpSrc, m.TpDst = 0xffff, 0xffff
		if k.TpDst == 0 && (k.TpSrc == 135 || k.TpSrc == 136) {
			for i := range m.NdTarget {
				m.NdTarget[i] = 0xff
			}
			m.ArpSha, m.ArpTha = m.DlSrc, m.DlSrc
		}
	}
	return m
}

// microflowCtMask adds to m's mask the recirculation id and connection
// tracking fields of k that Open vSwitch prints in a flow: those that are
// not zero, and the connection's original tuple, zeros included, when
// ct_state says there is a connection and ct_nw_proto is not zero.
func microflowCtMask(k *Key, m *Match) {
	mk := &m.Mask
	if k.RecircID != 0 {
		mk.RecircID = ^uint32(0)
	}
	if k.CtState != 0 {
		mk.CtState = 0xff
	}
	if k.CtZone != 0 {
		mk.CtZone = 0xffff
	}
	if k.CtMark != 0 {
		mk.CtMark = ^uint32(0)
	}
	if k.CtLabel != ([16]byte{}) {
		mk.CtLabel = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	if !ctValid(m) || k.CtNwProto == 0 {
		return
	}
	switch k.DlType {
	case EthTypeIPv4:
		mk.CtNwSrc, mk.CtNwDst = ^uint32(0), ^uint32(0)
	case EthTypeIPv6:
		mk.CtIPv6Src = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		mk.CtIPv6Dst = mk.CtIPv6Src
	default:
		return
	}
	mk.CtNwProto, mk.CtTpSrc, mk.CtTpDst = 0xff, 0xffff, 0xffff
}
