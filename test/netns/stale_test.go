package netns

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/testenv"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// sweepSetup checks what a sweep needs and returns a PID no process can
// have and a directory for owner records.
func sweepSetup(t *testing.T) (dead int, ownerDir string) {
	t.Helper()
	Require(t)
	testenv.RequireTool(t, "ip", "iproute2")
	dead, err := testenv.ImpossiblePID()
	if err != nil {
		t.Fatal(err)
	}
	return dead, t.TempDir()
}

// TestSweepStale makes namespaces as a killed test process leaves them,
// with owner records that name a PID no process can have, beside ones
// that must stay: the sweep deletes only the stale namespace that no
// process runs in, and a stale name with no namespace mounted on it, with
// their records.
func TestSweepStale(t *testing.T) {
	dead, ownerDir := sweepSetup(t)
	tp := topo.New("loos")
	t.Cleanup(func() {
		if err := tp.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	// The stale namespace is deleted by the sweep, not by tp.
	tpStale := topo.New("loos")
	add := func(tp *topo.Topology, role string, owner *testenv.Owner) *topo.Namespace {
		t.Helper()
		n, err := addOwned(ownerDir, tp, role+"-"+topo.Suffix())
		if err != nil {
			t.Fatal(err)
		}
		if owner != nil {
			if err := testenv.WriteOwnerOf(filepath.Join(ownerDir, n.Name), *owner); err != nil {
				t.Fatal(err)
			}
		}
		return n
	}
	gone := &testenv.Owner{PID: dead, Start: 1}
	stale := add(tpStale, "stale", gone)
	t.Cleanup(func() {
		if _, err := os.Lstat(stale.Path()); err == nil {
			tpStale.Close()
		}
	})
	live := add(tp, "live", nil)
	busy := add(tp, "busy", gone)
	sleeper, err := busy.Start("sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	// The process enters the namespace after it starts.
	pid := strconv.Itoa(sleeper.Cmd.Process.Pid)
	if !Eventually(30*time.Second, func() bool {
		out, _ := exec.Command("ip", "netns", "pids", busy.Name).Output()
		return slices.Contains(strings.Fields(string(out)), pid)
	}) {
		t.Fatalf("process %s not in namespace %s after 30s", pid, busy.Name)
	}
	unrecorded, err := tp.AddNamespace("norec-" + topo.Suffix())
	if err != nil {
		t.Fatal(err)
	}
	// An owner killed between making the name and mounting the
	// namespace on it leaves a plain file.
	half := &topo.Namespace{Name: "loos-half-" + topo.Suffix()}
	if err := os.WriteFile(half.Path(), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(half.Path()) })
	if err := testenv.WriteOwnerOf(filepath.Join(ownerDir, half.Name), *gone); err != nil {
		t.Fatal(err)
	}

	if err := sweepStale(ownerDir); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name             string
		inNS             *topo.Namespace
		wantNS, wantRecd bool
	}{
		{name: "owner gone, empty", inNS: stale},
		{name: "owner gone, name not mounted", inNS: half},
		{name: "owner alive", inNS: live, wantNS: true, wantRecd: true},
		{name: "owner gone, a process runs in it", inNS: busy, wantNS: true, wantRecd: true},
		{name: "no owner record", inNS: unrecorded, wantNS: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := os.Lstat(tt.inNS.Path())
			if got := err == nil; got != tt.wantNS {
				t.Errorf("namespace %s there: %v, want %v", tt.inNS.Name, got, tt.wantNS)
			}
			_, err = os.Lstat(filepath.Join(ownerDir, tt.inNS.Name))
			if got := err == nil; got != tt.wantRecd {
				t.Errorf("owner record of %s there: %v, want %v", tt.inNS.Name, got, tt.wantRecd)
			}
		})
	}
	// A second sweep (another test process) finds nothing more to do.
	if err := sweepStale(ownerDir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(live.Path()); err != nil {
		t.Errorf("live namespace after a second sweep: %v", err)
	}
}

// TestSweepStaleConcurrently sweeps the same stale namespaces from several
// goroutines at once, as the test processes of several packages do when
// they start together: each finishes without an error, and every stale
// namespace is gone.
func TestSweepStaleConcurrently(t *testing.T) {
	dead, ownerDir := sweepSetup(t)
	tp := topo.New("loos")
	var names []*topo.Namespace
	for range 8 {
		n, err := addOwned(ownerDir, tp, "stale-"+topo.Suffix())
		if err != nil {
			t.Fatal(err)
		}
		if err := testenv.WriteOwnerOf(filepath.Join(ownerDir, n.Name), testenv.Owner{PID: dead, Start: 1}); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	t.Cleanup(func() {
		for _, n := range names {
			if _, err := os.Lstat(n.Path()); err == nil {
				n.Delete()
			}
		}
	})
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = sweepStale(ownerDir)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("sweep %d: %v", i, err)
		}
	}
	for _, n := range names {
		if _, err := os.Lstat(n.Path()); err == nil {
			t.Errorf("namespace %s is still there", n.Name)
		}
	}
	if ents, _ := os.ReadDir(ownerDir); len(ents) != 0 {
		t.Errorf("%d owner records left", len(ents))
	}
}
