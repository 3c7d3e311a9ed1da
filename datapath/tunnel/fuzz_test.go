package tunnel

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// decodeErrors are every error Decode may return.
var decodeErrors = []error{
	ErrTruncated, ErrNotTunnel, ErrBadIPHeader, ErrIPChecksum, ErrFragment, ErrUDPLength,
	ErrUDPChecksum, ErrVXLANFlags, ErrGeneveVersion, ErrGeneveOptLen, ErrGeneveProto, ErrInnerTruncated,
}

// FuzzDecode feeds frames to a VXLAN or Geneve decoder (default ports).
// Invariants: no panic; a refusal is one of the named errors; an accepted
// packet's inner frame lies where Header says, re-encoding the decoded
// header around it decodes to the same header, and gopacket reads the
// same tunnel header.
func FuzzDecode(f *testing.F) {
	for _, s := range seedCorpus(f) {
		f.Add(s.geneve, s.pkt)
	}
	f.Fuzz(func(t *testing.T, geneve bool, pkt []byte) {
		d := Decoder{Kind: VXLAN}
		if geneve {
			d.Kind = Geneve
		}
		var h Header
		err := d.Decode(pkt, &h)
		if err != nil {
			for _, e := range decodeErrors {
				if err == e {
					return
				}
			}
			t.Fatalf("unnamed error %v", err)
		}
		if len(h.Inner) < EthLen || h.InnerOff+len(h.Inner) > len(pkt) || !bytes.Equal(pkt[h.InnerOff:h.InnerOff+len(h.Inner)], h.Inner) {
			t.Fatalf("inner frame of %d bytes at %d in a %d-byte packet", len(h.Inner), h.InnerOff, len(pkt))
		}
		inner := bytes.Clone(h.Inner)

		e, err := NewEncap(Config{
			Kind: h.Kind, EthDst: h.EthDst, EthSrc: h.EthSrc, Src: h.Src, Dst: h.Dst, DstPort: h.DstPort,
			VNI: h.VNI, TOS: h.TOS, TTL: h.TTL, DF: h.DF, Csum: h.Csum,
			OAM: h.OAM, Critical: h.Critical, Options: bytes.Clone(h.Options),
		})
		if err != nil {
			t.Fatalf("an accepted header does not encode: %v", err)
		}
		again, err := e.Append(nil, inner, h.SrcPort, 1)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		var h2 Header
		if err := d.Decode(again, &h2); err != nil {
			t.Fatalf("re-encoded packet refused: %v", err)
		}
		want := h
		if want.TTL == 0 {
			want.TTL = DefaultTTL
		}
		want.Critical = want.Critical || hasCritical(want.Options)
		if fmt.Sprint(h2.Kind, h2.EthDst, h2.EthSrc, h2.Src, h2.Dst, h2.TOS, h2.TTL, h2.DF, h2.Csum, h2.SrcPort, h2.DstPort, h2.VNI, h2.OAM, h2.Critical) !=
			fmt.Sprint(want.Kind, want.EthDst, want.EthSrc, want.Src, want.Dst, want.TOS, want.TTL, want.DF, want.Csum, want.SrcPort, want.DstPort, want.VNI, want.OAM, want.Critical) ||
			!bytes.Equal(h2.Options, h.Options) || !bytes.Equal(h2.Inner, inner) {
			t.Fatalf("re-encoded header differs:\n got %+v\nwant %+v", h2, want)
		}

		tun := pkt[h.InnerOff-VXLANLen:]
		if h.Kind == Geneve {
			tun = pkt[h.InnerOff-GeneveLen-len(h.Options):]
		}
		tun = tun[:len(tun)-(len(pkt)-h.InnerOff-len(h.Inner))]
		switch h.Kind {
		case VXLAN:
			var vx layers.VXLAN
			if err := vx.DecodeFromBytes(tun, gopacket.NilDecodeFeedback); err != nil || !vx.ValidIDFlag || vx.VNI != h.VNI || !bytes.Equal(vx.Payload, inner) {
				t.Fatalf("gopacket reads vxlan %+v (%v), Decode vni %d", vx, err, h.VNI)
			}
		case Geneve:
			// gopacket v1.1.19 reads an option's length from 4 bits, not
			// RFC 8926's 5, and counts the options' offset in a byte: it
			// is a reference only for options shorter than 16 words.
			if !shortOptions(h.Options) {
				break
			}
			var gn layers.Geneve
			if err := gn.DecodeFromBytes(tun, gopacket.NilDecodeFeedback); err != nil || gn.VNI != h.VNI || gn.OAMPacket != h.OAM ||
				gn.CriticalOption != h.Critical || int(gn.OptionsLength) != len(h.Options) || !bytes.Equal(gn.Payload, inner) {
				t.Fatalf("gopacket reads geneve %+v (%v), Decode %+v", gn, err, h)
			}
		}
	})
}

type seed struct {
	name   string
	geneve bool
	pkt    []byte
}

// seedCorpus is FuzzDecode's seed corpus: a valid packet of every
// configuration on a default port, and its cuts at each header boundary
// and inside the Geneve options.
func seedCorpus(t testing.TB) []seed {
	var seeds []seed
	cfgs := configs()
	names := make([]string, 0, len(cfgs))
	for name := range cfgs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := cfgs[name]
		if c.DstPort != 0 {
			continue
		}
		pkt := build(t, name)
		geneve := c.Kind == Geneve
		seeds = append(seeds, seed{"valid-" + name, geneve, pkt})
		ipLen := IPv4Len
		if c.Dst.Is6() {
			ipLen = IPv6Len
		}
		tun := EthLen + ipLen + UDPLen
		cuts := []int{EthLen - 1, EthLen + ipLen - 1, tun - 1, tun + 4, len(pkt) - 60}
		if geneve && len(c.Options) > 0 {
			cuts = append(cuts, tun+GeneveLen+len(c.Options)/2)
		}
		for _, n := range cuts {
			seeds = append(seeds, seed{fmt.Sprintf("cut-%s-%d", name, n), geneve, bytes.Clone(pkt[:n])})
		}
	}
	return seeds
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus in testdata/fuzz/FuzzDecode")

// TestDecodeCorpus checks that testdata/fuzz/FuzzDecode holds the seed
// corpus byte for byte (-update-corpus rewrites it), so that the fuzzer
// and libFuzzer builds start from packets of the current encoder.
func TestDecodeCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for _, s := range seedCorpus(t) {
		path := filepath.Join(dir, s.name)
		want := fmt.Appendf(nil, "go test fuzz v1\nbool(%t)\n[]byte(%q)\n", s.geneve, s.pkt)
		if *updateCorpus {
			check(t, os.MkdirAll(dir, 0o755))
			check(t, os.WriteFile(path, want, 0o644))
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update-corpus)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale (run with -update-corpus)", path)
		}
	}
	var h Header
	for _, s := range seedCorpus(t) {
		err := Decoder{Kind: map[bool]Kind{false: VXLAN, true: Geneve}[s.geneve]}.Decode(s.pkt, &h)
		if valid := s.name[:6] == "valid-"; valid != (err == nil) {
			t.Errorf("%s: %v", s.name, err)
		}
	}
}

// shortOptions reports whether every option of a valid options area has
// fewer than 16 words of data, and the area fits gopacket's byte offset.
func shortOptions(opts []byte) bool {
	if len(opts) > 200 {
		return false
	}
	for len(opts) > 0 {
		n := int(opts[3] & 0x1f)
		if n >= 16 {
			return false
		}
		opts = opts[4+4*n:]
	}
	return true
}
