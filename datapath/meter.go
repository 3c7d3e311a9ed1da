package datapath

import (
	"strconv"

	"github.com/ovsxdp/ovsxdp/flow"
)

// This file runs the meters of datapath actions (meter(N), and the meter
// of a controller action's packet in) on the poll threads. The meters
// themselves live in the bridge's flow table (flow.Meter): their buckets
// are atomic, so every thread polices against the same buckets without a
// lock. A packet a meter drops is counted under DropMeter, on the port it
// came in on.

// Meter implements flow.Meterer: the packet arrives at the poll's time
// on the monotonic clock.
func (p *pmd) Meter(_ uint32, m *flow.Meter, size int) bool { return m.Admit(p.mono, size) }

// Meter implements flow.Meterer for a packet out's actions.
func (s *packetOutSink) Meter(id uint32, m *flow.Meter, size int) bool { return s.p.Meter(id, m, size) }

// Meter implements flow.Meterer for ofproto/trace: the meter is listed
// among the datapath actions, and the packet passes (a trace takes no
// tokens).
func (tr *tracer) Meter(id uint32, _ *flow.Meter, _ int) bool {
	tr.t.Outputs = append(tr.t.Outputs, TraceOutput{Key: *tr.key, ODP: "meter(" + strconv.FormatUint(uint64(id), 10) + ")"})
	return true
}

var (
	_ flow.Meterer = (*pmd)(nil)
	_ flow.Meterer = (*packetOutSink)(nil)
	_ flow.Meterer = (*tracer)(nil)
)
