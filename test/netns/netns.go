// Package netns builds test topologies with vport/topo: namespaces with
// unique names, veths with a chosen number of queues, addresses,
// neighbours, commands and background processes run inside a namespace.
// Where vport/topo returns an error, these helpers fail the test, and
// everything they create is removed when the test ends, whether it passed
// or failed; namespaces that a killed test process left are removed by a
// later one (stale.go). They need root (vport/topo runs no ip or ethtool; only IP
// needs iproute2); without it the test is skipped (failed under CI=true).
package netns

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/testenv"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// Require skips the test (fails it under CI=true) unless it runs as root.
func Require(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
}

// NS is a network namespace created for a test. The methods that take a
// testing.TB fail the test where the topo.Namespace methods of the same
// name return an error; the others (Name, Path, Delete, Do, ...) are
// topo.Namespace's.
type NS struct {
	*topo.Namespace
}

// New creates the namespace "ovsxdp-ROLE-SUFFIX" with its loopback up and
// IPv6 off (no router solicitations or DAD traffic in the tests). When the
// test ends it kills the processes started in the namespace and deletes
// it. The first call in a process deletes the namespaces that killed test
// processes left (see SweepStale).
func New(t testing.TB, role string) *NS {
	t.Helper()
	Require(t)
	staleSweep.once.Do(func() { staleSweep.err = SweepStale() })
	check(t, staleSweep.err)
	tp := topo.New("ovsxdp")
	var n *topo.Namespace
	t.Cleanup(func() {
		err := tp.Close()
		if n != nil {
			err = errors.Join(err, Disown(n))
		}
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	n, err := AddOwned(tp, role+"-"+topo.Suffix())
	check(t, err)
	return &NS{n}
}

// Run runs args inside the namespace, bounded by topo.CommandTimeout, and
// returns its combined output.
func (n *NS) Run(args ...string) (string, error) {
	return n.Output(context.Background(), args...)
}

// MustRun is Run that fails the test on error.
func (n *NS) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Run(args...)
	check(t, err)
	return out
}

// IP runs "ip -n NAME args"; the test is skipped (failed under CI=true)
// without iproute2.
func (n *NS) IP(t testing.TB, args ...string) string {
	t.Helper()
	testenv.RequireTool(t, "ip", "iproute2")
	out, err := n.Namespace.IP(args...)
	check(t, err)
	return out
}

// AddAddr adds the address cidr (such as 10.0.0.1/24) to dev.
func (n *NS) AddAddr(t testing.TB, dev, cidr string) {
	t.Helper()
	check(t, n.Namespace.AddAddr(dev, cidr))
}

// SetNeigh adds a permanent neighbour entry ip → mac on dev.
func (n *NS) SetNeigh(t testing.TB, dev, ip string, mac net.HardwareAddr) {
	t.Helper()
	addr := net.ParseIP(ip)
	if addr == nil {
		t.Fatalf("neighbour on %s in %s: %q is not an IP address", dev, n.Name, ip)
	}
	check(t, n.Namespace.SetNeigh(dev, addr, mac))
}

// MAC returns dev's hardware address.
func (n *NS) MAC(t testing.TB, dev string) net.HardwareAddr {
	t.Helper()
	mac, err := n.Namespace.MAC(dev)
	check(t, err)
	return mac
}

// XDPAttached reports whether dev has an XDP program attached.
func (n *NS) XDPAttached(t testing.TB, dev string) bool {
	t.Helper()
	ok, err := n.Namespace.XDPAttached(dev)
	check(t, err)
	return ok
}

// Veth is a veth pair: Host in HostNS (the side a datapath port opens),
// Peer in PeerNS (the side a traffic endpoint uses).
type Veth = topo.Veth

// AddVeth creates a veth pair host (in hostNS) – peer (in peerNS) with
// queues rx and tx queues on each end, as topo.AddVeth does. The pair goes
// away with its namespaces.
func AddVeth(t testing.TB, hostNS *NS, host string, peerNS *NS, peer string, queues int) *Veth {
	t.Helper()
	v, err := topo.AddVeth(hostNS.Namespace, host, peerNS.Namespace, peer, queues)
	check(t, err)
	return v
}

// Process is a background process started in a namespace, in a process
// group of its own.
type Process = topo.Process

// Start starts args in the namespace in the background. The process (and
// its process group) is killed when the test ends, if it still runs.
func (n *NS) Start(t testing.TB, args ...string) *Process {
	t.Helper()
	p, err := n.Namespace.Start(args...)
	check(t, err)
	t.Cleanup(p.Kill)
	return p
}

// Eventually polls cond every 10ms until it holds or timeout passes.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FDs counts the process's open file descriptors.
func FDs() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	return len(ents), err
}

// check fails the test with err, which vport/topo makes name what failed
// (the device and namespace, or the command and its output).
func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
