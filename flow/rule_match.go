package flow

import (
	"encoding/binary"
	"slices"
	"sync/atomic"
)

// A rule's match is held compactly. A Match is two whole keys (528 bytes
// with the connection tracking fields, and more as the key grows), but a
// rule matches on a few fields: its mask is shared with every rule of its
// group (the rules of one table with that mask), and the rule keeps only
// the words of its key where that mask is not zero. What a rule costs so
// grows with the fields it matches, not with the size of the key.

// ruleMask is a mask that rules share, with the words where it is not
// zero.
type ruleMask struct {
	mask  Key
	words []uint8 // the words where mask is not zero, ascending
	// small is what every small subtable under the mask shares, made
	// by the first (buildSubtable).
	small atomic.Pointer[smallStages]
}

func newRuleMask(m *Key) *ruleMask {
	return &ruleMask{mask: *m, words: maskWords(m)}
}

// Match returns the rule's match: its key and mask, as add-flow gave
// them (normalized).
func (r *Rule) Match() Match {
	var m Match
	m.Mask = r.mask.mask
	r.keyInto(&m.Key)
	return m
}

// Flow returns the flow that installs the rule as it is: its match,
// priority, table, actions, cookie, timeouts and flags.
func (r *Rule) Flow() Flow {
	return Flow{
		Match:       r.Match(),
		Priority:    r.Priority,
		Table:       r.Table,
		Actions:     r.Actions,
		Cookie:      r.Cookie,
		IdleTimeout: r.IdleTimeout,
		HardTimeout: r.HardTimeout,
		Flags:       r.Flags,
	}
}

// MatchKey returns a string that identifies the rule's match: two rules
// have equal MatchKeys exactly when they have equal matches. It is a few
// bytes per key word the rule holds, where a Match is two whole keys, for
// maps of many rules keyed by their matches.
func (r *Rule) MatchKey() string {
	b := make([]byte, 0, 17*len(r.mask.words))
	for i, w := range r.mask.words {
		b = append(b, w)
		b = binary.LittleEndian.AppendUint64(b, r.mask.mask.Words()[w])
		b = binary.LittleEndian.AppendUint64(b, r.vals[i])
	}
	return string(b)
}

// Catchall reports whether the rule matches every packet.
func (r *Rule) Catchall() bool {
	return len(r.mask.words) == 0
}

// keyInto writes the rule's key into dst, which must be zero.
func (r *Rule) keyInto(dst *Key) {
	d := dst.Words()
	for i, w := range r.mask.words {
		d[w] = r.vals[i]
	}
}

// keyIs reports whether the rule's key is k, a key normalized under the
// rule's mask.
func (r *Rule) keyIs(k *Key) bool {
	kw := k.Words()
	for i, w := range r.mask.words {
		if r.vals[i] != kw[w] {
			return false
		}
	}
	return true
}

// sameMatch reports whether r and o have the same match.
func (r *Rule) sameMatch(o *Rule) bool {
	return (r.mask == o.mask || r.mask.mask == o.mask.mask) && slices.Equal(r.vals, o.vals)
}

// compactKey writes the words of k (normalized under rm's mask) where the
// mask is not zero into dst, which must have room for them, and returns
// them.
func compactKey(dst []uint64, k *Key, rm *ruleMask) []uint64 {
	dst = dst[:len(rm.words)]
	kw := k.Words()
	for i, w := range rm.words {
		dst[i] = kw[w]
	}
	return dst
}

// ruleVals returns the words of k under rm as a rule keeps them, cut from
// slab (nil: allocated on their own).
func ruleVals(k *Key, rm *ruleMask, slab *valSlab) []uint64 {
	if len(rm.words) == 0 {
		return nil
	}
	if slab != nil {
		return compactKey(slab.take(len(rm.words)), k, rm)
	}
	return compactKey(make([]uint64, len(rm.words)), k, rm)
}

// hashVals hashes a rule's key words with seed.
func hashVals(vals []uint64, seed uint64) uint64 {
	h := seed ^ 0x243f6a8885a308d3
	for _, v := range vals {
		h = (h ^ v) * 0x9e3779b97f4a7c15
		h ^= h >> 29
	}
	return h ^ h>>32
}

// valSlab and ruleSlab hand out the key words, the rules and their
// counters of a batch of adds from chunks, so that adding a file of flows
// makes a few large allocations rather than three small ones per rule.
// A chunk lives as long as any rule cut from it: it never holds more
// memory than the rules cut from it took when they were added. Only
// batches use them; rules added one by one (learned flows, which come and
// go) are allocated one by one, so that a few long-lived ones cannot keep
// whole chunks alive.
type valSlab struct {
	free []uint64
}

const valChunk = 1024 // words

func (s *valSlab) take(n int) []uint64 {
	if len(s.free) < n {
		s.free = make([]uint64, max(valChunk, n))
	}
	out := s.free[:n:n]
	s.free = s.free[n:]
	return out
}

type ruleSlab struct {
	rules []Rule
	stats []ruleStats
	left  int // rules still to come: no chunk is bigger
}

const ruleChunk = 256

func (s *ruleSlab) take() (*Rule, *ruleStats) {
	if len(s.rules) == 0 {
		n := min(ruleChunk, max(s.left, 1))
		s.rules, s.stats = make([]Rule, n), make([]ruleStats, n)
	}
	r, st := &s.rules[0], &s.stats[0]
	s.rules, s.stats = s.rules[1:], s.stats[1:]
	s.left--
	return r, st
}

// FlowBatch is flows to add to a Table in one AddBatch, held in the form
// the table keeps them: a file of 100,000 flows need not be held as Flows
// (each carries two whole keys) before it is added. The zero value is an
// empty batch. A batch is added once; it is not safe for concurrent use.
type FlowBatch struct {
	rules []*Rule
	masks map[Key]*ruleMask
	last  *ruleMask
	vals  valSlab
	slab  ruleSlab
}

// Grow makes room for n more flows.
func (b *FlowBatch) Grow(n int) {
	b.rules = slices.Grow(b.rules, n)
	b.slab.left += n
}

// Len returns the number of flows in the batch.
func (b *FlowBatch) Len() int { return len(b.rules) }

// Append moves the flows of o to the end of b; o must not be used again.
func (b *FlowBatch) Append(o *FlowBatch) {
	b.rules = append(b.rules, o.rules...)
	*o = FlowBatch{}
}

// Add appends f to the batch. It keeps f.Actions (which the caller must
// not change afterwards) and copies the rest.
func (b *FlowBatch) Add(f *Flow) {
	var k Key
	f.Match.Key.Masked(&f.Match.Mask, &k)
	rm := b.last
	if rm == nil || rm.mask != f.Match.Mask {
		if b.last != nil && b.masks == nil {
			b.masks = map[Key]*ruleMask{b.last.mask: b.last}
		}
		if rm = b.masks[f.Match.Mask]; rm == nil {
			rm = newRuleMask(&f.Match.Mask)
			if b.masks != nil {
				b.masks[f.Match.Mask] = rm
			}
		}
		b.last = rm
	}
	if b.slab.left <= 0 && len(b.rules) > 0 {
		// A batch of flows that come one at a time, as a bundle's
		// adds do, with no Grow: its chunks grow with it, each as
		// big as the batch so far (up to ruleChunk), so that a
		// batch of a few flows takes little more than they need and
		// one of 100,000 takes a few hundred chunks.
		b.slab.left = len(b.rules) + 1
	}
	// Flows one at a time take their words on their own, batches from a
	// shared chunk.
	var vals *valSlab
	if b.slab.left > 1 {
		vals = &b.vals
	}
	r, st := b.slab.take()
	*r = Rule{
		Priority:    f.Priority,
		Table:       f.Table,
		Flags:       f.Flags,
		IdleTimeout: f.IdleTimeout,
		HardTimeout: f.HardTimeout,
		Cookie:      f.Cookie,
		Actions:     f.Actions,
		stats:       st,
		mask:        rm,
		vals:        ruleVals(&k, rm, vals),
	}
	if r.Table == TableAll {
		r.Table = 0
	}
	b.rules = append(b.rules, r)
}

// newRule returns f as a rule under mask rm, allocated on its own.
func newRule(f *Flow, rm *ruleMask) *Rule {
	var k Key
	f.Match.Key.Masked(&f.Match.Mask, &k)
	r := &Rule{
		Priority:    f.Priority,
		Table:       f.Table,
		Flags:       f.Flags,
		IdleTimeout: f.IdleTimeout,
		HardTimeout: f.HardTimeout,
		Cookie:      f.Cookie,
		Actions:     f.Actions,
		stats:       new(ruleStats),
		mask:        rm,
		vals:        ruleVals(&k, rm, nil),
	}
	if r.Table == TableAll {
		r.Table = 0
	}
	return r
}
