package daemon

import (
	"errors"
	"testing"
)

// TestDpifShow checks dpif/show, dpctl/show and ofproto/list on memory
// ports: each bridge its own datapath, ports by name (dpif/show) or
// number (dpctl/show), datapath numbers the OpenFlow ones.
func TestDpifShow(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br1")
	run(t, d, "add-br", "br0")
	run(t, d, "add-port", "br0", "q", "ofport=7", "rxq=2")
	run(t, d, "add-port", "br0", "p", "ofport=3")
	want := "ovsxdp@br0: hit:0 missed:0\n" +
		"  br0:\n" +
		"    p 3/3: (mem)\n" +
		"    q 7/7: (mem: rxq=2)\n" +
		"ovsxdp@br1: hit:0 missed:0\n" +
		"  br1:\n"
	if got := run(t, d, "dpif/show"); got != want {
		t.Errorf("dpif/show:\n%s\nwant\n%s", got, want)
	}
	want = "ovsxdp@br0:\n" +
		"  lookups: hit:0 missed:0 lost:0\n" +
		"  flows: 0\n" +
		"  port 3: p (mem)\n" +
		"    RX packets:0 errors:? dropped:0 overruns:? frame:?\n" +
		"    TX packets:0 errors:? dropped:0 aborted:? carrier:?\n" +
		"    collisions:?\n" +
		"    RX bytes:0  TX bytes:0\n" +
		"  port 7: q (mem: rxq=2)\n" +
		"    RX packets:0 errors:? dropped:0 overruns:? frame:?\n" +
		"    TX packets:0 errors:? dropped:0 aborted:? carrier:?\n" +
		"    collisions:?\n" +
		"    RX bytes:0  TX bytes:0\n"
	if got, err := runFlags(d, "dpctl/show", map[string]string{"statistics": "true"}, "br0"); err != nil || got != want {
		t.Errorf("dpctl/show -s br0: %v\n%s\nwant\n%s", err, got, want)
	}
	// The datapath's name selects the bridge too.
	if got, err := runFlags(d, "dpctl/show", map[string]string{"statistics": "true"}, "ovsxdp@br0"); err != nil || got != want {
		t.Errorf("dpctl/show -s ovsxdp@br0: %v\n%s", err, got)
	}
	if _, err := runFlags(d, "dpctl/show", nil, "netdev@ovs-netdev"); err == nil {
		t.Error("dpctl/show of Open vSwitch's datapath")
	}
	if got := run(t, d, "ofproto/list"); got != "br0\nbr1\n" {
		t.Errorf("ofproto/list: %q", got)
	}
}

// TestDpifDumpFlowsAndDps: dpif/dump-flows needs a bridge it has, in
// Open vSwitch's words, refuses -m, and lists nothing before a packet;
// dpif/dump-dps names each bridge's datapath.
func TestDpifDumpFlowsAndDps(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br1")
	run(t, d, "add-br", "br0")
	if got := run(t, d, "dpif/dump-dps"); got != "ovsxdp@br0\novsxdp@br1\n" {
		t.Errorf("dpif/dump-dps: %q", got)
	}
	if got := run(t, d, "dpif/dump-flows", "ovsxdp@br0"); got != "" {
		t.Errorf("dpif/dump-flows before a packet: %q", got)
	}
	if _, err := runFlags(d, "dpif/dump-flows", nil, "br9"); err == nil || err.Error() != "no such bridge" {
		t.Errorf("dpif/dump-flows br9: %v, want no such bridge", err)
	}
	if _, err := runFlags(d, "dpif/dump-flows", map[string]string{"m": "true"}, "br0"); !errors.Is(err, ErrUsage) {
		t.Errorf("dpif/dump-flows -m br0: %v, want a usage error", err)
	}
}
