package flow

import (
	"unsafe"
)

// TableSnapshot is an immutable view of a Table at one generation. Any
// number of goroutines may use it at once without locks.
//
// The rules are organised for tuple-space search: one subtable per distinct
// mask, sorted by the best rule they hold (priority descending, then install
// order), so that a lookup can stop at the first subtable whose best rule
// cannot beat the match it already has.
type TableSnapshot struct {
	gen    uint64
	n      int
	tables [MaxTable + 1][]*tableSubtable // each table's subtables, in lookup order
	conj   [MaxTable + 1]bool             // the table has clause flows (conj.go)

	ofGroups map[uint32]*InstalledGroup // the OpenFlow groups (read-only)
	live     PortLiveness               // nil: no port is live
}

// Generation returns the generation the snapshot was published under.
func (s *TableSnapshot) Generation() uint64 { return s.gen }

// Len returns the number of rules in the snapshot.
func (s *TableSnapshot) Len() int { return s.n }

// tableSubtable holds the rules that share one mask.
type tableSubtable struct {
	mask  Key
	rules []*Rule // lookup order: priority descending, then install order

	// stages is nil for a subtable searched rule by rule. Otherwise it holds
	// one entry per lookup stage that the mask touches, in stage order; the
	// last stage's mask is the whole mask and its best map holds, for each
	// masked key, the rule that wins among the rules with that key.
	stages []tableStage
	best   map[Key]*Rule

	conj bool // some rule is a clause flow (conj.go)
}

// tableStage is one stage of a staged subtable: the mask of this and all
// earlier stages, and the set of the rules' keys under that mask.
type tableStage struct {
	mask Key
	keys map[Key]struct{} // nil for the last stage, which uses best
}

// The lookup stages, as in Open vSwitch's classifier: metadata, L2, L3, L4.
// A rule that differs from the packet early is told apart by the early
// fields alone.
const (
	stageMeta = iota
	stageL2
	stageL3
	stageL4
	numStages
)

// keySegment is the part of one field (or of a field that spans two words,
// one of its two parts) that lies in one key word.
type keySegment struct {
	word  int
	bits  uint64
	field int // segments of one field (one that spans two words) share it
}

var (
	// stageBits are the key bits of each stage's fields.
	stageBits [numStages]Key
	// keySegments are the key's field segments in stage order. A lookup
	// that must prove a rule does not match consults one field of it (the
	// segments of that field).
	keySegments []keySegment
)

func init() {
	var k Key
	type field struct {
		stage     int
		off, size uintptr
	}
	fields := []field{
		{stageMeta, unsafe.Offsetof(k.InPort), unsafe.Sizeof(k.InPort)},
		{stageMeta, unsafe.Offsetof(k.Metadata), unsafe.Sizeof(k.Metadata)},
		{stageMeta, unsafe.Offsetof(k.PktMark), unsafe.Sizeof(k.PktMark)},
		{stageMeta, unsafe.Offsetof(k.ConjID), unsafe.Sizeof(k.ConjID)},

		{stageL2, unsafe.Offsetof(k.DlDst), unsafe.Sizeof(k.DlDst)},
		{stageL2, unsafe.Offsetof(k.DlSrc), unsafe.Sizeof(k.DlSrc)},
		{stageL2, unsafe.Offsetof(k.DlType), unsafe.Sizeof(k.DlType)},
		{stageL2, unsafe.Offsetof(k.VLANs), 2},     // outer TPID
		{stageL2, unsafe.Offsetof(k.VLANs) + 2, 2}, // outer TCI
		{stageL2, unsafe.Offsetof(k.VLANs) + 4, 2}, // inner TPID
		{stageL2, unsafe.Offsetof(k.VLANs) + 6, 2}, // inner TCI

		{stageL3, unsafe.Offsetof(k.NwSrc), unsafe.Sizeof(k.NwSrc)},
		{stageL3, unsafe.Offsetof(k.NwDst), unsafe.Sizeof(k.NwDst)},
		{stageL3, unsafe.Offsetof(k.NwProto), unsafe.Sizeof(k.NwProto)},
		{stageL3, unsafe.Offsetof(k.NwFrag), unsafe.Sizeof(k.NwFrag)},
		{stageL3, unsafe.Offsetof(k.NwTos), unsafe.Sizeof(k.NwTos)},
		{stageL3, unsafe.Offsetof(k.NwTTL), unsafe.Sizeof(k.NwTTL)},
		{stageL3, unsafe.Offsetof(k.IPv6Src), unsafe.Sizeof(k.IPv6Src)},
		{stageL3, unsafe.Offsetof(k.IPv6Dst), unsafe.Sizeof(k.IPv6Dst)},
		{stageL3, unsafe.Offsetof(k.IPv6Label), unsafe.Sizeof(k.IPv6Label)},
		{stageL3, unsafe.Offsetof(k.ArpSha), unsafe.Sizeof(k.ArpSha)},
		{stageL3, unsafe.Offsetof(k.ArpTha), unsafe.Sizeof(k.ArpTha)},

		{stageL4, unsafe.Offsetof(k.TpSrc), unsafe.Sizeof(k.TpSrc)},
		{stageL4, unsafe.Offsetof(k.TpDst), unsafe.Sizeof(k.TpDst)},
		{stageL4, unsafe.Offsetof(k.TcpFlags), unsafe.Sizeof(k.TcpFlags)},
		{stageL4, unsafe.Offsetof(k.NdTarget), unsafe.Sizeof(k.NdTarget)},
	}
	for i := range NumRegs {
		fields = append(fields, field{stageMeta, unsafe.Offsetof(k.Regs) + uintptr(4*i), 4})
	}
	// Build each field's bits by setting its bytes in a zero key, so the
	// segments are right whatever the machine's byte order.
	for stage := range numStages {
		for fi, f := range fields {
			if f.stage != stage {
				continue
			}
			var bits Key
			b := unsafe.Slice((*byte)(unsafe.Pointer(&bits)), unsafe.Sizeof(bits))
			for i := f.off; i < f.off+f.size; i++ {
				b[i] = 0xff
			}
			for w, v := range bits.Words() {
				if v != 0 {
					keySegments = append(keySegments, keySegment{word: w, bits: v, field: fi})
					stageBits[stage].Words()[w] |= v
				}
			}
		}
	}
}

// buildSubtable builds the lookup form of g's rules.
func buildSubtable(g *ruleGroup, linearMax int) *tableSubtable {
	st := &tableSubtable{mask: g.mask}
	for _, r := range g.rules {
		st.rules = append(st.rules, r)
	}
	sortRules(st.rules)
	for _, r := range st.rules {
		st.conj = st.conj || conjunctive(r.Actions)
	}
	if len(st.rules) <= linearMax {
		return st
	}

	var cum Key
	for stage := range numStages {
		var delta Key
		g.mask.Masked(&stageBits[stage], &delta)
		if delta == (Key{}) {
			continue
		}
		cw, dw := cum.Words(), delta.Words()
		for i := range cw {
			cw[i] |= dw[i]
		}
		st.stages = append(st.stages, tableStage{mask: cum, keys: make(map[Key]struct{})})
	}
	if len(st.stages) == 0 {
		// A catch-all mask: every rule matches every packet.
		st.stages = append(st.stages, tableStage{})
	}
	last := len(st.stages) - 1
	st.stages[last].keys = nil
	st.best = make(map[Key]*Rule, len(st.rules))
	for _, r := range st.rules {
		for i := range st.stages[:last] {
			var mk Key
			r.Match.Key.Masked(&st.stages[i].mask, &mk)
			st.stages[i].keys[mk] = struct{}{}
		}
		if st.best[r.Match.Key] == nil {
			st.best[r.Match.Key] = r // rules are in lookup order: the first wins
		}
	}
	return st
}

// Lookup returns the rule that wins for a packet with key k: the matching
// rule with the highest priority, and among equal priorities the one
// installed first (by add-flow; mod-flows keeps a rule's place). It returns
// nil when no rule matches.
//
// Lookup also ORs into *wc (if wc is not nil) the key bits it consulted, so
// that every packet whose key agrees with k on all bits of *wc gets the same
// answer: *wc is the mask of a megaflow for k. Callers start from a zero wc.
//
// Why the bits suffice. Let R be the answer and p any key that agrees with k
// on wc. The linear answer for p is R when (a) R matches p and (b) no rule
// that beats R matches p; rules that R beats cannot change the answer
// whether they match p or not. (a) holds because wc covers R's whole mask
// and k matches R. For (b), take a rule S that beats R. S does not match k,
// or it would have been the answer; and Lookup visited S's subtable, because
// it stops only at a subtable whose best rule does not beat the best match
// found so far (R or a rule R beats), and the subtables are sorted by their
// best rules, so S's subtable comes before that point. Visiting it added:
//   - in a subtable searched rule by rule: for S itself (it comes before the
//     point where that subtable's rules stop beating the current best, since
//     it beats R), the mask bits of one field where k differs from S;
//     p has those bits of k, so p differs from S there;
//   - in a staged subtable: the subtable's mask up to and including the
//     first stage at which k's masked key was absent (every rule's key
//     differs from k's within those bits, so p's does too), or, if k's key
//     was present in every stage, the whole mask (then p has k's masked key,
//     and S, whose key differs from k's, differs from p's).
//
// Either way p does not match S. A rule that matched k but lost to a later
// better match had its mask added too; extra bits only narrow the megaflow.
//
// Why they are few. The subtables after one that cannot beat the current best
// are not consulted at all. A rule that does not match consults one
// field of its own mask (preferring a segment already in wc, which costs
// nothing), not its whole mask. A staged subtable that misses consults only
// the fields of the stages it reached. Only the winner's whole mask is
// always consulted.
func (s *TableSnapshot) Lookup(k *Key, wc *Key) *Rule {
	return s.LookupIn(0, k, wc)
}

// LookupIn is Lookup in table number table.
func (s *TableSnapshot) LookupIn(table uint8, k *Key, wc *Key) *Rule {
	var scratch Key
	if wc == nil {
		wc = &scratch
	}
	if int(table) >= len(s.tables) {
		return nil
	}
	if s.conj[table] {
		return s.lookupConj(table, k, wc, true)
	}
	var best *Rule
	for _, st := range s.tables[table] {
		if best != nil && !st.rules[0].beats(best) {
			// The subtables are sorted by their best rules: if this one's
			// cannot win, no later one's can.
			break
		}
		var r *Rule
		if st.stages == nil {
			r = st.lookupLinear(k, wc, best)
		} else {
			r = st.lookupStaged(k, wc)
		}
		if r != nil && (best == nil || r.beats(best)) {
			best = r
		}
	}
	return best
}

// lookupLinear returns the first of st's rules that matches k and beats
// best (nil: no current best), or nil. For each rule that it passes over, it
// ORs into wc the mask of one field where k differs from that rule.
func (st *tableSubtable) lookupLinear(k, wc *Key, best *Rule) *Rule {
	for _, r := range st.rules {
		if best != nil && !r.beats(best) {
			return nil // the rules are sorted: none after r beats best either
		}
		if r.Match.Matches(k) {
			orWords(wc, &st.mask)
			return r
		}
		consultMismatch(k, wc, &r.Match)
	}
	return nil
}

// consultMismatch ORs into wc the bits of m's mask in one field where k
// differs from m's key: all of the field's segments, as Open vSwitch
// consults a field whole. It prefers a field whose bits wc already holds,
// and otherwise takes the first in stage order. k must not match m.
func consultMismatch(k, wc *Key, m *Match) {
	kw, mk, mm, w := k.Words(), m.Key.Words(), m.Mask.Words(), wc.Words()
	first := -1
	for i, seg := range keySegments {
		bits := mm[seg.word] & seg.bits
		if (kw[seg.word]^mk[seg.word])&bits == 0 {
			continue
		}
		if bits&^w[seg.word] == 0 {
			return // already consulted: this rule costs nothing
		}
		if first < 0 {
			first = i
		}
	}
	if first >= 0 {
		// The whole field, as Open vSwitch consults it.
		for _, seg := range keySegments {
			if seg.field == keySegments[first].field {
				w[seg.word] |= mm[seg.word] & seg.bits
			}
		}
		return
	}
	// Unreachable while the segments cover every key bit (a test checks
	// that); consult the whole mask rather than be wrong.
	orWords(wc, &m.Mask)
}

// lookupStaged probes st's stages and returns the best rule whose key
// equals k's masked key, or nil. It ORs into wc the mask of the stages it
// probed.
func (st *tableSubtable) lookupStaged(k, wc *Key) *Rule {
	var mk Key
	last := len(st.stages) - 1
	for i := range st.stages[:last] {
		k.Masked(&st.stages[i].mask, &mk)
		if _, ok := st.stages[i].keys[mk]; !ok {
			orWords(wc, &st.stages[i].mask)
			return nil
		}
	}
	orWords(wc, &st.mask)
	k.Masked(&st.mask, &mk)
	return st.best[mk]
}

// orWords ORs src into dst.
func orWords(dst, src *Key) {
	d, s := dst.Words(), src.Words()
	for i := range d {
		d[i] |= s[i]
	}
}
