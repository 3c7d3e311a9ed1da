// Command chaos is a schedule fuzzer over real netlink: from a seed it
// builds a reproducible schedule of operations on veths in network
// namespaces (link and carrier flaps, tx queue count changes, MTU
// changes, namespace deletion, veth re-creation, port delete and re-add,
// renames, the XDP program removed from under a port, the datapath killed
// and restarted) and runs it under traffic against a datapath, checking
// invariants after every step. A failing schedule is shrunk to the fewest
// steps that still fail and saved as a replayable JSON file.
//
// The same schedules run against every driver: ovsxdp under each output
// policy (the daemon, as a process), the Linux bridge, and Open vSwitch
// with AF_XDP ports. It needs root.
//
//	go run ./bench/chaos -schedules 100 -drivers ovsxdp-guarded,bridge
//	go run ./bench/chaos -replay bench/chaos/testdata/regressions
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	vtopo "github.com/ovsxdp/ovsxdp/vport/topo"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

var allDrivers = []string{"ovsxdp-guarded", "bridge", "ovs", "ovsxdp-legacy", "ovsxdp-carrier", "ovsxdp-upstream"}

func run() error {
	var (
		drivers   = flag.String("drivers", "ovsxdp-guarded", "comma-separated drivers: "+strings.Join(allDrivers, ", "))
		schedules = flag.Int("schedules", 20, "schedules per driver")
		steps     = flag.Int("steps", 8, "steps per schedule")
		seed      = flag.Uint64("seed", 1, "seed of the first schedule (the others follow)")
		stride    = flag.Uint64("stride", 1, "seeds between two schedules: seed, seed+stride, ...")
		procs     = flag.Int("procs", 1, "run the schedules in this many child processes side by side (drivers and seeds shared out between them, every driver in one at least) and merge their results into one report")
		childOut  = flag.String("child-out", "", "(set by -procs) write the results as JSON into this file for the parent process")
		replay    = flag.String("replay", "", "replay a saved schedule (a JSON file) or every *.json in a directory, instead of generating")
		shrink    = flag.Bool("shrink", true, "shrink failing schedules")
		budget    = flag.Int("shrink-budget", 30, "at most this many runs to shrink one failing schedule")
		corpus    = flag.String("corpus", "", "save shrunk failing schedules in this directory (e.g. bench/chaos/testdata/regressions)")
		out       = flag.String("out", "", "write NAME.md and NAME.csv into this directory")
		name      = flag.String("name", "chaos", "base name of the report files")
		limit     = flag.Duration("time", 0, "per driver: start no schedule after this long (0: no limit)")
		bin       = flag.String("ovsxdp", "", "the ovsxdp binary (default: go build ./cmd/ovsxdp)")
		strict    = flag.Bool("strict", false, "exit with status 1 on any violation (other than the kinds a driver is expected to show: lockups and transmits on a queue at or above the tx queue count under ovsxdp-legacy, -carrier and -upstream)")
		verbose   = flag.Bool("v", false, "log every refused operation")
		print     = flag.Bool("print", false, "print the schedules and exit")
		modelDir  = flag.String("model-corpus", "", "write each netlink event order ovsxdp saw that the directory does not hold yet as a seed of the model's fuzz target (e.g. datapath/testdata/fuzz/FuzzTeardown)")
	)
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := vtopo.Check(); err != nil {
		return err
	}
	for _, tool := range []string{"ip", "ethtool", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing (Debian: iproute2, ethtool, iputils-ping)", tool)
		}
	}
	names := strings.Split(*drivers, ",")
	for _, n := range names {
		if !slices.Contains(allDrivers, n) {
			return fmt.Errorf("unknown driver %q (want %s)", n, strings.Join(allDrivers, ", "))
		}
	}
	var scheds []*Schedule
	if *replay != "" {
		var err error
		if scheds, err = loadSchedules(*replay); err != nil {
			return err
		}
	} else {
		for i := range *schedules {
			scheds = append(scheds, Generate(*seed+uint64(i)*(*stride), *steps))
		}
	}
	if *stride == 0 {
		return errors.New("-stride must be at least 1")
	}
	if *procs > 1 && *replay != "" {
		return errors.New("-procs does not combine with -replay")
	}
	if *print {
		for _, s := range scheds {
			fmt.Println(s)
		}
		return nil
	}
	binPath := *bin
	if binPath == "" {
		dir, err := os.MkdirTemp("", "chaos-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		binPath = filepath.Join(dir, "ovsxdp")
		if out, err := exec.Command("go", "build", "-o", binPath, "github.com/ovsxdp/ovsxdp/cmd/ovsxdp").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/ovsxdp: %w: %s", err, out)
		}
	}

	stop := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		log.Warn("interrupted: cleaning up", "signal", s)
		close(stop)
	}()
	interrupted := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}

	start := time.Now()
	rep := &Report{Command: commandLine(), Started: start, Steps: *steps, Procs: 1}
	var failed []string
	var childErr error
	serial := names // the drivers this process runs itself
	if *procs > 1 {
		serial = nil
		dir, err := os.MkdirTemp("", "chaos-procs-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		jobs := splitJobs(names, *procs, *seed, *stride, *schedules)
		rep.Procs = min(*procs, len(jobs))
		failed, err = runChildren(rep, jobs, options{steps: *steps, budget: *budget, shrink: *shrink, corpus: *corpus, bin: binPath,
			limit: *limit, verbose: *verbose, stop: stop, procs: *procs, childOutputDir: dir,
			logf: func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) }})
		childErr = err // what the others ran is still reported
	}
	for _, dn := range serial {
		agg := rep.driver(dn)
		r := &Runner{NewDriver: newDriver(dn, binPath), Log: log, Interrupted: stop}
		shrunkKinds := map[string]bool{}
		driverStart := time.Now()
		for _, s := range scheds {
			if interrupted() || (*limit > 0 && time.Since(driverStart) > *limit) {
				break
			}
			if *childOut != "" {
				// What ran so far, for the parent should this process
				// not end well.
				if err := writeChild(*childOut, &childReport{Drivers: rep.Drivers, Failed: failed, Elapsed: time.Since(start)}); err != nil {
					return err
				}
			}
			res := r.Run(s)
			if interrupted() {
				break
			}
			agg.add(res)
			agg.Wall = time.Since(driverStart)
			log.Info("schedule", "driver", dn, "seed", s.Seed, "slots", s.Slots, "steps", res.Steps, "done", res.Done,
				"refused", res.Refused, "skipped", res.Skipped, "checks", res.Checks, "violations", len(res.Violations), "took", res.Elapsed.Round(time.Millisecond))
			if !res.Failed() {
				continue
			}
			kind := res.Violations[0].Kind
			if !expected(dn, kind) {
				failed = append(failed, fmt.Sprintf("%s seed %d: %s", dn, s.Seed, res.Violations[0]))
			}
			// Shrink the first failing schedule of each kind per driver.
			if !*shrink || shrunkKinds[kind] || *replay != "" || expected(dn, kind) {
				continue
			}
			shrunkKinds[kind] = true
			min := Shrink(s, *budget, func(c *Schedule) bool {
				if interrupted() {
					return false
				}
				res := r.Run(c)
				for _, v := range res.Violations {
					if v.Kind == kind {
						return true
					}
				}
				return false
			})
			min.Driver, min.Failure = dn, kind
			agg.Shrunk = append(agg.Shrunk, min)
			fmt.Fprintf(os.Stderr, "shrunk failing schedule (%s on %s), replay with -replay FILE:\n%s\n", kind, dn, min)
			if *corpus != "" {
				path := filepath.Join(*corpus, fmt.Sprintf("%s-%s-seed%d.json", dn, kind, s.Seed))
				if err := min.Save(path); err != nil {
					return err
				}
				log.Info("saved", "path", path)
			}
		}
	}
	rep.Elapsed = time.Since(start)
	if *childOut != "" {
		if err := writeChild(*childOut, &childReport{Drivers: rep.Drivers, Failed: failed, Elapsed: rep.Elapsed}); err != nil {
			return err
		}
	}
	if *modelDir != "" {
		all := newOrderStats()
		for _, d := range rep.Drivers {
			if d.Orders != nil {
				all.merge(d.Orders)
			}
		}
		n, err := all.writeCorpus(*modelDir)
		if err != nil {
			return err
		}
		log.Info("model corpus", "dir", *modelDir, "orders", len(all.Inputs), "new", n)
	}
	if *out != "" {
		if err := rep.Write(*out, *name); err != nil {
			return err
		}
	}
	fmt.Print(rep.Summary())
	if childErr != nil {
		return childErr
	}
	if interrupted() {
		return errors.New("interrupted")
	}
	if *strict && len(failed) > 0 {
		return fmt.Errorf("%d schedules broke invariants:\n%s", len(failed), strings.Join(failed, "\n"))
	}
	return nil
}

// expected reports whether driver is expected to show violations of kind:
// the kernel-like policies spin in the tx queue loop where the kernel's
// order allows it, which the watchdog reports as lockups, and send on
// queue 0 of a device without tx queues, as the kernel does.
func expected(driver, kind string) bool {
	return (kind == KindLockup || kind == KindTxQueue) && strings.HasPrefix(driver, "ovsxdp-") && driver != "ovsxdp-guarded"
}

func newDriver(name, bin string) func() Driver {
	switch {
	case strings.HasPrefix(name, "ovsxdp-"):
		policy := strings.TrimPrefix(name, "ovsxdp-")
		return func() Driver { return &ovsxdpDriver{bin: bin, policy: policy} }
	case name == "bridge":
		return func() Driver { return &bridgeDriver{} }
	case name == "ovs":
		return func() Driver { return &ovsDriver{} }
	}
	panic("unknown driver " + name)
}

// loadSchedules reads path, a schedule file or a directory of them.
func loadSchedules(path string) ([]*Schedule, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	files := []string{path}
	if fi.IsDir() {
		if files, err = filepath.Glob(filepath.Join(path, "*.json")); err != nil {
			return nil, err
		}
		slices.Sort(files)
	}
	var out []*Schedule
	for _, f := range files {
		s, err := LoadSchedule(f)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func commandLine() string {
	args := make([]string, len(os.Args)-1)
	for i, a := range os.Args[1:] {
		if strings.ContainsAny(a, " '\"") {
			a = "'" + a + "'"
		}
		args[i] = a
	}
	return strings.TrimSpace("go run ./bench/chaos " + strings.Join(args, " "))
}
