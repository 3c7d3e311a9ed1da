package openflow

import "fmt"

// Nicira vendor (OpenFlow 1.0) / experimenter (1.1+) message subtypes.
const (
	nxtRoleRequest        = 10
	nxtRoleReply          = 11
	nxtSetFlowFormat      = 12
	nxtFlowMod            = 13
	nxtFlowModTableID     = 15
	nxtSetPacketInFormat  = 16
	nxtSetControllerID    = 20
	nxtFlowMonitorCancel  = 21
	nxtFlowMonitorPaused  = 22
	nxtFlowMonitorResumed = 23
	nxtGroupMod           = 31
)

// Flow formats for NXT_SET_FLOW_FORMAT.
const (
	FlowFormatOpenFlow10 uint32 = 0
	FlowFormatNXM        uint32 = 2
)

// Packet-in formats for NXT_SET_PACKET_IN_FORMAT.
const (
	PacketInFormatStandard uint32 = 0
	PacketInFormatNXT      uint32 = 1
	PacketInFormatNXT2     uint32 = 2
)

// Experimenter is a vendor (1.0) / experimenter (1.1+) message that this
// package does not decode. ExpType is the experimenter type (1.1+) or, in
// 1.0, the Nicira subtype; a 1.0 message of another vendor has no subtype
// and keeps everything after the vendor id in Data. The daemon answers an unknown Experimenter id
// with OFPBRC_BAD_EXPERIMENTER (BAD_VENDOR in 1.0) and an unknown Nicira
// subtype with OFPBRC_BAD_EXP_TYPE (BAD_SUBTYPE).
type Experimenter struct {
	Experimenter uint32
	ExpType      uint32
	Data         []byte
}

func (m *Experimenter) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *Experimenter) appendBody(v uint8, w *wr) error {
	w.u32(m.Experimenter)
	if v == Version10 && m.Experimenter != NiciraExperimenter {
		if m.ExpType != 0 {
			return fmt.Errorf("%w: vendor subtype in OpenFlow 1.0", ErrUnencodable)
		}
		w.bytes(m.Data)
		return nil
	}
	w.u32(m.ExpType)
	w.bytes(m.Data)
	return nil
}

// SetFlowFormat is NXT_SET_FLOW_FORMAT.
type SetFlowFormat struct{ Format uint32 }

// SetPacketInFormat is NXT_SET_PACKET_IN_FORMAT.
type SetPacketInFormat struct{ Format uint32 }

// FlowModTableID is NXT_FLOW_MOD_TABLE_ID: when Set is nonzero, the high
// byte of an OpenFlow 1.0 flow mod's command is the table id.
type FlowModTableID struct{ Set uint8 }

// SetControllerID is NXT_SET_CONTROLLER_ID.
type SetControllerID struct{ ID uint16 }

// NXRoleRequest is NXT_ROLE_REQUEST (roles: 0 other, 1 master, 2 slave).
type NXRoleRequest struct{ Role uint32 }

// NXRoleReply is NXT_ROLE_REPLY.
type NXRoleReply struct{ Role uint32 }

// FlowMonitorCancel is NXT_FLOW_MONITOR_CANCEL.
type FlowMonitorCancel struct{ ID uint32 }

// FlowMonitorPaused is NXT_FLOW_MONITOR_PAUSED.
type FlowMonitorPaused struct{}

// FlowMonitorResumed is NXT_FLOW_MONITOR_RESUMED.
type FlowMonitorResumed struct{}

func decodeExperimenter(v uint8, r *rd) (Message, error) {
	exp := r.u32("experimenter")
	if v == Version10 && exp != NiciraExperimenter {
		// OpenFlow 1.0's vendor header has no subtype.
		return &Experimenter{Experimenter: exp, Data: r.rest()}, r.err
	}
	st := r.u32("experimenter")
	if r.err != nil {
		return nil, r.err
	}
	if exp != NiciraExperimenter {
		return &Experimenter{Experimenter: exp, ExpType: st, Data: r.rest()}, nil
	}
	var m Message
	switch st {
	case nxtFlowMod:
		return decodeNXFlowMod(v, r)
	case nxtGroupMod:
		if v == Version10 {
			return decodeGroupMod(v, r)
		}
		return &Experimenter{Experimenter: exp, ExpType: st, Data: r.rest()}, nil
	case nxtSetFlowFormat:
		m = &SetFlowFormat{Format: r.u32("set flow format")}
	case nxtSetPacketInFormat:
		m = &SetPacketInFormat{Format: r.u32("set packet in format")}
	case nxtFlowModTableID:
		m = &FlowModTableID{Set: r.u8("flow mod table id")}
		r.skip(7, "flow mod table id")
	case nxtSetControllerID:
		r.skip(6, "set controller id")
		m = &SetControllerID{ID: r.u16("set controller id")}
	case nxtRoleRequest:
		m = &NXRoleRequest{Role: r.u32("role request")}
	case nxtRoleReply:
		m = &NXRoleReply{Role: r.u32("role reply")}
	case nxtPacketIn:
		return decodeNXPacketIn(r)
	case nxtFlowRemoved:
		return decodeNXFlowRemoved(r)
	case nxtSetAsyncConfig, nxtSetAsyncConfig2:
		b, err := decodeAsyncBody(r, st == nxtSetAsyncConfig2)
		return &SetAsync{Nicira: true, AsyncBody: b}, err
	case nxtPacketIn2:
		return decodePacketIn2(r)
	case nxtResume:
		m, err := decodePacketIn2(r)
		if err != nil {
			return nil, err
		}
		return &Resume{*m}, nil
	case nxtFlowMonitorCancel:
		m = &FlowMonitorCancel{ID: r.u32("flow monitor cancel")}
	case nxtFlowMonitorPaused:
		m = &FlowMonitorPaused{}
	case nxtFlowMonitorResumed:
		m = &FlowMonitorResumed{}
	case nxtTLVTableMod:
		return decodeTLVTableMod(r)
	case nxtTLVTableRequest:
		m = &TLVTableRequest{}
	case nxtTLVTableReply:
		return decodeTLVTableReply(r)
	default:
		return &Experimenter{Experimenter: exp, ExpType: st, Data: r.rest()}, nil
	}
	return m, r.err
}

func nxHeader(w *wr, st uint32) {
	w.u32(NiciraExperimenter)
	w.u32(st)
}

func (m *SetFlowFormat) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *SetFlowFormat) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtSetFlowFormat)
	w.u32(m.Format)
	return nil
}

func (m *SetPacketInFormat) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *SetPacketInFormat) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtSetPacketInFormat)
	w.u32(m.Format)
	return nil
}

func (m *FlowModTableID) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *FlowModTableID) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtFlowModTableID)
	w.u8(m.Set)
	w.zeros(7)
	return nil
}

func (m *SetControllerID) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *SetControllerID) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtSetControllerID)
	w.zeros(6)
	w.u16(m.ID)
	return nil
}

func (m *NXRoleRequest) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *NXRoleRequest) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtRoleRequest)
	w.u32(m.Role)
	return nil
}

func (m *NXRoleReply) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *NXRoleReply) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtRoleReply)
	w.u32(m.Role)
	return nil
}

func (m *FlowMonitorCancel) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *FlowMonitorCancel) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtFlowMonitorCancel)
	w.u32(m.ID)
	return nil
}

func (m *FlowMonitorPaused) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *FlowMonitorPaused) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtFlowMonitorPaused)
	return nil
}

func (m *FlowMonitorResumed) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *FlowMonitorResumed) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtFlowMonitorResumed)
	return nil
}
