package ovsref

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "stop the shared Open vSwitch:", err)
		code = max(code, 1)
	}
	os.Exit(code)
}

// TestShared leases the shared switch twice, in subtests one after the
// other: the second lease has the same daemons and meets what a fresh
// switch has: no file a test left in Dir, no flow, datapath port numbers as the first's, and no
// datapath once the lease ends. A lease asked for while one is held gets a private switch.
func TestShared(t *testing.T) {
	Require(t) // the subtests would skip, and the test read their results
	ports := []Port{{"p1", 1}, {"p2", 2}, {"p3", 3}}
	type lease struct {
		pid   int
		flows string
		odp   map[int]string
	}
	var leases []lease
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			s := StartShared(t, "br0", ports)
			// A file the test leaves in Dir goes with its lease.
			left := filepath.Join(s.Dir, "left-by-the-test.ctl")
			if _, err := os.Stat(left); err == nil {
				t.Errorf("%s, left by the lease before, is still there", left)
			}
			if err := os.WriteFile(left, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			dump, err := s.DumpFlows("")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.AddFlows("", "priority=10,in_port=1,actions=output:3\n"); err != nil {
				t.Fatal(err)
			}
			if dps, err := s.Appctl("dpctl/dump-dps"); !strings.Contains(dps, "netdev@ovs-netdev") {
				t.Errorf("dpctl/dump-dps during a lease: %q (%v), want netdev@ovs-netdev", dps, err)
			}
			shared.mu.Lock()
			pid := shared.sw.vs.Process.Pid
			shared.mu.Unlock()
			leases = append(leases, lease{pid, dump, s.odpNames})

			// Asked for while held: a private switch, with a bridge of
			// the same name.
			p := StartShared(t, "br0", ports)
			if p.Dir == s.Dir {
				t.Errorf("a second lease while the first is held shares %s", s.Dir)
			}
		})
	}
	if t.Failed() {
		return
	}
	a, b := leases[0], leases[1]
	if a.pid != b.pid {
		t.Errorf("ovs-vswitchd pid %d, then %d: not shared", a.pid, b.pid)
	}
	if a.flows != "" || b.flows != "" {
		t.Errorf("flows at the start of a lease: %q, %q", a.flows, b.flows)
	}
	// With the last bridge, the userspace datapath (its megaflows and
	// conntrack) is gone.
	shared.mu.Lock()
	dps, err := shared.sw.Appctl("dpctl/dump-dps") // an error without a message when there is none
	shared.mu.Unlock()
	if strings.Contains(dps+fmt.Sprint(err), "ovs-netdev") {
		t.Errorf("datapaths after the leases: %q (%v), want none", dps, err)
	}
	if fmt.Sprint(a.odp) != fmt.Sprint(b.odp) {
		t.Errorf("datapath port numbers %v, then %v", a.odp, b.odp)
	}
}
