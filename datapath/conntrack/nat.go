package conntrack

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"

	"github.com/ovsxdp/ovsxdp/flow"
)

// What a connection's original direction translates.
const (
	natNone = iota
	natSrc
	natDst
)

// The port range a source port is translated within when nat() gives
// none, by the class of the original port (as Linux and Open vSwitch
// keep privileged ports privileged).
const (
	minEphemeralPort = 1024
	maxEphemeralPort = 65535
	// maxPortAttempts bounds the ports tried per round.
	maxPortAttempts = 128
)

// natTuple chooses the reply-direction tuple of a new connection whose
// original tuple is fwd, under nat(...) n, as Open vSwitch's
// nat_get_unique_tuple does: an address of the range picked by a hash of
// the connection (of its source address only with persistent), the
// original port when it is free, else a port of the range from a hashed
// (or, with random, random) starting point. It reports false when every
// candidate is taken. The caller holds createMu and no shard mutex.
func (tr *Tracker) natTuple(fwd *tuple, n *flow.NAT, now int64) (tuple, bool) {
	rev := fwd.reverse()
	if n.AddrMin.IsValid() && n.AddrMin.Is4() == fwd.v6 {
		return rev, false // an address of the other family
	}
	src := n.Kind == flow.NATSrc
	pat := fwd.proto == flow.IPProtoTCP || fwd.proto == flow.IPProtoUDP || (fwd.proto == flow.IPProtoICMP && !fwd.v6)

	h := tr.natHash(fwd, n, n.Persistent)
	off := uint32(h)
	switch {
	case n.Random:
		off = rand.Uint32()
	case n.Persistent:
		off = uint32(tr.natHash(fwd, n, false))
	}

	addr := fwd.dst
	if src {
		addr = fwd.src
	}
	if n.AddrMin.IsValid() {
		addr = addrInRange(n.AddrMin, n.AddrMax, h)
	}

	var curS, minS, maxS uint16
	if !src || n.PortMin == 0 {
		curS = fwd.sport
		switch {
		case curS < 512:
			minS, maxS = 1, 511
		case curS < 1024:
			minS, maxS = 600, 1023
		default:
			minS, maxS = minEphemeralPort, maxEphemeralPort
		}
	} else {
		minS, maxS = n.PortMin, max(n.PortMax, n.PortMin)
		curS = minS + uint16(off%(uint32(maxS-minS)+1))
	}
	dstPorts := !src && n.PortMin != 0
	curD, minD, maxD := fwd.dport, fwd.dport, fwd.dport
	if dstPorts {
		minD, maxD = n.PortMin, max(n.PortMax, n.PortMin)
		curD = minD + uint16(off%(uint32(maxD-minD)+1))
	}
	if src {
		rev.dst = addr
	} else {
		rev.src = addr
	}
	if !pat {
		return rev, !tr.exists(&rev, now)
	}
	rev.sport, rev.dport = curD, curS
	icmp := fwd.proto == flow.IPProtoICMP
	if dstPorts && tr.uniquePort(&rev, &rev.sport, nil, curD, minD, maxD, now) {
		return rev, true
	}
	var peer *uint16
	if icmp {
		peer = &rev.sport // an ICMP identifier is both "ports"
	}
	return rev, tr.uniquePort(&rev, &rev.dport, peer, curS, minS, maxS, now)
}

// uniquePort looks for a value of *port (and *peer) in lo..hi, from cur,
// that makes rev a free tuple: up to maxPortAttempts in a row, then from
// random points with half as many tries each round.
func (tr *Tracker) uniquePort(rev *tuple, port, peer *uint16, cur, lo, hi uint16, now int64) bool {
	span := int(hi-lo) + 1
	attempts := min(span, maxPortAttempts)
	orig := cur
	for {
		for i := range attempts {
			v := lo + uint16((int(cur-lo)+i)%span)
			*port = v
			if peer != nil {
				*peer = v
			}
			if !tr.exists(rev, now) {
				return true
			}
		}
		if attempts >= span || attempts < 16 {
			break
		}
		attempts /= 2
		cur = lo + uint16(rand.IntN(span))
	}
	*port = orig
	if peer != nil {
		*peer = orig
	}
	return false
}

// natHash hashes what picks a NAT address and port: the connection's
// endpoints (only its source address when persistent, with a fixed seed
// so the choice survives a restart), the ranges, the protocol and zone.
func (tr *Tracker) natHash(t *tuple, n *flow.NAT, persistent bool) uint64 {
	var h uint64
	if persistent {
		h = endpointHash(0, &t.src, 0, 0)
	} else {
		h = mix(tr.seed ^ endpointHash(tr.seed, &t.src, t.sport, t.stype))
		h = mix(h ^ endpointHash(tr.seed, &t.dst, t.dport, t.dtype))
	}
	if n.AddrMin.IsValid() {
		a, b := n.AddrMin.As16(), n.AddrMax.As16()
		h = mix(h ^ endpointHash(0, &a, 0, 0))
		h = mix(h ^ endpointHash(0, &b, 0, 0))
	}
	h = mix(h ^ (uint64(n.PortMin) | uint64(n.PortMax)<<16 | uint64(t.proto)<<32 | uint64(t.zone)<<40))
	return h
}

// addrInRange returns the address lo + h mod (hi - lo + 1), the range
// capped at 2^32 addresses, in a tuple's layout.
func addrInRange(lo, hi netip.Addr, h uint64) [16]byte {
	var out [16]byte
	if !hi.IsValid() || hi.Less(lo) {
		hi = lo
	}
	if lo.Is4() {
		l, u := lo.As4(), hi.As4()
		a, b := binary.BigEndian.Uint32(l[:]), binary.BigEndian.Uint32(u[:])
		binary.BigEndian.PutUint32(out[:4], a+uint32(h%(uint64(b-a)+1)))
		return out
	}
	l, u := lo.As16(), hi.As16()
	lh, ll := binary.BigEndian.Uint64(l[:8]), binary.BigEndian.Uint64(l[8:])
	uh, ul := binary.BigEndian.Uint64(u[:8]), binary.BigEndian.Uint64(u[8:])
	span := uint64(1) << 32
	if uh == lh && ul-ll < span-1 {
		span = ul - ll + 1
	}
	o := h % span
	nl := ll + o
	if nl < ll {
		lh++
	}
	binary.BigEndian.PutUint64(out[:8], lh)
	binary.BigEndian.PutUint64(out[8:], nl)
	return out
}

// natPacket translates a packet of connection c, travelling in direction
// reply, so that it carries the tuple the other side expects, and returns
// the ct_state bit it earns (snat or dnat). The home shard is locked.
func natPacket(frame []byte, k *flow.Key, p *packet, c *conn, reply bool) uint8 {
	kind := c.nat
	cur, tgt := c.key[0], c.key[1].reverse()
	if reply {
		cur, tgt = c.key[1], c.key[0].reverse()
		if kind == natSrc {
			kind = natDst
		} else {
			kind = natSrc
		}
	}
	if p.related {
		natRelated(frame, k, p, &cur, &tgt)
	} else {
		natRewrite(frame, k, p, &cur, &tgt)
	}
	if kind == natSrc {
		return flow.CtStateSNAT
	}
	return flow.CtStateDNAT
}

// sumDiff adds to acc the change of 16-bit words from old to new (same
// even length), for an incremental checksum update (RFC 1624).
func sumDiff(acc uint32, old, new []byte) uint32 {
	for i := 0; i+1 < len(old); i += 2 {
		acc += uint32(^binary.BigEndian.Uint16(old[i:])) + uint32(binary.BigEndian.Uint16(new[i:]))
	}
	return acc
}

// fixCsum applies the change acc to the checksum at b[0:2]. A UDP
// checksum of zero (none) is left alone, and a computed zero is sent as
// 0xffff.
func fixCsum(b []byte, acc uint32, udp bool) {
	old := binary.BigEndian.Uint16(b)
	if udp && old == 0 {
		return
	}
	sum := ^flow.FoldSum(uint64(^old) + uint64(acc))
	if udp && sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(b, sum)
}

// setAddrs writes the addresses of tgt over those of cur in the IP header
// at l3 and returns the checksum change of the pseudo-header.
func setAddrs(frame []byte, l3 int, cur, tgt *tuple) uint32 {
	n, so, do := 4, l3+12, l3+16
	if cur.v6 {
		n, so, do = 16, l3+8, l3+24
	}
	var acc uint32
	if cur.src != tgt.src {
		acc = sumDiff(acc, frame[so:so+n], tgt.src[:n])
		copy(frame[so:so+n], tgt.src[:n])
	}
	if cur.dst != tgt.dst {
		acc = sumDiff(acc, frame[do:do+n], tgt.dst[:n])
		copy(frame[do:do+n], tgt.dst[:n])
	}
	if !cur.v6 && acc != 0 {
		fixCsum(frame[l3+10:l3+12], acc, false)
	}
	return acc
}

// setPorts writes the ports (or ICMP identifier) of tgt into the
// transport header at l4 (which ends at end) and updates its checksum
// with the port change and, for protocols whose checksum covers a
// pseudo-header, pseudo.
func setPorts(frame []byte, l4, end int, cur, tgt *tuple, pseudo uint32) {
	b := frame[l4:end]
	switch {
	case cur.proto == flow.IPProtoTCP || cur.proto == flow.IPProtoUDP:
		if len(b) < 4 {
			return
		}
		var ports [4]byte
		binary.BigEndian.PutUint16(ports[0:], tgt.sport)
		binary.BigEndian.PutUint16(ports[2:], tgt.dport)
		acc := sumDiff(pseudo, b[0:4], ports[:])
		copy(b[0:4], ports[:])
		if cur.proto == flow.IPProtoTCP && len(b) >= 18 {
			fixCsum(b[16:18], acc, false)
		} else if cur.proto == flow.IPProtoUDP && len(b) >= 8 {
			fixCsum(b[6:8], acc, !cur.v6)
		}
	case cur.isICMP():
		if len(b) < icmpHeaderLen {
			return
		}
		var id [2]byte
		binary.BigEndian.PutUint16(id[:], tgt.sport)
		acc := uint32(0)
		if cur.v6 {
			acc = pseudo
		}
		acc = sumDiff(acc, b[4:6], id[:])
		copy(b[4:6], id[:])
		fixCsum(b[2:4], acc, false)
	}
}

// natRewrite translates an ordinary packet from tuple cur to tgt and
// keeps k describing it.
func natRewrite(frame []byte, k *flow.Key, p *packet, cur, tgt *tuple) {
	pseudo := setAddrs(frame, p.l3, cur, tgt)
	if p.l4 >= 0 {
		setPorts(frame, p.l4, p.l4end, cur, tgt, pseudo)
	}
	setKeyAddrs(k, tgt)
	if cur.proto == flow.IPProtoTCP || cur.proto == flow.IPProtoUDP {
		k.TpSrc, k.TpDst = tgt.sport, tgt.dport
	}
}

func setKeyAddrs(k *flow.Key, t *tuple) {
	if t.v6 {
		k.IPv6Src, k.IPv6Dst = t.src, t.dst
	} else {
		k.NwSrc = binary.BigEndian.Uint32(t.src[:4])
		k.NwDst = binary.BigEndian.Uint32(t.dst[:4])
	}
}

// natRelated translates an ICMP error about a NAT connection: the outer
// addresses the translation changes, and the quoted packet back to what
// its sender sent or its receiver expects; then the ICMP checksum, which
// covers the quote, is computed anew.
func natRelated(frame []byte, k *flow.Key, p *packet, cur, tgt *tuple) {
	// The outer header: only the addresses the translation changes.
	outer := tuple{v6: cur.v6}
	n, so, do := 4, p.l3+12, p.l3+16
	if cur.v6 {
		n, so, do = 16, p.l3+8, p.l3+24
	}
	copy(outer.src[:n], frame[so:so+n])
	copy(outer.dst[:n], frame[do:do+n])
	newOuter := outer
	if cur.src != tgt.src {
		newOuter.src = tgt.src
	}
	if cur.dst != tgt.dst {
		newOuter.dst = tgt.dst
	}
	setAddrs(frame, p.l3, &outer, &newOuter)

	// The quote travelled the other way.
	qc, qt := cur.reverse(), tgt.reverse()
	pseudo := setAddrs(frame, p.innerL3, &qc, &qt)
	setPorts(frame, p.innerL4, p.innerEnd, &qc, &qt, pseudo)

	b := frame[p.l4:p.l4end]
	b[2], b[3] = 0, 0
	var acc uint64
	if cur.v6 {
		acc = pseudoSum(&newOuter, flow.IPProtoICMPv6, len(b))
	}
	binary.BigEndian.PutUint16(b[2:4], ^flow.FoldSum(flow.OnesSum(acc, b)))
	setKeyAddrs(k, &newOuter) // the ICMP type and code do not change
}
