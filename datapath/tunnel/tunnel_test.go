package tunnel

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestEncapMatchesReference compares Put's packets byte for byte with the
// same packets built by gopacket (and a field-by-field Geneve header).
func TestEncapMatchesReference(t *testing.T) {
	for name, c := range configs() {
		t.Run(name, func(t *testing.T) {
			e, err := NewEncap(c)
			check(t, err)
			for _, n := range []int{0, 1, 37, 1400} {
				inner := innerFrame(t, n)
				got, err := e.Append(nil, inner, 50123, 0x1234)
				check(t, err)
				want := reference(t, c, inner, 50123, 0x1234)
				if !bytes.Equal(got, want) {
					t.Fatalf("payload %d:\ngot  %x\nwant %x", n, got, want)
				}
			}
		})
	}
}

// TestRoundTrip decodes what Put builds and gets the configuration and
// the inner frame back; gopacket decodes the same tunnel header.
func TestRoundTrip(t *testing.T) {
	for name, c := range configs() {
		t.Run(name, func(t *testing.T) {
			e, err := NewEncap(c)
			check(t, err)
			inner := innerFrame(t, 64)
			pkt, err := e.Append(make([]byte, 0, 2048), inner, SourcePort(0xdeadbeef), 9)
			check(t, err)
			var h Header
			if err := (Decoder{Kind: c.Kind, DstPort: c.DstPort}).Decode(pkt, &h); err != nil {
				t.Fatalf("decode: %v", err)
			}
			wantTTL := c.TTL
			if wantTTL == 0 {
				wantTTL = DefaultTTL
			}
			switch {
			case h.Kind != c.Kind || h.VNI != c.VNI:
				t.Errorf("kind %v vni %d, want %v %d", h.Kind, h.VNI, c.Kind, c.VNI)
			case h.Src != c.Src || h.Dst != c.Dst:
				t.Errorf("addresses %s > %s, want %s > %s", h.Src, h.Dst, c.Src, c.Dst)
			case h.EthSrc != c.EthSrc || h.EthDst != c.EthDst:
				t.Errorf("macs %x > %x", h.EthSrc, h.EthDst)
			case h.TOS != c.TOS || h.TTL != wantTTL:
				t.Errorf("tos %#x ttl %d, want %#x %d", h.TOS, h.TTL, c.TOS, wantTTL)
			case h.DF != (c.DF && c.Dst.Is4()) || h.Csum != c.Csum:
				t.Errorf("df %v csum %v, want %v %v", h.DF, h.Csum, c.DF, c.Csum)
			case h.OAM != c.OAM || h.Critical != c.Critical || !bytes.Equal(h.Options, c.Options):
				t.Errorf("oam %v critical %v options %x", h.OAM, h.Critical, h.Options)
			case h.SrcPort != SourcePort(0xdeadbeef):
				t.Errorf("source port %d", h.SrcPort)
			case !bytes.Equal(h.Inner, inner) || !bytes.Equal(pkt[h.InnerOff:], inner) || h.InnerOff != e.HeaderLen():
				t.Errorf("inner frame at %d: %x", h.InnerOff, h.Inner)
			}

			// gopacket picks the tunnel decoder by the IANA ports; decode
			// the UDP payload directly so that other ports are covered too.
			p := gopacket.NewPacket(pkt, layers.LayerTypeEthernet, gopacket.Default)
			if el := p.ErrorLayer(); el != nil {
				t.Fatalf("gopacket: %v", el.Error())
			}
			udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if !ok {
				t.Fatal("gopacket finds no udp layer")
			}
			switch c.Kind {
			case VXLAN:
				var vx layers.VXLAN
				check(t, vx.DecodeFromBytes(udp.Payload, gopacket.NilDecodeFeedback))
				if !vx.ValidIDFlag || vx.VNI != c.VNI || !bytes.Equal(vx.Payload, inner) {
					t.Errorf("gopacket vxlan layer %+v", vx)
				}
			case Geneve:
				if !shortOptions(c.Options) {
					break // beyond gopacket's reading of options (see FuzzDecode)
				}
				var gn layers.Geneve
				check(t, gn.DecodeFromBytes(udp.Payload, gopacket.NilDecodeFeedback))
				if gn.VNI != c.VNI || gn.OAMPacket != c.OAM || gn.CriticalOption != c.Critical ||
					int(gn.OptionsLength) != len(c.Options) || gn.Protocol != EthTypeTEB || !bytes.Equal(gn.Payload, inner) {
					t.Errorf("gopacket geneve layer %+v", gn)
				}
			}
		})
	}
}

func TestSourcePort(t *testing.T) {
	for _, hash := range []uint32{0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff} {
		if p := SourcePort(hash); p < SrcPortMin || p >= SrcPortMax {
			t.Errorf("SourcePort(%#x) = %d, outside [%d, %d)", hash, p, SrcPortMin, SrcPortMax)
		}
	}
	if SourcePort(0) != SrcPortMin || SourcePort(0xffffffff) != SrcPortMax-1 {
		t.Errorf("the ends of the hash range map to %d and %d", SourcePort(0), SourcePort(0xffffffff))
	}
	seen := map[uint16]bool{}
	for i := range uint32(1000) {
		seen[SourcePort(i*2654435761)] = true
	}
	if len(seen) < 950 {
		t.Errorf("1000 spread hashes give only %d source ports", len(seen))
	}
}

func TestNewEncapRefuses(t *testing.T) {
	good := Config{Kind: Geneve, Src: v4A, Dst: v4B}
	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		wantErr error
	}{
		{"kind", func(c *Config) { c.Kind = 0 }, ErrKind},
		{"no source", func(c *Config) { c.Src = netip.Addr{} }, ErrConfig},
		{"mixed families", func(c *Config) { c.Dst = v6B }, ErrConfig},
		{"mapped v4", func(c *Config) { c.Src, c.Dst = netip.MustParseAddr("::ffff:1.2.3.4"), v6B }, ErrConfig},
		{"zone", func(c *Config) { c.Src, c.Dst = v6A.WithZone("eth0"), v6B }, ErrConfig},
		{"vni", func(c *Config) { c.VNI = 1 << 24 }, ErrConfig},
		{"vxlan options", func(c *Config) { c.Kind = VXLAN; c.Options = option(1, 1) }, ErrConfig},
		{"vxlan oam", func(c *Config) { c.Kind = VXLAN; c.OAM = true }, ErrConfig},
		{"options not words", func(c *Config) { c.Options = []byte{0, 1, 2} }, ErrConfig},
		{"options too long", func(c *Config) { c.Options = make([]byte, MaxGeneveOptions+4) }, ErrConfig},
		{"option overruns", func(c *Config) { c.Options = []byte{0, 1, 1, 2, 0, 0, 0, 0} }, ErrGeneveOptLen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			if _, err := NewEncap(c); !errors.Is(err, tc.wantErr) {
				t.Errorf("NewEncap: %v, want %v", err, tc.wantErr)
			}
		})
	}
	if _, err := NewEncap(good); err != nil {
		t.Errorf("the base configuration: %v", err)
	}
}

func TestPutRefuses(t *testing.T) {
	e, err := NewEncap(Config{Kind: VXLAN, Src: v4A, Dst: v4B})
	check(t, err)
	if err := e.Put(make([]byte, e.HeaderLen()-1), 1, 1); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("short buffer: %v", err)
	}
	if err := e.Put(make([]byte, EthLen+0x10000), 1, 1); !errors.Is(err, ErrTooBig) {
		t.Errorf("too big: %v", err)
	}
	if err := e.Put(make([]byte, EthLen+0xffff), 1, 1); err != nil {
		t.Errorf("largest IPv4 packet: %v", err)
	}
}

func TestGeneveCriticalFromOptions(t *testing.T) {
	e, err := NewEncap(Config{Kind: Geneve, Src: v4A, Dst: v4B, Options: option(1, GeneveOptCritical|3)})
	check(t, err)
	pkt, err := e.Append(nil, innerFrame(t, 0), 40000, 0)
	check(t, err)
	var h Header
	check(t, Decoder{Kind: Geneve}.Decode(pkt, &h))
	if !h.Critical {
		t.Error("a critical option without the header's C bit")
	}
}
