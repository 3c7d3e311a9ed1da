package conntrack

import (
	"errors"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// tcpConn is a client and server for TCP tests.
type tcpConn struct {
	h            *harness
	cli, srv     string
	cport, sport uint16
	cseq, sseq   uint32
	zone         uint16
}

func (c *tcpConn) fromClient(flags uint16, data int) pkt {
	p := pkt{src: c.cli, dst: c.srv, proto: flow.IPProtoTCP, sport: c.cport, dport: c.sport, flags: flags, seq: c.cseq, ack: c.sseq, win: 65535, payload: make([]byte, data)}
	c.cseq += uint32(data)
	if flags&(tcpSYN|tcpFIN) != 0 {
		c.cseq++
	}
	return p
}

func (c *tcpConn) fromServer(flags uint16, data int) pkt {
	p := pkt{src: c.srv, dst: c.cli, proto: flow.IPProtoTCP, sport: c.sport, dport: c.cport, flags: flags, seq: c.sseq, ack: c.cseq, win: 65535, payload: make([]byte, data)}
	c.sseq += uint32(data)
	if flags&(tcpSYN|tcpFIN) != 0 {
		c.sseq++
	}
	return p
}

func newTCPConn(h *harness) *tcpConn {
	return &tcpConn{h: h, cli: "10.0.0.1", srv: "10.0.0.2", cport: 41000, sport: 80, cseq: 1000, sseq: 5000}
}

// handshake commits the connection and completes the three-way handshake.
func (c *tcpConn) handshake(t *testing.T) {
	t.Helper()
	steps := []struct {
		p    pkt
		ct   flow.CT
		want uint8
	}{
		{c.fromClient(tcpSYN, 0), commit(c.zone), trk | new_},
		{c.fromServer(tcpSYN|tcpACK, 0), lookup(c.zone), trk | est | rpl},
		{c.fromClient(tcpACK, 0), lookup(c.zone), trk | est},
	}
	for i, s := range steps {
		if got := c.h.state(s.p, s.ct); got != s.want {
			t.Fatalf("handshake step %d: ct_state %s, want %s", i, stateString(got), stateString(s.want))
		}
	}
}

func TestTCPHandshake(t *testing.T) {
	h := newHarness(t, Config{})
	c := newTCPConn(h)
	c.zone = 5
	syn := c.fromClient(tcpSYN, 0)
	// Not committed: +new each time, and nothing in the table.
	if got := h.state(syn, lookup(5)); got != trk|new_ {
		t.Fatalf("uncommitted SYN: %s, want +trk+new", stateString(got))
	}
	if h.tr.Len() != 0 {
		t.Fatalf("%d connections after an uncommitted SYN", h.tr.Len())
	}
	k, _ := h.run(syn.build(t), commit(5))
	if k.CtState != trk|new_ || k.CtZone != 5 || k.CtNwSrc != 0x0a000001 || k.CtNwDst != 0x0a000002 ||
		k.CtNwProto != flow.IPProtoTCP || k.CtTpSrc != 41000 || k.CtTpDst != 80 {
		t.Fatalf("committed SYN: state %s zone %d tuple %x %x %d %d %d", stateString(k.CtState), k.CtZone, k.CtNwSrc, k.CtNwDst, k.CtNwProto, k.CtTpSrc, k.CtTpDst)
	}
	// A retransmitted SYN is still new.
	if got := h.state(syn, lookup(5)); got != trk|new_ {
		t.Fatalf("retransmitted SYN: %s", stateString(got))
	}
	// The same packet in another zone is another connection.
	if got := h.state(syn, lookup(6)); got != trk|new_ {
		t.Fatalf("SYN in zone 6: %s", stateString(got))
	}
	k, _ = h.run(c.fromServer(tcpSYN|tcpACK, 0).build(t), lookup(5))
	if k.CtState != trk|est|rpl || k.CtNwSrc != 0x0a000001 || k.CtTpSrc != 41000 {
		t.Fatalf("SYN+ACK: %s, orig src %x:%d", stateString(k.CtState), k.CtNwSrc, k.CtTpSrc)
	}
	if got := h.state(c.fromClient(tcpACK, 0), lookup(5)); got != trk|est {
		t.Fatalf("ACK: %s", stateString(got))
	}
	if got := h.state(c.fromClient(tcpACK|tcpPSH, 100), lookup(5)); got != trk|est {
		t.Fatalf("data: %s", stateString(got))
	}
	if got := h.state(c.fromServer(tcpACK, 0), lookup(5)); got != trk|est|rpl {
		t.Fatalf("reply ACK: %s", stateString(got))
	}
	want := "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=41000,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=41000),zone=5,protoinfo=(state=ESTABLISHED)"
	if d := h.dump(AllZones); len(d) != 1 || d[0] != want {
		t.Fatalf("dump:\n%q\nwant\n%q", d, want)
	}
}

func TestTCPInvalid(t *testing.T) {
	tests := []struct {
		name  string
		flags uint16
	}{
		{"syn-fin", tcpSYN | tcpFIN},
		{"syn-rst", tcpSYN | tcpRST},
		{"no-flags", 0},
		{"fin-without-ack", tcpFIN},
		{"psh-without-ack", tcpPSH | tcpRST},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			c := newTCPConn(h)
			// As the first packet of a connection.
			if got := h.state(c.fromClient(tc.flags, 0), commit(0)); got != trk|inv {
				t.Fatalf("new: %s, want +trk+inv", stateString(got))
			}
			if h.tr.Len() != 0 {
				t.Fatalf("an invalid packet committed a connection")
			}
			// Within an established connection.
			c.handshake(t)
			if got := h.state(c.fromClient(tc.flags, 0), lookup(0)); got != trk|inv {
				t.Fatalf("established: %s, want +trk+inv", stateString(got))
			}
			if got := h.state(c.fromClient(tcpACK, 0), lookup(0)); got != trk|est {
				t.Fatalf("after: %s", stateString(got))
			}
		})
	}
}

func TestTCPSynAckCannotStart(t *testing.T) {
	h := newHarness(t, Config{})
	c := newTCPConn(h)
	if got := h.state(c.fromServer(tcpSYN|tcpACK, 0), commit(0)); got != trk|inv {
		t.Fatalf("SYN+ACK with no connection: %s, want +trk+inv", stateString(got))
	}
}

func TestTCPOutOfWindow(t *testing.T) {
	h := newHarness(t, Config{})
	c := newTCPConn(h)
	c.handshake(t)
	tests := []struct {
		name string
		mod  func(p *pkt)
	}{
		{"seq-far-ahead", func(p *pkt) { p.seq += 1 << 30 }},
		{"seq-far-behind", func(p *pkt) { p.seq -= 1 << 30 }},
		{"ack-unsent-data", func(p *pkt) { p.ack += 1 << 30 }},
		{"rst-wrong-seq", func(p *pkt) { p.flags = tcpRST; p.seq += 5000; p.payload = nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := c.fromClient(tcpACK|tcpPSH, 10)
			c.cseq -= 10
			tc.mod(&p)
			if got := h.state(p, lookup(0)); got != trk|inv {
				t.Fatalf("%s, want +trk+inv", stateString(got))
			}
			if got := h.state(c.fromClient(tcpACK, 0), lookup(0)); got != trk|est {
				t.Fatalf("in-window segment after it: %s", stateString(got))
			}
		})
	}
}

func TestTCPWindowScale(t *testing.T) {
	h := newHarness(t, Config{})
	c := newTCPConn(h)
	syn := c.fromClient(tcpSYN, 0)
	syn.wscale = 8
	h.state(syn, commit(0))
	synack := c.fromServer(tcpSYN|tcpACK, 0)
	synack.wscale = 8
	h.state(synack, lookup(0))
	h.state(c.fromClient(tcpACK, 0), lookup(0))
	// 2 MB ahead of what was acknowledged fits a scaled window (65535<<7).
	for range 32 {
		if got := h.state(c.fromServer(tcpACK, 60000), lookup(0)); got != trk|est|rpl {
			t.Fatalf("scaled-window data: %s", stateString(got))
		}
	}
}

func TestTCPClose(t *testing.T) {
	h := newHarness(t, Config{})
	c := newTCPConn(h)
	c.handshake(t)
	h.state(c.fromClient(tcpFIN|tcpACK, 0), lookup(0))
	h.state(c.fromServer(tcpACK, 0), lookup(0))
	h.state(c.fromServer(tcpFIN|tcpACK, 0), lookup(0))
	if got := h.state(c.fromClient(tcpACK, 0), lookup(0)); got != trk|est {
		t.Fatalf("last ACK: %s", stateString(got))
	}
	d := h.dump(AllZones)
	if len(d) != 1 || d[0] != "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=41000,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=41000),protoinfo=(state=TIME_WAIT)" {
		t.Fatalf("dump %q", d)
	}
	// Closed: it goes after tcp_close (30 s), not the established timeout.
	h.advance(31 * time.Second)
	if n := h.tr.Sweep(h.now); n != 1 || h.tr.Len() != 0 {
		t.Fatalf("sweep removed %d, %d left", n, h.tr.Len())
	}
}

func TestTCPRSTEndsAndSYNReopens(t *testing.T) {
	h := newHarness(t, Config{})
	c := newTCPConn(h)
	c.handshake(t)
	if got := h.state(c.fromServer(tcpRST|tcpACK, 0), lookup(0)); got != trk|est|rpl {
		t.Fatalf("RST: %s", stateString(got))
	}
	var e Entry
	for e = range h.tr.Dump(h.now, AllZones) {
	}
	if e.TCPState() != TCPTimeWait || e.Expires != h.now+int64(30*time.Second) {
		t.Fatalf("after RST: %v expires in %v", e.TCPState(), time.Duration(e.Expires-h.now))
	}
	// A new SYN on the tuple of the reset connection starts a new one.
	c.cseq += 100000
	if got := h.state(c.fromClient(tcpSYN, 0), commit(0)); got != trk|new_ {
		t.Fatalf("SYN after RST: %s", stateString(got))
	}
	for e = range h.tr.Dump(h.now, AllZones) {
	}
	if h.tr.Len() != 1 || e.TCPOrig != TCPSynSent || e.TCPReply != TCPClosed {
		t.Fatalf("after reopening: %d connections, %v/%v", h.tr.Len(), e.TCPOrig, e.TCPReply)
	}
}

func TestTCPMidstreamPickup(t *testing.T) {
	h := newHarness(t, Config{})
	c := newTCPConn(h)
	// A connection picked up after its handshake (a flushed table).
	if got := h.state(c.fromClient(tcpACK, 10), commit(0)); got != trk|new_ {
		t.Fatalf("first ACK: %s", stateString(got))
	}
	if got := h.state(c.fromServer(tcpACK, 10), lookup(0)); got != trk|est|rpl {
		t.Fatalf("reply: %s", stateString(got))
	}
}

func TestUDP(t *testing.T) {
	h := newHarness(t, Config{})
	out := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 5000, dport: 53}
	back := pkt{src: "10.0.0.2", dst: "10.0.0.1", proto: flow.IPProtoUDP, sport: 53, dport: 5000}
	steps := []struct {
		p    pkt
		ct   flow.CT
		want uint8
	}{
		{out, commit(0), trk | new_},
		{out, lookup(0), trk | new_},
		{back, lookup(0), trk | est | rpl},
		{out, lookup(0), trk | est},
	}
	for i, s := range steps {
		if got := h.state(s.p, s.ct); got != s.want {
			t.Fatalf("step %d: %s, want %s", i, stateString(got), stateString(s.want))
		}
	}
	want := "udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=5000,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=5000)"
	if d := h.dump(AllZones); len(d) != 1 || d[0] != want {
		t.Fatalf("dump %q", d)
	}
	// Bidirectional UDP times out after udp_multiple (30 s).
	h.advance(29 * time.Second)
	if got := h.state(out, lookup(0)); got != trk|est {
		t.Fatalf("before timeout: %s", stateString(got))
	}
	h.advance(31 * time.Second)
	if got := h.state(out, lookup(0)); got != trk|new_ {
		t.Fatalf("after timeout: %s, want +trk+new", stateString(got))
	}
	if h.tr.Len() != 0 {
		t.Fatalf("expired connection still counted: %d", h.tr.Len())
	}
}

func TestOtherProtocol(t *testing.T) {
	h := newHarness(t, Config{})
	gre := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: 47, payload: []byte{0, 0, 0x08, 0}}
	if got := h.state(gre, commit(0)); got != trk|new_ {
		t.Fatalf("GRE: %s", stateString(got))
	}
	back := gre
	back.src, back.dst = gre.dst, gre.src
	if got := h.state(back, lookup(0)); got != trk|est|rpl {
		t.Fatalf("GRE reply: %s", stateString(got))
	}
	if d := h.dump(AllZones); len(d) != 1 || d[0] != "47,orig=(src=10.0.0.1,dst=10.0.0.2,sport=0,dport=0),reply=(src=10.0.0.2,dst=10.0.0.1,sport=0,dport=0)" {
		t.Fatalf("dump %q", d)
	}
}

func TestICMPEcho(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name := "ipv4"
		a, b, proto, req, rep := "10.0.0.1", "10.0.0.2", uint8(flow.IPProtoICMP), uint8(icmpEcho), uint8(icmpEchoReply)
		wantDump := "icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=77,type=8,code=0),reply=(src=10.0.0.2,dst=10.0.0.1,id=77,type=0,code=0)"
		if v6 {
			name = "ipv6"
			a, b, proto, req, rep = "fd00::1", "fd00::2", flow.IPProtoICMPv6, icmp6EchoRequest, icmp6EchoReply
			wantDump = "icmpv6,orig=(src=fd00::1,dst=fd00::2,id=77,type=128,code=0),reply=(src=fd00::2,dst=fd00::1,id=77,type=129,code=0)"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{})
			request := pkt{src: a, dst: b, proto: proto, icmpType: req, icmpID: 77}
			reply := pkt{src: b, dst: a, proto: proto, icmpType: rep, icmpID: 77}
			if got := h.state(reply, commit(0)); got != trk|inv {
				t.Fatalf("reply without request: %s", stateString(got))
			}
			k, _ := h.run(request.build(t), commit(0))
			if k.CtState != trk|new_ || k.CtNwProto != proto || k.CtTpSrc != uint16(req) || k.CtTpDst != 0 {
				t.Fatalf("request: %s proto %d tp %d/%d", stateString(k.CtState), k.CtNwProto, k.CtTpSrc, k.CtTpDst)
			}
			if got := h.state(request, lookup(0)); got != trk|new_ {
				t.Fatalf("second request: %s", stateString(got))
			}
			other := reply
			other.icmpID = 78
			if got := h.state(other, lookup(0)); got != trk|inv {
				t.Fatalf("reply with another id: %s", stateString(got))
			}
			if got := h.state(reply, lookup(0)); got != trk|est|rpl {
				t.Fatalf("reply: %s", stateString(got))
			}
			if got := h.state(request, lookup(0)); got != trk|est {
				t.Fatalf("request after reply: %s", stateString(got))
			}
			if d := h.dump(AllZones); len(d) != 1 || d[0] != wantDump {
				t.Fatalf("dump %q, want %q", d, wantDump)
			}
		})
	}
}

func TestICMPErrorRelated(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name := "ipv4"
		cli, srv, router := "10.0.0.1", "10.0.0.2", "10.9.9.9"
		proto, unreach, code := uint8(flow.IPProtoICMP), uint8(icmpDestUnreach), uint8(3)
		if v6 {
			name = "ipv6"
			cli, srv, router = "fd00::1", "fd00::2", "fd09::9"
			proto, unreach, code = flow.IPProtoICMPv6, icmp6DestUnreach, 4
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{})
			udp := pkt{src: cli, dst: srv, proto: flow.IPProtoUDP, sport: 5000, dport: 9999, payload: []byte("hello")}
			quote := ipPacket(udp.build(t))
			// No connection yet: the error is invalid.
			errFromSrv := pkt{src: srv, dst: cli, proto: proto, icmpType: unreach, icmpCode: code, quote: quote}
			if got := h.state(errFromSrv, lookup(0)); got != trk|inv {
				t.Fatalf("error about nothing: %s", stateString(got))
			}
			h.state(udp, commit(0))
			// The server answers with port unreachable: related, reply direction.
			k, _ := h.run(errFromSrv.build(t), lookup(0))
			if k.CtState != trk|rel|rpl || k.CtNwProto != flow.IPProtoUDP || k.CtTpSrc != 5000 || k.CtTpDst != 9999 {
				t.Fatalf("port unreachable: %s orig %d %d/%d", stateString(k.CtState), k.CtNwProto, k.CtTpSrc, k.CtTpDst)
			}
			// A router on the way answers too.
			fromRouter := errFromSrv
			fromRouter.src = router
			if got := h.state(fromRouter, lookup(0)); got != trk|rel|rpl {
				t.Fatalf("router's error: %s", stateString(got))
			}
			// An error quoting a packet its addressee did not send is invalid.
			bogus := errFromSrv
			bogus.dst = router
			if got := h.state(bogus, lookup(0)); got != trk|inv {
				t.Fatalf("misaddressed error: %s", stateString(got))
			}
			// An error never creates a connection.
			if h.tr.Len() != 1 {
				t.Fatalf("%d connections", h.tr.Len())
			}
		})
	}
}

func TestInvalidPackets(t *testing.T) {
	h := newHarness(t, Config{})
	udp := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 5000, dport: 53}
	arp := make([]byte, 42)
	copy(arp, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1})
	badCsum := udp.build(t)
	badCsum[14+20+7] ^= 0xff // the UDP checksum
	badIPCsum := udp.build(t)
	badIPCsum[14+10] ^= 0xff
	frag := udp.build(t)
	frag[14+6] = 0x20 // more fragments
	frag[14+10], frag[14+11] = 0, 0
	fixIPv4Csum(frag[14:34])
	zeroPort := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 0, dport: 53}
	tests := []struct {
		name  string
		frame []byte
	}{
		{"arp", arp},
		{"udp-checksum", badCsum},
		{"ip-checksum", badIPCsum},
		{"fragment", frag},
		{"zero-port", zeroPort.build(t)},
		{"truncated", udp.build(t)[:30]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, v := h.run(tc.frame, commit(3))
			if v != flow.VerdictOK || k.CtState != trk|inv || k.CtZone != 3 || k.CtNwProto != 0 || k.CtMark != 0 {
				t.Fatalf("verdict %v state %s zone %d proto %d", v, stateString(k.CtState), k.CtZone, k.CtNwProto)
			}
		})
	}
	if h.tr.Len() != 0 {
		t.Fatalf("invalid packets committed %d connections", h.tr.Len())
	}
}

func fixIPv4Csum(h []byte) {
	h[10], h[11] = 0, 0
	s := ^flow.FoldSum(flow.OnesSum(0, h))
	h[10], h[11] = byte(s>>8), byte(s)
}

func TestMarkLabelZone(t *testing.T) {
	h := newHarness(t, Config{})
	udp := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 5000, dport: 53}
	ct := commit(7)
	ct.SetMark, ct.Mark, ct.MarkMask = true, 0x12, 0xff
	ct.SetLabel = true
	ct.Label[15], ct.LabelMask[15] = 0x01, 0xff
	ct.Label[0], ct.LabelMask[0] = 0xab, 0xff
	k, _ := h.run(udp.build(t), ct)
	if k.CtMark != 0x12 || k.CtLabel[0] != 0xab || k.CtLabel[15] != 1 || k.CtZone != 7 {
		t.Fatalf("mark %x label %x zone %d", k.CtMark, k.CtLabel, k.CtZone)
	}
	// A masked update keeps the other bits.
	ct2 := commit(7)
	ct2.SetMark, ct2.Mark, ct2.MarkMask = true, 0x100, 0xf00
	k, _ = h.run(udp.build(t), ct2)
	if k.CtMark != 0x112 {
		t.Fatalf("masked mark %x, want 0x112", k.CtMark)
	}
	// A later lookup sees them.
	k, _ = h.run(udp.build(t), lookup(7))
	if k.CtMark != 0x112 || k.CtLabel[0] != 0xab {
		t.Fatalf("lookup: mark %x label %x", k.CtMark, k.CtLabel)
	}
	want := "udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=5000,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=5000),zone=7,mark=274,labels=0xab000000000000000000000000000001"
	if d := h.dump(7); len(d) != 1 || d[0] != want {
		t.Fatalf("dump %q", d)
	}
	if d := h.dump(8); len(d) != 0 {
		t.Fatalf("zone 8 dump %q", d)
	}
	// Another zone sees another (new) connection and resets the state.
	k, _ = h.run(udp.build(t), lookup(8))
	if k.CtState != trk|new_ || k.CtMark != 0 || k.CtZone != 8 {
		t.Fatalf("zone 8: %s mark %x", stateString(k.CtState), k.CtMark)
	}
}

func TestForce(t *testing.T) {
	h := newHarness(t, Config{})
	a := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 5000, dport: 53}
	b := pkt{src: "10.0.0.2", dst: "10.0.0.1", proto: flow.IPProtoUDP, sport: 53, dport: 5000}
	h.state(a, commit(0))
	force := commit(0)
	force.Force = true
	if got := h.state(b, force); got != trk|new_ {
		t.Fatalf("forced commit in the reply direction: %s", stateString(got))
	}
	var e Entry
	for e = range h.tr.Dump(h.now, AllZones) {
	}
	if h.tr.Len() != 1 || e.Orig.SrcPort != 53 {
		t.Fatalf("after force: %d connections, orig %+v", h.tr.Len(), e.Orig)
	}
}

func TestLimits(t *testing.T) {
	h := newHarness(t, Config{MaxConns: 3})
	udp := func(port uint16, zone uint16) (pkt, flow.CT) {
		return pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: port, dport: 53}, commit(zone)
	}
	for i := range uint16(3) {
		p, ct := udp(1000+i, 0)
		if _, v := h.run(p.build(t), ct); v != flow.VerdictOK {
			t.Fatalf("commit %d: %v", i, v)
		}
	}
	p, ct := udp(2000, 0)
	k, v := h.run(p.build(t), ct)
	if v != flow.VerdictCTFull || k.CtState != trk|new_ {
		t.Fatalf("commit beyond maxconns: %v %s", v, stateString(k.CtState))
	}
	if h.tr.Counters().Full != 1 || h.tr.Len() != 3 {
		t.Fatalf("counters %+v, %d connections", h.tr.Counters(), h.tr.Len())
	}
	// Established connections keep flowing.
	p, _ = udp(1000, 0)
	if got := h.state(p, lookup(0)); got != trk|new_ {
		t.Fatalf("existing connection: %s", stateString(got))
	}
	if _, v := h.run(p.build(t), commit(0)); v != flow.VerdictOK {
		t.Fatalf("recommit of an existing connection: %v", v)
	}
	// Per-zone limits.
	h.tr.SetMaxConns(100)
	if err := h.tr.SetZoneLimit(9, 1); err != nil {
		t.Fatal(err)
	}
	p, ct = udp(3000, 9)
	if _, v := h.run(p.build(t), ct); v != flow.VerdictOK {
		t.Fatalf("first in zone 9: %v", v)
	}
	p, ct = udp(3001, 9)
	if _, v := h.run(p.build(t), ct); v != flow.VerdictCTFull {
		t.Fatalf("second in zone 9: %v", v)
	}
	h.tr.SetDefaultZoneLimit(1)
	p, ct = udp(3002, 10)
	h.run(p.build(t), ct)
	p, ct = udp(3003, 10)
	if _, v := h.run(p.build(t), ct); v != flow.VerdictCTFull {
		t.Fatalf("second in zone 10 under a default limit of 1: %v", v)
	}
	if c := h.tr.Counters(); c.ZoneFull != 2 {
		t.Fatalf("zone full count %d", c.ZoneFull)
	}
	got := FormatZoneLimits(h.tr.DefaultZoneLimit(), h.tr.ZoneLimits())
	if want := "default limit=1\nzone=9,limit=1,count=1"; got != want {
		t.Fatalf("limits %q, want %q", got, want)
	}
	h.tr.DeleteZoneLimit(9)
	if zl := h.tr.ZoneLimits(9, 0); len(zl) != 2 || zl[0].Limit != 1 || zl[0].Count != 1 || zl[1].Count != 3 {
		t.Fatalf("zone limits %+v", zl)
	}
	if err := h.tr.SetZoneLimit(1, 1<<31); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("huge limit: %v", err)
	}
}

func TestSYNFloodBounded(t *testing.T) {
	h := newHarness(t, Config{MaxConns: 100})
	c := newTCPConn(h)
	c.handshake(t)
	full := 0
	for i := range 1000 {
		syn := pkt{src: "10.1.0.1", dst: "10.0.0.2", proto: flow.IPProtoTCP, sport: uint16(1024 + i), dport: 80, flags: tcpSYN, seq: 1, win: 1000}
		if _, v := h.run(syn.build(t), commit(0)); v == flow.VerdictCTFull {
			full++
		}
		if h.tr.Len() > 100 {
			t.Fatalf("table holds %d connections over its limit of 100", h.tr.Len())
		}
	}
	if full != 901 || h.tr.Counters().Full != 901 {
		t.Fatalf("%d refused (counter %d), want 901", full, h.tr.Counters().Full)
	}
	if got := h.state(c.fromClient(tcpACK, 10), lookup(0)); got != trk|est {
		t.Fatalf("established connection during the flood: %s", stateString(got))
	}
	// The half-open connections time out after tcp_syn_sent.
	h.advance(31 * time.Second)
	if n := h.tr.Sweep(h.now); n != 99 {
		t.Fatalf("sweep removed %d, want 99", n)
	}
}

func TestFlush(t *testing.T) {
	h := newHarness(t, Config{})
	for i := range uint16(10) {
		h.state(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1000 + i, dport: 53}, commit(i%2))
	}
	if err := h.tr.FlushTuple(1, flow.IPProtoUDP, Tuple{Src: mustAddr("10.0.0.2"), Dst: mustAddr("10.0.0.1"), SrcPort: 53, DstPort: 1001}); err != nil {
		t.Fatalf("flush by reply tuple: %v", err)
	}
	if err := h.tr.FlushTuple(1, flow.IPProtoUDP, Tuple{Src: mustAddr("10.0.0.2"), Dst: mustAddr("10.0.0.1"), SrcPort: 53, DstPort: 1001}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second flush: %v", err)
	}
	if n := h.tr.Flush(0); n != 5 {
		t.Fatalf("flushed %d in zone 0, want 5", n)
	}
	if n := h.tr.Flush(AllZones); n != 4 || h.tr.Len() != 0 {
		t.Fatalf("flushed %d, %d left", n, h.tr.Len())
	}
}

func TestStats(t *testing.T) {
	h := newHarness(t, Config{})
	c := newTCPConn(h)
	c.handshake(t)
	h.state(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1, dport: 2}, commit(0))
	h.state(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoICMP, icmpType: icmpEcho, icmpID: 1}, commit(0))
	h.state(pkt{src: "fd00::1", dst: "fd00::2", proto: flow.IPProtoICMPv6, icmpType: icmp6EchoRequest, icmpID: 1}, commit(0))
	st := h.tr.Stats(h.now, AllZones)
	want := "Connections Stats:\n    Total: 4\n  TCP: 1\n    Conn per TCP states:\n\t  [ESTABLISHED]=1\n  UDP: 1\n  ICMP: 1\n"
	if got := st.Format(true); got != want {
		t.Fatalf("stats:\n%q\nwant\n%q", got, want)
	}
	sc := h.tr.StateCounts(h.now)
	wantSC := []StateCount{{"icmp", "FIRST", 1}, {"icmpv6", "FIRST", 1}, {"tcp", "ESTABLISHED", 1}, {"udp", "FIRST", 1}}
	if len(sc) != len(wantSC) {
		t.Fatalf("state counts %+v", sc)
	}
	for i := range sc {
		if sc[i] != wantSC[i] {
			t.Fatalf("state counts %+v, want %+v", sc, wantSC)
		}
	}
}

func TestExpirySweep(t *testing.T) {
	h := newHarness(t, Config{})
	for i := range uint16(50) {
		h.state(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1000 + i, dport: 53}, commit(0))
	}
	h.advance(59 * time.Second)
	if n := h.tr.Sweep(h.now); n != 0 {
		t.Fatalf("swept %d before the timeout", n)
	}
	h.advance(2 * time.Second)
	if n := h.tr.Sweep(h.now); n != 50 || h.tr.Len() != 0 || len(h.dump(AllZones)) != 0 {
		t.Fatalf("swept %d, %d left", n, h.tr.Len())
	}
	// The slots are reused.
	for i := range uint16(50) {
		h.state(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1000 + i, dport: 53}, commit(0))
	}
	live := 0
	for i := range h.tr.shards {
		live += h.tr.shards[i].live
	}
	if live != 50 {
		t.Fatalf("%d slots in use for 50 connections", live)
	}
}

func TestHitDoesNotAllocate(t *testing.T) {
	h := newHarness(t, Config{})
	c := newTCPConn(h)
	c.handshake(t)
	frame := c.fromClient(tcpACK, 0).build(t)
	var k flow.Key
	var off flow.Offsets
	ct := lookup(0)
	n := testing.AllocsPerRun(1000, func() {
		flow.Extract(&k, &off, frame, 1)
		h.tr.Track(frame, &k, &off, &ct, h.now)
	})
	if n != 0 || k.CtState != trk|est {
		t.Fatalf("%v allocations per hit (state %s)", n, stateString(k.CtState))
	}
}

func TestConcurrentDirections(t *testing.T) {
	h := newHarness(t, Config{Shards: 4})
	const conns = 200
	for i := range uint16(conns) {
		h.state(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1000 + i, dport: 53}, commit(0))
	}
	done := make(chan error, 2)
	for _, reply := range []bool{false, true} {
		go func() {
			var k flow.Key
			var off flow.Offsets
			ct := lookup(0)
			for round := range 20 {
				for i := range uint16(conns) {
					p := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1000 + i, dport: 53}
					if reply {
						p = pkt{src: "10.0.0.2", dst: "10.0.0.1", proto: flow.IPProtoUDP, sport: 53, dport: 1000 + i}
					}
					frame := p.build(t)
					flow.Extract(&k, &off, frame, 1)
					h.tr.Track(frame, &k, &off, &ct, h.now)
					if k.CtState&trk == 0 || k.CtState&inv != 0 {
						done <- errors.New("bad state " + stateString(k.CtState))
						return
					}
					if reply && round == 0 && i == 0 {
						h.tr.Sweep(h.now)
					}
				}
			}
			done <- nil
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if h.tr.Len() != conns {
		t.Fatalf("%d connections", h.tr.Len())
	}
}

func TestRunSweeps(t *testing.T) {
	h := newHarness(t, Config{})
	h.state(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1, dport: 2}, commit(0))
	later := h.now + int64(2*time.Minute)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		h.tr.Run(stop, time.Millisecond, func() int64 { return later })
		close(done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for h.tr.Len() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	<-done
	if h.tr.Len() != 0 {
		t.Fatalf("%d connections left after the sweeper ran", h.tr.Len())
	}
}

func TestUDPBadLength(t *testing.T) {
	h := newHarness(t, Config{})
	fr := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1, dport: 2, payload: []byte("abcd")}.build(t)
	fr[14+20+4], fr[14+20+5] = 0, 200 // UDP length past the packet
	fr[14+20+6], fr[14+20+7] = 0, 0   // no checksum, so only the length is wrong
	if k, _ := h.run(fr, commit(0)); k.CtState != trk|inv {
		t.Fatalf("UDP length past the packet: %s", stateString(k.CtState))
	}
}

func TestTCPSeqCheckOff(t *testing.T) {
	h := newHarness(t, Config{})
	c := newTCPConn(h)
	c.handshake(t)
	far := c.fromClient(tcpACK|tcpPSH, 10)
	far.seq += 1 << 30
	if got := h.state(far, lookup(0)); got != trk|inv {
		t.Fatalf("out of window with checks on: %s", stateString(got))
	}
	h.tr.SetTCPSeqCheck(false)
	if h.tr.TCPSeqCheck() {
		t.Fatal("still on")
	}
	if got := h.state(far, lookup(0)); got != trk|est {
		t.Fatalf("out of window with checks off: %s", stateString(got))
	}
	if got := h.state(c.fromClient(tcpSYN|tcpFIN, 0), lookup(0)); got != trk|inv {
		t.Fatalf("SYN+FIN with checks off: %s", stateString(got))
	}
}
