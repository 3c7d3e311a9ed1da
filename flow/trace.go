package flow

import (
	"encoding/binary"
	"strings"
	"time"
)

// This file holds what ofproto/trace and dump-flows need from the flow
// layer beyond the packet path: microflows (a packet's key written in
// ovs-ofctl syntax), frames built from a key, and a rule's last use.

// ParseMicroflow parses a microflow with the zero Parser (see
// Parser.ParseMicroflow).
func ParseMicroflow(s string) (Key, error) {
	var p Parser
	return p.ParseMicroflow(s)
}

// ParseMicroflow parses a microflow: one packet's header fields in
// ovs-ofctl match syntax ("in_port=1,tcp,nw_src=10.1.1.1,tp_dst=80"), as
// ofproto/trace takes it, with the outer TOS and TTL of a decapsulated
// packet (tun_tos, tun_ttl), which no match takes. Fields that are not
// given are zero, as in Open vSwitch. Every field must be exact: a
// value/mask, a prefix, or a partial tcp_flags or nw_frag match is an
// error naming the token, as are the errors of ParseMatch (unknown field,
// missing prerequisite, ...).
func (p *Parser) ParseMicroflow(s string) (Key, error) {
	l := lexer{s: s, end: len(s)}
	var outer []token // tun_tos and tun_ttl (see setOuterTunnel)
	for {
		t, ok, err := l.next()
		if err != nil {
			return Key{}, err
		}
		if !ok {
			break
		}
		if t.hasValue && strings.Contains(t.value, "/") {
			return Key{}, errAt(s, &t, "prefix/mask not allowed in a microflow")
		}
		switch t.key {
		case "tun_tos", "tun_ttl":
			outer = append(outer, t)
		case "tcp_flags":
			if strings.ContainsAny(t.value, "+-") {
				return Key{}, errAt(s, &t, "a microflow gives every TCP flag: write them joined by |, or a number")
			}
		case "nw_frag", "ip_frag":
			if t.value == "yes" || t.value == "not_later" {
				return Key{}, errAt(s, &t, "a microflow's fragment type is exact: no, first or later")
			}
		}
	}
	// The match parser takes every other field; the blanks keep the
	// positions its errors name.
	rest := s
	for _, t := range outer {
		rest = rest[:t.pos] + strings.Repeat(" ", t.end-t.pos) + rest[t.end:]
	}
	m, err := p.ParseMatch(rest)
	if err != nil {
		return Key{}, err
	}
	for _, t := range outer {
		if err := setOuterTunnel(s, &t, &m.Key); err != nil {
			return Key{}, err
		}
	}
	// A tagged packet's tag has a TPID; matches leave it out.
	for i := range m.Key.VLANs {
		if v := &m.Key.VLANs[i]; v.TCI&VLANPresent != 0 && v.TPID == 0 {
			v.TPID = EthTypeVLAN
		}
	}
	return m.Key, nil
}

// LastUsed returns when a packet last took the rule (the latest AddStats),
// or the time it was last added or modified if none has since, as
// dump-flows' idle_age counts from.
func (r *Rule) LastUsed() time.Time {
	if used := r.stats.lastUsed.Load(); used != 0 {
		if t := time.Unix(0, used); t.After(r.Modified) {
			return t
		}
	}
	return r.Modified
}

// Frame sizes that BuildFrame uses.
const (
	// FrameSpare is the free capacity BuildFrame leaves after the frame,
	// so that actions may push VLAN tags onto it.
	FrameSpare    = 16
	traceMinFrame = 60 // an Ethernet frame without its FCS
	traceIPv4Hdr  = 20
	traceFragHdr  = 8
)

// BuildFrame returns an Ethernet frame whose headers carry k's fields, such
// that Extract of the frame (with k.InPort) yields k for every key that a
// packet can have: for instance k must not have L4 fields in a later
// fragment, nor ND fields on a packet that is not a neighbour solicitation
// or advertisement. Keys that no packet has give a frame whose key differs;
// callers compare. The frame has FrameSpare bytes of spare capacity.
func BuildFrame(k *Key) []byte {
	b := make([]byte, 0, 256)
	b = append(b, k.DlDst[:]...)
	b = append(b, k.DlSrc[:]...)
	for _, v := range k.VLANs {
		if v.TCI&VLANPresent == 0 {
			break
		}
		tpid := v.TPID
		if tpid == 0 {
			tpid = EthTypeVLAN
		}
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, v.TCI&^VLANPresent)
	}
	b = binary.BigEndian.AppendUint16(b, k.DlType)
	switch k.DlType {
	case EthTypeIPv4:
		b = appendIPv4(b, k)
	case EthTypeIPv6:
		b = appendIPv6(b, k)
	case EthTypeARP, EthTypeRARP:
		b = appendARP(b, k)
	}
	for len(b) < traceMinFrame {
		b = append(b, 0)
	}
	out := make([]byte, len(b), len(b)+FrameSpare)
	copy(out, b)
	return out
}

func appendARP(b []byte, k *Key) []byte {
	b = append(b, 0, 1, 0x08, 0x00, 6, 4, 0, k.NwProto)
	b = append(b, k.ArpSha[:]...)
	b = binary.BigEndian.AppendUint32(b, k.NwSrc)
	b = append(b, k.ArpTha[:]...)
	return binary.BigEndian.AppendUint32(b, k.NwDst)
}

func appendIPv4(b []byte, k *Key) []byte {
	l4 := appendL4(nil, k)
	h := len(b)
	b = append(b, 0x45, k.NwTos)
	b = binary.BigEndian.AppendUint16(b, uint16(traceIPv4Hdr+len(l4)))
	b = append(b, 0, 0) // identification
	var frag uint16
	if k.NwFrag&FragAny != 0 {
		frag = ipv4MoreFrags
		if k.NwFrag&FragLater != 0 {
			frag |= 1 // an offset of 8 bytes
		}
	}
	b = binary.BigEndian.AppendUint16(b, frag)
	b = append(b, k.NwTTL, k.NwProto, 0, 0)
	b = binary.BigEndian.AppendUint32(b, k.NwSrc)
	b = binary.BigEndian.AppendUint32(b, k.NwDst)
	binary.BigEndian.PutUint16(b[h+10:], ipv4HeaderChecksum(b[h:h+traceIPv4Hdr]))
	return append(b, l4...)
}

func ipv4HeaderChecksum(h []byte) uint16 {
	return ^FoldSum(OnesSum(0, h))
}

func appendIPv6(b []byte, k *Key) []byte {
	l4 := appendL4(nil, k)
	next := k.NwProto
	payload := len(l4)
	if k.NwFrag&FragAny != 0 {
		next = ipProtoFragment
		payload += traceFragHdr
	}
	b = binary.BigEndian.AppendUint32(b, 6<<28|uint32(k.NwTos)<<20|k.IPv6Label&0xfffff)
	b = binary.BigEndian.AppendUint16(b, uint16(payload))
	b = append(b, next, k.NwTTL)
	b = append(b, k.IPv6Src[:]...)
	b = append(b, k.IPv6Dst[:]...)
	if k.NwFrag&FragAny != 0 {
		offlg := uint16(1) // more fragments
		if k.NwFrag&FragLater != 0 {
			offlg |= 8 // an offset of 8 bytes
		}
		proto := k.NwProto
		if k.NwFrag&FragLater != 0 && proto == ipProtoFragment {
			proto = 0 // the key of a later fragment says 44; the real next header is unknown
		}
		b = append(b, proto, 0)
		b = binary.BigEndian.AppendUint16(b, offlg)
		b = append(b, 0, 0, 0, 0)
	}
	return append(b, l4...)
}

// appendL4 appends the transport header of k, if it has one that Extract
// reads (none in a later fragment).
func appendL4(b []byte, k *Key) []byte {
	if k.NwFrag&FragLater != 0 {
		return b
	}
	switch k.NwProto {
	case IPProtoTCP:
		b = binary.BigEndian.AppendUint16(b, k.TpSrc)
		b = binary.BigEndian.AppendUint16(b, k.TpDst)
		b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // sequence and acknowledgement numbers
		b = binary.BigEndian.AppendUint16(b, 5<<12|k.TcpFlags&0x0fff)
		b = append(b, 0xff, 0xff, 0, 0, 0, 0) // window, checksum, urgent pointer
	case IPProtoUDP:
		b = binary.BigEndian.AppendUint16(b, k.TpSrc)
		b = binary.BigEndian.AppendUint16(b, k.TpDst)
		b = append(b, 0, 8, 0, 0) // length, no checksum
	case IPProtoSCTP:
		b = binary.BigEndian.AppendUint16(b, k.TpSrc)
		b = binary.BigEndian.AppendUint16(b, k.TpDst)
		b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // verification tag, checksum
	case IPProtoICMP, IPProtoICMPv6:
		b = append(b, uint8(k.TpSrc), uint8(k.TpDst), 0, 0, 0, 0, 0, 0)
		if k.NwProto == IPProtoICMPv6 && k.TpDst == 0 && (k.TpSrc == icmpv6NS || k.TpSrc == icmpv6NA) {
			b = append(b, k.NdTarget[:]...)
			if k.ArpSha != ([6]byte{}) {
				b = append(b, ndOptSrcLL, 1)
				b = append(b, k.ArpSha[:]...)
			}
			if k.ArpTha != ([6]byte{}) {
				b = append(b, ndOptTgtLL, 1)
				b = append(b, k.ArpTha[:]...)
			}
		}
	}
	return b
}

// FormatCTMatch writes the connection tracking fields of a match that
// mask selects, as Open vSwitch writes them in a match (megaflows:
// ct_state=+new+trk, with -name for a bit the match requires clear) or,
// with flow set, in a flow (ct_state=new|trk): ct_state, ct_zone,
// ct_mark, ct_label, then the original-direction tuple. It writes ""
// when mask selects none of them.
func FormatCTMatch(k, mask *Key, flow bool) string {
	var parts []string
	add := func(name, text string) { parts = append(parts, name+"="+text) }
	if mask.CtState != 0 {
		var b strings.Builder
		for i, name := range ctStateNames {
			bit := uint8(1) << i
			switch {
			case mask.CtState&bit == 0:
			case flow && k.CtState&bit != 0:
				if b.Len() > 0 {
					b.WriteByte('|')
				}
				b.WriteString(name)
			case flow:
			case k.CtState&bit != 0:
				b.WriteString("+" + name)
			default:
				b.WriteString("-" + name)
			}
		}
		if b.Len() > 0 || !flow {
			add("ct_state", b.String())
		}
	}
	if mask.CtZone != 0 {
		add("ct_zone", numODP(uint64(k.CtZone), uint64(mask.CtZone), 0xffff))
	}
	if mask.CtMark != 0 {
		add("ct_mark", maskedHexZero(uint64(k.CtMark), uint64(mask.CtMark), 0xffffffff))
	}
	var none, all [16]byte
	for i := range all {
		all[i] = 0xff
	}
	if mask.CtLabel != none {
		t := u128Hex(&k.CtLabel)
		if mask.CtLabel != all {
			t += "/" + u128Hex(&mask.CtLabel)
		}
		add("ct_label", t)
	}
	if mask.CtNwSrc != 0 && k.CtNwSrc != 0 {
		add("ct_nw_src", ipv4ODP(k.CtNwSrc, mask.CtNwSrc))
	}
	if mask.CtNwDst != 0 && k.CtNwDst != 0 {
		add("ct_nw_dst", ipv4ODP(k.CtNwDst, mask.CtNwDst))
	}
	if mask.CtIPv6Src != none && k.CtIPv6Src != none {
		add("ct_ipv6_src", ipv6ODP(&k.CtIPv6Src, &mask.CtIPv6Src))
	}
	if mask.CtIPv6Dst != none && k.CtIPv6Dst != none {
		add("ct_ipv6_dst", ipv6ODP(&k.CtIPv6Dst, &mask.CtIPv6Dst))
	}
	if mask.CtNwProto != 0 {
		add("ct_nw_proto", numODP(uint64(k.CtNwProto), uint64(mask.CtNwProto), 0xff))
	}
	if mask.CtTpSrc != 0 && (k.CtTpSrc != 0 || !flow) {
		add("ct_tp_src", numODP(uint64(k.CtTpSrc), uint64(mask.CtTpSrc), 0xffff))
	}
	if mask.CtTpDst != 0 && (k.CtTpDst != 0 || !flow) {
		add("ct_tp_dst", numODP(uint64(k.CtTpDst), uint64(mask.CtTpDst), 0xffff))
	}
	return strings.Join(parts, ",")
}
