package vport

// This file drives one AF_XDP socket. Creation and teardown go through
// github.com/asavie/xdp v0.3.3 with its defects contained here:
//
//   - xdp.Socket.Close closes the socket and unmaps the UMEM but never
//     unmaps the four rings. The mappings keep the socket file alive, so the
//     kernel never releases the socket and its queue stays bound (EBUSY
//     for the next bind) while pinned UMEM pages leak. close unmaps them.
//   - even after a proper close the kernel releases a queue's buffer pool
//     from a work queue, so an immediate rebind can meet EBUSY: open
//     retries with a backoff until a deadline.
//   - xdp.NewSocket leaks the ring mappings of a socket it fails to bind
//     (it calls the same Close), and reports the errno with %v, so that
//     EBUSY cannot be told apart. open serializes socket creation, sweeps
//     the orphaned mappings after a failure (see xsk_maps.go) and recovers
//     the errno from the message.
//   - the default rings are tiny (128 frames); the port sizes them itself.
//   - the bind flags are a package variable (xdp.DefaultSocketFlags): the
//     port sets it under the registry lock that serializes socket
//     creation, so that each bind gets its own flags. A socket is bound
//     with XDP_USE_NEED_WAKEUP, and first with XDP_ZEROCOPY; a device that
//     refuses zero-copy (veth has none) gets a new socket in copy mode.
//
// The rings are driven here, not by the library (see xsk_layout.go). Frame
// ownership is split once and for all at open: the first RingSize frames
// circulate fill ring → rx ring → fill ring (a received frame is copied out
// before it is handed back, or lent out by ReceiveLent until Release gives
// it back), the others circulate free stack → tx ring →
// completion ring → free stack. A frame is thus never in the kernel's hands
// while the port still reads or writes it.

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"
)

const (
	// maxKicks bounds the sendto calls of one Transmit: the kernel sends
	// at most 32 frames per call in copy mode (EAGAIN past that), and
	// returns EBUSY when the device dropped a frame.
	maxKicks = 8
	// txLockSpins bounds how long a thread waits for another one that is
	// transmitting on the same socket before it gives up (tx ring full).
	txLockSpins = 256
)

// xskSizes are the UMEM and ring sizes of a socket.
type xskSizes struct {
	frames    int // frames in the UMEM
	frameSize int // bytes per frame, a power of two
	ringSize  int // descriptors per ring, a power of two; also the rx frames
}

// xskSocket is one AF_XDP socket bound to one queue of a device, with its
// own UMEM. The rx side (fill and rx rings) belongs to the thread
// polling the queue; the tx side (tx and completion rings, free) to the
// thread holding txBusy.
type xskSocket struct {
	queue     int
	sock      *xdp.Socket
	fd        int
	ino       uint64
	umem      []byte
	frameMask uint64
	regions   []ringRegion // the library's ring mappings, unmapped at close

	fill, comp umemRing
	rx, tx     descRing
	// deferred are lent frames that release found no room for on the
	// fill ring (their addresses): the kernel publishes the fill ring's
	// consumer index after the rx ring's producer index, so frames it
	// took may still count as posted when the port gives back frames it
	// received meanwhile. They are posted first at the next release.
	// At most ringSize frames circulate on the rx side, and so at most
	// that many wait here (its capacity, which only a frame given back
	// twice would reach). The rx side owns it.
	deferred []uint64

	// zeroCopy tells whether the kernel bound the socket in zero-copy
	// mode; needWakeup whether it uses need_wakeup, in which case the
	// kernel is woken (a system call) only when fillFlags or txFlags ask
	// for it.
	zeroCopy, needWakeup bool
	fillFlags, txFlags   *uint32
	// zcRefused is why the device refused a zero-copy bind, if it did.
	zcRefused error
	// busyPoll tells whether the socket prefers busy polling.
	busyPoll bool

	// dead latches the kernel's report that it unbound the socket (its
	// device was unregistered): SO_ERROR ENETDOWN, or ENXIO from sendto.
	dead atomic.Bool
	// waitProd is the rx ring's producer index when a thread last
	// prepared to sleep on the socket, with bit 32 set (0: never), and
	// errChecked when one last read SO_ERROR there (on xskClock); see
	// checkErrorIdle.
	waitProd   atomic.Uint64
	errChecked atomic.Int64

	_      [64]byte
	txBusy atomic.Bool
	free   []uint64 // tx frames the port owns; guarded by txBusy
	_      [64]byte

	rxPackets, rxBytes, rxDropped atomic.Uint64
	// fillWakeups counts the system calls that woke the kernel for the
	// fill ring.
	fillWakeups atomic.Uint64
	// fillLow is the fewest frames the fill ring held (posted to the
	// kernel, which drops what arrives when none is) when a poll found
	// frames on the rx ring, and fillEmpty counts the polls that found
	// it empty: the kernel may have dropped frames before them. Only the
	// rx side writes them.
	fillLow   atomic.Uint32
	fillEmpty atomic.Uint64
	// rxHigh is the most frames such a poll found on the rx ring, and
	// heldHigh the most it found on neither ring: lent to the datapath or
	// waiting for room on the fill ring. Only the rx side writes them.
	rxHigh, heldHigh              atomic.Uint32
	_                             [8]byte // the tx counters on a cache line of their own
	txPackets, txBytes, txDropped atomic.Uint64
	// txKicks counts the system calls that woke the kernel for the tx
	// ring.
	txKicks atomic.Uint64
}

// umemRing is a view of a fill or completion ring.
type umemRing struct {
	prod, cons *uint32
	descs      []uint64
	mask       uint32
}

// descRing is a view of an rx or tx ring.
type descRing struct {
	prod, cons *uint32
	descs      []xdp.Desc
	mask       uint32
}

// ringRegion is one ring mapping, as the library made it.
type ringRegion struct {
	base   unsafe.Pointer
	length int
}

// libError is an error of the library whose errno was recovered from its
// message.
type libError struct {
	msg   string
	errno syscall.Errno
}

func (e *libError) Error() string { return e.msg }
func (e *libError) Unwrap() error { return e.errno }

// libErrnos are the errnos recognized in the library's messages.
var libErrnos = []syscall.Errno{
	unix.EBUSY, unix.EAFNOSUPPORT, unix.EPERM, unix.ENOMEM, unix.EINVAL,
	unix.ENODEV, unix.ENXIO, unix.EOPNOTSUPP, unix.ENOBUFS,
}

// libErr recovers the errno the library formatted with %v.
func libErr(err error) error {
	msg := err.Error()
	for _, e := range libErrnos {
		if strings.HasSuffix(msg, e.Error()) {
			return &libError{msg: msg, errno: e}
		}
	}
	return err
}

// openSocket opens a socket on queue of ifindex, retrying while the queue
// is busy (EBUSY) until deadline. It must run in the device's namespace.
// With zeroCopy it binds in zero-copy mode first and falls back to copy
// mode when the device refuses (the socket's zcRefused says why); without,
// it binds in copy mode. It binds with need_wakeup, or without on a kernel
// that refuses it.
func openSocket(ifindex, queue int, sz xskSizes, deadline time.Time, zeroCopy bool) (*xskSocket, error) {
	flags := uint16(unix.XDP_USE_NEED_WAKEUP | unix.XDP_COPY)
	if zeroCopy {
		flags = unix.XDP_USE_NEED_WAKEUP | unix.XDP_ZEROCOPY
	}
	var zcErr error
	backoff := time.Millisecond
	for {
		s, err := tryOpenSocket(ifindex, queue, sz, flags)
		if err == nil {
			s.zcRefused = zcErr
			return s, nil
		}
		switch {
		case errors.Is(err, unix.EBUSY):
			if time.Now().Add(backoff).After(deadline) {
				return nil, err
			}
			time.Sleep(backoff)
			backoff = min(2*backoff, 16*time.Millisecond)
		case flags&unix.XDP_ZEROCOPY != 0 && !errors.Is(err, ErrNotSupported):
			zcErr = err
			flags = flags&^unix.XDP_ZEROCOPY | unix.XDP_COPY
		case flags&unix.XDP_USE_NEED_WAKEUP != 0 && errors.Is(err, unix.EINVAL):
			flags &^= unix.XDP_USE_NEED_WAKEUP
		default:
			return nil, err
		}
	}
}

func tryOpenSocket(ifindex, queue int, sz xskSizes, flags uint16) (*xskSocket, error) {
	xskRegistry.mu.Lock()
	defer xskRegistry.mu.Unlock()
	// The library binds with this package variable; the lock serializes
	// its users.
	xdp.DefaultSocketFlags = flags
	defer func() { xdp.DefaultSocketFlags = 0 }()
	opts := xdp.SocketOptions{
		NumFrames:              sz.frames,
		FrameSize:              sz.frameSize,
		FillRingNumDescs:       sz.ringSize,
		CompletionRingNumDescs: sz.ringSize,
		RxRingNumDescs:         sz.ringSize,
		TxRingNumDescs:         sz.ringSize,
	}
	sock, err := xdp.NewSocket(ifindex, queue, &opts)
	if err != nil {
		err = libErr(err)
		if serr := sweepOrphanRingsLocked(); serr != nil {
			err = errors.Join(err, serr)
		}
		if errors.Is(err, unix.EAFNOSUPPORT) {
			return nil, fmt.Errorf("queue %d: the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS): %v: %w", queue, err, ErrNotSupported)
		}
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("queue %d: AF_XDP needs CAP_NET_RAW and CAP_BPF (run as root): %v: %w", queue, err, ErrNotSupported)
		}
		return nil, fmt.Errorf("queue %d: %w", queue, err)
	}
	s, err := newXSKSocket(sock, queue, sz, flags)
	if err != nil {
		// Unmap what the view found; the library unmaps the UMEM.
		err = errors.Join(err, sock.Close())
		if s != nil {
			err = errors.Join(err, s.unmapRings())
		}
		return nil, fmt.Errorf("queue %d: %w", queue, errors.Join(err, sweepOrphanRingsLocked()))
	}
	xskRegistry.live[s.ino] = struct{}{}
	return s, nil
}

// newXSKSocket builds the ring views of a socket the library opened and
// hands the rx frames to the kernel.
func newXSKSocket(sock *xdp.Socket, queue int, sz xskSizes, flags uint16) (*xskSocket, error) {
	l := layoutOf(sock)
	s := &xskSocket{
		queue:     queue,
		sock:      sock,
		fd:        sock.FD(),
		umem:      l.umem,
		frameMask: uint64(sz.frameSize - 1),
		fill:      umemRing{prod: l.fillRing.Producer, cons: l.fillRing.Consumer, descs: l.fillRing.Descs},
		comp:      umemRing{prod: l.completionRing.Producer, cons: l.completionRing.Consumer, descs: l.completionRing.Descs},
		rx:        descRing{prod: l.rxRing.Producer, cons: l.rxRing.Consumer, descs: l.rxRing.Descs},
		tx:        descRing{prod: l.txRing.Producer, cons: l.txRing.Consumer, descs: l.txRing.Descs},
	}
	for _, r := range []struct {
		name string
		n    int
	}{{"fill", len(s.fill.descs)}, {"completion", len(s.comp.descs)}, {"rx", len(s.rx.descs)}, {"tx", len(s.tx.descs)}} {
		if r.n != sz.ringSize {
			return nil, fmt.Errorf("%s ring has %d descriptors, want %d", r.name, r.n, sz.ringSize)
		}
	}
	if len(s.umem) != sz.frames*sz.frameSize {
		return nil, fmt.Errorf("UMEM of %d bytes, want %d", len(s.umem), sz.frames*sz.frameSize)
	}
	mask := uint32(sz.ringSize - 1)
	s.fill.mask, s.comp.mask, s.rx.mask, s.tx.mask = mask, mask, mask, mask

	off, err := mmapOffsets(s.fd)
	if err != nil {
		return nil, err
	}
	s.regions = []ringRegion{
		regionOf(unsafe.Pointer(unsafe.SliceData(s.fill.descs)), off.Fr.Desc, sz.ringSize*8),
		regionOf(unsafe.Pointer(unsafe.SliceData(s.comp.descs)), off.Cr.Desc, sz.ringSize*8),
		regionOf(unsafe.Pointer(unsafe.SliceData(s.rx.descs)), off.Rx.Desc, sz.ringSize*int(unsafe.Sizeof(xdp.Desc{}))),
		regionOf(unsafe.Pointer(unsafe.SliceData(s.tx.descs)), off.Tx.Desc, sz.ringSize*int(unsafe.Sizeof(xdp.Desc{}))),
	}
	s.fillFlags = (*uint32)(unsafe.Add(s.regions[0].base, off.Fr.Flags))
	s.txFlags = (*uint32)(unsafe.Add(s.regions[3].base, off.Tx.Flags))
	s.needWakeup = flags&unix.XDP_USE_NEED_WAKEUP != 0
	var st unix.Stat_t
	if err := unix.Fstat(s.fd, &st); err != nil {
		return s, fmt.Errorf("fstat AF_XDP socket: %w", err)
	}
	s.ino = st.Ino
	if s.zeroCopy, err = boundZeroCopy(s.fd); err != nil {
		return s, err
	}

	// Frames [0, ringSize) go to the fill ring for rx, the rest are free
	// for tx.
	for i := range sz.ringSize {
		s.fill.descs[i] = uint64(i * sz.frameSize)
	}
	atomic.StoreUint32(s.fill.prod, atomic.LoadUint32(s.fill.prod)+uint32(sz.ringSize))
	s.fillLow.Store(uint32(sz.ringSize))
	s.deferred = make([]uint64, 0, sz.ringSize)
	s.free = make([]uint64, 0, sz.frames-sz.ringSize)
	for i := sz.frames - 1; i >= sz.ringSize; i-- {
		s.free = append(s.free, uint64(i*sz.frameSize))
	}
	return s, nil
}

// regionOf returns the mapping whose descriptors start at descs, descOff
// bytes into it, with descBytes bytes of descriptors: the region the
// library mapped.
func regionOf(descs unsafe.Pointer, descOff uint64, descBytes int) ringRegion {
	return ringRegion{base: unsafe.Add(descs, -int(descOff)), length: int(descOff) + descBytes}
}

// mmapOffsets returns the ring offsets of an AF_XDP socket.
func mmapOffsets(fd int) (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	size := uint32(unsafe.Sizeof(off))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return off, fmt.Errorf("getsockopt XDP_MMAP_OFFSETS: %w", errno)
	}
	return off, nil
}

// close closes the socket and releases its UMEM and rings. It must be
// called once, when no thread uses the socket. Sockets may be closed
// concurrently: the kernel waits for a grace period as it unbinds each.
func (s *xskSocket) close() error {
	err := s.sock.Close() // closes the fd, unmaps the UMEM
	if uerr := s.unmapRings(); uerr != nil {
		err = errors.Join(err, uerr)
	}
	// Only now, with its rings gone, may a sweep forget the socket.
	xskRegistry.mu.Lock()
	delete(xskRegistry.live, s.ino)
	xskRegistry.mu.Unlock()
	return err
}

// unmapRings unmaps the rings the library mapped. syscall.Munmap (the
// package the library mapped them with) forgets them too; a region it does
// not know is unmapped directly.
func (s *xskSocket) unmapRings() error {
	var errs []error
	for _, r := range s.regions {
		if r.length == 0 {
			continue
		}
		b := unsafe.Slice((*byte)(r.base), r.length)
		if err := syscall.Munmap(b); err != nil {
			if _, _, errno := unix.Syscall(unix.SYS_MUNMAP, uintptr(r.base), uintptr(r.length), 0); errno != 0 {
				errs = append(errs, fmt.Errorf("munmap ring: %w", errno))
			}
		}
	}
	s.regions = nil
	s.fill, s.comp, s.rx, s.tx = umemRing{}, umemRing{}, descRing{}, descRing{}
	return errors.Join(errs...)
}

// receive copies up to len(bufs) received frames into bufs[i][:sizes[i]]
// and hands their frames back to the fill ring. It returns the frames
// delivered and dropped (longer than their buffer). It is the rx side:
// one thread at a time.
func (s *xskSocket) receive(bufs [][]byte, sizes []int) (n, dropped int) {
	rxCons := atomic.LoadUint32(s.rx.cons)
	avail := atomic.LoadUint32(s.rx.prod) - rxCons
	if avail == 0 {
		// A driver that ran out of fill frames may wait for a wakeup
		// while the rx ring is empty.
		s.wakeFill()
		return 0, 0
	}
	fillProd := atomic.LoadUint32(s.fill.prod)
	size := uint32(len(s.fill.descs))
	room := size - (fillProd - atomic.LoadUint32(s.fill.cons))
	s.noteFill(size-room, avail)
	avail = min(avail, room, size)
	bytes := 0
	limit := min(len(bufs), len(sizes))
	for i := uint32(0); i < avail && n+dropped < limit; i++ {
		d := s.rx.descs[rxCons&s.rx.mask]
		rxCons++
		if f, ok := s.frame(d.Addr, d.Len); ok && len(f) <= len(bufs[n]) {
			sizes[n] = copy(bufs[n], f)
			bytes += sizes[n]
			n++
		} else {
			dropped++
		}
		s.fill.descs[fillProd&s.fill.mask] = d.Addr &^ s.frameMask
		fillProd++
	}
	atomic.StoreUint32(s.rx.cons, rxCons)
	atomic.StoreUint32(s.fill.prod, fillProd)
	s.wakeFill()
	if n > 0 {
		s.rxPackets.Add(uint64(n))
		s.rxBytes.Add(uint64(bytes))
	}
	if dropped > 0 {
		s.rxDropped.Add(uint64(dropped))
	}
	return n, dropped
}

// lend is receive without the copy: frames[i] is set to the UMEM bytes of
// the i-th frame, with the rest of its UMEM frame as capacity. The frames
// stay out of the fill ring until release gives them back; those that are
// not inside the UMEM are dropped and go back at once. It is the rx side:
// one thread at a time.
func (s *xskSocket) lend(frames [][]byte) (n, dropped int) {
	rxCons := atomic.LoadUint32(s.rx.cons)
	avail := atomic.LoadUint32(s.rx.prod) - rxCons
	if avail == 0 {
		s.wakeFill()
		return 0, 0
	}
	fillProd := atomic.LoadUint32(s.fill.prod)
	size := uint32(len(s.fill.descs))
	room := size - (fillProd - atomic.LoadUint32(s.fill.cons))
	s.noteFill(size-room, avail)
	avail = min(avail, room, size)
	bytes := 0
	for i := uint32(0); i < avail && n+dropped < len(frames); i++ {
		d := s.rx.descs[rxCons&s.rx.mask]
		rxCons++
		if f, ok := s.lentFrame(d.Addr, d.Len); ok {
			frames[n] = f
			bytes += len(f)
			n++
			continue
		}
		dropped++
		s.fill.descs[fillProd&s.fill.mask] = d.Addr &^ s.frameMask
		fillProd++
	}
	atomic.StoreUint32(s.rx.cons, rxCons)
	if dropped > 0 {
		atomic.StoreUint32(s.fill.prod, fillProd)
		s.rxDropped.Add(uint64(dropped))
	}
	if n > 0 {
		s.rxPackets.Add(uint64(n))
		s.rxBytes.Add(uint64(bytes))
	}
	return n, dropped
}

// lentFrame returns the UMEM bytes of a descriptor with the rest of its
// UMEM frame as capacity, if they are inside one frame.
func (s *xskSocket) lentFrame(addr uint64, n uint32) ([]byte, bool) {
	end := addr + uint64(n)
	frameEnd := addr&^s.frameMask + s.frameMask + 1
	if n == 0 || end < addr || end > frameEnd || frameEnd > uint64(len(s.umem)) {
		return nil, false
	}
	return s.umem[addr:end:frameEnd], true
}

// release puts lent frames back on the fill ring. A frame is known by the
// last byte of its capacity, which is the last byte of its UMEM frame;
// slices that end elsewhere are not the socket's and are ignored, as they
// would corrupt the ring. Frames that find no room, as far as the kernel
// has published what it took, wait in deferred and go first next time, so
// that none is lost to rx.
func (s *xskSocket) release(frames [][]byte) {
	if (len(frames) == 0 && len(s.deferred) == 0) || len(s.umem) == 0 {
		return
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(s.umem)))
	fillProd := atomic.LoadUint32(s.fill.prod)
	room := uint32(len(s.fill.descs)) - (fillProd - atomic.LoadUint32(s.fill.cons))
	posted := min(uint32(len(s.deferred)), room)
	for _, addr := range s.deferred[:posted] {
		s.fill.descs[fillProd&s.fill.mask] = addr
		fillProd++
	}
	room -= posted
	s.deferred = append(s.deferred[:0], s.deferred[posted:]...)
	for _, f := range frames {
		if cap(f) == 0 {
			continue
		}
		last := uintptr(unsafe.Pointer(&f[:cap(f)][cap(f)-1])) - base
		if last >= uintptr(len(s.umem)) || uint64(last)&s.frameMask != s.frameMask {
			continue
		}
		addr := uint64(last) &^ s.frameMask
		if room == 0 {
			if len(s.deferred) < cap(s.deferred) {
				s.deferred = append(s.deferred, addr)
			}
			continue
		}
		s.fill.descs[fillProd&s.fill.mask] = addr
		fillProd++
		room--
	}
	atomic.StoreUint32(s.fill.prod, fillProd)
	s.wakeFill()
}

// noteFill records that a poll found waiting frames on the rx ring and
// posted frames on the fill ring. The rest of the rx frames are held:
// as the kernel may take fill frames between the two readings, held can
// count a few frames the kernel is receiving into. It is the rx side.
func (s *xskSocket) noteFill(posted, waiting uint32) {
	if posted == 0 {
		s.fillEmpty.Add(1)
	}
	if posted < s.fillLow.Load() {
		s.fillLow.Store(posted)
	}
	if waiting > s.rxHigh.Load() {
		s.rxHigh.Store(waiting)
	}
	if held := uint32(len(s.fill.descs)) - min(posted+waiting, uint32(len(s.fill.descs))); held > s.heldHigh.Load() {
		s.heldHigh.Store(held)
	}
}

// fillPosted is the number of frames on the fill ring: posted to the
// kernel and not taken yet, as far as the kernel has published what it
// took.
func (s *xskSocket) fillPosted() int {
	return int(atomic.LoadUint32(s.fill.prod) - atomic.LoadUint32(s.fill.cons))
}

// rxReady reports whether received frames wait on the rx ring.
func (s *xskSocket) rxReady() bool {
	return atomic.LoadUint32(s.rx.prod) != atomic.LoadUint32(s.rx.cons)
}

// rxPending is the number of received frames on the rx ring.
func (s *xskSocket) rxPending() int {
	return int(atomic.LoadUint32(s.rx.prod) - atomic.LoadUint32(s.rx.cons))
}

// frame returns the UMEM bytes of a descriptor, if they are inside it.
func (s *xskSocket) frame(addr uint64, n uint32) ([]byte, bool) {
	end := addr + uint64(n)
	if end < addr || end > uint64(len(s.umem)) {
		return nil, false
	}
	return s.umem[addr:end:end], true
}

// transmit copies frames into tx frames, puts them on the tx ring and
// kicks the kernel. It returns how many frames it took from the front of
// frames; frames[n:] found no room (tx ring full). Taken frames that do not
// fit a UMEM frame are dropped and counted.
func (s *xskSocket) transmit(frames [][]byte) (int, error) {
	if !s.lockTx() {
		return 0, nil
	}
	defer s.txBusy.Store(false)
	s.reclaimLocked()
	budget := maxKicks
	room := s.txRoomLocked()
	for room < len(frames) && budget > 0 {
		if err := s.wakeTxLocked(&budget); err != nil {
			return 0, err
		}
		room = s.txRoomLocked()
	}
	k := min(room, len(frames))
	if k == 0 {
		return 0, nil
	}
	prod := atomic.LoadUint32(s.tx.prod)
	frameSize := int(s.frameMask) + 1
	queued, bytes, dropped := 0, 0, 0
	for _, f := range frames[:k] {
		if len(f) > frameSize || len(f) == 0 {
			dropped++
			continue
		}
		addr := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		copy(s.umem[addr:addr+uint64(len(f))], f)
		s.tx.descs[prod&s.tx.mask] = xdp.Desc{Addr: addr, Len: uint32(len(f))}
		prod++
		queued++
		bytes += len(f)
	}
	if dropped > 0 {
		s.txDropped.Add(uint64(dropped))
	}
	if queued == 0 {
		return k, nil
	}
	atomic.StoreUint32(s.tx.prod, prod)
	budget = max(budget, 1)
	if err := s.wakeTxLocked(&budget); err != nil {
		return 0, err
	}
	s.txPackets.Add(uint64(queued))
	s.txBytes.Add(uint64(bytes))
	return k, nil
}

// lockTx takes the tx side, or gives up after txLockSpins tries.
func (s *xskSocket) lockTx() bool {
	for range txLockSpins {
		if s.txBusy.CompareAndSwap(false, true) {
			return true
		}
		runtime.Gosched()
	}
	return false
}

// txRoomLocked is how many frames the tx ring and the free frames take.
func (s *xskSocket) txRoomLocked() int {
	size := uint32(len(s.tx.descs))
	used := atomic.LoadUint32(s.tx.prod) - atomic.LoadUint32(s.tx.cons)
	if used > size {
		return 0
	}
	return min(int(size-used), len(s.free))
}

// reclaimLocked takes the frames the kernel completed back onto the free
// stack.
func (s *xskSocket) reclaimLocked() {
	cons := atomic.LoadUint32(s.comp.cons)
	n := atomic.LoadUint32(s.comp.prod) - cons
	n = min(n, uint32(len(s.comp.descs)), uint32(cap(s.free)-len(s.free)))
	for range n {
		s.free = append(s.free, s.comp.descs[cons&s.comp.mask]&^s.frameMask)
		cons++
	}
	atomic.StoreUint32(s.comp.cons, cons)
}

// kickLocked asks the kernel to send what the tx ring holds (in copy mode
// nothing is sent without it), again while the kernel stops early and
// *budget allows, draining the completion ring in between. Each sendto
// spends one unit of *budget. Frames still on the ring after that go with
// the next kick (or the next poll of the socket, which also drives tx in
// copy mode).
func (s *xskSocket) kickLocked(budget *int) error {
	for *budget > 0 {
		*budget--
		s.txKicks.Add(1)
		errno := rawKick(s.fd)
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
		case unix.EAGAIN, unix.EBUSY:
			s.reclaimLocked()
			if atomic.LoadUint32(s.tx.prod) == atomic.LoadUint32(s.tx.cons) {
				return nil
			}
		case unix.ENETDOWN:
			return ErrPortDown
		case unix.ENXIO:
			s.dead.Store(true)
			return ErrPortDown
		default:
			return errno
		}
	}
	return nil
}

// rawKick is the sendto(2) that makes the kernel send what a tx ring
// holds. It never blocks (MSG_DONTWAIT), and in copy mode sends at most
// 32 frames, so it is made raw, without telling the Go scheduler: a poll
// thread under full load spends most of its time in these calls, and an
// adaptive one, locked to its OS thread for its naps, never passes
// through the scheduler. After 10 ms of that the runtime takes it for a
// hog, and its monitor would wake every 20 µs to take the P away during
// each of these calls, which the thread would have to win back after each.
func rawKick(fd int) unix.Errno {
	_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return errno
}

// kick sends what waits on the tx ring, if the tx side is free. It is for
// threads that are about to sleep.
func (s *xskSocket) kick() {
	if atomic.LoadUint32(s.tx.prod) == atomic.LoadUint32(s.tx.cons) || !s.txBusy.CompareAndSwap(false, true) {
		return
	}
	defer s.txBusy.Store(false)
	budget := maxKicks
	s.wakeTxLocked(&budget) //nolint:errcheck // the next Transmit reports it
}

// wakeTxLocked kicks the kernel (kickLocked) if it needs a wakeup to send
// what the tx ring holds: always without need_wakeup, else only when the
// kernel set the ring's flag. Otherwise it only takes the completed frames
// back.
func (s *xskSocket) wakeTxLocked(budget *int) error {
	if s.needWakeup && atomic.LoadUint32(s.txFlags)&unix.XDP_RING_NEED_WAKEUP == 0 {
		s.reclaimLocked()
		return nil
	}
	return s.kickLocked(budget)
}

// wakeFill wakes the kernel after frames went to the fill ring, if it asked
// for it (need_wakeup): a driver in zero-copy mode that ran out of fill
// frames waits for that. In copy mode the kernel takes fill frames as
// packets arrive and never asks.
func (s *xskSocket) wakeFill() {
	if !s.needWakeup || atomic.LoadUint32(s.fillFlags)&unix.XDP_RING_NEED_WAKEUP == 0 {
		return
	}
	s.fillWakeups.Add(1)
	rawWake(s.fd)
}

// rawWake is the recvfrom(2) that wakes the kernel for the fill ring. It
// never blocks (MSG_DONTWAIT), and is made raw for the reason rawKick is.
func rawWake(fd int) {
	unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), 0, 0, unix.MSG_DONTWAIT, 0, 0) //nolint:errcheck // a wakeup; EAGAIN is the usual answer
}

// busyPollUsecs is the SO_BUSY_POLL time of a socket that prefers busy
// polling. The port's system calls do not block, so a busy poll runs the
// device's NAPI once per call; the time only has to be non-zero.
const busyPollUsecs = 20

// preferBusyPoll makes the socket prefer busy polling, with budget frames
// per poll: the port's system calls on it (tx kicks, fill wakeups) then run
// the device's NAPI on the calling thread, and the softirq leaves the
// device to them. A kernel without busy polling (CONFIG_NET_RX_BUSY_POLL,
// Linux 5.11) refuses the options: the error says which.
func (s *xskSocket) preferBusyPoll(budget int) error {
	for _, o := range []struct {
		name     string
		opt, val int
	}{
		{"SO_BUSY_POLL", unix.SO_BUSY_POLL, busyPollUsecs},
		{"SO_PREFER_BUSY_POLL", unix.SO_PREFER_BUSY_POLL, 1},
		{"SO_BUSY_POLL_BUDGET", unix.SO_BUSY_POLL_BUDGET, budget},
	} {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, o.opt, o.val); err != nil {
			return fmt.Errorf("setsockopt %s: %w", o.name, err)
		}
	}
	s.busyPoll = true
	return nil
}

// napiID is the NAPI instance the socket last received from, 0 if none
// (a device without NAPI, such as a veth without an XDP program in native
// mode, cannot be busy polled).
func (s *xskSocket) napiID() uint32 {
	v, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_INCOMING_NAPI_ID)
	if err != nil {
		return 0
	}
	return uint32(v)
}

// boundZeroCopy reports whether the kernel bound the socket fd in zero-copy
// mode (XDP_OPTIONS).
func boundZeroCopy(fd int) (bool, error) {
	v, err := unix.GetsockoptInt(fd, unix.SOL_XDP, unix.XDP_OPTIONS)
	if err != nil {
		return false, fmt.Errorf("getsockopt XDP_OPTIONS: %w", err)
	}
	return v&unix.XDP_OPTIONS_ZEROCOPY != 0, nil
}

// checkError reports whether the kernel unbound the socket: it sets
// SO_ERROR to ENETDOWN when the device is unregistered, and poll(2) on an
// unbound socket never reports anything, so a sleeping thread would not
// learn of it. The error is latched, since reading SO_ERROR clears it.
func (s *xskSocket) checkError() bool {
	if s.dead.Load() {
		return true
	}
	v, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && v == 0 {
		return false
	}
	s.dead.Store(true)
	return true
}

// errorCheckEvery is how often, at most, a thread about to sleep reads
// SO_ERROR on a socket that received nothing since the last time.
const errorCheckEvery = 10 * time.Millisecond

// xskClock is the time base of errChecked: monotonic, from the package's
// start.
var xskClock = time.Now()

// checkErrorIdle is checkError for a thread about to sleep on the socket,
// which it does after every lull in its traffic: it reads SO_ERROR (a
// system call) only if the kernel delivered no frame to the rx ring since
// a thread last prepared to sleep on it, and then at most every
// errorCheckEvery. A socket that received frames meanwhile was bound
// then; if the kernel unbound it since, the sleep on it ends at the
// poller's timeout, as on any silent socket, and a later one reads
// SO_ERROR. The bound is for the silent port beside a busy one (the
// return path of one-way traffic): a poll thread sleeps on both after
// every lull of the busy one, up to a few thousand times a second (0.014
// reads per packet forwarded under iperf3 UDP, one per sleep), and a
// system call costs a few microseconds on a virtual machine, a clock read
// 0.2.
func (s *xskSocket) checkErrorIdle() bool {
	if s.dead.Load() {
		return true
	}
	prod := uint64(atomic.LoadUint32(s.rx.prod)) | 1<<32
	old := s.waitProd.Swap(prod)
	if old != 0 && old != prod {
		return false
	}
	now := int64(time.Since(xskClock))
	if old != 0 && now-s.errChecked.Load() < int64(errorCheckEvery) {
		return false
	}
	s.errChecked.Store(now)
	return s.checkError()
}

// kernelStats returns the kernel's counters of the socket.
func (s *xskSocket) kernelStats() (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	size := uint32(unsafe.Sizeof(st))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return st, fmt.Errorf("getsockopt XDP_STATISTICS: %w", errno)
	}
	return st, nil
}
