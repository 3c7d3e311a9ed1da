package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startAppctl serves a test handler with the appctl protocol on a socket
// in a new directory, and returns the socket's path and the channel the
// handler's after-answer functions report on.
func startAppctl(t *testing.T) (string, chan string) {
	t.Helper()
	ln, err := ListenAppctl(t.TempDir(), "ovs-vswitchd")
	if err != nil {
		t.Fatal(err)
	}
	afters := make(chan string, 10)
	h := func(ctx context.Context, req *Request) (string, error) {
		if !req.Appctl {
			return "", errors.New("not marked as an appctl request")
		}
		switch req.Verb {
		case "echo":
			return strings.Join(req.Args, "|"), nil
		case "empty":
			return "", nil
		case "fail":
			return "", errors.New("it failed")
		case "panic":
			panic("boom")
		case "later":
			AfterAnswer(ctx, func() { afters <- strings.Join(req.Args, "|") })
			return "answered", nil
		}
		return "", fmt.Errorf("%q is not a valid command", req.Verb)
	}
	serve(t, NewAppctlServer(h, slog.New(slog.NewTextHandler(io.Discard, nil))), ln)
	return ln.Addr().String(), afters
}

// appctlExchange writes raw on one connection, half-closes it and returns
// everything the server sent until it closed the connection.
func appctlExchange(t *testing.T, path, raw string) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// A write may fail once the server has closed the connection after a
	// bad message: what it answered before is still there to read.
	io.WriteString(c, raw)
	c.(*net.UnixConn).CloseWrite()
	out, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read: %v", err)
	}
	return string(out)
}

func TestAppctlReplies(t *testing.T) {
	path, afters := startAppctl(t)
	tests := []struct {
		name, in, want string
	}{
		{"result", `{"id":0,"method":"echo","params":["a","b c"]}`, `{"id":0,"result":"a|b c\n","error":null}`},
		{"empty result", `{"id":1,"method":"empty","params":[]}`, `{"id":1,"result":"","error":null}`},
		{"error", `{"id":"x","method":"fail","params":[]}`, `{"id":"x","error":"it failed\n"}`},
		{"unknown", `{"id":2,"method":"nosuch","params":[]}`, `{"id":2,"error":"\"nosuch\" is not a valid command\n"}`},
		{"non-string argument", `{"id":3,"method":"echo","params":["a",1]}`, `{"id":3,"error":"\"echo\" command has non-string argument\n"}`},
		{"handler panics", `{"id":4,"method":"panic","params":[]}`, `{"id":4,"error":"internal error in panic: boom\n"}`},
		{"two at once, with space", ` {"id":5,"method":"echo","params":["}{\"\\"]}` + "\n" + `{"id":6,"method":"echo","params":["<&>"]}`,
			`{"id":5,"result":"}{\"\\\n","error":null}{"id":6,"result":"<&>\n","error":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := appctlExchange(t, path, tt.in); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	// The after-answer function runs once the answer is sent.
	if got := appctlExchange(t, path, `{"id":7,"method":"later","params":["x"]}`); got != `{"id":7,"result":"answered\n","error":null}` {
		t.Errorf("later: %s", got)
	}
	select {
	case got := <-afters:
		if got != "x" {
			t.Errorf("after-answer function of %q ran", got)
		}
	case <-time.After(10 * time.Second):
		t.Error("the after-answer function did not run")
	}
}

// TestAppctlBadMessages checks that what is not a request closes its
// connection without an answer (as Open vSwitch's server does), after the
// answers to the requests before it, and that the server answers the next
// connection.
func TestAppctlBadMessages(t *testing.T) {
	path, _ := startAppctl(t)
	ok := `{"id":9,"method":"echo","params":["ok"]}`
	okReply := `{"id":9,"result":"ok\n","error":null}`
	for _, bad := range []struct{ name, in string }{
		{"not an object", `["echo"]`},
		{"not JSON", `garbage`},
		{"no params", `{"id":1,"method":"echo"}`},
		{"params not an array", `{"id":1,"method":"echo","params":{}}`},
		{"notification", `{"method":"echo","params":[]}`},
		{"null id", `{"id":null,"method":"echo","params":[]}`},
		{"a reply", `{"id":1,"result":"x","error":null}`},
		{"unexpected member", `{"id":1,"method":"echo","params":[],"extra":1}`},
		{"method not a string", `{"id":1,"method":5,"params":[]}`},
		{"invalid inside", `{"id":1,"method":"echo","params":[tru]}`},
		{"cut short", `{"id":1,"method":"echo","params":["`},
		{"too large", `{"id":1,"method":"echo","params":["` + strings.Repeat("x", MaxAppctlRequestSize) + `"]}`},
	} {
		t.Run(bad.name, func(t *testing.T) {
			if got := appctlExchange(t, path, ok+bad.in+ok); got != okReply {
				t.Errorf("answers %q, want only the first request's", got)
			}
			if got := appctlExchange(t, path, ok); got != okReply {
				t.Errorf("the next connection: %q", got)
			}
		})
	}
}

// pidfileChildEnv makes the test binary a process that holds a pidfile
// (TestListenAppctl).
const pidfileChildEnv = "OVSXDP_TEST_APPCTL_PIDFILE_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(pidfileChildEnv); dir != "" {
		ln, err := ListenAppctl(dir, "ovs-vswitchd")
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("listening")
		io.ReadAll(os.Stdin) // until the test closes it
		ln.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestListenAppctl checks what ovs-appctl -t looks for: the pidfile with
// the process's id, locked (another process cannot take it, and is told
// by whom it is held), the socket named by that id, and both gone after
// Close.
func TestListenAppctl(t *testing.T) {
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), pidfileChildEnv+"="+dir)
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 100)
	n, _ := stdout.Read(line)
	if strings.TrimSpace(string(line[:n])) != "listening" {
		stdin.Close()
		child.Wait()
		t.Fatalf("the child process: %q", line[:n])
	}
	pid := child.Process.Pid
	b, err := os.ReadFile(filepath.Join(dir, "ovs-vswitchd.pid"))
	if err != nil || string(b) != strconv.Itoa(pid)+"\n" {
		t.Errorf("pidfile: %q, %v; want %d", b, err, pid)
	}
	if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("ovs-vswitchd.%d.ctl", pid))); err != nil {
		t.Errorf("socket: %v", err)
	}
	_, err = ListenAppctl(dir, "ovs-vswitchd")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("locked by pid %d", pid)) {
		t.Errorf("a second daemon in the directory: %v; want the pidfile locked by pid %d", err, pid)
	}
	stdin.Close()
	if err := child.Wait(); err != nil {
		t.Fatalf("the child process: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Errorf("left after Close: %v", left)
	}
	// Free again: this process takes it, and removes a socket a killed
	// daemon left (nothing answers on it).
	stale := filepath.Join(dir, "ovs-vswitchd.1.ctl")
	sl, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	sl.(*net.UnixListener).SetUnlinkOnClose(false)
	sl.Close()
	ln, err := ListenAppctl(dir, "ovs-vswitchd")
	if err != nil {
		t.Fatalf("after the child's Close: %v", err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("the stale socket %s is still there", stale)
	}
	ln.Close()
}
