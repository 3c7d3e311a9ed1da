package test

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// TestOVSDBController configures a bridge's controller and fail mode with
// the real ovs-vsctl through ovsdb-server: the daemon connects to the
// controller and writes back is_connected and status as ovs-vswitchd
// does, and follows the controller going away and being deleted.
func TestOVSDBController(t *testing.T) {
	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	x := startOVSDBDaemon(t, bin, sw, t.TempDir(), db.Remote())
	vsctl := func(args ...string) string {
		t.Helper()
		out, err := db.Vsctl(append([]string{"--timeout=60"}, args...)...)
		if err != nil {
			t.Fatalf("%v\novsxdp output:\n%s", err, x.proc.Output())
		}
		return strings.TrimSpace(out)
	}
	vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp")

	// A controller: accepts, says hello in OpenFlow 1.3 and answers echo
	// requests, until the test closes it.
	path := filepath.Join(t.TempDir(), "controller.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
			go func() {
				h, _ := openflow.NewHello(openflow.Version13)
				b, _ := openflow.Encode(openflow.Version13, 1, h)
				c.Write(b)
				r := openflow.NewReader(c, 0)
				for {
					b, err := r.ReadMessage()
					if err != nil {
						return
					}
					if hd, m, err := openflow.Decode(b); err == nil {
						if e, ok := m.(*openflow.EchoRequest); ok {
							rb, _ := openflow.Encode(hd.Version, hd.Xid, &openflow.EchoReply{Data: e.Data})
							c.Write(rb)
						}
					}
				}
			}()
		}
	}()

	vsctl("set-fail-mode", "br0", "secure")
	vsctl("set-controller", "br0", "unix:"+path)
	if got := vsctl("get-fail-mode", "br0"); got != "secure" {
		t.Errorf("get-fail-mode: %q", got)
	}
	connected := func(want string) func() bool {
		return func() bool {
			out, err := db.Vsctl("get", "controller", "br0", "is_connected")
			return err == nil && strings.TrimSpace(out) == want
		}
	}
	if !netns.Eventually(30*time.Second, connected("true")) {
		t.Fatalf("is_connected is not true after 30s:\n%s\n%s", vsctl("list", "controller"), x.proc.Output())
	}
	if st := vsctl("get", "controller", "br0", "status"); !strings.Contains(st, "state=ACTIVE") {
		t.Errorf("status %s, want state=ACTIVE", st)
	}
	if role := vsctl("get", "controller", "br0", "role"); role != "other" {
		t.Errorf("role %q, want other", role)
	}
	if got := strings.TrimSpace(x.cli.run(t, "controller-status", "br0")); !strings.Contains(got, "is_connected=true") {
		t.Errorf("controller-status: %s", got)
	}
	// The CLI does not change what the database configures.
	if _, _, err := x.cli.try("set-controller", "br0", "tcp:127.0.0.1"); err == nil {
		t.Error("set-controller through the CLI was accepted under --ovsdb")
	}

	// The controller goes away.
	ln.Close()
	(<-accepted).Close()
	if !netns.Eventually(30*time.Second, connected("false")) {
		t.Fatalf("is_connected is not false 30s after the controller went away:\n%s", vsctl("list", "controller"))
	}
	if st := vsctl("get", "controller", "br0", "status"); !strings.Contains(st, "last_error=") {
		t.Errorf("status %s has no last_error", st)
	}
	vsctl("del-controller", "br0")
	if !netns.Eventually(30*time.Second, func() bool {
		return strings.TrimSpace(x.cli.run(t, "controller-status", "br0")) == ""
	}) {
		t.Errorf("the daemon keeps the deleted controller: %s", x.cli.run(t, "controller-status", "br0"))
	}
}
