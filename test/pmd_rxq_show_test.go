package test

import (
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// localQueue is the line of ovsxdp's bridge port br0, which its poll
// thread polls (Open vSwitch polls internal ports in its main thread, and
// leaves them out).
var localQueue = regexp.MustCompile(`(?m)^  port: br0 +queue-id:  0 .*\n`)

// usageFigure is a queue's usage or a thread's overhead in pmd-rxq-show.
var usageFigure = regexp.MustCompile(`(pmd usage|overhead): (NOT AVAIL|[ \d]\d+ %|\d %)`)

// withoutFigures leaves the figures out of pmd-rxq-show's lines, which two
// switches measure apart.
func withoutFigures(out string) string { return usageFigure.ReplaceAllString(out, "$1: *") }

// TestPmdRxqShowMatchesOVS: ovs-appctl dpif-netdev/pmd-rxq-show against
// ovsxdp and against Open vSwitch, configured alike with the real
// ovs-vsctl: one poll thread on CPU 1 (pmd-cpu-mask=0x2) and two AF_XDP
// ports on veths of two rx queues each (n_rxq=2). The
// two print the same lines, the figures and ovsxdp's bridge port aside
// (localQueue), with -pmd, -secs and a
// datapath named or not; and once a usage interval has ended, with pings
// crossing ovsxdp, its figures are percentages on every line.
func TestPmdRxqShowMatchesOVS(t *testing.T) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	if runtime.NumCPU() < 2 {
		testenv.Missing(t, "a machine with at least 2 CPUs, for a poll thread on CPU 1")
	}
	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw, a, _ := switchedHosts(t, "10.8.9", 2)
	x := startOVSDBDaemon(t, bin, sw, t.TempDir(), db.Remote())
	x.vsctl(t, db,
		[]string{"set", "open_vswitch", ".", "other_config:pmd-cpu-mask=0x2"},
		[]string{"add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp"},
		[]string{"add-port", "br0", "h-a", "--", "set", "interface", "h-a", "type=afxdp", "options:n_rxq=2", "ofport_request=1"},
		[]string{"add-port", "br0", "h-b", "--", "set", "interface", "h-b", "type=afxdp", "options:n_rxq=2", "ofport_request=2"},
	)
	x.addNormalFlow(t, ofctl)

	ref := ovsref.Start(t, "br0", nil)
	o := netns.New(t, "o")
	netns.AddVeth(t, ref.NS(), "h-a", o, "p-a", 2)
	netns.AddVeth(t, ref.NS(), "h-b", o, "p-b", 2)
	for _, args := range [][]string{
		{"set", "open_vswitch", ".", "other_config:pmd-cpu-mask=0x2"},
		{"add-port", "br0", "h-a", "--", "set", "interface", "h-a", "type=afxdp", "options:n_rxq=2", "ofport_request=1"},
		{"add-port", "br0", "h-b", "--", "set", "interface", "h-b", "type=afxdp", "options:n_rxq=2", "ofport_request=2"},
	} {
		if _, err := ref.Vsctl(append([]string{"--timeout=60"}, args...)...); err != nil {
			t.Fatalf("Open vSwitch: ovs-vsctl %s: %v", strings.Join(args, " "), err)
		}
	}

	// ours leaves out the bridge port's line, which must be there when
	// its thread is.
	ours := func(args ...string) string {
		t.Helper()
		out, errOut, code := ovsAppctl(t, x.runDir, "ovs-vswitchd", append([]string{"dpif-netdev/pmd-rxq-show"}, args...)...)
		if code != 0 {
			t.Fatalf("ovsxdp: ovs-appctl dpif-netdev/pmd-rxq-show %s: exit code %d: %s", strings.Join(args, " "), code, errOut)
		}
		if strings.Contains(out, "core_id 1:") && len(localQueue.FindAllString(out, -1)) != 1 {
			t.Errorf("ovsxdp: pmd-rxq-show %s lists the bridge port's queue not once:\n%s", strings.Join(args, " "), out)
		}
		return localQueue.ReplaceAllString(out, "")
	}
	theirs := func(args ...string) string {
		t.Helper()
		out, err := ref.Appctl(append([]string{"dpif-netdev/pmd-rxq-show"}, args...)...)
		if err != nil {
			t.Fatalf("Open vSwitch: ovs-appctl dpif-netdev/pmd-rxq-show %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	// Open vSwitch assigns the queues to its thread after ovs-vsctl
	// returns.
	want := `Displaying last 60 seconds pmd usage %
pmd thread numa_id 0 core_id 1:
  isolated : false
  port: h-a               queue-id:  0 (enabled)   pmd usage: *
  port: h-a               queue-id:  1 (enabled)   pmd usage: *
  port: h-b               queue-id:  0 (enabled)   pmd usage: *
  port: h-b               queue-id:  1 (enabled)   pmd usage: *
  overhead: *
`
	var got string
	if !netns.Eventually(30*time.Second, func() bool { got = withoutFigures(theirs()); return got == want }) {
		t.Fatalf("Open vSwitch, after 30s:\n%s\nwant\n%s", got, want)
	}
	for _, args := range [][]string{nil, {"-pmd", "1"}, {"-pmd", "7"}, {"-secs", "7"}, {"-secs", "60"}, {"-secs", "500"}, {"-secs", "5", "-pmd", "1", "br0"}} {
		if o, th := withoutFigures(ours(args...)), withoutFigures(theirs(args...)); o != th {
			t.Errorf("pmd-rxq-show %s: ovsxdp prints\n%s\nOpen vSwitch\n%s", strings.Join(args, " "), o, th)
		}
	}

	// Traffic, and an interval's end: every figure is a number.
	if _, err := a.Run("ping", "-n", "-c", "5", "-i", "0.2", "-W", "2", "10.8.9.2"); err != nil {
		t.Fatalf("p-a does not reach p-b through br0: %v", err)
	}
	figures := regexp.MustCompile(`(?m)^  (port: h-[ab] +queue-id:  \d \(enabled\)   pmd usage|overhead): +\d+ %$`)
	if !netns.Eventually(30*time.Second, func() bool { got = ours(); return len(figures.FindAllString(got, -1)) == 5 }) {
		t.Fatalf("after 30s, not every line of ovsxdp's pmd-rxq-show has a percentage:\n%s", got)
	}
	if o, th := withoutFigures(ours("-secs", "5")), withoutFigures(theirs("-secs", "5")); o != th {
		t.Errorf("pmd-rxq-show -secs 5 after an interval: ovsxdp prints\n%s\nOpen vSwitch\n%s", o, th)
	}
}
