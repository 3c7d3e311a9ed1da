// Package tunnel encapsulates and decapsulates the UDP tunnels Open vSwitch
// users run overlays on: VXLAN (RFC 7348) and Geneve (RFC 8926, with its
// options), over IPv4 and IPv6 underlays.
//
// Encapsulation works as Open vSwitch's userspace datapath pushes a tunnel
// header: the outer Ethernet, IP, UDP and tunnel headers of a port are built
// once (NewEncap) and copied in front of each packet (Encap.Put), which then
// only fills in the lengths, the IPv4 identification, the UDP source port
// (taken from the inner flow's hash, SourcePort, so that the underlay can
// spread flows over its paths) and the checksums.
//
// Decapsulation (Decoder.Decode) validates the outer headers and reports
// what a flow matches on (tun_id, tun_src, tun_dst, tun_tos, tun_ttl,
// tun_flags, the Geneve options) and where the inner frame is. A packet it
// refuses gets a sentinel error that names why, which the datapath counts
// as the drop reason.
//
// Nothing here allocates or keeps a reference to a packet; an Encap and a
// Decoder are immutable and safe for concurrent use.
package tunnel

import (
	"errors"
	"fmt"
)

// Kind is a tunnel protocol.
type Kind uint8

// The tunnel protocols.
const (
	VXLAN  Kind = iota + 1 // RFC 7348
	Geneve                 // RFC 8926
)

// String returns the kind as Open vSwitch names the port type.
func (k Kind) String() string {
	switch k {
	case VXLAN:
		return "vxlan"
	case Geneve:
		return "geneve"
	}
	return fmt.Sprintf("tunnel(%d)", uint8(k))
}

// DefaultPort returns the kind's IANA-assigned UDP destination port, which
// Open vSwitch uses when a port has no dst_port option.
func (k Kind) DefaultPort() uint16 {
	switch k {
	case VXLAN:
		return 4789
	case Geneve:
		return 6081
	}
	return 0
}

// ParseKind returns the kind that Open vSwitch's port type s names.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "vxlan":
		return VXLAN, nil
	case "geneve":
		return Geneve, nil
	}
	return 0, fmt.Errorf("tunnel type %q: %w", s, ErrKind)
}

// Header sizes.
const (
	EthLen    = 14
	IPv4Len   = 20 // without options
	IPv6Len   = 40
	UDPLen    = 8
	VXLANLen  = 8
	GeneveLen = 8 // without options

	// MaxGeneveOptions is the largest Geneve options area: the 6-bit
	// Opt Len field counts 4-byte words.
	MaxGeneveOptions = 63 * 4
	// MaxHeaderLen is the longest outer header Encap pushes: Ethernet,
	// IPv6, UDP, Geneve and a full options area.
	MaxHeaderLen = EthLen + IPv6Len + UDPLen + GeneveLen + MaxGeneveOptions
)

// The UDP source port range that SourcePort spreads flows over: Open
// vSwitch's default (the Linux ephemeral port range).
const (
	SrcPortMin = 32768
	SrcPortMax = 61000 // exclusive
)

// SourcePort maps the inner flow's hash onto [SrcPortMin, SrcPortMax), by
// multiplication rather than modulo so that every bit of the hash counts.
// Packets of one flow get one source port; different flows spread over the
// range, and ECMP in the underlay with them.
func SourcePort(hash uint32) uint16 {
	return uint16(SrcPortMin + uint64(hash)*(SrcPortMax-SrcPortMin)>>32)
}

// Geneve header constants.
const (
	geneveVersion   = 0
	geneveOAM       = 0x80 // second byte: O bit
	geneveCritical  = 0x40 // second byte: C bit
	geneveReserved  = 0x3f // second byte: reserved bits
	geneveOptHdrLen = 4
	// EthTypeTEB is Transparent Ethernet Bridging, the Geneve protocol
	// type of an Ethernet payload, the only one Open vSwitch's ports carry.
	EthTypeTEB = 0x6558
	// GeneveOptCritical is the critical bit in an option's type.
	GeneveOptCritical = 0x80
)

// vxlanFlagI is the VXLAN "I" flag: the VNI is valid. RFC 7348 sets no
// other flag.
const vxlanFlagI = 0x08000000

// Sentinel errors. Decode returns them unwrapped (no allocation on the
// packet path); the configuration calls wrap them with context.
var (
	// ErrKind: a tunnel type other than vxlan or geneve.
	ErrKind = errors.New("unknown tunnel type")
	// ErrConfig: an encapsulation that cannot be built (see NewEncap).
	ErrConfig = errors.New("bad tunnel configuration")
	// ErrShortBuffer: Put was given fewer bytes than the header needs.
	ErrShortBuffer = errors.New("no room for the tunnel header")
	// ErrTooBig: the encapsulated packet would not fit the outer IP or
	// UDP length field.
	ErrTooBig = errors.New("encapsulated packet too big")

	// ErrTruncated: the frame ends inside an outer header.
	ErrTruncated = errors.New("truncated outer header")
	// ErrNotTunnel: the frame is not IP/UDP to the tunnel's port.
	ErrNotTunnel = errors.New("not a tunnel packet")
	// ErrBadIPHeader: a malformed outer IP header (version, header
	// length, total length).
	ErrBadIPHeader = errors.New("malformed outer ip header")
	// ErrIPChecksum: the outer IPv4 header checksum is wrong.
	ErrIPChecksum = errors.New("bad outer ipv4 header checksum")
	// ErrFragment: the outer packet is an IP fragment (not reassembled
	// for tunnels, as in Open vSwitch).
	ErrFragment = errors.New("fragmented outer packet")
	// ErrUDPLength: the outer UDP length disagrees with the IP length.
	ErrUDPLength = errors.New("bad outer udp length")
	// ErrUDPChecksum: a non-zero outer UDP checksum is wrong.
	ErrUDPChecksum = errors.New("bad outer udp checksum")
	// ErrVXLANFlags: a VXLAN header without the I flag, or with a
	// reserved bit set.
	ErrVXLANFlags = errors.New("bad vxlan flags")
	// ErrGeneveVersion: a Geneve version other than 0.
	ErrGeneveVersion = errors.New("unsupported geneve version")
	// ErrGeneveOptLen: Geneve options whose lengths overrun the options
	// area or the packet, or do not fill the area exactly.
	ErrGeneveOptLen = errors.New("bad geneve option length")
	// ErrGeneveProto: a Geneve payload that is not Ethernet.
	ErrGeneveProto = errors.New("geneve payload is not ethernet")
	// ErrInnerTruncated: the inner frame is shorter than an Ethernet
	// header.
	ErrInnerTruncated = errors.New("truncated inner frame")
)
