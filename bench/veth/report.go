package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/csv"
	"fmt"
	"image/color"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/ovsxdp/ovsxdp/vport"
)

// metric is one measured quantity.
type metric struct {
	key, title, unit string
	higherBetter     bool
	get              func(sample) float64
}

// format renders a value of the metric with its unit.
func (m metric) format(v float64) string {
	switch m.unit {
	case "Gbit/s":
		return fmt.Sprintf("%.2f %s", v, m.unit)
	case "packets/s", "conn/s":
		return fmt.Sprintf("%.0f %s", v, m.unit)
	}
	return fmt.Sprintf("%.1f %s", v, m.unit)
}

var metrics = []metric{
	{"tcp_gbps", "TCP throughput", "Gbit/s", true, func(s sample) float64 { return s.tcpGbps }},
	{"conns_per_s", "TCP connections (connect, 16 bytes each way, close)", "conn/s", true, func(s sample) float64 { return s.conns.perSec }},
	{"udp_pps", "UDP 18-byte payloads, iperf3, received", "packets/s", true, func(s sample) float64 { return s.udpPps }},
	{"flows_pps", "UDP 18-byte payloads, 1,000 flows, received", "packets/s", true, func(s sample) float64 { return s.flowsPps }},
	{"xsk_pps", "UDP 18-byte payloads, 1,000 flows, AF_XDP sender, received", "packets/s", true, func(s sample) float64 { return s.xskPps }},
	{"rtt_avg_us", "ping RTT, average", "µs", false, func(s sample) float64 { return s.rttAvg }},
	{"rtt_p99_us", "ping RTT, 99th percentile", "µs", false, func(s sample) float64 { return s.rttP99 }},
	{"ping_cpu_pct", "machine CPU during the ping test", "% of a CPU", false, func(s sample) float64 { return s.pingCPU }},
	{"cpu_s_per_mpkt", "forwarding CPU per million packets", "CPU s", false, func(s sample) float64 { return s.cpuPerMpkt }},
	{"machine_cpu_s_per_mpkt", "machine CPU per million packets", "CPU s", false, func(s sample) float64 { return s.cpu.machine }},
}

// machine describes where the run happened.
type machine struct {
	cpu       string
	cores     int
	kernel    string
	loadStart string
	loadEnd   string
	// irqTime is whether the kernel accounts IRQ and softirq time apart
	// from the tasks they interrupt (CONFIG_IRQ_TIME_ACCOUNTING): "yes",
	// "no", or "" when /proc/config.gz does not say.
	irqTime string
}

func describeMachine() machine {
	m := machine{cpu: "unknown CPU", cores: runtime.NumCPU(), kernel: "unknown kernel", loadStart: loadAverage()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.irqTime = irqTimeAccounting()
	return m
}

// irqTimeAccounting reads CONFIG_IRQ_TIME_ACCOUNTING from the running
// kernel's configuration: "yes", "no", or "" if it is not available.
func irqTimeAccounting() string {
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		return ""
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(z)
	for sc.Scan() {
		switch sc.Text() {
		case "CONFIG_IRQ_TIME_ACCOUNTING=y":
			return "yes"
		case "# CONFIG_IRQ_TIME_ACCOUNTING is not set":
			return "no"
		}
	}
	if sc.Err() != nil {
		return ""
	}
	return "no"
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func writeCSV(path string, samples []sample) error {
	head := []string{"paced_target_pps", "paced_sent_pps", "paced_received_pps", "paced_rx_ring_full", "paced_no_fill_frame",
		"paced_max_poll_gap_us", "paced_fill_low", "paced_fill_found_empty", "paced_poll_thread_cpu_ms", "paced_poll_thread_wait_ms", "paced_gc_cycles",
		"conns_done", "conn_failures", "conn_source_ports", "conn_errors", "ct_nconns", "ct_invalid_dropped", "ct_other_dropped", "error", "counters"}
	return writeSampleCSV(path, samples, metrics, head, func(s sample) []string {
		var row []string
		if s.paced.measured {
			row = append(row, strconv.FormatFloat(s.paced.offered, 'f', 0, 64), strconv.FormatFloat(s.paced.sent, 'f', 0, 64),
				strconv.FormatFloat(s.paced.received, 'f', 0, 64),
				strconv.FormatUint(s.paced.drops.ringFull, 10), strconv.FormatUint(s.paced.drops.noFrame, 10))
		} else {
			row = append(row, "", "", "", "", "")
		}
		if g := s.paced.gauges; g != nil {
			row = append(row, strconv.FormatInt(g.maxPollGap.Microseconds(), 10), strconv.Itoa(g.fillLow), strconv.FormatUint(g.foundEmpty, 10))
		} else {
			row = append(row, "", "", "")
		}
		if p := s.paced.sched; p != nil {
			row = append(row, strconv.FormatInt(p.pollCPU.Milliseconds(), 10), strconv.FormatInt(p.pollWait.Milliseconds(), 10), strconv.FormatUint(p.gcCycles, 10))
		} else {
			row = append(row, "", "", "")
		}
		row = append(row, strconv.Itoa(s.conns.done), strconv.Itoa(s.conns.failures), strconv.Itoa(s.conns.ports), s.conns.errors)
		if s.ct != nil {
			row = append(row, strconv.Itoa(s.ct.nconns), strconv.FormatUint(s.ct.invalid, 10), strconv.FormatUint(s.ct.dropped, 10))
		} else {
			row = append(row, "", "", "")
		}
		return append(row, s.err, s.counters)
	})
}

// writeSampleCSV writes one row per sample: the round, the configuration,
// ms, the CPU split, then the columns extraHead names, from extra.
func writeSampleCSV(path string, samples []sample, ms []metric, extraHead []string, extra func(sample) []string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	head := []string{"round", "config"}
	for _, m := range ms {
		head = append(head, m.key)
	}
	head = append(head, "cpu_user_s_per_mpkt", "cpu_sys_s_per_mpkt", "cpu_softirq_s_per_mpkt")
	w.Write(append(head, extraHead...))
	for _, s := range samples {
		row := []string{strconv.Itoa(s.round), s.config}
		for _, m := range ms {
			row = append(row, csvNum(m.get(s)))
		}
		for _, v := range []float64{s.cpu.user, s.cpu.sys, s.cpu.softirq} {
			row = append(row, csvNum(v))
		}
		w.Write(append(row, extra(s)...))
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// csvNum formats a measurement for the CSV, empty if it was not
// measured (NaN).
func csvNum(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// ok returns the samples of config that completed.
func ok(samples []sample, config string) []sample {
	var out []sample
	for _, s := range samples {
		if s.config == config && s.err == "" {
			out = append(out, s)
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if n := len(v); n%2 == 1 {
		return v[n/2]
	} else {
		return (v[n/2-1] + v[n/2]) / 2
	}
}

func medianOf(samples []sample, config string, m metric) float64 {
	var v []float64
	for _, s := range ok(samples, config) {
		v = append(v, m.get(s))
	}
	return median(v)
}

// ratio is the median over rounds of a's value divided by b's, each pair
// from the same round.
func ratio(samples []sample, a, b string, m metric) float64 {
	byRound := map[int]float64{}
	for _, s := range ok(samples, b) {
		byRound[s.round] = m.get(s)
	}
	var rs []float64
	for _, s := range ok(samples, a) {
		if d, found := byRound[s.round]; found && d > 0 {
			rs = append(rs, m.get(s)/d)
		}
	}
	return median(rs)
}

// bestOVS is the OVS configuration with the best median for m, or "".
func bestOVS(o options, samples []sample, m metric) string {
	best, bv := "", math.NaN()
	for _, c := range o.only {
		if c.group != "ovs" {
			continue
		}
		v := medianOf(samples, c.name, m)
		if math.IsNaN(v) {
			continue
		}
		if best == "" || (m.higherBetter && v > bv) || (!m.higherBetter && v < bv) {
			best, bv = c.name, v
		}
	}
	return best
}

func metricByKey(k string) metric {
	for _, m := range metrics {
		if m.key == k {
			return m
		}
	}
	panic("unknown metric " + k)
}

func fmtVal(v float64, m metric) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case m.unit == "packets/s" || m.unit == "conn/s":
		return fmt.Sprintf("%.0f", v)
	case m.unit == "µs":
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtRatio(r float64) string {
	if math.IsNaN(r) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", r)
}

func markdown(args []string, o options, m machine, samples []sample, elapsed time.Duration, gobench, prof string) string {
	var b strings.Builder
	cmd := "go run ./bench/veth"
	if len(args) > 0 {
		cmd += " " + strings.Join(args, " ")
	}
	fmt.Fprintf(&b, "# ovsxdp side by side on veths\n\nProduced by this command, run as root (`make bench-veth` runs it, with the flags of VETH_ARGS):\n\n```\n%s\n```\n\n", cmd)
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, %s, %s. Load average (1, 5, 15 min) %s at the start, %s at the end; "+
		"other work may have run on the machine at the same time. %s. %d rounds, the configurations taking turns in each round, in an order that changes from round to round (bench/veth roundOrder); "+
		"every throughput test lasts %v. The run took %s.\n\n",
		m.cpu, m.cores, m.kernel, runtime.Version(), m.loadStart, m.loadEnd, time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		o.rounds, o.duration, elapsed.Round(time.Second))

	b.WriteString("## Setup\n\nThe same topology for every configuration, built afresh for each run: a switch namespace holds the host ends " +
		"`h-a` and `h-b` of two veth pairs (one queue each) whose peers `p-a` (10.0.0.1/24) and `p-b` (10.0.0.2/24) live in namespaces " +
		"`a` and `b`; tx checksum offload is off on `p-a` and `p-b`, IPv6 is off, and the neighbour entries are permanent. " +
		"After each run the harness checks that no XDP program is left on the four devices, no bridge in the switch namespace " +
		"and no process in the namespaces, then deletes the namespaces and checks that none is left.\n\n")
	b.WriteString("| configuration | what forwards |\n|---|---|\n")
	for _, c := range o.only {
		fmt.Fprintf(&b, "| %s | %s |\n", c.name, c.desc)
	}
	b.WriteString("\nMeasurements, from namespace `a` to `b`: TCP is `iperf3 -c` (received rate); UDP is `iperf3 -u -l 18 -b 0` " +
		"(the receiver's count over the test); 1,000 flows is a sender built into the harness (one Go thread, 8 sockets, " +
		"18-byte payloads to 1,000 destination ports; the rate counted on `p-b`); the AF_XDP sender is a process of the harness in `a` that opens " +
		"an ovsxdp AF_XDP port (`vport.OpenXSK`) on `p-a` and transmits prebuilt 60-byte frames to the same 1,000 ports in batches of 32 as fast as its tx ring drains, " +
		"so that the sender is not limited by a socket's per-packet cost (the rate counted on `p-b`, which counts every datagram: consecutive datagrams of these two senders go to different ports, so ovsxdp merges none of them; in xdp-redirect, `p-a`'s XDP_PASS program is detached " +
		"for this test and the sender's own program stands in for it); during these two senders' tests a TCX program on `p-b`'s ingress (after `p-b` has counted the frame) drops their UDP datagrams before `b`'s IP layer, as a traffic generator's receive port discards what it counts: " +
		"nothing listens on those ports, and `b`'s stack would otherwise look up a route and an ICMP port unreachable for each datagram in the softirq of the CPU that sent it to `p-b`, the forwarder's own (profiled under ovsxdp: `__icmp_send` 13% of the forwarding process's samples, `b`'s whole stack 24%); ping is " + fmt.Sprintf("%d", o.pings) + " pings 10 ms apart; TCP connections per second is a generator built into the harness (described under the stateful firewall below, when those configurations ran: 16 at a time, each connect, 16 bytes each way, close). " +
		"CPU per million packets is measured the same way for every configuration, during the iperf3 UDP test: the user and system time " +
		"of the forwarding process (this process for ovsxdp, `ovs-vswitchd` for OVS, none for the bridge and XDP) plus the machine's " +
		"softirq time (where the bridge and XDP forward, and where every configuration's veths and AF_XDP sockets do their kernel work), " +
		"divided by the packets forwarded: those `p-a` received, and the UDP datagrams that reached `b`'s UDP layer (delivered or refused for a full socket buffer, from `b`'s `/proc/net/snmp`; `p-b` counts a GSO packet once). It includes the endpoints' own softirq work, alike in every configuration. " +
		doubleCount(m.irqTime) + "The machine CPU column counts no work twice: the machine's busy time (user, nice, system, irq, softirq) " +
		"over the same test per million packets forwarded, the endpoints' work (alike everywhere) and any other load on the machine included.\n\n")

	writeMedians(&b, o, samples, metrics)
	writeRatios(&b, o, samples, metrics, "ovsxdp")

	b.WriteString("## CPU per million packets, by kind\n\nMedians over rounds, during the iperf3 UDP test, CPU seconds per million packets forwarded.\n\n" +
		"| configuration | forwarding process, user | forwarding process, system | softirq (whole machine) | total |\n|---|---|---|---|---|\n")
	for _, c := range o.only {
		if c.group == "ct" {
			continue // not measured
		}
		var u, sy, si, tot []float64
		for _, s := range ok(samples, c.name) {
			u, sy, si, tot = append(u, s.cpu.user), append(sy, s.cpu.sys), append(si, s.cpu.softirq), append(tot, s.cpu.total())
		}
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f | %.2f |\n", c.name, median(u), median(sy), median(si), median(tot))
	}
	b.WriteString("\n")
	b.WriteString(targets(o, samples))
	b.WriteString(stateful(o, samples))
	b.WriteString(paced(o, samples))
	b.WriteString(analysis(o, samples, prof))
	b.WriteString("\n![medians](veth.png)\n")

	if failures := perRun(samples, func(s sample) string { return s.err }); len(failures) > 0 {
		b.WriteString("\n## Runs that failed\n\n" + strings.Join(failures, "\n") + "\n")
	}
	if counts := perRun(samples, func(s sample) string { return s.counters }); len(counts) > 0 {
		b.WriteString("\n## ovsxdp's counters\n\nThe poll thread's and the ports' counters over each whole run (all tests):\n\n" + strings.Join(counts, "\n") + "\n")
	}
	if prof != "" {
		b.WriteString("\n## Where ovsxdp spends its time\n\nCPU profile of this process (the ovsxdp poll thread and everything else in it) " +
			"during the first ovsxdp run's iperf3 UDP, 1,000-flow and AF_XDP-sender tests (the senders are other processes) (`veth.pprof`; `go tool pprof -top -cum`). " +
			profileShares(prof) + " On a veth, AF_XDP works in copy mode: the sendto that kicks the tx ring makes the kernel allocate an skb for every frame and run the veth's transmit " +
			"(and, when bottom halves are re-enabled, often the receiving namespace's stack), so that per-frame kernel work is charged to the poll thread's system calls.\n\n```\n" + prof + "```\n")
	}
	if gobench != "" {
		b.WriteString("\n## In-memory Go benchmarks\n\nThe same command ran `go run ./bench/gobench -rounds 1 -benchtime 200ms` once after the runs above:\n\n" + gobench + "\n")
	}
	b.WriteString("\nData: [veth.csv](veth.csv).\n")
	return b.String()
}

// targetRow renders one row of a targets table: the ratio of ours to
// against for the metric key (the median of the rounds' ratios), and
// whether it is at least (atLeast) or at most want. An empty against
// means no OVS run completed.
func targetRow(b *strings.Builder, samples []sample, ours, what, key, against string, want float64, atLeast bool) {
	mt := metricByKey(key)
	if against == "" {
		fmt.Fprintf(b, "| %s | no OVS run completed | – |\n", what)
		return
	}
	r := ratio(samples, ours, against, mt)
	if math.IsNaN(r) {
		fmt.Fprintf(b, "| %s | not measured (%s or %s failed) | – |\n", what, ours, against)
		return
	}
	met := (atLeast && r >= want) || (!atLeast && r <= want)
	verdict := "yes"
	if !met {
		verdict = fmt.Sprintf("no, missed by %.0f%%", 100*math.Abs(r-want)/want)
	}
	fmt.Fprintf(b, "| %s | %s (against %s) | %s |\n", what, fmtRatio(r), against, verdict)
}

// targets renders the project's targets with whether the run met them.
func targets(o options, samples []sample) string {
	var b strings.Builder
	b.WriteString("## Targets\n\n| target | measured | met |\n|---|---|---|\n")
	rowOf := func(ours, what, key, against string, want float64, atLeast bool) {
		targetRow(&b, samples, ours, what, key, against, want, atLeast)
	}
	row := func(what, key, against string, want float64, atLeast bool) {
		rowOf("ovsxdp", what, key, against, want, atLeast)
	}
	best := func(key string) string { return bestOVS(o, samples, metricByKey(key)) }
	row("UDP small packets, AF_XDP sender, 1,000 flows: ovsxdp ≥ 1.2× best OVS", "xsk_pps", best("xsk_pps"), 1.2, true)
	row("UDP small packets, AF_XDP sender, 1,000 flows: ovsxdp ≥ 1.0× best kernel-only path", "xsk_pps", bestKernel(samples, metricByKey("xsk_pps")), 1.0, true)
	row("UDP small packets, iperf3: ovsxdp ≥ 1.0× Linux bridge", "udp_pps", "bridge", 1.0, true)
	row("UDP small packets, iperf3: ovsxdp ≥ 1.2× best OVS", "udp_pps", best("udp_pps"), 1.2, true)
	row(fmt.Sprintf("Forwarding CPU per packet: ovsxdp ≤ %.1f× OVS's most frugal configuration", cpuTarget), "cpu_s_per_mpkt", best("cpu_s_per_mpkt"), cpuTarget, false)
	row("Machine CPU per packet: ovsxdp ≤ 0.85× OVS's most frugal configuration", "machine_cpu_s_per_mpkt", best("machine_cpu_s_per_mpkt"), 0.85, false)
	row("TCP: ovsxdp ≥ 1.5× best OVS", "tcp_gbps", best("tcp_gbps"), 1.5, true)
	row("ping RTT (average): ovsxdp ≤ lowest OVS", "rtt_avg_us", best("rtt_avg_us"), 1.0, false)
	if len(ok(samples, "ovsxdp-spin")) > 0 {
		// The lowest OVS RTT comes from a busy-polling PMD: the same
		// comparison for ovsxdp's busy-polling mode.
		rowOf("ovsxdp-spin", "ping RTT (average), both busy-polling: ovsxdp-spin ≤ lowest OVS", "rtt_avg_us", best("rtt_avg_us"), 1.0, false)
	}
	if slices.ContainsFunc(o.only, func(c config) bool { return c.name == "ovsxdp-ct" }) &&
		slices.ContainsFunc(o.only, func(c config) bool { return c.name == "ovs-ct" }) {
		rowOf("ovsxdp-ct", "Stateful firewall, TCP connections per second: ovsxdp-ct ≥ 1.2× ovs-ct", "conns_per_s", "ovs-ct", 1.2, true)
		rowOf("ovsxdp-ct", "Stateful firewall, TCP throughput: ovsxdp-ct ≥ 1.2× ovs-ct", "tcp_gbps", "ovs-ct", 1.2, true)
	}
	var drops kernelDrops
	var sent float64
	runs, short := 0, 0
	for _, s := range ok(samples, "ovsxdp") {
		if s.paced.measured {
			runs++
			drops.ringFull += s.paced.drops.ringFull
			drops.noFrame += s.paced.drops.noFrame
			sent += s.paced.sent * o.duration.Seconds()
			if s.paced.sent < pacedSentShare*s.paced.offered {
				short++
			}
		}
	}
	what := fmt.Sprintf("At %.0f%% of the rate ovsxdp sustained (AF_XDP sender), the kernel drops nothing on its sockets (rx ring full, no fill frame)", 100*paceShare)
	if runs == 0 {
		fmt.Fprintf(&b, "| %s | not measured | – |\n", what)
	} else {
		verdict := "yes"
		if short > 0 {
			// A sender that lacked a CPU offered less than the target:
			// no drop then says nothing about the target's rate.
			verdict = fmt.Sprintf("not shown: no drop, but in %d of the runs the sender sent under %.0f%% of its target", short, 100*pacedSentShare)
		}
		if drops.total() > 0 {
			verdict = "no"
			if sent > 0 {
				verdict = fmt.Sprintf("no, %.2f%% of the frames sent dropped", 100*float64(drops.total())/sent)
			}
		}
		plural := "s"
		if runs == 1 {
			plural = ""
		}
		fmt.Fprintf(&b, "| %s | %d dropped (rx ring full %d, no fill frame %d) of about %.0f sent, %d run%s | %s |\n",
			what, drops.total(), drops.ringFull, drops.noFrame, sent, runs, plural, verdict)
	}
	return b.String()
}

// stateful renders the stateful-firewall configurations' flows, their
// medians and ratio, and, round by round, what their trackers and drop
// rules saw.
func stateful(o options, samples []sample) string {
	var names []string
	for _, c := range o.only {
		if c.group == "ct" {
			names = append(names, c.name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Stateful firewall (connection tracking)\n\n" +
		"ovsxdp-ct and ovs-ct load the same flows, those of the conntrack differential test (`test/conntrack_diff_test.go`) with its TCP rule opened to iperf3's port and the echo server's; " +
		"namespace `a` is OpenFlow port 1, `b` port 2:\n\n```\n" + strings.Join(ctFlows, "\n") + "\n```\n\n" +
		fmt.Sprintf("Connections per second: a generator built into the harness runs in `a` for the test's duration with %d connections at a time, each one connect, "+
			"16 bytes sent, the 16 echoed bytes read back, close (the client closes first; `a` gets the port range 1024–65535 and `net.ipv4.tcp_tw_reuse=1`, "+
			"so that ports in TIME_WAIT are reused, each time as a new connection through the tracker); an echo server of the harness answers in `b` on port %d. "+
			"A failure is a connect, write or read that fails or takes over 3 s. The same test runs in every configuration, stateless ones included, "+
			"so that the table above shows what tracking costs. The stateful configurations are not given the UDP and AF_XDP-sender tests. ", connParallel, echoPort) +
		"After each run, the harness asks the switch for `dpctl/ct-get-nconns` (`ovsxdp dpctl/ct-get-nconns` on the daemon's control socket, `ovs-appctl dpctl/ct-get-nconns` for OVS) " +
		"and fails the run if it is 0 (the tracker held nothing, so ct did not run), and reads the packet counts of the `+inv` drop rule and of the final drop rule with `ovs-ofctl dump-flows`.\n\n")
	b.WriteString("| configuration | TCP connections (conn/s) | TCP throughput (Gbit/s) | ping RTT, average (µs) | runs ok |\n|---|---|---|---|---|\n")
	for _, n := range names {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d/%d |\n", n, fmtVal(medianOf(samples, n, metricByKey("conns_per_s")), metricByKey("conns_per_s")),
			fmtVal(medianOf(samples, n, metricByKey("tcp_gbps")), metricByKey("tcp_gbps")), fmtVal(medianOf(samples, n, metricByKey("rtt_avg_us")), metricByKey("rtt_avg_us")),
			len(ok(samples, n)), o.rounds)
	}
	fmt.Fprintf(&b, "| ovsxdp-ct / ovs-ct (median of the rounds' ratios) | %s | %s | %s | |\n\n",
		fmtRatio(ratio(samples, "ovsxdp-ct", "ovs-ct", metricByKey("conns_per_s"))), fmtRatio(ratio(samples, "ovsxdp-ct", "ovs-ct", metricByKey("tcp_gbps"))),
		fmtRatio(ratio(samples, "ovsxdp-ct", "ovs-ct", metricByKey("rtt_avg_us"))))
	b.WriteString("The tracker must hold at least one connection per distinct source port the completed connections used (their 4-tuples; ct's TIME_WAIT lasts 45 s in both), " +
		"plus iperf3's two and ping's. A port reused from TIME_WAIT " +
		"replaces its connection: ovsxdp's tracker removes the old one at once, Open vSwitch's counts it until its sweeper removes it.\n\n")
	b.WriteString("| round | configuration | connections completed | failed | failures by kind | distinct source ports | tracked connections after the run | dropped as +inv | dropped by the final rule |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range samples {
		if !slices.Contains(names, s.config) {
			continue
		}
		nc, inv, drop := "–", "–", "–"
		if s.ct != nil {
			nc, inv, drop = strconv.Itoa(s.ct.nconns), strconv.FormatUint(s.ct.invalid, 10), strconv.FormatUint(s.ct.dropped, 10)
		}
		kinds := s.conns.errors
		if kinds == "" {
			kinds = "–"
		}
		if s.err != "" {
			kinds += " (run failed: see below)"
		}
		fmt.Fprintf(&b, "| %d | %s | %d | %d | %s | %d | %s | %s | %s |\n", s.round, s.config, s.conns.done, s.conns.failures, kinds, s.conns.ports, nc, inv, drop)
	}
	return b.String()
}

// cpuTarget is the target for ovsxdp's forwarding CPU per packet, as a
// share of the most frugal OVS configuration's.
const cpuTarget = 0.6

// bestKernel is the kernel-only configuration (bridge, xdp-redirect)
// with the best median for m, or "".
func bestKernel(samples []sample, m metric) string {
	best, bv := "", math.NaN()
	for _, k := range []string{"bridge", "xdp-redirect"} {
		v := medianOf(samples, k, m)
		if math.IsNaN(v) {
			continue
		}
		if best == "" || (m.higherBetter && v > bv) || (!m.higherBetter && v < bv) {
			best, bv = k, v
		}
	}
	return best
}

// paced renders the paced runs of the configurations that count their
// sockets' kernel drops, round by round, with the gauges of the phase
// alone where the configuration has them.
func paced(o options, samples []sample) string {
	var b strings.Builder
	for _, s := range samples {
		if !s.paced.measured || s.err != "" {
			continue
		}
		if b.Len() == 0 {
			fmt.Fprintf(&b, "\n## The AF_XDP sender at %.0f%% of the rate each configuration sustained\n\n"+
				"After the AF_XDP sender's test, the same sender again, asked to keep %.0f%% of the rate the configuration forwarded in it (target), for %v; "+
				"what it sent (it gives up the frames that fall due while it is off its CPU, so a loaded machine sends less than the target), "+
				"what b received, and what the kernel side of the configuration's AF_XDP sockets dropped meanwhile (a forwarder that keeps up leaves it nothing to drop). "+
				"For ovsxdp, the gauges of this phase alone (started afresh at its start): the poll thread's longest gap between two polls either of which found packets "+
				"(the sockets hold as many frames as a fill ring: at the rate sent, a gap longer than that lasts empties it), "+
				"the fewest frames a socket's fill ring held when a poll found frames waiting, and the polls that found one empty "+
				"(the frames of the batch being forwarded are on neither ring, so a ring can run dry and be topped up again between two polls: "+
				"a fewest at or below a batch, %d frames, means it may have); "+
				"and the poll thread's CPU time in the phase and the time it spent runnable but waiting for a CPU (/proc's schedstat of the thread that ran most): "+
				"a thread that waits for a CPU while frames come in falls behind however it polls.\n\n"+
				"| round | configuration | target (packets/s) | sent (packets/s) | received (packets/s) | rx ring full | no fill frame | longest poll gap (ms) | rx frames per port | fewest fill frames | polls that found it empty | poll thread ran (ms) | waited for a CPU (ms) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
				100*paceShare, 100*paceShare, o.duration, vport.MaxBatch)
		}
		fmt.Fprintf(&b, "| %d | %s | %.0f | %.0f | %.0f | %d | %d |", s.round, s.config, s.paced.offered, s.paced.sent, s.paced.received, s.paced.drops.ringFull, s.paced.drops.noFrame)
		if g := s.paced.gauges; g != nil {
			fmt.Fprintf(&b, " %.2f | %d | %d | %d |", float64(g.maxPollGap)/1e6, g.fillSize, g.fillLow, g.foundEmpty)
		} else {
			b.WriteString(" – | – | – | – |")
		}
		if p := s.paced.sched; p != nil {
			fmt.Fprintf(&b, " %d | %d |\n", p.pollCPU.Milliseconds(), p.pollWait.Milliseconds())
		} else {
			b.WriteString(" – | – |\n")
		}
	}
	return b.String()
}

// writePlot draws one bar chart per metric of metrics, the
// configurations side by side.
func writePlot(path string, o options, samples []sample, metrics []metric) error {
	const cols = 4
	rows := (len(metrics) + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	names := make([]string, len(o.only))
	for i, c := range o.only {
		names[i] = c.name
	}
	for i, mt := range metrics {
		p := plot.New()
		p.Title.Text = mt.title
		p.Y.Label.Text = mt.unit
		top := 0.0
		for j, c := range o.only {
			v := medianOf(samples, c.name, mt)
			if math.IsNaN(v) {
				v = 0
			}
			top = max(top, v)
			bars, err := plotter.NewBarChart(plotter.Values{v}, vg.Points(16))
			if err != nil {
				return err
			}
			bars.XMin = float64(j)
			bars.Color = groupColor(c.group)
			bars.LineStyle.Width = 0
			p.Add(bars)
		}
		p.Add(plotter.NewGrid())
		p.NominalX(names...)
		p.X.Tick.Label.Rotation = math.Pi / 4
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
		p.Y.Min, p.Y.Max = 0, top*1.1
		if plots[i/cols] == nil {
			plots[i/cols] = make([]*plot.Plot, cols)
		}
		plots[i/cols][i%cols] = p
	}
	for r := range plots {
		for c := range plots[r] {
			if plots[r][c] == nil {
				plots[r][c] = plot.New()
				plots[r][c].HideAxes()
			}
		}
	}
	img := vgimg.New(16*vg.Inch, 4.5*vg.Inch*vg.Length(rows))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(plots, tiles, dc)
	for r := range plots {
		for c := range plots[r] {
			plots[r][c].Draw(canvases[r][c])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// groupColor is the bars' colour for a configuration group.
func groupColor(g string) color.Color {
	switch g {
	case "ovsxdp":
		return color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	case "ovs":
		return color.RGBA{0xff, 0x7f, 0x0e, 0xff}
	case "xdp":
		return color.RGBA{0x2c, 0xa0, 0x2c, 0xff}
	}
	return color.RGBA{0x7f, 0x7f, 0x7f, 0xff}
}

// goBenchSummary runs bench/gobench once (with extra flags, which must
// leave -name alone) into a temporary directory and returns its report without its title, or a line saying why it could
// not.
func goBenchSummary(ctx context.Context, extra ...string) string {
	dir, err := os.MkdirTemp("", "vethbench-gobench-")
	if err != nil {
		return "not run: " + err.Error()
	}
	defer os.RemoveAll(dir)
	args := append([]string{"run", "./bench/gobench", "-rounds", "1", "-benchtime", "200ms", "-out", dir}, extra...)
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("not run: go %s: %v: %.500s", strings.Join(args, " "), err, out)
	}
	md, err := os.ReadFile(dir + "/gobench.md")
	if err != nil {
		return "not run: " + err.Error()
	}
	s := string(md)
	// Drop the title and the command, keep the rest, with its headings
	// one level down.
	if i := strings.Index(s, "\n## "); i >= 0 {
		s = s[i:]
	}
	return strings.TrimSpace(strings.ReplaceAll(s, "\n## ", "\n### "))
}

// pprofTop summarizes a CPU profile with go tool pprof -top.
func pprofTop(path string) string {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=30", path).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go tool pprof: %v: %.300s\n", err, out)
	}
	return string(out)
}

// profileShares reads, from go tool pprof -top output, the sampled share
// of wall time and the cumulative share of the functions that tell where
// the poll thread's time goes.
func profileShares(top string) string {
	var b strings.Builder
	// cum is the largest cumulative share of the functions named by
	// any of the suffixes.
	cum := func(suffixes ...string) (float64, bool) {
		best, found := 0.0, false
		for _, l := range strings.Split(top, "\n") {
			f := strings.Fields(l)
			if len(f) != 6 {
				continue
			}
			for _, suffix := range suffixes {
				if !strings.HasSuffix(f[5], suffix) {
					continue
				}
				if v, err := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64); err == nil {
					best, found = max(best, v), true
				}
			}
		}
		return best, found
	}
	for _, l := range strings.Split(top, "\n") {
		if strings.Contains(l, "Total samples") {
			fmt.Fprintf(&b, "Sampled: %s. ", strings.TrimSpace(l))
		}
	}
	for _, x := range []struct{ fn, what string }{
		{"Syscall6", "in system calls"},
		{"datapath.(*pmd).transmit", "under the poll thread's transmit (the AF_XDP tx ring and the sendto that makes the kernel send it)"},
		{"datapath.(*pmd).process", "under classification and actions (pmd.process)"},
		{"vport.(*XSKPort).Receive", "under AF_XDP receive"},
		{"datapath.(*pmd).adapt", "under the adaptive idle strategy (naps and poll(2) sleeps, their system calls only: a sleeping thread is not sampled)"},
	} {
		if v, found := cum(x.fn); found {
			fmt.Fprintf(&b, "%.0f%% of the samples are %s. ", v, x.what)
		}
	}
	return strings.TrimSpace(b.String())
}

// perRun lists, as "- round R, CONFIG: TEXT" lines, the runs for which
// text returns something.
func perRun(samples []sample, text func(sample) string) []string {
	var lines []string
	for _, s := range samples {
		if t := text(s); t != "" {
			lines = append(lines, fmt.Sprintf("- round %d, %s: %s", s.round, s.config, t))
		}
	}
	return lines
}

// doubleCount says whether the forwarding CPU column counts a forwarding
// process's softirq work twice, given the kernel's IRQ time accounting.
func doubleCount(irqTime string) string {
	const twice = "charges softirq work that runs in a process's context, when one of its system calls re-enables bottom halves, " +
		"to both the process's system time and the machine's softirq time: for ovsxdp and OVS that work is counted twice, which the bridge and XDP, " +
		"having no process, are spared. "
	switch irqTime {
	case "yes":
		return "This kernel accounts softirq time apart from the tasks it interrupts (CONFIG_IRQ_TIME_ACCOUNTING), so that column counts no work twice. "
	case "no":
		return "This kernel has no separate IRQ time accounting (CONFIG_IRQ_TIME_ACCOUNTING is not set): its tick accounting " + twice
	}
	return "Whether this kernel accounts IRQ time apart is unknown (no /proc/config.gz); without that, the kernel's tick accounting " + twice
}

// limits compares the rate targets with what the kernel-only
// configurations reached in the same run: a target above both is above
// what this topology carries at all.
func limits(o options, samples []sample) string {
	var b strings.Builder
	for _, x := range []struct {
		key, what string
		want      float64
	}{{"udp_pps", "UDP (iperf3)", 1.2}, {"xsk_pps", "UDP (AF_XDP sender)", 1.2}, {"tcp_gbps", "TCP", 1.5}} {
		m := metricByKey(x.key)
		best := bestOVS(o, samples, m)
		if best == "" {
			continue
		}
		target := x.want * medianOf(samples, best, m)
		limit, by := 0.0, ""
		for _, k := range []string{"xdp-redirect", "bridge"} {
			if v := medianOf(samples, k, m); v > limit { // false for NaN
				limit, by = v, k
			}
		}
		if !(target > 0) || limit == 0 {
			continue // not measured
		}
		fmt.Fprintf(&b, "\n- %s: the target, %.1f× %s, is %s; the kernel-only path reached %s (%s), so the target is %.2f× the best the kernel itself forwarded here; ovsxdp reached %.2f× of that. ",
			x.what, x.want, best, m.format(target), m.format(limit), by, target/limit, medianOf(samples, "ovsxdp", m)/limit)
	}
	return b.String()
}

// analysis explains, from this run's measurements, what limits ovsxdp
// against the targets.
func analysis(o options, samples []sample, prof string) string {
	xs := ok(samples, "ovsxdp")
	if len(xs) == 0 {
		return ""
	}
	var user, sys, softirq, total, batch, busy []float64
	for _, s := range xs {
		user, sys, softirq = append(user, s.cpu.user), append(sys, s.cpu.sys), append(softirq, s.cpu.softirq)
		total = append(total, s.cpu.total())
		batch, busy = append(batch, s.perBatch), append(busy, s.busyNs)
	}
	u, sy, si := median(user), median(sys), median(softirq)
	var b strings.Builder
	b.WriteString("\n### What limits ovsxdp here\n\n")
	fmt.Fprintf(&b, "- ovsxdp's CPU per million packets (median %.2f s) splits into %.2f s of user time, %.2f s of system time and %.2f s of softirq (medians): "+
		"%.0f%% of it is the kernel's (system + softirq). ", median(total), u, sy, si, 100*(sy+si)/(u+sy+si))
	if best := bestOVS(o, samples, metricByKey("cpu_s_per_mpkt")); best != "" {
		ovs := medianOf(samples, best, metricByKey("cpu_s_per_mpkt"))
		floor := (sy + si) / ovs
		fmt.Fprintf(&b, "Even with no user time at all, ovsxdp would use %.2f× the CPU per packet of %s (%.2f s); the target is %.1f×. ", floor, best, ovs, cpuTarget)
		if floor > cpuTarget {
			b.WriteString("With AF_XDP in copy mode on veths, the kernel's per-frame work (an skb per frame on transmit, the veth's transmit " +
				"and the receiving stack) dominates every AF_XDP configuration alike, so no user-space change reaches the target on this topology.")
		} else {
			b.WriteString("The kernel's share alone does not rule the target out: the user time is what stands between.")
		}
	}
	mc := metricByKey("machine_cpu_s_per_mpkt")
	if best := bestOVS(o, samples, mc); best != "" {
		fmt.Fprintf(&b, " Counted on the machine's busy time instead, which counts no work twice, ovsxdp uses %.2f s per million packets: %s of %s's, the most frugal OVS configuration by that count.",
			medianOf(samples, "ovsxdp", mc), fmtRatio(ratio(samples, "ovsxdp", best, mc)), best)
		if r := ratio(samples, "ovsxdp", "bridge", mc); !math.IsNaN(r) {
			fmt.Fprintf(&b, " Against the bridge: %s.", fmtRatio(r))
		}
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "- The poll thread averaged %.1f packets per batch and %.0f ns of busy time per packet over the runs (medians).", median(batch), median(busy))
	if prof != "" {
		b.WriteString(" In the profile (below): " + profileShares(prof))
	}
	b.WriteString(limits(o, samples))
	b.WriteString(pacedLimits(o, samples))
	if off := medianOf(samples, "ovsxdp-nogro", metricByKey("tcp_gbps")); !math.IsNaN(off) {
		cpu := metricByKey("cpu_s_per_mpkt")
		fmt.Fprintf(&b, "\n- Segment coalescing: ovsxdp sends each run of one TCP connection's segments (or one UDP flow's datagrams) in an output batch as one GSO packet, "+
			"which the kernel hands to the receiving stack whole; with that off (ovsxdp-nogro), every packet costs the kernel an skb, a veth transmit and a pass "+
			"through the receiving stack. TCP reached %.2f Gbit/s without it and %.2f Gbit/s with it; CPU per million packets during the iperf3 UDP test was %.2f s without it "+
			"and %.2f s with it (medians).",
			off, medianOf(samples, "ovsxdp", metricByKey("tcp_gbps")), medianOf(samples, "ovsxdp-nogro", cpu), medianOf(samples, "ovsxdp", cpu))
	}
	if best := bestOVS(o, samples, metricByKey("rtt_avg_us")); best != "" {
		rtt := metricByKey("rtt_avg_us")
		pcpu := metricByKey("ping_cpu_pct")
		fmt.Fprintf(&b, "\n- Ping RTT: ovsxdp's adaptive poll thread polls on for up to 20 ms after its last packet as long as other threads leave it its CPU "+
			"(it sleeps once the kernel has run other threads in its place for a quarter of that time), so that with a CPU to spare, pings 10 ms apart find it awake: "+
			"average %.1f µs against %.1f µs for %s. While traffic lasts, that costs what busy polling costs: the machine was busy %.0f%% of a CPU "+
			"during the ping test (%s: %.0f%%). ", medianOf(samples, "ovsxdp", rtt), medianOf(samples, best, rtt), best,
			medianOf(samples, "ovsxdp", pcpu), best, medianOf(samples, best, pcpu))
		if off := medianOf(samples, "ovsxdp-nospare", rtt); !math.IsNaN(off) {
			fmt.Fprintf(&b, "With that off (ovsxdp-nospare), the thread sleeps in poll(2) 50 µs after its last packet and each ping pays a wake-up: "+
				"average %.1f µs, the machine busy %.0f%% of a CPU. ", off, medianOf(samples, "ovsxdp-nospare", pcpu))
		}
		if o.wake.samples > 0 {
			fmt.Fprintf(&b, "On this machine a thread that sleeps 1 µs (timer slack %v, as ovsxdp's poll thread) is back after %.1f µs on average (%d sleeps, measured at the start of the run): "+
				"that is what a sleeping forwarder pays per wakeup, and what a busy-polling one does not. ", o.wake.slack, o.wake.avgMicros, o.wake.samples)
		}
		if o.wake.crossSamples > 0 {
			fmt.Fprintf(&b, "A ping's request wakes the sleeping poll thread from the CPU the ping runs on: a thread blocked in poll(2) on one CPU runs %.1f µs on average "+
				"(median %.1f µs) after another CPU writes to the eventfd it waits on (%d wake-ups 1 ms apart, measured at the start of the run); the virtual CPU it sleeps on "+
				"must leave the halt state first. ", o.wake.crossAvg, o.wake.crossMedian, o.wake.crossSamples)
		}
		if spin := medianOf(samples, "ovsxdp-spin", rtt); !math.IsNaN(spin) {
			fmt.Fprintf(&b, "Busy-polling like OVS's PMD (ovsxdp-spin), ovsxdp's average is %.1f µs, at the cost of a whole CPU (CPU per million packets %.2f s).",
				spin, medianOf(samples, "ovsxdp-spin", metricByKey("cpu_s_per_mpkt")))
		}
	}
	b.WriteString("\n- The 2 CPUs are shared by the sender, the receiver, the forwarder and whatever else runs on the machine (see the load average), " +
		"so a forwarder that costs less leaves more CPU to iperf3 and the rates measure the whole system, not the forwarder alone.\n")
	return b.String()
}

// writeMedians writes the table of each configuration's medians of ms.
func writeMedians(b *strings.Builder, o options, samples []sample, ms []metric) {
	b.WriteString("## Medians\n\n| configuration |")
	for _, mt := range ms {
		fmt.Fprintf(b, " %s (%s) |", mt.title, mt.unit)
	}
	b.WriteString(" runs ok |\n|---|")
	for range ms {
		b.WriteString("---|")
	}
	b.WriteString("---|\n")
	for _, c := range o.only {
		fmt.Fprintf(b, "| %s |", c.name)
		for _, mt := range ms {
			fmt.Fprintf(b, " %s |", fmtVal(medianOf(samples, c.name, mt), mt))
		}
		fmt.Fprintf(b, " %d/%d |\n", len(ok(samples, c.name)), o.rounds)
	}
}

// writeRatios writes the table of ours's ratios to every other
// configuration for ms, and to the best Open vSwitch configuration.
func writeRatios(b *strings.Builder, o options, samples []sample, ms []metric, ours string) {
	b.WriteString("\n## Ratios: " + ours + " divided by each configuration\n\nThe median over rounds of the ratio within a round. " +
		"Above 1 is better for ovsxdp in the rate columns (`tcp_gbps` to `xsk_pps`), below 1 in the others (times and CPU).\n\n| " + ours + " / |")
	for _, mt := range ms {
		fmt.Fprintf(b, " %s |", mt.key)
	}
	b.WriteString("\n|---|")
	for range ms {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, c := range o.only {
		if c.name == ours {
			continue
		}
		fmt.Fprintf(b, "| %s |", c.name)
		for _, mt := range ms {
			fmt.Fprintf(b, " %s |", fmtRatio(ratio(samples, ours, c.name, mt)))
		}
		b.WriteString("\n")
	}
	b.WriteString("| best OVS for the metric |")
	for _, mt := range ms {
		best := bestOVS(o, samples, mt)
		if best == "" {
			b.WriteString(" – |")
			continue
		}
		fmt.Fprintf(b, " %s (%s) |", fmtRatio(ratio(samples, ours, best, mt)), best)
	}
	b.WriteString("\n\n")
}
