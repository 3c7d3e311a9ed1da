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
// watch:); FlowMonitorReply carries them.
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

// Flow update events: Nicira (NXFME_*) and OpenFlow 1.4+ (OFPFME_*)
// numbering differ.
const (
	NXUpdateAdded    uint16 = 0
	NXUpdateDeleted  uint16 = 1
	NXUpdateModified uint16 = 2
	NXUpdateAbbrev   uint16 = 3

	UpdateInitial  uint16 = 0
	UpdateAdded    uint16 = 1
	UpdateRemoved  uint16 = 2
	UpdateModified uint16 = 3
	UpdateAbbrev   uint16 = 4
	UpdatePaused   uint16 = 5
	UpdateResumed  uint16 = 6
)

// FlowMonitorReply carries flow updates in the Nicira (NXST_FLOW_MONITOR
// reply), ONF (ONFST_FLOW_MONITOR reply of OpenFlow 1.3: the Nicira
// update header, then an OpenFlow 1.3 match and instructions) or OpenFlow 1.4+ (OFPMP_FLOW_MONITOR
// reply) format.
type FlowMonitorReply struct {
	Multipart
	Format  MonitorFormat
	Updates []FlowUpdate
}

// FlowUpdate is one update. An abbreviated one carries only Xid; a paused
// or resumed one (1.4+) only its Event. Actions are used by the Nicira
// format, Instructions by the ONF and 1.4+ formats.
type FlowUpdate struct {
	Event        uint16
	Reason       uint16
	Priority     uint16
	IdleTimeout  uint16
	HardTimeout  uint16
	TableID      uint8
	Cookie       uint64
	Match        []Field
	Actions      []Action
	Instructions []Instruction
	Xid          uint32
}

func decodeFlowMonitorReply(v uint8, r *rd, mp Multipart, f MonitorFormat) (Message, error) {
	m := &FlowMonitorReply{Multipart: mp, Format: f, Updates: []FlowUpdate{}}
	for r.err == nil && r.len() > 0 {
		l := int(r.u16("flow update"))
		if l < 8 || l%8 != 0 {
			return nil, badMessage("flow update length %d", l)
		}
		ur := r.sub(l-2, "flow update")
		u := FlowUpdate{Event: ur.u16("")}
		var err error
		switch {
		case nxUpdates(f) && u.Event == NXUpdateAbbrev, !nxUpdates(f) && u.Event == UpdateAbbrev:
			u.Xid = ur.u32("")
		case !nxUpdates(f) && (u.Event == UpdatePaused || u.Event == UpdateResumed):
			ur.skip(4, "")
		case nxUpdates(f):
			u.Reason, u.Priority, u.IdleTimeout, u.HardTimeout = ur.u16(""), ur.u16(""), ur.u16(""), ur.u16("")
			n := int(ur.u16(""))
			u.TableID = ur.u8("")
			ur.skip(1, "")
			u.Cookie = ur.u64("")
			if ur.err == nil {
				if f == MonitorONF {
					if u.Match, err = decodeOXMMatch(ur); err == nil && n != 4+fieldsLen(u.Match) {
						err = badMatch(CodeBadMatchLen, "flow update match length %d", n)
					}
					if err == nil {
						u.Instructions, err = decodeInstructions(v, ur)
					}
				} else if u.Match, err = decodeNXMatch(ur, n); err == nil {
					u.Actions, err = decodeActions(v, ur, 0)
				}
			}
		default:
			u.TableID = ur.u8("")
			u.Reason = uint16(ur.u8(""))
			u.IdleTimeout, u.HardTimeout, u.Priority = ur.u16(""), ur.u16(""), ur.u16("")
			ur.skip(4, "")
			u.Cookie = ur.u64("")
			if ur.err == nil {
				if u.Match, err = decodeOXMMatch(ur); err == nil {
					u.Instructions, err = decodeInstructions(v, ur)
				}
			}
		}
		if err != nil {
			return nil, err
		}
		if ur.err != nil {
			return nil, ur.err
		}
		if ur.len() != 0 {
			return nil, badMessage("flow update event %d: %d trailing bytes", u.Event, ur.len())
		}
		m.Updates = append(m.Updates, u)
	}
	return m, r.err
}

func (m *FlowMonitorReply) msgType(v uint8) (uint8, error) { return mpType(true, v) }
func (m *FlowMonitorReply) appendBody(v uint8, w *wr) error {
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
	case MonitorOpenFlow14:
		if v < Version14 {
			return fmt.Errorf("%w: OFPMP_FLOW_MONITOR before OpenFlow 1.4", ErrUnencodable)
		}
		mpHeader(v, w, m.Multipart, MPFlowMonitor)
	default:
		return fmt.Errorf("%w: flow monitor reply format %d", ErrUnencodable, m.Format)
	}
	nx := nxUpdates(m.Format)
	for i := range m.Updates {
		u := &m.Updates[i]
		start := w.pos()
		w.u16(0)
		w.u16(u.Event)
		var err error
		switch {
		case nx && u.Event == NXUpdateAbbrev, !nx && u.Event == UpdateAbbrev:
			w.u32(u.Xid)
		case !nx && (u.Event == UpdatePaused || u.Event == UpdateResumed):
			w.zeros(4)
		case nx:
			w.u16(u.Reason)
			w.u16(u.Priority)
			w.u16(u.IdleTimeout)
			w.u16(u.HardTimeout)
			at := w.pos()
			w.u16(0)
			w.u8(u.TableID)
			w.zeros(1)
			w.u64(u.Cookie)
			if m.Format == MonitorONF {
				// The ONF format has an OpenFlow 1.3 match (with its
				// header) and instructions after the Nicira header.
				n := fieldsLen(u.Match)
				if n < 0 || n+4 > 0xffff {
					return fmt.Errorf("%w: flow update match", ErrUnencodable)
				}
				w.put16(at, uint16(n+4))
				if err = appendOXMMatch(w, u.Match); err == nil {
					err = appendInstructions(v, w, u.Instructions)
				}
			} else {
				var n int
				if n, err = appendNXMatch(w, u.Match); err == nil {
					w.put16(at, uint16(n))
					err = appendActions(v, w, u.Actions)
				}
			}
		default:
			if u.Reason > 0xff {
				return fmt.Errorf("%w: flow update reason %d", ErrUnencodable, u.Reason)
			}
			w.u8(u.TableID)
			w.u8(uint8(u.Reason))
			w.u16(u.IdleTimeout)
			w.u16(u.HardTimeout)
			w.u16(u.Priority)
			w.zeros(4)
			w.u64(u.Cookie)
			if err = appendOXMMatch(w, u.Match); err == nil {
				err = appendInstructions(v, w, u.Instructions)
			}
		}
		if err != nil {
			return err
		}
		if w.pos()-start > 0xffff {
			return ErrTooLong
		}
		w.put16(start, uint16(w.pos()-start))
	}
	return nil
}

// nxUpdates reports whether format f carries Nicira flow updates (NXFME_*
// events, NXM matches and action lists): the Nicira and ONF formats do.
func nxUpdates(f MonitorFormat) bool { return f != MonitorOpenFlow14 }
