package flow

import (
	"math/bits"
	"slices"
)

// Source tells which stage of the Cache answered a lookup.
type Source uint8

// The lookup stages.
const (
	SourceEMC      Source = iota + 1 // exact-match cache hit
	SourceMegaflow                   // megaflow classifier hit
	SourceUpcall                     // rule-table lookup; a megaflow was installed
)

func (s Source) String() string {
	switch s {
	case SourceEMC:
		return "emc"
	case SourceMegaflow:
		return "megaflow"
	case SourceUpcall:
		return "upcall"
	}
	return "unknown"
}

// CacheStats counts a Cache's lookups by the stage that answered them.
type CacheStats struct {
	EMCHits      uint64
	MegaflowHits uint64
	Upcalls      uint64
	// Revalidated counts megaflows of an older generation that a lookup
	// found still right for the current table and kept; Evicted counts the
	// ones it found wrong and removed.
	Revalidated uint64
	Evicted     uint64
}

// Cache is one poll thread's flow cache: exact-match cache, then megaflow
// classifier, then the shared rule table. Like its parts it has one owner
// and takes no locks; the rule table it reads is shared, through snapshots.
//
// Entries remember the table generation they were computed at. A lookup
// loads the table's current snapshot and treats an entry of another
// generation as a miss: an exact-match entry simply misses, and a megaflow
// is revalidated against the new snapshot (kept, with the new rule, when the
// new lookup consults no bits outside its mask) or removed. Since a table
// change publishes its snapshot before it returns, no lookup that starts
// after the change uses an entry computed before it.
type Cache struct {
	table *Table
	emc   *EMC
	mfs   *Megaflows
	stats CacheStats
	xl    xlate // translation buffers, reused
	rkey  Key   // the masked key that revalidate translates
	// touched are the megaflows Account counted packets on since the
	// last CreditRules (with room for maxTouched, allocated once).
	touched []*Megaflow
}

// maxTouched bounds the megaflows awaiting CreditRules; past it Account
// credits them at once.
const maxTouched = 256

// maxStaleProbes bounds how many stale megaflows one lookup removes before
// it falls back to the rule table.
const maxStaleProbes = 4

// NewCache returns a cache in front of table with an exact-match cache of
// emcEntries entries (a power of two) and the given inverse insertion
// probability (see NewEMC).
func NewCache(table *Table, emcEntries int, emcInsertInvProb uint32) (*Cache, error) {
	emc, err := NewEMC(emcEntries, emcInsertInvProb)
	if err != nil {
		return nil, err
	}
	return &Cache{table: table, emc: emc, mfs: NewMegaflows(), touched: make([]*Megaflow, 0, maxTouched)}, nil
}

// Megaflows returns the cache's megaflow classifier (for dumps and expiry,
// on the owner's goroutine).
func (c *Cache) Megaflows() *Megaflows { return c.mfs }

// EMC returns the cache's exact-match cache.
func (c *Cache) EMC() *EMC { return c.emc }

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats { return c.stats }

// Lookup returns the megaflow for a packet with key k and the stage that
// found it. A miss translates the packet through the pipeline (Translate),
// installs a megaflow with its datapath actions whose mask is exactly the
// bits translation consulted, and returns it; it never returns nil. Hits do not allocate.
func (c *Cache) Lookup(k *Key) (*Megaflow, Source) {
	return c.lookupHashed(c.table.Snapshot(), k, emcProbeOf(k))
}

// LookupBatch looks up keys as Lookup does, storing the results in mfs and
// srcs. It handles as many keys as all three slices have room for and
// returns that number. Its answers, counters and insertions are exactly
// those of Lookup called on each key in turn.
//
// It works on runs of lookupRun keys, in three passes so that the cache
// misses of a run overlap instead of following one another: it hashes the
// run's keys and touches their exact-match slots; probes the exact-match
// cache for each; and looks the keys it missed up in the megaflow
// classifier together (Megaflows.lookupBatch), reading the megaflows it
// found before it uses any. A classifier small enough to stay in the CPU's
// caches (Megaflows.batched) has no misses to overlap: after the first
// pass, each key of the run then goes Lookup's way. It then settles each key in order, as Lookup
// would: an answer found ahead stands while nothing since could have
// changed it. An insertion into the exact-match cache sends a key whose
// exact-match answer it changed to Lookup's path; a miss, a stale
// megaflow or a re-ranking of the subtables goes that path too, and so
// does the rest of the run after it, since revalidation, removal and
// installation change what the classifier answers. It loads the table's
// snapshot once, and again after a miss only (whose translation may have
// learned rules, which the next keys must see, as they would one by one).
func (c *Cache) LookupBatch(keys []Key, mfs []*Megaflow, srcs []Source) int {
	return c.LookupBatchPlain(keys, 0, mfs, srcs)
}

// LookupBatchPlain is LookupBatch for keys of which those whose bit is set
// in plain (bit i for keys[i], i < 64) are plain keys (IsPlain), as
// ExtractReusing reports them: their exact-match probe reads their common
// words only. The caller must not set the bit of a key that is not plain:
// the exact-match cache could then answer it with another key's megaflow.
func (c *Cache) LookupBatchPlain(keys []Key, plain uint64, mfs []*Megaflow, srcs []Source) int {
	n := min(len(keys), len(mfs), len(srcs))
	s := c.table.Snapshot()
	var probes [lookupRun]emcProbe
	for start := 0; start < n; start += lookupRun {
		run := probes[:min(lookupRun, n-start)]
		rk := keys[start : start+len(run)]
		probeRun(run, rk, plain>>start)
		// The touches in a loop of their own, a few instructions each, so
		// that the CPU has all of the run's in flight at once: interleaved
		// with the hashing, it held those of a few keys only.
		var touched uint64
		for i := range run {
			touched ^= c.emc.touch(run[i].h)
		}
		c.emc.touched ^= touched
		out, outSrcs := mfs[start:start+len(run)], srcs[start:start+len(run)]
		if c.mfs.batched() {
			s = c.lookupTogether(s, rk, run, out, outSrcs)
		} else {
			s = c.lookupEach(s, rk, run, out, outSrcs)
		}
	}
	return n
}

// probeRun works out the exact-match probes of the keys rk into run, which
// it fills: the probes of plain keys (bit i of plain for rk[i]), which
// read only their common words, for all in emcCommonHashes's loop, and
// then, for the keys that are not plain, their whole probes from their
// common words' hash (emcProbeFrom).
func probeRun(run []emcProbe, rk []Key, plain uint64) {
	rk = rk[:len(run)]
	emcCommonHashes(rk, run)
	for other := ^plain & (1<<len(run) - 1); other != 0; other &= other - 1 {
		i := bits.TrailingZeros64(other)
		run[i] = emcProbeFrom(&rk[i], run[i].h)
	}
}

// lookupTogether is LookupBatchPlain's path for a run of keys, rk, whose
// probes are run, when the classifier is too large for the CPU's caches
// (Megaflows.batched): it probes the exact-match cache for each key, looks
// the keys it missed up in the classifier together (Megaflows.lookupBatch),
// reading the megaflows it found before it uses any, and then settles each
// key in order, as LookupBatch says. It stores the answers in mfs and
// srcs, which have room for the run, and returns the table's snapshot,
// loaded again after an upcall.
func (c *Cache) lookupTogether(s *TableSnapshot, rk []Key, run []emcProbe, mfs []*Megaflow, srcs []Source) *TableSnapshot {
	rk, mfs, srcs = rk[:len(run)], mfs[:len(run)], srcs[:len(run)]
	var (
		early  [lookupRun]*Megaflow // the exact-match cache's answers
		missed [lookupRun]uint8     // the keys it did not answer
		found  [lookupRun]*Megaflow // the classifier's answers to those
	)
	stores, gen := c.emc.stores, s.gen
	nm := 0
	for i := range run {
		early[i] = c.emc.lookup(&rk[i], run[i], gen)
		if early[i] == nil {
			missed[nm] = uint8(i)
			nm++
		}
	}
	changes := c.mfs.changes
	if nm > 0 {
		c.mfs.lookupBatch(rk, missed[:nm], found[:nm])
		var touched uint64
		for _, mf := range found[:nm] {
			if mf != nil {
				touched ^= mf.Generation
			}
		}
		c.mfs.touched ^= touched
	}
	// Once a key's lookup had to run on its own (a miss, a stale
	// megaflow), what it did may change the answers found ahead of it:
	// the rest of the run is looked up key by key too.
	alone := false
	m := 0 // the next of missed
	for i := range run {
		p := run[i]
		mf := early[i]
		var ahead *Megaflow // the classifier's answer, when it was asked
		if mf == nil {
			ahead = found[m]
			m++
		}
		switch {
		case alone || c.mfs.changes != changes || s.gen != gen:
			mfs[i], srcs[i] = c.lookupHashed(s, &rk[i], p)
			alone = true
		case c.emc.stores != stores && c.emc.lookup(&rk[i], p, gen) != mf:
			// An insertion into the exact-match cache changed its answer.
			mfs[i], srcs[i] = c.lookupHashed(s, &rk[i], p)
			alone = true
		case mf != nil:
			c.stats.EMCHits++
			mfs[i], srcs[i] = mf, SourceEMC
		case ahead != nil && ahead.Generation == gen && !c.mfs.rankDue():
			c.mfs.countHit(ahead)
			c.stats.MegaflowHits++
			c.emc.insert(&rk[i], p, ahead)
			mfs[i], srcs[i] = ahead, SourceMegaflow
		default:
			// A miss, a stale megaflow to revalidate, or a lookup that
			// re-ranks the subtables: as Lookup.
			mfs[i], srcs[i] = c.lookupMegaflow(s, &rk[i], p)
			alone = true
		}
		if srcs[i] == SourceUpcall {
			s = c.table.Snapshot()
		}
	}
	return s
}

// lookupEach is LookupBatchPlain's path for a run of keys, rk, whose
// probes are run, when the classifier answers from the CPU's caches
// (Megaflows.batched is false): nothing to overlap, so the keys go one by
// one, through lookupHashed's steps with its exact-match hit, the usual
// answer, in the loop rather than a call away. It stores the answers in
// mfs and srcs, which have room for the run, and returns the table's
// snapshot, loaded again after an upcall (whose translation may have
// learned rules, which the next keys must see).
func (c *Cache) lookupEach(s *TableSnapshot, rk []Key, run []emcProbe, mfs []*Megaflow, srcs []Source) *TableSnapshot {
	rk, mfs, srcs = rk[:len(run)], mfs[:len(run)], srcs[:len(run)]
	// The usual answer, an exact-match hit, for as many keys from the
	// first as have it, in hitRun's loop; the rest of the run one by one.
	gen := s.gen
	hits := uint64(c.emc.hitRun(rk, run, gen, mfs, srcs))
	for i := int(hits); i < len(run); i++ {
		// lookupHashed's exact-match probe, with its two usual answers
		// given here, without its calls: no slot with the key's tag (a
		// miss), or a key without extra words held with a live megaflow
		// (a hit).
		p := &run[i]
		var en *emcEntry
		if p.ok {
			en = c.emc.probeSlot(p)
		}
		switch {
		case p.ok && en == nil && c.mfs.sole(&rk[i]):
			// Megaflows.Lookup and lookupMegaflow for a classifier of
			// one subtable, which admits the key: one call, not three.
			st := c.mfs.subs[0]
			var touched *uint64
			if c.mfs.batched() {
				touched = &c.mfs.touched
			}
			c.mfs.lookups++
			mf := st.lookup(&rk[i], touched)
			if mf != nil {
				st.hits++
			}
			if mf == nil || mf.Generation != s.gen {
				mfs[i], srcs[i] = c.lookupSlow(s, &rk[i], *p, mf)
				break
			}
			c.stats.MegaflowHits++
			if c.emc.admits() {
				c.emc.store(&rk[i], *p, mf)
			}
			mfs[i], srcs[i] = mf, SourceMegaflow
			continue
		case p.ok && en == nil:
			mfs[i], srcs[i] = c.lookupMegaflow(s, &rk[i], *p)
		case en != nil && !p.extra && liveAt(en.mf, gen) != nil && en.holdsCommon(rk[i].Words()):
			hits++
			mfs[i], srcs[i] = en.mf, SourceEMC
			continue
		default:
			mfs[i], srcs[i] = c.lookupHashed(s, &rk[i], *p)
		}
		if srcs[i] == SourceUpcall {
			s = c.table.Snapshot()
		}
	}
	c.stats.EMCHits += hits
	return s
}

// lookupRun is how many keys LookupBatch hashes ahead of its probes.
const lookupRun = maxLookupBatch

// lookupHashed is Lookup in snapshot s for a key whose exact-match probe
// is p.
func (c *Cache) lookupHashed(s *TableSnapshot, k *Key, p emcProbe) (*Megaflow, Source) {
	if _, mf := c.emc.find(k, p); liveAt(mf, s.gen) != nil {
		c.stats.EMCHits++
		return mf, SourceEMC
	}
	return c.lookupMegaflow(s, k, p)
}

// lookupMegaflow is lookupHashed for a key that the exact-match cache does
// not answer. Its usual answer, a megaflow of the current generation, is
// given here; a stale megaflow or a miss goes lookupSlow's way.
func (c *Cache) lookupMegaflow(s *TableSnapshot, k *Key, p emcProbe) (*Megaflow, Source) {
	mf := c.mfs.Lookup(k)
	if mf == nil || mf.Generation != s.gen {
		return c.lookupSlow(s, k, p, mf)
	}
	c.stats.MegaflowHits++
	if c.emc.admits() {
		c.emc.store(k, p, mf)
	}
	return mf, SourceMegaflow
}

// lookupSlow is lookupMegaflow for a key whose megaflow lookup gave mf,
// nil or stale: it revalidates or removes stale megaflows, up to
// maxStaleProbes of them, looking the key up again after each removal,
// and translates the packet when none is left to answer it.
func (c *Cache) lookupSlow(s *TableSnapshot, k *Key, p emcProbe, mf *Megaflow) (*Megaflow, Source) {
	for probe := range maxStaleProbes {
		if probe > 0 {
			mf = c.mfs.Lookup(k)
		}
		if mf == nil {
			break
		}
		if mf.Generation != s.gen && !c.revalidate(s, mf) {
			c.stats.Evicted++
			c.mfs.Remove(mf)
			continue
		}
		c.stats.MegaflowHits++
		c.emc.insert(k, p, mf)
		return mf, SourceMegaflow
	}
	c.xl.translate(s, k, false, true)
	tr := c.xl.tr
	tr.Actions = slices.Clone(tr.Actions) // the megaflow keeps them
	tr.Rules = slices.Clone(tr.Rules)
	tr.Groups = slices.Clone(tr.Groups)
	tr.FinTimeouts = slices.Clone(tr.FinTimeouts)
	tr.recircs = slices.Clone(tr.recircs)
	// What the packet learned goes into the table now (a new generation,
	// so megaflows that consulted the table revalidate before their next
	// use); the megaflow keeps the learned rules to refresh them.
	learned := c.table.Learn(tr.Learned)
	mf = c.mfs.Insert(k, &tr, s.gen)
	mf.Learned = learned
	c.stats.Upcalls++
	c.emc.insert(k, p, mf)
	return mf, SourceUpcall
}

// revalidate brings mf, computed at an older generation, up to s if it is
// still a correct megaflow there, and reports whether it is.
//
// It translates mf's masked key in s. If that translation consults only
// bits inside mf's mask, every packet mf matches agrees with the masked key
// on those bits (it equals it on the whole mask), so every such packet gets
// the same actions: mf stays, with those actions, at s's generation.
func (c *Cache) revalidate(s *TableSnapshot, mf *Megaflow) bool {
	c.rkey = mf.Key()
	c.xl.translate(s, &c.rkey, false, true)
	tr := &c.xl.tr
	if !maskCovers(mf.Mask, &tr.Mask) {
		return false
	}
	// Learn only now that the masked key is known to stand for every
	// packet of the megaflow.
	learned := c.table.Learn(tr.Learned)
	acts, rules, groups, fins, recircs := mf.Actions, mf.Rules, mf.Groups, mf.FinTimeouts, mf.recircs
	mf.set(tr, s.gen)
	mf.Learned = learned
	// Keep the megaflow's own slices when they still hold the answer (no
	// allocation), and copy the translator's otherwise.
	if slices.Equal(acts, tr.Actions) {
		mf.Actions = acts
	} else {
		mf.Actions = slices.Clone(tr.Actions)
	}
	if slices.Equal(rules, tr.Rules) {
		mf.Rules = rules
	} else {
		mf.Rules = slices.Clone(tr.Rules)
	}
	if slices.Equal(groups, tr.Groups) {
		mf.Groups = groups
	} else {
		mf.Groups = slices.Clone(tr.Groups)
	}
	if slices.Equal(fins, tr.FinTimeouts) {
		mf.FinTimeouts = fins
	} else {
		mf.FinTimeouts = slices.Clone(tr.FinTimeouts)
	}
	if !slices.Equal(recircs, tr.recircs) {
		mf.holdRecircs(slices.Clone(tr.recircs))
	}
	c.stats.Revalidated++
	return true
}

// Account counts packets and bytes that took mf at now (see
// Megaflow.Account); the rules mf caches get them at the next CreditRules.
// It does not allocate.
func (c *Cache) Account(mf *Megaflow, packets, bytes uint64, now int64) {
	if mf.pendPackets == 0 && mf.pendBytes == 0 {
		if len(c.touched) == cap(c.touched) {
			c.CreditRules()
		}
		c.touched = append(c.touched, mf)
	}
	mf.Account(packets, bytes, now)
}

// AccountTCPFlags records the TCP flags of a packet that Account counted
// for mf: a FIN or RST reduces the timeouts of the rules whose fin_timeout
// actions mf ran, at the next CreditRules. It does not allocate.
func (c *Cache) AccountTCPFlags(mf *Megaflow, flags uint16) {
	mf.pendTCPFlags |= flags
}

// CreditRules adds what the megaflows counted since the last call to
// their rules' counters. The owner calls it after each batch, so that a
// rule's counters (dump-flows, idle timeouts) lag its packets by a batch at
// most.
func (c *Cache) CreditRules() {
	for i, mf := range c.touched {
		mf.Credit()
		c.touched[i] = nil
	}
	c.touched = c.touched[:0]
}

// Flush empties the exact-match cache and the megaflow classifier.
func (c *Cache) Flush() {
	c.emc.Flush()
	c.mfs.Flush()
}
