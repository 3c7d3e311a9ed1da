package flow

import (
	"iter"
	"slices"
)

// The rule table's indexes are keyed by hashes of keys rather than by the
// keys themselves: a Key is hundreds of bytes, and a map keyed by it costs
// more than that per entry. Each index entry refers to a rule, whose key
// words (rule_match.go) are compared on a hash match.

// maskWords lists the words where m is not zero.
func maskWords(m *Key) []uint8 {
	var out []uint8
	for i, w := range m.Words() {
		if w != 0 {
			out = append(out, uint8(i))
		}
	}
	return out
}

// ruleKeyHash hashes a rule's key words and priority; a variable so that
// tests can make every key collide.
var ruleKeyHash = func(vals []uint64, priority uint16) uint64 {
	return hashVals(vals, uint64(priority))
}

// ruleSet is a group's rules by key and priority: an open-addressing
// hash table (linear probing, at most three quarters full) of the rules,
// with the high half of each one's hash beside it so that a probe reads a
// rule only when the halves agree. A key is given as its words under the
// group's mask (as a rule keeps them). A key's first slot is the top bits
// of its hash, so that the table is rebuilt from the halves alone, without
// reading the rules. A deleted rule leaves a marker (deletedRule) until
// the next rebuild, so that a loop over the rules may delete the one it
// is given. The zero value is empty.
type ruleSet struct {
	rules []*Rule  // nil: empty; &deletedRule: deleted
	tags  []uint32 // the high half of the hash of rules[i]'s key
	shift uint8    // 64 - log2(len(rules)): a hash's first slot is h >> shift
	n     int      // rules held
	dead  int      // deleted markers
	timed int      // rules held with an idle or a hard timeout
}

// deletedRule marks a ruleSet's slot whose rule was deleted.
var deletedRule Rule

func (r *Rule) hasKey(vals []uint64, priority uint16) bool {
	return r.Priority == priority && slices.Equal(r.vals, vals)
}

// slot returns the slot of the rule with key words vals and priority,
// whose hash is h, or -1.
func (s *ruleSet) slot(h uint64, vals []uint64, priority uint16) int {
	if s.n == 0 {
		return -1
	}
	tag, m := uint32(h>>32), len(s.rules)-1
	for j := int(h >> s.shift); ; j = (j + 1) & m {
		r := s.rules[j]
		if r == nil {
			return -1
		}
		if s.tags[j] == tag && r != &deletedRule && r.hasKey(vals, priority) {
			return j
		}
	}
}

// find returns the rule with key words vals and priority (nil if none)
// and the hash of the two, for a set that follows.
func (s *ruleSet) find(vals []uint64, priority uint16) (uint64, *Rule) {
	h := ruleKeyHash(vals, priority)
	if j := s.slot(h, vals, priority); j >= 0 {
		return h, s.rules[j]
	}
	return h, nil
}

// set sets the rule with key words vals and priority, whose hash is h,
// to r.
func (s *ruleSet) set(h uint64, vals []uint64, priority uint16, r *Rule) {
	s.timed += timed(r)
	if j := s.slot(h, vals, priority); j >= 0 {
		s.timed -= timed(s.rules[j])
		s.rules[j] = r
		return
	}
	if 4*(s.n+s.dead+1) > 3*len(s.rules) {
		s.rebuild()
	}
	tag, m := uint32(h>>32), len(s.rules)-1
	j := int(h >> s.shift)
	for s.rules[j] != nil && s.rules[j] != &deletedRule {
		j = (j + 1) & m
	}
	if s.rules[j] == &deletedRule {
		s.dead--
	}
	s.rules[j], s.tags[j] = r, tag
	s.n++
}

// rebuild makes room for one more rule: a table at most half full,
// without deleted markers.
func (s *ruleSet) rebuild() {
	size, shift := 8, uint8(61)
	for 2*(s.n+1) > size {
		size, shift = 2*size, shift-1
	}
	rules, tags := s.rules, s.tags
	s.rules, s.tags, s.shift, s.dead = make([]*Rule, size), make([]uint32, size), shift, 0
	m := size - 1
	for i, r := range rules {
		if r == nil || r == &deletedRule {
			continue
		}
		j := int(uint64(tags[i]) << 32 >> shift)
		for s.rules[j] != nil {
			j = (j + 1) & m
		}
		s.rules[j], s.tags[j] = r, tags[i]
	}
}

// get returns the rule with key words vals and priority, or nil.
func (s *ruleSet) get(vals []uint64, priority uint16) *Rule {
	_, r := s.find(vals, priority)
	return r
}

// put sets the rule with r's key and priority to r.
func (s *ruleSet) put(r *Rule) {
	s.set(ruleKeyHash(r.vals, r.Priority), r.vals, r.Priority, r)
}

// del removes the rule with key words vals and priority, if there is one.
func (s *ruleSet) del(vals []uint64, priority uint16) {
	if j := s.slot(ruleKeyHash(vals, priority), vals, priority); j >= 0 {
		s.timed -= timed(s.rules[j])
		s.rules[j] = &deletedRule
		s.n--
		s.dead++
	}
}

func (s *ruleSet) len() int { return s.n }

// timed returns 1 if r has an idle or a hard timeout of its own, else 0.
func timed(r *Rule) int {
	if r.IdleTimeout != 0 || r.HardTimeout != 0 {
		return 1
	}
	return 0
}

// values yields every rule. The loop body may put (a rule of the same
// key) or delete the rule it is given.
func (s *ruleSet) values() iter.Seq[*Rule] {
	return func(yield func(*Rule) bool) {
		for _, r := range s.rules {
			if r != nil && r != &deletedRule && !yield(r) {
				return
			}
		}
	}
}

// keyIndex finds, among a subtable's rules, the first (in lookup order)
// whose key equals a packet's under one mask (a stage's, which covers no
// bit outside the subtable's). It is an open-addressing hash table
// (linear probing) of slots at most three quarters full; a slot holds the
// high half of the key's hash and the rule's index in the subtable plus
// one (0: empty).
type keyIndex struct {
	slots []uint64
	n     int // keys held
	sel   []keyWord
}

// keyWord is a word of a keyIndex's mask that is not zero: the word of
// the key, its place among a rule's words, and the mask's bits there.
type keyWord struct {
	word, pos uint8
	bits      uint64
}

// stageWords returns the words where mask, a part of rm's mask, is not
// zero.
func stageWords(mask *Key, rm *ruleMask) []keyWord {
	var sel []keyWord
	mw := mask.Words()
	for pos, w := range rm.words {
		if mw[w] != 0 {
			sel = append(sel, keyWord{word: w, pos: uint8(pos), bits: mw[w]})
		}
	}
	return sel
}

// hashPacket hashes packet key k under sel; hashRule hashes a rule's key
// words under sel alike.
func hashPacket(k *Key, sel []keyWord) uint64 {
	kw := k.Words()
	h := uint64(0x243f6a8885a308d3)
	for _, s := range sel {
		h = (h ^ kw[s.word]&s.bits) * 0x9e3779b97f4a7c15
		h ^= h >> 29
	}
	return h ^ h>>32
}

func hashRule(vals []uint64, sel []keyWord) uint64 {
	h := uint64(0x243f6a8885a308d3)
	for _, s := range sel {
		h = (h ^ vals[s.pos]&s.bits) * 0x9e3779b97f4a7c15
		h ^= h >> 29
	}
	return h ^ h>>32
}

// packetIs reports whether packet key k equals the rule key words vals
// under sel.
func packetIs(k *Key, vals []uint64, sel []keyWord) bool {
	kw := k.Words()
	for _, s := range sel {
		if (kw[s.word]^vals[s.pos])&s.bits != 0 {
			return false
		}
	}
	return true
}

// newKeyIndex returns an empty index under mask, a part of rm's, with
// slots when hashed (else only its words, for a scan). It grows as keys
// are added: an early stage's mask often gives many rules one key.
func newKeyIndex(mask *Key, rm *ruleMask, hashed bool) keyIndex {
	return newKeyIndexFor(mask, rm, hashed, 0)
}

// newKeyIndexFor is newKeyIndex with room for n keys from the start: the
// last stage's index, whose mask is the whole mask, holds about a key
// per rule.
func newKeyIndexFor(mask *Key, rm *ruleMask, hashed bool, n int) keyIndex {
	x := keyIndex{sel: stageWords(mask, rm)}
	if hashed {
		size := 4
		for 3*size < 4*n+4 {
			size *= 2
		}
		x.slots = make([]uint64, size)
	}
	return x
}

// add indexes rules[i] under its key unless a rule with the same key is
// indexed already.
func (x *keyIndex) add(rules []*Rule, i int) {
	vals := rules[i].vals
	h := hashRule(vals, x.sel)
	tag := h &^ 0xffffffff
	m := uint64(len(x.slots) - 1)
	for j := h & m; ; j = (j + 1) & m {
		s := x.slots[j]
		if s == 0 {
			x.slots[j] = tag | uint64(i+1)
			x.n++
			if 4*x.n > 3*len(x.slots) {
				x.grow(rules)
			}
			return
		}
		if s&^0xffffffff == tag && sameUnder(vals, rules[uint32(s)-1].vals, x.sel) {
			return
		}
	}
}

// sameUnder reports whether two rules' key words agree under sel.
func sameUnder(a, b []uint64, sel []keyWord) bool {
	for _, s := range sel {
		if (a[s.pos]^b[s.pos])&s.bits != 0 {
			return false
		}
	}
	return true
}

// grow doubles the slots.
func (x *keyIndex) grow(rules []*Rule) {
	old := x.slots
	x.slots = make([]uint64, 2*len(old))
	m := uint64(len(x.slots) - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		h := hashRule(rules[uint32(s)-1].vals, x.sel)
		j := h & m
		for x.slots[j] != 0 {
			j = (j + 1) & m
		}
		x.slots[j] = s
	}
}

// find returns the first rule of rules whose key equals k's under the
// index's mask, or nil.
func (x *keyIndex) find(rules []*Rule, k *Key) *Rule {
	h := hashPacket(k, x.sel)
	tag := h &^ 0xffffffff
	m := uint64(len(x.slots) - 1)
	for j := h & m; ; j = (j + 1) & m {
		s := x.slots[j]
		if s == 0 {
			return nil
		}
		if s&^0xffffffff == tag {
			if r := rules[uint32(s)-1]; packetIs(k, r.vals, x.sel) {
				return r
			}
		}
	}
}
