package test

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestDatapathIDMatchesOVS checks that the bridge's datapath ID is the
// one Open vSwitch 3.1 gives it, in ovs-ofctl show and in the Bridge
// row's datapath_id: other_config:datapath-id when it is valid, else the
// bridge's address (which follows its ports and other_config:hwaddr);
// and that an OpenFlow connection is dropped exactly when the ID
// changes. The same steps run against a sandboxed Open vSwitch (netdev
// datapath) and ovsxdp configured from its own ovsdb-server.
func TestDatapathIDMatchesOVS(t *testing.T) {
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	want, got := stepsOnBoth(t, func(s ovsdbSwitch, want []string) []string {
		steps := datapathIDSteps(t, ofctl, s.dpType, s.ns, s.vsctl, s.target, want)
		if want == nil {
			for i, w := range steps {
				t.Logf("Open vSwitch, step %d: %s", i, w)
			}
		}
		return steps
	})
	compareSteps(t, want, got)
}

// datapathIDSteps runs the steps against one switch and returns, per
// step, the names of the datapath IDs ovs-ofctl show and the Bridge row
// give, and whether a monitor connected before the step was dropped.
// With want, each step first waits (bounded) for want's result: a switch
// may apply the database some time after ovs-vsctl returns.
func datapathIDSteps(t *testing.T, ofctl, dpType string, sw *netns.NS, vsctl func(...string) (string, error), target string, want []string) []string {
	t.Helper()
	vs := func(args ...string) string {
		t.Helper()
		out, err := vsctl(append([]string{"--timeout=60"}, args...)...)
		if err != nil {
			t.Fatalf("%s: %v", dpType, err)
		}
		return strings.Trim(strings.TrimSpace(out), `"`)
	}
	peer := netns.New(t, "dp")
	netns.AddVeth(t, sw, "h-m", peer, "p-m", 1)
	netns.AddVeth(t, sw, "h-n", peer, "p-n", 1)
	const mMAC, nMAC, hwaddr = "00:00:5e:00:53:21", "00:00:5e:00:53:12", "00:00:5e:00:53:aa"
	sw.IP(t, "link", "set", "h-m", "address", mMAC)
	sw.IP(t, "link", "set", "h-n", "address", nMAC)

	vs("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type="+dpType)
	names := map[string]string{
		macDPID(uuidMAC(vs("get", "bridge", "br0", "_uuid"))): "uuid",
		macDPID(mMAC): "h-m", macDPID(nMAC): "h-n", macDPID(hwaddr): "hwaddr",
		"0000000000000abc": "set", "0000000000000def": "set-0x",
	}
	name := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return "other(" + id + ")"
	}

	// The monitor is restarted after each step; a barrier answered tells
	// that it is connected.
	ctl := filepath.Join(t.TempDir(), "mon.ctl")
	barrier := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return exec.CommandContext(ctx, "ovs-appctl", "--timeout=30", "-t", ctl, "ofctl/barrier").Run() == nil
	}
	var mon *netns.Process
	connect := func() {
		t.Helper()
		if mon != nil && !mon.Exited() {
			mon.Kill()
		}
		mon = nil
		if !netns.Eventually(60*time.Second, func() bool {
			if mon == nil || mon.Exited() {
				mon = sw.Start(t, ofctl, "--unixctl="+ctl, "-O", "OpenFlow13", "monitor", target)
			}
			return barrier()
		}) {
			t.Fatalf("%s: the monitor does not answer: %s", dpType, mon.Output())
		}
	}
	dpidRE := regexp.MustCompile(`dpid:([0-9a-f]{16})`)
	record := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, ofctl, "--timeout=30", "show", target).CombinedOutput()
		show := "none"
		if m := dpidRE.FindStringSubmatch(string(out)); m != nil {
			show = name(m[1])
		}
		col, err := vsctl("--timeout=60", "get", "bridge", "br0", "datapath_id")
		col = strings.Trim(strings.TrimSpace(col), `"`)
		if err != nil {
			col = "error"
		} else if col != "[]" {
			col = name(col)
		}
		conn := "kept"
		if mon.Exited() || !barrier() {
			conn = "dropped"
		}
		return "ovs-ofctl show " + show + ", datapath_id " + col + ", connection " + conn
	}
	rec := &stepRecords{want: want, record: record}
	step := func(what string, change func()) {
		t.Helper()
		connect()
		change()
		rec.add(what)
	}
	set := func(kv string) func() { return func() { vs("set", "bridge", "br0", "other_config:"+kv) } }
	unset := func(k string) func() { return func() { vs("remove", "bridge", "br0", "other_config", k) } }

	step("bridge alone", func() {})
	step("an internal port", func() { vs("add-port", "br0", "i-m", "--", "set", "interface", "i-m", "type=internal") })
	step("h-m added", func() {
		vs("add-port", "br0", "h-m", "--", "set", "interface", "h-m", "type=afxdp", "options:n_rxq=1")
	})
	step("h-n added, lower", func() {
		vs("add-port", "br0", "h-n", "--", "set", "interface", "h-n", "type=afxdp", "options:n_rxq=1")
	})
	step("hwaddr set", set("hwaddr="+hwaddr))
	step("datapath-id set", set("datapath-id=0000000000000abc"))
	step("datapath-id set again", set("datapath-id=0000000000000ABC"))
	step("datapath-id with 0x", set("datapath-id=0x0000000000000def"))
	step("datapath-id too short", set("datapath-id=abc"))
	step("datapath-id not hex", set("datapath-id=000000000000zabc"))
	step("datapath-id zero", set("datapath-id=0000000000000000"))
	step("datapath-id valid again", set("datapath-id=0000000000000abc"))
	step("datapath-id removed", unset("datapath-id"))
	step("hwaddr removed", unset("hwaddr"))
	step("h-n deleted", func() { vs("del-port", "br0", "h-n") })
	step("h-m deleted", func() { vs("del-port", "br0", "h-m") })
	mon.Kill()
	return rec.steps
}

// macDPID is the datapath ID Open vSwitch derives from address mac: its
// 48 bits, as 16 hex digits.
func macDPID(mac string) string {
	return "0000" + strings.ReplaceAll(mac, ":", "")
}
