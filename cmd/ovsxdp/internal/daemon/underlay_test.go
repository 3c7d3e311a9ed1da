package daemon

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	vnetns "github.com/vishvananda/netns"
)

// TestUnderlayVerbs runs a daemon in a namespace of its own (the test's
// thread is moved there while the daemon starts and its commands run)
// and checks ovs/route/* and tnl/neigh/* against routes added with ip.
func TestUnderlayVerbs(t *testing.T) {
	host, peer := netns.New(t, "uldh"), netns.New(t, "uldp")
	netns.AddVeth(t, host, "u0", peer, "p0", 1)
	host.AddAddr(t, "u0", "192.0.2.1/24")
	host.IP(t, "route", "add", "198.51.100.0/24", "via", "192.0.2.254")

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := vnetns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := vnetns.GetFromPath(host.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := vnetns.Set(ns); err != nil {
		t.Fatal(err)
	}
	defer vnetns.Set(orig)

	d := newTestDaemon(t, "")
	const want = "Cached: 198.51.100.0/24 dev u0 GW 192.0.2.254 SRC 192.0.2.1\n"
	if out := run(t, d, "ovs/route/show"); !strings.HasPrefix(out, "Route Table:\n") || !strings.Contains(out, want) ||
		!strings.Contains(out, "Cached: 192.0.2.1/32 dev u0 SRC 192.0.2.1 local\n") {
		t.Fatalf("ovs/route/show:\n%s", out)
	}
	host.IP(t, "route", "add", "203.0.113.0/24", "via", "192.0.2.253")
	if !netns.Eventually(20*time.Second, func() bool {
		return strings.Contains(run(t, d, "ovs/route/show"), "Cached: 203.0.113.0/24 dev u0 GW 192.0.2.253 SRC 192.0.2.1\n")
	}) {
		t.Fatalf("a new kernel route did not show:\n%s", run(t, d, "ovs/route/show"))
	}
	if got := run(t, d, "ovs/route/add", "10.9.0.0/16", "u0", "192.0.2.7", "pkt_mark=3"); got != "OK\n" {
		t.Errorf("ovs/route/add: %q", got)
	}
	if out := run(t, d, "ovs/route/show"); !strings.Contains(out, "User: 10.9.0.0/16 MARK 3 dev u0 GW 192.0.2.7 SRC 192.0.2.1\n") {
		t.Errorf("ovs/route/show after ovs/route/add:\n%s", out)
	}
	if got := run(t, d, "ovs/route/del", "10.9.0.0/16", "pkt_mark=3"); got != "OK\n" {
		t.Errorf("ovs/route/del: %q", got)
	}
	if got, want := run(t, d, "ovs/route/lookup", "198.51.100.9"), "src 192.0.2.1\ngateway 192.0.2.254\ndev u0\n"; got != want {
		t.Errorf("ovs/route/lookup: %q, want %q", got, want)
	}
	if got, want := run(t, d, "ovs/route/lookup", "192.0.2.9"), "src 192.0.2.1\ngateway ::\ndev u0\n"; got != want {
		t.Errorf("ovs/route/lookup on link: %q, want %q", got, want)
	}

	run(t, d, "tnl/neigh/set", "u0", "192.0.2.9", "02:00:00:00:00:09")
	if got, want := run(t, d, "tnl/neigh/show"), "IP                                            MAC                 Bridge\n"+
		"==========================================================================\n"+
		"192.0.2.9                                     02:00:00:00:00:09   u0\n"; got != want {
		t.Errorf("tnl/neigh/show:\n%q\nwant\n%q", got, want)
	}
	if got := run(t, d, "tnl/arp/aging"); got != "900\n" {
		t.Errorf("tnl/arp/aging: %q", got)
	}
	run(t, d, "tnl/neigh/aging", "60")
	if got := run(t, d, "tnl/neigh/aging"); got != "60\n" {
		t.Errorf("tnl/neigh/aging after setting 60: %q", got)
	}
	if got := run(t, d, "tnl/neigh/flush"); got != "OK\n" {
		t.Errorf("tnl/neigh/flush: %q", got)
	}
	if got := run(t, d, "tnl/neigh/show"); strings.Count(got, "\n") != 2 {
		t.Errorf("tnl/neigh/show after flush:\n%s", got)
	}

	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"ovs/route/add", "10.0.0.0/33", "u0"}, "Invalid parameters"},
		{[]string{"ovs/route/add", "10.0.0.0/8", "u0", "x"}, "Invalid pkt_mark or gateway"},
		{[]string{"ovs/route/add", "10.0.0.0/8", "u0"}, "Error while inserting route"},
		{[]string{"ovs/route/del", "10.0.0.0/8"}, "Not found"},
		{[]string{"ovs/route/lookup", "10.0.0.1"}, "Not found"},
		{[]string{"tnl/neigh/set", "u0", "1.2.3", "02:00:00:00:00:01"}, "bad IP address"},
		{[]string{"tnl/neigh/set", "u0", "1.2.3.4", "zz"}, "bad MAC address"},
		{[]string{"tnl/neigh/aging", "0"}, "bad aging value"},
		{[]string{"tnl/neigh/aging", "3601"}, "bad aging value"},
	} {
		_, err := runFlags(d, tc.args[0], nil, tc.args[1:]...)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.wantErr)
		}
	}
	if _, err := runFlags(d, "ovs/route/add", nil, "10.0.0.0/8", "u0", "x"); !errors.Is(err, ErrUsage) {
		t.Errorf("a bad gateway is not a usage error: %v", err)
	}
}
