package tunnel

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
)

// build encapsulates a 64-byte-payload inner frame under the named
// configuration of configs.
func build(t testing.TB, name string) []byte {
	t.Helper()
	c, ok := configs()[name]
	if !ok {
		t.Fatalf("no configuration %q", name)
	}
	e, err := NewEncap(c)
	check(t, err)
	pkt, err := e.Append(nil, innerFrame(t, 64), 40000, 1)
	check(t, err)
	return pkt
}

// fixIPv4 recomputes the outer IPv4 header checksum after an edit.
func fixIPv4(pkt []byte) {
	ip := pkt[EthLen:]
	ihl := int(ip[0]&0x0f) * 4
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^flow.FoldSum(flow.OnesSum(0, ip[:ihl])))
}

func TestDecodeRefuses(t *testing.T) {
	const (
		ip4  = EthLen
		udp4 = EthLen + IPv4Len
		tun4 = udp4 + UDPLen
		udp6 = EthLen + IPv6Len
	)
	for _, tc := range []struct {
		name    string
		inKind  Kind
		inPort  uint16
		inBase  string
		edit    func([]byte) []byte
		wantErr error
	}{
		{"arp", VXLAN, 0, "vxlan4", func(p []byte) []byte { p[12], p[13] = 0x08, 0x06; return p }, ErrNotTunnel},
		{"ethernet only", VXLAN, 0, "vxlan4", func(p []byte) []byte { return p[:EthLen] }, ErrTruncated},
		{"short ethernet", VXLAN, 0, "vxlan4", func(p []byte) []byte { return p[:13] }, ErrTruncated},
		{"ipv4 version", VXLAN, 0, "vxlan4", func(p []byte) []byte { p[ip4] = 0x55; fixIPv4(p); return p }, ErrBadIPHeader},
		{"ipv4 ihl", VXLAN, 0, "vxlan4", func(p []byte) []byte { p[ip4] = 0x44; return p }, ErrBadIPHeader},
		{"ipv4 options past the end", VXLAN, 0, "vxlan4", func(p []byte) []byte { p[ip4] = 0x4f; return p[:ip4+40] }, ErrTruncated},
		{"ipv4 total length past the frame", VXLAN, 0, "vxlan4", func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[ip4+2:], uint16(len(p)))
			fixIPv4(p)
			return p
		}, ErrBadIPHeader},
		{"ipv4 total length below the header", VXLAN, 0, "vxlan4", func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[ip4+2:], 19)
			fixIPv4(p)
			return p
		}, ErrBadIPHeader},
		{"ipv4 checksum", VXLAN, 0, "vxlan4", func(p []byte) []byte { p[ip4+10] ^= 1; return p }, ErrIPChecksum},
		{"first fragment", VXLAN, 0, "vxlan4", func(p []byte) []byte { p[ip4+6] = 0x20; fixIPv4(p); return p }, ErrFragment},
		{"later fragment", VXLAN, 0, "vxlan4", func(p []byte) []byte { p[ip4+6], p[ip4+7] = 0x40, 0x10; fixIPv4(p); return p }, ErrFragment},
		{"tcp", VXLAN, 0, "vxlan4", func(p []byte) []byte { p[ip4+9] = 6; fixIPv4(p); return p }, ErrNotTunnel},
		{"ipv4 without udp", VXLAN, 0, "vxlan4", func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[ip4+2:], IPv4Len+4)
			fixIPv4(p)
			return p
		}, ErrTruncated},
		{"other port", VXLAN, 0, "vxlan4-port", func(p []byte) []byte { return p }, ErrNotTunnel},
		{"geneve port on vxlan", VXLAN, 0, "geneve4", func(p []byte) []byte { return p }, ErrNotTunnel},
		{"udp length short", VXLAN, 0, "vxlan4", func(p []byte) []byte { p[udp4+4], p[udp4+5] = 0, 7; return p }, ErrUDPLength},
		{"udp length long", VXLAN, 0, "vxlan4", func(p []byte) []byte { p[udp4+4], p[udp4+5] = 0xff, 0xff; return p }, ErrUDPLength},
		{"udp checksum", VXLAN, 8472, "vxlan4-port", func(p []byte) []byte { p[len(p)-1] ^= 0x40; return p }, ErrUDPChecksum},
		{"udp6 checksum", VXLAN, 0, "vxlan6-csum", func(p []byte) []byte { p[udp6+9] ^= 1; return p }, ErrUDPChecksum},
		{"vxlan without I", VXLAN, 0, "vxlan4", func(p []byte) []byte { p[tun4] = 0; return p }, ErrVXLANFlags},
		{"vxlan reserved flag", VXLAN, 0, "vxlan4", func(p []byte) []byte { p[tun4] |= 0x80; return p }, ErrVXLANFlags},
		{"vxlan reserved low byte", VXLAN, 0, "vxlan4", func(p []byte) []byte { p[tun4+7] = 1; return p }, ErrVXLANFlags},
		{"vxlan header truncated", VXLAN, 0, "vxlan4", func(p []byte) []byte { return shorten(p, tun4+5) }, ErrTruncated},
		{"vxlan inner truncated", VXLAN, 0, "vxlan4", func(p []byte) []byte { return shorten(p, tun4+VXLANLen+13) }, ErrInnerTruncated},
		{"ipv6 version", VXLAN, 0, "vxlan6", func(p []byte) []byte { p[EthLen] = 0x40; return p }, ErrBadIPHeader},
		{"ipv6 payload length past the frame", VXLAN, 0, "vxlan6", func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[EthLen+4:], uint16(len(p)))
			return p
		}, ErrBadIPHeader},
		{"ipv6 ipv4-mapped source", VXLAN, 0, "vxlan6", func(p []byte) []byte {
			copy(p[EthLen+8:], []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1})
			return p
		}, ErrBadIPHeader},
		{"ipv6 ipv4-mapped destination", VXLAN, 0, "vxlan6", func(p []byte) []byte {
			copy(p[EthLen+24:], []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 2})
			return p
		}, ErrBadIPHeader},
		{"ipv6 extension header", VXLAN, 0, "vxlan6", func(p []byte) []byte { p[EthLen+6] = 0; return p }, ErrNotTunnel},
		{"ipv6 header truncated", VXLAN, 0, "vxlan6", func(p []byte) []byte { return p[:EthLen+39] }, ErrTruncated},
		{"geneve version", Geneve, 0, "geneve4", func(p []byte) []byte { p[tun4] |= 0x40; return p }, ErrGeneveVersion},
		{"geneve protocol", Geneve, 0, "geneve4", func(p []byte) []byte { p[tun4+2], p[tun4+3] = 0x08, 0x00; return p }, ErrGeneveProto},
		{"geneve opt len past the packet", Geneve, 0, "geneve4", func(p []byte) []byte { p[tun4] = 0x3f; return shorten(p, tun4+GeneveLen+100) }, ErrGeneveOptLen},
		{"geneve option past the area", Geneve, 6082, "geneve4-oam", func(p []byte) []byte {
			// One word of options, whose length says two.
			p[tun4] = 1
			copy(p[tun4+GeneveLen:], []byte{0, 1, 2, 2})
			return p
		}, ErrGeneveOptLen},
		{"geneve option header cut", Geneve, 0, "geneve6-opts", func(p []byte) []byte {
			tun := udp6 + UDPLen
			p[tun] = 1 // the area ends inside the option's data
			return p
		}, ErrGeneveOptLen},
		{"geneve header truncated", Geneve, 0, "geneve4", func(p []byte) []byte { return shorten(p, tun4+7) }, ErrTruncated},
		{"geneve inner truncated", Geneve, 0, "geneve4", func(p []byte) []byte { return shorten(p, tun4+GeneveLen) }, ErrInnerTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt := tc.edit(build(t, tc.inBase))
			var h Header
			err := Decoder{Kind: tc.inKind, DstPort: tc.inPort}.Decode(pkt, &h)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Decode: %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// shorten cuts a packet (IPv4 or IPv6, no UDP checksum) to n bytes and
// makes the IP and UDP lengths agree, so that only the tunnel layer is
// short.
func shorten(p []byte, n int) []byte {
	p = p[:n]
	if binary.BigEndian.Uint16(p[12:]) == flow.EthTypeIPv4 {
		binary.BigEndian.PutUint16(p[EthLen+2:], uint16(n-EthLen))
		fixIPv4(p)
		binary.BigEndian.PutUint16(p[EthLen+IPv4Len+4:], uint16(n-EthLen-IPv4Len))
	} else {
		binary.BigEndian.PutUint16(p[EthLen+4:], uint16(n-EthLen-IPv6Len))
		binary.BigEndian.PutUint16(p[EthLen+IPv6Len+4:], uint16(n-EthLen-IPv6Len))
	}
	return p
}

// TestDecodeEveryPrefix cuts valid packets at every length: each prefix
// is refused with a named error (or, past the headers, decodes with the
// frame's trailing bytes as padding), never a panic.
func TestDecodeEveryPrefix(t *testing.T) {
	named := []error{ErrTruncated, ErrBadIPHeader, ErrNotTunnel, ErrGeneveOptLen, ErrInnerTruncated, ErrUDPLength}
	for name, c := range configs() {
		pkt := build(t, name)
		d := Decoder{Kind: c.Kind, DstPort: c.DstPort}
		for n := range len(pkt) {
			var h Header
			err := d.Decode(pkt[:n], &h)
			ok := false
			for _, e := range named {
				ok = ok || errors.Is(err, e)
			}
			if !ok {
				t.Errorf("%s cut at %d: %v", name, n, err)
			}
		}
	}
}

// TestDecodePadding: Ethernet padding after the IP packet is not part of
// the inner frame.
func TestDecodePadding(t *testing.T) {
	pkt := build(t, "vxlan4-csum-tos")
	n := len(pkt)
	pkt = append(pkt, 0, 0, 0, 0, 0, 0)
	var h Header
	check(t, Decoder{Kind: VXLAN}.Decode(pkt, &h))
	if h.InnerOff+len(h.Inner) != n {
		t.Errorf("inner frame ends at %d, the IP packet at %d", h.InnerOff+len(h.Inner), n)
	}
}

// TestDecodeAcceptsIPv4Options: outer IPv4 options are skipped.
func TestDecodeAcceptsIPv4Options(t *testing.T) {
	pkt := build(t, "vxlan4")
	opt := []byte{1, 1, 1, 0} // three NOPs and an end of options
	pkt = append(pkt[:EthLen+IPv4Len], append(opt, pkt[EthLen+IPv4Len:]...)...)
	pkt[EthLen] = 0x46
	binary.BigEndian.PutUint16(pkt[EthLen+2:], uint16(len(pkt)-EthLen))
	fixIPv4(pkt)
	var h Header
	check(t, Decoder{Kind: VXLAN}.Decode(pkt, &h))
	if h.VNI != 42 || h.InnerOff != 54 {
		t.Errorf("vni %d inner at %d", h.VNI, h.InnerOff)
	}
}

func TestNoAllocations(t *testing.T) {
	for name, c := range configs() {
		e, err := NewEncap(c)
		check(t, err)
		pkt := make([]byte, e.HeaderLen()+1500)
		copy(pkt[e.HeaderLen():], innerFrame(t, 1400))
		d := Decoder{Kind: c.Kind, DstPort: c.DstPort}
		var h Header
		allocs := testing.AllocsPerRun(100, func() {
			if err := e.Put(pkt, 40000, 1); err != nil {
				t.Fatal(err)
			}
			if err := d.Decode(pkt, &h); err != nil {
				t.Fatal(err)
			}
			_ = d.Decode(pkt[:40], &h) // an error path
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per encapsulation and decapsulation", name, allocs)
		}
	}
}
