package datapath

import (
	"sync/atomic"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath/tunnel"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// This file is how a packet crosses from one bridge's poll threads to
// another's: a tunnel port's encapsulated packet goes into the underlay
// bridge as if its internal port had received it, and a decapsulated one
// into the tunnel port's bridge as received on the tunnel port. The
// sender copies the frame into a slot of the receiving bridge's injection
// ring; the receiving bridge's first poll thread drains the ring between
// its rx queues, counts each frame as received on its port and runs it
// through the same dispatch as a frame from a device. A full ring refuses
// the frame, and the sender counts the drop: nothing waits and nothing is
// lost uncounted.
//
// A poll thread that injected frames does not wake the receiving thread
// for them: at the end of its batch it runs the receiving thread's
// injected batch itself, on its own CPU, when that thread is not in a
// batch (help). Open vSwitch's userspace datapath likewise runs a
// tunnelled packet through both bridges on one thread. On a machine with
// few CPUs this saves a wake-up and a thread hand-off per batch, and a
// busy sender drains what it sends, so the ring does not fill while the
// receiving thread waits for a CPU. Only when the receiving thread is in
// a batch (it then takes the frames after it) does the sender leave them
// and wake it if it sleeps.
//
// When the bridges share their threads (Config.Threads, thread.go), their
// first poll threads run on one thread: what one of them injects into the
// other's bridge it always runs itself at the end of its batch (the other
// cannot be in a batch then), and nothing waits in the ring.

// injectSlots is the number of frames an injection ring holds. A ring
// that fills is a receiving thread that cannot keep up, not a burst: with
// 4,096 slots the tunnel benchmark dropped more frames at the ring, and
// pings waited longer behind the frames it held.
const injectSlots = 512

// injectRetries bounds a sender's attempts to claim a slot that another
// sender claimed first; past it the ring counts as full.
const injectRetries = 64

// injectState is a poll thread's view of the injected batch it
// dispatches: each frame's tunnel metadata, if it has any.
type injectState struct {
	on     bool // the batch being dispatched was injected
	tun    [vport.MaxBatch]tunnel.Header
	hasTun [vport.MaxBatch]bool
}

// injectSlot is one frame in an injection ring.
type injectSlot struct {
	seq  atomic.Uint64
	buf  []byte // bufSize bytes of capacity, allocated on the slot's first use
	port *Port  // the port the frame is received on
	// tun, when hasTun is set, is the outer header of a decapsulated
	// frame: the tunnel metadata its key gets (its Options and Inner are
	// not kept).
	tun    tunnel.Header
	hasTun bool
}

// injectRing is a bounded ring of frames that any poll thread of any
// bridge may put in and the owning bridge's first poll thread takes out
// (a bounded multi-producer queue with a sequence number per slot).
type injectRing struct {
	slots []injectSlot
	mask  uint64
	_     [56]byte
	enq   atomic.Uint64
	_     [56]byte
	// deq is written only by the consumer, the holder of the owning
	// thread's batch; the thread reads it outside its batch too, to see
	// whether frames wait before it sleeps (injectPending).
	deq atomic.Uint64
}

func newInjectRing() *injectRing {
	r := &injectRing{slots: make([]injectSlot, injectSlots), mask: injectSlots - 1}
	for i := range r.slots {
		r.slots[i].seq.Store(uint64(i))
	}
	return r
}

// reserve claims a free slot, or returns nil when the ring is full. The
// caller fills the slot and must commit it.
func (r *injectRing) reserve() (*injectSlot, uint64) {
	pos := r.enq.Load()
	for range injectRetries {
		s := &r.slots[pos&r.mask]
		seq := s.seq.Load()
		switch d := int64(seq - pos); {
		case d == 0:
			if r.enq.CompareAndSwap(pos, pos+1) {
				if s.buf == nil {
					// Once per slot: a bridge that no tunnel uses
					// holds no frame buffers.
					s.buf = make([]byte, 0, bufSize)
				}
				return s, pos
			}
			pos = r.enq.Load()
		case d < 0:
			return nil, 0 // full
		default:
			pos = r.enq.Load()
		}
	}
	return nil, 0
}

// commit hands a reserved slot to the consumer.
func (r *injectRing) commit(s *injectSlot, pos uint64) {
	s.seq.Store(pos + 1)
}

// peek returns the next frame the consumer may take, or nil.
func (r *injectRing) peek() *injectSlot {
	deq := r.deq.Load()
	s := &r.slots[deq&r.mask]
	if s.seq.Load() != deq+1 {
		return nil
	}
	return s
}

// release frees the slot peek returned.
func (r *injectRing) release(s *injectSlot) {
	s.port = nil
	s.hasTun = false
	deq := r.deq.Load()
	s.seq.Store(deq + r.mask + 1)
	r.deq.Store(deq + 1)
}

// inject puts a copy of frame into b's ring, received on port (with the
// tunnel metadata tun when it is not nil). It reports false when the ring
// is full or b takes no injected frames. The caller sees that b's first
// poll thread takes the frame (pmd.inject, Bridge.injectWake).
func (b *Bridge) inject(port *Port, frame []byte, tun *tunnel.Header) bool {
	r := b.injRing
	if r == nil || len(frame) > maxFrame {
		return false
	}
	s, pos := r.reserve()
	if s == nil {
		return false
	}
	s.buf = append(s.buf[:0], frame...)
	s.port = port
	if tun != nil {
		s.tun = *tun
		s.tun.Options, s.tun.Inner = nil, nil
		s.hasTun = true
	}
	r.commit(s, pos)
	return true
}

// inject is Bridge.inject from a poll thread: the frame's bridge is
// helped, or woken, at the end of the thread's batch.
func (p *pmd) inject(b *Bridge, port *Port, frame []byte, tun *tunnel.Header) bool {
	if !b.inject(port, frame, tun) {
		return false
	}
	p.injected(b)
	return true
}

// injectWake is Bridge.inject from outside a poll thread: it wakes b's
// first poll thread if it sleeps.
func (b *Bridge) injectWake(port *Port, frame []byte, tun *tunnel.Header) bool {
	if !b.inject(port, frame, tun) {
		return false
	}
	b.pmds[0].rd.wakeIfSleeping()
	return true
}

// injectReserve claims a slot of b's ring for a frame that the caller
// writes in place (tunnel output builds the encapsulation there). It
// returns nil when the ring is full.
func (b *Bridge) injectReserve() (*injectSlot, uint64) {
	if b.injRing == nil {
		return nil, 0
	}
	return b.injRing.reserve()
}

// injectCommit hands a slot that b.injectReserve returned to b's first
// poll thread, which is helped or woken at the end of p's batch.
func (p *pmd) injectCommit(b *Bridge, s *injectSlot, pos uint64) {
	b.injRing.commit(s, pos)
	p.injected(b)
}

// maxInjectTargets bounds the bridges one batch remembers injecting into:
// a tunnel bridge has one underlay, an underlay a few tunnel bridges.
// Past it, a bridge is woken at once rather than helped.
const maxInjectTargets = 4

// injectTargets are the bridges a poll thread injected frames into during
// its batch.
type injectTargets struct {
	n  int
	br [maxInjectTargets]*Bridge
}

// injected records that p's batch injected a frame into b.
func (p *pmd) injected(b *Bridge) {
	t := &p.injTo
	for i := range t.n {
		if t.br[i] == b {
			return
		}
	}
	if t.n == len(t.br) {
		b.pmds[0].rd.wakeIfSleeping()
		return
	}
	t.br[t.n] = b
	t.n++
}

// helpRounds bounds the injected batches a thread runs for another in
// one go: a sender that gets ahead of it leaves the rest to that thread.
const helpRounds = 4

// helpInjected ends p's batch: for each bridge in t, those the batch
// injected frames into, it runs that bridge's injected batches itself if
// the bridge's first poll thread is not in a batch, and otherwise wakes
// that thread if it sleeps (it then takes them itself). A thread never
// helps while it is helped, nor does a helped batch help further: it only
// wakes.
func (p *pmd) helpInjected(t *injectTargets, now time.Time) {
	for _, b := range t.br[:t.n] {
		q := b.pmds[0]
		if q == p || !p.helps(q, now) {
			q.rd.wakeIfSleeping()
		}
	}
}

// wakeInjected ends a helped batch: the bridges it injected into are
// woken, not helped.
func (p *pmd) wakeInjected() {
	t := &p.injTo
	for i := range t.n {
		t.br[i].pmds[0].rd.wakeIfSleeping()
		t.br[i] = nil
	}
	t.n = 0
}

// helps runs q's injected batches on p's thread, and reports whether q's
// ring is empty after them (false: q must take the rest). q's thread holds
// q.owner around each of its batches, so that q's state has one owner at a
// time; a helper only tries it, so that nothing ever waits for it.
func (p *pmd) helps(q *pmd, now time.Time) bool {
	if !q.owner.TryLock() {
		return false
	}
	defer q.owner.Unlock()
	if !q.live {
		return true // not started, or stopped: nothing takes the frames
	}
	// The helper's own read-side record: q's thread may be inside its
	// own, asleep.
	q.helper.goid.Store(p.stall.goid.Load())
	for range helpRounds {
		q.helper.rd.enter()
		n := q.pollHelped(now)
		q.helper.rd.leave()
		q.counters.helped.Add(uint64(n))
		if q.br.injRing.peek() == nil {
			return true
		}
	}
	return false
}

// pollHelped is q's poll of its injected frames only, run by a helper.
func (p *pmd) pollHelped(now time.Time) int {
	p.begin(now)
	n := p.pollInjected()
	p.end()
	p.wakeInjected()
	return n
}

// injectPending reports whether the thread's bridge has injected frames
// waiting for it (only the first poll thread takes them).
func (p *pmd) injectPending() bool {
	r := p.br.injRing
	return p.id == 0 && r != nil && r.peek() != nil
}

// pollInjected takes up to a batch of injected frames, in runs of one
// port, and dispatches them as received on that port; it returns how many
// it handled.
func (p *pmd) pollInjected() int {
	r := p.br.injRing
	if r == nil || r.peek() == nil {
		return 0
	}
	total := 0
	for total < vport.MaxBatch {
		s := r.peek()
		for s != nil && s.port == nil { // a slot whose encapsulation failed
			r.release(s)
			s = r.peek()
		}
		if s == nil {
			break
		}
		port := s.port
		n := 0
		for s != nil && s.port == port && n < vport.MaxBatch-total {
			// The slot's buffer and the thread's trade places, rather
			// than the frame being copied: both have bufSize bytes.
			size := len(s.buf)
			p.bufs[n], s.buf = s.buf[:maxFrame], p.bufs[n][:0]
			p.sizes[n] = size
			p.inj.tun[n] = s.tun
			p.inj.hasTun[n] = s.hasTun
			n++
			r.release(s)
			s = r.peek()
		}
		total += n
		p.dispatchInjected(port, n)
	}
	return total // more than a batch: the next poll goes on
}

// dispatchInjected counts n injected frames, in the thread's buffers, as
// received on port and dispatches them. A port that left the bridge
// meanwhile drops them as port-gone.
func (p *pmd) dispatchInjected(port *Port, n int) {
	p.tally.packets += uint64(n)
	c := &port.counters[p.id]
	bytes := 0
	for _, size := range p.sizes[:n] {
		bytes += size
	}
	c.rxPackets.Add(uint64(n))
	c.rxBytes.Add(uint64(bytes))
	if p.tbl.lookup(port.OFPort) != port {
		c.drops[DropPortGone].Add(uint64(n))
		return
	}
	p.sameInfo, p.rxInfo = true, vport.RxInfo{} // no rx queue recorded
	p.inj.on = true
	p.dispatch(port, n)
	p.inj.on = false
	p.rxDone()
}

// injectedKey gives the key of injected frame i its tunnel metadata, if it
// was decapsulated.
func (p *pmd) injectedKey(k *flow.Key, i int) {
	if p.inj.hasTun[i] {
		p.inj.tun[i].ToKey(k)
	}
}
