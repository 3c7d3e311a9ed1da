package test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestLocalMACMatchesOVS checks that the bridge's LOCAL port takes the
// address Open vSwitch 3.1 chooses for it, on the device and in
// ovs-ofctl show: other_config:hwaddr when set; else the lowest
// universally administered address among the bridge's ports that are
// not internal; else one derived from the Bridge row's UUID. The same
// ovs-vsctl steps and device changes run against a sandboxed Open
// vSwitch (netdev datapath) and against ovsxdp configured from its own
// ovsdb-server, and each address is named after what it came from. The
// OFPT_PORT_STATUS messages that monitors connected since the bridge was
// created print must tell the same too: LOCAL's new address after the
// port's add or delete that changed it, and never an address the bridge
// had before it was configured.
func TestLocalMACMatchesOVS(t *testing.T) {
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	want, got := stepsOnBoth(t, func(s ovsdbSwitch, want []string) []string {
		steps := localMACSteps(t, ofctl, s.dpType, s.ns, s.vsctl, s.target, want)
		if want == nil {
			for i, w := range steps {
				t.Logf("Open vSwitch, step %d: %s", i, w)
			}
		}
		return steps
	})
	compareSteps(t, want, got)
}

// uuidMAC is the address Open vSwitch derives from a bridge's UUID: the
// first six bytes of the UUID as it holds it in memory (four 32-bit
// words, little-endian on this machine), made unicast and locally
// administered.
func uuidMAC(uuid string) string {
	h := strings.ReplaceAll(uuid, "-", "")
	if len(h) != 32 {
		return "bad uuid " + uuid
	}
	var b []byte
	for w := 0; w < 2; w++ {
		word := h[8*w : 8*w+8]
		for i := 3; i >= 0; i-- {
			var x byte
			fmt.Sscanf(word[2*i:2*i+2], "%02x", &x)
			b = append(b, x)
		}
	}
	b[0] = b[0]&^1 | 2
	return net.HardwareAddr(b[:6]).String()
}

// localMACSteps runs the steps against one switch and returns, per step,
// the names of the LOCAL device's address and of the one ovs-ofctl show
// gives LOCAL. With want, each step first waits (bounded) for the
// device to have want's address: a switch may apply the database some
// time after ovs-vsctl returns.
func localMACSteps(t *testing.T, ofctl, dpType string, sw *netns.NS, vsctl func(...string) (string, error), target string, want []string) []string {
	t.Helper()
	vs := func(args ...string) string {
		t.Helper()
		out, err := vsctl(append([]string{"--timeout=60"}, args...)...)
		if err != nil {
			t.Fatalf("%s: %v", dpType, err)
		}
		return strings.Trim(strings.TrimSpace(out), `"`)
	}
	showRE := regexp.MustCompile(`LOCAL\(br0\): addr:([0-9a-f:]{17})`)
	peer := netns.New(t, "lm")
	netns.AddVeth(t, sw, "h-m", peer, "p-m", 1)
	netns.AddVeth(t, sw, "h-n", peer, "p-n", 1)
	const mMAC, nMAC, hwaddr = "00:00:5e:00:53:21", "00:00:5e:00:53:12", "00:00:5e:00:53:aa"
	sw.IP(t, "link", "set", "h-m", "address", mMAC)
	sw.IP(t, "link", "set", "h-n", "address", nMAC)

	// The datapath id follows the bridge's address unless it is set, and
	// a datapath id that changes drops every connection (the datapath ID
	// test's); it is set here, so that the monitors stay.
	vs("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type="+dpType, "other_config:datapath-id=0000000000000abc")
	versions := []string{"OpenFlow10", "OpenFlow13"}
	var mons []*netns.Process
	monDir := t.TempDir()
	for _, v := range versions {
		ctl := filepath.Join(monDir, v+".ctl")
		var mon *netns.Process
		// A barrier answered: the monitor is connected and listening.
		if !netns.Eventually(60*time.Second, func() bool {
			if mon == nil || mon.Exited() {
				mon = sw.Start(t, ofctl, "--unixctl="+ctl, "-O", v, "monitor", target, "65535")
			}
			return exec.Command("ovs-appctl", "-t", ctl, "ofctl/barrier").Run() == nil
		}) {
			t.Fatalf("%s: the %s monitor does not answer: %s", dpType, v, mon.Output())
		}
		mons = append(mons, mon)
	}
	names := map[string]string{
		uuidMAC(vs("get", "bridge", "br0", "_uuid")): "uuid",
		mMAC: "h-m", nMAC: "h-n", hwaddr: "hwaddr",
	}
	name := func(mac string) string {
		if n, ok := names[mac]; ok {
			return n
		}
		return "other(" + mac + ")"
	}
	record := func() string {
		dev := "none"
		if mac, err := sw.Namespace.MAC("br0"); err == nil {
			dev = name(mac.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, ofctl, "--timeout=30", "show", target).CombinedOutput()
		show := "none"
		if m := showRE.FindStringSubmatch(string(out)); m != nil {
			show = name(m[1])
		}
		return "device " + dev + ", ovs-ofctl show " + show
	}
	rec := &stepRecords{want: want, record: record}
	step := rec.add

	step("bridge alone")
	vs("add-port", "br0", "i-m", "--", "set", "interface", "i-m", "type=internal")
	step("an internal port")
	vs("add-port", "br0", "h-m", "--", "set", "interface", "h-m", "type=afxdp", "options:n_rxq=1")
	step("h-m added")
	vs("add-port", "br0", "h-n", "--", "set", "interface", "h-n", "type=afxdp", "options:n_rxq=1")
	step("h-n added, lower")
	vs("set", "bridge", "br0", "other_config:hwaddr="+hwaddr)
	step("hwaddr set")
	vs("remove", "bridge", "br0", "other_config", "hwaddr")
	step("hwaddr removed")
	vs("del-port", "br0", "h-n")
	step("h-n deleted")
	vs("del-port", "br0", "h-m")
	step("h-m deleted")

	// A last change every monitor must see: all that came before it is in
	// their output by then, since a connection's messages keep their order.
	vs("add-port", "br0", "i-z", "--", "set", "interface", "i-z", "type=internal")
	portRE := regexp.MustCompile(` \d+\(`)
	addrRE := regexp.MustCompile(`addr:([0-9a-f]{2}(:[0-9a-f]{2}){5})`)
	for i, mon := range mons {
		if err := mon.WaitOutput("(i-z)", 60*time.Second); err != nil {
			t.Errorf("%s: the %s monitor: %v", dpType, versions[i], err)
		}
		rec.steps = append(rec.steps, localPortStatus(versions[i], mon.Output(), func(l string) string {
			l = portRE.ReplaceAllString(l, " (")
			return addrRE.ReplaceAllStringFunc(l, func(m string) string { return "addr:" + name(m[len("addr:"):]) })
		}))
	}
	return rec.steps
}

// localPortStatus is what a monitor printed of the port status messages:
// LOCAL's in full, and for the other ports only the adds and deletes,
// which tell where LOCAL's changes fall; their own changes are the port
// description test's. A message that repeats the one before it word for
// word tells nothing new. norm normalises a line.
func localPortStatus(version, out string, norm func(string) string) string {
	xidRE := regexp.MustCompile(` ?\(xid=0x[0-9a-f]+\)`)
	var b strings.Builder
	fmt.Fprintf(&b, "port status, %s\n", version)
	var last string
	for _, msg := range strings.Split(out, "\nOFPT_") {
		msg = strings.TrimPrefix(msg, "OFPT_")
		if !strings.HasPrefix(msg, "PORT_STATUS") {
			continue
		}
		lines := strings.Split(strings.TrimRight(msg, "\n"), "\n")
		first := xidRE.ReplaceAllString(lines[0], "")
		var m string
		switch {
		case strings.Contains(first, "LOCAL(br0)"):
			for _, l := range lines {
				m += norm(xidRE.ReplaceAllString(l, "")) + "\n"
			}
		case strings.Contains(first, ": ADD: "), strings.Contains(first, ": DEL: "):
			if i := strings.Index(first, "): addr:"); i >= 0 {
				first = first[:i+1] // the address of an internal port is random
			}
			m = norm(first) + "\n"
		default:
			continue
		}
		if m != last {
			b.WriteString(m)
		}
		last = m
	}
	return b.String()
}
