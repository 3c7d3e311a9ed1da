// Package topo builds network topologies out of network namespaces and veth
// pairs: namespaces with their loopback up, veth pairs with a chosen number
// of queues, addresses and neighbours, commands and background processes
// run inside a namespace, and functions run on a thread that entered one.
// A Topology remembers everything it created and Close removes all of it,
// so that a caller can clean up on any exit path, including a signal.
//
// It works through netlink, the ethtool ioctl and the namespace files
// under /var/run/netns (the ip and ethtool programs are not needed), and
// needs root.
package topo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// CommandTimeout bounds every command run in a namespace (Output, Exec)
// and Namespace.IP.
const CommandTimeout = 30 * time.Second

// Errors that callers test.
var (
	// ErrClosed is returned when something is added to a closed Topology.
	ErrClosed = errors.New("topology closed")
	// ErrNamespaceDeleted is returned when a process is started in a
	// deleted namespace.
	ErrNamespaceDeleted = errors.New("namespace deleted")
)

// Suffix returns a short random hex string that makes names unique.
func Suffix() string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// Check returns an error saying what is missing when the caller is not
// root. The package runs no other program.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("not root: creating network namespaces and veths needs root")
	}
	return nil
}

// Topology is a set of namespaces (with the devices inside them) and
// background processes, named "PREFIX-ROLE". It is safe for concurrent
// use.
type Topology struct {
	prefix string

	mu     sync.Mutex // protects the fields below
	nss    []*Namespace
	procs  []*Process
	closed bool
}

// New returns an empty topology whose namespaces are named PREFIX-ROLE.
func New(prefix string) *Topology { return &Topology{prefix: prefix} }

// Prefix is the prefix of the topology's namespace names.
func (t *Topology) Prefix() string { return t.prefix }

// AddNamespace creates the namespace PREFIX-ROLE with its loopback up and
// IPv6 off (no router solicitations or address probes).
func (t *Topology) AddNamespace(role string) (*Namespace, error) {
	n := &Namespace{Name: t.prefix + "-" + role, topo: t}
	if t.isClosed() {
		return nil, ErrClosed
	}
	if err := createNamed(n.Name); err != nil {
		return nil, err
	}
	// A Close that ran meanwhile did not see n: delete it here.
	t.mu.Lock()
	closed := t.closed
	if !closed {
		t.nss = append(t.nss, n)
	}
	t.mu.Unlock()
	if closed {
		return nil, errors.Join(ErrClosed, n.Delete())
	}
	if err := n.SetLinkUp("lo"); err != nil {
		return nil, errors.Join(err, n.Delete())
	}
	for _, f := range []string{"all", "default"} {
		if err := n.sysctl("net/ipv6/conf/"+f+"/disable_ipv6", "1"); err != nil {
			return nil, errors.Join(err, n.Delete())
		}
	}
	return n, nil
}

func (t *Topology) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Namespaces returns the names of the topology's namespaces not yet
// deleted.
func (t *Topology) Namespaces() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var names []string
	for _, n := range t.nss {
		if !n.Deleted() {
			names = append(names, n.Name)
		}
	}
	return names
}

// Close kills the topology's processes (with their process groups) and
// deletes its namespaces, newest first; their devices go with them. It is
// idempotent and may be called while other goroutines use the topology;
// what they add afterwards fails with ErrClosed.
func (t *Topology) Close() error {
	t.mu.Lock()
	t.closed = true
	procs, nss := t.procs, t.nss
	t.procs, t.nss = nil, nil
	t.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	var errs []error
	for _, n := range slices.Backward(nss) {
		if err := n.Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// run runs a configuration command, bounded by CommandTimeout, and returns
// its output; its error includes the command line and its output.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v: %w", CommandTimeout, err)
		}
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
