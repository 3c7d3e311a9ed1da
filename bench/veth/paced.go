package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// paceShare is the share of its own AF_XDP-sender rate at which a
// configuration is offered the paced run.
const paceShare = 0.8

// pacedSentShare is the share of its target below which a paced run's
// sender is taken to have lacked a CPU: its run does not show whether
// the forwarder keeps up at the target.
const pacedSentShare = 0.95

// pacedRun is the AF_XDP sender held to a rate below what the
// forwarder sustained.
type pacedRun struct {
	measured bool
	// offered is the rate the sender was asked to keep, sent the rate it
	// sent (it gives up frames that fell due while it was off its CPU),
	// received the rate b got, packets/s.
	offered, sent, received float64
	drops                   kernelDrops
	// gauges are the forwarder's gauges over the phase alone, if it has
	// them (phaseGauger).
	gauges *phaseGauges
	// sched is how this process fared during the phase, for a forwarder
	// that runs in it (forwarderInProcess).
	sched *phaseSched
}

// forwarderInProcess is a forwarder whose poll thread runs in this
// process.
type forwarderInProcess interface{ inProcess() }

// phaseSched is what the OS and the Go runtime did to this process during
// a phase: the poll thread's CPU time and the time it spent runnable,
// waiting for a CPU (it is the thread that ran most), the times the
// kernel preempted it, the process's page faults, and the GC cycles and
// longest GC pause.
type phaseSched struct {
	pollCPU, pollWait time.Duration
	// otherCPU is the CPU time of the process's other threads (the
	// harness, the Go runtime, the datapath's other goroutines).
	otherCPU  time.Duration
	preempted uint64
	minFaults uint64
	gcCycles  uint64
	// gcPauseMax and schedLatMax are upper bounds of the highest
	// buckets the phase added to the runtime's histograms of GC pauses
	// and of goroutines' waits to run, in seconds.
	gcPauseMax, schedLatMax float64
}

// schedMark is a reading for phaseSched.
type schedMark struct {
	rt     []rtmetrics.Sample
	thr    map[string]threadSched
	faults uint64
}

func markSched() schedMark {
	m := schedMark{rt: readRuntime(), thr: readThreads()}
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			// Field 10 (minflt) is the 8th after the command.
			if f := strings.Fields(s[i+1:]); len(f) > 7 {
				m.faults, _ = strconv.ParseUint(f[7], 10, 64)
			}
		}
	}
	return m
}

// since is the phase from m0 to m.
func (m schedMark) since(m0 schedMark) phaseSched {
	var p phaseSched
	p.minFaults = m.faults - m0.faults
	p.gcCycles = m.rt[0].Value.Uint64() - m0.rt[0].Value.Uint64()
	p.gcPauseMax, _ = histMax(m0.rt[1], m.rt[1])
	p.schedLatMax, _ = histMax(m0.rt[2], m.rt[2])
	var all time.Duration
	for tid, a := range m.thr {
		b := m0.thr[tid]
		c := a.cpu - b.cpu
		all += c
		if c > p.pollCPU {
			p.pollCPU, p.pollWait, p.preempted = c, a.delay-b.delay, a.preempted-b.preempted
		}
	}
	p.otherCPU = all - p.pollCPU
	return p
}

// phaseGauger is a forwarder whose gauges can be started afresh at the
// start of a phase and read at its end, so that a phase's report shows
// its own extremes rather than the forwarder's whole life.
type phaseGauger interface {
	resetGauges()
	gauges() phaseGauges
}

// phaseGauges are the ovsxdp poll thread's and sockets' gauges over one
// phase.
type phaseGauges struct {
	// maxPollGap is the longest time between the starts of two of the
	// poll thread's rounds either of which found packets
	// (datapath.PMDStats.MaxPollGap).
	maxPollGap time.Duration
	// fillLow is the fewest frames a socket's fill ring held when a poll
	// found frames waiting (vport.FillStats.Low); foundEmpty counts the
	// polls that found a fill ring empty (the kernel dropped what arrived
	// until then).
	fillLow, fillSize int
	foundEmpty        uint64
	// rxHigh and heldHigh are the most frames such a poll found waiting
	// on a socket's rx ring, and on neither ring (taken by the datapath):
	// vport.FillStats.RxHigh and HeldHigh.
	rxHigh, heldHigh int
	// packets, batches and busy are the poll threads' packets, batches
	// and busy time in the phase: the batch size and the cost per packet
	// at the phase's rate.
	packets, batches uint64
	busy             time.Duration
}

// minus turns cumulative counters read at the end of a phase into the
// phase's own, given those read at its start.
func (g phaseGauges) minus(g0 phaseGauges) phaseGauges {
	g.foundEmpty -= g0.foundEmpty
	g.packets -= g0.packets
	g.batches -= g0.batches
	g.busy -= g0.busy
	return g
}

// perBatch and nsPerPacket are the phase's average batch size and busy
// time per packet.
func (g phaseGauges) perBatch() float64 {
	if g.batches == 0 {
		return 0
	}
	return float64(g.packets) / float64(g.batches)
}

func (g phaseGauges) nsPerPacket() float64 {
	if g.packets == 0 {
		return 0
	}
	return float64(g.busy.Nanoseconds()) / float64(g.packets)
}

// runPaced runs the AF_XDP sender at rate packets/s for d against
// forwarder k, and returns what it sent, what b received, what the kernel
// dropped on the forwarder's sockets and, if k has them, its gauges over
// the phase alone. With probe set, it also watches the phase (pacedProbe).
func runPaced(ctx context.Context, t *topo, d time.Duration, rate float64, k kernelDropper, probe *pacedProbe) (pacedRun, error) {
	r := pacedRun{offered: rate}
	g, isG := k.(phaseGauger)
	var g0 phaseGauges
	if isG {
		g.resetGauges()
		g0 = g.gauges()
	}
	before := k.kernelDrops()
	_, inProc := k.(forwarderInProcess)
	var m0 schedMark
	if inProc {
		m0 = markSched()
	}
	if probe != nil {
		probe.start(k)
	}
	var err error
	r.received, r.sent, err = measureXSKSent(ctx, t, d, rate)
	if probe != nil {
		probe.stop()
	}
	if err != nil {
		return r, err
	}
	r.drops = k.kernelDrops().minus(before)
	if inProc {
		ps := markSched().since(m0)
		r.sched = &ps
	}
	if isG {
		g1 := g.gauges().minus(g0)
		r.gauges = &g1
	}
	r.measured = true
	return r, nil
}

// pacedProbe watches a paced phase from this process, for -only80: every
// probeEvery it reads the kernel's drop counters and the poll thread's
// longest gap, to tell when in the phase drops and the longest gap came.
type pacedProbe struct {
	t0   time.Time
	done chan struct{}
	wg   sync.WaitGroup
	// What the sampler found, offsets from t0.
	firstDrop, lastDrop time.Duration
	dropSamples         int // samples in which drops grew
	gapAt               time.Duration
	gap                 time.Duration
	// The poll thread's time runnable but off a CPU, sampled with the
	// rest: in the delayWindow before each episode of drops (a sample
	// whose drops grew after one whose did not), the most such a window
	// held, and over the whole phase, per delayWindow on average.
	episodes       int
	delayBeforeMax time.Duration
	delayTotal     time.Duration
	delaySamples   int
}

// delayWindow is how far back a probe looks for what held the poll
// thread off its CPU before drops: a little more than 8,192 frames last
// at 700,000 packets/s.
const delayWindow = 16 * time.Millisecond

// threadDelay is the run delay of thread tid of this process
// (/proc/self/task/TID/schedstat); false when it cannot be read.
func threadDelay(tid string) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/self/task/" + tid + "/schedstat")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	d, err := strconv.ParseInt(f[1], 10, 64)
	return time.Duration(d), err == nil
}

// busiestThread is the thread of this process that ran most between
// two readThreads.
func busiestThread(a, b map[string]threadSched) string {
	tid, most := "", time.Duration(-1)
	for t, s := range b {
		if c := s.cpu - a[t].cpu; c > most {
			tid, most = t, c
		}
	}
	return tid
}

// probeEvery is how often a probe samples the counters: a tenth of the
// time 8,192 frames last at 700,000 packets/s.
const probeEvery = time.Millisecond

var probeMetrics = []string{"/gc/cycles/total:gc-cycles", "/gc/pauses:seconds", "/sched/latencies:seconds"}

func readRuntime() []rtmetrics.Sample {
	s := make([]rtmetrics.Sample, len(probeMetrics))
	for i, n := range probeMetrics {
		s[i].Name = n
	}
	rtmetrics.Read(s)
	return s
}

// histMax returns the upper bound of the highest bucket whose count grew
// from a to b, and the growth of the counts; 0s if none grew.
func histMax(a, b rtmetrics.Sample) (float64, int) {
	if a.Value.Kind() != rtmetrics.KindFloat64Histogram || b.Value.Kind() != rtmetrics.KindFloat64Histogram {
		return 0, 0
	}
	ha, hb := a.Value.Float64Histogram(), b.Value.Float64Histogram()
	top, n := 0.0, 0
	for i := range hb.Counts {
		if i < len(ha.Counts) && hb.Counts[i] > ha.Counts[i] {
			n += int(hb.Counts[i] - ha.Counts[i])
			top = hb.Buckets[i+1]
		}
	}
	return top, n
}

// threadSched is an OS thread's CPU time, time runnable but waiting for a
// CPU (/proc/self/task/T/schedstat) and involuntary context switches.
type threadSched struct {
	cpu, delay time.Duration
	preempted  uint64
}

func readThreads() map[string]threadSched {
	out := map[string]threadSched{}
	tasks, _ := filepath.Glob("/proc/self/task/*")
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(task, "schedstat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		cpu, _ := strconv.ParseInt(f[0], 10, 64)
		delay, _ := strconv.ParseInt(f[1], 10, 64)
		ts := threadSched{cpu: time.Duration(cpu), delay: time.Duration(delay)}
		if st, err := os.ReadFile(filepath.Join(task, "status")); err == nil {
			for l := range strings.Lines(string(st)) {
				if v, ok := strings.CutPrefix(l, "nonvoluntary_ctxt_switches:"); ok {
					ts.preempted, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				}
			}
		}
		out[filepath.Base(task)] = ts
	}
	return out
}

func (p *pacedProbe) start(k kernelDropper) {
	p.done = make(chan struct{})
	p.t0 = time.Now()
	drops0 := k.kernelDrops().total()
	g, isG := k.(phaseGauger)
	p.wg.Go(func() {
		tick := time.NewTicker(probeEvery)
		defer tick.Stop()
		last := drops0
		// The poll thread is the one that runs most: found over the
		// first delayWindow, then its run delay is read each sample.
		thr0, tid := readThreads(), ""
		window := make([]time.Duration, delayWindow/probeEvery)
		var prevDelay time.Duration
		n, dropping := 0, false
		for {
			select {
			case <-p.done:
				return
			case now := <-tick.C:
				at := now.Sub(p.t0)
				n++
				if tid == "" && at >= delayWindow {
					tid = busiestThread(thr0, readThreads())
					prevDelay, _ = threadDelay(tid)
				} else if tid != "" {
					if d, ok := threadDelay(tid); ok {
						window[n%len(window)] = d - prevDelay
						p.delayTotal += d - prevDelay
						p.delaySamples++
						prevDelay = d
					}
				}
				grew := false
				if d := k.kernelDrops().total(); d > last {
					if p.dropSamples == 0 {
						p.firstDrop = at
					}
					p.lastDrop, last = at, d
					p.dropSamples++
					grew = true
				}
				if grew && !dropping && tid != "" {
					var sum time.Duration
					for _, w := range window {
						sum += w
					}
					p.episodes++
					p.delayBeforeMax = max(p.delayBeforeMax, sum)
				}
				dropping = grew
				if isG {
					if gap := g.gauges().maxPollGap; gap > p.gap {
						p.gap, p.gapAt = gap, at
					}
				}
			}
		}
	})
}

func (p *pacedProbe) stop() {
	close(p.done)
	p.wg.Wait()
}

// runOnly80 is -only80: for each configuration that counts its sockets'
// kernel drops, in each round, the AF_XDP sender's full-rate test once,
// then its paced phase o.only80 times in a row at paceShare of that rate,
// each watched by a probe; it prints one line per phase.
func runOnly80(ctx context.Context, o options, stdout io.Writer) error {
	fmt.Fprintf(stdout, "round config run target_pps sent_pps received_pps ring_full no_frame by_port first_drop_ms last_drop_ms drop_samples max_gap_ms gap_at_ms fill_low found_empty rx_high held_high episodes delay_before_max_ms delay_per_window_ms gc_cycles gc_pause_max_us sched_lat_max_us poll_thread_cpu_ms run_delay_ms preempted other_threads_cpu_ms min_faults per_batch busy_ns_per_packet\n")
	for r := 1; r <= o.rounds; r++ {
		for _, c := range o.only {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := only80One(ctx, o, c, r, stdout); err != nil {
				slog.Error("run failed", "round", r, "config", c.name, "err", err)
			}
		}
	}
	return nil
}

func only80One(ctx context.Context, o options, c config, round int, stdout io.Writer) (err error) {
	t, err := newTopo()
	if err != nil {
		return err
	}
	defer func() {
		if derr := t.delete(); derr != nil && err == nil {
			err = derr
		}
	}()
	f := c.new()
	defer f.stop()
	k, isK := f.(kernelDropper)
	if !isK {
		return fmt.Errorf("%s does not count its sockets' kernel drops", c.name)
	}
	if err := f.start(t); err != nil {
		return fmt.Errorf("start %s: %w", c.name, err)
	}
	if err := t.reach(20 * time.Second); err != nil {
		return err
	}
	g, _ := f.(phaseGauger)
	// fullRate runs the AF_XDP sender's full-rate test and prints what
	// the poll thread did in it.
	fullRate := func(what string, rel func(float64) string) (float64, error) {
		var g0 phaseGauges
		if g != nil {
			g0 = g.gauges()
		}
		r, err := measureXSK(ctx, t, o.duration, 0)
		if err == nil && g != nil {
			gf := g.gauges().minus(g0)
			fmt.Fprintf(stdout, "# %d %s %s: received %.0f packets/s%s, %.1f packets/batch, busy %.0f ns/packet\n", round, c.name, what, r, rel(r), gf.perBatch(), gf.nsPerPacket())
		}
		return r, err
	}
	full, err := fullRate("full rate", func(float64) string { return "" })
	if err != nil {
		return err
	}
	if full == 0 {
		return fmt.Errorf("%s forwarded nothing from the AF_XDP sender", c.name)
	}
	for i := 1; i <= o.only80; i++ {
		var p pacedProbe
		probe := &p
		if !o.only80Probe {
			probe = nil
		}
		pr, err := runPaced(ctx, t, o.duration, paceShare*full, k, probe)
		if err != nil {
			return err
		}
		g := phaseGauges{fillLow: -1}
		if pr.gauges != nil {
			g = *pr.gauges
		}
		var ps phaseSched
		if pr.sched != nil {
			ps = *pr.sched
		}
		ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }
		byPort := "-"
		if x, isX := f.(*ovsxdpFwd); isX {
			// Whose socket dropped (cumulative since the port opened).
			var ps []string
			for _, p := range x.ports {
				st := p.Stats()
				ps = append(ps, fmt.Sprintf("%s:%d/%d", p.Name(), st.RxRingFull, st.RxNoFrame))
			}
			byPort = strings.Join(ps, ",")
		}
		perWindow := time.Duration(0)
		if p.delaySamples > 0 {
			perWindow = p.delayTotal * time.Duration(delayWindow/probeEvery) / time.Duration(p.delaySamples)
		}
		fmt.Fprintf(stdout, "%d %s %d %.0f %.0f %.0f %d %d %s %s %s %d %s %s %d %d %d %d %d %s %s %d %.0f %.0f %s %s %d %s %d %.1f %.0f\n",
			round, c.name, i, pr.offered, pr.sent, pr.received, pr.drops.ringFull, pr.drops.noFrame, byPort,
			ms(p.firstDrop), ms(p.lastDrop), p.dropSamples, ms(g.maxPollGap), ms(p.gapAt), g.fillLow, g.foundEmpty, g.rxHigh, g.heldHigh,
			p.episodes, ms(p.delayBeforeMax), ms(perWindow),
			ps.gcCycles, ps.gcPauseMax*1e6, ps.schedLatMax*1e6, ms(ps.pollCPU), ms(ps.pollWait), ps.preempted, ms(ps.otherCPU), ps.minFaults, g.perBatch(), g.nsPerPacket())
	}
	// The full rate once more: whether the machine still forwards what
	// it did before the phases, which the phases' target assumes.
	_, err = fullRate("full rate again", func(r float64) string { return fmt.Sprintf(" (%.2f of the first)", r/full) })
	return err
}

// pacedLimits explains the ovsxdp configurations' paced runs that
// dropped, from what the phase's gauges saw: whether the longest poll
// gap outlasted the rx frames at the rate sent (a stall), and how long
// the poll thread waited for a CPU, against the runs without drops.
func pacedLimits(o options, samples []sample) string {
	var dropped, clean []sample
	for _, s := range samples {
		if !s.paced.measured || s.err != "" || s.paced.gauges == nil || s.paced.sched == nil {
			continue
		}
		if s.paced.drops.total() > 0 {
			dropped = append(dropped, s)
		} else {
			clean = append(clean, s)
		}
	}
	if len(dropped) == 0 {
		return ""
	}
	waits := func(ss []sample) []float64 {
		var v []float64
		for _, s := range ss {
			v = append(v, float64(s.paced.sched.pollWait.Milliseconds()))
		}
		return v
	}
	stalls, gc := 0, 0
	for _, s := range dropped {
		// At the rate sent, the fill ring's frames last this long.
		if ride := time.Duration(float64(s.paced.gauges.fillSize) / s.paced.sent * float64(time.Second)); s.paced.sent > 0 && s.paced.gauges.maxPollGap >= ride {
			stalls++
		}
		if s.paced.sched.gcCycles > 0 {
			gc++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n- At %.0f%% of the rate sustained, %d of %d ovsxdp runs dropped frames. In %d of them the poll thread's longest gap outlasted its rx frames at the rate sent (a stall); "+
		"%d of them saw a GC cycle. In the runs that dropped, the poll thread waited for a CPU a median %.0f ms of the %v phase",
		100*paceShare, len(dropped), len(dropped)+len(clean), stalls, gc, median(waits(dropped)), o.duration)
	if len(clean) > 0 {
		fmt.Fprintf(&b, ", in those that did not, %.0f ms", median(waits(clean)))
	}
	b.WriteString(": a poll thread that other threads keep from its CPU falls behind the sender, on a machine whose 2 CPUs the sender, the receiver and the kernel's packet work share with it.")
	return b.String()
}
