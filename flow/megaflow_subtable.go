package flow

import (
	"math/bits"
	"reflect"
	"unsafe"

	"github.com/ovsxdp/ovsxdp/flow/internal/hugepage"
)

// mfSubtable holds the megaflows that share one mask, in an open-addressing
// hash table of groups of eight slots, probed a group at a time (linear
// probing over groups). It keeps two arrays indexed by slot:
//
//   - ctrl holds one control byte per slot, eight to a word (one word a
//     group): ctrlEmpty, ctrlDeleted, or for a megaflow ctrlFull and 7
//     bits of its hash (its tag). A probe compares its tag with a whole
//     group's at once (tagLanes) and learns from the same word whether the
//     group has an empty slot, which ends a probe that found nothing. At a
//     byte a slot, the control bytes of a million megaflows take two
//     megabytes, which the CPU caches keep, and a probe for a key the
//     subtable does not hold (most probes, with several subtables) touches
//     nothing else: a tag differs with probability 127/128.
//   - the records hold, per slot, the megaflow pointer and then the
//     megaflow's masked key inline: only the nwords words the mask
//     covers, so comparing follows no pointer. A hit reads one record,
//     which shares a cache line with its neighbours but no other array:
//     one cache miss (two when the record straddles a line boundary, into
//     the adjacent line).
//
// The records are an array of a struct type made for nwords (recType), so
// that the collector sees the megaflow pointers, and are addressed with
// unsafe arithmetic within that array.
//
// The group comes from the hash's low bits and the tag from its top ones.
// Removal leaves ctrlDeleted in a slot of a group that has no empty slot,
// as a probe may have passed that group while it was full, and ctrlEmpty
// otherwise; insertions reuse deleted slots and rebuilding clears them.
//
// The fields a lookup reads come first, so that they share the subtable's
// first cache lines.
type mfSubtable struct {
	ctrl []uint64
	// recs points to the first slot's record; records are stride bytes
	// apart.
	recs   unsafe.Pointer
	stride uintptr
	// stage is the subtable's first stage (see stageOf): the in_port and
	// recirc_id bits that its mask matches exactly, and which of 256
	// values of theirs its megaflows have, so that a probe for a key none
	// has skips the subtable.
	stage stage
	// words lists the indexes of the mask's non-zero words, maskw their
	// values and seeds the words' wordSeeds, so that hashing and comparing
	// skip the words the mask ignores.
	nwords int
	words  [KeyWords]uint8
	maskw  [KeyWords]uint64
	seeds  [KeyWords]uint64
	hits   uint64

	n       int // megaflows
	deleted int // slots marked ctrlDeleted
	// staged counts the megaflows of each stage value (stage.has).
	staged [stageValues]uint32
	ranked bool
	mask   Key
}

// Control bytes.
const (
	ctrlEmpty   = 0x00
	ctrlDeleted = 0x01
	ctrlFull    = 0x80 // or'ed with 7 bits of the hash
)

// groupSlots is the number of slots in a group, one control byte each in
// a word.
const groupSlots = 8

// minGroupsLog2 is the log2 of a new subtable's number of groups.
const minGroupsLog2 = 0

const (
	laneLow  = 0x0101010101010101 // 1 in every byte
	laneHigh = 0x8080808080808080 // the top bit of every byte
	laneRest = 0x7f7f7f7f7f7f7f7f // the other bits
)

// zeroLanes returns the top bit of each byte of w that is zero (exactly:
// no carry crosses bytes).
func zeroLanes(w uint64) uint64 {
	return ^((w&laneRest + laneRest) | w | laneRest)
}

// tagLanes returns the top bit of each byte of the group's control word w
// that holds tag.
func tagLanes(w uint64, tag uint8) uint64 { return zeroLanes(w ^ laneLow*uint64(tag)) }

// freeLanes returns the top bit of each byte of w that is empty or
// deleted: free for an insertion.
func freeLanes(w uint64) uint64 { return ^w & laneHigh }

// lane returns the slot index within its group of the lowest lane set in
// m.
func lane(m uint64) uint64 { return uint64(bits.TrailingZeros64(m) >> 3) }

// recType returns the type of a record with nwords key words: the
// megaflow pointer, then the words.
func recType(nwords int) reflect.Type {
	return reflect.StructOf([]reflect.StructField{
		{Name: "MF", Type: reflect.TypeFor[*Megaflow]()},
		{Name: "Key", Type: reflect.ArrayOf(nwords, reflect.TypeFor[uint64]())},
	})
}

// stage is a subtable's first stage, as Open vSwitch's classifier has
// (staged lookup): the fields that almost every megaflow matches exactly
// and that split a datapath's traffic most, in_port and recirc_id, are
// checked before the rest of the key is hashed. A subtable whose mask
// matches one or both exactly keeps a bit for each value of theirs (as a
// hash into stageValues bits) that one of its megaflows has; a key whose
// bit is clear matches none of its megaflows, and the probe skips it
// without touching its table: with megaflows for different ports or
// recirculations in different subtables, a lookup probes only theirs.
//
// A lookup reads the two fields of its key once (stageKey); each
// subtable's check is then a mask, a multiply and a bit test. A stage
// that says nothing has every bit set.
type stage struct {
	// mask has all ones over the fields of stageKey that the subtable's
	// mask matches exactly, and zeros elsewhere.
	mask uint64
	has  [stageValues / 64]uint64
}

// stageValues is the number of a stage's bits.
const stageValues = 256

// stageKey returns the fields of k that stages check: in_port in the low
// 32 bits, recirc_id in the high ones.
func stageKey(k *Key) uint64 { return uint64(k.RecircID)<<32 | uint64(k.InPort) }

// newStage returns the stage of a subtable with the given mask.
func newStage(mask *Key) stage {
	var s stage
	if mask.InPort == ^uint32(0) {
		s.mask |= 0xffffffff
	}
	if mask.RecircID == ^uint32(0) {
		s.mask |= 0xffffffff << 32
	}
	if !s.on() {
		for i := range s.has {
			s.has[i] = ^uint64(0)
		}
	}
	return s
}

// on reports whether the stage says anything: its mask matches in_port or
// recirc_id exactly.
func (s *stage) on() bool { return s.mask != 0 }

// of returns the bit of sk's values in the stage (sk is a stageKey).
func (s *stage) of(sk uint64) uint64 { return (sk & s.mask) * 0x9e3779b97f4a7c15 >> 56 }

// mayHold reports whether a megaflow of the subtable may match the key
// whose stageKey is sk: the stage is off, or its bit for sk is set.
func (s *stage) mayHold(sk uint64) bool {
	b := s.of(sk)
	return s.has[b/64]>>(b%64)&1 != 0
}

// stageAdd counts mf, a new megaflow of st, in st's stage.
func (st *mfSubtable) stageAdd(mf *Megaflow) {
	if !st.stage.on() {
		return
	}
	k := mf.Key()
	b := st.stage.of(stageKey(&k))
	st.staged[b]++
	st.stage.has[b/64] |= 1 << (b % 64)
}

// stageRemove uncounts mf, a megaflow removed from st, from st's stage.
func (st *mfSubtable) stageRemove(mf *Megaflow) {
	if !st.stage.on() {
		return
	}
	k := mf.Key()
	b := st.stage.of(stageKey(&k))
	st.staged[b]--
	if st.staged[b] == 0 {
		st.stage.has[b/64] &^= 1 << (b % 64)
	}
}

func newMfSubtable(mask *Key) *mfSubtable {
	st := &mfSubtable{mask: *mask, stage: newStage(mask)}
	for i, w := range mask.Words() {
		if w != 0 {
			st.words[st.nwords] = uint8(i)
			st.maskw[st.nwords] = w
			st.seeds[st.nwords] = wordSeeds[i]
			st.nwords++
		}
	}
	st.stride = recType(st.nwords).Size()
	st.alloc(minGroupsLog2)
	return st
}

// alloc gives st empty arrays of 1<<log2 groups. It asks for huge pages
// for the large ones (hugepage.Advise): a lookup in a subtable of a
// million megaflows reads one record at random among tens of megabytes,
// and with 4 KiB pages pays a TLB miss, a page walk, on top of its cache
// miss. The advice is a system call of a few microseconds; it makes the
// rebuild's first writes fault 2 MiB pages rather than 4 KiB ones, which
// on its own measured faster. A rebuild runs on the poll thread that owns
// the classifier, whatever the pages.
func (st *mfSubtable) alloc(log2 uint) {
	st.ctrl = make([]uint64, 1<<log2)
	n := groupSlots << log2
	st.recs = reflect.MakeSlice(reflect.SliceOf(recType(st.nwords)), n, n).UnsafePointer()
	st.n, st.deleted = 0, 0
	// Advice not followed leaves the arrays as they are, on small pages.
	_ = hugepage.AdviseSlice(st.ctrl)
	_ = hugepage.Advise(st.recs, uintptr(n)*st.stride)
}

// bytes returns the size of st's control words and records.
func (st *mfSubtable) bytes() int { return len(st.ctrl)*8 + st.slots()*int(st.stride) }

// slots returns the number of slots.
func (st *mfSubtable) slots() int { return len(st.ctrl) * groupSlots }

// rec returns slot i's record; i must be below st.slots().
func (st *mfSubtable) rec(i uint64) unsafe.Pointer {
	return unsafe.Add(st.recs, uintptr(i)*st.stride)
}

// recMegaflow returns the megaflow of record r, nil for a free slot.
func recMegaflow(r unsafe.Pointer) *Megaflow { return *(**Megaflow)(r) }

// recKey returns the key words of record r.
func (st *mfSubtable) recKey(r unsafe.Pointer) []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Add(r, unsafe.Sizeof((*Megaflow)(nil)))), st.nwords)
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

// wordOf returns word w of k (k.Words()[w]); w must be below KeyWords, as
// a subtable's words are, which spares the bounds check.
func wordOf(k *Key, w uint8) uint64 {
	return *(*uint64)(unsafe.Add(unsafe.Pointer(k), uintptr(w)*8))
}

// recWord returns key word j of record r (st.recKey(r)[j]); j must be
// below its subtable's nwords.
func recWord(r unsafe.Pointer, j uintptr) uint64 {
	return *(*uint64)(unsafe.Add(r, unsafe.Sizeof((*Megaflow)(nil))+j*8))
}

// mixMasked is a masked key word's share of a hash (see hashKey): a
// 64×64→128-bit multiply folded to 64 bits.
func mixMasked(x uint64) uint64 {
	hi, lo := bits.Mul64(x, 0x9e3779b97f4a7c15)
	return hi ^ lo
}

// hashKey hashes k's bits under the subtable's mask, over the mask's
// non-zero words only. Each word is mixed on its own, with its seed, and
// the results are summed, so the multiplies do not wait for each other as
// a chained hash's would.
func (st *mfSubtable) hashKey(k *Key) uint64 {
	var h uint64
	for i := range st.nwords {
		h += mixMasked(wordOf(k, st.words[i])&st.maskw[i] ^ st.seeds[i])
	}
	return h
}

// tagOf returns the control byte of a megaflow with hash h.
func tagOf(h uint64) uint8 { return ctrlFull | uint8(h>>57) }

// home returns the group where the probe for hash h starts.
func (st *mfSubtable) home(h uint64) uint64 { return h & uint64(len(st.ctrl)-1) }

// homeLane returns the lane of its home group where a megaflow with hash h
// goes when that lane is free.
func homeLane(h uint64) uint64 { return h >> 32 & (groupSlots - 1) }

// touch reads the start of the record in the home slot of hash h, where a
// megaflow with that hash most likely is, and returns what it read. A
// lookup that expects to hit st calls it before find, so that the record's
// cache miss overlaps the one on the control word, which it would
// otherwise follow.
func (st *mfSubtable) touch(h uint64) uint64 {
	return *(*uint64)(st.rec(st.home(h)*groupSlots + homeLane(h)))
}

// fastWords is the most words a mask may cover for its subtable's
// lookups to go lookup's unrolled way: masks of a few words are the common
// ones (in_port, dl_type, nw_proto and recirc_id are four), and for them
// loops over the words cost more than the words.
const fastWords = 4

// lookup returns the megaflow of st that matches k, or nil: find(k,
// hashKey(k)). When touched is not nil it first reads the record in the
// home slot of k's hash (see touch) and folds what it read into *touched.
//
// For a mask of at most fastWords words it reads, masks and hashes each of
// k's words once, keeps them, and compares a slot whose tag matches with
// them whole, without a branch per word (a tag matches a key the slot
// does not hold once in 128 probes). The cases of its switches fall
// through from the widest, with no loop.
func (st *mfSubtable) lookup(k *Key, touched *uint64) *Megaflow {
	if st.nwords > fastWords {
		h := st.hashKey(k)
		if touched != nil {
			*touched ^= st.touch(h)
		}
		return st.find(k, h)
	}
	var h, x0, x1, x2, x3 uint64
	switch st.nwords {
	case 4:
		x3 = wordOf(k, st.words[3]) & st.maskw[3]
		h = mixMasked(x3 ^ st.seeds[3])
		fallthrough
	case 3:
		x2 = wordOf(k, st.words[2]) & st.maskw[2]
		h += mixMasked(x2 ^ st.seeds[2])
		fallthrough
	case 2:
		x1 = wordOf(k, st.words[1]) & st.maskw[1]
		h += mixMasked(x1 ^ st.seeds[1])
		fallthrough
	case 1:
		x0 = wordOf(k, st.words[0]) & st.maskw[0]
		h += mixMasked(x0 ^ st.seeds[0])
	}
	if touched != nil {
		*touched ^= st.touch(h)
	}
	tag := tagOf(h)
	gm := uint64(len(st.ctrl) - 1)
	g := h & gm
	for range len(st.ctrl) {
		w := st.ctrl[g]
		for m := tagLanes(w, tag); m != 0; m &= m - 1 {
			r := st.rec(g*groupSlots + lane(m))
			var d uint64
			switch st.nwords {
			case 4:
				d = recWord(r, 3) ^ x3
				fallthrough
			case 3:
				d |= recWord(r, 2) ^ x2
				fallthrough
			case 2:
				d |= recWord(r, 1) ^ x1
				fallthrough
			case 1:
				d |= recWord(r, 0) ^ x0
			}
			if d == 0 {
				return recMegaflow(r)
			}
		}
		if zeroLanes(w) != 0 {
			return nil
		}
		g = (g + 1) & gm
	}
	return nil
}

// find returns the megaflow of st whose key equals k's masked key, or nil;
// h is st.hashKey(k). A slot whose tag matches is compared whole, without
// a branch per word.
func (st *mfSubtable) find(k *Key, h uint64) *Megaflow {
	tag := tagOf(h)
	gm := uint64(len(st.ctrl) - 1)
	g := st.home(h)
	for range len(st.ctrl) {
		w := st.ctrl[g]
		for m := tagLanes(w, tag); m != 0; m &= m - 1 {
			r := st.rec(g*groupSlots + lane(m))
			var d uint64
			for j := range uintptr(st.nwords) {
				d |= wordOf(k, st.words[j])&st.maskw[j] ^ recWord(r, j)
			}
			if d == 0 {
				return recMegaflow(r)
			}
		}
		if zeroLanes(w) != 0 {
			return nil
		}
		g = (g + 1) & gm
	}
	return nil
}

// newMegaflow returns a megaflow of st, not yet inserted, for the packets
// that agree with k on st's mask; h is st.hashKey(k).
func (st *mfSubtable) newMegaflow(k *Key, h uint64) *Megaflow {
	n := st.nwords
	words := make([]uint64, 2*n) // one allocation for key and packet
	mf := &Megaflow{Mask: &st.mask, sub: st, hash: h, key: words[:n:n], packet: words[n:]}
	kw := k.Words()
	for j := range mf.key {
		mf.packet[j] = kw[st.words[j]]
		mf.key[j] = mf.packet[j] & st.maskw[j]
	}
	return mf
}

// insert puts mf into its home lane if free, or else into the first free
// slot of its probe sequence. The table must have room (see full).
func (st *mfSubtable) insert(mf *Megaflow) {
	gm := uint64(len(st.ctrl) - 1)
	g := st.home(mf.hash)
	for freeLanes(st.ctrl[g]) == 0 {
		g = (g + 1) & gm
	}
	free := freeLanes(st.ctrl[g])
	l := homeLane(mf.hash)
	if g != st.home(mf.hash) || free&(0x80<<(l*8)) == 0 {
		l = lane(free)
	}
	if uint8(st.ctrl[g]>>(l*8)) == ctrlDeleted {
		st.deleted--
	}
	st.setCtrl(g, l, tagOf(mf.hash))
	r := st.rec(g*groupSlots + l)
	copy(st.recKey(r), mf.key)
	*(**Megaflow)(r) = mf
	st.n++
}

// setCtrl sets the control byte of lane l of group g to c.
func (st *mfSubtable) setCtrl(g, l uint64, c uint8) {
	st.ctrl[g] = st.ctrl[g]&^(0xff<<(l*8)) | uint64(c)<<(l*8)
}

// full reports whether one more megaflow would take st past its load
// limit: 7/8 of the slots holding a megaflow or deleted, so that every
// probe ends within a few groups.
func (st *mfSubtable) full() bool {
	return (st.n+st.deleted+1)*8 > st.slots()*7
}

// grow rebuilds st's table: at twice the size, or at the same size when
// deleted slots rather than megaflows filled it.
func (st *mfSubtable) grow() {
	old := *st
	log2 := uint(bits.TrailingZeros(uint(len(st.ctrl))))
	if (st.n+1)*16 > st.slots()*7 {
		log2++
	}
	st.alloc(log2)
	for i := range uint64(old.slots()) {
		if mf := recMegaflow(old.rec(i)); mf != nil {
			st.insert(mf)
		}
	}
}

// each calls fn for each megaflow of st until fn returns false, and
// reports whether fn always returned true.
func (st *mfSubtable) each(fn func(*Megaflow) bool) bool {
	for i := range uint64(st.slots()) {
		if mf := recMegaflow(st.rec(i)); mf != nil && !fn(mf) {
			return false
		}
	}
	return true
}

// remove removes mf from st and reports whether it was there.
func (st *mfSubtable) remove(mf *Megaflow) bool {
	tag := tagOf(mf.hash)
	gm := uint64(len(st.ctrl) - 1)
	g := st.home(mf.hash)
	for range len(st.ctrl) {
		w := st.ctrl[g]
		for m := tagLanes(w, tag); m != 0; m &= m - 1 {
			l := lane(m)
			r := st.rec(g*groupSlots + l)
			if recMegaflow(r) != mf {
				continue
			}
			// A probe may have passed this group only if it never had an
			// empty slot.
			if zeroLanes(w) != 0 {
				st.setCtrl(g, l, ctrlEmpty)
			} else {
				st.setCtrl(g, l, ctrlDeleted)
				st.deleted++
			}
			*(**Megaflow)(r) = nil
			clear(st.recKey(r))
			st.n--
			return true
		}
		if zeroLanes(w) != 0 {
			return false
		}
		g = (g + 1) & gm
	}
	return false
}
