package underlay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ErrFamily: an address of the wrong family for the frame asked for.
var ErrFamily = errors.New("address of the wrong family")

// Frame sizes of the requests this package builds.
const (
	ARPRequestLen   = 14 + 28          // Ethernet, ARP (the device pads to 60 bytes)
	NeighSolicitLen = 14 + 40 + 24 + 8 // Ethernet, IPv6, ICMPv6 neighbour solicitation, source link-layer option
)

// Ethernet types and the ICMPv6 messages of neighbour discovery.
const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100
	etherTypeQinQ = 0x88a8
	protoICMPv6   = 58
	icmpv6NS      = 135
	icmpv6NA      = 136
	ndOptSLL      = 1
	ndOptTLL      = 2
	arpRequest    = 1
	arpReply      = 2
)

// AppendSolicit appends the request that resolves p's next hop on p's
// device: an ARP request for an IPv4 next hop, a neighbour solicitation
// for an IPv6 one, from p's source addresses. A tunnel port sends it
// through its underlay when Lookup says ErrNoNeighbour.
func AppendSolicit(b []byte, p Path) ([]byte, error) {
	if p.NextHop.Is4() {
		return AppendARPRequest(b, p.SrcMAC, p.Src, p.NextHop)
	}
	return AppendNeighSolicit(b, p.SrcMAC, p.Src, p.NextHop)
}

// AppendARPRequest appends to b a broadcast ARP request from srcMAC and
// src asking for target's address, as Open vSwitch sends it to resolve a
// tunnel's next hop: 42 bytes, the target hardware address zero.
func AppendARPRequest(b []byte, srcMAC [6]byte, src, target netip.Addr) ([]byte, error) {
	src, target = src.Unmap(), target.Unmap()
	if !src.Is4() || !target.Is4() {
		return b, fmt.Errorf("arp request from %s for %s: %w", src, target, ErrFamily)
	}
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, srcMAC[:]...)
	b = binary.BigEndian.AppendUint16(b, etherTypeARP)
	b = binary.BigEndian.AppendUint16(b, 1) // Ethernet
	b = binary.BigEndian.AppendUint16(b, etherTypeIPv4)
	b = append(b, 6, 4)
	b = binary.BigEndian.AppendUint16(b, arpRequest)
	b = append(b, srcMAC[:]...)
	s4, t4 := src.As4(), target.As4()
	b = append(b, s4[:]...)
	b = append(b, 0, 0, 0, 0, 0, 0)
	return append(b, t4[:]...), nil
}

// SolicitedNode returns target's solicited-node multicast address
// (ff02::1:ffXX:XXXX) and its Ethernet address (33:33:ff:XX:XX:XX).
func SolicitedNode(target netip.Addr) (netip.Addr, [6]byte) {
	t := target.As16()
	a := [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]}
	return netip.AddrFrom16(a), [6]byte{0x33, 0x33, 0xff, t[13], t[14], t[15]}
}

// AppendNeighSolicit appends to b a neighbour solicitation from srcMAC
// and src for target, to target's solicited-node multicast address,
// with a source link-layer address option and hop limit 255: 86 bytes.
func AppendNeighSolicit(b []byte, srcMAC [6]byte, src, target netip.Addr) ([]byte, error) {
	if !src.Is6() || src.Is4In6() || !target.Is6() || target.Is4In6() {
		return b, fmt.Errorf("neighbour solicitation from %s for %s: %w", src, target, ErrFamily)
	}
	dst, dstMAC := SolicitedNode(target)
	b = append(b, dstMAC[:]...)
	b = append(b, srcMAC[:]...)
	b = binary.BigEndian.AppendUint16(b, etherTypeIPv6)
	ip := len(b)
	b = append(b, 0x60, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, 32) // payload: the message and its option
	b = append(b, protoICMPv6, 255)
	s16, d16, t16 := src.As16(), dst.As16(), target.As16()
	b = append(b, s16[:]...)
	b = append(b, d16[:]...)
	icmp := len(b)
	b = append(b, icmpv6NS, 0, 0, 0, 0, 0, 0, 0)
	b = append(b, t16[:]...)
	b = append(b, ndOptSLL, 1)
	b = append(b, srcMAC[:]...)
	sum := icmpv6Checksum(b[ip+8:ip+24], b[ip+24:ip+40], b[icmp:])
	binary.BigEndian.PutUint16(b[icmp+2:], sum)
	return b, nil
}

// icmpv6Checksum is the ICMPv6 checksum of msg (its checksum field
// zero, or as received: then a correct message sums to zero) between
// src and dst.
func icmpv6Checksum(src, dst, msg []byte) uint16 {
	var s uint32
	add := func(p []byte) {
		for len(p) >= 2 {
			s += uint32(binary.BigEndian.Uint16(p))
			p = p[2:]
		}
		if len(p) == 1 {
			s += uint32(p[0]) << 8
		}
	}
	add(src)
	add(dst)
	s += uint32(len(msg)) + protoICMPv6
	add(msg)
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
