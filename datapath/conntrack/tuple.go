package conntrack

import (
	"encoding/binary"
	"math/bits"

	"github.com/ovsxdp/ovsxdp/flow"
)

// tuple is a connection's key in one direction: the zone, the addresses,
// the protocol and its ports. An IPv4 address fills the first 4 bytes of
// its array. For ICMP and ICMPv6 echo (and the other ICMP query/reply
// pairs) both ports hold the identifier, and stype/dtype the message type
// each end sends (a request's tuple has the request type at the source
// and the reply type at the destination), so that reversing a tuple gives
// the tuple of the answer. Protocols without ports have zero ports.
type tuple struct {
	src, dst     [16]byte
	sport, dport uint16
	zone         uint16
	proto        uint8
	v6           bool
	stype, dtype uint8
}

// reverse returns the tuple of the other direction.
func (t tuple) reverse() tuple {
	t.src, t.dst = t.dst, t.src
	t.sport, t.dport = t.dport, t.sport
	t.stype, t.dtype = t.dtype, t.stype
	return t
}

// isICMP reports whether the tuple is an ICMP or ICMPv6 query/reply pair,
// whose ports are identifiers.
func (t *tuple) isICMP() bool {
	return (!t.v6 && t.proto == flow.IPProtoICMP) || (t.v6 && t.proto == flow.IPProtoICMPv6)
}

// hash returns a hash of the tuple that is the same for both directions:
// the two endpoints are hashed apart and combined with a commutative
// operation, so a connection without NAT finds both of its directions in
// the same shard and probe sequence.
func (t *tuple) hash(seed uint64) uint64 {
	a := endpointHash(seed, &t.src, t.sport, t.stype)
	b := endpointHash(seed, &t.dst, t.dport, t.dtype)
	v := uint64(t.zone) | uint64(t.proto)<<16
	if t.v6 {
		v |= 1 << 24
	}
	return mix(mix(seed^(a+b)) ^ v)
}

func endpointHash(seed uint64, addr *[16]byte, port uint16, typ uint8) uint64 {
	h := mix(seed ^ binary.LittleEndian.Uint64(addr[0:8]))
	h = mix(h ^ binary.LittleEndian.Uint64(addr[8:16]))
	return mix(h ^ (uint64(port) | uint64(typ)<<16))
}

func mix(x uint64) uint64 {
	hi, lo := bits.Mul64(x^0x9e3779b97f4a7c15, 0xbf58476d1ce4e5b9)
	return hi ^ lo
}

// ICMP and ICMPv6 message types the tracker understands.
const (
	icmpEchoReply      = 0
	icmpDestUnreach    = 3
	icmpSourceQuench   = 4
	icmpRedirect       = 5
	icmpEcho           = 8
	icmpTimeExceeded   = 11
	icmpParamProblem   = 12
	icmpTimestamp      = 13
	icmpTimestampReply = 14
	icmpInfoRequest    = 15
	icmpInfoReply      = 16

	icmp6DestUnreach   = 1
	icmp6PacketTooBig  = 2
	icmp6TimeExceeded  = 3
	icmp6ParamProblem  = 4
	icmp6EchoRequest   = 128
	icmp6EchoReply     = 129
	icmpHeaderLen      = 8
	ipv4HeaderMinLen   = 20
	ipv6HeaderLen      = 40
	tcpHeaderMinLen    = 20
	udpHeaderLen       = 8
	icmpErrorInnerL4Ln = 8 // the transport bytes an ICMPv4 error must quote
)

// icmpReverse returns the type that answers an ICMPv4 query type, and
// whether the type is a query or reply the tracker pairs.
func icmpReverse(typ uint8) (uint8, bool) {
	switch typ {
	case icmpEcho:
		return icmpEchoReply, true
	case icmpEchoReply:
		return icmpEcho, true
	case icmpTimestamp:
		return icmpTimestampReply, true
	case icmpTimestampReply:
		return icmpTimestamp, true
	case icmpInfoRequest:
		return icmpInfoReply, true
	case icmpInfoReply:
		return icmpInfoRequest, true
	}
	return 0, false
}

func icmp6Reverse(typ uint8) (uint8, bool) {
	switch typ {
	case icmp6EchoRequest:
		return icmp6EchoReply, true
	case icmp6EchoReply:
		return icmp6EchoRequest, true
	}
	return 0, false
}

// packet is what the tracker learns of one frame: its tuple and where its
// headers are. For an ICMP error (related) the tuple is that of the quoted
// packet, reversed, so it names the connection in the direction the error
// travels.
type packet struct {
	t       tuple
	related bool
	l3, l4  int // offsets of the IP and transport headers (l4 < 0: not located)
	l4end   int // end of the IP payload (before any Ethernet padding)

	// The quoted packet of an ICMP error: its IP and transport headers.
	innerL3, innerL4, innerEnd int

	// TCP fields.
	tcpFlags uint16
	seq, ack uint32
	win      uint16
	payload  int   // TCP payload length
	tcpHdr   int   // TCP header length
	wscale   uint8 // a SYN's window scale option (wscaleKnown|shift), else 0
}

// extract fills p from the frame, which Extract described with k and off,
// as Open vSwitch's conn_key_extract does: IPv4 or IPv6 only, header and
// transport checksums verified, zero ports refused, ICMP errors keyed by
// the packet they quote. It reports false when the tracker cannot make
// sense of the packet (the packet is then +inv).
func extract(frame []byte, k *flow.Key, off *flow.Offsets, zone uint16, p *packet) bool {
	*p = packet{l4: -1}
	p.t.zone = zone
	if off.L3 == flow.NoOffset || int(off.L3) >= len(frame) {
		return false
	}
	// Fragments: Open vSwitch reassembles them before its tracker sees
	// them (Defrag does it here); a fragment that reaches the tracker is
	// invalid to it, as to Open vSwitch's.
	if k.NwFrag&flow.FragAny != 0 {
		return false
	}
	l3 := int(off.L3)
	p.l3 = l3
	switch k.DlType {
	case flow.EthTypeIPv4:
		h := frame[l3:]
		if len(h) < ipv4HeaderMinLen || h[0]>>4 != 4 {
			return false
		}
		ihl := int(h[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(h[2:4]))
		if ihl < ipv4HeaderMinLen || total < ihl || total > len(h) {
			return false
		}
		if flow.FoldSum(flow.OnesSum(0, h[:ihl])) != 0xffff {
			return false
		}
		copy(p.t.src[:4], h[12:16])
		copy(p.t.dst[:4], h[16:20])
		p.t.proto = h[9]
		p.l4 = l3 + ihl
		p.l4end = l3 + total
	case flow.EthTypeIPv6:
		h := frame[l3:]
		if len(h) < ipv6HeaderLen || h[0]>>4 != 6 {
			return false
		}
		end := ipv6HeaderLen + int(binary.BigEndian.Uint16(h[4:6]))
		if end > len(h) {
			return false
		}
		p.t.v6 = true
		copy(p.t.src[:], h[8:24])
		copy(p.t.dst[:], h[24:40])
		p.t.proto = k.NwProto
		p.l4end = l3 + end
		if off.L4 != flow.NoOffset {
			p.l4 = int(off.L4)
		}
	default:
		return false
	}
	if p.l4 > p.l4end {
		return false
	}
	switch {
	case p.t.proto == flow.IPProtoTCP:
		return p.l4 >= 0 && extractTCP(frame, p, true)
	case p.t.proto == flow.IPProtoUDP:
		return p.l4 >= 0 && extractUDP(frame, p, true)
	case p.t.proto == flow.IPProtoICMP && !p.t.v6:
		return p.l4 >= 0 && extractICMP(frame, p)
	case p.t.proto == flow.IPProtoICMPv6 && p.t.v6:
		return p.l4 >= 0 && extractICMP6(frame, p)
	}
	// Other protocols are tracked by their addresses alone.
	return true
}

// pseudoSum is the ones'-complement sum of the transport pseudo-header.
func pseudoSum(t *tuple, proto uint8, length int) uint64 {
	var acc uint64
	if t.v6 {
		acc = flow.OnesSum(acc, t.src[:])
		acc = flow.OnesSum(acc, t.dst[:])
	} else {
		acc = flow.OnesSum(acc, t.src[:4])
		acc = flow.OnesSum(acc, t.dst[:4])
	}
	return acc + uint64(proto) + uint64(length)
}

func extractTCP(frame []byte, p *packet, outer bool) bool {
	b := frame[p.l4:p.l4end]
	if len(b) < tcpHeaderMinLen {
		return false
	}
	hl := int(b[12]>>4) * 4
	if hl < tcpHeaderMinLen || hl > len(b) {
		return false
	}
	if outer && flow.FoldSum(flow.OnesSum(pseudoSum(&p.t, flow.IPProtoTCP, len(b)), b)) != 0xffff {
		return false
	}
	p.t.sport = binary.BigEndian.Uint16(b[0:2])
	p.t.dport = binary.BigEndian.Uint16(b[2:4])
	p.seq = binary.BigEndian.Uint32(b[4:8])
	p.ack = binary.BigEndian.Uint32(b[8:12])
	p.tcpFlags = binary.BigEndian.Uint16(b[12:14]) & 0x0fff
	p.win = binary.BigEndian.Uint16(b[14:16])
	p.tcpHdr = hl
	p.payload = len(b) - hl
	if p.tcpFlags&tcpSYN != 0 {
		p.wscale = tcpWscale(b[tcpHeaderMinLen:hl])
	}
	return p.t.sport != 0 && p.t.dport != 0
}

func extractUDP(frame []byte, p *packet, outer bool) bool {
	b := frame[p.l4:p.l4end]
	if len(b) < udpHeaderLen {
		return false
	}
	if outer {
		if ulen := int(binary.BigEndian.Uint16(b[4:6])); ulen < udpHeaderLen || ulen > len(b) {
			return false
		}
		csum := binary.BigEndian.Uint16(b[6:8])
		if !(csum == 0 && !p.t.v6) && flow.FoldSum(flow.OnesSum(pseudoSum(&p.t, flow.IPProtoUDP, len(b)), b)) != 0xffff {
			return false
		}
	}
	p.t.sport = binary.BigEndian.Uint16(b[0:2])
	p.t.dport = binary.BigEndian.Uint16(b[2:4])
	return p.t.sport != 0 && p.t.dport != 0
}

// icmpQuery keys an ICMP query or reply by its identifier.
func icmpQuery(b []byte, p *packet, typ, rev uint8) {
	id := binary.BigEndian.Uint16(b[4:6])
	p.t.sport, p.t.dport = id, id
	p.t.stype, p.t.dtype = typ, rev
}

func extractICMP(frame []byte, p *packet) bool {
	b := frame[p.l4:p.l4end]
	if len(b) < icmpHeaderLen || flow.FoldSum(flow.OnesSum(0, b)) != 0xffff {
		return false
	}
	typ, code := b[0], b[1]
	if rev, ok := icmpReverse(typ); ok {
		if code != 0 {
			return false
		}
		icmpQuery(b, p, typ, rev)
		return true
	}
	switch typ {
	case icmpDestUnreach, icmpTimeExceeded, icmpParamProblem, icmpSourceQuench, icmpRedirect:
	default:
		return false
	}
	// The error quotes an IPv4 header and at least 8 bytes of its payload.
	in := p.l4 + icmpHeaderLen
	h := frame[in:p.l4end]
	if len(h) < ipv4HeaderMinLen || h[0]>>4 != 4 {
		return false
	}
	ihl := int(h[0]&0x0f) * 4
	if ihl < ipv4HeaderMinLen || len(h) < ihl {
		return false
	}
	if binary.BigEndian.Uint16(h[6:8])&0x1fff != 0 {
		return false // a later fragment quotes no transport header
	}
	if [4]byte(h[12:16]) != [4]byte(p.t.dst[:4]) {
		return false // the quoted packet was not sent by the error's addressee
	}
	inner := packet{l3: in, l4: in + ihl, l4end: p.l4end, t: tuple{zone: p.t.zone, proto: h[9]}}
	copy(inner.t.src[:4], h[12:16])
	copy(inner.t.dst[:4], h[16:20])
	if !extractQuoted(frame, &inner, icmpErrorInnerL4Ln) {
		return false
	}
	p.t = inner.t.reverse()
	p.related = true
	p.innerL3, p.innerL4, p.innerEnd = inner.l3, inner.l4, inner.l4end
	return true
}

// extractQuoted keys the transport header an ICMP error quotes, of which
// at least a UDP header and tcpNeed bytes of a TCP header must be there
// (ICMPv4 errors: 8; ICMPv6: the whole TCP header). Errors about errors
// are not followed.
func extractQuoted(frame []byte, p *packet, tcpNeed int) bool {
	b := frame[p.l4:p.l4end]
	switch {
	case p.t.proto == flow.IPProtoTCP || p.t.proto == flow.IPProtoUDP:
		need := udpHeaderLen
		if p.t.proto == flow.IPProtoTCP {
			need = tcpNeed
		}
		if len(b) < need {
			return false
		}
		p.t.sport = binary.BigEndian.Uint16(b[0:2])
		p.t.dport = binary.BigEndian.Uint16(b[2:4])
		return p.t.sport != 0 && p.t.dport != 0
	case p.t.proto == flow.IPProtoICMP && !p.t.v6:
		if len(b) < icmpHeaderLen {
			return false
		}
		rev, ok := icmpReverse(b[0])
		if !ok || b[1] != 0 {
			return false
		}
		icmpQuery(b, p, b[0], rev)
		return true
	case p.t.proto == flow.IPProtoICMPv6 && p.t.v6:
		if len(b) < icmpHeaderLen {
			return false
		}
		rev, ok := icmp6Reverse(b[0])
		if !ok || b[1] != 0 {
			return false
		}
		icmpQuery(b, p, b[0], rev)
		return true
	}
	return true
}

func extractICMP6(frame []byte, p *packet) bool {
	b := frame[p.l4:p.l4end]
	if len(b) < icmpHeaderLen || flow.FoldSum(flow.OnesSum(pseudoSum(&p.t, flow.IPProtoICMPv6, len(b)), b)) != 0xffff {
		return false
	}
	typ, code := b[0], b[1]
	if rev, ok := icmp6Reverse(typ); ok {
		if code != 0 {
			return false
		}
		icmpQuery(b, p, typ, rev)
		return true
	}
	switch typ {
	case icmp6DestUnreach, icmp6PacketTooBig, icmp6TimeExceeded, icmp6ParamProblem:
	default:
		return false
	}
	in := p.l4 + icmpHeaderLen
	h := frame[in:p.l4end]
	if len(h) < ipv6HeaderLen || h[0]>>4 != 6 {
		return false
	}
	if [16]byte(h[8:24]) != p.t.dst {
		return false
	}
	inner := packet{l3: in, l4end: p.l4end, t: tuple{zone: p.t.zone, v6: true}}
	copy(inner.t.src[:], h[8:24])
	copy(inner.t.dst[:], h[24:40])
	proto, l4, ok := skipIPv6Ext(frame, in+ipv6HeaderLen, p.l4end, h[6])
	if !ok {
		return false
	}
	inner.t.proto, inner.l4 = proto, l4
	if !extractQuoted(frame, &inner, tcpHeaderMinLen) {
		return false
	}
	p.t = inner.t.reverse()
	p.related = true
	p.innerL3, p.innerL4, p.innerEnd = inner.l3, inner.l4, inner.l4end
	return true
}

// skipIPv6Ext walks the hop-by-hop, routing and destination options
// headers of a quoted IPv6 packet (at most 8) and returns the transport
// protocol and where it starts. A fragment header makes it fail.
func skipIPv6Ext(frame []byte, pos, end int, next uint8) (uint8, int, bool) {
	for range 8 {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if end-pos < 8 {
				return 0, 0, false
			}
			n := (int(frame[pos+1]) + 1) * 8
			if end-pos < n {
				return 0, 0, false
			}
			next = frame[pos]
			pos += n
		case 44: // fragment
			return 0, 0, false
		default:
			return next, pos, true
		}
	}
	return 0, 0, false
}
