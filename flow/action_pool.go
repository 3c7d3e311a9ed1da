package flow

import (
	"slices"
	"unsafe"
	"weak"
)

// actionPool lets the rules of a table that have the same action list
// share one copy of it: OVN gives most of a table's rules one of a few
// lists (resubmit to the next table, set a register bit and resubmit), and
// an Action is 80 bytes. The pool holds its lists weakly: a list that no
// rule has any more is collected as usual, and its entry is dropped when
// the pool next meets it or is next pruned. A shared list is never
// changed (rules are immutable once published); its capacity is its
// length, so that an append copies it.
//
// The pool carves its copies out of chunks of a few actions (chunk)
// rather than allocating each alone: an add-flows request's parsed
// actions die once the rules are added, and copies allocated one by one
// among them would keep the heap's pages half empty. A chunk is freed,
// and its lists' entries dropped, once no rule holds any of its lists.
//
// It is not safe for concurrent use; the table's writers use it under the
// table's mutex.
type actionPool struct {
	lists map[uint64][]pooledActions // by hashActions
	n     int                        // entries in lists
	prune int                        // n at which to drop dead entries next
	chunk []Action                   // the rest of the chunk that copies come from
}

type pooledActions struct {
	first weak.Pointer[Action] // the list's first action
	len   int
}

// minPrune is the fewest entries at which the pool drops dead entries.
const minPrune = 1024

// poolChunk is the number of actions in a chunk (about a kilobyte), and
// the most that a list a rule holds keeps from being freed.
const poolChunk = 12

// share returns a list equal to as (element by element, learn and ct
// actions by what they say: see actionsEqual) that the pool holds: one it
// has, or a copy of as that it keeps from now on.
func (p *actionPool) share(as []Action) []Action {
	if len(as) == 0 {
		return slices.Clone(as)
	}
	if p.lists == nil {
		p.lists = make(map[uint64][]pooledActions)
	}
	h := hashActions(as)
	bucket := p.lists[h]
	live := bucket[:0]
	var found []Action
	for _, e := range bucket {
		first := e.first.Value()
		if first == nil {
			p.n--
			continue // collected
		}
		live = append(live, e)
		if l := unsafe.Slice(first, e.len); found == nil && actionsEqual(l, as) {
			found = l[:e.len:e.len]
		}
	}
	clear(bucket[len(live):])
	if found == nil {
		if len(p.chunk) < len(as) {
			p.chunk = make([]Action, max(poolChunk, len(as)))
		}
		found = p.chunk[:len(as):len(as)]
		p.chunk = p.chunk[len(as):]
		copy(found, as)
		live = append(live, pooledActions{first: weak.Make(&found[0]), len: len(found)})
		p.n++
	}
	p.lists[h] = live
	if p.n >= max(p.prune, minPrune) {
		p.pruneDead()
	}
	return found
}

// pruneDead drops the entries of collected lists.
func (p *actionPool) pruneDead() {
	for h, bucket := range p.lists {
		live := bucket[:0]
		for _, e := range bucket {
			if e.first.Value() != nil {
				live = append(live, e)
			}
		}
		clear(bucket[len(live):])
		if len(live) == 0 {
			delete(p.lists, h)
		} else {
			p.lists[h] = live
		}
	}
	p.n = 0
	for _, bucket := range p.lists {
		p.n += len(bucket)
	}
	p.prune = 2 * p.n
}

// hashActions hashes an action list by the fields that tell actions
// apart; lists that are equal hash alike.
func hashActions(as []Action) uint64 {
	h := uint64(len(as))
	mix := func(v uint64) {
		h = (h ^ v) * 0x9e3779b97f4a7c15
		h ^= h >> 29
	}
	for i := range as {
		a := &as[i]
		mix(uint64(a.Type) | uint64(a.Field)<<8 | uint64(a.Spelling)<<16 | uint64(a.Named)<<24 | uint64(a.Port)<<32)
		mix(a.Value)
		mix(a.Mask ^ uint64(a.Table)<<56 ^ uint64(len(a.Note))<<32)
		mix(uint64(a.Src.Field) | uint64(a.Src.Ofs)<<8 | uint64(a.Src.NBits)<<16 |
			uint64(a.Dst.Field)<<24 | uint64(a.Dst.Ofs)<<32 | uint64(a.Dst.NBits)<<40)
	}
	return h
}
