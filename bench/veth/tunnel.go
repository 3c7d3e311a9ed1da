package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	vtopo "github.com/ovsxdp/ovsxdp/vport/topo"
)

// The tunnel suite (-suite tunnel) runs the same measurements as the veth
// suite between two workloads that a VXLAN tunnel joins across two host
// namespaces, with ovsxdp, Open vSwitch's userspace datapath and the
// kernel's vxlan device at both ends.

// Addresses of the tunnel topology: the hosts' underlay addresses and
// the workloads'.
const (
	underlayA = "192.0.2.1"
	underlayB = "192.0.2.2"
	wlA       = "10.9.0.1"
	wlB       = "10.9.0.2"
	// wlMTU leaves room in the underlay's 1500 bytes for the outer
	// Ethernet, IPv4, UDP and VXLAN headers.
	wlMTU = "1450"
	// tunnelKey is the VXLAN VNI, tunnelPort its UDP port.
	tunnelKey  = 4242
	tunnelPort = 4789
	// tunnelOFPort is the tunnel port's OpenFlow port number in ovsxdp.
	tunnelOFPort = 10
)

// tunnelTopo is two host namespaces joined by an underlay veth (ua in
// host A, ub in host B), each with a workload namespace behind a veth
// (wa in host A to wa0 in workload A, 10.9.0.1/24; wb in host B to wb0
// in workload B, 10.9.0.2/24; MTU 1450, tx checksum offload off on wa0,
// wb0 and ub, permanent neighbour entries between the workloads). The
// embedded topo's a and b are the workload namespaces, its peers wa0 and
// wb0, so that the veth suite's measurements run between the workloads.
// The underlay addresses are the forwarders': each puts its host's where
// its datapath wants it.
type tunnelTopo struct {
	*topo
	hosts [2]string // host A's and host B's namespace names
}

// tunnelSide is one host of the tunnel topology as a forwarder sets it
// up: its namespace, underlay and workload devices, and the addresses.
type tunnelSide struct {
	ns             string
	uplink, wlDev  string
	local, remote  string // underlay addresses
	wlAddr, remWl  string // workload addresses
	underlayPrefix string
}

// side returns host i's (0: A, 1: B) view of the topology.
func (t *tunnelTopo) side(i int) tunnelSide {
	s := tunnelSide{ns: t.hosts[i], uplink: "ua", wlDev: "wa", local: underlayA, remote: underlayB, wlAddr: wlA, remWl: wlB, underlayPrefix: "/24"}
	if i == 1 {
		s = tunnelSide{ns: t.hosts[i], uplink: "ub", wlDev: "wb", local: underlayB, remote: underlayA, wlAddr: wlB, remWl: wlA, underlayPrefix: "/24"}
	}
	return s
}

// newTunnelTopo builds the tunnel topology. On error it removes what it
// built.
func newTunnelTopo() (_ *tunnelTopo, err error) {
	s := vtopo.Suffix()
	t := &tunnelTopo{topo: &topo{peerA: "wa0", peerB: "wb0", ipA: wlA, ipB: wlB,
		tp: vtopo.New(strings.TrimSuffix(nsPrefix, "-")), nss: map[string]*vtopo.Namespace{}}}
	defer func() {
		if err != nil {
			t.delete()
		}
	}()
	var ns [4]*vtopo.Namespace // host A, host B, workload A, workload B
	for i, role := range []string{"ha", "hb", "wa", "wb"} {
		if ns[i], err = t.tp.AddNamespace(role + "-" + s); err != nil {
			return nil, err
		}
		t.nss[ns[i].Name] = ns[i]
	}
	t.hosts = [2]string{ns[0].Name, ns[1].Name}
	t.a, t.b = ns[2].Name, ns[3].Name
	if _, err := vtopo.AddVeth(ns[0], "ua", ns[1], "ub", 1); err != nil {
		return nil, err
	}
	var macs [2]net.HardwareAddr
	for i, v := range []struct {
		host, peer, ip string
	}{{"wa", t.peerA, wlA}, {"wb", t.peerB, wlB}} {
		if _, err := vtopo.AddVeth(ns[i], v.host, ns[2+i], v.peer, 1); err != nil {
			return nil, err
		}
		if err := ns[2+i].AddAddr(v.peer, v.ip+"/24"); err != nil {
			return nil, err
		}
		if _, err := ns[2+i].IP("link", "set", v.peer, "mtu", wlMTU); err != nil {
			return nil, err
		}
		if macs[i], err = ns[2+i].MAC(v.peer); err != nil {
			return nil, err
		}
	}
	if err := ns[2].SetNeigh(t.peerA, net.ParseIP(wlB), macs[1]); err != nil {
		return nil, err
	}
	if err := ns[3].SetNeigh(t.peerB, net.ParseIP(wlA), macs[0]); err != nil {
		return nil, err
	}
	return t, nil
}

// leftovers lists what a configuration left behind: XDP programs on any
// device of the topology, bridges or vxlan devices and addresses on the
// underlay in the host namespaces, processes in any namespace.
func (t *tunnelTopo) leftovers() []string {
	var found []string
	for _, d := range []struct{ ns, dev string }{{t.hosts[0], "ua"}, {t.hosts[1], "ub"}, {t.hosts[0], "wa"}, {t.hosts[1], "wb"}, {t.a, t.peerA}, {t.b, t.peerB}} {
		attached, err := t.nss[d.ns].XDPAttached(d.dev)
		switch {
		case err != nil:
			found = append(found, err.Error())
		case attached:
			found = append(found, "XDP program on "+d.dev)
		}
	}
	for _, h := range t.hosts {
		for _, kind := range []string{"bridge", "vxlan", "openvswitch"} {
			if out, err := sh("ip", "-n", h, "-br", "link", "show", "type", kind); err != nil {
				found = append(found, err.Error())
			} else if s := strings.TrimSpace(out); s != "" {
				found = append(found, fmt.Sprintf("%s device in %s: %s", kind, h, s))
			}
		}
	}
	for _, ns := range append(t.hosts[:], t.a, t.b) {
		out, err := sh("ip", "netns", "pids", ns)
		if err != nil {
			found = append(found, err.Error())
		} else if s := strings.Join(strings.Fields(out), " "); s != "" {
			found = append(found, fmt.Sprintf("processes in %s: %s", ns, s))
		}
	}
	return found
}

// tunnelForwarder is one tunnel configuration: both ends of the tunnel.
type tunnelForwarder interface {
	start(t *tunnelTopo) error
	// pids are the processes that forward in user space (none when the
	// kernel forwards).
	pids() []int
	stop() error
}

// ledgerChecker is a tunnel configuration whose switches account for
// every packet; ledger checks the accounts once traffic has stopped.
type ledgerChecker interface {
	ledger() (string, error)
}

// tunnelConfigs are the tunnel suite's configurations.
var tunnelConfigs = []config{
	{"ovsxdp-vxlan", "ovsxdp", "the ovsxdp daemon (`ovsxdp daemon`, built from ./cmd/ovsxdp) in each host namespace, set up as Open vSwitch is for native tunnelling: br-phy with the underlay veth (afxdp) and an internal port phy0 holding the underlay address, br-int with the workload veth (afxdp) and a vxlan port (remote_ip, key); both bridges `actions=normal`; add-br defaults (1 adaptive poll thread per bridge, br-int's and br-phy's both run on the daemon's thread 0; segment coalescing on)", nil},
	{"ovs-vxlan", "ovs", "Open vSwitch's userspace datapath in each host namespace (its own ovsdb-server and ovs-vswitchd): br-phy (datapath_type=netdev) with the underlay veth as type=afxdp and the underlay address on br-phy, br-int (netdev) with the workload veth as type=afxdp and a vxlan port (options:remote_ip, options:key); the NORMAL action; default busy-polling PMD, as veth's ovs-pmd", nil},
	{"ovs-vxlan-maxsleep", "ovs", "the same with other_config:pmd-maxsleep=50, as veth's ovs-maxsleep", nil},
	{"kernel-vxlan", "kernel", "the kernel: in each host namespace a vxlan device (id, remote, local, dev the underlay veth, dstport 4789) and the workload veth in a Linux bridge, the underlay address on the underlay veth", nil},
}

// newTunnelForwarder returns configuration name's forwarder.
func newTunnelForwarder(name string) (tunnelForwarder, error) {
	switch name {
	case "ovsxdp-vxlan":
		return &ovsxdpTunnel{}, nil
	case "ovs-vxlan":
		return &ovsTunnel{}, nil
	case "ovs-vxlan-maxsleep":
		return &ovsTunnel{maxSleep: 50}, nil
	case "kernel-vxlan":
		return &kernelTunnel{}, nil
	}
	return nil, fmt.Errorf("no tunnel configuration %q", name)
}

// ovsxdpTunnel is an ovsxdp daemon at each end.
type ovsxdpTunnel struct {
	hosts [2]*ovsxdpDaemonFwd
}

func (f *ovsxdpTunnel) start(t *tunnelTopo) error {
	for i := range f.hosts {
		s := t.side(i)
		d := &ovsxdpDaemonFwd{}
		f.hosts[i] = d
		if err := d.launch(s.ns); err != nil {
			return err
		}
		d.bridges = []string{"brint", "brphy"}
		for _, args := range [][]string{
			{"add-br", "brphy"},
			{"add-port", "brphy", s.uplink, "type=afxdp"},
			{"add-port", "brphy", "phy0", "type=internal"},
			{"add-flow", "brphy", "actions=normal"},
		} {
			if _, err := d.cli(args...); err != nil {
				return err
			}
		}
		if _, err := sh("ip", "-n", s.ns, "addr", "add", s.local+s.underlayPrefix, "dev", "phy0", "nodad"); err != nil {
			return err
		}
		if _, err := sh("ip", "-n", s.ns, "link", "set", "phy0", "up"); err != nil {
			return err
		}
		for _, args := range [][]string{
			{"add-br", "brint"},
			{"add-port", "brint", s.wlDev, "type=afxdp"},
			{"add-port", "brint", "vx0", "type=vxlan", "ofport=" + strconv.Itoa(tunnelOFPort), "remote_ip=" + s.remote, "key=" + strconv.Itoa(tunnelKey), "dst_port=" + strconv.Itoa(tunnelPort)},
			{"add-flow", "brint", "actions=normal"},
		} {
			if _, err := d.cli(args...); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *ovsxdpTunnel) pids() []int {
	var p []int
	for _, d := range f.hosts {
		if d != nil {
			p = append(p, d.pid())
		}
	}
	return p
}

func (f *ovsxdpTunnel) stop() error {
	var errs []error
	for _, d := range f.hosts {
		if d != nil {
			errs = append(errs, d.stop())
		}
	}
	return errors.Join(errs...)
}

// ledger checks both daemons' accounts, as the tunnel tests do: on each
// host, every packet the two bridges received went out one port, was
// dropped with a reason, or was decapsulated, and each decapsulated
// packet was received on the vxlan port; so the rx of both bridges is
// their tx, their ingress drops and the vxlan port's rx. Counters settle
// after the last packet, so it asks for up to 20 seconds. It returns the
// drops by reason of both hosts.
func (f *ovsxdpTunnel) ledger() (string, error) {
	var drops []string
	for i, d := range f.hosts {
		host := string(rune('A' + i))
		var last ledgerResult
		var err error
		deadline := time.Now().Add(20 * time.Second)
		for {
			var in, phy string
			if in, err = d.cli("dump-ports", "brint"); err == nil {
				if phy, err = d.cli("dump-ports", "brphy"); err == nil {
					last, err = checkLedger(in, phy, strconv.Itoa(tunnelOFPort))
				}
			}
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			return strings.Join(drops, "; "), fmt.Errorf("host %s: %w", host, err)
		}
		drops = append(drops, fmt.Sprintf("host %s: %s", host, last.summary()))
	}
	return strings.Join(drops, "; "), nil
}

// ovsTunnel is Open vSwitch's userspace datapath at each end.
type ovsTunnel struct {
	maxSleep int
	hosts    [2]*ovsFwd
}

func (f *ovsTunnel) start(t *tunnelTopo) error {
	for i := range f.hosts {
		s := t.side(i)
		o := &ovsFwd{maxSleep: f.maxSleep}
		f.hosts[i] = o
		if err := o.launch(s.ns); err != nil {
			return err
		}
		o.bridges = []string{"br-int", "br-phy"}
		if err := o.vsctl("--timeout=30", "add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
			"--", "add-port", "br-phy", s.uplink, "--", "set", "interface", s.uplink, "type=afxdp"); err != nil {
			return err
		}
		if _, err := sh("ip", "-n", s.ns, "addr", "add", s.local+s.underlayPrefix, "dev", "br-phy", "nodad"); err != nil {
			return err
		}
		if _, err := sh("ip", "-n", s.ns, "link", "set", "br-phy", "up"); err != nil {
			return err
		}
		if err := o.vsctl("--timeout=30", "add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev",
			"--", "add-port", "br-int", s.wlDev, "--", "set", "interface", s.wlDev, "type=afxdp",
			"--", "add-port", "br-int", "vx0", "--", "set", "interface", "vx0", "type=vxlan",
			"options:remote_ip="+s.remote, "options:key="+strconv.Itoa(tunnelKey), "options:dst_port="+strconv.Itoa(tunnelPort)); err != nil {
			return err
		}
		for _, dev := range []string{s.uplink, s.wlDev, "vx0"} {
			out, err := o.vsctlOut("get", "interface", dev, "error")
			if err != nil {
				return err
			}
			if e := strings.TrimSpace(out); e != "" && e != "[]" {
				return fmt.Errorf("ovs port %s in %s: %s", dev, s.ns, e)
			}
		}
	}
	return nil
}

func (f *ovsTunnel) pids() []int {
	var p []int
	for _, o := range f.hosts {
		if o != nil {
			p = append(p, o.pid())
		}
	}
	return p
}

func (f *ovsTunnel) stop() error {
	var errs []error
	for _, o := range f.hosts {
		if o != nil {
			errs = append(errs, o.stop())
		}
	}
	return errors.Join(errs...)
}

// kernelTunnel is the kernel's vxlan device bridged to the workload at
// each end.
type kernelTunnel struct {
	t *tunnelTopo
}

func (f *kernelTunnel) start(t *tunnelTopo) error {
	f.t = t
	for i := range t.hosts {
		s := t.side(i)
		for _, st := range [][]string{
			{"addr", "add", s.local + s.underlayPrefix, "dev", s.uplink, "nodad"},
			{"link", "add", "vx0", "type", "vxlan", "id", strconv.Itoa(tunnelKey), "remote", s.remote, "local", s.local,
				"dev", s.uplink, "dstport", strconv.Itoa(tunnelPort)},
			{"link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"},
			{"link", "set", "vx0", "master", "br0", "up"},
			{"link", "set", s.wlDev, "master", "br0", "up"},
			{"link", "set", "br0", "up"},
		} {
			if _, err := sh("ip", append([]string{"-n", s.ns}, st...)...); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *kernelTunnel) pids() []int { return nil }

func (f *kernelTunnel) stop() error {
	if f.t == nil {
		return nil
	}
	var errs []error
	for i := range f.t.hosts {
		s := f.t.side(i)
		for _, st := range [][]string{
			{"link", "del", "br0"},
			{"link", "del", "vx0"},
			{"addr", "del", s.local + s.underlayPrefix, "dev", s.uplink},
		} {
			if _, err := sh("ip", append([]string{"-n", s.ns}, st...)...); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
				errs = append(errs, err)
			}
		}
	}
	f.t = nil
	return errors.Join(errs...)
}

// runTunnel builds the tunnel topology, runs configuration c on it,
// measures, checks the ledger of a configuration that keeps one, and
// removes everything, checking that the configuration left nothing
// behind.
func runTunnel(ctx context.Context, o options, c config, round int) (s sample) {
	s = sample{round: round, config: c.name}
	fail := func(err error) sample {
		msg := strings.Join(strings.Fields(err.Error()), " ")
		if s.err == "" {
			s.err = msg
		} else {
			s.err += "; " + msg
		}
		return s
	}
	f, err := newTunnelForwarder(c.name)
	if err != nil {
		return fail(err)
	}
	t, err := newTunnelTopo()
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := t.delete(); err != nil {
			fail(err)
		}
		if left, err := staleNamespaces(); err != nil || len(left) > 0 {
			fail(fmt.Errorf("namespaces left after the run: %v %v", left, err))
		}
	}()
	stopped := false
	stopFwd := func() {
		if stopped {
			return
		}
		stopped = true
		if err := f.stop(); err != nil {
			fail(fmt.Errorf("stop %s: %w", c.name, err))
		}
	}
	defer stopFwd()
	if err := f.start(t); err != nil {
		return fail(fmt.Errorf("start %s: %w", c.name, err))
	}
	stopServer, err := startIperfServer(t.b, t.ipB)
	if err != nil {
		return fail(err)
	}
	defer stopServer()
	// The first packets wait for the tunnel endpoints to resolve each
	// other's underlay address.
	if err := t.reach(60 * time.Second); err != nil {
		return fail(err)
	}
	time.Sleep(200 * time.Millisecond) // the server listens by now
	if s.tcpGbps, err = measureTCP(ctx, t.topo, o.duration); err != nil {
		return fail(err)
	}
	if s.udpPps, s.cpu, err = measureUDP(ctx, t.topo, o.duration, f.pids()...); err != nil {
		return fail(err)
	}
	s.cpuPerMpkt = s.cpu.total()
	if s.xskPps, err = measureXSK(ctx, t.topo, o.duration, 0); err != nil {
		return fail(err)
	}
	// A switch may still be draining the sender's backlog, or relearning
	// after it: the RTT is measured once the path answers again.
	if err := t.reach(20 * time.Second); err != nil {
		return fail(fmt.Errorf("after the AF_XDP sender: %w", err))
	}
	if s.rttAvg, s.rttP99, s.pingCPU, err = measurePing(ctx, t.topo, o.pings); err != nil {
		return fail(err)
	}
	stopServer()
	if l, isL := f.(ledgerChecker); isL {
		drops, err := l.ledger()
		s.counters = drops
		if err != nil {
			return fail(fmt.Errorf("ledger: %w", err))
		}
	}
	stopFwd()
	if left := t.leftovers(); len(left) > 0 {
		return fail(fmt.Errorf("left behind by %s: %s", c.name, strings.Join(left, "; ")))
	}
	return s
}

var (
	portRowRe  = regexp.MustCompile(`(?m)^  port +(\S+): rx pkts=(\d+),`)
	txRowRe    = regexp.MustCompile(`(?m)^ +tx pkts=(\d+),`)
	dropsRowRe = regexp.MustCompile(`(?m)^ +(rx|tx) dropped by reason: (.*)$`)
	reasonRe   = regexp.MustCompile(`([a-z][a-z0-9-]*)=(\d+)`)
)

// portRow is one port's row of the CLI's dump-ports.
type portRow struct {
	port      string
	rx, tx    uint64
	rxDrops   uint64
	rxReasons map[string]uint64
	txReasons map[string]uint64
}

// parseDumpPorts reads the rows of dump-ports' output, in order.
func parseDumpPorts(dump string) ([]portRow, error) {
	var rows []portRow
	starts := portRowRe.FindAllStringSubmatchIndex(dump, -1)
	for i, st := range starts {
		end := len(dump)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		block := dump[st[0]:end]
		r := portRow{port: dump[st[2]:st[3]], rxReasons: map[string]uint64{}, txReasons: map[string]uint64{}}
		var err error
		if r.rx, err = strconv.ParseUint(dump[st[4]:st[5]], 10, 64); err != nil {
			return nil, fmt.Errorf("dump-ports: port %s: rx %w", r.port, err)
		}
		m := txRowRe.FindStringSubmatch(block)
		if m == nil {
			return nil, fmt.Errorf("dump-ports: port %s: no tx row", r.port)
		}
		if r.tx, err = strconv.ParseUint(m[1], 10, 64); err != nil {
			return nil, fmt.Errorf("dump-ports: port %s: tx %w", r.port, err)
		}
		for _, d := range dropsRowRe.FindAllStringSubmatch(block, -1) {
			into := r.rxReasons
			if d[1] == "tx" {
				into = r.txReasons
			}
			for _, x := range reasonRe.FindAllStringSubmatch(d[2], -1) {
				v, err := strconv.ParseUint(x[2], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("dump-ports: port %s: %s drop %s: %w", r.port, d[1], x[1], err)
				}
				into[x[1]] += v
				if d[1] == "rx" {
					r.rxDrops += v
				}
			}
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("dump-ports: no port rows in %q", dump)
	}
	return rows, nil
}

// ledgerResult is one host's account: what its bridges received, sent and
// dropped, what the tunnel port decapsulated, and the drops by reason.
type ledgerResult struct {
	rx, tx, drops, decap, tunTx uint64
	// reasons are "bridge port dir reason=count" for every non-zero
	// count, in dump order.
	reasons []string
}

// summary is the ledger's one-line account.
func (l ledgerResult) summary() string {
	d := "none"
	if len(l.reasons) > 0 {
		d = strings.Join(l.reasons, ", ")
	}
	return fmt.Sprintf("rx %d = tx %d + dropped %d + decapsulated %d; drops by reason: %s", l.rx, l.tx, l.drops, l.decap, d)
}

// checkLedger checks one host's accounts from dump-ports of br-int
// (holding the tunnel port, OpenFlow port tunPort) and br-phy: both
// bridges' rx must be their tx, their ingress drops and the packets the
// tunnel port decapsulated (its rx), and the tunnel must have carried
// packets both ways.
func checkLedger(dumpInt, dumpPhy, tunPort string) (ledgerResult, error) {
	var l ledgerResult
	found := false
	for _, br := range []struct{ name, dump string }{{"br-int", dumpInt}, {"br-phy", dumpPhy}} {
		rows, err := parseDumpPorts(br.dump)
		if err != nil {
			return l, fmt.Errorf("%s: %w", br.name, err)
		}
		for _, r := range rows {
			l.rx += r.rx
			l.tx += r.tx
			l.drops += r.rxDrops
			if br.name == "br-int" && r.port == tunPort {
				l.decap, l.tunTx, found = r.rx, r.tx, true
			}
			for _, dir := range []struct {
				name string
				m    map[string]uint64
			}{{"rx", r.rxReasons}, {"tx", r.txReasons}} {
				for _, reason := range sortedKeys(dir.m) {
					if n := dir.m[reason]; n > 0 {
						l.reasons = append(l.reasons, fmt.Sprintf("%s port %s %s %s=%d", br.name, r.port, dir.name, reason, n))
					}
				}
			}
		}
	}
	switch {
	case !found:
		return l, fmt.Errorf("no tunnel port %s in br-int's dump-ports", tunPort)
	case l.decap == 0 || l.tunTx == 0:
		return l, fmt.Errorf("the tunnel port carried %d packets in and %d out: want both", l.decap, l.tunTx)
	case l.rx != l.tx+l.drops+l.decap:
		return l, fmt.Errorf("packets not accounted for: %s", l.summary())
	}
	return l, nil
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
