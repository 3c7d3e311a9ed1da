package topo

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ovsxdp/ovsxdp/vport/internal/nsthread"
)

// Namespace is a named network namespace of a Topology.
type Namespace struct {
	Name string
	topo *Topology

	mu      sync.Mutex // protects deleted
	deleted bool
}

// Path is the namespace's file, as vport.XSKConfig.Netns and
// vport.LinkMonitorConfig.Netns want it.
func (n *Namespace) Path() string { return filepath.Join("/var/run/netns", n.Name) }

// Delete deletes the namespace's name. The namespace itself, with its
// devices (a veth's peer too), goes away once no process or socket holds
// it. Delete is idempotent.
func (n *Namespace) Delete() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.deleted {
		return nil
	}
	n.deleted = true
	_, err := run("ip", "netns", "del", n.Name)
	return err
}

// Deleted reports whether Delete was called.
func (n *Namespace) Deleted() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.deleted
}

// IP runs "ip -n NAME args" and returns its output.
func (n *Namespace) IP(args ...string) (string, error) {
	return run("ip", append([]string{"-n", n.Name}, args...)...)
}

// AddAddr adds the address cidr (such as 10.0.0.1/24) to dev.
func (n *Namespace) AddAddr(dev, cidr string) error {
	_, err := n.IP("addr", "add", cidr, "dev", dev)
	return err
}

// SetNeigh adds a permanent neighbour entry ip → mac on dev.
func (n *Namespace) SetNeigh(dev string, ip net.IP, mac net.HardwareAddr) error {
	_, err := n.IP("neigh", "replace", ip.String(), "lladdr", mac.String(), "dev", dev, "nud", "permanent")
	return err
}

// Command returns a command that runs args inside the namespace
// (ip netns exec NAME args...), killed when ctx is done.
func (n *Namespace) Command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// Output runs args inside the namespace, bounded by ctx and
// CommandTimeout, and returns its combined output.
func (n *Namespace) Output(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	out, err := n.Command(ctx, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w: %s", n.Name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Exec runs args inside the namespace as Output does, for a command whose
// output does not matter when it succeeds.
func (n *Namespace) Exec(ctx context.Context, args ...string) error {
	_, err := n.Output(ctx, args...)
	return err
}

// sysctl writes value to /proc/sys/KEY inside the namespace.
func (n *Namespace) sysctl(key, value string) error {
	return n.Do(func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
}

// Do runs fn on an OS thread that has entered the namespace, and returns
// its error. Sockets that fn creates belong to the namespace and stay
// there after Do returns; they keep the namespace alive until closed. If
// the thread cannot go back to its own namespace it is discarded, so no
// other code runs in the wrong namespace.
func (n *Namespace) Do(fn func() error) error {
	return nsthread.Do(n.Path(), fn)
}
