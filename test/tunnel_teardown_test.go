package test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestTunnelRemoteHostDeleted is host A (ovsxdp, a vxlan port on br-int,
// the underlay veth on br-phy) against host B (the kernel's vxlan device
// bridged to a workload) whose namespace is deleted while A's workload
// pings through the tunnel: with it goes the peer of A's underlay veth,
// and so A's uplink. Throughout, A's daemon answers and no poll thread
// locks up; what A's workload sends while B is gone is dropped with
// reasons of a tunnel or a port, and every packet A received is accounted
// for. Then host B is made again (namespace, underlay veth of the same
// names, addresses, vxlan device, workload veth): A's uplink is attached
// again and traffic through the tunnel comes back. Meanwhile host A's
// kernel forgets B's link-layer address (as it would in a longer outage),
// so the tunnel port's own drop reason shows too. Over an IPv4 and an
// IPv6 underlay.
func TestTunnelRemoteHostDeleted(t *testing.T) {
	for _, u := range []underlayNet{underlay4, underlay6} {
		t.Run(u.name, func(t *testing.T) { testTunnelRemoteHostDeleted(t, u) })
	}
}

func testTunnelRemoteHostDeleted(t *testing.T, u underlayNet) {
	opts := []string{"remote_ip=" + u.b, "key=" + strconv.Itoa(vxlanKey)}
	if u.v6 {
		// The kernel's vxlan device takes no zero UDP checksum over IPv6.
		opts = append(opts, "csum=true")
	}
	h := newVXLANHostA(t, u, opts...)
	d := h.d
	kernelVXLANHost(t, h.b, h.wb, u)
	reach := func(timeout time.Duration) bool {
		return netns.Eventually(timeout, func() bool {
			_, err := h.wa.Run("ping", "-c", "1", "-W", "1", "10.9.0.2")
			return err == nil
		})
	}
	if !reach(30 * time.Second) {
		t.Fatalf("workload A does not reach workload B through the tunnel:\n%s%s%s",
			d.run(t, "tnl/ports/show"), d.run(t, "dump-ports", "brphy"), d.run(t, "drop-reasons"))
	}

	flood := h.wa.Start(t, "ping", "-i", "0.05", "-W", "1", "10.9.0.2")
	if !netns.Eventually(20*time.Second, func() bool {
		return parseDumpPorts(t, d.run(t, "dump-ports", "brint"))[strconv.Itoa(vxlanOFTun)].rx >= 10
	}) {
		t.Fatalf("no echo replies through the tunnel under the flood:\n%s", d.run(t, "dump-ports", "brint"))
	}
	before := dropCounts(t, d)

	// Host B's workload keeps its hardware address when B is made
	// again, so that A's workload need not find it anew.
	wbMAC := h.wb.MAC(t, "wb0").String()

	// Host B's namespace deleted: its devices go, ub among them, and
	// with ub its peer, A's uplink ua.
	if err := h.b.Delete(); err != nil {
		t.Fatal(err)
	}
	if !netns.Eventually(30*time.Second, func() bool {
		requireAnswers(t, d)
		_, err := h.a.Namespace.IP("link", "show", "ua")
		return err != nil
	}) {
		t.Fatalf("host A's uplink ua is still there 30 s after host B's namespace was deleted")
	}
	// The flood's packets go on being dropped, each with a reason of a
	// tunnel or a port, while the daemon answers.
	var grown map[string]uint64
	if !netns.Eventually(30*time.Second, func() bool {
		requireAnswers(t, d)
		grown = dropGrowth(before, dropCounts(t, d))
		var n uint64
		for _, v := range grown {
			n += v
		}
		return n >= 20
	}) {
		t.Fatalf("fewer than 20 drops since host B went:\n%v\n%s", grown, d.run(t, "drop-reasons"))
	}
	// Host A's kernel forgets host B's link-layer address, as it would
	// once B has been gone long enough: the tunnel port's packets are
	// dropped for the next hop that does not answer.
	h.a.IP(t, "neigh", "flush", "dev", "phy0")
	wantDrop(t, d, "vx0", "tx", "tunnel-neigh-cache-miss", 10)
	requireAnswers(t, d)
	grown = dropGrowth(before, dropCounts(t, d))
	for key := range grown {
		f := strings.Fields(key)
		switch reason := f[2]; {
		case reason == "port-gone" || reason == "no-carrier" || reason == "not-running" || strings.HasPrefix(reason, "tunnel-"):
		case key == "phy0 rx no-rule":
			// br-phy's normal action has nowhere to send host A's
			// encapsulated packets while the uplink is detached: the
			// flow's actions output nowhere.
		default:
			t.Errorf("drop %s while host B is gone is not a reason of a tunnel or a port:\n%s", key, d.run(t, "drop-reasons"))
		}
	}
	t.Logf("drops while host B is gone (port dir reason: count): %v", grown)
	if w := d.run(t, "watchdog/show"); regexp.MustCompile(`soft lockups detected: [1-9]`).MatchString(w) {
		t.Errorf("a poll thread locked up with host B gone:\n%s", w)
	}

	// Host B again: a new namespace with the underlay veth of the same
	// names (A's afxdp port attaches again to the new ua), its address,
	// the vxlan device and the workload's veth.
	h.b = netns.New(t, "hostb")
	if u.v6 {
		for _, key := range []string{"all", "default"} {
			h.b.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+key+".disable_ipv6=0")
		}
	}
	netns.AddVeth(t, h.a, "ua", h.b, "ub", 1)
	kernelVXLANHost(t, h.b, h.wb, u)
	h.wb.IP(t, "link", "set", "wb0", "address", wbMAC)
	start := time.Now()
	if !reach(30 * time.Second) {
		t.Fatalf("no traffic through the tunnel 30 s after host B is back:\n%s%s%s%s%s\nA's workload's neighbours:\n%s\nhost B's links:\n%s",
			d.run(t, "show"), d.run(t, "tnl/ports/show"), d.run(t, "drop-reasons"), d.run(t, "dump-ports", "brint"), d.run(t, "dump-ports", "brphy"),
			h.wa.IP(t, "neigh", "show"), h.b.IP(t, "-s", "link", "show"))
	}
	t.Logf("traffic through the tunnel again %v after host B was made again", time.Since(start).Round(time.Millisecond))
	requireAnswers(t, d)
	flood.Kill()
	if !netns.Eventually(10*time.Second, flood.Exited) {
		t.Fatal("the ping flood does not exit")
	}
	if w := d.run(t, "watchdog/show"); regexp.MustCompile(`soft lockups detected: [1-9]`).MatchString(w) {
		t.Errorf("a poll thread locked up:\n%s", w)
	}
	checkTunnelLedger(t, d)
	t.Logf("drop reasons:\n%s", d.run(t, "drop-reasons"))
}

// kernelVXLANHost makes host namespace b the far end of the tunnel: its
// underlay address on ub, the kernel's vxlan device (id vxlanKey, dstport
// 4789, remote host A) and the veth wb–wb0 to workload namespace wb
// (10.9.0.2), bridged by br0.
func kernelVXLANHost(t *testing.T, b, wb *netns.NS, u underlayNet) {
	t.Helper()
	b.IP(t, "addr", "add", u.b+u.prefix, "dev", "ub", "nodad")
	if out, err := b.Namespace.IP("link", "add", "vx0", "type", "vxlan", "id", strconv.Itoa(vxlanKey),
		"remote", u.a, "local", u.b, "dev", "ub", "dstport", "4789"); err != nil {
		if strings.Contains(out, "Unknown device type") {
			testenv.Missing(t, "the kernel has no vxlan device (CONFIG_VXLAN)")
		}
		t.Fatalf("ip link add vx0 type vxlan: %v\n%s", err, out)
	}
	netns.AddVeth(t, b, "wb", wb, "wb0", 1)
	wb.AddAddr(t, "wb0", "10.9.0.2/24")
	wb.IP(t, "link", "set", "wb0", "mtu", u.mtu)
	b.IP(t, "link", "add", "br0", "type", "bridge")
	for _, dev := range []string{"vx0", "wb"} {
		b.IP(t, "link", "set", dev, "master", "br0", "up")
	}
	b.IP(t, "link", "set", "br0", "up")
}

// requireAnswers fails the test unless the daemon answers show within
// a generous bound (a wedged daemon would not answer at all).
func requireAnswers(t *testing.T, d *cliDaemon) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, d.bin, "--socket", d.sock, "show").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "brint") {
		t.Fatalf("the daemon does not answer show: %v\n%s", err, out)
	}
}

// dropCounts reads drop-reasons as counts by "port dir reason".
func dropCounts(t *testing.T, d *cliDaemon) map[string]uint64 {
	t.Helper()
	counts := map[string]uint64{}
	port := ""
	for _, l := range strings.Split(d.run(t, "drop-reasons"), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "port" {
			port = f[1]
			continue
		}
		if len(f) == 3 && (f[0] == "rx" || f[0] == "tx") && strings.HasSuffix(f[1], ":") && port != "" {
			v, err := strconv.ParseUint(f[2], 10, 64)
			if err != nil {
				t.Fatalf("drop-reasons line %q: %v", l, err)
			}
			counts[fmt.Sprintf("%s %s %s", port, f[0], strings.TrimSuffix(f[1], ":"))] = v
		}
	}
	return counts
}

// dropGrowth returns the counts of now that grew since before.
func dropGrowth(before, now map[string]uint64) map[string]uint64 {
	grown := map[string]uint64{}
	for k := range now {
		if now[k] > before[k] {
			grown[k] = now[k] - before[k]
		}
	}
	return grown
}
