package flow

import (
	"errors"
	"slices"
)

// TableTxn is a run of changes to a Table that is published once: each
// change sees the ones before it, as separate calls would, and lookups
// see none of them until Update returns, then all of them. It exists for
// the flow mods an OpenFlow connection has already received: publishing
// a snapshot per flow mod costs more than the change itself; and, with
// UpdateAtomic, for an OpenFlow bundle, whose changes all take effect or
// none does.
type TableTxn struct {
	t       *Table
	changed bool
	// atomic: the changes may be undone (UpdateAtomic). undo logs each
	// change to a rule in the order it was made, and groups is the
	// group table before the first change (group tables are replaced,
	// never changed in place, so keeping it keeps its contents).
	atomic bool
	undo   []ruleChange
	groups map[uint32]*InstalledGroup
	// removed is the table's record of removals before the first
	// change (table_flags.go): what a revert leaves.
	removed removedLog
}

// ruleChange is one change to the rules of group g: old replaced by new
// (same match and priority), new added (old nil) or old removed (new
// nil).
type ruleChange struct {
	g        *ruleGroup
	old, new *Rule
}

// Update runs fn with the table's writer lock held and publishes what
// the TableTxn's changes did, once, before it returns. fn must not call
// the Table's other methods (they take the lock), only tx's.
func (t *Table) Update(fn func(tx *TableTxn)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tx := &TableTxn{t: t}
	defer func() {
		// A change that panicked half-way is published too: the
		// writer's state and the snapshot must not drift apart.
		if tx.changed {
			t.publishLocked()
		}
	}()
	fn(tx)
}

// UpdateAtomic runs fn as Update does, all or nothing: when fn returns an
// error (or panics), every change tx made is undone and nothing is
// published, so that no lookup ever sees any of them; otherwise they are
// published once, as by Update. It returns fn's error.
func (t *Table) UpdateAtomic(fn func(tx *TableTxn) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	tx := &TableTxn{t: t, atomic: true, groups: t.ofGroups, removed: t.removed}
	t.txn = tx
	done := false
	defer func() {
		t.txn = nil
		if !done {
			tx.revertLocked()
		}
	}()
	err := fn(tx)
	if err != nil {
		return err
	}
	done = true
	if tx.changed {
		t.publishLocked()
	}
	return nil
}

// logLocked records a change to g's rules for the atomic TableTxn in
// progress, if any.
func (t *Table) logLocked(g *ruleGroup, old, new *Rule) {
	if tx := t.txn; tx != nil {
		tx.undo = append(tx.undo, ruleChange{g: g, old: old, new: new})
	}
}

// revertLocked undoes tx's changes, the last first, and leaves the
// writer's state as the published snapshot has it: nothing is
// published, since nothing a lookup can see changed. The groups the
// changes touched are rebuilt at the next publication.
func (tx *TableTxn) revertLocked() {
	t := tx.t
	for i := len(tx.undo) - 1; i >= 0; i-- {
		c := tx.undo[i]
		g := c.g
		if c.new != nil {
			g.rules.del(c.new.vals, c.new.Priority)
			t.indexConjLocked(c.new, -1)
			if c.old == nil {
				rulePrefixes(c.new, func(j int, v uint32, plen uint8) {
					t.tries[g.table][j] = trieRemove(t.tries[g.table][j], v, plen)
				})
			}
		}
		if c.old != nil {
			h, _ := g.rules.find(c.old.vals, c.old.Priority)
			g.rules.set(h, c.old.vals, c.old.Priority, c.old)
			t.indexConjLocked(c.old, +1)
			if c.new == nil {
				rulePrefixes(c.old, func(j int, v uint32, plen uint8) {
					t.tries[g.table][j] = trieInsertIn(t.tries[g.table][j], v, plen, t.trieGen)
				})
			}
		}
		g.levels, g.pending = nil, nil
		t.touchLocked(g)
	}
	tx.undo = nil
	t.ofGroups = tx.groups
	// The removals the changes recorded did not happen; the taker, woken
	// for them, finds none.
	t.removed.rules = t.removed.rules[:len(tx.removed.rules)]
	t.removed.dropped = tx.removed.dropped
	tx.changed = false
}

// Snapshot returns a snapshot of the table as tx's changes so far leave
// it, for a lookup in the middle of the run: a bundled packet out sees
// the bundle's changes before it, as in Open vSwitch. Nothing is
// published and the writer's state is not changed: the changed groups
// get subtables of their own in the snapshot only. It costs the rules of
// the groups changed since the last publication. The snapshot is for
// lookups before tx's next change, which may change its prefix tries in
// place, and is never published.
func (tx *TableTxn) Snapshot() *TableSnapshot {
	t := tx.t
	pub := t.snap.Load()
	s := &TableSnapshot{gen: pub.gen, n: t.n, tables: pub.tables, ofGroups: t.ofGroups, live: t.live, meters: t.meters, recircs: t.recircs, tlv: t.tlv.Load()}
	var fresh [MaxTable + 1][]*tableSubtable
	var dirty [MaxTable + 1]bool
	changed := map[*ruleMask]bool{}
	for _, g := range t.touched {
		changed[g.rm] = true
		dirty[g.table] = true
		s.n += g.rules.len() - g.published
		if g.rules.len() == 0 {
			continue
		}
		rules := make([]*Rule, 0, g.rules.len())
		for r := range g.rules.values() {
			rules = append(rules, r)
		}
		fresh[g.table] = append(fresh[g.table], buildSubtable(g.rm, rules))
	}
	for tb := range dirty {
		if dirty[tb] {
			s.tables.set(tb, mergeView(pub.tables.at(tb), fresh[tb], changed, t.tries[tb]))
		}
	}
	return s
}

// Add installs f as Table.Add does.
func (tx *TableTxn) Add(f *Flow) error {
	var b FlowBatch
	b.Add(f)
	if err := tx.t.addRulesLocked(b.rules); err != nil {
		return err
	}
	tx.changed = true
	return nil
}

// AddBatch installs the first n flows of b, in order, as n calls of Add
// would, and drops them from b: each sees the ones before it, and the
// error is the one the first failing Add would give, as an *AddError
// whose Index is its place among the n. The flows are built when they
// are put in b (FlowBatch.Add), for a bundle of flow mods as they are
// added to it; installing them costs only the table's own work.
func (tx *TableTxn) AddBatch(b *FlowBatch, n int) error {
	rs := b.rules[:n]
	b.rules = b.rules[n:]
	if tx.atomic {
		tx.undo = slices.Grow(tx.undo, n)
	}
	for i := range rs {
		// One at a time, as separate Adds: a rule that replaces a
		// learning one deletes the flows it learned before the next
		// is added.
		if err := tx.t.addRulesLocked(rs[i : i+1]); err != nil {
			var ae *AddError
			if errors.As(err, &ae) {
				ae.Index = i
				return ae
			}
			return &AddError{Index: i, Err: err}
		}
		tx.changed = true
	}
	return nil
}

// Modify changes the rules that f selects as Table.Modify does, but adds
// f when none is selected only if add is set (OpenFlow 1.0 does, later
// versions do not).
func (tx *TableTxn) Modify(f *Flow, strict, add bool) (n int, added bool) {
	n, added = tx.t.modifyLocked(f, strict, add)
	if n > 0 || added {
		tx.changed = true
	}
	return n, added
}

// Delete removes the rules that f selects as Table.Delete does.
func (tx *TableTxn) Delete(f *Flow, strict bool) []*Rule {
	removed := tx.t.deleteLocked(f, strict)
	if len(removed) > 0 {
		tx.changed = true
	}
	return removed
}

// CheckGroups is Table.CheckGroups.
func (tx *TableTxn) CheckGroups(f *Flow) error {
	return tx.t.checkGroupsLocked(f.Actions)
}

// AddGroups is Table.AddGroups.
func (tx *TableTxn) AddGroups(gs []*Group) error {
	if err := tx.t.addGroupsLocked(gs); err != nil {
		return err
	}
	tx.changed = true
	return nil
}

// ModifyGroup is Table.ModifyGroup.
func (tx *TableTxn) ModifyGroup(g *Group, mayCreate bool) error {
	if err := tx.t.modifyGroupLocked(g, mayCreate); err != nil {
		return err
	}
	tx.changed = true
	return nil
}

// DeleteGroups is Table.DeleteGroups.
func (tx *TableTxn) DeleteGroups(id uint32) (int, []*Rule) {
	n, removed := tx.t.deleteGroupsLocked(id)
	if n > 0 {
		tx.changed = true
	}
	return n, removed
}

// Group returns the group with id id as the changes so far left it, or
// nil.
func (tx *TableTxn) Group(id uint32) *InstalledGroup {
	return tx.t.ofGroups[id]
}
