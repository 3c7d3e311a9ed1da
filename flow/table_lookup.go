package flow

import (
	"math/bits"
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
	gen uint64
	n   int
	// tables are the OpenFlow tables, nil for a table without rules. A
	// publication makes a new view only for the tables that changed, so
	// that a flow mod costs a copy of the chunks of pointers they are
	// in, not of every table's lists.
	tables tableViews

	ofGroups map[uint32]*InstalledGroup // the OpenFlow groups (read-only)
	live     PortLiveness               // nil: no port is live
	meters   *meterTable                // the OpenFlow meters (read-only); nil: none
	recircs  *Recircs                   // the bridge's recirculation ids (shared by every snapshot)
	tlv      *TLVMap                    // the TLV map when published: where writes to tun_metadata go
}

// tableView is one OpenFlow table in a snapshot: immutable.
type tableView struct {
	subtables []*tableSubtable    // in lookup order; never empty
	conj      bool                // the table has clause flows (conj.go)
	tries     [numTries]*trieNode // the prefix tries (trie.go)
}

// tableChunk is tableChunkLen consecutive tables' views.
type tableChunk [tableChunkLen]*tableView

const tableChunkLen = 16

// tableViews are the views of the tables 0 to MaxTable, in chunks that
// snapshots share until a publication changes a table of theirs: a
// publication after a single flow mod copies one chunk, not a pointer
// per table.
type tableViews [(MaxTable + tableChunkLen) / tableChunkLen]*tableChunk

// at returns table tb's view, nil when it has no rules.
func (v *tableViews) at(tb int) *tableView {
	if c := v[tb/tableChunkLen]; c != nil {
		return c[tb%tableChunkLen]
	}
	return nil
}

// set makes tv table tb's view in a copy of its chunk, which another
// snapshot may share.
func (v *tableViews) set(tb int, tv *tableView) {
	c := new(tableChunk)
	if old := v[tb/tableChunkLen]; old != nil {
		*c = *old
	}
	c[tb%tableChunkLen] = tv
	v[tb/tableChunkLen] = c
}

// subtables returns table tb's subtables, in lookup order.
func (s *TableSnapshot) subtables(tb int) []*tableSubtable {
	if v := s.tables.at(tb); v != nil {
		return v.subtables
	}
	return nil
}

// Generation returns the generation the snapshot was published under.
func (s *TableSnapshot) Generation() uint64 { return s.gen }

// Len returns the number of rules in the snapshot.
func (s *TableSnapshot) Len() int { return s.n }

// tableSubtable holds the rules that share one mask.
type tableSubtable struct {
	mask  Key
	rules []*Rule // lookup order: priority descending, then install order
	rm    *ruleMask

	// stages holds one entry per lookup stage that the mask touches, in
	// stage order (one stage without fields for a catch-all mask); the
	// last stage's mask is the whole mask and best holds, for each masked
	// key, the rule that wins among the rules with that key (no slots
	// when small).
	stages []tableStage
	best   keyIndex

	// triePlen is the prefix length of the mask on each trie field (0: the
	// mask is not a CIDR prefix there, and the trie does not serve it).
	triePlen [numTries]uint8
	// portsMask is the mask on tp_src:tp_dst (tp_src in the high half) and
	// portsLen the length of its prefix up to its last bit; ports holds
	// the rules' masked ports, portsLen bits each.
	portsMask uint32
	portsLen  uint8
	ports     *trieNode
	// portsOnly: the ports are the only fields of the last stage.
	portsOnly bool

	conj    bool    // some rule is a clause flow (conj.go)
	clauses []*Rule // the clause flows, for the table's writer
	// small: the subtable has so few rules that scanning them beats
	// hashing the key, and stages' keys and best have no slots (only
	// their words). The answers are the same.
	small bool
}

// smallSubtable is the most rules a small subtable has.
const smallSubtable = 8

// tableStage is one stage of a subtable: the mask of this and all earlier
// stages, and the set of the rules' keys under that mask.
type tableStage struct {
	id   int // stageMeta, stageL2, ...; -1 for a catch-all's only stage
	mask Key
	keys keyIndex // empty for the last stage, which uses best; no slots when small
}

// The lookup stages, as in Open vSwitch's classifier: metadata, L2, L3 and
// the rest (which, as there, starts at nd_target: the ND target, the ARP and
// ND hardware addresses, tcp_flags and the ports). A rule that differs from
// the packet early is told apart by the early fields alone.
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
	// keySegments are the key's field segments in stage order.
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
		// Open vSwitch's first stage holds the recirculation id and the
		// connection tracking fields too.
		{stageMeta, unsafe.Offsetof(k.RecircID), unsafe.Sizeof(k.RecircID)},
		{stageMeta, unsafe.Offsetof(k.CtState), unsafe.Sizeof(k.CtState)},
		{stageMeta, unsafe.Offsetof(k.CtZone), unsafe.Sizeof(k.CtZone)},
		{stageMeta, unsafe.Offsetof(k.CtMark), unsafe.Sizeof(k.CtMark)},
		{stageMeta, unsafe.Offsetof(k.CtLabel), unsafe.Sizeof(k.CtLabel)},
		{stageMeta, unsafe.Offsetof(k.CtNwSrc), unsafe.Sizeof(k.CtNwSrc)},
		{stageMeta, unsafe.Offsetof(k.CtNwDst), unsafe.Sizeof(k.CtNwDst)},
		{stageMeta, unsafe.Offsetof(k.CtIPv6Src), unsafe.Sizeof(k.CtIPv6Src)},
		{stageMeta, unsafe.Offsetof(k.CtIPv6Dst), unsafe.Sizeof(k.CtIPv6Dst)},
		{stageMeta, unsafe.Offsetof(k.CtNwProto), unsafe.Sizeof(k.CtNwProto)},
		{stageMeta, unsafe.Offsetof(k.CtTpSrc), unsafe.Sizeof(k.CtTpSrc)},
		{stageMeta, unsafe.Offsetof(k.CtTpDst), unsafe.Sizeof(k.CtTpDst)},
		// dp_hash too, with the padding after it, which is always 0.
		{stageMeta, unsafe.Offsetof(k.DpHash), 8},
		// The tunnel metadata is in the first stage too, as in Open vSwitch.
		{stageMeta, unsafe.Offsetof(k.TunID), unsafe.Sizeof(k.TunID)},
		{stageMeta, unsafe.Offsetof(k.TunSrc), unsafe.Sizeof(k.TunSrc)},
		{stageMeta, unsafe.Offsetof(k.TunDst), unsafe.Sizeof(k.TunDst)},
		{stageMeta, unsafe.Offsetof(k.TunIPv6Src), unsafe.Sizeof(k.TunIPv6Src)},
		{stageMeta, unsafe.Offsetof(k.TunIPv6Dst), unsafe.Sizeof(k.TunIPv6Dst)},
		{stageMeta, unsafe.Offsetof(k.TunFlags), unsafe.Sizeof(k.TunFlags)},
		{stageMeta, unsafe.Offsetof(k.TunTOS), unsafe.Sizeof(k.TunTOS)},
		{stageMeta, unsafe.Offsetof(k.TunTTL), unsafe.Sizeof(k.TunTTL)},
		{stageMeta, unsafe.Offsetof(k.TunMeta), unsafe.Sizeof(k.TunMeta)},
		{stageMeta, unsafe.Offsetof(k.TunMetaPresent), unsafe.Sizeof(k.TunMetaPresent)},

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

		// Open vSwitch's last stage starts at nd_target: the ND and ARP
		// hardware addresses and tcp_flags are in it with the ports.
		{stageL4, unsafe.Offsetof(k.NdTarget), unsafe.Sizeof(k.NdTarget)},
		{stageL4, unsafe.Offsetof(k.ArpSha), unsafe.Sizeof(k.ArpSha)},
		{stageL4, unsafe.Offsetof(k.ArpTha), unsafe.Sizeof(k.ArpTha)},
		{stageL4, unsafe.Offsetof(k.TcpFlags), unsafe.Sizeof(k.TcpFlags)},
		{stageL4, unsafe.Offsetof(k.TpSrc), unsafe.Sizeof(k.TpSrc)},
		{stageL4, unsafe.Offsetof(k.TpDst), unsafe.Sizeof(k.TpDst)},
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

// buildSubtable builds the lookup form of rules, which share mask rm; it
// takes rules over.
func buildSubtable(rm *ruleMask, rules []*Rule) *tableSubtable {
	mask := &rm.mask
	st := &tableSubtable{mask: *mask, rules: rules, rm: rm}
	sortRules(st.rules)
	for _, r := range st.rules {
		if conjunctive(r.Actions) {
			st.clauses = append(st.clauses, r)
		}
	}
	st.conj = len(st.clauses) > 0

	st.small = len(st.rules) <= smallSubtable
	if ss := rm.small.Load(); st.small && ss != nil {
		st.stages, st.best = ss.stages, ss.best
	} else {
		st.stages = newStages(rm, st.small)
		st.best = newKeyIndexFor(&st.mask, rm, !st.small, len(st.rules))
		if st.small {
			rm.small.Store(&smallStages{stages: st.stages, best: st.best})
		}
	}
	last := len(st.stages) - 1
	for j := range numTries {
		st.triePlen[j] = prefixLen32(trieValue(mask, j))
	}
	st.portsMask = portsOf(mask)
	if st.portsMask != 0 {
		st.portsLen = uint8(32 - bits.TrailingZeros32(st.portsMask))
		var rest Key
		mask.Masked(&stageBits[stageL4], &rest)
		rest.TpSrc, rest.TpDst = 0, 0
		st.portsOnly = rest == (Key{})
	}
	gen := newTrieGen() // nobody reads st.ports until st is built
	for ri, r := range st.rules {
		if st.portsLen > 0 {
			var k Key
			r.keyInto(&k)
			st.ports = trieInsertIn(st.ports, portsOf(&k), st.portsLen, gen)
		}
		if st.small {
			continue
		}
		for i := range st.stages[:last] {
			st.stages[i].keys.add(st.rules, ri)
		}
		st.best.add(st.rules, ri) // rules are in lookup order: the first wins
	}
	return st
}

// smallStages are the stages and best index of a small subtable under a
// mask: they depend on the mask alone and hold no rule (a small
// subtable's indexes have no slots), so that the small subtables of one
// mask share them. A publication after a single flow mod builds a small
// subtable, and a stage holds a whole Key.
type smallStages struct {
	stages []tableStage
	best   keyIndex
}

// newStages makes the stages of a subtable under rm, with the keys of
// every stage but the last, which uses best, hashed unless small.
func newStages(rm *ruleMask, small bool) []tableStage {
	mask := &rm.mask
	var deltas [numStages]Key
	used := 0
	for stage := range numStages {
		mask.Masked(&stageBits[stage], &deltas[stage])
		if deltas[stage] != (Key{}) {
			used++
		}
	}
	stages := make([]tableStage, 0, max(used, 1))
	var cum Key
	for stage := range numStages {
		if deltas[stage] == (Key{}) {
			continue
		}
		orWords(&cum, &deltas[stage])
		stages = append(stages, tableStage{id: stage, mask: cum})
	}
	if len(stages) == 0 {
		// A catch-all mask: every rule matches every packet.
		stages = append(stages, tableStage{id: -1})
	}
	for i := range stages[:len(stages)-1] {
		stages[i].keys = newKeyIndex(&stages[i].mask, rm, !small)
	}
	return stages
}

// portsOf returns k's tp_src:tp_dst, tp_src in the high half, as Open
// vSwitch's classifier reads the two ports as one 32-bit value.
func portsOf(k *Key) uint32 {
	return uint32(k.TpSrc)<<16 | uint32(k.TpDst)
}

// rulePrefixes calls fn for each trie field on which r's mask is a CIDR
// prefix, with r's value and the prefix length: what the table's tries
// hold for r.
func rulePrefixes(r *Rule, fn func(j int, v uint32, plen uint8)) {
	var k Key
	have := false
	for j := range numTries {
		if plen := prefixLen32(trieValue(&r.mask.mask, j)); plen > 0 {
			if !have {
				r.keyInto(&k)
				have = true
			}
			fn(j, trieValue(&k, j), plen)
		}
	}
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
// It consults the bits Open vSwitch's classifier does, so that the
// megaflows agree with Open vSwitch's: the subtables are visited in order
// of their best rules until one cannot beat the match found so far (the
// rest are not consulted at all), and each is searched in stages
// (metadata, L2, L3, L4), each stage a hash of the rules' keys under the
// mask of that stage and the earlier ones. A subtable whose stage holds no
// key equal to the packet's consults the mask of the stages up to that
// one; one that finds a rule, or misses only in its last stage, consults
// its whole mask. Two refinements narrow that:
//   - the prefix tries on nw_dst and nw_src (one per table, holding every
//     rule's prefix): before the L3 stage of a subtable whose mask is a
//     prefix of length L on the field, if no rule of the table has a
//     prefix of length L that equals the packet's, the subtable cannot
//     match; the lookup then consults only the earlier stages and as many
//     leading bits of the field as tell the packet apart from every
//     prefix of the trie (when that is no more than L bits, or those bits
//     are already consulted);
//   - the ports trie of a subtable that matches on tp_src or tp_dst: when
//     only the last stage misses, it consults the earlier stages and the
//     leading port bits that tell the packet apart from every rule's
//     ports, not the whole mask.
//
// Why the bits suffice. Let R be the answer and p any key that agrees with
// k on wc. The linear answer for p is R when (a) R matches p and (b) no
// rule that beats R matches p; rules that R beats cannot change the answer
// whether they match p or not. (a) holds because wc covers R's whole mask
// and k matches R. For (b), take a rule S that beats R. S does not match k,
// or it would have been the answer; and Lookup visited S's subtable,
// because it stops only at a subtable whose best rule does not beat the
// best match found so far (R or a rule R beats), and the subtables are
// sorted by their best rules, so S's subtable comes before that point.
// Visiting it added:
//   - the mask of the stages up to the first at which k's masked key was
//     absent: every rule's key differs from k's within those bits, so p's
//     does too;
//   - or, when a trie ended the search, the earlier stages and n leading
//     bits of the field, n being enough to tell k's value apart from
//     every prefix of length L in the trie (none equals k's, and a prefix
//     equal to p's on n ≤ L bits equals k's on them; when n > L, bits the
//     trie would add are already in wc). S's prefix is in the trie, so S
//     does not match p;
//   - or, when the ports trie ended it, leading port bits that tell k's
//     masked ports apart from every rule's: S's ports differ from p's;
//   - or the whole mask: then p has k's masked key, and S, whose key
//     differs from k's, differs from p's.
//
// A rule that matched k but lost to a later better match had its mask
// added too; extra bits only narrow the megaflow.
func (s *TableSnapshot) Lookup(k *Key, wc *Key) *Rule {
	return s.LookupIn(0, k, wc)
}

// LookupIn is Lookup in table number table.
func (s *TableSnapshot) LookupIn(table uint8, k *Key, wc *Key) *Rule {
	var scratch Key
	if wc == nil {
		wc = &scratch
	}
	v := s.tables.at(int(table))
	if table > MaxTable || v == nil {
		return nil
	}
	if v.conj {
		return s.lookupConj(table, k, wc, true)
	}
	ctx := lookupCtx{roots: &v.tries}
	var best *Rule
	for _, st := range v.subtables {
		if best != nil && !st.rules[0].beats(best) {
			// The subtables are sorted by their best rules: if this one's
			// cannot win, no later one's can.
			break
		}
		r := st.lookup(k, wc, &ctx)
		if r != nil && (best == nil || r.beats(best)) {
			best = r
		}
	}
	return best
}

// lookupCtx is the state of one lookup in one table: the answers of its
// prefix tries, looked up when a subtable first needs them.
type lookupCtx struct {
	roots *[numTries]*trieNode
	tries [numTries]trieAnswer
}

type trieAnswer struct {
	done     bool
	maskbits uint8
	plens    uint32
}

// trie returns the answer of trie j for k.
func (c *lookupCtx) trie(j int, k *Key) *trieAnswer {
	a := &c.tries[j]
	if !a.done {
		a.done = true
		if k.DlType == EthTypeIPv4 {
			a.maskbits, a.plens = c.roots[j].lookup(trieValue(k, j))
		} else {
			// The field is not an IPv4 address here: every prefix
			// length may match, the trie rules nothing out.
			a.maskbits, a.plens = 0, ^uint32(0)
		}
	}
	return a
}

// checkTries reports whether the tries prove, before stage, that st holds
// no rule for k; it then has ORed into wc the prefix bits that prove it.
func (st *tableSubtable) checkTries(stage int, k, wc *Key, ctx *lookupCtx) bool {
	if stage != stageL3 {
		return false
	}
	for j := range numTries {
		plen := st.triePlen[j]
		if plen == 0 {
			continue
		}
		a := ctx.trie(j, k)
		if a.plens&(1<<(plen-1)) != 0 {
			continue // some prefix of st's length equals k's
		}
		if a.maskbits <= plen {
			setTriePrefix(wc, j, a.maskbits)
			return true
		}
		if triePrefixSet(wc, j, a.maskbits) {
			return true
		}
	}
	return false
}

// lookup returns the best of st's rules whose key equals k's masked key,
// or nil, and ORs into wc the bits it consulted (see LookupIn).
func (st *tableSubtable) lookup(k, wc *Key, ctx *lookupCtx) *Rule {
	// Open vSwitch asks the tries before it probes a stage. The tries rule
	// the subtable out only when no rule's prefix equals k's, and then the
	// probe misses too; so a probe that hits needs no trie, and the tries
	// are asked only after a miss, with the same outcome.
	last := len(st.stages) - 1
	for i := range st.stages[:last] {
		if st.inStage(i, k) {
			continue
		}
		if !st.checkTries(st.stages[i].id, k, wc, ctx) {
			orWords(wc, &st.stages[i].mask)
		} else if i > 0 {
			orWords(wc, &st.stages[i-1].mask)
		}
		return nil
	}
	r := st.find(k)
	if r == nil && st.checkTries(st.stages[last].id, k, wc, ctx) {
		if last > 0 {
			orWords(wc, &st.stages[last-1].mask)
		}
		return nil
	}
	if r == nil && st.portsLen > 0 {
		// Only the ports bits that tell k's apart from every rule's,
		// rather than the whole last stage.
		n, _ := st.ports.lookup(portsOf(k) & st.portsMask)
		pb := st.portsMask & prefixMask32(n)
		if st.portsOnly {
			wc.TpSrc |= uint16(pb >> 16)
			wc.TpDst |= uint16(pb)
			if last > 0 {
				orWords(wc, &st.stages[last-1].mask)
			}
			return nil
		}
		// The last stage has other fields (tcp_flags, nd_target, the
		// ARP and ND hardware addresses), on which a rule with k's ports
		// may differ from k: they are consulted whole. (Open vSwitch
		// consults only the ports bits here, which can make a megaflow
		// too wide.)
		m := st.mask
		m.TpSrc, m.TpDst = uint16(pb>>16), uint16(pb)
		orWords(wc, &m)
		return nil
	}
	orWords(wc, &st.mask)
	return r
}

// inStage reports whether some rule's key equals k's under the mask of
// stage i.
func (st *tableSubtable) inStage(i int, k *Key) bool {
	if st.small {
		sel := st.stages[i].keys.sel
		for _, r := range st.rules {
			if packetIs(k, r.vals, sel) {
				return true
			}
		}
		return false
	}
	return st.stages[i].keys.find(st.rules, k) != nil
}

// find returns the first rule in lookup order whose key equals k's masked
// key, or nil.
func (st *tableSubtable) find(k *Key) *Rule {
	if st.small {
		for _, r := range st.rules {
			if packetIs(k, r.vals, st.best.sel) {
				return r
			}
		}
		return nil
	}
	return st.best.find(st.rules, k)
}

// orWords ORs src into dst.
func orWords(dst, src *Key) {
	d, s := dst.Words(), src.Words()
	for i := range d {
		d[i] |= s[i]
	}
}
