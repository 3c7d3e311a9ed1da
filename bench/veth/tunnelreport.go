package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	vtopo "github.com/ovsxdp/ovsxdp/vport/topo"
)

// tunnelMetrics are the tunnel suite's measurements, in the report's
// order.
var tunnelMetrics = []metric{
	metricByKey("tcp_gbps"),
	metricByKey("udp_pps"),
	metricByKey("xsk_pps"),
	metricByKey("rtt_avg_us"),
	metricByKey("rtt_p99_us"),
	metricByKey("cpu_s_per_mpkt"),
	metricByKey("machine_cpu_s_per_mpkt"),
}

// tunnelGoBench are bench/gobench's flags for the in-memory
// encapsulation and decapsulation benchmarks.
var tunnelGoBench = []string{"-pkgs", "./datapath/tunnel", "-bench", "Encap|Decap"}

// tunnelOurs is the ovsxdp configuration the others are compared with.
const tunnelOurs = "ovsxdp-vxlan"

// writeTunnelReport writes tunnel.csv, tunnel.png and tunnel.md to
// o.out, and the report to stdout.
func writeTunnelReport(args []string, o options, m machine, samples []sample, elapsed time.Duration, gobench string, stdout io.Writer) error {
	// Before this report's own files change the work tree.
	commit := gitCommit()
	if err := writeTunnelCSV(filepath.Join(o.out, "tunnel.csv"), samples); err != nil {
		return err
	}
	if err := writePlot(filepath.Join(o.out, "tunnel.png"), o, samples, tunnelMetrics); err != nil {
		return err
	}
	md := tunnelMarkdown(args, o, m, commit, geneveSupport(), samples, elapsed, gobench)
	if err := os.WriteFile(filepath.Join(o.out, "tunnel.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, md)
	return nil
}

// writeTunnelCSV writes every sample: the tunnel metrics, the CPU split,
// the error and the ovsxdp ledger.
func writeTunnelCSV(path string, samples []sample) error {
	return writeSampleCSV(path, samples, tunnelMetrics, []string{"error", "ledger"}, func(s sample) []string {
		return []string{s.err, s.counters}
	})
}

// gitCommit is the commit the run was built from, with "(modified)" when
// the work tree differs from it, or "unknown".
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += " (modified)"
	}
	return c
}

// geneveSupport tries to create a geneve device in a scratch namespace
// and says whether the kernel has one: without it, ovsxdp's Geneve
// cannot be compared with the kernel's here.
func geneveSupport() string {
	tp := vtopo.New(strings.TrimSuffix(nsPrefix, "-"))
	defer tp.Close()
	ns, err := tp.AddNamespace("gn-" + vtopo.Suffix())
	if err != nil {
		return "not checked: " + err.Error()
	}
	out, err := ns.IP("link", "add", "g0", "type", "geneve", "id", "1", "remote", "192.0.2.9")
	if err != nil {
		return fmt.Sprintf("no: `ip link add g0 type geneve id 1 remote 192.0.2.9` fails (%s)", strings.TrimSpace(out))
	}
	return "yes"
}

// tunnelMarkdown renders the tunnel suite's report.
func tunnelMarkdown(args []string, o options, m machine, commit, geneve string, samples []sample, elapsed time.Duration, gobench string) string {
	var b strings.Builder
	cmd := "go run ./bench/veth"
	if len(args) > 0 {
		cmd += " " + strings.Join(args, " ")
	}
	fmt.Fprintf(&b, "# ovsxdp through a VXLAN tunnel, side by side with Open vSwitch and the kernel\n\nProduced by this command, run as root (`make bench-tunnel` runs it, with the flags of TUNNEL_ARGS):\n\n```\n%s\n```\n\n", cmd)
	fmt.Fprintf(&b, "Commit %s. Machine: %s, %d CPUs, %s, %s. Load average (1, 5, 15 min) %s at the start, %s at the end; "+
		"other work may have run on the machine at the same time. %s. %d rounds, the configurations taking turns in each round, in an order that changes from round to round (bench/veth roundOrder); "+
		"every throughput test lasts %v. The run took %s.\n\n",
		commit, m.cpu, m.cores, m.kernel, runtime.Version(), m.loadStart, m.loadEnd, time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		o.rounds, o.duration, elapsed.Round(time.Second))

	fmt.Fprintf(&b, "## Setup\n\nThe same topology for every configuration, built afresh for each run: two host namespaces A and B joined by an "+
		"underlay veth (`ua` in A, `ub` in B; %s/24 and %s/24, put where each configuration's datapath wants them), and a workload namespace behind each host "+
		"(`wa0`, %s/24, behind A's `wa`; `wb0`, %s/24, behind B's `wb`; MTU %s, tx checksum offload off on `wa0`, `wb0` and `ub`, permanent neighbour "+
		"entries between the workloads). The tunnel is VXLAN, VNI %d, UDP port %d, the same at both ends. After each run the harness checks that no XDP program "+
		"is left on any device, no bridge, vxlan or Open vSwitch device in the host namespaces and no process in any namespace, then deletes the namespaces.\n\n",
		underlayA, underlayB, wlA, wlB, wlMTU, tunnelKey, tunnelPort)
	b.WriteString("| configuration | at both ends |\n|---|---|\n")
	for _, c := range o.only {
		fmt.Fprintf(&b, "| %s | %s |\n", c.name, c.desc)
	}
	b.WriteString("\nThe Open vSwitch configurations are the two best of the veth suite's (`ovs-pmd` and `ovs-maxsleep`; `afxdp-nonpmd` ports are far behind there); " +
		"the targets compare ovsxdp with the better of them for each metric.\n\n")
	b.WriteString("Measurements, from workload A to workload B, as the veth suite takes them: TCP is `iperf3 -c` (received rate); UDP is `iperf3 -u -l 18 -b 0` " +
		"(the receiver's count over the test); the AF_XDP sender is a process of the harness in workload A that transmits prebuilt 60-byte frames (18-byte UDP payloads) " +
		"to 1,000 destination ports on `wa0` through an AF_XDP socket as fast as its tx ring drains (the rate counted on `wb0`, whose ingress then drops the datagrams before workload B's IP layer, as in the veth suite: nothing listens on those ports); ping is " + fmt.Sprintf("%d", o.pings) + " pings 10 ms apart, once a first echo has come back after the AF_XDP sender (a switch may still be draining its backlog). " +
		"CPU per million packets, during the iperf3 UDP test: the user and system time of the forwarding processes (both ovsxdp daemons, both `ovs-vswitchd`; none for the kernel) " +
		"plus the machine's softirq time, divided by the packets forwarded (those `wa0` received and the datagrams that reached workload B's UDP layer); " +
		"the machine CPU column is the machine's busy time over the same test, per million packets forwarded.\n\n")
	fmt.Fprintf(&b, "Every ovsxdp run ends with a check of both daemons' packet ledgers once traffic has stopped (the tunnel tests' check): on each host, the packets "+
		"br-int and br-phy received equal those their ports transmitted, those dropped with a reason and those the vxlan port decapsulated; a run whose ledger does not "+
		"balance within 20 s fails. Its drops by reason are listed below.\n\n")

	writeMedians(&b, o, samples, tunnelMetrics)
	writeRatios(&b, o, samples, tunnelMetrics, tunnelOurs)
	b.WriteString(tunnelTargets(o, samples))
	if gobench != "" {
		b.WriteString(allocsTarget(gobench))
	}
	fmt.Fprintf(&b, "\nGeneve: does this machine's kernel have a geneve device? %s. ", geneve)
	if geneve == "yes" {
		b.WriteString("This suite measures VXLAN only; Geneve configurations could be added beside these.\n")
	} else {
		b.WriteString("Without it, ovsxdp's Geneve cannot be measured against the kernel's on this machine; only VXLAN is compared.\n")
	}
	b.WriteString("\n![medians](tunnel.png)\n")

	if ledgers := perRun(samples, func(s sample) string { return s.counters }); len(ledgers) > 0 {
		b.WriteString("\n## ovsxdp's ledgers and drops by reason\n\nBoth hosts' accounts after each ovsxdp run (br-int and br-phy together; ports by OpenFlow number, the vxlan port is " +
			strconv.Itoa(tunnelOFPort) + "):\n\n" + strings.Join(ledgers, "\n") + "\n")
	}
	if failures := perRun(samples, func(s sample) string { return s.err }); len(failures) > 0 {
		b.WriteString("\n## Runs that failed\n\n" + strings.Join(failures, "\n") + "\n")
	}
	if gobench != "" {
		b.WriteString("\n## In-memory encapsulation and decapsulation\n\nThe same command ran `go run ./bench/gobench -rounds 1 -benchtime 200ms " +
			strings.Join(tunnelGoBench[:2], " ") + " -bench '" + tunnelGoBench[3] + "'` (BenchmarkEncap and BenchmarkDecap in datapath/tunnel/bench_test.go) once after the runs above:\n\n" + gobench + "\n")
	}
	b.WriteString("\nData: [tunnel.csv](tunnel.csv).\n")
	return b.String()
}

// tunnelTargets renders the tunnel targets of issue 16 with whether the
// run met them: ovsxdp at least 1.2× the best Open vSwitch configuration
// in TCP throughput and in small-packet rate (iperf3 and the AF_XDP
// sender).
func tunnelTargets(o options, samples []sample) string {
	var b strings.Builder
	b.WriteString("## Targets\n\n| target | measured | met |\n|---|---|---|\n")
	for _, t := range []struct{ what, key string }{
		{"TCP throughput through the tunnel: ovsxdp ≥ 1.2× Open vSwitch", "tcp_gbps"},
		{"Small-packet rate through the tunnel, iperf3 UDP: ovsxdp ≥ 1.2× Open vSwitch", "udp_pps"},
		{"Small-packet rate through the tunnel, AF_XDP sender, 1,000 flows: ovsxdp ≥ 1.2× Open vSwitch", "xsk_pps"},
	} {
		targetRow(&b, samples, tunnelOurs, t.what, t.key, bestOVS(o, samples, metricByKey(t.key)), 1.2, true)
	}
	kernel := ""
	for _, c := range o.only {
		if c.group == "kernel" && kernel == "" {
			kernel = c.name
		}
	}
	for _, t := range []struct{ what, key string }{
		{"For reference, not a target: TCP throughput, ovsxdp / kernel", "tcp_gbps"},
		{"For reference, not a target: small packets (iperf3), ovsxdp / kernel", "udp_pps"},
		{"For reference, not a target: small packets (AF_XDP sender), ovsxdp / kernel", "xsk_pps"},
	} {
		r := math.NaN()
		if kernel != "" {
			r = ratio(samples, tunnelOurs, kernel, metricByKey(t.key))
		}
		fmt.Fprintf(&b, "| %s | %s | – |\n", t.what, fmtRatio(r))
	}
	return b.String()
}

// allocsTarget renders the targets row of the in-memory benchmarks: every
// encapsulation and decapsulation benchmark in the gobench summary's
// medians table (rows "| ./datapath/tunnel | NAME | ns/op | packets/s |
// allocs/op | ...") allocates nothing.
func allocsTarget(gobench string) string {
	const what = "Encapsulation and decapsulation in memory (BenchmarkEncap, BenchmarkDecap): 0 allocations per packet"
	n := 0
	var allocating []string
	for _, l := range strings.Split(gobench, "\n") {
		f := strings.Split(l, "|")
		// "", package, name, ns/op, packets/s, allocs/op, other, ""
		if len(f) < 7 || strings.TrimSpace(f[1]) != "./datapath/tunnel" {
			continue
		}
		name := strings.TrimSpace(f[2])
		if !strings.HasPrefix(name, "Encap/") && !strings.HasPrefix(name, "Decap/") {
			continue
		}
		n++
		if a := strings.TrimSpace(f[5]); a != "0" {
			allocating = append(allocating, name+" "+a)
		}
	}
	switch {
	case n == 0:
		return fmt.Sprintf("| %s | not measured (no result in the Go benchmarks' summary) | – |\n", what)
	case len(allocating) > 0:
		return fmt.Sprintf("| %s | %d of %d benchmarks allocate: %s | no |\n", what, len(allocating), n, strings.Join(allocating, ", "))
	}
	return fmt.Sprintf("| %s | 0 allocs/op in all %d benchmarks | yes |\n", what, n)
}
