package flow

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
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
	// extras holds, beside entries[i], the extra words of the key in
	// entries[i] when that key has any (see emcEntry); it is read only for
	// such keys.
	extras []emcExtra
	mask   uint64
	// invProb is the inverse probability of insertion: Insert stores one
	// key in invProb on average (1: always; 0: never). insertBelow is
	// the bound the generator's next value must stay under for a key to
	// be stored, 2^64/invProb, so that the draw costs a compare where a
	// 64-bit modulo would take a division for every megaflow hit.
	invProb     uint32
	insertBelow uint64
	rng         uint64
	// touched keeps what touch read, so that the reads are not left out.
	touched uint64
	// stores counts Store and Flush calls, so that a batch lookup can tell
	// whether an answer it found ahead still holds.
	stores uint64
}

// The exact-match cache holds the keys of packets as they arrive, whose
// pipeline state (Metadata and the registers, the key's first words) is
// zero: it never caches a key whose pipeline state is not zero, and
// otherwise keeps and compares every word from emcFirstWord on. It splits
// those words in two:
//
//   - the common words, which any packet may have non-zero: in_port, the
//     IPv4 addresses, the IPv6 flow label, and the words from TunFlags
//     (which shares its word with the IPv6 source) up to PktMark;
//   - the extra words, which are zero in a packet that arrived without
//     tunnel metadata and was not recirculated: the tunnel words from TunID
//     up to TunFlags, and the words from PktMark on (pkt_mark, conj_id,
//     recirc_id, the connection tracking state and dp_hash).
//
// A slot (emcEntry, two cache lines) keeps the common words; a key with
// extra words also keeps them in the parallel extras slot, and its entry
// says so, so that a packet without any touches only its two slots' two
// lines each.
const (
	emcFirstWord  = int(unsafe.Offsetof(Key{}.InPort) / 8)
	emcTunWord    = int(unsafe.Offsetof(Key{}.TunID) / 8)
	emcTunEndWord = int(unsafe.Offsetof(Key{}.TunFlags) / 8)
	emcExtraWord  = int(unsafe.Offsetof(Key{}.PktMark) / 8)

	emcTunWords    = emcTunEndWord - emcTunWord
	emcCommonWords = emcTunWord - emcFirstWord + emcExtraWord - emcTunEndWord
	emcExtraWords  = emcTunWords + KeyWords - emcExtraWord
)

// The layout the cache relies on, checked at compile time: the pipeline
// state is exactly the words before emcFirstWord; the tunnel words and the
// extra words from PktMark on start on word boundaries; a slot is two
// 64-byte cache lines.
var (
	_ = [1]struct{}{}[unsafe.Offsetof(Key{}.InPort)-unsafe.Sizeof(Key{}.Metadata)-unsafe.Sizeof(Key{}.Regs)]
	_ = [1]struct{}{}[unsafe.Offsetof(Key{}.TunID)%8]
	_ = [1]struct{}{}[unsafe.Offsetof(Key{}.TunFlags)%8]
	_ = [1]struct{}{}[unsafe.Offsetof(Key{}.PktMark)%8]
	_ = [1]struct{}{}[unsafe.Sizeof(emcEntry{})-128]
)

// emcEntry is one slot: the tag of its key (see emcTag; 0 in an empty
// slot), its megaflow, and its key's common words.
type emcEntry struct {
	tag uint64
	mf  *Megaflow
	key [emcCommonWords]uint64
}

// emcExtra is the extra words of a slot's key, when its tag says it has
// some: the tunnel words, then the words from PktMark on.
type emcExtra [emcExtraWords]uint64

// emcTag is what a slot keeps of a key with hash h: the hash, whose low bit
// tells whether the key has extra words, so that a key without them never
// matches a slot whose key has them however alike their common words.
func emcTag(h uint64, extra bool) uint64 {
	if extra {
		return h | 1
	}
	return h &^ 1
}

// pipelineState returns the OR of w's pipeline state words: 0 when the
// key's packet has just arrived.
func pipelineState(w *[KeyWords]uint64) uint64 {
	return or8((*[8]uint64)(w[:8])) | w[8]
}

// or8 returns the OR of p's words, as a tree rather than a chain, so that
// the ORs do not wait for one another: every lookup and store of the
// exact-match cache ORs 29 of a key's words (pipelineState, probeWith).
func or8(p *[8]uint64) uint64 {
	return (p[0] | p[1]) | (p[2] | p[3]) | ((p[4] | p[5]) | (p[6] | p[7]))
}

// The word counts pipelineState and probeWith are written for (checked at
// compile time).
var (
	_ = [1]struct{}{}[emcFirstWord-9]
	_ = [1]struct{}{}[emcTunWords-6]
	_ = [1]struct{}{}[KeyWords-emcExtraWord-14]
)

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
		entries:     make([]emcEntry, entries),
		extras:      make([]emcExtra, entries),
		mask:        uint64(entries - 1),
		invProb:     insertInvProb,
		insertBelow: insertBelow(insertInvProb),
		rng:         0x853c49e6748fea9b,
	}, nil
}

// insertBelow returns the bound below which one value of the cache's
// generator in invProb falls (see EMC.insertBelow): all of them for 0 and
// 1, which insert never draws for.
func insertBelow(invProb uint32) uint64 {
	if invProb <= 1 {
		return ^uint64(0)
	}
	return ^uint64(0) / uint64(invProb)
}

// emcSecret keys EMCHash: random per process, so that no fixed set of
// packets collides in every switch.
var emcSecret = func() (s [emcCommonWords + 14]uint64) {
	for i := range s {
		s[i] = rand.Uint64()
	}
	return s
}()

// mum multiplies a and b into 128 bits and folds the halves.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// EMCHash returns the hash the exact-match cache indexes k by (see
// emcProbeOf).
func EMCHash(k *Key) uint64 { return emcProbeOf(k).h }

// emcProbe is what the exact-match cache works out of a key before it
// looks the key up or stores it: its hash (EMCHash), whether it has extra
// words, its tag (emcTag), and whether the cache may hold it at all (its
// pipeline state is zero). A batch lookup works it out once per key, in
// the pass that hashes the run, instead of in each probe and insertion.
type emcProbe struct {
	h, tag uint64
	extra  bool
	ok     bool
}

// emcProbeOf returns k's probe, reading each of k's words once. The hash
// reads the common words that emcCommonHashes reads and, when the key has any, its tunnel
// words, tun_metadata, pkt_mark, conj_id and recirc_id, and it multiplies
// them a pair at a time, each pair with its own random words, so that the
// multiplications do not wait for one another. The connection tracking
// words are compared, not hashed: keys that differ only there share their
// two slots. The tun_metadata words are hashed because, unlike the
// connection tracking state (a few values per flow), they are the only
// difference between the packets of many flows: tunnels that carry a
// logical port in an option do, and keys that differ in it alone would all
// fight over two slots. The extra words that the hash leaves out (the
// rest of recirc_id's word, the connection tracking words and dp_hash's) are ORed
// beside the ones it tests, so that the probe's extra costs a few ORs
// more than the hash, and a second reading of the key is gone.
func emcProbeOf(k *Key) emcProbe {
	return emcProbeFrom(k, emcPlainProbe(k).h)
}

// emcProbeFrom is emcProbeOf for a key whose common words' hash
// (emcCommonHashes) is h.
func emcProbeFrom(k *Key, h uint64) emcProbe {
	w := k.Words()
	s := &emcSecret
	t := (*[emcTunWords]uint64)(w[emcTunWord:emcTunEndWord])
	x := (*[KeyWords - emcExtraWord]uint64)(w[emcExtraWord:])
	r := uint64(k.RecircID)
	m := (*[emcTunMetaWords]uint64)(w[emcTunMetaWord:])
	hashed := (t[0] | t[1]) | (t[2] | t[3]) | (t[4] | t[5]) | (x[0] | r) | (m[0] | m[1] | m[2])
	if hashed != 0 {
		// The common words' hash, mixed once more with these.
		h = mum((h+mum(t[0]^s[14], t[1]^s[15])+mum(t[2]^s[16], t[3]^s[17])+
			mum(t[4]^s[18], t[5]^s[19])+mum(x[0]^s[20], r^s[21])+
			mum(m[0]^s[24], m[1]^s[25])+mum(m[2]^s[26], s[27]))^s[12], s[13])
	}
	extra := hashed|x[1]|or8((*[8]uint64)(x[2:10]))|x[10] != 0
	return emcProbe{h: h, tag: emcTag(h, extra), extra: extra, ok: pipelineState(w) == 0}
}

// emcCommonHashes sets run[i] to the probe of rk[i] as a plain key
// (emcPlainProbe) for each i, whose hash is that of the key's common words:
// emcProbeOf's hash of a key without hashed extra words. It hashes the
// words that tell a switch's flows apart, as
// Open vSwitch's exact-match cache takes a 5-tuple hash when the NIC gives
// none: in_port with the IPv4 addresses (and the IPv6 flow label), the
// Ethernet addresses, the VLAN IDs, the transport ports with the IP
// protocol, TOS, TTL and TCP flags, and the IPv6 addresses and ND target,
// those only when one of them is not zero, so that an IPv4 packet costs
// four multiplications, not eight. The rest of the common words (the ARP
// hardware addresses, dl_type and the outer VLAN's TPID), which packets
// that agree on all of the hashed words seldom differ in, are compared,
// not hashed: keys that differ only there share their two slots. Its loop
// makes no call, so that a batch's keys are hashed with its state in
// registers.
func emcCommonHashes(rk []Key, run []emcProbe) {
	s := &emcSecret
	rk = rk[:len(run)]
	for i := range run {
		w := rk[i].Words()
		c := (*[emcExtraWord - emcTunEndWord]uint64)(w[emcTunEndWord:emcExtraWord])
		h := mum(w[emcFirstWord]^s[0], w[emcFirstWord+1]^s[1]) +
			mum(c[emcDlWord]^s[2], c[emcDlWord+1]^s[3]) +
			mum(c[emcTpWord]^s[4], c[emcTpWord+1]^s[5])
		if v6 := (c[0] | c[1]) | (c[2] | c[3]) | (c[4] | c[5]); v6 != 0 {
			h += mum(c[0]^s[6], c[1]^s[7]) + mum(c[2]^s[8], c[3]^s[9]) +
				mum(c[4]^s[10], c[5]^s[11])
		}
		h = mum(h^s[22], s[23])
		run[i] = emcProbe{h: h, tag: h &^ 1, ok: true} // emcTag(h, false)
	}
}

// The common words from TunFlags's on that emcCommonHashes hashes, counted
// from TunFlags's: the six that hold the IPv6 addresses and most of the ND
// target (the first also holds the tunnel flags, TOS and TTL, zero in a
// key with no extra words), the two that hold the Ethernet addresses
// (emcDlWord) with the ND target's last bytes, and the last two, which
// hold the outer VLAN's TCI, the inner VLAN tag, the transport ports, TCP
// flags and the IP protocol, TOS, TTL and fragment bits (emcTpWord).
const (
	emcDlWord = int(unsafe.Offsetof(Key{}.DlDst)/8) - emcTunEndWord
	emcTpWord = emcExtraWord - emcTunEndWord - 2
)

var (
	_ = [1]struct{}{}[int(unsafe.Offsetof(Key{}.IPv6Src)/8)-emcTunEndWord]
	_ = [1]struct{}{}[int(unsafe.Offsetof(Key{}.NdTarget)+16-1)/8-emcTunEndWord-emcDlWord]
	_ = [1]struct{}{}[int(unsafe.Offsetof(Key{}.DlSrc)+6-1)/8-emcTunEndWord-emcDlWord-1]
	_ = [1]struct{}{}[int(unsafe.Offsetof(Key{}.VLANs)+2)/8-emcTunEndWord-emcTpWord]
	_ = [1]struct{}{}[int(unsafe.Offsetof(Key{}.TpSrc))/8-emcTunEndWord-emcTpWord]
)

// emcPlainProbe is emcProbeOf for a plain key (IsPlain), which it does
// not check: such a key has no pipeline state and no extra words, so its
// probe reads the common words its hash reads only, not all 43. Given a key that is
// not plain, it would let the key match a slot whose key differs from it
// in the words it skips.
func emcPlainProbe(k *Key) emcProbe {
	var p [1]emcProbe
	emcCommonHashes(unsafe.Slice(k, 1), p[:])
	return p[0]
}

// probeWith returns the probe of k taken with hash h, whatever k's own
// hash is: what the exported methods, which take a hash, work with. It
// ORs k's extra words as a tree, as or8 does.
func probeWith(k *Key, h uint64) emcProbe {
	w := k.Words()
	t := (*[emcTunWords]uint64)(w[emcTunWord:emcTunEndWord])
	x := (*[KeyWords - emcExtraWord]uint64)(w[emcExtraWord:])
	extra := (t[0]|t[1])|(t[2]|t[3])|(t[4]|t[5])|
		or8((*[8]uint64)(x[:8]))|(x[8]|x[9])|(x[10]|x[11])|(x[12]|x[13]) != 0
	return emcProbe{h: h, tag: emcTag(h, extra), extra: extra, ok: pipelineState(w) == 0}
}

// The tun_metadata words, TunMeta and TunMetaPresent, are the key's last
// (checked at compile time).
const (
	emcTunMetaWord  = int(unsafe.Offsetof(Key{}.TunMeta) / 8)
	emcTunMetaWords = KeyWords - emcTunMetaWord
)

var (
	_ = [1]struct{}{}[unsafe.Offsetof(Key{}.TunMeta)%8]
	_ = [1]struct{}{}[emcTunMetaWords-3]
	_ = [1]struct{}{}[emcTunMetaWord-emcExtraWord-11]
	_ = [1]struct{}{}[unsafe.Offsetof(Key{}.RecircID)-unsafe.Offsetof(Key{}.PktMark)-8]
	_ = [1]struct{}{}[unsafe.Sizeof(Key{})-unsafe.Offsetof(Key{}.TunMetaPresent)-8]
)

// slots returns the indexes of the two slots that may hold a key with hash
// h: one from its low bits, one from its high bits.
func (e *EMC) slots(h uint64) (uint64, uint64) {
	return h & e.mask, (h >> 32) & e.mask
}

// Lookup returns the megaflow cached for k (whose EMCHash is h), if it is
// alive and of generation gen; otherwise nil.
func (e *EMC) Lookup(k *Key, h, gen uint64) *Megaflow {
	_, mf := e.find(k, probeWith(k, h))
	return liveAt(mf, gen)
}

// lookup is Lookup for the key whose probe is p.
func (e *EMC) lookup(k *Key, p emcProbe, gen uint64) *Megaflow {
	_, mf := e.find(k, p)
	return liveAt(mf, gen)
}

// find returns the index and the megaflow of the slot that holds k, whose
// probe is p, or a nil megaflow if neither does. It checks each slot's
// tag first: a miss, the usual answer when the flows outnumber the slots,
// reads one line of each slot. Its comparisons are inlined, so that it
// makes no call; the slot it compares is a pointer (en) rather than an
// index, so that each compare reads the slot's word from memory itself
// (see holdsCommon).
func (e *EMC) find(k *Key, p emcProbe) (uint64, *Megaflow) {
	if !p.ok {
		return 0, nil // never cached
	}
	w := k.Words()
	i, j := e.slots(p.h)
	for en, v := &e.entries[i], i; ; en, v = &e.entries[j], j {
		if en.tag == p.tag && en.mf != nil && en.holdsCommon(w) && (!p.extra || e.holdsExtra(v, w)) {
			return v, en.mf
		}
		if v == j {
			return 0, nil
		}
	}
}

// probeSlot returns the one of the two slots that may hold the key whose
// probe is p that has p's tag, the first if both have, or nil if neither
// has (the cache does not hold the key).
func (e *EMC) probeSlot(p *emcProbe) *emcEntry {
	if en := &e.entries[p.h&e.mask]; en.tag == p.tag {
		return en
	}
	if en := &e.entries[(p.h>>32)&e.mask]; en.tag == p.tag {
		return en
	}
	return nil
}

// touch reads the two slots that may hold a key with hash h (the first
// cache line of each, which a miss reads alone), so that a lookup that
// follows finds them in the CPU's cache. It returns what it read, for the
// caller to keep.
func (e *EMC) touch(h uint64) uint64 {
	i, j := e.slots(h)
	return e.entries[i].tag ^ e.entries[j].tag
}

// holdsExtra reports whether the extra words of slot i are w's. It is
// small enough to be inlined, so that find makes no call: a call in its
// loop had Go keep the loop's state in memory.
func (e *EMC) holdsExtra(i uint64, w *[KeyWords]uint64) bool {
	x := &e.extras[i]
	var d uint64
	for n, v := range w[emcTunWord:emcTunEndWord] {
		d |= x[n] ^ v
	}
	for n, v := range w[emcExtraWord:] {
		d |= x[emcTunWords+n] ^ v
	}
	return d == 0
}

// hitRun answers the keys rk, whose probes are run, from the first on
// while each is an exact-match hit of the kind a batch lookup answers at
// once (Cache.lookupEach): a key without extra words whose probe finds,
// in the first of its two slots with its tag, its common words and a
// megaflow live at gen. It stores their megaflows in mfs and their source
// in srcs, and returns how many it answered. Its loop makes no call, so
// that its state stays in registers: holdsCommon, which compares the
// fourteen common words, is inlined in it.
func (e *EMC) hitRun(rk []Key, run []emcProbe, gen uint64, mfs []*Megaflow, srcs []Source) int {
	rk, mfs, srcs = rk[:len(run)], mfs[:len(run)], srcs[:len(run)]
	entries, mask := e.entries, e.mask
	for i := range run {
		p := &run[i]
		if !p.ok || p.extra {
			return i
		}
		en := &entries[p.h&mask]
		if en.tag != p.tag {
			if en = &entries[(p.h>>32)&mask]; en.tag != p.tag {
				return i
			}
		}
		mf := en.mf
		if mf == nil || mf.dead || mf.Generation != gen {
			return i
		}
		if !en.holdsCommon(rk[i].Words()) {
			return i
		}
		mfs[i], srcs[i] = mf, SourceEMC
	}
	return len(run)
}

// holdsCommon reports whether the slot's common words are w's. It
// compares the twelve from TunFlags's on as arrays of four words, which
// the compiler compares inline, a word at a time with one register: a
// load of w's word and a compare with the slot's in memory (the compare
// takes its second operand from memory when it is at a fixed offset from
// a pointer, as the slot's words are in hitRun and find). The first two
// it XORs and ORs, one branch where an array would take two: every
// branch may cost the assembler's padding. It is small enough to be
// inlined (just: cost 79 of 80), so that hitRun's loop and find compare
// the words without a call.
func (en *emcEntry) holdsCommon(w *[KeyWords]uint64) bool {
	c := (*[emcExtraWord - emcTunEndWord]uint64)(w[emcTunEndWord:emcExtraWord])
	k := (*[emcExtraWord - emcTunEndWord]uint64)(en.key[emcTunWord-emcFirstWord:])
	return (w[emcFirstWord]^en.key[0])|(w[emcFirstWord+1]^en.key[1]) == 0 &&
		*(*[4]uint64)(c[8:]) == *(*[4]uint64)(k[8:]) &&
		*(*[4]uint64)(c[4:8]) == *(*[4]uint64)(k[4:8]) &&
		*(*[4]uint64)(c[:4]) == *(*[4]uint64)(k[:4])
}

// The common words holdsCommon is written for (checked at compile time).
var (
	_ = [1]struct{}{}[emcTunWord-emcFirstWord-2]
	_ = [1]struct{}{}[emcExtraWord-emcTunEndWord-12]
)

// liveAt returns mf if it is a megaflow (not nil), alive and of
// generation gen; otherwise nil.
func liveAt(mf *Megaflow, gen uint64) *Megaflow {
	if mf == nil || mf.dead || mf.Generation != gen {
		return nil
	}
	return mf
}

// Insert caches mf for k (whose EMCHash is h) with the cache's insertion
// probability. It reports whether it stored the entry.
func (e *EMC) Insert(k *Key, h uint64, mf *Megaflow) bool {
	return e.insert(k, probeWith(k, h), mf)
}

// insert is Insert for the key whose probe is p.
func (e *EMC) insert(k *Key, p emcProbe, mf *Megaflow) bool {
	if !e.admits() {
		return false
	}
	e.store(k, p, mf)
	return true
}

// admits draws whether an insertion happens, with the cache's insertion
// probability: insert is admits and then store. It is small enough to be
// inlined where a megaflow hit inserts, so that the insertions it refuses,
// most of them, cost no call.
func (e *EMC) admits() bool {
	return e.invProb == 1 || e.invProb > 1 && e.next() < e.insertBelow
}

// Store caches mf for k (whose EMCHash is h) unconditionally, unless k's
// pipeline state is not zero. It reuses the key's slot if the key is
// cached, else an empty slot or one whose megaflow is dead, else evicts one
// of the two slots at random.
func (e *EMC) Store(k *Key, h uint64, mf *Megaflow) {
	e.store(k, probeWith(k, h), mf)
}

// store is Store for the key whose probe is p.
func (e *EMC) store(k *Key, p emcProbe, mf *Megaflow) {
	if !p.ok {
		return
	}
	w := k.Words()
	extra, tag := p.extra, p.tag
	i, j := e.slots(p.h)
	a, b := &e.entries[i], &e.entries[j]
	v, held := e.find(k, p)
	switch {
	case held != nil:
	case a.mf == nil || a.mf.dead:
		v = i
	case b.mf == nil || b.mf.dead:
		v = j
	case e.next()&1 == 0:
		v = i
	default:
		v = j
	}
	e.stores++
	en := &e.entries[v]
	en.tag, en.mf = tag, mf
	en.key[0], en.key[1] = w[emcFirstWord], w[emcFirstWord+1]
	copy(en.key[emcTunWord-emcFirstWord:], w[emcTunEndWord:emcExtraWord])
	if extra {
		x := &e.extras[v]
		copy(x[:], w[emcTunWord:emcTunEndWord])
		copy(x[emcTunWords:], w[emcExtraWord:])
	}
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
	e.stores++
	clear(e.entries)
	clear(e.extras)
}
