package daemon

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestTunnelPorts adds vxlan and geneve ports with Open vSwitch's
// options, refuses bad ones with an error naming the option, and
// restores the ports from the state file.
func TestTunnelPorts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	d, err := New(Config{NoLocalPort: true, StatePath: path, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	run(t, d, "add-br", "br-int")
	run(t, d, "add-port", "br-int", "vx0", "type=vxlan", "remote_ip=192.0.2.2", "key=5", "ofport=10")
	run(t, d, "add-port", "br-int", "gn0", "type=geneve", "remote_ip=flow", "key=flow", "dst_port=6082", "csum=true")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"vxbad0", "type=vxlan", "remote_ip=nonsense"}, "remote_ip"},
		{[]string{"vxbad1", "type=vxlan", "key=5"}, "remote_ip is required"},
		{[]string{"vxbad2", "type=vxlan", "remote_ip=192.0.2.2", "key=16777216"}, "key"},
		{[]string{"vxbad3", "type=geneve", "remote_ip=192.0.2.2", "rxq=2"}, "rxq: unknown"},
		{[]string{"vxbad4", "type=vxlan", "remote_ip=192.0.2.2", "local_ip=flow"}, "local_ip=flow needs remote_ip=flow"},
	} {
		_, err := runFlags(d, "add-port", nil, append([]string{"br-int"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("add-port %v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	show := run(t, d, "show")
	for _, want := range []string{"Port vx0", "type: vxlan", `options: {key="5", remote_ip="192.0.2.2"}`, "ofport: 10", "Port gn0", "type: geneve"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}
	if got := run(t, d, "tnl/ports/show"); !strings.Contains(got, "Listening ports:\ngenev_sys_6082 (6082) ref_cnt=1\nvxlan_sys_4789 (4789) ref_cnt=1\n") ||
		!strings.Contains(got, "br-int vx0 remote 192.0.2.2: drop tunnel-routing-failed") {
		t.Errorf("tnl/ports/show:\n%s", got)
	}
	if strings.Contains(show, "vxbad") {
		t.Errorf("a refused port is configured:\n%s", show)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2 := newTestDaemon(t, path)
	if got := run(t, d2, "show"); got != show {
		t.Errorf("restored show:\n%s\nwant\n%s", got, show)
	}
	if ports := run(t, d2, "dump-ports", "br-int"); !strings.Contains(ports, "port 10:") {
		t.Errorf("dump-ports lacks the vxlan port:\n%s", ports)
	}
	run(t, d2, "del-port", "br-int", "vx0")
	if strings.Contains(run(t, d2, "show"), "vx0") {
		t.Error("vx0 still configured after del-port")
	}
}
