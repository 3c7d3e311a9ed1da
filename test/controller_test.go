package test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestControllerL2Learning drives an ovsxdp bridge with Debian's
// ovs-testcontroller, a real OpenFlow controller: three namespaces hang on
// AF_XDP ports of the bridge, whose flow table starts empty, and the
// controller, connected through `ovsxdp set-controller`, makes it an L2
// learning switch (packet in → flow mod and packet out). Ping and TCP work
// between the namespaces; deleting a client's namespace tears its veth
// down, which reaches the controllers as a port status delete (watched
// with the real `ovs-ofctl monitor`), and the others keep forwarding.
//
// It runs with the controller speaking OpenFlow 1.0, where table misses
// reach it without any flow (as Open vSwitch sends them to OpenFlow 1.0
// controllers), and 1.3, where it installs a table-miss flow. (Its
// OpenFlow 1.5 packet outs carry uninitialised match fields, which no
// switch can take.)
func TestControllerL2Learning(t *testing.T) {
	for _, v := range []string{"OpenFlow10", "OpenFlow13"} {
		t.Run(v, func(t *testing.T) { testControllerL2Learning(t, v) })
	}
}

func testControllerL2Learning(t *testing.T, version string) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	ctlBin := testenv.RequireTool(t, "ovs-testcontroller", "openvswitch-testcontroller")
	bin := buildCLI(t)

	sw := netns.New(t, "sw")
	ns := map[string]*netns.NS{}
	for i, name := range []string{"a", "b", "c"} {
		n := netns.New(t, name)
		ns[name] = n
		v := netns.AddVeth(t, sw, "h-"+name, n, "p-"+name, 1)
		n.AddAddr(t, v.Peer, fmt.Sprintf("10.77.0.%d/24", i+1))
	}
	dir := t.TempDir()
	sock, statePath, runDir := filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json"), filepath.Join(dir, "run")
	st := map[string]any{"version": 1, "bridges": []any{map[string]any{
		"name": "br0", "policy": "guarded", "pmds": 1, "flows": []string{},
		"ports": []any{
			map[string]any{"name": "h-a", "type": "afxdp", "ofport": 1},
			map[string]any{"name": "h-b", "type": "afxdp", "ofport": 2},
			map[string]any{"name": "h-c", "type": "afxdp", "ofport": 3},
		},
	}}}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(statePath, data, 0o600); err != nil {
		t.Fatal(err)
	}

	// The controller listens on the switch namespace's loopback.
	port := freePort(t)
	ctl := sw.Start(t, ctlBin, "-O", version, "--unixctl="+filepath.Join(dir, "testcontroller.ctl"), fmt.Sprintf("ptcp:%d:127.0.0.1", port))
	d, _ := startCLIDaemonIn(t, sw, bin, sock, statePath, "--rundir", runDir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller output:\n%s", ctl.Output())
		}
	})
	if got := d.run(t, "dump-flows", "br0"); strings.Contains(got, "actions=") {
		t.Fatalf("the bridge starts with flows:\n%s", got)
	}
	d.run(t, "set-fail-mode", "br0", "secure")
	d.run(t, "set-controller", "br0", fmt.Sprintf("tcp:127.0.0.1:%d", port))
	if got := d.run(t, "get-controller", "br0"); got != fmt.Sprintf("tcp:127.0.0.1:%d\n", port) {
		t.Errorf("get-controller: %q", got)
	}
	if !netns.Eventually(30*time.Second, func() bool {
		out, _, err := d.try("controller-status", "br0")
		return err == nil && strings.Contains(out, "is_connected=true") || ctl.Exited()
	}) || ctl.Exited() {
		t.Fatalf("the controller is not connected after 30s:\n%s", d.run(t, "controller-status", "br0"))
	}

	// A monitor on the management socket, as an operator would watch.
	mon := sw.Start(t, ofctl, "--unixctl="+filepath.Join(dir, "monitor.ctl"), "monitor", "unix:"+filepath.Join(runDir, "br0.mgmt"), "65534")

	ping := func(from, to string) func() bool {
		return func() bool {
			_, err := ns[from].Run("ping", "-n", "-c", "1", "-W", "1", to)
			return err == nil
		}
	}
	for _, p := range []struct{ from, to string }{{"a", "10.77.0.2"}, {"a", "10.77.0.3"}, {"b", "10.77.0.3"}} {
		if !netns.Eventually(30*time.Second, ping(p.from, p.to)) {
			t.Fatalf("%s cannot ping %s through the controller in 30s\nflows:\n%s\nports:\n%s", p.from, p.to,
				d.run(t, "dump-flows", "br0"), d.run(t, "dump-ports", "br0"))
		}
	}
	// The packets reached the controller as packet ins.
	if st := d.run(t, "controller-status", "br0"); !regexp.MustCompile(`packet ins: queued=[1-9]`).MatchString(st) {
		t.Errorf("no packet in counted:\n%s", st)
	}
	// The controller learnt: it installed flows.
	if flows := d.run(t, "dump-flows", "br0"); !strings.Contains(flows, "dl_dst=") {
		t.Errorf("no learnt flows after the pings:\n%s", flows)
	}

	// TCP through the learnt flows.
	echo := ns["b"].Start(t, helperArgs(t, "tcp-echo", "10.77.0.2:7000")...)
	if err := echo.WaitOutput("listening", 20*time.Second); err != nil {
		t.Fatalf("tcp echo server: %v\n%s", err, echo.Output())
	}
	if out, err := ns["a"].Run(helperArgs(t, "tcp-client", "10.77.0.2:7000", "300000")...); err != nil || !strings.Contains(out, "ok 300000") {
		t.Fatalf("TCP a → b through the controller's flows: %v\n%s", err, out)
	}

	// Deleting c's namespace tears its veth down: the controllers are
	// told the port is deleted.
	if err := ns["c"].Delete(); err != nil {
		t.Fatal(err)
	}
	// (A modify, for the carrier lost, may come first.)
	if !netns.Eventually(30*time.Second, func() bool { return portDeleted(mon.Output(), "h-c") || mon.Exited() }) || mon.Exited() {
		t.Fatalf("ovs-ofctl monitor saw no port status delete of h-c in 30s (exited: %v):\n%s", mon.Exited(), mon.Output())
	}
	// The rest keeps forwarding.
	if !netns.Eventually(30*time.Second, ping("a", "10.77.0.2")) || !netns.Eventually(30*time.Second, ping("b", "10.77.0.1")) {
		t.Fatalf("a and b stop reaching each other after c went away\nflows:\n%s", d.run(t, "dump-flows", "br0"))
	}
	if out, err := ns["a"].Run(helperArgs(t, "tcp-client", "10.77.0.2:7000", "100000")...); err != nil || !strings.Contains(out, "ok 100000") {
		t.Fatalf("TCP a → b after c went away: %v\n%s", err, out)
	}
	if ctl.Exited() {
		t.Errorf("ovs-testcontroller exited:\n%s", ctl.Output())
	}
}

// portDeleted reports whether monitor output holds a port status
// deletion of the named port.
func portDeleted(out, port string) bool {
	for _, block := range strings.Split(out, "OFPT_PORT_STATUS") {
		if strings.Contains(block, "DEL") && strings.Contains(block, "("+port+")") {
			return true
		}
	}
	return false
}

// freePort returns a TCP port that was free on the loopback address.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
