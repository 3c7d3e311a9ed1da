package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

// Bounds of the invariants. They are generous: the machine may be loaded.
const (
	answerBound   = 10 * time.Second // the datapath answers its control interface
	recoveryBound = 10 * time.Second // traffic between surviving slots flows again
	setupBound    = 30 * time.Second // traffic flows after the datapath started
	// reachWait is how long one probe of recover waits for its reply
	// before it sends the next: a lost probe costs that much of the
	// measured recovery time, a late reply only another probe.
	reachWait = 200 * time.Millisecond
)

// Result is what one run of a schedule against one driver found.
type Result struct {
	Driver     string
	Seed       uint64
	Steps      int // steps executed (applicable, and done or refused)
	Done       int // steps the kernel and the datapath carried out
	Refused    int // steps the kernel or the datapath refused (an error, not a violation)
	Skipped    int // steps the driver does not support
	NA         int // steps not applicable in the state reached (after shrinking)
	Stalls     int // poll threads that stalled without spinning (KindStall)
	Checks     int // invariants checked
	Violations []Violation
	Recovery   []time.Duration // per step with slots that must reach each other
	SkippedOps map[Op]int
	RefusedOps map[Op]int
	// Phases is where the run's time went, by phase (see the phase
	// constants), and Elapsed the whole run, teardown included.
	Phases  map[string]time.Duration
	Elapsed time.Duration
	// Orders are the netlink event orders the datapath recorded, for a
	// driver that records them (nil otherwise).
	Orders *orderStats
}

// The phases of a run whose time is measured.
const (
	PhaseEnv       = "env"       // building the topology
	PhaseStart     = "start"     // starting the datapath and its ports
	PhaseSetup     = "setup"     // first traffic, background traffic, the footprint after start
	PhaseOps       = "ops"       // the steps' operations, heal included
	PhaseAnswer    = "answer"    // the datapath answers its control interface
	PhaseRecovery  = "recovery"  // traffic between healthy slots
	PhaseCheck     = "check"     // the driver's own invariants
	PhaseFootprint = "footprint" // the final footprint comparison
	PhaseTeardown  = "teardown"  // stopping the datapath and deleting the topology
)

// timed adds the time since start to phase.
func (r *Result) timed(phase string, start time.Time) {
	r.Phases[phase] += time.Since(start)
}

// Failed reports whether the run broke an invariant.
func (r *Result) Failed() bool { return len(r.Violations) > 0 }

// Runner runs schedules against a driver.
type Runner struct {
	NewDriver func() Driver
	Log       *slog.Logger
	// Interrupted is closed to stop between steps.
	Interrupted <-chan struct{}
}

// Run runs s: it builds the topology, starts the datapath, starts the
// traffic, runs each step and checks the invariants after it, heals every
// slot back to its initial state and checks again (with the process's
// footprint against the one after start), and tears everything down.
func (r *Runner) Run(s *Schedule) (res *Result) {
	drv := r.NewDriver()
	res = &Result{Driver: drv.Name(), Seed: s.Seed, SkippedOps: map[Op]int{}, RefusedOps: map[Op]int{}, Phases: map[string]time.Duration{}}
	runStart := time.Now()
	defer func() { res.Elapsed = time.Since(runStart) }()
	violate := func(step int, kind, format string, args ...any) {
		v := Violation{Kind: kind, Step: step, Detail: fmt.Sprintf(format, args...)}
		res.Violations = append(res.Violations, v)
		r.Log.Warn("violation", "driver", res.Driver, "seed", s.Seed, "step", step, "kind", kind, "detail", v.Detail)
	}
	t0 := time.Now()
	e, err := NewEnv(s.Slots)
	res.timed(PhaseEnv, t0)
	if err != nil {
		violate(-1, KindSetup, "topology: %v", err)
		return res
	}
	defer func() {
		t0 := time.Now()
		drv.Stop()
		e.Close()
		res.timed(PhaseTeardown, t0)
	}()
	t0 = time.Now()
	err = drv.Start(e)
	res.timed(PhaseStart, t0)
	if err != nil {
		violate(-1, KindSetup, "%s: %v", drv.Name(), err)
		return res
	}
	st := initialState(s.Slots)
	broken := brokenPairs{}
	t0 = time.Now()
	if _, err := r.recover(e, st, setupBound, broken); err != nil {
		violate(-1, KindSetup, "no traffic after start: %v", err)
		return res
	}
	for i := range s.Slots {
		if err := e.StartTraffic(i); err != nil {
			violate(-1, KindSetup, "traffic: %v", err)
			return res
		}
	}
	time.Sleep(200 * time.Millisecond)
	base, hasProc, err := drv.Footprint(context.Background())
	res.timed(PhaseSetup, t0)
	if err != nil {
		violate(-1, KindSetup, "footprint: %v", err)
		return res
	}

	check := func(step int, final bool) {
		res.Checks++
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), answerBound)
		err := drv.Answers(ctx)
		cancel()
		res.timed(PhaseAnswer, t0)
		if err != nil {
			violate(step, KindNoAnswer, "no answer within %v: %v", answerBound, err)
			return
		}
		res.Checks++
		bound := recoveryBound
		if final {
			bound = setupBound
		}
		t0 = time.Now()
		took, err := r.recover(e, st, bound, broken)
		res.timed(PhaseRecovery, t0)
		if err != nil {
			if l, ok := drv.(logger); ok {
				err = fmt.Errorf("%w\n%s", err, l.LogTail())
			}
			violate(step, KindRecovery, "%v", err)
		} else if took >= 0 {
			res.Recovery = append(res.Recovery, took)
		}
		t0 = time.Now()
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		n, vs := drv.Check(ctx, e, st)
		cancel()
		res.timed(PhaseCheck, t0)
		res.Checks += n
		for _, v := range vs {
			if v.Kind == KindStall {
				res.Stalls++
				r.Log.Info("stall", "driver", res.Driver, "seed", s.Seed, "step", step, "detail", v.Detail)
				continue
			}
			violate(step, v.Kind, "%s", v.Detail)
		}
		if final && hasProc {
			res.Checks++
			t0 = time.Now()
			r.checkFootprint(drv, base, func(kind, format string, args ...any) { violate(step, kind, format, args...) })
			res.timed(PhaseFootprint, t0)
		}
	}

	txqSteps := map[string]int{} // tx queue count changes done, by port
	for i, step := range s.Steps {
		select {
		case <-r.Interrupted:
			return res
		default:
		}
		if !applicable(st, step) {
			res.NA++
			continue
		}
		res.Steps++
		broken.forget(step)
		t0 := time.Now()
		err := r.do(drv, e, st, step)
		res.timed(PhaseOps, t0)
		r.Log.Debug("step", "driver", res.Driver, "seed", s.Seed, "step", i, "op", step.String(), "took", time.Since(t0), "err", err)
		switch {
		case errors.Is(err, ErrUnsupported):
			res.Skipped++
			res.SkippedOps[step.Op]++
			continue
		case errors.Is(err, errHeld):
			violate(i, KindHeld, "%v", err)
			apply(st, step)
		case errors.Is(err, errMust):
			violate(i, KindOp, "%s: %v", step, err)
		case err != nil:
			res.Refused++
			res.RefusedOps[step.Op]++
			r.Log.Debug("refused", "driver", res.Driver, "seed", s.Seed, "step", i, "op", step.String(), "err", err)
		default:
			res.Done++
			if step.Op == OpTxQueues {
				txqSteps[hostName(step.Slot)]++
			}
			apply(st, step)
		}
		check(i, false)
	}
	// Heal: every slot back to its initial state, and every pair waited
	// for again.
	clear(broken)
	t0 = time.Now()
	for i := range st {
		for _, step := range healSteps(st, i) {
			if !applicable(st, step) {
				continue
			}
			if err := r.do(drv, e, st, step); err != nil && !errors.Is(err, ErrUnsupported) {
				if step.Op == OpTxQueues {
					continue // may be refused under AF_XDP sockets: not part of the footprint
				}
				violate(len(s.Steps), KindOp, "heal %s: %v", step, err)
				continue
			}
			apply(st, step)
		}
	}
	res.timed(PhaseOps, t0)
	check(len(s.Steps), true)
	if rec, ok := drv.(linkRecorder); ok {
		names := make([]string, s.Slots)
		for i := range names {
			names[i] = hostName(i)
		}
		res.Orders = newOrderStats()
		res.Orders.add(parseLinkRecord(rec.LinkRecord(), names), txqSteps)
	}
	return res
}

// healSteps are the steps that bring slot i back to its initial state.
func healSteps(st []slotState, i int) []Step {
	init := initialState(1)[0]
	return []Step{
		{Op: OpNetnsCreate, Slot: i}, {Op: OpPortAdd, Slot: i},
		{Op: OpHostUp, Slot: i}, {Op: OpPeerUp, Slot: i},
		{Op: OpMTU, Slot: i, N: init.MTU}, {Op: OpTxQueues, Slot: i, N: init.TxQ},
	}
}

// checkFootprint compares the process's footprint after the heal with the
// one after start: the same ports, so the same sockets, mappings, XDP
// programs and links; a few descriptors and goroutines of control
// connections may come and go.
func (r *Runner) checkFootprint(drv Driver, base Footprint, violate func(kind, format string, args ...any)) {
	// Sockets of re-attached ports close after a grace period: let it pass.
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, _, err := drv.Footprint(context.Background())
		var problems []func()
		if err != nil {
			problems = append(problems, func() { violate(KindNoAnswer, "footprint: %v", err) })
		} else {
			if f.XSK != base.XSK || f.Mappings != base.Mappings || f.Orphans != 0 {
				problems = append(problems, func() { violate(KindXSKLeak, "after the heal %s; after start %s", f, base) })
			}
			if f.Progs != base.Progs || f.Links != base.Links {
				problems = append(problems, func() { violate(KindBPFLeak, "after the heal %s; after start %s", f, base) })
			}
			if f.FDs > base.FDs+4 {
				problems = append(problems, func() { violate(KindFDLeak, "after the heal %s; after start %s", f, base) })
			}
			if base.Goroutines >= 0 && f.Goroutines > base.Goroutines+10 {
				problems = append(problems, func() { violate(KindGoroutine, "after the heal %s; after start %s", f, base) })
			}
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range problems {
				p()
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pair is an ordered pair of slots that must reach each other: a to b.
type pair struct{ a, b int }

func (p pair) String() string { return strconv.Itoa(p.a) + "->" + strconv.Itoa(p.b) }

// brokenPairs are the pairs of a schedule that failed recovery after a
// step, until one of their two slots changes state (a step on either, a
// restart of the datapath, the final heal). A pair's failure is reported
// once: while it stays in the set, recover probes it once per check
// without waiting for it, and it leaves the set when that probe reaches.
// (A datapath that never takes a device back would otherwise make every
// later step wait out the whole recovery bound again.)
type brokenPairs map[pair]bool

// forgetSlot removes the pairs with slot i: its state changes.
func (k brokenPairs) forgetSlot(i int) {
	for p := range k {
		if p.a == i || p.b == i {
			delete(k, p)
		}
	}
}

// forget removes the pairs that step changes a slot of: both of its
// slots for a step on one of them, every pair for a restart.
func (k brokenPairs) forget(step Step) {
	switch step.Op {
	case OpSigterm, OpSigkill:
		clear(k)
	default:
		k.forgetSlot(step.Slot)
	}
}

// recover waits until every healthy slot reaches every other healthy slot,
// up to bound, and returns how long that took (-1 if no pair must be
// waited for). Pairs in broken are probed once each and not waited for;
// see recoverPairs.
func (r *Runner) recover(e *Env, st []slotState, bound time.Duration, broken brokenPairs) (time.Duration, error) {
	var healthy []int
	for i, s := range st {
		if s.healthy() {
			healthy = append(healthy, i)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.Interrupted:
			cancel()
		case <-ctx.Done():
		}
	}()
	took, failed, still := recoverPairs(ctx, healthy, broken, bound, func(ctx context.Context, a, b int) bool {
		return e.Reach(ctx, a, b, reachWait)
	})
	if len(failed) > 0 {
		err := fmt.Errorf("slots %v do not reach each other within %v (healthy slots %v)", failed, bound, healthy)
		if len(still) > 0 {
			err = fmt.Errorf("%w; still broken since an earlier step, not waited for: %v", err, still)
		}
		return 0, err
	}
	return took, nil
}

// recoverPairs probes every ordered pair of the healthy slots with reach
// (one probe per call) until it reaches, up to bound. A pair of broken is
// probed once, not waited for: it leaves broken if that probe reaches,
// and stays there, not reported again, if it does not. It returns the
// time until every pair outside broken reached (-1 if there is none),
// the pairs outside broken that did not within bound (now added to
// broken), and the pairs of broken that still did not reach.
func recoverPairs(ctx context.Context, healthy []int, broken brokenPairs, bound time.Duration,
	reach func(ctx context.Context, a, b int) bool) (took time.Duration, failed, still []pair) {
	if len(healthy) < 2 {
		return -1, nil, nil
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var (
		mu      sync.Mutex // guards the three below
		last    time.Duration
		waited  bool
		reached []pair // pairs of broken that reached
	)
	var wg sync.WaitGroup
	for _, a := range healthy {
		for _, b := range healthy {
			if a == b {
				continue
			}
			p := pair{a, b}
			if broken[p] {
				wg.Go(func() {
					ok := reach(ctx, a, b)
					mu.Lock()
					defer mu.Unlock()
					if ok {
						reached = append(reached, p)
					} else {
						still = append(still, p)
					}
				})
				continue
			}
			mu.Lock()
			waited = true
			mu.Unlock()
			wg.Go(func() {
				for ctx.Err() == nil {
					if reach(ctx, a, b) {
						mu.Lock()
						last = max(last, time.Since(start))
						mu.Unlock()
						return
					}
				}
				mu.Lock()
				failed = append(failed, p)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	for _, p := range reached {
		delete(broken, p)
	}
	for _, p := range failed {
		broken[p] = true
	}
	sortPairs(failed)
	sortPairs(still)
	if !waited {
		return -1, failed, still
	}
	return last, failed, still
}

func sortPairs(ps []pair) {
	slices.SortFunc(ps, func(x, y pair) int {
		if x.a != y.a {
			return x.a - y.a
		}
		return x.b - y.b
	})
}

// logger is a driver whose datapath's log helps to understand a violation.
type logger interface{ LogTail() string }

// errMust marks the failure of an operation on the topology that must
// work whatever the datapath does.
var errMust = errors.New("operation failed")

// do carries out step.
func (r *Runner) do(drv Driver, e *Env, st []slotState, s Step) error {
	i := s.Slot
	h := hostName(i)
	switch s.Op {
	case OpHostDown:
		return e.hostLink(h, "down", netlink.LinkSetDown)
	case OpHostUp:
		return e.hostLink(h, "up", netlink.LinkSetUp)
	case OpPeerDown:
		return e.peerLink(i, "down", netlink.LinkSetDown)
	case OpPeerUp:
		return e.PeerUp(i)
	case OpTxQueues:
		return e.SetTxQueues(h, s.N)
	case OpMTU:
		return e.hostLink(h, "mtu "+strconv.Itoa(s.N), func(l netlink.Link) error { return netlink.LinkSetMTU(l, s.N) })
	case OpNetnsDelete:
		return e.DeleteSlot(i)
	case OpNetnsCreate:
		if err := e.CreateSlot(i); err != nil {
			return fmt.Errorf("%w: %w", errMust, err)
		}
		if err := drv.Relink(e, i, st[i]); err != nil {
			return err
		}
		return e.StartTraffic(i)
	case OpVethRecreate:
		if err := e.RecreateVeth(i); err != nil {
			return fmt.Errorf("%w: %w", errMust, err)
		}
		return drv.Relink(e, i, st[i])
	case OpPortDelete:
		return drv.DelPort(e, i)
	case OpPortAdd:
		return drv.AddPort(e, i)
	case OpRename:
		if st[i].HostUp {
			if err := e.hostLink(h, "down", netlink.LinkSetDown); err != nil {
				return err
			}
		}
		err := e.hostLink(h, "name "+h+"r", func(l netlink.Link) error { return netlink.LinkSetName(l, h+"r") })
		if err == nil {
			time.Sleep(200 * time.Millisecond)
			err = e.hostLink(h+"r", "name "+h, func(l netlink.Link) error { return netlink.LinkSetName(l, h) })
		}
		if st[i].HostUp {
			err = errors.Join(err, e.hostLink(h, "up", netlink.LinkSetUp))
		}
		return err
	case OpXDPOff:
		return e.hostLink(h, "xdp off", func(l netlink.Link) error { return netlink.LinkSetXdpFd(l, -1) })
	case OpSigterm:
		return drv.Restart(e, syscall.SIGTERM)
	case OpSigkill:
		return drv.Restart(e, syscall.SIGKILL)
	}
	return fmt.Errorf("unknown operation %q", s.Op)
}
