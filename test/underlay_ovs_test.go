package test

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/vport/underlay"
)

// TestUnderlayShowMatchesOVS runs Open vSwitch 3.1 (a netdev bridge br0
// with an internal port p1) and an underlay.Table in one namespace,
// gives the devices addresses and the kernel routes, and checks that
// ovsxdp's ovs/route/show and tnl/neigh/show print what Open vSwitch
// prints, also after ovs/route/add and tnl/neigh/set on both. Routes of
// one prefix length are compared as sets: Open vSwitch prints them in
// hash order.
func TestUnderlayShowMatchesOVS(t *testing.T) {
	s := ovsref.Start(t, "br0", []ovsref.Port{{Name: "p1", OFPort: 1}})
	ns := s.NS()
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0")
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.br0.disable_ipv6=0")
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.p1.disable_ipv6=0")
	ns.IP(t, "link", "set", "br0", "up")
	ns.AddAddr(t, "br0", "192.0.2.1/24")
	ns.AddAddr(t, "p1", "10.1.0.1/16")
	ns.IP(t, "-6", "addr", "add", "2001:db8:1::1/64", "dev", "br0", "nodad")
	ns.IP(t, "route", "add", "198.51.100.0/24", "via", "192.0.2.254")
	ns.IP(t, "route", "add", "default", "via", "10.1.0.254")
	ns.IP(t, "route", "add", "203.0.113.0/24", "dev", "p1", "table", "100")
	ns.IP(t, "route", "add", "203.0.113.0/25", "via", "10.1.0.9", "table", "100")
	ns.IP(t, "-6", "route", "add", "2001:db8:9::/48", "via", "2001:db8:1::fe")

	tb, err := underlay.NewTable(underlay.TableConfig{Namespace: ns.Path(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()

	same := func(what string, ours func() string, theirs []string, norm func(string) string) {
		t.Helper()
		var got, want string
		if !netns.Eventually(30*time.Second, func() bool {
			out, err := s.Appctl(theirs...)
			if err != nil {
				t.Fatal(err)
			}
			got, want = ours(), out
			return norm(got) == norm(want)
		}) {
			t.Fatalf("%s: ovsxdp prints\n%s\nOpen vSwitch 3.1 prints\n%s", what, got, want)
		}
	}
	routes := func() string { return underlay.FormatRoutes(tb.Routes()) }
	neighs := func() string { return underlay.FormatNeighbours(tb.Neighbours().Entries(), time.Now()) }
	sortNeighs := func(s string) string {
		l := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		if len(l) > 2 {
			slices.Sort(l[2:])
		}
		return strings.Join(l, "\n")
	}

	same("ovs/route/show", routes, []string{"ovs/route/show"}, underlay.NormaliseRouteShow)

	a, p := netip.MustParseAddr, netip.MustParsePrefix
	if _, err := s.Appctl("ovs/route/add", "10.9.0.0/16", "br0", "192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	if err := tb.AddRoute(p("10.9.0.0/16"), "br0", a("192.0.2.7"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Appctl("ovs/route/add", "2001:db8:5::/64", "br0", "2001:db8:1::5", "pkt_mark=7"); err != nil {
		t.Fatal(err)
	}
	if err := tb.AddRoute(p("2001:db8:5::/64"), "br0", a("2001:db8:1::5"), 7); err != nil {
		t.Fatal(err)
	}
	same("ovs/route/show after ovs/route/add", routes, []string{"ovs/route/show"}, underlay.NormaliseRouteShow)

	for _, n := range []struct{ ip, mac string }{{"192.0.2.9", "02:00:00:00:00:09"}, {"2001:db8:1::9", "02:00:00:00:00:0a"}} {
		if _, err := s.Appctl("tnl/neigh/set", "br0", n.ip, n.mac); err != nil {
			t.Fatal(err)
		}
		mac, err := net.ParseMAC(n.mac)
		if err != nil {
			t.Fatal(err)
		}
		tb.Neighbours().Set("br0", a(n.ip), [6]byte(mac))
	}
	same("tnl/neigh/show", neighs, []string{"tnl/neigh/show"}, sortNeighs)
	if _, err := s.Appctl("tnl/neigh/flush"); err != nil {
		t.Fatal(err)
	}
	tb.Neighbours().Flush()
	same("tnl/neigh/show after tnl/neigh/flush", neighs, []string{"tnl/neigh/show"}, sortNeighs)

	// A kernel route withdrawn goes from both.
	ns.IP(t, "route", "del", "198.51.100.0/24")
	same("ovs/route/show after a route was deleted", routes, []string{"ovs/route/show"}, underlay.NormaliseRouteShow)
}
