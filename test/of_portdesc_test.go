package test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestPortDescMatchesOVS drives a sandboxed Open vSwitch 3.1 (netdev
// datapath) and ovsxdp, configured from its own ovsdb-server, through the
// same ovs-vsctl, ovs-ofctl and device changes: an afxdp port on a veth,
// an internal port, the bridge's LOCAL port, a VXLAN and a Geneve port;
// the veth's peer taken down and up, the port taken down by ovs-ofctl
// mod-port and by ip link, the devices' addresses changed. After each step
// every field that ovs-ofctl dump-ports-desc prints (address, config,
// state, current, advertised, supported and peer features, speeds), in
// OpenFlow 1.0, 1.3 and 1.5, and every OFPT_PORT_STATUS that ovs-ofctl
// monitor printed, in the same versions, must read the same for both.
// Port numbers and xids are left out; an address is named after the device
// (or the tunnel Interface's mac_in_use) that has it.
func TestPortDescMatchesOVS(t *testing.T) {
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	want, got := stepsOnBoth(t, func(s ovsdbSwitch, _ []string) []string {
		return portDescSteps(t, ofctl, s.dpType, s.ns, s.vsctl, s.target)
	})
	compareSteps(t, want, got)
}

// portDescSteps runs the steps against one switch, whose ovs-vswitchd (or
// ovsxdp) runs in sw and whose bridge br0 ovs-ofctl reaches at target, and
// returns one normalised record per step, then one per version of the
// port status messages seen.
func portDescSteps(t *testing.T, ofctl, dpType string, sw *netns.NS, vsctl func(...string) (string, error), target string) []string {
	t.Helper()
	vs := func(args ...string) string {
		t.Helper()
		out, err := vsctl(append([]string{"--timeout=60"}, args...)...)
		if err != nil {
			t.Fatalf("%s: %v", dpType, err)
		}
		return strings.Trim(strings.TrimSpace(out), `"`)
	}
	ofc := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, ofctl, append([]string{"--timeout=30"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: ovs-ofctl %s: %v\n%s", dpType, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	peer := netns.New(t, "pd")
	netns.AddVeth(t, sw, "h-d", peer, "p-d", 1)

	// names maps every address seen on a device (or as a tunnel's
	// mac_in_use) to what has it; a device's second address is #2.
	names := map[string]string{}
	seen := map[string]int{}
	learn := func() {
		for _, dev := range []string{"h-d", "i-d", "br0"} {
			if mac, err := sw.Namespace.MAC(dev); err == nil {
				if _, ok := names[mac.String()]; !ok {
					seen[dev]++
					names[mac.String()] = "dev(" + dev + ")"
					if seen[dev] > 1 {
						names[mac.String()] += fmt.Sprintf("#%d", seen[dev])
					}
				}
			}
		}
		for _, tun := range []string{"vx", "gn"} {
			if out, err := vsctl("get", "interface", tun, "mac_in_use"); err == nil {
				if mac := strings.Trim(strings.TrimSpace(out), `"`); mac != "[]" {
					if _, ok := names[mac]; !ok {
						names[mac] = "mac_in_use(" + tun + ")"
					}
				}
			}
		}
	}
	addrRE := regexp.MustCompile(`addr:([0-9a-f]{2}(:[0-9a-f]{2}){5})`)
	portRE := regexp.MustCompile(`^ *(\d+|LOCAL)\(([^)]*)\):`)
	monPortRE := regexp.MustCompile(`: \d+\(`)
	xidRE := regexp.MustCompile(`\(xid=0x[0-9a-f]+\)`)
	norm := func(s string) string {
		s = xidRE.ReplaceAllString(s, "")
		return addrRE.ReplaceAllStringFunc(s, func(m string) string {
			mac := m[len("addr:"):]
			if n, ok := names[mac]; ok {
				return "addr:" + n
			}
			return "addr:other(" + mac + ")"
		})
	}
	// ports splits a port description listing into one block per port,
	// keyed by name, the port number left out.
	ports := func(out string) map[string]string {
		m := map[string]string{}
		var name string
		for _, l := range strings.Split(out, "\n") {
			if p := portRE.FindStringSubmatch(l); p != nil {
				name = p[2]
				l = strings.Replace(l, p[1]+"(", "(", 1)
				if p[1] == "LOCAL" {
					l = strings.Replace(l, "(", "LOCAL(", 1)
				}
			} else if !strings.HasPrefix(l, " ") {
				name = ""
				continue
			}
			if name != "" {
				m[name] += strings.TrimRight(l, " ") + "\n"
			}
		}
		return m
	}
	versions := []string{"OpenFlow10", "OpenFlow13", "OpenFlow15"}
	var steps []string
	// step records the port descriptions once settled holds for the
	// OpenFlow 1.3 ones (bounded: a switch that never gets there is
	// recorded as it is then).
	step := func(what string, settled func(map[string]string) bool) {
		t.Helper()
		netns.Eventually(30*time.Second, func() bool {
			// A failed poll is polled again: a loaded ovs-vswitchd can
			// stall for seconds and refuse a connection meanwhile. The
			// record below fails the test on an error.
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, ofctl, "--timeout=30", "-O", "OpenFlow13", "dump-ports-desc", target).Output()
			return err == nil && settled(ports(string(out)))
		})
		learn()
		var b strings.Builder
		fmt.Fprintf(&b, "== %s\n", what)
		for _, v := range versions {
			m := ports(ofc("-O", v, "dump-ports-desc", target))
			names := make([]string, 0, len(m))
			for n := range m {
				names = append(names, n)
			}
			sort.Strings(names)
			fmt.Fprintf(&b, "-- %s\n", v)
			for _, n := range names {
				b.WriteString(norm(m[n]))
			}
		}
		steps = append(steps, b.String())
	}
	has := func(port, s string) func(map[string]string) bool {
		return func(m map[string]string) bool { return strings.Contains(m[port], s) }
	}
	hasNot := func(port, s string) func(map[string]string) bool {
		return func(m map[string]string) bool { return m[port] != "" && !strings.Contains(m[port], s) }
	}

	vs("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type="+dpType)
	vs("add-port", "br0", "h-d", "--", "set", "interface", "h-d", "type=afxdp", "options:n_rxq=1")
	vs("add-port", "br0", "i-d", "--", "set", "interface", "i-d", "type=internal")
	vs("add-port", "br0", "vx", "--", "set", "interface", "vx", "type=vxlan", "options:remote_ip=192.0.2.2")
	vs("add-port", "br0", "gn", "--", "set", "interface", "gn", "type=geneve", "options:remote_ip=192.0.2.3")
	learn()
	step("ports added", func(m map[string]string) bool {
		return m["h-d"] != "" && m["i-d"] != "" && m["vx"] != "" && m["gn"] != "" && m["br0"] != ""
	})

	// The monitors see every port status from here on.
	var mons []*netns.Process
	monDir := t.TempDir()
	for _, v := range versions {
		ctl := filepath.Join(monDir, v+".ctl")
		// A miss length: a service connection gets no asynchronous message
		// without one.
		mons = append(mons, sw.Start(t, ofctl, "--unixctl="+ctl, "-O", v, "monitor", target, "65535"))
		// A barrier answered: the monitor is connected and listening.
		if !netns.Eventually(30*time.Second, func() bool {
			return exec.Command("ovs-appctl", "-t", ctl, "ofctl/barrier").Run() == nil
		}) {
			t.Fatalf("%s: the %s monitor does not answer: %s", dpType, v, mons[len(mons)-1].Output())
		}
	}

	// One port changes per step: the order in which a switch reports
	// changes to two ports at once is not its behaviour but timing.
	sw.IP(t, "link", "set", "i-d", "up")
	step("internal up", hasNot("i-d", "DOWN"))
	sw.IP(t, "link", "set", "br0", "up")
	step("LOCAL up", hasNot("br0", "DOWN"))
	peer.IP(t, "link", "set", "p-d", "down")
	step("veth peer down", has("h-d", "LINK_DOWN"))
	peer.IP(t, "link", "set", "p-d", "up")
	step("veth peer up", hasNot("h-d", "LINK_DOWN"))
	ofc("mod-port", target, "h-d", "down")
	step("mod-port h-d down", has("h-d", "PORT_DOWN"))
	ofc("mod-port", target, "h-d", "up")
	step("mod-port h-d up", hasNot("h-d", "DOWN"))
	sw.IP(t, "link", "set", "h-d", "down")
	step("ip link set h-d down", has("h-d", "PORT_DOWN"))
	sw.IP(t, "link", "set", "h-d", "up")
	step("ip link set h-d up", hasNot("h-d", "DOWN"))
	sw.IP(t, "link", "set", "h-d", "address", "02:00:5e:10:00:01")
	learn()
	step("h-d address changed", has("h-d", "addr:02:00:5e:10:00:01"))
	sw.IP(t, "link", "set", "i-d", "address", "02:00:5e:10:00:02")
	learn()
	step("i-d address changed", has("i-d", "addr:02:00:5e:10:00:02"))
	ofc("mod-port", target, "i-d", "down")
	step("mod-port i-d down", has("i-d", "PORT_DOWN"))
	// A tunnel port stays up: its device has no flags to turn off, and
	// Open vSwitch leaves the port's config as it was. ovs-ofctl returns
	// once the switch answered its barrier, so the record is taken after
	// the switch has handled the request; waiting for PORT_DOWN would only
	// wait out the 30 s bound on both switches.
	ofc("mod-port", target, "vx", "down")
	step("mod-port vx down", hasNot("vx", "PORT_DOWN"))
	ofc("mod-port", target, "vx", "up")
	step("mod-port vx up", hasNot("vx", "PORT_DOWN"))

	// A last change every monitor must see: all that came before it is in
	// their output by then, since a connection's messages keep their order.
	vs("del-port", "br0", "gn")
	for i, mon := range mons {
		if err := mon.WaitOutput("DEL: ", 60*time.Second); err != nil {
			t.Errorf("%s: the %s monitor: %v", dpType, versions[i], err)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "== port status, %s\n", versions[i])
		// A message that repeats the one before it word for word tells
		// nothing new; Open vSwitch at times sends one for an address
		// change.
		var last string
		for _, msg := range strings.Split(mon.Output(), "\nOFPT_") {
			msg = strings.TrimPrefix(msg, "OFPT_")
			if !strings.HasPrefix(msg, "PORT_STATUS") {
				continue
			}
			var m strings.Builder
			for _, l := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
				m.WriteString(norm(monPortRE.ReplaceAllString(l, ": (")) + "\n")
			}
			if m.String() != last {
				b.WriteString(m.String())
			}
			last = m.String()
		}
		steps = append(steps, b.String())
	}
	return steps
}
