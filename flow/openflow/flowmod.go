package openflow

import "fmt"

// Flow mod commands.
const (
	FlowAdd          uint8 = 0
	FlowModify       uint8 = 1
	FlowModifyStrict uint8 = 2
	FlowDelete       uint8 = 3
	FlowDeleteStrict uint8 = 4
)

// NoBuffer is the buffer id meaning "no buffered packet".
const NoBuffer uint32 = 0xffffffff

// FlowMod is OFPT_FLOW_MOD, or with Nicira set the NXT_FLOW_MOD vendor
// message (OpenFlow 1.0 with an NXM match, in which the table id rides in
// the high byte of the command when NXT_FLOW_MOD_TABLE_ID is on). The
// match is Match10 for OpenFlow 1.0's OFPT_FLOW_MOD, Match otherwise;
// Actions carry 1.0 and Nicira flow mods, Instructions 1.1+ ones.
type FlowMod struct {
	Nicira       bool
	Cookie       uint64
	CookieMask   uint64
	TableID      uint8
	Command      uint8
	IdleTimeout  uint16
	HardTimeout  uint16
	Priority     uint16
	BufferID     uint32
	OutPort      uint32
	OutGroup     uint32
	Flags        uint16
	Importance   uint16
	Match10      Match10
	Match        []Field
	Actions      []Action
	Instructions []Instruction
}

func decodeFlowMod(v uint8, r *rd) (*FlowMod, error) {
	m := &FlowMod{}
	return m, decodeFlowModTo(v, r, m, nil)
}

// A FlowModDecoder decodes messages as Decode does, but a flow mod of
// OpenFlow 1.1 or later (OFPT_FLOW_MOD) into a FlowMod of its own, whose
// match list it reuses and whose match values alias the message: that
// flow mod is good until the decoder's next call, and while the
// message's bytes are unchanged. It is for a caller that keeps nothing of
// a decoded flow mod but its conversion, as a bundle keeps its adds. It
// is not safe for concurrent use.
type FlowModDecoder struct {
	m      FlowMod
	fields []Field
}

// Decode is Decode, with a flow mod decoded into d's.
func (d *FlowModDecoder) Decode(b []byte) (Header, Message, error) {
	return decode(b, d)
}

// Reused reports whether m is d's own flow mod, which its next call
// overwrites.
func (d *FlowModDecoder) Reused(m Message) bool {
	fm, ok := m.(*FlowMod)
	return ok && fm == &d.m
}

func (d *FlowModDecoder) flowMod(v uint8, r *rd) (*FlowMod, error) {
	d.m = FlowMod{}
	err := decodeFlowModTo(v, r, &d.m, &d.fields)
	return &d.m, err
}

// decodeFlowModTo decodes a flow mod into m, with its match list reused
// as decodeFieldsTo does.
func decodeFlowModTo(v uint8, r *rd, m *FlowMod, reuse *[]Field) error {
	if v == Version10 {
		m.Match10 = decodeMatch10(r)
		m.Cookie = r.u64("flow mod")
		cmd := r.u16("flow mod")
		m.Command, m.TableID = uint8(cmd), uint8(cmd>>8)
		m.IdleTimeout, m.HardTimeout, m.Priority = r.u16("flow mod"), r.u16("flow mod"), r.u16("flow mod")
		m.BufferID = r.u32("flow mod")
		m.OutPort = port10(r.u16("flow mod"))
		m.Flags = r.u16("flow mod")
		if r.err != nil {
			return r.err
		}
		acts, err := decodeActions(v, r, 0)
		m.Actions = acts
		return err
	}
	m.Cookie, m.CookieMask = r.u64("flow mod"), r.u64("flow mod")
	m.TableID, m.Command = r.u8("flow mod"), r.u8("flow mod")
	m.IdleTimeout, m.HardTimeout, m.Priority = r.u16("flow mod"), r.u16("flow mod"), r.u16("flow mod")
	m.BufferID, m.OutPort, m.OutGroup = r.u32("flow mod"), r.u32("flow mod"), r.u32("flow mod")
	m.Flags = r.u16("flow mod")
	if v >= Version14 {
		m.Importance = r.u16("flow mod")
	} else {
		r.skip(2, "flow mod")
	}
	if r.err != nil {
		return r.err
	}
	fs, err := decodeOXMMatchTo(r, reuse)
	if err != nil {
		return err
	}
	m.Match = fs
	m.Instructions, err = decodeInstructions(v, r)
	return err
}

// decodeNXFlowMod decodes the body of NXT_FLOW_MOD after the subtype.
func decodeNXFlowMod(v uint8, r *rd) (*FlowMod, error) {
	m := &FlowMod{Nicira: true}
	m.Cookie = r.u64("nx flow mod")
	cmd := r.u16("nx flow mod")
	m.Command, m.TableID = uint8(cmd), uint8(cmd>>8)
	m.IdleTimeout, m.HardTimeout, m.Priority = r.u16("nx flow mod"), r.u16("nx flow mod"), r.u16("nx flow mod")
	m.BufferID = r.u32("nx flow mod")
	m.OutPort = port10(r.u16("nx flow mod"))
	m.Flags = r.u16("nx flow mod")
	n := int(r.u16("nx flow mod"))
	r.skip(6, "nx flow mod")
	if r.err != nil {
		return nil, r.err
	}
	fs, err := decodeNXMatch(r, n)
	if err != nil {
		return nil, err
	}
	m.Match = fs
	m.Actions, err = decodeActions(v, r, 0)
	return m, err
}

func (m *FlowMod) msgType(v uint8) (uint8, error) {
	if m.Nicira {
		return typeOf(kExperimenter, v)
	}
	return typeOf(kFlowMod, v)
}

func (m *FlowMod) appendBody(v uint8, w *wr) error {
	if m.Nicira {
		w.u32(NiciraExperimenter)
		w.u32(nxtFlowMod)
		return m.appendNX(v, w)
	}
	if v == Version10 {
		if len(m.Instructions) != 0 || len(m.Match) != 0 {
			return fmt.Errorf("%w: OpenFlow 1.0 flow mod takes Match10 and Actions", ErrUnencodable)
		}
		op, err := port10Wire(m.OutPort)
		if err != nil {
			return err
		}
		m.Match10.append(w)
		w.u64(m.Cookie)
		w.u16(uint16(m.TableID)<<8 | uint16(m.Command))
		w.u16(m.IdleTimeout)
		w.u16(m.HardTimeout)
		w.u16(m.Priority)
		w.u32(m.BufferID)
		w.u16(op)
		w.u16(m.Flags)
		return appendActions(v, w, m.Actions)
	}
	if len(m.Actions) != 0 {
		return fmt.Errorf("%w: OpenFlow 1.1+ flow mod takes Instructions", ErrUnencodable)
	}
	w.u64(m.Cookie)
	w.u64(m.CookieMask)
	w.u8(m.TableID)
	w.u8(m.Command)
	w.u16(m.IdleTimeout)
	w.u16(m.HardTimeout)
	w.u16(m.Priority)
	w.u32(m.BufferID)
	w.u32(m.OutPort)
	w.u32(m.OutGroup)
	w.u16(m.Flags)
	if v >= Version14 {
		w.u16(m.Importance)
	} else {
		w.zeros(2)
	}
	if err := appendOXMMatch(w, m.Match); err != nil {
		return err
	}
	return appendInstructions(v, w, m.Instructions)
}

func (m *FlowMod) appendNX(v uint8, w *wr) error {
	op, err := port10Wire(m.OutPort)
	if err != nil {
		return err
	}
	w.u64(m.Cookie)
	w.u16(uint16(m.TableID)<<8 | uint16(m.Command))
	w.u16(m.IdleTimeout)
	w.u16(m.HardTimeout)
	w.u16(m.Priority)
	w.u32(m.BufferID)
	w.u16(op)
	w.u16(m.Flags)
	at := w.pos()
	w.u16(0)
	w.zeros(6)
	n, err := appendNXMatch(w, m.Match)
	if err != nil {
		return err
	}
	w.put16(at, uint16(n))
	return appendActions(v, w, m.Actions)
}

// PacketIn is OFPT_PACKET_IN. InPort is OpenFlow 1.0's in_port; 1.3+
// carry it in Match, with TableID and Cookie.
type PacketIn struct {
	BufferID uint32
	TotalLen uint16
	InPort   uint32
	Reason   uint8
	TableID  uint8
	Cookie   uint64
	Match    []Field
	Data     []byte
}

// Packet-in reasons.
const (
	PacketInNoMatch uint8 = 0
	PacketInAction  uint8 = 1
)

func decodePacketIn(v uint8, r *rd) (*PacketIn, error) {
	m := &PacketIn{BufferID: r.u32("packet in"), TotalLen: r.u16("packet in")}
	if v == Version10 {
		m.InPort = port10(r.u16("packet in"))
		m.Reason = r.u8("packet in")
		r.skip(1, "packet in")
		m.Data = r.rest()
		return m, r.err
	}
	m.Reason, m.TableID = r.u8("packet in"), r.u8("packet in")
	m.Cookie = r.u64("packet in")
	if r.err != nil {
		return nil, r.err
	}
	fs, err := decodeOXMMatch(r)
	if err != nil {
		return nil, err
	}
	m.Match = fs
	r.skip(2, "packet in")
	m.Data = r.rest()
	return m, r.err
}

func (m *PacketIn) msgType(v uint8) (uint8, error) { return typeOf(kPacketIn, v) }
func (m *PacketIn) appendBody(v uint8, w *wr) error {
	w.u32(m.BufferID)
	w.u16(m.TotalLen)
	if v == Version10 {
		p, err := port10Wire(m.InPort)
		if err != nil {
			return err
		}
		w.u16(p)
		w.u8(m.Reason)
		w.zeros(1)
		w.bytes(m.Data)
		return nil
	}
	w.u8(m.Reason)
	w.u8(m.TableID)
	w.u64(m.Cookie)
	if err := appendOXMMatch(w, m.Match); err != nil {
		return err
	}
	w.zeros(2)
	w.bytes(m.Data)
	return nil
}

// PacketOut is OFPT_PACKET_OUT. InPort is used by 1.0 and 1.3/1.4; 1.5
// carries the in_port (and other metadata) in Match.
type PacketOut struct {
	BufferID uint32
	InPort   uint32
	Match    []Field
	Actions  []Action
	Data     []byte
}

func decodePacketOut(v uint8, r *rd) (*PacketOut, error) {
	m := &PacketOut{BufferID: r.u32("packet out")}
	var n int
	switch v {
	case Version10:
		m.InPort = port10(r.u16("packet out"))
		n = int(r.u16("packet out"))
	case Version15:
		n = int(r.u16("packet out"))
		r.skip(2, "packet out")
		if r.err != nil {
			return nil, r.err
		}
		fs, err := decodeOXMMatch(r)
		if err != nil {
			return nil, err
		}
		m.Match = fs
	default:
		m.InPort = r.u32("packet out")
		n = int(r.u16("packet out"))
		r.skip(6, "packet out")
	}
	if r.err != nil {
		return nil, r.err
	}
	acts, err := decodeActions(v, r.sub(n, "packet out actions"), 0)
	if err != nil {
		return nil, err
	}
	m.Actions = acts
	m.Data = r.rest()
	return m, r.err
}

func (m *PacketOut) msgType(v uint8) (uint8, error) { return typeOf(kPacketOut, v) }
func (m *PacketOut) appendBody(v uint8, w *wr) error {
	w.u32(m.BufferID)
	var at int
	switch v {
	case Version10:
		p, err := port10Wire(m.InPort)
		if err != nil {
			return err
		}
		w.u16(p)
		at = w.pos()
		w.u16(0)
	case Version15:
		at = w.pos()
		w.u16(0)
		w.zeros(2)
		if err := appendOXMMatch(w, m.Match); err != nil {
			return err
		}
	default:
		w.u32(m.InPort)
		at = w.pos()
		w.u16(0)
		w.zeros(6)
	}
	start := w.pos()
	if err := appendActions(v, w, m.Actions); err != nil {
		return err
	}
	if w.pos()-start > 0xffff {
		return ErrTooLong
	}
	w.put16(at, uint16(w.pos()-start))
	w.bytes(m.Data)
	return nil
}
