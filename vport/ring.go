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
// safe for any number of producers and consumers. Its core is a
// single-producer, single-consumer ring: the producer copies frames into the
// slots after tail and publishes them all with one store of tail; the
// consumer copies frames out of the slots after head and frees them all with
// one store of head. Each side is owned by one caller at a time: a caller
// takes its side by setting the low bit of its index (tail for producers,
// head for consumers) with a compare-and-swap, and the store that publishes
// the side's work also clears the bit. A batch therefore costs each side one
// compare-and-swap and one store, whatever its size, as a veth's ptr_ring
// costs one lock per batch. A caller that finds its side taken retries a
// bounded number of times (maxClaimTries, yielding the processor after the
// first few) and then gives up as if the ring were full (producer) or empty
// (consumer), so that no call waits without a bound.
//
// A consumer that wants to sleep arms the ring (arm) and polls its eventfd;
// the next producer that publishes a frame writes to the eventfd.
type ring struct {
	_ [64]byte
	// tail is the producers' side: the next position to produce, shifted
	// left by one, with sideTaken set while a producer owns the side.
	tail atomic.Uint64
	// headSeen is the consumer's head as the producer that owns the side
	// last read it; it spares the producer a look at the consumer's cache
	// line while the ring has room.
	headSeen uint64
	_        [48]byte
	// head is the consumer's side: the next position to consume, shifted
	// left by one, with sideTaken set while a consumer owns the side.
	head atomic.Uint64
	_    [56]byte
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

// slot is one frame's room. Its fields belong to the producer that owns
// the ring's tail until the store of tail publishes them, then to the
// consumer that owns its head until the store of head frees them.
type slot struct {
	n   int
	buf []byte
}

const (
	notifyArmed  = 1
	notifyClosed = 2
	notifyWriter = 4

	// sideTaken is the low bit of tail and head: a caller owns the side.
	sideTaken = 1
	// maxClaimTries bounds the tries to take a side that another caller
	// owns; the first spinTries only look again, the others also yield.
	maxClaimTries = 64
	spinTries     = 8
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
		r.slots[i].buf = arena[i*frameSize : (i+1)*frameSize : (i+1)*frameSize]
	}
	return r, nil
}

// capacity is the number of slots.
func (r *ring) capacity() int { return len(r.slots) }

// len is the number of frames queued, exact when the ring is quiet.
func (r *ring) len() int {
	h := r.head.Load() >> 1 // first: tail never falls behind a head read earlier
	t := r.tail.Load() >> 1
	return int(min(t-h, uint64(len(r.slots))))
}

// take makes the caller the owner of the side whose index is side and
// returns the side's position, or false after maxClaimTries when another
// caller keeps it.
func take(side *atomic.Uint64) (uint64, bool) {
	for i := range maxClaimTries {
		if v := side.Load(); v&sideTaken == 0 && side.CompareAndSwap(v, v|sideTaken) {
			return v >> 1, true
		}
		if i >= spinTries {
			runtime.Gosched()
		}
	}
	return 0, false
}

// push copies frames into the ring in order and returns how many it took
// from the front of frames (taken), how many of those it dropped because
// they were longer than a slot (dropped), and the bytes of the frames it
// queued. It stops at the first frame that finds the ring full, or takes
// none when other producers keep the ring busy.
func (r *ring) push(frames [][]byte) (taken, dropped, bytes int) {
	t0, ok := take(&r.tail)
	if !ok {
		return 0, 0, 0
	}
	t, size := t0, uint64(len(r.slots))
	free := size - (t - r.headSeen)
	for _, f := range frames {
		if len(f) > r.frameSize {
			taken++
			dropped++
			continue
		}
		if free == 0 {
			r.headSeen = r.head.Load() >> 1
			if free = size - (t - r.headSeen); free == 0 {
				break
			}
		}
		s := &r.slots[t&r.mask]
		s.n = copy(s.buf, f)
		t++
		free--
		taken++
		bytes += len(f)
	}
	r.tail.Store(t << 1) // publishes the frames and gives the side up
	if t != t0 {
		r.signal()
	}
	return taken, dropped, bytes
}

// pop copies queued frames into bufs[i][:sizes[i]] and returns how many
// (n), how many frames it dropped because they did not fit their buffer
// (at most len(bufs) of them), and the bytes it delivered. It finds the
// ring empty when other consumers keep it busy.
func (r *ring) pop(bufs [][]byte, sizes []int) (n, dropped, bytes int) {
	if !r.ready() {
		return 0, 0, 0 // an idle poll takes nothing, not even the side
	}
	h0, ok := take(&r.head)
	if !ok {
		return 0, 0, 0
	}
	h, t := h0, r.tail.Load()>>1
	limit := min(len(bufs), len(sizes))
	for ; h != t && n < limit && dropped < limit; h++ {
		s := &r.slots[h&r.mask]
		if s.n <= len(bufs[n]) {
			sizes[n] = copy(bufs[n], s.buf[:s.n])
			bytes += s.n
			n++
		} else {
			dropped++
		}
	}
	r.head.Store(h << 1) // frees the slots and gives the side up
	return n, dropped, bytes
}

// ready reports whether a frame is waiting at the head of the ring.
func (r *ring) ready() bool {
	return r.head.Load()>>1 != r.tail.Load()>>1
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
