package testenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// Owner records name the test process that made something which outlives
// a killed process: a network namespace, a daemon's run directory. A test
// process that is killed (go test -timeout, a CI job cancelled) runs no
// cleanup, so a later test process sweeps what belongs to an owner that no
// longer exists, and only that: what the current process or any live
// process owns, and anything without a record, is never touched.
//
// A record is one line, "PID START": the process id and its start time
// (field 22 of /proc/PID/stat, in clock ticks since boot), so that a PID
// the kernel has given to another process since does not pass for the
// owner.

// Owner is the process a record names.
type Owner struct {
	PID   int
	Start uint64
}

// Self returns the current process as an owner.
func Self() (Owner, error) {
	pid := os.Getpid()
	start, err := startTime(pid)
	if err != nil {
		return Owner{}, fmt.Errorf("owner record: %w", err)
	}
	return Owner{PID: pid, Start: start}, nil
}

// WriteOwner writes a record naming the current process at path.
func WriteOwner(path string) error {
	o, err := Self()
	if err != nil {
		return err
	}
	return WriteOwnerOf(path, o)
}

// WriteOwnerOf writes a record naming o at path, replacing any.
func WriteOwnerOf(path string, o Owner) error {
	if err := os.WriteFile(path, []byte(fmt.Sprintf("%d %d\n", o.PID, o.Start)), 0o644); err != nil {
		return fmt.Errorf("owner record: %w", err)
	}
	return nil
}

// ReadOwner reads the record at path.
func ReadOwner(path string) (Owner, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Owner{}, fmt.Errorf("owner record: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return Owner{}, fmt.Errorf("owner record %s: %q is not \"PID START\"", path, b)
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return Owner{}, fmt.Errorf("owner record %s: %q is not \"PID START\"", path, b)
	}
	return Owner{PID: pid, Start: start}, nil
}

// Gone reports whether the owner no longer exists: no process has its
// PID, or the one that has started at another time, or it is a zombie
// (killed, not yet reaped). Where /proc cannot say, the owner counts as
// alive.
func (o Owner) Gone() bool {
	st, err := procStat(o.PID)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	return st.start != o.Start || st.state == 'Z' || st.state == 'X'
}

// Exited reports whether the process pid has exited: it is gone from
// /proc, or a zombie that its parent has not reaped yet.
func Exited(pid int) bool {
	st, err := procStat(pid)
	return errors.Is(err, fs.ErrNotExist) || err == nil && (st.state == 'Z' || st.state == 'X')
}

type stat struct {
	state byte
	start uint64
}

// procStat reads a process's state and start time from /proc/PID/stat.
// The command name, field 2, is in parentheses and may hold spaces and
// parentheses: the fields after it follow the last ')'.
func procStat(pid int) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return stat{}, fmt.Errorf("/proc/%d/stat: no command name in %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, fmt.Errorf("/proc/%d/stat: %d fields after the command name", pid, len(f))
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return stat{}, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return stat{state: f[0][0], start: start}, nil
}

func startTime(pid int) (uint64, error) {
	st, err := procStat(pid)
	return st.start, err
}

// ImpossiblePID returns a PID no process can have: the kernel's pid_max
// (PIDs are below it), for tests that fake an owner that is gone.
func ImpossiblePID() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
