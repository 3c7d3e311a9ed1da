package tunnel

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/google/gopacket/pcapgo"
)

// scapyCases are the packets of testdata/scapy.pcap, in order, as
// testdata/scapy_gen.py builds them with scapy: the configuration that
// must produce each one, and the source port and IPv4 identification it
// was given.
var scapyCases = []struct {
	name    string
	cfg     Config
	srcPort uint16
	ipID    uint16
}{
	{"vxlan4", Config{Kind: VXLAN, EthDst: macB, EthSrc: macA, Src: v4A, Dst: v4B, VNI: 42, TTL: 64, DF: true}, 50000, 7},
	{"vxlan4-csum", Config{Kind: VXLAN, EthDst: macB, EthSrc: macA, Src: v4A, Dst: v4B, VNI: 0xffffff, TOS: 0xb8, TTL: 7, Csum: true}, 32768, 0x1234},
	{"vxlan6-csum", Config{Kind: VXLAN, EthDst: macB, EthSrc: macA, Src: v6A, Dst: v6B, VNI: 1, TOS: 0x28, TTL: 255, Csum: true}, 60999, 0},
	{"geneve4-opts", Config{Kind: Geneve, EthDst: macB, EthSrc: macA, Src: v4A, Dst: v4B, VNI: 5000, TTL: 64, DF: true, Csum: true, Critical: true,
		Options: append(append(option(0x0102, 0x80, 1, 2, 3, 4), option(0xffff, 0x05)...), option(0x0001, 0x7f, 9, 9, 9, 9, 8, 8, 8, 8)...)}, 40000, 9},
	{"geneve6-oam", Config{Kind: Geneve, EthDst: macB, EthSrc: macA, Src: v6A, Dst: v6B, VNI: 77, TTL: 64, OAM: true}, 45000, 0},
	{"geneve4-plain", Config{Kind: Geneve, EthDst: macB, EthSrc: macA, Src: v4A, Dst: v4B, VNI: 0, TOS: 0x10, TTL: 3}, 33333, 0xfffe},
	{"geneve4-long-option", Config{Kind: Geneve, EthDst: macB, EthSrc: macA, Src: v4A, Dst: v4B, VNI: 3, TTL: 64, DF: true, Csum: true, Critical: true,
		Options: option(0x0103, 0x82, countingBytes(124)...)}, 41000, 11},
}

// countingBytes returns 0, 1, ..., n-1.
func countingBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// TestEncapMatchesScapy decodes the packets scapy built and checks what
// Decode reads against the case, then re-encodes each inner frame under
// the case's configuration: the result must be scapy's packet, byte for
// byte.
func TestEncapMatchesScapy(t *testing.T) {
	f, err := os.Open("testdata/scapy.pcap")
	check(t, err)
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	check(t, err)
	for i, c := range scapyCases {
		pkt, _, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("packet %d (%s): %v", i, c.name, err)
		}
		var h Header
		if err := (Decoder{Kind: c.cfg.Kind}).Decode(pkt, &h); err != nil {
			t.Errorf("%s: decode: %v", c.name, err)
			continue
		}
		if h.VNI != c.cfg.VNI || h.TOS != c.cfg.TOS || h.TTL != c.cfg.TTL || h.DF != c.cfg.DF || h.Csum != c.cfg.Csum ||
			h.OAM != c.cfg.OAM || h.Critical != c.cfg.Critical || !bytes.Equal(h.Options, c.cfg.Options) ||
			h.SrcPort != c.srcPort || h.Src != c.cfg.Src || h.Dst != c.cfg.Dst {
			t.Errorf("%s: decoded %+v", c.name, h)
		}
		if c.cfg.Src.Is4() && binary.BigEndian.Uint16(pkt[EthLen+4:]) != c.ipID {
			t.Errorf("%s: the case's ip id %#x is not scapy's", c.name, c.ipID)
		}
		e, err := NewEncap(c.cfg)
		check(t, err)
		got, err := e.Append(nil, h.Inner, c.srcPort, c.ipID)
		check(t, err)
		if !bytes.Equal(got, pkt) {
			t.Errorf("%s differs from scapy's:\nscapy  %x\novsxdp %x", c.name, pkt, got)
		}
	}
	if _, _, err := r.ReadPacketData(); err == nil {
		t.Error("scapy.pcap has more packets than scapyCases")
	}
}
