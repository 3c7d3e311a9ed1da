// Package topo builds network topologies out of network namespaces and veth
// pairs: namespaces with their loopback up, veth pairs with a chosen number
// of queues, addresses and neighbours, commands and background processes
// run inside a namespace, and functions run on a thread that entered one.
// A Topology remembers everything it created and Close removes all of it,
// so that a caller can clean up on any exit path, including a signal.
//
// It drives iproute2 (ip) and ethtool, and needs root.
package topo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"
)

// CommandTimeout bounds every configuration command (ip, ethtool).
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

// Check returns an error naming what is missing when the caller is not
// root or a tool the package runs is not installed.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("not root: creating network namespaces and veths needs root")
	}
	for _, tool := range []struct{ name, pkg string }{{"ip", "iproute2"}, {"ethtool", "ethtool"}} {
		if _, err := exec.LookPath(tool.name); err != nil {
			return fmt.Errorf("%s not found in PATH (install the Debian package %s)", tool.name, tool.pkg)
		}
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
	if _, err := run("ip", "netns", "add", n.Name); err != nil {
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
	if _, err := n.IP("link", "set", "lo", "up"); err != nil {
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

// List returns the names of every network namespace that has one
// (ip netns list).
func List() ([]string, error) {
	out, err := run("ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// Veth is a veth pair: Host in HostNS (the side a datapath opens), Peer in
// PeerNS (the side a traffic endpoint uses).
type Veth struct {
	Host, Peer     string
	HostNS, PeerNS *Namespace
}

// AddVeth creates the veth pair host (in hostNS) – peer (in peerNS) with
// queues rx and tx queues on each end, turns tx checksum offload off on
// the peer (an AF_XDP datapath hands frames over without completing
// offloaded checksums) and brings both ends up. The pair goes away with
// either namespace.
func AddVeth(hostNS *Namespace, host string, peerNS *Namespace, peer string, queues int) (*Veth, error) {
	if queues < 1 {
		return nil, fmt.Errorf("veth %s: %d queues, want at least 1", host, queues)
	}
	q := fmt.Sprint(queues)
	if _, err := hostNS.IP("link", "add", host, "numtxqueues", q, "numrxqueues", q, "type", "veth",
		"peer", "name", peer, "netns", peerNS.Name, "numtxqueues", q, "numrxqueues", q); err != nil {
		return nil, err
	}
	v := &Veth{Host: host, Peer: peer, HostNS: hostNS, PeerNS: peerNS}
	err := peerNS.Exec(context.Background(), "ethtool", "-K", peer, "tx", "off")
	if err == nil {
		_, err = hostNS.IP("link", "set", host, "up")
	}
	if err == nil {
		_, err = peerNS.IP("link", "set", peer, "up")
	}
	if err != nil {
		if _, derr := hostNS.IP("link", "del", host); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, err
	}
	return v, nil
}

// Ifindex returns dev's interface index in the namespace.
func (n *Namespace) Ifindex(dev string) (int, error) {
	l, err := n.link(dev)
	return l.Ifindex, err
}

// MAC returns dev's hardware address.
func (n *Namespace) MAC(dev string) (net.HardwareAddr, error) {
	l, err := n.link(dev)
	if err != nil {
		return nil, err
	}
	mac, err := net.ParseMAC(l.Address)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: address %q: %w", dev, n.Name, l.Address, err)
	}
	return mac, nil
}

// XDPAttached reports whether dev has an XDP program attached.
func (n *Namespace) XDPAttached(dev string) (bool, error) {
	l, err := n.link(dev)
	return len(l.XDP) > 0 && string(l.XDP) != "null", err
}

// linkInfo is what the package reads of "ip -j -d link show".
type linkInfo struct {
	Ifindex int             `json:"ifindex"`
	Address string          `json:"address"`
	XDP     json.RawMessage `json:"xdp"`
}

func (n *Namespace) link(dev string) (linkInfo, error) {
	out, err := n.IP("-j", "-d", "link", "show", "dev", dev)
	if err != nil {
		return linkInfo{}, err
	}
	var links []linkInfo
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return linkInfo{}, fmt.Errorf("ip -j link show %s in %s: %w", dev, n.Name, err)
	}
	if len(links) != 1 {
		return linkInfo{}, fmt.Errorf("ip -j link show %s in %s: %d links, want 1", dev, n.Name, len(links))
	}
	return links[0], nil
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
