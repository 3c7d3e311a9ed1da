package test

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestOVSDBLocalPort drives a bridge's own LOCAL port through the real
// ovsdb-server, ovs-vsctl and ovs-ofctl: the internal Interface that
// ovs-vsctl add-br creates, named as the bridge, becomes a TAP device with
// OpenFlow port 65534 (written back, no error), ovs-ofctl lists it as
// LOCAL, and an address on it reaches an internal port moved into another
// namespace through the normal action. The ports go away cleanly.
func TestOVSDBLocalPort(t *testing.T) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	a := netns.New(t, "a")
	x := startOVSDBDaemon(t, bin, sw, t.TempDir(), db.Remote())
	vsctl := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := db.Vsctl(append([]string{"--timeout=60"}, args...)...)
		if err != nil {
			t.Fatalf("%v\novsxdp output:\n%s", err, x.proc.Output())
		}
		return strings.Trim(strings.TrimSpace(out), `"`)
	}

	vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp")
	if !netns.Eventually(30*time.Second, func() bool { return vsctl(t, "get", "interface", "br0", "ofport") == "65534" }) {
		t.Fatalf("br0 ofport %s, want 65534 (error %s)", vsctl(t, "get", "interface", "br0", "ofport"), vsctl(t, "get", "interface", "br0", "error"))
	}
	if e := vsctl(t, "get", "interface", "br0", "error"); e != "[]" {
		t.Fatalf("br0 error %s, want none", e)
	}
	if out, err := sw.Run("ip", "-d", "link", "show", "br0"); err != nil || !strings.Contains(out, "tun type tap") {
		t.Fatalf("br0 is not a tap device in the switch namespace: %v\n%s", err, out)
	}
	vsctl(t, "add-port", "br0", "int-a", "--", "set", "interface", "int-a", "type=internal")
	if got := vsctl(t, "get", "interface", "int-a", "ofport"); got != "1" {
		t.Fatalf("int-a ofport %s, want 1", got)
	}

	target := "unix:" + filepath.Join(x.runDir, "br0.mgmt")
	ofc := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := sw.Run(append([]string{ofctl, "--timeout=30"}, args...)...)
		if err != nil {
			t.Fatalf("ovs-ofctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	for _, v := range []string{"OpenFlow10", "OpenFlow13", "OpenFlow15"} {
		show := ofc(t, "-O", v, "show", target)
		if !strings.Contains(show, " LOCAL(br0): addr:") || !strings.Contains(show, " 1(int-a): addr:") {
			t.Fatalf("ovs-ofctl -O %s show lacks LOCAL(br0) or 1(int-a):\n%s", v, show)
		}
	}
	ofc(t, "add-flow", target, "actions=normal")

	sw.AddAddr(t, "br0", "10.79.0.254/24")
	if err := sw.SetLinkUp("br0"); err != nil {
		t.Fatal(err)
	}
	sw.IP(t, "link", "set", "int-a", "netns", a.Name)
	a.AddAddr(t, "int-a", "10.79.0.1/24")
	if err := a.SetLinkUp("int-a"); err != nil {
		t.Fatal(err)
	}
	if !netns.Eventually(30*time.Second, func() bool {
		_, err := a.Run("ping", "-n", "-c", "1", "-W", "1", "10.79.0.254")
		return err == nil
	}) {
		t.Fatalf("int-a does not reach br0 (LOCAL)\n%s\n%s", vsctl(t, "show"), x.cli.run(t, "dump-ports", "br0"))
	}
	if out, err := sw.Run("ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "10.79.0.1"); err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping br0 -> int-a: %v\n%s", err, out)
	}
	for _, v := range []string{"OpenFlow10", "OpenFlow13"} {
		ports := ofc(t, "-O", v, "dump-ports", target)
		if !strings.Contains(ports, "port LOCAL:") {
			t.Fatalf("ovs-ofctl -O %s dump-ports lacks port LOCAL:\n%s", v, ports)
		}
		if one := ofc(t, "-O", v, "dump-ports", target, "LOCAL"); !strings.Contains(one, "port LOCAL:") || strings.Contains(one, "port  1:") {
			t.Fatalf("ovs-ofctl -O %s dump-ports LOCAL:\n%s", v, one)
		}
	}
	// An OpenFlow rule on in_port=LOCAL and output:LOCAL take it too.
	ofc(t, "del-flows", target)
	ofc(t, "add-flow", target, "in_port=LOCAL,actions=output:1")
	ofc(t, "add-flow", target, "in_port=1,actions=LOCAL")
	if out, err := sw.Run("ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "10.79.0.1"); err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping br0 -> int-a through in_port=LOCAL and output:LOCAL rules: %v\n%s\n%s", err, out, ofc(t, "dump-flows", target))
	}
	flows := ofc(t, "dump-flows", target)
	if !strings.Contains(flows, "in_port=LOCAL actions=output:1") || !strings.Contains(flows, "in_port=1 actions=LOCAL") {
		t.Errorf("dump-flows:\n%s", flows)
	}
	checkCLIBalanced(t, x.cli.run(t, "dump-ports", "br0"))

	vsctl(t, "del-port", "br0", "int-a")
	if !linkGone(a, "int-a", 20*time.Second) {
		t.Errorf("int-a is still in namespace a after del-port")
	}
	vsctl(t, "del-br", "br0")
	if !linkGone(sw, "br0", 20*time.Second) {
		t.Errorf("br0's device is still in the switch namespace after del-br")
	}
}

// TestCLILocalPort checks that the daemon's own add-br gives the bridge
// its LOCAL port, as ovs-vsctl add-br does: an internal port named as the
// bridge, OpenFlow port 65534, a TAP device in the daemon's namespace,
// which cannot be added twice or deleted on its own and whose name no
// other bridge may take. An address on it reaches an internal port in
// another namespace. The state
// file keeps it: a restart takes its device up again, address and all,
// and the ping goes on working. del-br deletes it.
func TestCLILocalPort(t *testing.T) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	a := netns.New(t, "a")
	dir := t.TempDir()
	sock, statePath := filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json")
	d, proc := startCLIDaemonIn(t, sw, bin, sock, statePath)

	d.run(t, "add-br", "br0")
	if show := d.run(t, "show"); !strings.Contains(show, "Port br0\n") || !strings.Contains(show, "ofport: 65534") || strings.Contains(show, "error:") {
		t.Fatalf("show: want br0's LOCAL port on ofport 65534, without error:\n%s", show)
	}
	if out, err := sw.Run("ip", "-d", "link", "show", "br0"); err != nil || !strings.Contains(out, "tun type tap") {
		t.Fatalf("br0 is not a tap device in the switch namespace: %v\n%s", err, out)
	}
	if got := d.run(t, "list-ports", "br0"); got != "" {
		t.Errorf("list-ports br0 %q: want the LOCAL port left out", got)
	}
	if _, errOut, err := d.try("add-port", "br0", "br0", "type=internal"); err == nil || !strings.Contains(errOut, "already on bridge br0") {
		t.Errorf("add-port br0 br0 again: %v %q, want it refused", err, errOut)
	}
	if _, errOut, err := d.try("del-port", "br0", "br0"); err == nil || !strings.Contains(errOut, "cannot delete port br0 because it is the local port for bridge br0 (deleting this port requires deleting the entire bridge)") {
		t.Errorf("del-port br0 br0: %v %q, want it refused as ovs-vsctl does", err, errOut)
	}
	d.run(t, "add-port", "br0", "m1", "type=mem")
	if _, errOut, err := d.try("add-br", "m1"); err == nil || !strings.Contains(errOut, "a port named m1 already exists on bridge br0") {
		t.Errorf("add-br named as a port: %v %q, want it refused", err, errOut)
	}
	d.run(t, "del-port", "br0", "m1")
	d.run(t, "add-port", "br0", "i-a", "type=internal")
	d.run(t, "add-flow", "br0", "actions=normal")
	checkStatePorts(t, statePath, "i-a", "br0")
	sw.AddAddr(t, "br0", "10.79.1.254/24")
	if err := sw.SetLinkUp("br0"); err != nil {
		t.Fatal(err)
	}
	moveInternal(t, sw, a, "i-a", "10.79.1.1/24")
	if !pings(sw, "10.79.1.1", 30*time.Second) {
		t.Fatalf("br0 (LOCAL) does not reach i-a\n%s\n%s", d.run(t, "show"), d.run(t, "dump-ports", "br0"))
	}
	if one := d.run(t, "dump-ports", "br0", "LOCAL"); !strings.HasPrefix(one, "  port LOCAL: rx pkts=") || strings.Contains(one, "port  1:") {
		t.Errorf("dump-ports br0 LOCAL:\n%s", one)
	}
	checkCLIBalanced(t, d.run(t, "dump-ports", "br0"))

	stopDaemon(t, proc, syscall.SIGTERM)
	checkAddr(t, sw, "br0", "10.79.1.254/24")
	d, _ = startCLIDaemonIn(t, sw, bin, sock, statePath)
	if show := d.run(t, "show"); !strings.Contains(show, "ofport: 65534") || strings.Contains(show, "error:") {
		t.Fatalf("show after the restart: want br0's LOCAL port on ofport 65534, without error:\n%s", show)
	}
	if !pings(sw, "10.79.1.1", 30*time.Second) {
		t.Fatalf("after the restart br0 (LOCAL) does not reach i-a\n%s\n%s", d.run(t, "show"), d.run(t, "dump-ports", "br0"))
	}
	checkAddr(t, sw, "br0", "10.79.1.254/24")

	d.run(t, "del-br", "br0")
	if out, err := sw.Run("ip", "-o", "link", "show"); err != nil || strings.Contains(out, "br0") {
		t.Errorf("devices left in the switch namespace after del-br: %v\n%s", err, out)
	}
	if n := len(tunDevices(t, sw)) + len(tunDevices(t, a)); n > 0 {
		t.Errorf("TUN/TAP devices left after del-br: switch %v, a %v", tunDevices(t, sw), tunDevices(t, a))
	}
}

// TestCLILocalPortDeviceError checks that add-br makes the bridge even
// when its LOCAL port's device cannot be made (a device of the bridge's
// name that is not the daemon's exists): the port is configured with its
// error, as Open vSwitch sets an Interface's error, the bridge works, and
// the state file keeps the port; once the name is free, a restart makes
// the device.
func TestCLILocalPortDeviceError(t *testing.T) {
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	dir := t.TempDir()
	sock, statePath := filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json")
	d, proc := startCLIDaemonIn(t, sw, bin, sock, statePath)
	sw.IP(t, "link", "add", "brx", "type", "veth", "peer", "name", "brx-p")

	d.run(t, "add-br", "brx")
	wantErr := func(t *testing.T, d *cliDaemon) {
		t.Helper()
		show := d.run(t, "show")
		if !strings.Contains(show, "Port brx\n") || !strings.Contains(show, "ofport: 65534") || !strings.Contains(show, "error: ") || !strings.Contains(show, "exists") {
			t.Fatalf("show: want brx's LOCAL port configured with an error saying the device exists:\n%s", show)
		}
	}
	wantErr(t, d)
	if got := d.run(t, "list-br"); got != "brx\n" {
		t.Fatalf("list-br %q, want brx", got)
	}
	d.run(t, "add-port", "brx", "m1", "type=mem")
	checkStatePortsOf(t, statePath, "brx", "m1", "brx")

	stopDaemon(t, proc, syscall.SIGKILL)
	d, proc = startCLIDaemonIn(t, sw, bin, sock, statePath)
	wantErr(t, d)
	if out, err := sw.Run("ip", "-d", "link", "show", "brx"); err != nil || !strings.Contains(out, "veth") {
		t.Fatalf("the veth brx was touched: %v\n%s", err, out)
	}

	sw.IP(t, "link", "del", "brx")
	stopDaemon(t, proc, syscall.SIGTERM)
	d, _ = startCLIDaemonIn(t, sw, bin, sock, statePath)
	if show := d.run(t, "show"); strings.Contains(show, "error:") || !strings.Contains(show, "ofport: 65534") {
		t.Fatalf("show once the name is free: want brx's LOCAL port without error:\n%s", show)
	}
	if out, err := sw.Run("ip", "-d", "link", "show", "brx"); err != nil || !strings.Contains(out, "tun type tap") {
		t.Fatalf("brx is not a tap device once the name is free: %v\n%s", err, out)
	}
	d.run(t, "del-br", "brx")
	if devs := tunDevices(t, sw); len(devs) > 0 {
		t.Errorf("TUN/TAP devices left after del-br: %v", devs)
	}
}
