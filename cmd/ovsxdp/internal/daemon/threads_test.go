package daemon

import "testing"

// TestBridgesShareThreads: the daemon's bridges run on one pool of poll
// threads, as Open vSwitch's bridges share its PMD threads: as many run
// as the largest bridge has pmds, and a thread stops when its last
// bridge is deleted.
func TestBridgesShareThreads(t *testing.T) {
	d := newTestDaemon(t, "")
	for _, c := range []struct {
		name        string
		verb        string
		args        []string
		flags       map[string]string
		wantRunning int
	}{
		{"first bridge", "add-br", []string{"br0"}, nil, 1},
		{"second bridge, same thread", "add-br", []string{"br1"}, nil, 1},
		{"bridge with two pmds", "add-br", []string{"br2"}, map[string]string{"pmds": "2"}, 2},
		{"one-pmd bridge deleted", "del-br", []string{"br0"}, nil, 2},
		{"two-pmd bridge deleted", "del-br", []string{"br2"}, nil, 1},
		{"last bridge deleted", "del-br", []string{"br1"}, nil, 0},
	} {
		if _, err := runFlags(d, c.verb, c.flags, c.args...); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := d.threads.Running(); got != c.wantRunning {
			t.Errorf("%s: %d threads run, want %d", c.name, got, c.wantRunning)
		}
	}
}
