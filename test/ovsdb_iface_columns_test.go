package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// TestOVSDBInterfaceColumnsMatchOVS drives a sandboxed Open vSwitch 3.1
// (netdev datapath) and ovsxdp configured from its own ovsdb-server through
// the same ovs-vsctl commands and device changes: an afxdp port added,
// moved to another bridge in one transaction, its device renamed away and
// back, an internal port moved into another namespace, a VXLAN port. After
// each step the Interface columns that ovs-vswitchd fills from the device
// (ofport, mtu, mac_in_use, ifindex, admin_state, link_state, error) must
// read the same in both databases.
func TestOVSDBInterfaceColumnsMatchOVS(t *testing.T) {
	ovs := ovsref.Start(t, "brx", nil)
	want := ifaceColumnSteps(t, "netdev", ovs.NS(), ovs.Vsctl)

	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	x := startOVSDBDaemon(t, bin, sw, t.TempDir(), db.Remote())
	got := ifaceColumnSteps(t, "ovsxdp", sw, db.Vsctl)

	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("Open vSwitch: %s\n               ovsxdp: %s", want[i], ifaceStepAt(got, i))
		}
	}
	if t.Failed() {
		t.Logf("ovsxdp output:\n%s", x.proc.Output())
	}
}

func ifaceStepAt(steps []string, i int) string {
	if i < len(steps) {
		return steps[i]
	}
	return "(not reached)"
}

// ifaceColumnSteps runs the steps against one switch, whose ovs-vswitchd
// (or ovsxdp) runs in sw, and returns one line per step. Values that
// differ between two runs by nature are normalised: a MAC or an ifindex is
// "dev" when it is the device's own, "set" for another value; an empty
// column is "[]". Port numbers are compared as they are: both switches
// pass over a number for an hour after its port went, so a port moved
// away and back gets a new one.
func ifaceColumnSteps(t *testing.T, dpType string, sw *netns.NS, vsctl func(...string) (string, error)) []string {
	t.Helper()
	run := func(args ...string) string {
		t.Helper()
		out, err := vsctl(append([]string{"--timeout=60"}, args...)...)
		if err != nil {
			t.Fatalf("%s: %v", dpType, err)
		}
		return strings.TrimSpace(out)
	}
	peer := netns.New(t, "pm")
	other := netns.New(t, "om")
	netns.AddVeth(t, sw, "h-m", peer, "p-m", 1)
	devMAC := sw.MAC(t, "h-m").String()
	devIndex, err := sw.Ifindex("h-m")
	if err != nil {
		t.Fatal(err)
	}
	cols := []string{"ofport", "mtu", "mac_in_use", "ifindex", "admin_state", "link_state", "error"}
	read := func(iface string) map[string]string {
		t.Helper()
		out := run("--columns="+strings.Join(cols, ","), "list", "interface", iface)
		m := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			k, v, ok := strings.Cut(l, ":")
			if ok {
				m[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
		return m
	}
	norm := func(m map[string]string) string {
		var parts []string
		for _, c := range cols {
			v := m[c]
			switch {
			case c == "mac_in_use" && v == devMAC, c == "ifindex" && v == fmt.Sprint(devIndex):
				v = "dev"
			case c == "mac_in_use" && v != "[]", c == "ifindex" && v != "[]" && v != "0":
				v = "set"
			case c == "error" && v != "[]":
				v = "set"
			}
			parts = append(parts, c+"="+v)
		}
		return strings.Join(parts, " ")
	}
	var steps []string
	// step records iface once settled holds (bounded: a switch that never
	// gets there is recorded as it is then).
	step := func(what, iface string, settled func(map[string]string) bool) {
		t.Helper()
		var m map[string]string
		netns.Eventually(30*time.Second, func() bool {
			m = read(iface)
			return settled(m)
		})
		steps = append(steps, fmt.Sprintf("%-34s %s", what+":", norm(m)))
	}
	attached := func(m map[string]string) bool { return m["ofport"] != "[]" && m["ofport"] != "-1" }

	run("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type="+dpType)
	run("add-br", "br1", "--", "set", "bridge", "br1", "datapath_type="+dpType)
	afxdp := []string{"--", "set", "interface", "h-m", "type=afxdp", "options:n_rxq=1"}
	run(append([]string{"add-port", "br0", "h-m"}, afxdp...)...)
	step("afxdp added to br0", "h-m", attached)
	run(append([]string{"del-port", "br0", "h-m", "--", "add-port", "br1", "h-m"}, afxdp...)...)
	step("moved to br1", "h-m", attached)
	sw.IP(t, "link", "set", "h-m", "down")
	sw.IP(t, "link", "set", "h-m", "name", "h-m2")
	step("its device renamed away", "h-m", func(m map[string]string) bool { return m["admin_state"] == "down" })
	sw.IP(t, "link", "set", "h-m2", "name", "h-m")
	sw.IP(t, "link", "set", "h-m", "up")
	step("its device renamed back", "h-m", func(m map[string]string) bool { return m["link_state"] == "up" })
	run(append([]string{"del-port", "br1", "h-m", "--", "add-port", "br0", "h-m"}, afxdp...)...)
	step("moved back to br0", "h-m", attached)

	run("add-port", "br1", "i-m", "--", "set", "interface", "i-m", "type=internal")
	step("internal added to br1", "i-m", attached)
	sw.IP(t, "link", "set", "i-m", "netns", other.Name)
	step("internal moved to another netns", "i-m", func(m map[string]string) bool { return m["mtu"] == "[]" })

	run("add-port", "br0", "vx", "--", "set", "interface", "vx", "type=vxlan", "options:remote_ip=192.0.2.2")
	step("vxlan added to br0", "vx", attached)
	return steps
}
