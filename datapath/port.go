package datapath

import (
	"sort"
	"sync/atomic"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// Port is a port of a bridge: a vport with its OpenFlow port number and its
// counters. Ports are created by Bridge.AddPort and are immutable but for
// their counters and whether their rx is detached.
type Port struct {
	Name   string
	OFPort uint32
	vp     vport.Port
	dev    *vport.Device
	// counters has one entry per poll thread.
	counters []portCounters
	// rxDetached is set when the port's device announced that it is going
	// away: its rx queues are no longer polled, though the port stays in
	// the table until it is deleted. Protected by the bridge's mu.
	rxDetached bool
	// link is how the port was added by AddLinkPort (nil for AddPort): a
	// port that is kept, detached, when its link is deleted. unwatch stops
	// following the port's link (nil when it is not on a real link). Both
	// are protected by the bridge's mu.
	link    *LinkPort
	unwatch func()
	// unlive stops telling the rule table of the device's state changes
	// (liveness.go). Protected by the bridge's mu.
	unlive func()
	// rxRecorded tells whether the frames the port received last carried
	// their rx queue (vport.RxQueue.Recorded): what the tx queue pick of a
	// packet from this port depends on. Poll threads set it, trace reads it.
	rxRecorded atomic.Bool
	// rxBusy is each rx queue's busy time (usage.go), by queue.
	rxBusy []atomic.Uint64
}

// rxBusyOf is rx queue q's busy time counter, or nil if it has none.
func (p *Port) rxBusyOf(q int) *atomic.Uint64 {
	if q < len(p.rxBusy) {
		return &p.rxBusy[q]
	}
	return nil
}

// VPort is the port's underlying vport.
func (p *Port) VPort() vport.Port { return p.vp }

// Stats sums the port's counters over the poll threads.
func (p *Port) Stats() PortStats {
	s := PortStats{Name: p.Name, OFPort: p.OFPort}
	for i := range p.counters {
		s.add(&p.counters[i])
	}
	return s
}

// portTable is one immutable snapshot of a bridge's ports, published
// through an atomic pointer: poll threads load it once per batch.
type portTable struct {
	byOF  []*Port // indexed by OpenFlow port number; nil where none
	local *Port   // the LOCAL port (flow.PortLocal), kept out of byOF
	list  []*Port // sorted by OpenFlow port number
}

// lookup returns the port with OpenFlow number of, or nil.
func (t *portTable) lookup(of uint32) *Port {
	if of == flow.PortLocal {
		return t.local
	}
	if uint64(of) < uint64(len(t.byOF)) {
		return t.byOF[of]
	}
	return nil
}

func (t *portTable) byName(name string) *Port {
	for _, p := range t.list {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// with returns a new table with p added.
func (t *portTable) with(p *Port) *portTable {
	list := append(append([]*Port(nil), t.list...), p)
	return newPortTable(list)
}

// without returns a new table without p.
func (t *portTable) without(p *Port) *portTable {
	list := make([]*Port, 0, len(t.list))
	for _, q := range t.list {
		if q != p {
			list = append(list, q)
		}
	}
	return newPortTable(list)
}

func newPortTable(list []*Port) *portTable {
	sort.Slice(list, func(i, j int) bool { return list[i].OFPort < list[j].OFPort })
	t := &portTable{list: list}
	n := len(list)
	if n > 0 && list[n-1].OFPort == flow.PortLocal {
		t.local = list[n-1]
		n--
	}
	if n > 0 {
		t.byOF = make([]*Port, list[n-1].OFPort+1)
		for _, p := range list[:n] {
			t.byOF[p.OFPort] = p
		}
	}
	return t
}
