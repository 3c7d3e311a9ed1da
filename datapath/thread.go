package datapath

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/vport"
)

// A bridge's pmd is the per-bridge half of a poll thread: its rx queues,
// cache, counters and read-side records. The thread is the goroutine that
// runs its batches and is idle between them. Without a pool each pmd has
// a thread of its own. With one (Config.Threads), a pool thread runs the
// batches of every bridge's pmd i in turn, as Open vSwitch's userspace
// datapath has one set of PMD threads, shared by all its bridges: a
// tunnelled packet then crosses both bridges on one thread, and never
// waits in an injection ring for the other bridge's thread to get a CPU
// (inject.go).

// Threads is a pool of poll threads that bridges share: pmd i of each
// bridge configured with it joins thread i, modulo the pool's size. A
// thread runs while it has members, so a pool costs nothing until a
// bridge starts, and only as many threads run as the bridges' largest
// pmd count. Its zero value is not usable; NewThreads makes one.
type Threads struct {
	threads []*thread
	usage   usageHistory // usage.go
}

// NewThreads returns a pool of n poll threads (1 when n < 1).
func NewThreads(n int) *Threads {
	n = max(n, 1)
	t := &Threads{threads: make([]*thread, n)}
	for i := range t.threads {
		t.threads[i] = newThread()
	}
	return t
}

// Size is the number of threads in the pool.
func (t *Threads) Size() int { return len(t.threads) }

// Running is the number of the pool's threads that have members.
func (t *Threads) Running() int {
	n := 0
	for _, th := range t.threads {
		if len(*th.members.Load()) > 0 {
			n++
		}
	}
	return n
}

// thread returns the thread that pmd i of a bridge joins.
func (t *Threads) thread(i int) *thread { return t.threads[i%len(t.threads)] }

// thread is one poll thread: a goroutine that runs its members' batches
// in turn and applies the idle strategy to all of them at once (it naps or
// sleeps only when none had packets). It runs while it has members.
type thread struct {
	// mu serializes joins and leaves; it protects running, and members
	// is stored under it (and read without it).
	mu      sync.Mutex
	members atomic.Pointer[[]*pmd]
	running bool
	// gen counts the changes of membership: joins, and leaves (each
	// after the member's stop is set), and of cpu. A round of batches
	// reads it alone, and looks at the members and cpu only when it
	// moved.
	gen atomic.Uint64
	// cpu is the CPU the thread is asked to run on (affinity.go), and
	// pinned the one its goroutine pinned it to; -1: any.
	cpu, pinned atomic.Int32

	// What follows is owned by the thread's goroutine.
	goid    int64
	seen    *[]*pmd // the member list ms was taken from
	seenGen uint64  // gen when seen was taken up (0: never; a join made gen 1 or more)
	ms      []*pmd
	idle    IdleStrategy // the strongest of the members' (strategy)
	yield   bool         // spinning: yield when the empty poll would hold every P
	locked  bool         // locked to its OS thread (lockOS)
	slack   bool         // with a short timer slack
	spare   spareCPU
	// poller sleeps on every member's rx queues and wakers; polledFor
	// is the member list it was built for (each member's polled, its rx
	// queue list).
	poller    *vport.Poller
	polledFor *[]*pmd
}

func newThread() *thread {
	t := &thread{spare: spareCPU{cpuTime: threadCPUTime}}
	t.members.Store(&[]*pmd{})
	t.cpu.Store(-1)
	t.pinned.Store(-1)
	return t
}

// join makes p a member of the thread, and starts the thread if it had
// none. From here p's batches run on the thread, with p's bridge's grace
// periods waiting for them.
func (t *thread) join(p *pmd) {
	p.br.rcu.register(&p.rd)
	p.br.rcu.register(&p.helper.rd)
	p.owner.Lock()
	p.live = true
	p.owner.Unlock()
	t.mu.Lock()
	old := *t.members.Load()
	ms := append(slices.Clip(old), p)
	t.members.Store(&ms)
	t.gen.Add(1)
	start := !t.running
	t.running = true
	t.mu.Unlock()
	if start {
		go t.run()
		return
	}
	// A sleeping thread would see the new member's queues only after
	// its sleep. (A member that is leaving has its waker closed.)
	for _, m := range old {
		m.rd.waker.Wake()
	}
}

// leave asks the thread to let p go, after p.stop is set; p.done is closed
// once it has. Its other members go on.
func (t *thread) leave(p *pmd) {
	t.gen.Add(1)      // after p.stop: the round that sees it looks at p
	p.rd.waker.Wake() // a sleeping thread sees the stop now, not after maxSleep
}

// refresh takes up the thread's joins and leaves before a round of
// batches: a stopping member leaves (its batch is over, and it is never
// run again), a new one is run from now on. It reports false when no
// member is left: the thread ends. While gen stays where it was, nothing
// joined or left, and it costs one atomic load.
func (t *thread) refresh() bool {
	g := t.gen.Load()
	if g == t.seenGen {
		return true
	}
	// A join or leave after the load above moves gen again, and the next
	// round looks once more.
	t.seenGen = g
	t.pin()
	cur := t.members.Load()
	stopping := false
	for _, m := range *cur {
		if m.stop.Load() {
			stopping = true
		}
	}
	if cur == t.seen && !stopping {
		return true
	}
	if stopping {
		var gone []*pmd
		t.mu.Lock()
		keep := []*pmd{}
		for _, m := range *t.members.Load() {
			if m.stop.Load() {
				gone = append(gone, m)
			} else {
				keep = append(keep, m)
			}
		}
		cur = &keep
		t.members.Store(cur)
		if len(keep) == 0 {
			t.exitLocked()
		}
		t.mu.Unlock()
		for _, m := range gone {
			m.left()
		}
		if len(keep) == 0 {
			// A join may have started the next goroutine already:
			// nothing of t is touched from here.
			return false
		}
	}
	t.seen, t.ms = cur, *cur
	t.strategy()
	for _, m := range t.ms {
		m.stall.goid.Store(t.goid)
	}
	return true
}

// exitLocked readies the thread for its next goroutine, which a join
// starts: the goroutine-owned state starts afresh (the OS thread this
// goroutine is locked to ends with it). t.mu must be held.
func (t *thread) exitLocked() {
	t.running = false
	t.seen, t.ms, t.seenGen = nil, nil, 0
	t.locked, t.slack = false, false
	t.unpin()
	t.poller, t.polledFor = nil, nil
	t.spare = spareCPU{cpuTime: threadCPUTime}
}

// left ends p's membership, on its thread: helpers find it stopped and
// leave its ports alone (the bridge closes them once done is closed).
func (p *pmd) left() {
	p.owner.Lock()
	p.live = false
	p.owner.Unlock()
	p.br.rcu.unregister(&p.helper.rd)
	p.br.rcu.unregister(&p.rd)
	close(p.done)
}

// strategy sets the thread's idle strategy from its members': it spins if
// one of them spins, is adaptive if one is, and sleeps otherwise, so that
// no member waits longer than its bridge asks; an adaptive thread keeps
// polling after its last packet for the longest of the members' spare
// spins.
func (t *thread) strategy() {
	t.idle = IdleSleep
	t.spare.window = 0
	pmds := 0
	for _, m := range t.ms {
		switch m.br.cfg.Idle {
		case IdleSpin:
			t.idle = IdleSpin
		case IdleAdaptive:
			if t.idle != IdleSpin {
				t.idle = IdleAdaptive
			}
			t.spare.window = max(t.spare.window, m.br.SpareSpin())
		}
		pmds = max(pmds, m.br.cfg.PMDs)
	}
	// As many threads run as the largest bridge has pmds.
	t.yield = pmds >= runtime.GOMAXPROCS(0) // read once per change: it takes a lock
	if t.idle == IdleAdaptive && !t.slack {
		// Naps need the thread's own timer slack, so the goroutine keeps
		// its thread. A spinning thread is not locked unless it is
		// pinned: each Gosched then hands the thread's P over and back.
		t.lockOS()
		unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(NapTimerSlack), 0, 0, 0) //nolint:errcheck // naps are only longer without it
		t.slack = true
	}
}

// run is the poll loop.
func (t *thread) run() {
	t.goid = goroutineID()
	lastBusy := time.Now()
	lastYield := lastBusy
	var nap time.Duration
	var gaps pollGaps
	// idleFrom is the start of the last round if it found nothing: its
	// time, and that of the sleep after it, is idle time, counted when
	// the next round reads the clock. An empty round reads the clock
	// once: a read costs 200 ns under kvm-clock, and a thread that polls
	// on after its last packet runs empty rounds back to back.
	var idleFrom time.Time
	for t.refresh() {
		n := 0
		start := time.Now()
		if !idleFrom.IsZero() {
			took := uint64(start.Sub(idleFrom))
			for _, m := range t.ms {
				m.counters.idleNanos.Add(took)
			}
			idleFrom = time.Time{}
		}
		// Each member's batch starts when the one before with packets
		// ended: one clock read per batch with packets.
		end := start
		for _, m := range t.ms {
			var k int
			k, end = m.runOne(end)
			n += k
		}
		if gap, ok := gaps.round(start, n > 0); ok {
			for _, m := range t.ms {
				m.idle.noteGap(gap)
			}
		}
		prevBusy := lastBusy
		if n > 0 {
			lastBusy = end
		} else {
			idleFrom = start
		}
		switch t.idle {
		case IdleAdaptive:
			nap = t.adapt(n, nap, start, end, prevBusy)
		case IdleSpin:
			// Yielding costs a trip through the scheduler per empty
			// poll (a quarter more CPU per packet and 10 µs more RTT
			// here); spinning threads yield only when they would
			// otherwise hold every P, and starve the control path.
			// They also yield every spinYield, so that the runtime
			// never has to preempt them: it does that with a signal
			// after 10 ms, which interrupts the thread in the middle
			// of a packet (15 µs more ping RTT here, pings being 10 ms
			// apart too).
			if (n == 0 && t.yield) || end.Sub(lastYield) >= spinYield {
				runtime.Gosched()
				lastYield = end
			}
		case IdleSleep:
			if n == 0 {
				t.sleep()
			}
		}
	}
}

// pollGaps tells which gaps between a thread's rounds count towards
// PMDStats.MaxPollGap: the time from the start of one round to the start
// of the next, when either found packets. A round that found packets
// starts the time its successor's frames wait; a round that found none
// under traffic (the sender paused, or the round came right after the
// last) leaves the frames that arrive after it waiting until the next
// one, however long the thread then naps, sleeps or waits for a CPU, and
// it is those waits that outlast the rx rings. A thread that sleeps idle
// until a frame wakes it counts the sleep, at most maxSleep and the
// wake-up; an idle thread counts nothing.
type pollGaps struct {
	prev  time.Time // the start of the last round (zero: none yet)
	found bool      // whether it found packets
}

// round records a round that started at start and found packets or not,
// and returns the gap since the last round's start, if it counts.
func (g *pollGaps) round(start time.Time, found bool) (time.Duration, bool) {
	prev, prevFound := g.prev, g.found
	g.prev, g.found = start, found
	if prev.IsZero() || !(found || prevFound) {
		return 0, false
	}
	return start.Sub(prev), true
}

// runOne runs one of p's batches on its thread, from start (the time
// read last), and counts its time if it had packets; it returns the
// packets the batch handled and when it ended (start if it had none,
// without reading the clock: the thread counts an empty round's time
// as a whole, and a member's empty batch before another's with packets
// counts in the latter's).
func (p *pmd) runOne(start time.Time) (int, time.Time) {
	n := p.runBatch(start)
	if n == 0 {
		return 0, start
	}
	end := time.Now()
	p.counters.batches.Add(1)
	busy := end.Sub(start)
	p.counters.busyNanos.Add(uint64(busy))
	p.creditRxqs(busy, n)
	return n, end
}
