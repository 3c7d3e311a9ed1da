package test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
)

// TestTunnelOvsxdpToOvsxdp joins two host namespaces, each with its own
// daemon, by a vxlan and then a geneve tunnel. Host A's port takes its
// remote and key from the flow (remote_ip=flow, key=flow) and its flows
// steer: set_field on tun_dst and tun_id to send, tun_id and tun_src to
// receive; host B's port has them fixed and runs the normal action. Ping
// and TCP go both ways. Then the failures, each a counted drop with its
// reason: a key B has no port for (tunnel-no-port, on B's uplink), a
// tun_dst without a route (tunnel-routing-failed, on A's tunnel port), and
// a datagram to the tunnel's UDP port that is not a tunnel packet
// (tunnel-pop-error, on A's uplink). The underlay veth deleted under
// traffic and made again: drops, no lockup, and traffic again. Every
// packet either daemon received is accounted for.
func TestTunnelOvsxdpToOvsxdp(t *testing.T) {
	for _, tc := range []struct{ kind, port string }{{"vxlan", "4789"}, {"geneve", "6081"}} {
		t.Run(tc.kind, func(t *testing.T) {
			h := &vxlanHosts{a: netns.New(t, "hosta"), b: netns.New(t, "hostb"), wa: netns.New(t, "wla"), wb: netns.New(t, "wlb")}
			netns.AddVeth(t, h.a, "ua", h.b, "ub", 1)
			dA := tunnelHost(t, h.a, h.wa, "ua", "192.0.2.1/24", "10.9.0.1/24", true, tc.kind, "remote_ip=flow", "key=flow")
			dB := tunnelHost(t, h.b, h.wb, "ub", "192.0.2.2/24", "10.9.0.2/24", true, tc.kind, "remote_ip=192.0.2.1", "key="+strconv.Itoa(vxlanKey))
			tun := strconv.Itoa(vxlanOFTun)
			key := strconv.Itoa(vxlanKey)
			dA.run(t, "del-flows", "brint")
			dA.run(t, "add-flow", "brint", "in_port=1,actions=set_field:192.0.2.2->tun_dst,set_field:"+key+"->tun_id,output:"+tun)
			dA.run(t, "add-flow", "brint", "in_port="+tun+",tun_id="+key+",tun_src=192.0.2.2,actions=output:1")

			if !netns.Eventually(30*time.Second, func() bool {
				_, err := h.wa.Run("ping", "-c", "1", "-W", "1", "10.9.0.2")
				return err == nil
			}) {
				t.Fatalf("workload A does not reach workload B:\nA:\n%s%s%s\nB:\n%s%s%s",
					dA.run(t, "tnl/ports/show"), dA.run(t, "drop-reasons"), dA.run(t, "dump-flows", "brint"),
					dB.run(t, "tnl/ports/show"), dB.run(t, "drop-reasons"), dB.run(t, "dump-ports", "brphy"))
			}
			for _, p := range []struct {
				from *netns.NS
				to   string
			}{{h.wa, "10.9.0.2"}, {h.wb, "10.9.0.1"}} {
				if out, err := p.from.Run("ping", "-c", "5", "-i", "0.2", "-W", "2", p.to); err != nil || !strings.Contains(out, " 0% packet loss") {
					t.Fatalf("ping %s: %v\n%s", p.to, err, out)
				}
			}
			tcpBothWays(t, h, dA)

			// A key B has no port for; a remote without a route.
			dA.run(t, "add-flow", "brint", "priority=40000,udp,in_port=1,tp_dst=9999,actions=set_field:192.0.2.2->tun_dst,set_field:99->tun_id,output:"+tun)
			dA.run(t, "add-flow", "brint", "priority=40000,udp,in_port=1,tp_dst=9998,actions=set_field:198.51.100.9->tun_dst,set_field:"+key+"->tun_id,output:"+tun)
			for _, addr := range []string{"10.9.0.2:9999", "10.9.0.2:9998"} {
				if out, err := h.wa.Run(helperArgs(t, "udp-send", addr, "steered", "3")...); err != nil {
					t.Fatalf("udp-send %s: %v\n%s", addr, err, out)
				}
			}
			// Not a tunnel packet, to the tunnel's UDP port on A.
			if out, err := h.b.Run(helperArgs(t, "udp-send", "192.0.2.1:"+tc.port, "x", "3")...); err != nil {
				t.Fatalf("udp-send to the tunnel port: %v\n%s", err, out)
			}
			wantDrop(t, dB, "ub", "rx", "tunnel-no-port", 3)
			wantDrop(t, dA, "vx0", "tx", "tunnel-routing-failed", 3)
			wantDrop(t, dA, "ua", "rx", "tunnel-pop-error", 3)
			if show := dA.run(t, "tnl/ports/show"); !strings.Contains(show, "remote 198.51.100.9: drop tunnel-routing-failed") ||
				!strings.Contains(show, "remote 192.0.2.2: ok") {
				t.Errorf("tnl/ports/show on A:\n%s", show)
			}

			// The underlay deleted under traffic: drops with reasons, no
			// lockup; a new underlay veth of the same names: the uplinks
			// are attached again and traffic comes back.
			flood := h.wa.Start(t, "ping", "-i", "0.02", "-W", "1", "10.9.0.2")
			before := phyDrops(t, dA)
			h.a.IP(t, "link", "del", "ua")
			if !netns.Eventually(20*time.Second, func() bool { return phyDrops(t, dA) > before }) {
				t.Errorf("no drops on host A's underlay bridge once its uplink is gone:\n%s", dA.run(t, "drop-reasons", "brphy"))
			}
			netns.AddVeth(t, h.a, "ua", h.b, "ub", 1)
			if !netns.Eventually(60*time.Second, func() bool {
				_, err := h.wa.Run("ping", "-c", "1", "-W", "1", "10.9.0.2")
				return err == nil
			}) {
				t.Fatalf("no traffic once the underlay is back:\nA:\n%s%s\nB:\n%s%s", dA.run(t, "show"), dA.run(t, "drop-reasons"), dB.run(t, "show"), dB.run(t, "drop-reasons"))
			}
			flood.Kill()
			for _, d := range []*cliDaemon{dA, dB} {
				if w := d.run(t, "watchdog/show"); regexp.MustCompile(`soft lockups detected: [1-9]`).MatchString(w) {
					t.Errorf("a poll thread locked up:\n%s", w)
				}
			}
			checkTunnelLedger(t, dA)
			checkTunnelLedger(t, dB)
			t.Logf("host A's drops:\n%s", dA.run(t, "drop-reasons"))
		})
	}
}

// phyDrops sums the drops of packets received on br-phy's ports.
func phyDrops(t *testing.T, d *cliDaemon) uint64 {
	t.Helper()
	var n uint64
	for _, r := range parseDumpPorts(t, d.run(t, "dump-ports", "brphy")) {
		n += r.rxDrops
	}
	return n
}

// wantDrop waits until the drop-reasons of port show at least n drops
// of reason in direction dir (rx or tx).
func wantDrop(t *testing.T, d *cliDaemon, port, dir, reason string, n int) {
	t.Helper()
	var last string
	if !netns.Eventually(20*time.Second, func() bool {
		last = d.run(t, "drop-reasons")
		i := strings.Index(last, "  port "+port+" ")
		if i < 0 {
			return false
		}
		block := last[i+1:]
		if j := strings.Index(block, "  port "); j >= 0 {
			block = block[:j]
		}
		for _, l := range strings.Split(block, "\n") {
			f := strings.Fields(l)
			if len(f) == 3 && f[0] == dir && f[1] == reason+":" {
				v, _ := strconv.Atoi(f[2])
				return v >= n
			}
		}
		return false
	}) {
		t.Errorf("port %s: want %d %s drops as %s:\n%s", port, n, dir, reason, last)
	}
}
