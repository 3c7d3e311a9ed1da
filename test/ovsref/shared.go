package ovsref

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// shared is the one sandboxed Open vSwitch that StartShared lends to one
// test at a time: starting and stopping a pair of daemons costs a second
// or more on a loaded machine, and most differential tests need nothing
// of them but a bridge of their own.
var shared struct {
	mu   sync.Mutex     // guards the fields below
	busy bool           // a test holds sw
	sw   *Switch        // the daemons; nil before the first lease or after they failed
	topo *topo.Topology // sw's namespace
}

// StartShared is Start on the package run's shared Open vSwitch: the
// daemons are started for the first test that asks, and a test's bridge
// is there only for the test. When the test ends, every bridge is
// deleted, and with the last bridge Open vSwitch destroys its userspace
// datapath (port numbers, megaflows, conntrack), so that the next test
// meets a switch as Start would leave it. A test that configures anything
// beyond its bridge (the database, ovs-appctl settings, devices of the
// namespace) takes Start instead. While one test holds the shared switch,
// another that asks gets a private one, as with Start. The daemons are
// stopped by StopShared, which the package's TestMain calls.
func StartShared(t testing.TB, bridge string, ports []Port) *Switch {
	t.Helper()
	Require(t)
	if err := sweepStale(); err != nil {
		t.Fatal(err)
	}
	shared.mu.Lock()
	if shared.busy {
		shared.mu.Unlock()
		return Start(t, bridge, ports)
	}
	shared.busy = true
	shared.mu.Unlock()

	d, err := sharedDaemons()
	if err != nil {
		releaseShared(false)
		t.Fatal(err)
	}
	s := &Switch{Dir: d.Dir, env: d.env, ns: d.ns}
	// Tests put files of their own in Dir (the unixctl sockets of their
	// ovs-ofctl monitors): a file left there would be found by the next
	// test that waits for its own of the same name.
	before, err := dirNames(d.Dir)
	if err != nil {
		releaseShared(false)
		t.Fatal(err)
	}
	logStart := map[string]int{}
	for _, name := range []string{"ovs-vswitchd", "ovsdb-server"} {
		logStart[name] = len(d.readLog(name))
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"ovs-vswitchd", "ovsdb-server"} {
				log := d.readLog(name)
				if l := problems(log[min(logStart[name], len(log)):]); l != "" {
					t.Logf("%s logged:\n%s", name, l)
				}
			}
		}
		err := d.clear()
		if err == nil {
			err = removeNew(d.Dir, before)
		}
		if err != nil {
			t.Errorf("shared Open vSwitch: %v (it is restarted for the next test)", err)
		}
		releaseShared(err == nil)
	})
	if err := s.addBridge(bridge, ports); err != nil {
		t.Fatal(err)
	}
	return s
}

// sharedDaemons returns the shared switch, started if it is not running.
// The caller holds the lease (shared.busy).
func sharedDaemons() (*Switch, error) {
	if shared.sw != nil {
		return shared.sw, nil
	}
	tp := topo.New("ovsxdp")
	n, err := netns.AddOwned(tp, "ovs-shared-"+topo.Suffix())
	if err != nil {
		return nil, errors.Join(err, tp.Close())
	}
	s, err := newSwitch("ovsref-", &netns.NS{Namespace: n})
	if err != nil {
		return nil, errors.Join(err, tp.Close(), netns.Disown(n))
	}
	if err := s.startDaemons(); err != nil {
		return nil, errors.Join(err, s.stopDaemons(), tp.Close(), netns.Disown(n))
	}
	shared.sw, shared.topo = s, tp
	return s, nil
}

// releaseShared ends a lease; a switch that is not ok is stopped, and the
// next lease starts another.
func releaseShared(ok bool) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.busy = false
	if !ok {
		stopSharedLocked() // the error is the test's already
	}
}

// clear deletes every bridge and checks that both daemons still run.
func (s *Switch) clear() error {
	for _, d := range []struct {
		name   string
		exited chan error
	}{{"ovs-vswitchd", s.vsExit}, {"ovsdb-server", s.dbExit}} {
		select {
		case err := <-d.exited:
			d.exited <- err
			return fmt.Errorf("%s exited: %v\n%s", d.name, err, problems(s.readLog(d.name)))
		default:
		}
	}
	out, err := s.vsctl("list-br")
	if err != nil {
		return err
	}
	args := []string{"--timeout=30"}
	for _, br := range strings.Fields(out) {
		args = append(args, "--", "del-br", br)
	}
	if len(args) == 1 {
		return nil
	}
	_, err = s.vsctl(args...)
	return err
}

// dirNames returns the names in dir.
func dirNames(dir string) (map[string]bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, e := range ents {
		names[e.Name()] = true
	}
	return names, nil
}

// removeNew removes what is in dir but not in before.
func removeNew(dir string, before map[string]bool) error {
	now, err := dirNames(dir)
	if err != nil {
		return err
	}
	var errs []error
	for n := range now {
		if !before[n] {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, n)))
		}
	}
	return errors.Join(errs...)
}

// StopShared stops the shared switch's daemons by PID, removes its
// directory and namespace; nothing happens if no test used it.
func StopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	return stopSharedLocked()
}

func stopSharedLocked() error {
	if shared.sw == nil {
		return nil
	}
	err := errors.Join(shared.sw.stopDaemons(), shared.topo.Close(), netns.Disown(shared.sw.ns.Namespace))
	shared.sw, shared.topo = nil, nil
	return err
}

// problems returns the lines of a daemon's log above level INFO.
func problems(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "|WARN|") || strings.Contains(l, "|ERR|") || strings.Contains(l, "|EMER|") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
