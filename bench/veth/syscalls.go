package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The system-call census (-syscalls): during the iperf3 UDP test, perf
// counts the forwarding process's system calls by kind, in the kernel
// (syscall tracepoints, no tracing of each call: the process runs as
// fast as it does without them), and the census divides them by the
// packets forwarded meanwhile. It counts, where timings on a loaded
// machine would not tell, which calls the forwarding costs per packet.

// censusCalls are the system calls the census counts one by one; the
// others are counted together.
var censusCalls = []string{
	"sendto", "writev", "recvfrom", "poll", "ppoll", "nanosleep", "clock_nanosleep",
	"futex", "sched_yield", "epoll_pwait", "clock_gettime", "getsockopt",
	"read", "write", "tgkill", "rt_sigreturn", "madvise",
}

// census is one census run: the calls of each kind, per thread, over
// packets forwarded.
type census struct {
	config  string
	packets uint64
	// calls are the counts by kind ("" for all calls), summed over the
	// process's threads; pollCalls those of the thread that made the
	// most calls, the poll thread.
	calls, pollCalls map[string]uint64
	// switches are the process's context switches.
	switches uint64
	threads  int
	cpu      cpuTimes
	// extra is the forwarder's own account (tx kicks, batches, naps).
	extra string
}

// censusAccount is a forwarder that accounts for its system calls: tx
// kicks and fill wakeups, batches and naps, as counters it reads twice.
type censusAccount interface {
	callCounters() map[string]uint64
}

// runCensus runs the census of configuration c and returns it.
func runCensus(ctx context.Context, o options, c config) (cs census, err error) {
	cs.config = c.name
	if _, err := exec.LookPath("perf"); err != nil {
		return cs, errors.New("the census needs perf (linux-perf): not found")
	}
	t, err := newTopo()
	if err != nil {
		return cs, err
	}
	defer func() {
		err = errors.Join(err, t.delete())
	}()
	f := c.new()
	if err := f.start(t); err != nil {
		return cs, errors.Join(fmt.Errorf("start %s: %w", c.name, err), f.stop())
	}
	defer func() {
		err = errors.Join(err, f.stop())
	}()
	pid := f.pid()
	if pid == 0 {
		return cs, fmt.Errorf("%s forwards in the kernel: no process to count", c.name)
	}
	stopServer, err := startIperfServer(t.b, t.ipB)
	if err != nil {
		return cs, err
	}
	defer stopServer()
	if err := t.reach(20 * time.Second); err != nil {
		return cs, err
	}
	time.Sleep(200 * time.Millisecond) // the server listens by now
	// iperf3 runs a second longer at each end than perf counts, so that
	// its start and end fall outside the count.
	iperf := make(chan error, 1)
	go func() {
		_, err := iperf3(ctx, t, o.duration+2*time.Second, "-u", "-l", "18", "-b", "0")
		iperf <- err
	}()
	select {
	case err := <-iperf:
		return cs, fmt.Errorf("iperf3 ended early: %v", err)
	case <-time.After(time.Second):
	}
	acct, _ := f.(censusAccount)
	var acct0 map[string]uint64
	if acct != nil {
		acct0 = acct.callCounters()
	}
	rxA0, err1 := t.rxPacketsA()
	udpB0, err2 := t.udpInB()
	cpu0, err3 := readCPU(pid)
	if err := errors.Join(err1, err2, err3); err != nil {
		return cs, err
	}
	perThread, perr := perfCount(ctx, pid, o.duration, o.censusEvents)
	cpu1, err1 := readCPU(pid)
	rxA1, err2 := t.rxPacketsA()
	udpB1, err3 := t.udpInB()
	var acct1 map[string]uint64
	if acct != nil {
		acct1 = acct.callCounters()
	}
	ierr := <-iperf
	if err := errors.Join(perr, err1, err2, err3, ierr); err != nil {
		return cs, err
	}
	cs.packets = (rxA1 - rxA0) + (udpB1 - udpB0)
	if cs.packets == 0 {
		return cs, errors.New("no packet forwarded during the count")
	}
	m := float64(cs.packets) / 1e6
	cs.cpu = cpuTimes{user: (cpu1.user - cpu0.user) / m, sys: (cpu1.sys - cpu0.sys) / m, softirq: (cpu1.softirq - cpu0.softirq) / m,
		machine: (cpu1.machine - cpu0.machine) / m}
	cs.calls, cs.pollCalls = map[string]uint64{}, map[string]uint64{}
	busiest := ""
	for tid, ev := range perThread {
		for k, v := range ev {
			cs.calls[k] += v
		}
		if busiest == "" || ev[""] > perThread[busiest][""] || ev[""] == perThread[busiest][""] && tid < busiest {
			busiest = tid
		}
		if ev[""] > 0 {
			cs.threads++
		}
	}
	cs.pollCalls = perThread[busiest]
	cs.switches = cs.calls["cs"]
	delete(cs.calls, "cs")
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(acct1)) {
		parts = append(parts, fmt.Sprintf("%s %.3f", k, float64(acct1[k]-acct0[k])/float64(cs.packets)))
	}
	cs.extra = strings.Join(parts, ", ")
	return cs, nil
}

// perfCount counts the system calls of process pid's threads for d, by
// kind ("" for all of them, "cs" for context switches), per thread (by
// perf's comm-tid). It counts the threads the process has when it
// starts, without inheritance: the programs the harness runs meanwhile
// (iperf3) are not counted.
func perfCount(ctx context.Context, pid int, d time.Duration, extra []string) (map[string]map[string]uint64, error) {
	args := []string{"stat", "--no-inherit", "--per-thread", "-x", ";", "-p", strconv.Itoa(pid),
		"-e", "raw_syscalls:sys_enter", "-e", "context-switches"}
	for _, c := range censusCalls {
		args = append(args, "-e", "syscalls:sys_enter_"+c)
	}
	for _, e := range extra {
		args = append(args, "-e", e)
	}
	args = append(args, "--", "sleep", strconv.FormatFloat(d.Seconds(), 'f', -1, 64))
	cmd := exec.CommandContext(ctx, "perf", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("perf stat: %w: %.500s", err, out)
	}
	return parsePerfStat(string(out))
}

// parsePerfStat reads perf stat's -x ";" --per-thread output: lines of
// thread;count;unit;event;...
func parsePerfStat(out string) (map[string]map[string]uint64, error) {
	res := map[string]map[string]uint64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), ";")
		if len(f) < 4 || f[0] == "" {
			continue
		}
		var kind string
		switch ev := f[3]; {
		case ev == "raw_syscalls:sys_enter":
			kind = ""
		case ev == "context-switches" || ev == "cs":
			kind = "cs"
		case strings.HasPrefix(ev, "syscalls:sys_enter_"):
			kind = strings.TrimPrefix(ev, "syscalls:sys_enter_")
		default:
			kind = ev
		}
		if f[1] == "<not counted>" || f[1] == "<not supported>" {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("perf stat line %q: %w", line, err)
		}
		if res[f[0]] == nil {
			res[f[0]] = map[string]uint64{}
		}
		res[f[0]][kind] += n
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("perf stat: no counts in %.500q", out)
	}
	return res, nil
}

// writeCensus prints the censuses as a table: calls per packet forwarded
// by kind, all threads and the poll thread's share.
func writeCensus(w io.Writer, o options, runs []census) {
	fmt.Fprintf(w, "## System calls per packet forwarded, iperf3 UDP (18-byte payloads), %v counted per run\n\n", o.duration)
	fmt.Fprintln(w, "| configuration | run | packets | all calls (poll thread) | "+strings.Join(append(slices.Clone(censusCalls), o.censusEvents...), " | ")+" | other | context switches | threads calling | user, system, softirq per Mpkt (CPU s) | forwarder's account per packet |")
	fmt.Fprintln(w, "|"+strings.Repeat("---|", len(censusCalls)+len(o.censusEvents)+9))
	for i, r := range runs {
		per := func(n uint64) string { return fmt.Sprintf("%.3f", float64(n)/float64(r.packets)) }
		cells := []string{r.config, strconv.Itoa(i + 1), strconv.FormatUint(r.packets, 10), per(r.calls[""]) + " (" + per(r.pollCalls[""]) + ")"}
		other := r.calls[""]
		for _, c := range censusCalls {
			other -= min(other, r.calls[c])
			cell := per(r.calls[c])
			if r.pollCalls[c] != r.calls[c] {
				cell += " (" + per(r.pollCalls[c]) + ")"
			}
			cells = append(cells, cell)
		}
		for _, e := range o.censusEvents {
			cells = append(cells, per(r.calls[e]))
		}
		cells = append(cells, per(other), per(r.switches), strconv.Itoa(r.threads),
			fmt.Sprintf("%.2f, %.2f, %.2f", r.cpu.user, r.cpu.sys, r.cpu.softirq), r.extra)
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	fmt.Fprintln(w)
}

// runCensuses runs the census of every selected configuration, rounds
// times, and prints them.
func runCensuses(ctx context.Context, o options, stdout io.Writer) error {
	var runs []census
	for r := 1; r <= o.rounds; r++ {
		for _, c := range roundOrder(o.only, r) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			cs, err := runCensus(ctx, o, c)
			if err != nil {
				fmt.Fprintf(os.Stderr, "census %s round %d: %v\n", c.name, r, err)
				continue
			}
			runs = append(runs, cs)
		}
	}
	writeCensus(stdout, o, runs)
	return nil
}
