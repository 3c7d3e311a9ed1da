package vport

import (
	"slices"
	"sync/atomic"
	"testing"

	"github.com/asavie/xdp"
)

// ringKernel plays the kernel's side of a socket's fill and rx rings on
// memory of the test's: it takes frames from the fill ring into a cached
// consumer index, writes them to the rx ring, and publishes the rx ring's
// producer index, and only later (publishFill) the fill ring's consumer
// index, as the kernel's xsk_flush does.
type ringKernel struct {
	s          *xskSocket
	cachedCons uint32
	rxProd     uint32
}

// newRingSocket is a socket on the test's memory, with ring descriptors
// per ring and frames of frameSize bytes, its rx frames posted as open
// posts them.
func newRingSocket(ring, frameSize int) (*xskSocket, *ringKernel) {
	var fillProd, fillCons, rxProd, rxCons uint32
	mask := uint32(ring - 1)
	s := &xskSocket{
		umem:      make([]byte, 2*ring*frameSize),
		frameMask: uint64(frameSize - 1),
		fill:      umemRing{prod: &fillProd, cons: &fillCons, descs: make([]uint64, ring), mask: mask},
		rx:        descRing{prod: &rxProd, cons: &rxCons, descs: make([]xdp.Desc, ring), mask: mask},
		deferred:  make([]uint64, 0, ring),
	}
	for i := range ring {
		s.fill.descs[i] = uint64(i * frameSize)
	}
	atomic.StoreUint32(s.fill.prod, uint32(ring))
	return s, &ringKernel{s: s}
}

// receive takes up to n frames from the fill ring and writes them to the
// rx ring, publishing the rx ring but not the fill ring.
func (k *ringKernel) receive(n int) {
	s := k.s
	for range n {
		if k.cachedCons == atomic.LoadUint32(s.fill.prod) {
			break
		}
		addr := s.fill.descs[k.cachedCons&s.fill.mask]
		k.cachedCons++
		s.rx.descs[k.rxProd&s.rx.mask] = xdp.Desc{Addr: addr, Len: 60}
		k.rxProd++
	}
	atomic.StoreUint32(s.rx.prod, k.rxProd)
}

func (k *ringKernel) publishFill() { atomic.StoreUint32(k.s.fill.cons, k.cachedCons) }

// lendAll lends what the rx ring holds, as far as release will find
// room for it.
func lendAll(t *testing.T, s *xskSocket, ring int) [][]byte {
	t.Helper()
	frames := make([][]byte, ring)
	n, dropped := s.lend(frames)
	if dropped != 0 {
		t.Fatalf("lend dropped %d frames", dropped)
	}
	return frames[:n]
}

// TestXSKReleaseDefersWithoutRoom holds lent frames (as output batches do
// until they flush) while the poll thread lends and releases others in a
// moment when the kernel has taken frames from the fill ring but not yet
// published its consumer index. The held frames then find the fill ring
// full as far as the port can tell; none may be lost: each of the
// socket's rx frames is back on the fill ring once the kernel has
// published and the port has released again.
func TestXSKReleaseDefersWithoutRoom(t *testing.T) {
	const ring, frameSize = 4, 2048
	s, k := newRingSocket(ring, frameSize)

	k.receive(2)
	k.publishFill()
	held := lendAll(t, s, ring)
	if len(held) != 2 {
		t.Fatalf("lent %d frames, want 2", len(held))
	}
	// The kernel takes the last two frames and publishes the rx ring
	// only: the port lends them, and gives them back at once.
	k.receive(2)
	next := lendAll(t, s, ring)
	if len(next) != 2 {
		t.Fatalf("lent %d frames, want 2", len(next))
	}
	s.release(next)
	// The held frames come back before the kernel publishes.
	s.release(held)
	// As far as the kernel has published, the fill ring is full: the
	// held frames found no room.
	if n := s.fillPosted(); n != ring {
		t.Fatalf("%d frames posted as the kernel published, want %d (the ring full)", n, ring)
	}
	k.publishFill()
	// The kernel fills the two frames it has, and publishes this time;
	// the port lends and releases them, and the deferred ones go with
	// them.
	k.receive(ring)
	k.publishFill()
	s.release(lendAll(t, s, ring))
	prod, cons := atomic.LoadUint32(s.fill.prod), atomic.LoadUint32(s.fill.cons)
	var posted []uint64
	for i := cons; i != prod; i++ {
		posted = append(posted, s.fill.descs[i&s.fill.mask])
	}
	slices.Sort(posted)
	want := []uint64{0, frameSize, 2 * frameSize, 3 * frameSize}
	if !slices.Equal(posted, want) {
		t.Errorf("fill ring holds frames %v, want every rx frame %v", posted, want)
	}
}
