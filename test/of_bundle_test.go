package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// bundleXid is the xid ovs-ofctl prints in an error (ovsxdp and Open
// vSwitch may have seen a different number of messages before), and
// bundleTarget the socket it names.
var (
	bundleXid    = regexp.MustCompile(`xid=0x[0-9a-f]+`)
	bundleTarget = regexp.MustCompile(`talking to \S+`)
)

// bundleStderr is what ovs-ofctl printed to its standard error, without
// what differs between two switches that answer the same.
func bundleStderr(s string) string {
	return bundleTarget.ReplaceAllString(bundleXid.ReplaceAllString(s, "xid=X"), "talking to SWITCH")
}

// TestOpenFlowBundleMatchesOVS runs ovs-ofctl --bundle add-flows with a
// flow that the switch refuses in the middle of the file (it names a
// group that does not exist) against ovsxdp and a sandboxed Open vSwitch
// 3.1, in OpenFlow 1.3 (ONF's bundles) and 1.4: a bundle is all or
// nothing, so both keep only the flow they had, and ovs-ofctl prints the
// same errors for both. Once the group exists the same bundle installs
// every flow in both, and --bundle replace-flows replaces them in both.
func TestOpenFlowBundleMatchesOVS(t *testing.T) {
	ref := ovsref.StartShared(t, "br0", []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}, {Name: "p3", OFPort: 3}})
	s := startOFSwitch(t)
	dir := t.TempDir()
	write := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flows := write("flows.txt",
		"priority=10,in_port=1,actions=output:2",
		"priority=20,ip,actions=group:9",
		"priority=30,in_port=2,actions=output:1")
	replace := write("replace.txt",
		"priority=40,in_port=3,actions=output:1",
		"priority=20,ip,actions=group:9")
	group := write("groups.txt", "group_id=9,type=all,bucket=output:3")
	// OpenFlow 1.3's bundles are ONF's extension, 1.4's the standard ones.
	for _, v := range []string{"OpenFlow13", "OpenFlow14"} {
		t.Run(v, func(t *testing.T) {
			if err := ref.DelFlows(); err != nil {
				t.Fatal(err)
			}
			s.run(t, v, "del-flows")
			s.run(t, "OpenFlow15", "del-groups")

			// both runs ovs-ofctl -O v with args against each switch and
			// returns what it printed to its standard error, xids left out,
			// and whether it failed.
			both := func(args ...string) (got, want string, gotFail, wantFail bool) {
				t.Helper()
				var opts []string
				for len(args) > 0 && strings.HasPrefix(args[0], "--") {
					opts, args = append(opts, args[0]), args[1:]
				}
				_, errOut, err := s.try(v, opts, args[0], args[1:]...)
				refArgs := append(append([]string{"-O", v}, opts...), args[0], ref.Bridge)
				_, refErr, rerr := ref.OfctlStderr(append(refArgs, args[1:]...)...)
				return bundleStderr(errOut), bundleStderr(refErr), err != nil, rerr != nil
			}
			dumps := func(when string) {
				t.Helper()
				want, err := ref.DumpFlows(v)
				if err != nil {
					t.Fatal(err)
				}
				if got := ovsref.NormaliseDump(s.run(t, v, "dump-flows", "--no-stats")); got != want {
					t.Errorf("%s: ovs-ofctl dump-flows --no-stats\novsxdp:\n%s\nOpen vSwitch:\n%s", when, got, want)
				}
			}

			if got, want, gf, wf := both("add-flow", "priority=1,actions=drop"); gf || wf {
				t.Fatalf("ovs-ofctl add-flow: ovsxdp %q, Open vSwitch %q", got, want)
			}
			got, want, gotFail, wantFail := both("--bundle", "add-flows", flows)
			if !wantFail || !strings.Contains(want, "OFPBAC_BAD_OUT_GROUP") || !strings.Contains(want, "OFPBFC_MSG_FAILED") {
				t.Errorf("Open vSwitch answered a bundle with a refused flow with (failed %v):\n%s", wantFail, want)
			}
			if gotFail != wantFail || got != want {
				t.Errorf("ovs-ofctl --bundle add-flows with a refused flow: ovsxdp (failed %v):\n%s\nOpen vSwitch (failed %v):\n%s", gotFail, got, wantFail, want)
			}
			dumps("after a bundle with a refused flow")

			for _, args := range [][]string{
				{"add-groups", group},
				{"--bundle", "add-flows", flows},
				{"--bundle", "replace-flows", replace},
			} {
				if got, want, gf, wf := both(args...); gf || wf || got != want {
					t.Fatalf("ovs-ofctl %s: ovsxdp (failed %v) %q, Open vSwitch (failed %v) %q", strings.Join(args, " "), gf, got, wf, want)
				}
				dumps("after ovs-ofctl " + strings.Join(args, " "))
			}
		})
	}
}
