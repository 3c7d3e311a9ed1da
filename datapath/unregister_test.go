package datapath

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/vport"
)

// TestUnregisterSequence runs the whole sequence on a port of each kind of
// a running bridge and checks every step's effect as its event reports it:
// the device state after each step, the rx detached at the notification
// while the port stays in the table, and the port gone (and the device
// unregistered) at the end.
func TestUnregisterSequence(t *testing.T) {
	type want struct {
		reg     vport.Registration
		running bool
		carrier bool
		txq     int
		inTable bool
		polled  bool
	}
	tests := []struct {
		name   string
		inKind vport.DeviceKind
		want   [NumUnregisterSteps]want
	}{
		{"veth", vport.VethLike, [NumUnregisterSteps]want{
			StepClose:         {vport.Registered, false, false, 2, true, true},
			StepUnregistering: {vport.Unregistering, false, false, 2, true, true},
			StepSync:          {vport.Unregistering, false, false, 2, true, true},
			StepNotify:        {vport.Unregistering, false, false, 2, true, false},
			StepTxQueues:      {vport.Unregistering, false, false, 0, true, false},
			StepSyncAgain:     {vport.Unregistering, false, false, 0, true, false},
			StepDelete:        {vport.Unregistered, false, false, 0, false, false},
		}},
		{"dummy keeps carrier", vport.DummyLike, [NumUnregisterSteps]want{
			StepClose:         {vport.Registered, false, true, 2, true, true},
			StepUnregistering: {vport.Unregistering, false, true, 2, true, true},
			StepSync:          {vport.Unregistering, false, true, 2, true, true},
			StepNotify:        {vport.Unregistering, false, true, 2, true, false},
			StepTxQueues:      {vport.Unregistering, false, true, 0, true, false},
			StepSyncAgain:     {vport.Unregistering, false, true, 0, true, false},
			StepDelete:        {vport.Unregistered, false, true, 0, false, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestBridge(t, Config{PMDs: 2})
			addMemPort(t, b, vport.MemConfig{Name: "src"}, 1)
			_, victim := addMemPort(t, b, vport.MemConfig{Name: "vic", Kind: tt.inKind, RxQueues: 2, TxQueues: 2}, 2)
			var seen []UnregisterStep
			cfg := UnregisterConfig{OnEvent: func(ev TeardownEvent) {
				seen = append(seen, ev.Step)
				w := tt.want[ev.Step]
				st := ev.State
				if st.Registration() != w.reg || st.Running() != w.running || st.Carrier() != w.carrier || st.TxQueues() != w.txq {
					t.Errorf("after %s: %s, want %v", ev.Step, st, w)
				}
				if _, in := b.PortByOF(2); in != w.inTable {
					t.Errorf("after %s: port in table = %v, want %v", ev.Step, in, w.inTable)
				}
				if got := polled(b, victim); got != w.polled {
					t.Errorf("after %s: rx polled = %v, want %v", ev.Step, got, w.polled)
				}
				if ev.End.Before(ev.Start) || ev.Err != nil || ev.Note != "" {
					t.Errorf("event %s", ev)
				}
			}}
			td, err := b.Unregister(context.Background(), "vic", cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) != int(NumUnregisterSteps) || len(td.Events) != len(seen) {
				t.Fatalf("steps %v, events %d", seen, len(td.Events))
			}
			for i, s := range seen {
				if s != UnregisterStep(i) {
					t.Errorf("step %d was %s", i, s)
				}
				if i > 0 && td.Events[i].Start.Before(td.Events[i-1].End) {
					t.Errorf("%s started before %s ended", s, seen[i-1])
				}
			}
			if !td.Done() || !td.Stats.Balanced() || td.Stats.Name != "vic" {
				t.Errorf("done %v, stats %+v", td.Done(), td.Stats)
			}
			if _, err := victim.VPort().Transmit(0, [][]byte{make([]byte, 60)}); !errors.Is(err, vport.ErrClosed) {
				t.Errorf("the deleted port was not closed: %v", err)
			}
		})
	}
}

// polled reports whether any poll thread polls one of p's rx queues.
func polled(b *Bridge, p *Port) bool {
	for _, pm := range b.pmds {
		for _, rq := range *pm.rxqs.Load() {
			if rq.port == p {
				return true
			}
		}
	}
	return false
}

// TestUnregisterWindow checks that the delays hold the steps apart and that
// Window measures the time the port is published without tx queues.
func TestUnregisterWindow(t *testing.T) {
	b := newTestBridge(t, Config{})
	addMemPort(t, b, vport.MemConfig{Name: "vic"}, 1)
	var cfg UnregisterConfig
	cfg.Delays[StepUnregistering] = 5 * time.Millisecond
	cfg.Delays[StepDelete] = 20 * time.Millisecond
	td, err := b.Unregister(context.Background(), "vic", cfg)
	if err != nil {
		t.Fatal(err)
	}
	w, ok := td.Window()
	if !ok || w < cfg.Delays[StepDelete] {
		t.Errorf("window %v, %v; want at least %v", w, ok, cfg.Delays[StepDelete])
	}
	if gap := td.Events[StepUnregistering].Start.Sub(td.Events[StepClose].End); gap < cfg.Delays[StepUnregistering] {
		t.Errorf("close to unregistering: %v, want at least %v", gap, cfg.Delays[StepUnregistering])
	}
}

func TestUnregisterErrors(t *testing.T) {
	b := newTestBridge(t, Config{})
	addMemPort(t, b, vport.MemConfig{Name: "a"}, 1)
	addMemPort(t, b, vport.MemConfig{Name: "b"}, 2)

	if _, err := b.Unregister(context.Background(), "nope", UnregisterConfig{}); !errors.Is(err, ErrNoPort) {
		t.Errorf("unknown port: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var cfg UnregisterConfig
	cfg.Delays[StepTxQueues] = time.Hour
	cfg.OnEvent = func(ev TeardownEvent) {
		if ev.Step == StepNotify {
			cancel()
		}
	}
	td, err := b.Unregister(ctx, "a", cfg)
	if !errors.Is(err, context.Canceled) || len(td.Events) != int(StepNotify)+1 {
		t.Fatalf("cancelled during a delay: %v after %d steps", err, len(td.Events))
	}
	if _, ok := td.Window(); ok {
		t.Error("a window before the queues went")
	}
	if next, _ := td.Next(); next != StepTxQueues {
		t.Errorf("next step %s, want %s", next, StepTxQueues)
	}
	if err := td.Do(context.Background(), StepClose); !errors.Is(err, ErrStepDone) {
		t.Errorf("step run twice: %v", err)
	}
	if err := td.Do(context.Background(), NumUnregisterSteps); err == nil {
		t.Error("no error for a step out of range")
	}
	// The rest of the sequence can still be run.
	for !td.Done() {
		if err := td.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := td.Step(context.Background()); !errors.Is(err, ErrStepDone) {
		t.Errorf("step after the end: %v", err)
	}
}

// TestTeardownOutOfOrder runs the steps in an order a userspace datapath
// may learn of them: the deletion before the notification, on a port that
// was meanwhile replaced by another of the same name, which must survive.
func TestTeardownOutOfOrder(t *testing.T) {
	b := newTestBridge(t, Config{})
	addMemPort(t, b, vport.MemConfig{Name: "a"}, 1)
	td, err := b.BeginUnregister("a", UnregisterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := td.Do(ctx, StepTxQueues); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RemovePort(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	_, again := addMemPort(t, b, vport.MemConfig{Name: "a"}, 1)
	for _, s := range []UnregisterStep{StepDelete, StepNotify, StepClose, StepSyncAgain, StepUnregistering, StepSync} {
		if err := td.Do(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if !td.Done() {
		t.Error("not done")
	}
	for _, ev := range td.Events {
		wantNote := ev.Step == StepDelete || ev.Step == StepNotify
		if (ev.Note != "") != wantNote {
			t.Errorf("event %s", ev)
		}
	}
	if w, ok := td.Window(); !ok || w <= 0 {
		t.Errorf("window %v, %v: the queues went before the deletion", w, ok)
	}
	if p, ok := b.Port("a"); !ok || p != again || !polled(b, again) {
		t.Error("the port that took the name was touched")
	}
	if st := again.VPort().Device().Snapshot(); st.Registration() != vport.Registered || !st.Running() {
		t.Errorf("the new port's device: %s", st)
	}
}

func TestUnregisterStepString(t *testing.T) {
	if got := StepTxQueues.String(); got != "5:txqueues-0" {
		t.Errorf("StepTxQueues = %q", got)
	}
	if got := NumUnregisterSteps.String(); !strings.HasPrefix(got, "step(") {
		t.Errorf("NumUnregisterSteps = %q", got)
	}
}

// TestSpinBudget drives a poll thread by hand, as the fuzzer does: under
// legacy, a packet with a recorded rx queue to a device with no tx queues
// spins until the budget, which records the lockup as the watchdog would
// (with the spinning stack) and releases the thread; with Panic, it panics.
func TestSpinBudget(t *testing.T) {
	if _, err := New(Config{Watchdog: WatchdogConfig{SpinBudget: MinSpinBudget - 1}}); err == nil {
		t.Error("a spin budget below MinSpinBudget was accepted")
	}
	for _, panics := range []bool{false, true} {
		// The budget is the only detector: a watchdog beside it could
		// also report the hand-driven batch if a busy machine held it.
		b, err := New(Config{Policy: Legacy, Watchdog: WatchdogConfig{SpinBudget: MinSpinBudget, Panic: panics, Disabled: true, Log: discardLog}})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		src, _ := addMemPort(t, b, vport.MemConfig{Name: "src", RecordRxQueue: true}, 1)
		dst, _ := addMemPort(t, b, vport.MemConfig{Name: "dst", TxQueues: 2}, 2)
		addFlows(t, b, "in_port=1,actions=output:2")
		if err := dst.Device().SetTxQueues(0); err != nil {
			t.Fatal(err)
		}
		frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 18})
		src.Inject(0, [][]byte{frame, frame})
		p := b.pmds[0]
		var recovered any
		func() {
			defer func() { recovered = recover() }()
			p.rd.enter()
			p.poll(time.Now())
			p.rd.leave()
		}()
		if panics {
			if s, _ := recovered.(string); !strings.HasPrefix(s, "BUG: soft lockup - pmd#0") {
				t.Errorf("panic: %v", recovered)
			}
			continue
		}
		if recovered != nil {
			t.Fatal(recovered)
		}
		lockups, n := b.Lockups()
		if n != 1 || lockups[0].Port != "dst" || lockups[0].TxQueues != 0 || !strings.Contains(lockups[0].Stack, "kernelQueueLoop") {
			t.Fatalf("%d lockups: %v", n, lockups)
		}
		// The second packet of the batch met a released thread: dropped
		// as a lockup without a second report, as under the watchdog.
		s, _ := b.Port("src")
		if st := s.Stats(); st.Drops[DropLockup] != 2 || !st.Balanced() {
			t.Errorf("stats %+v", st)
		}
	}
}

// TestOutputPathAllocs checks that the packet path, output policy and tx
// queue pick included, does not allocate under any policy.
func TestOutputPathAllocs(t *testing.T) {
	for _, pol := range Policies() {
		t.Run(pol.String(), func(t *testing.T) {
			pb := newPipelineBench(t, pol, 64, []string{"udp"}, "in_port=1,udp,actions=output:2")
			p := pb.b.pmds[0]
			batch := pb.frames[:vport.MaxBatch]
			allocs := testing.AllocsPerRun(100, func() {
				pb.src.Inject(0, batch)
				p.rd.enter()
				p.poll(time.Now())
				p.rd.leave()
				for q := 0; q < pb.dst.TxQueues(); q++ {
					for pb.dst.Drain(q, pb.drain, pb.sizes) > 0 {
					}
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per batch", allocs)
			}
		})
	}
}

// TestUnregisterUnderLoad tears a port down while a generator sends it
// packets with a recorded rx queue, with the poll thread and the watchdog
// running concurrently and a window of 5ms before the deferred deletion.
// The kernel's order makes upstream and carrier (on a veth) safe, so only
// legacy, and carrier on a dummy, lock up; guarded never does, and every
// ledger balances. Only spinning lockups count: on a busy machine the
// watchdog also reports batches whose thread was descheduled for the
// threshold, which are no spin. A policy that spins is torn down until it
// does (a busy machine may keep the generator out of a window), up to
// maxTeardowns; the others are torn down teardowns times.
func TestUnregisterUnderLoad(t *testing.T) {
	const (
		window       = 5 * time.Millisecond
		teardowns    = 2
		maxTeardowns = 50
	)
	b := newTestBridge(t, Config{Idle: IdleSleep, Watchdog: WatchdogConfig{Threshold: 40 * time.Millisecond, Log: discardLog}})
	src, _ := addMemPort(t, b, vport.MemConfig{Name: "src", RecordRxQueue: true}, 1)
	out, _ := addMemPort(t, b, vport.MemConfig{Name: "out"}, 3)
	addFlows(t, b, "in_port=1,actions=output:2,output:3")
	gen, err := vport.NewGenerator(src, vport.GenConfig{Seed: 7, Flows: 16, Rate: 20000})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := vport.NewSink(out, vport.SinkConfig{Flows: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(gen.Start(), sink.Start()); err != nil {
		t.Fatal(err)
	}
	defer sink.Stop()
	defer gen.Stop()

	var cfg UnregisterConfig
	cfg.Delays[StepDelete] = window
	for _, kind := range []vport.DeviceKind{vport.VethLike, vport.DummyLike} {
		for _, pol := range Policies() {
			t.Run(kind.String()+"/"+pol.String(), func(t *testing.T) {
				if err := b.SetPolicy(pol); err != nil {
					t.Fatal(err)
				}
				wantLockup := pol == Legacy || pol == Carrier && kind == vport.DummyLike
				before := b.SpinningLockups()
				done := 0
				for ; done < teardowns || wantLockup && b.SpinningLockups() == before && done < maxTeardowns; done++ {
					addMemPort(t, b, vport.MemConfig{Name: "vic", Kind: kind, TxQueues: 2}, 2)
					time.Sleep(2 * time.Millisecond) // traffic reaches it
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					td, err := b.Unregister(ctx, "vic", cfg)
					cancel()
					if err != nil {
						t.Fatal(err)
					}
					if !td.Stats.Balanced() {
						t.Errorf("victim stats %+v", td.Stats)
					}
				}
				n := b.SpinningLockups() - before
				if (n > 0) != wantLockup {
					t.Errorf("%d spinning lockups in %d teardowns, want lockups: %v", n, done, wantLockup)
				}
				if n > 0 {
					if ls := spinningLockups(b); ls[len(ls)-1].Port != "vic" || ls[len(ls)-1].TxQueues != 0 {
						t.Errorf("lockup %s", ls[len(ls)-1])
					}
				}
			})
		}
	}
	gen.Stop()
	quiesce(t, b, src)
	checkAccounting(t, b)
	if sink.Stats().Packets == 0 {
		t.Error("nothing reached the other port")
	}
}
