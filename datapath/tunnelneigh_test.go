package datapath

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/datapath/tunnel"
	"github.com/ovsxdp/ovsxdp/vport/underlay"
)

// TestSolicitLimiter: one solicitation per next hop per interval; other
// next hops are not held back, and expire forgets what may go again.
func TestSolicitLimiter(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::2")
	t0 := time.Unix(1000, 0)
	l := solicitLimiter{every: time.Second}
	for _, tc := range []struct {
		name     string
		inHop    netip.Addr
		inAt     time.Duration
		wantWait time.Duration
	}{
		{"first", a, 0, 0},
		{"again at once", a, 0, time.Second},
		{"another next hop", b, 100 * time.Millisecond, 0},
		{"again within the interval", a, 300 * time.Millisecond, 700 * time.Millisecond},
		{"the other again", b, 1099 * time.Millisecond, time.Millisecond},
		{"once the interval passed", a, time.Second, 0},
		{"held back from the new time", a, 1500 * time.Millisecond, 500 * time.Millisecond},
	} {
		if got := l.allow(tc.inHop, t0.Add(tc.inAt)); got != tc.wantWait {
			t.Errorf("%s: wait %v, want %v", tc.name, got, tc.wantWait)
		}
	}
	l.expire(t0.Add(1500 * time.Millisecond))
	if _, ok := l.last[b]; ok || len(l.last) != 1 {
		t.Errorf("after expiry the limiter holds %v, want only %s", l.last, a)
	}
	l.expire(t0.Add(2 * time.Second))
	if len(l.last) != 0 {
		t.Errorf("after expiry the limiter holds %v, want nothing", l.last)
	}
}

// TestTunnelSolicitOnNeighMiss: a path whose next hop is unknown gets
// an ARP request (an IPv6 one a neighbour solicitation) from the internal
// port's MAC and the route's source address, into the underlay bridge as
// received on the internal port, when it first misses and then only when
// a dropped packet asks, at most once a second; the packets drop as
// tunnel-neigh-cache-miss, and every packet is accounted for.
func TestTunnelSolicitOnNeighMiss(t *testing.T) {
	for _, tc := range []struct {
		name          string
		inSrc, inHop  string
		wantKind      underlay.NeighKind
		wantDst       [6]byte
		wantSrc, want string
	}{
		{name: "arp", inSrc: "192.0.2.1", inHop: "192.0.2.2", wantKind: underlay.KindARP,
			wantDst: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{name: "neighbour solicitation", inSrc: "2001:db8::1", inHop: "2001:db8::2", wantKind: underlay.KindNeighSolicit,
			wantDst: [6]byte{0x33, 0x33, 0xff, 0, 0, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTunnelRig(t, map[string]string{"remote_ip": "192.0.2.2", "key": "5"})
			r.tn.solicits = solicitLimiter{every: solicitInterval}
			src, hop := netip.MustParseAddr(tc.inSrc), netip.MustParseAddr(tc.inHop)
			miss := &tunnelPath{reason: DropTunnelNeighMiss, bridge: r.phy, port: r.phyp,
				path: underlay.Path{Dev: "phy0", Src: src, NextHop: hop, SrcMAC: rigSrcMAC}}
			r.setPath(miss)
			in := &internalRef{bridge: r.phy, port: r.phyp, addrs: []netip.Addr{src}}
			t0 := time.Unix(1000, 0)
			solicited := func(step string, want int) {
				t.Helper()
				for range 2 {
					if _, err := r.phy.PollOnce(0); err != nil {
						t.Fatal(err)
					}
				}
				out := drainAll(r.up)
				if len(out) != want {
					t.Fatalf("%s: the uplink sent %d frames, want %d", step, len(out), want)
				}
				for _, f := range out {
					var m underlay.NeighMessage
					if err := underlay.ParseNeigh(f, &m); err != nil {
						t.Fatalf("%s: %v: % x", step, err, f)
					}
					target := m.TPA
					if m.Kind == underlay.KindNeighSolicit {
						target = m.Target
					}
					if m.Kind != tc.wantKind || m.SHA != rigSrcMAC || [6]byte(f[6:12]) != rigSrcMAC ||
						[6]byte(f[0:6]) != tc.wantDst || m.SPA != src || target != hop {
						t.Errorf("%s: sent %+v to %x from %x, want a request from %s (%x) for %s to %x",
							step, m, f[0:6], f[6:12], src, rigSrcMAC, hop, tc.wantDst)
					}
				}
			}

			if wait := r.tn.neighMiss(miss, nil, in, t0); wait != 0 {
				t.Fatalf("a new miss waits %v", wait)
			}
			solicited("a new miss", 1)
			r.tn.neighMiss(miss, miss, in, t0.Add(10*time.Millisecond))
			solicited("the same miss, no packet asked", 0)

			inner := buildFrame(t, frameSpec{src: "10.9.0.1", dst: "10.9.0.2", proto: "udp", sport: 1000, dport: 2000, payloadSz: 100})
			r.run(t, r.w, inner)
			r.run(t, r.w, inner)
			if got := r.vxp.Stats().TxDrops[DropTunnelNeighMiss]; got != 2 {
				t.Fatalf("tunnel port tx drops %v, want 2 tunnel-neigh-cache-miss", r.vxp.Stats().TxDrops)
			}
			if got := r.wp.Stats().Drops[DropTunnelNeighMiss]; got != 2 {
				t.Fatalf("workload port drops %v, want 2 tunnel-neigh-cache-miss", r.wp.Stats().Drops)
			}
			if !miss.demand.Load() || len(r.tn.want) != 1 {
				t.Fatalf("dropped packets: demand %v, %d refresh requests, want set and 1", miss.demand.Load(), len(r.tn.want))
			}
			if wait := r.tn.neighMiss(miss, miss, in, t0.Add(400*time.Millisecond)); wait != 600*time.Millisecond {
				t.Errorf("within the interval: wait %v, want 600ms", wait)
			}
			solicited("asked within the interval", 0)
			if wait := r.tn.neighMiss(miss, miss, in, t0.Add(time.Second)); wait != 0 {
				t.Errorf("after the interval: wait %v", wait)
			}
			solicited("asked after the interval", 1)
			if miss.demand.Load() {
				t.Error("the demand is still set after the solicitation")
			}
			if got := r.phyp.Stats().RxPackets; got != 2 {
				t.Errorf("the internal port received %d frames, want the 2 solicitations", got)
			}
			checkAccounting(t, r.in)
			checkAccounting(t, r.phy)
		})
	}
}

// neighFrames are the frames the snoop test sends up the underlay: an
// ARP reply and a neighbour advertisement from the remote, which teach,
// and an ARP request and a UDP packet, which do not.
func neighFrames(t *testing.T) (reply, advert, request, udp []byte) {
	t.Helper()
	ser := func(ls ...gopacket.SerializableLayer) []byte {
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), buf.Bytes()...)
	}
	arp := func(op uint16, tha net.HardwareAddr) []byte {
		return ser(&layers.Ethernet{SrcMAC: rigDstMAC[:], DstMAC: rigSrcMAC[:], EthernetType: layers.EthernetTypeARP},
			&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
				Operation: op, SourceHwAddress: rigDstMAC[:], SourceProtAddress: rigRemote.AsSlice(),
				DstHwAddress: tha, DstProtAddress: rigLocal.AsSlice()})
	}
	reply = arp(layers.ARPReply, rigSrcMAC[:])
	request = arp(layers.ARPRequest, make(net.HardwareAddr, 6))
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255,
		SrcIP: net.ParseIP("2001:db8::2"), DstIP: net.ParseIP("2001:db8::1")}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip6); err != nil {
		t.Fatal(err)
	}
	advert = ser(&layers.Ethernet{SrcMAC: rigDstMAC[:], DstMAC: rigSrcMAC[:], EthernetType: layers.EthernetTypeIPv6}, ip6, icmp,
		&layers.ICMPv6NeighborAdvertisement{Flags: 0x60, TargetAddress: net.ParseIP("2001:db8::2"),
			Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: rigDstMAC[:]}}})
	udp = buildFrame(t, frameSpec{src: "192.0.2.2", dst: "192.0.2.1", proto: "udp", sport: 1000, dport: 2000, payloadSz: 10})
	return reply, advert, request, udp
}

// TestTunnelSnoopNeigh: the ARP replies and neighbour advertisements that
// the underlay bridge outputs to an internal port teach the tunnel
// neighbour cache, under the internal port's name, and still reach the
// internal port; other frames teach nothing. Snooping a known neighbour
// does not allocate.
func TestTunnelSnoopNeigh(t *testing.T) {
	r := newTunnelRig(t, map[string]string{"remote_ip": "192.0.2.2", "key": "5"})
	changes := 0
	cache := underlay.NewNeighCache(nil, func() { changes++ })
	rx := *r.tn.rx.Load()
	rx.neigh = cache
	r.tn.rx.Store(&rx)
	reply, advert, request, udp := neighFrames(t)

	for _, f := range [][]byte{request, udp} {
		r.run(t, r.up, f)
	}
	if es := cache.Entries(); len(es) != 0 || changes != 0 {
		t.Fatalf("an ARP request and a UDP packet taught %+v", es)
	}
	r.run(t, r.up, reply)
	r.run(t, r.up, advert)
	if mac, ok := cache.Lookup("phy0", rigRemote); !ok || mac != rigDstMAC {
		t.Errorf("after the ARP reply the cache has %x (%v) for %s, want %x", mac, ok, rigRemote, rigDstMAC)
	}
	if mac, ok := cache.Lookup("phy0", netip.MustParseAddr("2001:db8::2")); !ok || mac != rigDstMAC {
		t.Errorf("after the advertisement the cache has %x (%v) for 2001:db8::2, want %x", mac, ok, rigDstMAC)
	}
	if changes != 2 {
		t.Errorf("%d changes announced, want 2", changes)
	}
	if out := drainAll(r.phyMem); len(out) != 4 {
		t.Errorf("the internal port got %d frames, want all 4", len(out))
	}
	checkAccounting(t, r.phy)

	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	bufs, sizes := make([][]byte, 4), make([]int, 4)
	for i := range bufs {
		bufs[i] = make([]byte, 4096)
	}
	trip := func() {
		r.up.Inject(0, [][]byte{reply, udp})
		r.phy.PollOnce(0) //nolint:errcheck // checked above
		r.phyMem.Drain(0, bufs, sizes)
	}
	for range 4 {
		trip()
	}
	if n := testing.AllocsPerRun(200, trip); n != 0 {
		t.Errorf("%.1f allocations per known ARP reply and UDP packet, want 0", n)
	}
	if changes != 2 {
		t.Errorf("%d changes announced after known replies, want 2", changes)
	}
}

// followedResolver is a resolver that announces its changes and has a
// neighbour cache, as underlay.Table: it knows no route.
type followedResolver struct {
	mu      sync.Mutex // guards lookups and ch
	lookups int
	ch      chan struct{}
	neigh   *underlay.NeighCache
}

func (f *followedResolver) Lookup(netip.Addr) (underlay.Path, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	return underlay.Path{}, underlay.ErrNoRoute
}

func (f *followedResolver) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ch
}

func (f *followedResolver) Neighbours() *underlay.NeighCache { return f.neigh }

func (f *followedResolver) change() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.ch)
	f.ch = make(chan struct{})
}

func (f *followedResolver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}

// TestTunnelsFollowResolverChanges: the resolver is opened once there are
// tunnel ports, its neighbour cache is what the decapsulation table
// snoops into, and a change it announces looks the paths up again
// without waiting for the periodic refresh (an hour here).
func TestTunnelsFollowResolverChanges(t *testing.T) {
	res := &followedResolver{ch: make(chan struct{}), neigh: underlay.NewNeighCache(nil, nil)}
	var opened atomic.Int32
	tn := NewTunnels(TunnelsConfig{Refresh: time.Hour, OpenResolver: func() (PathResolver, error) {
		opened.Add(1)
		return res, nil
	}})
	defer tn.Close()
	b, err := New(Config{Name: "brint", Tunnels: tn})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tn.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n := opened.Load(); n != 0 {
		t.Fatalf("the resolver was opened %d times without a tunnel port", n)
	}
	o, err := tunnel.ParseOptions(tunnel.VXLAN, map[string]string{"remote_ip": "192.0.2.2"})
	if err != nil {
		t.Fatal(err)
	}
	vx, err := NewTunnelPort("vx", o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddPort(vx, 10); err != nil {
		t.Fatal(err)
	}
	if err := tn.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n := opened.Load(); n != 1 {
		t.Fatalf("the resolver was opened %d times, want 1", n)
	}
	if rx := tn.rx.Load(); rx.neigh != res.neigh {
		t.Error("the decapsulation table does not snoop into the resolver's neighbour cache")
	}
	if p := vx.path(rigRemote); p == nil || p.ok || p.reason != DropTunnelRouting {
		t.Fatalf("path %v, want a tunnel-routing-failed one", p)
	}
	for i := range 3 {
		before := res.count()
		res.change()
		deadline := time.Now().Add(20 * time.Second)
		for res.count() == before {
			if time.Now().After(deadline) {
				t.Fatalf("change %d: the paths were not looked up again", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("the resolver was opened %d times, want 1", n)
	}
}
