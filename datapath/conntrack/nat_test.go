package conntrack

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

func natCT(zone uint16, kind flow.NATKind, lo, hi string, plo, phi uint16) flow.CT {
	ct := commit(zone)
	n := &flow.NAT{Kind: kind, PortMin: plo, PortMax: phi}
	if lo != "" {
		n.AddrMin = netip.MustParseAddr(lo)
		n.AddrMax = n.AddrMin
		if hi != "" {
			n.AddrMax = netip.MustParseAddr(hi)
		}
	}
	ct.NAT = n
	return ct
}

func restoreCT(zone uint16) flow.CT {
	ct := lookup(zone)
	ct.NAT = &flow.NAT{Kind: flow.NATRestore}
	return ct
}

// frameTuple reads the addresses and ports of a frame.
func frameTuple(t *testing.T, frame []byte) (src, dst netip.Addr, sport, dport uint16) {
	t.Helper()
	var k flow.Key
	var off flow.Offsets
	flow.Extract(&k, &off, frame, 1)
	if k.DlType == flow.EthTypeIPv6 {
		src, dst = netip.AddrFrom16(k.IPv6Src), netip.AddrFrom16(k.IPv6Dst)
	} else {
		var a, b [4]byte
		binary.BigEndian.PutUint32(a[:], k.NwSrc)
		binary.BigEndian.PutUint32(b[:], k.NwDst)
		src, dst = netip.AddrFrom4(a), netip.AddrFrom4(b)
	}
	return src, dst, k.TpSrc, k.TpDst
}

// runNAT tracks a frame and checks that the frame stays well formed and
// that k still describes it.
func runNAT(t *testing.T, h *harness, frame []byte, ct flow.CT) flow.Key {
	t.Helper()
	k, v := h.run(frame, ct)
	if v != flow.VerdictOK {
		t.Fatalf("verdict %v", v)
	}
	if !checksumsValid(t, frame) {
		t.Fatalf("checksums broken after NAT")
	}
	var again flow.Key
	var off flow.Offsets
	flow.Extract(&again, &off, frame, 1)
	if again.NwSrc != k.NwSrc || again.NwDst != k.NwDst || again.IPv6Src != k.IPv6Src || again.IPv6Dst != k.IPv6Dst ||
		again.TpSrc != k.TpSrc || again.TpDst != k.TpDst {
		t.Fatalf("key no longer describes the frame: %+v vs %+v", k, again)
	}
	return k
}

func TestSNAT(t *testing.T) {
	h := newHarness(t, Config{})
	c := newTCPConn(h)
	syn := c.fromClient(tcpSYN, 0).build(t)
	k := runNAT(t, h, syn, natCT(0, flow.NATSrc, "192.0.2.10", "", 5000, 5010))
	src, dst, sport, dport := frameTuple(t, syn)
	if k.CtState != trk|new_|snat || src != mustAddr("192.0.2.10") || dst != mustAddr("10.0.0.2") || sport < 5000 || sport > 5010 || dport != 80 {
		t.Fatalf("SYN after SNAT: %s %v:%d -> %v:%d", stateString(k.CtState), src, sport, dst, dport)
	}
	if k.CtNwSrc != 0x0a000001 || k.CtTpSrc != 41000 {
		t.Fatalf("orig tuple %x:%d, want the untranslated one", k.CtNwSrc, k.CtTpSrc)
	}
	// The server answers the translated address; ct(nat) translates back.
	synack := pkt{src: "10.0.0.2", dst: "192.0.2.10", proto: flow.IPProtoTCP, sport: 80, dport: sport, flags: tcpSYN | tcpACK, seq: c.sseq, ack: c.cseq, win: 65535}
	c.sseq++
	fr := synack.build(t)
	k = runNAT(t, h, fr, restoreCT(0))
	src, dst, s2, d2 := frameTuple(t, fr)
	if k.CtState != trk|est|rpl|dnat || src != mustAddr("10.0.0.2") || dst != mustAddr("10.0.0.1") || s2 != 80 || d2 != 41000 {
		t.Fatalf("SYN+ACK after un-NAT: %s %v:%d -> %v:%d", stateString(k.CtState), src, s2, dst, d2)
	}
	ack := c.fromClient(tcpACK, 0).build(t)
	k = runNAT(t, h, ack, restoreCT(0))
	if src, _, s, _ := frameTuple(t, ack); k.CtState != trk|est|snat || src != mustAddr("192.0.2.10") || s != sport {
		t.Fatalf("ACK: %s %v:%d", stateString(k.CtState), src, s)
	}
	// Without nat, ct does not translate.
	data := c.fromClient(tcpACK|tcpPSH, 10).build(t)
	k = runNAT(t, h, data, lookup(0))
	if src, _, _, _ := frameTuple(t, data); k.CtState != trk|est || src != mustAddr("10.0.0.1") {
		t.Fatalf("without nat: %s %v", stateString(k.CtState), src)
	}
	want := "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=41000,dport=80),reply=(src=10.0.0.2,dst=192.0.2.10,sport=80,dport=" + itoa(sport) + "),protoinfo=(state=ESTABLISHED)"
	if d := h.dump(AllZones); len(d) != 1 || d[0] != want {
		t.Fatalf("dump %q, want %q", d, want)
	}
}

func itoa(v uint16) string { return strconv.Itoa(int(v)) }

func TestSNATPortCollision(t *testing.T) {
	h := newHarness(t, Config{})
	ports := map[uint16]bool{}
	for i, cli := range []string{"10.0.0.1", "10.0.0.3", "10.0.0.4"} {
		p := pkt{src: cli, dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 41000, dport: 53}
		fr := p.build(t)
		runNAT(t, h, fr, natCT(0, flow.NATSrc, "192.0.2.10", "", 0, 0))
		src, _, sport, _ := frameTuple(t, fr)
		if src != mustAddr("192.0.2.10") || ports[sport] || sport < 1024 {
			t.Fatalf("client %d: %v:%d (ports so far %v)", i, src, sport, ports)
		}
		if i == 0 && sport != 41000 {
			t.Fatalf("the first client's port %d was not kept", sport)
		}
		ports[sport] = true
	}
}

func TestNATExhausted(t *testing.T) {
	h := newHarness(t, Config{})
	ct := natCT(0, flow.NATSrc, "192.0.2.10", "", 5000, 5000)
	a := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 41000, dport: 53}
	runNAT(t, h, a.build(t), ct)
	b := a
	b.src = "10.0.0.3"
	fr := b.build(t)
	k := runNAT(t, h, fr, ct)
	if src, _, _, _ := frameTuple(t, fr); k.CtState != trk|new_ || src != mustAddr("10.0.0.3") || h.tr.Counters().NATExhausted != 1 || h.tr.Len() != 1 {
		t.Fatalf("exhausted: %s %v, counters %+v, %d connections", stateString(k.CtState), src, h.tr.Counters(), h.tr.Len())
	}
}

func TestDNATLoadBalancer(t *testing.T) {
	h := newHarness(t, Config{})
	lb := natCT(0, flow.NATDst, "10.0.1.1", "10.0.1.4", 8080, 8080)
	backends := map[netip.Addr]int{}
	for i := range uint16(64) {
		p := pkt{src: "10.0.0.1", dst: "10.0.0.100", proto: flow.IPProtoTCP, sport: 30000 + i, dport: 80, flags: tcpSYN, seq: 1, win: 1000}
		fr := p.build(t)
		k := runNAT(t, h, fr, lb)
		_, dst, _, dport := frameTuple(t, fr)
		if k.CtState != trk|new_|dnat || dport != 8080 || !dst.IsValid() || dst.Less(mustAddr("10.0.1.1")) || mustAddr("10.0.1.4").Less(dst) {
			t.Fatalf("connection %d: %s to %v:%d", i, stateString(k.CtState), dst, dport)
		}
		backends[dst]++
		// The connection sticks to its backend.
		fr = p.build(t)
		runNAT(t, h, fr, restoreCT(0))
		if _, again, _, _ := frameTuple(t, fr); again != dst {
			t.Fatalf("connection %d moved from %v to %v", i, dst, again)
		}
		// The backend's answer comes back from the VIP.
		back := pkt{src: dst.String(), dst: "10.0.0.1", proto: flow.IPProtoTCP, sport: 8080, dport: 30000 + i, flags: tcpSYN | tcpACK, seq: 1, ack: 2, win: 1000}
		fr = back.build(t)
		k = runNAT(t, h, fr, restoreCT(0))
		if src, _, sport, _ := frameTuple(t, fr); k.CtState != trk|est|rpl|snat || src != mustAddr("10.0.0.100") || sport != 80 {
			t.Fatalf("answer %d: %s from %v:%d", i, stateString(k.CtState), src, sport)
		}
	}
	if len(backends) < 2 {
		t.Fatalf("64 connections all went to %v", backends)
	}
}

func TestSNATIPv6UDP(t *testing.T) {
	h := newHarness(t, Config{})
	p := pkt{src: "fd00::1", dst: "fd00::2", proto: flow.IPProtoUDP, sport: 5000, dport: 53, payload: []byte("query")}
	fr := p.build(t)
	k := runNAT(t, h, fr, natCT(3, flow.NATSrc, "2001:db8::10", "2001:db8::10", 0, 0))
	if src, _, sport, _ := frameTuple(t, fr); k.CtState != trk|new_|snat || src != mustAddr("2001:db8::10") || sport != 5000 {
		t.Fatalf("%s %v:%d", stateString(k.CtState), src, sport)
	}
	back := pkt{src: "fd00::2", dst: "2001:db8::10", proto: flow.IPProtoUDP, sport: 53, dport: 5000, payload: []byte("answer")}
	fr = back.build(t)
	k = runNAT(t, h, fr, restoreCT(3))
	if _, dst, _, _ := frameTuple(t, fr); k.CtState != trk|est|rpl|dnat || dst != mustAddr("fd00::1") {
		t.Fatalf("reply %s to %v", stateString(k.CtState), dst)
	}
}

func TestSNATICMPEcho(t *testing.T) {
	h := newHarness(t, Config{})
	ct := natCT(0, flow.NATSrc, "192.0.2.10", "", 0, 0)
	var ids []uint16
	for _, cli := range []string{"10.0.0.1", "10.0.0.3"} {
		req := pkt{src: cli, dst: "10.0.0.2", proto: flow.IPProtoICMP, icmpType: icmpEcho, icmpID: 7}
		fr := req.build(t)
		k := runNAT(t, h, fr, ct)
		src, _, _, _ := frameTuple(t, fr)
		if k.CtState != trk|new_|snat || src != mustAddr("192.0.2.10") {
			t.Fatalf("%s %v", stateString(k.CtState), src)
		}
		ids = append(ids, binary.BigEndian.Uint16(fr[14+20+4:]))
	}
	if ids[0] != 7 || ids[1] == 7 {
		t.Fatalf("echo ids after SNAT %v: want the first kept and the second changed", ids)
	}
	rep := pkt{src: "10.0.0.2", dst: "192.0.2.10", proto: flow.IPProtoICMP, icmpType: icmpEchoReply, icmpID: ids[1]}
	fr := rep.build(t)
	k := runNAT(t, h, fr, restoreCT(0))
	if _, dst, _, _ := frameTuple(t, fr); k.CtState != trk|est|rpl|dnat || dst != mustAddr("10.0.0.3") || binary.BigEndian.Uint16(fr[14+20+4:]) != 7 {
		t.Fatalf("reply %s to %v id %d", stateString(k.CtState), dst, binary.BigEndian.Uint16(fr[14+20+4:]))
	}
}

func TestNATRelatedICMPError(t *testing.T) {
	h := newHarness(t, Config{})
	udp := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 5000, dport: 9999, payload: []byte("x")}
	fr := udp.build(t)
	runNAT(t, h, fr, natCT(0, flow.NATSrc, "192.0.2.10", "", 7000, 7000))
	quote := ipPacket(fr) // what left: 192.0.2.10:7000 -> 10.0.0.2:9999
	icmpErr := pkt{src: "10.0.0.2", dst: "192.0.2.10", proto: flow.IPProtoICMP, icmpType: icmpDestUnreach, icmpCode: 3, quote: quote}
	fr = icmpErr.build(t)
	k := runNAT(t, h, fr, restoreCT(0))
	if k.CtState != trk|rel|rpl|dnat {
		t.Fatalf("error: %s", stateString(k.CtState))
	}
	_, dst, _, _ := frameTuple(t, fr)
	inner := fr[14+20+8:]
	innerSrc := netip.AddrFrom4([4]byte(inner[12:16]))
	innerSport := binary.BigEndian.Uint16(inner[20:22])
	if dst != mustAddr("10.0.0.1") || innerSrc != mustAddr("10.0.0.1") || innerSport != 5000 {
		t.Fatalf("error to %v quoting %v:%d, want 10.0.0.1 quoting 10.0.0.1:5000", dst, innerSrc, innerSport)
	}
	if flow.FoldSum(flow.OnesSum(0, inner[:20])) != 0xffff {
		t.Fatalf("quoted IP header checksum broken")
	}
}

func TestNATRecirculated(t *testing.T) {
	// ct(commit,nat(src=...)) then, after recirculation, ct(nat) again in
	// the same zone: the packet is already translated and stays so.
	h := newHarness(t, Config{})
	p := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 5000, dport: 53}
	fr := p.build(t)
	var k flow.Key
	var off flow.Offsets
	flow.Extract(&k, &off, fr, 1)
	ct := natCT(0, flow.NATSrc, "192.0.2.10", "", 0, 0)
	h.tr.Track(fr, &k, &off, &ct, h.now)
	again := restoreCT(0)
	h.tr.Track(fr, &k, &off, &again, h.now)
	if src, _, _, _ := frameTuple(t, fr); k.CtState != trk|new_|snat || src != mustAddr("192.0.2.10") || k.CtNwSrc != 0x0a000001 {
		t.Fatalf("second pass: %s %v orig %x", stateString(k.CtState), src, k.CtNwSrc)
	}
	// In another zone the translated packet is a new connection.
	other := lookup(1)
	h.tr.Track(fr, &k, &off, &other, h.now)
	if k.CtState != trk|new_ || k.CtNwSrc != 0xc000020a {
		t.Fatalf("zone 1: %s orig %x", stateString(k.CtState), k.CtNwSrc)
	}
}

func TestNATPersistent(t *testing.T) {
	h := newHarness(t, Config{})
	ct := natCT(0, flow.NATSrc, "192.0.2.1", "192.0.2.200", 0, 0)
	ct.NAT.Persistent = true
	var first netip.Addr
	for i := range uint16(20) {
		p := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 2000 + i, dport: 53 + i}
		fr := p.build(t)
		runNAT(t, h, fr, ct)
		src, _, _, _ := frameTuple(t, fr)
		if i == 0 {
			first = src
		} else if src != first {
			t.Fatalf("persistent: connection %d got %v, the first %v", i, src, first)
		}
	}
}

// TestConcurrentNAT commits NAT connections, answers them, sweeps and
// flushes from several goroutines at once (run it with -race): replies
// of NAT connections cross shards, and a connection's two index entries
// live in different shards.
func TestConcurrentNAT(t *testing.T) {
	h := newHarness(t, Config{Shards: 8, MaxConns: 300})
	const workers, conns = 3, 120
	errs := make(chan string, workers+1)
	for w := range workers {
		go func() {
			var k flow.Key
			var off flow.Offsets
			snatCT := natCT(uint16(w), flow.NATSrc, "192.0.2.1", "192.0.2.3", 0, 0)
			back := restoreCT(uint16(w))
			for round := range 3 {
				for i := range uint16(conns) {
					p := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1000 + i, dport: 53}
					fr := p.build(t)
					flow.Extract(&k, &off, fr, 1)
					if v := h.tr.Track(fr, &k, &off, &snatCT, h.now); v != flow.VerdictOK && v != flow.VerdictCTFull {
						errs <- "verdict " + v.String()
						return
					}
					if k.CtState&snat == 0 {
						continue // the table was full or the connection was flushed meanwhile
					}
					var a [4]byte
					binary.BigEndian.PutUint32(a[:], k.NwSrc)
					r := pkt{src: "10.0.0.2", dst: netip.AddrFrom4(a).String(), proto: flow.IPProtoUDP, sport: 53, dport: k.TpSrc}
					rf := r.build(t)
					flow.Extract(&k, &off, rf, 1)
					h.tr.Track(rf, &k, &off, &back, h.now)
					if k.CtState&inv != 0 {
						errs <- "reply invalid in round " + strconv.Itoa(round)
						return
					}
				}
			}
			errs <- ""
		}()
	}
	go func() {
		for i := range 30 {
			h.tr.Sweep(h.now)
			if i%10 == 9 {
				h.tr.Flush(1)
			}
			for range h.tr.Dump(h.now, AllZones) {
			}
		}
		errs <- ""
	}()
	for range workers + 1 {
		if e := <-errs; e != "" {
			t.Fatal(e)
		}
	}
	if h.tr.Len() > 300 {
		t.Fatalf("%d connections over the limit", h.tr.Len())
	}
	h.tr.Flush(AllZones)
	for i := range h.tr.shards {
		if s := &h.tr.shards[i]; s.live != 0 || s.used != 0 {
			t.Fatalf("shard %d: %d slots, %d entries after a full flush", i, s.live, s.used)
		}
	}
}

// TestNATZombiesReaped expires NAT connections on lookups only (no
// sweep): their slots must still come back.
func TestNATZombiesReaped(t *testing.T) {
	h := newHarness(t, Config{Shards: 2})
	ct := natCT(0, flow.NATSrc, "192.0.2.10", "192.0.2.20", 0, 0)
	for range 20 {
		for i := range uint16(100) {
			p := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1000 + i, dport: 53}
			h.run(p.build(t), ct)
		}
		h.advance(2 * time.Minute) // every connection expires; the next round's lookups remove them
	}
	live := 0
	for i := range h.tr.shards {
		live += h.tr.shards[i].live
	}
	if live > 100+2*maxZombies+2*chunkSize {
		t.Fatalf("%d slots in use for 100 live connections", live)
	}
}
