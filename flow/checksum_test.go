package flow

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/google/gopacket/layers"
)

// inetChecksum computes the Internet checksum of the concatenation of parts
// from scratch: the reference for the incremental updates. Every part but the
// last has an even length.
func inetChecksum(parts ...[]byte) uint16 {
	var sum uint32
	for _, p := range parts {
		for i := 0; i < len(p); i += 2 {
			w := uint32(p[i]) << 8
			if i+1 < len(p) {
				w |= uint32(p[i+1])
			}
			sum += w
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// checksumErrors recomputes every checksum of an IP frame from scratch and
// returns a description of each one that differs from the frame's. It
// checks the headers that extraction found whole: the IPv4 header, and the
// L4 header of an unfragmented packet.
func checksumErrors(frame []byte) []string {
	k, off := extracted(frame, 1)
	if off.L3 == NoOffset {
		return nil
	}
	var errs []string
	check := func(what string, field []byte, udp bool, parts ...[]byte) {
		have := binary.BigEndian.Uint16(field)
		if udp && have == 0 {
			return // no checksum
		}
		saved := [2]byte(field)
		field[0], field[1] = 0, 0
		want := inetChecksum(parts...)
		copy(field, saved[:])
		if udp && want == 0 {
			want = 0xffff
		}
		if have != want {
			errs = append(errs, what)
		}
	}
	if p := (packet{b: frame, k: &k, off: &off}); p.ipv4() == nil && p.ipv6() == nil {
		return nil // not IP, or lengths that do not fit the frame
	}
	l3 := frame[off.L3:]
	var pseudo []byte
	var l4 []byte
	switch k.DlType {
	case EthTypeIPv4:
		hl := int(l3[0]&0xf) * 4
		check("ipv4", l3[10:12], false, l3[:hl])
		tot := int(binary.BigEndian.Uint16(l3[2:]))
		l4 = l3[hl:tot]
		pseudo = append(append(append([]byte(nil), l3[12:20]...), 0, k.NwProto), byte(len(l4)>>8), byte(len(l4)))
	case EthTypeIPv6:
		end := minIPv6 + int(binary.BigEndian.Uint16(l3[4:]))
		if off.L4 != NoOffset {
			l4 = frame[off.L4 : int(off.L3)+end]
		}
		pseudo = append(append([]byte(nil), l3[8:40]...), 0, 0, byte(len(l4)>>8), byte(len(l4)), 0, 0, 0, k.NwProto)
	default:
		return nil
	}
	if off.L4 == NoOffset || k.NwFrag != 0 {
		return errs
	}
	switch k.NwProto {
	case IPProtoTCP:
		check("tcp", l4[16:18], false, pseudo, l4)
	case IPProtoUDP:
		check("udp", l4[6:8], true, pseudo, l4)
	case IPProtoICMP:
		check("icmp", l4[2:4], false, l4)
	case IPProtoICMPv6:
		if k.DlType != EthTypeIPv6 {
			break
		}
		check("icmpv6", l4[2:4], false, pseudo, l4)
	case IPProtoSCTP:
		saved := binary.LittleEndian.Uint32(l4[8:])
		binary.LittleEndian.PutUint32(l4[8:], 0)
		want := crc32.Checksum(l4, crc32.MakeTable(crc32.Castagnoli))
		binary.LittleEndian.PutUint32(l4[8:], saved)
		if saved != want {
			errs = append(errs, "sctp")
		}
	}
	return errs
}

// randomFrame builds a random valid frame of one of the IP kinds the
// actions rewrite checksums in.
func randomFrame(tb testing.TB, r *rand.Rand) []byte {
	kinds := []func() frameSpec{
		ipv4TCP, ipv4UDP, ipv4UDPNoCsum, ipv4ICMP, ipv4SCTP, ipv4Options,
		ipv6TCP, ipv6UDP, ipv6SCTP, ipv6Echo, ipv6NS, ipv6NA,
	}
	s := kinds[r.IntN(len(kinds))]()
	for range r.IntN(3) {
		tpid := uint16(EthTypeVLAN)
		if r.IntN(2) == 0 {
			tpid = EthTypeQinQ
		}
		s.tags = append(s.tags, testTag{tpid: tpid, vid: uint16(r.IntN(4096)), pcp: uint8(r.IntN(8))})
	}
	if s.payload != nil {
		s.payload = make([]byte, r.IntN(200))
		for i := range s.payload {
			s.payload[i] = byte(r.Uint32())
		}
	}
	randIP := func(n int) net.IP {
		ip := make(net.IP, n)
		for i := range ip {
			ip[i] = byte(r.Uint32())
		}
		return ip
	}
	if s.ip4 != nil {
		s.ip4.SrcIP, s.ip4.DstIP = randIP(4), randIP(4)
		s.ip4.TTL, s.ip4.TOS, s.ip4.Id = uint8(r.Uint32()), uint8(r.Uint32()), uint16(r.Uint32())
	}
	if s.ip6 != nil {
		s.ip6.SrcIP, s.ip6.DstIP = randIP(16), randIP(16)
		s.ip6.HopLimit, s.ip6.TrafficClass, s.ip6.FlowLabel = uint8(r.Uint32()), uint8(r.Uint32()), r.Uint32()&0xfffff
	}
	port := func() layers.TCPPort { return layers.TCPPort(r.Uint32()) }
	switch {
	case s.tcp != nil:
		s.tcp.SrcPort, s.tcp.DstPort, s.tcp.Seq = port(), port(), r.Uint32()
	case s.udp != nil:
		s.udp.SrcPort, s.udp.DstPort = layers.UDPPort(r.Uint32()), layers.UDPPort(r.Uint32())
	case s.sctp != nil:
		s.sctp.SrcPort, s.sctp.DstPort = layers.SCTPPort(r.Uint32()), layers.SCTPPort(r.Uint32())
	}
	return s.build(tb)
}

// settable lists the fields that set_field rewrites in IP frames.
var settable = []FieldID{
	FieldDlSrc, FieldDlDst, FieldNwSrc, FieldNwDst, FieldNwTos, FieldIPDSCP, FieldNwECN, FieldNwTTL,
	FieldIPv6Src, FieldIPv6Dst, FieldIPv6Label, FieldTpSrc, FieldTpDst, FieldTCPSrc, FieldTCPDst,
	FieldUDPSrc, FieldUDPDst, FieldSCTPSrc, FieldSCTPDst, FieldICMPType, FieldICMPCode,
	FieldICMPv6Type, FieldICMPv6Code, FieldNdTarget, FieldNdSll, FieldNdTll,
	FieldVLANTCI, FieldDlVLAN, FieldVLANVID, FieldDlVLANPCP, FieldVLANPCP,
}

// randomAction returns a random rewrite.
func randomAction(r *rand.Rand) Action {
	switch r.IntN(8) {
	case 0:
		return act(ActDecTTL, 0)
	case 1:
		return act(ActPushVLAN, []uint64{EthTypeVLAN, EthTypeQinQ}[r.IntN(2)])
	case 2:
		return act(ActPopVLAN, 0)
	case 3:
		return act([]ActionType{ActSetVLANVID, ActSetVLANPCP}[r.IntN(2)], r.Uint64())
	}
	a := set(settable[r.IntN(len(settable))], r.Uint64())
	for i := range a.IPv6 {
		a.IPv6[i] = byte(r.Uint32())
	}
	return a
}

// TestChecksumIncrementalMatchesFull applies random rewrites to random valid
// frames and checks that every incrementally updated checksum equals a full
// recomputation, and that the key follows the frame.
func TestChecksumIncrementalMatchesFull(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		in := randomFrame(t, r)
		if errs := checksumErrors(in); len(errs) != 0 {
			t.Fatalf("case %d: input frame has bad checksums %v: %x", i, errs, in)
		}
		acts := make([]Action, 1+r.IntN(8))
		for j := range acts {
			acts[j] = randomAction(r)
		}
		buf := withSpare(in, 4*len(acts))
		k, off := extracted(buf, execInPort)
		got, v := Execute(buf, &k, &off, acts, nil)
		if v != VerdictOK && v != VerdictTTLExceeded {
			t.Fatalf("case %d: verdict %v", i, v)
		}
		if errs := checksumErrors(got); len(errs) != 0 {
			t.Fatalf("case %d: actions %+v\nin  %x\nout %x\nbad checksums: %v", i, acts, in, got, errs)
		}
		if wantKey, wantOff := extracted(got, execInPort); k != wantKey || off != wantOff {
			t.Fatalf("case %d: actions %+v\nin  %x\nout %x\nkey  %+v %+v\nwant %+v %+v", i, acts, in, got, k, off, wantKey, wantOff)
		}
	}
}

func TestSCTPCRCDelta(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tab := crc32.MakeTable(crc32.Castagnoli)
	for _, n := range []int{12, 13, 64, 1500, 9000, 65515} {
		pkt := make([]byte, n)
		for i := range pkt {
			pkt[i] = byte(r.Uint32())
		}
		for _, pos := range []int{0, 2} {
			before := crc32.Checksum(pkt, tab)
			old := binary.BigEndian.Uint16(pkt[pos:])
			v := uint16(r.Uint32())
			binary.BigEndian.PutUint16(pkt[pos:], v)
			if got, want := before^sctpCRCDelta(n, pos, old, v), crc32.Checksum(pkt, tab); got != want {
				t.Errorf("n=%d pos=%d: incremental crc %08x, full %08x", n, pos, got, want)
			}
		}
	}
}

// TestIPv6RoutingHeader checks that a destination rewrite leaves the L4
// checksum alone while a routing header with segments left holds the final
// destination, and updates it otherwise.
func TestIPv6RoutingHeader(t *testing.T) {
	for _, tt := range []struct {
		name         string
		segmentsLeft byte
		wantCsumSame bool
	}{
		{"segments left", 1, true},
		{"no segments left", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := ipv6UDP()
			s.ip6.NextHeader = ipv6Routing
			// A type-4 routing header with one address, then the UDP header.
			rh := append([]byte{byte(layers.IPProtocolUDP), 2, 4, tt.segmentsLeft, 0, 0, 0, 0}, make([]byte, 16)...)
			s.udp = nil
			s.payload = append(rh, []byte{0x12, 0x34, 0x00, 0x35, 0x00, 0x0c, 0xab, 0xcd, 1, 2, 3, 4}...)
			frame := s.build(t)
			k, off := extracted(frame, execInPort)
			if off.L4 == NoOffset || k.NwProto != IPProtoUDP {
				t.Fatalf("test frame not parsed as IPv6/routing/UDP: %+v %+v", k, off)
			}
			before := binary.BigEndian.Uint16(frame[off.L4+6:])
			Execute(frame, &k, &off, []Action{set6(FieldIPv6Dst, "2001:db8::5")}, nil)
			after := binary.BigEndian.Uint16(frame[off.L4+6:])
			if (before == after) != tt.wantCsumSame {
				t.Errorf("udp checksum %04x -> %04x; want unchanged: %v", before, after, tt.wantCsumSame)
			}
			if k.IPv6Dst != ip6Bytes("2001:db8::5") {
				t.Errorf("key ipv6_dst not updated")
			}
		})
	}
}

// TestOnesSum checks the one ones'-complement sum against the plain RFC 1071
// loop, for every length up to 200 bytes (odd ones padded), data that piles
// up carries, sums continued from a non-zero accumulator, and a frame with a
// right checksum summing to 0xffff.
func TestOnesSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 200 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if n%7 == 0 {
			for i := range b {
				b[i] = 0xff // the carries pile up
			}
		}
		if got, want := ^FoldSum(OnesSum(0, b)), inetChecksum(b); got != want {
			t.Fatalf("%d bytes: checksum %#04x, want %#04x", n, got, want)
		}
		// A sum in two parts (the first even) equals the sum in one.
		half := n / 2 &^ 1
		if got, want := FoldSum(OnesSum(OnesSum(0, b[:half]), b[half:])), FoldSum(OnesSum(0, b)); got != want {
			t.Fatalf("%d bytes in two parts: sum %#04x, want %#04x", n, got, want)
		}
		// With its checksum appended, the data sums to all ones.
		if n%2 == 0 {
			c := binary.BigEndian.AppendUint16(b, inetChecksum(b))
			if got := FoldSum(OnesSum(0, c)); got != 0xffff {
				t.Fatalf("%d bytes with their checksum: sum %#04x, want 0xffff", n, got)
			}
		}
	}
}

func TestFoldSum(t *testing.T) {
	tests := []struct {
		name string
		in   uint64
		want uint16
	}{
		{"zero", 0, 0},
		{"16 bits", 0xabcd, 0xabcd},
		{"one carry", 0x1fffe, 0xffff},
		{"carry of a carry", 0xffff_ffff, 0xffff},
		{"all ones", ^uint64(0), 0xffff},
		{"high words", 0x0001_0002_0003_0004, 0x000a},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FoldSum(tt.in); got != tt.want {
				t.Errorf("FoldSum(%#x) = %#04x, want %#04x", tt.in, got, tt.want)
			}
		})
	}
}
