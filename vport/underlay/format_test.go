package underlay

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The golden files in testdata are what Open vSwitch 3.1's ovs-vswitchd
// printed for the namespace goldenLinks and goldenKernel describe (a
// netdev bridge br0 with an internal port p1, made with ovs-vsctl; the
// addresses and routes added with ip):
//
//	ip addr add 192.0.2.1/24 dev br0; ip addr add 10.1.0.1/16 dev p1
//	ip -6 addr add 2001:db8:1::1/64 dev br0 nodad
//	ip route add 198.51.100.0/24 via 192.0.2.254
//	ip route add default via 10.1.0.254
//	ip route add 203.0.113.0/24 dev p1 table 100
//	ip -6 route add 2001:db8:9::/48 via 2001:db8:1::fe
//	ovs-appctl ovs/route/add 10.9.0.0/16 br0 192.0.2.7
//	ovs-appctl ovs/route/add 2001:db8:7::/64 br0       (refused: no source)
//	ovs-appctl tnl/neigh/set br0 192.0.2.9 02:00:00:00:00:09
//	ovs-appctl tnl/neigh/set br0 2001:db8:1::9 02:00:00:00:00:0a
//	ovs-appctl ovs/route/show > route-show.golden
//	ovs-appctl tnl/neigh/show > neigh-show.golden
//	ovs-appctl tnl/neigh/flush; ovs-appctl tnl/neigh/show > neigh-show-empty.golden

func goldenLinks() map[int]*link {
	p := netip.MustParsePrefix
	return map[int]*link{
		1: {Name: "lo", Addrs: []netip.Prefix{p("127.0.0.1/8"), p("::1/128")}},
		2: {Name: "ovs-netdev", MAC: [6]byte{2, 0, 0, 0, 0, 0x10}, Ether: true},
		3: {Name: "br0", MAC: [6]byte{0x5e, 0x6e, 0x4a, 0x8a, 0xe2, 0x46}, Ether: true,
			Addrs: []netip.Prefix{p("192.0.2.1/24"), p("2001:db8:1::1/64"), p("fe80::5c6e:4aff:fe8a:e246/64")}},
		4: {Name: "p1", MAC: [6]byte{0x86, 0x7e, 0x97, 0x40, 0x92, 0x12}, Ether: true,
			Addrs: []netip.Prefix{p("10.1.0.1/16"), p("fe80::847e:97ff:fe40:9212/64")}},
	}
}

// goldenKernel is the kernel's routes in its dump order (ip route show
// table all, IPv4 then IPv6), broadcast and multicast routes left out
// as fromNetlink leaves them out.
func goldenKernel() []kernelRoute {
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	return []kernelRoute{
		{Dst: p("203.0.113.0/24"), Ifindex: 4},
		{Dst: p("0.0.0.0/0"), Gw: a("10.1.0.254"), Ifindex: 4},
		{Dst: p("10.1.0.0/16"), Ifindex: 4},
		{Dst: p("192.0.2.0/24"), Ifindex: 3},
		{Dst: p("198.51.100.0/24"), Gw: a("192.0.2.254"), Ifindex: 3},
		{Dst: p("10.1.0.1/32"), Ifindex: 4, Local: true},
		{Dst: p("127.0.0.0/8"), Ifindex: 1, Local: true},
		{Dst: p("127.0.0.1/32"), Ifindex: 1, Local: true},
		{Dst: p("192.0.2.1/32"), Ifindex: 3, Local: true},
		{Dst: p("2001:db8:1::/64"), Ifindex: 3},
		{Dst: p("2001:db8:9::/48"), Gw: a("2001:db8:1::fe"), Ifindex: 3},
		{Dst: p("fe80::/64"), Ifindex: 3},
		{Dst: p("fe80::/64"), Ifindex: 4},
		{Dst: p("::1/128"), Ifindex: 1, Local: true},
		{Dst: p("2001:db8:1::1/128"), Ifindex: 3, Local: true},
		{Dst: p("fe80::5c6e:4aff:fe8a:e246/128"), Ifindex: 3, Local: true},
		{Dst: p("fe80::847e:97ff:fe40:9212/128"), Ifindex: 4, Local: true},
	}
}

func readGolden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRouteShowGolden(t *testing.T) {
	links := goldenLinks()
	user, err := userRoute(netip.MustParsePrefix("10.9.0.0/16"), "br0", netip.MustParseAddr("192.0.2.7"), 0, links)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := userRoute(netip.MustParsePrefix("2001:db8:7::/64"), "br0", netip.Addr{}, 0, links); !errors.Is(err, ErrNoSource) {
		t.Errorf("ovs/route/add 2001:db8:7::/64 br0: %v, want ErrNoSource as Open vSwitch refuses it", err)
	}
	got := FormatRoutes(buildRoutes(goldenKernel(), []Route{user}, links))
	want := readGolden(t, "route-show.golden")
	if NormaliseRouteShow(got) != NormaliseRouteShow(want) {
		t.Errorf("ovs/route/show:\n%s\nOpen vSwitch 3.1:\n%s", got, want)
	}
	if got != want {
		t.Logf("same routes, another order within a prefix length:\n%s", got)
	}
}

func TestNeighShowGolden(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewNeighCache(func() time.Time { return now }, nil)
	c.Set("br0", netip.MustParseAddr("192.0.2.9"), [6]byte{2, 0, 0, 0, 0, 9})
	c.Set("br0", netip.MustParseAddr("2001:db8:1::9"), [6]byte{2, 0, 0, 0, 0, 0x0a})
	sortBody := func(s string) string {
		l := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		slices.Sort(l[2:])
		return strings.Join(l, "\n")
	}
	if got, want := FormatNeighbours(c.Entries(), now), readGolden(t, "neigh-show.golden"); sortBody(got) != sortBody(want) {
		t.Errorf("tnl/neigh/show:\n%q\nOpen vSwitch 3.1:\n%q", got, want)
	}
	c.Flush()
	if got, want := FormatNeighbours(c.Entries(), now), readGolden(t, "neigh-show-empty.golden"); got != want {
		t.Errorf("tnl/neigh/show after flush:\n%q\nOpen vSwitch 3.1:\n%q", got, want)
	}
}

func TestFormatAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"::1", "::1"},
		{"::", "::"},
		{"::1.2.3.4", "::1.2.3.4"}, // inet_ntop writes IPv4-compatible addresses dotted
		{"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
		{"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},
		{"fe80::5c6e:4aff:fe8a:e246", "fe80::5c6e:4aff:fe8a:e246"},
	} {
		if got := FormatAddr(netip.MustParseAddr(tc.in)); got != tc.want {
			t.Errorf("FormatAddr(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestNeighShowStale: an entry past its aging time that the sweep has not
// removed yet is marked STALE, as Open vSwitch marks it.
func TestNeighShowStale(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewNeighCache(func() time.Time { return now }, nil)
	c.Set("br0", netip.MustParseAddr("192.0.2.9"), [6]byte{2, 0, 0, 0, 0, 9})
	want := "IP                                            MAC                 Bridge\n" +
		"==========================================================================\n" +
		"192.0.2.9                                     02:00:00:00:00:09   br0 STALE\n"
	if got := FormatNeighbours(c.Entries(), now.Add(DefaultNeighAging)); got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}
