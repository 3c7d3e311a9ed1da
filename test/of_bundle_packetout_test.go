package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// Packet outs in bundles (ovs-ofctl bundle, OFPT_BUNDLE_ADD_MESSAGE
// carrying OFPT_PACKET_OUT), against Open vSwitch 3.1, in OpenFlow 1.3
// (ONF's bundles) and 1.4: which flows a bundled packet out sees, in
// what order its packet ins come, what a failed commit does to it, and
// what a packet out refused when it is added answers.

// bundlePOFrame is pinFrameSum from the Ethernet source sa.
func bundlePOFrame(sa string) string {
	return "ffffffffffff0000000000" + sa + pinFrameSum[24:]
}

// pinLine is a packet in and the flow of its frame, as ovs-ofctl monitor
// prints them.
var pinLine = regexp.MustCompile(`(?m)^(NXT_PACKET_IN2?|OFPT_PACKET_IN).*\n.*$`)

// TestBundlePacketOutMatchesOVS runs the same bundles of flow mods and
// packet outs against ovsxdp and Open vSwitch under a monitor, and
// compares ovs-ofctl bundle's errors, the packet ins the monitor
// printed, and the flows left.
func TestBundlePacketOutMatchesOVS(t *testing.T) {
	ports := []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}}
	ref := ovsref.StartShared(t, "br0", ports)
	s := startOFSwitchPorts(t, ports)
	refTarget := "unix:" + filepath.Join(ref.Dir, "br0.mgmt")
	dir := t.TempDir()
	write := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	po := func(sa, actions string) string {
		return "packet-out in_port=1,packet=" + bundlePOFrame(sa) + ",actions=" + actions
	}
	bundles := []struct {
		name  string
		lines []string
	}{
		// Each packet out goes through the tables as the flow mods
		// before it in the bundle leave them, not those after it (the
		// register the modify loads, the flow added last tell), and
		// all are sent in order once the bundle has taken effect
		// (before the marker). One sends its packet to the controller
		// itself.
		{"order", []string{
			"flow add table=0,priority=5,in_port=1,actions=resubmit(,1)",
			"flow add table=1,cookie=0x1,actions=controller",
			po("01", "resubmit(,0)"),
			"flow modify table=1,actions=load:0x2->NXM_NX_REG0[],controller",
			po("02", "resubmit(,0)"),
			po("03", "resubmit(,0)"),
			po("0a", "controller"),
			"flow add table=1,priority=9,cookie=0x3,dl_src=00:00:00:00:00:03,actions=controller",
		}},
		// A commit that fails sends nothing.
		{"commit-fails", []string{
			"flow add table=0,priority=5,in_port=1,actions=controller",
			po("04", "resubmit(,0)"),
			"flow add table=0,priority=6,ip,actions=group:77",
		}},
		// A packet out naming a group that does not exist fails the
		// commit, as a flow mod would.
		{"group", []string{
			"flow add table=0,priority=5,in_port=1,actions=controller",
			po("05", "group:78"),
			po("06", "resubmit(,0)"),
		}},
		// Once the bundle has added the group, it may.
		{"group-added", []string{
			"group add group_id=79,type=all,bucket=actions=controller",
			po("07", "group:79"),
		}},
		// A packet out refused when it is added (an ARP field set on a
		// UDP packet): ovs-ofctl gives the bundle up.
		{"refused", []string{
			"flow add table=0,priority=5,in_port=1,actions=controller",
			po("08", "set_field:1->arp_op,controller"),
			po("09", "resubmit(,0)"),
		}},
	}
	for _, v := range []string{"OpenFlow13", "OpenFlow14"} {
		t.Run(v, func(t *testing.T) {
			// run runs the bundles against one switch, with ofctl
			// running ovs-ofctl -O v CMD TARGET ARGS..., and returns
			// what ovs-ofctl bundle printed to its standard error, the
			// packet ins and the flows after each.
			run := func(rundir, target string, ofctl func(args ...string) (string, string, error)) string {
				var b strings.Builder
				must := func(args ...string) string {
					out, errOut, err := ofctl(args...)
					if err != nil {
						t.Fatalf("ovs-ofctl %s: %v\n%s", strings.Join(args, " "), err, errOut)
					}
					return out
				}
				for _, bd := range bundles {
					must("del-flows", target)
					must("del-groups", target)
					must("add-flow", target, "table=0,priority=1,dl_src=00:00:00:00:00:ff,actions=controller")
					ctl := filepath.Join(rundir, "bundle-po-"+v+"-"+bd.name+".ctl")
					m := startMonitorArgs(t, rundir, "-O", v, "--timeout=60", "--unixctl="+ctl, "monitor", target, "65534")
					waitFor(t, func() bool { _, err := os.Stat(ctl); return err == nil }, "the control socket of the monitor")
					_, errOut, err := ofctl("bundle", target, write(v+"-"+bd.name+".txt", bd.lines...))
					b.WriteString("bundle " + bd.name)
					if err != nil {
						b.WriteString(" failed")
					}
					b.WriteString(":\n" + bundleStderr(errOut))
					// A marker packet out, outside any bundle, on the
					// monitor's connection: every packet in of the bundle
					// comes before its.
					if out, err := exec.Command("ovs-appctl", "-t", ctl, "ofctl/packet-out", "in_port=1,packet="+bundlePOFrame("ff")+",actions=resubmit(,0)").CombinedOutput(); err != nil {
						t.Fatalf("ofctl/packet-out: %v\n%s", err, out)
					}
					waitFor(t, func() bool { return strings.Contains(m.text(), "dl_src=00:00:00:00:00:ff") }, "the marker's packet in")
					for _, l := range pinLine.FindAllString(m.text(), -1) {
						b.WriteString(l + "\n")
					}
					b.WriteString(ovsref.NormaliseDump(must("dump-flows", target, "--no-stats")) + "\n")
					m.cmd.Process.Kill()
					m.cmd.Wait()
				}
				return b.String()
			}
			want := run(ref.Dir, refTarget, func(args ...string) (string, string, error) {
				return ref.OfctlStderr(append([]string{"-O", v}, args...)...)
			})
			t.Logf("Open vSwitch:\n%s", want)
			got := run(s.runDir, s.target, func(args ...string) (string, string, error) {
				return s.try(v, nil, args[0], args[2:]...)
			})
			if got != want {
				t.Errorf("ovsxdp:\n%s\nOpen vSwitch:\n%s", got, want)
			}
		})
	}
}
