package ofconv

import (
	"encoding/binary"
	"fmt"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// A continuation on the wire: the payload of NXT_PACKET_IN2's and
// NXT_RESUME's NXPINT_CONTINUATION property, laid out as Open vSwitch
// lays out its own (nested properties, NXCPT_*), so that ovs-ofctl
// prints it. To a controller it is opaque: it sends it back as it came.

// NXCPT_* property types.
const (
	cptBridge      = 0x8000
	cptStack       = 0x8001
	cptMirrors     = 0x8002
	cptConntracked = 0x8003
	cptTableID     = 0x8004
	cptCookie      = 0x8005
	cptActions     = 0x8006
	cptActionSet   = 0x8007
	cptOdpPort     = 0x8008
)

// EncodeContinuation encodes continuation c of the bridge whose id is
// bridge, for a packet that came in on inPort, its actions in version v,
// as Open vSwitch encodes its own: the bridge, the stack (top first),
// whether the packet was tracked, the actions (continuationGroups), the
// action set and the datapath port.
func EncodeContinuation(v uint8, bridge [16]byte, inPort uint32, c *flow.Continuation) ([]byte, error) {
	b := make([]byte, 4) // a nested property's payload is aligned to 8
	b = openflow.AppendProperty(b, cptBridge, bridge[:])
	for i := len(c.Stack) - 1; i >= 0; i-- {
		b = openflow.AppendProperty(b, cptStack, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, c.Stack[i].Hi), c.Stack[i].Lo))
	}
	if c.Conntracked {
		b = openflow.AppendProperty(b, cptConntracked, nil)
	}
	table, cookie := uint8(0), uint64(0)
	for _, g := range continuationGroups(c.Frames) {
		if g.marked && g.Table != table {
			b, table = openflow.AppendProperty(b, cptTableID, []byte{g.Table}), g.Table
		}
		if g.marked && g.Cookie != cookie {
			b, cookie = openflow.AppendProperty(b, cptCookie, binary.BigEndian.AppendUint64(make([]byte, 4), g.Cookie)), g.Cookie
		}
		var err error
		if b, err = putActions(b, cptActions, v, g.Actions); err != nil {
			return nil, err
		}
	}
	if len(c.ActionSet) > 0 {
		var err error
		if b, err = putActions(b, cptActionSet, v, c.ActionSet); err != nil {
			return nil, err
		}
	}
	if inPort != 0 {
		b = openflow.AppendProperty(b, cptOdpPort, binary.BigEndian.AppendUint32(nil, inPort))
	}
	return b, nil
}

// group is a run of a continuation's actions; marked: they start with a
// table and cookie of their own, from the frame of their first action.
type group struct {
	flow.ContinuationFrame
	marked bool
}

// continuationGroups splits the frames' actions as Open vSwitch splits a
// frozen pipeline's: it notes the table and cookie of a frame only before
// an action that may send a packet in (an output, a group, a controller
// action, dec_ttl) or resubmit to the current table, and only where they
// differ from the last noted; actions between two notes are one group,
// across frames. As in Open vSwitch, notes and conjunctions are left out,
// and a goto_table is the resubmit it runs as.
func continuationGroups(frames []flow.ContinuationFrame) []group {
	var gs []group
	cur := &group{}
	for _, f := range frames {
		for i := 0; i < len(f.Actions); i++ {
			a := f.Actions[i]
			n := 1
			switch a.Type {
			case flow.ActNote, flow.ActConjunction:
				continue
			case flow.ActClone, flow.ActWriteActions:
				n += int(a.Value) // the body goes along
			case flow.ActResubmit:
				a.Spelling = flow.SpellDefault
			}
			if sendsPacketIns(&a) && (!cur.marked || cur.Table != f.Table || cur.Cookie != f.Cookie) {
				if len(cur.Actions) > 0 || cur.marked {
					gs = append(gs, *cur)
				}
				cur = &group{ContinuationFrame: flow.ContinuationFrame{Table: f.Table, Cookie: f.Cookie}, marked: true}
			}
			cur.Actions = append(cur.Actions, a)
			cur.Actions = append(cur.Actions, f.Actions[i+1:i+n]...)
			i += n - 1
		}
	}
	if len(cur.Actions) > 0 {
		gs = append(gs, *cur)
	}
	return gs
}

// sendsPacketIns reports whether a may send a packet in, or resubmits to
// the current table: what Open vSwitch notes a table and cookie for.
func sendsPacketIns(a *flow.Action) bool {
	switch a.Type {
	case flow.ActOutput, flow.ActOutputReg, flow.ActGroup, flow.ActController, flow.ActDecTTL:
		return true
	case flow.ActResubmit:
		return a.Table == flow.TableCurrent
	}
	return false
}

// putActions appends a nested property of actions.
func putActions(b []byte, typ uint16, v uint8, acts []flow.Action) ([]byte, error) {
	ofActs, err := ActionsToOF(v, nil, acts)
	if err != nil {
		return nil, err
	}
	wire, err := openflow.EncodeActions(v, ofActs)
	if err != nil {
		return nil, err
	}
	return openflow.AppendProperty(b, typ, append(make([]byte, 4), wire...)), nil
}

// DecodeContinuation decodes what EncodeContinuation encoded for version
// v: the continuation and its bridge's id. A property it does not know,
// or one of the wrong length, is an error (OFPBPC_BAD_TYPE,
// OFPBPC_BAD_LEN), as are actions ovsxdp would refuse in a flow.
func DecodeContinuation(p *flow.Parser, v uint8, b []byte) (*flow.Continuation, [16]byte, error) {
	var bridge [16]byte
	c := &flow.Continuation{}
	if len(b) < 4 {
		return nil, bridge, propErr(openflow.CodeBadPropertyLen, "continuation of %d bytes", len(b))
	}
	props, err := openflow.SplitProperties(b[4:])
	if err != nil {
		return nil, bridge, err
	}
	table, cookie := uint8(0), uint64(0)
	var stack []flow.StackValue
	for _, prop := range props {
		typ, data := prop.Type, prop.Data
		want := -1
		switch typ {
		case cptBridge:
			copy(bridge[:], data)
			want = 16
		case cptStack:
			if len(data) > 16 {
				return nil, bridge, propErr(openflow.CodeBadPropertyLen, "stack value of %d bytes", len(data))
			}
			var full [16]byte
			copy(full[16-len(data):], data)
			stack = append(stack, flow.StackValue{Hi: binary.BigEndian.Uint64(full[:8]), Lo: binary.BigEndian.Uint64(full[8:])})
		case cptConntracked:
			c.Conntracked, want = true, 0
		case cptTableID:
			if len(data) == 1 {
				table = data[0]
			}
			want = 1
		case cptCookie:
			if len(data) == 12 {
				cookie = binary.BigEndian.Uint64(data[4:])
			}
			want = 12
		case cptOdpPort:
			want = 4 // the packet's in_port comes back in the metadata
		case cptActions, cptActionSet:
			if len(data) < 4 {
				return nil, bridge, propErr(openflow.CodeBadPropertyLen, "actions property of %d bytes", len(data))
			}
			acts, err := continuationActions(p, v, data[4:])
			if err != nil {
				return nil, bridge, err
			}
			if typ == cptActionSet {
				c.ActionSet = acts
			} else {
				c.Frames = append(c.Frames, flow.ContinuationFrame{Table: table, Cookie: cookie, Actions: acts})
			}
		default:
			return nil, bridge, propErr(openflow.CodeBadPropertyType, "continuation property 0x%x", typ)
		}
		if want >= 0 && len(data) != want {
			return nil, bridge, propErr(openflow.CodeBadPropertyLen, "continuation property 0x%x of %d bytes", typ, len(data))
		}
	}
	// The stack came top first.
	for i := len(stack) - 1; i >= 0; i-- {
		c.Stack = append(c.Stack, stack[i])
	}
	return c, bridge, nil
}

// continuationActions converts a continuation's wire actions of version
// v into the flow language, as a packet out's, unchecked: they were the
// switch's own.
func continuationActions(p *flow.Parser, v uint8, b []byte) ([]flow.Action, error) {
	acts, err := openflow.DecodeActions(v, b)
	if err != nil {
		return nil, err
	}
	fm := &openflow.FlowMod{Nicira: true, Command: openflow.FlowAdd, Actions: acts, OutPort: openflow.PortAny}
	mod, err := flowFromMod(p, v, fm, false)
	if err != nil {
		return nil, err
	}
	return mod.Flow.Actions, nil
}

func propErr(code uint16, format string, args ...any) *openflow.Error {
	return &openflow.Error{Type: openflow.ErrTypeBadProperty, Code: code, Sentinel: openflow.ErrBadMessage, Detail: fmt.Sprintf(format, args...)}
}
