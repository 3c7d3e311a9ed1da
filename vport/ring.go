package vport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"

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
//
// A consumer may also borrow frames in their slots instead of copying
// them out (lend): it keeps the consumer side until every frame it
// borrowed is given back (giveBack), and the store of head that frees
// their slots is the last give-back's.
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

	// arena holds the slots' bytes, stride bytes each: frameSize and
	// lendRoom after it.
	arena  []byte
	stride int
	// The frames out on loan, owned with the consumer side: the slots
	// from lentFrom up to lentEnd, and in lentOut a bit for each
	// (slot lentFrom+i is bit i) that is not back yet. lentNext is the
	// slot after the last one given back, where the next usually is.
	lentFrom, lentEnd, lentNext uint64
	lentOut                     uint64
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

	// lendRoom is the capacity a slot has after its longest frame, so
	// that a borrower can push tags on a lent frame as on a frame of its
	// own (see Lender).
	lendRoom = 64
	// maxLend is the most frames one lend lends: one bit of lentOut each.
	maxLend = 64
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
	stride := frameSize + lendRoom
	r := &ring{mask: uint64(n - 1), frameSize: frameSize, slots: make([]slot, n), efd: efd, stride: stride}
	r.arena = make([]byte, n*stride)
	for i := range r.slots {
		r.slots[i].buf = r.arena[i*stride : i*stride+frameSize : (i+1)*stride]
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
	for taken < len(frames) {
		// The usual frames go through pushSmall's loop; the one it
		// stops at, here.
		k, b := pushSmall(r.slots, r.mask, t, frames[taken:taken+int(min(free, uint64(len(frames)-taken)))])
		t, free, taken, bytes = t+uint64(k), free-uint64(k), taken+k, bytes+b
		if taken == len(frames) {
			break
		}
		f := frames[taken]
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
			continue
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

// pushSmall copies frames into slots from position t on (slot t&mask),
// as push does, up to the first that it does not copy in line (small:
// too long for its slot, or not 17 to 64 bytes long), and returns how
// many it copied and their bytes. Its loop makes no call, so that its
// state stays in registers: around push's call to copy for the rare frame,
// the loop kept it in memory, and stored and loaded it for every frame.
func pushSmall(slots []slot, mask, t uint64, frames [][]byte) (n, bytes int) {
	for _, f := range frames {
		s := &slots[t&mask]
		if !small(len(f), len(s.buf)) {
			break
		}
		moveSmall(s.buf, f)
		s.n = len(f)
		bytes += len(f)
		t++
		n++
	}
	return n, bytes
}

// small reports whether a frame of n bytes is copied into a buffer of
// room bytes in line (moveSmall): it is 17 to 64 bytes long, as the small
// packets of a benchmark, and fits.
func small(n, room int) bool { return n > 16 && n <= 64 && room >= n }

// moveSmall copies src into dst, which does not overlap it, for a src
// that small says is copied in line into dst: as one to three 16-byte
// moves at offsets 0, 16 and 32, as many as the bytes before the frame's
// last 16 need, and a move of those last 16 bytes, which overlaps the
// others as needed. It addresses them from the slices' starts without
// reslicing them, all but the last at fixed offsets.
// copy would call memmove, and the ring's loops would keep their state
// in memory around each call.
func moveSmall(dst, src []byte) {
	n := len(src)
	d, s := unsafe.Pointer(unsafe.SliceData(dst)), unsafe.Pointer(unsafe.SliceData(src))
	*(*[16]byte)(d) = *(*[16]byte)(s)
	if n > 32 {
		*(*[16]byte)(unsafe.Add(d, 16)) = *(*[16]byte)(unsafe.Add(s, 16))
		if n > 48 {
			*(*[16]byte)(unsafe.Add(d, 32)) = *(*[16]byte)(unsafe.Add(s, 32))
		}
	}
	*(*[16]byte)(unsafe.Add(d, n-16)) = *(*[16]byte)(unsafe.Add(s, n-16))
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
	for h != t && n < limit && dropped < limit {
		// The usual frames go through popSmall's loop; the one it
		// stops at, here.
		k, b := popSmall(r.slots, r.mask, h, bufs[n:n+int(min(t-h, uint64(limit-n)))], sizes[n:limit])
		h, n, bytes = h+uint64(k), n+k, bytes+b
		if h == t || n == limit {
			break
		}
		s := &r.slots[h&r.mask]
		if s.n <= len(bufs[n]) {
			sizes[n] = copy(bufs[n], s.buf[:s.n])
			bytes += s.n
			n++
		} else {
			dropped++
		}
		h++
	}
	r.head.Store(h << 1) // frees the slots and gives the side up
	return n, dropped, bytes
}

// popSmall copies the frames of slots from position h on into bufs, and
// their sizes into sizes, which has room for as many, as pop does, up to
// the first that it does not copy in line (small), and returns how many it
// copied and their bytes. Its loop makes no call (see pushSmall).
func popSmall(slots []slot, mask, h uint64, bufs [][]byte, sizes []int) (n, bytes int) {
	sizes = sizes[:len(bufs)]
	for i, b := range bufs {
		s := &slots[h&mask]
		if !small(s.n, len(b)) {
			break
		}
		moveSmall(b, s.buf[:s.n])
		sizes[i] = s.n
		bytes += s.n
		h++
		n++
	}
	return n, bytes
}

// lend is pop without the copy: frames[i] is set to the i-th queued frame
// in its slot, with the rest of the slot as capacity, and it returns how
// many (n) and their bytes. The frames stay in their slots, and the caller
// keeps the consumer side, until giveBack has had each of them. A ring
// whose frames are still out, or whose side another consumer holds, lends
// nothing and does not wait.
func (r *ring) lend(frames [][]byte) (n, bytes int) {
	if !r.ready() {
		return 0, 0
	}
	v := r.head.Load()
	if v&sideTaken != 0 || !r.head.CompareAndSwap(v, v|sideTaken) {
		return 0, 0
	}
	h0, t := v>>1, r.tail.Load()>>1
	n = min(len(frames), maxLend, int(t-h0))
	bytes = lendSlots(r.slots, r.mask, h0, frames[:n])
	h := h0 + uint64(n)
	if n == 0 {
		r.head.Store(h0 << 1)
		return 0, 0
	}
	r.lentFrom, r.lentEnd, r.lentNext = h0, h, h0
	r.lentOut = uint64(1)<<n - 1 // all ones for 64: the shift gives 0
	return n, bytes
}

// lendSlots sets frames[i] to the frame in slot h+i (of slots, as lend
// does: with the rest of the slot as capacity) for each i, and returns
// their bytes. It is a function of its own, not inlined, so that its
// loop has its few values in registers: in lend's, the values lend keeps
// for after it were loaded again for every frame.
//
//go:noinline
func lendSlots(slots []slot, mask, h uint64, frames [][]byte) (bytes int) {
	for i := range frames {
		s := &slots[h&mask]
		frames[i] = s.buf[:s.n]
		bytes += s.n
		h++
	}
	return bytes
}

// giveBack takes back frames that lend lent, each once, in any order and
// over any number of calls; when the last is back it frees their slots and
// gives up the consumer side. A frame is known by the last byte of its
// capacity, the last of its slot; slices that end elsewhere, or in a slot
// that is not out on loan, are ignored. It reports how many it took back.
func (r *ring) giveBack(frames [][]byte) int {
	if r.lentOut == 0 || len(r.arena) == 0 {
		return 0
	}
	if n := uint64(len(frames)); n == r.lentEnd-r.lentFrom && r.lentOut == 1<<n-1 && r.wholeLoan(frames) {
		// The usual call: a batch's outputs took every frame lent, and
		// flushing them gives them all back at once.
		r.lentOut, r.lentNext = 0, r.lentEnd
		r.head.Store(r.lentEnd << 1) // frees the slots and gives the side up
		return len(frames)
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(r.arena)))
	stride := uintptr(r.stride)
	back := 0
	for _, f := range frames {
		if cap(f) == 0 {
			continue
		}
		end := uintptr(unsafe.Pointer(&f[:cap(f)][cap(f)-1])) - base + 1
		var i uint64 // the slot's offset from lentFrom's, in ring order
		if n := r.lentNext; n != r.lentEnd && end == uintptr(n&r.mask+1)*stride {
			i = n - r.lentFrom // in order: no division
		} else {
			if end > uintptr(len(r.arena)) || end%stride != 0 {
				continue
			}
			i = (uint64(end/stride) - 1 - r.lentFrom) & r.mask
		}
		if i >= r.lentEnd-r.lentFrom || r.lentOut&(1<<i) == 0 {
			continue
		}
		r.lentOut &^= 1 << i
		r.lentNext = r.lentFrom + i + 1
		back++
	}
	if back > 0 && r.lentOut == 0 {
		r.head.Store(r.lentEnd << 1) // frees the slots and gives the side up
	}
	return back
}

// giveBackRun is giveBack for the frames that lend set in frames[first]
// to frames[first+n-1]: it takes back those of them that are still out,
// by their bits, without looking at a frame, and reports how many.
func (r *ring) giveBackRun(first, n int) int {
	lent := r.lentEnd - r.lentFrom
	if r.lentOut == 0 || first < 0 || n <= 0 || uint64(first) >= lent {
		return 0
	}
	n = min(n, int(lent)-first)
	back := r.lentOut & ((uint64(1)<<n - 1) << first) // all ones for 64: the shift gives 0
	r.lentOut &^= back
	r.lentNext = r.lentFrom + uint64(first+n)
	if back != 0 && r.lentOut == 0 {
		r.head.Store(r.lentEnd << 1) // frees the slots and gives the side up
	}
	return bits.OnesCount64(back)
}

// wholeLoan reports whether frames are the frames out on loan, none given
// back yet, in ring order: frames[i] ends where slot lentFrom+i does.
// That costs a compare a frame, where giveBack's loop finds each frame's
// slot and bit. The end it compares with steps a slot a frame, back to
// the arena's first slot past its last, without the slot's multiply.
func (r *ring) wholeLoan(frames [][]byte) bool {
	base := uintptr(unsafe.Pointer(unsafe.SliceData(r.arena)))
	stride, last := uintptr(r.stride), base+uintptr(len(r.arena))
	end := base + uintptr(r.lentFrom&r.mask+1)*stride
	for _, f := range frames {
		if cap(f) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(f)))+uintptr(cap(f)) != end {
			return false
		}
		if end += stride; end > last {
			end = base + stride
		}
	}
	return true
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
