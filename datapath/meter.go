package datapath

import "github.com/ovsxdp/ovsxdp/flow"

// This file runs the meters of datapath actions (meter(N), and the meter
// of a controller action's packet in) on the poll threads. The meters
// themselves live in the bridge's flow table (flow.Meter): their buckets
// are atomic, so every thread polices against the same buckets without a
// lock. A packet a meter drops is counted under DropMeter, on the port it
// came in on.

// Meter implements flow.Meterer: the packet arrives at the poll's time
// on the monotonic clock.
func (p *pmd) Meter(m *flow.Meter, size int) bool { return m.Admit(p.mono, size) }

// Meter implements flow.Meterer for a packet out's actions.
func (s *packetOutSink) Meter(m *flow.Meter, size int) bool { return s.p.Meter(m, size) }

var (
	_ flow.Meterer = (*pmd)(nil)
	_ flow.Meterer = (*packetOutSink)(nil)
)
