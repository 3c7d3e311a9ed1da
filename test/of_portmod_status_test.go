package test

import (
	"context"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestPortModStatusMatchesOVS sends a port mod that takes an internal
// port down over the connection of an ovs-ofctl monitor (ofctl/send), in
// OpenFlow 1.0, 1.3, 1.4 and 1.5, to a sandboxed Open vSwitch 3.1 and to
// ovsxdp, and compares the port status messages that connection receives
// until a port added after the change: before OpenFlow 1.5 the change the
// port mod itself makes is not reported to the connection that sent it,
// and from 1.5 on it is; the device's state that follows is reported to
// every connection.
func TestPortModStatusMatchesOVS(t *testing.T) {
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	want, got := stepsOnBoth(t, func(s ovsdbSwitch, _ []string) []string {
		return portModStatusSteps(t, ofctl, s.dpType, s.ns, s.vsctl, s.target)
	})

	// Every connection sees the device go down: a harness that lost the
	// messages would compare alike.
	for _, w := range want {
		if !strings.Contains(w, "MOD: (i-s)") {
			t.Errorf("Open vSwitch's sender saw no port status of i-s:\n%s", w)
		}
	}
	t.Logf("Open vSwitch:\n%s", strings.Join(want, ""))
	compareSteps(t, want, got)
}

// portModStatusSteps runs the port mods against one switch, whose
// ovs-vswitchd (or ovsxdp) runs in sw and whose bridge br0 ovs-ofctl
// reaches at target, and returns, per version, the port status messages
// (and errors) the sending connection printed, normalised.
func portModStatusSteps(t *testing.T, ofctl, dpType string, sw *netns.NS, vsctl func(...string) (string, error), target string) []string {
	t.Helper()
	vs := func(args ...string) string {
		t.Helper()
		out, err := vsctl(append([]string{"--timeout=60"}, args...)...)
		if err != nil {
			t.Fatalf("%s: %v", dpType, err)
		}
		return strings.Trim(strings.TrimSpace(out), `"`)
	}
	desc := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, ofctl, "--timeout=30", "-O", "OpenFlow13", "dump-ports-desc", target).CombinedOutput()
		return string(out)
	}
	// port is the description of the port named name in out.
	port := func(out, name string) string {
		_, rest, ok := strings.Cut(out, "("+name+"):")
		if !ok {
			return ""
		}
		var b strings.Builder
		for i, l := range strings.Split(rest, "\n") {
			if i > 0 && !strings.HasPrefix(l, "  ") {
				break
			}
			b.WriteString(l + "\n")
		}
		return b.String()
	}
	waitPort := func(what string, cond func(string) bool) {
		t.Helper()
		if !netns.Eventually(30*time.Second, func() bool { return cond(port(desc(), "i-s")) }) {
			t.Fatalf("%s: i-s never %s:\n%s", dpType, what, desc())
		}
	}

	vs("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type="+dpType)
	vs("add-port", "br0", "i-s", "--", "set", "interface", "i-s", "type=internal")
	waitPort("appears", func(s string) bool { return s != "" })
	sw.IP(t, "link", "set", "i-s", "up")
	waitPort("comes up", func(s string) bool { return s != "" && !strings.Contains(s, "DOWN") })
	no, err := strconv.ParseUint(vs("get", "interface", "i-s", "ofport"), 10, 32)
	if err != nil {
		t.Fatalf("%s: ofport of i-s: %v", dpType, err)
	}
	mac := sw.MAC(t, "i-s")

	xidRE := regexp.MustCompile(`\(xid=0x[0-9a-f]+\)`)
	monPortRE := regexp.MustCompile(`: \d+\(`)
	addrRE := regexp.MustCompile(`addr:[0-9a-f]{2}(:[0-9a-f]{2}){5}`)
	versions := []struct {
		name string
		v    uint8
	}{{"OpenFlow10", openflow.Version10}, {"OpenFlow13", openflow.Version13}, {"OpenFlow14", openflow.Version14}, {"OpenFlow15", openflow.Version15}}
	var steps []string
	for i, ver := range versions {
		ctl := filepath.Join(t.TempDir(), "mon.ctl")
		// A miss length: a service connection gets no asynchronous
		// message without one.
		mon := sw.Start(t, ofctl, "--unixctl="+ctl, "-O", ver.name, "monitor", target, "65535")
		if !netns.Eventually(30*time.Second, func() bool {
			return exec.Command("ovs-appctl", "-t", ctl, "ofctl/barrier").Run() == nil
		}) {
			t.Fatalf("%s: the %s monitor does not answer: %s", dpType, ver.name, mon.Output())
		}
		// A port added first: what the monitor printed up to it is
		// the last round's (a switch may report a change some time
		// after dump-ports-desc shows it) and is left out.
		start := fmt.Sprintf("s%d", i)
		vs("add-port", "br0", start, "--", "set", "interface", start, "type=internal")
		if err := mon.WaitOutput("("+start+")", 60*time.Second); err != nil {
			t.Fatalf("%s: the %s monitor: %v", dpType, ver.name, err)
		}
		pm := &openflow.PortMod{PortNo: uint32(no), Config: openflow.PortConfigDown, Mask: openflow.PortConfigDown}
		copy(pm.HWAddr[:], mac)
		if ver.v == openflow.Version10 {
			pm.PortNo = uint32(no) & 0xffff
		}
		b, err := openflow.Encode(ver.v, 0x1234, pm)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("ovs-appctl", "-t", ctl, "ofctl/send", hex.EncodeToString(b)).CombinedOutput(); err != nil {
			t.Fatalf("%s: ofctl/send of the port mod: %v\n%s", dpType, err, out)
		}
		waitPort("goes down", func(s string) bool { return strings.Contains(s, "PORT_DOWN") && strings.Contains(s, "LINK_DOWN") })
		// A port added after the change: every status of the change is
		// in the monitor's output before its own, since a connection's
		// messages keep their order.
		marker := fmt.Sprintf("m%d", i)
		vs("add-port", "br0", marker, "--", "set", "interface", marker, "type=internal")
		if err := mon.WaitOutput("("+marker+")", 60*time.Second); err != nil {
			t.Fatalf("%s: the %s monitor: %v", dpType, ver.name, err)
		}
		var rec strings.Builder
		fmt.Fprintf(&rec, "== port mod over the monitor's connection, %s\n", ver.name)
		_, out, _ := strings.Cut(mon.Output(), "("+start+")")
		for _, msg := range strings.Split(out, "\nOFPT_")[1:] {
			if !strings.HasPrefix(msg, "PORT_STATUS") && !strings.HasPrefix(msg, "ERROR") {
				continue
			}
			for _, l := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
				l = xidRE.ReplaceAllString(l, "")
				l = monPortRE.ReplaceAllString(l, ": (")
				l = addrRE.ReplaceAllString(l, "addr:ADDR")
				rec.WriteString(strings.TrimRight(l, " ") + "\n")
			}
			if strings.Contains(msg, "("+marker+")") {
				break
			}
		}
		steps = append(steps, rec.String())
		mon.Kill()
		sw.IP(t, "link", "set", "i-s", "up")
		waitPort("comes back up", func(s string) bool { return !strings.Contains(s, "DOWN") })
	}
	return steps
}
