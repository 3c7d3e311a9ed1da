package flow

import "slices"

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
	// The fields a hit reads (Cache.LookupBatch, Account, the datapath's
	// execution) come first, so that they share the megaflow's first cache
	// line.

	// Generation is the table generation that Rule and Mask were computed
	// at.
	Generation uint64
	dead       bool // removed from its classifier
	// Verdict is the translation's verdict: why a packet that is output
	// nowhere is dropped.
	Verdict      Verdict
	pendTCPFlags uint16 // of the packets since the last Credit (Cache.AccountTCPFlags)
	// finalOutputs and toNormal are FinalOutputs and OutputsNormal of
	// Actions, taken once when the actions are set (set) rather than
	// for every packet that runs them.
	finalOutputs uint16
	toNormal     bool
	// Actions are the datapath actions (see Translation); nil: drop.
	Actions []Action

	// What Account counted since the rules were last credited (Credit).
	pendPackets, pendBytes uint64
	pendUsed               int64

	Packets  uint64 // packets that took this megaflow (see Account)
	Bytes    uint64
	LastUsed int64 // unix nanoseconds of the last Account; 0 = never

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
	// recircs are the frozen states the megaflow recirculates to or
	// resumes from (Translation.recircs): it holds a reference to each
	// while it is in its classifier, and Credit records their use.
	recircs []*recircNode

	sub  *mfSubtable
	hash uint64
	// key is the masked key, as its subtable's records hold it: only the
	// words the mask covers (mfSubtable.words), so that a megaflow does
	// not carry the whole key's width (see Key).
	key []uint64
	// packet is the same words of the key of the packet that installed
	// the megaflow, unmasked (see PacketKey); it shares key's allocation.
	packet []uint64
}

// Key returns the megaflow's masked key: the key bits its mask covers,
// zero elsewhere.
func (mf *Megaflow) Key() Key { return mf.expand(mf.key) }

// PacketKey returns the key of the packet that installed the megaflow,
// on the words its mask covers: the bits outside the mask of a partly
// masked field are the packet's, as Open vSwitch's userspace datapath
// keeps the flow that made a megaflow and dpctl/dump-flows prints it
// (ipv4(src=10.0.0.5/255.255.255.0)). Words the mask does not cover at
// all are zero.
func (mf *Megaflow) PacketKey() Key { return mf.expand(mf.packet) }

// expand returns a key whose words the mask covers are words (mf.key or
// mf.packet), zero elsewhere.
func (mf *Megaflow) expand(words []uint64) Key {
	var k Key
	kw := k.Words()
	for j, w := range words {
		kw[mf.sub.words[j]] = w
	}
	return k
}

// Match returns the megaflow's key and mask as a Match.
func (mf *Megaflow) Match() Match {
	return Match{Key: mf.Key(), Mask: *mf.Mask}
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
	for _, n := range mf.recircs {
		n.touch(mf.pendUsed)
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
// A subtable hashes and compares only the key words its mask covers, keeps
// those words inline in its slots beside a tag of the hash, and so answers
// a probe without following a pointer (see mfSubtable). With 16 masks this
// measured about four times faster than Go maps keyed by the masked Key,
// which hash and compare all its words.
//
// A Megaflows has a single owner, the poll thread that looks packets up in
// it, and is not safe for concurrent use: it takes no locks. Everything else
// (dumps, flushes, expiry) must run on the owner, between batches.
type Megaflows struct {
	subs    []*mfSubtable // in probe order
	byMask  map[Key]*mfSubtable
	n       int
	lookups uint32
	// changes counts the insertions and removals of megaflows, so that a
	// batch lookup can tell whether an answer it found ahead still holds.
	changes uint64
	// touched keeps what Lookup's touches read, so that the reads are not
	// left out.
	touched uint64
	// bytes is what the subtables' tables take (mfSubtable.bytes), and
	// batchBytes the size from which LookupBatch looks keys up together
	// (see batched).
	bytes, batchBytes int
}

// rankInterval is how many lookups pass between re-rankings of the
// subtables.
const rankInterval = 1 << 16

// NewMegaflows returns an empty classifier.
func NewMegaflows() *Megaflows {
	return &Megaflows{byMask: make(map[Key]*mfSubtable), batchBytes: batchMinBytes}
}

// batchMinBytes is the size of the subtables' tables from which a batch's
// keys are looked up together (lookupBatch) rather than one by one. Looking
// keys up together pays when their probes miss the CPU caches, whose
// misses it overlaps; a classifier smaller than a core's L2 cache is
// answered from it, and the batch's extra passes then cost more than they
// hide: with one megaflow (the Pipeline/megaflow benchmark in datapath) the
// whole packet path took 13% longer batched than key by key.
const batchMinBytes = 256 << 10

// batched reports whether LookupBatch should look the keys the exact-match
// cache missed up together: the classifier is too large to stay in a
// core's caches. Lookup then touches the record its first probe most
// likely reads, which it skips otherwise, as the read would not miss.
func (c *Megaflows) batched() bool { return c.bytes >= c.batchBytes }

// Len returns the number of megaflows.
func (c *Megaflows) Len() int { return c.n }

// Subtables returns the number of distinct masks.
func (c *Megaflows) Subtables() int { return len(c.subs) }

// Lookup returns a megaflow that matches k, or nil. It does not look at
// generations: that is the Cache's job.
func (c *Megaflows) Lookup(k *Key) *Megaflow {
	c.lookups++
	if c.lookups%rankInterval == 0 {
		c.Rank()
	}
	// The busiest subtable whose stage admits k is the likeliest to hold
	// it: its home record is read first (touch), when the classifier is
	// too large to stay in the CPU's caches.
	var touched *uint64
	if c.batched() {
		touched = &c.touched
	}
	sk := stageKey(k)
	for _, st := range c.subs {
		if !st.stage.mayHold(sk) {
			continue
		}
		mf := st.lookup(k, touched)
		touched = nil
		if mf != nil {
			st.hits++
			return mf
		}
	}
	return nil
}

// sole reports whether Lookup(k) would probe one subtable only, the
// first: the classifier has one, its stage admits k and the lookup does not
// re-rank the subtables.
func (c *Megaflows) sole(k *Key) bool {
	return len(c.subs) == 1 && !c.rankDue() && c.subs[0].stage.mayHold(stageKey(k))
}

// maxLookupBatch is the most keys lookupBatch looks up at once.
const maxLookupBatch = 32

// lookupBatch sets found[x] to a megaflow that matches keys[idx[x]], or
// nil, for each x below len(idx) (at most maxLookupBatch): the answers
// Lookup would give, key after key. It finds, for every key, the first
// subtable whose stage admits it, the likeliest to hold it (with in_port
// staged, usually the only one), hashes the key there and reads its
// control word and home record, for all the keys before it compares any,
// so that the cache misses of the batch overlap instead of following one
// another. It then probes the subtables in turn for every key still
// unanswered, reading the control words of a subtable's keys before it
// compares them. It counts nothing: the caller counts the answers it takes
// with countHit.
func (c *Megaflows) lookupBatch(keys []Key, idx []uint8, found []*Megaflow) {
	subs := c.subs
	var (
		pend  [maxLookupBatch]uint8 // the x whose keys are unanswered
		hs    [maxLookupBatch]uint64
		first [maxLookupBatch]int // the index in subs of key x's first subtable, len(subs) if none
		fh    [maxLookupBatch]uint64
	)
	np := len(idx)
	for x := range np {
		pend[x] = uint8(x)
		found[x] = nil
		k := &keys[idx[x]]
		si := 0
		sk := stageKey(k)
		for si < len(subs) && !subs[si].stage.mayHold(sk) {
			si++
		}
		first[x] = si
		if si < len(subs) {
			fh[x] = subs[si].hashKey(k)
		}
	}
	// The reads in a loop of their own, a few instructions a key, so
	// that the CPU has the misses of every key in flight at once: after
	// each key's hashing, its reorder window held those of a few keys
	// only, and a subtable at a time, those of its own keys only.
	var touched uint64
	for x := range np {
		if si := first[x]; si < len(subs) {
			st, h := subs[si], fh[x]
			touched ^= st.ctrl[st.home(h)] ^ st.touch(h)
		}
	}
	for si, st := range subs {
		if np == 0 {
			break
		}
		// Keys the subtable's stage rules out skip it; those it is the
		// first for were hashed and read above.
		var skip uint32
		for y, x := range pend[:np] {
			switch {
			case si < first[x]:
				skip |= 1 << y
			case si == first[x]:
				hs[y] = fh[x]
			case !st.stage.mayHold(stageKey(&keys[idx[x]])):
				skip |= 1 << y
			default:
				h := st.hashKey(&keys[idx[x]])
				hs[y] = h
				touched ^= st.ctrl[st.home(h)]
			}
		}
		left := 0
		for y, x := range pend[:np] {
			if skip&(1<<y) == 0 {
				if mf := st.find(&keys[idx[x]], hs[y]); mf != nil {
					found[x] = mf
					continue
				}
			}
			pend[left] = x
			left++
		}
		np = left
	}
	c.touched ^= touched
}

// rankDue reports whether the next Lookup re-ranks the subtables before
// it probes them, so that an answer lookupBatch found may not be Lookup's.
func (c *Megaflows) rankDue() bool { return (c.lookups+1)%rankInterval == 0 }

// countHit counts a lookup that lookupBatch answered with mf, as Lookup
// would have counted it; rankDue must be false.
func (c *Megaflows) countHit(mf *Megaflow) {
	c.lookups++
	mf.sub.hits++
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
// mask, taking tr's actions, computed at generation gen. If a megaflow
// with the same masked key and mask exists, it is updated in place and
// returned; otherwise a new one is. The megaflow keeps tr's slices: the
// caller copies the translator's buffers.
func (c *Megaflows) Insert(k *Key, tr *Translation, gen uint64) *Megaflow {
	mask := &tr.Mask
	st := c.byMask[*mask]
	if st == nil {
		st = newMfSubtable(mask)
		c.byMask[*mask] = st
		c.bytes += st.bytes()
	}
	if !st.ranked {
		st.ranked = true
		c.subs = append(c.subs, st)
	}
	h := st.hashKey(k)
	if mf := st.find(k, h); mf != nil {
		mf.set(tr, gen)
		mf.holdRecircs(tr.recircs)
		return mf
	}
	mf := st.newMegaflow(k, h)
	mf.set(tr, gen)
	mf.holdRecircs(tr.recircs)
	if st.full() {
		c.bytes -= st.bytes()
		st.grow()
		c.bytes += st.bytes()
	}
	st.insert(mf)
	st.stageAdd(mf)
	c.n++
	c.changes++
	return mf
}

// holdRecircs makes ns the frozen states the megaflow holds, letting go
// of the ones it held before. ns must not be the translator's buffer.
func (mf *Megaflow) holdRecircs(ns []*recircNode) {
	for _, n := range ns {
		n.refs.Add(1)
	}
	for _, n := range mf.recircs {
		n.refs.Add(-1)
	}
	mf.recircs = ns
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
	mf.finalOutputs = uint16(FinalOutputs(tr.Actions))
	mf.toNormal = OutputsNormal(tr.Actions)
	mf.Verdict = tr.Verdict
	mf.Generation = gen
}

// FinalOutputs returns FinalOutputs(mf.Actions), as it was when the
// actions were set.
func (mf *Megaflow) FinalOutputs() int { return int(mf.finalOutputs) }

// OutputsNormal returns OutputsNormal(mf.Actions), as it was when the
// actions were set.
func (mf *Megaflow) OutputsNormal() bool { return mf.toNormal }

// FinalOutputs returns the number of output actions in acts when the last
// action is one, and 0 when it is not: the datapath lets that last output
// take the received frame instead of a copy, and must know which of the
// packet's outputs it is.
func FinalOutputs(acts []Action) int {
	if len(acts) == 0 || acts[len(acts)-1].Type != ActOutput {
		return 0
	}
	n := 0
	for i := range acts {
		if acts[i].Type == ActOutput {
			n++
		}
	}
	return n
}

// OutputsNormal reports whether acts include an output to NORMAL, whose
// MAC learning reads the packet's key where the datapath keeps it.
func OutputsNormal(acts []Action) bool {
	for i := range acts {
		if acts[i].Type == ActOutput && acts[i].Port == PortNormal {
			return true
		}
	}
	return false
}

// Remove removes mf from the classifier, if it is still there, and marks it
// dead so that exact-match cache entries that point to it miss.
func (c *Megaflows) Remove(mf *Megaflow) {
	if mf.dead || mf.sub == nil || c.byMask[*mf.Mask] != mf.sub {
		return
	}
	st := mf.sub
	if !st.remove(mf) {
		return
	}
	st.stageRemove(mf)
	c.n--
	c.changes++
	mf.dead = true
	mf.holdRecircs(nil)
	if st.n == 0 {
		c.dropSubtable(st)
	}
}

// dropSubtable removes an empty subtable from the probe order.
func (c *Megaflows) dropSubtable(st *mfSubtable) {
	delete(c.byMask, st.mask)
	c.bytes -= st.bytes()
	if i := slices.Index(c.subs, st); i >= 0 {
		c.subs = slices.Delete(c.subs, i, i+1) // clears the tail: the array lets go of st
	}
	st.ranked = false
}

// Range calls fn for each megaflow until fn returns false. fn must not
// insert or remove megaflows.
func (c *Megaflows) Range(fn func(*Megaflow) bool) {
	for _, st := range c.subs {
		if !st.each(fn) {
			return
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
		mf.holdRecircs(nil)
		return true
	})
	clear(c.subs) // the array lets go of the subtables and their megaflows
	c.subs = c.subs[:0]
	clear(c.byMask)
	c.bytes = 0
	c.n = 0
	c.changes++
}
