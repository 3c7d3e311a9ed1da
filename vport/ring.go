package vport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ring is a bounded queue of frames with a fixed number of fixed-size slots,
// safe for any number of producers and consumers without locks. It is the
// bounded MPMC queue with a sequence number per slot: a slot at position pos
// is free for the producer that claims pos when its sequence is pos, and
// holds a frame for the consumer that claims pos when its sequence is pos+1.
// Producers and consumers claim positions with a compare-and-swap, and give
// up after maxClaimTries lost races so that no call loops without a bound.
//
// A consumer that wants to sleep arms the ring (arm) and polls its eventfd;
// the next producer that publishes a frame writes to the eventfd.
type ring struct {
	_   [64]byte
	enq atomic.Uint64 // next position to produce
	_   [56]byte
	deq atomic.Uint64 // next position to consume
	_   [56]byte
	// notify is the sleep handshake: notifyArmed while a consumer may sleep
	// on efd, notifyClosed once close began, and in the bits above, the
	// number of producers writing to efd right now (close waits for them
	// before it closes efd).
	notify atomic.Uint64
	_      [56]byte

	mask      uint64
	frameSize int
	slots     []slot
	efd       int
}

type slot struct {
	seq atomic.Uint64
	n   int
	buf []byte
}

const (
	notifyArmed  = 1
	notifyClosed = 2
	notifyWriter = 4

	maxClaimTries = 64
	maxRingSize   = 1 << 20
)

// eventfdOne is the 8-byte counter increment written to an eventfd.
var eventfdOne = binary.NativeEndian.AppendUint64(nil, 1)

func newRing(size, frameSize int) (*ring, error) {
	if size < 1 || size > maxRingSize {
		return nil, fmt.Errorf("ring size %d, want 1 to %d", size, maxRingSize)
	}
	if frameSize < 1 {
		return nil, fmt.Errorf("frame size %d, want at least 1", frameSize)
	}
	n := 1
	for n < size {
		n <<= 1
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	r := &ring{mask: uint64(n - 1), frameSize: frameSize, slots: make([]slot, n), efd: efd}
	arena := make([]byte, n*frameSize)
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
		r.slots[i].buf = arena[i*frameSize : (i+1)*frameSize : (i+1)*frameSize]
	}
	return r, nil
}

// capacity is the number of slots.
func (r *ring) capacity() int { return len(r.slots) }

// len is the number of frames queued, exact when the ring is quiet.
func (r *ring) len() int {
	d, e := r.deq.Load(), r.enq.Load()
	if e < d {
		return 0
	}
	return int(e - d)
}

// push copies frames into the ring in order and returns how many it took
// from the front of frames (taken), how many of those it dropped because
// they were longer than a slot (dropped), and the bytes of the frames it
// queued. It stops at the first frame that finds the ring full.
func (r *ring) push(frames [][]byte) (taken, dropped, bytes int) {
	for _, f := range frames {
		if len(f) > r.frameSize {
			taken++
			dropped++
			continue
		}
		s, pos, ok := r.claim(&r.enq, 0)
		if !ok {
			break
		}
		s.n = copy(s.buf, f)
		s.seq.Store(pos + 1)
		taken++
		bytes += len(f)
	}
	if taken > dropped {
		r.signal()
	}
	return taken, dropped, bytes
}

// pop copies queued frames into bufs[i][:sizes[i]] and returns how many
// (n), how many frames it dropped because they did not fit their buffer
// (at most len(bufs) of them), and the bytes it delivered.
func (r *ring) pop(bufs [][]byte, sizes []int) (n, dropped, bytes int) {
	limit := min(len(bufs), len(sizes))
	for n < limit && dropped < limit {
		s, pos, ok := r.claim(&r.deq, 1)
		if !ok {
			break
		}
		if s.n <= len(bufs[n]) {
			sizes[n] = copy(bufs[n], s.buf[:s.n])
			bytes += s.n
			n++
		} else {
			dropped++
		}
		s.seq.Store(pos + r.mask + 1)
	}
	return n, dropped, bytes
}

// claim claims the next position of a producer (ahead 0, counter r.enq) or
// a consumer (ahead 1, counter r.deq). It fails when the ring is full
// (producer) or empty (consumer), or after maxClaimTries lost races.
func (r *ring) claim(ctr *atomic.Uint64, ahead uint64) (*slot, uint64, bool) {
	pos := ctr.Load()
	for range maxClaimTries {
		s := &r.slots[pos&r.mask]
		switch d := int64(s.seq.Load() - (pos + ahead)); {
		case d == 0:
			if ctr.CompareAndSwap(pos, pos+1) {
				return s, pos, true
			}
		case d < 0:
			return nil, 0, false
		}
		pos = ctr.Load()
	}
	return nil, 0, false
}

// ready reports whether a frame is waiting at the head of the ring.
func (r *ring) ready() bool {
	pos := r.deq.Load()
	return r.slots[pos&r.mask].seq.Load() == pos+1
}

// signal wakes a consumer that armed the ring. It costs one atomic load
// when nobody sleeps.
func (r *ring) signal() {
	for range maxClaimTries {
		v := r.notify.Load()
		if v&notifyArmed == 0 || v&notifyClosed != 0 {
			return
		}
		if r.notify.CompareAndSwap(v, v&^notifyArmed+notifyWriter) {
			unix.Write(r.efd, eventfdOne) //nolint:errcheck // a full counter already wakes the poller
			r.notify.Add(^uint64(notifyWriter - 1))
			return
		}
	}
}

// arm readies the ring for a consumer about to sleep on the returned file
// descriptor, and reports whether a frame is already waiting. The order
// (arm, then look at the head; publish, then look at the flag) guarantees
// that a frame published after the look is followed by a write to efd.
func (r *ring) arm() (fd int, ready bool, err error) {
	var buf [8]byte
	unix.Read(r.efd, buf[:]) //nolint:errcheck // EAGAIN: the counter was already zero
	for range maxClaimTries {
		v := r.notify.Load()
		if v&notifyClosed != 0 {
			return -1, false, ErrClosed
		}
		if r.notify.CompareAndSwap(v, v|notifyArmed) {
			if r.ready() {
				r.notify.And(^uint64(notifyArmed))
				return r.efd, true, nil
			}
			return r.efd, false, nil
		}
	}
	return r.efd, true, nil // contended: let the caller poll again
}

// close wakes any sleeper, waits for producers that are signalling, and
// closes the eventfd. It must be called once.
func (r *ring) close() error {
	v := r.notify.Or(notifyClosed)
	if v&notifyArmed != 0 {
		unix.Write(r.efd, eventfdOne) //nolint:errcheck // best effort wake-up
	}
	for r.notify.Load() >= notifyWriter {
		runtime.Gosched() // a writer is inside one write(2) to an eventfd
	}
	if err := unix.Close(r.efd); err != nil && !errors.Is(err, unix.EINTR) {
		return fmt.Errorf("close eventfd: %w", err)
	}
	return nil
}
