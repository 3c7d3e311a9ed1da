package openflow

const nxtPacketIn = 17

// NXPacketIn is NXT_PACKET_IN, the packet in a controller gets after
// NXT_SET_PACKET_IN_FORMAT nxt_packet_in: OpenFlow 1.0's packet in with a
// table id, a cookie and the packet's metadata as an NXM match, in every
// OpenFlow version.
type NXPacketIn struct {
	BufferID uint32
	TotalLen uint16
	Reason   uint8
	TableID  uint8
	Cookie   uint64
	Match    []Field // NXM
	Data     []byte
}

// decodeNXPacketIn reads the body after the Nicira header: the fixed
// part, match_len bytes of nx_match padded to 8, two zero bytes and the
// frame.
func decodeNXPacketIn(r *rd) (*NXPacketIn, error) {
	m := &NXPacketIn{BufferID: r.u32("nx packet in"), TotalLen: r.u16("nx packet in"),
		Reason: r.u8("nx packet in"), TableID: r.u8("nx packet in"), Cookie: r.u64("nx packet in")}
	n := int(r.u16("nx packet in"))
	r.skip(6, "nx packet in")
	if r.err != nil {
		return nil, r.err
	}
	fs, err := decodeNXMatch(r, n)
	if err != nil {
		return nil, err
	}
	m.Match = fs
	r.skip(2, "nx packet in")
	m.Data = r.rest()
	return m, r.err
}

func (m *NXPacketIn) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *NXPacketIn) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtPacketIn)
	w.u32(m.BufferID)
	w.u16(m.TotalLen)
	w.u8(m.Reason)
	w.u8(m.TableID)
	w.u64(m.Cookie)
	at := w.pos()
	w.u16(0)
	w.zeros(6)
	n, err := appendNXMatch(w, m.Match)
	if err != nil {
		return err
	}
	w.put16(at, uint16(n))
	w.zeros(2)
	w.bytes(m.Data)
	return nil
}
