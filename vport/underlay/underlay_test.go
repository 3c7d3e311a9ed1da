package underlay

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/netns"
)

// TestLookup builds a host namespace whose underlay veth u0 has
// 192.0.2.1/24 and 2001:db8:1::1/64, a gateway 192.0.2.254 to 198.51.100.0/24,
// permanent neighbours for some addresses and none for others, and checks
// every way a lookup can end.
func TestLookup(t *testing.T) {
	host, peer := netns.New(t, "ulh"), netns.New(t, "ulp")
	host.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0")
	host.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=0")
	netns.AddVeth(t, host, "u0", peer, "p0", 1)
	host.AddAddr(t, "u0", "192.0.2.1/24")
	host.IP(t, "addr", "add", "2001:db8:1::1/64", "dev", "u0", "nodad")
	host.IP(t, "route", "add", "198.51.100.0/24", "via", "192.0.2.254")
	gwMAC := net.HardwareAddr{2, 0, 0, 0, 0, 0xfe}
	remoteMAC := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	host.SetNeigh(t, "u0", "192.0.2.254", gwMAC)
	host.SetNeigh(t, "u0", "192.0.2.2", remoteMAC)
	host.SetNeigh(t, "u0", "2001:db8:1::2", remoteMAC)
	devMAC := [6]byte(host.MAC(t, "u0"))

	r, err := NewResolver(host.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tc := range []struct {
		name      string
		inRemote  string
		wantHop   string
		wantSrc   string
		wantMAC   net.HardwareAddr
		wantError error
	}{
		{"on-link", "192.0.2.2", "192.0.2.2", "192.0.2.1", remoteMAC, nil},
		{"via gateway", "198.51.100.7", "192.0.2.254", "192.0.2.1", gwMAC, nil},
		{"ipv6 on-link", "2001:db8:1::2", "2001:db8:1::2", "2001:db8:1::1", remoteMAC, nil},
		{"no neighbour", "192.0.2.3", "192.0.2.3", "192.0.2.1", nil, ErrNoNeighbour},
		{"no route", "203.0.113.1", "", "", nil, ErrNoRoute},
		{"no ipv6 route", "2001:db8:9::1", "", "", nil, ErrNoRoute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := r.Lookup(netip.MustParseAddr(tc.inRemote))
			if !errors.Is(err, tc.wantError) {
				t.Fatalf("Lookup: %v, want %v", err, tc.wantError)
			}
			if tc.wantError == ErrNoRoute {
				return
			}
			if p.Dev != "u0" || p.SrcMAC != devMAC || p.NextHop.String() != tc.wantHop || p.Src.String() != tc.wantSrc {
				t.Errorf("path %+v, want dev u0 (%x) next hop %s source %s", p, devMAC, tc.wantHop, tc.wantSrc)
			}
			if tc.wantMAC != nil && net.HardwareAddr(p.DstMAC[:]).String() != tc.wantMAC.String() {
				t.Errorf("next hop's address %s, want %s", net.HardwareAddr(p.DstMAC[:]), tc.wantMAC)
			}
		})
	}
}
