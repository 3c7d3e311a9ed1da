package flow

import (
	"errors"
	"time"
)

// This file is what a rule's flow mod flags (FlowFlags) make the table
// do: check_overlap refuses an add that overlaps a rule; reset_counts
// decides whether a replaced or modified rule's counters carry over; and
// send_flow_rem asks for a record of the rule's removal (RemovedRule),
// which the table keeps for whoever takes them (NotifyRemoved).

// ErrOverlap refuses an add with check_overlap that overlaps a rule of
// its table with its priority (OFPFMFC_OVERLAP).
var ErrOverlap = errors.New("flow overlaps an existing flow of the same priority (OFPFMFC_OVERLAP)")

// checkOverlapLocked refuses the rules of rs, to be added in order, that
// have check_overlap and overlap, without being identical to, a rule of
// the table or one added before them: a packet could match both, they
// have the same table and priority, and their matches differ. Open
// vSwitch checks the same: an identical rule is replaced instead.
func (t *Table) checkOverlapLocked(rs []*Rule) error {
	for i, r := range rs {
		if r.Flags&FlagCheckOverlap == 0 {
			continue
		}
		if t.identicalLocked(r) || identicalIn(rs[:i], r) {
			continue
		}
		if t.overlapsLocked(r) || overlapsIn(rs[:i], r) {
			return &AddError{Index: i, Err: ErrOverlap}
		}
	}
	return nil
}

// identicalLocked reports whether the table has a rule with r's table,
// match and priority.
func (t *Table) identicalLocked(r *Rule) bool {
	g := t.groups[groupKey{table: r.Table, mask: r.mask.mask}]
	if g == nil {
		return false
	}
	_, old := g.rules.find(r.vals, r.Priority)
	return old != nil
}

// overlapsLocked reports whether a rule of the table overlaps r.
func (t *Table) overlapsLocked(r *Rule) bool {
	for _, g := range t.groups {
		if g.table != r.Table {
			continue
		}
		for o := range g.rules.values() {
			if o.overlaps(r) {
				return true
			}
		}
	}
	return false
}

func identicalIn(rs []*Rule, r *Rule) bool {
	for _, o := range rs {
		if o.Table == r.Table && o.Priority == r.Priority && o.mask.mask == r.mask.mask && o.keyEquals(r) {
			return true
		}
	}
	return false
}

func overlapsIn(rs []*Rule, r *Rule) bool {
	for _, o := range rs {
		if o.overlaps(r) {
			return true
		}
	}
	return false
}

// overlaps reports whether some packet matches both r and o, rules of
// one table with one priority: their keys agree wherever both masks
// look.
func (r *Rule) overlaps(o *Rule) bool {
	if r.Table != o.Table || r.Priority != o.Priority {
		return false
	}
	var rk, ok Key
	r.keyInto(&rk)
	o.keyInto(&ok)
	rw, ow := rk.Words(), ok.Words()
	rm, om := r.mask.mask.Words(), o.mask.mask.Words()
	for w := range rw {
		if (rw[w]^ow[w])&rm[w]&om[w] != 0 {
			return false
		}
	}
	return true
}

// keyEquals reports whether r and o, rules with one mask, have one key.
func (r *Rule) keyEquals(o *Rule) bool {
	for i := range r.vals {
		if r.vals[i] != o.vals[i] {
			return false
		}
	}
	return true
}

// carryCounts starts r, which replaces old, with old's counters and last
// use, unless r resets them (reset_counts): Open vSwitch's add keeps a
// replaced rule's counts so.
func (r *Rule) carryCounts(old *Rule) {
	if r.Flags&FlagResetCounts != 0 {
		return
	}
	r.stats.packets.Store(old.stats.packets.Load())
	r.stats.bytes.Store(old.stats.bytes.Load())
	r.stats.lastUsed.Store(old.stats.lastUsed.Load())
}

// RemovedReason is why a rule was removed, numbered as OpenFlow's
// ofp_flow_removed_reason.
type RemovedReason uint8

// The reasons.
const (
	RemovedIdleTimeout RemovedReason = iota
	RemovedHardTimeout
	RemovedDelete
	RemovedGroupDelete
	RemovedMeterDelete
)

// String is the reason as ovs-ofctl prints it.
func (r RemovedReason) String() string {
	switch r {
	case RemovedIdleTimeout:
		return "idle"
	case RemovedHardTimeout:
		return "hard"
	case RemovedDelete:
		return "delete"
	case RemovedGroupDelete:
		return "group_delete"
	case RemovedMeterDelete:
		return "meter_delete"
	}
	return "unknown"
}

// RemovedRule is the removal of a rule with send_flow_rem.
type RemovedRule struct {
	Rule   *Rule
	Reason RemovedReason
	At     time.Time // when it was removed
}

// maxRemovedKept bounds the removals kept for a taker that does not keep
// up; the ones beyond it are counted (TakeRemoved) and dropped.
const maxRemovedKept = 1 << 16

// removedLog is the removals of rules with send_flow_rem that nobody has
// taken yet, while someone takes them.
type removedLog struct {
	kick    chan struct{} // nil: nobody takes them, none is kept
	rules   []RemovedRule
	dropped uint64
}

// NotifyRemoved starts keeping a record of each removal of a rule with
// send_flow_rem (whatever removed it: a delete, an expiry, the deletion
// of a group or meter it uses, a delete_learned learn action), and
// returns a channel that gets a value when records wait to be taken
// (TakeRemoved).
func (t *Table) NotifyRemoved() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.removed.kick == nil {
		t.removed.kick = make(chan struct{}, 1)
	}
	return t.removed.kick
}

// TakeRemoved returns the removals recorded since the last call, in the
// order they happened, and how many were dropped because too many
// waited.
func (t *Table) TakeRemoved() ([]RemovedRule, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rs, n := t.removed.rules, t.removed.dropped
	t.removed.rules, t.removed.dropped = nil, 0
	return rs, n
}

// noteRemovedLocked records the removal of r for reason, when r asked
// for it and someone takes the records.
func (t *Table) noteRemovedLocked(r *Rule, reason RemovedReason) {
	l := &t.removed
	if r.Flags&FlagSendFlowRem == 0 || l.kick == nil {
		return
	}
	if len(l.rules) >= maxRemovedKept {
		l.dropped++
		return
	}
	l.rules = append(l.rules, RemovedRule{Rule: r, Reason: reason, At: t.now()})
	select {
	case l.kick <- struct{}{}:
	default:
	}
}
