package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/ovsxdp/ovsxdp/test/testenv"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// A test process that is killed (go test -timeout, a CI job cancelled)
// deletes none of its namespaces. So each namespace the tests make has an
// owner record (testenv.WriteOwner) in OwnerDir, named as the namespace,
// written before the namespace is made and removed once it is deleted;
// SweepStale, which New runs once per process, deletes the namespaces
// whose owner is gone and in which no process runs any more. A namespace
// without a record (made by anything else) is never touched.

// OwnerDir holds the owner records of the tests' namespaces. It is on
// /run, which, like the namespaces, does not outlive a reboot.
const OwnerDir = "/run/ovsxdp-test-netns"

// staleSweep is New's once-per-process SweepStale.
var staleSweep struct {
	once sync.Once
	err  error
}

// AddOwned adds the namespace ROLE to tp (tp.AddNamespace), recording the
// current process as its owner in OwnerDir; Disown removes the record once
// the namespace is deleted.
func AddOwned(tp *topo.Topology, role string) (*topo.Namespace, error) {
	return addOwned(OwnerDir, tp, role)
}

func addOwned(ownerDir string, tp *topo.Topology, role string) (*topo.Namespace, error) {
	if err := os.MkdirAll(ownerDir, 0o755); err != nil {
		return nil, fmt.Errorf("namespace owner records: %w", err)
	}
	record := filepath.Join(ownerDir, tp.Prefix()+"-"+role)
	if err := testenv.WriteOwner(record); err != nil {
		return nil, err
	}
	n, err := tp.AddNamespace(role)
	if err != nil {
		return nil, errors.Join(err, os.Remove(record))
	}
	return n, nil
}

// Disown removes the owner record of n, made by AddOwned, if n's name is
// gone; a namespace that could not be deleted keeps its record, for a
// later process to sweep.
func Disown(n *topo.Namespace) error { return disown(OwnerDir, n.Name) }

func disown(ownerDir, name string) error {
	if _, err := os.Lstat(filepath.Join(topo.RunDir, name)); err == nil {
		return nil
	}
	if err := os.Remove(filepath.Join(ownerDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	return nil
}

// SweepStale deletes the namespaces recorded in OwnerDir whose owner is
// gone, and their records, unless a process still runs in one ("ip netns
// pids" lists it): that one is left, with its record, for a later sweep.
// What a live process owns is never touched. Other processes may sweep at
// the same time: a namespace or record that vanishes meanwhile is not an
// error.
func SweepStale() error { return sweepStale(OwnerDir) }

func sweepStale(ownerDir string) error {
	ents, err := os.ReadDir(ownerDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stale namespaces: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if err := sweepOne(ownerDir, e.Name()); err != nil {
			errs = append(errs, fmt.Errorf("stale namespace %s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// sweepOne deletes the namespace name and its record if its owner is gone
// and no process runs in it.
func sweepOne(ownerDir, name string) error {
	o, err := testenv.ReadOwner(filepath.Join(ownerDir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // swept by another process
	}
	if err != nil {
		return err
	}
	if !o.Gone() {
		return nil
	}
	ns := &topo.Namespace{Name: name}
	if mounted(ns.Path()) {
		out, err := exec.Command("ip", "netns", "pids", name).CombinedOutput()
		if err != nil && mounted(ns.Path()) {
			return fmt.Errorf("ip netns pids %s: %w: %s", name, err, strings.TrimSpace(string(out)))
		}
		if err == nil && strings.TrimSpace(string(out)) != "" {
			return nil // a process runs in it
		}
		if err := ns.Delete(); err != nil && mounted(ns.Path()) {
			return err
		}
	}
	// Not a namespace (any more): its name, if another sweep is
	// deleting it or its owner was killed before the mount.
	if err := os.Remove(ns.Path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	return disown(ownerDir, name)
}

// nsfsMagic is the file system type of a namespace file (NSFS_MAGIC).
const nsfsMagic = 0x6e736673

// mounted reports whether a namespace is mounted on path.
func mounted(path string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(path, &st) == nil && st.Type == nsfsMagic
}
