package underlay

import (
	"errors"
	"net/netip"
	"testing"
)

// memTable is a table of the golden namespace (format_test.go) that
// follows nothing: for Lookup's logic without a namespace.
func memTable(t testing.TB, user ...Route) *Table {
	t.Helper()
	tb := &Table{changed: make(chan struct{})}
	tb.neigh = NewNeighCache(nil, tb.bump)
	tb.user = user
	neighs := map[kernelNeigh][6]byte{
		{3, netip.MustParseAddr("192.0.2.254")}: {2, 0, 0, 0, 0, 0xfe},
		{4, netip.MustParseAddr("10.1.0.254")}:  {2, 0, 0, 0, 0, 0xfd},
	}
	tb.mu.Lock()
	tb.publishLocked(goldenKernel(), goldenLinks(), neighs)
	tb.mu.Unlock()
	return tb
}

func TestLookupPriority(t *testing.T) {
	a := netip.MustParseAddr
	links := goldenLinks()
	user, err := userRoute(netip.MustParsePrefix("198.51.100.0/24"), "br0", a("192.0.2.7"), 0, links)
	if err != nil {
		t.Fatal(err)
	}
	marked, err := userRoute(netip.MustParsePrefix("198.51.100.64/26"), "br0", a("192.0.2.8"), 5, links)
	if err != nil {
		t.Fatal(err)
	}
	tb := memTable(t, user, marked)
	for _, tc := range []struct {
		name             string
		inRemote         string
		wantDev, wantHop string
		wantErr          error
	}{
		{"default route", "8.8.8.8", "p1", "10.1.0.254", nil},
		{"connected", "192.0.2.254", "br0", "192.0.2.254", nil},
		{"a user route beats the kernel's of its length", "198.51.100.1", "br0", "192.0.2.7", ErrNoNeighbour},
		{"a marked route applies to marked packets only", "198.51.100.70", "br0", "192.0.2.7", ErrNoNeighbour},
		{"connected, no neighbour", "10.1.2.3", "p1", "10.1.2.3", ErrNoNeighbour},
		{"local", "127.0.0.1", "lo", "127.0.0.1", ErrNotEthernet},
		{"ipv4-mapped", "::ffff:192.0.2.254", "br0", "192.0.2.254", nil},
		{"ipv6 via gateway", "2001:db8:9::1", "br0", "2001:db8:1::fe", ErrNoNeighbour},
		{"no ipv6 default", "2001:db8:77::1", "", "", ErrNoRoute},
		{"invalid", "", "", "", ErrNoRoute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var remote netip.Addr
			if tc.inRemote != "" {
				remote = a(tc.inRemote)
			}
			p, err := tb.Lookup(remote)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Lookup: %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != ErrNoRoute && (p.Dev != tc.wantDev || p.NextHop.String() != tc.wantHop) {
				t.Errorf("path %+v, want dev %s next hop %s", p, tc.wantDev, tc.wantHop)
			}
		})
	}
	g := tb.Generation()
	tb.Neighbours().Set("br0", a("192.0.2.7"), [6]byte{2, 0, 0, 0, 0, 7})
	if tb.Generation() == g {
		t.Error("a learnt neighbour did not move the generation")
	}
	if p, err := tb.Lookup(a("198.51.100.1")); err != nil || p.DstMAC != [6]byte{2, 0, 0, 0, 0, 7} {
		t.Errorf("with the learnt gateway: %+v, %v", p, err)
	}
}

func BenchmarkLookup(b *testing.B) {
	tb := memTable(b)
	remote := netip.MustParseAddr("198.51.100.1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tb.Lookup(remote); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}
