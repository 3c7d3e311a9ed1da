package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	vtopo "github.com/ovsxdp/ovsxdp/vport/topo"
)

// Addresses of the two endpoints.
const (
	ipA = "10.0.0.1"
	ipB = "10.0.0.2"
)

// nsPrefix starts the name of every namespace the harness creates, so that
// leftovers of an interrupted run can be recognised.
const nsPrefix = "vethbench-"

// topo is the topology every configuration runs on: a switch namespace
// holding the host ends h-a and h-b of two veth pairs, whose peers p-a
// (10.0.0.1/24) and p-b (10.0.0.2/24) live in namespaces a and b, with tx
// checksum offload off on p-a and p-b, IPv6 off and permanent neighbour
// entries (no ARP during the measurements). vport/topo builds it.
type topo struct {
	sw, a, b string // namespace names
	hostA    string
	hostB    string
	peerA    string
	peerB    string
	// ipA and ipB are the addresses of peerA and peerB.
	ipA, ipB string

	tp  *vtopo.Topology
	nss map[string]*vtopo.Namespace // by name
}

// cmdTimeout bounds every configuration command.
const cmdTimeout = vtopo.CommandTimeout

// sh runs name args and returns its combined output, with the command in
// the error.
func sh(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// inNS runs args in the topology's namespace ns.
func (t *topo) inNS(ns string, args ...string) (string, error) {
	return t.nss[ns].Output(context.Background(), args...)
}

// newTopo builds the topology. On error it removes what it built.
func newTopo() (_ *topo, err error) {
	s := vtopo.Suffix()
	t := &topo{hostA: "h-a", hostB: "h-b", peerA: "p-a", peerB: "p-b", ipA: ipA, ipB: ipB,
		tp: vtopo.New(strings.TrimSuffix(nsPrefix, "-")), nss: map[string]*vtopo.Namespace{}}
	defer func() {
		if err != nil {
			t.delete()
		}
	}()
	var ns [3]*vtopo.Namespace // switch, a, b
	for i, role := range []string{"sw", "a", "b"} {
		if ns[i], err = t.tp.AddNamespace(role + "-" + s); err != nil {
			return nil, err
		}
		t.nss[ns[i].Name] = ns[i]
	}
	t.sw, t.a, t.b = ns[0].Name, ns[1].Name, ns[2].Name
	var macs [2]net.HardwareAddr
	for i, v := range []struct {
		host, peer, ip string
		ns             *vtopo.Namespace
	}{{t.hostA, t.peerA, ipA, ns[1]}, {t.hostB, t.peerB, ipB, ns[2]}} {
		if _, err := vtopo.AddVeth(ns[0], v.host, v.ns, v.peer, 1); err != nil {
			return nil, err
		}
		if err := v.ns.AddAddr(v.peer, v.ip+"/24"); err != nil {
			return nil, err
		}
		if macs[i], err = v.ns.MAC(v.peer); err != nil {
			return nil, err
		}
	}
	if err := ns[1].SetNeigh(t.peerA, net.ParseIP(ipB), macs[1]); err != nil {
		return nil, err
	}
	if err := ns[2].SetNeigh(t.peerB, net.ParseIP(ipA), macs[0]); err != nil {
		return nil, err
	}
	return t, nil
}

// mac returns the hardware address of dev in namespace ns.
func (t *topo) mac(ns, dev string) (string, error) {
	m, err := t.nss[ns].MAC(dev)
	return m.String(), err
}

// delete removes the namespaces, and with them the veths.
func (t *topo) delete() error { return t.tp.Close() }

// reach pings b from a until a reply comes back or timeout passes.
func (t *topo) reach(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := t.inNS(t.a, "ping", "-n", "-c", "1", "-W", "1", t.ipB)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not reach %s after %v: %w", t.a, t.ipB, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// linkStats returns the statistics of dev in namespace ns.
func linkStats(ns, dev string) (*netlink.LinkStatistics, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", ns, err)
	}
	defer nh.Close()
	lk, err := nh.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", dev, ns, err)
	}
	if lk.Attrs().Statistics == nil {
		return nil, fmt.Errorf("%s in %s: no statistics", dev, ns)
	}
	return lk.Attrs().Statistics, nil
}

// rxPacketsA is the number of packets endpoint a received.
func (t *topo) rxPacketsA() (uint64, error) {
	a, err := linkStats(t.a, t.peerA)
	if err != nil {
		return 0, err
	}
	return a.RxPackets, nil
}

// udpInB is the number of UDP datagrams that reached namespace b's UDP
// layer: delivered to a socket (InDatagrams) or refused there (InErrors,
// a full receive buffer), from b's /proc/net/snmp. Unlike p-b's packet
// counter, it counts every datagram of a GSO packet.
func (t *topo) udpInB() (uint64, error) {
	out, err := t.inNS(t.b, "cat", "/proc/net/snmp")
	if err != nil {
		return 0, err
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		var n uint64
		for i, name := range names {
			if (name == "InDatagrams" || name == "InErrors") && i < len(f) {
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("%s: /proc/net/snmp: %s %q: %w", t.b, name, f[i], err)
				}
				n += v
			}
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s: /proc/net/snmp: no Udp counters", t.b)
}

// rxPacketsB is the number of packets endpoint b received.
func (t *topo) rxPacketsB() (uint64, error) {
	b, err := linkStats(t.b, t.peerB)
	if err != nil {
		return 0, err
	}
	return b.RxPackets, nil
}

// inNetns runs fn on a thread in namespace ns.
func (t *topo) inNetns(ns string, fn func() error) error { return t.nss[ns].Do(fn) }

// leftovers lists what a configuration left behind in the topology: XDP
// programs on any of the four devices, bridge devices in the switch
// namespace, processes running in any of the namespaces.
func (t *topo) leftovers() []string {
	var found []string
	for _, d := range []struct{ ns, dev string }{{t.sw, t.hostA}, {t.sw, t.hostB}, {t.a, t.peerA}, {t.b, t.peerB}} {
		attached, err := t.nss[d.ns].XDPAttached(d.dev)
		switch {
		case err != nil:
			found = append(found, err.Error())
		case attached:
			found = append(found, "XDP program on "+d.dev)
		}
	}
	if out, err := sh("ip", "-n", t.sw, "-br", "link", "show", "type", "bridge"); err != nil {
		found = append(found, err.Error())
	} else if s := strings.TrimSpace(out); s != "" {
		found = append(found, "bridge in the switch namespace: "+s)
	}
	if out, err := sh("ip", "-n", t.sw, "-br", "link", "show", "type", "openvswitch"); err == nil && strings.TrimSpace(out) != "" {
		found = append(found, "OVS device in the switch namespace: "+strings.TrimSpace(out))
	}
	for _, ns := range []string{t.sw, t.a, t.b} {
		out, err := sh("ip", "netns", "pids", ns)
		if err != nil {
			found = append(found, err.Error())
		} else if s := strings.Join(strings.Fields(out), " "); s != "" {
			found = append(found, fmt.Sprintf("processes in %s: %s", ns, s))
		}
	}
	return found
}

// runLock is the file every run of the harness holds locked while it runs.
const runLock = "/run/ovsxdp-bench-veth.lock"

// lockRun, given runLock, makes this run the only one on the machine, or says which run
// holds the lock: a second run would take the first one's namespaces for
// leftovers and delete them, and the two would measure each other's load.
// The kernel releases the lock when the process exits, however it exits.
func lockRun(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("another run of the harness holds %s (pid %s): runs must not overlap", path, strings.TrimSpace(string(holder)))
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// staleNamespaces lists namespaces of an earlier run of the harness; only
// a run holding the run lock may call it.
func staleNamespaces() ([]string, error) {
	names, err := vtopo.List()
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, n := range names {
		if strings.HasPrefix(n, nsPrefix) {
			stale = append(stale, n)
		}
	}
	return stale, nil
}
