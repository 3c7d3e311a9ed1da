package main

import (
	"encoding/csv"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Report gathers the results of every driver.
type Report struct {
	Command string
	Started time.Time
	Elapsed time.Duration
	Steps   int
	Drivers []*DriverStats
	// Procs is how many processes ran the schedules side by side (-procs),
	// and Parts each one's stats, by driver (nil when one process ran
	// them all).
	Procs int
	Parts map[string][]*DriverStats
}

// DriverStats is one driver's totals.
type DriverStats struct {
	Name       string
	Schedules  int
	Failing    int
	Steps      int
	Done       int
	Refused    int
	Skipped    int
	NA         int
	Stalls     int
	Checks     int
	Violations map[string]int
	FirstSeeds map[string]uint64 // the first seed that showed each kind
	SkippedOps map[Op]int
	RefusedOps map[Op]int
	Recovery   []time.Duration
	Shrunk     []*Schedule
	Seeds      []uint64                 // the seeds run
	Elapsed    time.Duration            // the schedules' runs (shrinking excluded)
	Wall       time.Duration            // from the driver's first schedule to the end of its last (shrinking included)
	Phases     map[string]time.Duration // Elapsed by phase
	Orders     *orderStats              // netlink event orders, for drivers that record them
	Label      string                   `json:"-"` // a process's row in the tables: which seeds
}

func (r *Report) driver(name string) *DriverStats {
	d := &DriverStats{Name: name, Violations: map[string]int{}, FirstSeeds: map[string]uint64{}, SkippedOps: map[Op]int{}, RefusedOps: map[Op]int{}, Phases: map[string]time.Duration{}}
	r.Drivers = append(r.Drivers, d)
	return d
}

func (d *DriverStats) add(res *Result) {
	d.Schedules++
	d.Seeds = append(d.Seeds, res.Seed)
	d.Steps += res.Steps
	d.Done += res.Done
	d.Refused += res.Refused
	d.Skipped += res.Skipped
	d.NA += res.NA
	d.Stalls += res.Stalls
	d.Checks += res.Checks
	d.Recovery = append(d.Recovery, res.Recovery...)
	d.Elapsed += res.Elapsed
	if res.Orders != nil {
		if d.Orders == nil {
			d.Orders = newOrderStats()
		}
		d.Orders.merge(res.Orders)
	}
	for p, t := range res.Phases {
		d.Phases[p] += t
	}
	if res.Failed() {
		d.Failing++
	}
	for _, v := range res.Violations {
		if _, ok := d.FirstSeeds[v.Kind]; !ok {
			d.FirstSeeds[v.Kind] = res.Seed
		}
		d.Violations[v.Kind]++
	}
	for op, n := range res.SkippedOps {
		d.SkippedOps[op] += n
	}
	for op, n := range res.RefusedOps {
		d.RefusedOps[op] += n
	}
}

func (d *DriverStats) violations() int {
	n := 0
	for _, v := range d.Violations {
		n += v
	}
	return n
}

// recovery returns the median and the maximum recovery time.
func (d *DriverStats) recovery() (median, maximum time.Duration) {
	if len(d.Recovery) == 0 {
		return 0, 0
	}
	s := slices.Clone(d.Recovery)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

func opCounts(m map[Op]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", op, m[op]))
	}
	return strings.Join(parts, ", ")
}

func kindCounts(d *DriverStats) string {
	if len(d.Violations) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(d.Violations)) {
		parts = append(parts, fmt.Sprintf("%s %d (first seed %d)", k, d.Violations[k], d.FirstSeeds[k]))
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 0, 64)
}

// phaseOrder lists the phases in the order a run goes through them.
var phaseOrder = []string{PhaseEnv, PhaseStart, PhaseSetup, PhaseOps, PhaseAnswer, PhaseRecovery, PhaseCheck, PhaseFootprint, PhaseTeardown}

// perSchedule is the mean time of a schedule's run, and where it went:
// "9.8 s (env 1.2, start 0.9, ...)".
func (d *DriverStats) perSchedule() string {
	if d.Schedules == 0 {
		return "-"
	}
	n := float64(d.Schedules)
	sec := func(t time.Duration) string { return strconv.FormatFloat(t.Seconds()/n, 'f', 2, 64) }
	var parts []string
	rest := d.Elapsed
	for _, p := range phaseOrder {
		parts = append(parts, p+" "+sec(d.Phases[p]))
		rest -= d.Phases[p]
	}
	parts = append(parts, "other "+sec(rest))
	return sec(d.Elapsed) + " s (" + strings.Join(parts, ", ") + ")"
}

// rows are the rows of the report's tables: each driver's totals, after
// the rows of its processes when more than one ran it.
func (r *Report) rows() []*DriverStats {
	var rows []*DriverStats
	for _, d := range r.Drivers {
		if parts := r.Parts[d.Name]; len(parts) > 1 {
			for _, p := range parts {
				p.Label = "seeds " + seedsText(p.Seeds)
				rows = append(rows, p)
			}
		}
		rows = append(rows, d)
	}
	return rows
}

// rowName is the name of d's row in the table: the driver, with the
// seeds of a process's row or "all n processes" for the totals over
// them.
func (d *DriverStats) rowName(procs int) string {
	switch {
	case d.Label != "":
		return d.Name + " (" + d.Label + ")"
	case procs > 1:
		return fmt.Sprintf("%s, all %d processes", d.Name, procs)
	}
	return d.Name
}

// Summary is a short text summary.
func (r *Report) Summary() string {
	var b strings.Builder
	for _, d := range r.Drivers {
		med, mx := d.recovery()
		fmt.Fprintf(&b, "%s: %d schedules (%d failing), %d steps (%d done, %d refused, %d skipped), %d invariants checked, violations: %s; stalls %d; recovery median %s ms, max %s ms; per schedule %s\n",
			d.Name, d.Schedules, d.Failing, d.Steps, d.Done, d.Refused, d.Skipped, d.Checks, kindCounts(d), d.Stalls, ms(med), ms(mx), d.perSchedule())
	}
	return b.String()
}

var kinds = []string{KindSetup, KindNoAnswer, KindCrash, KindRecovery, KindLockup, KindLedger, KindTxQueue, KindLinkState, KindFDLeak, KindXSKLeak, KindBPFLeak, KindXDPLeak, KindGoroutine, KindHeld, KindOp}

// Write writes dir/name.md and dir/name.csv, creating dir if need be.
func (r *Report) Write(dir, name string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, name+".csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	head := []string{"driver", "schedules", "failing_schedules", "steps", "done", "refused", "skipped", "not_applicable", "invariants_checked", "violations"}
	for _, k := range kinds {
		head = append(head, "violations_"+strings.ReplaceAll(k, "-", "_"))
	}
	head = append(head, "recovery_median_ms", "recovery_max_ms", "recoveries", "stalls", "seconds_per_schedule", "processes", "seeds", "command")
	w.Write(head)
	for _, d := range r.rows() {
		med, mx := d.recovery()
		row := []string{d.Name, strconv.Itoa(d.Schedules), strconv.Itoa(d.Failing), strconv.Itoa(d.Steps), strconv.Itoa(d.Done),
			strconv.Itoa(d.Refused), strconv.Itoa(d.Skipped), strconv.Itoa(d.NA), strconv.Itoa(d.Checks), strconv.Itoa(d.violations())}
		for _, k := range kinds {
			row = append(row, strconv.Itoa(d.Violations[k]))
		}
		perSchedule := ""
		if d.Schedules > 0 {
			perSchedule = strconv.FormatFloat(d.Elapsed.Seconds()/float64(d.Schedules), 'f', 2, 64)
		}
		procs := 1
		if d.Label == "" {
			procs = max(1, len(r.Parts[d.Name]))
		}
		row = append(row, ms(med), ms(mx), strconv.Itoa(len(d.Recovery)), strconv.Itoa(d.Stalls), perSchedule, strconv.Itoa(procs), seedsText(d.Seeds), r.Command)
		w.Write(row)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# Chaos schedules over real netlink\n\n")
	fmt.Fprintf(&b, "Command: `%s` (started %s, took %v; %d steps per schedule; seeds count up from the first, the same seeds for every driver",
		r.Command, r.Started.UTC().Format(time.RFC3339), r.Elapsed.Round(time.Second), r.Steps)
	if r.Procs > 1 {
		fmt.Fprintf(&b, "; %d child processes side by side, each driver's seeds shared out between its processes, every n-th seed to each", r.Procs)
	}
	b.WriteString(").\n\n")
	b.WriteString(methodText)
	b.WriteString("\n| driver | schedules | failing | steps run | done | refused | skipped | invariants checked | violations | recovery median / max (ms) |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, d := range r.rows() {
		med, mx := d.recovery()
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %s / %s |\n", d.rowName(len(r.Parts[d.Name])), d.Schedules, d.Failing, d.Steps, d.Done, d.Refused, d.Skipped, d.Checks, d.violations(), ms(med), ms(mx))
	}
	b.WriteString("\n")
	for _, d := range r.Drivers {
		fmt.Fprintf(&b, "## %s\n\n- violations by kind: %s\n- poll-thread stalls (the watchdog's lockups not spinning in output; not violations): %d\n- refused by the kernel or the datapath: %s\n- skipped (not supported by the driver): %s\n- steps not applicable in the state reached: %d\n- time per schedule: %s\n- seeds run: %s\n",
			d.Name, kindCounts(d), d.Stalls, opCounts(d.RefusedOps), opCounts(d.SkippedOps), d.NA, d.perSchedule(), seedsText(d.Seeds))
		if parts := r.Parts[d.Name]; len(parts) > 1 {
			for i, p := range parts {
				fmt.Fprintf(&b, "- process %d: seeds %s, %d schedules in %v; time per schedule %s\n", i+1, seedsText(p.Seeds), p.Schedules, p.Wall.Round(time.Second), p.perSchedule())
			}
		}
		if d.Orders != nil {
			b.WriteString(d.Orders.text())
		}
		for _, s := range d.Shrunk {
			fmt.Fprintf(&b, "- shrunk failing schedule (%s):\n\n```\n%s\n```\n", s.Failure, s)
		}
		b.WriteString("\n")
	}
	return os.WriteFile(filepath.Join(dir, name+".md"), []byte(b.String()), 0o644)
}

const methodText = `Each schedule builds a switch namespace and 3 or 4 slots (a namespace
with a veth pair whose host end is a port of the datapath; 4 queues
allocated, 2 in use), starts the datapath, pings every 50 ms from each
slot to the next as background traffic, and runs its steps. After every
step: the datapath answers its control interface within 10 s; every pair
of slots that must reach each other (namespace present, port configured,
both ends up) exchanges a ping within 10 s (the recovery time is the time
until all pairs did; a pair that did not is a violation once, and until
a step acts on one of its two slots or restarts the datapath it is
probed with one ping of 200 ms after each step, not waited for, and
counts as recovered when that ping comes back); and the driver's own
invariants: for ovsxdp, no soft
lockup spinning in output in watchdog/show (one that is not spinning, a
poll thread a busy machine descheduled, is counted as a stall, not a
violation), the bridge's ledger balances within 5 s
(received = sent + dropped by reason, from dump-ports, the removed ports'
row included), no transmit on a tx queue at or above the device's tx
queue count (from dump-ports), the daemon's link state of every attached
port (show's link_state) equal to the kernel's (UP and LOWER_UP) within
5 s, no XDP program on a host end that is not a port, no
AF_XDP ring mapping whose socket is closed, no more AF_XDP sockets, XDP
programs or BPF links than the attached ports can hold (each for 10 s: a
port being opened or closed holds them for a moment). After the last
step every slot is healed to its initial state and the same checks run
(every pair waited for, within 30 s),
with the process's AF_XDP sockets, ring mappings, XDP programs and BPF
links equal to those after start, file descriptors within 4 and
goroutines within 10 of them. "Refused" steps are ones the kernel or the
datapath refused with an error (for example ethtool -L on a queue that an
AF_XDP socket holds, ip link set xdp off on a program attached through a
BPF link); "skipped" ones the driver cannot do (a restart of the Linux
bridge).
`
