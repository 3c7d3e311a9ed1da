package datapath

import (
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/vport"
)

// IdleStrategy is what a poll thread does when its queues are empty.
type IdleStrategy uint8

// NapTimerSlack is the timer slack of an adaptive poll thread: by
// default Linux lets a sleep of a normal thread overrun by 50 µs, as long
// as a whole nap.
const NapTimerSlack = time.Microsecond

// DefaultSpareSpin is how long an adaptive poll thread keeps polling after
// its last packet, as long as other threads leave it its CPU, when
// Config.SpareSpin is zero.
const DefaultSpareSpin = 20 * time.Millisecond

// The idle strategies.
const (
	// IdleAdaptive follows the load. Under heavy load (full half
	// batches) it polls again at once. Under light load (a few packets
	// per poll) it naps between polls, a little longer each time up to
	// maxNap, so that the packets gather into batches: one transmit call
	// then carries several packets, and the CPU the thread does not spin
	// away goes to the endpoints and the kernel's own packet work. It
	// never naps while a whole batch waits on its rx rings (nothing is
	// left to gather), nor longer
	// than half the ring's free room lasts at the rate packets come in
	// (as far as the ports tell: AF_XDP ones tell both). When
	// a poll finds nothing, it keeps polling for spinWindow (a reply
	// usually comes back within it, and is forwarded without a wake-up),
	// and then for up to Config.SpareSpin after its last packet as long
	// as other threads leave it its CPU (spareCPU): with a CPU to spare,
	// sparse traffic such as pings finds the thread awake, as a busy
	// polling one would. Then it sleeps in poll(2) until a queue has
	// traffic. The default.
	IdleAdaptive IdleStrategy = iota
	// IdleSpin never sleeps (busy polling, as OVS's PMDs by default).
	IdleSpin
	// IdleSleep sleeps in poll(2) as soon as the queues are empty.
	IdleSleep
)

// ParseIdleStrategy returns the idle strategy named s, as String names it.
func ParseIdleStrategy(s string) (IdleStrategy, error) {
	for _, st := range []IdleStrategy{IdleAdaptive, IdleSpin, IdleSleep} {
		if s == st.String() {
			return st, nil
		}
	}
	return 0, fmt.Errorf("unknown idle strategy %q (want adaptive, spin or sleep)", s)
}

func (s IdleStrategy) String() string {
	switch s {
	case IdleAdaptive:
		return "adaptive"
	case IdleSpin:
		return "spin"
	case IdleSleep:
		return "sleep"
	}
	return "idle(?)"
}

const (
	// spinWindow is how long an adaptive thread keeps polling after the
	// last packet before it sleeps.
	spinWindow = 50 * time.Microsecond
	// napStep and maxNap shape an adaptive thread's naps under light
	// load: each light poll lengthens the next nap by napStep, up to
	// maxNap (see adapt). A poll with at least napThreshold packets ends
	// napping.
	napStep      = 5 * time.Microsecond
	maxNap       = 50 * time.Microsecond
	napThreshold = vport.MaxBatch / 2
	// loadGap tells light load from a packet after a quiet spell: a
	// thread starts napping only when packets came in polls less than
	// loadGap apart (above about 50,000 packets/s); a lone packet is
	// followed by polls at once, so that its reply is not delayed.
	loadGap = 20 * time.Microsecond
	// spinYield is how often a spinning thread yields, well within the
	// 10 ms after which the runtime preempts a goroutine that never
	// does.
	spinYield = time.Millisecond
	// spareCheck is how often a thread that polls on after its last
	// packet (spareCPU) checks that it still gets its CPU; spareLoss is
	// the share of the time it may lose to other threads; spareBackoff is
	// how long it sleeps at once after it lost more.
	spareCheck   = 100 * time.Microsecond
	spareLoss    = 0.25
	spareBackoff = 100 * time.Millisecond
	// maxSleep bounds one sleep, so that a thread sees new queues and stop
	// requests within it.
	maxSleep = 5 * time.Millisecond
)

// adapt is the adaptive idle strategy (IdleAdaptive) after a round of
// the thread's batches that ran from start to end and handled n packets,
// after a nap of nap (0 for none); prevBusy is when the last round with
// packets before it ended. It naps, sleeps or returns at once, and
// returns the length of the next nap. A nap or sleep is counted in each
// member's counters: each waited for its traffic.
func (t *thread) adapt(n int, nap time.Duration, start, end, prevBusy time.Time) time.Duration {
	act, next := adaptive(n, nap, start.Sub(prevBusy), end.Sub(prevBusy))
	switch {
	case n > 0:
		t.spare.busy()
	case act == idleSleep:
		switch t.spare.spin(end, end.Sub(prevBusy)) {
		case spinOn:
			act = idlePoll
		case spinPreempted:
			for _, m := range t.ms {
				m.counters.spinsGivenUp.Add(1)
			}
		}
	}
	switch act {
	case idleNap:
		// A nap lets a batch gather; once a whole batch waits there is
		// nothing left to gather, and a nap of a few microseconds often
		// lasts ten times that once the thread has given up its CPU,
		// while the kernel drops what the rx ring cannot hold. The thread
		// polls again at once instead, and its naps start short again.
		w, room, low := t.rxBacklog()
		if w >= vport.MaxBatch {
			for _, m := range t.ms {
				m.idle.held.Add(1)
				m.idle.heldFrames.Add(uint64(w))
			}
			return 0
		}
		// Nor while frames wait and a fill ring is low: the kernel drops
		// what arrives once it is empty, and a nap may last much longer
		// than asked.
		if low && w > 0 {
			for _, m := range t.ms {
				m.idle.short.Add(1)
			}
			return 0
		}
		// Nor may the nap outlast the rx ring's room at the rate the
		// packets came in.
		if next = capNap(next, n, end.Sub(prevBusy), room); next == 0 {
			for _, m := range t.ms {
				m.idle.short.Add(1)
			}
			return 0
		}
		// A nap reads no port, so it is outside any read-side section:
		// grace periods need not wait for it.
		ts := unix.NsecToTimespec(int64(next))
		unix.Nanosleep(&ts, nil) //nolint:errcheck // EINTR: a shorter nap
		took := uint64(time.Since(end))
		for _, m := range t.ms {
			m.counters.idleNanos.Add(took)
			m.idle.naps.Add(1)
			m.idle.napNanos.Add(took)
		}
		return next
	case idleSleep:
		t.sleep()
	}
	return 0
}

// rxPender is a port that tells how many frames wait on an rx queue
// without a system call (vport.XSKPort reads its rx ring's indexes),
// rxRoomer one that also tells how many more its ring can take, and
// rxLower one that tells whether fewer than half of a queue's rx frames
// are posted to the kernel (vport.XSKPort's fill ring).
type (
	rxPender interface{ RxPending(q int) int }
	rxRoomer interface{ RxRoom(q int) int }
	rxLower  interface{ RxLow(q int) bool }
)

// rxBacklog returns how many frames wait on the rx queues of the thread's
// members, as far as their ports tell (a port that cannot tell counts as
// empty), the least room left on one of their rx rings (-1 when no port
// tells), and whether the kernel has fewer than half of one queue's rx
// frames.
func (t *thread) rxBacklog() (waiting, room int, low bool) {
	room = -1
	for _, m := range t.ms {
		w, r, l := m.rxBacklog()
		waiting += w
		low = low || l
		if r >= 0 && (room < 0 || r < room) {
			room = r
		}
	}
	return waiting, room, low
}

// rxBacklog is thread.rxBacklog over p's rx queues.
func (p *pmd) rxBacklog() (waiting, room int, low bool) {
	// Reading a port's rings is a read-side section: the port stays open.
	p.rd.enter()
	defer p.rd.leave()
	room = -1
	for _, rq := range *p.rxqs.Load() {
		if pp, ok := rq.port.vp.(rxPender); ok {
			waiting += pp.RxPending(rq.q)
		}
		if pr, ok := rq.port.vp.(rxRoomer); ok {
			if r := pr.RxRoom(rq.q); room < 0 || r < room {
				room = r
			}
		}
		if pl, ok := rq.port.vp.(rxLower); ok && pl.RxLow(rq.q) {
			low = true
		}
	}
	return waiting, room, low
}

// napWake is what a nap costs beyond its length: the wake-up, 15 to 25 µs
// on a virtual machine, when the CPU is free.
const napWake = 25 * time.Microsecond

// capNap shortens a nap of next after a poll that found n packets, since
// after the end of the last poll with packets before it, so that at that
// rate the rx ring with room free descriptors is at most half full when
// the thread is back (napWake after the nap). It returns 0, no nap, when
// even a nap of napStep would overshoot; next as it is when the rate or
// the room is unknown (room < 0).
func capNap(next time.Duration, n int, since time.Duration, room int) time.Duration {
	if room < 0 || n <= 0 || since <= 0 {
		return next
	}
	half := time.Duration(float64(room) / 2 * float64(since) / float64(n)) // time to fill half the room
	if half-napWake < napStep {
		return 0
	}
	return min(next, half-napWake)
}

// idleCounters count an adaptive thread's naps. Only the thread writes
// them.
type idleCounters struct {
	naps     atomic.Uint64 // naps taken
	napNanos atomic.Uint64 // the time they took, wake-up included
	// held counts the naps not taken because frames waited on a queue
	// when the nap was due, heldFrames the frames that waited.
	held, heldFrames atomic.Uint64
	// short counts the naps not taken because, at the rate packets came
	// in, a rx ring would have been more than half full before the
	// thread was back (capNap), or because frames waited while a fill
	// ring was low (rxLower).
	short atomic.Uint64
	// maxGap is the longest time, in nanoseconds, between the starts of
	// two rounds of polls either of which found packets (pollGaps): the
	// batch, any nap or sleep, and any time the thread was off its CPU.
	// Frames that arrive meanwhile wait on the rx rings, and the kernel
	// drops those that find no fill frame.
	maxGap atomic.Int64
}

// noteGap records the time between the starts of two rounds of polls
// either of which found packets.
func (c *idleCounters) noteGap(d time.Duration) {
	if int64(d) > c.maxGap.Load() {
		c.maxGap.Store(int64(d))
	}
}

// load copies the counters into s.
func (c *idleCounters) load(s *PMDStats) {
	s.Naps, s.NapTime = c.naps.Load(), time.Duration(c.napNanos.Load())
	s.NapsHeld, s.HeldFrames, s.NapsShort = c.held.Load(), c.heldFrames.Load(), c.short.Load()
	s.MaxPollGap = time.Duration(c.maxGap.Load())
}

// idleAction is what an adaptive thread does after a poll.
type idleAction uint8

const (
	idlePoll  idleAction = iota // poll again at once
	idleNap                     // nap, then poll
	idleSleep                   // sleep until a queue has traffic
)

// adaptive decides IdleAdaptive's action after a poll that handled n
// packets, after a nap of nap; gap is the time from the end of the last
// poll with packets before it to its start, sinceBusy to its end. It also
// returns the length of the nap to take.
func adaptive(n int, nap, gap, sinceBusy time.Duration) (idleAction, time.Duration) {
	switch {
	case n >= napThreshold:
		return idlePoll, 0
	case n > 0 && (nap > 0 || gap <= loadGap):
		return idleNap, min(nap+napStep, maxNap)
	case n > 0:
		// A packet after a quiet spell, such as a ping: whatever it
		// triggers (a reply) is forwarded at once.
		return idlePoll, 0
	case sinceBusy >= spinWindow:
		return idleSleep, 0
	}
	return idlePoll, 0
}

// sleep sleeps until a queue of a member has traffic, maxSleep passes or
// a grace period of a member's bridge wakes the thread.
func (t *thread) sleep() {
	// Sleeping on a queue reads the port (its socket, its rings), so the
	// sleep is a read-side section of every member, like a batch: a port
	// is closed only after every thread has left it. A grace period wakes
	// the thread (each member's reader.waker is in the poller) rather
	// than wait out the sleep, which lasts at most maxSleep. The sleep
	// follows an empty round, whose time run counts, the sleep's with it.
	for _, m := range t.ms {
		m.rd.enter()
	}
	rebuild := t.polledFor != t.seen
	for _, m := range t.ms {
		if m.polled != m.rxqs.Load() {
			rebuild = true
		}
	}
	if rebuild {
		t.poller = new(vport.Poller)
		for _, m := range t.ms {
			t.poller.AddWaker(m.rd.waker)
			rqs := m.rxqs.Load()
			for _, rq := range *rqs {
				if err := t.poller.Add(rq.port.vp, rq.q); err != nil {
					m.br.log.Warn("pmd: cannot sleep on queue", "pmd", m.id, "port", rq.port.Name, "queue", rq.q, "err", err)
				}
			}
			m.polled = rqs
		}
		t.polledFor = t.seen
	}
	pending := false
	for _, m := range t.ms {
		m.rd.sleeping.Store(true)
		// Injected after the last poll, and its sender may have seen
		// the thread awake: poll again rather than sleep.
		pending = pending || m.injectPending()
	}
	if !pending {
		if _, err := t.poller.Wait(maxSleep); err != nil {
			// A queue cannot be slept on (its device is down): sleep
			// briefly without it, rather than spin.
			time.Sleep(maxSleep / 5)
		}
	}
	for _, m := range t.ms {
		m.rd.sleeping.Store(false)
		m.rd.leave()
	}
}

// spareCPU decides whether an adaptive poll thread, its queues empty, may
// keep polling rather than sleep: within window after its last packet, as
// long as it gets its CPU. While it polls, its own CPU time grows as fast
// as the clock, unless the kernel runs other threads on its CPU in its
// place: when it has lost more than a spareLoss share of the time since it
// went idle, other threads want the CPU, and it sleeps. A brief
// preemption, such as an endpoint woken on its CPU by the packet it just
// forwarded, costs it much less than that. After it gives up, it does not
// poll on after its packets again for spareBackoff: on a busy machine it
// then takes from the others hardly more than a thread that sleeps at once.
// It belongs to the poll thread, which is locked to its OS thread.
type spareCPU struct {
	window time.Duration
	// cpuTime reads the calling thread's CPU time.
	cpuTime func() (time.Duration, error)
	idle    bool          // the idle spell's start (wall0, cpu0) is read
	wall0   time.Time     // the idle spell's start
	cpu0    time.Duration // the thread's CPU time then
	next    time.Time     // when to read the CPU time again
	until   time.Time     // no polling on before it (backoff)
}

// spinVerdict is spareCPU's answer.
type spinVerdict uint8

const (
	spinOff       spinVerdict = iota // sleep: outside the window, backing off, or unknown
	spinOn                           // poll on
	spinPreempted                    // sleep: other threads took the CPU
)

// busy records that the thread handled packets: its next idle spell is
// measured afresh.
func (s *spareCPU) busy() { s.idle = false }

// spin is the verdict at now, sinceBusy after the last packet.
func (s *spareCPU) spin(now time.Time, sinceBusy time.Duration) spinVerdict {
	if sinceBusy >= s.window || now.Before(s.until) {
		return spinOff
	}
	if s.idle && now.Before(s.next) {
		return spinOn
	}
	cpu, err := s.cpuTime()
	if err != nil {
		return spinOff
	}
	s.next = now.Add(spareCheck)
	if !s.idle {
		s.idle, s.wall0, s.cpu0 = true, now, cpu
		return spinOn
	}
	wall := now.Sub(s.wall0)
	if lost := wall - (cpu - s.cpu0); float64(lost) > spareLoss*float64(wall) {
		s.until = now.Add(spareBackoff)
		return spinPreempted
	}
	return spinOn
}

// threadCPUTime is the calling thread's CPU time.
func threadCPUTime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}
