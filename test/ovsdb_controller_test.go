package test

import (
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestOVSDBController configures a bridge's controller and fail mode with
// the real ovs-vsctl through ovsdb-server: the daemon connects to the
// controller and writes back is_connected and status as ovs-vswitchd
// does, and follows the controller going away and being deleted.
func TestOVSDBController(t *testing.T) {
	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	x := startOVSDBDaemon(t, bin, sw, t.TempDir(), db.Remote())
	vsctl := func(args ...string) string {
		t.Helper()
		out, err := db.Vsctl(append([]string{"--timeout=60"}, args...)...)
		if err != nil {
			t.Fatalf("%v\novsxdp output:\n%s", err, x.proc.Output())
		}
		return strings.TrimSpace(out)
	}
	vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp")

	// A controller: accepts, says hello in OpenFlow 1.3 and answers echo
	// requests, until the test closes it.
	path := filepath.Join(t.TempDir(), "controller.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
			go func() {
				h, _ := openflow.NewHello(openflow.Version13)
				b, _ := openflow.Encode(openflow.Version13, 1, h)
				c.Write(b)
				r := openflow.NewReader(c, 0)
				for {
					b, err := r.ReadMessage()
					if err != nil {
						return
					}
					if hd, m, err := openflow.Decode(b); err == nil {
						if e, ok := m.(*openflow.EchoRequest); ok {
							rb, _ := openflow.Encode(hd.Version, hd.Xid, &openflow.EchoReply{Data: e.Data})
							c.Write(rb)
						}
					}
				}
			}()
		}
	}()

	vsctl("set-fail-mode", "br0", "secure")
	vsctl("set-controller", "br0", "unix:"+path)
	if got := vsctl("get-fail-mode", "br0"); got != "secure" {
		t.Errorf("get-fail-mode: %q", got)
	}
	connected := func(want string) func() bool {
		return func() bool {
			out, err := db.Vsctl("get", "controller", "br0", "is_connected")
			return err == nil && strings.TrimSpace(out) == want
		}
	}
	if !netns.Eventually(30*time.Second, connected("true")) {
		t.Fatalf("is_connected is not true after 30s:\n%s\n%s", vsctl("list", "controller"), x.proc.Output())
	}
	if st := vsctl("get", "controller", "br0", "status"); !strings.Contains(st, "state=ACTIVE") {
		t.Errorf("status %s, want state=ACTIVE", st)
	}
	if role := vsctl("get", "controller", "br0", "role"); role != "other" {
		t.Errorf("role %q, want other", role)
	}
	if got := strings.TrimSpace(x.cli.run(t, "controller-status", "br0")); !strings.Contains(got, "is_connected=true") {
		t.Errorf("controller-status: %s", got)
	}
	// The CLI does not change what the database configures.
	if _, _, err := x.cli.try("set-controller", "br0", "tcp:127.0.0.1"); err == nil {
		t.Error("set-controller through the CLI was accepted under --ovsdb")
	}

	// The controller goes away.
	ln.Close()
	(<-accepted).Close()
	if !netns.Eventually(30*time.Second, connected("false")) {
		t.Fatalf("is_connected is not false 30s after the controller went away:\n%s", vsctl("list", "controller"))
	}
	if st := vsctl("get", "controller", "br0", "status"); !strings.Contains(st, "last_error=") {
		t.Errorf("status %s has no last_error", st)
	}
	vsctl("del-controller", "br0")
	if !netns.Eventually(30*time.Second, func() bool {
		return strings.TrimSpace(x.cli.run(t, "controller-status", "br0")) == ""
	}) {
		t.Errorf("the daemon keeps the deleted controller: %s", x.cli.run(t, "controller-status", "br0"))
	}
}

// TestOVSDBFlushMatchesOVS runs one sequence of ovs-vsctl and ovs-ofctl
// commands against Open vSwitch 3.1 and against the daemon under --ovsdb
// and compares the flows and groups after each: a bridge made in
// standalone mode without a controller has priority=0,actions=NORMAL;
// getting its first controller, losing its last, or a change of fail mode
// without one deletes every flow and group (and adds that flow again in
// standalone mode without a controller); another controller for one that
// has one changes nothing; a bridge made in secure mode, or with a
// controller, has no flow.
func TestOVSDBFlushMatchesOVS(t *testing.T) {
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	ovs := ovsref.Start(t, "br0", nil)
	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	x := startOVSDBDaemon(t, bin, sw, t.TempDir(), db.Remote())

	type side struct {
		name, dbSock, runDir, dpType string
	}
	sides := []side{
		{"Open vSwitch", filepath.Join(ovs.Dir, "db.sock"), ovs.Dir, "netdev"},
		{"ovsxdp", strings.TrimPrefix(db.Remote(), "unix:"), x.runDir, "ovsxdp"},
	}
	run := func(t *testing.T, s side, name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %s %s: %v\n%s\novsxdp output:\n%s", s.name, name, strings.Join(args, " "), err, out, x.proc.Output())
		}
		return string(out)
	}
	vsctl := func(t *testing.T, s side, args ...string) {
		t.Helper()
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, "DPTYPE", s.dpType)
		}
		run(t, s, "ovs-vsctl", append([]string{"--db=unix:" + s.dbSock, "--timeout=60"}, args...)...)
	}
	of := func(t *testing.T, s side, cmd, br string, args ...string) string {
		t.Helper()
		return run(t, s, ofctl, append([]string{"--timeout=30", "-O", "OpenFlow13", cmd, "unix:" + filepath.Join(s.runDir, br+".mgmt")}, args...)...)
	}
	state := func(t *testing.T, s side, br string) string {
		t.Helper()
		return ovsref.NormaliseDump(of(t, s, "dump-flows", br, "--no-stats") + of(t, s, "dump-groups", br))
	}
	addSome := func(t *testing.T, s side, br string) {
		t.Helper()
		of(t, s, "del-groups", br, "group_id=1") // kept when nothing flushed it
		of(t, s, "add-group", br, "group_id=1,type=all,bucket=output:LOCAL")
		of(t, s, "add-flow", br, "priority=5,ip,actions=group:1")
	}

	for _, step := range []struct {
		name   string
		br     string
		before bool // add a group and a flow first
		vsctl  []string
	}{
		{"add-br standalone", "brf", false, []string{"add-br", "brf", "--", "set", "bridge", "brf", "datapath_type=DPTYPE"}},
		{"set-fail-mode secure", "brf", true, []string{"set-fail-mode", "brf", "secure"}},
		{"set-fail-mode standalone", "brf", true, []string{"set-fail-mode", "brf", "standalone"}},
		{"del-fail-mode", "brf", true, []string{"del-fail-mode", "brf"}},
		{"set-controller", "brf", true, []string{"set-controller", "brf", "tcp:127.0.0.1:1"}},
		{"another controller", "brf", true, []string{"set-controller", "brf", "tcp:127.0.0.1:2"}},
		{"fail mode with a controller", "brf", true, []string{"set-fail-mode", "brf", "secure"}},
		{"del-controller in secure mode", "brf", true, []string{"del-controller", "brf"}},
		{"del-fail-mode again", "brf", true, []string{"del-fail-mode", "brf"}},
		{"add-br secure", "bry", false, []string{"add-br", "bry", "--", "set", "bridge", "bry", "datapath_type=DPTYPE", "fail_mode=secure"}},
		{"add-br with a controller", "brz", false, []string{"add-br", "brz", "--", "set", "bridge", "brz", "datapath_type=DPTYPE",
			"--", "set-controller", "brz", "tcp:127.0.0.1:3"}},
	} {
		var got [2]string
		for i, s := range sides {
			if step.before {
				addSome(t, s, step.br)
			}
			vsctl(t, s, slices.Clone(step.vsctl)...)
			got[i] = state(t, s, step.br)
		}
		if got[0] != got[1] {
			t.Errorf("%s: Open vSwitch has\n%s\novsxdp has\n%s", step.name, got[0], got[1])
		}
		t.Logf("%s: %q", step.name, got[1])
	}
}
