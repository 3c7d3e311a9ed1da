package flow

import "math/bits"

// Megaflow is one entry of the megaflow classifier: every packet whose key,
// masked with Mask, equals Key takes Actions.
//
// The mask is the set of key bits that translation consulted
// (TableSnapshot.Translate), so every packet the megaflow matches gets the
// same datapath actions at the generation the megaflow was installed under.
// Two megaflows of that generation that both match a packet therefore carry
// the same actions: megaflows may overlap, but never disagree. Megaflows of older
// generations may disagree; the Cache treats them as misses until it has
// revalidated them.
//
// A Megaflow belongs to the goroutine that owns its Megaflows (see there);
// only that goroutine may read or change its fields.
type Megaflow struct {
	Key  Key  // the masked key
	Mask *Key // shared by the subtable's megaflows: do not modify

	// Rule is the rule table 0 gave, nil if none; Rules are all the rules
	// the translation hit, whose counters the megaflow's packets count in.
	Rule  *Rule
	Rules []*Rule
	// Groups are the groups (and buckets) the translation ran, whose
	// counters the megaflow's packets count in too.
	Groups []GroupHit
	// Learned are the rules the translation's learn actions installed
	// (Table.Learn): each Credit restarts their timeouts, as Open
	// vSwitch's xlate cache refreshes a learned flow while packets keep
	// taking the datapath flow that learned it.
	Learned []*Rule
	// FinTimeouts are the fin_timeout actions the translation ran on TCP
	// (Translation.FinTimeouts), applied when Credit finds that a packet
	// carried FIN or RST.
	FinTimeouts []FinTimeout
	// Actions are the datapath actions (see Translation); nil: drop.
	Actions []Action
	// Verdict is the translation's verdict: why a packet that is output
	// nowhere is dropped.
	Verdict Verdict

	// Generation is the table generation that Rule and Mask were computed
	// at.
	Generation uint64

	Packets  uint64 // packets that took this megaflow (see Account)
	Bytes    uint64
	LastUsed int64 // unix nanoseconds of the last Account; 0 = never

	// What Account counted since the rules were last credited (Credit).
	pendPackets, pendBytes uint64
	pendUsed               int64
	pendTCPFlags           uint16 // of the packets since the last Credit (Cache.AccountTCPFlags)

	sub  *mfSubtable
	hash uint64
	dead bool // removed from its classifier
}

// Match returns the megaflow's key and mask as a Match.
func (mf *Megaflow) Match() Match {
	return Match{Key: mf.Key, Mask: *mf.Mask}
}

// Alive reports whether the megaflow is still in its classifier.
func (mf *Megaflow) Alive() bool { return !mf.dead }

// Account adds packets and bytes that took the megaflow at now (unix
// nanoseconds) to its counters. Its rules' counters get them at the next
// Credit: a hit costs the same whatever the number of tables the packet
// crossed.
func (mf *Megaflow) Account(packets, bytes uint64, now int64) {
	mf.Packets += packets
	mf.Bytes += bytes
	if now > mf.LastUsed {
		mf.LastUsed = now
	}
	mf.pendPackets += packets
	mf.pendBytes += bytes
	if now > mf.pendUsed {
		mf.pendUsed = now
	}
}

// Credit adds what the megaflow counted since the last Credit to the
// counters of the rules it caches.
func (mf *Megaflow) Credit() {
	if mf.pendPackets == 0 && mf.pendBytes == 0 {
		return
	}
	for _, r := range mf.Rules {
		r.AddStats(mf.pendPackets, mf.pendBytes, mf.pendUsed)
	}
	for _, g := range mf.Groups {
		g.Credit(mf.pendPackets, mf.pendBytes)
	}
	for _, r := range mf.Learned {
		r.refresh(mf.pendUsed)
	}
	if mf.pendTCPFlags&(TCPFlagFIN|TCPFlagRST) != 0 {
		for _, f := range mf.FinTimeouts {
			f.Rule.reduceTimeouts(f.Idle, f.Hard)
		}
	}
	mf.pendTCPFlags = 0
	mf.pendPackets, mf.pendBytes = 0, 0
}

// Megaflows is the megaflow classifier: tuple-space search over one subtable
// per distinct mask, each an open-addressing hash table of masked keys.
// Subtables are probed in order of how often they hit, re-ranked every
// rankInterval lookups (and on Rank), not per packet.
//
// A subtable hashes and compares only the key words its mask covers, and its
// slots carry the full hash so that a probe rarely touches a megaflow that
// does not match. With 16 masks this measured about four times faster than
// Go maps keyed by the masked Key, which hash and compare all 14 words.
//
// A Megaflows has a single owner, the poll thread that looks packets up in
// it, and is not safe for concurrent use: it takes no locks. Everything else
// (dumps, flushes, expiry) must run on the owner, between batches.
type Megaflows struct {
	subs    []*mfSubtable // in probe order
	byMask  map[Key]*mfSubtable
	n       int
	lookups uint32
}

// A subtable's hash table grows beyond maxLoadNum/maxLoadDen full. Most
// probes are misses (a packet is in one subtable and probes the ones ranked
// before it), and a miss scans to an empty slot, so the load is kept low.
const (
	maxLoadNum = 3
	maxLoadDen = 8
)

// rankInterval is how many lookups pass between re-rankings of the
// subtables.
const rankInterval = 1 << 16

// mfSubtable holds the megaflows that share one mask. The fields a lookup
// reads come first, so that they share the subtable's first cache lines.
type mfSubtable struct {
	slots []mfSlot // power-of-two length; linear probing
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

type mfSlot struct {
	hash uint64
	mf   *Megaflow // nil: empty
}

// NewMegaflows returns an empty classifier.
func NewMegaflows() *Megaflows {
	return &Megaflows{byMask: make(map[Key]*mfSubtable)}
}

// Len returns the number of megaflows.
func (c *Megaflows) Len() int { return c.n }

// Subtables returns the number of distinct masks.
func (c *Megaflows) Subtables() int { return len(c.subs) }

// wordSeeds make the same value hash differently in different key words.
var wordSeeds = [KeyWords]uint64{
	0x243f6a8885a308d3, 0x13198a2e03707344, 0xa4093822299f31d0, 0x082efa98ec4e6c89,
	0x452821e638d01377, 0xbe5466cf34e90c6c, 0xc0ac29b7c97c50dd, 0x3f84d5b5b5470917,
	0x9216d5d98979fb1b, 0xd1310ba698dfb5ac, 0x2ffd72dbd01adfb7, 0xb8e1afed6a267e96,
	0xba7c9045f12c7f99, 0x24a19947b3916cf7, 0x0801f2e2858efc16, 0x636920d871574e69,
	0xa458fea3f4933d7e, 0x0d95748f728eb658, 0x718bcd5882154aee, 0x7b54a41dc25a59b5,
	0x9c30d5392af26013, 0xc5d1b023286085f0, 0xca417918b8db38ef,
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

// equal reports whether k masked by the subtable's mask is mf's key.
func (st *mfSubtable) equal(k *Key, mf *Megaflow) bool {
	kw, mw := k.Words(), mf.Key.Words()
	for i := range st.nwords {
		w := st.words[i]
		if kw[w]&st.maskw[i] != mw[w] {
			return false
		}
	}
	return true
}

// find returns the megaflow of st whose key equals k's masked key, or nil.
func (st *mfSubtable) find(k *Key) *Megaflow {
	h := st.hashKey(k)
	m := uint64(len(st.slots) - 1)
	for i, probes := h&m, 0; probes < len(st.slots); i, probes = (i+1)&m, probes+1 {
		s := &st.slots[i]
		if s.mf == nil {
			return nil
		}
		if s.hash == h && st.equal(k, s.mf) {
			return s.mf
		}
	}
	return nil
}

// Lookup returns a megaflow that matches k, or nil. It does not look at
// generations: that is the Cache's job.
func (c *Megaflows) Lookup(k *Key) *Megaflow {
	c.lookups++
	if c.lookups%rankInterval == 0 {
		c.Rank()
	}
	for _, st := range c.subs {
		if mf := st.find(k); mf != nil {
			st.hits++
			return mf
		}
	}
	return nil
}

// Rank re-sorts the subtables by hits since the last ranking, most first,
// and halves the hit counts so that the order follows changes in traffic.
func (c *Megaflows) Rank() {
	// Insertion sort: bounded by the number of subtables, no allocation,
	// and nearly linear when the order has not changed.
	for i := 1; i < len(c.subs); i++ {
		for j := i; j > 0 && c.subs[j].hits > c.subs[j-1].hits; j-- {
			c.subs[j], c.subs[j-1] = c.subs[j-1], c.subs[j]
		}
	}
	for _, st := range c.subs {
		st.hits /= 2
	}
}

// Insert installs a megaflow for the packets that agree with k on tr's
// mask, taking tr's actions, computed at generation gen. If a megaflow with
// the same masked key and mask exists, it is updated in place and
// returned; otherwise a new one is.
func (c *Megaflows) Insert(k *Key, tr *Translation, gen uint64) *Megaflow {
	mask := &tr.Mask
	st := c.byMask[*mask]
	if st == nil {
		st = newMfSubtable(mask)
		c.byMask[*mask] = st
	}
	if !st.ranked {
		st.ranked = true
		c.subs = append(c.subs, st)
	}
	if mf := st.find(k); mf != nil {
		mf.set(tr, gen)
		return mf
	}
	mf := &Megaflow{Mask: &st.mask, sub: st}
	k.Masked(mask, &mf.Key)
	mf.set(tr, gen)
	mf.hash = st.hashKey(&mf.Key)
	if (st.n+1)*maxLoadDen > len(st.slots)*maxLoadNum {
		st.grow()
	}
	st.insert(mf)
	c.n++
	return mf
}

func (mf *Megaflow) set(tr *Translation, gen uint64) {
	mf.Credit() // what was counted belongs to the rules it had
	mf.Rule = nil
	if len(tr.Rules) > 0 && tr.Rules[0].Table == 0 {
		mf.Rule = tr.Rules[0]
	}
	mf.Rules = tr.Rules
	mf.Groups = tr.Groups
	mf.FinTimeouts = tr.FinTimeouts
	mf.Learned = nil
	mf.Actions = tr.Actions
	mf.Verdict = tr.Verdict
	mf.Generation = gen
}

func newMfSubtable(mask *Key) *mfSubtable {
	st := &mfSubtable{mask: *mask, slots: make([]mfSlot, 8)}
	for i, w := range mask.Words() {
		if w != 0 {
			st.words[st.nwords] = uint8(i)
			st.maskw[st.nwords] = w
			st.nwords++
		}
	}
	return st
}

// insert puts mf into the first free slot of its probe sequence. The table
// must have a free slot.
func (st *mfSubtable) insert(mf *Megaflow) {
	m := uint64(len(st.slots) - 1)
	i := mf.hash & m
	for st.slots[i].mf != nil {
		i = (i + 1) & m
	}
	st.slots[i] = mfSlot{hash: mf.hash, mf: mf}
	st.n++
}

func (st *mfSubtable) grow() {
	old := st.slots
	st.slots = make([]mfSlot, 2*len(old))
	st.n = 0
	for _, s := range old {
		if s.mf != nil {
			st.insert(s.mf)
		}
	}
}

// Remove removes mf from the classifier, if it is still there, and marks it
// dead so that exact-match cache entries that point to it miss.
func (c *Megaflows) Remove(mf *Megaflow) {
	if mf.dead || mf.sub == nil || c.byMask[*mf.Mask] != mf.sub {
		return
	}
	st := mf.sub
	m := uint64(len(st.slots) - 1)
	i := mf.hash & m
	for probes := 0; st.slots[i].mf != mf; probes++ {
		if st.slots[i].mf == nil || probes == len(st.slots) {
			return // not in this table
		}
		i = (i + 1) & m
	}
	// Backward-shift deletion: move later members of the probe run into the
	// hole so that lookups never stop early at it.
	for {
		st.slots[i] = mfSlot{}
		j := i
		for {
			j = (j + 1) & m
			if st.slots[j].mf == nil {
				break
			}
			home := st.slots[j].hash & m
			// The entry at j may fill the hole at i unless its home lies
			// cyclically in (i, j].
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				break
			}
		}
		if st.slots[j].mf == nil {
			break
		}
		st.slots[i] = st.slots[j]
		i = j
	}
	st.n--
	c.n--
	mf.dead = true
	if st.n == 0 {
		c.dropSubtable(st)
	}
}

// dropSubtable removes an empty subtable from the probe order.
func (c *Megaflows) dropSubtable(st *mfSubtable) {
	delete(c.byMask, st.mask)
	for i, s := range c.subs {
		if s == st {
			c.subs = append(c.subs[:i], c.subs[i+1:]...)
			break
		}
	}
	st.ranked = false
}

// Range calls fn for each megaflow until fn returns false. fn must not
// insert or remove megaflows.
func (c *Megaflows) Range(fn func(*Megaflow) bool) {
	for _, st := range c.subs {
		for i := range st.slots {
			if mf := st.slots[i].mf; mf != nil && !fn(mf) {
				return
			}
		}
	}
}

// RemoveIf removes every megaflow for which fn returns true (idle expiry,
// stale generations) and returns how many it removed.
func (c *Megaflows) RemoveIf(fn func(*Megaflow) bool) int {
	var doomed []*Megaflow
	c.Range(func(mf *Megaflow) bool {
		if fn(mf) {
			doomed = append(doomed, mf)
		}
		return true
	})
	for _, mf := range doomed {
		c.Remove(mf)
	}
	return len(doomed)
}

// Flush removes every megaflow.
func (c *Megaflows) Flush() {
	c.Range(func(mf *Megaflow) bool {
		mf.dead = true
		return true
	})
	c.subs = c.subs[:0]
	clear(c.byMask)
	c.n = 0
}
