package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
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
// entries (no ARP during the measurements).
type topo struct {
	sw, a, b string // namespace names
	hostA    string
	hostB    string
	peerA    string
	peerB    string
}

// cmdTimeout bounds every configuration command.
const cmdTimeout = 30 * time.Second

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

// inNS runs args in namespace ns.
func inNS(ns string, args ...string) (string, error) {
	return sh("ip", append([]string{"netns", "exec", ns}, args...)...)
}

func suffix() string {
	var b [3]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newTopo builds the topology. On error it removes what it built.
func newTopo() (_ *topo, err error) {
	s := suffix()
	t := &topo{sw: nsPrefix + "sw-" + s, a: nsPrefix + "a-" + s, b: nsPrefix + "b-" + s,
		hostA: "h-a", hostB: "h-b", peerA: "p-a", peerB: "p-b"}
	defer func() {
		if err != nil {
			t.delete()
		}
	}()
	for _, ns := range []string{t.sw, t.a, t.b} {
		if _, err := sh("ip", "netns", "add", ns); err != nil {
			return nil, err
		}
		if _, err := sh("ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
		if _, err := inNS(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"); err != nil {
			return nil, err
		}
	}
	for _, v := range []struct{ host, peer, ns, ip string }{{t.hostA, t.peerA, t.a, ipA}, {t.hostB, t.peerB, t.b, ipB}} {
		steps := [][]string{
			{"ip", "-n", t.sw, "link", "add", v.host, "numtxqueues", "1", "numrxqueues", "1", "type", "veth",
				"peer", "name", v.peer, "netns", v.ns, "numtxqueues", "1", "numrxqueues", "1"},
			{"ip", "netns", "exec", v.ns, "ethtool", "-K", v.peer, "tx", "off"},
			{"ip", "-n", v.ns, "addr", "add", v.ip + "/24", "dev", v.peer},
			{"ip", "-n", t.sw, "link", "set", v.host, "up"},
			{"ip", "-n", v.ns, "link", "set", v.peer, "up"},
		}
		for _, st := range steps {
			if _, err := sh(st[0], st[1:]...); err != nil {
				return nil, err
			}
		}
	}
	macA, err := t.mac(t.a, t.peerA)
	if err != nil {
		return nil, err
	}
	macB, err := t.mac(t.b, t.peerB)
	if err != nil {
		return nil, err
	}
	if _, err := sh("ip", "-n", t.a, "neigh", "replace", ipB, "lladdr", macB, "dev", t.peerA, "nud", "permanent"); err != nil {
		return nil, err
	}
	if _, err := sh("ip", "-n", t.b, "neigh", "replace", ipA, "lladdr", macA, "dev", t.peerB, "nud", "permanent"); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *topo) mac(ns, dev string) (string, error) {
	out, err := sh("ip", "-n", ns, "-j", "link", "show", "dev", dev)
	if err != nil {
		return "", err
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return "", fmt.Errorf("ip -j link show %s in %s: %v: %s", dev, ns, err, out)
	}
	return links[0].Address, nil
}

// delete removes the namespaces, and with them the veths.
func (t *topo) delete() error {
	var errs []error
	for _, ns := range []string{t.sw, t.a, t.b} {
		if _, err := sh("ip", "netns", "del", ns); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reach pings b from a until a reply comes back or timeout passes.
func (t *topo) reach(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := inNS(t.a, "ping", "-n", "-c", "1", "-W", "1", ipB)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not reach %s after %v: %w", t.a, ipB, timeout, err)
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
	out, err := inNS(t.b, "cat", "/proc/net/snmp")
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
func inNetns(ns string, fn func() error) error {
	target, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter %s: %w", ns, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked, and dies with its goroutine's end.
		return errors.Join(ferr, fmt.Errorf("leave %s: %w", ns, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// leftovers lists what a configuration left behind in the topology: XDP
// programs on any of the four devices, bridge devices in the switch
// namespace, processes running in any of the namespaces.
func (t *topo) leftovers() []string {
	var found []string
	for _, d := range []struct{ ns, dev string }{{t.sw, t.hostA}, {t.sw, t.hostB}, {t.a, t.peerA}, {t.b, t.peerB}} {
		out, err := sh("ip", "-n", d.ns, "-j", "-d", "link", "show", "dev", d.dev)
		if err != nil {
			found = append(found, err.Error())
			continue
		}
		var links []struct {
			XDP json.RawMessage `json:"xdp"`
		}
		if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
			found = append(found, fmt.Sprintf("ip -j -d link show %s: %v", d.dev, err))
			continue
		}
		if x := links[0].XDP; len(x) > 0 && string(x) != "null" {
			found = append(found, fmt.Sprintf("XDP program on %s: %s", d.dev, x))
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

// staleNamespaces lists namespaces of an earlier run of the harness.
func staleNamespaces() ([]string, error) {
	out, err := sh("ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], nsPrefix) {
			stale = append(stale, f[0])
		}
	}
	return stale, nil
}
