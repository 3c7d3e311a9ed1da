package test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// TestNormalizedMatchMatchesOVS adds, with the real ovs-ofctl, flows whose
// match names a field without its prerequisite (nw_ecn without ip, tp_dst
// without a transport protocol). ovs-ofctl drops such a field itself and
// then sends the match with an explicit packet_type=(0,0), Ethernet;
// Open vSwitch takes it and dumps the flow without either. ovsxdp must
// take it too (it refused packet_type, so the add failed), and both
// switches must then hold the same flows, in every protocol ovs-ofctl
// speaks.
// flowStats are the counters and ages of a dump-flows line.
var flowStats = regexp.MustCompile(` (duration|n_packets|n_bytes|idle_age|hard_age)=[^ ,]*,?`)

// flowLines is a dump-flows output's flow lines without their counters
// and ages.
func flowLines(dump string) string {
	var lines []string
	for _, l := range strings.Split(dump, "\n") {
		if l = strings.TrimSpace(flowStats.ReplaceAllString(l, "")); strings.HasPrefix(l, "cookie=") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func TestNormalizedMatchMatchesOVS(t *testing.T) {
	ovs := ovsref.StartShared(t, "br0", []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}})
	sw := startOFSwitch(t)
	flows := []string{
		"in_port=1,nw_ecn=1,actions=drop",
		"priority=7,in_port=2,tp_dst=80,actions=output:1",
		"priority=9,nw_tos=4,actions=output:2",
	}
	for _, proto := range []string{"OpenFlow10", "OpenFlow13", "OpenFlow15"} {
		t.Run(proto, func(t *testing.T) {
			for _, f := range flows {
				if _, errOut, err := ovs.OfctlStderr("-O", proto, "add-flow", "br0", f); err != nil {
					t.Fatalf("Open vSwitch refused %q: %v\n%s", f, err, errOut)
				}
				if _, errOut, err := sw.try(proto, nil, "add-flow", f); err != nil {
					t.Fatalf("ovsxdp refused %q, which Open vSwitch took: %v\n%s", f, err, errOut)
				}
			}
			want, err := ovs.Ofctl("-O", proto, "--no-names", "--sort", "dump-flows", "br0")
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := sw.try(proto, []string{"--no-names", "--sort"}, "dump-flows")
			if err != nil {
				t.Fatal(err)
			}
			if flowLines(got) != flowLines(want) {
				t.Errorf("dump-flows differs\novsxdp:\n%s\nOpen vSwitch:\n%s", flowLines(got), flowLines(want))
			}
			ovs.Ofctl("-O", proto, "del-flows", "br0")
			sw.run(t, proto, "del-flows")
		})
	}
}
