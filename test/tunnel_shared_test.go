package test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestTunnelSharedThread: in each of two host namespaces, one daemon
// whose br-int and br-phy run on one poll thread (pmd 0 of each bridge
// on the daemon's thread 0, as Open vSwitch's PMD threads serve every
// bridge). Pings at a moderate rate and TCP go both ways through a vxlan
// tunnel between them. The thread takes each packet through both of its
// bridges, so none waits in an injection ring for another thread: no
// frame is dropped as tx-ring-full where one bridge hands it to the
// other (the tunnel port's tx, encapsulating; the uplink's rx,
// decapsulating), and the other bridge's injected frames are run by the
// thread that sent them.
func TestTunnelSharedThread(t *testing.T) {
	testenv.RequireTool(t, "ip", "iproute2")
	testenv.RequireTool(t, "ping", "iputils-ping")
	h := &vxlanHosts{a: netns.New(t, "hosta"), b: netns.New(t, "hostb"), wa: netns.New(t, "wla"), wb: netns.New(t, "wlb")}
	netns.AddVeth(t, h.a, "ua", h.b, "ub", 1)
	key := "key=" + strconv.Itoa(vxlanKey)
	dA := tunnelHost(t, h.a, h.wa, "ua", "192.0.2.1/24", "10.9.0.1/24", true, "vxlan", "remote_ip=192.0.2.2", key)
	dB := tunnelHost(t, h.b, h.wb, "ub", "192.0.2.2/24", "10.9.0.2/24", true, "vxlan", "remote_ip=192.0.2.1", key)
	h.d = dA
	if !netns.Eventually(30*time.Second, func() bool {
		_, err := h.wa.Run("ping", "-c", "1", "-W", "1", "10.9.0.2")
		return err == nil
	}) {
		t.Fatalf("workload A does not reach workload B:\nA:\n%s%s\nB:\n%s%s",
			dA.run(t, "tnl/ports/show"), dA.run(t, "drop-reasons"), dB.run(t, "tnl/ports/show"), dB.run(t, "drop-reasons"))
	}
	// About 500 packets a second each way, with their replies.
	pings := []*netns.Process{h.wa.Start(t, "ping", "-q", "-i", "0.002", "-c", "2500", "10.9.0.2"), h.wb.Start(t, "ping", "-q", "-i", "0.002", "-c", "2500", "10.9.0.1")}
	tcpBothWays(t, h, dA)
	for _, p := range pings {
		if !netns.Eventually(60*time.Second, p.Exited) {
			t.Fatalf("ping still running after 60s: %s", p.Output())
		}
		if out := p.Output(); !strings.Contains(out, "2500 packets transmitted") {
			t.Errorf("ping: %s", out)
		}
	}
	for _, d := range []*cliDaemon{dA, dB} {
		checkTunnelLedger(t, d)
		drops := d.run(t, "drop-reasons")
		for _, hand := range []struct{ port, dir string }{{"vx0", "tx"}, {"ua", "rx"}, {"ub", "rx"}} {
			if n := dropCount(drops, hand.port, hand.dir, "tx-ring-full"); n != 0 {
				t.Errorf("port %s: %d %s drops as tx-ring-full where the bridges hand frames over:\n%s", hand.port, n, hand.dir, drops)
			}
		}
		// Every frame decapsulated into br-int (received on its tunnel
		// port) was run by the thread that decapsulated it, right after
		// its batch: br-int's pmd never found one waiting.
		stats := d.run(t, "pmd-stats-show")
		in := stats[:max(strings.Index(stats, "bridge brphy:"), 0)]
		m := regexp.MustCompile(`tunnelled packets run by the sending bridge's thread: ([0-9]+)`).FindStringSubmatch(in)
		tun := parseDumpPorts(t, d.run(t, "dump-ports", "brint"))[strconv.Itoa(vxlanOFTun)]
		if m == nil || m[1] != strconv.FormatUint(tun.rx, 10) || tun.rx == 0 {
			t.Errorf("br-int's tunnel port received %d frames; the thread that sent them ran %v of them:\n%s", tun.rx, m, stats)
		}
		if w := d.run(t, "watchdog/show"); regexp.MustCompile(`soft lockups detected: [1-9]`).MatchString(w) {
			t.Logf("watchdog (a loaded machine may stall a batch):\n%s", w)
		}
	}
	t.Logf("host A:\n%s", dA.run(t, "pmd-stats-show"))
}

// dropCount returns the drops of reason in direction dir (rx or tx) that
// drop-reasons output shows for port (0 when it shows none).
func dropCount(out, port, dir, reason string) int {
	i := strings.Index(out, "  port "+port+" ")
	if i < 0 {
		return 0
	}
	block := out[i+1:]
	if j := strings.Index(block, "  port "); j >= 0 {
		block = block[:j]
	}
	for _, l := range strings.Split(block, "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == dir && f[1] == reason+":" {
			v, _ := strconv.Atoi(f[2])
			return v
		}
	}
	return 0
}
