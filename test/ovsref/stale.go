package ovsref

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// The daemons of a switch are children of the test process, in process
// groups of their own: when the test process is killed, they run on, in
// their run directory (and ovs-vswitchd in its namespace). So each run
// directory holds an owner record (testenv.WriteOwner) naming the test
// process, and the first switch or database of a later test process stops
// the daemons of directories whose owner is gone and removes those
// directories (sweepStale). A daemon is killed only if its pidfile in such
// a directory names a process that is that daemon (its name) running on
// that directory (its --pidfile argument); a directory without a record
// is never touched.

// ownerFile is the owner record in a run directory.
const ownerFile = "owner"

// runDirPrefixes are the patterns of the run directories, under
// os.TempDir(), of Start and StartShared, and of StartDB.
var runDirPrefixes = []string{"ovsref-", "ovsdb-"}

// daemons are the daemons a run directory may hold, by program name (as
// /proc/PID/comm has it) and pidfile name.
var daemons = []string{"ovs-vswitchd", "ovsdb-server"}

// staleExitTimeout bounds the wait for a killed daemon to exit.
const staleExitTimeout = 10 * time.Second

// makeRunDir makes a run directory with the prefix under os.TempDir(),
// with the current process's owner record.
func makeRunDir(prefix string) (string, error) {
	// A short directory: unix socket paths are at most 108 bytes.
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := testenv.WriteOwner(filepath.Join(dir, ownerFile)); err != nil {
		return "", errors.Join(err, os.RemoveAll(dir))
	}
	return dir, nil
}

// staleSweep is sweepStale's once-per-process run.
var staleSweep struct {
	once sync.Once
	err  error
}

// sweepStale, the first time it is called in the process, stops the
// daemons of run directories whose owner is gone and removes the
// directories, then deletes the namespaces such owners left
// (netns.SweepStale: ovs-vswitchd's is swept once the daemon is gone),
// then the marked taps of earlier runs in the process's namespace.
func sweepStale() error {
	staleSweep.once.Do(func() {
		staleSweep.err = errors.Join(sweepStaleDaemons(os.TempDir()), netns.SweepStale(), deleteMarkedTaps())
	})
	return staleSweep.err
}

// sweepStaleDaemons stops the daemons of the run directories under base
// whose owner is gone, and removes those directories.
func sweepStaleDaemons(base string) error {
	var errs []error
	for _, prefix := range runDirPrefixes {
		dirs, err := filepath.Glob(filepath.Join(base, prefix+"*"))
		if err != nil {
			return fmt.Errorf("stale run directories: %w", err)
		}
		for _, dir := range dirs {
			if err := sweepRunDir(dir); err != nil {
				errs = append(errs, fmt.Errorf("stale run directory %s: %w", dir, err))
			}
		}
	}
	return errors.Join(errs...)
}

// sweepRunDir stops the daemons of dir and removes it, if its owner is
// gone.
func sweepRunDir(dir string) error {
	o, err := testenv.ReadOwner(filepath.Join(dir, ownerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // not a switch's, not yet recorded, or swept meanwhile
	}
	if err != nil {
		return err
	}
	if !o.Gone() {
		return nil
	}
	for _, name := range daemons {
		if err := killStaleDaemon(dir, name); err != nil {
			return err // the directory stays, for a later sweep
		}
	}
	return os.RemoveAll(dir)
}

// killStaleDaemon kills the daemon name of the run directory dir, by the
// PID in its pidfile, if that process is the daemon running on dir, and
// waits for it to exit.
func killStaleDaemon(dir, name string) error {
	pidfile := filepath.Join(dir, name+".pid")
	b, err := os.ReadFile(pidfile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("pidfile %s: %q is not a PID", pidfile, b)
	}
	if !isDaemonOf(pid, name, pidfile) {
		return nil // exited; the PID may be another process's now
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s (pid %d): %w", name, pid, err)
	}
	deadline := time.Now().Add(staleExitTimeout)
	for !testenv.Exited(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (pid %d) does not exit %v after SIGKILL", name, pid, staleExitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// isDaemonOf reports whether the process pid runs the program name with
// the pidfile argument pidfile, as a switch's daemons are started.
func isDaemonOf(pid int, name, pidfile string) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	comm, err := os.ReadFile(proc + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != name || testenv.Exited(pid) {
		return false
	}
	cmdline, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		return false
	}
	return slices.Contains(strings.Split(string(cmdline), "\x00"), "--pidfile="+pidfile)
}
