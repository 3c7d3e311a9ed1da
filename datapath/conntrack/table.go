package conntrack

import (
	"sync"
	"sync/atomic"
)

// The connection table.
//
// It is split into shards, each with its own mutex, so poll threads that
// track different connections do not contend. A connection lives in the
// shard its original-direction tuple hashes to. Each direction's tuple
// has an entry in the index of the shard it hashes to; the hash is the
// same for a tuple and its reverse, so a connection without NAT has both
// entries in its own shard and a packet in either direction takes that
// shard's mutex and nothing else. A NAT connection's reply tuple usually
// hashes elsewhere: its entry there refers to the connection in its home
// shard, and a reply packet takes the two mutexes one after the other,
// never both at once.
//
// A connection's tuples never change while any index entry refers to its
// slot (a slot is reused only after both entries are gone), so they may be
// read under the mutex of either shard that indexes them; everything else
// in a connection belongs to its home shard's mutex.

const (
	chunkBits = 8
	chunkSize = 1 << chunkBits     // connections per slab chunk
	dirBits   = 7                  // chunks per directory block: 1<<dirBits
	maxChunks = 1 << (2 * dirBits) // chunks per shard: 4M connections
	slotBits  = 24                 // bits of a slot number in a ref
	shardBits = 7                  // bits of a shard number in a ref (at most 128 shards)
	refDirBit = 1 << 31            // set in a ref to a connection's reply direction
	minIndex  = 64                 // smallest index of a shard, in entries
)

// entry is one slot of a shard's open-addressed index: the high half of
// the tuple's hash and a reference to the connection and direction. A zero
// ref is an empty slot.
type entry struct {
	tag uint32
	ref uint32
}

func makeRef(shard, slot int, reply bool) uint32 {
	r := uint32(shard)<<slotBits | uint32(slot+1)
	if reply {
		r |= refDirBit
	}
	return r
}

// refParts splits a ref into the connection's shard and slot and whether
// it refers to the reply direction.
func refParts(r uint32) (shard, slot int, reply bool) {
	return int(r>>slotBits) & (1<<shardBits - 1), int(r&(1<<slotBits-1)) - 1, r&refDirBit != 0
}

type chunk [chunkSize]conn

type chunkDir [1 << dirBits]atomic.Pointer[chunk]

// shard is one part of the table.
type shard struct {
	id int // its number in Tracker.shards

	mu sync.Mutex // guards everything below and the connections in chunks

	index []entry // len is a power of two; linear probing, backward-shift deletion
	used  int     // occupied entries

	// chunks is a two-level directory of slab chunks: a chunk, once
	// there, never moves or goes, so a connection's address is stable
	// and other shards may reach its tuples without this mutex.
	chunks  [1 << dirBits]atomic.Pointer[chunkDir]
	nchunks int
	free    uint32 // first free slot + 1 (0: none); free slots link through conn.next
	unused  int    // slots at the end of the newest chunk never allocated
	live    int    // connections in this shard, alive or not yet reaped

	// zombies are dead connections whose reply entry lives in another
	// shard's index: their slots are freed once that entry is removed.
	zombies []uint32

	_ [64]byte // keep neighbouring shards' mutexes off one cache line
}

// connAt returns the connection in slot i. The chunk holding it exists.
func (s *shard) connAt(i int) *conn {
	ch := i >> chunkBits
	return &s.chunks[ch>>dirBits].Load()[ch&(1<<dirBits-1)].Load()[i&(chunkSize-1)]
}

// allocLocked returns a free slot, growing the slab by a chunk when
// needed, or -1 when the shard is full. A slot freed before is taken
// first, while its memory is likely still in the CPU's caches; then the
// newest chunk's slots that were never used, in order, so that a new
// chunk costs its allocation only, not a pass over all of its slots.
func (s *shard) allocLocked() int {
	if s.free != 0 {
		i := int(s.free - 1)
		c := s.connAt(i)
		s.free = c.next
		c.next = 0
		s.live++
		return i
	}
	if s.unused > 0 {
		i := s.nchunks<<chunkBits - s.unused
		s.unused--
		s.live++
		return i
	}
	if s.nchunks == maxChunks {
		return -1
	}
	ch := new(chunk)
	base := s.nchunks << chunkBits
	d := s.chunks[s.nchunks>>dirBits].Load()
	if d == nil {
		d = new(chunkDir)
		s.chunks[s.nchunks>>dirBits].Store(d)
	}
	d[s.nchunks&(1<<dirBits-1)].Store(ch)
	s.nchunks++
	s.unused = chunkSize - 1
	s.live++
	return base
}

// freeLocked returns slot i to the free list.
func (s *shard) freeLocked(i int) {
	c := s.connAt(i)
	*c = conn{next: s.free}
	s.free = uint32(i + 1)
	s.live--
}

// insertLocked adds an index entry.
func (s *shard) insertLocked(h uint64, ref uint32) {
	if (s.used+1)*4 > len(s.index)*3 {
		s.growLocked()
	}
	mask := len(s.index) - 1
	tag := uint32(h >> 32)
	for i := int(tag) & mask; ; i = (i + 1) & mask {
		if s.index[i].ref == 0 {
			s.index[i] = entry{tag: tag, ref: ref}
			s.used++
			return
		}
	}
}

func (s *shard) growLocked() {
	n := len(s.index) * 2
	if n < minIndex {
		n = minIndex
	}
	old := s.index
	s.index = make([]entry, n)
	mask := n - 1
	for _, e := range old {
		if e.ref == 0 {
			continue
		}
		for i := int(e.tag) & mask; ; i = (i + 1) & mask {
			if s.index[i].ref == 0 {
				s.index[i] = e
				break
			}
		}
	}
}

// removeLocked deletes the index entry with this tag and ref, if any.
func (s *shard) removeLocked(tag, ref uint32) bool {
	if len(s.index) == 0 {
		return false
	}
	mask := len(s.index) - 1
	for i := int(tag) & mask; s.index[i].ref != 0; i = (i + 1) & mask {
		if s.index[i].ref == ref && s.index[i].tag == tag {
			s.deleteAtLocked(i)
			return true
		}
	}
	return false
}

// deleteAtLocked empties index slot i and shifts back the entries after
// it that would otherwise become unreachable.
func (s *shard) deleteAtLocked(i int) {
	mask := len(s.index) - 1
	s.index[i] = entry{}
	s.used--
	for j := (i + 1) & mask; s.index[j].ref != 0; j = (j + 1) & mask {
		home := int(s.index[j].tag) & mask
		// Move j to i when its home is not in the cyclic range (i, j].
		if (j-home)&mask >= (j-i)&mask {
			s.index[i] = s.index[j]
			s.index[j] = entry{}
			i = j
		}
	}
}
