package tunnel

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// innerFrame returns an Ethernet frame carrying an ICMP echo request of n
// payload bytes, built with gopacket.
func innerFrame(t testing.TB, n int) []byte {
	t.Helper()
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = byte(i)
	}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
		&layers.Ethernet{
			SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a},
			DstMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b},
			EthernetType: layers.EthernetTypeIPv4,
		},
		&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: net.IP{10, 9, 0, 1}, DstIP: net.IP{10, 9, 0, 2}},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1},
		gopacket.Payload(payload),
	)
	if err != nil {
		t.Fatalf("build inner frame: %v", err)
	}
	return buf.Bytes()
}

// option encodes one Geneve option TLV with data of a multiple of 4 bytes.
func option(class uint16, typ byte, data ...byte) []byte {
	o := make([]byte, 4, 4+len(data))
	binary.BigEndian.PutUint16(o, class)
	o[2] = typ
	o[3] = byte(len(data) / 4)
	return append(o, data...)
}

// refGeneve writes a Geneve header field by field from RFC 8926's figure,
// independently of the encoder.
func refGeneve(c Config) []byte {
	b := make([]byte, 8, 8+len(c.Options))
	b[0] = byte(len(c.Options) / 4) // version 0
	if c.OAM {
		b[1] |= 1 << 7
	}
	if c.Critical {
		b[1] |= 1 << 6
	}
	b[2], b[3] = 0x65, 0x58
	b[4], b[5], b[6] = byte(c.VNI>>16), byte(c.VNI>>8), byte(c.VNI)
	return append(b, c.Options...)
}

// reference builds the encapsulation of inner under c with gopacket.
func reference(t testing.TB, c Config, inner []byte, srcPort, ipID uint16) []byte {
	t.Helper()
	ttl := c.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	dport := c.DstPort
	if dport == 0 {
		dport = c.Kind.DefaultPort()
	}
	eth := &layers.Ethernet{SrcMAC: c.EthSrc[:], DstMAC: c.EthDst[:]}
	udp := &layers.UDP{SrcPort: layers.UDPPort(srcPort), DstPort: layers.UDPPort(dport)}
	var ip gopacket.SerializableLayer
	if c.Dst.Is6() {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, TrafficClass: c.TOS, HopLimit: ttl, NextHeader: layers.IPProtocolUDP,
			SrcIP: c.Src.AsSlice(), DstIP: c.Dst.AsSlice()}
		check(t, udp.SetNetworkLayerForChecksum(ip6))
		ip = ip6
	} else {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TOS: c.TOS, Id: ipID, TTL: ttl, Protocol: layers.IPProtocolUDP,
			SrcIP: c.Src.AsSlice(), DstIP: c.Dst.AsSlice()}
		if c.DF {
			ip4.Flags = layers.IPv4DontFragment
		}
		check(t, udp.SetNetworkLayerForChecksum(ip4))
		ip = ip4
	}
	var tun gopacket.SerializableLayer
	if c.Kind == VXLAN {
		tun = &layers.VXLAN{ValidIDFlag: true, VNI: c.VNI}
	} else {
		tun = gopacket.Payload(refGeneve(c))
	}
	buf := gopacket.NewSerializeBuffer()
	check(t, gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
		eth, ip, udp, tun, gopacket.Payload(inner)))
	out := buf.Bytes()
	if !c.Csum {
		off := EthLen + IPv4Len
		if c.Dst.Is6() {
			off = EthLen + IPv6Len
		}
		out[off+6], out[off+7] = 0, 0
	}
	return out
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var (
	macA = [6]byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x01}
	macB = [6]byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x02}
	v4A  = netip.MustParseAddr("192.0.2.1")
	v4B  = netip.MustParseAddr("192.0.2.2")
	v6A  = netip.MustParseAddr("2001:db8::1")
	v6B  = netip.MustParseAddr("2001:db8::2")
)

// configs are the encapsulations the tests cover: both kinds over both
// families, with and without checksums, DF, options and flags.
func configs() map[string]Config {
	opts := append(option(0x0102, 0x80, 1, 2, 3, 4), option(0xffff, 0x05)...)
	opts = append(opts, option(0x0001, 0x7f, 9, 9, 9, 9, 8, 8, 8, 8)...)
	return map[string]Config{
		"vxlan4":             {Kind: VXLAN, EthDst: macB, EthSrc: macA, Src: v4A, Dst: v4B, VNI: 42, DF: true},
		"vxlan4-csum-tos":    {Kind: VXLAN, EthDst: macB, EthSrc: macA, Src: v4A, Dst: v4B, VNI: 0xffffff, Csum: true, TOS: 0xb8, TTL: 7},
		"vxlan4-port":        {Kind: VXLAN, EthDst: macB, EthSrc: macA, Src: v4A, Dst: v4B, VNI: 1, DstPort: 8472, DF: true, Csum: true},
		"vxlan6":             {Kind: VXLAN, EthDst: macB, EthSrc: macA, Src: v6A, Dst: v6B, VNI: 42},
		"vxlan6-csum":        {Kind: VXLAN, EthDst: macB, EthSrc: macA, Src: v6A, Dst: v6B, VNI: 42, Csum: true, TOS: 0x28, TTL: 255},
		"geneve4":            {Kind: Geneve, EthDst: macB, EthSrc: macA, Src: v4A, Dst: v4B, VNI: 5000, DF: true},
		"geneve4-opts-csum":  {Kind: Geneve, EthDst: macB, EthSrc: macA, Src: v4A, Dst: v4B, VNI: 5000, Csum: true, Critical: true, Options: opts},
		"geneve4-oam":        {Kind: Geneve, EthDst: macB, EthSrc: macA, Src: v4A, Dst: v4B, VNI: 0, OAM: true, DstPort: 6082},
		"geneve6-opts":       {Kind: Geneve, EthDst: macB, EthSrc: macA, Src: v6A, Dst: v6B, VNI: 77, Options: option(0x0104, 0x01, 0xaa, 0xbb, 0xcc, 0xdd)},
		"geneve6-csum-tos":   {Kind: Geneve, EthDst: macB, EthSrc: macA, Src: v6A, Dst: v6B, VNI: 77, Csum: true, TOS: 0xfc, TTL: 1},
		"geneve4-max-option": {Kind: Geneve, EthDst: macB, EthSrc: macA, Src: v4A, Dst: v4B, VNI: 3, Csum: true, Options: option(0x0103, 0x02, make([]byte, 124)...)},
	}
}
