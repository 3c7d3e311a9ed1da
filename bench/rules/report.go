package main

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// env describes the run: the command, the machine and its load.
type env struct {
	command, date, machine, goVersion, ovsVersion, commit string
	fileBytes                                             int64
	loadStart, loadEnd                                    string
}

func environment(o options, fileBytes int64) env {
	e := env{
		command:   "go run ./bench/rules " + strings.Join(os.Args[1:], " "),
		date:      time.Now().UTC().Format("2006-01-02 15:04 MST"),
		goVersion: runtime.Version(),
		fileBytes: fileBytes,
		loadStart: loadavg(),
	}
	if len(os.Args) <= 1 {
		e.command = "go run ./bench/rules"
	}
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
					mem = fmt.Sprintf(", %.1f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	e.machine = fmt.Sprintf("%s, %d CPUs%s, Linux %s", cpu, runtime.NumCPU(), mem, strings.TrimSpace(string(kernel)))
	if out, err := exec.Command("ovs-vswitchd", "--version").Output(); err == nil {
		e.ovsVersion = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		e.commit = strings.TrimSpace(string(out))
	}
	return e
}

func loadavg() string {
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

// ratio is one tracked ratio, computed within each round.
type ratio struct {
	name, target string
	better       string // "higher" or "lower"
	want         float64
	of           func(a, b result) float64 // a: the ovsxdp configuration, b: Open vSwitch's
	config       string                    // the ovsxdp configuration it compares with base
	base         string                    // the Open vSwitch configuration: ovs or ovs-bundle
	memory       bool                      // a ratio of memory, meaningless when an add timed out
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func ratios(configs []string) []ratio {
	var rs []ratio
	for _, c := range []string{"ovsxdp-cli", "ovsxdp-ofctl"} {
		if !contains(configs, c) || !contains(configs, "ovs") {
			continue
		}
		// The 5× is the CLI's. Through ovs-ofctl add-flows the
		// client waits for a barrier reply after every flow mod, whoever
		// the switch is, so the wait bounds the ratio: the target there is
		// to be faster than Open vSwitch.
		target, want := "≥ 5", 5.0
		if c == "ovsxdp-ofctl" {
			target, want = "≥ 1.0", 1
		}
		rs = append(rs,
			ratio{name: c + ": add rate (rules/s) / Open vSwitch's", target: target, better: "higher", want: want, config: c, base: "ovs",
				of: func(a, b result) float64 { return rate(a) / rate(b) }},
			ratio{name: c + ": CPU time of the add, switch and client (Open vSwitch's / " + c + "'s)", better: "higher", config: c, base: "ovs",
				of: func(a, b result) float64 {
					return (b.switchCPU + b.clientCPU).Seconds() / (a.switchCPU + a.clientCPU).Seconds()
				}},
			ratio{name: c + ": settled RSS / Open vSwitch's", target: "≤ 1.0", better: "lower", want: 1, config: c, base: "ovs", memory: true,
				of: func(a, b result) float64 { return float64(a.settle.rss) / float64(b.settle.rss) }},
			ratio{name: c + ": RSS right after the add / Open vSwitch's", better: "lower", config: c, base: "ovs", memory: true,
				of: func(a, b result) float64 { return float64(a.after.rss) / float64(b.after.rss) }},
			ratio{name: c + ": memory added by the rules (settled − before) / Open vSwitch's", better: "lower", config: c, base: "ovs", memory: true,
				of: func(a, b result) float64 {
					return float64(a.settle.rss-a.before.rss) / float64(b.settle.rss-b.before.rss)
				}},
		)
	}
	// The same rules in one bundle each way: ovsxdp over OpenFlow
	// against Open vSwitch, without the barrier per flow mod that makes
	// plain add-flows a wait on the client.
	if contains(configs, "ovsxdp-bundle") && contains(configs, "ovs-bundle") {
		c := "ovsxdp-bundle"
		rs = append(rs,
			ratio{name: c + ": add rate (rules/s) / ovs-bundle's", target: "≥ 1.0", better: "higher", want: 1, config: c, base: "ovs-bundle",
				of: func(a, b result) float64 { return rate(a) / rate(b) }},
			ratio{name: c + ": settled RSS / ovs-bundle's", target: "≤ 1.0", better: "lower", want: 1, config: c, base: "ovs-bundle", memory: true,
				of: func(a, b result) float64 { return float64(a.settle.rss) / float64(b.settle.rss) }},
		)
	}
	return rs
}

// rate is the rules added per second.
func rate(r result) float64 { return float64(r.rules) / r.add.Seconds() }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func writeReport(o options, e env, results []result, stdout io.Writer) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(o.out, "rules.csv"), e, results); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %d OpenFlow rules: add time and resident memory, ovsxdp against Open vSwitch\n\n", o.n)
	fmt.Fprintf(&b, "Command: `%s` (as root, from the repository root; `make bench-rules`)\n\n", e.command)
	fmt.Fprintf(&b, "- date: %s; ovsxdp at %s, built with %s; %s\n", e.date, e.commit, e.goVersion, e.ovsVersion)
	fmt.Fprintf(&b, "- machine: %s\n", e.machine)
	fmt.Fprintf(&b, "- load average (1, 5, 15 min) at the start: %s; at the end: %s. The machine was shared with other work during the run: compare the ratios, which are taken within each round, rather than absolute values.\n", e.loadStart, e.loadEnd)
	fmt.Fprintf(&b, "- rules: %d in one file of %d bytes, shaped as OVN's logical switch pipeline (tables 0, 8, 9, 27, 44, 65; registers, metadata, MAC, IPv4 and IPv6 prefixes, transport ports, conjunctions; loads, resubmits, VLAN and output actions); see bench/rules/ovnrules\n", o.n, e.fileBytes)
	fmt.Fprintf(&b, "- %d rounds; each configuration runs once per round on a freshly started switch with one empty bridge, in a rotating order. CPU is the user and system time of the switch's process (/proc/PID/stat) and of the adding command during the add: it depends less on the machine's load than wall time. RSS is VmRSS of the process holding the rules (ovsxdp's daemon; ovs-vswitchd) from /proc/PID/status: before the add (2 s after start), right after it, and settled (%v later); peak is VmHWM\n", o.rounds, o.settle)
	b.WriteString("- configurations: `ovsxdp-cli` is `ovsxdp add-flows br0 FILE` into an ovsxdp daemon (own control socket, state file and run directory); `ovsxdp-ofctl` is `ovs-ofctl add-flows unix:RUNDIR/br0.mgmt FILE` into the same kind of daemon over its OpenFlow channel; `ovs` is `ovs-ofctl add-flows` into a sandboxed ovs-vswitchd (netdev datapath, fail-mode secure); `ovsxdp-bundle` and `ovs-bundle` are `ovs-ofctl --bundle add-flows` (all the rules in one bundle) into an ovsxdp daemon and into ovs-vswitchd. Each switch's flow count is checked with `ovs-ofctl dump-aggregate` afterwards\n\n")

	b.WriteString("## Ratios (per round, and their median)\n\n| ratio | target | rounds | median | met |\n|---|---|---|---|---|\n")
	byRound := map[int]map[string]result{}
	for _, r := range results {
		if byRound[r.round] == nil {
			byRound[r.round] = map[string]result{}
		}
		byRound[r.round][r.config] = r
	}
	for _, q := range ratios(o.configs) {
		var per []string
		var vals []float64
		timedOut := false
		for round := 1; round <= o.rounds; round++ {
			a, b := byRound[round][q.config], byRound[round][q.base]
			timedOut = timedOut || a.timedOut || b.timedOut
			v := q.of(a, b)
			vals = append(vals, v)
			per = append(per, fmt.Sprintf("%.2f", v))
		}
		m := median(vals)
		if timedOut && q.memory {
			// The switch holds fewer rules: its memory compares with nothing.
			fmt.Fprintf(&b, "| %s | %s | n/a: the add timed out | — | n/a |\n", q.name, dash(q.target))
			continue
		}
		met := "—"
		if q.want != 0 {
			met = "no"
			if (q.better == "higher" && m >= q.want) || (q.better == "lower" && m <= q.want) {
				met = "yes"
			}
			if timedOut {
				met = "no (timed out)"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f× | %s |\n", q.name, dash(q.target), strings.Join(per, ", "), m, met)
	}

	b.WriteString("\n## Medians by configuration\n\n| configuration | flows | add (s) | rules/s | switch CPU (s) | client CPU (s) | RSS before (MiB) | RSS after (MiB) | RSS settled (MiB) | settled − before (MiB) | bytes per rule | peak (MiB) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range o.configs {
		var add, before, after, settle, delta, peak, flows, scpu, ccpu []float64
		timedOut := false
		for _, r := range results {
			if r.config != c {
				continue
			}
			timedOut = timedOut || r.timedOut
			add = append(add, r.add.Seconds())
			scpu = append(scpu, r.switchCPU.Seconds())
			ccpu = append(ccpu, r.clientCPU.Seconds())
			before = append(before, float64(r.before.rss))
			after = append(after, float64(r.after.rss))
			settle = append(settle, float64(r.settle.rss))
			delta = append(delta, float64(r.settle.rss-r.before.rss))
			peak = append(peak, float64(r.settle.hwm))
			flows = append(flows, float64(r.rules))
		}
		addS := fmt.Sprintf("%.2f", median(add))
		if timedOut {
			addS += " (timed out)"
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %.0f | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f | %.0f | %.1f |\n", c, median(flows), addS,
			median(flows)/median(add), median(scpu), median(ccpu), median(before)/1024, median(after)/1024, median(settle)/1024, median(delta)/1024,
			median(delta)*1024/median(flows), median(peak)/1024)
	}

	b.WriteString("\n## Every measurement\n\n| round | configuration | flows | add (s) | switch CPU (s) | client CPU (s) | RSS before (MiB) | after | settled | peak |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		add := fmt.Sprintf("%.2f", r.add.Seconds())
		if r.timedOut {
			add += " (timed out)"
		}
		fmt.Fprintf(&b, "| %d | %s | %d | %s | %.2f | %.2f | %s | %s | %s | %s |\n", r.round, r.config, r.rules, add,
			r.switchCPU.Seconds(), r.clientCPU.Seconds(), mib(r.before.rss), mib(r.after.rss), mib(r.settle.rss), mib(r.settle.hwm))
	}
	if err := os.WriteFile(filepath.Join(o.out, "rules.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	_, err := io.WriteString(stdout, b.String())
	return err
}

func writeCSV(path string, e env, results []result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"round", "config", "flows", "add_seconds", "timed_out", "rss_before_kib", "rss_after_kib", "rss_settled_kib", "rss_delta_kib", "peak_kib", "switch_cpu_seconds", "client_cpu_seconds", "command", "load_start"})
	for _, r := range results {
		w.Write([]string{strconv.Itoa(r.round), r.config, strconv.Itoa(r.rules), strconv.FormatFloat(r.add.Seconds(), 'f', 3, 64),
			strconv.FormatBool(r.timedOut), strconv.FormatInt(r.before.rss, 10), strconv.FormatInt(r.after.rss, 10),
			strconv.FormatInt(r.settle.rss, 10), strconv.FormatInt(r.settle.rss-r.before.rss, 10), strconv.FormatInt(r.settle.hwm, 10),
			strconv.FormatFloat(r.switchCPU.Seconds(), 'f', 2, 64), strconv.FormatFloat(r.clientCPU.Seconds(), 'f', 2, 64), e.command, e.loadStart})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
