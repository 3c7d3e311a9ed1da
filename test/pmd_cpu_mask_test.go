package test

import (
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// pinnedThreads is testenv.PinnedThreads, failing the test on error.
func pinnedThreads(t *testing.T, pid int) []int {
	t.Helper()
	cpus, err := testenv.PinnedThreads(pid)
	if err != nil {
		t.Fatal(err)
	}
	return cpus
}

// pmdHeads are the lines of pmd-stats-show that head a PMD thread's
// counters.
func pmdHeads(out string) []string {
	var heads []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "pmd thread ") {
			heads = append(heads, l)
		}
	}
	return heads
}

// TestOVSDBPMDCPUMask: other_config:pmd-cpu-mask, set with the real
// ovs-vsctl, pins the daemon's poll thread to the mask's CPU as it pins
// ovs-vswitchd's PMD thread (given an AF_XDP port, so that it has one):
// pmd-stats-show heads its counters with the same line, naming that CPU
// as core_id, exactly one of the process's threads may run there alone,
// and the bridge forwards. A mask that is not hexadecimal is refused with its
// position in the log, and the thread runs on any CPU again, as it does
// once the key is removed.
func TestOVSDBPMDCPUMask(t *testing.T) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	if runtime.NumCPU() < 2 {
		testenv.Missing(t, "a machine with at least 2 CPUs, where a pinned thread shows")
	}
	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw, a, _ := switchedHosts(t, "10.8.0", 1)
	x := startOVSDBDaemon(t, bin, sw, t.TempDir(), db.Remote())
	pid := x.proc.Cmd.Process.Pid

	vsctl := func(args ...string) {
		t.Helper()
		x.vsctl(t, db, args)
	}
	// on waits until the poll thread says it runs on core and the
	// daemon's pinned threads are those listed.
	on := func(why, core string, pinned ...int) {
		t.Helper()
		var pmd string
		var got []int
		if !netns.Eventually(20*time.Second, func() bool {
			pmd = x.cli.run(t, "pmd-stats-show")
			got = pinnedThreads(t, pid)
			return strings.Contains(pmd, "core_id "+core+":") && slices.Equal(got, pinned)
		}) {
			t.Fatalf("%s: after 20s pmd-stats-show says\n%s\nthe daemon's threads pinned to one CPU: %v; want core_id %s and %v\novsxdp output:\n%s", why, pmd, got, core, pinned, x.proc.Output())
		}
	}
	reach := func(why string) {
		t.Helper()
		if _, err := a.Run("ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "10.8.0.2"); err != nil {
			t.Fatalf("%s: p-a does not reach p-b through br0: %v", why, err)
		}
	}

	vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp")
	vsctl("add-port", "br0", "h-a", "--", "set", "interface", "h-a", "type=afxdp")
	vsctl("add-port", "br0", "h-b", "--", "set", "interface", "h-b", "type=afxdp")
	x.addNormalFlow(t, ofctl)
	// Unpinned: core_id is the thread's number.
	on("no mask", "0")
	reach("no mask")

	vsctl("set", "open_vswitch", ".", "other_config:pmd-cpu-mask=0x2")
	on("pmd-cpu-mask=0x2", "1", 1)
	reach("pmd-cpu-mask=0x2")
	ours := pmdHeads(x.cli.run(t, "pmd-stats-show"))

	s := ovsref.Start(t, "br0", nil)
	netns.AddVeth(t, s.NS(), "h-o", netns.New(t, "o"), "p-o", 1)
	if err := s.AddAFXDPPort("h-o", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Vsctl("--timeout=60", "set", "open_vswitch", ".", "other_config:pmd-cpu-mask=0x2"); err != nil {
		t.Fatal(err)
	}
	var theirs []string
	var theirPinned []int
	if !netns.Eventually(30*time.Second, func() bool {
		out, err := s.Appctl("dpif-netdev/pmd-stats-show")
		theirs, theirPinned = pmdHeads(out), pinnedThreads(t, s.VswitchdPID())
		return err == nil && strings.Join(theirs, "|") == strings.Join(ours, "|") && slices.Equal(theirPinned, []int{1})
	}) {
		t.Fatalf("with pmd-cpu-mask=0x2 ovsxdp heads its poll thread's counters %q; after 30s Open vSwitch heads its PMD threads' %q, and has threads pinned to %v (want CPU 1 alone)", ours, theirs, theirPinned)
	}
	vsctl("set", "open_vswitch", ".", "other_config:pmd-cpu-mask=1")
	on("pmd-cpu-mask=1", "0", 0)
	reach("pmd-cpu-mask=1")

	vsctl("set", "open_vswitch", ".", "other_config:pmd-cpu-mask=0x1z")
	on("pmd-cpu-mask=0x1z", "0")
	if !strings.Contains(x.proc.Output(), `'z' at position 4 is not a hexadecimal digit`) {
		t.Errorf("no error with the bad digit's position in the log:\n%s", x.proc.Output())
	}
	reach("pmd-cpu-mask=0x1z")

	vsctl("set", "open_vswitch", ".", "other_config:pmd-cpu-mask=0x2")
	on("pmd-cpu-mask=0x2 again", "1", 1)
	vsctl("remove", "open_vswitch", ".", "other_config", "pmd-cpu-mask")
	on("mask removed", "0")
	reach("mask removed")
}
