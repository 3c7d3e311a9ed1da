package flow

import (
	"bytes"
	"net"
	"slices"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

const testInPort = 7

var (
	testDst  = [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x0d}
	testSrc  = [6]byte{0x02, 0x00, 0x00, 0x00, 0x00, 0x05}
	testSha  = [6]byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	testTha  = [6]byte{0x02, 0x66, 0x77, 0x88, 0x99, 0xaa}
	testIP4a = net.IP{10, 0, 0, 1}
	testIP4b = net.IP{192, 168, 1, 200}
	testIP6a = net.ParseIP("2001:db8::1")
	testIP6b = net.ParseIP("fe80::abcd:1234")
	testTgt  = net.ParseIP("2001:db8::99")
)

// Protocol numbers gopacket names differently or not at all.
const (
	protoGRE    = 47
	protoNoNext = 59
)

// serialize builds a frame from ls with gopacket, fixing lengths and
// checksums (each transport layer checksums against the IP layer before it).
// Ethernet frames shorter than 60 bytes come out zero-padded to 60.
func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	var nl gopacket.NetworkLayer
	for _, l := range ls {
		switch l := l.(type) {
		case *layers.IPv4:
			nl = l
		case *layers.IPv6:
			nl = l
		case *layers.TCP:
			mustSetNetwork(t, l.SetNetworkLayerForChecksum(nl))
		case *layers.UDP:
			mustSetNetwork(t, l.SetNetworkLayerForChecksum(nl))
		case *layers.ICMPv6:
			mustSetNetwork(t, l.SetNetworkLayerForChecksum(nl))
		}
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func mustSetNetwork(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("set network layer for checksum: %v", err)
	}
}

// edit returns a copy of frame changed by f.
func edit(frame []byte, f func(b []byte)) []byte {
	b := bytes.Clone(frame)
	f(b)
	return b
}

func eth(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{DstMAC: testDst[:], SrcMAC: testSrc[:], EthernetType: typ}
}

func ip4(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TOS: 0xb9, TTL: 64, Id: 0x1234, Protocol: proto, SrcIP: testIP4a, DstIP: testIP4b}
}

func ip6(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, TrafficClass: 0x2e, FlowLabel: 0xbeef5, HopLimit: 63, NextHeader: next, SrcIP: testIP6a, DstIP: testIP6b}
}

func tcp() *layers.TCP {
	return &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 1, SYN: true, ACK: true, ECE: true, NS: true, Window: 512}
}

func udp() *layers.UDP { return &layers.UDP{SrcPort: 5353, DstPort: 53} }

func dot1q(prio uint8, vid uint16, next layers.EthernetType) *layers.Dot1Q {
	return &layers.Dot1Q{Priority: prio, VLANIdentifier: vid, Type: next}
}

func icmp6(typ, code uint8) *layers.ICMPv6 {
	return &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
}

// nsLayer and naLayer take ND options in wire order. (gopacket serializes
// an options list back to front, so they reverse it for gopacket.)
func nsLayer(opts ...layers.ICMPv6Option) *layers.ICMPv6NeighborSolicitation {
	return &layers.ICMPv6NeighborSolicitation{TargetAddress: testTgt, Options: wireOrder(opts)}
}

func naLayer(opts ...layers.ICMPv6Option) *layers.ICMPv6NeighborAdvertisement {
	return &layers.ICMPv6NeighborAdvertisement{Flags: 0x60, TargetAddress: testTgt, Options: wireOrder(opts)}
}

func wireOrder(opts []layers.ICMPv6Option) layers.ICMPv6Options {
	r := slices.Clone(opts)
	slices.Reverse(r)
	return r
}

func lla(typ layers.ICMPv6Opt, mac [6]byte) layers.ICMPv6Option {
	return layers.ICMPv6Option{Type: typ, Data: mac[:]}
}

// ext is a raw IPv6 extension header with a next header, the length byte and
// body (which must make the header a multiple of 8 bytes, or 4 for AH).
func ext(next layers.IPProtocol, length uint8, body ...byte) gopacket.Payload {
	return append(gopacket.Payload{byte(next), length}, body...)
}

// dstOpts is an empty 8-byte destination options header (one PadN option).
func dstOpts(next layers.IPProtocol) gopacket.Payload {
	return ext(next, 0, 1, 4, 0, 0, 0, 0)
}

// fragHdr is an IPv6 fragment header; offset is in 8-byte units.
func fragHdr(next layers.IPProtocol, offset uint16, more bool) gopacket.Payload {
	offlg := offset << 3
	if more {
		offlg |= 1
	}
	return ext(next, 0, byte(offlg>>8), byte(offlg), 0xca, 0xfe, 0xba, 0xbe)
}

func arp(op uint16) *layers.ARP {
	return &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
		SourceHwAddress: testSha[:], SourceProtAddress: testIP4a,
		DstHwAddress: testTha[:], DstProtAddress: testIP4b,
	}
}

// Expected keys are built from these, field by field.

func keyL2(dlType uint16) Key {
	return Key{InPort: testInPort, DlDst: testDst, DlSrc: testSrc, DlType: dlType}
}

func keyIPv4(proto, frag uint8) Key {
	k := keyL2(EthTypeIPv4)
	k.NwSrc, k.NwDst = 0x0a000001, 0xc0a801c8
	k.NwTos, k.NwTTL, k.NwProto, k.NwFrag = 0xb9, 64, proto, frag
	return k
}

func keyIPv6Addrs() Key {
	k := keyL2(EthTypeIPv6)
	k.IPv6Src, k.IPv6Dst = [16]byte(testIP6a), [16]byte(testIP6b)
	return k
}

func keyIPv6(proto, frag uint8) Key {
	k := keyIPv6Addrs()
	k.IPv6Label, k.NwTos, k.NwTTL, k.NwProto, k.NwFrag = 0xbeef5, 0x2e, 63, proto, frag
	return k
}

func withPorts(k Key, src, dst uint16) Key {
	k.TpSrc, k.TpDst = src, dst
	return k
}

func withTCP(k Key) Key {
	k = withPorts(k, 40000, 443)
	k.TcpFlags = 0x100 | 0x40 | 0x10 | 0x02 // NS, ECE, ACK, SYN
	return k
}

func withVLANs(k Key, tags ...VLAN) Key {
	copy(k.VLANs[:], tags)
	return k
}

func withND(k Key, sll, tll [6]byte) Key {
	k.NdTarget, k.ArpSha, k.ArpTha = [16]byte(testTgt), sll, tll
	return k
}

func keyARP(dlType uint16, op uint8) Key {
	k := keyL2(dlType)
	k.NwSrc, k.NwDst, k.NwProto = 0x0a000001, 0xc0a801c8, op
	k.ArpSha, k.ArpTha = testSha, testTha
	return k
}

func offsets(l3, l4 uint16) Offsets { return Offsets{L3: l3, L4: l4} }

type extractCase struct {
	name    string
	inFrame []byte
	wantKey Key
	wantOff Offsets
	wantWhy Malformed
}

// extractCases returns the table of frames with their expected keys. It is
// shared by the allocation test and the fuzz seeds.
func extractCases(t testing.TB) []extractCase {
	none := [6]byte{}
	nineDstOpts := []gopacket.SerializableLayer{eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6Destination)}
	for range MaxIPv6ExtHeaders {
		nineDstOpts = append(nineDstOpts, dstOpts(layers.IPProtocolIPv6Destination))
	}
	eightDstOpts := append(append([]gopacket.SerializableLayer(nil), nineDstOpts[:2+MaxIPv6ExtHeaders-1]...),
		dstOpts(layers.IPProtocolUDP), udp())
	nineDstOpts = append(nineDstOpts, dstOpts(layers.IPProtocolUDP), udp())

	tcp4 := serialize(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolTCP), tcp(), gopacket.Payload("hello"))
	udp4 := serialize(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp(), gopacket.Payload("query"))
	ip4Frag := func(flags layers.IPv4Flag, offset uint16, payload ...gopacket.SerializableLayer) []byte {
		ip := ip4(layers.IPProtocolUDP)
		ip.Flags, ip.FragOffset = flags, offset
		return serialize(t, append([]gopacket.SerializableLayer{eth(layers.EthernetTypeIPv4), ip}, payload...)...)
	}
	ip4Opts := ip4(layers.IPProtocolUDP)
	ip4Opts.IHL = 6
	ip4Opts.Options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}
	tcp6 := serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolTCP), tcp(), gopacket.Payload("hello"))
	arpFrame := serialize(t, eth(layers.EthernetTypeARP), arp(1))
	ns := func(opts ...gopacket.SerializableLayer) []byte {
		return serialize(t, append([]gopacket.SerializableLayer{eth(layers.EthernetTypeIPv6),
			ip6(layers.IPProtocolICMPv6), icmp6(135, 0)}, opts...)...)
	}
	snap := func(oui []byte, typ layers.EthernetType, rest ...gopacket.SerializableLayer) []byte {
		return serialize(t, append([]gopacket.SerializableLayer{eth(layers.EthernetTypeLLC),
			&layers.LLC{DSAP: 0xaa, SSAP: 0xaa, Control: 3},
			&layers.SNAP{OrganizationalCode: oui, Type: typ}}, rest...)...)
	}
	ndOffsets := offsets(14, 54)
	vlan5 := VLAN{TPID: EthTypeVLAN, TCI: 5<<13 | VLANPresent | 100}

	return []extractCase{
		// Ethernet, VLANs and 802.3.
		{
			name:    "tcp4",
			inFrame: tcp4,
			wantKey: withTCP(keyIPv4(IPProtoTCP, 0)), wantOff: offsets(14, 34),
		},
		{
			name:    "tcp4 reserved flag bits",
			inFrame: edit(tcp4, func(b []byte) { b[34+12] |= 0x0e }),
			wantKey: func() Key { k := withTCP(keyIPv4(IPProtoTCP, 0)); k.TcpFlags |= 0xe00; return k }(),
			wantOff: offsets(14, 34),
		},
		{
			name:    "udp4",
			inFrame: udp4,
			wantKey: withPorts(keyIPv4(IPProtoUDP, 0), 5353, 53), wantOff: offsets(14, 34),
		},
		{
			name:    "sctp4",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolSCTP), &layers.SCTP{SrcPort: 3868, DstPort: 2905, VerificationTag: 9}),
			wantKey: withPorts(keyIPv4(IPProtoSCTP, 0), 3868, 2905), wantOff: offsets(14, 34),
		},
		{
			name:    "icmp4 echo request",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 2}),
			wantKey: withPorts(keyIPv4(IPProtoICMP, 0), 8, 0), wantOff: offsets(14, 34),
		},
		{
			name:    "icmp4 port unreachable",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 3)}),
			wantKey: withPorts(keyIPv4(IPProtoICMP, 0), 3, 3), wantOff: offsets(14, 34),
		},
		{
			name:    "ipv4 options",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv4), ip4Opts, udp()),
			wantKey: withPorts(keyIPv4(IPProtoUDP, 0), 5353, 53), wantOff: offsets(14, 38),
		},
		{
			name:    "ipv4 unknown protocol",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv4), ip4(protoGRE), gopacket.Payload{0, 0, 0x08, 0}),
			wantKey: keyIPv4(protoGRE, 0), wantOff: offsets(14, NoOffset),
		},
		{
			name:    "ipv4 dont fragment",
			inFrame: ip4Frag(layers.IPv4DontFragment, 0, udp()),
			wantKey: withPorts(keyIPv4(IPProtoUDP, 0), 5353, 53), wantOff: offsets(14, 34),
		},
		{
			name:    "ipv4 first fragment",
			inFrame: ip4Frag(layers.IPv4MoreFragments, 0, udp(), gopacket.Payload("0123456789abcdef")),
			wantKey: withPorts(keyIPv4(IPProtoUDP, FragAny), 5353, 53), wantOff: offsets(14, 34),
		},
		{
			name:    "ipv4 middle fragment",
			inFrame: ip4Frag(layers.IPv4MoreFragments, 3, gopacket.Payload("\x14\xe9\x00\x35abcdefgh")),
			wantKey: keyIPv4(IPProtoUDP, FragAny|FragLater), wantOff: offsets(14, NoOffset),
		},
		{
			name:    "ipv4 last fragment",
			inFrame: ip4Frag(0, 3, gopacket.Payload("\x14\xe9\x00\x35abcdefgh")),
			wantKey: keyIPv4(IPProtoUDP, FragAny|FragLater), wantOff: offsets(14, NoOffset),
		},
		{
			name: "ipv4 first fragment with the tcp header cut",
			inFrame: func() []byte {
				ip := ip4(layers.IPProtocolTCP)
				ip.Flags = layers.IPv4MoreFragments
				return serialize(t, eth(layers.EthernetTypeIPv4), ip, gopacket.Payload("\x9c\x40\x01\xbb\x00\x00\x00\x01"))
			}(),
			wantKey: keyIPv4(IPProtoTCP, FragAny), wantOff: offsets(14, NoOffset),
		},
		{
			name:    "tcp6",
			inFrame: tcp6,
			wantKey: withTCP(keyIPv6(IPProtoTCP, 0)), wantOff: offsets(14, 54),
		},
		{
			name: "ipv6 hop-by-hop, routing and destination options",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6HopByHop),
				ext(layers.IPProtocolIPv6Routing, 0, 1, 4, 0, 0, 0, 0),
				ext(layers.IPProtocolIPv6Destination, 2, append([]byte{4, 0, 0, 0, 0, 0}, testIP6a...)...),
				dstOpts(layers.IPProtocolUDP), udp()),
			wantKey: withPorts(keyIPv6(IPProtoUDP, 0), 5353, 53), wantOff: offsets(14, 54+8+24+8),
		},
		{
			name: "ipv6 authentication header",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolAH),
				ext(layers.IPProtocolTCP, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), tcp()),
			wantKey: withTCP(keyIPv6(IPProtoTCP, 0)), wantOff: offsets(14, 54+24),
		},
		{
			name:    "ipv6 eight extension headers",
			inFrame: serialize(t, eightDstOpts...),
			wantKey: withPorts(keyIPv6(IPProtoUDP, 0), 5353, 53), wantOff: offsets(14, 54+8*MaxIPv6ExtHeaders),
		},
		{
			name:    "ipv6 first fragment",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6Fragment), fragHdr(layers.IPProtocolUDP, 0, true), udp()),
			wantKey: withPorts(keyIPv6(IPProtoUDP, FragAny), 5353, 53), wantOff: offsets(14, 62),
		},
		{
			name:    "ipv6 later fragment",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6Fragment), fragHdr(layers.IPProtocolUDP, 185, true), udp()),
			wantKey: keyIPv6(ipProtoFragment, FragAny|FragLater), wantOff: offsets(14, NoOffset),
		},
		{
			name:    "ipv6 atomic fragment",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6Fragment), fragHdr(layers.IPProtocolUDP, 0, false), udp()),
			wantKey: withPorts(keyIPv6(IPProtoUDP, 0), 5353, 53), wantOff: offsets(14, 62),
		},
		{
			name: "ipv6 fragment with reserved bits",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6Fragment),
				ext(layers.IPProtocolUDP, 0, 0, 0x06, 0, 0, 0, 1), udp()),
			wantKey: withPorts(keyIPv6(IPProtoUDP, FragAny), 5353, 53), wantOff: offsets(14, 62),
		},
		{
			name:    "ipv6 no next header",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(protoNoNext), gopacket.Payload("xy")),
			wantKey: keyIPv6(protoNoNext, 0), wantOff: offsets(14, NoOffset),
		},
		{
			name:    "icmpv6 echo request",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolICMPv6), icmp6(128, 0), &layers.ICMPv6Echo{Identifier: 1, SeqNumber: 2}),
			wantKey: withPorts(keyIPv6(IPProtoICMPv6, 0), 128, 0), wantOff: offsets(14, 54),
		},
		{
			name:    "nd solicitation",
			inFrame: ns(nsLayer(lla(layers.ICMPv6OptSourceAddress, testSha))),
			wantKey: withND(withPorts(keyIPv6(IPProtoICMPv6, 0), 135, 0), testSha, none), wantOff: ndOffsets,
		},
		{
			name: "nd advertisement",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolICMPv6), icmp6(136, 0),
				naLayer(lla(layers.ICMPv6OptTargetAddress, testTha))),
			wantKey: withND(withPorts(keyIPv6(IPProtoICMPv6, 0), 136, 0), none, testTha), wantOff: ndOffsets,
		},
		{
			name: "nd solicitation with other options",
			inFrame: ns(nsLayer(layers.ICMPv6Option{Type: layers.ICMPv6OptMTU, Data: []byte{0, 0, 0, 0, 5, 0xdc}},
				lla(layers.ICMPv6OptSourceAddress, testSha), lla(layers.ICMPv6OptTargetAddress, testTha))),
			wantKey: withND(withPorts(keyIPv6(IPProtoICMPv6, 0), 135, 0), testSha, testTha), wantOff: ndOffsets,
		},
		{
			name:    "nd link-layer option of 16 bytes is ignored",
			inFrame: ns(nsLayer(layers.ICMPv6Option{Type: layers.ICMPv6OptSourceAddress, Data: append(testSha[:], make([]byte, 8)...)})),
			wantKey: withND(withPorts(keyIPv6(IPProtoICMPv6, 0), 135, 0), none, none), wantOff: ndOffsets,
		},
		{
			name:    "nd zero source address then another",
			inFrame: ns(nsLayer(lla(layers.ICMPv6OptSourceAddress, none), lla(layers.ICMPv6OptSourceAddress, testSha))),
			wantKey: withND(withPorts(keyIPv6(IPProtoICMPv6, 0), 135, 0), testSha, none), wantOff: ndOffsets,
		},
		{
			name:    "nd repeated source address",
			inFrame: ns(nsLayer(lla(layers.ICMPv6OptSourceAddress, testSha), lla(layers.ICMPv6OptTargetAddress, testTha), lla(layers.ICMPv6OptSourceAddress, testTha))),
			wantKey: withPorts(keyIPv6(IPProtoICMPv6, 0), 135, 0), wantOff: ndOffsets,
			wantWhy: MalformedBadNDOption,
		},
		{
			name:    "nd option of length zero",
			inFrame: ns(nsLayer(lla(layers.ICMPv6OptSourceAddress, testSha)), gopacket.Payload{2, 0, 1, 2, 3, 4, 5, 6}),
			wantKey: withND(withPorts(keyIPv6(IPProtoICMPv6, 0), 135, 0), testSha, none), wantOff: ndOffsets,
			wantWhy: MalformedBadNDOption,
		},
		{
			name:    "nd option past the end",
			inFrame: ns(nsLayer(lla(layers.ICMPv6OptSourceAddress, testSha)), gopacket.Payload{2, 2, 1, 2, 3, 4, 5, 6}),
			wantKey: withND(withPorts(keyIPv6(IPProtoICMPv6, 0), 135, 0), testSha, none), wantOff: ndOffsets,
			wantWhy: MalformedBadNDOption,
		},
		{
			name:    "nd target cut",
			inFrame: ns(gopacket.Payload{0, 0, 0, 0, 0x20, 0x01, 0x0d, 0xb8}),
			wantKey: withPorts(keyIPv6(IPProtoICMPv6, 0), 135, 0), wantOff: ndOffsets,
			wantWhy: MalformedTruncatedND,
		},
		{
			name: "nd solicitation with a non-zero code",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolICMPv6), icmp6(135, 1),
				nsLayer(lla(layers.ICMPv6OptSourceAddress, testSha))),
			wantKey: withPorts(keyIPv6(IPProtoICMPv6, 0), 135, 1), wantOff: ndOffsets,
		},
		{
			name:    "arp request",
			inFrame: arpFrame,
			wantKey: keyARP(EthTypeARP, 1), wantOff: offsets(14, NoOffset),
		},
		{
			name:    "rarp reply",
			inFrame: serialize(t, eth(layers.EthernetType(EthTypeRARP)), arp(4)),
			wantKey: keyARP(EthTypeRARP, 4), wantOff: offsets(14, NoOffset),
		},
		{
			name:    "arp opcode above 255",
			inFrame: serialize(t, eth(layers.EthernetTypeARP), arp(0x0101)),
			wantKey: keyARP(EthTypeARP, 0), wantOff: offsets(14, NoOffset),
		},
		{
			name:    "arp for another hardware type",
			inFrame: serialize(t, eth(layers.EthernetTypeARP), func() *layers.ARP { a := arp(1); a.AddrType = layers.LinkTypeTokenRing; return a }()),
			wantKey: keyL2(EthTypeARP), wantOff: offsets(14, NoOffset),
		},
		{
			name:    "vlan",
			inFrame: serialize(t, eth(layers.EthernetTypeDot1Q), dot1q(5, 100, layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp()),
			wantKey: withVLANs(withPorts(keyIPv4(IPProtoUDP, 0), 5353, 53), vlan5), wantOff: offsets(18, 38),
		},
		{
			name: "vlan with the drop eligible bit",
			inFrame: serialize(t, eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{Priority: 5, DropEligible: true, VLANIdentifier: 100, Type: layers.EthernetTypeARP},
				arp(2)),
			wantKey: withVLANs(keyARP(EthTypeARP, 2), vlan5), wantOff: offsets(18, NoOffset),
		},
		{
			name: "qinq",
			inFrame: serialize(t, eth(layers.EthernetTypeQinQ), dot1q(3, 10, layers.EthernetTypeDot1Q), dot1q(0, 4095, layers.EthernetTypeIPv6),
				ip6(layers.IPProtocolTCP), tcp()),
			wantKey: withVLANs(withTCP(keyIPv6(IPProtoTCP, 0)),
				VLAN{TPID: EthTypeQinQ, TCI: 3<<13 | VLANPresent | 10}, VLAN{TPID: EthTypeVLAN, TCI: VLANPresent | 4095}),
			wantOff: offsets(22, 62),
		},
		{
			name: "three vlan tags",
			inFrame: serialize(t, eth(layers.EthernetTypeQinQ), dot1q(1, 1, layers.EthernetTypeDot1Q), dot1q(2, 2, layers.EthernetTypeDot1Q),
				dot1q(3, 3, layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp()),
			wantKey: withVLANs(keyL2(EthTypeVLAN),
				VLAN{TPID: EthTypeQinQ, TCI: 1<<13 | VLANPresent | 1}, VLAN{TPID: EthTypeVLAN, TCI: 2<<13 | VLANPresent | 2}),
			wantOff: offsets(22, NoOffset),
		},
		{
			name:    "802.3 llc",
			inFrame: serialize(t, eth(layers.EthernetTypeLLC), &layers.LLC{DSAP: 0x42, SSAP: 0x42, Control: 3}, gopacket.Payload{0, 0, 0, 0}),
			wantKey: keyL2(EthTypeNone), wantOff: offsets(14, NoOffset),
		},
		{
			name:    "802.3 snap with ipv4",
			inFrame: snap([]byte{0, 0, 0}, layers.EthernetTypeIPv4, ip4(layers.IPProtocolUDP), udp()),
			wantKey: withPorts(keyIPv4(IPProtoUDP, 0), 5353, 53), wantOff: offsets(22, 42),
		},
		{
			name:    "802.3 snap with another oui",
			inFrame: snap([]byte{0, 0, 0x0c}, 0x2000, gopacket.Payload("cdp")),
			wantKey: keyL2(EthTypeNone), wantOff: offsets(14, NoOffset),
		},
		{
			name:    "802.3 snap with a length for type",
			inFrame: snap([]byte{0, 0, 0}, 0x0100),
			wantKey: keyL2(EthTypeNone), wantOff: offsets(22, NoOffset),
		},
		{
			name:    "802.3 too short for snap",
			inFrame: []byte{0x02, 0, 0, 0, 0, 0x0d, 0x02, 0, 0, 0, 0, 0x05, 0, 3, 0xaa, 0xaa, 0x03},
			wantKey: keyL2(EthTypeNone), wantOff: offsets(14, NoOffset),
		},
		{
			name:    "unknown ethertype",
			inFrame: serialize(t, eth(layers.EthernetTypeLinkLayerDiscovery), gopacket.Payload("lldp")),
			wantKey: keyL2(0x88cc), wantOff: offsets(14, NoOffset),
		},

		// Malformed frames.
		{
			name:    "empty",
			inFrame: nil,
			wantKey: Key{InPort: testInPort}, wantOff: offsets(NoOffset, NoOffset),
			wantWhy: MalformedTruncatedEthernet,
		},
		{
			name:    "ethernet cut",
			inFrame: tcp4[:13],
			wantKey: Key{InPort: testInPort}, wantOff: offsets(NoOffset, NoOffset),
			wantWhy: MalformedTruncatedEthernet,
		},
		{
			name:    "vlan tag cut",
			inFrame: append(append([]byte(nil), tcp4[:12]...), 0x81, 0x00, 0x00, 0x05, 0x08),
			wantKey: keyL2(EthTypeVLAN), wantOff: offsets(NoOffset, NoOffset),
			wantWhy: MalformedTruncatedVLAN,
		},
		{
			name:    "second vlan tag cut",
			inFrame: append(append([]byte(nil), tcp4[:12]...), 0x88, 0xa8, 0x00, 0x05, 0x81, 0x00, 0x00, 0x06),
			wantKey: withVLANs(keyL2(EthTypeVLAN), VLAN{TPID: EthTypeQinQ, TCI: VLANPresent | 5}),
			wantOff: offsets(NoOffset, NoOffset),
			wantWhy: MalformedTruncatedVLAN,
		},
		{
			name:    "arp cut",
			inFrame: arpFrame[:14+20],
			wantKey: keyL2(EthTypeARP), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedARP,
		},
		{
			name:    "arp fixed part cut",
			inFrame: arpFrame[:14+5],
			wantKey: keyL2(EthTypeARP), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedARP,
		},
		{
			name:    "ipv4 header cut",
			inFrame: tcp4[:14+19],
			wantKey: keyL2(EthTypeIPv4), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedIPv4,
		},
		{
			name:    "ipv4 ihl below 5",
			inFrame: edit(tcp4, func(b []byte) { b[14] = 0x44 }),
			wantKey: keyL2(EthTypeIPv4), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedBadIPv4Length,
		},
		{
			name:    "ipv4 options beyond the frame",
			inFrame: edit(tcp4[:14+24], func(b []byte) { b[14] = 0x4f; b[16], b[17] = 0, 60 }),
			wantKey: keyL2(EthTypeIPv4), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedIPv4,
		},
		{
			name:    "ipv4 total length below header length",
			inFrame: edit(tcp4, func(b []byte) { b[16], b[17] = 0, 19 }),
			wantKey: keyL2(EthTypeIPv4), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedBadIPv4Length,
		},
		{
			name:    "ipv4 total length beyond the frame",
			inFrame: edit(tcp4, func(b []byte) { b[16], b[17] = 0x05, 0xdc }),
			wantKey: keyL2(EthTypeIPv4), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedIPv4,
		},
		{
			name:    "tcp header cut",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolTCP), gopacket.Payload(tcp4[34:34+19])),
			wantKey: keyIPv4(IPProtoTCP, 0), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedTCP,
		},
		{
			name:    "udp header cut by the total length, not the frame",
			inFrame: edit(udp4, func(b []byte) { b[16], b[17] = 0, 27 }),
			wantKey: keyIPv4(IPProtoUDP, 0), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedUDP,
		},
		{
			name:    "sctp header cut",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolSCTP), gopacket.Payload("0123456789a")),
			wantKey: keyIPv4(IPProtoSCTP, 0), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedSCTP,
		},
		{
			name:    "icmp header cut",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolICMPv4), gopacket.Payload{8, 0, 0, 0}),
			wantKey: keyIPv4(IPProtoICMP, 0), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedICMP,
		},
		{
			name:    "ipv6 header cut",
			inFrame: tcp6[:14+39],
			wantKey: keyL2(EthTypeIPv6), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedIPv6,
		},
		{
			name:    "ipv6 payload length beyond the frame",
			inFrame: edit(tcp6, func(b []byte) { b[18]++ }),
			wantKey: keyL2(EthTypeIPv6), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedIPv6,
		},
		{
			name:    "ipv6 extension header cut",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolIPv6Destination), ext(layers.IPProtocolUDP, 1, 1, 4, 0, 0, 0, 0)),
			wantKey: keyIPv6Addrs(), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedIPv6Ext,
		},
		{
			name:    "ipv6 authentication header cut",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolAH), ext(layers.IPProtocolTCP, 4, 0, 0, 0, 0, 0, 1)),
			wantKey: keyIPv6Addrs(), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedIPv6Ext,
		},
		{
			name:    "ipv6 nine extension headers",
			inFrame: serialize(t, nineDstOpts...),
			wantKey: keyIPv6Addrs(), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedIPv6ExtChain,
		},
		{
			name:    "udp6 header cut",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolUDP), gopacket.Payload("1234567")),
			wantKey: keyIPv6(IPProtoUDP, 0), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedUDP,
		},
		{
			name:    "icmpv6 header cut",
			inFrame: serialize(t, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolICMPv6), gopacket.Payload{128, 0, 0, 0}),
			wantKey: keyIPv6(IPProtoICMPv6, 0), wantOff: offsets(14, NoOffset),
			wantWhy: MalformedTruncatedICMPv6,
		},
	}
}

func TestExtract(t *testing.T) {
	for _, tc := range extractCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			var k Key
			var off Offsets
			why := Extract(&k, &off, tc.inFrame, testInPort)
			if why != tc.wantWhy {
				t.Errorf("Extract = %v, want %v", why, tc.wantWhy)
			}
			if k != tc.wantKey {
				t.Errorf("key differs: %s", keyDiff(&k, &tc.wantKey))
			}
			if off != tc.wantOff {
				t.Errorf("offsets = %+v, want %+v", off, tc.wantOff)
			}
			checkInvariants(t, tc.inFrame, &k, &off, why)
		})
	}
}

// TestExtractAgreesWithReference runs the table through the gopacket
// reference too, so that the reference itself is checked against the
// hand-written expectations wherever it calls a frame valid.
func TestExtractAgreesWithReference(t *testing.T) {
	valid := 0
	for _, tc := range extractCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			ref := referenceKey(tc.inFrame, testInPort)
			if ref.invalid != "" {
				if tc.wantWhy == MalformedNone {
					t.Logf("reference excludes it: %s", ref.invalid)
				}
				return
			}
			valid++
			if ref.key != tc.wantKey {
				t.Errorf("reference key differs from the table: %s", keyDiff(&ref.key, &tc.wantKey))
			}
			if ref.off != tc.wantOff {
				t.Errorf("reference offsets = %+v, want %+v", ref.off, tc.wantOff)
			}
		})
	}
	if valid < 40 {
		t.Errorf("the reference accepts only %d table frames; it is excluding too much", valid)
	}
}

// TestExtractResets checks that nothing of a previous key or offsets
// survives an extraction.
func TestExtractResets(t *testing.T) {
	for _, tc := range extractCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			var k Key
			for i := range k.Words() {
				k.Words()[i] = ^uint64(0)
			}
			off := Offsets{L3: 1, L4: 2}
			Extract(&k, &off, tc.inFrame, testInPort)
			if k != tc.wantKey || off != tc.wantOff {
				t.Errorf("after a dirty key: key diff %s; offsets %+v, want %+v", keyDiff(&k, &tc.wantKey), off, tc.wantOff)
			}
		})
	}
}

// TestExtractTruncatedTCP6 cuts a VLAN-tagged TCP/IPv6 frame with a
// hop-by-hop header at every byte, two ways: cutting the frame (the IPv6
// payload length then overruns it) and cutting the IPv6 payload with the
// payload length fixed to match (so the extension and TCP headers are what
// is short).
func TestExtractTruncatedTCP6(t *testing.T) {
	frame := serialize(t, eth(layers.EthernetTypeDot1Q), dot1q(2, 42, layers.EthernetTypeIPv6),
		ip6(layers.IPProtocolIPv6HopByHop), dstOpts(layers.IPProtocolTCP), tcp(), gopacket.Payload("data"))
	const l3, ipEnd, extEnd, tcpEnd = 18, 18 + 40, 18 + 48, 18 + 48 + 20
	tag := VLAN{TPID: EthTypeVLAN, TCI: 2<<13 | VLANPresent | 42}
	full := withVLANs(withTCP(keyIPv6(IPProtoTCP, 0)), tag)
	l2 := withVLANs(keyL2(EthTypeIPv6), tag)
	addrs := l2
	addrs.IPv6Src, addrs.IPv6Dst = full.IPv6Src, full.IPv6Dst
	l3Only := full
	l3Only.TpSrc, l3Only.TpDst, l3Only.TcpFlags = 0, 0, 0

	t.Run("frame", func(t *testing.T) {
		for n := 0; n <= len(frame); n++ {
			var wantKey Key
			var wantOff Offsets
			var wantWhy Malformed
			switch {
			case n < 14:
				wantKey, wantOff, wantWhy = Key{InPort: testInPort}, offsets(NoOffset, NoOffset), MalformedTruncatedEthernet
			case n < l3:
				wantKey, wantOff, wantWhy = keyL2(EthTypeVLAN), offsets(NoOffset, NoOffset), MalformedTruncatedVLAN
			case n < len(frame):
				wantKey, wantOff, wantWhy = l2, offsets(l3, NoOffset), MalformedTruncatedIPv6
			default:
				wantKey, wantOff, wantWhy = full, offsets(l3, extEnd), MalformedNone
			}
			checkExtract(t, frame[:n], wantKey, wantOff, wantWhy)
		}
	})
	t.Run("payload", func(t *testing.T) {
		for n := ipEnd; n <= len(frame); n++ {
			in := edit(frame[:n], func(b []byte) {
				b[l3+4], b[l3+5] = byte((n-ipEnd)>>8), byte(n-ipEnd)
			})
			var wantKey Key
			var wantOff Offsets
			var wantWhy Malformed
			switch {
			case n < extEnd:
				wantKey, wantOff, wantWhy = addrs, offsets(l3, NoOffset), MalformedTruncatedIPv6Ext
			case n < tcpEnd:
				wantKey, wantOff, wantWhy = l3Only, offsets(l3, NoOffset), MalformedTruncatedTCP
			default:
				wantKey, wantOff, wantWhy = full, offsets(l3, extEnd), MalformedNone
			}
			checkExtract(t, in, wantKey, wantOff, wantWhy)
		}
	})
}

func checkExtract(t *testing.T, frame []byte, wantKey Key, wantOff Offsets, wantWhy Malformed) {
	t.Helper()
	var k Key
	var off Offsets
	why := Extract(&k, &off, frame, testInPort)
	if why != wantWhy || k != wantKey || off != wantOff {
		t.Errorf("%d bytes: Extract = %v, offsets %+v, key diff %q; want %v, %+v",
			len(frame), why, off, keyDiff(&k, &wantKey), wantWhy, wantOff)
	}
	checkInvariants(t, frame, &k, &off, why)
}

func TestExtractAllocs(t *testing.T) {
	cases := extractCases(t)
	var k Key
	var off Offsets
	allocs := testing.AllocsPerRun(100, func() {
		for _, tc := range cases {
			Extract(&k, &off, tc.inFrame, testInPort)
		}
	})
	if allocs != 0 {
		t.Errorf("Extract allocates %v times per run of %d frames, want 0", allocs, len(cases))
	}
}

func TestMalformedString(t *testing.T) {
	seen := map[string]Malformed{}
	for m := MalformedNone; m < NumMalformed; m++ {
		s := m.String()
		if s == "" {
			t.Errorf("Malformed(%d) has no name", m)
		}
		if prev, ok := seen[s]; ok {
			t.Errorf("Malformed(%d) and Malformed(%d) are both %q", prev, m, s)
		}
		seen[s] = m
	}
	if got, want := MalformedTruncatedVLAN.String(), "truncated-vlan"; got != want {
		t.Errorf("MalformedTruncatedVLAN = %q, want %q", got, want)
	}
	if got, want := NumMalformed.String(), "malformed(16)"; got != want {
		t.Errorf("NumMalformed = %q, want %q", got, want)
	}
}

// checkInvariants asserts what must hold for any extraction, whatever the
// input.
func checkInvariants(t *testing.T, frame []byte, k *Key, off *Offsets, why Malformed) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("invariant: "+format+" (frame %x, reason %v, offsets %+v, key %+v)",
			append(args, frame, why, *off, *k)...)
	}
	if why >= NumMalformed {
		fail("reason %d out of range", why)
	}
	if k.InPort != testInPort {
		fail("in_port %d", k.InPort)
	}
	if k.Words()[KeyWords-1]&0xffffffff00000000 != 0 {
		fail("padding not zero")
	}
	l2Done := len(frame) >= ethHeaderLen
	if !l2Done && (*k != Key{InPort: k.InPort}) {
		fail("fields set in a frame shorter than an Ethernet header")
	}
	if l2Done && (k.DlDst != [6]byte(frame[0:6]) || k.DlSrc != [6]byte(frame[6:12])) {
		fail("Ethernet addresses differ from the frame")
	}
	if l2Done && k.DlType == 0 {
		fail("dl_type 0 for a whole Ethernet header")
	}
	for i, v := range k.VLANs {
		present := v.TCI&VLANPresent != 0
		if present != (v.TPID != 0) || (present && v.TPID != EthTypeVLAN && v.TPID != EthTypeQinQ) {
			fail("vlan %d = %+v", i, v)
		}
	}
	if k.VLANs[1].TPID != 0 && k.VLANs[0].TPID == 0 {
		fail("inner vlan without outer")
	}

	// Offsets.
	if (off.L3 == NoOffset) != (!l2Done || why == MalformedTruncatedVLAN) {
		fail("L3 offset presence")
	}
	if off.L3 != NoOffset && int(off.L3) > len(frame) {
		fail("L3 offset beyond the frame")
	}
	if off.L4 != NoOffset && (off.L3 == NoOffset || off.L4 <= off.L3 || int(off.L4) > len(frame)) {
		fail("L4 offset")
	}

	// Fields of a layer that is absent stay zero.
	isIP := k.DlType == EthTypeIPv4 || k.DlType == EthTypeIPv6
	isARP := k.DlType == EthTypeARP || k.DlType == EthTypeRARP
	if !isIP && !isARP && (k.NwSrc != 0 || k.NwDst != 0 || k.NwProto != 0 || k.ArpSha != [6]byte{} || k.ArpTha != [6]byte{}) {
		fail("network fields without IP or ARP")
	}
	if !isIP && (k.NwTos != 0 || k.NwTTL != 0 || k.NwFrag != 0 || k.IPv6Label != 0 ||
		k.TpSrc != 0 || k.TpDst != 0 || k.TcpFlags != 0 || off.L4 != NoOffset) {
		fail("IP or transport fields without IP")
	}
	if k.DlType != EthTypeIPv6 && (k.IPv6Src != [16]byte{} || k.IPv6Dst != [16]byte{} || k.IPv6Label != 0) {
		fail("IPv6 fields without IPv6")
	}
	if k.IPv6Label&^0xfffff != 0 {
		fail("flow label wider than 20 bits")
	}
	if k.NwFrag&^(FragAny|FragLater) != 0 || (k.NwFrag&FragLater != 0 && k.NwFrag&FragAny == 0) {
		fail("nw_frag %#x", k.NwFrag)
	}
	if k.NwFrag&FragLater != 0 && (k.TpSrc != 0 || k.TpDst != 0 || k.TcpFlags != 0 || off.L4 != NoOffset) {
		fail("transport fields in a later fragment")
	}
	if k.TcpFlags&^0x0fff != 0 || (k.TcpFlags != 0 && k.NwProto != IPProtoTCP) {
		fail("tcp_flags %#x with protocol %d", k.TcpFlags, k.NwProto)
	}
	if (k.TpSrc != 0 || k.TpDst != 0) && off.L4 == NoOffset {
		fail("transport fields without an L4 offset")
	}
	if isIP && (k.NdTarget != [16]byte{} || k.ArpSha != [6]byte{} || k.ArpTha != [6]byte{}) &&
		(k.NwProto != IPProtoICMPv6 || k.TpDst != 0 || (k.TpSrc != ndSolicit && k.TpSrc != ndAdvert)) {
		fail("ND fields outside neighbour discovery")
	}
	if isIP && why == MalformedNone && off.L4 == NoOffset && k.NwFrag&FragLater == 0 && k.NwFrag&FragAny == 0 {
		switch k.NwProto {
		case IPProtoTCP, IPProtoUDP, IPProtoSCTP, IPProtoICMP, IPProtoICMPv6:
			fail("a whole transport header without an L4 offset")
		}
	}
}

// TestExtractCommonAgrees checks that Extract's one-pass path for common
// frames gives exactly what the general path gives, on every table frame and
// every prefix of it (FuzzExtract and the capture corpus check it too).
func TestExtractCommonAgrees(t *testing.T) {
	took := 0
	for _, tc := range extractCases(t) {
		for n := 0; n <= len(tc.inFrame); n++ {
			frame := tc.inFrame[:n]
			var k, general Key
			var off, generalOff Offsets
			why := Extract(&k, &off, frame, testInPort)
			general.InPort = testInPort
			generalWhy := extractGeneral(&general, &generalOff, frame)
			if why != generalWhy || k != general || off != generalOff {
				t.Fatalf("%s cut at %d: Extract %v %+v, general %v %+v, key diff %s", tc.name, n, why, off, generalWhy, generalOff, keyDiff(&k, &general))
			}
			var scratch Key
			var scratchOff Offsets
			if _, plain := extract(&scratch, &scratchOff, frame, testInPort, false); plain {
				took++
			}
		}
	}
	if took == 0 {
		t.Fatal("the one-pass path took no frame")
	}
	t.Logf("the one-pass path took %d of the frames", took)
}
