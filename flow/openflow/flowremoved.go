package openflow

// nxtFlowRemoved is NXT_FLOW_REMOVED's subtype.
const nxtFlowRemoved = 14

// FlowRemoved is OFPT_FLOW_REMOVED: a flow that asked for it
// (send_flow_rem) was removed. With Nicira it is NXT_FLOW_REMOVED, which
// Open vSwitch sends to an OpenFlow 1.0 connection whose flow format is
// NXM. Match10 is OpenFlow 1.0's standard match; Match the others' (NXM
// with Nicira, OXM otherwise). OpenFlow 1.0's standard form has no table
// and no hard timeout; Open vSwitch reads its table as 255.
type FlowRemoved struct {
	Nicira       bool
	Cookie       uint64
	Priority     uint16
	Reason       uint8
	TableID      uint8
	DurationSec  uint32
	DurationNsec uint32
	IdleTimeout  uint16
	HardTimeout  uint16
	PacketCount  uint64
	ByteCount    uint64
	Match10      Match10
	Match        []Field
}

func (m *FlowRemoved) msgType(v uint8) (uint8, error) {
	if m.Nicira {
		return typeOf(kExperimenter, v)
	}
	return typeOf(kFlowRemoved, v)
}

func (m *FlowRemoved) appendBody(v uint8, w *wr) error {
	switch {
	case m.Nicira:
		// nx_flow_removed: the table is sent plus one (0: none).
		nxHeader(w, nxtFlowRemoved)
		w.u64(m.Cookie)
		w.u16(m.Priority)
		w.u8(m.Reason)
		w.u8(m.TableID + 1)
		w.u32(m.DurationSec)
		w.u32(m.DurationNsec)
		w.u16(m.IdleTimeout)
		at := w.pos()
		w.u16(0)
		w.u64(m.PacketCount)
		w.u64(m.ByteCount)
		n, err := appendNXMatch(w, m.Match)
		if err != nil {
			return err
		}
		w.put16(at, uint16(n))
	case v == Version10:
		m.Match10.append(w)
		w.u64(m.Cookie)
		w.u16(m.Priority)
		w.u8(m.Reason)
		w.zeros(1)
		w.u32(m.DurationSec)
		w.u32(m.DurationNsec)
		w.u16(m.IdleTimeout)
		w.zeros(2)
		w.u64(m.PacketCount)
		w.u64(m.ByteCount)
	case v >= Version15:
		// ofp15_flow_removed: the counters are OXS stats, as in a
		// flow stats reply.
		w.u8(m.TableID)
		w.u8(m.Reason)
		w.u16(m.Priority)
		w.u16(m.IdleTimeout)
		w.u16(m.HardTimeout)
		w.u64(m.Cookie)
		if err := appendOXMMatch(w, m.Match); err != nil {
			return err
		}
		appendOXS(w, oxsStats{present: OXSDuration | OXSPacketCount | OXSByteCount,
			durSec: m.DurationSec, durNsec: m.DurationNsec, packets: m.PacketCount, bytes: m.ByteCount})
	default:
		w.u64(m.Cookie)
		w.u16(m.Priority)
		w.u8(m.Reason)
		w.u8(m.TableID)
		w.u32(m.DurationSec)
		w.u32(m.DurationNsec)
		w.u16(m.IdleTimeout)
		w.u16(m.HardTimeout)
		w.u64(m.PacketCount)
		w.u64(m.ByteCount)
		return appendOXMMatch(w, m.Match)
	}
	return nil
}

// decodeFlowRemoved reads OFPT_FLOW_REMOVED's body.
func decodeFlowRemoved(v uint8, r *rd) (*FlowRemoved, error) {
	const what = "flow removed"
	m := &FlowRemoved{}
	var err error
	switch {
	case v == Version10:
		m.Match10 = decodeMatch10(r)
		m.Cookie, m.Priority, m.Reason = r.u64(what), r.u16(what), r.u8(what)
		r.skip(1, what)
		m.DurationSec, m.DurationNsec, m.IdleTimeout = r.u32(what), r.u32(what), r.u16(what)
		r.skip(2, what)
		m.PacketCount, m.ByteCount = r.u64(what), r.u64(what)
		m.TableID = 0xff
	case v >= Version15:
		m.TableID, m.Reason, m.Priority = r.u8(what), r.u8(what), r.u16(what)
		m.IdleTimeout, m.HardTimeout, m.Cookie = r.u16(what), r.u16(what), r.u64(what)
		if r.err != nil {
			return nil, r.err
		}
		if m.Match, err = decodeOXMMatch(r); err != nil {
			return nil, err
		}
		st, err := decodeOXS(r)
		if err != nil {
			return nil, err
		}
		m.DurationSec, m.DurationNsec, m.PacketCount, m.ByteCount = st.durSec, st.durNsec, st.packets, st.bytes
	default:
		m.Cookie, m.Priority, m.Reason, m.TableID = r.u64(what), r.u16(what), r.u8(what), r.u8(what)
		m.DurationSec, m.DurationNsec = r.u32(what), r.u32(what)
		m.IdleTimeout, m.HardTimeout = r.u16(what), r.u16(what)
		m.PacketCount, m.ByteCount = r.u64(what), r.u64(what)
		if r.err != nil {
			return nil, r.err
		}
		if m.Match, err = decodeOXMMatch(r); err != nil {
			return nil, err
		}
	}
	return m, r.err
}

// decodeNXFlowRemoved reads NXT_FLOW_REMOVED's body after the Nicira
// header.
func decodeNXFlowRemoved(r *rd) (*FlowRemoved, error) {
	const what = "nx flow removed"
	m := &FlowRemoved{Nicira: true, Cookie: r.u64(what), Priority: r.u16(what), Reason: r.u8(what), TableID: r.u8(what) - 1,
		DurationSec: r.u32(what), DurationNsec: r.u32(what), IdleTimeout: r.u16(what)}
	n := int(r.u16(what))
	m.PacketCount, m.ByteCount = r.u64(what), r.u64(what)
	if r.err != nil {
		return nil, r.err
	}
	fs, err := decodeNXMatch(r, n)
	if err != nil {
		return nil, err
	}
	m.Match = fs
	return m, r.err
}
