package test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// ovsdbSwitch is one switch of a differential test that drives it as an
// operator would: ovs-vsctl on its database, ovs-ofctl on its bridge br0.
type ovsdbSwitch struct {
	dpType string                          // the datapath_type its bridges take
	ns     *netns.NS                       // where it runs
	vsctl  func(...string) (string, error) // ovs-vsctl on its database
	target string                          // ovs-ofctl's target for br0
}

// stepsOnBoth runs steps against a sandboxed Open vSwitch 3.1 (netdev
// datapath), then against ovsxdp configured from its own ovsdb-server,
// started only then, and returns the records each gave. steps is given
// Open vSwitch's records when it runs against ovsxdp, nil before.
func stepsOnBoth(t *testing.T, steps func(s ovsdbSwitch, want []string) []string) (want, got []string) {
	t.Helper()
	ovs := ovsref.Start(t, "brx", nil)
	want = steps(ovsdbSwitch{"netdev", ovs.NS(), ovs.Vsctl, "unix:" + filepath.Join(ovs.Dir, "br0.mgmt")}, nil)

	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	x := startOVSDBDaemon(t, bin, sw, t.TempDir(), db.Remote())
	got = steps(ovsdbSwitch{"ovsxdp", sw, db.Vsctl, "unix:" + filepath.Join(x.runDir, "br0.mgmt")}, want)
	return want, got
}

// compareSteps fails the test at every step whose records differ, one
// switch having stopped short counting as a difference.
func compareSteps(t *testing.T, want, got []string) {
	t.Helper()
	for i := 0; i < len(want) || i < len(got); i++ {
		if w, g := ifaceStepAt(want, i), ifaceStepAt(got, i); w != g {
			t.Errorf("Open vSwitch:\n%s\novsxdp:\n%s", w, g)
		}
	}
}

// stepRecords collects one record per step of a switch. Given Open
// vSwitch's records (want), each step first waits (bounded) for its
// record to read as Open vSwitch's did: a switch may apply the database
// some time after ovs-vsctl returns.
type stepRecords struct {
	want   []string      // Open vSwitch's records, or nil
	record func() string // the switch's state now
	steps  []string
}

// add records step what.
func (r *stepRecords) add(what string) {
	if r.want != nil && len(r.steps) < len(r.want) {
		w := r.want[len(r.steps)]
		netns.Eventually(30*time.Second, func() bool { return what+": "+r.record() == w })
	}
	r.steps = append(r.steps, what+": "+r.record())
}
