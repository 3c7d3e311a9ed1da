package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// buildCLI returns the path of cmd/ovsxdp, built once per package run
// (buildOnce).
func buildCLI(t *testing.T) string {
	t.Helper()
	return buildOnce(t, "./cmd/ovsxdp")
}

// cliDaemon is an ovsxdp daemon running as a subprocess.
type cliDaemon struct {
	bin, sock, state string
	runDir           string // where the bridges' OpenFlow sockets are (--rundir), "" if given in extra
	cmd              *exec.Cmd
	log              *topo.SyncBuffer
}

// runDirOf is the run directory the helpers give the daemon of control
// socket sock: beside it, named after it.
func runDirOf(sock string) string {
	return strings.TrimSuffix(sock, filepath.Ext(sock)) + "-run"
}

// startCLIDaemon starts `ovsxdp daemon` on the socket sock with the state
// file state and waits until it answers. The test's cleanup kills it by
// PID. It runs in the test's (the host's) network namespace, so its
// bridges get no LOCAL port (--local-port=false): it makes no device
// there.
func startCLIDaemon(t *testing.T, bin, sock, state string, extra ...string) *cliDaemon {
	t.Helper()
	d := &cliDaemon{bin: bin, sock: sock, state: state, log: new(topo.SyncBuffer)}
	args := append([]string{"daemon", "--socket", sock, "--state", state, "--local-port=false"}, extra...)
	if !slices.Contains(extra, "--rundir") {
		// The bridges' OpenFlow sockets, and ovs-appctl's pidfile and
		// socket, go beside the control socket, not into the host's
		// /run/ovsxdp; one run directory per daemon, as two daemons
		// cannot hold one pidfile.
		d.runDir = runDirOf(sock)
		args = append(args, "--rundir", d.runDir)
	}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stdout = d.log
	d.cmd.Stderr = d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait() }()
	t.Cleanup(func() { d.kill(t, exited) })
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, _, err := d.try("version"); err == nil {
			return d
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the daemon exited: %v\n%s", err, d.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon does not answer after 15s\n%s", d.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startCLIDaemonIn starts `ovsxdp daemon` inside namespace ns, as
// startCLIDaemon does in the test's own, and waits until it answers; the
// namespace's cleanup stops it by PID. A failed test logs its output.
func startCLIDaemonIn(t *testing.T, ns *netns.NS, bin, sock, state string, extra ...string) (*cliDaemon, *netns.Process) {
	t.Helper()
	d := &cliDaemon{bin: bin, sock: sock, state: state}
	args := append([]string{bin, "daemon", "--socket", sock, "--state", state}, extra...)
	if !slices.Contains(extra, "--rundir") {
		d.runDir = runDirOf(sock)
		args = append(args, "--rundir", d.runDir)
	}
	proc := ns.Start(t, args...)
	if !netns.Eventually(20*time.Second, func() bool {
		_, _, err := d.try("version")
		return err == nil || proc.Exited()
	}) || proc.Exited() {
		t.Fatalf("the daemon does not answer (exited: %v)\n%s", proc.Exited(), proc.Output())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon output:\n%s", proc.Output())
		}
	})
	return d, proc
}

// startHaHbBridge starts `ovsxdp daemon` in namespace sw with bridge br0
// on sw's devices ha and hb as AF_XDP ports 1 and 2, and returns it with
// its run directory (br0.mgmt for ovs-ofctl, ovs-appctl's socket).
func startHaHbBridge(t *testing.T, sw *netns.NS) (*cliDaemon, string) {
	t.Helper()
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	d, _ := startCLIDaemonIn(t, sw, buildCLI(t), filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "state.json"), "--rundir", runDir)
	d.run(t, "add-br", "br0")
	d.run(t, "add-port", "br0", "ha", "type=afxdp", "ofport=1")
	d.run(t, "add-port", "br0", "hb", "type=afxdp", "ofport=2")
	return d, runDir
}

// crash kills the daemon by PID (SIGKILL) and waits until its process is
// gone, so that a daemon started next on its socket does not find it
// still listening there.
func (d *cliDaemon) crash(t *testing.T) {
	t.Helper()
	d.cmd.Process.Kill()
	if !waitExit(d, cliBound) {
		t.Fatalf("daemon pid %d survived SIGKILL", d.cmd.Process.Pid)
	}
}

// kill kills the daemon by PID (SIGKILL, as a crash would) and waits for
// it.
func (d *cliDaemon) kill(t *testing.T, exited chan error) {
	d.cmd.Process.Kill() // an error only says it has exited already
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Errorf("daemon pid %d did not exit after SIGKILL", d.cmd.Process.Pid)
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", d.log)
	}
}

// try runs the CLI against the daemon and returns stdout, stderr and the
// error (an *exec.ExitError on a non-zero exit).
func (d *cliDaemon) try(args ...string) (string, string, error) {
	return runCLI(d.bin, append([]string{"--socket", d.sock}, args...)...)
}

func runCLI(bin string, args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// run runs the CLI and fails the test unless it succeeds silently on
// stderr.
func (d *cliDaemon) run(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := d.try(args...)
	if err != nil || errOut != "" {
		t.Fatalf("ovsxdp %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// call sends one request to the daemon's control socket as the CLI does
// (a JSON line: verb, positional arguments, flags; a JSON line back:
// output or error) without starting the CLI, and fails the test on an
// error. For the loops that run a command hundreds of times (the
// differential traces); the CLI itself is what d.run tests.
func (d *cliDaemon) call(t *testing.T, verb string, flags map[string]string, args ...string) string {
	t.Helper()
	fail := func(err error) string {
		t.Helper()
		t.Fatalf("ovsxdp %s %s (over the control socket): %v", verb, strings.Join(args, " "), err)
		return ""
	}
	req, err := json.Marshal(struct {
		Verb  string            `json:"verb"`
		Args  []string          `json:"args,omitempty"`
		Flags map[string]string `json:"flags,omitempty"`
	}{verb, args, flags})
	if err != nil {
		return fail(err)
	}
	c, err := net.DialTimeout("unix", d.sock, 30*time.Second)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write(append(req, '\n')); err != nil {
		return fail(err)
	}
	var resp struct {
		Output string `json:"output"`
		Error  string `json:"error"`
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return fail(err)
	}
	if resp.Error != "" {
		return fail(errors.New(resp.Error))
	}
	return resp.Output
}

// checkOneLineError checks that a failed command printed one line,
// "ovsxdp: <problem>" containing want, on stderr, nothing on stdout, and
// exited with a non-zero status.
func checkOneLineError(t *testing.T, stdout, stderr string, err error, want string) {
	t.Helper()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("exit: %v, want a non-zero status", err)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	if !strings.HasPrefix(stderr, "ovsxdp: ") || !strings.HasSuffix(stderr, "\n") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr %q is not one line \"ovsxdp: <problem>\"", stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr %q does not contain %q", stderr, want)
	}
}

// writeCLIPcap writes frames to a pcap file.
func writeCLIPcap(t *testing.T, path string, frames [][]byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, int64(i)), CaptureLength: len(fr), Length: len(fr)}
		if err := w.WritePacket(ci, fr); err != nil {
			t.Fatal(err)
		}
	}
}

// readCLIPcap returns the frames of a pcap file.
func readCLIPcap(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			return out
		}
		out = append(out, append([]byte(nil), data...))
	}
}

// freeLoopbackAddr returns a loopback TCP address that was free a moment
// ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr())
}
