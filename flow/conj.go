package flow

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// This file is conjunctive matching, with Open vSwitch's semantics
// (ovs-fields(7) conj_id, ovs-actions(7) conjunction).
//
// A flow whose actions are conjunction actions (and nothing else but
// notes) is a clause flow: conjunction(id,k/n) says that it is one of the
// flows of clause k of the n clauses of conjunctive match id. A packet
// matches conjunctive match id when, among the highest-priority clause
// flows it matches in the table, it matches at least one flow of every
// clause 1..n. The classifier then looks the packet up again in the same
// table with conj_id set to id, ignoring clause flows, and the flow that
// lookup finds (typically one matching conj_id=id) is the answer. A
// clause flow is never the answer itself; an ordinary flow of higher or
// equal priority than the clause flows wins over them.

// ErrConjunctionClauses is wrapped by the error Table.AddFlows returns when
// a flow gives a conjunctive match a number of clauses other than the
// flows of the same table and priority give it.
var ErrConjunctionClauses = errors.New("inconsistent number of conjunction clauses")

// AddError is a flow that Table.AddFlows refuses: the flow at Index of the
// list (0-based), and why.
type AddError struct {
	Index int
	Err   error
}

func (e *AddError) Error() string { return e.Err.Error() }
func (e *AddError) Unwrap() error { return e.Err }

// conjClause is one conjunction action: clause k (1-based) of n of id.
type conjClause struct {
	id   uint32
	k, n uint8
}

func clauseOf(a *Action) conjClause {
	return conjClause{id: uint32(a.Value), k: a.Table, n: uint8(a.Port)}
}

// conjunctionText prints a conjunction action as ovs-ofctl does.
func conjunctionText(a *Action) string {
	c := clauseOf(a)
	return "conjunction(" + strconv.FormatUint(uint64(c.id), 10) + "," +
		strconv.Itoa(int(c.k)) + "/" + strconv.Itoa(int(c.n)) + ")"
}

// conjunctive reports whether acts make a clause flow: at least one
// conjunction action and nothing else but notes.
func conjunctive(acts []Action) bool {
	conj := false
	for i := range acts {
		switch acts[i].Type {
		case ActConjunction:
			conj = true
		case ActNote:
		default:
			return false
		}
	}
	return conj
}

// conjunction parses conjunction(id,k/n) with ovs-ofctl's checks and
// messages.
func (ap *actionParser) conjunction(t *token) error {
	s := ap.s
	syntax := func() error { return errAt(s, t, `"conjunction" syntax is "conjunction(id,i/n)"`) }
	if !t.paren {
		return syntax()
	}
	idText, clause, ok := strings.Cut(t.value, ",")
	kText, nText, ok2 := strings.Cut(clause, "/")
	if !ok || !ok2 {
		return syntax()
	}
	id, err := parseNum(strings.TrimSpace(idText), 32)
	if err != nil {
		return syntax()
	}
	k, err := parseDecimal(strings.TrimSpace(kText), 8)
	if err != nil {
		return syntax()
	}
	n, err := parseDecimal(strings.TrimSpace(nText), 8)
	if err != nil {
		return syntax()
	}
	switch {
	case n < 2:
		return errAt(s, t, "conjunction must have at least 2 clauses")
	case n > 64:
		return errAt(s, t, "conjunction must have at most 64 clauses")
	case k < 1:
		return errAt(s, t, "clause index must be positive")
	case k > n:
		return errAt(s, t, "clause index must be less than or equal to number of clauses")
	}
	for i := range ap.acts {
		if a := &ap.acts[i]; a.Type == ActConjunction && a.Value == id && a.Port != uint32(n) {
			e := errAt(s, t, "conjunction %d has %d clauses in this flow's %s", id, a.Port, conjunctionText(a))
			e.Err = ErrConjunctionClauses
			return e
		}
	}
	ap.add(Action{Type: ActConjunction, Value: id, Table: uint8(k), Port: uint32(n)})
	return nil
}

// noteConjToken records, for checkConjunctions, the first conjunction
// action of the list and the first action that may not go with one.
func (ap *actionParser) noteConjToken(t *token, name string) {
	switch {
	case name == "conjunction":
		if ap.conjTok == nil {
			ap.conjTok = t
		}
	case name != "note" && ap.otherTok == nil:
		ap.otherTok = t
	}
}

// checkConjunctions refuses a list that mixes conjunction with actions
// other than note, as ovs-ofctl does.
func (ap *actionParser) checkConjunctions() error {
	if ap.conjTok == nil || ap.otherTok == nil {
		return nil
	}
	t := ap.otherTok
	return errAt(ap.s, t, `"conjunction" actions may be used along with "note" but not any other kind of action (such as the %q action used here)`,
		ofpactName(t))
}

// ofpactName is the name Open vSwitch gives the kind of action t is.
func ofpactName(t *token) string {
	name := strings.ToLower(t.key)
	switch name {
	case "load":
		return "set_field"
	case "mod_vlan_vid":
		return "set_vlan_vid"
	case "mod_vlan_pcp":
		return "set_vlan_pcp"
	case "pop_vlan":
		return "strip_vlan"
	case "stack_push":
		return "push"
	case "stack_pop":
		return "pop"
	case "output":
		if strings.Contains(t.value, "[") {
			return "output_reg"
		}
		return "output"
	case "controller":
		if t.paren && !controllerIsOutput(t.value) {
			return "controller"
		}
		return "output"
	}
	if _, known := knownActionNames[name]; known || unsupportedActions[name] {
		return name
	}
	return "output" // a bare port
}

// controllerIsOutput reports whether controller(args) is what Open vSwitch
// keeps as an output to the controller port: no options besides max_len and
// reason=action.
func controllerIsOutput(args string) bool {
	for _, arg := range strings.Split(args, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(arg), "=")
		switch {
		case k == "", k == "max_len", k == "reason" && v == "action":
		default:
			return false
		}
	}
	return true
}

// knownActionNames are the action keywords ovsxdp parses besides the
// unsupported ones; any other bare word is a port.
var knownActionNames = map[string]struct{}{
	"resubmit": {}, "goto_table": {}, "write_metadata": {}, "move": {}, "push": {}, "pop": {},
	"note": {}, "exit": {}, "clone": {}, "dec_ttl": {}, "mod_dl_src": {}, "mod_dl_dst": {},
	"mod_nw_src": {}, "mod_nw_dst": {}, "mod_nw_tos": {}, "mod_nw_ecn": {}, "mod_nw_ttl": {},
	"mod_tp_src": {}, "mod_tp_dst": {}, "strip_vlan": {}, "push_vlan": {}, "set_field": {},
	"conjunction": {}, "group": {}, "ct": {}, "ct_clear": {}, "learn": {}, "fin_timeout": {},
	"write_actions": {}, "clear_actions": {},
}

// conjKey identifies a conjunctive match: its id within a table and
// priority.
type conjKey struct {
	table    uint8
	priority uint16
	id       uint32
}

// checkConjLocked checks that the rules of fs, to be added in order, give
// each conjunctive match the same number of clauses as each other and as
// the rules of the table that they do not replace.
func (t *Table) checkConjLocked(fs []*Rule) error {
	if !slices.ContainsFunc(fs, func(f *Rule) bool { return conjunctive(f.Actions) }) {
		return nil
	}
	if t.conjAgreesLocked(fs) {
		return nil
	}
	return t.findConjConflictLocked(fs)
}

// conjRefs is what the table knows of one conjunctive match (conjKey)
// from its installed rules: how many clauses they say it has, and how
// many clause actions name it.
type conjRefs struct {
	n    uint8
	refs int32
}

// indexConjLocked adds delta to the counts of the conjunctive matches that
// r's conjunction actions name: +1 when r is installed, -1 when it is
// removed or replaced.
func (t *Table) indexConjLocked(r *Rule, delta int32) {
	for j := range r.Actions {
		a := &r.Actions[j]
		if a.Type != ActConjunction {
			continue
		}
		c := clauseOf(a)
		ck := conjKey{r.Table, r.Priority, c.id}
		cr := t.conjs[ck]
		cr.refs += delta
		if cr.refs <= 0 {
			delete(t.conjs, ck)
			continue
		}
		if delta > 0 {
			cr.n = c.n
		}
		if t.conjs == nil {
			t.conjs = map[conjKey]conjRefs{}
		}
		t.conjs[ck] = cr
	}
}

// conjAgreesLocked is checkConjLocked's quick answer: true when the flows
// of fs agree with each other and with the installed rules (the index)
// on the number of clauses of every conjunctive match they name, so that
// adding them needs no look at the installed rules. Otherwise
// findConjConflictLocked decides (an installed rule that disagrees may be
// one that fs replaces) and names the conflict.
func (t *Table) conjAgreesLocked(fs []*Rule) bool {
	var mine map[conjKey]uint8
	for _, f := range fs {
		for j := range f.Actions {
			a := &f.Actions[j]
			if a.Type != ActConjunction {
				continue
			}
			c := clauseOf(a)
			ck := conjKey{f.Table, f.Priority, c.id}
			if cr, ok := t.conjs[ck]; ok && cr.n != c.n {
				return false
			}
			if mine == nil {
				mine = map[conjKey]uint8{}
			}
			if n, ok := mine[ck]; ok && n != c.n {
				return false
			}
			mine[ck] = c.n
		}
	}
	return true
}

// findConjConflictLocked is checkConjLocked's full answer, which looks at
// the installed rules: the error of the first flow of fs whose number of
// clauses disagrees with an installed rule that fs does not replace, or
// with an earlier flow of fs.
func (t *Table) findConjConflictLocked(fs []*Rule) error {
	type origin struct {
		n    uint8
		rule *Rule  // the installed rule n comes from, or nil
		tag  string // else where n comes from
	}
	// want are the conjunctive matches that fs's flows give clauses to:
	// the installed rules are looked at for these only, and only until
	// one rule of each is found (the installed rules agree already).
	want := map[conjKey]bool{}
	tables := map[uint8]bool{}
	for _, f := range fs {
		for j := range f.Actions {
			if a := &f.Actions[j]; a.Type == ActConjunction {
				want[conjKey{f.Table, f.Priority, clauseOf(a).id}] = true
				tables[f.Table] = true
			}
		}
	}
	seen := map[conjKey]origin{}
	// replaced finds the flows of fs that replace an installed rule
	// (same table, priority and match) among those that may: the flows
	// of a table and priority that want names. It holds their indexes
	// by matchHash.
	wantTP := map[[2]uint16]bool{}
	for ck := range want {
		wantTP[[2]uint16{uint16(ck.table), ck.priority}] = true
	}
	replaced := map[uint64][]int{}
	for i, f := range fs {
		if !wantTP[[2]uint16{uint16(f.Table), f.Priority}] {
			continue
		}
		h := matchHash(f)
		replaced[h] = append(replaced[h], i)
	}
	isReplaced := func(r *Rule) bool {
		for _, i := range replaced[matchHash(r)] {
			if f := fs[i]; f.Table == r.Table && f.Priority == r.Priority && f.sameMatch(r) {
				return true
			}
		}
		return false
	}
scan:
	for _, g := range t.groups {
		if !tables[g.table] {
			continue
		}
		for r := range g.clauseCandidates() {
			for j := range r.Actions {
				if a := &r.Actions[j]; a.Type == ActConjunction {
					c := clauseOf(a)
					// The cheap test first: the match is big.
					if ck := (conjKey{r.Table, r.Priority, c.id}); want[ck] && !isReplaced(r) {
						seen[ck] = origin{n: c.n, rule: r}
					}
				}
			}
			if len(seen) == len(want) {
				break scan
			}
		}
	}
	for i, f := range fs {
		if !conjunctive(f.Actions) {
			continue
		}
		for j := range f.Actions {
			a := &f.Actions[j]
			if a.Type != ActConjunction {
				continue
			}
			c := clauseOf(a)
			ck := conjKey{f.Table, f.Priority, c.id}
			if o, ok := seen[ck]; ok && o.n != c.n {
				if o.rule != nil {
					m := o.rule.Match()
					o.tag = "an installed flow (" + FormatMatch(&m, o.rule.Priority) + ")"
				}
				return &AddError{Index: i, Err: fmt.Errorf("%s: conjunction %d of table %d, priority %d has %d clauses in %s: %w",
					conjunctionText(a), c.id, ck.table, ck.priority, o.n, o.tag, ErrConjunctionClauses)}
			}
			seen[ck] = origin{n: c.n, tag: "flow " + strconv.Itoa(i+1) + " of this request"}
		}
	}
	return nil
}

// matchHash hashes a rule's match (its key words and the words its mask
// covers) with its table and priority.
func matchHash(r *Rule) uint64 {
	h := hashVals(r.vals, uint64(r.Priority)|uint64(r.Table)<<16)
	for _, w := range r.mask.words {
		h = (h ^ uint64(w)) * 0x9e3779b97f4a7c15
	}
	return h
}

// softMatch is a clause flow that a lookup matched, and its subtable.
type softMatch struct {
	r  *Rule
	st *tableSubtable
}

// conjProgress is the clauses of one conjunctive match seen so far.
type conjProgress struct {
	id      uint32
	clauses uint64
}

// lookupConj is LookupIn for a table with clause flows, as Open vSwitch's
// classifier does it. With allowConj false, clause flows are ignored (the
// lookup that follows a conjunctive match).
//
// The megaflow bits: every subtable visited ORs in what it consulted, in
// the first lookup and in the lookups with conj_id set, so a packet that
// agrees with k on *wc visits the same subtables, finds the same rule (or
// none) in each, hence the same clause flows and the same answer; conj_id
// itself is derived, the same for every such packet.
func (s *TableSnapshot) lookupConj(table uint8, k, wc *Key, allowConj bool) *Rule {
	var hard *Rule
	var softStub [8]softMatch
	soft := softStub[:0]
	v := s.tables.at(int(table)) // not nil: LookupIn looked
	ctx := lookupCtx{roots: &v.tries}
	for _, st := range v.subtables {
		if hard != nil && !st.rules[0].beats(hard) {
			break
		}
		r := st.lookup(k, wc, &ctx)
		if r == nil || (hard != nil && !r.beats(hard)) {
			continue
		}
		if !conjunctive(r.Actions) {
			hard = r
		} else if allowConj {
			soft = append(soft, softMatch{r: r, st: st})
		}
	}
	var progStub [16]conjProgress
	for {
		// Only clause flows of a higher priority than the best ordinary
		// flow can change the answer.
		n := 0
		for _, m := range soft {
			if m.r != nil && (hard == nil || m.r.Priority > hard.Priority) {
				soft[n] = m
				n++
			}
		}
		soft = soft[:n]
		if n == 0 {
			return hard
		}
		top, nTop := uint16(0), 0
		for _, m := range soft {
			switch {
			case nTop == 0 || m.r.Priority > top:
				top, nTop = m.r.Priority, 1
			case m.r.Priority == top:
				nTop++
			}
		}
		prog := progStub[:0]
		for _, m := range soft {
			if m.r.Priority != top {
				continue
			}
			var id uint32
			var done bool
			prog, id, done = addClauses(prog, m.r.Actions, nTop)
			if !done {
				continue
			}
			kc := *k
			kc.ConjID = id
			if r := s.lookupConj(table, &kc, wc, false); r != nil {
				return r
			}
		}
		// No conjunctive match at this priority: a flow with the same
		// match at a lower priority takes each clause flow's place.
		for i := range soft {
			m := &soft[i]
			if m.r.Priority != top {
				continue
			}
			next := m.st.nextIdentical(m.r)
			switch {
			case next == nil:
				m.r = nil
			case !conjunctive(next.Actions):
				if hard == nil || next.Priority > hard.Priority {
					hard = next
				}
				m.r = nil
			default:
				m.r = next
			}
		}
	}
}

// addClauses adds the clauses of a clause flow's actions to prog, skipping
// conjunctions of more clauses than maxN (the number of clause flows
// matched at this priority, so they cannot be complete). It returns the id
// of the first conjunctive match it completes.
func addClauses(prog []conjProgress, acts []Action, maxN int) ([]conjProgress, uint32, bool) {
	for i := range acts {
		if acts[i].Type != ActConjunction {
			continue
		}
		c := clauseOf(&acts[i])
		if int(c.n) > maxN {
			continue
		}
		j := 0
		for j < len(prog) && prog[j].id != c.id {
			j++
		}
		if j == len(prog) {
			prog = append(prog, conjProgress{id: c.id})
		}
		bit := uint64(1) << (c.k - 1)
		if prog[j].clauses&bit != 0 {
			continue
		}
		prog[j].clauses |= bit
		if prog[j].clauses == ^uint64(0)>>(64-c.n) {
			return prog, c.id, true
		}
	}
	return prog, 0, false
}

// nextIdentical returns the rule after r in st's lookup order with the
// same match (hence a lower priority), or nil.
func (st *tableSubtable) nextIdentical(r *Rule) *Rule {
	i := 0
	for i < len(st.rules) && st.rules[i] != r {
		i++
	}
	for i++; i < len(st.rules); i++ {
		if slices.Equal(st.rules[i].vals, r.vals) {
			return st.rules[i]
		}
	}
	return nil
}
