package ofconn

import (
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// FlowRemoved tells every connection that takes it that rule, which
// asked for it (send_flow_rem), was removed for reason at when, as Open
// vSwitch does: in the connection's version and flow format (OpenFlow
// 1.0 with the NXM flow format gets NXT_FLOW_REMOVED), and only for the
// reasons its asynchronous configuration has for flow removals: by
// default, timeouts and deletes from OpenFlow 1.0 on, group deletes from
// 1.3, meter deletes from 1.4; none to a slave (asyncconfig.go).
func (s *Server) FlowRemoved(r *flow.Rule, reason flow.RemovedReason, at time.Time) {
	type form struct {
		version uint8
		nxm     bool
	}
	var msg map[form][]byte // encoded once per form
	for _, c := range s.liveConns() {
		a := c.async.cfg.Load()
		if !a.wants(openflow.AsyncFlowRemoved, uint8(reason)) {
			continue
		}
		nxm := a.version == openflow.Version10 && a.flowFormat == openflow.FlowFormatNXM
		k := form{a.version, nxm}
		b, ok := msg[k]
		if !ok {
			var err error
			if b, err = encodeFlowRemoved(a.version, nxm, r, reason, at); err != nil {
				c.log.Error("openflow: cannot encode a flow removed", "err", err)
				continue
			}
			if msg == nil {
				msg = map[form][]byte{}
			}
			msg[k] = b
		}
		s.enqueue(c, b)
	}
}

// encodeFlowRemoved encodes the removal of r in version v (with nxm,
// NXT_FLOW_REMOVED), with the rule's counters and its time installed up
// to at, in milliseconds as its flow stats give it.
func encodeFlowRemoved(v uint8, nxm bool, r *flow.Rule, reason flow.RemovedReason, at time.Time) ([]byte, error) {
	packets, bytes := r.Stats()
	idle, hard := r.Timeouts()
	m := &openflow.FlowRemoved{Nicira: nxm, Cookie: r.Cookie, Priority: r.Priority, Reason: uint8(reason), TableID: r.Table,
		IdleTimeout: idle, HardTimeout: hard, PacketCount: packets, ByteCount: bytes}
	m.DurationSec, m.DurationNsec = ofconv.Duration(at.Sub(r.Installed))
	match := r.Match()
	switch {
	case v == openflow.Version10 && !nxm:
		m.Match10 = ofconv.Match10FromMatch(&match)
	default:
		m.Match = ofconv.FieldsFromMatch(&match, nxm)
	}
	return openflow.Encode(v, 0, m)
}
