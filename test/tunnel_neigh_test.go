package test

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestTunnelNeighResolve: host A's kernel cannot resolve the tunnel's
// next hop (its internal port phy0 is set `arp off`, its neighbour table
// flushed, and nothing in it sends to host B: host B has a permanent
// entry for host A, so it never asks), so traffic through the tunnel
// works only because ovsxdp resolves the next hop itself: its ARP request
// (IPv6: neighbour solicitation), from phy0's MAC and address, shows on
// the underlay; tnl/neigh/show lists host B's address learnt from the
// reply (advertisement) on phy0, while host A's kernel has no entry with
// host B's MAC; the first packets drop as tunnel-neigh-cache-miss. After
// tnl/neigh/flush, the next hop is resolved again. Every packet host A's
// bridges received is accounted for. Host B is the kernel's vxlan
// device. Over an IPv4 and an IPv6 underlay.
func TestTunnelNeighResolve(t *testing.T) {
	for _, u := range []underlayNet{underlay4, underlay6} {
		t.Run(u.name, func(t *testing.T) { testTunnelNeighResolve(t, u) })
	}
}

func testTunnelNeighResolve(t *testing.T, u underlayNet) {
	testenv.RequireTool(t, "tcpdump", "tcpdump")
	opts := []string{"remote_ip=" + u.b, "key=" + strconv.Itoa(vxlanKey)}
	if u.v6 {
		opts = append(opts, "csum=true") // as TestTunnelVXLANKernel
	}
	h := newVXLANHostA(t, u, opts...)
	d := h.d
	// Host A's kernel neither asks for nor answers about neighbours on
	// phy0 from here on.
	h.a.IP(t, "link", "set", "phy0", "arp", "off")
	h.a.IP(t, "neigh", "flush", "dev", "phy0")
	phyMAC, ubMAC := h.a.MAC(t, "phy0"), h.b.MAC(t, "ub")

	// The underlay capture: what asks for and answers about neighbours.
	filter := []string{"arp"}
	if u.v6 {
		filter = []string{"icmp6", "and", "(ip6[40]", "==", "135", "or", "ip6[40]", "==", "136)"}
	}
	dump := h.b.Start(t, append([]string{"tcpdump", "-i", "ub", "-l", "-n", "-e"}, filter...)...)
	if err := dump.WaitOutput("listening on", 20*time.Second); err != nil {
		t.Fatalf("tcpdump: %v: %s", err, dump.Output())
	}

	// Host B: the kernel's vxlan device, bridged to the workload, with a
	// permanent entry for host A.
	h.b.SetNeigh(t, "ub", u.a, phyMAC) // before vx0 exists: B never asks for A
	kernelVXLANHost(t, h.b, h.wb, u)

	reach := func(when string) {
		t.Helper()
		if !netns.Eventually(30*time.Second, func() bool {
			_, err := h.wa.Run("ping", "-c", "1", "-W", "1", "10.9.0.2")
			return err == nil
		}) {
			t.Fatalf("%s: workload A does not reach workload B through the tunnel:\n%s\n%s\n%s\n%s\ncapture:\n%s", when,
				d.run(t, "tnl/ports/show"), d.run(t, "tnl/neigh/show"), d.run(t, "drop-reasons"), h.a.IP(t, "neigh", "show"), dump.Output())
		}
	}
	learnt := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(u.b) + ` +` + regexp.QuoteMeta(ubMAC.String()) + ` +phy0$`)
	checkLearnt := func(when string) {
		t.Helper()
		if show := d.run(t, "tnl/neigh/show"); !learnt.MatchString(show) {
			t.Errorf("%s: tnl/neigh/show does not list %s at %s on phy0:\n%s", when, u.b, ubMAC, show)
		}
	}

	reach("first")
	checkLearnt("after the first ping")
	wantDrop(t, d, "vx0", "tx", "tunnel-neigh-cache-miss", 1)
	for _, p := range []struct {
		from *netns.NS
		to   string
	}{{h.wa, "10.9.0.2"}, {h.wb, "10.9.0.1"}} {
		if out, err := p.from.Run("ping", "-c", "5", "-i", "0.2", "-W", "2", p.to); err != nil || !strings.Contains(out, " 0% packet loss") {
			t.Fatalf("ping %s: %v\n%s", p.to, err, out)
		}
	}
	// Host A's kernel did not resolve host B: ovsxdp did.
	if neigh := h.a.IP(t, "neigh", "show", "dev", "phy0"); strings.Contains(neigh, ubMAC.String()) {
		t.Errorf("host A's kernel knows host B's MAC, so the test proves nothing:\n%s", neigh)
	}

	// Emptied, the cache is filled again by another solicitation.
	d.run(t, "tnl/neigh/flush")
	reach("after tnl/neigh/flush")
	checkLearnt("after tnl/neigh/flush")
	checkTunnelLedger(t, d)

	want := regexp.QuoteMeta(phyMAC.String()+" > ff:ff:ff:ff:ff:ff") + `.*` + regexp.QuoteMeta("Request who-has "+u.b+" tell "+u.a)
	if u.v6 {
		sol := solicitedNodeMAC(net.ParseIP(u.b))
		want = regexp.QuoteMeta(phyMAC.String()+" > "+sol.String()) + `.*` + regexp.QuoteMeta(u.a+" > ") + `\S+: .*neighbor solicitation, who has ` + regexp.QuoteMeta(u.b)
	}
	re := regexp.MustCompile(want)
	if !netns.Eventually(10*time.Second, func() bool { return len(re.FindAllString(dump.Output(), -1)) >= 2 }) {
		t.Errorf("the underlay capture lacks two requests from phy0 (%s) for %s (%s):\n%s", phyMAC, u.b, want, dump.Output())
	}
	dump.Kill()
	t.Logf("drop reasons:\n%s", d.run(t, "drop-reasons"))
}

// solicitedNodeMAC is the Ethernet address of ip's solicited-node
// multicast group.
func solicitedNodeMAC(ip net.IP) net.HardwareAddr {
	ip = ip.To16()
	return net.HardwareAddr{0x33, 0x33, 0xff, ip[13], ip[14], ip[15]}
}
