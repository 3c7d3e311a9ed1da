package datapath

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/datapath/conntrack"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// fragmentV4 cuts an IPv4 frame (no options) into fragments carrying size
// data bytes each (a multiple of 8), with identification id.
func fragmentV4(t testing.TB, frame []byte, size int, id uint16) [][]byte {
	t.Helper()
	const l3 = 14
	data := frame[l3+20:]
	var out [][]byte
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := append(append([]byte(nil), frame[:l3+20]...), data[off:end]...)
		h := f[l3:]
		binary.BigEndian.PutUint16(h[2:], uint16(20+end-off))
		binary.BigEndian.PutUint16(h[4:], id)
		fo := uint16(off / 8)
		if end < len(data) {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(h[6:], fo)
		h[10], h[11] = 0, 0
		binary.BigEndian.PutUint16(h[10:], ^flow.FoldSum(flow.OnesSum(0, h[:20])))
		out = append(out, f)
	}
	return out
}

// fragBridge is a bridge with the real tracker and a reassembler, two
// memory ports and the stateful firewall between them.
func fragBridge(t *testing.T) (*Bridge, *conntrack.Tracker, *conntrack.Defrag, *vport.MemPort, *vport.MemPort) {
	t.Helper()
	tr, err := conntrack.New(conntrack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	d := conntrack.NewDefrag()
	b := newTestBridge(t, Config{Idle: IdleSleep, Conntrack: tr, Defrag: d})
	m1, _ := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	m2, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	statefulFirewall(t, b)
	return b, tr, d, m1, m2
}

func fragPortStats(t *testing.T, b *Bridge, name string) PortStats {
	t.Helper()
	for _, p := range b.Ports() {
		if p.Name == name {
			return p.Stats()
		}
	}
	t.Fatalf("no port %s", name)
	return PortStats{}
}

// TestConntrackReassemblesFragments sends a UDP datagram of 3,000 bytes,
// cut into three IPv4 fragments and delivered out of order, through the
// stateful firewall: nothing leaves until the last fragment is in (the
// fragments are held, and the ledger counts them held), then the
// reassembled datagram is tracked once (+new, committed) and the three
// fragments go out unchanged, in the order of their offsets. The reply's
// fragments are +est and come back; fragments of a new connection from
// the other side are dropped as the firewall says.
func TestConntrackReassemblesFragments(t *testing.T) {
	b, tr, d, m1, m2 := fragBridge(t)
	send := func(mp *vport.MemPort, frames ...[]byte) {
		t.Helper()
		if mp.Inject(0, frames) != len(frames) {
			t.Fatal("inject failed")
		}
		quiesce(t, b, m1, m2)
	}

	dgram := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 4000, dport: 9000, payloadSz: 3000})
	frags := fragmentV4(t, dgram, 1480, 7)
	if len(frags) != 3 {
		t.Fatalf("%d fragments", len(frags))
	}
	send(m1, frags[2])
	send(m1, frags[0])
	if got := drainAll(m2); len(got) != 0 {
		t.Fatalf("p2 got %d frames before the packet was whole", len(got))
	}
	if s := fragPortStats(t, b, "p1"); s.Held != 2 || !s.Balanced() {
		t.Fatalf("p1 while 2 fragments are held: held %d, rx %d copies %d sent %d drops %v", s.Held, s.RxPackets, s.Copies, s.Sent, s.Drops)
	}
	if d.Held() != 2 {
		t.Fatalf("reassembler holds %d, want 2", d.Held())
	}
	send(m1, frags[1])
	got := drainAll(m2)
	if len(got) != 3 {
		t.Fatalf("p2 got %d frames, want the 3 fragments", len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i], frags[i]) {
			t.Errorf("fragment %d changed on its way", i)
		}
	}
	if n := tr.Len(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}

	reply := buildFrame(t, frameSpec{src: "10.0.0.2", dst: "10.0.0.1", proto: "udp", sport: 9000, dport: 4000, payloadSz: 2000})
	send(m2, fragmentV4(t, reply, 1480, 8)...)
	if got := drainAll(m1); len(got) != 2 {
		t.Fatalf("p1 got %d frames of the reply, want 2 fragments", len(got))
	}
	other := buildFrame(t, frameSpec{src: "10.0.0.2", dst: "10.0.0.1", proto: "udp", sport: 5555, dport: 22, payloadSz: 2000})
	send(m2, fragmentV4(t, other, 1480, 9)...)
	if got := drainAll(m1); len(got) != 0 {
		t.Fatalf("p1 got %d frames of a connection the firewall drops", len(got))
	}
	checkAccounting(t, b)
	s1, s2 := fragPortStats(t, b, "p1"), fragPortStats(t, b, "p2")
	if s1.Held != 0 || s1.Sent != 3 || s2.Sent != 2 || s2.Drops[DropNoRule] != 2 {
		t.Errorf("p1 held %d sent %d; p2 sent %d drops %v", s1.Held, s1.Sent, s2.Sent, s2.Drops)
	}
	if d.Held() != 0 {
		t.Errorf("reassembler still holds %d", d.Held())
	}
}

// TestConntrackFragmentsNAT: ct(commit,nat(src=...)) on a fragmented
// datagram rewrites the source address of every fragment and the source
// port in the first, and the UDP checksum (in the first fragment, over the
// whole datagram) stays right.
func TestConntrackFragmentsNAT(t *testing.T) {
	tr, err := conntrack.New(conntrack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b := newTestBridge(t, Config{Idle: IdleSleep, Conntrack: tr, Defrag: conntrack.NewDefrag()})
	m1, _ := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	m2, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	nat := &flow.NAT{Kind: flow.NATSrc, AddrMin: netip.MustParseAddr("192.0.2.9"), AddrMax: netip.MustParseAddr("192.0.2.9")}
	addCTFlow(t, b, "in_port=1,ip,actions=output:2", 0, 0, ctAction(flow.CT{Commit: true, Table: flow.CTNoTable, NAT: nat}))

	dgram := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 4000, dport: 9000, payloadSz: 3000})
	frags := fragmentV4(t, dgram, 1480, 11)
	if m1.Inject(0, frags) != len(frags) {
		t.Fatal("inject failed")
	}
	quiesce(t, b, m1, m2)
	got := drainAll(m2)
	if len(got) != 3 {
		t.Fatalf("p2 got %d frames, want 3 fragments", len(got))
	}
	var whole []byte
	for i, f := range got {
		h := f[14:]
		if src := netip.AddrFrom4([4]byte(h[12:16])); src.String() != "192.0.2.9" {
			t.Errorf("fragment %d from %s", i, src)
		}
		if flow.FoldSum(flow.OnesSum(0, h[:20])) != 0xffff {
			t.Errorf("fragment %d: IPv4 header checksum wrong", i)
		}
		whole = append(whole, h[20:]...)
	}
	// The datagram's UDP checksum, over the pseudo-header with the new
	// source, verifies.
	ip := got[0][14:]
	sum := flow.OnesSum(0, ip[12:20]) + uint64(flow.IPProtoUDP) + uint64(len(whole))
	if flow.FoldSum(flow.OnesSum(sum, whole)) != 0xffff {
		t.Errorf("the translated datagram's UDP checksum is wrong")
	}
	checkAccounting(t, b)
}

// TestConntrackFragmentsInvalid: fragments that reassembly refuses are
// tracked as they are, +trk+inv, and fragments whose packet never
// completes are sent on with +inv and no +trk once they expire, as Open
// vSwitch 3.1's ipf does (TestIPFRefusedAndExpiredMatchOVS in
// datapath/conntrack watched it); the flows decide, and the ledger
// balances at every point. Fragments that meet no ct action go on
// unchanged.
func TestConntrackFragmentsInvalid(t *testing.T) {
	b, _, d, m1, m2 := fragBridge(t)
	m3, _ := addMemPort(t, b, vport.MemConfig{Name: "p3"}, 3)
	m4, _ := addMemPort(t, b, vport.MemConfig{Name: "p4"}, 4)
	m5, _ := addMemPort(t, b, vport.MemConfig{Name: "p5"}, 5)
	addFlows(t, b, "in_port=3,actions=output:2")
	addCTFlow(t, b, "table=1,priority=30,actions=output:4", flow.CtStateTracked|flow.CtStateInv, flow.CtStateTracked|flow.CtStateInv)
	addCTFlow(t, b, "table=1,priority=30,actions=output:5", flow.CtStateInv, flow.CtStateTracked|flow.CtStateInv)
	send := func(mp *vport.MemPort, frames ...[]byte) {
		t.Helper()
		if mp.Inject(0, frames) != len(frames) {
			t.Fatal("inject failed")
		}
		quiesce(t, b, m1, m2, m3)
	}
	// expect waits for n frames on mp, the given ones when not nil.
	expect := func(what string, mp *vport.MemPort, want ...[]byte) {
		t.Helper()
		var got [][]byte
		for deadline := time.Now().Add(20 * time.Second); len(got) < len(want) && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			got = append(got, drainAll(mp)...)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d frames out, want %d", what, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Errorf("%s: frame %d changed", what, i)
			}
		}
		if s := fragPortStats(t, b, "p1"); !s.Balanced() {
			t.Fatalf("%s: p1 does not balance: %+v", what, s)
		}
	}
	dgram := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 4000, dport: 9000, payloadSz: 3000})

	// Too small: fragments of 512 data bytes, under the 1,200 bytes of
	// a fragment that is not the last.
	small := fragmentV4(t, dgram, 512, 20)
	send(m1, small[0])
	expect("too small", m4, small[0])
	// Overlap: the same first fragment twice; the first is held.
	frags := fragmentV4(t, dgram, 1480, 21)
	send(m1, frags[0], frags[0])
	expect("overlap", m4, frags[0])
	if s := fragPortStats(t, b, "p1"); s.Held != 1 || s.RxDropped() != 0 {
		t.Fatalf("p1: drops %v held %d", s.Drops, s.Held)
	}
	// Expired: frags[0]'s packet never completes.
	d.Expire(ConntrackNow() + int64(time.Minute))
	expect("expired", m5, frags[0])
	if s := fragPortStats(t, b, "p1"); s.Held != 0 || s.RxDropped() != 0 {
		t.Fatalf("p1 after the timeout: drops %v held %d", s.Drops, s.Held)
	}
	if c := d.Counters(false); c.Expired != 1 || c.TooSmall != 1 || c.Overlap != 1 {
		t.Errorf("reassembler counters %+v", c)
	}
	// Disabled: the fragment is tracked as it is.
	d.SetEnabled(false, false)
	send(m1, frags[1])
	expect("disabled", m4, frags[1])
	d.SetEnabled(false, true)
	// Limit: one fragment held at most.
	if err := d.SetMaxFrags(1); err != nil {
		t.Fatal(err)
	}
	other := fragmentV4(t, dgram, 1480, 22)
	send(m1, frags[1], other[1])
	expect("limit", m4, other[1])
	// No ct on the way: fragments go out as they came.
	send(m3, frags...)
	expect("no ct", m2, frags...)
	checkAccounting(t, b)
}

// TestConntrackNonFragmentHitAllocs: reassembly costs a packet that is
// not a fragment nothing: ct on an established connection allocates
// nothing with a reassembler in place.
func TestConntrackNonFragmentHitAllocs(t *testing.T) {
	tr, err := conntrack.New(conntrack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Not started: the test runs the poll thread's ct itself.
	b, err := New(Config{Name: "br0", Conntrack: tr, Defrag: conntrack.NewDefrag()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	p := b.pmds[0]
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 4000, dport: 9000, payloadSz: 100})
	var k flow.Key
	var off flow.Offsets
	flow.Extract(&k, &off, frame, 1)
	ct := &flow.CT{Commit: true, Table: flow.CTNoTable}
	key := k
	if v := p.Conntrack(frame, &key, &off, ct, nil); v != flow.VerdictOK {
		t.Fatalf("verdict %v", v)
	}
	allocs := testing.AllocsPerRun(100, func() {
		key = k
		p.Conntrack(frame, &key, &off, ct, nil)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per tracked packet", allocs)
	}
}

// fragmentV6 cuts an IPv6 frame (no extension headers) into fragments
// carrying size data bytes each (a multiple of 8), with identification id.
func fragmentV6(frame []byte, size int, id uint32) [][]byte {
	const l3 = 14
	next := frame[l3+6]
	data := frame[l3+40:]
	var out [][]byte
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := append([]byte(nil), frame[:l3+40]...)
		h := f[l3:]
		h[6] = 44
		binary.BigEndian.PutUint16(h[4:], uint16(8+end-off))
		fh := make([]byte, 8)
		fh[0] = next
		offlg := uint16(off)
		if end < len(data) {
			offlg |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], offlg)
		binary.BigEndian.PutUint32(fh[4:], id)
		out = append(out, append(append(f, fh...), data[off:end]...))
	}
	return out
}

// udp6Frame builds an IPv6 UDP frame with a payload of size bytes.
func udp6Frame(t *testing.T, src, dst string, sport, dport uint16, size int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestConntrackReassemblesIPv6Fragments sends the fragments of an IPv6
// UDP datagram in order, so that a fragment that is not the first (whose
// key has protocol 44, its fragment header) completes the packet, through
// ct(table=1) and then ct(commit) in table 1, where they are reassembled
// a second time: the connection is tracked as UDP with its ports, and the
// fragments leave unchanged.
func TestConntrackReassemblesIPv6Fragments(t *testing.T) {
	tr, err := conntrack.New(conntrack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b := newTestBridge(t, Config{Idle: IdleSleep, Conntrack: tr, Defrag: conntrack.NewDefrag()})
	m1, _ := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	m2, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	addCTFlow(t, b, "in_port=1,ipv6,actions=drop", 0, 0, ctAction(flow.CT{Zone: 3, Table: 1}))
	addCTFlow(t, b, "table=1,in_port=1,ipv6,actions=output:2", flow.CtStateTracked|flow.CtStateNew, flow.CtStateTracked|flow.CtStateNew,
		ctAction(flow.CT{Commit: true, Zone: 3, Table: flow.CTNoTable}))

	frags := fragmentV6(udp6Frame(t, "fd00::1", "fd00::2", 4000, 9000, 3000), 1448, 0x1234)
	if m1.Inject(0, frags) != len(frags) {
		t.Fatal("inject failed")
	}
	quiesce(t, b, m1, m2)
	got := drainAll(m2)
	if len(got) != len(frags) {
		t.Fatalf("p2 got %d frames, want the %d fragments", len(got), len(frags))
	}
	for i := range got {
		if !bytes.Equal(got[i], frags[i]) {
			t.Errorf("fragment %d changed on its way", i)
		}
	}
	var conns []string
	for e := range tr.Dump(ConntrackNow(), conntrack.AllZones) {
		conns = append(conns, e.String())
	}
	if len(conns) != 1 || !strings.HasPrefix(conns[0], "udp,orig=(src=fd00::1,dst=fd00::2,sport=4000,dport=9000)") {
		t.Errorf("connections: %q, want the UDP one", conns)
	}
	checkAccounting(t, b)
}

// TestConntrackFragmentsPerBridge: bridges that share a reassembler
// reassemble only their own fragments (those of another bridge would come
// back on its poll threads and ports), and a bridge that closes takes its
// held fragments with it.
func TestConntrackFragmentsPerBridge(t *testing.T) {
	tr, err := conntrack.New(conntrack.Config{})
	if err != nil {
		t.Fatal(err)
	}
	d := conntrack.NewDefrag()
	type sw struct {
		b      *Bridge
		m1, m2 *vport.MemPort
	}
	var sws []sw
	for _, name := range []string{"br0", "br1"} {
		b, err := New(Config{Name: name, Idle: IdleSleep, PMDs: 1 + len(sws), Conntrack: tr, Defrag: d})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		m1, _ := addMemPort(t, b, vport.MemConfig{Name: name + "p1"}, 1)
		m2, _ := addMemPort(t, b, vport.MemConfig{Name: name + "p2"}, 2)
		addCTFlow(t, b, "in_port=1,ip,actions=output:2", 0, 0, ctAction(flow.CT{Commit: true, Table: flow.CTNoTable}))
		sws = append(sws, sw{b, m1, m2})
	}
	dgram := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 4000, dport: 9000, payloadSz: 3000})
	frags := fragmentV4(t, dgram, 1480, 30)
	send := func(s sw, frames ...[]byte) {
		t.Helper()
		if s.m1.Inject(0, frames) != len(frames) {
			t.Fatal("inject failed")
		}
		quiesce(t, s.b, s.m1, s.m2)
	}
	send(sws[0], frags[0])
	send(sws[1], frags[1], frags[2])
	if d.Held() != 3 || len(drainAll(sws[0].m2))+len(drainAll(sws[1].m2)) != 0 {
		t.Fatalf("%d fragments held, want the 3 of two bridges apart", d.Held())
	}
	checkAccounting(t, sws[0].b)
	checkAccounting(t, sws[1].b)
	if err := sws[1].b.Close(); err != nil {
		t.Fatal(err)
	}
	if d.Held() != 1 || d.Counters(false).Purged != 2 {
		t.Fatalf("after br1 closed: %d held, %d purged", d.Held(), d.Counters(false).Purged)
	}
	send(sws[0], frags[1], frags[2])
	if got := drainAll(sws[0].m2); len(got) != 3 {
		t.Fatalf("br0 sent %d frames, want the 3 fragments", len(got))
	}
	checkAccounting(t, sws[0].b)
}

// TestRemovedPortHeldFragments: a port removed while fragments it
// received are held keeps them in the removed row as held only until
// they leave; their fate (here expired and sent on as +inv, which the
// firewall does not allow) is counted there, and the row balances.
func TestRemovedPortHeldFragments(t *testing.T) {
	b, _, d, m1, m2 := fragBridge(t)
	dgram := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 4000, dport: 9000, payloadSz: 3000})
	frags := fragmentV4(t, dgram, 1480, 30)
	if m1.Inject(0, frags[:1]) != 1 {
		t.Fatal("inject failed")
	}
	quiesce(t, b, m1, m2)
	for deadline := time.Now().Add(20 * time.Second); fragPortStats(t, b, "p1").Held != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("p1 never held its fragment: %+v", fragPortStats(t, b, "p1"))
		}
	}
	if _, err := b.RemovePort(t.Context(), "p1"); err != nil {
		t.Fatal(err)
	}
	if r := b.RemovedStats(); r.Stats.Held != 1 || r.Stats.RxPackets != 1 {
		t.Fatalf("removed row right after: %+v", r.Stats)
	}
	d.Expire(ConntrackNow() + int64(time.Minute))
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r := b.RemovedStats()
		if r.Stats.Held == 0 && r.Stats.RxDropped() == 1 && r.Stats.Balanced() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("removed row after the timeout: %+v", r.Stats)
		}
	}
	// Removing another port settles the first: its counters stay.
	if _, err := b.RemovePort(t.Context(), "p2"); err != nil {
		t.Fatal(err)
	}
	if r := b.RemovedStats(); r.Ports != 2 || r.Stats.RxPackets != 1 || r.Stats.Held != 0 || r.Stats.RxDropped() != 1 || !r.Stats.Balanced() {
		t.Fatalf("removed row after p2 went: %+v", r.Stats)
	}
}
