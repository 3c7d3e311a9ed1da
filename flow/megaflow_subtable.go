package flow

import "math/bits"

// A subtable's hash table grows beyond 3/8 full while it has fewer than
// denseSlots slots, and beyond 1/2 full from then on. Most probes are
// misses (a packet is in one subtable and probes the ones ranked before
// it), and a miss scans to an empty slot: a sparse table ends most scans at
// the home slot, which counts while the table sits in the caches. A large
// table is dominated by the cache miss on the home slot instead, so it
// spends less memory.
const denseSlots = 1 << 16

// minSlotsLog2 is the log2 of a new subtable's number of slots.
const minSlotsLog2 = 3

// mfSubtable holds the megaflows that share one mask, in an open-addressing
// hash table (linear probing) kept as three parallel arrays indexed by slot:
//
//   - tags holds 32 bits of each megaflow's hash, never 0; 0 marks an empty
//     slot. A probe scans tags, 16 to a cache line, and rarely looks
//     further when a tag differs.
//   - keys holds each megaflow's masked key inline, nwords words a slot:
//     only the words the mask covers. Comparing needs no pointer to be
//     followed first.
//   - mfs holds the megaflows themselves, for the caller.
//
// A hit therefore loads one line of each array, and the three addresses
// depend only on the hash, so the loads can overlap instead of waiting for
// each other, where a table of pointers to megaflows has to load the slot
// before it can load the megaflow's key. The slot comes from the hash's low
// bits and the tag from its high ones, so that entries sharing a probe run
// still have independent tags.
//
// The fields a lookup reads come first, so that they share the subtable's
// first cache lines.
type mfSubtable struct {
	tags []uint32
	keys []uint64
	mfs  []*Megaflow
	// words lists the indexes of the mask's non-zero words and maskw their
	// values, so that hashing and comparing skip the words the mask
	// ignores.
	nwords int
	words  [KeyWords]uint8
	maskw  [KeyWords]uint64
	hits   uint64

	n      int
	ranked bool // in subs
	mask   Key
}

func newMfSubtable(mask *Key) *mfSubtable {
	st := &mfSubtable{mask: *mask}
	for i, w := range mask.Words() {
		if w != 0 {
			st.words[st.nwords] = uint8(i)
			st.maskw[st.nwords] = w
			st.nwords++
		}
	}
	st.alloc(minSlotsLog2)
	return st
}

// alloc gives st empty arrays of 1<<log2 slots.
func (st *mfSubtable) alloc(log2 uint) {
	n := 1 << log2
	st.tags = make([]uint32, n)
	st.keys = make([]uint64, n*st.nwords)
	st.mfs = make([]*Megaflow, n)
	st.n = 0
}

// wordSeeds make the same value hash differently in different key words.
var wordSeeds = [KeyWords]uint64{
	0x243f6a8885a308d3, 0x13198a2e03707344, 0xa4093822299f31d0, 0x082efa98ec4e6c89,
	0x452821e638d01377, 0xbe5466cf34e90c6c, 0xc0ac29b7c97c50dd, 0x3f84d5b5b5470917,
	0x9216d5d98979fb1b, 0xd1310ba698dfb5ac, 0x2ffd72dbd01adfb7, 0xb8e1afed6a267e96,
	0xba7c9045f12c7f99, 0x24a19947b3916cf7, 0x0801f2e2858efc16, 0x636920d871574e69,
	0xa458fea3f4933d7e, 0x0d95748f728eb658, 0x718bcd5882154aee, 0x7b54a41dc25a59b5,
	0x9c30d5392af26013, 0xc5d1b023286085f0, 0xca417918b8db38ef, 0x8e79dcb0603a180e,
}

// hashKey hashes k's bits under the subtable's mask, over the mask's
// non-zero words only. Each word is mixed on its own (a 64×64→128-bit
// multiply folded to 64 bits) and the results are summed, so the
// multiplies do not wait for each other as a chained hash's would.
func (st *mfSubtable) hashKey(k *Key) uint64 {
	kw := k.Words()
	var h uint64
	for i := range st.nwords {
		w := st.words[i]
		hi, lo := bits.Mul64(kw[w]&st.maskw[i]^wordSeeds[w], 0x9e3779b97f4a7c15)
		h += hi ^ lo
	}
	return h
}

// tagOf returns the tag stored for hash h: its high 32 bits, never 0.
func tagOf(h uint64) uint32 { return uint32(h>>32) | 1 }

// home returns the slot where the probe for hash h starts.
func (st *mfSubtable) home(h uint64) uint64 { return h & uint64(len(st.tags)-1) }

// find returns the megaflow of st whose key equals k's masked key, or nil;
// h is st.hashKey(k).
func (st *mfSubtable) find(k *Key, h uint64) *Megaflow {
	kw := k.Words()
	tag := tagOf(h)
	m := uint64(len(st.tags) - 1)
	nw := uint64(st.nwords)
	for i, probes := st.home(h), 0; probes < len(st.tags); i, probes = (i+1)&m, probes+1 {
		t := st.tags[i]
		if t == 0 {
			return nil
		}
		if t != tag {
			continue
		}
		sk := st.keys[i*nw : i*nw+nw]
		j := 0
		for ; j < len(sk); j++ {
			if kw[st.words[j]]&st.maskw[j] != sk[j] {
				break
			}
		}
		if j == len(sk) {
			return st.mfs[i]
		}
	}
	return nil
}

// insert puts mf into the first free slot of its probe sequence. The table
// must have a free slot.
func (st *mfSubtable) insert(mf *Megaflow) {
	m := uint64(len(st.tags) - 1)
	i := st.home(mf.hash)
	for st.tags[i] != 0 {
		i = (i + 1) & m
	}
	st.put(i, mf)
	st.n++
}

// put stores mf in slot i.
func (st *mfSubtable) put(i uint64, mf *Megaflow) {
	nw := uint64(st.nwords)
	kw := mf.Key.Words()
	sk := st.keys[i*nw : i*nw+nw]
	for j := range sk {
		sk[j] = kw[st.words[j]]
	}
	st.tags[i] = tagOf(mf.hash)
	st.mfs[i] = mf
}

// move moves slot j's megaflow into slot i and empties slot j.
func (st *mfSubtable) move(i, j uint64) {
	nw := uint64(st.nwords)
	copy(st.keys[i*nw:i*nw+nw], st.keys[j*nw:j*nw+nw])
	st.tags[i], st.mfs[i] = st.tags[j], st.mfs[j]
	st.clearSlot(j)
}

func (st *mfSubtable) clearSlot(i uint64) {
	nw := uint64(st.nwords)
	clear(st.keys[i*nw : i*nw+nw])
	st.tags[i], st.mfs[i] = 0, nil
}

// full reports whether one more megaflow would take st past its load
// limit.
func (st *mfSubtable) full() bool {
	if len(st.tags) >= denseSlots {
		return (st.n+1)*2 > len(st.tags)
	}
	return (st.n+1)*8 > len(st.tags)*3
}

func (st *mfSubtable) grow() {
	old := st.mfs
	st.alloc(uint(bits.Len(uint(len(old)))))
	for _, mf := range old {
		if mf != nil {
			st.insert(mf)
		}
	}
}

// remove removes mf from st and reports whether it was there.
func (st *mfSubtable) remove(mf *Megaflow) bool {
	m := uint64(len(st.tags) - 1)
	i := st.home(mf.hash)
	for probes := 0; st.mfs[i] != mf; probes++ {
		if st.tags[i] == 0 || probes == len(st.tags) {
			return false // not in this table
		}
		i = (i + 1) & m
	}
	// Backward-shift deletion: move later members of the probe run into the
	// hole so that lookups never stop early at it.
	st.clearSlot(i)
	for j := (i + 1) & m; st.tags[j] != 0; j = (j + 1) & m {
		home := st.home(st.mfs[j].hash)
		// The entry at j may fill the hole at i unless its home lies
		// cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			st.move(i, j)
			i = j
		}
	}
	st.n--
	return true
}
