package tunnel

import (
	"fmt"
	"testing"
)

// benchCases are the encapsulations the benchmarks measure, each with a
// small and a full-size inner frame.
var benchCases = []string{"vxlan4", "vxlan4-csum-tos", "vxlan6-csum", "geneve4-opts-csum"}

// BenchmarkEncap is the per-packet cost of pushing a tunnel header in
// front of a frame that has room for it (Put), checksums included.
func BenchmarkEncap(b *testing.B) {
	for _, name := range benchCases {
		for _, size := range []int{64, 1400} {
			b.Run(fmt.Sprintf("%s/%d", name, size), func(b *testing.B) {
				e, err := NewEncap(configs()[name])
				check(b, err)
				inner := innerFrame(b, size-42)
				pkt := make([]byte, e.HeaderLen()+len(inner))
				copy(pkt[e.HeaderLen():], inner)
				b.ReportAllocs()
				b.SetBytes(int64(len(inner)))
				for i := 0; b.Loop(); i++ {
					if err := e.Put(pkt, SourcePort(uint32(i)), uint16(i)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
			})
		}
	}
}

// BenchmarkDecap is the per-packet cost of validating and decoding a
// tunnel packet's outer headers, checksums included.
func BenchmarkDecap(b *testing.B) {
	for _, name := range benchCases {
		for _, size := range []int{64, 1400} {
			b.Run(fmt.Sprintf("%s/%d", name, size), func(b *testing.B) {
				c := configs()[name]
				e, err := NewEncap(c)
				check(b, err)
				pkt, err := e.Append(nil, innerFrame(b, size-42), 40000, 1)
				check(b, err)
				d := Decoder{Kind: c.Kind, DstPort: c.DstPort}
				var h Header
				b.ReportAllocs()
				b.SetBytes(int64(len(pkt) - e.HeaderLen()))
				for b.Loop() {
					if err := d.Decode(pkt, &h); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
			})
		}
	}
}
