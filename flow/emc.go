package flow

import (
	"errors"
	"fmt"
	"hash/maphash"
	"unsafe"
)

// EMC is an exact-match cache in front of the megaflow classifier: it maps
// whole packet keys to megaflows. It is two-way set-associative, like Open
// vSwitch's: a key may live in one of two slots picked by different bits of
// its hash.
//
// Like Megaflows, an EMC belongs to one poll thread and is not safe for
// concurrent use.
type EMC struct {
	entries []emcEntry
	mask    uint64
	// invProb is the inverse probability of insertion: Insert stores one
	// key in invProb on average (1: always; 0: never).
	invProb uint32
	rng     uint64
	// touched keeps what touch read, so that the reads are not left out.
	touched uint64
}

// emcEntry is one slot: the hash and the packet words of a key (see
// emcFirstWord), and its megaflow.
type emcEntry struct {
	hash uint64
	mf   *Megaflow
	key  [emcWords]uint64
}

// The exact-match cache holds the keys of packets as they arrive, whose
// pipeline state (Metadata and the registers, the key's first words) is
// zero: it hashes, stores and compares only the words from emcFirstWord on,
// and never caches a key whose pipeline state is not zero.
const (
	emcFirstWord = int(unsafe.Offsetof(Key{}.InPort) / 8)
	emcWords     = KeyWords - emcFirstWord
	// emcHashWords are the packet words EMCHash reads: up to the one that
	// holds RecircID. The connection tracking words after it are zero in
	// every packet that arrives; a recirculated packet's are compared, not
	// hashed, so keys that differ only there share their two slots.
	emcHashWords = int(unsafe.Offsetof(Key{}.RecircID)/8) + 1 - emcFirstWord
)

// The pipeline state (Metadata, Regs) must be exactly the words before
// emcFirstWord.
var _ = [1]struct{}{}[unsafe.Offsetof(Key{}.InPort)-unsafe.Sizeof(Key{}.Metadata)-unsafe.Sizeof(Key{}.Regs)]

// arriving reports whether k's pipeline state is zero.
func arriving(k *Key) bool {
	var or uint64
	for _, w := range k.Words()[:emcFirstWord] {
		or |= w
	}
	return or == 0
}

// DefaultEMCEntries is the exact-match cache's default size, as in Open
// vSwitch.
const DefaultEMCEntries = 8192

// DefaultEMCInsertInvProb is the default inverse insertion probability, as
// Open vSwitch's emc-insert-inv-prob.
const DefaultEMCInsertInvProb = 100

// ErrEMCSize reports an exact-match cache size that is not a power of two
// of at least 2.
var ErrEMCSize = errors.New("exact-match cache size must be a power of two, at least 2")

// NewEMC returns an exact-match cache with the given number of entries (a
// power of two) that inserts one key in insertInvProb (0 disables the
// cache's insertions, 1 inserts every key).
func NewEMC(entries int, insertInvProb uint32) (*EMC, error) {
	if entries < 2 || entries&(entries-1) != 0 {
		return nil, fmt.Errorf("new emc with %d entries: %w", entries, ErrEMCSize)
	}
	return &EMC{
		entries: make([]emcEntry, entries),
		mask:    uint64(entries - 1),
		invProb: insertInvProb,
		rng:     0x853c49e6748fea9b,
	}, nil
}

// emcSeed makes the exact-match cache's hash differ from one process to
// the next, so that no fixed set of packets collides in every switch.
var emcSeed = maphash.MakeSeed()

// EMCHash returns the hash the exact-match cache indexes k by: the
// runtime's AES-based hash of the key's packet words (emcFirstWord on, up
// to RecircID's: emcHashWords), several times faster than Key.Hash on the
// whole key.
func EMCHash(k *Key) uint64 {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&k.Words()[emcFirstWord])), emcHashWords*8)
	return maphash.Bytes(emcSeed, b)
}

// slots returns the indexes of the two slots that may hold a key with hash
// h: one from its low bits, one from its high bits.
func (e *EMC) slots(h uint64) (uint64, uint64) {
	return h & e.mask, (h >> 32) & e.mask
}

// Lookup returns the megaflow cached for k (whose EMCHash is h), if it is
// alive and of generation gen; otherwise nil.
func (e *EMC) Lookup(k *Key, h, gen uint64) *Megaflow {
	if !arriving(k) {
		return nil
	}
	i, j := e.slots(h)
	if mf := e.entries[i].get(k, h); mf != nil {
		return liveAt(mf, gen)
	}
	if mf := e.entries[j].get(k, h); mf != nil {
		return liveAt(mf, gen)
	}
	return nil
}

// touch reads the two slots that may hold a key with hash h, so that a
// lookup that follows finds them in the CPU's cache. It returns what it
// read, for the caller to keep.
func (e *EMC) touch(h uint64) uint64 {
	i, j := e.slots(h)
	return e.entries[i].hash ^ e.entries[j].hash
}

func (en *emcEntry) get(k *Key, h uint64) *Megaflow {
	if en.hash != h || en.mf == nil {
		return nil
	}
	kw := (*[emcWords]uint64)(k.Words()[emcFirstWord:])
	for i := range kw {
		if kw[i] != en.key[i] {
			return nil
		}
	}
	return en.mf
}

func liveAt(mf *Megaflow, gen uint64) *Megaflow {
	if mf.dead || mf.Generation != gen {
		return nil
	}
	return mf
}

// Insert caches mf for k (whose EMCHash is h) with the cache's insertion
// probability. It reports whether it stored the entry.
func (e *EMC) Insert(k *Key, h uint64, mf *Megaflow) bool {
	if e.invProb == 0 {
		return false
	}
	if e.invProb > 1 && e.next()%uint64(e.invProb) != 0 {
		return false
	}
	e.Store(k, h, mf)
	return true
}

// Store caches mf for k (whose EMCHash is h) unconditionally, unless k's
// pipeline state is not zero. It reuses the key's slot if the key is
// cached, else an empty slot or one whose megaflow is dead, else evicts one
// of the two slots at random.
func (e *EMC) Store(k *Key, h uint64, mf *Megaflow) {
	if !arriving(k) {
		return
	}
	i, j := e.slots(h)
	a, b := &e.entries[i], &e.entries[j]
	var victim *emcEntry
	switch {
	case a.get(k, h) != nil:
		victim = a
	case b.get(k, h) != nil:
		victim = b
	case a.mf == nil || a.mf.dead:
		victim = a
	case b.mf == nil || b.mf.dead:
		victim = b
	case e.next()&1 == 0:
		victim = a
	default:
		victim = b
	}
	victim.hash = h
	victim.mf = mf
	victim.key = *(*[emcWords]uint64)(k.Words()[emcFirstWord:])
}

// next steps the cache's xorshift generator.
func (e *EMC) next() uint64 {
	x := e.rng
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	e.rng = x
	return x
}

// Flush empties the cache.
func (e *EMC) Flush() {
	clear(e.entries)
}
