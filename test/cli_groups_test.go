package test

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIGroups runs the group commands through the CLI and a daemon: a
// flow naming a missing group is refused with Open vSwitch's reason,
// groups dump as ovs-ofctl prints them, mod-group changes what the
// pipeline does, a restart restores groups before the flows that use
// them, and del-groups deletes those flows too.
func TestCLIGroups(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	sock, state := filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json")
	d := startCLIDaemon(t, bin, sock, state)
	d.run(t, "add-br", "br0")
	for i, name := range []string{"p1", "p2", "p3"} {
		d.run(t, "add-port", "br0", name, "type=mem", "ofport="+string(rune('1'+i)))
	}

	stdout, stderr, err := d.try("add-flow", "br0", "in_port=1,actions=output:3,group:1")
	checkOneLineError(t, stdout, stderr, err, "OFPBAC_BAD_OUT_GROUP")
	stdout, stderr, err = d.try("add-group", "br0", "group_id=1,type=all,bucket=output:2,bucket=frobnicate:3")
	checkOneLineError(t, stdout, stderr, err, "unknown action frobnicate")

	d.run(t, "add-group", "br0", "group_id=1,type=all,bucket=output:2,bucket=output:3")
	stdout, stderr, err = d.try("add-group", "br0", "group_id=1,type=indirect,bucket=output:2")
	checkOneLineError(t, stdout, stderr, err, "OFPGMFC_GROUP_EXISTS")
	stdout, stderr, err = d.try("mod-group", "br0", "group_id=7,type=indirect,bucket=output:2")
	checkOneLineError(t, stdout, stderr, err, "OFPGMFC_UNKNOWN_GROUP")
	d.run(t, "add-flow", "br0", "in_port=1,actions=group:1")

	if got, want := d.run(t, "dump-groups", "br0"), " group_id=1,type=all,bucket=bucket_id:0,actions=output:2,bucket=bucket_id:1,actions=output:3\n"; got != want {
		t.Errorf("dump-groups: %q, want %q", got, want)
	}
	if got, want := d.run(t, "dump-groups", "br0", "--protocols=OpenFlow13"), " group_id=1,type=all,bucket=actions=output:2,bucket=actions=output:3\n"; got != want {
		t.Errorf("dump-groups --protocols=OpenFlow13: %q, want %q", got, want)
	}
	if out := d.run(t, "ofproto/trace", "br0", "in_port=1,ip"); !strings.Contains(out, "Datapath actions: 2,3\n") {
		t.Errorf("trace through the all group:\n%s", out)
	}

	d.run(t, "mod-group", "br0", "group_id=1,type=ff,bucket=watch_port:9,actions=output:2,bucket=watch_port:3,actions=output:3")
	if out := d.run(t, "ofproto/trace", "br0", "in_port=1,ip"); !strings.Contains(out, "Datapath actions: 3\n") {
		t.Errorf("trace after mod-group to fast_failover (port 9 does not exist):\n%s", out)
	}
	stats := d.run(t, "dump-group-stats", "br0")
	if !strings.HasPrefix(stats, " group_id=1,duration=") || !strings.HasSuffix(stats, ",ref_count=1,packet_count=0,byte_count=0,bucket0:packet_count=0,byte_count=0,bucket1:packet_count=0,byte_count=0\n") {
		t.Errorf("dump-group-stats: %q", stats)
	}

	groups, flows := d.run(t, "dump-groups", "br0"), d.run(t, "dump-flows", "br0", "--no-stats")
	d.crash(t)
	d = startCLIDaemon(t, bin, sock, state)
	if got := d.run(t, "dump-groups", "br0"); got != groups {
		t.Errorf("groups after a restart:\n%s\nwant\n%s", got, groups)
	}
	if got := d.run(t, "dump-flows", "br0", "--no-stats"); got != flows {
		t.Errorf("flows after a restart:\n%s\nwant\n%s", got, flows)
	}

	d.run(t, "del-groups", "br0", "group_id=1")
	if got := d.run(t, "dump-groups", "br0"); got != "" {
		t.Errorf("dump-groups after del-groups: %q", got)
	}
	if got := d.run(t, "dump-flows", "br0", "--no-stats"); got != "" {
		t.Errorf("the flow that used the deleted group is still there: %q", got)
	}
}
