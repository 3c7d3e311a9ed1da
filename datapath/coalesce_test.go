package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/vport"
)

// transport is a TCP or UDP layer, whose checksum covers the IP
// pseudo-header.
type transport interface {
	gopacket.SerializableLayer
	SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
}

// packet builds an Ethernet frame of IPv6, or IPv4 with ID id and DF,
// carrying l4 (protocol proto) and payload, with full checksums.
func packet(t testing.TB, v6 bool, id uint16, proto layers.IPProtocol, l4 transport, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	var ip interface {
		gopacket.NetworkLayer
		gopacket.SerializableLayer
	}
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip = &layers.IPv6{Version: 6, FlowLabel: 0x12345, NextHeader: proto, HopLimit: 64, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
	} else {
		ip = &layers.IPv4{Version: 4, IHL: 5, Id: id, Flags: layers.IPv4DontFragment, TTL: 64, Protocol: proto, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	}
	if err := l4.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, l4, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(buf.Bytes())
}

// segment builds one TCP segment of a bulk sender's connection, as the
// kernel sends it (timestamps option, DF, full checksums).
func segment(t testing.TB, v6 bool, id uint16, seq uint32, payload []byte, psh bool) []byte {
	t.Helper()
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: seq, Ack: 777, ACK: true, PSH: psh, Window: 501,
		Options: []layers.TCPOption{
			{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 1, 0, 0, 0, 2, 0}},
		}}
	return packet(t, v6, id, layers.IPProtocolTCP, tcp, payload)
}

// train builds n segments of mss payload bytes (the last one last bytes)
// with consecutive IPv4 IDs and sequence numbers; pshEvery > 0 sets PSH
// on every pshEvery-th segment, as a sender does at the end of a write.
func train(t testing.TB, v6 bool, n, mss, last, pshEvery int) [][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(n), uint64(mss)))
	var frames [][]byte
	seq := uint32(0xfffff000) // the sequence numbers wrap
	for i := range n {
		size := mss
		if i == n-1 {
			size = last
		}
		payload := make([]byte, size)
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		psh := pshEvery > 0 && (i+1)%pshEvery == 0
		frames = append(frames, segment(t, v6, uint16(0xfffe+i), seq, payload, psh))
		seq += uint32(size)
	}
	return frames
}

// datagram builds one UDP datagram of a flow (full checksum).
func datagram(t testing.TB, v6 bool, id uint16, payload []byte) []byte {
	t.Helper()
	return packet(t, v6, id, layers.IPProtocolUDP, &layers.UDP{SrcPort: 40000, DstPort: 5201}, payload)
}

// udpFlow builds n datagrams of size payload bytes (the last one last bytes)
// with consecutive IPv4 IDs, as a connected UDP socket sends them.
func udpFlow(t testing.TB, v6 bool, n, size, last int) [][]byte {
	t.Helper()
	var frames [][]byte
	for i := range n {
		payload := bytes.Repeat([]byte{byte(i)}, size)
		if i == n-1 {
			payload = payload[:last]
		}
		frames = append(frames, datagram(t, v6, uint16(0xfffe+i), payload))
	}
	return frames
}

// refSum is a plain ones'-complement sum of 16-bit words, as RFC 1071
// writes it, to check the datapath's against.
func refSum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// refL4Sum is the ones'-complement sum of a frame's TCP segment or UDP
// datagram (proto) and its pseudo-header.
func refL4Sum(f []byte, l4 int, v6 bool, proto byte) uint16 {
	var pseudo []byte
	l4Len := len(f) - l4
	if v6 {
		pseudo = append(pseudo, f[22:54]...)
		pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(l4Len))
		pseudo = append(pseudo, 0, 0, 0, proto)
	} else {
		pseudo = append(pseudo, f[26:34]...)
		pseudo = append(pseudo, 0, proto)
		pseudo = binary.BigEndian.AppendUint16(pseudo, uint16(l4Len))
	}
	return refSum(append(pseudo, f[l4:]...))
}

// setL4Checksum computes the TCP or UDP checksum of f afresh (a UDP
// checksum of 0 goes out as 0xffff).
func setL4Checksum(f []byte, l4 int, v6 bool, proto byte) {
	at := l4 + 16
	if proto == ipProtoUDP {
		at = l4 + 6
	}
	if at+2 > len(f) {
		return
	}
	binary.BigEndian.PutUint16(f[at:], 0)
	c := ^refL4Sum(f, l4, v6, proto)
	if c == 0 && proto == ipProtoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(f[at:], c)
}

// fixChecksums recomputes a frame's IPv4 header and TCP or UDP
// checksums, when it looks enough like TCP or UDP for that to make sense,
// so that tests can change fields and still present valid packets.
func fixChecksums(f []byte) {
	if len(f) < 42 {
		return
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		ihl := int(f[14]&0x0f) * 4
		if ihl < 20 || 14+ihl+8 > len(f) {
			return
		}
		binary.BigEndian.PutUint16(f[24:], 0)
		binary.BigEndian.PutUint16(f[24:], ^refSum(f[14:14+ihl]))
		if ihl == 20 && (f[23] == ipProtoTCP || f[23] == ipProtoUDP) {
			setL4Checksum(f, 34, false, f[23])
		}
	case 0x86dd:
		if len(f) >= 62 && (f[20] == ipProtoTCP || f[20] == ipProtoUDP) {
			setL4Checksum(f, 54, true, f[20])
		}
	}
}

// resegment cuts a GSO packet into its segments the way the kernel's TCP
// and UDP segmentation do: headers copied from the packet, the IPv4 ID
// counting up, the TCP sequence number advancing, PSH on the last
// segment only, and every length and checksum computed afresh.
func resegment(pkt []byte, g vport.GSO) [][]byte {
	hdr, payload := pkt[:g.HeaderLen], pkt[g.HeaderLen:]
	id := binary.BigEndian.Uint16(pkt[18:])
	var segs [][]byte
	for i, off := 0, 0; off < len(payload); i, off = i+1, off+g.MSS {
		end := min(off+g.MSS, len(payload))
		f := append(slices.Clone(hdr), payload[off:end]...)
		if g.IPv6 {
			binary.BigEndian.PutUint16(f[18:], uint16(len(f)-54))
		} else {
			binary.BigEndian.PutUint16(f[16:], uint16(len(f)-14))
			binary.BigEndian.PutUint16(f[18:], id+uint16(i))
		}
		if g.UDP {
			binary.BigEndian.PutUint16(f[g.L4+4:], uint16(len(f)-g.L4))
		} else {
			seq := binary.BigEndian.Uint32(pkt[g.L4+4:])
			binary.BigEndian.PutUint32(f[g.L4+4:], seq+uint32(off))
			if end < len(payload) {
				f[g.L4+13] &^= tcpFlagPSH
			}
		}
		fixChecksums(f)
		segs = append(segs, f)
	}
	return segs
}

// coalesceAll runs the coalescing transmit does over frames and checks
// every merged run: the GSO description fits, the pseudo-header checksum
// completes to the big segment's right checksum, and cutting the packet
// back gives the original frames byte for byte. It returns the runs'
// lengths.
func coalesceAll(t testing.TB, frames [][]byte) []int {
	t.Helper()
	buf := make([]byte, 0, maxGSOFrame)
	var runs []int
	for i := 0; i < len(frames); {
		j, s := gsoRun(frames, i)
		runs = append(runs, j-i)
		if j-i >= 2 {
			pkt, g := mergeRun(buf, frames[i:j], s)
			if len(pkt)-ethHdrLen > maxIPLength || g.MSS <= 0 || len(pkt)-g.HeaderLen <= g.MSS {
				t.Fatalf("frames %d-%d: GSO packet of %d bytes, %+v", i, j, len(pkt), g)
			}
			// Completing the checksum as the kernel does: the sum from
			// the TCP or UDP header on, over the pseudo-header sum left
			// in it.
			full := slices.Clone(pkt)
			at, proto := g.L4+16, byte(ipProtoTCP)
			if g.UDP {
				at, proto = g.L4+6, ipProtoUDP
			}
			binary.BigEndian.PutUint16(full[at:], ^refSum(full[g.L4:]))
			if refL4Sum(full, g.L4, g.IPv6, proto) != 0xffff {
				t.Fatalf("frames %d-%d: the pseudo-header sum does not complete to a valid checksum", i, j)
			}
			got := resegment(pkt, g)
			if len(got) != j-i {
				t.Fatalf("frames %d-%d: merged into %d segments", i, j, len(got))
			}
			for k := range got {
				if !bytes.Equal(got[k], frames[i+k]) {
					t.Fatalf("frame %d differs after merging and cutting again:\n got %x\nwant %x", i+k, got[k], frames[i+k])
				}
			}
		}
		i = j
	}
	return runs
}

func TestCoalesce(t *testing.T) {
	const mss = 1448
	mutate := func(frames [][]byte, i int, fn func(f []byte)) [][]byte {
		fn(frames[i])
		fixChecksums(frames[i])
		return frames
	}
	cases := []struct {
		name   string
		frames [][]byte
		want   []int
	}{
		{"ipv4 write of 5 segments", train(t, false, 5, mss, mss, 5), []int{5}},
		{"ipv6 write of 5 segments", train(t, true, 5, mss, mss, 5), []int{5}},
		{"two writes", train(t, false, 10, mss, mss, 5), []int{5, 5}},
		{"short last segment", train(t, false, 4, mss, 100, 0), []int{4}},
		{"ipv6 short last segment", train(t, true, 4, mss, 1, 0), []int{4}},
		{"short segment in the middle", append(train(t, false, 2, mss, 100, 0), train(t, false, 1, mss, mss, 0)...), []int{2, 1}},
		{"lone segment", train(t, false, 1, mss, mss, 0), []int{1}},
		{"the IP length caps a run", train(t, false, 50, mss, mss, 0), []int{45, 5}},
		{"small segments", train(t, false, 6, 10, 10, 0), []int{6}},
		{"sequence gap", mutate(train(t, false, 5, mss, mss, 0), 2, func(f []byte) { f[38]++ }), []int{2, 1, 2}},
		{"ipv4 ID gap", mutate(train(t, false, 5, mss, mss, 0), 3, func(f []byte) { f[19]++ }), []int{3, 1, 1}},
		{"other ack", mutate(train(t, false, 4, mss, mss, 0), 1, func(f []byte) { f[45]++ }), []int{1, 1, 2}},
		{"other window", mutate(train(t, false, 4, mss, mss, 0), 2, func(f []byte) { f[49]++ }), []int{2, 1, 1}},
		{"other timestamp", mutate(train(t, false, 4, mss, mss, 0), 2, func(f []byte) { f[61]++ }), []int{2, 1, 1}},
		{"other TTL", mutate(train(t, false, 4, mss, mss, 0), 2, func(f []byte) { f[22]-- }), []int{2, 1, 1}},
		{"other TOS (ECN mark)", mutate(train(t, false, 4, mss, mss, 0), 2, func(f []byte) { f[15] = 3 }), []int{2, 1, 1}},
		{"ipv6 other flow label", mutate(train(t, true, 4, mss, mss, 0), 2, func(f []byte) { f[17]++ }), []int{2, 1, 1}},
		{"FIN", mutate(train(t, false, 4, mss, mss, 0), 3, func(f []byte) { f[47] |= 0x01 }), []int{3, 1}},
		{"CWR", mutate(train(t, false, 4, mss, mss, 0), 0, func(f []byte) { f[47] |= 0x80 }), []int{1, 3}},
		{"urgent pointer", mutate(train(t, false, 4, mss, mss, 0), 1, func(f []byte) { f[53] = 1 }), []int{1, 1, 2}},
		{"fragment", mutate(train(t, false, 4, mss, mss, 0), 1, func(f []byte) { f[20] |= 0x20 }), []int{1, 1, 2}},
		{"bad TCP checksum", func() [][]byte {
			fr := train(t, false, 5, mss, mss, 0)
			fr[2][100] ^= 0xff
			return fr
		}(), []int{2, 1, 2}},
		{"bad IPv4 header checksum", func() [][]byte {
			fr := train(t, false, 5, mss, mss, 0)
			fr[2][25] ^= 0xff
			return fr
		}(), []int{2, 1, 2}},
		{"checksum 0xffff for 0", func() [][]byte {
			fr := train(t, false, 3, mss, mss, 0)
			c := binary.BigEndian.Uint16(fr[1][50:])
			// Find a payload change that makes the checksum 0,
			// then write it as 0xffff (the same value).
			w := uint32(binary.BigEndian.Uint16(fr[1][100:])) + uint32(c)
			binary.BigEndian.PutUint16(fr[1][100:], uint16(w&0xffff+w>>16))
			fixChecksums(fr[1])
			if binary.BigEndian.Uint16(fr[1][50:]) != 0 {
				t.Fatalf("checksum %#x, want 0", binary.BigEndian.Uint16(fr[1][50:]))
			}
			binary.BigEndian.PutUint16(fr[1][50:], 0xffff)
			return fr
		}(), []int{1, 1, 1}},
		{"frame longer than the IP packet", func() [][]byte {
			fr := train(t, false, 3, mss, mss, 0)
			fr[1] = append(fr[1], 0)
			return fr
		}(), []int{1, 1, 1}},
		{"two connections interleaved", func() [][]byte {
			a, b := train(t, false, 3, mss, mss, 0), train(t, false, 3, mss, mss, 0)
			for _, f := range b {
				f[35]++ // another source port
				fixChecksums(f)
			}
			return [][]byte{a[0], b[0], a[1], b[1], a[2], b[2]}
		}(), []int{1, 1, 1, 1, 1, 1}},
		{"pure ACKs", func() [][]byte {
			return [][]byte{segment(t, false, 1, 5, nil, false), segment(t, false, 2, 5, nil, false)}
		}(), []int{1, 1}},
		{"VLAN tag", func() [][]byte {
			var out [][]byte
			for _, f := range train(t, false, 3, mss, mss, 0) {
				out = append(out, slices.Concat(f[:12], []byte{0x81, 0, 0, 10}, f[12:]))
			}
			return out
		}(), []int{1, 1, 1}},
		{"IPv4 options", func() [][]byte {
			var out [][]byte
			for _, f := range train(t, false, 3, mss, mss, 0) {
				g := slices.Concat(f[:34], []byte{1, 1, 1, 0}, f[34:])
				g[14] = 0x46
				binary.BigEndian.PutUint16(g[16:], binary.BigEndian.Uint16(g[16:])+4)
				fixChecksums(g)
				out = append(out, g)
			}
			return out
		}(), []int{1, 1, 1}},
		{"runt", [][]byte{{1, 2, 3}, make([]byte, 60)}, []int{1, 1}},
		{"udp flow", udpFlow(t, false, 8, 18, 18), []int{8}},
		{"ipv6 udp flow", udpFlow(t, true, 5, 1000, 3), []int{5}},
		{"udp short datagram ends a run", slices.Concat(udpFlow(t, false, 2, 40, 20), udpFlow(t, false, 2, 40, 40)), []int{2, 2}},
		{"udp frames with Ethernet padding", udpFlow(t, false, 3, 5, 5), []int{1, 1, 1}},
		{"udp other port", mutate(udpFlow(t, false, 4, 18, 18), 2, func(f []byte) { f[37]++ }), []int{2, 1, 1}},
		{"udp ipv4 ID gap", mutate(udpFlow(t, false, 4, 18, 18), 2, func(f []byte) { f[19] += 2 }), []int{2, 1, 1}},
		{"udp without checksum", func() [][]byte {
			fr := udpFlow(t, false, 3, 18, 18)
			clear(fr[1][40:42])
			return fr
		}(), []int{1, 1, 1}},
		{"udp checksum 0xffff for 0", func() [][]byte {
			fr := udpFlow(t, false, 3, 18, 18)
			c := binary.BigEndian.Uint16(fr[1][40:])
			w := uint32(binary.BigEndian.Uint16(fr[1][42:])) + uint32(c)
			binary.BigEndian.PutUint16(fr[1][42:], uint16(w&0xffff+w>>16))
			fixChecksums(fr[1])
			if binary.BigEndian.Uint16(fr[1][40:]) != 0xffff {
				t.Fatalf("checksum %#x, want 0xffff", binary.BigEndian.Uint16(fr[1][40:]))
			}
			return fr
		}(), []int{3}},
		{"udp length shorter than the datagram", mutate(udpFlow(t, false, 3, 18, 18), 1, func(f []byte) { f[39]-- }), []int{1, 1, 1}},
		{"udp then tcp", slices.Concat(udpFlow(t, false, 2, 18, 18), train(t, false, 2, 18, 18, 0)), []int{2, 2}},
		// The IPv6 and UDP headers (48 bytes) and 7 payloads of 8961
		// bytes fit in an IP packet of 65,535 bytes; an 8th does not.
		{"the IP length caps a run of jumbo udp datagrams", udpFlow(t, true, 11, 8961, 8961), []int{7, 4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := coalesceAll(t, c.frames); !slices.Equal(got, c.want) {
				t.Errorf("runs %v, want %v", got, c.want)
			}
		})
	}
}

// FuzzCoalesce changes one byte of a TCP segment train or a UDP flow (and, if fix is set,
// recomputes the checksums so that the change is judged by the merging
// rules rather than by the checksum) and puts an arbitrary frame into it:
// whatever is merged must cut back into the original frames byte for
// byte. With every set, the byte changes in every frame alike, so that a
// changed header field all the frames share (another protocol, a
// different header length) is judged by the rules for a single frame
// rather than by the comparison with its neighbours. Payloads go up to
// jumbo size (9000 bytes), so that long runs reach the 65,535-byte limit
// of the IP packet.
func FuzzCoalesce(f *testing.F) {
	f.Add([]byte{}, false, uint8(5), uint16(1448), uint16(1448), uint8(0), uint16(0), uint8(0), false, false, false)
	f.Add([]byte{}, true, uint8(4), uint16(1000), uint16(7), uint8(2), uint16(60), uint8(1), true, false, false)
	f.Add([]byte("not a frame"), false, uint8(8), uint16(536), uint16(100), uint8(3), uint16(38), uint8(0x80), true, false, false)
	f.Add([]byte{}, false, uint8(8), uint16(18), uint16(18), uint8(1), uint16(40), uint8(0xff), false, true, false)
	f.Add([]byte{}, true, uint8(3), uint16(1200), uint16(1), uint8(1), uint16(58), uint8(1), true, true, false)
	f.Add([]byte{}, false, uint8(9), uint16(8960), uint16(8960), uint8(0), uint16(0), uint8(0), false, false, false)
	f.Add([]byte{}, true, uint8(9), uint16(8960), uint16(8960), uint8(0), uint16(0), uint8(0), false, true, false)
	f.Add([]byte{}, false, uint8(3), uint16(100), uint16(100), uint8(0), uint16(23), uint8(0x01), true, false, true)
	f.Fuzz(func(t *testing.T, extra []byte, v6 bool, n uint8, mss, last uint16, at uint8, off uint16, xor uint8, fix, udp, every bool) {
		count := 2 + int(n%10)
		size := 1 + int(mss)%9000
		frames := train(t, v6, count, size, 1+int(last)%size, 0)
		if udp {
			frames = udpFlow(t, v6, count, size, 1+int(last)%size)
		}
		for i, fr := range frames {
			if !every && i != int(at)%count {
				continue
			}
			fr[int(off)%len(fr)] ^= xor
			if fix {
				fixChecksums(fr)
			}
		}
		pos := int(at) % (count + 1)
		frames = slices.Insert(frames, pos, extra)
		coalesceAll(t, frames)
	})
}

// gsoMemPort is an in-memory port that takes GSO packets: it cuts each
// back into its segments (as the kernel would) and transmits them, or
// refuses it with err.
type gsoMemPort struct {
	*vport.MemPort
	err error
}

func (p *gsoMemPort) TransmitGSO(frame []byte, g vport.GSO) error {
	if p.err != nil {
		return p.err
	}
	segs := resegment(frame, g)
	if n, err := p.Transmit(0, segs); err != nil || n != len(segs) {
		return fmt.Errorf("sent %d of %d: %v", n, len(segs), err)
	}
	return nil
}

// TestTransmitCoalesced runs one batch through a bridge whose egress port
// takes GSO packets (or refuses them): whatever the port does with them,
// the frames come out complete, in order and byte for byte, and every one
// is counted as sent.
func TestTransmitCoalesced(t *testing.T) {
	udp := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 10})
	in := slices.Concat([][]byte{udp}, train(t, false, 5, 1000, 1000, 5), [][]byte{udp}, train(t, true, 3, 700, 10, 0), [][]byte{udp})
	for _, c := range []struct {
		name      string
		err       error
		disable   bool
		gso, segs uint64
		failed    uint64
	}{
		{name: "taken", gso: 2, segs: 8},
		{name: "refused", err: errors.New("no room"), failed: 2},
		{name: "gro off", disable: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := New(Config{Name: "br0", DisableGRO: c.disable})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			src, _ := addMemPort(t, b, vport.MemConfig{Name: "src"}, 1)
			mp, err := vport.NewMemPort(vport.MemConfig{Name: "dst"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.AddPort(&gsoMemPort{MemPort: mp, err: c.err}, 2); err != nil {
				t.Fatal(err)
			}
			addFlows(t, b, "in_port=1,actions=output:2")
			if n := src.Inject(0, in); n != len(in) {
				t.Fatalf("injected %d of %d", n, len(in))
			}
			if err := b.Start(); err != nil { // one poll takes the whole batch
				t.Fatal(err)
			}
			quiesce(t, b, src)
			out := drainAll(mp)
			if len(out) != len(in) {
				t.Fatalf("%d frames out, want %d", len(out), len(in))
			}
			for i := range in {
				if !bytes.Equal(out[i], in[i]) {
					t.Errorf("frame %d differs", i)
				}
			}
			st := b.PMDStats()[0]
			if st.GSOPackets != c.gso || st.GSOSegments != c.segs || st.GSOFailed != c.failed {
				t.Errorf("GSO packets %d segments %d failed %d, want %d %d %d", st.GSOPackets, st.GSOSegments, st.GSOFailed, c.gso, c.segs, c.failed)
			}
			checkAccounting(t, b)
			if s := b.Ports()[1].Stats(); s.TxPackets != uint64(len(in)) {
				t.Errorf("dst tx %d, want %d", s.TxPackets, len(in))
			}
		})
	}
}

// BenchmarkGSORun finds the runs of a batch of 32 UDP datagrams with
// 18-byte payloads as transmit does: of one flow (one run of 32), and of
// 32 flows (no run, as in the many-flow tests).
func BenchmarkGSORun(b *testing.B) {
	for _, flows := range []int{1, 32} {
		b.Run(fmt.Sprintf("flows=%d", flows), func(b *testing.B) {
			frames := udpFlow(b, false, 32, 18, 18)
			if flows > 1 {
				frames = frames[:0]
				for i := range 32 {
					frames = append(frames, buildFrame(b, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: uint16(1000 + i), payloadSz: 18}))
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				for i := 0; i < len(frames); {
					i, _ = gsoRun(frames, i)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
		})
	}
}
