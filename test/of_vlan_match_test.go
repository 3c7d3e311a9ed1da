package test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// TestVLANMatchAsSentMatchesOVS adds, with the real ovs-ofctl in OpenFlow
// 1.0 and 1.3, flows that match on "no VLAN header" in the ways a switch
// can be sent them, and compares what Open vSwitch and ovsxdp take and
// then hold, dumped in OpenFlow 1.0 (NXM) and 1.3 (OXM). ovs-ofctl sends
// a match as OpenFlow 1.0 where it can, which makes vlan_tci=0x0001
// vlan_tci=0x0000; but a match with a field that needs NXM (here a
// vlan_tci given twice, its first spelling masked) goes as NXM and keeps
// vlan_tci=0x0001, which the switch must keep as it came. OXM carries
// vlan_tci=0x0001 as a vlan_vid without OFPVID_PRESENT and a vlan_pcp,
// which Open vSwitch refuses; and it cannot dump such a flow in OXM.
func TestVLANMatchAsSentMatchesOVS(t *testing.T) {
	ovs := ovsref.StartShared(t, "br0", []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}})
	sw := startOFSwitch(t)
	flows := []string{
		"priority=1,vlan_tci=0/1,vlan_tci=1,actions=drop",
		"priority=2,vlan_tci=1,actions=drop",
		"priority=3,vlan_tci=0x0000/0x1000,actions=drop",
		"priority=4,dl_vlan=0xffff,actions=drop",
		"priority=5,vlan_tci=0x0000/0x1fff,actions=drop",
	}
	ofErr := regexp.MustCompile(`OFPB[A-Z]+_[A-Z_]+`)
	// outcome is "ok" or the OpenFlow error a command failed with.
	outcome := func(err error, stderr string) string {
		if err == nil {
			return "ok"
		}
		if e := ofErr.FindString(stderr); e != "" {
			return e
		}
		return "failed: " + stderr
	}
	dumped := 0
	for _, proto := range []string{"OpenFlow10", "OpenFlow13"} {
		t.Run(proto, func(t *testing.T) {
			for _, f := range flows {
				_, ovsOut, ovsErr := ovs.OfctlStderr("-O", proto, "add-flow", "br0", f)
				_, out, err := sw.try(proto, nil, "add-flow", f)
				if want, got := outcome(ovsErr, ovsOut), outcome(err, out); got != want {
					t.Errorf("add-flow %q: ovsxdp %s, Open vSwitch %s\n%s", f, got, want, out)
				}
			}
			for _, dumpProto := range []string{"OpenFlow10", "OpenFlow13"} {
				want, ovsErr := ovs.Ofctl("-O", dumpProto, "--no-names", "--sort", "dump-flows", "br0")
				got, out, err := sw.try(dumpProto, []string{"--no-names", "--sort"}, "dump-flows")
				if ovsErr != nil || err != nil {
					if w, g := outcome(ovsErr, ovsErr.Error()), outcome(err, out); g != w {
						t.Errorf("dump-flows in %s: ovsxdp %s, Open vSwitch %s\n%s", dumpProto, g, w, out)
					}
					continue
				}
				if flowLines(got) != flowLines(want) {
					t.Errorf("dump-flows in %s differs\novsxdp:\n%s\nOpen vSwitch:\n%s", dumpProto, flowLines(got), flowLines(want))
				}
				dumped += strings.Count(flowLines(got), "cookie=")
			}
			ovs.Ofctl("-O", proto, "del-flows", "br0")
			sw.run(t, proto, "del-flows")
		})
	}
	if dumped < len(flows) {
		t.Errorf("the dumps compared held %d flows; want at least %d", dumped, len(flows))
	}
}
