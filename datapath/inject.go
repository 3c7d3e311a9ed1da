package datapath

import (
	"sync/atomic"

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

// injectSlots is the number of frames an injection ring holds.
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
	deq   uint64 // only the consumer touches it
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
	s := &r.slots[r.deq&r.mask]
	if s.seq.Load() != r.deq+1 {
		return nil
	}
	return s
}

// release frees the slot peek returned.
func (r *injectRing) release(s *injectSlot) {
	s.port = nil
	s.hasTun = false
	s.seq.Store(r.deq + r.mask + 1)
	r.deq++
}

// inject puts a copy of frame into b's ring, received on port (with the
// tunnel metadata tun when it is not nil), and wakes b's first poll
// thread if it sleeps. It reports false when the ring is full or b takes
// no injected frames.
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

// injectCommit hands a slot injectReserve returned to b's first poll
// thread and wakes it if it sleeps.
func (b *Bridge) injectCommit(s *injectSlot, pos uint64) {
	b.injRing.commit(s, pos)
	b.pmds[0].rd.wakeIfSleeping()
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
			buf := p.bufs[n][:len(s.buf)]
			copy(buf, s.buf)
			p.sizes[n] = len(s.buf)
			p.info[n] = vport.RxInfo{}
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
