package test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// runCLITimeout runs the CLI as runCLI does, but kills it (by PID) after
// timeout; the error then says so.
func runCLITimeout(timeout time.Duration, bin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr strings.Builder
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = errors.New("killed after " + timeout.String())
	}
	return stdout.String(), stderr.String(), err
}

// TestCLIIdleConnectionsDoNotLockOut: connections that send nothing, more
// than the daemon serves at once, do not keep a command out. (The daemon
// used to wait for one of them to time out, 2 minutes.)
func TestCLIIdleConnectionsDoNotLockOut(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	d := startCLIDaemon(t, bin, filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json"))
	d.run(t, "add-br", "br0")
	for range 40 {
		c, err := net.Dial("unix", d.sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	out, errOut, err := runCLITimeout(30*time.Second, bin, "--socket", d.sock, "list-br")
	if err != nil || out != "br0\n" {
		t.Fatalf("list-br with 40 idle connections open: %q, %v\n%s", out, err, errOut)
	}
}

// TestCLISocketUmask: under umask 000 the control socket never appears
// with a mode wider than 0600. inotify reports every change to the
// socket's path: it must appear (created or renamed there) with its final
// mode, 0600, and no chmod may follow.
func TestCLISocketUmask(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "ovsxdp-umask0")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\numask 000\nexec "+bin+` "$@"`+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(run, "ovsxdp.sock")
	w := testenv.WatchDir(t, run)
	d := startCLIDaemon(t, wrapper, sock, filepath.Join(dir, "state.json"))
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	w.CheckAppearedFinal(t, filepath.Base(sock))
	d.run(t, "version")
}

// TestCLITwoDaemonsOneStateFile: a second daemon on the state file of a
// running one refuses to start, naming the file and the first daemon's
// PID, and the first daemon's state is intact.
func TestCLITwoDaemonsOneStateFile(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	d := startCLIDaemon(t, bin, filepath.Join(dir, "a.sock"), state)
	d.run(t, "add-br", "br0")
	stdout, stderr, err := runCLITimeout(30*time.Second, bin, "daemon", "--socket", filepath.Join(dir, "b.sock"), "--state", state, "--rundir", filepath.Join(dir, "run2"))
	checkOneLineError(t, stdout, stderr, err, "state file "+state+": in use by another daemon (pid "+strconv.Itoa(d.cmd.Process.Pid)+")")
	if out := d.run(t, "list-br"); out != "br0\n" {
		t.Errorf("the first daemon lists %q", out)
	}
	d.run(t, "add-br", "br1")
	if b, err := os.ReadFile(state); err != nil || !strings.Contains(string(b), `"br1"`) {
		t.Errorf("the first daemon's state file: %v\n%s", err, b)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.sock")); err == nil {
		t.Errorf("the refused daemon left its socket behind")
	}
}

// TestCLISIGHUP: SIGHUP does not stop the daemon; it says it ignores it.
func TestCLISIGHUP(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	d := startCLIDaemon(t, bin, filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json"))
	d.run(t, "add-br", "br0")
	for range 3 {
		if err := syscall.Kill(d.cmd.Process.Pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(d.log.String(), "SIGHUP received") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line about SIGHUP after 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, errOut, err := d.try("list-br"); err != nil || out != "br0\n" {
		t.Fatalf("after SIGHUP: %q, %v %s", out, err, errOut)
	}
}

// httpStatus returns the status of GET url.
func httpStatus(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestCLIPprofOnlyWhenAsked: --metrics serves metrics, not the profiler;
// --pprof serves the profiler, on its own address or the metrics one, and
// only on loopback.
func TestCLIPprofOnlyWhenAsked(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	metrics := freeLoopbackAddr(t)
	startCLIDaemon(t, bin, filepath.Join(dir, "a.sock"), filepath.Join(dir, "a.json"), "--metrics", metrics)
	if s := httpStatus(t, "http://"+metrics+"/metrics"); s != 200 {
		t.Errorf("/metrics: status %d", s)
	}
	if s := httpStatus(t, "http://"+metrics+"/debug/pprof/"); s != 404 {
		t.Errorf("/debug/pprof/ with --metrics only: status %d, want 404", s)
	}

	metrics2, pprof := freeLoopbackAddr(t), freeLoopbackAddr(t)
	startCLIDaemon(t, bin, filepath.Join(dir, "b.sock"), filepath.Join(dir, "b.json"), "--metrics", metrics2, "--pprof", pprof)
	if s := httpStatus(t, "http://"+pprof+"/debug/pprof/"); s != 200 {
		t.Errorf("/debug/pprof/ with --pprof: status %d", s)
	}
	if s := httpStatus(t, "http://"+metrics2+"/debug/pprof/"); s != 404 {
		t.Errorf("/debug/pprof/ on the metrics address: status %d, want 404", s)
	}

	both := freeLoopbackAddr(t)
	startCLIDaemon(t, bin, filepath.Join(dir, "c.sock"), filepath.Join(dir, "c.json"), "--metrics", both, "--pprof", both)
	for _, p := range []string{"/metrics", "/debug/pprof/"} {
		if s := httpStatus(t, "http://"+both+p); s != 200 {
			t.Errorf("%s with --metrics and --pprof on one address: status %d", p, s)
		}
	}

	stdout, stderr, err := runCLITimeout(30*time.Second, bin, "daemon", "--socket", filepath.Join(dir, "d.sock"), "--state", "", "--pprof", "0.0.0.0:6060", "--rundir", filepath.Join(dir, "run"))
	checkOneLineError(t, stdout, stderr, err, `--pprof "0.0.0.0:6060": "0.0.0.0" is not a loopback address`)
}

// TestCLIOversizedInput: a flows file over the daemon's limit is refused
// by the client with the limit (not a broken pipe), and an error about a
// huge bad token is one short line.
func TestCLIOversizedInput(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	d := startCLIDaemon(t, bin, filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json"))
	d.run(t, "add-br", "br0")

	big := filepath.Join(dir, "big.txt")
	line := "priority=1,ip,nw_dst=10.0.0.1,actions=drop\n"
	if err := os.WriteFile(big, []byte(strings.Repeat(line, (17<<20)/len(line))), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runCLITimeout(60*time.Second, bin, "--socket", d.sock, "add-flows", "br0", big)
	checkOneLineError(t, stdout, stderr, err, "big.txt: request too large: 17.0 MiB, the daemon's limit is 16 MiB")

	// A file under the limit whose JSON encoding is over it.
	quoted := filepath.Join(dir, "quoted.txt")
	if err := os.WriteFile(quoted, []byte(strings.Repeat(`"`, 15<<20)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err = runCLITimeout(60*time.Second, bin, "--socket", d.sock, "add-flows", "br0", quoted)
	checkOneLineError(t, stdout, stderr, err, "quoted.txt: request too large: 30.0 MiB, the daemon's limit is 16 MiB")

	token := filepath.Join(dir, "token.txt")
	if err := os.WriteFile(token, []byte("ip,nw_dst="+strings.Repeat("9", 15<<20)+",actions=drop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err = runCLITimeout(60*time.Second, bin, "--socket", d.sock, "add-flows", "br0", token)
	checkOneLineError(t, stdout, stderr, err, `token.txt: line 1: flow: at column 4 "nw_dst=99999999`)
	if len(stderr) > 1000 {
		t.Errorf("the error about a 15 MiB token is %d bytes long", len(stderr))
	}
	if !strings.Contains(stderr, "(15728647 bytes)") || !strings.Contains(stderr, "invalid IP address") {
		t.Errorf("the error does not give the token's length and the reason: %.300s", stderr)
	}
	if out := d.run(t, "dump-flows", "br0", "--no-stats"); out != "" {
		t.Errorf("flows after refused files:\n%.300s", out)
	}
}
