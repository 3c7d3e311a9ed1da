package ovsdb

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

const vswitchSchema = "/usr/share/openvswitch/vswitch.ovsschema"

// ovsdbServer is a real ovsdb-server with the Open_vSwitch schema, run as a
// child process of the test (no --detach, so the test kills it by PID).
type ovsdbServer struct {
	t      testing.TB
	dir    string
	env    []string
	cmd    *exec.Cmd
	exited chan error
	remote string // the remote it listens on now
}

// startOvsdbServer creates a database and starts ovsdb-server on
// punix:DIR/db.sock, then runs `ovs-vsctl init`.
func startOvsdbServer(t testing.TB) *ovsdbServer {
	t.Helper()
	testenv.RequireTool(t, "ovsdb-server", "openvswitch-switch")
	testenv.RequireTool(t, "ovsdb-tool", "openvswitch-common")
	testenv.RequireTool(t, "ovs-vsctl", "openvswitch-switch")
	if _, err := os.Stat(vswitchSchema); err != nil {
		testenv.Missing(t, "Open vSwitch's schema: %v (install openvswitch-common, or run `make deps`)", err)
	}
	// A short directory: unix socket paths are at most 108 bytes.
	dir, err := os.MkdirTemp("", "ovsdb-")
	if err != nil {
		t.Fatal(err)
	}
	s := &ovsdbServer{t: t, dir: dir}
	s.env = append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_DBDIR="+dir, "OVS_LOGDIR="+dir, "OVS_SYSCONFDIR="+dir)
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "ovsdb-server.log")); err == nil {
				t.Logf("ovsdb-server.log:\n%s", b)
			}
		}
		os.RemoveAll(dir)
	})
	if out, err := exec.Command("ovsdb-tool", "create", s.db(), vswitchSchema).CombinedOutput(); err != nil {
		t.Fatalf("ovsdb-tool create: %v: %s", err, out)
	}
	s.start(s.sock())
	s.vsctl("init")
	return s
}

func (s *ovsdbServer) db() string   { return filepath.Join(s.dir, "conf.db") }
func (s *ovsdbServer) sock() string { return filepath.Join(s.dir, "db.sock") }

// start starts ovsdb-server listening on the unix socket path and waits
// until it accepts connections.
func (s *ovsdbServer) start(sock string) {
	s.t.Helper()
	s.cmd = exec.Command("ovsdb-server", s.db(), "--remote=punix:"+sock, "--no-chdir",
		"--unixctl="+filepath.Join(s.dir, "ovsdb-server.ctl"),
		"--pidfile="+filepath.Join(s.dir, "ovsdb-server.pid"),
		"--log-file="+filepath.Join(s.dir, "ovsdb-server.log"))
	s.cmd.Env = s.env
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start ovsdb-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.cmd.Wait() }()
	s.exited = exited
	s.remote = "unix:" + sock
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return
		}
		select {
		case err := <-exited:
			s.cmd = nil
			s.t.Fatalf("ovsdb-server exited at start: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("ovsdb-server does not accept on %s after 20 s\n%s", sock, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills ovsdb-server by its PID and waits for it to exit.
func (s *ovsdbServer) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
	// The killed server leaves its socket and pid file behind, as after a
	// crash; the next server replaces them.
}

// vsctl runs ovs-vsctl against the server and returns its output.
func (s *ovsdbServer) vsctl(args ...string) string {
	s.t.Helper()
	out, err := s.vsctlErr(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

func (s *ovsdbServer) vsctlErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"--db=" + s.remote, "--no-wait", "--timeout=30"}, args...)
	c := exec.CommandContext(ctx, "ovs-vsctl", full...)
	c.Env = s.env
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("ovs-vsctl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30 s waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
