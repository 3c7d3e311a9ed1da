package datapath

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/datapath/tunnel"
	"github.com/ovsxdp/ovsxdp/vport"
	"github.com/ovsxdp/ovsxdp/vport/underlay"
)

// tunnelRig is native tunnelling between two bridges that are not
// started (PollOnce drives them): brint has a workload port w (1) and the
// tunnel port vx (10); brphy the uplink up (1) and the port phy0 (2) that
// stands for the internal port holding the local underlay address. The
// path to the remote is set by hand, as the Tunnels refresh would.
type tunnelRig struct {
	tn            *Tunnels
	in, phy       *Bridge
	w, up, phyMem *vport.MemPort
	wp, vxp, upp  *Port
	phyp          *Port
	vx            *TunnelPort
}

var (
	rigLocal  = netip.MustParseAddr("192.0.2.1")
	rigRemote = netip.MustParseAddr("192.0.2.2")
	rigSrcMAC = [6]byte{2, 0, 0, 0, 0, 0xa1}
	rigDstMAC = [6]byte{2, 0, 0, 0, 0, 0xb1}
)

func newTunnelRig(t *testing.T, opts map[string]string) *tunnelRig {
	t.Helper()
	return newTunnelRigKind(t, tunnel.VXLAN, opts)
}

// newTunnelRigKind is newTunnelRig with a tunnel port of kind.
func newTunnelRigKind(t *testing.T, kind tunnel.Kind, opts map[string]string) *tunnelRig {
	t.Helper()
	return newTunnelRigOn(t, kind, opts, nil)
}

// newTunnelRigOn is newTunnelRigKind with both bridges' poll threads run by
// threads (nil: each its own).
func newTunnelRigOn(t *testing.T, kind tunnel.Kind, opts map[string]string, threads *Threads) *tunnelRig {
	t.Helper()
	tn := &Tunnels{log: slog.Default(), want: make(chan tunnelWant, 64), wants: map[*TunnelPort]map[netip.Addr]bool{}}
	tn.rx.Store(&tunnelRx{})
	r := &tunnelRig{tn: tn}
	for _, name := range []string{"brint", "brphy"} {
		b, err := New(Config{Name: name, Tunnels: tn, Threads: threads})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if name == "brint" {
			r.in = b
		} else {
			r.phy = b
		}
	}
	r.w, r.wp = addMemPort(t, r.in, vport.MemConfig{Name: "w"}, 1)
	o, err := tunnel.ParseOptions(kind, opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.vx, err = NewTunnelPort("vx", o); err != nil {
		t.Fatal(err)
	}
	if r.vxp, err = r.in.AddPort(r.vx, 10); err != nil {
		t.Fatal(err)
	}
	r.up, r.upp = addMemPort(t, r.phy, vport.MemConfig{Name: "up"}, 1)
	r.phyMem, r.phyp = addMemPort(t, r.phy, vport.MemConfig{Name: "phy0"}, 2)
	addFlows(t, r.in, "in_port=1,actions=output:10", "in_port=10,tun_id=5,tun_src=192.0.2.2,actions=output:1")
	addFlows(t, r.phy, "in_port=2,actions=output:1", "in_port=1,actions=output:2")
	r.setPath(&tunnelPath{ok: true, bridge: r.phy, port: r.phyp, src: rigLocal, srcMAC: rigSrcMAC, dstMAC: rigDstMAC, mtu: 1500})
	r.tn.rx.Store(newTunnelRx([]tunnelPortRef{{r.in, r.vxp, r.vx}},
		map[string]*internalRef{"phy0": {bridge: r.phy, port: r.phyp, addrs: []netip.Addr{rigLocal}}}))
	return r
}

// setPath sets the tunnel port's path to the remote (nil: none).
func (r *tunnelRig) setPath(p *tunnelPath) {
	m := map[netip.Addr]*tunnelPath{}
	if p != nil {
		m[rigRemote] = p
	}
	r.vx.paths.Store(&m)
}

// run injects frame on port mp and polls both bridges until the packet
// has gone wherever it goes.
func (r *tunnelRig) run(t *testing.T, mp *vport.MemPort, frame []byte) {
	t.Helper()
	if mp.Inject(0, [][]byte{frame}) != 1 {
		t.Fatal("inject refused")
	}
	for range 3 {
		for _, b := range []*Bridge{r.in, r.phy} {
			if _, err := b.PollOnce(0); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// encapsulated returns inner encapsulated from the remote to the local
// endpoint with vni.
func encapsulated(t *testing.T, inner []byte, vni uint32) []byte {
	t.Helper()
	e, err := tunnel.NewEncap(tunnel.Config{Kind: tunnel.VXLAN, EthDst: rigSrcMAC, EthSrc: rigDstMAC, Src: rigRemote, Dst: rigLocal, VNI: vni})
	if err != nil {
		t.Fatal(err)
	}
	pkt, err := e.Append(nil, inner, 40000, 1)
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

func TestTunnelPortRoundTrip(t *testing.T) {
	r := newTunnelRig(t, map[string]string{"remote_ip": "192.0.2.2", "key": "5"})
	inner := buildFrame(t, frameSpec{src: "10.9.0.1", dst: "10.9.0.2", proto: "udp", sport: 1000, dport: 2000, payloadSz: 100})

	r.run(t, r.w, inner)
	out := drainAll(r.up)
	if len(out) != 1 {
		t.Fatalf("uplink sent %d frames, want 1 (brint %+v)", len(out), r.vxp.Stats())
	}
	var h tunnel.Header
	if err := (tunnel.Decoder{Kind: tunnel.VXLAN}).Decode(out[0], &h); err != nil {
		t.Fatalf("the encapsulation does not decode: %v", err)
	}
	if h.Src != rigLocal || h.Dst != rigRemote || h.VNI != 5 || h.EthSrc != rigSrcMAC || h.EthDst != rigDstMAC || !bytes.Equal(h.Inner, inner) ||
		h.SrcPort < tunnel.SrcPortMin || h.SrcPort >= tunnel.SrcPortMax || !h.DF || h.TTL != tunnel.DefaultTTL {
		t.Fatalf("outer header %+v", h)
	}

	// Back: decapsulated on the way to phy0, received on vx with the
	// tunnel metadata its flow matches.
	r.run(t, r.up, encapsulated(t, inner, 5))
	if got := drainAll(r.w); len(got) != 1 || !bytes.Equal(got[0], inner) {
		t.Fatalf("workload received %d frames, want the inner frame", len(got))
	}
	if n := len(drainAll(r.phyMem)); n != 0 {
		t.Errorf("phy0 received %d frames; the tunnel packet should have been decapsulated", n)
	}
	if s := r.vxp.Stats(); s.RxPackets != 1 || s.TxPackets != 1 {
		t.Errorf("tunnel port rx %d tx %d, want 1 and 1", s.RxPackets, s.TxPackets)
	}
	checkAccounting(t, r.in)
	checkAccounting(t, r.phy)
}

// TestTunnelDropReasons checks that each way tunnel output or input
// fails is a drop with its reason, counted on the ingress port (and, for
// output, on the tunnel port), and that the ledger holds.
func TestTunnelDropReasons(t *testing.T) {
	inner := buildFrame(t, frameSpec{src: "10.9.0.1", dst: "10.9.0.2", proto: "udp", sport: 1000, dport: 2000, payloadSz: 100})
	notTunnel := buildFrame(t, frameSpec{src: "192.0.2.2", dst: "192.0.2.1", proto: "udp", sport: 1000, dport: 4789, payloadSz: 4})
	for _, tc := range []struct {
		name    string
		opts    map[string]string
		setup   func(t *testing.T, r *tunnelRig)
		in      func(r *tunnelRig) (*vport.MemPort, []byte)
		want    DropReason
		atPort  func(r *tunnelRig) *Port // the ingress port that counts it
		tunnelT bool                     // also a tx drop on the tunnel port
	}{
		{name: "no path yet", setup: func(t *testing.T, r *tunnelRig) { r.setPath(nil) }, want: DropTunnelRouting, tunnelT: true},
		{name: "no route", setup: func(t *testing.T, r *tunnelRig) {
			r.setPath(&tunnelPath{reason: DropTunnelRouting})
		}, want: DropTunnelRouting, tunnelT: true},
		{name: "neighbour unknown", setup: func(t *testing.T, r *tunnelRig) {
			r.setPath(&tunnelPath{reason: DropTunnelNeighMiss})
		}, want: DropTunnelNeighMiss, tunnelT: true},
		{name: "remote_ip=flow without tun_dst", opts: map[string]string{"remote_ip": "flow", "key": "5"}, want: DropTunnelMetadata, tunnelT: true},
		{name: "mtu", setup: func(t *testing.T, r *tunnelRig) {
			r.setPath(&tunnelPath{ok: true, bridge: r.phy, port: r.phyp, src: rigLocal, mtu: 100})
		}, want: DropTunnelMTU, tunnelT: true},
		{name: "underlay port gone", setup: func(t *testing.T, r *tunnelRig) {
			if _, err := r.phy.RemovePort(context.Background(), "phy0"); err != nil {
				t.Fatal(err)
			}
		}, want: DropPortGone, tunnelT: true},
		{name: "malformed outer header", in: func(r *tunnelRig) (*vport.MemPort, []byte) { return r.up, notTunnel },
			atPort: func(r *tunnelRig) *Port { return r.upp }, want: DropTunnelPop},
		{name: "unknown vni", in: func(r *tunnelRig) (*vport.MemPort, []byte) { return r.up, encapsulated(t, inner, 6) },
			atPort: func(r *tunnelRig) *Port { return r.upp }, want: DropTunnelNoPort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			if opts == nil {
				opts = map[string]string{"remote_ip": "192.0.2.2", "key": "5"}
			}
			r := newTunnelRig(t, opts)
			if tc.setup != nil {
				tc.setup(t, r)
			}
			mp, frame, at := r.w, inner, r.wp
			if tc.in != nil {
				mp, frame = tc.in(r)
				at = tc.atPort(r)
			}
			r.run(t, mp, frame)
			if s := at.Stats(); s.Drops[tc.want] != 1 || s.RxDropped() != 1 {
				t.Errorf("port %s drops %v, want one %s", at.Name, s.Drops, tc.want)
			}
			if s := r.vxp.Stats(); tc.tunnelT && s.TxDrops[tc.want] != 1 {
				t.Errorf("tunnel port tx drops %v, want one %s", s.TxDrops, tc.want)
			}
			for _, mp := range []*vport.MemPort{r.w, r.up, r.phyMem} {
				if n := len(drainAll(mp)); n != 0 {
					t.Errorf("port %s sent %d frames", mp.Name(), n)
				}
			}
			checkAccounting(t, r.in)
			checkAccounting(t, r.phy)
		})
	}
}

// TestTunnelNotForLocalAddress: a packet to a tunnel's UDP port but not
// to a local endpoint address is no tunnel packet of ours: it goes on to
// the internal port.
func TestTunnelNotForLocalAddress(t *testing.T) {
	r := newTunnelRig(t, map[string]string{"remote_ip": "192.0.2.2", "key": "5"})
	frame := buildFrame(t, frameSpec{src: "192.0.2.2", dst: "192.0.2.9", proto: "udp", sport: 1000, dport: 4789, payloadSz: 4})
	r.run(t, r.up, frame)
	if got := drainAll(r.phyMem); len(got) != 1 || !bytes.Equal(got[0], frame) {
		t.Fatalf("phy0 got %d frames, want the packet", len(got))
	}
	checkAccounting(t, r.phy)
}

// TestTunnelRxPrefersSpecificPorts: decapsulation picks the port with a
// fixed remote over remote_ip=flow, then a fixed key over key=flow.
func TestTunnelRxPrefersSpecificPorts(t *testing.T) {
	mk := func(name string, opts map[string]string, of uint32) tunnelPortRef {
		o, err := tunnel.ParseOptions(tunnel.VXLAN, opts)
		if err != nil {
			t.Fatal(err)
		}
		tp, err := NewTunnelPort(name, o)
		if err != nil {
			t.Fatal(err)
		}
		return tunnelPortRef{port: &Port{Name: name, OFPort: of}, tp: tp}
	}
	rx := newTunnelRx([]tunnelPortRef{
		mk("any", map[string]string{"remote_ip": "flow", "key": "flow"}, 1),
		mk("remote-anykey", map[string]string{"remote_ip": "192.0.2.2", "key": "flow"}, 2),
		mk("remote-key5", map[string]string{"remote_ip": "192.0.2.2", "key": "5"}, 3),
	}, nil)
	for _, tc := range []struct {
		src  string
		vni  uint32
		want string
	}{
		{"192.0.2.2", 5, "remote-key5"},
		{"192.0.2.2", 6, "remote-anykey"},
		{"192.0.2.3", 5, "any"},
	} {
		h := tunnel.Header{Src: netip.MustParseAddr(tc.src), Dst: rigLocal, VNI: tc.vni}
		e := rx.lookup(tunnel.VXLAN, 4789, &h)
		if e == nil || e.port.Name != tc.want {
			t.Errorf("from %s vni %d: got %v, want %s", tc.src, tc.vni, e, tc.want)
		}
	}
	if e := rx.lookup(tunnel.VXLAN, 4790, &tunnel.Header{Src: rigRemote, VNI: 5}); e != nil {
		t.Errorf("another UDP port matched %s", e.port.Name)
	}
}

// TestInjectRingBounded: the ring refuses frames when full, never
// waits, and gives them back in order.
func TestInjectRingBounded(t *testing.T) {
	r := newInjectRing()
	for i := range injectSlots {
		s, pos := r.reserve()
		if s == nil {
			t.Fatalf("slot %d refused", i)
		}
		s.buf = append(s.buf[:0], byte(i), byte(i>>8))
		s.port = &Port{}
		r.commit(s, pos)
	}
	if s, _ := r.reserve(); s != nil {
		t.Fatal("a full ring took another frame")
	}
	for i := range injectSlots {
		s := r.peek()
		if s == nil || s.buf[0] != byte(i) || s.buf[1] != byte(i>>8) {
			t.Fatalf("frame %d out of order", i)
		}
		r.release(s)
	}
	if r.peek() != nil {
		t.Fatal("an empty ring gave a frame")
	}
}

// TestTunnelNoAllocs: once its encapsulation is cached, a packet's trip
// out through the tunnel and back in allocates nothing.
func TestTunnelNoAllocs(t *testing.T) {
	r := newTunnelRig(t, map[string]string{"remote_ip": "192.0.2.2", "key": "5"})
	inner := buildFrame(t, frameSpec{src: "10.9.0.1", dst: "10.9.0.2", proto: "udp", sport: 1000, dport: 2000, payloadSz: 100})
	back := encapsulated(t, inner, 5)
	bufs, sizes := make([][]byte, 4), make([]int, 4)
	for i := range bufs {
		bufs[i] = make([]byte, 4096)
	}
	trip := func() {
		r.w.Inject(0, [][]byte{inner})
		r.up.Inject(0, [][]byte{back})
		for range 2 {
			r.in.PollOnce(0)  //nolint:errcheck // checked by the round trip test
			r.phy.PollOnce(0) //nolint:errcheck
		}
		r.up.Drain(0, bufs, sizes)
		r.w.Drain(0, bufs, sizes)
	}
	for range injectSlots { // every ring slot gets its buffer on first use
		trip()
	}
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	if n := testing.AllocsPerRun(200, trip); n != 0 {
		t.Errorf("%.1f allocations per round trip, want 0", n)
	}
	if s := r.vxp.Stats(); s.TxPackets < 200+injectSlots || s.RxPackets < 200+injectSlots {
		t.Errorf("tunnel port rx %d tx %d: the trips did not go through it", s.RxPackets, s.TxPackets)
	}
}

// TestTunnelPortFlowSteering: with remote_ip=flow and key=flow the
// encapsulation takes the tun_dst and tun_id the flow's actions set.
func TestTunnelPortFlowSteering(t *testing.T) {
	r := newTunnelRig(t, map[string]string{"remote_ip": "flow", "key": "flow"})
	addFlows(t, r.in, "priority=40000,in_port=1,actions=set_field:192.0.2.2->tun_dst,set_tunnel:77,output:10")
	inner := buildFrame(t, frameSpec{src: "10.9.0.1", dst: "10.9.0.2", proto: "udp", sport: 1000, dport: 2000, payloadSz: 10})
	r.run(t, r.w, inner)
	out := drainAll(r.up)
	if len(out) != 1 {
		t.Fatalf("uplink sent %d frames, want 1 (drops %v)", len(out), r.wp.Stats().Drops)
	}
	var h tunnel.Header
	if err := (tunnel.Decoder{Kind: tunnel.VXLAN}).Decode(out[0], &h); err != nil {
		t.Fatal(err)
	}
	if h.Dst != rigRemote || h.VNI != 77 || h.Src != rigLocal {
		t.Errorf("outer header to %s vni %d from %s, want to %s vni 77 from %s", h.Dst, h.VNI, h.Src, rigRemote, rigLocal)
	}
	checkAccounting(t, r.in)
}

// fakeResolver answers Lookup from a table.
type fakeResolver map[netip.Addr]struct {
	path underlay.Path
	err  error
}

func (f fakeResolver) Lookup(remote netip.Addr) (underlay.Path, error) {
	r, ok := f[remote]
	if !ok {
		return underlay.Path{}, underlay.ErrNoRoute
	}
	return r.path, r.err
}

// TestTunnelResolve: how a looked-up path becomes a usable path or a
// drop reason.
func TestTunnelResolve(t *testing.T) {
	br := &Bridge{cfg: Config{Name: "brphy"}}
	phy := &Port{Name: "phy0", OFPort: 2}
	internals := map[string]*internalRef{"phy0": {bridge: br, port: phy, mtu: 9000}}
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	onPhy := underlay.Path{Dev: "phy0", Src: a("192.0.2.1"), NextHop: a("192.0.2.2"), SrcMAC: rigSrcMAC, DstMAC: rigDstMAC}
	onEth := underlay.Path{Dev: "eth0", Src: a("198.51.100.1"), NextHop: a("198.51.100.254")}
	res := fakeResolver{
		a("192.0.2.2"):    {path: onPhy},
		a("192.0.2.3"):    {path: onPhy, err: underlay.ErrNoNeighbour},
		a("198.51.100.9"): {path: onEth},
		a("198.51.100.8"): {path: onEth, err: underlay.ErrNoNeighbour},
	}
	tn := &Tunnels{cfg: TunnelsConfig{Resolver: res}}
	for _, tc := range []struct {
		remote, local string
		wantOK        bool
		want          DropReason
		wantSrc       string
	}{
		{remote: "192.0.2.2", wantOK: true, wantSrc: "192.0.2.1"},
		{remote: "192.0.2.2", local: "192.0.2.10", wantOK: true, wantSrc: "192.0.2.10"},
		{remote: "192.0.2.3", want: DropTunnelNeighMiss},
		{remote: "192.0.2.99", want: DropTunnelRouting},   // no route
		{remote: "198.51.100.9", want: DropTunnelRouting}, // not through an internal port
		{remote: "198.51.100.8", want: DropTunnelRouting}, // nor its neighbour
	} {
		opts := map[string]string{"remote_ip": tc.remote}
		if tc.local != "" {
			opts["local_ip"] = tc.local
		}
		o, err := tunnel.ParseOptions(tunnel.VXLAN, opts)
		if err != nil {
			t.Fatal(err)
		}
		tp, err := NewTunnelPort("vx", o)
		if err != nil {
			t.Fatal(err)
		}
		p := tn.resolve(tp, a(tc.remote), internals)
		switch {
		case p.ok != tc.wantOK:
			t.Errorf("%s: ok %v (%s), want %v", tc.remote, p.ok, p, tc.wantOK)
		case !p.ok && p.reason != tc.want:
			t.Errorf("%s: drop %s, want %s", tc.remote, p.reason, tc.want)
		case p.ok && (p.src != a(tc.wantSrc) || p.bridge != br || p.port != phy || p.mtu != 9000 || p.dstMAC != rigDstMAC):
			t.Errorf("%s: path %+v", tc.remote, p)
		}
	}
}

// TestTunnelHelp: a poll thread that encapsulated frames into the
// underlay bridge's ring runs that bridge's injected batch itself when
// the underlay's thread is not in a batch, and leaves the frames to that
// thread when it is; either way every frame goes out once and the
// ledgers balance.
func TestTunnelHelp(t *testing.T) {
	r := newTunnelRig(t, map[string]string{"remote_ip": "192.0.2.2", "key": "5"})
	inner := buildFrame(t, frameSpec{src: "10.9.0.1", dst: "10.9.0.2", proto: "udp", sport: 1000, dport: 2000, payloadSz: 100})
	q := r.phy.pmds[0]
	q.live = true // as if its thread ran, between two batches
	t.Cleanup(func() { q.live = false })

	if r.w.Inject(0, [][]byte{inner, inner, inner}) != 3 {
		t.Fatal("inject refused")
	}
	if _, err := r.in.PollOnce(0); err != nil {
		t.Fatal(err)
	}
	if got := len(drainAll(r.up)); got != 3 {
		t.Fatalf("uplink sent %d frames after the tunnel bridge's batch alone, want 3 (helped)", got)
	}
	if h := r.phy.PMDStats()[0].Helped; h != 3 {
		t.Errorf("underlay thread helped with %d frames, want 3", h)
	}

	// The underlay's thread in a batch: the frames wait in its ring for
	// it, and go out with its next batch.
	q.owner.Lock()
	if r.w.Inject(0, [][]byte{inner, inner}) != 2 {
		q.owner.Unlock()
		t.Fatal("inject refused")
	}
	_, err := r.in.PollOnce(0)
	q.owner.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(drainAll(r.up)); got != 0 {
		t.Fatalf("uplink sent %d frames while the underlay's thread held its batch, want 0", got)
	}
	if _, err := r.phy.PollOnce(0); err != nil {
		t.Fatal(err)
	}
	if got := len(drainAll(r.up)); got != 2 {
		t.Fatalf("uplink sent %d frames after the underlay's own batch, want 2", got)
	}
	if h := r.phy.PMDStats()[0].Helped; h != 3 {
		t.Errorf("underlay thread helped with %d frames, want still 3", h)
	}
	if s := r.upp.Stats(); s.TxPackets != 5 {
		t.Errorf("uplink tx %d, want 5", s.TxPackets)
	}
	checkAccounting(t, r.in)
	checkAccounting(t, r.phy)
}

// TestTunnelHelpRunning: with both bridges' threads running, traffic both
// ways through the tunnel has each thread run the other's injected
// batches or leave them to it, at random; every frame is accounted for
// on every port, and what a port counts as sent is what comes out of it.
// (The race detector checks that a batch has one owner at a time.)
func TestTunnelHelpRunning(t *testing.T) {
	r := newTunnelRig(t, map[string]string{"remote_ip": "192.0.2.2", "key": "5"})
	inner := buildFrame(t, frameSpec{src: "10.9.0.1", dst: "10.9.0.2", proto: "udp", sport: 1000, dport: 2000, payloadSz: 100})
	back := encapsulated(t, inner, 5)
	for _, b := range []*Bridge{r.in, r.phy} {
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
	}
	const rounds = 300
	outFrames, backFrames := make([][]byte, 8), make([][]byte, 8)
	for i := range outFrames {
		outFrames[i], backFrames[i] = inner, back
	}
	var sentOut, sentBack, gotOut, gotBack uint64
	for range rounds {
		sentOut += uint64(r.w.Inject(0, outFrames))
		sentBack += uint64(r.up.Inject(0, backFrames))
		gotOut += uint64(len(drainAll(r.up)))
		gotBack += uint64(len(drainAll(r.w)))
	}
	if sentOut == 0 || sentBack == 0 {
		t.Fatalf("the ports took %d and %d frames", sentOut, sentBack)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		gotOut += uint64(len(drainAll(r.up)))
		gotBack += uint64(len(drainAll(r.w)))
		w, up, vx, phy := r.wp.Stats(), r.upp.Stats(), r.vxp.Stats(), r.phyp.Stats()
		settled := w.RxPackets == sentOut && up.RxPackets == sentBack &&
			w.Balanced() && up.Balanced() && vx.Balanced() && phy.Balanced() &&
			phy.RxPackets == vx.TxPackets && vx.RxPackets+up.Drops[DropTxRingFull] == sentBack &&
			up.TxPackets == gotOut && w.TxPackets == gotBack
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled: sent %d out and %d back, got %d and %d; w %+v; up %+v; vx %+v; phy0 %+v", sentOut, sentBack, gotOut, gotBack, w, up, vx, phy)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if gotOut == 0 || gotBack == 0 {
		t.Fatalf("got %d frames out and %d back", gotOut, gotBack)
	}
	t.Logf("sent %d out and %d back, got %d and %d; helped: tunnel bridge %d, underlay %d", sentOut, sentBack, gotOut, gotBack,
		r.in.PMDStats()[0].Helped, r.phy.PMDStats()[0].Helped)
	checkAccounting(t, r.in)
	checkAccounting(t, r.phy)
}

// ecnFrame is a UDP datagram from 10.9.0.1 to 10.9.0.2 (fd00::1 to
// fd00::2 over IPv6) with the TOS or traffic class tos.
func ecnFrame(t *testing.T, v6 bool, tos uint8) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	udp := &layers.UDP{SrcPort: 1000, DstPort: 2000}
	var ip gopacket.SerializableLayer
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, TrafficClass: tos, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
		if err := udp.SetNetworkLayerForChecksum(ip6); err != nil {
			t.Fatal(err)
		}
		ip = ip6
	} else {
		ip4 := &layers.IPv4{Version: 4, TTL: 64, TOS: tos, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP("10.9.0.1").To4(), DstIP: net.ParseIP("10.9.0.2").To4()}
		if err := udp.SetNetworkLayerForChecksum(ip4); err != nil {
			t.Fatal(err)
		}
		ip = ip4
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload("ecn")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestTunnelDecapECN decapsulates packets whose outer header says
// congestion experienced (CE): as RFC 6040 and Open vSwitch's
// translation, an ECN-capable inner packet leaves marked CE (DSCP kept,
// IPv4 checksum updated), one already CE leaves as it came, and one that
// is not ECN-capable is dropped. An outer header that is not CE changes
// nothing.
func TestTunnelDecapECN(t *testing.T) {
	for _, tc := range []struct {
		name       string
		v6         bool
		outer, in  uint8
		want       uint8 // the inner TOS delivered
		notDropped bool
	}{
		{name: "ipv4 ect0", outer: 0x03, in: 0x02, want: 0x03, notDropped: true},
		{name: "ipv4 ect1 with dscp", outer: 0x03, in: 0xb9, want: 0xbb, notDropped: true},
		{name: "ipv4 ce", outer: 0x03, in: 0x03, want: 0x03, notDropped: true},
		{name: "ipv4 not-ect", outer: 0x03, in: 0x00},
		{name: "ipv4 outer ect0", outer: 0x02, in: 0x01, want: 0x01, notDropped: true},
		{name: "ipv6 ect0", v6: true, outer: 0x03, in: 0x02, want: 0x03, notDropped: true},
		{name: "ipv6 ect1 with dscp", v6: true, outer: 0xbb, in: 0x29, want: 0x2b, notDropped: true},
		{name: "ipv6 not-ect", v6: true, outer: 0x03, in: 0xb8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTunnelRig(t, map[string]string{"remote_ip": "192.0.2.2", "key": "5"})
			e, err := tunnel.NewEncap(tunnel.Config{Kind: tunnel.VXLAN, EthDst: rigSrcMAC, EthSrc: rigDstMAC, Src: rigRemote, Dst: rigLocal, VNI: 5, TOS: tc.outer})
			if err != nil {
				t.Fatal(err)
			}
			pkt, err := e.Append(nil, ecnFrame(t, tc.v6, tc.in), 40000, 1)
			if err != nil {
				t.Fatal(err)
			}
			// Twice: the first packet's upcall, then its megaflow.
			for range 2 {
				r.run(t, r.up, pkt)
				got := drainAll(r.w)
				switch {
				case !tc.notDropped && len(got) != 0:
					t.Fatalf("workload received %d frames, want none (CE over a packet that is not ECN-capable)", len(got))
				case tc.notDropped && (len(got) != 1 || !bytes.Equal(got[0], ecnFrame(t, tc.v6, tc.want))):
					t.Fatalf("workload received %x, want the inner frame with TOS %#x", got, tc.want)
				}
			}
			checkAccounting(t, r.in)
			checkAccounting(t, r.phy)
		})
	}
}
