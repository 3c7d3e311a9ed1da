package flow

import (
	"fmt"
	"maps"
	"slices"
)

// This file is the group table of a Table: add-group, mod-group,
// del-groups and the checks that keep flows and groups consistent. Groups
// are published in the table's snapshots, so a group change, like a rule
// change, takes a new generation before it returns and every megaflow
// translated before it is revalidated.

// SetPortLiveness sets what translation asks whether a port is live
// (fast_failover buckets, and select buckets that watch a port). Without
// one no port is live.
func (t *Table) SetPortLiveness(l PortLiveness) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.live = l
	t.publishLocked()
}

// LivenessChanged tells the table that a port's liveness may have
// changed. If a group has a bucket that follows liveness, it publishes a
// new generation before it returns, so that megaflows translated with the
// old liveness are revalidated before they are used again.
func (t *Table) LivenessChanged() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, g := range t.ofGroups {
		for i := range g.Buckets {
			if g.Buckets[i].hasLiveness() {
				t.publishLocked()
				return
			}
		}
	}
}

func newInstalled(g *Group, t *Table) *InstalledGroup {
	ig := &InstalledGroup{Group: *g, Installed: t.now(), stats: &groupStats{buckets: make([]bucketStats, len(g.Buckets))}}
	ig.Fields = g.sortedFields() // translation hashes them in this order
	ig.Buckets = slices.Clone(g.Buckets)
	for i := range ig.Buckets {
		ig.Buckets[i].Actions = slices.Clone(ig.Buckets[i].Actions)
	}
	if ig.Type == GroupSelect {
		switch ig.SelectionMethod {
		case "dp_hash":
			ig.hashMap, ig.hashParam = dpHashMap(ig.Buckets), ig.SelectionParam
		case "":
			// As Open vSwitch's group_set_selection_method: without a
			// method, the datapath hashes symmetrically where the
			// weights fit the map (at most maxDpHashValues values, as
			// for dp_hash).
			ig.hashMap, ig.hashParam = dpHashMap(ig.Buckets), dpHashSymL4<<32
		}
	}
	return ig
}

// AddGroups adds groups as add-group (add-groups with a file) does: all or
// none. A group id that is in use, or given twice, is refused with
// ErrGroupExists.
func (t *Table) AddGroups(gs []*Group) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.addGroupsLocked(gs); err != nil {
		return err
	}
	t.publishLocked()
	return nil
}

// addGroupsLocked is AddGroups without the publication.
func (t *Table) addGroupsLocked(gs []*Group) error {
	next := maps.Clone(t.ofGroups)
	if next == nil {
		next = map[uint32]*InstalledGroup{}
	}
	for _, g := range gs {
		if next[g.ID] != nil {
			return fmt.Errorf("group_id=%d: %w", g.ID, ErrGroupExists)
		}
		next[g.ID] = newInstalled(g, t)
	}
	t.ofGroups = next
	return nil
}

// ModifyGroup replaces the type, selection method and buckets of the
// group with g's id, as mod-group does; the flows that use it stay. A group
// that does not exist is refused with ErrUnknownGroup, unless mayCreate
// (mod-group --may-create), which adds it.
func (t *Table) ModifyGroup(g *Group, mayCreate bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.modifyGroupLocked(g, mayCreate); err != nil {
		return err
	}
	t.publishLocked()
	return nil
}

// modifyGroupLocked is ModifyGroup without the publication.
func (t *Table) modifyGroupLocked(g *Group, mayCreate bool) error {
	old := t.ofGroups[g.ID]
	if old == nil && !mayCreate {
		return fmt.Errorf("group_id=%d: %w", g.ID, ErrUnknownGroup)
	}
	next := maps.Clone(t.ofGroups)
	if next == nil {
		next = map[uint32]*InstalledGroup{}
	}
	ig := newInstalled(g, t)
	if old != nil {
		ig.Installed = old.Installed
	}
	next[g.ID] = ig
	t.ofGroups = next
	return nil
}

// DeleteGroups deletes the group with id id (GroupAllID: every group), as
// del-groups does, and with them every flow whose actions name one of
// them (Open vSwitch does the same), and what their delete_learned learn
// actions learned. It returns the number of groups deleted and the flows
// deleted. Deleting a group that does not exist is not an error.
func (t *Table) DeleteGroups(id uint32) (int, []*Rule) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n, removed := t.deleteGroupsLocked(id)
	if n > 0 {
		t.publishLocked()
	}
	return n, removed
}

// deleteGroupsLocked is DeleteGroups without the publication.
func (t *Table) deleteGroupsLocked(id uint32) (int, []*Rule) {
	gone := map[uint32]bool{}
	for gid := range t.ofGroups {
		if id == GroupAllID || gid == id {
			gone[gid] = true
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	next := maps.Clone(t.ofGroups)
	for gid := range gone {
		delete(next, gid)
	}
	t.ofGroups = next
	return len(gone), t.removeRulesLocked(RemovedGroupDelete, func(acts []Action) bool { return usesGroups(acts, gone) })
}

// removeRulesLocked removes the rules whose actions uses reports true for
// (the users of a deleted group or meter: reason says which), and what
// their delete_learned learn actions learned, and returns them, sorted.
func (t *Table) removeRulesLocked(reason RemovedReason, uses func(acts []Action) bool) []*Rule {
	var removed []*Rule
	for _, rg := range t.groups {
		for r := range rg.rules.values() {
			if uses(r.Actions) {
				// As any delete: out of the prefix tries too, or their
				// stale prefixes would narrow later megaflows.
				t.removeLocked(rg, r, reason)
				removed = append(removed, r)
			}
		}
	}
	removed = append(removed, t.deleteLearnedLocked(removed)...)
	sortRules(removed)
	return removed
}

// usesGroups reports whether an action list names one of the groups.
func usesGroups(acts []Action, ids map[uint32]bool) bool {
	for i := range acts {
		if acts[i].Type == ActGroup && ids[uint32(acts[i].Value)] {
			return true
		}
	}
	return false
}

// Groups returns the groups, by group id.
func (t *Table) Groups() []*InstalledGroup {
	return t.Snapshot().Groups()
}

// Groups returns the snapshot's groups, by group id.
func (s *TableSnapshot) Groups() []*InstalledGroup {
	out := slices.Collect(maps.Values(s.ofGroups))
	slices.SortFunc(out, func(a, b *InstalledGroup) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Group returns the group with id id, or nil.
func (s *TableSnapshot) Group(id uint32) *InstalledGroup { return s.ofGroups[id] }

// GroupRefs returns how many flows name the group with id id in their
// actions (dump-group-stats' ref_count).
func (s *TableSnapshot) GroupRefs(id uint32) int {
	ids := map[uint32]bool{id: true}
	return s.countRules(func(acts []Action) bool { return usesGroups(acts, ids) })
}

// countRules returns how many rules of the snapshot have actions that
// uses reports true for.
func (s *TableSnapshot) countRules(uses func(acts []Action) bool) int {
	n := 0
	for tb := range MaxTable + 1 {
		v := s.tables.at(tb)
		if v == nil {
			continue
		}
		for _, st := range v.subtables {
			for _, r := range st.rules {
				if uses(r.Actions) {
					n++
				}
			}
		}
	}
	return n
}

// checkGroupsLocked refuses an action list that names a group the table
// does not have (ErrBadOutGroup), or a meter (ErrInvalidMeter).
func (t *Table) checkGroupsLocked(acts []Action) error {
	if err := t.checkMetersLocked(acts); err != nil {
		return err
	}
	for i := range acts {
		if acts[i].Type == ActGroup && t.ofGroups[uint32(acts[i].Value)] == nil {
			return fmt.Errorf("action %d (group:%d): %w", i+1, acts[i].Value, ErrBadOutGroup)
		}
	}
	return nil
}

// CheckGroups returns ErrBadOutGroup (wrapped, naming the action) if f's
// actions name a group that does not exist, ErrInvalidMeter if they name a
// meter that does not exist.
func (t *Table) CheckGroups(f *Flow) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.checkGroupsLocked(f.Actions)
}
