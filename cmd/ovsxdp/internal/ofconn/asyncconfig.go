package ofconn

import (
	"encoding/binary"
	"fmt"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// A connection's asynchronous configuration, as Open vSwitch keeps it:
// for each kind of asynchronous message (openflow.Async*), the reasons
// a connection in the primary (master or equal) role gets it for, and
// those a secondary (slave) gets it for. Each version has its default;
// OFPT_SET_ASYNC and NXT_SET_ASYNC_CONFIG(2) change it, and
// OFPT_GET_ASYNC_REQUEST reads it back.

// asyncMasks are a configuration: each kind's mask of reasons, by role.
type asyncMasks struct {
	primary, secondary [openflow.NumAsync]uint32
}

// Reasons that no version's message names: a table miss without a flow
// (implicit) and one by a flow that sends to the controller from the
// lowest priority (explicit). Open vSwitch sets them with no_match.
const (
	reasonExplicitMiss = uint32(1) << flow.ReasonExplicitMiss
	reasonImplicitMiss = uint32(1) << flow.ReasonImplicitMiss
)

// asyncAllowed is the reasons a mask of kind may hold in version v (the
// packet in reasons grew in OpenFlow 1.4).
func asyncAllowed(kind int, v uint8) uint32 {
	switch kind {
	case openflow.AsyncPacketIn:
		if v >= openflow.Version14 {
			return 0x3f // no_match to packet_out
		}
		return 0x7 // no_match, action, invalid_ttl
	case openflow.AsyncPortStatus, openflow.AsyncRoleStatus:
		return 0x7
	case openflow.AsyncFlowRemoved:
		return 0x3f // idle to eviction
	case openflow.AsyncTableStatus:
		return 0x18 // vacancy down and up
	case openflow.AsyncRequestForward:
		return 0x3
	}
	return 0
}

// defaultAsync is version v's default configuration, Open vSwitch's:
// the primary role gets packet ins for every reason but invalid_ttl
// (table misses without a flow only before OpenFlow 1.3), port status,
// and flow removals for the reasons of its version; the secondary
// role only port status.
func defaultAsync(v uint8) asyncMasks {
	var m asyncMasks
	pin := uint32(0x3f&^(1<<flow.ReasonInvalidTTL)) | reasonExplicitMiss
	if v < openflow.Version13 {
		pin |= reasonImplicitMiss
	}
	m.primary[openflow.AsyncPacketIn] = pin
	m.primary[openflow.AsyncPortStatus], m.secondary[openflow.AsyncPortStatus] = 0x7, 0x7
	switch {
	case v >= openflow.Version14:
		m.primary[openflow.AsyncFlowRemoved] = 0x3f
	case v == openflow.Version13:
		m.primary[openflow.AsyncFlowRemoved] = 0xf // and group_delete
	default:
		m.primary[openflow.AsyncFlowRemoved] = 0x7 // idle, hard, delete
	}
	return m
}

// of returns the masks of role.
func (m *asyncMasks) of(role uint32) *[openflow.NumAsync]uint32 {
	if role == openflow.RoleSlave {
		return &m.secondary
	}
	return &m.primary
}

// set sets kind's mask for one role from a mask of version v, as Open
// vSwitch reads it: a no_match packet in reason brings the misses.
func (m *asyncMasks) set(kind int, primary bool, mask uint32, v uint8) {
	if kind == openflow.AsyncPacketIn && mask&(1<<flow.ReasonNoMatch) != 0 {
		mask |= reasonExplicitMiss
		if v < openflow.Version13 {
			mask |= reasonImplicitMiss
		}
	}
	if primary {
		m.primary[kind] = mask
	} else {
		m.secondary[kind] = mask
	}
}

// legacyKinds are the kinds OpenFlow 1.3's three pairs of masks carry,
// in order.
var legacyKinds = [3]int{openflow.AsyncPacketIn, openflow.AsyncPortStatus, openflow.AsyncFlowRemoved}

// applySetAsync returns m changed by a set async config of version v:
// masks replace the whole configuration (the other kinds' masks become
// 0), each cut to what the version allows; properties change only the
// masks they carry and must be well formed, of a known type and within
// what the version allows.
func applySetAsync(m asyncMasks, v uint8, b *openflow.AsyncBody) (asyncMasks, error) {
	if !b.Props {
		var n asyncMasks
		for i, kind := range legacyKinds {
			allowed := asyncAllowed(kind, v)
			n.set(kind, true, b.Masks[i][0]&allowed, v)
			n.set(kind, false, b.Masks[i][1]&allowed, v)
		}
		return n, nil
	}
	for _, p := range b.Properties {
		if p.Type >= 0xfffe {
			// An experimenter's property: none is known, whoever
			// the experimenter (OFPBPC_BAD_EXP_TYPE, as Open vSwitch).
			if len(p.Payload) < 8 {
				return m, propertyError(openflow.CodeBadPropertyLen, "experimenter async property of %d bytes", len(p.Payload))
			}
			return m, propertyError(codeBadPropertyExpType, "experimenter 0x%08x's async property type %d",
				binary.BigEndian.Uint32(p.Payload), binary.BigEndian.Uint32(p.Payload[4:]))
		}
		kind, primary := int(p.Type/2), p.Type%2 == 1
		if kind >= openflow.NumAsync {
			return m, asyncConfigError(openflow.CodeAsyncConfigUnsupported, "async property type %d", p.Type)
		}
		if len(p.Payload) != 4 {
			return m, propertyError(openflow.CodeBadPropertyLen, "async property type %d of %d bytes", p.Type, len(p.Payload))
		}
		mask := binary.BigEndian.Uint32(p.Payload)
		if mask&^asyncAllowed(kind, v) != 0 {
			return m, asyncConfigError(openflow.CodeAsyncConfigInvalid, "async property type %d: mask 0x%x", p.Type, mask)
		}
		m.set(kind, primary, mask, v)
	}
	return m, nil
}

// asyncBody encodes m for version v: OpenFlow 1.3's masks, or (props)
// every kind's property, secondary then primary, in the order of their
// types; each mask cut to what the version allows.
func asyncBody(m *asyncMasks, v uint8, props bool) openflow.AsyncBody {
	b := openflow.AsyncBody{Props: props}
	if !props {
		for i, kind := range legacyKinds {
			allowed := asyncAllowed(kind, v)
			b.Masks[i] = [2]uint32{m.primary[kind] & allowed, m.secondary[kind] & allowed}
		}
		return b
	}
	for kind := range openflow.NumAsync {
		allowed := asyncAllowed(kind, v)
		for _, mask := range []uint32{m.secondary[kind], m.primary[kind]} {
			b.Properties = append(b.Properties, openflow.AsyncProp{Type: uint16(len(b.Properties)),
				Payload: binary.BigEndian.AppendUint32(nil, mask&allowed)})
		}
	}
	return b
}

// codeBadPropertyExpType is OFPBPC_BAD_EXP_TYPE.
const codeBadPropertyExpType uint16 = 6

func propertyError(code uint16, format string, args ...any) *openflow.Error {
	return &openflow.Error{Type: openflow.ErrTypeBadProperty, Code: code, Sentinel: openflow.ErrBadMessage, Detail: fmt.Sprintf(format, args...)}
}

func asyncConfigError(code uint16, format string, args ...any) *openflow.Error {
	return &openflow.Error{Type: openflow.ErrTypeAsyncConfigFailed, Code: code, Sentinel: openflow.ErrBadMessage, Detail: fmt.Sprintf(format, args...)}
}

// setAsync handles a set async config: the connection's configuration
// changes, and a management connection that takes no asynchronous
// messages yet takes them from now on, with Open vSwitch's default
// miss_send_len, as there.
func (c *conn) setAsync(m *openflow.SetAsync) error {
	if m.Nicira && m.Props && c.version >= openflow.Version14 {
		return unsupported(openflow.CodeBadRequestExpType, "NXT_SET_ASYNC_CONFIG2 is for OpenFlow 1.0 to 1.3")
	}
	next, err := applySetAsync(c.asyncConf(), c.version, &m.AsyncBody)
	if err != nil {
		return err
	}
	c.asyncMasks, c.asyncSet = next, true
	if c.kind == Service && c.config.MissSendLen == 0 {
		c.config.MissSendLen = defaultMissSendLen
	}
	c.publishAsync()
	return nil
}

// defaultMissSendLen is OFP_DEFAULT_MISS_SEND_LEN.
const defaultMissSendLen = 128

// asyncConf is the connection's configuration: its version's default
// until one is set.
func (c *conn) asyncConf() asyncMasks {
	if c.asyncSet {
		return c.asyncMasks
	}
	return defaultAsync(c.version)
}

// getAsyncReply answers OFPT_GET_ASYNC_REQUEST.
func (c *conn) getAsyncReply() *openflow.GetAsyncReply {
	m := c.asyncConf()
	return &openflow.GetAsyncReply{AsyncBody: asyncBody(&m, c.version, c.version >= openflow.Version14)}
}
