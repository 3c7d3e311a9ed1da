// Package ofconv converts between the OpenFlow wire codec (flow/openflow)
// and the flow language (flow): OXM/NXM fields and OpenFlow 1.0 matches to
// and from flow.Match, OpenFlow and Nicira actions and instructions to and
// from []flow.Action, flow mods to flow.Flow and rules to flow stats.
//
// Decoding goes through the flow language's own syntax: each wire field
// and action is written as the ovs-ofctl text it stands for and the whole
// flow is parsed by flow.Parser, so a flow that arrives over OpenFlow is
// checked exactly as one typed on the command line (prerequisites, ranges,
// what ovsxdp supports), connection tracking (ct.go) included. The common
// flow mods skip the text (direct.go) with the same checks and results,
// and fall back to it for anything else. Encoding
// reads flow.Match and flow.Action directly. What ovsxdp cannot represent
// is an *openflow.Error carrying the type and code Open vSwitch replies
// with.
package ofconv

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// OpenFlow error codes this package replies with, besides the codec's.
const (
	codeBadMatchValue  uint16 = 7  // OFPBMC_BAD_VALUE
	codeBadMatchMask   uint16 = 8  // OFPBMC_BAD_MASK
	codeBadMatchPrereq uint16 = 9  // OFPBMC_BAD_PREREQ
	codeBadMatchDupFld uint16 = 10 // OFPBMC_DUP_FIELD

	codeMatchInconsistent uint16 = 10 // OFPBAC_MATCH_INCONSISTENT
)

// matchError returns an OFPET_BAD_MATCH error.
func matchError(code uint16, format string, args ...any) *openflow.Error {
	return &openflow.Error{Type: openflow.ErrTypeBadMatch, Code: code, Sentinel: openflow.ErrBadMatch, Detail: fmt.Sprintf(format, args...)}
}

// actionError returns an OFPET_BAD_ACTION error.
func actionError(code uint16, format string, args ...any) *openflow.Error {
	return &openflow.Error{Type: openflow.ErrTypeBadAction, Code: code, Sentinel: openflow.ErrBadAction, Detail: fmt.Sprintf(format, args...)}
}

// Field kinds for writing a wire value as ovs-ofctl text.
var (
	macFields  = map[string]bool{"eth_src": true, "eth_dst": true, "arp_sha": true, "arp_tha": true, "nd_sll": true, "nd_tll": true}
	ipv4Fields = map[string]bool{"ip_src": true, "ip_dst": true, "arp_spa": true, "arp_tpa": true, "ct_nw_src": true, "ct_nw_dst": true, "tun_src": true, "tun_dst": true}
	ipv6Fields = map[string]bool{"ipv6_src": true, "ipv6_dst": true, "nd_target": true, "ct_ipv6_src": true, "ct_ipv6_dst": true, "tun_ipv6_src": true, "tun_ipv6_dst": true}
)

// supportedFields are the wire field names the flow language matches on.
var supportedFields = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range strings.Fields(`in_port eth_src eth_dst eth_type vlan_tci vlan_vid vlan_pcp
		ip_src ip_dst nw_proto nw_tos ip_dscp nw_ecn nw_ttl ip_frag arp_op arp_spa arp_tpa arp_sha arp_tha
		ipv6_src ipv6_dst ipv6_label nd_target nd_sll nd_tll tcp_src tcp_dst udp_src udp_dst sctp_src sctp_dst
		tcp_flags icmp_type icmp_code icmpv6_type icmpv6_code metadata pkt_mark conj_id
		ct_state ct_zone ct_mark ct_label ct_nw_src ct_nw_dst ct_ipv6_src ct_ipv6_dst ct_nw_proto ct_tp_src ct_tp_dst`) {
		m[n] = true
	}
	for i := range flow.NumRegs {
		m["reg"+strconv.Itoa(i)] = true
	}
	for _, name := range tunFields {
		m[name] = true
	}
	for i := range flow.NumTunMeta {
		m["tun_metadata"+strconv.Itoa(i)] = true
	}
	for i := range flow.NumRegs / 2 {
		m["xreg"+strconv.Itoa(i)] = true
	}
	for i := range flow.NumRegs / 4 {
		m["xxreg"+strconv.Itoa(i)] = true
	}
	return m
}()

// allOnes reports whether every byte of b is 0xff.
func allOnes(b []byte) bool {
	for _, c := range b {
		if c != 0xff {
			return false
		}
	}
	return true
}

// portName writes an OpenFlow port (1.1+ numbering or 1.0 reserved
// numbers) as ovs-ofctl does.
func portName(p uint32) string {
	if p >= openflow.PortMax {
		p -= 0xffff0000
	}
	switch p {
	case flow.PortInPort:
		return "IN_PORT"
	case flow.PortTable:
		return "TABLE"
	case flow.PortNormal:
		return "NORMAL"
	case flow.PortFlood:
		return "FLOOD"
	case flow.PortAll:
		return "ALL"
	case flow.PortController:
		return "CONTROLLER"
	case flow.PortLocal:
		return "LOCAL"
	case flow.PortNone:
		return "ANY"
	}
	return strconv.FormatUint(uint64(p), 10)
}

// valueText writes a field's wire value as ovs-ofctl text.
func valueText(name string, b []byte) string {
	switch {
	case macFields[name] && len(b) == 6:
		var s strings.Builder
		for i, c := range b {
			if i > 0 {
				s.WriteByte(':')
			}
			s.WriteString(hex.EncodeToString([]byte{c}))
		}
		return s.String()
	case ipv4Fields[name] && len(b) == 4:
		return netip.AddrFrom4([4]byte(b)).String()
	case ipv6Fields[name] && len(b) == 16:
		return netip.AddrFrom16([16]byte(b)).String()
	case name == "in_port" && len(b) == 2:
		return portName(uint32(binary.BigEndian.Uint16(b)))
	case name == "in_port" && len(b) == 4:
		return portName(binary.BigEndian.Uint32(b))
	}
	s := strings.TrimLeft(hex.EncodeToString(b), "0")
	if s == "" {
		s = "0"
	}
	return "0x" + s
}

// fragText writes an ip_frag match as ovs-ofctl's names.
func fragText(v, m byte) string {
	v &= m
	switch {
	case m&flow.FragAny == 0:
		if v&flow.FragLater != 0 {
			return "later"
		}
		return "not_later"
	case v == 0:
		return "no"
	case m&flow.FragLater == 0 || v&flow.FragLater == 0 && m == flow.FragAny:
		return "yes"
	case v&flow.FragLater == 0:
		return "first"
	}
	return "later"
}

// matchText writes wire fields as an ovs-ofctl match, checking that the
// flow language knows each field and that none repeats.
func matchText(fs []openflow.Field) (string, error) {
	var items []string
	seen := map[string]bool{}
	// The fields so far, for the order of prerequisites: Open vSwitch
	// refuses a field that comes before the ones it requires.
	so := wireMatchPool.Get().(*flow.WireMatch)
	defer wireMatchPool.Put(so)
	so.Reset()
	for i := range fs {
		f := &fs[i]
		if f.Name == "packet_type" {
			// ovs-ofctl sends packet_type=(0,0) of its own accord
			// when it has normalised a match (a field dropped for a
			// missing prerequisite). Ethernet is the type of every
			// frame ovsxdp carries, so that match is no constraint,
			// and Open vSwitch prints none for it either.
			if seen[f.Name] {
				return "", matchError(codeBadMatchDupFld, "field %s appears twice", f.Name)
			}
			seen[f.Name] = true
			if err := ethernetPacketType(f); err != nil {
				return "", err
			}
			continue
		}
		if f.Name == "" || !supportedFields[f.Name] {
			e := matchError(openflow.CodeBadMatchField, "field %s is not supported by ovsxdp", fieldLabel(f))
			e.Item = fieldLabel(f)
			return "", e
		}
		if seen[f.Name] {
			return "", matchError(codeBadMatchDupFld, "field %s appears twice", f.Name)
		}
		seen[f.Name] = true
		if !so.InOrder(f.Name) {
			e := matchError(codeBadMatchPrereq, "field %s comes before the fields it requires", f.Name)
			if _, ok := ctFields[f.Name]; ok {
				e.Item = f.Name
			}
			return "", e
		}
		so.Add(f.Name, f.Value, f.Mask) // false: nothing it adds is a prerequisite, or the parser refuses it below
		mask := f.Mask
		if mask != nil && allOnes(mask) {
			mask = nil
		}
		if f.Name == "ip_frag" {
			m := byte(0xff)
			if mask != nil && len(mask) == 1 {
				m = mask[0]
			}
			if len(f.Value) != 1 {
				return "", matchError(openflow.CodeBadMatchLen, "ip_frag length %d", len(f.Value))
			}
			if m&3 != 0 {
				items = append(items, "ip_frag="+fragText(f.Value[0]&3, m&3))
			}
			continue
		}
		if mask != nil && f.Name == "in_port" {
			return "", matchError(codeBadMatchMask, "in_port cannot be masked")
		}
		s := f.Name + "=" + valueText(f.Name, f.Value)
		if mask != nil {
			s += "/" + valueText(f.Name, mask)
		}
		items = append(items, s)
	}
	return strings.Join(items, ","), nil
}

var wireMatchPool = sync.Pool{New: func() any { return new(flow.WireMatch) }}

// ethernetPacketType checks that a packet_type match is (0,0), Ethernet.
// Any other type (an L3 packet with no Ethernet header) is one ovsxdp's
// ports never carry, and a rule for it is refused rather than kept to
// match nothing.
func ethernetPacketType(f *openflow.Field) error {
	if len(f.Value) != 4 {
		return matchError(openflow.CodeBadMatchLen, "packet_type length %d", len(f.Value))
	}
	if f.Mask != nil && !allOnes(f.Mask) {
		return matchError(codeBadMatchMask, "packet_type cannot be masked")
	}
	if ns, id := binary.BigEndian.Uint16(f.Value), binary.BigEndian.Uint16(f.Value[2:]); ns != 0 || id != 0 {
		e := matchError(codeBadMatchValue, "packet_type=(%d,0x%x): ovsxdp carries only Ethernet frames, packet_type=(0,0)", ns, id)
		e.Item = "packet_type"
		return e
	}
	return nil
}

func fieldLabel(f *openflow.Field) string {
	if f.Name != "" {
		return f.Name
	}
	if f.Class == openflow.ClassExperimenter {
		return fmt.Sprintf("0x%08x:%d", f.Experimenter, f.Field)
	}
	return fmt.Sprintf("0x%04x:%d", f.Class, f.Field)
}

// MatchFromFields converts OXM/NXM match fields to a flow match.
func MatchFromFields(p *flow.Parser, fs []openflow.Field) (*flow.Match, error) {
	s, err := matchText(fs)
	if err != nil {
		return nil, err
	}
	m, err := wireParser(p).ParseMatch(s)
	if err != nil {
		return nil, parseError(err, true, s)
	}
	return m, nil
}

// wireParser is a copy of p (the zero Parser when nil) that parses the
// text of a match that came in a message (flow.Parser.FromWire).
func wireParser(p *flow.Parser) *flow.Parser {
	var w flow.Parser
	if p != nil {
		w = *p
	}
	w.FromWire = true
	return &w
}

// parseError turns a flow language error about text, which this package
// wrote, into the OpenFlow error Open vSwitch would give. A refused
// connection tracking field or action names it (Error.Item), as the
// codec's own refusals do.
func parseError(err error, match bool, text string) error {
	var oe *openflow.Error
	if errors.As(err, &oe) {
		return err
	}
	if errors.Is(err, flow.ErrTLVUnmapped) {
		return TLVError(err)
	}
	msg, reason, pos, key := err.Error(), err.Error(), -1, ""
	var se *flow.SyntaxError
	if errors.As(err, &se) {
		reason, pos = se.Reason, se.Pos
		key, _, _ = strings.Cut(se.Token, "=")
	}
	if match {
		var e *openflow.Error
		switch {
		case strings.Contains(msg, "requires") || strings.Contains(msg, "prerequisite"):
			e = matchError(codeBadMatchPrereq, "%s", msg)
		case strings.Contains(reason, "is not maskable"):
			e = matchError(codeBadMatchMask, "%s", msg)
		default:
			e = matchError(codeBadMatchValue, "%s", msg)
		}
		if _, ok := ctFields[key]; ok {
			e.Item = key
		}
		return e
	}
	if item, ok := ctItem(text, pos); ok {
		return ctActionError(item, reason)
	}
	switch {
	case strings.HasPrefix(reason, "cannot set CT fields outside of ct action"):
		return actionError(openflow.CodeBadActionSetArgument, "%s", msg)
	case strings.HasPrefix(reason, "disallowed action in action set"):
		return actionError(openflow.CodeBadActionType, "%s", msg)
	case strings.HasPrefix(reason, "Cannot have NAT action outside"):
		e := actionError(openflow.CodeBadActionSetArgument, "%s", msg)
		e.Item = "NXAST_NAT"
		return e
	}
	if errors.Is(err, flow.ErrUnsupportedSyntax) {
		return actionError(openflow.CodeBadActionType, "%s", msg)
	}
	if strings.Contains(msg, "requires") {
		return actionError(codeMatchInconsistent, "%s", msg)
	}
	return actionError(openflow.CodeBadActionArgument, "%s", msg)
}

// field makes a wire field of the named field with value v (and mask m
// unless it is nil or all ones).
func field(name string, nxm bool, v, m []byte) openflow.Field {
	h, _ := openflow.FieldByName(name, nxm)
	f := openflow.Field{Name: name, Class: h.Class, Field: h.Field, Experimenter: h.Experimenter, Value: v}
	if m != nil && !allOnes(m) {
		f.Mask = m
		for i := range v {
			v[i] &= m[i]
		}
	}
	return f
}

func b8(v uint8) []byte      { return []byte{v} }
func b16(v uint16) []byte    { return binary.BigEndian.AppendUint16(nil, v) }
func b32(v uint32) []byte    { return binary.BigEndian.AppendUint32(nil, v) }
func b64(v uint64) []byte    { return binary.BigEndian.AppendUint64(nil, v) }
func b6(v [6]byte) []byte    { return append([]byte(nil), v[:]...) }
func b16s(v [16]byte) []byte { return append([]byte(nil), v[:]...) }

// FieldsFromMatch converts a flow match to wire fields: NXM identities
// when nxm (OpenFlow 1.0's NXM flow format), OXM ones otherwise, as Open
// vSwitch encodes them.
func FieldsFromMatch(m *flow.Match, nxm bool) []openflow.Field {
	k, w := &m.Key, &m.Mask
	var fs []openflow.Field
	add := func(name string, v, mask []byte) { fs = append(fs, field(name, nxm, v, mask)) }
	if w.InPort != 0 {
		if nxm {
			add("in_port", b16(uint16(k.InPort)), nil)
		} else {
			p := k.InPort
			if p >= flow.PortMax {
				p += 0xffff0000
			}
			add("in_port", b32(p), nil)
		}
	}
	if w.DlSrc != ([6]byte{}) {
		add("eth_src", b6(k.DlSrc), b6(w.DlSrc))
	}
	if w.DlDst != ([6]byte{}) {
		add("eth_dst", b6(k.DlDst), b6(w.DlDst))
	}
	if w.DlType != 0 {
		add("eth_type", b16(k.DlType), nil)
	}
	if tci, tm := k.VLANs[0].TCI, w.VLANs[0].TCI; tm != 0 {
		if nxm {
			add("vlan_tci", b16(tci), b16(tm))
		} else {
			const vidCFI = flow.VLANVIDMask | flow.VLANPresent
			vid, vm := tci&vidCFI, tm&vidCFI
			if vm != 0 {
				add("vlan_vid", b16(vid), b16(vm))
			}
			if vid != 0 && tm&flow.VLANPCPMask != 0 {
				add("vlan_pcp", b8(uint8(tci>>13)), nil)
			}
		}
	}
	ethType := k.DlType
	if w.DlType == 0 {
		ethType = 0
	}
	arp := ethType == flow.EthTypeARP || ethType == flow.EthTypeRARP
	ip4, ip6 := ethType == flow.EthTypeIPv4, ethType == flow.EthTypeIPv6
	if w.NwSrc != 0 {
		n := "ip_src"
		if arp {
			n = "arp_spa"
		}
		add(n, b32(k.NwSrc), b32(w.NwSrc))
	}
	if w.NwDst != 0 {
		n := "ip_dst"
		if arp {
			n = "arp_tpa"
		}
		add(n, b32(k.NwDst), b32(w.NwDst))
	}
	if w.NwProto != 0 {
		if arp {
			add("arp_op", b16(uint16(k.NwProto)), nil)
		} else {
			add("nw_proto", b8(k.NwProto), nil)
		}
	}
	if w.NwTos&0xfc != 0 {
		if nxm {
			add("nw_tos", b8(k.NwTos&0xfc), nil)
		} else {
			add("ip_dscp", b8(k.NwTos>>2), nil)
		}
	}
	if w.NwTos&3 != 0 {
		add("nw_ecn", b8(k.NwTos&3), nil)
	}
	if w.NwTTL != 0 {
		add("nw_ttl", b8(k.NwTTL), nil)
	}
	if w.NwFrag != 0 {
		add("ip_frag", b8(k.NwFrag), b8(w.NwFrag))
	}
	if w.IPv6Src != ([16]byte{}) {
		add("ipv6_src", b16s(k.IPv6Src), b16s(w.IPv6Src))
	}
	if w.IPv6Dst != ([16]byte{}) {
		add("ipv6_dst", b16s(k.IPv6Dst), b16s(w.IPv6Dst))
	}
	if w.IPv6Label != 0 {
		add("ipv6_label", b32(k.IPv6Label), b32(w.IPv6Label))
	}
	proto := k.NwProto
	if w.NwProto == 0 || !(ip4 || ip6) {
		proto = 0
	}
	if w.TpSrc != 0 || w.TpDst != 0 {
		var src, dst string
		wide := true
		switch {
		case proto == flow.IPProtoTCP:
			src, dst = "tcp_src", "tcp_dst"
		case proto == flow.IPProtoUDP:
			src, dst = "udp_src", "udp_dst"
		case proto == flow.IPProtoSCTP:
			src, dst = "sctp_src", "sctp_dst"
		case proto == flow.IPProtoICMP && ip4:
			src, dst, wide = "icmp_type", "icmp_code", false
		case proto == flow.IPProtoICMPv6 && ip6:
			src, dst, wide = "icmpv6_type", "icmpv6_code", false
		}
		for _, t := range []struct {
			name string
			v, m uint16
		}{{src, k.TpSrc, w.TpSrc}, {dst, k.TpDst, w.TpDst}} {
			if t.m == 0 || t.name == "" {
				continue
			}
			if wide {
				add(t.name, b16(t.v), b16(t.m))
			} else {
				add(t.name, b8(uint8(t.v)), nil)
			}
		}
	}
	if w.NdTarget != ([16]byte{}) {
		add("nd_target", b16s(k.NdTarget), b16s(w.NdTarget))
	}
	if w.ArpSha != ([6]byte{}) {
		n := "arp_sha"
		if !arp {
			n = "nd_sll"
		}
		add(n, b6(k.ArpSha), b6(w.ArpSha))
	}
	if w.ArpTha != ([6]byte{}) {
		n := "arp_tha"
		if !arp {
			n = "nd_tll"
		}
		add(n, b6(k.ArpTha), b6(w.ArpTha))
	}
	if w.TcpFlags != 0 {
		add("tcp_flags", b16(k.TcpFlags), b16(w.TcpFlags))
	}
	if w.Metadata != 0 {
		add("metadata", b64(k.Metadata), b64(w.Metadata))
	}
	if w.PktMark != 0 {
		add("pkt_mark", b32(k.PktMark), b32(w.PktMark))
	}
	if w.ConjID != 0 {
		add("conj_id", b32(k.ConjID), nil)
	}
	for i := range flow.NumRegs {
		if w.Regs[i] != 0 {
			add("reg"+strconv.Itoa(i), b32(k.Regs[i]), b32(w.Regs[i]))
		}
	}
	tunFieldsFromMatch(m, add)
	ctFieldsFromMatch(m, add)
	return fs
}

// Match10FromMatch converts a flow match to OpenFlow 1.0's ofp_match, as
// Open vSwitch does for a standard OpenFlow 1.0 flow stats reply: what
// ofp_match cannot say (NXM-only fields, partial masks other than IPv4
// prefixes) is left wildcarded.
func Match10FromMatch(m *flow.Match) openflow.Match10 {
	k, w := &m.Key, &m.Mask
	o := openflow.Match10{Wildcards: openflow.Wc10All}
	exact := func(bit uint32, ok bool) {
		if ok {
			o.Wildcards &^= bit
		}
	}
	if w.InPort != 0 {
		exact(openflow.Wc10InPort, true)
		o.InPort = uint16(k.InPort)
	}
	if w.DlSrc == [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} {
		exact(openflow.Wc10DlSrc, true)
		o.DlSrc = k.DlSrc
	}
	if w.DlDst == [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} {
		exact(openflow.Wc10DlDst, true)
		o.DlDst = k.DlDst
	}
	tci, tm := k.VLANs[0].TCI, w.VLANs[0].TCI
	switch {
	case tm == 0xffff && tci&flow.VLANPresent == 0:
		exact(openflow.Wc10DlVlan, true)
		o.DlVlan = 0xffff
	case tm&(flow.VLANPresent|flow.VLANVIDMask) == flow.VLANPresent|flow.VLANVIDMask:
		exact(openflow.Wc10DlVlan, true)
		o.DlVlan = tci & flow.VLANVIDMask
	}
	if tm&flow.VLANPCPMask == flow.VLANPCPMask && tci&flow.VLANPresent != 0 {
		exact(openflow.Wc10DlVlanPCP, true)
		o.DlVlanPCP = uint8(tci >> 13)
	}
	if w.DlType == 0xffff {
		exact(openflow.Wc10DlType, true)
		o.DlType = k.DlType
	}
	if w.NwTos&0xfc == 0xfc {
		exact(openflow.Wc10NwTOS, true)
		o.NwTOS = k.NwTos & 0xfc
	}
	if w.NwProto == 0xff {
		exact(openflow.Wc10NwProto, true)
		o.NwProto = k.NwProto
	}
	prefix := func(v, mask uint32, shift uint) (uint32, bool) {
		n := bits.OnesCount32(mask)
		if mask == 0 || mask != ^uint32(0)<<(32-n) {
			return 0, false
		}
		o.Wildcards = o.Wildcards&^(0x3f<<shift) | uint32(32-n)<<shift
		return v & mask, true
	}
	if v, ok := prefix(k.NwSrc, w.NwSrc, openflow.Wc10NwSrcShift); ok {
		o.NwSrc = v
	}
	if v, ok := prefix(k.NwDst, w.NwDst, openflow.Wc10NwDstShift); ok {
		o.NwDst = v
	}
	if w.TpSrc == 0xffff {
		exact(openflow.Wc10TpSrc, true)
		o.TpSrc = k.TpSrc
	}
	if w.TpDst == 0xffff {
		exact(openflow.Wc10TpDst, true)
		o.TpDst = k.TpDst
	}
	return o
}
