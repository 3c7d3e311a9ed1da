package topo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// A command runs inside a namespace through the running binary itself:
// Command starts /proc/self/exe with execArg0 as its argv[0], followed by
// the namespace's file, the command's path and its arguments. The init
// function below recognises that argv[0] before main runs, and on its
// locked thread does what "ip netns exec" does: it enters the network
// namespace, enters a mount namespace of its own in which /sys describes
// that network namespace, and execs the command, which keeps the thread's
// namespaces and the process's pid. No other program (ip, nsenter) is
// needed, and the caller's threads never change namespace.
//
// Go cannot enter a namespace in a forked child before exec (exec.Cmd
// has no hook between fork and exec), hence the second binary image.

// execArg0 is the argv[0] that makes the binary enter a namespace and
// exec a command instead of running main.
const execArg0 = "ovsxdp-topo-netns-exec"

// execFailed is the exit status when the namespace cannot be entered or
// the command cannot be executed (as a shell's "cannot execute").
const execFailed = 126

func init() {
	if len(os.Args) < 4 || os.Args[0] != execArg0 {
		return
	}
	err := enterAndExec(os.Args[1], os.Args[2], os.Args[3:])
	fmt.Fprintf(os.Stderr, "%s: %v\n", execArg0, err)
	os.Exit(execFailed)
}

// enterAndExec enters the network namespace at nsPath and execs path with
// argv; it returns only on error. The thread stays locked: it is the one
// that execs, or the process exits.
func enterAndExec(nsPath, path string, argv []string) error {
	runtime.LockOSThread()
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", nsPath, err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter network namespace %s: %w", nsPath, err)
	}
	unix.Close(fd)
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("new mount namespace: %w", err)
	}
	// Mounts made here must not propagate back to the caller's namespace.
	if err := unix.Mount("", "/", "none", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make / a slave mount: %w", err)
	}
	// A sysfs mounted from within the network namespace shows its devices
	// under /sys/class/net. If the old one cannot be unmounted, the new
	// one goes over it, read-only if the old one was.
	var flags uintptr
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil {
		var st unix.Statfs_t
		if unix.Statfs("/sys", &st) == nil && st.Flags&unix.ST_RDONLY != 0 {
			flags = unix.MS_RDONLY
		}
	}
	if err := unix.Mount(filepath.Base(nsPath), "/sys", "sysfs", flags, ""); err != nil {
		return fmt.Errorf("mount /sys: %w", err)
	}
	if err := unix.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

// Command returns a command that runs args inside the namespace, killed
// when ctx is done. Its process is the command itself (the same pid), in
// the namespace's network and a mount namespace of its own whose /sys
// shows the namespace's devices, as with "ip netns exec". A command that
// is not found fails at Start.
func (n *Namespace) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/proc/self/exe")
	if len(args) == 0 {
		cmd.Err = fmt.Errorf("in %s: no command", n.Name)
		return cmd
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		cmd.Err = err
	}
	if err == nil && !filepath.IsAbs(path) {
		// Relative to the caller's directory, which the child shares.
		path, err = filepath.Abs(path)
		if err != nil {
			cmd.Err = errors.Join(cmd.Err, err)
		}
	}
	cmd.Args = append([]string{execArg0, n.Path(), path}, args...)
	return cmd
}
