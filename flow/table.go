package flow

import (
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Rule is one OpenFlow rule installed in a Table.
//
// A Rule is immutable once the Table has published it, except for its
// counters: mod-flows replaces it with a new Rule that shares the counters,
// the install time and the install order of the old one, so readers that
// still hold the old pointer (megaflows, dumps in progress) keep working and
// keep counting into the same counters.
//
// Its match is held compactly (see rule_match.go): the mask is shared by
// every rule of the table with that mask, and the rule keeps only the key
// words where the mask is not zero. Match and Flow rebuild the whole form.
type Rule struct {
	// What add-flow installed: Priority, Table, Actions, Cookie,
	// IdleTimeout and HardTimeout, as in Flow.
	Priority    uint16
	Table       uint8
	Flags       FlowFlags // as the add gave them; a modify keeps them
	IdleTimeout uint16
	HardTimeout uint16
	Cookie      uint64
	Actions     []Action

	// Installed is when add-flow installed the rule; mod-flows keeps it, so
	// dump-flows' duration runs from here.
	Installed time.Time
	// Modified is when add-flow or the last mod-flows changed the rule; the
	// hard timeout runs from here.
	Modified time.Time

	seq   uint64 // install order: among equal priorities the lower seq wins
	stats *ruleStats
	// mask is the match's mask and vals the key's words where it is not
	// zero, in the order of mask.words (the key is zero elsewhere).
	mask *ruleMask
	vals []uint64
}

// ruleStats are a rule's counters, shared by its versions across mod-flows.
type ruleStats struct {
	packets  atomic.Uint64
	bytes    atomic.Uint64
	lastUsed atomic.Int64 // unix nanoseconds of the last AddStats; 0 = never
	// refreshed is when the rule's timeouts last restarted without a
	// change (a learned flow learned again; unix nanoseconds, 0 = never).
	refreshed atomic.Int64
	// finIdle and finHard are the timeouts a fin_timeout action reduced
	// the rule's to (seconds, 0 = not reduced).
	finIdle, finHard atomic.Uint32
}

// AddStats adds packets and bytes to the rule's counters and records now
// (unix nanoseconds) as its last use, for the idle timeout. It is safe for
// concurrent use; when callers race, the last use may lag by the time
// between their calls.
func (r *Rule) AddStats(packets, bytes uint64, now int64) {
	r.stats.packets.Add(packets)
	r.stats.bytes.Add(bytes)
	if now > r.stats.lastUsed.Load() {
		r.stats.lastUsed.Store(now)
	}
}

// Stats returns the rule's packet and byte counters.
func (r *Rule) Stats() (packets, bytes uint64) {
	return r.stats.packets.Load(), r.stats.bytes.Load()
}

// Duration is how long the rule has been installed at now, as dump-flows
// prints it.
func (r *Rule) Duration(now time.Time) time.Duration {
	return now.Sub(r.Installed)
}

// beats reports whether r wins over o in a lookup: higher priority, or equal
// priority and installed earlier.
func (r *Rule) beats(o *Rule) bool {
	return r.Priority > o.Priority || (r.Priority == o.Priority && r.seq < o.seq)
}

// outputsTo reports whether one of r's actions outputs to port.
func (r *Rule) outputsTo(port uint32) bool {
	for i := range r.Actions {
		if r.Actions[i].Type == ActOutput && r.Actions[i].Port == port {
			return true
		}
	}
	return false
}

// Table is an OpenFlow rule table with ovs-ofctl's add-flow, mod-flows and
// del-flows semantics.
//
// It is safe for concurrent use. Writers are serialized by a mutex; readers
// call Snapshot, which is one atomic load, and then read an immutable
// TableSnapshot without locks. Every call that changes the table increments
// the generation and publishes the new snapshot before it returns, so a
// lookup that starts after the call returns sees the change, and every cache
// entry tagged with an older generation is known to be stale.
type Table struct {
	snap atomic.Pointer[TableSnapshot]
	// tlv is the bridge's TLV map (tunmeta.go); nil maps nothing.
	tlv atomic.Pointer[TLVMap]

	mu sync.Mutex // serializes writers and guards the fields below
	// groups holds the rules by mask: the same rules as the published
	// snapshot, in a form that is cheap to change. A group whose rules
	// changed since the last publication is dirty and gets a new subtable.
	groups map[groupKey]*ruleGroup
	seq    uint64
	gen    uint64
	now    func() time.Time
	// ofGroups are the OpenFlow groups (group_table.go): replaced, never
	// changed in place, since snapshots share it. live answers port
	// liveness for translation.
	ofGroups map[uint32]*InstalledGroup
	live     PortLiveness
	// meters are the OpenFlow meters (meter_table.go): replaced, never
	// changed in place, as ofGroups.
	meters *meterTable
	// tries are each table's prefix tries (see trie.go) over the rules
	// in groups; publishLocked hands them to the snapshot.
	tries [MaxTable + 1][numTries]*trieNode
	// trieGen is the batch (trieInsertIn) of the changes to tries since
	// the last publication; publishLocked starts a new one, so that the
	// published tries are never changed.
	trieGen uint64
	// finSeen is finReductions when Expire last looked at every rule.
	finSeen uint64
	// lastGroup is the group groupLocked returned last (nil after a
	// publication, which may drop it from groups).
	lastGroup *ruleGroup
	// actions shares the rules' equal action lists.
	actions actionPool
	// touched are the groups changed since the last publication
	// (touchLocked): a publication looks at these only, and n is the
	// number of rules it published.
	touched []*ruleGroup
	n       int
	// conjs indexes the installed rules' conjunction actions
	// (indexConjLocked), so that an add checks its clause counts
	// without looking at every clause flow of its table.
	conjs map[conjKey]conjRefs
	// indexed counts the rules that publications put into subtables'
	// indexes, for tests that check an add's cost does not grow with the
	// rules already there.
	indexed uint64
	// recircs are the bridge's recirculation ids (xlate_recirc.go),
	// which every snapshot shares.
	recircs *Recircs
	// pub are the published snapshot's tables: a publication makes new
	// views only for the tables that changed, and never changes a
	// published one.
	pub tableViews
	// txn is the atomic TableTxn in progress (UpdateAtomic), which
	// logs every change to a rule so that it can undo them; nil when
	// none is.
	txn *TableTxn
	// removed records the removals of rules with send_flow_rem
	// (table_flags.go).
	removed removedLog
}

// groupKey identifies a group: the rules of one table that share one mask.
type groupKey struct {
	table uint8
	mask  Key
}

// ruleGroup is the writer's view of the rules of one table that share one
// mask.
//
// Its published form is one or more subtables (levels) with the group's
// mask that hold disjoint parts of its rules, biggest first: rules added
// one by one go into a new small level, which merges with the levels
// before it that are no bigger, as a binary counter carries. Each rule is
// so indexed O(log n) times over n single adds, not once per add as a
// rebuild of the whole group would; and the lookup visits at most about
// log2(n) subtables for the group. Lookup is correct with a group's rules
// split between subtables in any way (see LookupIn); a change other than
// an add rebuilds the group as one level.
type ruleGroup struct {
	table uint8
	rm    *ruleMask // the group's mask, which its rules share
	rules ruleSet
	// levels are the published subtables; nil when the group must be
	// rebuilt whole at the next publication.
	levels []*tableSubtable
	// pending are the rules added since the last publication that are in
	// no level yet (only while levels is not nil).
	pending []*Rule
	// finReduced: a fin_timeout action reduced the timeouts of one of
	// the group's rules (of a version of it), as Expire found.
	finReduced bool
	// touched: the group is in Table.touched, changed since the last
	// publication; published is its number of rules then.
	touched   bool
	published int
}

// NewTable returns an empty table at generation 1.
func NewTable() *Table {
	t := &Table{
		groups:  make(map[groupKey]*ruleGroup),
		now:     time.Now,
		recircs: NewRecircs(nil),
	}
	t.mu.Lock()
	t.publishLocked()
	t.mu.Unlock()
	return t
}

// Recircs returns the table's recirculation ids.
func (t *Table) Recircs() *Recircs { return t.recircs }

// Snapshot returns the current immutable view of the table. Poll threads
// load it once per batch.
func (t *Table) Snapshot() *TableSnapshot {
	return t.snap.Load()
}

// Generation returns the current generation: it changes with every change
// to the table.
func (t *Table) Generation() uint64 {
	return t.snap.Load().gen
}

// Add installs f as add-flow does. A rule with the same match and priority
// is replaced: the new rule has f's actions, cookie, timeouts and flags
// and a fresh install time, as OpenFlow specifies for an add that collides
// with an identical entry; it keeps the old rule's counters unless f has
// reset_counts (every OpenFlow 1.0 add has), as in Open vSwitch. With
// check_overlap, f is refused (ErrOverlap, in an *AddError) when it
// overlaps another rule of its table and priority. f.CookieMask and
// f.OutPort are ignored.
func (t *Table) Add(f *Flow) error {
	var b FlowBatch
	b.Add(f)
	return t.AddBatch(&b)
}

// AddFlows installs each flow as Add does, in order, and publishes the
// result once (add-flows with a file). It adds none of them and returns an
// *AddError when one has check_overlap and overlaps (ErrOverlap), names a
// group that does not exist (ErrBadOutGroup) or gives a conjunctive match
// a number of clauses that differs from another flow's of the same table
// and priority (ErrConjunctionClauses).
func (t *Table) AddFlows(fs []Flow) error {
	var b FlowBatch
	b.Grow(len(fs))
	for i := range fs {
		b.Add(&fs[i])
	}
	return t.AddBatch(&b)
}

// AddBatch is AddFlows with the flows of b, which it takes over: b must
// not be used again.
func (t *Table) AddBatch(b *FlowBatch) error {
	rs := b.rules
	*b = FlowBatch{}
	if len(rs) == 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.addRulesLocked(rs); err != nil {
		return err
	}
	t.publishLocked()
	return nil
}

// addRulesLocked installs rs, a FlowBatch's rules, as AddBatch does,
// without publishing them.
func (t *Table) addRulesLocked(rs []*Rule) error {
	for i, r := range rs {
		if err := t.checkGroupsLocked(r.Actions); err != nil {
			return &AddError{Index: i, Err: err}
		}
	}
	if err := t.checkConjLocked(rs); err != nil {
		return err
	}
	if err := t.checkOverlapLocked(rs); err != nil {
		return err
	}
	now := t.now()
	var replaced []*Rule
	for _, r := range rs {
		if old := t.addLocked(r, now); old != nil {
			replaced = append(replaced, old)
		}
	}
	t.deleteLearnedLocked(replaced)
	return nil
}

// Modify changes the actions of the rules that f selects, as mod-flows
// does, and returns how many it changed.
//
// Without strict, f selects every rule whose match implies f's match (each
// bit that f's mask covers is covered by the rule's mask with the same
// value), whatever its priority; with strict, only the rule with exactly f's
// match and priority. Either way, when f.CookieMask is non-zero only rules
// whose cookie agrees with f.Cookie on the mask's bits are selected.
//
// A changed rule keeps its counters (unless f has reset_counts), install
// time, timeouts and flags, and takes f's actions. Its cookie changes to
// f.Cookie when f gives a cookie without a mask (CookieMask zero and
// Cookie non-zero); a Flow cannot tell "cookie=0" from no cookie, so a
// zero cookie never changes cookies.
//
// When no rule is selected and f.CookieMask is zero, Modify adds f as a new
// rule and reports added: this is what Open vSwitch does for ovs-ofctl's
// default OpenFlow 1.0 dialect (OpenFlow 1.2 and later would not add).
func (t *Table) Modify(f *Flow, strict bool) (n int, added bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, added = t.modifyLocked(f, strict, true)
	if n > 0 || added {
		t.publishLocked()
	}
	return n, added
}

// modifyLocked is Modify without the publication; it adds f when no rule
// is selected only if add is set. A learned flow that a changed rule no
// longer learns is deleted.
func (t *Table) modifyLocked(f *Flow, strict, add bool) (n int, added bool) {
	now := t.now()
	norm := normalizedMatch(&f.Match)
	var changed []*Rule
	t.selectLocked(f.Table, &norm, f.Priority, strict, f.Cookie, f.CookieMask, PortNone, func(g *ruleGroup, old *Rule) {
		changed = append(changed, old)
		r := *old
		r.Actions = t.actions.share(f.Actions)
		if f.Flags&FlagResetCounts != 0 {
			// The version's counters start afresh; its flags stay
			// the old ones, as in Open vSwitch.
			r.stats = new(ruleStats)
		}
		if f.CookieMask == 0 && f.Cookie != 0 {
			r.Cookie = f.Cookie
		}
		r.Modified = now
		g.rules.put(&r)
		t.logLocked(g, old, &r)
		t.indexConjLocked(old, -1)
		t.indexConjLocked(&r, +1)
		g.levels = nil
		t.touchLocked(g)
		n++
	})
	if n == 0 && f.CookieMask == 0 && add {
		t.addLocked(t.newRuleLocked(f), now)
		added = true
	}
	t.deleteLearnedLocked(changed)
	return n, added
}

// Delete removes the rules that f selects, as del-flows does, and returns
// them. Selection is as for Modify (strict or not, cookie and cookie mask);
// in addition, when f.OutPort is neither 0 nor PortNone, only rules with an
// output action to f.OutPort are selected. A catch-all f without strict
// removes every rule.
func (t *Table) Delete(f *Flow, strict bool) []*Rule {
	t.mu.Lock()
	defer t.mu.Unlock()
	removed := t.deleteLocked(f, strict)
	if len(removed) > 0 {
		t.publishLocked()
	}
	return removed
}

// deleteLocked is Delete without the publication.
func (t *Table) deleteLocked(f *Flow, strict bool) []*Rule {
	var removed []*Rule
	norm := normalizedMatch(&f.Match)
	t.selectLocked(f.Table, &norm, f.Priority, strict, f.Cookie, f.CookieMask, f.OutPort, func(g *ruleGroup, old *Rule) {
		t.removeLocked(g, old, RemovedDelete)
		removed = append(removed, old)
	})
	removed = append(removed, t.deleteLearnedLocked(removed)...)
	sortRules(removed)
	return removed
}

// Expire removes the rules whose hard timeout (counted from Modified) or idle
// timeout (counted from the last AddStats, or from Modified when the rule was
// not used since) has passed at now, and returns them.
func (t *Table) Expire(now time.Time) []*Rule {
	t.mu.Lock()
	defer t.mu.Unlock()
	var removed []*Rule
	// A rule without timeouts expires only once a fin_timeout action gave
	// it one. Groups with neither kind of rule are skipped, unless some
	// rule's timeouts were reduced since the last call: then every rule is
	// looked at, and the groups that hold a reduced one are noted.
	reductions := finReductions.Load() // before the rules are read
	all := reductions != t.finSeen
	for _, g := range t.groups {
		if !all && g.rules.timed == 0 && !g.finReduced {
			continue
		}
		for r := range g.rules.values() {
			if all && !g.finReduced {
				g.finReduced = r.stats.finIdle.Load() != 0 || r.stats.finHard.Load() != 0
			}
			reason, expired := r.Expired(now)
			if !expired {
				continue
			}
			t.removeLocked(g, r, reason)
			removed = append(removed, r)
		}
	}
	t.finSeen = reductions
	removed = append(removed, t.deleteLearnedLocked(removed)...)
	if len(removed) > 0 {
		t.publishLocked()
	}
	sortRules(removed)
	return removed
}

// Expired reports whether r has expired at now, and by which timeout:
// the hard one first, as in Open vSwitch.
func (r *Rule) Expired(now time.Time) (RemovedReason, bool) {
	since := r.since()
	idleTimeout, hardTimeout := r.Timeouts()
	if hardTimeout != 0 && now.Sub(since) >= time.Duration(hardTimeout)*time.Second {
		return RemovedHardTimeout, true
	}
	if idleTimeout == 0 {
		return 0, false
	}
	last := since
	if used := r.stats.lastUsed.Load(); used != 0 && time.Unix(0, used).After(last) {
		last = time.Unix(0, used)
	}
	return RemovedIdleTimeout, now.Sub(last) >= time.Duration(idleTimeout)*time.Second
}

// Dump returns the rules that f selects (non-strict, with cookie mask and
// out_port filters as for Delete; a nil f selects all), in dump-flows order:
// priority descending, then install order.
func (t *Table) Dump(f *Flow) []*Rule {
	s := t.Snapshot()
	var out []*Rule
	var norm Match
	if f != nil {
		norm = normalizedMatch(&f.Match)
	}
	for t := range MaxTable + 1 {
		if f != nil && f.Table != TableAll && int(f.Table) != t {
			continue
		}
		for _, st := range s.subtables(t) {
			for _, r := range st.rules {
				if f == nil || selects(&norm, f.Cookie, f.CookieMask, f.OutPort, r) {
					out = append(out, r)
				}
			}
		}
	}
	sortRules(out)
	return out
}

// Len returns the number of rules in the current snapshot.
func (t *Table) Len() int {
	return t.Snapshot().n
}

func normalizedMatch(m *Match) Match {
	n := *m
	n.Normalize()
	return n
}

// newRuleLocked returns f as a rule of the table, allocated on its own,
// with the mask its group shares.
func (t *Table) newRuleLocked(f *Flow) *Rule {
	table := f.Table
	if table == TableAll {
		table = 0
	}
	return newRule(f, t.groupLocked(table, &f.Match.Mask).rm)
}

// addLocked installs r, a rule that newRuleLocked or a FlowBatch made,
// replacing any rule with the same match and priority, which it returns
// (nil if none).
func (t *Table) addLocked(r *Rule, now time.Time) (replaced *Rule) {
	r.Installed, r.Modified = now, now
	r.Actions = t.actions.share(r.Actions)
	t.seq++
	r.seq = t.seq

	g := t.groupLocked(r.Table, &r.mask.mask)
	t.touchLocked(g)
	r.mask = g.rm // one copy of the mask per group
	h, replaced := g.rules.find(r.vals, r.Priority)
	if replaced == nil {
		// A replaced rule had the same match: the tries hold it already.
		rulePrefixes(r, func(j int, v uint32, plen uint8) {
			t.tries[r.Table][j] = trieInsertIn(t.tries[r.Table][j], v, plen, t.trieGen)
		})
		if g.levels != nil {
			g.pending = append(g.pending, r)
		}
	} else {
		g.levels = nil
		r.carryCounts(replaced)
	}
	g.rules.set(h, r.vals, r.Priority, r)
	t.logLocked(g, replaced, r)
	if replaced != nil {
		t.indexConjLocked(replaced, -1)
	}
	t.indexConjLocked(r, +1)
	return replaced
}

// groupLocked returns the group of table's rules with mask, which it
// creates if there is none. Adds come in runs of one group (add-flows
// files list a table's rules together), so the last group found is
// tried first.
func (t *Table) groupLocked(table uint8, mask *Key) *ruleGroup {
	if g := t.lastGroup; g != nil && g.table == table && g.rm.mask == *mask {
		return g
	}
	gk := groupKey{table: table, mask: *mask}
	g := t.groups[gk]
	if g == nil {
		g = &ruleGroup{table: table, rm: newRuleMask(mask)}
		t.groups[gk] = g
		t.touchLocked(g)
	}
	t.lastGroup = g
	return g
}

// touchLocked notes that g changed (or is new), for the next publication.
func (t *Table) touchLocked(g *ruleGroup) {
	if !g.touched {
		g.touched = true
		t.touched = append(t.touched, g)
	}
}

// removeLocked removes r from g and from the tries, for reason.
func (t *Table) removeLocked(g *ruleGroup, r *Rule, reason RemovedReason) {
	if g.rules.get(r.vals, r.Priority) == nil {
		return
	}
	t.noteRemovedLocked(r, reason)
	rulePrefixes(r, func(j int, v uint32, plen uint8) {
		t.tries[g.table][j] = trieRemove(t.tries[g.table][j], v, plen)
	})
	g.rules.del(r.vals, r.Priority)
	t.logLocked(g, r, nil)
	t.indexConjLocked(r, -1)
	g.levels = nil
	t.touchLocked(g)
}

// selectLocked calls fn for each rule that the criteria select. fn may
// replace (with a rule of the same match and priority) or delete that
// rule in g.rules.
func (t *Table) selectLocked(table uint8, m *Match, priority uint16, strict bool, cookie, cookieMask uint64, outPort uint32, fn func(g *ruleGroup, r *Rule)) {
	if strict {
		for tb := range MaxTable + 1 {
			if table != TableAll && int(table) != tb {
				continue
			}
			g := t.groups[groupKey{table: uint8(tb), mask: m.Mask}]
			if g == nil {
				continue
			}
			var buf [KeyWords]uint64
			if r := g.rules.get(compactKey(buf[:], &m.Key, g.rm), priority); r != nil && selects(m, cookie, cookieMask, outPort, r) {
				fn(g, r)
			}
		}
		return
	}
	for _, g := range t.groups {
		if table != TableAll && g.table != table {
			continue
		}
		if !maskCovers(&g.rm.mask, &m.Mask) {
			continue // no rule of g implies m
		}
		for r := range g.rules.values() {
			if selects(m, cookie, cookieMask, outPort, r) {
				fn(g, r)
			}
		}
	}
}

// selects reports whether r's match implies m (m's constraints all hold for
// every packet r matches) and r passes the cookie and out_port filters.
func selects(m *Match, cookie, cookieMask uint64, outPort uint32, r *Rule) bool {
	if (r.Cookie^cookie)&cookieMask != 0 {
		return false
	}
	if outPort != 0 && outPort != PortNone && !r.outputsTo(outPort) {
		return false
	}
	if !maskCovers(&r.mask.mask, &m.Mask) {
		return false
	}
	// m's mask is zero outside r's words, and so is m's key.
	mk, mm := m.Key.Words(), m.Mask.Words()
	for i, w := range r.mask.words {
		if r.vals[i]&mm[w] != mk[w] {
			return false
		}
	}
	return true
}

// maskCovers reports whether every bit of inner is also in outer.
func maskCovers(outer, inner *Key) bool {
	o, in := outer.Words(), inner.Words()
	for i := range o {
		if in[i]&^o[i] != 0 {
			return false
		}
	}
	return true
}

// sortRules sorts rules into dump-flows order: by table, then lookup
// order (priority descending, then install order).
func sortRules(rs []*Rule) {
	slices.SortFunc(rs, func(a, b *Rule) int {
		switch {
		case a.Table != b.Table:
			return int(a.Table) - int(b.Table)
		case a.beats(b):
			return -1
		case b.beats(a):
			return 1
		}
		return 0
	})
}

// publishLocked brings the changed groups' levels up to date (see
// ruleGroup), drops the groups left empty, and publishes a new snapshot
// under a new generation. Its cost follows the changes, not the table:
// only the tables of changed groups get new lists of subtables (the
// published lists are never changed), made from the published list
// without the changed groups' subtables, merged with their new ones.
func (t *Table) publishLocked() {
	s := &TableSnapshot{recircs: t.recircs, tlv: t.tlv.Load()}
	t.lastGroup = nil
	var dirty [MaxTable + 1]bool
	changed := map[*ruleMask]bool{} // the touched groups, by their mask
	for _, g := range t.touched {
		g.touched = false
		changed[g.rm] = true
		dirty[g.table] = true
		t.n += g.rules.len() - g.published
		g.published = g.rules.len()
		if g.rules.len() == 0 {
			if gk := (groupKey{table: g.table, mask: g.rm.mask}); t.groups[gk] == g {
				delete(t.groups, gk)
			}
			g.levels, g.pending = nil, nil
			continue
		}
		if g.levels == nil || len(g.pending) > 0 {
			t.levelLocked(g)
		}
	}
	var fresh [MaxTable + 1][]*tableSubtable
	for _, g := range t.touched {
		fresh[g.table] = append(fresh[g.table], g.levels...)
	}
	t.touched = t.touched[:0]
	for tb := range dirty {
		if !dirty[tb] {
			continue
		}
		t.pub.set(tb, mergeView(t.pub.at(tb), fresh[tb], changed, t.tries[tb]))
	}
	s.n = t.n
	s.tables = t.pub
	s.ofGroups, s.live, s.meters = t.ofGroups, t.live, t.meters
	t.trieGen = newTrieGen()
	t.gen++
	s.gen = t.gen
	t.snap.Store(s)
}

// mergeView makes a table's new view: the subtables of old but those of
// the changed groups, merged with fresh (those groups' new subtables), in
// lookup order; nil when none is left.
func mergeView(old *tableView, fresh []*tableSubtable, changed map[*ruleMask]bool, tries [numTries]*trieNode) *tableView {
	slices.SortFunc(fresh, compareSubtables)
	var olds []*tableSubtable
	if old != nil {
		olds = old.subtables
	}
	sts := make([]*tableSubtable, 0, len(olds)+len(fresh))
	conj := false
	add := func(st *tableSubtable) {
		sts = append(sts, st)
		conj = conj || st.conj
	}
	i := 0
	for _, st := range olds {
		if changed[st.rm] {
			continue
		}
		for ; i < len(fresh) && compareSubtables(fresh[i], st) < 0; i++ {
			add(fresh[i])
		}
		add(st)
	}
	for ; i < len(fresh); i++ {
		add(fresh[i])
	}
	if len(sts) == 0 {
		return nil
	}
	return &tableView{subtables: sts, conj: conj, tries: tries}
}

// compareSubtables orders a table's subtables for lookup: the one whose
// best rule beats the other's first.
func compareSubtables(a, b *tableSubtable) int {
	switch {
	case a.rules[0].beats(b.rules[0]):
		return -1
	case b.rules[0].beats(a.rules[0]):
		return 1
	}
	return 0
}

// levelLocked brings g's levels up to date: a group to be rebuilt becomes
// one level; the rules added since the last publication become a new
// level, merged with the last levels while they are no bigger than it.
func (t *Table) levelLocked(g *ruleGroup) {
	if g.levels == nil {
		rules := make([]*Rule, 0, g.rules.len())
		for r := range g.rules.values() {
			rules = append(rules, r)
		}
		g.pending = nil
		g.levels = []*tableSubtable{t.buildLocked(g.rm, rules)}
		return
	}
	if len(g.pending) == 0 {
		return
	}
	rules := g.pending
	g.pending = nil
	for n := len(g.levels); n > 0 && len(g.levels[n-1].rules) <= len(rules); n-- {
		rules = append(rules, g.levels[n-1].rules...)
		g.levels[n-1] = nil
		g.levels = g.levels[:n-1]
	}
	g.levels = append(g.levels, t.buildLocked(g.rm, rules))
}

// buildLocked builds a subtable of rules under mask and counts them.
func (t *Table) buildLocked(rm *ruleMask, rules []*Rule) *tableSubtable {
	t.indexed += uint64(len(rules))
	return buildSubtable(rm, rules)
}

// clauseCandidates yields g's rules that may be clause flows: all of them
// when g is to be rebuilt, else the clause flows of its levels and the
// rules added since, so that a conjunctive add does not look at
// every rule of the table.
func (g *ruleGroup) clauseCandidates() iter.Seq[*Rule] {
	if g.levels == nil {
		return g.rules.values()
	}
	return func(yield func(*Rule) bool) {
		for _, st := range g.levels {
			for _, r := range st.clauses {
				if !yield(r) {
					return
				}
			}
		}
		for _, r := range g.pending {
			if !yield(r) {
				return
			}
		}
	}
}
