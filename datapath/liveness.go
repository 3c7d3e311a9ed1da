package datapath

import (
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// This file gives translation the ports' liveness, which fast_failover
// groups follow: a port is live when it exists and its device can
// transmit now (registered, running, carrier and a tx queue: what the
// guarded output policy requires). Every change of a port's device state,
// and every port added or removed, tells the rule table, which then takes
// a new generation before the change returns: megaflows translated with
// the old liveness are revalidated before their next use, so a port that
// is being torn down fails over at once.

var _ flow.PortLiveness = (*Bridge)(nil)

// PortLive implements flow.PortLiveness from the current port table and
// the device's state, read once.
func (b *Bridge) PortLive(port uint32) bool {
	p := b.ports.Load().lookup(port)
	if p == nil {
		return false
	}
	_, ok := checkOutput(Guarded, p.dev.Snapshot())
	return ok
}

// followLivenessLocked makes p's device state changes reach the rule
// table. b.mu must be held.
func (b *Bridge) followLivenessLocked(p *Port) {
	if p.dev == nil {
		return
	}
	p.unlive = p.dev.Subscribe(func(vport.Event) { b.table.LivenessChanged() })
}

// unfollowLivenessLocked undoes followLivenessLocked. b.mu must be held.
func (b *Bridge) unfollowLivenessLocked(p *Port) {
	if p.unlive != nil {
		p.unlive()
		p.unlive = nil
	}
}
