package flow

import (
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// benchFrame is a frame the extraction benchmarks run over.
type benchFrame struct {
	name  string
	frame []byte
}

// benchFrames builds the benchmark frames: minimum-size (64-byte) TCP and
// UDP over IPv4, TCP over IPv6, and UDP over IPv4 in an 802.1Q tag.
func benchFrames(b *testing.B) []benchFrame {
	pad := func(n int) gopacket.Payload { return make(gopacket.Payload, n) }
	return []benchFrame{
		{"tcp64", serialize(b, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolTCP), tcp(), pad(64-14-20-20))},
		{"udp64", serialize(b, eth(layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp(), pad(64-14-20-8))},
		{"ipv6", serialize(b, eth(layers.EthernetTypeIPv6), ip6(layers.IPProtocolTCP), tcp(), pad(24))},
		{"vlan", serialize(b, eth(layers.EthernetTypeDot1Q), dot1q(5, 100, layers.EthernetTypeIPv4), ip4(layers.IPProtocolUDP), udp(), pad(64-18-20-8))},
	}
}

func reportPPS(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

func BenchmarkExtract(b *testing.B) {
	for _, f := range benchFrames(b) {
		b.Run(f.name, func(b *testing.B) {
			var k Key
			var off Offsets
			if why := Extract(&k, &off, f.frame, 1); why != MalformedNone || off.L4 == NoOffset {
				b.Fatalf("Extract = %v, offsets %+v", why, off)
			}
			b.ReportAllocs()
			for b.Loop() {
				Extract(&k, &off, f.frame, 1)
			}
			reportPPS(b)
		})
	}
}

// BenchmarkGopacketDecodingLayerParser decodes the same frames with
// gopacket's fastest decoder: a DecodingLayerParser over preallocated,
// reused layers, ignoring unsupported layers. It only decodes; building a
// flow key from the layers would cost it more.
func BenchmarkGopacketDecodingLayerParser(b *testing.B) {
	for _, f := range benchFrames(b) {
		b.Run(f.name, func(b *testing.B) {
			var (
				eth     layers.Ethernet
				tag     layers.Dot1Q
				ip4     layers.IPv4
				ip6     layers.IPv6
				tcp     layers.TCP
				udp     layers.UDP
				payload gopacket.Payload
			)
			parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &tag, &ip4, &ip6, &tcp, &udp, &payload)
			parser.IgnoreUnsupported = true
			decoded := make([]gopacket.LayerType, 0, 8)
			if err := parser.DecodeLayers(f.frame, &decoded); err != nil || len(decoded) < 3 {
				b.Fatalf("DecodeLayers = %v, decoded %v", err, decoded)
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = parser.DecodeLayers(f.frame, &decoded)
			}
			reportPPS(b)
		})
	}
}
