package underlay

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Errors of ParseNeigh.
var (
	// ErrNotNeigh: the frame is neither ARP nor an IPv6 neighbour
	// solicitation or advertisement; most frames are not.
	ErrNotNeigh = errors.New("not an arp or neighbour discovery frame")
	// ErrMalformed: an ARP or neighbour discovery frame that is
	// truncated or has fields that are not allowed.
	ErrMalformed = errors.New("malformed arp or neighbour discovery frame")
	// ErrChecksum: a neighbour discovery message with a wrong ICMPv6
	// checksum.
	ErrChecksum = errors.New("bad icmpv6 checksum")
)

// NeighKind says which message a NeighMessage is.
type NeighKind uint8

// The messages ParseNeigh reads.
const (
	KindARP          NeighKind = iota + 1 // an ARP request or reply (Op)
	KindNeighSolicit                      // an ICMPv6 neighbour solicitation
	KindNeighAdvert                       // an ICMPv6 neighbour advertisement
)

// NeighMessage is an ARP or neighbour discovery message, decoded in place
// by ParseNeigh into a struct the caller reuses.
type NeighMessage struct {
	Kind NeighKind
	Op   uint16 // ARP: the operation (1 request, 2 reply)
	// ARP: the sender's and target's hardware addresses. Neighbour
	// discovery: the source and target link-layer address options, zero
	// when absent.
	SHA, THA [6]byte
	// ARP: the sender's and target's protocol addresses. Neighbour
	// discovery: the IPv6 source and destination.
	SPA, TPA netip.Addr
	Target   netip.Addr // neighbour discovery: the target address
}

// ParseNeigh decodes an Ethernet frame (with up to two VLAN tags) that
// carries ARP for IPv4 over Ethernet, or an ICMPv6 neighbour
// solicitation or advertisement (hop limit 255, code 0, checksum
// correct, options well formed: each of a non-zero length within the
// message, at most one of each link-layer address option). It does not
// allocate.
func ParseNeigh(frame []byte, m *NeighMessage) error {
	*m = NeighMessage{}
	et, p, ok := etherPayload(frame)
	if !ok {
		return ErrNotNeigh
	}
	switch et {
	case etherTypeARP:
		return parseARP(p, m)
	case etherTypeIPv6:
		return parseND(p, m)
	}
	return ErrNotNeigh
}

// etherPayload returns the Ethernet type of frame and what follows its
// header, past up to two VLAN tags; ok is false when the frame is too
// short for its header or a tag.
func etherPayload(frame []byte) (et uint16, p []byte, ok bool) {
	if len(frame) < 14 {
		return 0, nil, false
	}
	et, p = binary.BigEndian.Uint16(frame[12:]), frame[14:]
	for tags := 0; tags < 2 && (et == etherTypeVLAN || et == etherTypeQinQ); tags++ {
		if len(p) < 4 {
			return 0, nil, false
		}
		et, p = binary.BigEndian.Uint16(p[2:]), p[4:]
	}
	return et, p, true
}

func parseARP(p []byte, m *NeighMessage) error {
	if len(p) < 28 {
		return ErrMalformed
	}
	if binary.BigEndian.Uint16(p) != 1 || binary.BigEndian.Uint16(p[2:]) != etherTypeIPv4 || p[4] != 6 || p[5] != 4 {
		return ErrMalformed
	}
	m.Kind = KindARP
	m.Op = binary.BigEndian.Uint16(p[6:])
	m.SHA = [6]byte(p[8:14])
	m.SPA = netip.AddrFrom4([4]byte(p[14:18]))
	m.THA = [6]byte(p[18:24])
	m.TPA = netip.AddrFrom4([4]byte(p[24:28]))
	return nil
}

func parseND(p []byte, m *NeighMessage) error {
	if len(p) < 40 || p[0]>>4 != 6 || p[6] != protoICMPv6 {
		return ErrNotNeigh
	}
	n := int(binary.BigEndian.Uint16(p[4:]))
	msg := p[40:]
	if n > len(msg) {
		if len(msg) >= 1 && (msg[0] == icmpv6NS || msg[0] == icmpv6NA) {
			return ErrMalformed
		}
		return ErrNotNeigh
	}
	msg = msg[:n] // what follows is the Ethernet padding
	if len(msg) < 1 || (msg[0] != icmpv6NS && msg[0] != icmpv6NA) {
		return ErrNotNeigh
	}
	if len(msg) < 24 || msg[1] != 0 || p[7] != 255 {
		return ErrMalformed
	}
	if icmpv6Checksum(p[8:24], p[24:40], msg) != 0 {
		return ErrChecksum
	}
	k := KindNeighSolicit
	if msg[0] == icmpv6NA {
		k = KindNeighAdvert
	}
	var sha, tha [6]byte
	var seenS, seenT bool
	for opts := msg[24:]; len(opts) > 0; {
		if len(opts) < 8 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return ErrMalformed
		}
		l := int(opts[1]) * 8
		switch {
		case opts[0] == ndOptSLL && l == 8:
			if seenS {
				return ErrMalformed
			}
			sha, seenS = [6]byte(opts[2:8]), true
		case opts[0] == ndOptTLL && l == 8:
			if seenT {
				return ErrMalformed
			}
			tha, seenT = [6]byte(opts[2:8]), true
		}
		opts = opts[l:]
	}
	m.Kind = k
	m.SHA, m.THA = sha, tha
	m.SPA = netip.AddrFrom16([16]byte(p[8:24]))
	m.TPA = netip.AddrFrom16([16]byte(p[24:40]))
	m.Target = netip.AddrFrom16([16]byte(msg[8:24]))
	return nil
}

// Learnt returns the binding a message teaches, as Open vSwitch's tunnel
// neighbour snooping takes it: an ARP reply, or a gratuitous ARP (sender
// and target protocol addresses equal), binds the sender's address to
// its hardware address; a neighbour advertisement with a target
// link-layer address option binds the target to it. Anything else, or
// a zero hardware address, teaches nothing.
func (m *NeighMessage) Learnt() (netip.Addr, [6]byte, bool) {
	switch m.Kind {
	case KindARP:
		if (m.Op == arpReply || m.SPA == m.TPA) && m.SHA != [6]byte{} {
			return m.SPA, m.SHA, true
		}
	case KindNeighAdvert:
		if m.THA != [6]byte{} {
			return m.Target, m.THA, true
		}
	}
	return netip.Addr{}, [6]byte{}, false
}

// Snoop learns into the cache what a frame received on dev teaches (see
// NeighMessage.Learnt), and reports whether it taught anything. A frame
// that is not ARP or neighbour discovery is ErrNotNeigh; a malformed one
// is ErrMalformed or ErrChecksum and teaches nothing. m is the caller's
// reusable decoding space; Snoop allocates only when the entry is new or
// changed.
func (c *NeighCache) Snoop(dev string, frame []byte, m *NeighMessage) (bool, error) {
	if err := ParseNeigh(frame, m); err != nil {
		return false, err
	}
	ip, mac, ok := m.Learnt()
	if !ok {
		return false, nil
	}
	c.Set(dev, ip, mac)
	return true, nil
}
