package datapath

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovsxdp/ovsxdp/vport"
)

// A quiescent-state tracker in the style of userspace RCU: every poll thread
// (reader) announces a quiescent state between batches, when it holds no
// reference to a port table, flow snapshot or port. A writer that has
// published a new snapshot calls Synchronize to wait for a grace period:
// until every reader has passed a quiescent state, or was idle (outside any
// batch), since the call began. After that no reader can still hold the old
// snapshot, and what only the old snapshot reached may be freed.

// reader is one poll thread's quiescent-state record. It is written only by
// its thread and read by Synchronize.
type reader struct {
	// seq counts the thread's quiescent states; an odd value means the thread
	// is inside a batch (online), an even value that it is outside one
	// (offline: between batches, or stopped).
	seq atomic.Uint64
	// sleeping is set while the thread sleeps in poll(2) inside a
	// read-side section; waker, if set, interrupts that sleep, so that a
	// grace period does not wait it out.
	sleeping atomic.Bool
	waker    *vport.Waker
}

// wakeIfSleeping interrupts the reader's sleep, if it sleeps.
func (r *reader) wakeIfSleeping() bool {
	if r.waker != nil && r.sleeping.Load() {
		r.waker.Wake()
		return true
	}
	return false
}

// enter marks the start of a batch: from here until leave, the thread may
// hold references to published snapshots.
func (r *reader) enter() { r.seq.Add(1) }

// leave announces a quiescent state: the thread holds no references.
func (r *reader) leave() { r.seq.Add(1) }

// graceSpin is how long Synchronize polls the readers, yielding the CPU
// between looks, before it sleeps between them.
const graceSpin = 200 * time.Microsecond

// rcu tracks the readers of one datapath.
type rcu struct {
	mu      sync.Mutex // protects readers
	readers map[*reader]struct{}
}

func newRCU() *rcu { return &rcu{readers: make(map[*reader]struct{})} }

func (g *rcu) register(r *reader) {
	g.mu.Lock()
	g.readers[r] = struct{}{}
	g.mu.Unlock()
}

func (g *rcu) unregister(r *reader) {
	g.mu.Lock()
	delete(g.readers, r)
	g.mu.Unlock()
}

// Synchronize waits for a grace period: it returns once every reader that
// was inside a batch when it was called has left that batch. It returns
// ctx's error if ctx ends first (a reader stuck in a soft lockup holds the
// grace period, as a CPU spinning in softirq holds the kernel's).
func (g *rcu) Synchronize(ctx context.Context) error {
	g.mu.Lock()
	type pending struct {
		r     *reader
		seq   uint64
		woken bool
	}
	var wait []pending
	for r := range g.readers {
		if s := r.seq.Load(); s&1 == 1 {
			wait = append(wait, pending{r: r, seq: s})
		}
	}
	g.mu.Unlock()

	// A batch lasts microseconds: poll for a while, yielding the CPU,
	// before sleeping (a timer shorter than a millisecond can take a
	// millisecond to fire).
	spinUntil := time.Now().Add(graceSpin)
	backoff := 10 * time.Microsecond
	for i := range wait {
		p := &wait[i]
		for p.r.seq.Load() == p.seq {
			// A thread sleeps at most once per read-side section, so one
			// wake-up, after it is seen sleeping, is enough.
			if !p.woken {
				p.woken = p.r.wakeIfSleeping()
			}
			if time.Now().Before(spinUntil) {
				if err := ctx.Err(); err != nil {
					return err
				}
				runtime.Gosched()
				continue
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			if backoff < time.Millisecond {
				backoff *= 2
			}
		}
	}
	return nil
}
