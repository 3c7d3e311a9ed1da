package topo

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Holders lists what keeps the namespace alive after Delete: every thread
// that runs in it, every open file that refers to it, and every open
// socket that belongs to it, of any process ("pid 42 (name) thread 43",
// "pid 42 (name) fd 7", "pid 42 (name) socket fd 9"). A namespace that is
// still alive with no holder is held by the kernel alone, as by a closed
// TCP connection still in its closing handshake. Holders needs the
// namespace's identity, which Delete records; before Delete it returns
// nil.
func (n *Namespace) Holders() ([]string, error) {
	n.mu.Lock()
	ino := n.ino
	n.mu.Unlock()
	if ino == 0 {
		return nil, nil
	}
	want := fmt.Sprintf("net:[%d]", ino)
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("namespace %s holders: %w", n.Name, err)
	}
	var out []string
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", p.Name())
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		who := fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(string(comm)))
		tasks, _ := os.ReadDir(filepath.Join(dir, "task"))
		for _, t := range tasks {
			if l, _ := os.Readlink(filepath.Join(dir, "task", t.Name(), "ns", "net")); l == want {
				out = append(out, who+" thread "+t.Name())
			}
		}
		fds, _ := os.ReadDir(filepath.Join(dir, "fd"))
		for _, fd := range fds {
			l, _ := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
			switch {
			case l == want:
				out = append(out, who+" fd "+fd.Name())
			case strings.HasPrefix(l, "socket:"):
				if num, err := strconv.Atoi(fd.Name()); err == nil && socketNetns(pid, num) == ino {
					out = append(out, who+" socket fd "+fd.Name())
				}
			}
		}
	}
	return out, nil
}

// socketNetns returns the inode of the network namespace of process pid's
// socket fd, or 0 if it cannot tell: it copies the descriptor
// (pidfd_getfd, Linux 5.6) and asks the socket for its namespace
// (SIOCGSKNS).
func socketNetns(pid, fd int) uint64 {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(pidfd)
	sock, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(sock)
	nsfd, err := unix.IoctlRetInt(sock, unix.SIOCGSKNS)
	if err != nil {
		return 0
	}
	defer unix.Close(nsfd)
	var st unix.Stat_t
	if unix.Fstat(nsfd, &st) != nil {
		return 0
	}
	return st.Ino
}
