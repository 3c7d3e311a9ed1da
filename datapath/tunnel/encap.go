package tunnel

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/ovsxdp/ovsxdp/flow"
)

// Config is what a tunnel port's encapsulation needs: the outer addresses
// (the MACs from the route's next hop and its neighbour entry) and Open
// vSwitch's port options.
type Config struct {
	Kind Kind

	EthDst, EthSrc [6]byte
	// Src and Dst are the outer IP addresses (local_ip, remote_ip), both
	// IPv4 or both IPv6.
	Src, Dst netip.Addr
	// DstPort is the UDP destination port (dst_port); 0 means the kind's
	// default.
	DstPort uint16

	// VNI is the 24-bit virtual network identifier (the key option, or
	// the low 24 bits of tun_id).
	VNI uint32
	// TOS is the outer IPv4 TOS or IPv6 traffic class (tos).
	TOS uint8
	// TTL is the outer IPv4 TTL or IPv6 hop limit (ttl); 0 means 64, as
	// in Open vSwitch.
	TTL uint8
	// DF sets the IPv4 don't-fragment bit (df_default, true in Open
	// vSwitch). IPv6 routers never fragment, so it has no IPv6 header bit.
	DF bool
	// Csum computes the outer UDP checksum (csum); without it the
	// checksum is zero, which RFC 768 allows over IPv4 and RFC 6935 for
	// tunnels over IPv6.
	Csum bool

	// OAM and Critical are the Geneve O and C flags; Options are the
	// Geneve option TLVs, already encoded (class, type, length, data),
	// at most MaxGeneveOptions bytes. VXLAN has neither.
	OAM, Critical bool
	Options       []byte
}

// DefaultTTL is the outer TTL when a port sets none, as in Open vSwitch.
const DefaultTTL = 64

// Encap is a tunnel port's prebuilt outer header. It is immutable: one
// Encap serves every poll thread.
type Encap struct {
	kind  Kind
	ipv6  bool
	csum  bool
	hlen  int // outer header length, Ethernet to the end of the tunnel header
	udp   int // offset of the UDP header
	hdr   [MaxHeaderLen]byte
	ipSum uint64 // IPv4: ones' sum of the header without total length, id and checksum
	udpPs uint64 // ones' sum of the pseudo-header without the UDP length
}

// NewEncap checks c and builds its header.
func NewEncap(c Config) (*Encap, error) {
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("%s encapsulation to %s: %w", c.Kind, c.Dst, err)
	}
	e := &Encap{kind: c.Kind, ipv6: c.Dst.Is6(), csum: c.Csum}
	h := e.hdr[:]
	copy(h[0:6], c.EthDst[:])
	copy(h[6:12], c.EthSrc[:])
	ttl := c.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	ip := h[EthLen:]
	if e.ipv6 {
		binary.BigEndian.PutUint16(h[12:], flow.EthTypeIPv6)
		binary.BigEndian.PutUint32(ip[0:], 6<<28|uint32(c.TOS)<<20)
		ip[6] = flow.IPProtoUDP
		ip[7] = ttl
		src, dst := c.Src.As16(), c.Dst.As16()
		copy(ip[8:24], src[:])
		copy(ip[24:40], dst[:])
		e.udp = EthLen + IPv6Len
		e.udpPs = flow.OnesSum(0, ip[8:40]) + flow.IPProtoUDP
	} else {
		binary.BigEndian.PutUint16(h[12:], flow.EthTypeIPv4)
		ip[0] = 0x45
		ip[1] = c.TOS
		if c.DF {
			ip[6] = 0x40
		}
		ip[8] = ttl
		ip[9] = flow.IPProtoUDP
		src, dst := c.Src.As4(), c.Dst.As4()
		copy(ip[12:16], src[:])
		copy(ip[16:20], dst[:])
		e.udp = EthLen + IPv4Len
		e.ipSum = flow.OnesSum(0, ip[:IPv4Len])
		e.udpPs = flow.OnesSum(0, ip[12:20]) + flow.IPProtoUDP
	}
	udp := h[e.udp:]
	port := c.DstPort
	if port == 0 {
		port = c.Kind.DefaultPort()
	}
	binary.BigEndian.PutUint16(udp[2:], port)
	tun := udp[UDPLen:]
	switch c.Kind {
	case VXLAN:
		binary.BigEndian.PutUint32(tun[0:], vxlanFlagI)
		binary.BigEndian.PutUint32(tun[4:], c.VNI<<8)
		e.hlen = e.udp + UDPLen + VXLANLen
	case Geneve:
		tun[0] = geneveVersion<<6 | byte(len(c.Options)/4)
		if c.OAM {
			tun[1] |= geneveOAM
		}
		if c.Critical || hasCritical(c.Options) {
			tun[1] |= geneveCritical
		}
		binary.BigEndian.PutUint16(tun[2:], EthTypeTEB)
		binary.BigEndian.PutUint32(tun[4:], c.VNI<<8)
		copy(tun[GeneveLen:], c.Options)
		e.hlen = e.udp + UDPLen + GeneveLen + len(c.Options)
	}
	return e, nil
}

func (c *Config) check() error {
	switch c.Kind {
	case VXLAN, Geneve:
	default:
		return ErrKind
	}
	switch {
	case !c.Src.IsValid() || !c.Dst.IsValid():
		return fmt.Errorf("outer source and destination addresses are required: %w", ErrConfig)
	case c.Src.Is4() != c.Dst.Is4() || c.Src.Is4In6() || c.Dst.Is4In6():
		return fmt.Errorf("outer source %s and destination %s are not of one family: %w", c.Src, c.Dst, ErrConfig)
	case c.Src.Zone() != "" || c.Dst.Zone() != "":
		return fmt.Errorf("outer addresses take no zone: %w", ErrConfig)
	case c.VNI > 0xffffff:
		return fmt.Errorf("vni %d does not fit 24 bits: %w", c.VNI, ErrConfig)
	}
	if c.Kind == VXLAN {
		if c.OAM || c.Critical || len(c.Options) > 0 {
			return fmt.Errorf("vxlan has no options or oam and critical flags: %w", ErrConfig)
		}
		return nil
	}
	if len(c.Options) > MaxGeneveOptions || len(c.Options)%4 != 0 {
		return fmt.Errorf("geneve options of %d bytes (a multiple of 4 up to %d): %w", len(c.Options), MaxGeneveOptions, ErrConfig)
	}
	if !validOptions(c.Options) {
		return fmt.Errorf("geneve options: %w", ErrGeneveOptLen)
	}
	return nil
}

// validOptions reports whether opts is a sequence of whole Geneve option
// TLVs that fills it exactly.
func validOptions(opts []byte) bool {
	for len(opts) > 0 {
		if len(opts) < geneveOptHdrLen {
			return false
		}
		n := geneveOptHdrLen + int(opts[3]&0x1f)*4
		if n > len(opts) {
			return false
		}
		opts = opts[n:]
	}
	return true
}

// hasCritical reports whether one of the (valid) options is critical: the
// Geneve header's C bit must then be set.
func hasCritical(opts []byte) bool {
	for len(opts) >= geneveOptHdrLen {
		if opts[2]&GeneveOptCritical != 0 {
			return true
		}
		opts = opts[geneveOptHdrLen+int(opts[3]&0x1f)*4:]
	}
	return false
}

// Kind returns the encapsulation's protocol.
func (e *Encap) Kind() Kind { return e.kind }

// HeaderLen returns the length of the outer headers Put writes.
func (e *Encap) HeaderLen() int { return e.hlen }

// Put encapsulates the inner Ethernet frame that follows HeaderLen bytes of
// room in pkt: it writes the outer headers into pkt[:HeaderLen()], with
// srcPort as the UDP source port (SourcePort of the inner flow's hash) and
// ipID as the IPv4 identification (ignored over IPv6), and computes the
// checksums. pkt is the whole outer frame.
func (e *Encap) Put(pkt []byte, srcPort, ipID uint16) error {
	n := e.hlen
	if len(pkt) < n {
		return ErrShortBuffer
	}
	udpLen := len(pkt) - e.udp
	if udpLen > 0xffff || !e.ipv6 && len(pkt)-EthLen > 0xffff {
		return ErrTooBig
	}
	copy(pkt[:n], e.hdr[:n])
	ip := pkt[EthLen:]
	if e.ipv6 {
		binary.BigEndian.PutUint16(ip[4:], uint16(udpLen))
	} else {
		total := uint16(len(pkt) - EthLen)
		binary.BigEndian.PutUint16(ip[2:], total)
		binary.BigEndian.PutUint16(ip[4:], ipID)
		sum := e.ipSum + uint64(total) + uint64(ipID)
		binary.BigEndian.PutUint16(ip[10:], ^flow.FoldSum(sum))
	}
	udp := pkt[e.udp:]
	binary.BigEndian.PutUint16(udp[0:], srcPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	if e.csum {
		// The UDP length counts twice: in the pseudo-header and in the
		// UDP header, which OnesSum reads with the payload.
		sum := flow.OnesSum(e.udpPs+uint64(udpLen), udp)
		c := ^flow.FoldSum(sum)
		if c == 0 {
			c = 0xffff // RFC 768: a computed zero is sent as all ones
		}
		binary.BigEndian.PutUint16(udp[6:], c)
	}
	return nil
}

// Append appends the encapsulation of the inner Ethernet frame to dst and
// returns the extended slice. It allocates only when dst lacks capacity.
func (e *Encap) Append(dst, inner []byte, srcPort, ipID uint16) ([]byte, error) {
	start := len(dst)
	need := e.hlen + len(inner)
	if cap(dst)-start < need {
		grown := make([]byte, start, start+need)
		copy(grown, dst)
		dst = grown
	}
	dst = dst[:start+need]
	copy(dst[start+e.hlen:], inner)
	if err := e.Put(dst[start:], srcPort, ipID); err != nil {
		return dst[:start], err
	}
	return dst, nil
}
