package flow

import (
	"encoding/binary"
	"strconv"
	"unsafe"
)

// Malformed says why Extract stopped before the end of the headers it
// understands; MalformedNone when it did not. The datapath counts every other
// value as a "malformed frame" drop reason.
//
// A header that Extract does not parse further (an unknown Ethertype or IP
// protocol, an 802.3 frame without SNAP, ARP for another hardware type, a
// later IP fragment) is not malformed: its key simply ends there, as in OVS.
type Malformed uint8

// The reasons. Their String forms are stable: they name drop counters.
const (
	MalformedNone              Malformed = iota
	MalformedTruncatedEthernet           // shorter than an Ethernet header
	MalformedTruncatedVLAN               // a VLAN TPID without a whole tag and the Ethertype after it
	MalformedTruncatedARP                // ARP shorter than its fixed part, or Ethernet/IPv4 ARP shorter than 28 bytes
	MalformedTruncatedIPv4               // IPv4 header or total length beyond the frame
	MalformedBadIPv4Length               // IPv4 IHL < 5, or total length < header length
	MalformedTruncatedIPv6               // IPv6 header or payload length beyond the frame
	MalformedTruncatedIPv6Ext            // an IPv6 extension header beyond the payload
	MalformedIPv6ExtChain                // more than MaxIPv6ExtHeaders extension headers
	MalformedTruncatedTCP                // TCP header shorter than 20 bytes (not in a first fragment)
	MalformedTruncatedUDP                // UDP header shorter than 8 bytes (not in a first fragment)
	MalformedTruncatedSCTP               // SCTP common header shorter than 12 bytes (not in a first fragment)
	MalformedTruncatedICMP               // ICMP header shorter than 8 bytes (not in a first fragment)
	MalformedTruncatedICMPv6             // ICMPv6 header shorter than 8 bytes (not in a first fragment)
	MalformedTruncatedND                 // neighbour solicitation/advertisement without a whole target address
	MalformedBadNDOption                 // ND option of length zero, past the end, or a repeated link-layer address

	// NumMalformed is the number of Malformed values, for sizing counter
	// arrays indexed by reason.
	NumMalformed
)

var malformedNames = [NumMalformed]string{
	MalformedNone:              "none",
	MalformedTruncatedEthernet: "truncated-ethernet",
	MalformedTruncatedVLAN:     "truncated-vlan",
	MalformedTruncatedARP:      "truncated-arp",
	MalformedTruncatedIPv4:     "truncated-ipv4",
	MalformedBadIPv4Length:     "bad-ipv4-length",
	MalformedTruncatedIPv6:     "truncated-ipv6",
	MalformedTruncatedIPv6Ext:  "truncated-ipv6-ext",
	MalformedIPv6ExtChain:      "ipv6-ext-chain-too-long",
	MalformedTruncatedTCP:      "truncated-tcp",
	MalformedTruncatedUDP:      "truncated-udp",
	MalformedTruncatedSCTP:     "truncated-sctp",
	MalformedTruncatedICMP:     "truncated-icmp",
	MalformedTruncatedICMPv6:   "truncated-icmpv6",
	MalformedTruncatedND:       "truncated-nd",
	MalformedBadNDOption:       "bad-nd-option",
}

// String returns the reason's counter name, such as "truncated-vlan".
func (m Malformed) String() string {
	if m < NumMalformed {
		return malformedNames[m]
	}
	return "malformed(" + strconv.Itoa(int(m)) + ")"
}

// MaxIPv6ExtHeaders bounds the IPv6 extension header chain that Extract
// follows; a longer chain is MalformedIPv6ExtChain. It also bounds every
// offset Extract records: the deepest L4 header starts at most
// 30 + 40 + 8*2048 bytes into the frame, well within Offsets' 16 bits.
const MaxIPv6ExtHeaders = 8

// Header sizes and protocol numbers used by the parsers below.
const (
	ethHeaderLen    = 14
	vlanTagLen      = 4
	llcSNAPLen      = 8 // LLC (DSAP, SSAP, control) and SNAP (OUI, type)
	arpFixedLen     = 8 // hardware type and size, protocol type and size, opcode
	arpEthIPv4Len   = 28
	ipv4MinLen      = 20
	ipv6HeaderLen   = 40
	ipv6ExtMinLen   = 8
	tcpMinLen       = 20
	udpHeaderLen    = 8
	sctpHeaderLen   = 12
	icmpHeaderLen   = 8 // type, code, checksum and the 4-byte rest of header
	ndTargetLen     = 16
	ndOptUnit       = 8
	ipProtoHopOpts  = 0
	ipProtoRouting  = 43
	ipProtoFragment = 44
	ipProtoAH       = 51
	ipProtoDstOpts  = 60
	ndSolicit       = 135
	ndAdvert        = 136
	ndOptSLL        = 1
	ndOptTLL        = 2
	ipv4MoreFrags   = 0x2000
	ipv4FragOffset  = 0x1fff
	ipv6FragOffset  = 0xfff8
)

// Extract resets *k and *off and fills them from the frame bytes of a packet
// that arrived on inPort, with the semantics of OVS's miniflow_extract: the
// key holds every field up to the first header that is missing, truncated or
// malformed, and the returned reason says why extraction stopped early
// (MalformedNone when it did not). It does not allocate, never panics on any
// input, and does a bounded amount of work per frame.
//
// L4 is parsed without regard to which IP version carried it, as OVS does:
// an IPv4 packet with protocol 58 gets ICMPv6 fields. Headers that Key has
// no fields for are not parsed: MPLS (DlType is its Ethertype and L3 the
// label stack) and IGMP (whose type and code OVS keeps only for multicast
// snooping).
//
// off.L3 is set once the Ethernet header and tags are whole; off.L4 only
// when a whole TCP, UDP, SCTP, ICMP or ICMPv6 header follows the IP header
// (so never for a later fragment), which lets actions rewrite it in place.
func Extract(k *Key, off *Offsets, frame []byte, inPort uint32) Malformed {
	why, _ := extract(k, off, frame, inPort, false)
	return why
}

// ExtractReusing is Extract into a key buffer that is reused from batch to
// batch, for the frames most traffic is made of. When plain is true, the
// caller vouches that k is a plain key (see IsPlain), as an extraction
// that reported plain left it and nothing changed since: then ExtractReusing
// writes only the 14 words a plain key may have non-zero, not all 43,
// because the others already are zero. It returns Extract's reason, and
// whether k is now a plain key (extract's common path took the frame),
// which the caller may pass back for its next extraction into k and use for
// the exact-match probe (Cache.LookupBatchPlain), as long as it leaves k
// unchanged.
func ExtractReusing(k *Key, off *Offsets, frame []byte, inPort uint32, plain bool) (Malformed, bool) {
	return extract(k, off, frame, inPort, plain)
}

// IsPlain reports whether k is a plain key: one whose words are zero but
// for in_port, the IPv4 addresses, the IPv6 flow label and the words from
// TunFlags up to PktMark (the exact-match cache's common words), as every
// key the common extraction path gives is. Such a key has no pipeline
// state, no tunnel metadata, no connection tracking state, and is not
// recirculated.
func IsPlain(k *Key) bool {
	w := k.Words()
	var d uint64
	for i := range w {
		if i < emcFirstWord || i >= emcTunWord && i < emcTunEndWord || i >= emcExtraWord {
			d |= w[i]
		}
	}
	return d == 0
}

// extractGeneral is Extract for any frame; k holds only InPort.
func extractGeneral(k *Key, off *Offsets, frame []byte) Malformed {
	*off = Offsets{L3: NoOffset, L4: NoOffset}

	c, why := parseL2(k, cursor{b: frame})
	if why != MalformedNone {
		return why
	}
	off.L3 = uint16(c.pos)

	switch k.DlType {
	case EthTypeIPv4:
		c, why = parseIPv4(k, c)
	case EthTypeIPv6:
		c, why = parseIPv6(k, c)
	case EthTypeARP, EthTypeRARP:
		return parseARP(k, c)
	default:
		return MalformedNone
	}
	if why != MalformedNone || k.NwFrag&FragLater != 0 {
		return why
	}
	found, why := parseL4(k, c)
	if found {
		off.L4 = uint16(c.pos)
	}
	return why
}

// extract is Extract and ExtractReusing (plain says whether k is a plain
// key). It takes the frames that make up most traffic in one pass, with no
// calls: Ethernet with at most one 802.1Q tag, then IPv4 without options or
// fragmentation, or IPv6 without extension headers, then a whole TCP or UDP
// header. For those it stores k's common words (the 14 that a plain key may
// have non-zero) whole, each once, with in_port and the frame's fields in
// them, and zeroes the others unless k is plain. Every other frame jumps to
// general, having written nothing to off and nothing to k but common words,
// which general resets, and extractGeneral parses it; on the frames the
// common path takes, both give the same key and offsets
// (TestExtractCommonAgrees and FuzzExtract check it). The jump, rather than
// a call of the common path that reports failure, leaves the arguments in
// registers for the common path, with nothing to save for after a call.
func extract(k *Key, off *Offsets, b []byte, inPort uint32, plain bool) (Malformed, bool) {
	{
		// The shortest frame taken: Ethernet, IPv4 and UDP.
		if len(b) < ethHeaderLen+ipv4MinLen+udpHeaderLen {
			goto general
		}
		w := k.Words()
		e := (*[ethHeaderLen + vlanTagLen]byte)(b)
		// The Ethernet addresses are bytes in the key as in the frame:
		// the words they fill are the frame's bytes as they are.
		w[23] = keyBits(binary.NativeEndian.Uint32(e[0:4]), offDlDst)
		w[24] = binary.NativeEndian.Uint64(e[4:12]) // DlDst[4:6], DlSrc
		w[25] = 0
		typ := binary.BigEndian.Uint16(e[12:14])
		h := b[ethHeaderLen:]
		var tag uint64 // the outer VLAN's TCI, in w[27]
		if typ == EthTypeVLAN {
			tag = keyBits(binary.BigEndian.Uint16(e[14:16])|VLANPresent, offVLANs+2)
			typ = binary.BigEndian.Uint16(e[16:18])
			w[26] = keyBits(typ, offDlType) | keyBits(uint16(EthTypeVLAN), offVLANs)
			h = h[vlanTagLen:]
		} else {
			w[26] = keyBits(typ, offDlType)
		}
		l3 := uint16(len(b) - len(h))
		switch typ {
		case EthTypeIPv4:
			if len(h) < ipv4MinLen+udpHeaderLen {
				goto general
			}
			ip := (*[ipv4MinLen + udpHeaderLen]byte)(h)
			total := int(binary.BigEndian.Uint16(ip[2:4]))
			if ip[0] != 0x45 || total > len(h) || binary.BigEndian.Uint16(ip[6:8])&(ipv4MoreFrags|ipv4FragOffset) != 0 {
				goto general
			}
			proto := ip[9]
			var flags uint16
			// In line here and for IPv6: a helper that reported
			// whether it took the transport header cost 4 more
			// instructions a frame.
			switch {
			case proto == IPProtoTCP && total >= ipv4MinLen+tcpMinLen:
				flags = binary.BigEndian.Uint16(h[ipv4MinLen+12:ipv4MinLen+14]) & 0x0fff
			case proto == IPProtoUDP && total >= ipv4MinLen+udpHeaderLen:
			default:
				goto general
			}
			w[9] = keyBits(inPort, offInPort) | keyBits(binary.BigEndian.Uint32(ip[12:16]), offNwSrc)
			w[10] = keyBits(binary.BigEndian.Uint32(ip[16:20]), offNwDst)
			*(*[6]uint64)(w[17:23]) = [6]uint64{}
			w[27] = tag | keyBits(binary.BigEndian.Uint16(ip[20:22]), offTpSrc)
			w[28] = keyBits(binary.BigEndian.Uint16(ip[22:24]), offTpDst) | keyBits(flags, offTcpFlags) |
				keyBits(proto, offNwProto) | keyBits(ip[1], offNwTos) | keyBits(ip[8], offNwTTL)
			*off = Offsets{L3: l3, L4: l3 + ipv4MinLen}
		case EthTypeIPv6:
			if len(h) < ipv6HeaderLen+udpHeaderLen {
				goto general
			}
			ip := (*[ipv6HeaderLen + udpHeaderLen]byte)(h)
			end := ipv6HeaderLen + int(binary.BigEndian.Uint16(ip[4:6]))
			if end > len(h) {
				goto general
			}
			proto := ip[6]
			var flags uint16
			switch {
			case proto == IPProtoTCP && end >= ipv6HeaderLen+tcpMinLen:
				flags = binary.BigEndian.Uint16(h[ipv6HeaderLen+12:ipv6HeaderLen+14]) & 0x0fff
			case proto == IPProtoUDP && end >= ipv6HeaderLen+udpHeaderLen:
			default:
				goto general
			}
			vtf := binary.BigEndian.Uint32(ip[0:4])
			w[9] = keyBits(inPort, offInPort)
			w[10] = keyBits(vtf&0x000fffff, offIPv6Label)
			// The addresses, as the Ethernet addresses above.
			w[17] = keyBits(binary.NativeEndian.Uint32(ip[8:12]), offIPv6Src)
			w[18] = binary.NativeEndian.Uint64(ip[12:20])
			w[19] = binary.NativeEndian.Uint64(ip[20:28])
			w[20] = binary.NativeEndian.Uint64(ip[28:36])
			w[21] = keyBits(binary.NativeEndian.Uint32(ip[36:40]), offIPv6Dst+12)
			w[22] = 0
			w[27] = tag | keyBits(binary.BigEndian.Uint16(ip[40:42]), offTpSrc)
			w[28] = keyBits(binary.BigEndian.Uint16(ip[42:44]), offTpDst) | keyBits(flags, offTcpFlags) |
				keyBits(proto, offNwProto) | keyBits(uint8(vtf>>20), offNwTos) | keyBits(ip[7], offNwTTL)
			*off = Offsets{L3: l3, L4: l3 + ipv6HeaderLen}
		default:
			goto general
		}
		if !plain {
			zeroUncommon(w)
		}
		return MalformedNone, true
	}

general:
	if plain {
		zeroCommon(k.Words())
		k.InPort = inPort
	} else {
		*k = Key{InPort: inPort}
	}
	return extractGeneral(k, off, b), false
}

// zeroCommon zeroes the common words, which a plain key may have non-zero
// (see IsPlain).
func zeroCommon(w *[KeyWords]uint64) {
	*(*[emcTunWord - emcFirstWord]uint64)(w[emcFirstWord:emcTunWord]) = [emcTunWord - emcFirstWord]uint64{}
	*(*[emcExtraWord - emcTunEndWord]uint64)(w[emcTunEndWord:emcExtraWord]) = [emcExtraWord - emcTunEndWord]uint64{}
}

// zeroUncommon zeroes the other words, which a plain key has zero.
func zeroUncommon(w *[KeyWords]uint64) {
	*(*[emcFirstWord]uint64)(w[:emcFirstWord]) = [emcFirstWord]uint64{}
	*(*[emcTunWords]uint64)(w[emcTunWord:emcTunEndWord]) = [emcTunWords]uint64{}
	*(*[KeyWords - emcExtraWord]uint64)(w[emcExtraWord:]) = [KeyWords - emcExtraWord]uint64{}
}

// The byte offsets in Key of the fields that extract stores as parts of
// words, and the layout of the common words it stores (Key.Words), checked
// at compile time below: each word's fields, by byte offset in the key.
//
//	w[9]   72 InPort, 76 NwSrc
//	w[10]  80 NwDst, 84 IPv6Label
//	w[17] 136 TunFlags, TunTOS, TunTTL, 140 IPv6Src[0:4]
//	w[18] 144 IPv6Src[4:12]
//	w[19] 152 IPv6Src[12:16], 156 IPv6Dst[0:4]
//	w[20] 160 IPv6Dst[4:12]
//	w[21] 168 IPv6Dst[12:16], 172 NdTarget[0:4]
//	w[22] 176 NdTarget[4:12]
//	w[23] 184 NdTarget[12:16], 188 DlDst[0:4]
//	w[24] 192 DlDst[4:6], 194 DlSrc
//	w[25] 200 ArpSha, 206 ArpTha[0:2]
//	w[26] 208 ArpTha[2:6], 212 DlType, 214 VLANs[0].TPID
//	w[27] 216 VLANs[0].TCI, 218 VLANs[1], 222 TpSrc
//	w[28] 224 TpDst, 226 TcpFlags, 228 NwProto, 229 NwTos, 230 NwTTL, 231 NwFrag
const (
	offInPort    = unsafe.Offsetof(Key{}.InPort)
	offNwSrc     = unsafe.Offsetof(Key{}.NwSrc)
	offNwDst     = unsafe.Offsetof(Key{}.NwDst)
	offIPv6Label = unsafe.Offsetof(Key{}.IPv6Label)
	offIPv6Src   = unsafe.Offsetof(Key{}.IPv6Src)
	offIPv6Dst   = unsafe.Offsetof(Key{}.IPv6Dst)
	offDlDst     = unsafe.Offsetof(Key{}.DlDst)
	offDlType    = unsafe.Offsetof(Key{}.DlType)
	offVLANs     = unsafe.Offsetof(Key{}.VLANs)
	offTpSrc     = unsafe.Offsetof(Key{}.TpSrc)
	offTpDst     = unsafe.Offsetof(Key{}.TpDst)
	offTcpFlags  = unsafe.Offsetof(Key{}.TcpFlags)
	offNwProto   = unsafe.Offsetof(Key{}.NwProto)
	offNwTos     = unsafe.Offsetof(Key{}.NwTos)
	offNwTTL     = unsafe.Offsetof(Key{}.NwTTL)
)

var (
	_ = [1]struct{}{}[offInPort-9*8]
	_ = [1]struct{}{}[offNwSrc-9*8-4]
	_ = [1]struct{}{}[offNwDst-10*8]
	_ = [1]struct{}{}[offIPv6Label-10*8-4]
	_ = [1]struct{}{}[unsafe.Offsetof(Key{}.TunFlags)-17*8]
	_ = [1]struct{}{}[offIPv6Src-17*8-4]
	_ = [1]struct{}{}[offIPv6Dst-19*8-4]
	_ = [1]struct{}{}[unsafe.Offsetof(Key{}.NdTarget)-21*8-4]
	_ = [1]struct{}{}[offDlDst-23*8-4]
	_ = [1]struct{}{}[unsafe.Offsetof(Key{}.DlSrc)-24*8-2]
	_ = [1]struct{}{}[unsafe.Offsetof(Key{}.ArpSha)-25*8]
	_ = [1]struct{}{}[unsafe.Offsetof(Key{}.ArpTha)-25*8-6]
	_ = [1]struct{}{}[offDlType-26*8-4]
	_ = [1]struct{}{}[offVLANs-26*8-6]
	_ = [1]struct{}{}[offTpSrc-27*8-6]
	_ = [1]struct{}{}[offTpDst-28*8]
	_ = [1]struct{}{}[offTcpFlags-28*8-2]
	_ = [1]struct{}{}[offNwProto-28*8-4]
	_ = [1]struct{}{}[offNwTos-28*8-5]
	_ = [1]struct{}{}[offNwTTL-28*8-6]
	_ = [1]struct{}{}[unsafe.Offsetof(Key{}.NwFrag)-28*8-7]
	_ = [1]struct{}{}[emcFirstWord-9]
	_ = [1]struct{}{}[emcTunEndWord-17]
	_ = [1]struct{}{}[emcExtraWord-29]
)

// keyBits returns v, the value of the key field at byte offset off, at the
// bits of the field's word that hold it, so that storing the word stores
// the field.
func keyBits[T uint8 | uint16 | uint32](v T, off uintptr) uint64 {
	shift := off % 8 * 8
	if !hostLittleEndian {
		shift = 64 - shift - 8*unsafe.Sizeof(v)
	}
	return uint64(v) << shift
}

// cursor is a bounds-checked reader over the frame: b is the frame, cut at
// the end of the innermost packet being parsed (an IP packet ends before the
// Ethernet padding), and pos is the next unread byte, 0 <= pos <= len(b).
// The parsers take and return it by value.
type cursor struct {
	b   []byte
	pos int
}

// rest is the number of unread bytes.
func (c *cursor) rest() int {
	return len(c.b) - c.pos
}

// peek returns the next n bytes without consuming them, or false if fewer
// remain.
func (c *cursor) peek(n int) ([]byte, bool) {
	if n > c.rest() {
		return nil, false
	}
	return c.b[c.pos : c.pos+n : c.pos+n], true
}

// skip consumes n bytes, or reports false and consumes nothing if fewer
// remain.
func (c *cursor) skip(n int) bool {
	if n > c.rest() {
		return false
	}
	c.pos += n
	return true
}

// limit ends the packet n bytes after pos, dropping what follows (an IP
// packet's Ethernet padding). It must not be asked for more than remains.
func (c *cursor) limit(n int) {
	c.b = c.b[:c.pos+n]
}

// parseL2 fills the Ethernet addresses, the VLAN tags and DlType, and
// returns c moved to the first byte of the L3 header.
func parseL2(k *Key, c cursor) (cursor, Malformed) {
	h, ok := c.peek(ethHeaderLen)
	if !ok {
		return c, MalformedTruncatedEthernet
	}
	k.DlDst = [6]byte(h[0:6])
	k.DlSrc = [6]byte(h[6:12])
	typ := binary.BigEndian.Uint16(h[12:14])
	c.skip(ethHeaderLen)
	if typ == EthTypeVLAN || typ == EthTypeQinQ {
		var why Malformed
		if c, typ, why = parseVLANs(k, c, typ); why != MalformedNone {
			return c, why
		}
	}
	if typ < EthTypeMinTy {
		return parseLLC(k, c), MalformedNone
	}
	k.DlType = typ
	return c, MalformedNone
}

// parseVLANs reads up to two 802.1Q/802.1ad tags whose first TPID, tpid,
// is just behind c. It returns c moved past the tags and the Ethertype after
// them (a third tag is left for DlType, as OVS leaves it).
func parseVLANs(k *Key, c cursor, tpid uint16) (cursor, uint16, Malformed) {
	for i := range k.VLANs {
		tag, ok := c.peek(vlanTagLen) // the TCI and the Ethertype after it
		if !ok {
			k.DlType = tpid // what OVS reports for a cut-off tag
			return c, 0, MalformedTruncatedVLAN
		}
		k.VLANs[i] = VLAN{TPID: tpid, TCI: binary.BigEndian.Uint16(tag[0:2]) | VLANPresent}
		c.skip(vlanTagLen)
		if tpid = binary.BigEndian.Uint16(tag[2:4]); tpid != EthTypeVLAN && tpid != EthTypeQinQ {
			break
		}
	}
	return c, tpid, MalformedNone
}

// parseLLC handles an 802.3 frame (a length where the Ethertype would be):
// DlType is the Ethertype of an LLC/SNAP header with the zero OUI, and
// EthTypeNone otherwise. It returns c moved past a SNAP header.
func parseLLC(k *Key, c cursor) cursor {
	k.DlType = EthTypeNone
	s, ok := c.peek(llcSNAPLen)
	if !ok || s[0] != 0xaa || s[1] != 0xaa || s[2] != 0x03 || s[3] != 0 || s[4] != 0 || s[5] != 0 {
		return c
	}
	c.skip(llcSNAPLen) // past SNAP even when its type is not an Ethertype, as OVS
	if typ := binary.BigEndian.Uint16(s[6:8]); typ >= EthTypeMinTy {
		k.DlType = typ
	}
	return c
}

// parseARP fills ARP's opcode, addresses and hardware addresses for
// Ethernet/IPv4 ARP and RARP; other kinds keep only their L2 fields.
func parseARP(k *Key, c cursor) Malformed {
	h, ok := c.peek(arpFixedLen)
	if !ok {
		return MalformedTruncatedARP
	}
	if binary.BigEndian.Uint16(h[0:2]) != 1 || binary.BigEndian.Uint16(h[2:4]) != EthTypeIPv4 || h[4] != 6 || h[5] != 4 {
		return MalformedNone
	}
	a, ok := c.peek(arpEthIPv4Len)
	if !ok {
		return MalformedTruncatedARP
	}
	if op := binary.BigEndian.Uint16(a[6:8]); op <= 0xff {
		k.NwProto = uint8(op) // OVS matches only opcodes that fit in 8 bits
	}
	k.ArpSha = [6]byte(a[8:14])
	k.NwSrc = binary.BigEndian.Uint32(a[14:18])
	k.ArpTha = [6]byte(a[18:24])
	k.NwDst = binary.BigEndian.Uint32(a[24:28])
	return MalformedNone
}

// parseIPv4 fills the IPv4 fields and returns c moved to the L4 header and
// limited to the packet's total length. A header whose lengths do not fit
// leaves every L3 field zero, as OVS does. The version nibble is not checked
// (nor is it by OVS).
func parseIPv4(k *Key, c cursor) (cursor, Malformed) {
	h, ok := c.peek(ipv4MinLen)
	if !ok {
		return c, MalformedTruncatedIPv4
	}
	hlen := int(h[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(h[2:4]))
	if hlen < ipv4MinLen || total < hlen {
		return c, MalformedBadIPv4Length
	}
	if total > c.rest() {
		return c, MalformedTruncatedIPv4
	}
	k.NwTos = h[1]
	k.NwTTL = h[8]
	k.NwProto = h[9]
	k.NwSrc = binary.BigEndian.Uint32(h[12:16])
	k.NwDst = binary.BigEndian.Uint32(h[16:20])
	if frag := binary.BigEndian.Uint16(h[6:8]); frag&(ipv4MoreFrags|ipv4FragOffset) != 0 {
		k.NwFrag = FragAny
		if frag&ipv4FragOffset != 0 {
			k.NwFrag |= FragLater
		}
	}
	c.limit(total)
	c.skip(hlen)
	return c, MalformedNone
}

// parseIPv6 fills the IPv6 fields and returns c moved to the L4 header (after
// the extension headers) and limited to the payload length. If the extension
// headers are cut off or too many, only the addresses are kept, as OVS keeps
// them for a cut-off chain.
func parseIPv6(k *Key, c cursor) (cursor, Malformed) {
	h, ok := c.peek(ipv6HeaderLen)
	if !ok {
		return c, MalformedTruncatedIPv6
	}
	end := ipv6HeaderLen + int(binary.BigEndian.Uint16(h[4:6]))
	if end > c.rest() {
		return c, MalformedTruncatedIPv6
	}
	k.IPv6Src = [16]byte(h[8:24])
	k.IPv6Dst = [16]byte(h[24:40])
	c.limit(end)
	c.skip(ipv6HeaderLen)

	proto, frag := h[6], uint8(0)
	if isIPv6Ext(proto) {
		var why Malformed
		if c, proto, frag, why = parseIPv6Ext(c, proto); why != MalformedNone {
			return c, why
		}
	}
	vtf := binary.BigEndian.Uint32(h[0:4])
	k.IPv6Label = vtf & 0x000fffff
	k.NwTos = uint8(vtf >> 20)
	k.NwTTL = h[7]
	k.NwProto = proto
	k.NwFrag = frag
	return c, MalformedNone
}

// isIPv6Ext reports whether proto is an IPv6 extension header that Extract
// walks past.
func isIPv6Ext(proto uint8) bool {
	switch proto {
	case ipProtoHopOpts, ipProtoRouting, ipProtoDstOpts, ipProtoAH, ipProtoFragment:
		return true
	}
	return false
}

// parseIPv6Ext walks the extension header chain that starts with next
// header proto and returns c moved past it, the protocol after it and the
// fragment state. A later fragment stops the walk with protocol 44
// (fragment), as in OVS.
func parseIPv6Ext(c cursor, proto uint8) (cursor, uint8, uint8, Malformed) {
	var frag uint8
	for i := 0; isIPv6Ext(proto); i++ {
		if i == MaxIPv6ExtHeaders {
			return c, 0, 0, MalformedIPv6ExtChain
		}
		h, ok := c.peek(ipv6ExtMinLen)
		if !ok {
			return c, 0, 0, MalformedTruncatedIPv6Ext
		}
		n := ipv6ExtMinLen
		switch proto {
		case ipProtoAH:
			n = (int(h[1]) + 2) * 4
		case ipProtoFragment:
			if offlg := binary.BigEndian.Uint16(h[2:4]); offlg != 0 {
				frag = FragAny
				if offlg&ipv6FragOffset != 0 {
					c.skip(ipv6ExtMinLen)
					return c, ipProtoFragment, FragAny | FragLater, MalformedNone
				}
			}
		default:
			n = (int(h[1]) + 1) * 8
		}
		if !c.skip(n) {
			return c, 0, 0, MalformedTruncatedIPv6Ext
		}
		proto = h[0]
	}
	return c, proto, frag, MalformedNone
}

// l4Headers gives, for each IP protocol whose transport header Extract
// reads, how many bytes of it must be there and the reason when they are not.
var l4Headers = [256]struct {
	len   int
	short Malformed
}{
	IPProtoTCP:    {tcpMinLen, MalformedTruncatedTCP},
	IPProtoUDP:    {udpHeaderLen, MalformedTruncatedUDP},
	IPProtoSCTP:   {sctpHeaderLen, MalformedTruncatedSCTP},
	IPProtoICMP:   {icmpHeaderLen, MalformedTruncatedICMP},
	IPProtoICMPv6: {icmpHeaderLen, MalformedTruncatedICMPv6},
}

// parseL4 fills the transport fields for TCP, UDP, SCTP, ICMP and ICMPv6
// (with neighbour discovery) and reports whether such a header was found.
func parseL4(k *Key, c cursor) (bool, Malformed) {
	proto := k.NwProto
	hdr := &l4Headers[proto]
	if hdr.len == 0 {
		return false, MalformedNone
	}
	h, ok := c.peek(hdr.len)
	if !ok {
		return false, truncatedL4(k, hdr.short)
	}
	if proto == IPProtoICMP || proto == IPProtoICMPv6 {
		k.TpSrc = uint16(h[0]) // type
		k.TpDst = uint16(h[1]) // code
		if proto == IPProtoICMPv6 && h[1] == 0 && (h[0] == ndSolicit || h[0] == ndAdvert) {
			c.skip(icmpHeaderLen)
			return true, parseND(k, c)
		}
		return true, MalformedNone
	}
	k.TpSrc = binary.BigEndian.Uint16(h[0:2])
	k.TpDst = binary.BigEndian.Uint16(h[2:4])
	if proto == IPProtoTCP {
		k.TcpFlags = binary.BigEndian.Uint16(h[12:14]) & 0x0fff
	}
	return true, MalformedNone
}

// truncatedL4 returns why for a cut-off transport header, except in a first
// fragment, where the rest of the header may legitimately be in the next
// fragment.
func truncatedL4(k *Key, why Malformed) Malformed {
	if k.NwFrag&FragAny != 0 {
		return MalformedNone
	}
	return why
}

// parseND fills the target address and the source/target link-layer address
// options of a neighbour solicitation or advertisement; c starts after the
// 8-byte ICMPv6 header. As in OVS, options of other kinds or sizes are
// skipped; an option of length zero or past the end stops the walk keeping
// what was found; a link-layer address given twice discards the target and
// both addresses. The walk is bounded: every step consumes at least 8 bytes.
func parseND(k *Key, c cursor) Malformed {
	t, ok := c.peek(ndTargetLen)
	if !ok {
		return truncatedL4(k, MalformedTruncatedND)
	}
	k.NdTarget = [16]byte(t)
	c.skip(ndTargetLen)
	for { // bounded: each pass consumes at least ndOptUnit bytes or returns
		o, ok := c.peek(ndOptUnit)
		if !ok {
			return MalformedNone
		}
		n := int(o[1]) * ndOptUnit
		if n == 0 || !c.skip(n) {
			return MalformedBadNDOption
		}
		if n != ndOptUnit {
			continue
		}
		var lla *[6]byte
		switch o[0] {
		case ndOptSLL:
			lla = &k.ArpSha
		case ndOptTLL:
			lla = &k.ArpTha
		default:
			continue
		}
		if *lla != [6]byte{} {
			k.NdTarget = [16]byte{}
			k.ArpSha = [6]byte{}
			k.ArpTha = [6]byte{}
			return MalformedBadNDOption
		}
		*lla = [6]byte(o[2:8])
	}
}
