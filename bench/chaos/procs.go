package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// job is what one child process runs: count schedules of driver, from
// seed, every stride seeds.
type job struct {
	Driver string
	Seed   uint64
	Stride uint64
	Count  int
}

// splitJobs shares procs processes between drivers (as evenly as they
// go, at least one each) and each driver's schedules (seed, seed+stride,
// ..., count of them) between its processes, interleaved: process j of k
// runs every k-th schedule from the j-th, so that a run stopped by -time
// has covered the first seeds rather than the start of k ranges.
func splitJobs(drivers []string, procs int, seed, stride uint64, count int) []job {
	var jobs []job
	for d, name := range drivers {
		k := 1
		if procs > len(drivers) {
			k = procs / len(drivers)
			if d < procs%len(drivers) {
				k++
			}
		}
		for j := range k {
			n := (count - j + k - 1) / k
			if n <= 0 {
				continue
			}
			jobs = append(jobs, job{Driver: name, Seed: seed + uint64(j)*stride, Stride: stride * uint64(k), Count: n})
		}
	}
	return jobs
}

// childReport is what a child process hands its parent (-child-out).
type childReport struct {
	Drivers []*DriverStats
	Failed  []string // violations -strict fails on
	Elapsed time.Duration
}

func writeChild(path string, c *childReport) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	// Whole or not at all: the parent may read it after a crash.
	if err := os.WriteFile(path+".tmp", b, 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

func readChild(path string) (*childReport, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c childReport
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("results of a child process %s: %w", path, err)
	}
	return &c, nil
}

// childArgs are the arguments of the child process that runs j.
func childArgs(j job, o options, out string) []string {
	args := []string{"-drivers", j.Driver, "-seed", strconv.FormatUint(j.Seed, 10), "-stride", strconv.FormatUint(j.Stride, 10),
		"-schedules", strconv.Itoa(j.Count), "-steps", strconv.Itoa(o.steps), "-shrink=" + strconv.FormatBool(o.shrink),
		"-shrink-budget", strconv.Itoa(o.budget), "-ovsxdp", o.bin, "-child-out", out}
	if o.corpus != "" {
		args = append(args, "-corpus", o.corpus)
	}
	if o.limit > 0 {
		args = append(args, "-time", o.limit.String())
	}
	if o.verbose {
		args = append(args, "-v")
	}
	return args
}

// options are the flags a child process inherits.
type options struct {
	steps, budget  int
	shrink         bool
	corpus, bin    string
	limit          time.Duration
	verbose        bool
	stop           <-chan struct{}
	procs          int
	logf           func(format string, args ...any)
	childOutputDir string
}

// runChildren runs jobs in child processes of this program, at most
// o.procs at a time, and merges what they found into rep (per driver,
// with each process's own stats in rep.Parts). On o.stop the children
// get SIGTERM, stop between steps and hand over what they ran. It
// returns the failures -strict fails on.
func runChildren(rep *Report, jobs []job, o options) ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	results := make([]*childReport, len(jobs))
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, o.procs)
	var wg sync.WaitGroup
	for i, j := range jobs {
		out := filepath.Join(o.childOutputDir, fmt.Sprintf("child-%d.json", i))
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-o.stop:
				return
			}
			defer func() { <-sem }()
			select {
			case <-o.stop:
				return
			default:
			}
			// The child's parent-death signal belongs to the thread
			// that started it: keep that thread until the child ends.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cmd := exec.Command(self, childArgs(j, o, out)...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
			o.logf("process %d: %s, %d schedules from seed %d every %d", i+1, j.Driver, j.Count, j.Seed, j.Stride)
			if err := cmd.Start(); err != nil {
				errs[i] = err
				return
			}
			done := make(chan struct{})
			go func() {
				select {
				case <-o.stop:
					cmd.Process.Signal(syscall.SIGTERM)
				case <-done:
				}
			}()
			werr := cmd.Wait()
			close(done)
			c, err := readChild(out)
			if err != nil {
				errs[i] = fmt.Errorf("process %d (%s from seed %d): %w (exit: %v)", i+1, j.Driver, j.Seed, err, werr)
				return
			}
			results[i] = c
		})
	}
	wg.Wait()
	var failed []string
	for _, c := range results {
		if c == nil {
			continue
		}
		failed = append(failed, c.Failed...)
	}
	rep.merge(results)
	return failed, errors.Join(errs...)
}

// merge adds the child reports' stats to r: each driver's totals in
// r.Drivers (in the order the drivers first come), each process's stats
// in r.Parts.
func (r *Report) merge(children []*childReport) {
	if r.Parts == nil {
		r.Parts = map[string][]*DriverStats{}
	}
	for _, c := range children {
		if c == nil {
			continue
		}
		for _, d := range c.Drivers {
			i := slices.IndexFunc(r.Drivers, func(t *DriverStats) bool { return t.Name == d.Name })
			var total *DriverStats
			if i < 0 {
				total = r.driver(d.Name)
			} else {
				total = r.Drivers[i]
			}
			total.merge(d)
			r.Parts[d.Name] = append(r.Parts[d.Name], d)
		}
	}
}

// merge adds p's counts to d.
func (d *DriverStats) merge(p *DriverStats) {
	d.Schedules += p.Schedules
	d.Failing += p.Failing
	d.Steps += p.Steps
	d.Done += p.Done
	d.Refused += p.Refused
	d.Skipped += p.Skipped
	d.NA += p.NA
	d.Stalls += p.Stalls
	d.Checks += p.Checks
	d.Recovery = append(d.Recovery, p.Recovery...)
	d.Shrunk = append(d.Shrunk, p.Shrunk...)
	d.Seeds = append(d.Seeds, p.Seeds...)
	slices.Sort(d.Seeds)
	d.Elapsed += p.Elapsed
	d.Wall = max(d.Wall, p.Wall)
	for k, v := range p.Violations {
		d.Violations[k] += v
	}
	for k, s := range p.FirstSeeds {
		if first, ok := d.FirstSeeds[k]; !ok || s < first {
			d.FirstSeeds[k] = s
		}
	}
	for op, n := range p.SkippedOps {
		d.SkippedOps[op] += n
	}
	for op, n := range p.RefusedOps {
		d.RefusedOps[op] += n
	}
	for ph, t := range p.Phases {
		d.Phases[ph] += t
	}
	if p.Orders != nil {
		if d.Orders == nil {
			d.Orders = newOrderStats()
		}
		d.Orders.merge(p.Orders)
	}
}

// seedsText names a set of seeds briefly: "1–412, 415", or
// "3, 9, … 999 (every 6th)" for a stride.
func seedsText(seeds []uint64) string {
	s := slices.Clone(seeds)
	slices.Sort(s)
	s = slices.Compact(s)
	switch len(s) {
	case 0:
		return "none"
	case 1:
		return strconv.FormatUint(s[0], 10)
	}
	if step := s[1] - s[0]; step > 1 && len(s) > 3 {
		even := true
		for i := 2; i < len(s); i++ {
			if s[i]-s[i-1] != step {
				even = false
				break
			}
		}
		if even {
			return fmt.Sprintf("%d, %d, … %d (every %s)", s[0], s[1], s[len(s)-1], ordinal(step))
		}
	}
	var parts []string
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.FormatUint(s[i], 10))
		} else {
			parts = append(parts, fmt.Sprintf("%d–%d", s[i], s[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

func ordinal(n uint64) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return strconv.FormatUint(n, 10) + suffix
}
