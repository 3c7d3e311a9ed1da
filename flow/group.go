package flow

import (
	"errors"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// This file is the OpenFlow group model: groups and their buckets, the
// liveness that fast_failover (and select) groups consult, and how a
// select group picks its bucket. Translation runs groups (xlate_group.go),
// the Table holds them (group_table.go), parse_group.go and
// format_group.go are their ovs-ofctl text.

// GroupType is an OpenFlow group type; the values are OpenFlow's.
type GroupType uint8

// The group types.
const (
	GroupAll          GroupType = iota // every bucket, each on a copy of the packet
	GroupSelect                        // one bucket, chosen by a hash of the packet
	GroupIndirect                      // the one bucket
	GroupFastFailover                  // the first live bucket
)

// String returns the type as ovs-ofctl prints it.
func (t GroupType) String() string {
	switch t {
	case GroupAll:
		return "all"
	case GroupSelect:
		return "select"
	case GroupIndirect:
		return "indirect"
	case GroupFastFailover:
		return "ff"
	}
	return "unknown"
}

// Group ids and bucket ids with a meaning of their own (OpenFlow's).
const (
	GroupMax     = 0xffffff00 // the largest group id a group may have
	GroupAllID   = 0xfffffffc // del-groups: every group
	GroupAny     = 0xffffffff // watch_group: none
	BucketMax    = 0xffffff00 // the largest bucket id
	bucketIDNone = 0xffffffff // a bucket without a bucket_id (one is assigned)
)

// Sentinel errors of group changes and of flows that name groups.
var (
	// ErrGroupExists: add-group of a group id that is in use
	// (OFPGMFC_GROUP_EXISTS).
	ErrGroupExists = errors.New("group already exists (OFPGMFC_GROUP_EXISTS)")
	// ErrUnknownGroup: mod-group of a group that does not exist
	// (OFPGMFC_UNKNOWN_GROUP).
	ErrUnknownGroup = errors.New("group does not exist (OFPGMFC_UNKNOWN_GROUP)")
	// ErrBadOutGroup: a flow whose group action names a group that does
	// not exist (OFPBAC_BAD_OUT_GROUP).
	ErrBadOutGroup = errors.New("group does not exist (OFPBAC_BAD_OUT_GROUP)")
)

// Bucket is one bucket of a group.
type Bucket struct {
	ID         uint32 // bucket_id; assigned in order when not given
	Weight     uint16 // select groups: the bucket's share (default 1)
	WatchPort  uint32 // the port whose liveness the bucket follows; PortNone for none
	WatchGroup uint32 // the group whose liveness the bucket follows; GroupAny for none
	Actions    []Action
}

// hasLiveness reports whether the bucket watches a port or a group.
func (b *Bucket) hasLiveness() bool { return b.WatchPort != PortNone || b.WatchGroup != GroupAny }

// HashField is one field a select group with selection_method=hash hashes,
// and which of its bits.
type HashField struct {
	Field FieldID
	mask  u128 // in the field's own units; all of its bits when not given
}

// Group is one OpenFlow group as add-group describes it.
type Group struct {
	ID   uint32
	Type GroupType
	// SelectionMethod is "" (Open vSwitch's default hash of the flow),
	// "hash" (a hash of Fields) or "dp_hash" (the datapath's hash of the
	// packet's 5-tuple, as OVN's load balancers ask for).
	SelectionMethod string
	SelectionParam  uint64 // selection_method_param: the hash basis
	Fields          []HashField
	Buckets         []Bucket
}

// equal reports whether g and o are the same group, however their actions
// were written.
func (g *Group) equal(o *Group) bool {
	if g.ID != o.ID || g.Type != o.Type || g.SelectionMethod != o.SelectionMethod ||
		g.SelectionParam != o.SelectionParam || !slices.Equal(g.Fields, o.Fields) || len(g.Buckets) != len(o.Buckets) {
		return false
	}
	for i := range g.Buckets {
		a, b := &g.Buckets[i], &o.Buckets[i]
		if a.ID != b.ID || a.Weight != b.Weight || a.WatchPort != b.WatchPort || a.WatchGroup != b.WatchGroup || !slices.EqualFunc(a.Actions, b.Actions, sameAction) {
			return false
		}
	}
	return true
}

// InstalledGroup is a group in a Table: immutable but for its counters.
type InstalledGroup struct {
	Group
	// Installed is when add-group (or the last mod-group) installed it.
	Installed time.Time
	stats     *groupStats
	// hashMap is the bucket for each value of the low bits of dp_hash
	// (dpHashMap) of a select group that the datapath hashes: one of
	// selection_method=dp_hash, or one without a selection method, which
	// Open vSwitch also hashes in the datapath when its weights fit. It
	// is nil for every other group, and for one of these whose weights
	// need too many values: that group selects in the translation.
	hashMap []uint16
	// hashParam is the hash action's algorithm (upper 32 bits) and basis
	// (lower) for a group with a hashMap: selection_method_param for
	// dp_hash, the symmetric L4 hash with basis 0 for a group without a
	// method.
	hashParam uint64
}

// groupStats are a group's counters and its buckets'.
type groupStats struct {
	packets, bytes atomic.Uint64
	buckets        []bucketStats
}

type bucketStats struct{ packets, bytes atomic.Uint64 }

// Stats returns the group's packet and byte counters and its buckets'.
func (g *InstalledGroup) Stats() (packets, bytes uint64, buckets [][2]uint64) {
	buckets = make([][2]uint64, len(g.stats.buckets))
	for i := range g.stats.buckets {
		buckets[i] = [2]uint64{g.stats.buckets[i].packets.Load(), g.stats.buckets[i].bytes.Load()}
	}
	return g.stats.packets.Load(), g.stats.bytes.Load(), buckets
}

// GroupHit is a group a packet's translation ran, and the bucket it chose
// (-1 for an all or indirect group, which counts on the group alone, as in
// Open vSwitch).
type GroupHit struct {
	Group  *InstalledGroup
	Bucket int
}

// Credit adds packets and bytes to the counters of the group and bucket.
func (h GroupHit) Credit(packets, bytes uint64) {
	s := h.Group.stats
	s.packets.Add(packets)
	s.bytes.Add(bytes)
	if h.Bucket >= 0 && h.Bucket < len(s.buckets) {
		s.buckets[h.Bucket].packets.Add(packets)
		s.buckets[h.Bucket].bytes.Add(bytes)
	}
}

// PortLiveness tells translation whether an OpenFlow port is live: it
// exists and its device can transmit now (registered, running, carrier).
// fast_failover buckets follow it. The datapath implements it from the
// devices' state, which it reads atomically; whenever a port's liveness
// may have changed it calls Table.LivenessChanged, so that megaflows built
// on the old liveness are revalidated.
type PortLiveness interface {
	PortLive(port uint32) bool
}

// maxLivenessDepth bounds how deep watch_group chains are followed.
const maxLivenessDepth = 128

// OVS's hash functions (its portable, non-CRC32 variant), which select
// groups use to pick a bucket: the same hash gives the same buckets.

func hashRot(x uint32, k uint) uint32 { return x<<k | x>>(32-k) }

func mhashAdd(h, data uint32) uint32 {
	if data != 0 {
		data *= 0xcc9e2d51
		data = hashRot(data, 15)
		data *= 0x1b873593
		h ^= data
	}
	h = hashRot(h, 13)
	return h*5 + 0xe6546b64
}

func mhashFinish(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

func hashFinish(h, final uint32) uint32 { return mhashFinish(h ^ final) }

// hashInt is hash_int(x, basis).
func hashInt(x, basis uint32) uint32 { return hashFinish(mhashAdd(mhashAdd(x, 0), basis), 8) }

// hashUint64 is hash_uint64(x).
func hashUint64(x uint64) uint32 {
	return hashFinish(mhashAdd(mhashAdd(0, uint32(x)), uint32(x>>32)), 8)
}

// le32 reads up to 4 bytes as a little-endian word, zero-padded, as a C
// memcpy into a uint32 does on x86.
func le32(b []byte) uint32 {
	var v uint32
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint32(b[i])
	}
	return v
}

// hashBytes is hash_bytes(p, len(p), basis).
func hashBytes(p []byte, basis uint32) uint32 {
	h := basis
	n := len(p)
	for len(p) >= 4 {
		h = mhashAdd(h, le32(p[:4]))
		p = p[4:]
	}
	if len(p) > 0 {
		h = mhashAdd(h, le32(p))
	}
	return hashFinish(h, uint32(n))
}

// jhashBytes is Bob Jenkins's lookup3 hash of p, as Open vSwitch's
// jhash_bytes.
func jhashBytes(p []byte, basis uint32) uint32 {
	a := 0xdeadbeef + uint32(len(p)) + basis
	b, c := a, a
	for len(p) >= 12 {
		a += le32(p[0:4])
		b += le32(p[4:8])
		c += le32(p[8:12])
		a -= c
		a ^= hashRot(c, 4)
		c += b
		b -= a
		b ^= hashRot(a, 6)
		a += c
		c -= b
		c ^= hashRot(b, 8)
		b += a
		a -= c
		a ^= hashRot(c, 16)
		c += b
		b -= a
		b ^= hashRot(a, 19)
		a += c
		c -= b
		c ^= hashRot(b, 4)
		b += a
		p = p[12:]
	}
	if len(p) > 0 {
		var tail [12]byte
		copy(tail[:], p)
		a += le32(tail[0:4])
		b += le32(tail[4:8])
		c += le32(tail[8:12])
		c ^= b
		c -= hashRot(b, 14)
		a ^= c
		a -= hashRot(c, 11)
		b ^= a
		b -= hashRot(a, 25)
		c ^= b
		c -= hashRot(b, 16)
		a ^= c
		a -= hashRot(c, 4)
		b ^= a
		b -= hashRot(a, 14)
		c ^= b
		c -= hashRot(b, 24)
	}
	return c
}

// symmetricL4Hash is Open vSwitch's flow_hash_symmetric_l4 with basis 0:
// the hash a select group without a selection method uses. It is the same
// for both directions of a connection.
func symmetricL4Hash(k *Key) uint32 {
	// The C struct: a 16-byte address union, eth_type, vlan_tci, tp_port
	// (big-endian), the 6-byte XOR of the MACs, ip_proto; 32 bytes with
	// padding.
	var b [32]byte
	for i := range 6 {
		b[22+i] = k.DlSrc[i] ^ k.DlDst[i]
	}
	var tci uint16
	for _, v := range k.VLANs {
		tci ^= v.TCI & VLANVIDMask
	}
	put16 := func(off int, v uint16) { b[off], b[off+1] = byte(v>>8), byte(v) }
	put16(16, k.DlType)
	put16(18, tci)
	l4 := func() {
		b[28] = k.NwProto
		if k.NwProto == IPProtoTCP || k.NwProto == IPProtoSCTP {
			put16(20, k.TpSrc^k.TpDst)
		}
	}
	switch k.DlType {
	case EthTypeIPv4:
		a := k.NwSrc ^ k.NwDst
		b[0], b[1], b[2], b[3] = byte(a>>24), byte(a>>16), byte(a>>8), byte(a)
		l4()
	case EthTypeIPv6:
		for i := range 16 {
			b[i] = k.IPv6Src[i] ^ k.IPv6Dst[i]
		}
		l4()
	}
	return jhashBytes(b[:], 0)
}

// The hash algorithms of selection_method=dp_hash, in the upper 32 bits
// of selection_method_param, as Open vSwitch numbers them
// (OVS_HASH_ALG_*); any other falls back to dpHashL4, as in Open vSwitch.
const (
	dpHashL4    = 0 // the 5-tuple
	dpHashSymL4 = 1 // the symmetric L4 hash, the same both ways
)

// dpHashAlg returns the hash algorithm a dp_hash group's
// selection_method_param names, as Open vSwitch reads it: an unknown one
// is dpHashL4.
func dpHashAlg(param uint64) uint32 {
	if alg := uint32(param >> 32); alg == dpHashSymL4 {
		return alg
	}
	return dpHashL4
}

// DpHashOf is what the datapath action hash (ActHash, with its Value
// param) writes into a packet's dp_hash: the 5-tuple hash (or the
// symmetric L4 hash) of the packet with key k and the basis in param's
// lower 32 bits. It is never 0: 0 is a packet whose hash was not
// computed yet, which a dp_hash group's translation hashes and
// recirculates, so a hash of 0 would recirculate again.
func DpHashOf(k *Key, param uint64) uint32 {
	basis := uint32(param)
	var h uint32
	if dpHashAlg(param) == dpHashSymL4 {
		h = hashInt(symmetricL4Hash(k), basis)
	} else {
		h = l4Hash(k, basis)
	}
	if h == 0 {
		h = 1
	}
	return h
}

// maxDpHashValues is the most hash values a dp_hash group may map to its
// buckets (Open vSwitch's MAX_SELECT_GROUP_HASH_VALUES): a group whose
// weights need more selects as a group without a selection method does.
const maxDpHashValues = 256

// dpHashMap returns the bucket (its index) of each of a dp_hash group's
// hash values, as Open vSwitch's group_setup_dp_hash_table lays them out:
// as many values as a power of two at least 16 and at least the total
// weight over the smallest non-zero weight, dealt one by one by
// Webster's method (each to the bucket with the largest weight /
// divisor, the first such on a tie, whose divisor then grows by 2), so
// that each bucket holds a share of the values near its share of the
// weight and the shares interleave. It returns nil when the group has no
// bucket, no weight, or needs more than maxDpHashValues values.
func dpHashMap(buckets []Bucket) []uint16 {
	var total uint64
	minWeight := uint64(1<<16 - 1)
	for i := range buckets {
		w := uint64(buckets[i].Weight)
		if w > 0 && w < minWeight {
			minWeight = w
		}
		total += w
	}
	if len(buckets) == 0 || len(buckets) > 1<<16 || total == 0 {
		return nil
	}
	slots := (total + minWeight - 1) / minWeight
	n := uint64(16)
	for n < slots {
		n <<= 1
	}
	if n > maxDpHashValues {
		return nil
	}
	divisor := make([]float64, len(buckets))
	value := make([]float64, len(buckets))
	for i := range buckets {
		divisor[i], value[i] = 1, float64(buckets[i].Weight)
	}
	m := make([]uint16, n)
	for h := range m {
		win := 0
		for i := 1; i < len(buckets); i++ {
			if value[i] > value[win] {
				win = i
			}
		}
		divisor[win] += 2
		value[win] = float64(buckets[win].Weight) / divisor[win]
		m[h] = uint16(win)
	}
	return m
}

// l4Hash is the hash of a packet's 5-tuple with basis, in the manner of
// Open vSwitch's flow_hash_5tuple: addresses (IPv4 or IPv6; ARP's too),
// the protocol and, for TCP, UDP and SCTP, the ports; a packet of no IP
// hashes to the basis alone.
func l4Hash(k *Key, basis uint32) uint32 {
	h := basis
	switch k.DlType {
	case EthTypeIPv6:
		for i := 0; i < 16; i += 4 {
			h = mhashAdd(h, le32(k.IPv6Src[i:i+4]))
		}
		for i := 0; i < 16; i += 4 {
			h = mhashAdd(h, le32(k.IPv6Dst[i:i+4]))
		}
	case EthTypeIPv4, EthTypeARP:
		h = mhashAdd(h, k.NwSrc)
		h = mhashAdd(h, k.NwDst)
	default:
		return hashFinish(h, 42)
	}
	h = mhashAdd(h, uint32(k.NwProto))
	switch k.NwProto {
	case IPProtoTCP, IPProtoUDP, IPProtoSCTP:
		h = mhashAdd(h, uint32(k.TpSrc)<<16|uint32(k.TpDst))
	}
	return hashFinish(h, 42)
}

// hashable describes a field that selection_method=hash may name: its
// place in Open vSwitch's field order (which is the order it hashes them
// in) and its size in bytes as Open vSwitch holds it.
type hashable struct {
	order  int
	nBytes int
	name   string // the name Open vSwitch prints
	f      FieldID
}

var hashableFields = func() map[string]*hashable {
	m := map[string]*hashable{}
	add := func(order, n int, name string, id FieldID, aliases ...string) {
		h := &hashable{order: order, nBytes: n, name: name, f: id}
		for _, a := range append([]string{name}, aliases...) {
			m[a] = h
		}
	}
	o := 0
	next := func() int { o++; return o }
	add(next(), 8, "metadata", FieldMetadata)
	add(next(), 2, "in_port", FieldInPort)
	add(next(), 4, "pkt_mark", FieldPktMark)
	for i := range NumRegs {
		add(next(), 4, "reg"+strconv.Itoa(i), FieldReg0+FieldID(i))
	}
	for i := range NumRegs / 2 {
		add(next(), 8, "xreg"+strconv.Itoa(i), FieldXReg0+FieldID(i))
	}
	for i := range NumRegs / 4 {
		add(next(), 16, "xxreg"+strconv.Itoa(i), FieldXXReg0+FieldID(i))
	}
	add(next(), 6, "eth_src", FieldDlSrc, "dl_src")
	add(next(), 6, "eth_dst", FieldDlDst, "dl_dst")
	add(next(), 2, "eth_type", FieldDlType, "dl_type")
	add(next(), 2, "vlan_tci", FieldVLANTCI)
	add(next(), 2, "dl_vlan", FieldDlVLAN)
	add(next(), 2, "vlan_vid", FieldVLANVID)
	add(next(), 1, "dl_vlan_pcp", FieldDlVLANPCP)
	add(next(), 1, "vlan_pcp", FieldVLANPCP)
	add(next(), 4, "ip_src", FieldNwSrc, "nw_src")
	add(next(), 4, "ip_dst", FieldNwDst, "nw_dst")
	add(next(), 16, "ipv6_src", FieldIPv6Src)
	add(next(), 16, "ipv6_dst", FieldIPv6Dst)
	add(next(), 4, "ipv6_label", FieldIPv6Label)
	add(next(), 1, "nw_proto", FieldNwProto, "ip_proto")
	add(next(), 1, "nw_tos", FieldNwTos)
	add(next(), 1, "ip_dscp", FieldIPDSCP)
	add(next(), 1, "nw_ecn", FieldNwECN, "ip_ecn")
	add(next(), 1, "nw_ttl", FieldNwTTL)
	add(next(), 1, "ip_frag", FieldIPFrag, "nw_frag")
	add(next(), 2, "arp_op", FieldArpOp)
	add(next(), 4, "arp_spa", FieldArpSpa)
	add(next(), 4, "arp_tpa", FieldArpTpa)
	add(next(), 6, "arp_sha", FieldArpSha)
	add(next(), 6, "arp_tha", FieldArpTha)
	add(next(), 2, "tcp_src", FieldTCPSrc, "tp_src")
	add(next(), 2, "tcp_dst", FieldTCPDst, "tp_dst")
	add(next(), 2, "tcp_flags", FieldTCPFlags)
	add(next(), 2, "udp_src", FieldUDPSrc)
	add(next(), 2, "udp_dst", FieldUDPDst)
	add(next(), 2, "sctp_src", FieldSCTPSrc)
	add(next(), 2, "sctp_dst", FieldSCTPDst)
	add(next(), 1, "icmp_type", FieldICMPType)
	add(next(), 1, "icmp_code", FieldICMPCode)
	add(next(), 1, "icmpv6_type", FieldICMPv6Type)
	add(next(), 1, "icmpv6_code", FieldICMPv6Code)
	add(next(), 16, "nd_target", FieldNdTarget)
	add(next(), 6, "nd_sll", FieldNdSll)
	add(next(), 6, "nd_tll", FieldNdTll)
	return m
}()

// hashableByField indexes hashableFields by field.
var hashableByField [numFields]*hashable

func init() {
	for _, h := range hashableFields {
		hashableByField[h.f] = h
	}
}

// hashableByID finds the hashable description of a field.
func hashableByID(id FieldID) *hashable {
	if int(id) < len(hashableByField) {
		return hashableByField[id]
	}
	return nil
}

// fieldBytes writes v as Open vSwitch holds a field of n bytes: big-endian.
func fieldBytes(dst []byte, v u128, n int) []byte {
	for i := range n {
		shift := uint(8 * (n - 1 - i))
		if shift >= 64 {
			dst = append(dst, byte(v.hi>>(shift-64)))
		} else {
			dst = append(dst, byte(v.lo>>shift))
		}
	}
	return dst
}

// bucketScore is how strongly a select group's bucket claims a packet whose
// hash is basis: Open vSwitch's highest-random-weight choice.
func bucketScore(b *Bucket, basis uint32) uint32 {
	return (hashInt(b.ID, basis) & 0xffff) * uint32(b.Weight)
}
