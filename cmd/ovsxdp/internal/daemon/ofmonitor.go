package daemon

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ofconn"
	"github.com/ovsxdp/ovsxdp/flow"
)

// Flow monitors (ovs-ofctl monitor BR watch:) learn of every change to a
// bridge's flows, whoever made it: an OpenFlow connection, the CLI, a
// learn action or an expiry. While some connection monitors, the bridge
// keeps the rules it last reported and, after each change, reports the
// difference to the OpenFlow server: a flow mod and an expiry round report
// at once (with their origin and the expiry reasons), changes that do not
// pass through the OpenFlow channel (the CLI, learn actions in the poll
// threads) within flowWatchInterval. Nothing is kept while nobody
// monitors.

// flowWatchInterval is how often a bridge with flow monitors looks for
// flow changes made outside the OpenFlow channel.
const flowWatchInterval = 50 * time.Millisecond

// flowTracker is the rules a bridge last reported to its flow monitors.
type flowTracker struct {
	// gen is the table generation of rules; written with d.mu held,
	// read without it by the watcher.
	gen atomic.Uint64
	// rules are the reported rules; nil while nobody monitors. d.mu
	// protects it.
	rules map[ruleID]*flow.Rule
}

// ruleID identifies a rule across its versions. The match is the rule's
// MatchKey: a Match is two whole keys, and ovn-controller monitors every
// rule.
type ruleID struct {
	table    uint8
	priority uint16
	match    string
}

func idOf(r *flow.Rule) ruleID {
	return ruleID{table: r.Table, priority: r.Priority, match: r.MatchKey()}
}

var _ ofconn.FlowWatcher = (*ofBridge)(nil)

// WatchFlows hands fn the bridge's rules with d.mu held, after reporting
// the changes not yet reported.
func (o *ofBridge) WatchFlows(fn func(p *flow.Parser, rules []*flow.Rule) error) error {
	if err := o.lock(); err != nil {
		return err
	}
	defer o.unlock()
	o.reportFlowsLocked(ofconn.Origin{}, nil)
	t := o.b.dp.Table()
	gen := t.Generation()
	rules := t.Dump(nil)
	if err := fn(o.b.parser(), rules); err != nil {
		return err
	}
	if o.mon.rules == nil && o.srv.Monitoring() {
		o.mon.rules = make(map[ruleID]*flow.Rule, len(rules))
		for _, r := range rules {
			o.mon.rules[idOf(r)] = r
		}
		o.mon.gen.Store(gen)
	}
	return nil
}

// reportFlowsLocked reports the changes to the bridge's rules since the
// last report, as made by from; reasons gives the reason of the rules
// that expired (any other removed rule was deleted). d.mu is held.
func (o *ofBridge) reportFlowsLocked(from ofconn.Origin, reasons map[*flow.Rule]uint8) {
	if o.srv == nil || !o.srv.Monitoring() {
		o.mon.rules = nil
		return
	}
	t := o.b.dp.Table()
	gen := t.Generation()
	if o.mon.rules == nil || gen == o.mon.gen.Load() {
		return
	}
	rules := t.Dump(nil)
	next := make(map[ruleID]*flow.Rule, len(rules))
	var changes []ofconn.FlowChange
	for _, r := range rules {
		id := idOf(r)
		next[id] = r
		old, ok := o.mon.rules[id]
		switch {
		case !ok:
			changes = append(changes, ofconn.FlowChange{Event: ofconn.FlowAdded, Rule: r})
		case old != r && flowChanged(old, r):
			changes = append(changes, ofconn.FlowChange{Event: ofconn.FlowModified, Rule: r})
		}
	}
	var gone []*flow.Rule
	for id, old := range o.mon.rules {
		if _, ok := next[id]; !ok {
			gone = append(gone, old)
		}
	}
	slices.SortFunc(gone, func(a, b *flow.Rule) int {
		if a.Priority != b.Priority {
			return int(b.Priority) - int(a.Priority)
		}
		return a.Installed.Compare(b.Installed)
	})
	for _, r := range gone {
		reason, ok := reasons[r]
		if !ok {
			reason = ofconn.ReasonDelete
		}
		changes = append(changes, ofconn.FlowChange{Event: ofconn.FlowDeleted, Reason: reason, Rule: r})
	}
	o.mon.rules = next
	o.mon.gen.Store(gen)
	o.srv.FlowsChanged(from, changes)
}

// flowChanged reports whether a new version of a rule is a modification
// a monitor hears of: its actions or cookie changed, as Open vSwitch
// reports.
func flowChanged(old, r *flow.Rule) bool {
	return old.Cookie != r.Cookie || flow.FormatActions(old.Actions) != flow.FormatActions(r.Actions)
}

// watchFlows reports the flow changes made outside the OpenFlow channel
// while the bridge has monitors, until stop is closed.
func (o *ofBridge) watchFlows(stop <-chan struct{}) {
	tick := time.NewTicker(flowWatchInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if !o.srv.Monitoring() || o.b.dp.Table().Generation() == o.mon.gen.Load() {
			continue
		}
		if o.lock() != nil {
			continue
		}
		o.reportFlowsLocked(ofconn.Origin{}, nil)
		o.unlock()
	}
}

// reasonsFor gives each of rules the reason reason.
func reasonsFor(rules []*flow.Rule, reason uint8) map[*flow.Rule]uint8 {
	m := make(map[*flow.Rule]uint8, len(rules))
	for _, r := range rules {
		m[r] = reason
	}
	return m
}

// reportExpiredLocked reports the rules of bridge b that expired at now.
// d.mu is held.
func (d *Daemon) reportExpiredLocked(b *bridge, expired []*flow.Rule, now time.Time) {
	cs := &d.channels
	cs.mu.Lock()
	ch := cs.byName[b.name]
	cs.mu.Unlock()
	if ch == nil || ch.b != b {
		return
	}
	reasons := make(map[*flow.Rule]uint8, len(expired))
	for _, r := range expired {
		// A flow that delete_learned took with an expired one is
		// not expired itself: its reason stays delete.
		if reason, ok := r.Expired(now); ok {
			reasons[r] = uint8(reason) // numbered as OpenFlow's, as ofconn's
		}
	}
	ch.ob.reportFlowsLocked(ofconn.Origin{}, reasons)
}

// sendRemoved tells the bridge's OpenFlow connections of each removal of
// a rule with send_flow_rem (OFPT_FLOW_REMOVED), whatever removed it,
// as the table records them and signals on removed, until stop is
// closed.
func (o *ofBridge) sendRemoved(removed <-chan struct{}, stop <-chan struct{}) {
	t := o.b.dp.Table()
	for {
		select {
		case <-stop:
			return
		case <-removed:
		}
		rs, dropped := t.TakeRemoved()
		if dropped > 0 {
			o.d.log.Warn("openflow: flow removals not sent: too many waited", "bridge", o.b.name, "dropped", dropped)
		}
		for _, r := range rs {
			o.srv.FlowRemoved(r.Rule, r.Reason, r.At)
		}
	}
}
