// Package flow is ovsxdp's flow layer: the packet key, matches and masks,
// the OpenFlow-style rule table, the caches in front of it (exact-match cache
// and megaflow classifier), actions and their execution on frame bytes, and
// the ovs-ofctl text syntax.
package flow

import (
	"math/bits"
	"unsafe"
)

// KeyWords is the size of a Key in 64-bit words.
const KeyWords = 43

// Key is the flow key of one packet: every header field a rule can match,
// extracted from the frame bytes (see Extract). It is fixed-size and
// comparable, and its memory is laid out without implicit padding so that it
// can be masked and hashed one 64-bit word at a time (Words), as OVS does with
// struct flow.
//
// Field conventions follow OVS, so that matches and formatting agree with it:
// multi-byte numbers are stored in host order as numbers (10.0.0.1 is
// 0x0a000001); ARP's spa/tpa live in NwSrc/NwDst and its opcode in NwProto;
// ICMP and ICMPv6 type/code live in TpSrc/TpDst; ND's source and target
// link-layer options live in ArpSha/ArpTha.
//
// The fields are ordered by size, not by layer, so that none needs padding.
type Key struct {
	// Metadata and Regs are OpenFlow pipeline state (metadata, reg0-reg15,
	// which xreg0-xreg7 and xxreg0-xxreg3 overlay). They are zero when a
	// packet arrives and only translation changes them; they are never in
	// a megaflow's mask.
	Metadata uint64
	Regs     [NumRegs]uint32

	InPort    uint32 // ingress OpenFlow port number
	NwSrc     uint32 // IPv4 source, or ARP spa
	NwDst     uint32 // IPv4 destination, or ARP tpa
	IPv6Label uint32 // IPv6 flow label (low 20 bits)

	// Tunnel metadata (OVS flow_tnl): zero unless the packet arrived
	// through a tunnel port, which fills it from the outer headers it
	// removed; set_tunnel and set_field change it for a tunnel output.
	// TunSrc/TunDst (IPv4) or TunIPv6Src/TunIPv6Dst (IPv6) are the outer
	// addresses; TunFlags holds TunFlag* bits.
	TunID      uint64 // tun_id: the VNI in the low 24 bits for VXLAN and Geneve
	TunSrc     uint32 // tun_src
	TunDst     uint32 // tun_dst
	TunIPv6Src [16]byte
	TunIPv6Dst [16]byte
	TunFlags   uint16 // tun_flags
	TunTOS     uint8  // tun_tos: outer IPv4 TOS or IPv6 traffic class
	TunTTL     uint8  // tun_ttl: outer IPv4 TTL or IPv6 hop limit

	IPv6Src  [16]byte
	IPv6Dst  [16]byte
	NdTarget [16]byte // ICMPv6 neighbour solicitation/advertisement target

	DlDst  [6]byte
	DlSrc  [6]byte
	ArpSha [6]byte // ARP sha, or ND source link-layer address option
	ArpTha [6]byte // ARP tha, or ND target link-layer address option

	DlType uint16 // Ethertype after any VLAN tags (OVS dl_type)
	// VLANs are the outer (index 0) and inner VLAN tags. A TCI with
	// VLANPresent set means the tag exists (OVS's vlan_tci convention: the
	// CFI/DEI bit position is reused as "present").
	VLANs [2]VLAN

	TpSrc    uint16 // TCP/UDP/SCTP source port; ICMP/ICMPv6 type
	TpDst    uint16 // TCP/UDP/SCTP destination port; ICMP/ICMPv6 code
	TcpFlags uint16 // low 12 bits of the TCP flags

	NwProto uint8 // IP protocol / IPv6 next header after extensions; ARP opcode (low 8 bits)
	NwTos   uint8 // DSCP (high 6 bits) and ECN (low 2 bits)
	NwTTL   uint8 // IPv4 TTL or IPv6 hop limit
	NwFrag  uint8 // FragAny, FragLater

	PktMark uint32 // pkt_mark: 0 on arrival; set_field may change it

	// ConjID is conj_id: 0 on every packet. Only the classifier sets it,
	// for the lookup that follows a conjunctive match (see conj.go); it is
	// never in a megaflow's mask.
	ConjID uint32

	// RecircID is the datapath's recirculation id (OVS recirc_id): 0 when
	// a packet arrives, and the id of the recirculation a ct(table=T)
	// action started when the packet comes back for its second pass.
	RecircID uint32

	// Connection tracking state (see ct.go): zero until a ct action runs
	// (ct_state has no CtStateTracked bit then), cleared by ct_clear.
	// CtNwSrc/CtNwDst (IPv4) or CtIPv6Src/CtIPv6Dst (IPv6), CtNwProto and
	// CtTpSrc/CtTpDst are the connection's original-direction tuple
	// (ct_nw_src, ct_ipv6_src, ct_nw_proto, ct_tp_src, ...).
	CtLabel   [16]byte // ct_label, a 128-bit number stored big-endian
	CtIPv6Src [16]byte
	CtIPv6Dst [16]byte
	CtNwSrc   uint32
	CtNwDst   uint32
	CtMark    uint32
	CtZone    uint16
	CtTpSrc   uint16
	CtTpDst   uint16
	CtState   uint8 // CtState* bits
	CtNwProto uint8

	// DpHash is the datapath's hash of the packet (OVS dp_hash): 0 when a
	// packet arrives, and what a hash action computed (never 0: see
	// DpHashOf) in the passes after it. A dp_hash select group's
	// recirculated pass picks its bucket from its low bits.
	DpHash uint32
	_      uint32 // keeps TunMeta on a word boundary

	// Geneve options that the bridge's TLV map maps to tun_metadata0-63
	// (tunmeta.go): TunMeta holds their values where the map places them,
	// in 4-byte slots; TunMetaPresent holds a 16-bit descriptor for each
	// slot where a present field starts (its index and length).
	TunMeta        [TunMetaSpace]byte
	TunMetaPresent uint64
}

// NumRegs is the number of 32-bit registers (reg0-reg15).
const NumRegs = 16

// VLAN is one 802.1Q or 802.1ad tag as OVS's flow holds it.
type VLAN struct {
	TPID uint16 // 0x8100 or 0x88a8; 0 when absent
	TCI  uint16 // PCP(3) | VLANPresent(1) | VID(12)
}

// VLAN TCI bits.
const (
	VLANPresent = 0x1000
	VLANVIDMask = 0x0fff
	VLANPCPMask = 0xe000
)

// NwFrag bits, as OVS's FLOW_NW_FRAG_*.
const (
	FragAny   = 1 << 0 // the packet is a fragment (first or later)
	FragLater = 1 << 1 // the packet is a fragment with a non-zero offset
)

// Ethertypes that the flow layer understands.
const (
	EthTypeIPv4  = 0x0800
	EthTypeARP   = 0x0806
	EthTypeRARP  = 0x8035
	EthTypeVLAN  = 0x8100
	EthTypeQinQ  = 0x88a8
	EthTypeIPv6  = 0x86dd
	EthTypeNone  = 0x05ff // OVS's FLOW_DL_TYPE_NONE: an 802.3 frame without SNAP
	EthTypeMinTy = 0x0600 // smallest value that is an Ethertype rather than an 802.3 length
)

// IP protocol numbers that the flow layer understands.
const (
	IPProtoICMP   = 1
	IPProtoTCP    = 6
	IPProtoUDP    = 17
	IPProtoICMPv6 = 58
	IPProtoSCTP   = 132
)

// Words views the key as 64-bit words for masking, comparing and hashing.
// The view aliases k.
func (k *Key) Words() *[KeyWords]uint64 {
	return (*[KeyWords]uint64)(unsafe.Pointer(k))
}

// Masked stores k & mask into dst.
func (k *Key) Masked(mask *Key, dst *Key) {
	a, m, d := k.Words(), mask.Words(), dst.Words()
	for i := range a {
		d[i] = a[i] & m[i]
	}
}

// Hash returns a 64-bit hash of the whole key.
func (k *Key) Hash() uint64 {
	w := k.Words()
	h := uint64(hashSeed)
	for i := range w {
		h = mixWord(h, w[i])
	}
	return finishHash(h)
}

// HashMasked returns the hash of k & mask without building the masked key.
// It equals the Hash of the masked key.
func (k *Key) HashMasked(mask *Key) uint64 {
	w, m := k.Words(), mask.Words()
	h := uint64(hashSeed)
	for i := range w {
		h = mixWord(h, w[i]&m[i])
	}
	return finishHash(h)
}

const hashSeed = 0x9e3779b97f4a7c15

func mixWord(h, w uint64) uint64 {
	hi, lo := bits.Mul64(h^w, 0xbf58476d1ce4e5b9)
	return hi ^ lo
}

func finishHash(h uint64) uint64 {
	h ^= h >> 31
	h *= 0x94d049bb133111eb
	h ^= h >> 29
	return h
}

// Offsets records where the layers of a frame start, as found by Extract, so
// that actions can edit headers without parsing the frame again. A layer that
// is absent (or that extraction stopped before) has offset NoOffset.
type Offsets struct {
	L3 uint16 // first byte after the Ethernet header and VLAN tags
	L4 uint16 // first byte of the TCP/UDP/SCTP/ICMP/ICMPv6 header (after IPv6 extension headers)
}

// NoOffset marks an absent layer in Offsets.
const NoOffset = 0xffff
