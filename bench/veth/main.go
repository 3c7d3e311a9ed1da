// Command veth compares ovsxdp with the other ways of switching between two
// veths on one machine, side by side, on the same topology: ovsxdp with
// AF_XDP ports (with 2 and with 1,000 rules), the Linux bridge, Open
// vSwitch's userspace datapath with AF_XDP ports in three configurations,
// and the limit, a kernel-only XDP redirect; and a stateful firewall, the
// same connection-tracking flows in the ovsxdp daemon (ovsxdp-ct) and in
// Open vSwitch (ovs-ct), compared on TCP connections per second and TCP
// throughput.
//
// It runs the configurations in alternating rounds (every configuration
// once per round, so that a change in the machine's load touches all of
// them alike; the rounds vary the order, so that no configuration always
// runs first or after the same one: roundOrder) and measures, for each,
// TCP throughput and small-packet UDP rate (iperf3), TCP connections per
// second (a generator in this program), the rate of a many-flow UDP sender, ping RTT, and the CPU
// seconds per million packets forwarded (the stateful configurations skip
// the UDP tests and the CPU count). It writes veth.csv (every sample),
// veth.md (medians, ratios of ovsxdp to every other configuration, the
// targets, the command and the machine) and veth.png to -out, and, unless
// -gobench=false, summarizes the in-memory Go benchmarks in veth.md.
//
// With -suite tunnel it runs the tunnel suite instead (tunnel.go): the
// same measurements but the connection rate and the 1,000-flow socket
// sender, between two workloads that a VXLAN tunnel joins across two host
// namespaces, with the ovsxdp daemon, Open vSwitch's userspace datapath
// and the kernel's vxlan device at both ends; it checks both ovsxdp
// daemons' packet ledgers after each run and writes tunnel.csv,
// tunnel.md (with the 1.2× Open vSwitch targets) and tunnel.png.
//
// With -only80 N it runs only the AF_XDP sender, once at full rate and
// then N times at 80% of the rate forwarded (paced.go), for the
// configurations that count their sockets' kernel drops, and prints per
// phase what was sent, received and dropped, when in the phase the drops
// and the poll thread's longest gap came, the fewest fill frames, GC
// cycles and pauses, and the poll thread's CPU time and wait for a CPU.
//
// It needs root, iproute2, ethtool and ping; it installs iperf3 and
// openvswitch-switch with apt-get when they are missing. Everything it
// creates (namespaces, veths, programs, processes) is removed after each
// configuration, on failure and on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	// suite is "veth" (the configurations on two veths) or "tunnel"
	// (the VXLAN configurations across two host namespaces).
	suite    string
	rounds   int
	duration time.Duration
	only     []config
	out      string
	gobench  bool
	profile  bool
	// census counts system calls instead of running the suite
	// (syscalls.go).
	census bool
	// censusEvents are more perf events the census counts (such as
	// uprobes on the forwarder's functions).
	censusEvents []string
	// only80 runs, instead of the suite, the AF_XDP sender's paced
	// phase this many times per configuration and round (paced.go).
	only80 int
	// only80Probe has -only80 sample the counters during each phase
	// (pacedProbe), at a cost to the process's CPU.
	only80Probe bool
	// pings is how many pings the RTT test sends, 10 ms apart.
	pings int
	// wake is the machine's measured wake-up latency (filled by run).
	wake wakeLatency
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == floodRole {
		d, err := time.ParseDuration(os.Args[3])
		if err == nil {
			err = flood(os.Args[2], d)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "flood:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 9 && os.Args[1] == xskFloodRole {
		d, err := time.ParseDuration(os.Args[7])
		var rate float64
		if err == nil {
			rate, err = strconv.ParseFloat(os.Args[8], 64)
		}
		if err == nil {
			err = xskFlood(os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6], d, rate)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "xsk flood:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 3 && os.Args[1] == echoRole {
		if err := echoServer(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "echo server:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 4 && os.Args[1] == connRole {
		d, err := time.ParseDuration(os.Args[3])
		if err == nil {
			err = connGenerator(os.Args[2], d)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "connection generator:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "veth:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("veth", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; every configuration runs once per round")
	fs.DurationVar(&o.duration, "time", 4*time.Second, "duration of each throughput test (whole seconds)")
	fs.StringVar(&o.suite, "suite", "veth", "veth: the configurations on two veths (veth.{csv,md,png}); tunnel: a VXLAN tunnel between two host namespaces with ovsxdp, Open vSwitch and the kernel at both ends (tunnel.{csv,md,png})")
	only := fs.String("configs", "", "configurations, comma-separated (default: all of the suite's; veth: "+
		strings.Join(configNames(configs), ",")+"; tunnel: "+strings.Join(configNames(tunnelConfigs), ",")+")")
	fs.StringVar(&o.out, "out", "bench/results", "directory for the suite's .csv, .md and .png")
	fs.BoolVar(&o.gobench, "gobench", true, "also run the in-memory Go benchmarks once (bench/gobench; the tunnel suite: datapath/tunnel's encapsulation and decapsulation) and summarize them")
	fs.BoolVar(&o.census, "syscalls", false, "instead of the suite, count the forwarding process's system calls by kind during the iperf3 UDP test, per packet forwarded (perf stat on the syscall tracepoints), -rounds times per configuration; prints a table")
	censusEvents := fs.String("syscalls-events", "", "with -syscalls, more perf events to count per packet, comma-separated (such as a uprobe made with perf probe -x BINARY FUNCTION)")
	fs.BoolVar(&o.profile, "pprof", true, "CPU-profile the first ovsxdp run's UDP and many-flow tests (veth.pprof) and summarize the profile (veth suite only)")
	fs.IntVar(&o.only80, "only80", 0, fmt.Sprintf("instead of the suite, run the AF_XDP sender's full-rate test once and then its %.0f%% phase this many times per configuration (those that count their sockets' kernel drops) and round, and print per phase what the kernel dropped and when, the poll thread's longest gap and when, the fewest fill frames, GC cycles and pauses, and the poll thread's scheduling delay", 100*paceShare))
	fs.IntVar(&o.pings, "pings", 0, "pings in each RTT test, 10 ms apart (0: 1,000 for the veth suite, 200 for the tunnel suite, as its committed results were taken)")
	fs.BoolVar(&o.only80Probe, "only80-probe", true, "with -only80, sample the kernel's drop counters and the poll thread's longest gap every millisecond during each phase, to tell when they came (its own CPU time shows among the process's other threads)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *censusEvents != "" {
		o.censusEvents = strings.Split(*censusEvents, ",")
	}
	suite := configs
	defaultPings := 1000
	switch o.suite {
	case "veth":
	case "tunnel":
		suite = tunnelConfigs
		o.profile = false
		defaultPings = 200
	default:
		return o, fmt.Errorf("-suite %q: want veth or tunnel", o.suite)
	}
	switch {
	case o.pings == 0:
		o.pings = defaultPings
	case o.pings < 10:
		return o, fmt.Errorf("-pings %d: want at least 10", o.pings)
	}
	names := configNames(suite)
	if *only == "" {
		*only = strings.Join(names, ",")
	}
	if o.rounds < 1 {
		return o, fmt.Errorf("-rounds %d: want at least 1", o.rounds)
	}
	if o.duration < time.Second || o.duration%time.Second != 0 {
		return o, fmt.Errorf("-time %v: want whole seconds, at least 1s", o.duration)
	}
	for _, n := range strings.Split(*only, ",") {
		n = strings.TrimSpace(n)
		i := -1
		for j, c := range suite {
			if c.name == n {
				i = j
			}
		}
		if i < 0 {
			return o, fmt.Errorf("-configs: unknown configuration %q of the %s suite (want some of %s)", n, o.suite, strings.Join(names, ","))
		}
		o.only = append(o.only, suite[i])
	}
	return o, nil
}

// configNames returns the names of cs.
func configNames(cs []config) []string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.name
	}
	return names
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: it creates namespaces, veths and XDP programs")
	}
	for _, tool := range []struct{ cmd, pkg string }{{"ip", "iproute2"}, {"ethtool", "ethtool"}, {"ping", "iputils-ping"}, {"iperf3", "iperf3"}} {
		if _, err := exec.LookPath(tool.cmd); err != nil {
			slog.Info("installing", "package", tool.pkg)
			if err := aptInstall(tool.pkg); err != nil {
				return err
			}
		}
	}
	unlock, err := lockRun(runLock)
	if err != nil {
		return err
	}
	defer unlock()
	stale, err := staleNamespaces()
	if err != nil {
		return err
	}
	for _, ns := range stale {
		slog.Warn("removing a namespace left by an earlier run", "netns", ns)
		if _, err := sh("ip", "netns", "del", ns); err != nil {
			return err
		}
	}
	if o.census {
		defer removeOvsxdpBin()
		return runCensuses(ctx, o, stdout)
	}
	if o.only80 > 0 {
		return runOnly80(ctx, o, stdout)
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	defer removeOvsxdpBin()
	m := describeMachine()
	o.wake = measureWakeLatency()
	start := time.Now()
	var samples []sample
	profiled := !o.profile
	for r := 1; r <= o.rounds; r++ {
		for _, c := range roundOrder(o.only, r) {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted: %w", ctx.Err())
			}
			slog.Info("run", "round", r, "config", c.name)
			var s sample
			if o.suite == "tunnel" {
				s = runTunnel(ctx, o, c, r)
			} else {
				prof := ""
				if !profiled && c.name == "ovsxdp" {
					prof, profiled = filepath.Join(o.out, "veth.pprof"), true
				}
				s = runOne(ctx, o, c, r, prof)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted: %w", ctx.Err())
			}
			if s.err != "" {
				slog.Error("run failed", "round", r, "config", c.name, "err", s.err)
			} else {
				slog.Info("result", "round", r, "config", c.name, "tcp_gbps", f2(s.tcpGbps), "conns_per_s", f0(s.conns.perSec), "conn_failures", s.conns.failures, "udp_pps", f0(s.udpPps),
					"flows_pps", f0(s.flowsPps), "xsk_pps", f0(s.xskPps), "rtt_avg_us", f1(s.rttAvg), "rtt_p99_us", f1(s.rttP99), "ping_cpu_pct", f1(s.pingCPU), "cpu_s_per_mpkt", f2(s.cpuPerMpkt))
			}
			samples = append(samples, s)
		}
	}
	m.loadEnd = loadAverage()
	elapsed := time.Since(start)
	var gb string
	if o.gobench && o.suite == "tunnel" {
		gb = goBenchSummary(ctx, tunnelGoBench...)
	} else if o.gobench {
		gb = goBenchSummary(ctx)
	}
	if o.suite == "tunnel" {
		return writeTunnelReport(args, o, m, samples, elapsed, gb, stdout)
	}
	var profSummary string
	if o.profile && profiled {
		profSummary = pprofTop(filepath.Join(o.out, "veth.pprof"))
	}
	if err := writeCSV(filepath.Join(o.out, "veth.csv"), samples); err != nil {
		return err
	}
	if err := writePlot(filepath.Join(o.out, "veth.png"), o, samples, metrics); err != nil {
		return err
	}
	md := markdown(args, o, m, samples, elapsed, gb, profSummary)
	if err := os.WriteFile(filepath.Join(o.out, "veth.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, md)
	return nil
}

// runOne builds the topology, runs configuration c on it, measures, and
// removes everything, checking that the configuration left nothing
// behind. With prof set, it CPU-profiles this process during the UDP and
// many-flow tests.
// roundOrder is the order of the configurations in round r (from 1): round
// 1 runs them in the suite's order; each later round starts one
// configuration later and steps through the suite by another stride
// coprime with its length (1, 5, 7, 11 for 12), so that a configuration
// follows a different one from round to round. Whatever a run leaves
// behind (the kernel's deferred cleanup of a namespace, of an Open vSwitch
// daemon's sockets, of XDP programs), and whatever the start of a round
// costs, then falls on a different configuration each round, not on the
// same neighbour every time.
func roundOrder(cs []config, r int) []config {
	n := len(cs)
	if n == 0 {
		return nil
	}
	var strides []int
	for s := 1; s < n; s++ {
		if gcd(s, n) == 1 {
			strides = append(strides, s)
		}
	}
	if len(strides) == 0 {
		strides = []int{1}
	}
	start, stride := (r-1)%n, strides[(r-1)%len(strides)]
	out := make([]config, n)
	for j := range out {
		out[j] = cs[(start+j*stride)%n]
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func runOne(ctx context.Context, o options, c config, round int, prof string) (s sample) {
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
	t, err := newTopo()
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
	f := c.new()
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
	if err := t.reach(20 * time.Second); err != nil {
		return fail(err)
	}
	time.Sleep(200 * time.Millisecond) // the server listens by now
	if s.tcpGbps, err = measureTCP(ctx, t, o.duration); err != nil {
		return fail(err)
	}
	echo, err := startEchoServer(t)
	if err != nil {
		return fail(err)
	}
	stopEcho := func() {
		if echo != nil {
			stopProc(echo, "echo server") //nolint:errcheck // killed if it ignores SIGTERM
			echo = nil
		}
	}
	defer stopEcho()
	if s.conns, err = measureConns(ctx, t, o.duration); err != nil {
		return fail(err)
	}
	stopEcho()
	if c.group == "ct" {
		return runStateful(ctx, s, t, f, o.pings, fail, stopServer, stopFwd)
	}
	if prof != "" {
		pf, err := os.Create(prof)
		if err != nil {
			return fail(err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return fail(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			pf.Close()
		}()
	}
	if s.udpPps, s.cpu, err = measureUDP(ctx, t, o.duration, f.pid()); err != nil {
		return fail(err)
	}
	s.cpuPerMpkt = s.cpu.total()
	if s.flowsPps, err = measureFlows(ctx, t, o.duration); err != nil {
		return fail(err)
	}
	if y, isY := f.(peerYielder); isY {
		if err := y.yieldPeerA(); err != nil {
			return fail(err)
		}
	}
	if s.xskPps, err = measureXSK(ctx, t, o.duration, 0); err != nil {
		return fail(err)
	}
	if k, isK := f.(kernelDropper); isK && s.xskPps > 0 {
		// The same sender at 80% of the rate this configuration just
		// sustained: a forwarder that keeps up leaves the kernel nothing
		// to drop.
		if s.paced, err = runPaced(ctx, t, o.duration, paceShare*s.xskPps, k, nil); err != nil {
			return fail(err)
		}
	}
	if y, isY := f.(peerYielder); isY {
		if err := y.reclaimPeerA(t); err != nil {
			return fail(err)
		}
	}
	if prof != "" {
		pprof.StopCPUProfile()
	}
	if s.rttAvg, s.rttP99, s.pingCPU, err = measurePing(ctx, t, o.pings); err != nil {
		return fail(err)
	}
	stopServer()
	if c, isC := f.(counterer); isC {
		s.counters = c.counters()
		s.perBatch, s.busyNs = c.batching()
	}
	stopFwd()
	if left := t.leftovers(); len(left) > 0 {
		return fail(fmt.Errorf("left behind by %s: %s", c.name, strings.Join(left, "; ")))
	}
	return s
}

// runStateful ends a stateful configuration's run after the TCP and
// connection-rate tests, which are what it is compared on (its UDP and
// CPU columns stay empty): it measures ping RTT, then asks the switch
// what its tracker and its drop rules saw, and fails the run if the
// tracker held no connection (ct did not run).
func runStateful(ctx context.Context, s sample, t *topo, f forwarder, pings int, fail func(error) sample, stopServer, stopFwd func()) sample {
	nan := math.NaN()
	s.udpPps, s.flowsPps, s.xskPps, s.cpuPerMpkt = nan, nan, nan, nan
	s.cpu = cpuTimes{nan, nan, nan, nan}
	var err error
	if s.rttAvg, s.rttP99, s.pingCPU, err = measurePing(ctx, t, pings); err != nil {
		return fail(err)
	}
	stopServer()
	k, isK := f.(ctChecker)
	if !isK {
		return fail(errors.New("a stateful configuration without a tracker to ask"))
	}
	r, err := k.conntrack()
	if err != nil {
		return fail(fmt.Errorf("conntrack check: %w", err))
	}
	s.ct = &r
	if r.nconns == 0 {
		return fail(errors.New("dpctl/ct-get-nconns is 0 after the run: the tracker held no connection"))
	}
	stopFwd()
	if left := t.leftovers(); len(left) > 0 {
		return fail(fmt.Errorf("left behind: %s", strings.Join(left, "; ")))
	}
	return s
}

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }
func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }

// startIperfServer starts an iperf3 server in namespace ns, bound to ip,
// and returns the function that stops it (once; later calls do nothing).
func startIperfServer(ns, ip string) (func(), error) {
	server := exec.Command("ip", "netns", "exec", ns, "iperf3", "-s", "-B", ip)
	server.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := server.Start(); err != nil {
		return nil, fmt.Errorf("iperf3 server: %w", err)
	}
	return func() {
		if server != nil {
			stopProc(server, "iperf3 server") //nolint:errcheck // killed if it ignores SIGTERM
			server = nil
		}
	}, nil
}
