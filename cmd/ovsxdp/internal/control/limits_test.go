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
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// startTuned serves the echo handler of startServerLimit with the server's
// limits changed by tune, and returns the server and its socket.
func startTuned(t *testing.T, tune func(s *Server)) (*Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	h := func(ctx context.Context, req *Request) (string, error) {
		return strings.Join(req.Args, " "), nil
	}
	s := NewServer(h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tune(s)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, path
}

func dialN(t *testing.T, path string, n int) []net.Conn {
	t.Helper()
	var cs []net.Conn
	for range n {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
	}
	return cs
}

// TestServerEvictsIdleConnections: connections that never send anything,
// more than the limit, do not keep a real command out; the silence
// timeout is long here, so only eviction can let the command in.
func TestServerEvictsIdleConnections(t *testing.T) {
	_, path := startTuned(t, func(s *Server) { s.idleTimeout = 10 * time.Minute })
	dialN(t, path, maxConns+8)
	out, err := Call(path, &Request{Verb: "echo", Args: []string{"through"}}, 20*time.Second)
	if err != nil || out != "through" {
		t.Fatalf("a command after %d idle connections: %q, %v", maxConns+8, out, err)
	}
}

// TestServerKeepsBusyConnections: a connection in the middle of a request
// is not evicted; when every connection is busy, a new one is told so at
// once instead of waiting.
func TestServerKeepsBusyConnections(t *testing.T) {
	const limit = 4
	s, path := startTuned(t, func(s *Server) { s.maxConns = limit; s.gapTimeout = time.Minute })
	cs := dialN(t, path, limit)
	for _, c := range cs {
		if _, err := io.WriteString(c, `{"verb":"echo",`); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mu.Lock()
		busy := 0
		for c := range s.conns {
			if c.busy {
				busy++
			}
		}
		s.mu.Unlock()
		if busy == limit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections busy after 20s", busy, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err := Call(path, &Request{Verb: "echo"}, 20*time.Second)
	if err == nil || !strings.Contains(err.Error(), "the daemon is busy") {
		t.Errorf("a command while every connection is busy: %v, want \"the daemon is busy\"", err)
	}
	for i, c := range cs {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, `"args":["done"]}`+"\n"); err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		var resp Response
		if err := json.NewDecoder(c).Decode(&resp); err != nil || resp.Output != "done" {
			t.Errorf("conn %d, busy when the limit was reached: %+v, %v", i, resp, err)
		}
	}
}

// TestServerDropsSilentConnection: a client that sends nothing is
// disconnected after the silence timeout.
func TestServerDropsSilentConnection(t *testing.T) {
	_, path := startTuned(t, func(s *Server) { s.idleTimeout = 100 * time.Millisecond })
	c := dialN(t, path, 1)[0]
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("a silent connection: read %d, %v; want EOF from the server", n, err)
	}
}

// TestServerRequestDeadlines: a request that keeps arriving is served even
// when it takes longer than the pause allowed; one that stalls is
// answered with an error and the connection closed.
func TestServerRequestDeadlines(t *testing.T) {
	_, path := startTuned(t, func(s *Server) { s.gapTimeout = 2 * time.Second })
	t.Run("trickle", func(t *testing.T) {
		c := dialN(t, path, 1)[0]
		c.SetDeadline(time.Now().Add(60 * time.Second))
		req := `{"verb":"echo","args":["slow","but","steady"]}` + "\n"
		start := time.Now()
		for i := 0; i < len(req); i++ {
			if _, err := c.Write([]byte{req[i]}); err != nil {
				t.Fatal(err)
			}
			if time.Since(start) < 3*time.Second {
				time.Sleep(100 * time.Millisecond)
			}
		}
		var resp Response
		if err := json.NewDecoder(c).Decode(&resp); err != nil || resp.Output != "slow but steady" {
			t.Errorf("a request sent over >3s with short pauses: %+v, %v", resp, err)
		}
	})
	t.Run("stall", func(t *testing.T) {
		c := dialN(t, path, 1)[0]
		c.SetDeadline(time.Now().Add(60 * time.Second))
		if _, err := io.WriteString(c, `{"verb":"echo"`); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		var resp Response
		if err := json.NewDecoder(r).Decode(&resp); err != nil || !strings.Contains(resp.Error, "request incomplete") {
			t.Errorf("a stalled request: %+v, %v", resp, err)
		}
		if n, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("after a stalled request: read %d, %v; want EOF", n, err)
		}
	})
}

// TestCallRefusesOversizedRequest: the client names the size and the limit
// and sends nothing.
func TestCallRefusesOversizedRequest(t *testing.T) {
	path := startServer(t)
	big := strings.Repeat("x", 17<<20)
	_, err := Call(path, &Request{Verb: "echo", Args: []string{big}}, 20*time.Second)
	if !errors.Is(err, ErrTooLarge) || err.Error() != "request too large: 17.0 MiB, the daemon's limit is 16 MiB" {
		t.Errorf("got %v", err)
	}
	if err != nil && len(err.Error()) > 200 {
		t.Errorf("the error is %d bytes long", len(err.Error()))
	}
}

// TestServerAnswersOversizedRequest: a client that sends a whole
// oversized request can finish sending it and reads the server's limit,
// instead of a broken pipe.
func TestServerAnswersOversizedRequest(t *testing.T) {
	const limit = 64 << 10
	path := startServerLimit(t, limit)
	c := dialN(t, path, 1)[0]
	c.SetDeadline(time.Now().Add(30 * time.Second))
	big := `{"verb":"echo","args":["` + strings.Repeat("a", 16*limit) + `"]}` + "\n"
	if _, err := io.WriteString(c, big); err != nil {
		t.Fatalf("sending an oversized request: %v; want the server to read it to its end", err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil || resp.Error != "request too large (the limit is 65536 bytes)" {
		t.Errorf("got %+v, %v", resp, err)
	}
}

// TestListenUmask: under umask 000 the socket never appears at its path
// with a mode wider than 0600. inotify reports every change of the path:
// the socket must appear (be created or renamed there) with its final
// mode, which no later chmod changes, and that mode must be 0600.
func TestListenUmask(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ctl.sock")
	w := testenv.WatchDir(t, dir)
	// Also look at the mode as often as possible while Listen runs.
	stop := make(chan struct{})
	seen := make(chan os.FileMode, 1)
	go func() {
		defer close(seen)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if fi, err := os.Lstat(path); err == nil {
				seen <- fi.Mode().Perm()
				return
			}
		}
	}()
	old := syscall.Umask(0)
	ln, err := Listen(path)
	syscall.Umask(old)
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if m, ok := <-seen; ok && m&^0o600 != 0 {
		t.Errorf("the socket appeared with mode %v", m)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	w.CheckAppearedFinal(t, filepath.Base(path))
}
