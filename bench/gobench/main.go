// Command gobench runs the in-memory Go benchmarks of the flow, vport and
// datapath packages in alternating rounds (every benchmark once per round,
// so that a change in the machine's load touches all of them alike), and
// writes their medians and the ratios the project tracks, each against a
// reference measured in the same run:
//
//   - key extraction against gopacket's DecodingLayerParser on the same
//     frames (speed-up);
//   - the guarded output policy against legacy on the same pipeline (cost);
//   - a megaflow hit for a packet that crossed 8 tables against one that
//     crossed 1, in the cache alone and on the whole packet path (cost; the
//     benchmarks interleave the two and report the ratio, x8/1);
//   - the exact-match and megaflow hit costs against their targets, and
//     the time of a translation through 8 tables of 10,000 rules.
//
// It writes gobench.md (with the command and the machine) and gobench.csv
// (every sample) to -out; -name changes the files' base name, so that a run
// of a few benchmarks does not overwrite the full one.
package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

type options struct {
	rounds    int
	benchtime string
	pattern   string
	pkgs      []string
	out       string
	name      string
	// profile is whether the benchmarks behind missed targets are run
	// once more with a CPU profile, summarized in the report.
	profile bool
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gobench:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("gobench", flag.ContinueOnError)
	var o options
	pkgs := fs.String("pkgs", "./flow,./vport,./datapath", "packages, comma-separated")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; every benchmark runs once per round")
	fs.StringVar(&o.benchtime, "benchtime", "300ms", "go test -benchtime of each run")
	fs.StringVar(&o.pattern, "bench", ".", "go test -bench pattern")
	fs.StringVar(&o.out, "out", "bench/results", "directory for gobench.md and gobench.csv")
	fs.StringVar(&o.name, "name", "gobench", "base name of the .md and .csv files")
	fs.BoolVar(&o.profile, "profile", true, "after the rounds, run each benchmark behind a missed target once more with -cpuprofile and summarize where its time goes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.rounds < 1 {
		return fmt.Errorf("-rounds %d: want at least 1", o.rounds)
	}
	o.pkgs = strings.Split(*pkgs, ",")
	start := time.Now()
	samples := map[string][]sample{}
	var order []string
	for r := 1; r <= o.rounds; r++ {
		fmt.Fprintf(os.Stderr, "round %d of %d\n", r, o.rounds)
		for _, pkg := range o.pkgs {
			out, err := goTest(o, pkg)
			if err != nil {
				return err
			}
			for _, s := range parse(out, pkg) {
				if _, seen := samples[s.name]; !seen {
					order = append(order, s.name)
				}
				s.round = r
				samples[s.name] = append(samples[s.name], s)
			}
		}
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(o.out, o.name+".csv"), order, samples); err != nil {
		return err
	}
	var profiles []profile
	if o.profile {
		for _, name := range missedProfiled(samples) {
			p, err := profileBench(name, samples[name][0].pkg)
			if err != nil {
				return err
			}
			profiles = append(profiles, p)
		}
	}
	md := report(o, args, order, samples, profiles, time.Since(start))
	if err := os.WriteFile(filepath.Join(o.out, o.name+".md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	return nil
}

// goTest runs one round of one package's benchmarks.
func goTest(o options, pkg string) ([]byte, error) {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", o.pattern, "-benchmem", "-benchtime", o.benchtime, "-count", "1", pkg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go test %s: %w\n%s%s", pkg, err, out, stderr.Bytes())
	}
	return out, nil
}

// sample is one benchmark result line.
type sample struct {
	name   string
	pkg    string
	round  int
	ns     float64
	allocs float64
	pps    float64 // the pkts/s the benchmark reported; 0 if none
	// metrics are the other metrics the benchmark reported (b.ReportMetric),
	// by unit.
	metrics map[string]float64
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$`)
var (
	allocsField = regexp.MustCompile(`([\d.]+) allocs/op`)
	ppsField    = regexp.MustCompile(`([\d.e+]+) pkts/s`)
	metricField = regexp.MustCompile(`([\d.e+-]+) (\S+)`)
)

// standardUnits are the metrics sample has fields for or leaves out.
var standardUnits = map[string]bool{"allocs/op": true, "B/op": true, "pkts/s": true}

func parse(out []byte, pkg string) []sample {
	var ss []sample
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		ns, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		s := sample{name: strings.TrimPrefix(m[1], "Benchmark"), pkg: pkg, ns: ns}
		if a := allocsField.FindStringSubmatch(m[3]); a != nil {
			s.allocs, _ = strconv.ParseFloat(a[1], 64)
		}
		if p := ppsField.FindStringSubmatch(m[3]); p != nil {
			s.pps, _ = strconv.ParseFloat(p[1], 64)
		}
		for _, f := range metricField.FindAllStringSubmatch(m[3], -1) {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil && !standardUnits[f[2]] {
				if s.metrics == nil {
					s.metrics = map[string]float64{}
				}
				s.metrics[f[2]] = v
			}
		}
		ss = append(ss, s)
	}
	return ss
}

func median(ss []sample) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = s.ns
	}
	slices.Sort(v)
	if n := len(v); n%2 == 1 {
		return v[n/2]
	} else {
		return (v[n/2-1] + v[n/2]) / 2
	}
}

// pairRatio is the median over rounds of a/b, each pair measured in the
// same round.
func pairRatio(a, b []sample) (float64, bool) {
	byRound := map[int]float64{}
	for _, s := range b {
		byRound[s.round] = s.ns
	}
	var rs []sample
	for _, s := range a {
		if d, ok := byRound[s.round]; ok && d > 0 {
			rs = append(rs, sample{ns: s.ns / d})
		}
	}
	if len(rs) == 0 {
		return 0, false
	}
	return median(rs), true
}

func report(o options, args []string, order []string, samples map[string][]sample, profiles []profile, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# In-memory Go benchmarks\n\nProduced by:\n\n```\ngo run ./bench/gobench %s\n```\n\n", shellJoin(args))
	fmt.Fprintf(&b, "%s, %s/%s, %d CPUs, %s, %s. %d rounds; every benchmark runs once per round (`-benchtime %s`), and the figures are medians over the rounds. Ratios are taken within a round, then the median over the rounds.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), loadAverage(), o.rounds, o.benchtime)

	// The table of ratios and targets, left out when none of its
	// benchmarks ran.
	var rows strings.Builder
	for _, f := range extractFrames {
		r, ok := pairRatio(samples["GopacketDecodingLayerParser/"+f], samples["Extract/"+f])
		if ok {
			fmt.Fprintf(&rows, "| key extraction %s: gopacket DecodingLayerParser time / ovsxdp Extract time | %.2f× | ≥ %d× | %s |\n", f, r, extractTarget, atLeast(r, extractTarget))
		}
	}
	if r, ok := pairRatio(samples["OutputPolicy/guarded"], samples["OutputPolicy/legacy"]); ok {
		fmt.Fprintf(&rows, "| whole pipeline per packet, guarded / legacy output policy | %.3f | ≤ 1.03 | %s |\n", r, atMost(r, 1.03))
	}
	// The pipeline benchmarks interleave their 1-table and 8-table runs
	// and report the ratio themselves (x8/1).
	if r, ok := medianMetric(samples["PipelineHit"], "x8/1"); ok {
		fmt.Fprintf(&rows, "| megaflow hit (cache lookup, accounting, rule credit per batch), packet that crossed 8 tables / 1 table | %.3f | ≤ 1.1 | %s |\n", r, atMost(r, 1.1))
	}
	if r, ok := medianMetric(samples["PipelineTables"], "x8/1"); ok {
		fmt.Fprintf(&rows, "| megaflow hit, whole packet path (receive to transmit), 8 tables / 1 table | %.3f | ≤ 1.1 | %s |\n", r, atMost(r, 1.1))
	}
	for _, t := range lookupTargets {
		if ss := samples[t.name]; len(ss) > 0 {
			m := median(ss)
			fmt.Fprintf(&rows, "| %s, ns per lookup | %.1f ns | ≤ %.0f ns | %s |\n", t.name, m, t.limit, atMost(m, t.limit))
		}
	}
	for _, t := range packetTargets {
		ss := samples[t.name]
		if len(ss) == 0 {
			continue
		}
		ns := perPacketNs(ss)
		met := atMost(ns, t.limit)
		if ss[0].allocs != 0 {
			met = fmt.Sprintf("no, %.0f allocations per op", ss[0].allocs)
		}
		fmt.Fprintf(&rows, "| %s (%s), ns per packet, allocations | %.1f ns, %.0f allocs | ≤ %.0f ns, 0 allocs | %s |\n", t.what, t.name, ns, ss[0].allocs, t.limit, met)
	}
	if m, ok := medianMetric(samples["Translate8Tables"], "ns/translation"); ok {
		fmt.Fprintf(&rows, "| translation (upcall) through 8 tables of 10,000 rules, µs per packet (median of batches of 16) | %.2f µs | - | - |\n", m/1000)
	}
	if rows.Len() > 0 {
		b.WriteString("## Ratios against a reference measured in the same run\n\n| measure | ratio | target | met |\n|---|---|---|---|\n")
		b.WriteString(rows.String())
	}
	b.WriteString(hostComparison(samples))
	b.WriteString(profileSection(samples, profiles))
	b.WriteString("\n## Medians\n\nPackets per second are the benchmarks' own pkts/s metric (some move a batch per op), where they report one; other metrics are the benchmarks' own too.\n\n| package | benchmark | ns/op | packets/s | allocs/op | other metrics |\n|---|---|---|---|---|---|\n")
	for _, name := range order {
		ss := samples[name]
		fmt.Fprintf(&b, "| %s | %s | %.1f | %s | %.0f | %s |\n", ss[0].pkg, name, median(ss), medianPPS(ss), ss[0].allocs, otherMetrics(ss))
	}
	fmt.Fprintf(&b, "\nThe run took %s.\n", took.Round(time.Second))
	return b.String()
}

// nsTarget is a benchmark's target time, per lookup or per packet.
type nsTarget struct {
	name, what string
	limit      float64
	// profiled is whether a miss is profiled (profile.go): not where the
	// benchmark's setup, such as installing a million megaflows, would
	// fill the profile.
	profiled bool
}

// lookupTargets are per op of the benchmark.
var lookupTargets = []nsTarget{
	{name: "EMCHit", limit: 20, profiled: true},
	{name: "MegaflowHit/masks=16", limit: 100, profiled: true},
}

// packetTargets are per packet, so from the benchmark's own packet rate
// where it moves a batch per op.
var packetTargets = []nsTarget{
	{"Pipeline/emc", "whole pipeline per packet on an exact-match hit", 60, true},
	{"Pipeline/megaflow", "whole pipeline per packet on a megaflow hit", 90, true},
	{"MegaflowLookup1M/masks=1", "lookup among 1,000,000 megaflows, 1 mask", 150, false},
	{"MegaflowLookup1M/masks=16", "lookup among 1,000,000 megaflows, 16 masks", 400, false},
	// The poll threads look a batch's keys up together, so that
	// their cache misses overlap: the same targets, per key.
	{"MegaflowLookup1M/batch/masks=1", "lookup among 1,000,000 megaflows, 1 mask, 32 keys at a time as the poll threads look them up", 150, false},
	{"MegaflowLookup1M/batch/masks=16", "lookup among 1,000,000 megaflows, 16 masks, 32 keys at a time", 400, false},
}

// extractFrames are the frames key extraction is timed on against
// gopacket, with extractTarget the speed-up it must reach.
var extractFrames = []string{"tcp64", "udp64", "ipv6", "vlan"}

const extractTarget = 5

// hostReference is the benchmark whose time per frame the whole-pipeline
// figures are set beside, so that runs on different hosts can be compared:
// gopacket's parser of a 64-byte UDP frame, code that ovsxdp does not
// change.
const hostReference = "GopacketDecodingLayerParser/udp64"

// hostComparison is the report's section that sets the whole-pipeline
// figures beside the reference's (hostReference), in ns and in reference
// frames (the per-round ratio's median); empty when the reference or
// both pipelines did not run. It changes no target.
func hostComparison(samples map[string][]sample) string {
	ref := perPacketSamples(samples[hostReference])
	if len(ref) == 0 {
		return ""
	}
	var rows strings.Builder
	for _, name := range []string{"Pipeline/emc", "Pipeline/megaflow"} {
		pipe := perPacketSamples(samples[name])
		if r, ok := pairRatio(pipe, ref); ok {
			fmt.Fprintf(&rows, "| %s, ns per packet | %.1f ns | %.2f |\n", name, median(pipe), r)
		}
	}
	if rows.Len() == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Comparing hosts\n\nAbsolute ns depend on the host (its CPU, its clock source, what else runs on it): the same code has taken 1.5 to 2 times as long on one machine as on another. To compare runs from different hosts, read the pipeline's time per packet in frames of a reference measured in the same run, gopacket's DecodingLayerParser on a 64-byte UDP frame, whose code ovsxdp does not change; the targets above stay in ns.\n\n")
	b.WriteString("| measure | ns | in reference frames |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| reference: %s, ns per frame | %.1f ns | 1 |\n", hostReference, median(ref))
	b.WriteString(rows.String())
	return b.String()
}

// perPacketSamples returns ss with each sample's ns the time per packet
// (perPacket), for ratios between benchmarks that move different numbers
// of packets per op.
func perPacketSamples(ss []sample) []sample {
	out := make([]sample, len(ss))
	for i, s := range ss {
		out[i] = sample{round: s.round, ns: perPacket(s)}
	}
	return out
}

// perPacket is a sample's time per packet: from its packet rate if it
// reports one, else its time per op.
func perPacket(s sample) float64 {
	if s.pps > 0 {
		return 1e9 / s.pps
	}
	return s.ns
}

// medianMetric is the median over the rounds of the metric unit.
func medianMetric(ss []sample, unit string) (float64, bool) {
	var vs []sample
	for _, s := range ss {
		if v, ok := s.metrics[unit]; ok {
			vs = append(vs, sample{ns: v})
		}
	}
	if len(vs) == 0 {
		return 0, false
	}
	return median(vs), true
}

// otherMetrics lists the medians of the benchmark's other metrics.
func otherMetrics(ss []sample) string {
	var units []string
	for u := range ss[0].metrics {
		units = append(units, u)
	}
	slices.Sort(units)
	var parts []string
	for _, u := range units {
		if v, ok := medianMetric(ss, u); ok {
			parts = append(parts, strconv.FormatFloat(v, 'g', 4, 64)+" "+u)
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// perPacketNs is the median time per packet (perPacket).
func perPacketNs(ss []sample) float64 { return median(perPacketSamples(ss)) }

// medianPPS is the median of the reported packet rates, in millions.
func medianPPS(ss []sample) string {
	var rates []sample
	for _, s := range ss {
		if s.pps > 0 {
			rates = append(rates, sample{ns: s.pps})
		}
	}
	if len(rates) == 0 {
		return "-"
	}
	return strconv.FormatFloat(median(rates)/1e6, 'f', 2, 64) + "M"
}

// shellJoin joins args into a command line a shell reads back as args,
// quoting those with characters it would interpret.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n|&;<>()$`\\\"'*?[]#~{}!") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// atMost and atLeast are a target's verdict: "yes", or by how much the
// measure missed it, as a share of the target.
func atMost(v, limit float64) string {
	if v <= limit {
		return "yes"
	}
	return fmt.Sprintf("no, missed by %.0f%%", 100*(v-limit)/limit)
}

func atLeast(v, target float64) string {
	if v >= target {
		return "yes"
	}
	return fmt.Sprintf("no, missed by %.0f%%", 100*(target-v)/target)
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load average unknown"
	}
	return "load average " + strings.Join(f[:3], " ") + " at the end"
}

func writeCSV(path string, order []string, samples map[string][]sample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"package", "benchmark", "round", "ns_per_op", "allocs_per_op", "metrics"})
	for _, name := range order {
		for _, s := range samples[name] {
			var units []string
			for u := range s.metrics {
				units = append(units, u)
			}
			slices.Sort(units)
			var ms []string
			for _, u := range units {
				ms = append(ms, u+"="+strconv.FormatFloat(s.metrics[u], 'f', -1, 64))
			}
			w.Write([]string{s.pkg, s.name, strconv.Itoa(s.round), strconv.FormatFloat(s.ns, 'f', -1, 64), strconv.FormatFloat(s.allocs, 'f', -1, 64), strings.Join(ms, ";")})
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
