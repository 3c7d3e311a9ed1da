package flow

// TableTxn is a run of changes to a Table that is published once: each
// change sees the ones before it, as separate calls would, and lookups
// see none of them until Update returns, then all of them. It exists for
// the flow mods an OpenFlow connection has already received: publishing
// a snapshot per flow mod costs more than the change itself.
type TableTxn struct {
	t       *Table
	changed bool
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
