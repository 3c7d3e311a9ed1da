package test

import (
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// TestOVSDBTunnelPorts configures vxlan and geneve ports through the real
// ovsdb-server and ovs-vsctl, with Open vSwitch's options: each gets its
// ofport written back and shows in the daemon's show; a port with a bad
// option gets the Interface's error instead; del-port removes one.
func TestOVSDBTunnelPorts(t *testing.T) {
	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	x := startOVSDBDaemon(t, bin, sw, t.TempDir(), db.Remote())
	vsctl := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := db.Vsctl(append([]string{"--timeout=60"}, args...)...)
		if err != nil {
			t.Fatalf("%v\novsxdp output:\n%s", err, x.proc.Output())
		}
		return strings.Trim(strings.TrimSpace(out), `"`)
	}

	vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp")
	vsctl(t, "add-port", "br0", "vx0", "--", "set", "interface", "vx0", "type=vxlan",
		"options:remote_ip=192.0.2.2", "options:key=5", "ofport_request=10")
	vsctl(t, "add-port", "br0", "gn0", "--", "set", "interface", "gn0", "type=geneve",
		"options:remote_ip=flow", "options:key=flow", "options:dst_port=6082")
	vsctl(t, "add-port", "br0", "vxbad", "--", "set", "interface", "vxbad", "type=vxlan", "options:remote_ip=nonsense")

	if got := vsctl(t, "get", "interface", "vx0", "ofport"); got != "10" {
		t.Fatalf("vx0 ofport %s, want 10", got)
	}
	if got := vsctl(t, "get", "interface", "gn0", "ofport"); got == "[]" || got == "-1" || got == "10" {
		t.Fatalf("gn0 ofport %s, want a free number", got)
	}
	for _, p := range []string{"vx0", "gn0"} {
		if e := vsctl(t, "get", "interface", p, "error"); e != "[]" {
			t.Errorf("%s error %s", p, e)
		}
	}
	if !netns.Eventually(20*time.Second, func() bool {
		return strings.Contains(vsctl(t, "get", "interface", "vxbad", "error"), "remote_ip")
	}) {
		t.Errorf("vxbad error %s, want one naming remote_ip", vsctl(t, "get", "interface", "vxbad", "error"))
	}
	show := x.cli.run(t, "show")
	for _, want := range []string{"Port vx0", "type: vxlan", "Port gn0", "type: geneve", "ofport: 10"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}
	if types := vsctl(t, "get", "open_vswitch", ".", "iface_types"); !strings.Contains(types, "vxlan") || !strings.Contains(types, "geneve") {
		t.Errorf("iface_types %s, want vxlan and geneve in them", types)
	}
	if ports := x.cli.run(t, "dump-ports", "br0"); !strings.Contains(ports, "port 10:") {
		t.Errorf("dump-ports lacks the vxlan port:\n%s", ports)
	}

	vsctl(t, "del-port", "br0", "vx0")
	if !netns.Eventually(20*time.Second, func() bool { return !strings.Contains(x.cli.run(t, "show"), "Port vx0") }) {
		t.Errorf("vx0 still configured after del-port:\n%s", x.cli.run(t, "show"))
	}
}
