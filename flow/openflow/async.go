package openflow

import "fmt"

// Asynchronous message configuration: which asynchronous messages, for
// which reasons, a connection gets in each role. OpenFlow 1.3's
// OFPT_SET_ASYNC and OFPT_GET_ASYNC_REPLY, and Nicira's
// NXT_SET_ASYNC_CONFIG in every version, carry three pairs of masks;
// OpenFlow 1.4's, and NXT_SET_ASYNC_CONFIG2, carry properties, one mask
// each, and change only the masks they carry.

const (
	nxtSetAsyncConfig  = 19
	nxtSetAsyncConfig2 = 27
)

// The kinds of asynchronous messages, numbered as Open vSwitch numbers
// them; an OpenFlow 1.4 property's type is twice the kind, plus one for
// the primary role.
const (
	AsyncPacketIn = iota
	AsyncPortStatus
	AsyncFlowRemoved
	AsyncRoleStatus
	AsyncTableStatus
	AsyncRequestForward
	NumAsync
)

// AsyncMasks are the three pairs of masks of OpenFlow 1.3's form: packet
// in, port status and flow removed, each the primary (and equal) role's
// then the secondary's.
type AsyncMasks [3][2]uint32

// AsyncProp is one property of OpenFlow 1.4's form: its type and its
// payload (a 32-bit mask when well formed; the codec keeps what came).
type AsyncProp struct {
	Type    uint16
	Payload []byte
}

// AsyncBody is an asynchronous configuration in one of its forms: masks
// (OpenFlow 1.3, NXT_SET_ASYNC_CONFIG) or properties.
type AsyncBody struct {
	Props      bool
	Masks      AsyncMasks
	Properties []AsyncProp
}

// SetAsync is OFPT_SET_ASYNC; with Nicira, NXT_SET_ASYNC_CONFIG, or
// NXT_SET_ASYNC_CONFIG2 when it carries properties.
type SetAsync struct {
	Nicira bool
	AsyncBody
}

// GetAsyncRequest is OFPT_GET_ASYNC_REQUEST (OpenFlow 1.3 on).
type GetAsyncRequest struct{}

// GetAsyncReply is OFPT_GET_ASYNC_REPLY: masks in OpenFlow 1.3,
// properties from 1.4.
type GetAsyncReply struct{ AsyncBody }

func (m *SetAsync) msgType(v uint8) (uint8, error) {
	if m.Nicira {
		return typeOf(kExperimenter, v)
	}
	return typeOf(kSetAsync, v)
}

func (m *SetAsync) appendBody(v uint8, w *wr) error {
	if m.Nicira {
		st := uint32(nxtSetAsyncConfig)
		if m.Props {
			st = nxtSetAsyncConfig2
		}
		nxHeader(w, st)
	} else if m.Props != (v >= Version14) {
		return fmt.Errorf("%w: OFPT_SET_ASYNC with properties only from OpenFlow 1.4, with masks before", ErrUnencodable)
	}
	m.append(w)
	return nil
}

func (m *GetAsyncRequest) msgType(v uint8) (uint8, error) { return typeOf(kGetAsyncRequest, v) }
func (m *GetAsyncRequest) appendBody(uint8, *wr) error    { return nil }

func (m *GetAsyncReply) msgType(v uint8) (uint8, error) { return typeOf(kGetAsyncReply, v) }
func (m *GetAsyncReply) appendBody(v uint8, w *wr) error {
	if m.Props != (v >= Version14) {
		return fmt.Errorf("%w: OFPT_GET_ASYNC_REPLY with properties only from OpenFlow 1.4, with masks before", ErrUnencodable)
	}
	m.append(w)
	return nil
}

func (b *AsyncBody) append(w *wr) {
	if !b.Props {
		for _, pair := range b.Masks {
			w.u32(pair[0])
			w.u32(pair[1])
		}
		return
	}
	for _, p := range b.Properties {
		w.b = AppendProperty(w.b, p.Type, p.Payload)
	}
}

// decodeAsyncBody reads the rest of r as masks or, with props, as
// properties: each a type, a length (at least 4, within the message)
// and its payload, padded to 8 bytes.
func decodeAsyncBody(r *rd, props bool) (AsyncBody, error) {
	const what = "async config"
	b := AsyncBody{Props: props}
	if !props {
		for i := range b.Masks {
			b.Masks[i][0], b.Masks[i][1] = r.u32(what), r.u32(what)
		}
		if r.err == nil && r.len() != 0 {
			return b, badMessage("%s: %d bytes after the masks", what, r.len())
		}
		return b, r.err
	}
	for r.err == nil && r.len() > 0 {
		typ, n := r.u16(what), int(r.u16(what))
		if r.err != nil {
			break
		}
		if n < 4 || pad8(n)-4 > r.len() {
			return b, newErr(ErrBadMessage, ErrTypeBadProperty, CodeBadPropertyLen, "%s: property of length %d", what, n)
		}
		p := AsyncProp{Type: typ, Payload: append([]byte(nil), r.bytes(n-4, what)...)}
		r.skip(pad8(n)-n, what)
		b.Properties = append(b.Properties, p)
	}
	return b, r.err
}
