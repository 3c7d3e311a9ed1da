package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/test/testenv"
	"github.com/ovsxdp/ovsxdp/vport/nldump"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// smallAFXDPDemo is a short configuration of the real demo.
func smallAFXDPDemo() demoOptions {
	return demoOptions{
		rate: 20000, threshold: 100 * time.Millisecond, traffic: 300 * time.Millisecond,
		mode: demoAFXDP, cycles: 2, queues: 2, load: 200 * time.Millisecond,
		prefix: "ovsxdp-demotest-" + topo.Suffix(),
	}
}

func requireAFXDPDemo(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipped in -short mode: the AF_XDP demo runs for several seconds")
	}
	testenv.RequireRoot(t)
}

// emptyPath sets PATH, for the rest of the test, to an empty directory:
// the demo needs neither ip, ethtool nor ping.
func emptyPath(t *testing.T) {
	t.Helper()
	t.Setenv("PATH", t.TempDir())
	for _, tool := range []string{"ip", "ethtool", "ping"} {
		if _, err := exec.LookPath(tool); err == nil {
			t.Fatalf("%s still found in PATH", tool)
		}
	}
}

// TestDemoAFXDP runs the demo on real AF_XDP ports with few teardowns and
// checks its results: every policy measured traffic and tore down every
// client under load, guarded had no lockup, the datapath stayed up (each
// new client reached the server), no XDP program stayed on the server's
// device, and no namespace of the demo is left. PATH is empty: neither ip,
// ethtool nor ping is needed, as on a fresh machine.
func TestDemoAFXDP(t *testing.T) {
	requireAFXDPDemo(t)
	emptyPath(t)
	o := smallAFXDPDemo()
	start := time.Now()
	results, err := afxdpResults(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d policies in %v", len(results), time.Since(start).Round(time.Millisecond))
	if len(results) != 4 {
		t.Fatalf("%d rows, want 4", len(results))
	}
	for _, r := range results {
		t.Run(r.policy.String(), func(t *testing.T) {
			if r.teardowns != o.cycles || r.reachAfter != o.cycles || !r.up {
				t.Errorf("%d teardowns, %d new clients reached the server, up %v; want %d, %d, true", r.teardowns, r.reachAfter, r.up, o.cycles, o.cycles)
			}
			if r.rtt <= 0 || r.mbps <= 0 || r.underLoad == 0 || r.streamed == 0 {
				t.Errorf("no traffic measured: rtt %v, %.0f Mbit/s, %d requests under load, %d datagrams", r.rtt, r.mbps, r.underLoad, r.streamed)
			}
			if r.policy == datapath.Guarded && r.lockups.spinning != 0 {
				t.Errorf("%d spinning lockups: %s", r.lockups.spinning, r.lockups.example)
			}
			if r.xdpLeft {
				t.Error("an XDP program stayed on the server's device after the bridge closed")
			}
			if r.drops[datapath.DropPortGone] == 0 {
				t.Errorf("no port-gone drops, so the stream never met the removed port: %s", dropSummary(r.drops))
			}
			t.Logf("rtt %v, %.0f Mbit/s, lockups %s, removal %v, drops %s", r.rtt, r.mbps, r.lockups, r.removeMax, dropSummary(r.drops))
		})
	}
	checkNoDemoLeftovers(t, o.prefix)
}

// checkNoDemoLeftovers fails the test if a namespace named prefix-* or a
// device of the demo exists.
func checkNoDemoLeftovers(t *testing.T, prefix string) {
	t.Helper()
	left, err := afxdpLeftovers(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
	links, err := nldump.Retry(netlink.LinkList)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		for _, dev := range []string{"h-srv", "p-srv", "h-cli", "p-cli"} {
			if strings.HasPrefix(l.Attrs().Name, dev) {
				t.Errorf("device %s in the caller's namespace", l.Attrs().Name)
			}
		}
	}
}

// TestDemoAFXDPCancel cancels the real demo while it runs, as a signal
// does, and checks that it stops and removes everything it created.
func TestDemoAFXDPCancel(t *testing.T) {
	requireAFXDPDemo(t)
	o := smallAFXDPDemo()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	start := time.Now()
	_, err := afxdpResults(ctx, o)
	if err == nil {
		t.Fatal("the demo finished despite the cancellation; make it longer")
	}
	if ctx.Err() == nil {
		t.Fatalf("the demo failed before the cancellation: %v", err)
	}
	t.Logf("stopped after %v: %v", time.Since(start).Round(time.Millisecond), err)
	checkNoDemoLeftovers(t, o.prefix)
}

// TestDemoCommand runs the demo command: --mem and --afxdp exclude each
// other, and --afxdp writes the real report, which ends with the cleanup
// line.
func TestDemoCommand(t *testing.T) {
	tests := []struct {
		name     string
		inArgs   []string
		realPath bool
		wantErr  string
		wantOut  []string
	}{
		{name: "both-flags", inArgs: []string{"demo", "--mem", "--afxdp"}, wantErr: "exclude each other"},
		{name: "zero-cycles", inArgs: []string{"demo", "--afxdp", "--cycles", "0"}, realPath: true, wantErr: "--cycles 0: want at least 1"},
		{name: "zero-queues", inArgs: []string{"demo", "--queues", "0"}, realPath: true, wantErr: "--queues 0: want at least 1"},
		{name: "afxdp", inArgs: []string{"demo", "--afxdp", "--cycles", "1", "--queues", "2", "--traffic", "200ms", "--load", "150ms", "--rate", "10000"},
			realPath: true, wantOut: []string{"AF_XDP ports", "legacy", "carrier", "upstream", "guarded", "removed: every namespace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.realPath {
				requireAFXDPDemo(t)
			}
			root := newRootCmd()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(tt.inArgs)
			err := root.Execute()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			t.Logf("\n%s", out.String())
		})
	}
}

// envDemoChild makes the test binary run the real demo (TestDemoAFXDPChild)
// with the namespace prefix it holds.
const envDemoChild = "OVSXDP_DEMO_CHILD_PREFIX"

// TestDemoAFXDPChild is not a test: started by TestDemoAFXDPSignal with
// envDemoChild set, it runs the real demo and exits.
func TestDemoAFXDPChild(t *testing.T) {
	prefix := os.Getenv(envDemoChild)
	if prefix == "" {
		return
	}
	o := smallAFXDPDemo()
	o.prefix, o.cycles = prefix, 20
	if err := runAFXDPDemo(context.Background(), os.Stdout, o); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// TestDemoAFXDPSignal interrupts the demo, run as a separate process, with
// SIGINT while it tears ports down, and checks that it exits saying so and
// leaves no namespace behind.
func TestDemoAFXDPSignal(t *testing.T) {
	requireAFXDPDemo(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prefix := "ovsxdp-demosig-" + topo.Suffix()
	cmd := exec.Command(exe, "-test.run=^TestDemoAFXDPChild$")
	cmd.Env = append(os.Environ(), envDemoChild+"="+prefix)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Wait for the first namespace, then for the teardowns to begin.
	deadline := time.Now().Add(30 * time.Second)
	for {
		left, err := afxdpLeftovers(prefix)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no namespaces of the demo after 30s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the demo runs on 20s after SIGINT:\n%s", out.String())
	}
	if err == nil || !strings.Contains(out.String(), "demo interrupted, everything it created was removed") {
		t.Errorf("exit %v after SIGINT, want a failure that says so:\n%s", err, out.String())
	}
	checkNoDemoLeftovers(t, prefix)
}

// envDemoFallbackChild makes the test binary run the demo in its automatic
// mode (TestDemoFallbackChild).
const envDemoFallbackChild = "OVSXDP_DEMO_FALLBACK_CHILD"

// smallMemDemo is a short configuration of the in-memory demo.
func smallMemDemo() demoOptions {
	return demoOptions{teardowns: 2, rate: 20000, window: 2 * time.Millisecond, threshold: 50 * time.Millisecond, traffic: 50 * time.Millisecond}
}

// TestDemoFallbackChild is not a test: started by TestDemoFallback with
// envDemoFallbackChild set, it runs the demo in its automatic mode.
func TestDemoFallbackChild(t *testing.T) {
	if os.Getenv(envDemoFallbackChild) == "" {
		return
	}
	if err := runDemo(context.Background(), os.Stdout, smallMemDemo()); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// TestDemoFallback runs the demo in its automatic mode without root (as
// the user nobody when the test runs as root): it says in one line why it
// falls back and runs on in-memory ports.
func TestDemoFallback(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: the in-memory demo runs for a few seconds")
	}
	var out string
	if os.Geteuid() != 0 {
		var b bytes.Buffer
		if err := runDemo(context.Background(), &b, smallMemDemo()); err != nil {
			t.Fatal(err)
		}
		out = b.String()
	} else {
		out = runAsNobody(t, envDemoFallbackChild+"=1", "-test.run=^TestDemoFallbackChild$")
	}
	first, _, _ := strings.Cut(out, "\n")
	if !strings.Contains(first, "needs root") || !strings.HasSuffix(first, "running on in-memory ports instead.") {
		t.Errorf("first line %q, want the reason for the fallback", first)
	}
	if !strings.Contains(out, "ovsxdp demo: in-memory ports") || !strings.Contains(out, "guarded") {
		t.Errorf("no in-memory report:\n%s", out)
	}
}

// runAsNobody runs a copy of the test binary with args and the environment
// variable env as the user nobody, and returns its output.
func runAsNobody(t *testing.T, env string, args ...string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "demo.test")
	if err := os.WriteFile(copyPath, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, copyPath, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env)
	const nobody = 65534
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s as nobody: %v\n%s", copyPath, err, out)
	}
	return string(out)
}
