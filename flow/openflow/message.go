package openflow

import (
	"encoding/binary"
	"fmt"
)

// Message is a decoded OpenFlow message body. The set of implementations is
// closed: the types in this package, with *Unknown for any message type it
// does not decode and *Experimenter for unknown vendor messages.
type Message interface {
	// msgType returns the ofp_type of the message for version v.
	msgType(v uint8) (uint8, error)
	// appendBody encodes everything after the header for version v.
	appendBody(v uint8, w *wr) error
}

// Message kinds, independent of the version's type numbering.
type kind uint8

const (
	kHello kind = iota
	kError
	kEchoRequest
	kEchoReply
	kExperimenter
	kFeaturesRequest
	kFeaturesReply
	kGetConfigRequest
	kGetConfigReply
	kSetConfig
	kPacketIn
	kFlowRemoved
	kPortStatus
	kPacketOut
	kFlowMod
	kGroupMod
	kPortMod
	kTableMod
	kMultipartRequest
	kMultipartReply
	kBarrierRequest
	kBarrierReply
	kRoleRequest
	kRoleReply
	kGetAsyncRequest
	kGetAsyncReply
	kSetAsync
	nKinds
)

const none = 0xff

// wireTypes[k] = {OpenFlow 1.0 type, OpenFlow 1.3+ type}.
var wireTypes = [nKinds][2]uint8{
	kHello:            {0, 0},
	kError:            {1, 1},
	kEchoRequest:      {2, 2},
	kEchoReply:        {3, 3},
	kExperimenter:     {4, 4},
	kFeaturesRequest:  {5, 5},
	kFeaturesReply:    {6, 6},
	kGetConfigRequest: {7, 7},
	kGetConfigReply:   {8, 8},
	kSetConfig:        {9, 9},
	kPacketIn:         {10, 10},
	kFlowRemoved:      {11, 11},
	kPortStatus:       {12, 12},
	kPacketOut:        {13, 13},
	kFlowMod:          {14, 14},
	kGroupMod:         {none, 15},
	kPortMod:          {15, 16},
	kTableMod:         {none, 17},
	kMultipartRequest: {16, 18},
	kMultipartReply:   {17, 19},
	kBarrierRequest:   {18, 20},
	kBarrierReply:     {19, 21},
	kRoleRequest:      {none, 24},
	kRoleReply:        {none, 25},
	kGetAsyncRequest:  {none, 26},
	kGetAsyncReply:    {none, 27},
	kSetAsync:         {none, 28},
}

func typeOf(k kind, v uint8) (uint8, error) {
	i := 1
	if v == Version10 {
		i = 0
	}
	t := wireTypes[k][i]
	if t == none {
		return 0, fmt.Errorf("%w: message kind %d in version 0x%02x", ErrUnencodable, k, v)
	}
	return t, nil
}

func kindOf(v, t uint8) (kind, bool) {
	i := 1
	if v == Version10 {
		i = 0
	}
	for k := kind(0); k < nKinds; k++ {
		if wireTypes[k][i] == t && t != none {
			return k, true
		}
	}
	return 0, false
}

// Unknown is a message of a type this package does not decode. The daemon
// answers it with OFPET_BAD_REQUEST / OFPBRC_BAD_TYPE.
type Unknown struct {
	Type uint8
	Body []byte
}

func (m *Unknown) msgType(uint8) (uint8, error) { return m.Type, nil }
func (m *Unknown) appendBody(_ uint8, w *wr) error {
	w.bytes(m.Body)
	return nil
}

// Decode decodes one whole message (header included, as returned by
// Reader.ReadMessage). Decoded messages do not alias b. Message types this
// package does not know decode to *Unknown without error; vendor messages
// it does not know decode to *Experimenter. A malformed known message is an
// error wrapping one of the sentinels; errors.As with *Error gives the
// OpenFlow error type and code for the reply.
func Decode(b []byte) (Header, Message, error) {
	return decode(b, nil)
}

// decode is Decode; with d, a flow mod is decoded into d's
// (FlowModDecoder).
func decode(b []byte, d *FlowModDecoder) (Header, Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, nil, err
	}
	if int(h.Length) != len(b) {
		return h, nil, newErr(ErrBadLength, ErrTypeBadRequest, CodeBadRequestLen, "header length %d, message has %d bytes", h.Length, len(b))
	}
	if !SupportedVersion(h.Version) {
		// Hello is version-independent: negotiation needs it.
		if h.Type == 0 {
			m, err := decodeHello(&rd{b: b[HeaderLen:]})
			return h, m, err
		}
		return h, nil, newErr(ErrBadVersion, ErrTypeBadRequest, CodeBadRequestVersion, "version 0x%02x", h.Version)
	}
	k, ok := kindOf(h.Version, h.Type)
	r := &rd{b: b[HeaderLen:]}
	if !ok {
		return h, &Unknown{Type: h.Type, Body: r.rest()}, nil
	}
	var m Message
	if d != nil && k == kFlowMod && h.Version != Version10 {
		m, err = d.flowMod(h.Version, r)
	} else {
		m, err = decodeBody(h.Version, k, r)
	}
	if err != nil {
		return h, nil, err
	}
	if r.err != nil {
		return h, nil, r.err
	}
	if r.len() != 0 {
		return h, nil, badMessage("%d trailing bytes after message type %d", r.len(), h.Type)
	}
	return h, m, nil
}

func decodeBody(v uint8, k kind, r *rd) (Message, error) {
	switch k {
	case kHello:
		return decodeHello(r)
	case kError:
		return decodeError(r)
	case kEchoRequest:
		return &EchoRequest{Data: r.rest()}, nil
	case kEchoReply:
		return &EchoReply{Data: r.rest()}, nil
	case kExperimenter:
		return decodeExperimenter(v, r)
	case kFeaturesRequest:
		return &FeaturesRequest{}, nil
	case kFeaturesReply:
		return decodeFeaturesReply(v, r)
	case kGetConfigRequest:
		return &GetConfigRequest{}, nil
	case kGetConfigReply:
		c := decodeConfig(r)
		return &GetConfigReply{c}, nil
	case kSetConfig:
		c := decodeConfig(r)
		return &SetConfig{c}, nil
	case kPacketIn:
		return decodePacketIn(v, r)
	case kFlowRemoved:
		return decodeFlowRemoved(v, r)
	case kGetAsyncRequest:
		return &GetAsyncRequest{}, nil
	case kGetAsyncReply:
		b, err := decodeAsyncBody(r, v >= Version14)
		return &GetAsyncReply{b}, err
	case kSetAsync:
		b, err := decodeAsyncBody(r, v >= Version14)
		return &SetAsync{AsyncBody: b}, err
	case kPortStatus:
		return decodePortStatus(v, r)
	case kPacketOut:
		return decodePacketOut(v, r)
	case kFlowMod:
		return decodeFlowMod(v, r)
	case kGroupMod:
		return decodeGroupMod(v, r)
	case kPortMod:
		return decodePortMod(v, r)
	case kMultipartRequest:
		return decodeMultipart(v, r, false)
	case kMultipartReply:
		return decodeMultipart(v, r, true)
	case kBarrierRequest:
		return &BarrierRequest{}, nil
	case kBarrierReply:
		return &BarrierReply{}, nil
	case kRoleRequest:
		return &RoleRequest{decodeRole(r)}, nil
	case kRoleReply:
		return &RoleReply{decodeRole(r)}, nil
	}
	t, _ := typeOf(k, v)
	return &Unknown{Type: t, Body: r.rest()}, nil
}

// Encode encodes m as a whole message of version v with transaction id xid.
func Encode(v uint8, xid uint32, m Message) ([]byte, error) {
	if _, ok := m.(*Hello); !ok && !SupportedVersion(v) {
		return nil, fmt.Errorf("%w: 0x%02x", ErrBadVersion, v)
	}
	t, err := m.msgType(v)
	if err != nil {
		return nil, err
	}
	w := &wr{b: make([]byte, HeaderLen, 64)}
	if err := m.appendBody(v, w); err != nil {
		return nil, err
	}
	if len(w.b) > MaxMessageLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLong, len(w.b))
	}
	w.b[0] = v
	w.b[1] = t
	binary.BigEndian.PutUint16(w.b[2:], uint16(len(w.b)))
	binary.BigEndian.PutUint32(w.b[4:], xid)
	return w.b, nil
}
