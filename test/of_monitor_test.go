package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// Flow monitors (ovs-ofctl monitor BR watch:) against ovsxdp and against
// Open vSwitch 3.1: the same flow changes give the same updates.

// ofMonitor is a running `ovs-ofctl monitor` and what it printed so far.
type ofMonitor struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out bytes.Buffer
}

func (m *ofMonitor) Write(b []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.Write(b)
}

func (m *ofMonitor) text() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.String()
}

// messages is how many messages the monitor printed.
func (m *ofMonitor) messages() int { return strings.Count(m.text(), "_FLOW_MONITOR reply") }

// startMonitor starts ovs-ofctl -O version monitor target watch:... with
// OVS_RUNDIR rundir (for its control socket); it is killed when the test
// ends.
func startMonitor(t *testing.T, rundir, version, target, watch string) *ofMonitor {
	t.Helper()
	return startMonitorArgs(t, rundir, "-O", version, "--timeout=60", "monitor", target, watch)
}

// startMonitorArgs starts ovs-ofctl with args, as startMonitor does.
func startMonitorArgs(t *testing.T, rundir string, args ...string) *ofMonitor {
	t.Helper()
	m := &ofMonitor{}
	m.cmd = exec.Command("ovs-ofctl", args...)
	m.cmd.Env = append(os.Environ(), "OVS_RUNDIR="+rundir)
	m.cmd.Stdout, m.cmd.Stderr = m, m
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.cmd.Process.Kill()
		m.cmd.Wait()
	})
	return m
}

// normaliseMonitor drops ovs-ofctl's own log lines and sorts the updates
// within each message (a change of several flows lists them in the
// table's order, which differs between switches).
func normaliseMonitor(out string) string {
	var msgs [][]string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.Contains(l, "_FLOW_MONITOR reply"):
			msgs = append(msgs, []string{l})
		case strings.HasPrefix(l, " ") && len(msgs) > 0:
			msgs[len(msgs)-1] = append(msgs[len(msgs)-1], l)
		}
	}
	var b strings.Builder
	for _, m := range msgs {
		slices.Sort(m[1:])
		b.WriteString(strings.Join(m, "\n") + "\n")
	}
	return b.String()
}

// monitorWatches are the monitors each run starts, with the number of
// messages each gets from monitorSteps.
var monitorWatches = []struct {
	watch    string
	messages int
}{
	{"watch:", 12},
	{"watch:!initial,!actions,tcp", 4},
	{"watch:table=1", 3},
}

// TestFlowMonitorMatchesOVS runs the same flow changes, from ovs-ofctl,
// the CLI and flow expiry, under the same monitors on ovsxdp and on Open
// vSwitch 3.1, in OpenFlow 1.0, 1.3 and 1.5, and compares what ovs-ofctl
// monitor prints.
func TestFlowMonitorMatchesOVS(t *testing.T) {
	ports := []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}, {Name: "p3", OFPort: 3}}
	ref := ovsref.StartShared(t, "br0", ports)
	s := startOFSwitchPorts(t, ports)
	for _, v := range ofVersions {
		t.Run(v, func(t *testing.T) {
			refTarget := "unix:" + filepath.Join(ref.Dir, "br0.mgmt")
			want := runMonitorSteps(t, v, ref.Dir, refTarget, func(args ...string) {
				if _, err := ref.Ofctl(append([]string{"-O", v}, args...)...); err != nil {
					t.Fatal(err)
				}
			}, nil, func(microflow string) {
				if _, err := ref.TraceGenerate(microflow); err != nil {
					t.Fatal(err)
				}
			}, func(cmd, arg string) {
				if _, err := ref.Ofctl("-O", "OpenFlow15", cmd, refTarget, arg); err != nil {
					t.Fatal(err)
				}
			})
			got := runMonitorSteps(t, v, s.runDir, s.target, func(args ...string) {
				s.run(t, v, args[0], args[2:]...)
			}, func(args ...string) { s.d.run(t, args...) }, func(microflow string) {
				s.d.run(t, "ofproto/trace", "--generate", "br0", microflow)
			}, func(cmd, arg string) { s.run(t, "OpenFlow15", cmd, arg) })
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("ovs-ofctl -O %s monitor br0 %s\novsxdp:\n%s\nOpen vSwitch:\n%s", v, monitorWatches[i].watch, got[i], want[i])
				}
			}
		})
	}
}

// runMonitorSteps starts the monitors on a switch, makes the flow changes
// with ofctl (ovs-ofctl args, the bridge second) and, when cli is not nil,
// one of them with the ovsxdp CLI, has a learn action learn a flow with
// trace (ofproto/trace -generate of a microflow), deletes a group with
// group (an OpenFlow 1.5 ovs-ofctl command and its argument), and returns
// what each monitor printed.
func runMonitorSteps(t *testing.T, v, rundir, target string, ofctl func(args ...string), cli func(args ...string), trace func(string),
	group func(cmd, arg string)) []string {
	t.Helper()
	ofctl("del-flows", target)
	group("del-groups", "group_id=all")
	ofctl("add-flow", target, "priority=5,ip,actions=drop")
	ofctl("add-flow", target, "table=1,priority=9,reg0=1,actions=output:2")
	var mons []*ofMonitor
	for _, w := range monitorWatches {
		mons = append(mons, startMonitor(t, rundir, v, target, w.watch))
	}
	n := 0
	step := func(what string, msgs int) {
		t.Helper()
		n += msgs
		waitFor(t, func() bool { return mons[0].messages() >= n }, what+": "+mons[0].text())
	}
	for i, m := range mons {
		waitFor(t, func() bool { return m.messages() >= 1 }, "the initial reply of "+monitorWatches[i].watch)
	}
	n = 1
	ofctl("add-flow", target, "priority=7,tcp,actions=output:1")
	step("add", 1)
	ofctl("mod-flows", target, "tcp,actions=output:2")
	step("modify", 1)
	if cli != nil {
		cli("add-flow", "br0", "table=1,priority=3,actions=resubmit(,2)")
	} else {
		ofctl("add-flow", target, "table=1,priority=3,actions=resubmit(,2)")
	}
	step("add from the CLI", 1)
	ofctl("add-flow", target, "priority=1,dl_type=0x88cc,actions=learn(table=3,hard_timeout=60,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])")
	step("add a learn action", 1)
	trace("in_port=1,dl_type=0x88cc,dl_src=50:54:00:00:00:02,dl_dst=01:80:c2:00:00:0e")
	step("learn", 1)
	ofctl("add-flow", target, "priority=8,udp,idle_timeout=1,actions=drop")
	step("add, then idle expiry", 2)
	ofctl("add-flow", target, "priority=6,arp,hard_timeout=1,actions=drop")
	step("add, then hard expiry", 2)
	ofctl("del-flows", target, "tcp")
	step("delete", 1)
	ofctl("del-flows", target, "table=1")
	step("delete two", 1)
	extra := 0
	if v != "OpenFlow10" {
		// A flow with group:G cannot be told in OpenFlow 1.0: Open
		// vSwitch sends no update for it.
		group("add-group", "group_id=7,type=all,bucket=output:1")
		group("add-flow", "priority=4,udp,actions=group:7")
		step("add a flow to a group", 1)
		group("del-groups", "group_id=7")
		step("delete the group and its flow", 1)
		ofctl("del-flows", target)
		step("delete every flow", 1)
		extra = 3
	}
	out := make([]string, len(mons))
	for i, m := range mons {
		want := monitorWatches[i].messages
		if i == 0 {
			want += extra
		}
		waitFor(t, func() bool { return m.messages() >= want }, "the updates of "+monitorWatches[i].watch)
		out[i] = normaliseMonitor(m.text())
	}
	return out
}
