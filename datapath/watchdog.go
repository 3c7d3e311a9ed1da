package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLockupThreshold is how long a poll thread may go without finishing
// a batch before the watchdog reports a soft lockup.
const DefaultLockupThreshold = time.Second

// MinSpinBudget is the smallest non-zero WatchdogConfig.SpinBudget. The
// longest reduction of skb_tx_hash's loop that ends by itself is below it
// (a recorded rx queue is a 16-bit number, the queue count at least 1), so
// a spin that reaches the budget is one that would never end.
const MinSpinBudget = 1 << 16

// stall is a poll thread's record for the watchdog: what it is spinning on,
// and the flag that releases it. The thread writes the spin fields (once a
// spin is long) and reads released; the watchdog does the opposite.
type stall struct {
	released atomic.Bool
	port     atomic.Pointer[Port]
	hash     atomic.Uint32
	qcount   atomic.Uint32
	spinning atomic.Bool
	goid     atomic.Int64 // the poll thread's goroutine id, for its stack
	cur      *Port        // the port being output to; written and read only by the poll thread

	// budget, when not zero, bounds a spin in the kernel's queue loop to
	// that many iterations (WatchdogConfig.SpinBudget): at the budget the
	// spinning thread calls overrun, which records the lockup and sets
	// released. Both are set when the thread is created and never change.
	budget  uint64
	overrun func()
}

// noteSpin records what the thread spins on, for the lockup report.
func (s *stall) noteSpin(hash, qcount uint32) {
	s.port.Store(s.cur)
	s.hash.Store(hash)
	s.qcount.Store(qcount)
	s.spinning.Store(true)
}

// clear readies the record for the next batch.
func (s *stall) clear() {
	if s.spinning.Load() || s.released.Load() {
		s.spinning.Store(false)
		s.released.Store(false)
		s.port.Store(nil)
	}
}

// Lockup is one soft lockup the watchdog detected.
type Lockup struct {
	Time     time.Time
	PMD      int
	Stuck    time.Duration // how long the thread had made no progress
	Policy   Policy
	Port     string // the port being output to ("" if the thread was not spinning in output)
	TxQueues uint32 // the queue count it was reducing by
	Hash     uint32 // the hash it was reducing
	Stack    string // the poll thread's goroutine stack
	// Spinning says the thread was caught spinning in the kernel's queue
	// loop. A lockup that is not spinning is a batch that took longer
	// than the threshold for another reason, such as a thread that a busy
	// machine descheduled: it is reported, but there is nothing to
	// release, and it never panics.
	Spinning bool
}

// String formats the lockup as the kernel's watchdog does.
func (l Lockup) String() string {
	stuck := fmt.Sprintf("%ds", int(l.Stuck/time.Second))
	if l.Stuck < time.Second {
		stuck = fmt.Sprintf("%.2fs", l.Stuck.Seconds())
	}
	s := fmt.Sprintf("BUG: soft lockup - pmd#%d stuck for %s! policy=%s", l.PMD, stuck, l.Policy)
	switch {
	case l.Port != "":
		s += fmt.Sprintf(" port=%s txqueues=%d hash=%d", l.Port, l.TxQueues, l.Hash)
	case !l.Spinning:
		s += " (not spinning)"
	}
	return s
}

// WatchdogConfig sets the soft-lockup watchdog.
type WatchdogConfig struct {
	// Threshold is how long a poll thread may stay in one batch;
	// DefaultLockupThreshold when zero.
	Threshold time.Duration
	// Panic aborts the process on a lockup (like kernel.softlockup_panic=1)
	// instead of recording it and releasing the thread.
	Panic bool
	// Disabled turns the watchdog off.
	Disabled bool
	// SpinBudget, when not zero, makes a poll thread detect its own
	// lockup: a spin in the kernel's queue loop that reaches SpinBudget
	// iterations is recorded as the watchdog records a lockup (Lockups,
	// with the spinning goroutine's stack) and released (or panics, with
	// Panic). It is the detector for poll threads driven one batch at a
	// time by a single goroutine, where the watchdog cannot run beside
	// them; it works alongside the watchdog too. At least MinSpinBudget.
	SpinBudget uint64
	// Log receives the lockup reports; the bridge's Config.Log when nil.
	Log *slog.Logger
}

// ErrUnwatchedSpin is returned for a bridge whose output policy can spin
// (every policy but Guarded) while nothing would end the spin: the
// watchdog is disabled and no spin budget is set. Such a spin would hold
// its poll thread, and Close, for ever.
var ErrUnwatchedSpin = errors.New("a policy that can spin needs the watchdog or a spin budget")

// canEnd returns ErrUnwatchedSpin, wrapped, when pol can spin and the
// configuration has no detector to release the spin.
func (c WatchdogConfig) canEnd(pol Policy) error {
	if pol != Guarded && c.Disabled && c.SpinBudget == 0 {
		return fmt.Errorf("policy %s with the watchdog disabled: %w", pol, ErrUnwatchedSpin)
	}
	return nil
}

func (c WatchdogConfig) validate() error {
	if c.SpinBudget != 0 && c.SpinBudget < MinSpinBudget {
		return fmt.Errorf("watchdog spin budget %d is below %d, which a terminating queue reduction may need", c.SpinBudget, MinSpinBudget)
	}
	return nil
}

// watchdog watches a bridge's poll threads. Each thread's progress is its
// reader sequence (see rcu.go): odd while inside a batch. A thread whose
// sequence stays at the same odd value for Threshold is locked up.
type watchdog struct {
	cfg    WatchdogConfig
	policy func() Policy
	pmds   []*pmd
	stop   chan struct{}
	done   chan struct{}

	count    atomic.Uint64
	spinning atomic.Uint64 // of count, the lockups that caught a thread spinning
	mu       sync.Mutex    // protects lockups
	// lockups holds the most recent lockups, up to maxLockupRecords.
	lockups []Lockup
}

const maxLockupRecords = 256

func newWatchdog(cfg WatchdogConfig, pmds []*pmd, policy func() Policy) *watchdog {
	if cfg.Threshold <= 0 {
		cfg.Threshold = DefaultLockupThreshold
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &watchdog{cfg: cfg, pmds: pmds, policy: policy, stop: make(chan struct{}), done: make(chan struct{})}
}

func (w *watchdog) start() {
	if w.cfg.Disabled {
		close(w.done)
		return
	}
	go w.run()
}

func (w *watchdog) close() {
	close(w.stop)
	<-w.done
}

func (w *watchdog) run() {
	defer close(w.done)
	period := w.cfg.Threshold / 8
	if period < time.Millisecond {
		period = time.Millisecond
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	o := w.observer(period, time.Now())
	for {
		select {
		case <-w.stop:
			return
		case now := <-tick.C:
			o.tick(now)
		}
	}
}

// observer is the watchdog's view of its poll threads between ticks.
//
// A batch is reported at most twice: once when it has been stuck for the
// threshold without spinning (a stall), and once when it is found
// spinning, which releases it.
//
// A batch's stuck time is what the watchdog itself saw of it: each tick
// adds the time since the previous one, but at most two periods. A tick
// that comes much later than its period means the watchdog was off the CPU
// too, and on a loaded machine that is the whole process waiting for a CPU
// (every bridge's thread is then found in the same batch at once); that
// wait is the machine's, not a batch's that holds its thread, and counting
// it made a busy machine report lockups of threads that never ran
// meanwhile.
type observer struct {
	w         *watchdog
	maxCredit time.Duration
	prev      time.Time
	// Each thread's batches run under two read-side records: its own,
	// and a helper's, another bridge's thread that runs the batch in its
	// place (inject.go). Both are watched: last[2*i] and last[2*i+1].
	last []seen
}

type seen struct {
	seq          uint64
	stuck        time.Duration
	stallDone    bool
	spinReported bool
}

func (w *watchdog) observer(period time.Duration, now time.Time) *observer {
	return &observer{w: w, maxCredit: 2 * period, prev: now, last: make([]seen, 2*len(w.pmds))}
}

// tick looks at every thread's batch at now.
func (o *observer) tick(now time.Time) {
	credit := min(now.Sub(o.prev), o.maxCredit)
	o.prev = now
	for i := range o.last {
		last := &o.last[i]
		p, rd, goid := o.w.pmds[i/2], &o.w.pmds[i/2].rd, &o.w.pmds[i/2].stall.goid
		if i%2 == 1 {
			rd, goid = &p.helper.rd, &p.helper.goid
		}
		seq := rd.seq.Load()
		if seq != last.seq || seq&1 == 0 {
			*last = seen{seq: seq}
			continue
		}
		last.stuck += credit
		if last.stuck < o.w.cfg.Threshold {
			continue
		}
		spinning := p.stall.spinning.Load()
		if spinning && !last.spinReported || !spinning && !last.stallDone && !last.spinReported {
			// The thread may start spinning meanwhile: the report
			// says which it recorded.
			if o.w.report(p, last.stuck, now, goid.Load()) {
				last.spinReported = true
			} else {
				last.stallDone = true
			}
		}
	}
}

// report records a lockup of p, whose batch goroutine goid runs, and
// releases it if it spins (or panics, if configured), and reports whether
// it was spinning.
func (w *watchdog) report(p *pmd, stuck time.Duration, now time.Time, goid int64) bool {
	return w.lockup(p, stuck, now, goroutineStack(goid))
}

// overrun is report for a poll thread that has spun through its spin
// budget, called on that thread: the stack is its own, and it has been
// stuck since its batch began.
func (w *watchdog) overrun(p *pmd) {
	now := time.Now()
	buf := make([]byte, 64<<10)
	stack := string(buf[:runtime.Stack(buf, false)])
	w.lockup(p, time.Duration(now.UnixNano()-p.now), now, stack)
}

// lockup records a lockup of p, found stuck for stuck at now with the
// given stack. A spinning thread is released; with Panic it panics
// instead. A thread that is not spinning is only recorded: releasing it
// would make its next terminating queue reduction look like a spin. It
// reports whether the thread was spinning.
func (w *watchdog) lockup(p *pmd, stuck time.Duration, now time.Time, stack string) bool {
	l := Lockup{Time: now, PMD: p.id, Stuck: stuck, Policy: w.policy(), Stack: stack}
	if p.stall.spinning.Load() {
		l.Spinning = true
		if port := p.stall.port.Load(); port != nil {
			l.Port = port.Name
		}
		l.TxQueues = p.stall.qcount.Load()
		l.Hash = p.stall.hash.Load()
	}
	if !l.Spinning {
		w.cfg.Log.Warn(l.String())
		w.record(l)
		return false
	}
	w.cfg.Log.Error(l.String())
	if w.cfg.Panic {
		panic(l.String() + "\n" + l.Stack)
	}
	w.spinning.Add(1)
	w.record(l)
	p.stall.released.Store(true)
	return true
}

// record keeps l among the most recent lockups and counts it.
func (w *watchdog) record(l Lockup) {
	w.mu.Lock()
	if len(w.lockups) == maxLockupRecords {
		copy(w.lockups, w.lockups[1:])
		w.lockups = w.lockups[:maxLockupRecords-1]
	}
	w.lockups = append(w.lockups, l)
	w.mu.Unlock()
	w.count.Add(1)
}

// Lockups returns the lockups recorded (the most recent ones) and the total
// number detected.
func (w *watchdog) Lockups() ([]Lockup, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Lockup(nil), w.lockups...), w.count.Load()
}

// SpinningLockups returns how many of the lockups detected caught a poll
// thread spinning in the kernel's queue loop.
func (w *watchdog) SpinningLockups() uint64 { return w.spinning.Load() }

// goroutineID returns the calling goroutine's id, read from its stack header
// ("goroutine 18 [running]:").
func goroutineID() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		id, err := strconv.ParseInt(string(b[:i]), 10, 64)
		if err == nil {
			return id
		}
	}
	return -1
}

// goroutineStack returns the stack of goroutine id, or "" if it is gone.
func goroutineStack(id int64) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	head := []byte("goroutine " + strconv.FormatInt(id, 10) + " [")
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.HasPrefix(g, head) {
			return string(g)
		}
	}
	return ""
}
