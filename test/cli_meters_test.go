package test

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIMeters runs the meter commands through the CLI and a daemon: a
// flow naming a missing meter is refused with Open vSwitch's reason,
// meters dump as ovs-ofctl prints them, the datapath action is meter(N)
// with the datapath meter id, a restart restores meters before the flows
// that use them, and del-meters deletes those flows too.
func TestCLIMeters(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	sock, state := filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json")
	d := startCLIDaemon(t, bin, sock, state)
	d.run(t, "add-br", "br0")
	for i, name := range []string{"p1", "p2"} {
		d.run(t, "add-port", "br0", name, "type=mem", "ofport="+string(rune('1'+i)))
	}

	stdout, stderr, err := d.try("add-flow", "br0", "in_port=1,actions=meter:1,output:2")
	checkOneLineError(t, stdout, stderr, err, "OFPMMFC_INVALID_METER")
	stdout, stderr, err = d.try("add-meter", "br0", "meter=1,pktps,band=type=drop,rate=10,burst_size=5")
	checkOneLineError(t, stdout, stderr, err, "band may have 'burst_size' only when 'burst' flag is set")
	stdout, stderr, err = d.try("add-meter", "br0", "meter=1,pktps,band=type=dscp_remark,rate=10,prec_level=1")
	checkOneLineError(t, stdout, stderr, err, "OFPMMFC_BAD_BAND")

	d.run(t, "add-meter", "br0", "meter=2,kbps,band=type=drop,rate=100")
	d.run(t, "add-meter", "br0", "meter=1,pktps,burst,stats,band=type=drop,rate=10,burst_size=20")
	stdout, stderr, err = d.try("add-meter", "br0", "meter=1,pktps,band=type=drop,rate=10")
	checkOneLineError(t, stdout, stderr, err, "OFPMMFC_METER_EXISTS")
	stdout, stderr, err = d.try("mod-meter", "br0", "meter=3,pktps,band=type=drop,rate=10")
	checkOneLineError(t, stdout, stderr, err, "OFPMMFC_UNKNOWN_METER")
	d.run(t, "add-flow", "br0", "in_port=1,actions=meter:1,output:2")

	wantDump := "meter=1 pktps burst stats bands=\ntype=drop rate=10 burst_size=20\nmeter=2 kbps bands=\ntype=drop rate=100\n"
	if got := d.run(t, "dump-meters", "br0"); got != wantDump {
		t.Errorf("dump-meters: %q, want %q", got, wantDump)
	}
	if got := d.run(t, "dump-flows", "br0", "--no-stats"); !strings.Contains(got, "actions=meter:1,output:2") {
		t.Errorf("dump-flows: %q", got)
	}
	// Meter 2 was added first: its datapath meter is 0, meter 1's is 1.
	if out := d.run(t, "ofproto/trace", "br0", "in_port=1,ip"); !strings.Contains(out, "Datapath actions: meter(1),2\n") {
		t.Errorf("trace through meter 1:\n%s", out)
	}
	stats := d.run(t, "meter-stats", "br0", "meter=1")
	if !strings.HasPrefix(stats, "meter:1 flow_count:1 packet_in_count:0 byte_in_count:0 duration:") || !strings.HasSuffix(stats, "bands:\n0: packet_count:0 byte_count:0\n") {
		t.Errorf("meter-stats: %q", stats)
	}
	if got := d.run(t, "meter-features", "br0"); !strings.HasPrefix(got, "max_meter:262144 max_bands:8 max_color:0\n") {
		t.Errorf("meter-features: %q", got)
	}

	flows := d.run(t, "dump-flows", "br0", "--no-stats")
	d.crash(t)
	d = startCLIDaemon(t, bin, sock, state)
	if got := d.run(t, "dump-meters", "br0"); got != wantDump {
		t.Errorf("meters after a restart:\n%s\nwant\n%s", got, wantDump)
	}
	if got := d.run(t, "dump-flows", "br0", "--no-stats"); got != flows {
		t.Errorf("flows after a restart:\n%s\nwant\n%s", got, flows)
	}

	d.run(t, "mod-meter", "br0", "meter=1,kbps,band=type=drop,rate=1000")
	if got := d.run(t, "dump-meters", "br0", "meter=1"); got != "meter=1 kbps bands=\ntype=drop rate=1000\n" {
		t.Errorf("dump-meters after mod-meter: %q", got)
	}
	d.run(t, "del-meters", "br0", "meter=1")
	if got := d.run(t, "dump-meters", "br0"); got != "meter=2 kbps bands=\ntype=drop rate=100\n" {
		t.Errorf("dump-meters after del-meters meter=1: %q", got)
	}
	if got := d.run(t, "dump-flows", "br0", "--no-stats"); got != "" {
		t.Errorf("the flow that used the deleted meter is still there: %q", got)
	}
	d.run(t, "del-meters", "br0")
	if got := d.run(t, "dump-meters", "br0"); got != "" {
		t.Errorf("dump-meters after del-meters: %q", got)
	}
}
