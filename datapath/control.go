package datapath

import (
	"context"
	"fmt"
	"sync/atomic"
)

// Control requests let the control path read or change what a poll thread
// owns alone (its flow cache and megaflows) without sharing it: the
// requester queues a function, the thread runs it between two batches, and
// the requester waits for it to finish. The packet path pays one atomic
// load per loop when nothing is queued.

// controlRequest is one queued function. done is closed once fn has run.
type controlRequest struct {
	fn   func(p *pmd)
	done chan struct{}
	next *controlRequest
}

// controlQueue is a poll thread's queue of control requests: a lock-free
// stack that requesters push onto and the thread takes whole. Its zero
// value is an empty queue. It holds at most one request per waiting
// requester, so it is bounded by them.
type controlQueue struct {
	head atomic.Pointer[controlRequest]
}

// push queues r.
func (q *controlQueue) push(r *controlRequest) {
	for {
		old := q.head.Load()
		r.next = old
		if q.head.CompareAndSwap(old, r) {
			return
		}
	}
}

// serve runs the queued requests on p, in the order they were queued. Only
// p's goroutine calls it, between batches.
func (q *controlQueue) serve(p *pmd) {
	if q.head.Load() == nil {
		return
	}
	var order []*controlRequest
	for r := q.head.Swap(nil); r != nil; r = r.next {
		order = append(order, r)
	}
	for i := len(order) - 1; i >= 0; i-- {
		order[i].fn(p)
		close(order[i].done)
	}
}

// onEachPMD runs fn once on each poll thread's goroutine (between batches),
// one thread after the other, and returns when all have run it. A bridge
// whose threads are not running (not started yet) has nothing running
// concurrently with its caches, so fn runs on the caller's goroutine under
// b.mu. It returns ErrStopped if the bridge is or gets closed, and ctx's
// error if ctx ends first (a thread held in a soft lockup serves no
// requests until the watchdog releases it).
func (b *Bridge) onEachPMD(ctx context.Context, fn func(p *pmd)) error {
	b.mu.Lock()
	switch {
	case b.stopped:
		b.mu.Unlock()
		return ErrStopped
	case !b.started:
		defer b.mu.Unlock()
		for _, p := range b.pmds {
			fn(p)
		}
		return nil
	}
	b.mu.Unlock()
	for _, p := range b.pmds {
		r := &controlRequest{fn: fn, done: make(chan struct{})}
		p.ctl.push(r)
		select {
		case <-r.done:
		case <-p.done:
			// The thread exited (Close); it may have run r just before.
			select {
			case <-r.done:
			default:
				return ErrStopped
			}
		case <-ctx.Done():
			return fmt.Errorf("bridge %s: waiting for pmd %d: %w", b.cfg.Name, p.id, ctx.Err())
		}
	}
	return nil
}
