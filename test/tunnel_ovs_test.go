package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// TestTunnelOvsxdpToOpenVSwitch runs a vxlan and then a geneve tunnel
// between ovsxdp on host A and Open vSwitch 3.1's userspace (netdev)
// datapath on host B, each set up for native tunnelling the same way
// (br-int with the workload and the tunnel port; br-phy with the underlay
// device, AF_XDP on both sides, and the underlay address on an internal
// port): ping and TCP both ways, and every packet host A received
// accounted for.
func TestTunnelOvsxdpToOpenVSwitch(t *testing.T) {
	for _, kind := range []string{"vxlan", "geneve"} {
		t.Run(kind, func(t *testing.T) {
			ovsref.Require(t)
			db := ovsref.StartDB(t)
			h := &vxlanHosts{a: netns.New(t, "hosta"), b: netns.New(t, "hostb"), wa: netns.New(t, "wla"), wb: netns.New(t, "wlb")}
			netns.AddVeth(t, h.a, "ua", h.b, "ub", 1)
			key := strconv.Itoa(vxlanKey)
			dA := tunnelHost(t, h.a, h.wa, "ua", "192.0.2.1/24", "10.9.0.1/24", true, kind, "remote_ip=192.0.2.2", "key="+key)

			dir := db.Dir()
			// After ovs-vswitchd is killed (the cleanups run last
			// first): the taps of its bridges are persistent.
			t.Cleanup(func() {
				if err := ovsref.DeleteTaps(h.b); err != nil {
					t.Error(err)
				}
			})
			vs := h.b.Start(t, "env", "OVS_RUNDIR="+dir, "OVS_LOGDIR="+dir, "OVS_DBDIR="+dir, "OVS_SYSCONFDIR="+dir,
				"ovs-vswitchd", db.Remote(), "--no-chdir", "--pidfile="+filepath.Join(dir, "vswitchd.pid"),
				"--unixctl="+filepath.Join(dir, "vswitchd.ctl"), "--log-file="+filepath.Join(dir, "vswitchd.log"))
			t.Cleanup(func() {
				if t.Failed() {
					l, _ := os.ReadFile(filepath.Join(dir, "vswitchd.log"))
					t.Logf("ovs-vswitchd (exited %v) log:\n%s%s", vs.Exited(), l, vs.Output())
				}
			})
			vsctl := func(args ...string) {
				t.Helper()
				if out, err := db.Vsctl(append([]string{"--timeout=60"}, args...)...); err != nil {
					t.Fatalf("ovs-vsctl %v: %v\n%s", args, err, out)
				}
			}
			vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev")
			vsctl("add-port", "br-phy", "ub", "--", "set", "interface", "ub", "type=afxdp")
			h.b.IP(t, "addr", "add", "192.0.2.2/24", "dev", "br-phy")
			if err := h.b.SetLinkUp("br-phy"); err != nil {
				t.Fatal(err)
			}
			netns.AddVeth(t, h.b, "wb", h.wb, "wb0", 1)
			h.wb.AddAddr(t, "wb0", "10.9.0.2/24")
			h.wb.IP(t, "link", "set", "wb0", "mtu", "1450")
			vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
			vsctl("add-port", "br-int", "wb")
			vsctl("add-port", "br-int", "vx0", "--", "set", "interface", "vx0", "type="+kind,
				"options:remote_ip=192.0.2.1", "options:key="+key)

			if !netns.Eventually(60*time.Second, func() bool {
				_, err := h.wa.Run("ping", "-c", "1", "-W", "1", "10.9.0.2")
				return err == nil
			}) {
				t.Fatalf("workload A does not reach workload B:\n%s%s", dA.run(t, "tnl/ports/show"), dA.run(t, "drop-reasons"))
			}
			for _, p := range []struct {
				from *netns.NS
				to   string
			}{{h.wa, "10.9.0.2"}, {h.wb, "10.9.0.1"}} {
				// Open vSwitch's side runs on a loaded machine too: a
				// lost echo is logged, not failed; TCP below must move
				// every byte.
				out, err := p.from.Run("ping", "-c", "5", "-i", "0.2", "-W", "2", p.to)
				if err != nil {
					t.Fatalf("ping %s: %v\n%s", p.to, err, out)
				}
				if !strings.Contains(out, " 0% packet loss") {
					t.Logf("ping %s lost echoes:\n%s\n%s", p.to, out, dA.run(t, "drop-reasons"))
				}
			}
			tcpBothWays(t, h, dA)
			checkTunnelLedger(t, dA)
		})
	}
}
