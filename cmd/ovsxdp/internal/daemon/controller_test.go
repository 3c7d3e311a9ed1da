package daemon

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

func TestParseTarget(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    target
		wantErr bool
	}{
		{in: "tcp:127.0.0.1", want: target{network: "tcp", addr: "127.0.0.1:6653"}},
		{in: "tcp:10.0.0.1:6633", want: target{network: "tcp", addr: "10.0.0.1:6633"}},
		{in: "tcp:[::1]:7000", want: target{network: "tcp", addr: "[::1]:7000"}},
		{in: "unix:/run/c.sock", want: target{network: "unix", addr: "/run/c.sock"}},
		{in: "ptcp:", want: target{network: "tcp", addr: "127.0.0.1:6653", passive: true}},
		{in: "ptcp", want: target{network: "tcp", addr: "127.0.0.1:6653", passive: true}},
		{in: "ptcp:6000", want: target{network: "tcp", addr: "127.0.0.1:6000", passive: true}},
		{in: "ptcp:6000:0.0.0.0", want: target{network: "tcp", addr: "0.0.0.0:6000", passive: true}},
		{in: "punix:/run/p.sock", want: target{network: "unix", addr: "/run/p.sock", passive: true}},
		{in: "tcp:", wantErr: true},
		{in: "tcp:host.example:6653", wantErr: true},
		{in: "tcp:127.0.0.1:0", wantErr: true},
		{in: "tcp:127.0.0.1:70000", wantErr: true},
		{in: "ptcp:x", wantErr: true},
		{in: "ssl:127.0.0.1", wantErr: true},
		{in: "unix:", wantErr: true},
		{in: "nonsense", wantErr: true},
	} {
		got, err := parseTarget(tt.in)
		if (err != nil) != tt.wantErr || err == nil && got != tt.want {
			t.Errorf("parseTarget(%q) = %+v, %v; want %+v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, ErrBadTarget) {
			t.Errorf("parseTarget(%q): %v is not ErrBadTarget", tt.in, err)
		}
	}
}

// fakeController accepts switch connections on a unix socket, says hello
// in OpenFlow 1.3, and hands each connection to the test.
func fakeController(t *testing.T) (string, chan net.Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h, _ := openflow.NewHello(openflow.Version13)
			b, _ := openflow.Encode(openflow.Version13, 1, h)
			c.Write(b)
			conns <- c
		}
	}()
	return path, conns
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestControllerReconnect checks an active controller: the bridge
// connects, reports it, gets port status on the connection, reconnects
// after the controller drops it, and stops dialling when the controller
// is deleted; the configuration survives a restart.
func TestControllerReconnect(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	d := newTestDaemon(t, state)
	run(t, d, "add-br", "br0")
	path, conns := fakeController(t)
	run(t, d, "set-controller", "br0", "unix:"+path)
	run(t, d, "set-fail-mode", "br0", "secure")
	var c net.Conn
	select {
	case c = <-conns:
	case <-time.After(20 * time.Second):
		t.Fatal("the bridge did not connect to its controller")
	}
	r := openflow.NewReader(c, 0)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := r.ReadMessage(); err != nil { // the switch's hello
		t.Fatal(err)
	}
	waitCond(t, "is_connected", func() bool {
		return strings.Contains(run(t, d, "controller-status", "br0"), "is_connected=true state=ACTIVE")
	})
	// A port added reaches the controller as a port status add.
	run(t, d, "add-port", "br0", "p1")
	for {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		b, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("no port status: %v", err)
		}
		if _, m, err := openflow.Decode(b); err == nil {
			if ps, ok := m.(*openflow.PortStatus); ok {
				if ps.Reason != openflow.PortReasonAdd || ps.Port.Name != "p1" {
					t.Errorf("port status %+v", ps)
				}
				break
			}
		}
	}
	// The controller hangs up: the bridge backs off and connects again.
	c.Close()
	select {
	case c = <-conns:
		c.Close()
	case <-time.After(20 * time.Second):
		t.Fatal("the bridge did not reconnect")
	}
	if got := run(t, d, "get-controller", "br0"); got != "unix:"+path+"\n" {
		t.Errorf("get-controller: %q", got)
	}
	data, err := os.ReadFile(state)
	if err != nil || !strings.Contains(string(data), `"target": "unix:`+path) || !strings.Contains(string(data), `"fail_mode": "secure"`) {
		t.Errorf("the state does not keep the controller: %v\n%s", err, data)
	}
	run(t, d, "del-controller", "br0")
	if got := run(t, d, "controller-status", "br0"); got != "" {
		t.Errorf("controller-status after del-controller: %q", got)
	}
	// Nothing dials any more.
	select {
	case c := <-conns:
		c.Close()
		// One dial may have been in flight when it was deleted; no more.
		select {
		case <-conns:
			t.Error("the bridge keeps dialling a deleted controller")
		case <-time.After(3 * time.Second):
		}
	case <-time.After(3 * time.Second):
	}
}

func TestControllerVerbErrors(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	for _, tt := range []struct {
		verb    string
		args    []string
		flags   map[string]string
		wantErr string
	}{
		{"set-controller", []string{"br0", "tcp:nowhere"}, nil, "invalid controller target"},
		{"set-controller", []string{"br9", "tcp:127.0.0.1"}, nil, "no such bridge"},
		{"set-controller", []string{"br0", "tcp:127.0.0.1"}, map[string]string{"inactivity-probe": "soon"}, "want milliseconds"},
		{"set-fail-mode", []string{"br0", "open"}, nil, `fail mode must be "standalone" or "secure"`},
	} {
		if _, err := runFlags(d, tt.verb, tt.flags, tt.args...); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s %v: %v, want %q", tt.verb, tt.args, err, tt.wantErr)
		}
	}
}

// TestFailOpen checks fail_mode's semantics: standalone with a controller
// configured and none connected fails open after three probe intervals;
// secure never does; a connected controller closes it.
func TestFailOpen(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	d.mu.Lock()
	ch := d.channels.byName["br0"]
	d.mu.Unlock()
	cs := ch.ctl
	now := time.Now()
	if cs.failOpen(now) {
		t.Error("fail-open without controllers")
	}
	cs.mu.Lock()
	cs.cfg = ctlConfig{Specs: []ctlSpec{{Target: "tcp:127.0.0.1:1", Probe: defaultProbe}}}
	cs.lastUp = now
	cs.mu.Unlock()
	if cs.failOpen(now.Add(3*defaultProbe - time.Second)) {
		t.Error("fail-open before three probe intervals")
	}
	if !cs.failOpen(now.Add(3 * defaultProbe)) {
		t.Error("standalone: no fail-open after three probe intervals")
	}
	cs.mu.Lock()
	cs.cfg.FailMode = failSecure
	cs.mu.Unlock()
	if cs.failOpen(now.Add(time.Hour)) {
		t.Error("secure: fail-open")
	}
}

// TestPortsTellBeforeDescribing checks that a port description never
// shows a change its connections were not told of: by the time Ports
// returns a port just added, its port status is queued for the connected
// controller, whatever the port watcher's tick did meanwhile.
func TestPortsTellBeforeDescribing(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	path, conns := fakeController(t)
	run(t, d, "set-controller", "br0", "unix:"+path)
	var c net.Conn
	select {
	case c = <-conns:
	case <-time.After(20 * time.Second):
		t.Fatal("the bridge did not connect to its controller")
	}
	defer c.Close()
	go io.Copy(io.Discard, c)
	waitCond(t, "is_connected", func() bool {
		return strings.Contains(run(t, d, "controller-status", "br0"), "is_connected=true state=ACTIVE")
	})
	d.mu.Lock()
	ob := d.channels.byName["br0"].ob
	d.mu.Unlock()
	for i := range 20 {
		name := fmt.Sprintf("p%d", i)
		sent := ob.srv.AsyncStats().Sent
		run(t, d, "add-port", "br0", name)
		var listed bool
		for _, p := range ob.Ports() {
			listed = listed || p.Name == name
		}
		if !listed {
			t.Fatalf("%s added but not described", name)
		}
		if got := ob.srv.AsyncStats().Sent; got == sent {
			t.Fatalf("%s described before its port status was sent", name)
		}
	}
}
