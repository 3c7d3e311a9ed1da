// Package netns builds test topologies out of network namespaces and veth
// pairs: namespaces with unique names, veths with a chosen number of
// queues, addresses, neighbours, commands and background processes run
// inside a namespace. Everything it creates is removed when the test ends,
// whether it passed or failed. It needs root and iproute2; without them
// the test is skipped (failed under CI=true).
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// commandTimeout bounds every configuration command.
const commandTimeout = 30 * time.Second

// Suffix returns a short random hex string that makes names unique across
// tests running in parallel.
func Suffix() string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// Require skips the test (fails it under CI=true) unless it runs as root
// with iproute2 installed.
func Require(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "ip", "iproute2")
}

// NS is a network namespace created for a test.
type NS struct {
	Name string
	t    testing.TB

	mu      sync.Mutex // protects deleted
	deleted bool
}

// New creates the namespace "ovsxdp-ROLE-SUFFIX" with its loopback up and
// IPv6 off (no router solicitations or DAD traffic in the tests), and
// deletes it when the test ends.
func New(t testing.TB, role string) *NS {
	t.Helper()
	Require(t)
	n := &NS{Name: "ovsxdp-" + role + "-" + Suffix(), t: t}
	if out, err := run("ip", "netns", "add", n.Name); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(func() {
		if err := n.Delete(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	n.IP(t, "link", "set", "lo", "up")
	for _, f := range []string{"all", "default"} {
		n.MustRun(t, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/"+f+"/disable_ipv6")
	}
	return n
}

// Path is the namespace's file, as XSKConfig.Netns wants it.
func (n *NS) Path() string { return "/var/run/netns/" + n.Name }

// Delete deletes the namespace's name. The namespace itself, with its
// devices, goes away once no process or socket holds it. Delete is
// idempotent.
func (n *NS) Delete() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.deleted {
		return nil
	}
	n.deleted = true
	if out, err := run("ip", "netns", "del", n.Name); err != nil {
		return fmt.Errorf("ip netns del %s: %v: %s", n.Name, err, out)
	}
	return nil
}

// Command returns a command that runs args inside the namespace.
func (n *NS) Command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// Run runs args inside the namespace and returns its combined output.
func (n *NS) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := n.Command(ctx, args...).CombinedOutput()
	return string(out), err
}

// MustRun is Run that fails the test on error.
func (n *NS) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Run(args...)
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// IP runs "ip -n NAME args" and fails the test on error.
func (n *NS) IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.TryIP(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TryIP runs "ip -n NAME args".
func (n *NS) TryIP(args ...string) (string, error) {
	out, err := run("ip", append([]string{"-n", n.Name}, args...)...)
	if err != nil {
		return out, fmt.Errorf("ip -n %s %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return out, nil
}

// AddAddr adds the address cidr (such as 10.0.0.1/24) to dev.
func (n *NS) AddAddr(t testing.TB, dev, cidr string) {
	t.Helper()
	n.IP(t, "addr", "add", cidr, "dev", dev)
}

// SetNeigh adds a permanent neighbour entry ip → mac on dev.
func (n *NS) SetNeigh(t testing.TB, dev, ip string, mac net.HardwareAddr) {
	t.Helper()
	n.IP(t, "neigh", "replace", ip, "lladdr", mac.String(), "dev", dev, "nud", "permanent")
}

// MAC returns dev's hardware address.
func (n *NS) MAC(t testing.TB, dev string) net.HardwareAddr {
	t.Helper()
	var links []struct {
		Address string `json:"address"`
	}
	out := n.IP(t, "-j", "link", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show %s: %v: %s", dev, err, out)
	}
	mac, err := net.ParseMAC(links[0].Address)
	if err != nil {
		t.Fatalf("%s: %v", dev, err)
	}
	return mac
}

// XDPAttached reports whether dev has an XDP program attached, as
// "ip -d link show" reports it.
func (n *NS) XDPAttached(t testing.TB, dev string) bool {
	t.Helper()
	var links []struct {
		XDP json.RawMessage `json:"xdp"`
	}
	out := n.IP(t, "-j", "-d", "link", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j -d link show %s: %v: %s", dev, err, out)
	}
	return len(links[0].XDP) > 0 && string(links[0].XDP) != "null"
}

// Veth is a veth pair: Host in HostNS (the side a datapath port opens),
// Peer in PeerNS (the side a traffic endpoint uses).
type Veth struct {
	Host, Peer     string
	HostNS, PeerNS *NS
}

// AddVeth creates a veth pair host (in hostNS) – peer (in peerNS) with
// queues rx and tx queues on each end, brings both ends up and turns tx
// checksum offload off on the peer: an AF_XDP datapath hands frames over
// without completing offloaded checksums. The pair goes away with its
// namespaces.
func AddVeth(t testing.TB, hostNS *NS, host string, peerNS *NS, peer string, queues int) *Veth {
	t.Helper()
	q := fmt.Sprint(queues)
	hostNS.IP(t, "link", "add", host, "numtxqueues", q, "numrxqueues", q, "type", "veth",
		"peer", "name", peer, "netns", peerNS.Name, "numtxqueues", q, "numrxqueues", q)
	testenv.RequireTool(t, "ethtool", "ethtool")
	peerNS.MustRun(t, "ethtool", "-K", peer, "tx", "off")
	hostNS.IP(t, "link", "set", host, "up")
	peerNS.IP(t, "link", "set", peer, "up")
	return &Veth{Host: host, Peer: peer, HostNS: hostNS, PeerNS: peerNS}
}

// Process is a background process started in a namespace, in a process
// group of its own.
type Process struct {
	Cmd  *exec.Cmd
	out  *SyncBuffer
	done chan struct{}
	err  error
}

// Start starts args in the namespace in the background. The process (and
// its process group) is killed when the test ends, if it still runs.
func (n *NS) Start(t testing.TB, args ...string) *Process {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
	p := &Process{Cmd: cmd, out: new(SyncBuffer), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s in %s: %v", strings.Join(args, " "), n.Name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.Kill)
	return p
}

// Kill kills the process's group with SIGKILL and waits for the process.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck // it may be gone already
	<-p.done
}

// Wait waits for the process to exit, up to timeout, and returns its
// error (context.DeadlineExceeded on timeout).
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return context.DeadlineExceeded
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output is what the process wrote so far (stdout and stderr).
func (p *Process) Output() string { return p.out.String() }

// WaitOutput waits until the process's output contains s, up to timeout.
func (p *Process) WaitOutput(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Output(), s) {
		if p.Exited() {
			return fmt.Errorf("process exited (%v) before printing %q: %s", p.err, s, p.Output())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q after %v: %s", s, timeout, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// SyncBuffer is a bytes.Buffer safe for one writer (such as exec's copying
// goroutine) and concurrent readers.
type SyncBuffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
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

func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %v: %w", commandTimeout, err)
	}
	return string(out), err
}

// FDs counts the process's open file descriptors.
func FDs() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	return len(ents), err
}
