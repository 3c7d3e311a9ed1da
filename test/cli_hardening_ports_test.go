package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// cliBound bounds every CLI call of these tests: a daemon that a port
// wedged would otherwise hang the test until go test's own timeout.
const cliBound = 30 * time.Second

// tryBounded runs the CLI against d like d.try, but fails the test if it
// has not answered within cliBound.
func tryBounded(t *testing.T, d *cliDaemon, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliBound)
	defer cancel()
	var stdout, stderr strings.Builder
	cmd := exec.CommandContext(ctx, d.bin, append([]string{"--socket", d.sock}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ovsxdp %s: no answer after %v: the daemon is wedged", strings.Join(args, " "), cliBound)
	}
	return stdout.String(), stderr.String(), err
}

// runBounded is tryBounded that fails the test unless the command
// succeeds silently on stderr.
func runBounded(t *testing.T, d *cliDaemon, args ...string) string {
	t.Helper()
	out, errOut, err := tryBounded(t, d, args...)
	if err != nil || errOut != "" {
		t.Fatalf("ovsxdp %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// waitExit waits up to bound for the daemon's process to be gone (the
// goroutine of startCLIDaemon reaps it).
func waitExit(d *cliDaemon, bound time.Duration) bool {
	return netns.Eventually(bound, func() bool {
		return errors.Is(syscall.Kill(d.cmd.Process.Pid, 0), syscall.ESRCH)
	})
}

// startNSDaemon starts `ovsxdp daemon` inside the namespace ns (through
// ip netns exec, which execs it: the PID is the daemon's) and waits until
// it answers. The test's cleanup kills it by PID. Its run directory is
// the test's own: a namespace shares the machine's /run, and a daemon
// killed there would leave its sockets in /run/ovsxdp.
func startNSDaemon(t *testing.T, bin string, ns *netns.NS, sock, state string) *cliDaemon {
	t.Helper()
	d := &cliDaemon{bin: bin, sock: sock, state: state, log: new(topo.SyncBuffer)}
	d.cmd = exec.Command("ip", "netns", "exec", ns.Name, bin, "daemon", "--socket", sock, "--state", state, "--rundir", filepath.Join(t.TempDir(), "run"))
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait() }()
	t.Cleanup(func() { d.kill(t, exited) })
	if !netns.Eventually(15*time.Second, func() bool {
		_, _, err := d.try("version")
		return err == nil
	}) {
		t.Fatalf("the daemon in %s does not answer after 15s\n%s", ns.Name, d.log)
	}
	return d
}

// TestCLIPcapFIFO adds a pcap port that reads a FIFO no one writes to:
// the daemon must go on answering, replay what a writer sends later, and
// stop on SIGTERM.
func TestCLIPcapFIFO(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	d := startCLIDaemon(t, bin, filepath.Join(dir, "s.sock"), filepath.Join(dir, "state.json"))
	idle := filepath.Join(dir, "idle.fifo")
	live := filepath.Join(dir, "live.fifo")
	for _, f := range []string{idle, live} {
		if err := syscall.Mkfifo(f, 0o600); err != nil {
			t.Fatalf("mkfifo %s: %v", f, err)
		}
	}
	runBounded(t, d, "add-br", "br0")
	runBounded(t, d, "add-port", "br0", "idle", "type=pcap", "read="+idle, "ofport=1")
	runBounded(t, d, "add-port", "br0", "live", "type=pcap", "read="+live, "ofport=2")
	runBounded(t, d, "add-port", "br0", "sink", "type=mem", "ofport=3")
	runBounded(t, d, "add-flow", "br0", "actions=output:3")
	if out := runBounded(t, d, "show"); !strings.Contains(out, "Port idle") || !strings.Contains(out, "Port live") {
		t.Errorf("show after adding the FIFO ports:\n%s", out)
	}

	// A writer comes to one FIFO, as tcpdump -w FIFO would.
	const n = 5
	capture := filepath.Join(dir, "in.pcap")
	writeCLIPcap(t, capture, cliFrames(t, n))
	data, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(live, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.Write(data)
			err = errors.Join(err, f.Close())
		}
		wrote <- err
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(cliBound):
		t.Fatal("the port never opened its FIFO's reading end")
	}
	var last string
	if !netns.Eventually(cliBound, func() bool {
		last = runBounded(t, d, "dump-ports", "br0", "2")
		return strings.Contains(last, fmt.Sprintf("rx pkts=%d,", n))
	}) {
		t.Errorf("the port reading the FIFO did not receive %d packets:\n%s", n, last)
	}

	runBounded(t, d, "del-port", "br0", "idle")
	runBounded(t, d, "add-port", "br0", "idle", "type=pcap", "read="+idle, "ofport=1")
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !waitExit(d, cliBound) {
		t.Fatalf("the daemon still runs %v after SIGTERM\n%s", cliBound, d.log)
	}
}

// cliFrames builds n distinct small Ethernet frames.
func cliFrames(t *testing.T, n int) [][]byte {
	t.Helper()
	frames := make([][]byte, n)
	for i := range frames {
		f := make([]byte, 60)
		copy(f, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5})
		f[14] = byte(i)
		frames[i] = f
	}
	return frames
}

// TestCLIPcapWriteExisting checks that a capture is created 0600 and that
// an existing file is refused unless overwrite=true is given.
func TestCLIPcapWriteExisting(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	d := startCLIDaemon(t, bin, filepath.Join(dir, "s.sock"), filepath.Join(dir, "state.json"))
	runBounded(t, d, "add-br", "br0")

	fresh := filepath.Join(dir, "fresh.pcap")
	runBounded(t, d, "add-port", "br0", "cap", "type=pcap", "write="+fresh)
	checkMode0600(t, fresh)

	existing := filepath.Join(dir, "existing.pcap")
	if err := os.WriteFile(existing, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := tryBounded(t, d, "add-port", "br0", "cap2", "type=pcap", "write="+existing)
	checkOneLineError(t, stdout, stderr, err, "add overwrite=true to replace it")
	if !strings.Contains(stderr, "write="+existing) {
		t.Errorf("the error %q does not name the option write=", stderr)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("the refused file now holds %q", b)
	}
	runBounded(t, d, "add-port", "br0", "cap2", "type=pcap", "write="+existing, "overwrite=true")
	checkMode0600(t, existing)
	if b, _ := os.ReadFile(existing); strings.Contains(string(b), "keep me") {
		t.Errorf("the overwritten file still holds %q", b)
	}

	// A restart restores both ports: their captures are their own.
	d.crash(t)
	d2 := startCLIDaemon(t, bin, d.sock, d.state)
	if out := runBounded(t, d2, "list-ports", "br0"); out != "cap\ncap2\n" {
		t.Errorf("ports after a restart: %q, want cap and cap2", out)
	}
}

func checkMode0600(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
}

// TestCLIAFXDPDefaultQueues adds an AF_XDP port on a veth created with the
// kernel's default queues: as many allocated as CPUs, one in use. With
// the default rxq=0 the port opens the queues in use.
func TestCLIAFXDPDefaultQueues(t *testing.T) {
	ns := netns.New(t, "dq")
	bin := buildCLI(t)
	ns.IP(t, "link", "add", "name", "dq0", "type", "veth", "peer", "name", "dq1")
	ns.IP(t, "link", "set", "dq0", "up")
	ns.IP(t, "link", "set", "dq1", "up")
	if out := ns.IP(t, "-d", "link", "show", "dq0"); !strings.Contains(out, "numrxqueues") {
		t.Logf("dq0:\n%s", out)
	}
	dir := t.TempDir()
	d := startNSDaemon(t, bin, ns, filepath.Join(dir, "s.sock"), filepath.Join(dir, "state.json"))
	runBounded(t, d, "add-br", "br0")
	runBounded(t, d, "add-port", "br0", "dq0", "type=afxdp")
	if out := runBounded(t, d, "show"); !strings.Contains(out, "Port dq0") {
		t.Errorf("show:\n%s", out)
	}
	// Asking for more queues than in use is an error naming the count.
	stdout, stderr, err := tryBounded(t, d, "add-port", "br0", "dq1", "type=afxdp", "rxq=2")
	checkOneLineError(t, stdout, stderr, err, "the device uses 1 rx queues")
}

// TestCLIAFXDPRefusesHostDevices checks that loopback is refused, and
// that a device carrying a default route (IPv4, IPv6, or a next hop of a
// multipath route) is refused unless force=true, which the state keeps.
// Everything happens in a namespace of the test, daemon included.
func TestCLIAFXDPRefusesHostDevices(t *testing.T) {
	ns := netns.New(t, "rt")
	bin := buildCLI(t)
	for _, v := range []string{"v4", "v6", "mp", "mq"} {
		ns.IP(t, "link", "add", "name", v+"a", "type", "veth", "peer", "name", v+"b")
		ns.IP(t, "link", "set", v+"a", "up")
		ns.IP(t, "link", "set", v+"b", "up")
	}
	ns.IP(t, "addr", "add", "10.91.0.1/24", "dev", "v4a")
	ns.IP(t, "route", "add", "default", "via", "10.91.0.2", "dev", "v4a")
	ns.IP(t, "addr", "add", "10.92.0.1/24", "dev", "mpa")
	ns.IP(t, "addr", "add", "10.93.0.1/24", "dev", "mqa")
	ns.IP(t, "route", "add", "default", "metric", "200", "nexthop", "via", "10.93.0.2", "dev", "mqa", "nexthop", "via", "10.92.0.2", "dev", "mpa")
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.v6a.disable_ipv6=0")
	ns.IP(t, "-6", "route", "add", "default", "dev", "v6a")

	dir := t.TempDir()
	d := startNSDaemon(t, bin, ns, filepath.Join(dir, "s.sock"), filepath.Join(dir, "state.json"))
	runBounded(t, d, "add-br", "br0")

	stdout, stderr, err := tryBounded(t, d, "add-port", "br0", "lo", "type=afxdp")
	checkOneLineError(t, stdout, stderr, err, "loopback")
	stdout, stderr, err = tryBounded(t, d, "add-port", "br0", "lo", "type=afxdp", "force=true")
	checkOneLineError(t, stdout, stderr, err, "loopback")

	for _, tt := range []struct{ dev, family string }{{"v4a", "IPv4"}, {"v6a", "IPv6"}, {"mpa", "IPv4"}, {"mqa", "IPv4"}} {
		stdout, stderr, err := tryBounded(t, d, "add-port", "br0", tt.dev, "type=afxdp")
		checkOneLineError(t, stdout, stderr, err, "carries a default route ("+tt.family+")")
		if !strings.Contains(stderr, "force=true") {
			t.Errorf("%s: the error %q does not say how to force it", tt.dev, stderr)
		}
	}
	if out := runBounded(t, d, "list-ports", "br0"); out != "" {
		t.Errorf("ports after the refusals: %q", out)
	}
	runBounded(t, d, "add-port", "br0", "v4a", "type=afxdp", "force=true")

	// The state keeps force=true: a restart restores the port.
	d.crash(t)
	d2 := startNSDaemon(t, bin, ns, d.sock, d.state)
	if out := runBounded(t, d2, "list-ports", "br0"); out != "v4a\n" {
		t.Errorf("ports after a restart: %q, want v4a\n%s", out, d2.log)
	}
}

// TestCLIAFXDPUMEMLimit checks the bound on frames per socket and the cap
// on the UMEM that all the daemon's sockets pin.
func TestCLIAFXDPUMEMLimit(t *testing.T) {
	testenv.RequireTool(t, "ethtool", "ethtool")
	host := netns.New(t, "um")
	peer := netns.New(t, "up")
	netns.AddVeth(t, host, "um0", peer, "up0", 5)
	bin := buildCLI(t)
	dir := t.TempDir()
	d := startNSDaemon(t, bin, host, filepath.Join(dir, "s.sock"), filepath.Join(dir, "state.json"))
	runBounded(t, d, "add-br", "br0")

	stdout, stderr, err := tryBounded(t, d, "add-port", "br0", "um0", "type=afxdp", "frames=1048576")
	checkOneLineError(t, stdout, stderr, err, "frames=1048576: want a whole number from 64 to 131072")
	// Five sockets of 256 MiB: 1280 MiB, over the 1 GiB cap.
	stdout, stderr, err = tryBounded(t, d, "add-port", "br0", "um0", "type=afxdp", "frames=131072")
	checkOneLineError(t, stdout, stderr, err, "1280 MiB of UMEM asked, 0 bytes pinned already by other AF_XDP sockets, over the limit of 1 GiB")
	// Four fit, and then the fifth queue alone does not.
	runBounded(t, d, "add-port", "br0", "um0", "type=afxdp", "frames=65536", "rxq=4")
	runBounded(t, d, "del-port", "br0", "um0")
	runBounded(t, d, "add-port", "br0", "um0", "type=afxdp", "frames=131072", "rxq=4")
	if out := runBounded(t, d, "list-ports", "br0"); out != "um0\n" {
		t.Errorf("ports: %q", out)
	}
}
