package conntrack

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// BenchmarkTrackHit is the cost of ct() on a packet of an established TCP
// connection, the hit path: extraction of the tuple (checksums included),
// the lookup and the window check.
func BenchmarkTrackHit(b *testing.B) {
	h := newHarness(b, Config{})
	c := &tcpConn{h: h, cli: "10.0.0.1", srv: "10.0.0.2", cport: 41000, sport: 80, cseq: 1000, sseq: 5000}
	h.state(c.fromClient(tcpSYN, 0), commit(0))
	h.state(c.fromServer(tcpSYN|tcpACK, 0), lookup(0))
	frame := c.fromClient(tcpACK, 0).build(b)
	var k flow.Key
	var off flow.Offsets
	flow.Extract(&k, &off, frame, 1)
	ct := lookup(0)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		k.CtState = 0
		h.tr.Track(frame, &k, &off, &ct, h.now)
	}
	b.StopTimer()
	if k.CtState != trk|est {
		b.Fatalf("state %s", stateString(k.CtState))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// BenchmarkTrackHitParallel is the hit path with every poll thread
// tracking its own connections.
func BenchmarkTrackHitParallel(b *testing.B) {
	h := newHarness(b, Config{})
	const conns = 256
	frames := make([][]byte, conns)
	for i := range conns {
		p := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: uint16(1000 + i), dport: 53}
		frames[i] = p.build(b)
		h.state(p, commit(0))
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var k flow.Key
		var off flow.Offsets
		ct := lookup(0)
		i := 0
		for pb.Next() {
			f := frames[i%conns]
			i++
			flow.Extract(&k, &off, f, 1)
			h.tr.Track(f, &k, &off, &ct, h.now)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// udpFrame writes an IPv4 UDP frame without a UDP checksum from client
// address n to a server.
func udpFrame(frame []byte, n uint32) {
	binary.BigEndian.PutUint16(frame[12:], flow.EthTypeIPv4)
	ip := frame[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 28)
	ip[8], ip[9] = 64, flow.IPProtoUDP
	binary.BigEndian.PutUint32(ip[12:], 0x0a000000|n>>8)
	binary.BigEndian.PutUint32(ip[16:], 0xc0a80001)
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^flow.FoldSum(flow.OnesSum(0, ip)))
	binary.BigEndian.PutUint16(frame[34:], uint16(1024+n&0xff))
	binary.BigEndian.PutUint16(frame[36:], 53)
	binary.BigEndian.PutUint16(frame[38:], 8)
}

// BenchmarkTrackCommit is the cost of committing a new connection.
func BenchmarkTrackCommit(b *testing.B) {
	tr, err := New(Config{MaxConns: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, 60)
	var k flow.Key
	var off flow.Offsets
	ct := commit(0)
	now := int64(time.Hour)
	b.ReportAllocs()
	n := uint32(0)
	for b.Loop() {
		udpFrame(frame, n)
		n++
		flow.Extract(&k, &off, frame, 1)
		tr.Track(frame, &k, &off, &ct, now)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
}

// BenchmarkTable1M holds 1,000,000 connections and reports the heap they
// take per connection (target: 256 bytes or less).
func BenchmarkTable1M(b *testing.B) {
	const conns = 1000000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tr, err := New(Config{})
		if err != nil {
			b.Fatal(err)
		}
		frame := make([]byte, 60)
		var k flow.Key
		var off flow.Offsets
		ct := commit(0)
		now := int64(time.Hour)
		for i := range uint32(conns) {
			udpFrame(frame, i)
			flow.Extract(&k, &off, frame, 1)
			if v := tr.Track(frame, &k, &off, &ct, now); v != flow.VerdictOK {
				b.Fatalf("connection %d: %v", i, v)
			}
		}
		if tr.Len() != conns {
			b.Fatalf("%d connections", tr.Len())
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/conns, "B/conn")
		runtime.KeepAlive(tr)
	}
}

// BenchmarkTrackConnection is the tracker's cost of one short TCP
// connection as a stateful firewall sees it (ct on every packet, the SYN
// tracked twice: once to find it new, once to commit it): the handshake,
// 16 bytes each way, the client's close and the last ACK. The client
// cycles through ports, so that a port comes back while its previous
// connection is in TIME_WAIT and replaces it, as a client that reuses
// ports does.
func BenchmarkTrackConnection(b *testing.B) {
	const ports = 16384
	h := newHarness(b, Config{})
	type step struct {
		frame []byte
		ct    flow.CT
		want  uint8
	}
	var steps [][]step
	for i := range ports {
		c := &tcpConn{h: h, cli: "10.0.0.1", srv: "10.0.0.2", cport: uint16(1024 + i), sport: 7007, cseq: 1000, sseq: 5000}
		syn := c.fromClient(tcpSYN, 0).build(b)
		steps = append(steps, []step{
			{syn, lookup(0), trk | new_},
			{syn, commit(0), trk | new_},
			{c.fromServer(tcpSYN|tcpACK, 0).build(b), lookup(0), trk | est | rpl},
			{c.fromClient(tcpACK, 0).build(b), lookup(0), trk | est},
			{c.fromClient(tcpACK|tcpPSH, 16).build(b), lookup(0), trk | est},
			{c.fromServer(tcpACK|tcpPSH, 16).build(b), lookup(0), trk | est | rpl},
			{c.fromClient(tcpACK|tcpFIN, 0).build(b), lookup(0), trk | est},
			{c.fromServer(tcpACK|tcpFIN, 0).build(b), lookup(0), trk | est | rpl},
			{c.fromClient(tcpACK, 0).build(b), lookup(0), trk | est},
		})
	}
	var k flow.Key
	var off flow.Offsets
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		for _, s := range steps[i%ports] {
			flow.Extract(&k, &off, s.frame, 1)
			h.tr.Track(s.frame, &k, &off, &s.ct, h.now)
			if k.CtState != s.want {
				b.Fatalf("connection %d: ct_state %s, want %s", i, stateString(k.CtState), stateString(s.want))
			}
		}
		i++
		h.now += int64(time.Microsecond)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
}
