package underlay

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
)

// wait bounds every wait for the table to follow the kernel: generous,
// since CI machines are loaded; the polls end as soon as it holds.
const wait = 20 * time.Second

// tableHost builds a host namespace whose underlay veth u0 has
// 192.0.2.1/24 and 2001:db8:1::1/64, and a table following it.
func tableHost(t *testing.T, cfg TableConfig) (*netns.NS, *Table, [6]byte) {
	t.Helper()
	host, peer := netns.New(t, "ulth"), netns.New(t, "ultp")
	host.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0")
	host.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=0")
	netns.AddVeth(t, host, "u0", peer, "p0", 1)
	host.AddAddr(t, "u0", "192.0.2.1/24")
	host.IP(t, "addr", "add", "2001:db8:1::1/64", "dev", "u0", "nodad")
	cfg.Namespace = host.Path()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	tb, err := NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	return host, tb, [6]byte(host.MAC(t, "u0"))
}

// follows waits until cond holds for the table, or fails the test
// saying what it waited for.
func follows(t *testing.T, tb *Table, what string, cond func() bool) {
	t.Helper()
	if !netns.Eventually(wait, cond) {
		t.Fatalf("the table did not follow within %v: %s\n%s", wait, what, FormatRoutes(tb.Routes()))
	}
}

// TestTableFollowsKernel adds and removes routes and neighbours with ip
// and checks that the table follows each change, that every change moves
// its generation and closes the Changed channel, and that lookups from
// the snapshot do not allocate.
func TestTableFollowsKernel(t *testing.T) {
	host, tb, devMAC := tableHost(t, TableConfig{})
	a := netip.MustParseAddr
	gwMAC := net.HardwareAddr{2, 0, 0, 0, 0, 0xfe}

	// The connected routes are there from the start; no neighbour yet.
	follows(t, tb, "connected routes", func() bool {
		_, err4 := tb.Lookup(a("192.0.2.2"))
		_, err6 := tb.Lookup(a("2001:db8:1::2"))
		return errors.Is(err4, ErrNoNeighbour) && errors.Is(err6, ErrNoNeighbour)
	})
	p, _ := tb.Lookup(a("192.0.2.2"))
	if p.Dev != "u0" || p.SrcMAC != devMAC || p.Src != a("192.0.2.1") || p.NextHop != a("192.0.2.2") {
		t.Errorf("on-link path %+v", p)
	}
	if _, err := tb.Lookup(a("198.51.100.7")); !errors.Is(err, ErrNoRoute) {
		t.Errorf("lookup before the route exists: %v, want ErrNoRoute", err)
	}

	gen, changed := tb.Generation(), tb.Changed()
	host.IP(t, "route", "add", "198.51.100.0/24", "via", "192.0.2.254")
	follows(t, tb, "route 198.51.100.0/24 added", func() bool {
		p, err := tb.Lookup(a("198.51.100.7"))
		return errors.Is(err, ErrNoNeighbour) && p.NextHop == a("192.0.2.254")
	})
	select {
	case <-changed:
	default:
		t.Error("Changed's channel did not close at a new route")
	}
	if tb.Generation() == gen {
		t.Error("the generation did not move at a new route")
	}

	host.SetNeigh(t, "u0", "192.0.2.254", gwMAC)
	follows(t, tb, "neighbour 192.0.2.254 added", func() bool {
		p, err := tb.Lookup(a("198.51.100.7"))
		return err == nil && p.DstMAC == [6]byte(gwMAC)
	})
	if n := testing.AllocsPerRun(200, func() { tb.Lookup(a("198.51.100.7")) }); n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}

	// A more specific route wins; removing it falls back.
	host.IP(t, "route", "add", "198.51.100.128/25", "via", "192.0.2.253")
	follows(t, tb, "route 198.51.100.128/25 preferred", func() bool {
		p, _ := tb.Lookup(a("198.51.100.200"))
		q, _ := tb.Lookup(a("198.51.100.7"))
		return p.NextHop == a("192.0.2.253") && q.NextHop == a("192.0.2.254")
	})
	host.IP(t, "route", "del", "198.51.100.128/25")
	follows(t, tb, "route 198.51.100.128/25 removed", func() bool {
		p, _ := tb.Lookup(a("198.51.100.200"))
		return p.NextHop == a("192.0.2.254")
	})

	host.IP(t, "-6", "route", "add", "2001:db8:9::/48", "via", "2001:db8:1::fe")
	host.SetNeigh(t, "u0", "2001:db8:1::fe", gwMAC)
	follows(t, tb, "IPv6 route and neighbour", func() bool {
		p, err := tb.Lookup(a("2001:db8:9::5"))
		return err == nil && p.NextHop == a("2001:db8:1::fe") && p.Src == a("2001:db8:1::1") && p.DstMAC == [6]byte(gwMAC)
	})

	host.IP(t, "neigh", "del", "192.0.2.254", "dev", "u0")
	follows(t, tb, "neighbour 192.0.2.254 removed", func() bool {
		_, err := tb.Lookup(a("198.51.100.7"))
		return errors.Is(err, ErrNoNeighbour)
	})
	// The tunnel neighbour cache answers when the kernel does not.
	gen = tb.Generation()
	tb.Neighbours().Set("u0", a("192.0.2.254"), [6]byte{2, 0, 0, 0, 0, 0xee})
	if tb.Generation() == gen {
		t.Error("the generation did not move at a learnt neighbour")
	}
	if p, err := tb.Lookup(a("198.51.100.7")); err != nil || p.DstMAC != [6]byte{2, 0, 0, 0, 0, 0xee} {
		t.Errorf("lookup with a learnt neighbour: %+v, %v", p, err)
	}

	host.IP(t, "route", "del", "198.51.100.0/24")
	follows(t, tb, "route 198.51.100.0/24 removed", func() bool {
		_, err := tb.Lookup(a("198.51.100.7"))
		return errors.Is(err, ErrNoRoute)
	})

	// A device that goes away takes its routes along.
	host.IP(t, "link", "del", "u0")
	follows(t, tb, "u0 deleted", func() bool {
		_, err := tb.Lookup(a("192.0.2.2"))
		return errors.Is(err, ErrNoRoute)
	})
}

// TestTableResync ends the table's notification sockets as an overflow
// (ENOBUFS) would, and then floods it with more route changes than a
// small receive buffer holds: either way the table lists everything
// again and ends up with every route.
func TestTableResync(t *testing.T) {
	host, tb, _ := tableHost(t, TableConfig{ReceiveBuffer: 4096})
	a := netip.MustParseAddr

	tb.breakSub <- struct{}{}
	follows(t, tb, "a resync after the sockets failed", func() bool { return tb.Resyncs() >= 1 })
	host.IP(t, "route", "add", "198.51.100.0/24", "via", "192.0.2.254")
	follows(t, tb, "a route added after the resync", func() bool {
		p, _ := tb.Lookup(a("198.51.100.7"))
		return p.NextHop == a("192.0.2.254")
	})

	// Readers look up all along, as poll threads would (the race
	// detector checks them against the publication of snapshots).
	stop, readers := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readers)
		for {
			select {
			case <-stop:
				return
			default:
				tb.Lookup(a("10.0.1.1"))
				tb.Lookup(a("198.51.100.7"))
			}
		}
	}()
	defer func() { close(stop); <-readers }()

	const n = 400
	var batch strings.Builder
	for i := range n {
		fmt.Fprintf(&batch, "route add 10.%d.%d.0/24 via 192.0.2.%d\n", i/256, i%256, 2+i%200)
	}
	host.MustRun(t, "sh", "-c", "printf '"+batch.String()+"' | ip -batch -")
	follows(t, tb, fmt.Sprintf("%d routes added in one burst", n), func() bool {
		for i := range n {
			p, _ := tb.Lookup(netip.AddrFrom4([4]byte{10, byte(i / 256), byte(i % 256), 1}))
			if p.NextHop != netip.AddrFrom4([4]byte{192, 0, 2, byte(2 + i%200)}) {
				return false
			}
		}
		return true
	})
	t.Logf("resyncs: %d", tb.Resyncs())
}

// TestTableCloseLeavesNoGoroutines opens and closes tables and checks
// that the goroutines they started all end.
func TestTableCloseLeavesNoGoroutines(t *testing.T) {
	host := netns.New(t, "ultg")
	before := runtime.NumGoroutine()
	for range 3 {
		tb, err := NewTable(TableConfig{Namespace: host.Path(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if tb.Close() != nil {
			t.Fatal("Close failed")
		}
	}
	if !netns.Eventually(wait, func() bool { return runtime.NumGoroutine() <= before }) {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after closing the tables:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
	if _, err := NewTable(TableConfig{Namespace: "/nonexistent/netns"}); err == nil {
		t.Error("a table in a namespace that does not exist")
	}
}

// TestTableUserRoutes: ovs/route/add and ovs/route/del, and the
// User route beating the kernel's of the same length.
func TestTableUserRoutes(t *testing.T) {
	host, tb, _ := tableHost(t, TableConfig{})
	a, p := netip.MustParseAddr, netip.MustParsePrefix
	host.IP(t, "route", "add", "198.51.100.0/24", "via", "192.0.2.254")
	follows(t, tb, "kernel route", func() bool {
		q, _ := tb.Lookup(a("198.51.100.7"))
		return q.NextHop == a("192.0.2.254")
	})
	if err := tb.AddRoute(p("198.51.100.0/24"), "u0", a("192.0.2.7"), 0); err != nil {
		t.Fatal(err)
	}
	if q, _ := tb.Lookup(a("198.51.100.7")); q.NextHop != a("192.0.2.7") {
		t.Errorf("user route not preferred: %+v", q)
	}
	if !strings.Contains(FormatRoutes(tb.Routes()), "User: 198.51.100.0/24 dev u0 GW 192.0.2.7 SRC 192.0.2.1\n") {
		t.Errorf("ovs/route/show:\n%s", FormatRoutes(tb.Routes()))
	}
	if err := tb.AddRoute(p("203.0.113.0/24"), "u0", netip.Addr{}, 0); !errors.Is(err, ErrNoSource) {
		t.Errorf("route without a source: %v, want ErrNoSource", err)
	}
	if err := tb.AddRoute(p("203.0.113.0/24"), "nosuch", a("192.0.2.7"), 0); !errors.Is(err, ErrNoSource) {
		t.Errorf("route through a missing device: %v, want ErrNoSource", err)
	}
	if err := tb.DelRoute(p("198.51.100.0/24"), 0); err != nil {
		t.Fatal(err)
	}
	if err := tb.DelRoute(p("198.51.100.0/24"), 0); !errors.Is(err, ErrRouteNotFound) {
		t.Errorf("second delete: %v, want ErrRouteNotFound", err)
	}
	if q, _ := tb.Lookup(a("198.51.100.7")); q.NextHop != a("192.0.2.254") {
		t.Errorf("kernel route not back: %+v", q)
	}
}

// TestSnapshotMTU: a device's MTU, which a tunnel path takes, is part of
// what the table compares, so a change of it moves the generation.
func TestSnapshotMTU(t *testing.T) {
	snap := func(mtu int) *snapshot {
		return &snapshot{links: map[int]*link{2: {Name: "u0", MAC: [6]byte{2, 0, 0, 0, 0, 1}, Ether: true, MTU: mtu}}}
	}
	if !sameSnapshot(snap(1500), snap(1500)) {
		t.Error("equal snapshots differ")
	}
	if sameSnapshot(snap(1500), snap(1400)) {
		t.Error("snapshots that differ in a device's MTU are the same")
	}
}
