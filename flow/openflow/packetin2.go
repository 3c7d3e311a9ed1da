package openflow

import "fmt"

const nxtPacketIn2 = 30

// NXT_PACKET_IN2 property types.
const (
	pin2Packet       = 0
	pin2FullLen      = 1
	pin2BufferID     = 2
	pin2TableID      = 3
	pin2Cookie       = 4
	pin2Reason       = 5
	pin2Metadata     = 6
	pin2UserData     = 7
	pin2Continuation = 8
)

// PacketIn2 is NXT_PACKET_IN2, the packet-in a controller gets after
// NXT_SET_PACKET_IN_FORMAT nxt_packet_in2 (ovs-ofctl monitor asks for it).
// Its fields are properties; the Has* flags say which are present (Packet,
// TableID, Reason and Metadata always are when this package encodes, and
// Cookie unless it is NoCookie, as Open vSwitch encodes it).
type PacketIn2 struct {
	Packet          []byte
	FullLen         uint32
	BufferID        uint32
	TableID         uint8
	Cookie          uint64
	Reason          uint8
	Metadata        []Field
	UserData        []byte
	Continuation    []byte
	HasFullLen      bool
	HasBufferID     bool
	HasUserData     bool
	HasContinuation bool
}

func decodePacketIn2(r *rd) (*PacketIn2, error) {
	props, err := decodeProps(r, "packet in2 property")
	if err != nil {
		return nil, err
	}
	m := &PacketIn2{}
	var seen uint16
	for _, p := range props {
		if p.Type > pin2Continuation {
			return nil, badMessage("packet in2 property %d", p.Type)
		}
		if seen&(1<<p.Type) != 0 {
			return nil, badMessage("packet in2 property %d twice", p.Type)
		}
		seen |= 1 << p.Type
		pr := &rd{b: p.Data}
		want := -1
		switch p.Type {
		case pin2Packet:
			m.Packet = pr.rest()
		case pin2FullLen:
			m.FullLen, m.HasFullLen, want = pr.u32(""), true, 4
		case pin2BufferID:
			m.BufferID, m.HasBufferID, want = pr.u32(""), true, 4
		case pin2TableID:
			m.TableID, want = pr.u8(""), 1
		case pin2Cookie:
			pr.skip(4, "") // aligns the value to 8 bytes
			m.Cookie, want = pr.u64(""), 12
		case pin2Reason:
			m.Reason, want = pr.u8(""), 1
		case pin2Metadata:
			if m.Metadata, err = decodeFields(pr); err != nil {
				return nil, err
			}
		case pin2UserData:
			m.UserData, m.HasUserData = pr.rest(), true
		case pin2Continuation:
			m.Continuation, m.HasContinuation = pr.rest(), true
		}
		if want >= 0 && len(p.Data) != want {
			return nil, badMessage("packet in2 property %d length %d", p.Type, len(p.Data)+4)
		}
	}
	// As Open vSwitch reads it: only the packet is required; without a
	// cookie, there is none (all ones).
	if seen&(1<<pin2Packet) == 0 || len(m.Packet) == 0 {
		return nil, badMessage("packet in2 without a packet")
	}
	if seen&(1<<pin2Cookie) == 0 {
		m.Cookie = NoCookie
	}
	return m, nil
}

func (m *PacketIn2) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *PacketIn2) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtPacketIn2)
	return m.appendProps(w)
}

// NoCookie is a packet in's cookie when it has none (all ones), as a
// packet out's.
const NoCookie = ^uint64(0)

// nxtResume is NXT_RESUME's subtype.
const nxtResume = 28

// Resume is NXT_RESUME: a controller sends back a packet in of a paused
// pipeline, its continuation included, for the switch to resume it. Its
// properties are NXT_PACKET_IN2's.
type Resume struct{ PacketIn2 }

func (m *Resume) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *Resume) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtResume)
	return m.appendProps(w)
}

// appendProps writes the properties, in the order Open vSwitch writes
// them (the continuation before the userdata).
func (m *PacketIn2) appendProps(w *wr) error {
	meta := &wr{}
	if err := appendFields(meta, m.Metadata); err != nil {
		return err
	}
	ps := []Property{{pin2Packet, m.Packet}}
	if m.HasFullLen {
		ps = append(ps, Property{pin2FullLen, be32(m.FullLen)})
	}
	if m.HasBufferID {
		ps = append(ps, Property{pin2BufferID, be32(m.BufferID)})
	}
	ps = append(ps, Property{pin2TableID, []byte{m.TableID}})
	if m.Cookie != NoCookie {
		ps = append(ps, Property{pin2Cookie, append([]byte{0, 0, 0, 0}, be64(m.Cookie)...)})
	}
	ps = append(ps, Property{pin2Reason, []byte{m.Reason}},
		Property{pin2Metadata, meta.b})
	if m.HasContinuation {
		ps = append(ps, Property{pin2Continuation, m.Continuation})
	}
	if m.HasUserData {
		ps = append(ps, Property{pin2UserData, m.UserData})
	}
	if err := appendProps(w, ps); err != nil {
		return fmt.Errorf("packet in2: %w", err)
	}
	return nil
}

func be64(v uint64) []byte { return append(be32(uint32(v>>32)), be32(uint32(v))...) }
