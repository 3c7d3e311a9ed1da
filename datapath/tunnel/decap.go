package tunnel

import (
	"encoding/binary"
	"net/netip"

	"github.com/ovsxdp/ovsxdp/flow"
)

// Header is what Decode found in a tunnel packet's outer headers: the
// tunnel metadata a flow matches on, and where the inner frame is. Its
// slices alias the packet.
type Header struct {
	Kind Kind

	EthDst, EthSrc [6]byte
	Src, Dst       netip.Addr // outer IP addresses (tun_src, tun_dst or tun_ipv6_*)
	TOS            uint8      // outer IPv4 TOS or IPv6 traffic class (tun_tos)
	TTL            uint8      // outer IPv4 TTL or IPv6 hop limit (tun_ttl)
	DF             bool       // IPv4 don't-fragment bit (tun_flags df)
	Csum           bool       // the outer UDP checksum was present, and right (tun_flags csum)

	SrcPort, DstPort uint16 // outer UDP ports (tp_src, tp_dst of the tunnel)

	VNI uint32 // 24-bit virtual network identifier (tun_id)

	// OAM and Critical are the Geneve O and C flags; Options the Geneve
	// option TLVs (validated: whole options that fill the area), and
	// HasOptions whether there were any, which stays when Options, which
	// aliases the packet, is dropped.
	OAM, Critical bool
	Options       []byte
	HasOptions    bool

	// TunMeta and TunMetaPresent are the Options that the bridge's TLV
	// map maps to tun_metadata fields, as a key holds them (MapOptions).
	TunMeta        [flow.TunMetaSpace]byte
	TunMetaPresent uint64

	// Inner is the inner Ethernet frame, at offset InnerOff of the packet.
	Inner    []byte
	InnerOff int
}

// Decoder decapsulates the packets of one tunnel port: its kind and UDP
// destination port.
type Decoder struct {
	Kind    Kind
	DstPort uint16 // 0: the kind's default
}

// Decode validates pkt, an Ethernet frame from the underlay, as a packet of
// d's tunnel and fills h. On error h holds what was decoded before the
// fault; the error is one of the package's sentinels, unwrapped, so that
// the caller can count it as a drop reason without allocating.
//
// The checks are Open vSwitch's: IPv4 header checksum, no outer fragments,
// a non-zero UDP checksum verified, lengths consistent, VXLAN's I flag set
// and its reserved bits clear, Geneve version 0 with an Ethernet payload
// and option lengths that add up. Like Linux, it also refuses an outer IPv6
// header with an IPv4-mapped address.
func (d Decoder) Decode(pkt []byte, h *Header) error {
	*h = Header{Kind: d.Kind}
	if len(pkt) < EthLen {
		return ErrTruncated
	}
	copy(h.EthDst[:], pkt[0:6])
	copy(h.EthSrc[:], pkt[6:12])
	var (
		l4    []byte // from the UDP header to the end of the IP packet
		l4off int    // offset of the UDP header in pkt
		psum  uint64 // ones' sum of the pseudo-header without the UDP length
	)
	switch binary.BigEndian.Uint16(pkt[12:]) {
	case flow.EthTypeIPv4:
		ip := pkt[EthLen:]
		if len(ip) < IPv4Len {
			return ErrTruncated
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ip[0]>>4 != 4 || ihl < IPv4Len {
			return ErrBadIPHeader
		}
		if len(ip) < ihl {
			return ErrTruncated
		}
		if total < ihl || total > len(ip) {
			return ErrBadIPHeader
		}
		if flow.FoldSum(flow.OnesSum(0, ip[:ihl])) != 0xffff {
			return ErrIPChecksum
		}
		frag := binary.BigEndian.Uint16(ip[6:])
		if frag&0x3fff != 0 { // MF or an offset
			return ErrFragment
		}
		if ip[9] != flow.IPProtoUDP {
			return ErrNotTunnel
		}
		h.DF = frag&0x4000 != 0
		h.TOS, h.TTL = ip[1], ip[8]
		h.Src = netip.AddrFrom4([4]byte(ip[12:16]))
		h.Dst = netip.AddrFrom4([4]byte(ip[16:20]))
		psum = flow.OnesSum(0, ip[12:20]) + flow.IPProtoUDP
		l4, l4off = ip[ihl:total], EthLen+ihl
	case flow.EthTypeIPv6:
		ip := pkt[EthLen:]
		if len(ip) < IPv6Len {
			return ErrTruncated
		}
		if ip[0]>>4 != 6 {
			return ErrBadIPHeader
		}
		payload := int(binary.BigEndian.Uint16(ip[4:]))
		if payload > len(ip)-IPv6Len {
			return ErrBadIPHeader
		}
		if ip[6] != flow.IPProtoUDP {
			return ErrNotTunnel
		}
		h.TOS = byte(binary.BigEndian.Uint16(ip[0:]) >> 4)
		h.TTL = ip[7]
		h.Src = netip.AddrFrom16([16]byte(ip[8:24]))
		h.Dst = netip.AddrFrom16([16]byte(ip[24:40]))
		if h.Src.Is4In6() || h.Dst.Is4In6() {
			// An IPv4-mapped address never travels in an IPv6
			// header (Linux drops such packets on receipt), and as
			// tun_ipv6_src or tun_ipv6_dst it would read as an
			// IPv4 tunnel endpoint.
			return ErrBadIPHeader
		}
		psum = flow.OnesSum(0, ip[8:40]) + flow.IPProtoUDP
		l4, l4off = ip[IPv6Len:IPv6Len+payload], EthLen+IPv6Len
	default:
		return ErrNotTunnel
	}

	if len(l4) < UDPLen {
		return ErrTruncated
	}
	h.SrcPort = binary.BigEndian.Uint16(l4[0:])
	h.DstPort = binary.BigEndian.Uint16(l4[2:])
	port := d.DstPort
	if port == 0 {
		port = d.Kind.DefaultPort()
	}
	if h.DstPort != port {
		return ErrNotTunnel
	}
	udpLen := int(binary.BigEndian.Uint16(l4[4:]))
	if udpLen < UDPLen || udpLen > len(l4) {
		return ErrUDPLength
	}
	l4 = l4[:udpLen]
	if binary.BigEndian.Uint16(l4[6:]) != 0 {
		if flow.FoldSum(flow.OnesSum(psum+uint64(udpLen), l4)) != 0xffff {
			return ErrUDPChecksum
		}
		h.Csum = true
	}
	tun := l4[UDPLen:]
	off := l4off + UDPLen // offset of the tunnel header in pkt

	switch d.Kind {
	case VXLAN:
		if len(tun) < VXLANLen {
			return ErrTruncated
		}
		if binary.BigEndian.Uint32(tun[0:]) != vxlanFlagI || tun[7] != 0 {
			return ErrVXLANFlags
		}
		h.VNI = binary.BigEndian.Uint32(tun[4:]) >> 8
		tun = tun[VXLANLen:]
		off += VXLANLen
	case Geneve:
		if len(tun) < GeneveLen {
			return ErrTruncated
		}
		if tun[0]>>6 != geneveVersion {
			return ErrGeneveVersion
		}
		optLen := int(tun[0]&0x3f) * 4
		h.OAM = tun[1]&geneveOAM != 0
		h.Critical = tun[1]&geneveCritical != 0
		if binary.BigEndian.Uint16(tun[2:]) != EthTypeTEB {
			return ErrGeneveProto
		}
		h.VNI = binary.BigEndian.Uint32(tun[4:]) >> 8
		if GeneveLen+optLen > len(tun) {
			return ErrGeneveOptLen
		}
		opts := tun[GeneveLen : GeneveLen+optLen]
		if !validOptions(opts) {
			return ErrGeneveOptLen
		}
		h.Options, h.HasOptions = opts, len(opts) > 0
		tun = tun[GeneveLen+optLen:]
		off += GeneveLen + optLen
	default:
		return ErrKind
	}
	if len(tun) < EthLen {
		return ErrInnerTruncated
	}
	h.Inner = tun
	h.InnerOff = off
	return nil
}
