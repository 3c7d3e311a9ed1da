package flow

import "iter"

// The rule table's indexes are keyed by hashes of keys rather than by the
// keys themselves: a Key is 192 bytes, and a map keyed by it costs more
// than 200 bytes per entry, which with 100,000 rules and an index per
// lookup stage was most of the table's memory. Each index entry refers to
// a rule, whose key is compared on a hash match.

// hashKeyWords hashes the words of k under mask m that words lists (the
// words where m is not zero), with seed.
func hashKeyWords(k, m *Key, words []uint8, seed uint64) uint64 {
	kw, mw := k.Words(), m.Words()
	h := seed ^ 0x243f6a8885a308d3
	for _, i := range words {
		h = (h ^ kw[i]&mw[i]) * 0x9e3779b97f4a7c15
		h ^= h >> 29
	}
	return h ^ h>>32
}

// allWords lists every word of a key.
var allWords = func() []uint8 {
	w := make([]uint8, KeyWords)
	for i := range w {
		w[i] = uint8(i)
	}
	return w
}()

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

// equalUnderWords reports whether k and key agree under mask on the words
// listed (every word where mask is not zero).
func equalUnderWords(k, key, mask *Key, words []uint8) bool {
	kw, rw, mw := k.Words(), key.Words(), mask.Words()
	for _, i := range words {
		if (kw[i]^rw[i])&mw[i] != 0 {
			return false
		}
	}
	return true
}

// ruleKeyHash hashes a rule's key k (under its group's mask, whose words
// that are not zero are words; k is zero elsewhere) and priority; a
// variable so that tests can make every key collide.
var ruleKeyHash = func(k *Key, priority uint16, words []uint8) uint64 {
	return hashKeyWords(k, &onesKey, words, uint64(priority))
}

// onesKey is a mask with every bit set.
var onesKey = func() Key {
	var k Key
	for i := range k.Words() {
		k.Words()[i] = ^uint64(0)
	}
	return k
}()

// ruleSet is a group's rules by key and priority (ruleKey): an
// open-addressing hash table (linear probing, at most three quarters
// full) of the rules, with the high half of each one's hash beside it so
// that a probe reads a rule only when the halves agree. The hash reads
// only the words of the group's mask that are not zero (words): the other
// words of the group's keys are zero. A key's first slot is the top bits
// of its hash, so that the table is rebuilt from the halves alone, without
// reading the rules. A deleted rule leaves a marker (deletedRule) until
// the next rebuild, so that a loop over the rules may delete the one it
// is given. The zero value is empty; a set without words is correct, but
// every key hashes alike.
type ruleSet struct {
	words []uint8
	rules []*Rule  // nil: empty; &deletedRule: deleted
	tags  []uint32 // the high half of the hash of rules[i]'s key
	shift uint8    // 64 - log2(len(rules)): a hash's first slot is h >> shift
	n     int      // rules held
	dead  int      // deleted markers
	timed int      // rules held with an idle or a hard timeout
}

// deletedRule marks a ruleSet's slot whose rule was deleted.
var deletedRule Rule

// newRuleSet returns an empty set for the rules under mask.
func newRuleSet(mask *Key) ruleSet {
	return ruleSet{words: maskWords(mask)}
}

func (r *Rule) hasKey(k *Key, priority uint16) bool {
	return r.Priority == priority && r.Match.Key == *k
}

// hash returns the hash of the rule key k, priority.
func (s *ruleSet) hash(k *Key, priority uint16) uint64 {
	return ruleKeyHash(k, priority, s.words)
}

// slot returns the slot of the rule with key k and priority, whose hash
// is h, or -1.
func (s *ruleSet) slot(h uint64, k *Key, priority uint16) int {
	if s.n == 0 {
		return -1
	}
	tag, m := uint32(h>>32), len(s.rules)-1
	for j := int(h >> s.shift); ; j = (j + 1) & m {
		r := s.rules[j]
		if r == nil {
			return -1
		}
		if s.tags[j] == tag && r != &deletedRule && r.hasKey(k, priority) {
			return j
		}
	}
}

// find returns the rule with key k and priority (nil if none) and the
// hash of the two, for a set that follows.
func (s *ruleSet) find(k *Key, priority uint16) (uint64, *Rule) {
	h := s.hash(k, priority)
	if j := s.slot(h, k, priority); j >= 0 {
		return h, s.rules[j]
	}
	return h, nil
}

// set sets the rule with key k and priority, whose hash is h, to r.
func (s *ruleSet) set(h uint64, k *Key, priority uint16, r *Rule) {
	s.timed += timed(r)
	if j := s.slot(h, k, priority); j >= 0 {
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

// get returns the rule with key rk, or nil.
func (s *ruleSet) get(rk ruleKey) *Rule {
	_, r := s.find(&rk.key, rk.priority)
	return r
}

// put sets the rule with key rk, which must be r's key, to r.
func (s *ruleSet) put(rk ruleKey, r *Rule) {
	s.set(s.hash(&rk.key, rk.priority), &rk.key, rk.priority, r)
}

// del removes the rule with key rk, if there is one.
func (s *ruleSet) del(rk ruleKey) {
	if j := s.slot(s.hash(&rk.key, rk.priority), &rk.key, rk.priority); j >= 0 {
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

// all yields every rule with its key. The loop body may put or delete the
// rule it is given.
func (s *ruleSet) all() iter.Seq2[ruleKey, *Rule] {
	return func(yield func(ruleKey, *Rule) bool) {
		for _, r := range s.rules {
			if r != nil && r != &deletedRule && !yield(ruleKey{key: r.Match.Key, priority: r.Priority}, r) {
				return
			}
		}
	}
}

// values yields every rule. The loop body may put or delete the rule it
// is given.
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
// whose key equals a packet's under one mask. It is an open-addressing
// hash table (linear probing) of slots at most three quarters full; a
// slot holds the high half of the key's hash and the rule's index in the
// subtable plus one (0: empty).
type keyIndex struct {
	slots []uint64
	n     int // keys held
	mask  *Key
	words []uint8 // the words where mask is not zero
}

// newKeyIndex returns an empty index under mask. It grows as keys are
// added: an early stage's mask often gives many rules one key.
func newKeyIndex(mask *Key) keyIndex {
	return keyIndex{slots: make([]uint64, 4), mask: mask, words: maskWords(mask)}
}

// add indexes rules[i] under its key unless a rule with the same key is
// indexed already.
func (x *keyIndex) add(rules []*Rule, i int) {
	k := &rules[i].Match.Key
	h := hashKeyWords(k, x.mask, x.words, 0)
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
		if s&^0xffffffff == tag && equalUnderWords(k, &rules[uint32(s)-1].Match.Key, x.mask, x.words) {
			return
		}
	}
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
		h := hashKeyWords(&rules[uint32(s)-1].Match.Key, x.mask, x.words, 0)
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
	h := hashKeyWords(k, x.mask, x.words, 0)
	tag := h &^ 0xffffffff
	m := uint64(len(x.slots) - 1)
	for j := h & m; ; j = (j + 1) & m {
		s := x.slots[j]
		if s == 0 {
			return nil
		}
		if s&^0xffffffff == tag {
			if r := rules[uint32(s)-1]; equalUnderWords(k, &r.Match.Key, x.mask, x.words) {
				return r
			}
		}
	}
}
