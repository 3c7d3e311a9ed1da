package conntrack

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// FuzzTrack runs random packet sequences, with random ct arguments, clock
// steps, sweeps and flushes, through a small tracker, and checks that
// every packet gets a verdict and a coherent ct_state, that NAT keeps the
// key describing the frame, that the table never exceeds its limit, and
// that once every timeout has passed a sweep leaves nothing behind.
func FuzzTrack(f *testing.F) {
	f.Add([]byte{0, 0x10, 0, 0, 1, 0x02, 0, 0, 0x21, 0, 1, 0, 1, 0x12, 0, 0, 0x20, 0, 0, 0, 1, 0x10, 0, 0})
	f.Add([]byte{1, 0x11, 1, 2, 3, 0, 0, 0, 0x25, 1, 0x12, 1, 2, 3, 0, 0, 0, 0x24, 5, 9, 6, 7})
	f.Add([]byte{2, 0x02, 0, 1, 0, 0, 0, 0, 0x01, 2, 0x42, 1, 0, 0, 0, 0, 0, 0x00, 5, 0xff, 0xff, 6})
	f.Add([]byte{3, 0x03, 0, 1, 0, 0x02, 0, 0, 0x61, 4, 0x83, 1, 0, 0, 0x12, 0, 0, 0x40, 7, 0, 7, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzTrack(t, data)
	})
}

// fuzzInput reads the fuzz input; past its end it reads zeros.
type fuzzInput struct {
	b []byte
}

func (in *fuzzInput) u8() uint8 {
	if len(in.b) == 0 {
		return 0
	}
	v := in.b[0]
	in.b = in.b[1:]
	return v
}

func (in *fuzzInput) u16() uint16 { return uint16(in.u8())<<8 | uint16(in.u8()) }

const fuzzMaxConns = 12

var (
	fuzzAddrs4 = []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "192.0.2.10"}
	fuzzAddrs6 = []string{"fd00::1", "fd00::2", "fd00::3", "2001:db8::10"}
	fuzzPorts  = []uint16{1000, 80, 53, 5000, 5001, 41000, 0, 8080}
)

func fuzzTrack(t *testing.T, data []byte) {
	tr, err := New(Config{MaxConns: fuzzMaxConns, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.SetZoneLimit(1, 5); err != nil {
		t.Fatal(err)
	}
	in := &fuzzInput{b: data}
	now := int64(time.Hour)
	var quote []byte // the IP packet of the last frame built, for ICMP errors to quote
	var k flow.Key
	var off flow.Offsets
	for steps := 0; len(in.b) > 0 && steps < 200; steps++ {
		switch op := in.u8(); op % 8 {
		case 5:
			now += int64(in.u16()) * int64(time.Second) * int64(1+op/8)
		case 6:
			tr.Sweep(now)
		case 7:
			switch in.u8() % 4 {
			case 0:
				tr.Flush(AllZones)
			case 1:
				tr.Flush(1)
			case 2:
				tr.SetMaxConns(uint32(in.u8() % (fuzzMaxConns + 1)))
			default:
				_ = tr.FlushTuple(0, flow.IPProtoUDP, Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: 1000, DstPort: 53})
			}
		default:
			frame := fuzzFrame(in, quote)
			if len(frame) > 14 {
				quote = append(quote[:0], frame[14:]...)
			}
			if c := in.u8(); c&0x80 != 0 && len(frame) > 0 {
				frame[int(in.u8())%len(frame)] ^= c
			}
			ct := fuzzCT(in)
			flow.Extract(&k, &off, frame, 1)
			if in.u8()&1 == 0 {
				// A fresh packet rather than a recirculated one.
				k.CtState, k.CtZone = 0, 0
			}
			v := tr.Track(frame, &k, &off, &ct, now)
			checkTracked(t, tr, frame, &k, v)
		}
		if tr.Len() > fuzzMaxConns {
			t.Fatalf("%d connections, over the limit of %d", tr.Len(), fuzzMaxConns)
		}
	}
	// Every timeout passes: nothing may be left.
	now += int64(48 * time.Hour)
	tr.Sweep(now)
	if tr.Len() != 0 {
		t.Fatalf("%d connections left after every timeout", tr.Len())
	}
	for e := range tr.Dump(now, AllZones) {
		t.Fatalf("dump after every timeout: %v", e)
	}
	for i := range tr.shards {
		s := &tr.shards[i]
		if s.live != 0 || s.used != 0 || len(s.zombies) != 0 {
			t.Fatalf("shard %d: %d slots, %d index entries, %d zombies left", i, s.live, s.used, len(s.zombies))
		}
	}
}

// checkTracked checks a packet's outcome.
func checkTracked(t *testing.T, tr *Tracker, frame []byte, k *flow.Key, v flow.Verdict) {
	t.Helper()
	if v != flow.VerdictOK && v != flow.VerdictCTFull {
		t.Fatalf("verdict %v", v)
	}
	s := k.CtState
	switch {
	case s&flow.CtStateTracked == 0:
		t.Fatalf("ct_state %#x without trk", s)
	case s&flow.CtStateInv != 0 && s != flow.CtStateInv|flow.CtStateTracked:
		t.Fatalf("ct_state %#x: inv with other bits", s)
	case s&flow.CtStateNew != 0 && s&(flow.CtStateEst|flow.CtStateRel) != 0:
		t.Fatalf("ct_state %#x: new with est or rel", s)
	case s&flow.CtStateRpl != 0 && s&(flow.CtStateEst|flow.CtStateRel) == 0:
		t.Fatalf("ct_state %#x: rpl without est or rel", s)
	case v == flow.VerdictCTFull && s != flow.CtStateNew|flow.CtStateTracked:
		t.Fatalf("conntrack-full with ct_state %#x", s)
	}
	// After NAT the key still describes the frame.
	var again flow.Key
	var off flow.Offsets
	flow.Extract(&again, &off, frame, 1)
	if again.NwSrc != k.NwSrc || again.NwDst != k.NwDst || again.IPv6Src != k.IPv6Src || again.IPv6Dst != k.IPv6Dst ||
		again.TpSrc != k.TpSrc || again.TpDst != k.TpDst {
		t.Fatalf("the key no longer describes the frame")
	}
	_ = tr
}

// fuzzCT builds ct arguments from the input.
func fuzzCT(in *fuzzInput) flow.CT {
	b := in.u8()
	ct := flow.CT{Commit: b&1 != 0, Force: b&0x40 != 0, Zone: uint16(b>>1) & 1, Table: flow.CTNoTable}
	if b&0x80 != 0 {
		ct.SetMark, ct.Mark, ct.MarkMask = true, uint32(in.u8()), 0xff
	}
	switch (b >> 2) & 7 {
	case 1:
		ct.NAT = &flow.NAT{Kind: flow.NATRestore}
	case 2:
		ct.NAT = &flow.NAT{Kind: flow.NATSrc, AddrMin: netip.MustParseAddr("192.0.2.10"), AddrMax: netip.MustParseAddr("192.0.2.10"), PortMin: 5000, PortMax: 5001}
	case 3:
		ct.NAT = &flow.NAT{Kind: flow.NATDst, AddrMin: netip.MustParseAddr("10.0.0.2"), AddrMax: netip.MustParseAddr("10.0.0.3"), PortMin: 80, PortMax: 81, Random: true}
	case 4:
		ct.NAT = &flow.NAT{Kind: flow.NATSrc, AddrMin: netip.MustParseAddr("2001:db8::10"), AddrMax: netip.MustParseAddr("2001:db8::11"), Persistent: true}
	case 5:
		ct.NAT = &flow.NAT{Kind: flow.NATSrc}
	}
	return ct
}

// fuzzFrame builds an Ethernet frame with right checksums from the input:
// IPv4 or IPv6; TCP, UDP, an ICMP query or error, or GRE.
func fuzzFrame(in *fuzzInput, quote []byte) []byte {
	sel := in.u8()
	v6 := sel&1 != 0
	addrs := fuzzAddrs4
	if v6 {
		addrs = fuzzAddrs6
	}
	src := netip.MustParseAddr(addrs[in.u8()%4])
	dst := netip.MustParseAddr(addrs[in.u8()%4])
	a := in.u8()
	sport, dport := fuzzPorts[a&7], fuzzPorts[(a>>3)&7]
	var l4 []byte
	proto := uint8(flow.IPProtoTCP)
	switch (sel >> 1) & 3 {
	case 0:
		flags := in.u16() & 0x3f
		seq := uint32(in.u16()) << (in.u8() % 17)
		ack := uint32(in.u16()) << (in.u8() % 17)
		win := in.u16()
		hl := 20
		if flags&tcpSYN != 0 && in.u8()&1 != 0 {
			hl = 24
		}
		l4 = make([]byte, hl+int(in.u8()%48))
		binary.BigEndian.PutUint16(l4[0:], sport)
		binary.BigEndian.PutUint16(l4[2:], dport)
		binary.BigEndian.PutUint32(l4[4:], seq)
		binary.BigEndian.PutUint32(l4[8:], ack)
		l4[12] = byte(hl/4) << 4
		l4[13] = byte(flags)
		binary.BigEndian.PutUint16(l4[14:], win)
		if hl == 24 {
			copy(l4[20:], []byte{3, 3, in.u8() % 16, 0})
		}
	case 1:
		proto = flow.IPProtoUDP
		l4 = make([]byte, 8+int(in.u8()%32))
		binary.BigEndian.PutUint16(l4[0:], sport)
		binary.BigEndian.PutUint16(l4[2:], dport)
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	case 2:
		proto = flow.IPProtoICMP
		if v6 {
			proto = flow.IPProtoICMPv6
		}
		types := []uint8{icmpEcho, icmpEchoReply, icmpDestUnreach, icmpTimeExceeded}
		if v6 {
			types = []uint8{icmp6EchoRequest, icmp6EchoReply, icmp6DestUnreach, icmp6PacketTooBig}
		}
		typ := types[in.u8()%4]
		l4 = make([]byte, 8)
		l4[0] = typ
		binary.BigEndian.PutUint16(l4[4:], uint16(a&3))
		if typ == icmpDestUnreach || typ == icmpTimeExceeded || typ == icmp6DestUnreach || typ == icmp6PacketTooBig {
			l4 = append(l4, quote[:min(len(quote), int(in.u8()))]...)
		}
	default:
		proto = 47
		l4 = []byte{0, 0, 0x08, 0}
	}
	frame := make([]byte, 14, 14+40+len(l4))
	var pseudo uint64
	if v6 {
		binary.BigEndian.PutUint16(frame[12:], flow.EthTypeIPv6)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		ip[6], ip[7] = proto, 64
		s, d := src.As16(), dst.As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		pseudo = flow.OnesSum(flow.OnesSum(0, s[:]), d[:]) + uint64(proto) + uint64(len(l4))
		frame = append(frame, ip...)
	} else {
		binary.BigEndian.PutUint16(frame[12:], flow.EthTypeIPv4)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		ip[8], ip[9] = 64, proto
		s, d := src.As4(), dst.As4()
		if src.Is6() {
			s = [4]byte{10, 0, 0, 9}
		}
		if dst.Is6() {
			d = [4]byte{10, 0, 0, 9}
		}
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		cs := ^flow.FoldSum(flow.OnesSum(0, ip))
		binary.BigEndian.PutUint16(ip[10:], cs)
		pseudo = flow.OnesSum(flow.OnesSum(0, s[:]), d[:]) + uint64(proto) + uint64(len(l4))
		frame = append(frame, ip...)
	}
	switch proto {
	case flow.IPProtoTCP:
		binary.BigEndian.PutUint16(l4[16:], ^flow.FoldSum(flow.OnesSum(pseudo, l4)))
	case flow.IPProtoUDP:
		binary.BigEndian.PutUint16(l4[6:], ^flow.FoldSum(flow.OnesSum(pseudo, l4)))
	case flow.IPProtoICMP:
		binary.BigEndian.PutUint16(l4[2:], ^flow.FoldSum(flow.OnesSum(0, l4)))
	case flow.IPProtoICMPv6:
		binary.BigEndian.PutUint16(l4[2:], ^flow.FoldSum(flow.OnesSum(pseudo, l4)))
	}
	return append(frame, l4...)
}

// FuzzDefrag cuts random packets into fragments, delivers them in a
// random order with losses, duplicates and corruption to a Defrag, and
// tracks what it reassembles: no panic, never more held than the limit,
// a packet whose fragments all arrive untouched comes back whole and
// equal to the original, and after the timeout nothing is held.
func FuzzDefrag(f *testing.F) {
	f.Add([]byte{0, 0x40, 0, 1, 2, 0})
	f.Add([]byte{1, 0x20, 1, 0, 2, 1, 0x80, 3})
	f.Add([]byte{0, 0xff, 2, 2, 1, 0, 5, 0x81, 0x10})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{b: data}
		d := NewDefrag()
		tr, err := New(Config{Shards: 2, MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		now := int64(time.Hour)
		for round := 0; len(in.b) > 0 && round < 4; round++ {
			v6 := in.u8()&1 != 0
			size := 1500 + int(in.u8())*16
			payload := make([]byte, size)
			for i := range payload {
				payload[i] = byte(i)
			}
			orig := fuzzUDP(v6, payload)
			fragSize := 1240 + int(in.u8())*8 // the smallest fragments the defaults accept
			frags := fuzzFragment(orig, fragSize, v6, uint32(round))
			order := in.u8()
			// A corrupted fragment of an earlier round may have taken
			// this round's identification: held under the same key, it
			// overlaps this packet's fragments or lies past its end, and
			// the packet cannot be reassembled until it expires, as in
			// Open vSwitch's ipf and Linux.
			intact := !fuzzHeldUnder(d, frags[0], now)
			var delivered int
			var whole []byte
			for i := range frags {
				j := (i + int(order)) % len(frags)
				op := in.u8()
				fr := append([]byte(nil), frags[j]...)
				switch op % 8 {
				case 1:
					intact = false
					continue // lost
				case 2:
					if c := in.u8(); c != 0 {
						intact = false
						fr[int(in.u8())%len(fr)] ^= c
					}
				}
				var k flow.Key
				var off flow.Offsets
				flow.Extract(&k, &off, fr, 1)
				st, w, held := d.Add(fr, &k, &off, 0, now)
				if d.Held() > DefaultMaxFrags {
					t.Fatalf("%d fragments held", d.Held())
				}
				delivered++
				if st == FragComplete {
					whole = w
					var wk flow.Key
					var wo flow.Offsets
					flow.Extract(&wk, &wo, w, 1)
					if wk.NwFrag != 0 {
						t.Fatalf("the reassembled packet is a fragment")
					}
					ct := flow.CT{Commit: true, Table: flow.CTNoTable, NAT: &flow.NAT{Kind: flow.NATSrc}}
					tr.Track(w, &wk, &wo, &ct, now)
					fk := make([]flow.Key, len(held))
					Finish(w, &wk, held, fk)
				}
			}
			if intact && delivered == len(frags) && len(frags) > 1 {
				if whole == nil {
					t.Fatalf("every fragment arrived, no packet reassembled")
				}
				hl := 14 + 20
				if v6 {
					hl = 14 + 40
				}
				if len(whole) != len(orig) || string(whole[hl:]) != string(orig[hl:]) {
					t.Fatalf("reassembled %d bytes of %d, or other bytes", len(whole), len(orig))
				}
			}
			now += int64(in.u8()) * int64(time.Second) / 4
		}
		d.Expire(now + 16e9)
		if d.Held() != 0 {
			t.Fatalf("%d fragments held after the timeout", d.Held())
		}
	})
}

// fuzzHeldUnder reports whether d holds fragments under the key of the
// fragment fr once those past their timeout at now are gone.
func fuzzHeldUnder(d *Defrag, fr []byte, now int64) bool {
	d.Expire(now)
	var k flow.Key
	var off flow.Offsets
	flow.Extract(&k, &off, fr, 1)
	fi, st := d.parseFrag(fr, &k, &off, 0)
	if st != FragHeld {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lists[fi.key] != nil
}

// fuzzUDP builds a UDP frame with a right checksum.
func fuzzUDP(v6 bool, payload []byte) []byte {
	l4 := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(l4[0:], 4000)
	binary.BigEndian.PutUint16(l4[2:], 9000)
	binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	copy(l4[8:], payload)
	frame := make([]byte, 14)
	var pseudo uint64
	if v6 {
		binary.BigEndian.PutUint16(frame[12:], flow.EthTypeIPv6)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		ip[6], ip[7] = flow.IPProtoUDP, 64
		ip[23], ip[39] = 1, 2
		ip[8], ip[24] = 0xfd, 0xfd
		pseudo = flow.OnesSum(0, ip[8:40]) + flow.IPProtoUDP + uint64(len(l4))
		frame = append(frame, ip...)
	} else {
		binary.BigEndian.PutUint16(frame[12:], flow.EthTypeIPv4)
		ip := []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, flow.IPProtoUDP, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		binary.BigEndian.PutUint16(ip[10:], ^flow.FoldSum(flow.OnesSum(0, ip)))
		pseudo = flow.OnesSum(0, ip[12:20]) + flow.IPProtoUDP + uint64(len(l4))
		frame = append(frame, ip...)
	}
	binary.BigEndian.PutUint16(l4[6:], ^flow.FoldSum(flow.OnesSum(pseudo, l4)))
	return append(frame, l4...)
}

// fuzzFragment cuts a frame made by fuzzUDP into fragments of size data
// bytes.
func fuzzFragment(frame []byte, size int, v6 bool, id uint32) [][]byte {
	hl := 20
	if v6 {
		hl = 40
	}
	data := frame[14+hl:]
	var out [][]byte
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := append([]byte(nil), frame[:14+hl]...)
		h := f[14:]
		more := end < len(data)
		if v6 {
			h[6] = 44
			binary.BigEndian.PutUint16(h[4:], uint16(8+end-off))
			fh := make([]byte, 8)
			fh[0] = flow.IPProtoUDP
			offlg := uint16(off)
			if more {
				offlg |= 1
			}
			binary.BigEndian.PutUint16(fh[2:], offlg)
			binary.BigEndian.PutUint32(fh[4:], id)
			f = append(f, fh...)
		} else {
			binary.BigEndian.PutUint16(h[2:], uint16(20+end-off))
			binary.BigEndian.PutUint16(h[4:], uint16(id))
			fo := uint16(off / 8)
			if more {
				fo |= 0x2000
			}
			binary.BigEndian.PutUint16(h[6:], fo)
			h[10], h[11] = 0, 0
			binary.BigEndian.PutUint16(h[10:], ^flow.FoldSum(flow.OnesSum(0, h[:20])))
		}
		out = append(out, append(f, data[off:end]...))
	}
	return out
}
