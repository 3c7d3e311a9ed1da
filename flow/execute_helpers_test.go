package flow

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// frameSpec describes a test frame layer by layer; build serializes it with
// gopacket, lengths and checksums computed. Specs are values whose layers
// are built fresh by each constructor call, so a case can build its input
// and, from another call, mutate and build the frame it expects.
type frameSpec struct {
	eth       layers.Ethernet
	tags      []testTag
	ip4       *layers.IPv4
	ip6       *layers.IPv6
	arp       *layers.ARP
	tcp       *layers.TCP
	udp       *layers.UDP
	sctp      *layers.SCTP
	icmp4     *layers.ICMPv4
	icmp6     *layers.ICMPv6
	icmp6Body gopacket.SerializableLayer // *ICMPv6Echo, *ICMPv6NeighborSolicitation, ...
	payload   []byte
	udpNoCsum bool // zero the UDP checksum after serializing
}

type testTag struct {
	tpid uint16
	pcp  uint8
	vid  uint16
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func macValue(s string) uint64 {
	var v uint64
	for _, b := range mustMAC(s) {
		v = v<<8 | uint64(b)
	}
	return v
}

func ipValue(s string) uint64 {
	a := netip.MustParseAddr(s).As4()
	return uint64(binary.BigEndian.Uint32(a[:]))
}

func ip6Bytes(s string) [16]byte { return netip.MustParseAddr(s).As16() }

func ethSpec() layers.Ethernet {
	return layers.Ethernet{SrcMAC: mustMAC("02:00:00:00:00:01"), DstMAC: mustMAC("02:00:00:00:00:02")}
}

func ip4Layer(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{
		Version: 4, TTL: 64, TOS: 0x28 | 0x1, Id: 0x1234, Flags: layers.IPv4DontFragment,
		Protocol: proto, SrcIP: net.IPv4(10, 0, 0, 1), DstIP: net.IPv4(192, 168, 7, 200),
	}
}

func ip6Layer(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{
		Version: 6, TrafficClass: 0xb8 | 0x2, FlowLabel: 0x12345, HopLimit: 64, NextHeader: next,
		SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8:ffff::abcd"),
	}
}

var testPayload = []byte("0123456789abcdefghijklmnopqrstuvwxyz-payload")

func ipv4TCP() frameSpec {
	return frameSpec{eth: ethSpec(), ip4: ip4Layer(layers.IPProtocolTCP),
		tcp: &layers.TCP{SrcPort: 33000, DstPort: 80, Seq: 7, Ack: 9, ACK: true, PSH: true, Window: 512}, payload: testPayload}
}

func ipv4UDP() frameSpec {
	return frameSpec{eth: ethSpec(), ip4: ip4Layer(layers.IPProtocolUDP),
		udp: &layers.UDP{SrcPort: 5353, DstPort: 53}, payload: testPayload}
}

func ipv4UDPNoCsum() frameSpec {
	s := ipv4UDP()
	s.udpNoCsum = true
	return s
}

func ipv4ICMP() frameSpec {
	return frameSpec{eth: ethSpec(), ip4: ip4Layer(layers.IPProtocolICMPv4),
		icmp4: &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 77, Seq: 3}, payload: testPayload}
}

func ipv4SCTP() frameSpec {
	return frameSpec{eth: ethSpec(), ip4: ip4Layer(layers.IPProtocolSCTP),
		sctp: &layers.SCTP{SrcPort: 2905, DstPort: 2906, VerificationTag: 0xdeadbeef}, payload: testPayload}
}

func ipv4Options() frameSpec {
	s := ipv4TCP()
	s.ip4.Options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}}
	return s
}

func ipv6TCP() frameSpec {
	return frameSpec{eth: ethSpec(), ip6: ip6Layer(layers.IPProtocolTCP),
		tcp: &layers.TCP{SrcPort: 44000, DstPort: 443, Seq: 1, SYN: true, Window: 1024}, payload: testPayload}
}

func ipv6UDP() frameSpec {
	return frameSpec{eth: ethSpec(), ip6: ip6Layer(layers.IPProtocolUDP),
		udp: &layers.UDP{SrcPort: 546, DstPort: 547}, payload: testPayload}
}

func ipv6SCTP() frameSpec {
	return frameSpec{eth: ethSpec(), ip6: ip6Layer(layers.IPProtocolSCTP),
		sctp: &layers.SCTP{SrcPort: 36412, DstPort: 36412, VerificationTag: 1}, payload: testPayload}
}

func ipv6Echo() frameSpec {
	return frameSpec{eth: ethSpec(), ip6: ip6Layer(layers.IPProtocolICMPv6),
		icmp6:     &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)},
		icmp6Body: &layers.ICMPv6Echo{Identifier: 5, SeqNumber: 6}, payload: testPayload}
}

func ipv6NS() frameSpec {
	return frameSpec{eth: ethSpec(), ip6: ip6Layer(layers.IPProtocolICMPv6),
		icmp6: &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)},
		icmp6Body: &layers.ICMPv6NeighborSolicitation{
			TargetAddress: net.ParseIP("2001:db8::77"),
			Options: layers.ICMPv6Options{
				{Type: 14, Data: []byte{1, 2, 3, 4, 5, 6}}, // nonce, skipped
				{Type: layers.ICMPv6OptSourceAddress, Data: mustMAC("02:00:00:00:00:01")},
			},
		}}
}

func ipv6NA() frameSpec {
	return frameSpec{eth: ethSpec(), ip6: ip6Layer(layers.IPProtocolICMPv6),
		icmp6: &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(136, 0)},
		icmp6Body: &layers.ICMPv6NeighborAdvertisement{
			Flags:         0x60,
			TargetAddress: net.ParseIP("2001:db8::77"),
			Options:       layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: mustMAC("02:00:00:00:00:77")}},
		}}
}

func arpRequest() frameSpec {
	return frameSpec{eth: layers.Ethernet{SrcMAC: mustMAC("02:00:00:00:00:01"), DstMAC: mustMAC("ff:ff:ff:ff:ff:ff")},
		arp: &layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: mustMAC("02:00:00:00:00:01"), SourceProtAddress: net.IPv4(10, 0, 0, 1).To4(),
			DstHwAddress: make([]byte, 6), DstProtAddress: net.IPv4(10, 0, 0, 2).To4(),
		},
		// Trailing bytes, so that gopacket does not pad the frame to the
		// Ethernet minimum with or without a tag.
		payload: make([]byte, 22)}
}

// tagged adds VLAN tags, outermost first, to a constructor's spec.
func tagged(f func() frameSpec, tags ...testTag) func() frameSpec {
	return func() frameSpec {
		s := f()
		s.tags = append([]testTag(nil), tags...)
		return s
	}
}

func vlanTag(vid uint16, pcp uint8) testTag { return testTag{tpid: EthTypeVLAN, vid: vid, pcp: pcp} }
func dot1ad(vid uint16, pcp uint8) testTag  { return testTag{tpid: EthTypeQinQ, vid: vid, pcp: pcp} }

// build serializes the spec.
func (s frameSpec) build(tb testing.TB) []byte {
	tb.Helper()
	var ls []gopacket.SerializableLayer
	var netType layers.EthernetType
	var nl gopacket.NetworkLayer
	switch {
	case s.ip4 != nil:
		netType, nl = layers.EthernetTypeIPv4, s.ip4
	case s.ip6 != nil:
		netType, nl = layers.EthernetTypeIPv6, s.ip6
	case s.arp != nil:
		netType = layers.EthernetTypeARP
	}
	eth := s.eth
	eth.EthernetType = netType
	if len(s.tags) > 0 {
		eth.EthernetType = layers.EthernetType(s.tags[0].tpid)
	}
	ls = append(ls, &eth)
	for i, t := range s.tags {
		next := netType
		if i+1 < len(s.tags) {
			next = layers.EthernetType(s.tags[i+1].tpid)
		}
		ls = append(ls, &layers.Dot1Q{Priority: t.pcp, VLANIdentifier: t.vid, Type: next})
	}
	for _, l := range []gopacket.SerializableLayer{s.ip4, s.ip6, s.arp} {
		if l != nil && !isNilLayer(l) {
			ls = append(ls, l)
		}
	}
	switch {
	case s.tcp != nil:
		s.tcp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, s.tcp)
	case s.udp != nil:
		s.udp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, s.udp)
	case s.sctp != nil:
		ls = append(ls, s.sctp)
	case s.icmp4 != nil:
		ls = append(ls, s.icmp4)
	case s.icmp6 != nil:
		s.icmp6.SetNetworkLayerForChecksum(nl)
		ls = append(ls, s.icmp6, s.icmp6Body)
	}
	if len(s.payload) > 0 {
		ls = append(ls, gopacket.Payload(s.payload))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	frame := append([]byte(nil), buf.Bytes()...)
	if s.udpNoCsum {
		var k Key
		var off Offsets
		Extract(&k, &off, frame, 1)
		if off.L4 == NoOffset {
			tb.Fatal("udpNoCsum: no L4 header")
		}
		frame[off.L4+6], frame[off.L4+7] = 0, 0
	}
	return frame
}

// isNilLayer reports whether l is a typed nil pointer.
func isNilLayer(l gopacket.SerializableLayer) bool {
	switch v := l.(type) {
	case *layers.IPv4:
		return v == nil
	case *layers.IPv6:
		return v == nil
	case *layers.ARP:
		return v == nil
	}
	return false
}

// Action constructors.
func output(port uint32) Action      { return Action{Type: ActOutput, Port: port} }
func set(f FieldID, v uint64) Action { return Action{Type: ActSetField, Field: f, Value: v} }
func set6(f FieldID, ip string) Action {
	return Action{Type: ActSetField, Field: f, IPv6: ip6Bytes(ip)}
}
func act(t ActionType, v uint64) Action { return Action{Type: t, Value: v} }
func withSpare(frame []byte, spare int) []byte {
	b := make([]byte, len(frame), len(frame)+spare)
	copy(b, frame)
	return b
}

// extracted returns the key and offsets of frame.
func extracted(frame []byte, inPort uint32) (Key, Offsets) {
	var k Key
	var off Offsets
	Extract(&k, &off, frame, inPort)
	return k, off
}
