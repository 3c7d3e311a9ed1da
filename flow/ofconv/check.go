package ofconv

import (
	"encoding/binary"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// This file checks wire actions against the flow they will run on, as
// Open vSwitch 3.1 does before it takes a flow mod or a packet out
// (ofpacts_check_consistency): against the flow mod's match, or against
// every field of a packet out's packet. Its answers are the contract, so
// they follow Open vSwitch's own rules even where another would do:
//
//   - An action on a field whose prerequisites the flow lacks (set_field
//     of tcp_src on UDP, a move from ip_src on ARP, set_field of vlan_vid
//     without a tag) is refused with OFPBAC_MATCH_INCONSISTENT in every
//     version.
//   - An action that only makes no sense for the flow (dec_ttl, mod_nw_src
//     or strip_vlan where the protocol or tag is missing, an MPLS action
//     on a packet that is not MPLS) marks the flow inconsistent, which
//     refuses it with OFPBAC_MATCH_INCONSISTENT in OpenFlow 1.1 and
//     later; OpenFlow 1.0 takes it, and such an action does nothing.
//   - Actions that push or pop tags and MPLS labels change what the
//     actions after them are checked against.
//
// The errors Open vSwitch finds while decoding the actions come first,
// whatever their place in the list: an output to a port number in the
// reserved range that names no reserved port (OFPBAC_BAD_OUT_PORT), an
// OXM set_field of vlan_vid without OFPVID_PRESENT
// (OFPBAC_BAD_SET_ARGUMENT).

// OFPET_BAD_ACTION codes of the checks.
const (
	codeBadOutPort uint16 = 4  // OFPBAC_BAD_OUT_PORT
	codeBadTag     uint16 = 12 // OFPBAC_BAD_TAG
)

// Nicira action subtypes the checks look into.
const (
	nxPushMPLS     = 23
	nxPopMPLS      = 24
	nxSetMPLSTTL   = 25
	nxDecMPLSTTL   = 26
	nxSetMPLSLabel = 30
	nxSetMPLSTC    = 31
)

// Ethertypes of MPLS.
const (
	ethTypeMPLS  = 0x8847
	ethTypeMPLSM = 0x8848
)

// ofpVIDPresent is OFPVID_PRESENT, which an OXM vlan_vid carries.
const ofpVIDPresent = 0x1000

// CheckActions checks a plain action list of version v (OpenFlow 1.0's,
// a Nicira flow mod's or a packet out's) against match m.
func CheckActions(v uint8, m *flow.Match, acts []openflow.Action) error {
	if err := checkDecoded(acts); err != nil {
		return err
	}
	c := checker{m: *m}
	if err := c.list(acts); err != nil {
		return err
	}
	return c.finish(v)
}

// CheckInstructions checks the actions of an OpenFlow 1.1+ instruction
// list against match m. Open vSwitch checks the actions of
// apply_actions in order, and those of write_actions only for errors:
// what an action set will meet cannot be known.
func CheckInstructions(v uint8, m *flow.Match, insts []openflow.Instruction) error {
	for _, in := range insts {
		if err := checkDecoded(in.Actions); err != nil {
			return err
		}
	}
	c := checker{m: *m}
	for _, in := range insts {
		switch in.Type {
		case openflow.InstApplyActions:
			if err := c.actions(in.Actions); err != nil {
				return err
			}
		case openflow.InstWriteActions:
			tmp := checker{m: c.m}
			if err := tmp.list(in.Actions); err != nil {
				return err
			}
		}
	}
	return c.finish(v)
}

// checkDecoded makes the checks Open vSwitch makes while it decodes the
// actions, before any of them is checked against the flow.
func checkDecoded(acts []openflow.Action) error {
	for _, a := range acts {
		switch a := a.(type) {
		case *openflow.ActOutput:
			if badOutPort(a.Port) {
				return actionError(codeBadOutPort, "output to port %d, in the reserved range but no reserved port", a.Port&0xffff)
			}
		case *openflow.ActEnqueue:
			if badOutPort(a.Port) {
				return actionError(codeBadOutPort, "enqueue to port %d, in the reserved range but no reserved port", a.Port&0xffff)
			}
		case *openflow.ActSetField:
			f := &a.Field
			if f.Name == "vlan_vid" && len(f.Value) == 2 &&
				(f.Value[0]&(ofpVIDPresent>>8) == 0 || len(f.Mask) == 2 && f.Mask[0]&(ofpVIDPresent>>8) == 0) {
				return actionError(openflow.CodeBadActionSetArgument, "set_field of vlan_vid without OFPVID_PRESENT")
			}
		case *openflow.ActClone:
			if err := checkDecoded(a.Actions); err != nil {
				return err
			}
		}
	}
	return nil
}

// badOutPort reports whether p (in the codec's 32-bit numbering) is in
// the reserved range but names no reserved port: 0xff00 (OFPP_MAX) to
// 0xfff7 in OpenFlow 1.0's numbering. The codec refuses ANY itself.
func badOutPort(p uint32) bool {
	return p >= openflow.PortMax && p < openflow.PortMax+0xf8
}

// checker is the state of one check: the flow as the actions so far
// leave it, and whether an action made no sense for it.
type checker struct {
	m            flow.Match
	inconsistent bool
}

// finish refuses a flow some action made no sense for, except in
// OpenFlow 1.0.
func (c *checker) finish(v uint8) error {
	if c.inconsistent && v != openflow.Version10 {
		return actionError(codeMatchInconsistent, "an action does not apply to the flow it would run on")
	}
	return nil
}

// list checks a nested list (a clone's actions): whatever it does to the
// tags and the Ethertype does not last beyond it, whether the flow is
// inconsistent does.
func (c *checker) list(acts []openflow.Action) error {
	saved := c.m
	defer func() { c.m = saved }()
	return c.actions(acts)
}

func (c *checker) actions(acts []openflow.Action) error {
	for _, a := range acts {
		if err := c.action(a); err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) isIP() bool {
	return c.m.Key.DlType == flow.EthTypeIPv4 || c.m.Key.DlType == flow.EthTypeIPv6
}

func (c *checker) isMPLS() bool {
	return c.m.Key.DlType == ethTypeMPLS || c.m.Key.DlType == ethTypeMPLSM
}

func (c *checker) tagged(i int) bool {
	return c.m.Key.VLANs[i].TCI&flow.VLANPresent != 0
}

// need marks the flow inconsistent unless ok.
func (c *checker) need(ok bool) {
	if !ok {
		c.inconsistent = true
	}
}

// field refuses an action that reads or writes the field h lacking its
// prerequisites.
func (c *checker) field(h openflow.FieldHeader) error {
	if !wirePrereqMet(&c.m, h.Name) {
		return actionError(codeMatchInconsistent, "field %s lacks correct prerequisites", h.Name)
	}
	return nil
}

func (c *checker) setDlType(t uint16) {
	c.m.Key.DlType, c.m.Mask.DlType = t, 0xffff
}

func (c *checker) pushVLAN() {
	c.m.Key.VLANs[1] = c.m.Key.VLANs[0]
	c.m.Mask.VLANs[1] = c.m.Mask.VLANs[0]
	c.m.Key.VLANs[0].TCI |= flow.VLANPresent
}

func (c *checker) popVLAN() {
	c.m.Key.VLANs[0], c.m.Mask.VLANs[0] = c.m.Key.VLANs[1], c.m.Mask.VLANs[1]
	c.m.Key.VLANs[1], c.m.Mask.VLANs[1] = flow.VLAN{}, flow.VLAN{}
}

func (c *checker) action(a openflow.Action) error {
	switch a := a.(type) {
	case *openflow.ActSetVLANVID, *openflow.ActSetVLANPCP:
		// OpenFlow 1.0's, which push a tag where there is none.
		c.m.Key.VLANs[0].TCI |= flow.VLANPresent
	case *openflow.ActPopVLAN:
		c.need(c.tagged(0))
		c.popVLAN()
	case *openflow.ActEthertype:
		switch a.Type {
		case openflow.ActTypePushVLAN:
			if c.tagged(1) {
				return actionError(codeBadTag, "push_vlan on a packet with two VLAN tags")
			}
			c.pushVLAN()
		case openflow.ActTypePushMPLS:
			c.setDlType(a.EtherType)
		case openflow.ActTypePopMPLS:
			c.need(c.isMPLS())
			c.setDlType(a.EtherType)
		}
	case *openflow.ActSetNWAddr:
		c.need(c.m.Key.DlType == flow.EthTypeIPv4)
	case *openflow.ActSetNWTOS:
		c.need(c.isIP())
	case *openflow.ActSetTPPort:
		p := c.m.Key.NwProto
		c.need(c.isIP() && c.m.Key.NwFrag&flow.FragLater == 0 &&
			(p == flow.IPProtoTCP || p == flow.IPProtoUDP || p == flow.IPProtoSCTP))
	case *openflow.ActTTL:
		if a.Type == openflow.ActTypeSetMPLSTTL {
			c.need(c.isMPLS())
		} else {
			c.need(c.isIP())
		}
	case *openflow.ActSimple:
		switch a.Type {
		case openflow.ActTypeDecNWTTL:
			c.need(c.isIP())
		case openflow.ActTypeDecMPLSTTL:
			c.need(c.isMPLS())
		case openflow.ActTypePopVLAN:
			c.need(c.tagged(0))
			c.popVLAN()
		}
	case *openflow.ActNX:
		if a.Subtype == openflow.NXActDecTTL {
			c.need(c.isIP())
		}
	case *openflow.ActSetField:
		f := &a.Field
		if !wirePrereqMet(&c.m, f.Name) || f.Name == "vlan_vid" && !c.tagged(0) {
			return actionError(codeMatchInconsistent, "set_field of %s lacks correct prerequisites", f.Name)
		}
		if f.Name == "vlan_tci" && len(f.Value) == 2 {
			c.setTCI(binary.BigEndian.Uint16(f.Value), f.Mask)
		}
	case *openflow.ActRegLoad:
		if err := c.field(a.Dst); err != nil {
			return err
		}
	case *openflow.ActRegMove:
		if err := c.field(a.Src); err != nil {
			return err
		}
		return c.field(a.Dst)
	case *openflow.ActOutputReg:
		return c.field(a.Src)
	case *openflow.ActLearn:
		return c.learn(a)
	case *openflow.ActClone:
		return c.list(a.Actions)
	case *openflow.ActRaw:
		if a.Experimenter == openflow.NiciraExperimenter {
			return c.nicira(a)
		}
	}
	return nil
}

// learn checks a learn action: each field it reads against the flow,
// and each field the learned flow matches or loads against that flow's
// match as the specs before it build it. Only a match on a constant
// builds it (eth_type=0x800 makes the next spec's ip_src valid), as in
// Open vSwitch.
func (c *checker) learn(a *openflow.ActLearn) error {
	var learned flow.Match
	for _, s := range a.Specs {
		if !s.SrcImmediate {
			if err := c.field(s.Src); err != nil {
				return err
			}
		}
		if s.Dst == openflow.LearnDstOutput {
			continue
		}
		if !wirePrereqMet(&learned, s.DstField.Name) {
			return actionError(codeMatchInconsistent, "learn: the learned flow's field %s lacks correct prerequisites", s.DstField.Name)
		}
		if s.Dst != openflow.LearnDstMatch || !s.SrcImmediate || s.DstOfs != 0 {
			continue
		}
		var v uint64
		for _, b := range s.Value {
			v = v<<8 | uint64(b)
		}
		switch s.DstField.Name {
		case "eth_type":
			learned.Key.DlType, learned.Mask.DlType = uint16(v), 0xffff
		case "nw_proto":
			learned.Key.NwProto, learned.Mask.NwProto = uint8(v), 0xff
		}
	}
	return nil
}

// mplsFields are wire fields of MPLS, which the flow language has not.
var mplsFields = map[string]bool{"mpls_label": true, "mpls_tc": true, "mpls_bos": true, "mpls_ttl": true}

// wirePrereqMet is flow.WirePrereqMet, knowing also the MPLS fields.
func wirePrereqMet(m *flow.Match, name string) bool {
	if mplsFields[name] {
		return m.Key.DlType == ethTypeMPLS || m.Key.DlType == ethTypeMPLSM
	}
	return flow.WirePrereqMet(m, name)
}

// setTCI writes a set_field of vlan_tci into the flow checked.
func (c *checker) setTCI(v uint16, mask []byte) {
	m := uint16(0xffff)
	if len(mask) == 2 {
		m = binary.BigEndian.Uint16(mask)
	}
	tci := &c.m.Key.VLANs[0].TCI
	*tci = *tci&^m | v&m
}

// nicira checks the Nicira actions the codec keeps as bytes.
func (c *checker) nicira(a *openflow.ActRaw) error {
	d := a.Data
	switch a.Subtype {
	case nxFinTimeout:
		c.need(c.m.Key.NwProto == flow.IPProtoTCP)
	case nxPushMPLS:
		if len(d) >= 2 {
			c.setDlType(binary.BigEndian.Uint16(d))
		}
	case nxPopMPLS:
		c.need(c.isMPLS())
		if len(d) >= 2 {
			c.setDlType(binary.BigEndian.Uint16(d))
		}
	case nxSetMPLSTTL, nxDecMPLSTTL, nxSetMPLSLabel, nxSetMPLSTC:
		c.need(c.isMPLS())
	case nxStackPush, nxStackPop:
		if len(d) < 6 {
			return nil
		}
		name, ok := headerName(binary.BigEndian.Uint32(d[2:]))
		if !ok {
			return nil
		}
		return c.field(openflow.FieldHeader{Name: name})
	}
	return nil
}

// PacketMatch is the match Open vSwitch checks a packet out's actions
// against: every field of the packet, k, exactly.
func PacketMatch(k *flow.Key) flow.Match {
	var m flow.Match
	m.Key.DlType, m.Mask.DlType = k.DlType, 0xffff
	for i := range k.VLANs {
		m.Key.VLANs[i].TCI, m.Mask.VLANs[i].TCI = k.VLANs[i].TCI, 0xffff
	}
	if k.DlType == flow.EthTypeIPv4 || k.DlType == flow.EthTypeIPv6 {
		m.Key.NwProto, m.Mask.NwProto = k.NwProto, 0xff
		m.Key.NwFrag, m.Mask.NwFrag = k.NwFrag, 0xff
		// ICMP type and code, which the neighbour discovery fields need.
		m.Key.TpSrc, m.Mask.TpSrc = k.TpSrc, 0xffff
		m.Key.TpDst, m.Mask.TpDst = k.TpDst, 0xffff
	}
	return m
}
