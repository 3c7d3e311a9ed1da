package test

import (
	"slices"
	"strings"
	"testing"
)

// TestOFPortAllocationMatchesOVS checks that ports get the OpenFlow port
// numbers Open vSwitch 3.1 gives them: a number is not handed out again
// soon after its port went, an ofport_request taken by another port gives
// an automatic number until the requested one is free, and a changed
// ofport_request moves the port. The same ovs-vsctl steps run against a
// sandboxed Open vSwitch (netdev datapath) and ovsxdp configured from its
// own ovsdb-server; after each step every Interface's ofport must read
// the same.
func TestOFPortAllocationMatchesOVS(t *testing.T) {
	want, got := stepsOnBoth(t, func(s ovsdbSwitch, want []string) []string {
		vs := func(args ...string) string {
			t.Helper()
			out, err := s.vsctl(append([]string{"--timeout=60"}, args...)...)
			if err != nil {
				t.Fatalf("%s: %v", s.dpType, err)
			}
			return strings.TrimSpace(out)
		}
		record := func() string {
			var ports []string
			for _, l := range strings.Split(vs("--format=csv", "--no-headings", "--columns=name,ofport", "list", "interface"), "\n") {
				// Leave out the LOCAL ports (of any bridge the switch has).
				if name, of, ok := strings.Cut(l, ","); ok && of != "65534" {
					ports = append(ports, name+"="+of)
				}
			}
			slices.Sort(ports)
			return strings.Join(ports, " ")
		}
		rec := &stepRecords{want: want, record: record}
		step := func(what string, change func()) {
			change()
			rec.add(what)
		}
		internal := func(name string, cols ...string) func() {
			return func() {
				vs(append([]string{"add-port", "br0", name, "--", "set", "interface", name, "type=internal"}, cols...)...)
			}
		}
		del := func(name string) func() { return func() { vs("del-port", "br0", name) } }
		vs("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type="+s.dpType)
		step("i1 added", internal("i1"))
		step("i2 added", internal("i2"))
		step("i3 added", internal("i3"))
		step("i1 deleted", del("i1"))
		step("i4 added", internal("i4"))
		step("i1 added again", internal("i1"))
		step("i2 deleted and added in one transaction", func() {
			vs("del-port", "br0", "i2", "--", "add-port", "br0", "i2", "--", "set", "interface", "i2", "type=internal")
		})
		step("r1 asks for 20", internal("r1", "ofport_request=20"))
		step("r2 asks for 20 too", internal("r2", "ofport_request=20"))
		step("i5 added", internal("i5"))
		step("r1 deleted", del("r1"))
		step("i5 asks for 3", func() { vs("set", "interface", "i5", "ofport_request=3") })
		step("i3 deleted", del("i3"))
		step("i6 asks for the number i3 had", internal("i6", "ofport_request=3"))
		return rec.steps
	})
	compareSteps(t, want, got)
}
