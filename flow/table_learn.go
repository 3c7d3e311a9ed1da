package flow

import (
	"slices"
	"time"
)

// This file is what the Table does for learn actions: it installs the
// flows they learn, restarts their timeouts when they are learned again or
// when packets take a megaflow that learned them, and removes them with
// the flow that learned them when its learn action says delete_learned.

// Learn installs flows that learn actions learned, as Open vSwitch does
// (a modify-strict that adds when nothing matches): when the flow's table
// has a rule with the same match and priority and the same actions,
// cookie and timeouts, that rule stays and its timeouts restart (nothing
// is published); otherwise the flow replaces that rule, keeping its
// counters and install time, or is added. It returns the installed rules,
// one per flow, and publishes once if anything changed, so the megaflows
// that consulted the table are revalidated before they are used again.
func (t *Table) Learn(fs []Flow) []*Rule {
	if len(fs) == 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	rules := make([]*Rule, len(fs))
	changed := false
	var buf [KeyWords]uint64
	for i := range fs {
		f := &fs[i]
		m := normalizedMatch(&f.Match)
		g := t.groups[groupKey{table: f.Table, mask: m.Mask}]
		var old *Rule
		if g != nil {
			old = g.rules.get(compactKey(buf[:], &m.Key, g.rm), f.Priority)
		}
		switch {
		case old != nil && sameLearned(old, f):
			old.refresh(now.UnixNano())
			rules[i] = old
		case old != nil:
			r := *old
			r.Actions = t.actions.share(f.Actions)
			r.Cookie, r.IdleTimeout, r.HardTimeout = f.Cookie, f.IdleTimeout, f.HardTimeout
			r.Modified = now
			g.rules.put(&r)
			t.indexConjLocked(old, -1)
			t.indexConjLocked(&r, +1)
			g.levels = nil
			t.touchLocked(g)
			rules[i] = &r
			changed = true
		default:
			r := t.newRuleLocked(f)
			t.addLocked(r, now)
			rules[i] = r
			changed = true
		}
	}
	if changed {
		t.publishLocked()
	}
	return rules
}

// sameLearned reports whether learning f again leaves r as it is.
func sameLearned(r *Rule, f *Flow) bool {
	return r.Cookie == f.Cookie && r.IdleTimeout == f.IdleTimeout && r.HardTimeout == f.HardTimeout &&
		actionsEqual(r.Actions, f.Actions)
}

// actionsEqual compares action lists, learn and ct actions by what they
// say rather than by their pointers, and every action as it is spelled.
func actionsEqual(a, b []Action) bool {
	return slices.EqualFunc(a, b, actionEqual)
}

// actionEqual compares two actions as actionsEqual does.
func actionEqual(x, y Action) bool {
	switch {
	case x.Type == ActLearn && y.Type == ActLearn:
		same := x.Learn.equal(y.Learn)
		x.Learn, y.Learn = nil, nil
		return same && x == y
	case x.Type == ActCT && y.Type == ActCT:
		// (*CT).equal takes exec(...)'s actions however they are spelled;
		// a rule keeps the spelling it was given.
		same := x.CT.equal(y.CT) && (x.CT == nil || y.CT == nil || actionsEqual(x.CT.Exec, y.CT.Exec))
		x.CT, y.CT = nil, nil
		return same && x == y
	}
	return x == y
}

// refresh restarts the rule's idle and hard timeouts at now (unix
// nanoseconds), as Open vSwitch does for a learned flow learned again.
// It is safe for concurrent use and does not allocate.
func (r *Rule) refresh(now int64) {
	if now > r.stats.refreshed.Load() {
		r.stats.refreshed.Store(now)
	}
}

// since returns when the rule's timeouts started: its last change or its
// last refresh.
func (r *Rule) since() time.Time {
	if ref := r.stats.refreshed.Load(); ref != 0 && time.Unix(0, ref).After(r.Modified) {
		return time.Unix(0, ref)
	}
	return r.Modified
}

// learnedCookies returns the learned cookies that the delete_learned
// learn actions of rs own.
func learnedCookies(rs []*Rule) []learnedCookie {
	var out []learnedCookie
	for _, r := range rs {
		for i := range r.Actions {
			if a := &r.Actions[i]; a.Type == ActLearn {
				if lc, ok := a.Learn.deletesLearned(); ok && !slices.Contains(out, lc) {
					out = append(out, lc)
				}
			}
		}
	}
	return out
}

// deleteLearnedLocked removes the flows learned by the delete_learned
// learn actions of the rules in gone (removed or changed), as Open vSwitch
// does: for each table and cookie such an action learned into, once no
// rule left in the table has such an action, every rule of that table with
// that cookie goes. It returns the rules it removed (their own
// delete_learned actions are followed too). The caller publishes.
func (t *Table) deleteLearnedLocked(gone []*Rule) []*Rule {
	var removed []*Rule
	for cookies := learnedCookies(gone); len(cookies) > 0; {
		owned := map[learnedCookie]bool{}
		for _, g := range t.groups {
			for r := range g.rules.values() {
				for _, lc := range learnedCookies([]*Rule{r}) {
					owned[lc] = true
				}
			}
		}
		var now []*Rule
		for _, lc := range cookies {
			if owned[lc] {
				continue
			}
			for _, g := range t.groups {
				if g.table != lc.table {
					continue
				}
				for r := range g.rules.values() {
					if r.Cookie == lc.cookie {
						t.removeLocked(g, r, RemovedDelete)
						now = append(now, r)
					}
				}
			}
		}
		removed = append(removed, now...)
		cookies = learnedCookies(now)
	}
	return removed
}
