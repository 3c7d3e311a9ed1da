package openflow

import "fmt"

// MonitorFormat is the encoding of a flow monitor request.
type MonitorFormat uint8

// Flow monitor request encodings, as ovs-ofctl chooses them by version.
const (
	// MonitorNicira is NXST_FLOW_MONITOR (OpenFlow 1.0), NXM match.
	MonitorNicira MonitorFormat = iota
	// MonitorONF is ONFST_FLOW_MONITOR, the ONF extension for OpenFlow
	// 1.3, OXM match.
	MonitorONF
	// MonitorOpenFlow14 is OFPMP_FLOW_MONITOR of OpenFlow 1.4+.
	MonitorOpenFlow14
)

const onfstFlowMonitor = 1870

// FlowMonitorRequest asks for flow table updates (ovs-ofctl monitor
// watch:). Updates (the replies) are not decoded by this package.
type FlowMonitorRequest struct {
	Multipart
	Format   MonitorFormat
	Monitors []FlowMonitor
}

// FlowMonitor is one monitor of a request. OutGroup and Command exist in
// the OpenFlow 1.4 format only.
type FlowMonitor struct {
	ID       uint32
	Flags    uint16
	OutPort  uint32
	OutGroup uint32
	TableID  uint8
	Command  uint8
	Match    []Field
}

func decodeFlowMonitorRequest(v uint8, r *rd, mp Multipart, f MonitorFormat) (Message, error) {
	m := &FlowMonitorRequest{Multipart: mp, Format: f, Monitors: []FlowMonitor{}}
	for r.err == nil && r.len() > 0 {
		var fm FlowMonitor
		var err error
		switch f {
		case MonitorNicira:
			fm.ID, fm.Flags, fm.OutPort = r.u32("flow monitor"), r.u16("flow monitor"), port10(r.u16("flow monitor"))
			n := int(r.u16("flow monitor"))
			fm.TableID = r.u8("flow monitor")
			r.skip(5, "flow monitor")
			if r.err != nil {
				return nil, r.err
			}
			fm.Match, err = decodeNXMatch(r, n)
		case MonitorONF:
			fm.ID, fm.Flags = r.u32("flow monitor"), r.u16("flow monitor")
			n := int(r.u16("flow monitor"))
			fm.OutPort, fm.TableID = r.u32("flow monitor"), r.u8("flow monitor")
			r.skip(3, "flow monitor")
			if r.err != nil {
				return nil, r.err
			}
			if fm.Match, err = decodeOXMMatch(r); err == nil && n != 4+fieldsLen(fm.Match) {
				err = badMatch(CodeBadMatchLen, "flow monitor match length %d", n)
			}
		default:
			fm.ID, fm.OutPort, fm.OutGroup = r.u32("flow monitor"), r.u32("flow monitor"), r.u32("flow monitor")
			fm.Flags, fm.TableID, fm.Command = r.u16("flow monitor"), r.u8("flow monitor"), r.u8("flow monitor")
			if r.err != nil {
				return nil, r.err
			}
			fm.Match, err = decodeOXMMatch(r)
		}
		if err != nil {
			return nil, err
		}
		m.Monitors = append(m.Monitors, fm)
	}
	return m, r.err
}

func fieldsLen(fs []Field) int {
	w := &wr{}
	if appendFields(w, fs) != nil {
		return -1
	}
	return len(w.b)
}

func (m *FlowMonitorRequest) msgType(v uint8) (uint8, error) { return mpType(false, v) }
func (m *FlowMonitorRequest) appendBody(v uint8, w *wr) error {
	switch m.Format {
	case MonitorNicira:
		nxMPHeader(v, w, m.Multipart, nxstFlowMonitor)
	case MonitorONF:
		if v != Version13 {
			return fmt.Errorf("%w: ONF flow monitor outside OpenFlow 1.3", ErrUnencodable)
		}
		mpHeader(v, w, m.Multipart, MPExperimenter)
		w.u32(onfExperimenter)
		w.u32(onfstFlowMonitor)
	default:
		if v < Version14 {
			return fmt.Errorf("%w: OFPMP_FLOW_MONITOR before OpenFlow 1.4", ErrUnencodable)
		}
		mpHeader(v, w, m.Multipart, MPFlowMonitor)
	}
	for _, fm := range m.Monitors {
		switch m.Format {
		case MonitorNicira:
			op, err := port10Wire(fm.OutPort)
			if err != nil {
				return err
			}
			w.u32(fm.ID)
			w.u16(fm.Flags)
			w.u16(op)
			at := w.pos()
			w.u16(0)
			w.u8(fm.TableID)
			w.zeros(5)
			n, err := appendNXMatch(w, fm.Match)
			if err != nil {
				return err
			}
			w.put16(at, uint16(n))
		case MonitorONF:
			n := fieldsLen(fm.Match)
			if n < 0 || n+4 > 0xffff {
				return fmt.Errorf("%w: flow monitor match", ErrUnencodable)
			}
			w.u32(fm.ID)
			w.u16(fm.Flags)
			w.u16(uint16(n + 4))
			w.u32(fm.OutPort)
			w.u8(fm.TableID)
			w.zeros(3)
			if err := appendOXMMatch(w, fm.Match); err != nil {
				return err
			}
		default:
			w.u32(fm.ID)
			w.u32(fm.OutPort)
			w.u32(fm.OutGroup)
			w.u16(fm.Flags)
			w.u8(fm.TableID)
			w.u8(fm.Command)
			if err := appendOXMMatch(w, fm.Match); err != nil {
				return err
			}
		}
	}
	return nil
}
