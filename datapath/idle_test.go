package datapath

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

func TestAdaptive(t *testing.T) {
	const us = time.Microsecond
	for _, c := range []struct {
		name           string
		n              int
		nap, gap, busy time.Duration
		act            idleAction
		next           time.Duration
	}{
		{"full half batch", napThreshold, 20 * us, 1 * us, 1 * us, idlePoll, 0},
		{"full batch while napping", 32, maxNap, 60 * us, 60 * us, idlePoll, 0},
		{"lone packet after a quiet spell", 1, 0, 10 * time.Millisecond, 10 * time.Millisecond, idlePoll, 0},
		{"light load starts napping", 2, 0, 5 * us, 5 * us, idleNap, napStep},
		{"light load at the gap", 1, 0, loadGap, loadGap, idleNap, napStep},
		{"light load goes on napping after a long nap", 3, 30 * us, 80 * us, 80 * us, idleNap, 30*us + napStep},
		{"naps stop growing", 3, maxNap, 90 * us, 90 * us, idleNap, maxNap},
		{"empty poll inside the spin window", 0, 0, 10 * us, 10 * us, idlePoll, 0},
		{"empty poll after a nap", 0, 40 * us, 10 * us, 45 * us, idlePoll, 0},
		{"empty poll past the spin window", 0, 0, spinWindow, spinWindow, idleSleep, 0},
	} {
		act, next := adaptive(c.n, c.nap, c.gap, c.busy)
		if act != c.act || next != c.next {
			t.Errorf("%s: adaptive(%d, %v, %v, %v) = %d, %v; want %d, %v", c.name, c.n, c.nap, c.gap, c.busy, act, next, c.act, c.next)
		}
	}
}

// TestAdaptiveSequences drives the decision through what a thread sees
// under two kinds of traffic: a steady stream of a few packets per poll
// makes the naps grow to maxNap and stay there, and a ping (a request
// after a quiet spell, its reply in the next poll) is never followed by
// a nap before its reply is forwarded.
func TestAdaptiveSequences(t *testing.T) {
	var nap time.Duration
	for i := range 20 {
		act, next := adaptive(4, nap, nap+time.Microsecond, nap+2*time.Microsecond)
		if act != idleNap {
			t.Fatalf("steady stream, poll %d: action %d, want a nap", i, act)
		}
		if next < nap || next > maxNap {
			t.Fatalf("steady stream, poll %d: nap %v after %v", i, next, nap)
		}
		nap = next
	}
	if nap != maxNap {
		t.Errorf("steady stream: naps reached %v, want %v", nap, maxNap)
	}

	act, nap := adaptive(1, 0, 10*time.Millisecond, 10*time.Millisecond) // the request
	if act != idlePoll {
		t.Fatalf("request: action %d, want an immediate poll", act)
	}
	// Polls find nothing until the reply, 30 µs later.
	for since := time.Microsecond; since < 30*time.Microsecond; since += time.Microsecond {
		if act, _ = adaptive(0, nap, since, since); act != idlePoll {
			t.Fatalf("waiting for the reply %v after the request: action %d, want a poll", since, act)
		}
	}
	// The reply is forwarded in the poll that finds it; then the thread
	// may nap, and with nothing more it sleeps once the window is over.
	if act, nap = adaptive(1, nap, 30*time.Microsecond, 30*time.Microsecond); act == idleSleep {
		t.Fatalf("reply: action %d", act)
	}
	if act, _ = adaptive(0, nap, time.Microsecond, spinWindow+time.Microsecond); act != idleSleep {
		t.Errorf("after the reply and the spin window: action %d, want a sleep", act)
	}
}

// TestSpareCPU drives spareCPU with a thread CPU clock that the test sets.
func TestSpareCPU(t *testing.T) {
	const ms = time.Millisecond
	const us = time.Microsecond
	var cpu time.Duration
	var reads int
	var fail error
	s := spareCPU{window: 20 * ms, cpuTime: func() (time.Duration, error) { reads++; return cpu, fail }}
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	// An idle spell with the CPU to itself: the CPU time keeps up with
	// the clock.
	if v := s.spin(at(0), 50*us); v != spinOn {
		t.Fatalf("first idle poll: %d, want spinOn", v)
	}
	cpu += spareCheck / 2
	if v := s.spin(at(spareCheck/2), 50*us+spareCheck/2); v != spinOn || reads != 1 {
		t.Fatalf("within spareCheck: %d after %d reads, want spinOn without a new read", v, reads)
	}
	// A brief preemption: 20 µs lost in 1 ms.
	cpu = ms - 20*us
	if v := s.spin(at(ms), ms); v != spinOn || reads != 2 {
		t.Fatalf("after a brief preemption: %d after %d reads, want spinOn", v, reads)
	}
	if v := s.spin(at(20*ms), 20*ms); v != spinOff {
		t.Fatalf("at the end of the window: %d, want spinOff", v)
	}

	// Packets, then an idle spell during which other threads take half
	// the CPU.
	s.busy()
	start := 30 * ms
	cpu = 0
	if v := s.spin(at(start), 50*us); v != spinOn {
		t.Fatalf("new idle spell: %d, want spinOn", v)
	}
	cpu = 2 * ms
	if v := s.spin(at(start+4*ms), 4*ms); v != spinPreempted {
		t.Fatalf("half the CPU lost: %d, want spinPreempted", v)
	}
	// It backs off: no polling on after the next packets either, until
	// spareBackoff has passed.
	s.busy()
	if v := s.spin(at(start+5*ms), 50*us); v != spinOff {
		t.Fatalf("backing off: %d, want spinOff", v)
	}
	s.busy()
	if v := s.spin(at(start+4*ms+spareBackoff), 50*us); v != spinOn {
		t.Fatalf("after the backoff: %d, want spinOn", v)
	}

	// A clock it cannot read means sleep.
	s.busy()
	fail = errors.New("no clock")
	if v := s.spin(at(time.Second), 50*us); v != spinOff {
		t.Fatalf("unreadable clock: %d, want spinOff", v)
	}

	// Turned off: Bridge.SpareSpin is 0 then.
	for _, w := range []time.Duration{0, -1} {
		off := spareCPU{window: w, cpuTime: func() (time.Duration, error) { return 0, nil }}
		if v := off.spin(at(0), 50*us); v != spinOff {
			t.Fatalf("window %v: %d, want spinOff", w, v)
		}
	}
}

// TestThreadCPUTimeShared checks the signal spareCPU relies on with real
// threads: a thread that keeps its CPU busy alone gets CPU time as fast as
// the clock runs, and one that shares its CPU with another busy thread
// loses more than spareLoss of it.
func TestThreadCPUTimeShared(t *testing.T) {
	runtime.LockOSThread() // the thread ends with the test: its affinity changes
	var one unix.CPUSet
	one.Set(0)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatalf("pin to CPU 0: %v", err)
	}
	lost := func(d time.Duration) float64 {
		cpu0, err := threadCPUTime()
		if err != nil {
			t.Fatalf("threadCPUTime: %v", err)
		}
		start := time.Now()
		for time.Since(start) < d {
		}
		cpu1, err := threadCPUTime()
		if err != nil {
			t.Fatalf("threadCPUTime: %v", err)
		}
		wall := time.Since(start)
		return 1 - float64(cpu1-cpu0)/float64(wall)
	}
	if l := lost(20 * time.Millisecond); l < -0.05 {
		t.Errorf("alone: the thread's CPU time ran %.0f%% faster than the clock", -100*l)
	}

	stop := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // ends with the goroutine
		var one unix.CPUSet
		one.Set(0)
		started <- unix.SchedSetaffinity(0, &one)
		for {
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	defer close(stop)
	if err := <-started; err != nil {
		t.Fatalf("pin the competing thread to CPU 0: %v", err)
	}
	if l := lost(200 * time.Millisecond); l <= spareLoss {
		t.Errorf("sharing CPU 0 with a busy thread for 200ms, the thread lost %.0f%% of the time; want more than %.0f%%", 100*l, 100*spareLoss)
	}
}

// TestAdaptiveHoldsNapWhileFramesWait drives a thread's decision after a
// light poll (a nap is due) with a few frames waiting on one of its
// queues, with a whole batch waiting, and with none: a nap lets a batch
// gather, so it naps unless a whole batch already waits.
func TestAdaptiveHoldsNapWhileFramesWait(t *testing.T) {
	empty, err := vport.NewMemPort(vport.MemConfig{Name: "empty", RingSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	busy, err := vport.NewMemPort(vport.MemConfig{Name: "busy", RingSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p := &pmd{}
	rqs := []rxq{{port: &Port{Name: "empty", vp: empty}}, {port: &Port{Name: "busy", vp: busy}}}
	p.rxqs.Store(&rqs)
	th := &thread{ms: []*pmd{p}} // its only member

	// Two packets, 5 µs after the last ones: light load, a nap is due.
	end := time.Now()
	start := end.Add(-time.Microsecond)
	prevBusy := start.Add(-5 * time.Microsecond)
	if act, next := adaptive(2, 0, start.Sub(prevBusy), end.Sub(prevBusy)); act != idleNap || next == 0 {
		t.Fatalf("adaptive after a light poll: %d, %v; want a nap", act, next)
	}

	frame := make([]byte, 60)
	inject := func(n int) {
		t.Helper()
		frames := make([][]byte, n)
		for i := range frames {
			frames[i] = frame
		}
		if got := busy.Inject(0, frames); got != n {
			t.Fatalf("injected %d frames, want %d", got, n)
		}
	}
	inject(3)
	if next := th.adapt(2, 0, start, end, prevBusy); next != napStep {
		t.Errorf("with 3 frames waiting: next nap %v, want %v (the batch gathers)", next, napStep)
	}
	if naps, held := p.idle.naps.Load(), p.idle.held.Load(); naps != 1 || held != 0 {
		t.Errorf("with 3 frames waiting: %d naps, %d held; want 1 nap, none held", naps, held)
	}

	inject(vport.MaxBatch - 3)
	if next := th.adapt(2, 0, start, end, prevBusy); next != 0 {
		t.Errorf("with a batch waiting: next nap %v, want 0 (naps start over)", next)
	}
	if naps, held, frames := p.idle.naps.Load(), p.idle.held.Load(), p.idle.heldFrames.Load(); naps != 1 || held != 1 || frames != vport.MaxBatch {
		t.Errorf("with %d frames waiting: %d naps, %d held with %d frames; want still 1 nap, 1 held with %d frames", vport.MaxBatch, naps, held, frames, vport.MaxBatch)
	}

	bufs := make([][]byte, vport.MaxBatch)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	if n, err := busy.Receive(0, bufs, make([]int, vport.MaxBatch), nil); n != vport.MaxBatch || err != nil {
		t.Fatalf("receive: %d, %v", n, err)
	}
	if next := th.adapt(2, 0, start, end, prevBusy); next != napStep {
		t.Errorf("with the queues empty: next nap %v, want %v", next, napStep)
	}
	if naps, held := p.idle.naps.Load(), p.idle.held.Load(); naps != 2 || held != 1 {
		t.Errorf("with the queues empty: %d naps, %d held; want 2 naps, still 1 held", naps, held)
	}
}

func TestCapNap(t *testing.T) {
	const us = time.Microsecond
	for _, c := range []struct {
		name       string
		inNext     time.Duration
		inN        int
		inSince    time.Duration
		inRoom     int
		wantCapped time.Duration
	}{
		{"default ring, light load", 20 * us, 4, 10 * us, 2048, 20 * us},
		{"room unknown", 20 * us, 15, us, -1, 20 * us},
		{"no rate", 20 * us, 0, 10 * us, 8, 20 * us},
		// 16 packets in 10 µs fill half of 64 free descriptors in 20
		// µs: less than the wake-up and a nap.
		{"small ring, fast", 20 * us, 16, 10 * us, 64, 0},
		// Half of 160 in 50 µs: back by then with a 25 µs nap at most.
		{"small ring, shortened", maxNap, 16, 10 * us, 160, 25 * us},
		{"small ring, room for the nap", 10 * us, 16, 10 * us, 256, 10 * us},
		{"full ring", 5 * us, 1, 50 * us, 0, 0},
	} {
		if got := capNap(c.inNext, c.inN, c.inSince, c.inRoom); got != c.wantCapped {
			t.Errorf("%s: capNap(%v, %d, %v, %d) = %v, want %v", c.name, c.inNext, c.inN, c.inSince, c.inRoom, got, c.wantCapped)
		}
	}
}

// roomPort is an in-memory port whose rx ring has room free descriptors,
// as an AF_XDP port tells.
type roomPort struct {
	*vport.MemPort
	room int
}

func (p *roomPort) RxRoom(int) int { return p.room }

// TestAdaptiveNapFitsRing: at a rate that would fill half a small rx ring
// before a nap and its wake-up are over, a thread due a nap polls again
// instead; with a large ring it naps.
func TestAdaptiveNapFitsRing(t *testing.T) {
	mp, err := vport.NewMemPort(vport.MemConfig{Name: "small", RingSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Close()
	rp := &roomPort{MemPort: mp, room: 16}
	p := &pmd{}
	rqs := []rxq{{port: &Port{Name: "small", vp: rp}}}
	p.rxqs.Store(&rqs)
	th := &thread{ms: []*pmd{p}} // its only member
	end := time.Now()
	start := end.Add(-time.Microsecond)
	prevBusy := start.Add(-10 * time.Microsecond) // 15 packets in 11 µs
	if next := th.adapt(15, 0, start, end, prevBusy); next != 0 {
		t.Errorf("room for 16 frames: next nap %v, want 0", next)
	}
	if naps, short := p.idle.naps.Load(), p.idle.short.Load(); naps != 0 || short != 1 {
		t.Errorf("room for 16 frames: %d naps, %d cut short; want 0 and 1", naps, short)
	}
	rp.room = 2048
	if next := th.adapt(15, 0, start, end, prevBusy); next != napStep {
		t.Errorf("room for 2048 frames: next nap %v, want %v", next, napStep)
	}
	if naps, short := p.idle.naps.Load(), p.idle.short.Load(); naps != 1 || short != 1 {
		t.Errorf("room for 2048 frames: %d naps, %d cut short; want 1 and 1", naps, short)
	}
}

// lowPort is an in-memory port that tells whether the kernel has fewer
// than half of its rx frames, as an AF_XDP port's fill ring does.
type lowPort struct {
	*vport.MemPort
	low bool
}

func (p *lowPort) RxLow(int) bool { return p.low }

// TestAdaptiveNoNapWhileFillLow: a thread due a nap polls again instead
// while a frame waits and the port's fill ring is low, however much room
// its rx ring has; with the fill ring topped up, or nothing waiting, it
// naps.
func TestAdaptiveNoNapWhileFillLow(t *testing.T) {
	mp, err := vport.NewMemPort(vport.MemConfig{Name: "low", RingSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Close()
	lp := &lowPort{MemPort: mp, low: true}
	p := &pmd{}
	rqs := []rxq{{port: &Port{Name: "low", vp: lp}}}
	p.rxqs.Store(&rqs)
	th := &thread{ms: []*pmd{p}} // its only member
	end := time.Now()
	start := end.Add(-time.Microsecond)
	prevBusy := start.Add(-5 * time.Microsecond) // light load: a nap is due
	for _, c := range []struct {
		name              string
		inLow             bool
		inWaiting         int
		wantNap           bool
		wantNaps, wantCut uint64
	}{
		{"low, nothing waiting", true, 0, true, 1, 0},
		{"low, a frame waiting", true, 1, false, 1, 1},
		{"topped up, a frame waiting", false, 1, true, 2, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			lp.low = c.inLow
			frames := make([][]byte, c.inWaiting-mp.RxPending(0))
			for i := range frames {
				frames[i] = make([]byte, 60)
			}
			if n := mp.Inject(0, frames); mp.RxPending(0) != c.inWaiting {
				t.Fatalf("injected %d: %d frames waiting, want %d", n, mp.RxPending(0), c.inWaiting)
			}
			next := th.adapt(2, 0, start, end, prevBusy)
			if (next != 0) != c.wantNap {
				t.Errorf("next nap %v, want a nap: %v", next, c.wantNap)
			}
			if naps, short := p.idle.naps.Load(), p.idle.short.Load(); naps != c.wantNaps || short != c.wantCut {
				t.Errorf("%d naps, %d cut short; want %d and %d", naps, short, c.wantNaps, c.wantCut)
			}
		})
	}
}

// TestMaxPollGap: a thread counts the time between the starts of two
// polls only when one of them found packets, so that an idle bridge
// reports none, and one that forwarded a frame reports a gap next to it,
// no longer than the test has run.
func TestMaxPollGap(t *testing.T) {
	begin := time.Now()
	b := newTestBridge(t, Config{PMDs: 1})
	mp, _ := addMemPort(t, b, vport.MemConfig{Name: "p1", RingSize: 64}, 1)
	addFlows(t, b, "actions=drop")
	quiesce(t, b, mp)
	if g := b.PMDStats()[0].MaxPollGap; g != 0 {
		t.Fatalf("before any packet: longest poll gap %v, want 0", g)
	}
	frame := flow.BuildFrame(&flow.Key{DlType: flow.EthTypeIPv4, NwTTL: 64, NwProto: flow.IPProtoUDP})
	if mp.Inject(0, [][]byte{frame}) != 1 {
		t.Fatal("inject failed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.PMDStats()[0].MaxPollGap == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no poll gap counted 10s after a packet (%d packets)", b.PMDStats()[0].Packets)
		}
		time.Sleep(time.Millisecond)
	}
	if g := b.PMDStats()[0].MaxPollGap; g > time.Since(begin) {
		t.Errorf("longest poll gap %v, longer than the test (%v)", g, time.Since(begin))
	}
}

// TestPollGaps: the gaps that count towards MaxPollGap are those on
// either side of a round that found packets; a stall after a round that
// found none (under traffic, the frames that arrive meanwhile wait for the
// next round) counts as much as one after a round that found some.
func TestPollGaps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type round struct {
		at    int // ms
		found bool
	}
	for _, c := range []struct {
		name    string
		in      []round
		wantMax time.Duration
		wantAny bool
	}{
		{"first round", []round{{0, true}}, 0, false},
		{"idle", []round{{0, false}, {5, false}, {10, false}}, 0, false},
		{"after packets", []round{{0, true}, {3, false}}, 3 * time.Millisecond, true},
		{"stall after an empty round under traffic", []round{{0, true}, {1, false}, {21, true}, {22, true}}, 20 * time.Millisecond, true},
		{"traffic after an idle sleep", []round{{0, false}, {5, false}, {9, true}}, 4 * time.Millisecond, true},
		{"empty rounds apart from traffic", []round{{0, true}, {1, false}, {50, false}, {51, true}}, 1 * time.Millisecond, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var g pollGaps
			var got time.Duration
			counted := false
			for _, r := range c.in {
				if d, ok := g.round(ms(r.at), r.found); ok {
					counted = true
					got = max(got, d)
				}
			}
			if counted != c.wantAny || got != c.wantMax {
				t.Errorf("longest gap %v (any counted: %v), want %v (%v)", got, counted, c.wantMax, c.wantAny)
			}
		})
	}
}
