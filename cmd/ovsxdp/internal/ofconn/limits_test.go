package ofconn

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// listen serves s on a unix socket and returns its path.
func listen(t *testing.T, s *Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "br.mgmt")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

func dialUnix(t *testing.T, path string, v uint8) *client {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, r: openflow.NewReader(c, 0), v: v}
	if _, m := cl.recv(); m == nil {
		t.Fatal("no hello")
	}
	hello, _ := openflow.NewHello(v)
	cl.send(hello)
	return cl
}

func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSlowPeer checks that a peer that never reads its replies holds up
// neither the server nor another connection, and is dropped after the
// write timeout.
func TestSlowPeer(t *testing.T) {
	s := newTestServer()
	s.writeTimeout = 300 * time.Millisecond
	path := listen(t, s)

	slow := dialUnix(t, path, openflow.Version13)
	big := &openflow.EchoRequest{Data: make([]byte, 60000)}
	b, _ := openflow.Encode(openflow.Version13, 1, big)
	// Enough echo requests that the replies fill the socket's buffers;
	// the writes may block once the server stops reading.
	go func() {
		for range 64 {
			slow.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := slow.c.Write(b); err != nil {
				return
			}
		}
	}()

	fast := dialUnix(t, path, openflow.Version13)
	fast.send(&openflow.FeaturesRequest{})
	if _, m := fast.recv(); m == nil {
		t.Fatal("no features reply")
	} else if _, ok := m.(*openflow.FeaturesReply); !ok {
		t.Fatalf("features answered with %T", m)
	}
	waitUntil(t, "the slow peer to be dropped", func() bool { return s.connCount() == 1 })
}

// TestConnectionLimit checks that connections over the limit are closed
// at once and that the others go on.
func TestConnectionLimit(t *testing.T) {
	s := newTestServer()
	s.maxConns = 2
	path := listen(t, s)
	a := dialUnix(t, path, openflow.Version10)
	dialUnix(t, path, openflow.Version10)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the connection over the limit: %v, want it closed", err)
	}
	a.send(&openflow.EchoRequest{})
	if _, m := a.recv(); m == nil {
		t.Fatal("no echo reply")
	}
}

// TestBadLength checks that a header whose length is shorter than a header
// is answered with OFPBRC_BAD_LEN and ends the connection, which cannot
// find the next message.
func TestBadLength(t *testing.T) {
	s := newTestServer()
	cl := dial(t, s, openflow.Version13)
	cl.sendRaw([]byte{4, 2, 0, 4, 0, 0, 0, 9})
	h, m := cl.recv()
	if e, ok := m.(*openflow.ErrorMsg); !ok || e.Type != openflow.ErrTypeBadRequest || e.Code != openflow.CodeBadRequestLen || h.Xid != 9 {
		t.Fatalf("got %+v %#v, want OFPBRC_BAD_LEN", h, m)
	}
	cl.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := cl.r.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Fatalf("after a bad length: %v, want the connection closed", err)
	}
}

// TestSilentPeer checks that a peer silent for the probe interval gets an
// echo request and, staying silent, is dropped.
func TestSilentPeer(t *testing.T) {
	s := newTestServer()
	s.probeInterval = 200 * time.Millisecond
	path := listen(t, s)
	silent := dialUnix(t, path, openflow.Version13)
	h, m := silent.recv()
	if _, ok := m.(*openflow.EchoRequest); !ok {
		t.Fatalf("a silent peer got %T (%+v), want an echo request", m, h)
	}
	silent.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := silent.r.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Fatalf("a peer silent after the probe: %v, want the connection closed", err)
	}

}
