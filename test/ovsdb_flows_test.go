package test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestOVSDBFlowsOutliveRestart: the daemon configured from a real
// ovsdb-server keeps the flows and groups that the real ovs-ofctl added
// across its restarts (SIGTERM, and SIGKILL once they are saved), as Open
// vSwitch's restart does with ovs-save: dump-flows and dump-groups show
// the same after the restart, and traffic passes without adding them
// again. A bridge deleted from the database and added again has only
// the normal flow a new bridge gets.
func TestOVSDBFlowsOutliveRestart(t *testing.T) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw, a, _ := switchedHosts(t, "10.82.0", 2)
	dir := t.TempDir()
	x := startOVSDBDaemon(t, bin, sw, dir, db.Remote())
	target := "unix:" + filepath.Join(x.runDir, "br0.mgmt")
	vsctl := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := db.Vsctl(append([]string{"--timeout=60"}, args...)...)
		if err != nil {
			t.Fatalf("%v\novsxdp output:\n%s", err, x.proc.Output())
		}
		return strings.Trim(strings.TrimSpace(out), `"`)
	}
	// ofctl runs ovs-ofctl on br0, retrying while the management socket
	// is not there yet.
	ofctl1 := func(t *testing.T, args ...string) string {
		t.Helper()
		args = append([]string{"--timeout=30", "-O", "OpenFlow13", args[0], target}, args[1:]...)
		var out string
		var err error
		if !netns.Eventually(30*time.Second, func() bool {
			out, err = sw.Run(append([]string{ofctl}, args...)...)
			return err == nil
		}) {
			t.Fatalf("ovs-ofctl %s: %v\n%s\novsxdp output:\n%s", strings.Join(args, " "), err, out, x.proc.Output())
		}
		return out
	}
	// dump is what dump-flows and dump-groups show, without the reply
	// headers and the statistics, sorted.
	dump := func(t *testing.T) string {
		t.Helper()
		var ls []string
		for _, l := range strings.Split(ofctl1(t, "dump-flows", "--no-stats")+ofctl1(t, "dump-groups"), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "reply") {
				ls = append(ls, l)
			}
		}
		slices.Sort(ls)
		return strings.Join(ls, "\n")
	}
	flowsFile := filepath.Join(x.runDir, "flows.json")

	vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp")
	vsctl(t, "add-port", "br0", "h-a", "--", "set", "interface", "h-a", "type=afxdp", "ofport_request=7")
	vsctl(t, "add-port", "br0", "h-b", "--", "set", "interface", "h-b", "type=afxdp", "ofport_request=9")
	// As Open vSwitch's, a bridge made in standalone mode without a
	// controller has the normal flow; without it, and without the flows
	// below, nothing passes.
	if got := dump(t); got != "priority=0 actions=NORMAL" {
		t.Fatalf("br0 made by add-br has\n%s\nwant the normal flow alone", got)
	}
	ofctl1(t, "del-flows")
	if pings(a, "10.82.0.2", 3*time.Second) {
		t.Fatalf("p-a reaches p-b through br0 before any flow is added")
	}
	ofctl1(t, "add-group", "group_id=3,type=all,bucket=output:9")
	ofctl1(t, "add-flow", "priority=100,in_port=7,actions=group:3")
	ofctl1(t, "add-flow", "cookie=0x5a,priority=100,in_port=9,actions=output:7")
	ofctl1(t, "add-flow", "priority=0,actions=drop")
	want := dump(t)
	for _, s := range []string{"group_id=3", "in_port=7", "cookie=0x5a", "priority=0"} {
		if !strings.Contains(want, s) {
			t.Fatalf("dump-flows and dump-groups do not show %s:\n%s", s, want)
		}
	}
	if !pings(a, "10.82.0.2", 30*time.Second) {
		t.Fatalf("p-a does not reach p-b through br0\n%s\n%s", want, x.cli.run(t, "dump-ports", "br0"))
	}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if sig == syscall.SIGKILL {
			// A crash loses only the changes of the last save interval:
			// wait until the flows file has the flow added last.
			ofctl1(t, "add-flow", "cookie=0x77,priority=50,ip,actions=drop")
			if !netns.Eventually(30*time.Second, func() bool {
				b, _ := os.ReadFile(flowsFile)
				return strings.Contains(string(b), "priority=50,ip")
			}) {
				b, _ := os.ReadFile(flowsFile)
				t.Fatalf("the flows file %s does not have the flow added last in 30s:\n%s", flowsFile, b)
			}
			want = dump(t)
		}
		stopDaemon(t, x.proc, sig)
		x = startOVSDBDaemon(t, bin, sw, dir, db.Remote())
		if !netns.Eventually(30*time.Second, func() bool {
			return vsctl(t, "get", "interface", "h-a", "link_state") == "up" && vsctl(t, "get", "interface", "h-b", "link_state") == "up"
		}) {
			t.Fatalf("after %v the ports do not come up\n%s", sig, x.proc.Output())
		}
		if got := dump(t); got != want {
			t.Fatalf("after %v dump-flows and dump-groups show\n%s\nwant\n%s\novsxdp output:\n%s", sig, got, want, x.proc.Output())
		}
		if !pings(a, "10.82.0.2", 30*time.Second) {
			t.Fatalf("after %v p-a does not reach p-b without adding the flows again\n%s\n%s", sig, x.cli.run(t, "dump-ports", "br0"), x.proc.Output())
		}
	}

	// A bridge deleted from the database drops its flows: added again,
	// it has only the normal flow of a new bridge, also after another
	// restart.
	vsctl(t, "del-br", "br0")
	vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp")
	if got := dump(t); got != "priority=0 actions=NORMAL" {
		t.Fatalf("br0 deleted and added again has\n%s\nwant the normal flow alone", got)
	}
	stopDaemon(t, x.proc, syscall.SIGTERM)
	x = startOVSDBDaemon(t, bin, sw, dir, db.Remote())
	if got := dump(t); got != "priority=0 actions=NORMAL" {
		t.Fatalf("after del-br, add-br and a restart br0 has\n%s\nwant the normal flow alone", got)
	}
}
