package vport

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A Poller lets an idle poll thread sleep until any of the rx queues it
// watches has traffic, or a timeout passes. It works across port kinds:
// each queue hands it a file descriptor (an AF_XDP socket, or the eventfd
// of an in-memory ring) and the Poller sleeps in poll(2) on all of them.
//
// A Poller belongs to one thread. Build it once, outside the packet loop.
type Poller struct {
	queues []pollQueue
	fds    []unix.PollFd
	// wakers are watched after the queues, each by its descriptor at the
	// end of fds.
	wakers []*Waker
}

type pollQueue struct {
	port Port
	q    int
}

// Add watches rx queue q of port.
func (p *Poller) Add(port Port, q int) error {
	if q < 0 || q >= port.RxQueues() {
		return fmt.Errorf("poller: %s rx queue %d of %d: %w", port.Name(), q, port.RxQueues(), ErrBadQueue)
	}
	p.queues = append(p.queues, pollQueue{port: port, q: q})
	p.fds = append(p.fds, unix.PollFd{Fd: -1, Events: unix.POLLIN})
	return nil
}

// AddWaker makes Wait return early when w is woken. A thread that sleeps
// for several owners (the bridges whose poll threads share it) watches
// each one's waker.
func (p *Poller) AddWaker(w *Waker) { p.wakers = append(p.wakers, w) }

// Len is the number of queues watched.
func (p *Poller) Len() int { return len(p.queues) }

// Wait returns true as soon as a watched queue has traffic, or false when
// timeout passes first (timeout <= 0 only looks). It also returns early,
// with true, when a descriptor reports an error or hang-up, so that the
// thread's next Receive meets the error. An error from a queue (ErrClosed,
// ErrPortDown) is returned wrapped with the port and queue.
func (p *Poller) Wait(timeout time.Duration) (bool, error) {
	for i, pq := range p.queues {
		fd, ready, err := pq.port.PrepareWait(pq.q)
		if err != nil {
			return false, fmt.Errorf("poller: %s rx queue %d: %w", pq.port.Name(), pq.q, err)
		}
		if ready {
			return true, nil
		}
		p.fds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	fds := p.fds[:len(p.queues)]
	for _, w := range p.wakers {
		fds = append(fds, unix.PollFd{Fd: int32(w.efd), Events: unix.POLLIN})
	}
	p.fds = fds
	ready, err := pollFds(fds, timeout)
	for i, w := range p.wakers {
		if fds[len(p.queues)+i].Revents != 0 {
			w.drain()
		}
	}
	return ready, err
}

// A Waker interrupts a Poller's Wait from another thread: the control path
// wakes a sleeping poll thread with it (for example so that a grace period
// need not wait out the sleep).
type Waker struct {
	// mu makes Wake and Close exclusive, so that Wake never writes to a
	// closed (and perhaps reused) descriptor; it protects closed.
	mu     sync.RWMutex
	efd    int
	closed bool
}

// NewWaker returns a waker. Close releases it.
func NewWaker() (*Waker, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("waker: eventfd: %w", err)
	}
	return &Waker{efd: efd}, nil
}

// Wake makes the Poller's current or next Wait return.
// It is safe to call concurrently with Close, after which it does nothing.
func (w *Waker) Wake() {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.closed {
		unix.Write(w.efd, eventfdOne) //nolint:errcheck // a full counter already wakes the poller
	}
}

func (w *Waker) drain() {
	var buf [8]byte
	unix.Read(w.efd, buf[:]) //nolint:errcheck // EAGAIN: already drained
}

// Close releases the waker. No Wait may be using it. It is idempotent.
func (w *Waker) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return unix.Close(w.efd)
}

// WaitRx waits, as a one-queue Poller does, for traffic on rx queue q.
func WaitRx(port Port, q int, timeout time.Duration) (bool, error) {
	fd, ready, err := port.PrepareWait(q)
	if err != nil || ready {
		return ready, err
	}
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	return pollFds(fds[:], timeout)
}

// pollFds sleeps in poll(2) until a descriptor is ready or timeout passes,
// restarting after signals with the time left.
func pollFds(fds []unix.PollFd, timeout time.Duration) (bool, error) {
	if len(fds) == 0 {
		if timeout > 0 {
			time.Sleep(timeout)
		}
		return false, nil
	}
	deadline := time.Now().Add(timeout)
	for {
		ms := 0
		if left := time.Until(deadline); left > 0 {
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) {
			if ms == 0 {
				return false, nil
			}
			continue // bounded: each pass has less time left
		}
		if err != nil {
			return false, fmt.Errorf("poll: %w", err)
		}
		return n > 0, nil
	}
}
