package test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// ovsAppctl runs the real ovs-appctl -t target with OVS_RUNDIR set to
// runDir (-t ovs-vswitchd: as an operator reaches the daemon of that run
// directory, through its pidfile), and returns its output, its standard
// error and its exit code.
func ovsAppctl(t *testing.T, runDir, target string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ovs-appctl", append([]string{"--timeout=30", "-t", target}, args...)...)
	cmd.Env = append(os.Environ(), "OVS_RUNDIR="+runDir)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("ovs-appctl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// pmdPacketsReceived adds up pmd-stats-show's "packets received" lines.
func pmdPacketsReceived(t *testing.T, out string) int {
	t.Helper()
	n := 0
	ms := regexp.MustCompile(`(?m)^  packets received: (\d+)$`).FindAllStringSubmatch(out, -1)
	if len(ms) == 0 {
		t.Fatalf("no packets received line in\n%s", out)
	}
	for _, m := range ms {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

// TestAppctlDropIn: the real ovs-appctl reaches the daemon, configured by
// the real ovsdb-server, as it reaches ovs-vswitchd: -t ovs-vswitchd with
// OVS_RUNDIR set to the daemon's --rundir. Its statistics count the pings
// through the bridge and clear; ofproto/trace traces; a command it does
// not know or with the wrong number of arguments is refused in the words
// of Open vSwitch's own daemon (compared with a sandboxed ovs-vswitchd)
// and ovs-appctl's exit code 2; garbage on the socket leaves the daemon
// answering; a second daemon on the run directory is refused with the
// first's pid; and exit stops the daemon, which removes its socket and
// pidfile.
func TestAppctlDropIn(t *testing.T) {
	testenv.RequireTool(t, "ovs-appctl", "openvswitch-common")
	testenv.RequireTool(t, "ping", "iputils-ping")
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw, a, _ := switchedHosts(t, "10.8.3", 1)
	x := startOVSDBDaemon(t, bin, sw, t.TempDir(), db.Remote())
	pid := x.proc.Cmd.Process.Pid
	x.vsctl(t, db,
		[]string{"add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp"},
		[]string{"add-port", "br0", "h-a", "--", "set", "interface", "h-a", "type=afxdp", "ofport_request=1"},
		[]string{"add-port", "br0", "h-b", "--", "set", "interface", "h-b", "type=afxdp", "ofport_request=2"},
	)
	x.addNormalFlow(t, ofctl)
	appctl := func(args ...string) string {
		t.Helper()
		out, errOut, code := ovsAppctl(t, x.runDir, "ovs-vswitchd", args...)
		if code != 0 {
			t.Fatalf("ovs-appctl %s: exit code %d: %s\novsxdp output:\n%s", strings.Join(args, " "), code, errOut, x.proc.Output())
		}
		return out
	}

	if got := appctl("version"); !strings.HasPrefix(got, "ovsxdp ") {
		t.Errorf("version: %q", got)
	}
	if b, err := os.ReadFile(filepath.Join(x.runDir, "ovs-vswitchd.pid")); err != nil || string(b) != strconv.Itoa(pid)+"\n" {
		t.Errorf("pidfile: %q, %v; want %d", b, err, pid)
	}
	if _, err := a.Run("ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", "10.8.3.2"); err != nil {
		t.Fatalf("p-a does not reach p-b through br0: %v", err)
	}
	stats := appctl("dpif-netdev/pmd-stats-show", "br0")
	if n := pmdPacketsReceived(t, stats); n < 10 {
		t.Errorf("after 5 pings, dpif-netdev/pmd-stats-show counts %d packets received; want at least 10\n%s", n, stats)
	}
	appctl("dpif-netdev/pmd-stats-clear")
	if n := pmdPacketsReceived(t, appctl("dpif-netdev/pmd-stats-show", "-pmd", "0")); n >= 10 {
		t.Errorf("after dpif-netdev/pmd-stats-clear: %d packets received", n)
	}
	if got := appctl("ofproto/trace", "br0", "in_port=1,icmp,nw_src=10.8.3.1,nw_dst=10.8.3.2"); !strings.Contains(got, `bridge("br0")`) || !strings.Contains(got, "Datapath actions:") {
		t.Errorf("ofproto/trace:\n%s", got)
	}

	// Refusals, against Open vSwitch's daemon (reached by its socket's
	// path: ovs-appctl's own line after the server's names the target).
	ref := ovsref.Start(t, "br0", nil)
	for _, bad := range [][]string{
		{"no-such-command"}, {"version", "extra"}, {"ofproto/trace"}, {"exit", "--cleanup", "extra"},
		{"dpif-netdev/pmd-stats-show", "-pmd", "0", "br0", "extra"}, {"dpif-netdev/pmd-stats-clear", "-pmd", "0", "br0", "extra"},
		{"vlog/set", "nosuch:dbg"}, {"vlog/set", "console:dbg:info"},
	} {
		_, ours, code := ovsAppctl(t, x.runDir, "ovs-vswitchd", bad...)
		_, theirs, theirCode := ovsAppctl(t, ref.Dir, filepath.Join(ref.Dir, "ovs-vswitchd.ctl"), bad...)
		ours, _, _ = strings.Cut(ours, "\n")
		theirs, _, _ = strings.Cut(theirs, "\n")
		if code != 2 || theirCode != 2 || ours != theirs {
			t.Errorf("ovs-appctl %s: ovsxdp's exit code %d, standard error\n%s\nOpen vSwitch's %d,\n%s", strings.Join(bad, " "), code, ours, theirCode, theirs)
		}
	}

	// vlog/set changes the level of what the daemon logs.
	appctl("vlog/set", "ANY:console:dbg")
	appctl("version")
	// The line was written before the answer, but reaches the test's
	// copy of the daemon's output through a pipe, a little later.
	if !netns.Eventually(10*time.Second, func() bool {
		return strings.Contains(x.proc.Output(), `level=DEBUG msg="control: request" server=ovs-appctl verb=version`)
	}) {
		t.Errorf("no debug line for a request after vlog/set ANY:console:dbg:\n%s", x.proc.Output())
	}
	if got := appctl("vlog/list"); !regexp.MustCompile(`\novsxdp +DBG +OFF +OFF\n`).MatchString(got) {
		t.Errorf("vlog/list after vlog/set ANY:console:dbg:\n%s", got)
	}
	appctl("vlog/set", "info")

	// Garbage on the socket closes that connection only.
	sockets, _ := filepath.Glob(filepath.Join(x.runDir, "ovs-vswitchd.*.ctl"))
	if len(sockets) != 1 || sockets[0] != filepath.Join(x.runDir, "ovs-vswitchd."+strconv.Itoa(pid)+".ctl") {
		t.Fatalf("appctl sockets in the run directory: %v; want the one of pid %d", sockets, pid)
	}
	for _, garbage := range []string{"garbage", `{"id":1,"method":"version"}`, `{"id":1,"method":"version","params":["` + strings.Repeat("x", 2<<20)} {
		c, err := net.Dial("unix", sockets[0])
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		c.Write([]byte(garbage)) // may fail once the daemon has closed the connection
		b := make([]byte, 100)
		if n, err := c.Read(b); err == nil {
			t.Errorf("%.30q...: answered %q", garbage, b[:n])
		}
		c.Close()
	}
	appctl("version")

	// A second daemon on the same run directory.
	dir := t.TempDir()
	out, err := exec.Command(bin, "daemon", "--socket", filepath.Join(dir, "ctl.sock"), "--state", filepath.Join(dir, "state.json"), "--rundir", x.runDir, "--local-port=false").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "locked by pid "+strconv.Itoa(pid)) {
		t.Errorf("a second daemon on the run directory: %v\n%s", err, out)
	}

	appctl("exit")
	if err := x.proc.Wait(context.Background()); err != nil || x.proc.Cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("the daemon after exit: %v, exit code %d", err, x.proc.Cmd.ProcessState.ExitCode())
	}
	if left, _ := filepath.Glob(filepath.Join(x.runDir, "ovs-vswitchd.*")); len(left) != 0 {
		t.Errorf("left after exit: %v", left)
	}
	if !strings.Contains(x.proc.Output(), "exit requested") {
		t.Errorf("no exit in the log:\n%s", x.proc.Output())
	}
}

// TestOVSCtlStop: Open vSwitch's own ovs-ctl, pointed at the daemon's run
// directory, stops the daemon as it stops ovs-vswitchd: it finds it by the
// pidfile, asks its socket for its version, and sends SIGTERM (it sends
// exit only to versions it knows, from 2.5.90 on). The daemon stops
// cleanly, and its pidfile and socket are gone.
func TestOVSCtlStop(t *testing.T) {
	testenv.RequireTool(t, "ovs-appctl", "openvswitch-common")
	const ovsCtl = "/usr/share/openvswitch/scripts/ovs-ctl"
	if _, err := os.Stat(ovsCtl); err != nil {
		testenv.Missing(t, "%s (install openvswitch-switch, or run `make deps`): %v", ovsCtl, err)
	}
	bin := buildCLI(t)
	dir := t.TempDir()
	d := startCLIDaemon(t, bin, filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "state.json"))
	cmd := exec.Command(ovsCtl, "--no-ovsdb-server", "stop")
	cmd.Env = append(os.Environ(), "OVS_RUNDIR="+d.runDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ovs-ctl --no-ovsdb-server stop: %v\n%s", err, out)
	}
	if !waitExit(d, 30*time.Second) {
		t.Fatalf("the daemon (pid %d) is still running after ovs-ctl stop said\n%s", d.cmd.Process.Pid, out)
	}
	if !strings.Contains(d.log.String(), "ovsxdp daemon stopping") {
		t.Errorf("the daemon did not stop cleanly:\n%s", d.log)
	}
	if left, _ := filepath.Glob(filepath.Join(d.runDir, "ovs-vswitchd.*")); len(left) != 0 {
		t.Errorf("left after ovs-ctl stop: %v", left)
	}
}
