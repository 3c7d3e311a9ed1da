package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// forwarder is one configuration's way of forwarding between h-a and h-b.
type forwarder interface {
	// start sets forwarding up on t.
	start(t *topo) error
	// pid is the process that forwards in user space, whose CPU time is
	// charged to forwarding; 0 when forwarding is in the kernel only.
	pid() int
	// stop tears forwarding down, leaving nothing on the devices.
	stop() error
}

// peerYielder is a forwarder that keeps an XDP program on p-a, which it
// must give up while the AF_XDP sender runs there.
type peerYielder interface {
	yieldPeerA() error
	reclaimPeerA(t *topo) error
}

// counterer is a forwarder with counters worth reporting: a summary, and
// its poll threads' average batch size and busy time per packet.
type counterer interface {
	counters() string
	batching() (packetsPerBatch, busyNsPerPacket float64)
}

// kernelDropper is a forwarder whose AF_XDP sockets count what the
// kernel dropped on receive ("rx ring full", "no fill frame").
type kernelDropper interface {
	kernelDrops() kernelDrops
}

// config is one configuration of the comparison.
type config struct {
	name  string // short name, in the CSV and the tables
	group string // ovsxdp, kernel, ovs, xdp, or ct (a stateful firewall)
	desc  string
	new   func() forwarder
}

var configs = []config{
	{"ovsxdp", "ovsxdp", "ovsxdp in-process: datapath.New (1 poll thread, adaptive idle polling on for up to 20 ms after its last packet while other threads leave it its CPU, TCP and UDP segment coalescing on: the defaults) with two AF_XDP ports (vport.OpenXSK, 1 queue each) and 2 L2 rules", func() forwarder { return &ovsxdpFwd{} }},
	{"ovsxdp-1k", "ovsxdp", "the same with 1,000 rules (998 exact UDP destination-port rules above the 2 L2 rules)", func() forwarder { return &ovsxdpFwd{manyRules: true} }},
	{"ovsxdp-nogro", "ovsxdp", "the same with 2 L2 rules and segment coalescing off (datapath.Config.DisableGRO): every packet goes through the AF_XDP socket", func() forwarder { return &ovsxdpFwd{noGRO: true} }},
	{"ovsxdp-nospare", "ovsxdp", "the same with 2 L2 rules and spare-CPU polling off (datapath.Config.SpareSpin < 0): the adaptive poll thread sleeps in poll(2) 50 µs after its last packet", func() forwarder { return &ovsxdpFwd{spareSpin: -1} }},
	{"ovsxdp-spin", "ovsxdp", "the same with 2 L2 rules and a busy-polling poll thread (datapath.IdleSpin, as OVS's PMD)", func() forwarder { return &ovsxdpFwd{idle: datapath.IdleSpin} }},
	{"bridge", "kernel", "Linux bridge with h-a and h-b as its ports", func() forwarder { return &bridgeFwd{} }},
	{"ovs-pmd", "ovs", "Open vSwitch userspace datapath (datapath_type=netdev), type=afxdp ports, default busy-polling PMD", func() forwarder { return &ovsFwd{portType: "afxdp"} }},
	{"ovs-maxsleep", "ovs", "the same with other_config:pmd-maxsleep=50", func() forwarder { return &ovsFwd{portType: "afxdp", maxSleep: 50} }},
	{"ovs-nonpmd", "ovs", "the same with type=afxdp-nonpmd ports (served by the main thread, no PMD)", func() forwarder { return &ovsFwd{portType: "afxdp-nonpmd"} }},
	{"ovsxdp-ct", "ct", "stateful firewall (the conntrack flows below): the ovsxdp daemon (`ovsxdp daemon`, built from ./cmd/ovsxdp, in the switch namespace; add-br defaults: 1 adaptive poll thread, segment coalescing on) with two afxdp ports, its tracker, flows loaded with `ovs-ofctl add-flows` on the bridge's OpenFlow socket", func() forwarder { return &ovsxdpDaemonFwd{flows: ctFlows} }},
	{"ovs-ct", "ct", "stateful firewall (the same flows): Open vSwitch as ovs-pmd (type=afxdp ports, busy-polling PMD), its userspace conntrack, flows loaded with `ovs-ofctl add-flows`", func() forwarder { return &ovsFwd{portType: "afxdp", flows: ctFlows} }},
	{"xdp-redirect", "xdp", "kernel-only XDP: a program on h-a and h-b (cilium/ebpf asm, native mode, BPF links) redirects every frame to the other (bpf_redirect_map on a DEVMAP_HASH); native redirect into a veth needs an XDP program on its peer, so p-a and p-b get one that returns XDP_PASS", func() forwarder { return &xdpFwd{} }},
}

// l2Rules forwards between OpenFlow ports 1 (h-a) and 2 (h-b).
var l2Rules = []string{"priority=100,in_port=1,actions=output:2", "priority=100,in_port=2,actions=output:1"}

// Many-flow traffic goes to flowPorts destination ports from flowPortBase;
// the 1,000-rule table has an exact rule for all but the last two of
// them, which the L2 rules carry.
const (
	flowPortBase = 20000
	flowPorts    = 1000
)

// manyRules is the 1,000-rule table.
func manyRules() []string {
	rules := append([]string(nil), l2Rules...)
	for p := flowPortBase; len(rules) < 1000; p++ {
		rules = append(rules, fmt.Sprintf("priority=200,in_port=1,udp,nw_dst=%s,tp_dst=%d,actions=output:2", ipB, p))
	}
	return rules
}

// ovsxdpFwd runs an ovsxdp bridge in this process.
type ovsxdpFwd struct {
	manyRules bool
	noGRO     bool
	idle      datapath.IdleStrategy
	spareSpin time.Duration
	br        *datapath.Bridge
	ports     []*vport.XSKPort
}

func (f *ovsxdpFwd) start(t *topo) error {
	br, err := datapath.New(datapath.Config{Name: "br-bench", PMDs: 1, Idle: f.idle, DisableGRO: f.noGRO, SpareSpin: f.spareSpin})
	if err != nil {
		return err
	}
	f.br = br
	for i, dev := range []string{t.hostA, t.hostB} {
		p, err := vport.OpenXSK(vport.XSKConfig{Device: dev, Netns: "/var/run/netns/" + t.sw})
		if err != nil {
			return err
		}
		if _, err := br.AddPort(p, uint32(i+1)); err != nil {
			p.Close()
			return err
		}
		f.ports = append(f.ports, p)
	}
	rules := l2Rules
	if f.manyRules {
		rules = manyRules()
	}
	for _, s := range rules {
		fl, err := flow.ParseFlow(s, flow.CmdAdd)
		if err != nil {
			return fmt.Errorf("rule %q: %w", s, err)
		}
		br.Table().Add(fl)
	}
	return br.Start()
}

func (f *ovsxdpFwd) pid() int { return os.Getpid() }

func (f *ovsxdpFwd) inProcess() {}

func (f *ovsxdpFwd) batching() (float64, float64) {
	if f.br == nil {
		return 0, 0
	}
	var packets, batches uint64
	var busy time.Duration
	for _, s := range f.br.PMDStats() {
		packets += s.Packets
		batches += s.Batches
		busy += s.Busy
	}
	if packets == 0 || batches == 0 {
		return 0, 0
	}
	return float64(packets) / float64(batches), float64(busy.Nanoseconds()) / float64(packets)
}

// counters summarizes the poll thread's and the ports' counters since
// start: how packets were classified, and where any were lost.
func (f *ovsxdpFwd) counters() string {
	if f.br == nil {
		return ""
	}
	var parts []string
	for _, s := range f.br.PMDStats() {
		parts = append(parts, fmt.Sprintf("pmd%d: %d packets, EMC hits %d, megaflow hits %d, upcalls %d, lost %d, %.1f packets/batch, busy %.0f ns/packet, busy %v idle %v, segments coalesced %d into %d GSO packets (%d refused), idle spins given up %d, naps %d (%v), naps not taken with frames waiting %d, longest poll gap under traffic %v",
			s.ID, s.Packets, s.EMCHits, s.MegaflowHit, s.Upcalls, s.Lost, s.PacketsPerBatch(), s.NanosPerPacket(), s.Busy.Round(time.Millisecond), s.Idle.Round(time.Millisecond),
			s.GSOSegments, s.GSOPackets, s.GSOFailed, s.SpinsGivenUp, s.Naps, s.NapTime.Round(time.Millisecond), s.NapsHeld, s.MaxPollGap.Round(time.Microsecond)))
	}
	for _, p := range f.br.Ports() {
		st := p.Stats()
		var drops []string
		for r, n := range st.Drops {
			if n > 0 {
				drops = append(drops, fmt.Sprintf("%s=%d", datapath.DropReason(r), n))
			}
		}
		for r, n := range st.TxDrops {
			if n > 0 {
				drops = append(drops, fmt.Sprintf("tx %s=%d", datapath.DropReason(r), n))
			}
		}
		parts = append(parts, fmt.Sprintf("%s: rx %d, sent %d, tx %d, drops [%s]", st.Name, st.RxPackets, st.Sent, st.TxPackets, strings.Join(drops, " ")))
	}
	for _, p := range f.ports {
		st := p.Stats()
		fs := p.FillStats()
		parts = append(parts, fmt.Sprintf("%s socket: rx dropped by the kernel: rx ring full %d, no fill frame %d; fill ring: %d of %d frames posted, fewest %d, found empty by %d polls; tx dropped %d; GSO packets sent %d",
			p.Name(), st.RxRingFull, st.RxNoFrame, fs.Posted, fs.Size, fs.Low, fs.FoundEmpty, st.TxDropped, st.TxGSO))
	}
	return strings.Join(parts, "; ")
}

// callCounters are the counters behind the poll thread's system calls:
// the ports' kernel wakeups (tx kicks, fill wakeups), the batches, the
// GSO packets (a writev each) and the naps (a nanosleep each).
func (f *ovsxdpFwd) callCounters() map[string]uint64 {
	c := map[string]uint64{}
	if f.br == nil {
		return c
	}
	for _, p := range f.ports {
		fill, tx := p.Wakeups()
		c["tx kicks"] += tx
		c["fill wakeups"] += fill
	}
	for _, s := range f.br.PMDStats() {
		c["batches"] += s.Batches
		c["GSO packets"] += s.GSOPackets
		c["naps"] += s.Naps
	}
	return c
}

func (f *ovsxdpFwd) kernelDrops() kernelDrops {
	var k kernelDrops
	for _, p := range f.ports {
		st := p.Stats()
		k.ringFull += st.RxRingFull
		k.noFrame += st.RxNoFrame
	}
	return k
}

func (f *ovsxdpFwd) resetGauges() {
	if f.br == nil {
		return
	}
	f.br.ResetMaxPollGap()
	for _, p := range f.ports {
		p.ResetFillLow()
	}
}

func (f *ovsxdpFwd) gauges() phaseGauges {
	var g phaseGauges
	if f.br == nil {
		return g
	}
	for _, s := range f.br.PMDStats() {
		g.maxPollGap = max(g.maxPollGap, s.MaxPollGap)
		g.packets += s.Packets
		g.batches += s.Batches
		g.busy += s.Busy
	}
	for i, p := range f.ports {
		fs := p.FillStats()
		if i == 0 || fs.Low < g.fillLow {
			g.fillLow, g.fillSize = fs.Low, fs.Size
		}
		g.foundEmpty += fs.FoundEmpty
		g.rxHigh, g.heldHigh = max(g.rxHigh, fs.RxHigh), max(g.heldHigh, fs.HeldHigh)
	}
	return g
}

func (f *ovsxdpFwd) stop() error {
	if f.br == nil {
		return nil
	}
	err := f.br.Close()
	f.br, f.ports = nil, nil
	return err
}

// bridgeFwd is a Linux bridge in the switch namespace.
type bridgeFwd struct{ t *topo }

func (f *bridgeFwd) start(t *topo) error {
	f.t = t
	steps := [][]string{
		{"link", "add", "br-bench", "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"link", "set", t.hostA, "master", "br-bench"},
		{"link", "set", t.hostB, "master", "br-bench"},
		{"link", "set", "br-bench", "up"},
	}
	for _, st := range steps {
		if _, err := sh("ip", append([]string{"-n", t.sw}, st...)...); err != nil {
			return err
		}
	}
	return nil
}

func (f *bridgeFwd) pid() int { return 0 }

func (f *bridgeFwd) stop() error {
	if f.t == nil {
		return nil
	}
	_, err := sh("ip", "-n", f.t.sw, "link", "del", "br-bench")
	f.t = nil
	return err
}

// ovsFwd runs Open vSwitch's ovsdb-server and ovs-vswitchd with a private
// run directory and database, ovs-vswitchd inside the switch namespace,
// both as child processes stopped by PID.
type ovsFwd struct {
	portType string
	maxSleep int      // other_config:pmd-maxsleep in µs; 0 to leave it unset
	flows    []string // nil: l2Rules

	dir     string
	env     []string
	db      *exec.Cmd
	vswitch *exec.Cmd
	// bridges are the bridges stop deletes.
	bridges []string
}

const ovsSchema = "/usr/share/openvswitch/vswitch.ovsschema"

// ensureOVS installs openvswitch-switch when ovs-vswitchd is missing.
func ensureOVS() error {
	if _, err := exec.LookPath("ovs-vswitchd"); err == nil {
		return nil
	}
	return aptInstall("openvswitch-switch")
}

func (f *ovsFwd) start(t *topo) error {
	if err := f.launch(t.sw); err != nil {
		return err
	}
	f.bridges = []string{"br-bench"}
	args := []string{"--timeout=30", "add-br", "br-bench", "--", "set", "bridge", "br-bench", "datapath_type=netdev"}
	for i, dev := range []string{t.hostA, t.hostB} {
		args = append(args, "--", "add-port", "br-bench", dev, "--", "set", "interface", dev, "type="+f.portType,
			fmt.Sprintf("ofport_request=%d", i+1))
	}
	if err := f.vsctl(args...); err != nil {
		return err
	}
	for _, dev := range []string{t.hostA, t.hostB} {
		out, err := f.vsctlOut("get", "interface", dev, "error")
		if err != nil {
			return err
		}
		if s := strings.TrimSpace(out); s != "" && s != "[]" {
			return fmt.Errorf("ovs port %s (type=%s): %s (log: %s)", dev, f.portType, s, filepath.Join(f.dir, "ovs-vswitchd.log"))
		}
	}
	if _, err := f.cmd("ovs-ofctl", "del-flows", "br-bench"); err != nil {
		return err
	}
	if f.flows != nil {
		c := exec.Command("ovs-ofctl", "--timeout=30", "add-flows", "br-bench", "-")
		c.Env = f.env
		c.Stdin = strings.NewReader(strings.Join(f.flows, "\n") + "\n")
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("ovs-ofctl add-flows br-bench -: %w: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	for _, r := range l2Rules {
		if _, err := f.cmd("ovs-ofctl", "add-flow", "br-bench", r); err != nil {
			return err
		}
	}
	return nil
}

// launch starts ovsdb-server with a fresh database in a private
// directory, and ovs-vswitchd in namespace ns, both as children of this
// process; it installs openvswitch-switch if it is missing.
func (f *ovsFwd) launch(ns string) error {
	if err := ensureOVS(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "vethbench-ovs-")
	if err != nil {
		return err
	}
	f.dir = dir
	f.env = append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_DBDIR="+dir, "OVS_LOGDIR="+dir, "OVS_SYSCONFDIR="+dir)
	db := filepath.Join(dir, "conf.db")
	if _, err := sh("ovsdb-tool", "create", db, ovsSchema); err != nil {
		return err
	}
	sock := "unix:" + filepath.Join(dir, "db.sock")
	f.db = exec.Command("ovsdb-server", db, "--remote=p"+sock, "--no-chdir",
		"--pidfile="+filepath.Join(dir, "ovsdb-server.pid"), "--unixctl="+filepath.Join(dir, "ovsdb-server.ctl"),
		"--log-file="+filepath.Join(dir, "ovsdb-server.log"))
	if err := f.startProc(f.db); err != nil {
		return fmt.Errorf("ovsdb-server: %w", err)
	}
	if err := waitFile(filepath.Join(dir, "db.sock"), 10*time.Second); err != nil {
		return fmt.Errorf("ovsdb-server: %w (log: %s)", err, filepath.Join(dir, "ovsdb-server.log"))
	}
	if err := f.vsctl("--no-wait", "init"); err != nil {
		return err
	}
	if f.maxSleep > 0 {
		if err := f.vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:pmd-maxsleep="+strconv.Itoa(f.maxSleep)); err != nil {
			return err
		}
	}
	// ip netns exec execs ovs-vswitchd in place: the child's PID is
	// ovs-vswitchd's.
	f.vswitch = exec.Command("ip", "netns", "exec", ns, "ovs-vswitchd", sock, "--no-chdir",
		"--pidfile="+filepath.Join(dir, "ovs-vswitchd.pid"), "--unixctl="+filepath.Join(dir, "ovs-vswitchd.ctl"),
		"--log-file="+filepath.Join(dir, "ovs-vswitchd.log"), "--mlockall")
	if err := f.startProc(f.vswitch); err != nil {
		return fmt.Errorf("ovs-vswitchd: %w", err)
	}
	return nil
}

func (f *ovsFwd) startProc(c *exec.Cmd) error {
	c.Env = f.env
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return c.Start()
}

func (f *ovsFwd) cmd(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Env = f.env
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (f *ovsFwd) vsctlOut(args ...string) (string, error) {
	return f.cmd("ovs-vsctl", append([]string{"--db=unix:" + filepath.Join(f.dir, "db.sock")}, args...)...)
}

func (f *ovsFwd) vsctl(args ...string) error {
	_, err := f.vsctlOut(args...)
	return err
}

func (f *ovsFwd) pid() int {
	if f.vswitch == nil || f.vswitch.Process == nil {
		return 0
	}
	return f.vswitch.Process.Pid
}

// stop deletes the bridges (ovs-vswitchd detaches its XDP programs), then
// stops ovs-vswitchd and ovsdb-server by PID.
func (f *ovsFwd) stop() error {
	var errs []error
	if f.vswitch != nil && f.vswitch.Process != nil {
		for _, br := range f.bridges {
			if err := f.vsctl("--timeout=20", "--if-exists", "del-br", br); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, stopProc(f.vswitch, "ovs-vswitchd"))
	}
	if f.db != nil && f.db.Process != nil {
		errs = append(errs, stopProc(f.db, "ovsdb-server"))
	}
	f.vswitch, f.db = nil, nil
	if f.dir != "" {
		errs = append(errs, os.RemoveAll(f.dir))
		f.dir = ""
	}
	return errors.Join(errs...)
}

// stopProc sends SIGTERM to c's process group, then SIGKILL after 10s, and
// waits for it.
func stopProc(c *exec.Cmd, name string) error {
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s (pid %d) ignored SIGTERM for 10s; killed", name, c.Process.Pid)
	}
}

// waitFile waits until path exists.
func waitFile(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s after %v", path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// aptInstall installs Debian packages, updating the package lists if the
// first attempt fails.
func aptInstall(pkgs ...string) error {
	args := append([]string{"install", "-y", "-q"}, pkgs...)
	run := func() error {
		c := exec.Command("apt-get", args...)
		c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run(); err == nil {
		return nil
	}
	if out, err := exec.Command("apt-get", "update", "-q").CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get update: %w: %s", err, out)
	}
	return run()
}
