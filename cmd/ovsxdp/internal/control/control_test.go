package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startServer serves a test handler on a socket in a temp dir and returns
// the socket's path. The server is closed when the test ends.
func startServer(t *testing.T) string {
	t.Helper()
	return startServerLimit(t, MaxRequestSize)
}

func startServerLimit(t *testing.T, limit int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "ctl.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	h := func(ctx context.Context, req *Request) (string, error) {
		switch req.Verb {
		case "echo":
			return strings.Join(req.Args, " ") + "|" + req.Flags["x"] + "|" + strings.Join(req.Input, ";"), nil
		case "fail":
			return "", errors.New("it failed")
		case "panic":
			panic("boom")
		case "nilmap":
			var m map[string]int
			m["x"] = 1
		}
		return "", errors.New("unknown verb " + req.Verb)
	}
	s := NewServer(h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.limit = limit
	serve(t, s, ln)
	return path
}

// serve runs s on ln until the test ends, and checks that it closes
// cleanly.
func serve(t *testing.T, s *Server, ln net.Listener) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

// exchange sends raw lines on one connection and returns the responses.
func exchange(t *testing.T, path string, lines ...string) []Response {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var out []Response
	for _, l := range lines {
		if _, err := io.WriteString(c, l+"\n"); err != nil {
			t.Fatal(err)
		}
		b, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reading the response to %.40q: %v", l, err)
		}
		var resp Response
		if err := json.Unmarshal(b, &resp); err != nil {
			t.Fatalf("response %q: %v", b, err)
		}
		out = append(out, resp)
	}
	return out
}

func TestServerSurvivesBadRequests(t *testing.T) {
	path := startServer(t)
	tests := []struct {
		name      string
		in        string
		wantError string // substring; "" for success
		wantOut   string
	}{
		{name: "not JSON", in: "add-br br0", wantError: "malformed request: invalid character"},
		{name: "truncated JSON", in: `{"verb":"echo"`, wantError: "malformed request"},
		{name: "unknown field", in: `{"verb":"echo","bogus":1}`, wantError: `unknown field "bogus"`},
		{name: "wrong type", in: `{"verb":"echo","args":"a"}`, wantError: "malformed request"},
		{name: "two values", in: `{"verb":"echo"} {"verb":"echo"}`, wantError: "more than one JSON value"},
		{name: "no verb", in: `{"args":["a"]}`, wantError: "no verb"},
		{name: "empty line", in: ``, wantError: "malformed request"},
		{name: "handler error", in: `{"verb":"fail"}`, wantError: "it failed"},
		{name: "handler panic", in: `{"verb":"panic"}`, wantError: "internal error in panic: boom"},
		{name: "runtime panic", in: `{"verb":"nilmap"}`, wantError: "internal error in nilmap: assignment to entry in nil map"},
		{name: "unknown verb", in: `{"verb":"frobnicate"}`, wantError: "unknown verb frobnicate"},
		{name: "good", in: `{"verb":"echo","args":["a","b"],"flags":{"x":"1"},"input":["l1","l2"]}`, wantOut: "a b|1|l1;l2"},
	}
	var lines []string
	for _, tt := range tests {
		lines = append(lines, tt.in)
	}
	// All on one connection: a bad request does not end the connection.
	resps := exchange(t, path, lines...)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resps[i]
			if tt.wantError == "" {
				if r.Error != "" || r.Output != tt.wantOut {
					t.Errorf("got %+v, want output %q", r, tt.wantOut)
				}
				return
			}
			if !strings.Contains(r.Error, tt.wantError) || r.Output != "" {
				t.Errorf("got %+v, want error containing %q", r, tt.wantError)
			}
			if strings.Contains(r.Error, "\n") {
				t.Errorf("error %q is not one line", r.Error)
			}
		})
	}
}

func TestServerOversizedRequest(t *testing.T) {
	const limit = 64 << 10 // the same code as MaxRequestSize, faster
	path := startServerLimit(t, limit)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	// Write from another goroutine: the server stops reading at the limit.
	go func() {
		big := `{"verb":"echo","args":["` + strings.Repeat("a", 4*limit) + `"]}` + "\n"
		io.WriteString(c, big)
	}()
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatal(err)
	}
	if want := "request too large (the limit is 65536 bytes)"; resp.Error != want {
		t.Errorf("got %+v, want %q", resp, want)
	}
	// The server still answers on a new connection.
	out, err := Call(path, &Request{Verb: "echo", Args: []string{"still", "here"}}, 10*time.Second)
	if err != nil || out != "still here||" {
		t.Errorf("after an oversized request: %q, %v", out, err)
	}
	// A request just under the limit is served.
	arg := strings.Repeat("b", limit-100)
	if out, err := Call(path, &Request{Verb: "echo", Args: []string{arg}}, 20*time.Second); err != nil || len(out) != len(arg)+2 {
		t.Errorf("a request under the limit: %d bytes, %v", len(out), err)
	}
}

func TestCall(t *testing.T) {
	path := startServer(t)
	if _, err := Call(path, &Request{Verb: "fail"}, 5*time.Second); err == nil || err.Error() != "it failed" {
		t.Errorf("handler error: %v", err)
	}
	_, err := Call(filepath.Join(t.TempDir(), "nothing.sock"), &Request{Verb: "echo"}, 5*time.Second)
	if !errors.Is(err, ErrDaemonDown) || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("unreachable socket: %v", err)
	}
}

func TestListen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	path := filepath.Join(dir, "ctl.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != c.want {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode().Perm(), c.want)
		}
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Errorf("second listener on a live socket: %v", err)
	}

	// A socket left behind by a killed daemon is replaced.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l2, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l2.(*net.UnixListener).SetUnlinkOnClose(false)
	l2.Close()
	ln3, err := Listen(stale)
	if err != nil {
		t.Errorf("stale socket: %v", err)
	} else {
		ln3.Close()
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: %v", err)
	}
	ln.Close()
}
