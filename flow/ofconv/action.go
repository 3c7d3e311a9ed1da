package ofconv

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Nicira action subtypes that the codec keeps as raw bytes.
const (
	nxDecTTLCntIDs   = 21
	nxWriteMetadata  = 22
	nxStackPush      = 27
	nxStackPop       = 28
	nxCheckPktLarger = 49
	typeExperimenter = 0xffff
)

// OpenFlow instruction error codes.
const (
	codeUnsupInst  uint16 = 1 // OFPBIC_UNSUP_INST
	codeBadTableID uint16 = 2 // OFPBIC_BAD_TABLE_ID
)

// fieldWire names the wire field of each flow field (the name the codec's
// FieldByName knows).
var fieldWire = func() map[flow.FieldID]string {
	m := map[flow.FieldID]string{
		flow.FieldInPort: "in_port", flow.FieldDlSrc: "eth_src", flow.FieldDlDst: "eth_dst",
		flow.FieldDlType: "eth_type", flow.FieldVLANTCI: "vlan_tci", flow.FieldDlVLAN: "vlan_tci",
		flow.FieldDlVLANPCP: "vlan_tci", flow.FieldVLANVID: "vlan_vid", flow.FieldVLANPCP: "vlan_pcp",
		flow.FieldNwSrc: "ip_src", flow.FieldNwDst: "ip_dst", flow.FieldNwProto: "nw_proto",
		flow.FieldNwTos: "nw_tos", flow.FieldIPDSCP: "ip_dscp", flow.FieldNwECN: "nw_ecn",
		flow.FieldNwTTL: "nw_ttl", flow.FieldIPFrag: "ip_frag", flow.FieldArpOp: "arp_op",
		flow.FieldArpSpa: "arp_spa", flow.FieldArpTpa: "arp_tpa", flow.FieldArpSha: "arp_sha",
		flow.FieldArpTha: "arp_tha", flow.FieldIPv6Src: "ipv6_src", flow.FieldIPv6Dst: "ipv6_dst",
		flow.FieldIPv6Label: "ipv6_label", flow.FieldNdTarget: "nd_target", flow.FieldNdSll: "nd_sll",
		flow.FieldNdTll: "nd_tll", flow.FieldTpSrc: "tcp_src", flow.FieldTpDst: "tcp_dst",
		flow.FieldTCPSrc: "tcp_src", flow.FieldTCPDst: "tcp_dst", flow.FieldUDPSrc: "udp_src",
		flow.FieldUDPDst: "udp_dst", flow.FieldSCTPSrc: "sctp_src", flow.FieldSCTPDst: "sctp_dst",
		flow.FieldTCPFlags: "tcp_flags", flow.FieldICMPType: "icmp_type", flow.FieldICMPCode: "icmp_code",
		flow.FieldICMPv6Type: "icmpv6_type", flow.FieldICMPv6Code: "icmpv6_code",
		flow.FieldMetadata: "metadata", flow.FieldPktMark: "pkt_mark",
	}
	for name, id := range ctFields {
		m[id] = name
	}
	for id, name := range tunFields {
		m[id] = name
	}
	for i := range flow.NumRegs {
		m[flow.FieldReg0+flow.FieldID(i)] = "reg" + strconv.Itoa(i)
	}
	for i := range flow.NumRegs / 2 {
		m[flow.FieldXReg0+flow.FieldID(i)] = "xreg" + strconv.Itoa(i)
	}
	for i := range flow.NumRegs / 4 {
		m[flow.FieldXXReg0+flow.FieldID(i)] = "xxreg" + strconv.Itoa(i)
	}
	for i := range flow.NumTunMeta {
		m[flow.FieldTunMeta0+flow.FieldID(i)] = "tun_metadata" + strconv.Itoa(i)
	}
	return m
}()

// tunMetaSet writes a load into tun_metadataN as Open vSwitch sends it: a
// set_field (NXAST_REG_LOAD2 in OpenFlow 1.0) of the whole metadata space,
// masked unless the load writes the whole field. The variable-length field
// takes no NXAST_REG_LOAD.
func tunMetaSet(a *flow.Action, v10 bool) openflow.Action {
	const size = flow.TunMetaSpace
	ofs, n := uint(a.Dst.Ofs), a.Dst.Bits()
	v := new(big.Int).Lsh(new(big.Int).SetUint64(a.Value), ofs)
	m := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), n), big.NewInt(1))
	m.Lsh(m, ofs)
	v.And(v, m)
	vb, mb := make([]byte, size), make([]byte, size)
	v.FillBytes(vb)
	m.FillBytes(mb)
	name := fieldWire[a.Dst.Field]
	if a.Spelling == flow.SpellSetField && ofs == 0 {
		mb = nil
	}
	return &openflow.ActSetField{Field: field(name, true, vb, mb), Nicira: v10}
}

// header returns the NXM (or, lacking one, OXM) header of a flow field.
func header(id flow.FieldID) (openflow.FieldHeader, error) {
	name, ok := fieldWire[id]
	if !ok {
		return openflow.FieldHeader{}, fmt.Errorf("%w: flow field %d has no wire identity", openflow.ErrUnencodable, id)
	}
	h, ok := openflow.FieldByName(name, true)
	if !ok {
		return openflow.FieldHeader{}, fmt.Errorf("%w: field %s", openflow.ErrUnencodable, name)
	}
	return h, nil
}

// headerWord is the 32-bit NXM header of h (without an experimenter id).
func headerWord(h openflow.FieldHeader) uint32 {
	w := uint32(h.Class)<<16 | uint32(h.Field&0x7f)<<9 | uint32(h.Len)
	if h.HasMask {
		w |= 0x100
	}
	return w
}

// ofPort converts a flow port (OpenFlow 1.0 numbering) to the codec's
// 32-bit numbering.
func ofPort(p uint32) uint32 {
	if p >= flow.PortMax && p <= 0xffff {
		return p + 0xffff0000
	}
	return p
}

// Encoding context: the flow's match decides which transport field
// mod_tp_src sets in OpenFlow 1.1+.
type encoder struct {
	v     uint8
	match *flow.Match
}

// ActionsToOF converts a flow's actions to wire actions of version v;
// m is the flow's match.
func ActionsToOF(v uint8, m *flow.Match, acts []flow.Action) ([]openflow.Action, error) {
	e := encoder{v: v, match: m}
	return e.list(acts)
}

func (e *encoder) list(acts []flow.Action) ([]openflow.Action, error) {
	out := []openflow.Action{}
	for i := 0; i < len(acts); i++ {
		a := &acts[i]
		switch a.Type {
		case flow.ActClearActions:
			// OpenFlow 1.0 (and a Nicira flow's plain action list) has
			// no instructions: as Open vSwitch encodes a flow for it,
			// clear_actions and write_actions are left out.
			continue
		case flow.ActWriteActions:
			i += min(int(a.Value), len(acts)-i-1)
			continue
		}
		if a.Type == flow.ActClone {
			n := min(int(a.Value), len(acts)-i-1)
			body, err := e.list(acts[i+1 : i+1+n])
			if err != nil {
				return nil, err
			}
			out = append(out, &openflow.ActClone{Actions: body})
			i += n
			continue
		}
		if e.v != openflow.Version10 && i+1 < len(acts) {
			if f, ok := whole128(a, &acts[i+1]); ok {
				out = append(out, &openflow.ActSetField{Field: f})
				i++
				continue
			}
		}
		oa, err := e.action(a)
		if err != nil {
			return nil, err
		}
		out = append(out, oa...)
	}
	return out, nil
}

// whole128 recognises the two loads that set a whole 128-bit register or
// ct_label (set_field:V->xxregN in the flow language) and returns them as
// one set_field; so do those of set_field on tun_ipv6_src or tun_ipv6_dst.
func whole128(a, b *flow.Action) (openflow.Field, bool) {
	xxreg := a.Dst.Field >= flow.FieldXXReg0 && a.Dst.Field < flow.FieldXXReg0+flow.NumRegs/4
	set128 := a.Dst.Field == flow.FieldCtLabel || a.Dst.Field == flow.FieldTunIPv6Src || a.Dst.Field == flow.FieldTunIPv6Dst
	if a.Type != flow.ActLoad || b.Type != flow.ActLoad || a.Dst.Field != b.Dst.Field ||
		!xxreg && (!set128 || a.Spelling != flow.SpellSetField) ||
		a.Dst.Bits() != 64 || b.Dst.Bits() != 64 || a.Dst.Ofs == b.Dst.Ofs || a.Dst.Ofs%64 != 0 || b.Dst.Ofs%64 != 0 {
		return openflow.Field{}, false
	}
	lo, hi := a.Value, b.Value
	if a.Dst.Ofs == 64 {
		lo, hi = hi, lo
	}
	v := append(b64(hi), b64(lo)...)
	return field(fieldWire[a.Dst.Field], false, v, nil), true
}

func (e *encoder) tpName(dst bool) string {
	proto := uint8(0)
	if e.match != nil && e.match.Mask.NwProto == 0xff {
		proto = e.match.Key.NwProto
	}
	n := "tcp"
	switch proto {
	case flow.IPProtoUDP:
		n = "udp"
	case flow.IPProtoSCTP:
		n = "sctp"
	}
	if dst {
		return n + "_dst"
	}
	return n + "_src"
}

func (e *encoder) setField(name string, val []byte) openflow.Action {
	return &openflow.ActSetField{Field: field(name, false, val, nil)}
}

func (e *encoder) action(a *flow.Action) ([]openflow.Action, error) {
	v10 := e.v == openflow.Version10
	one := func(x openflow.Action) ([]openflow.Action, error) { return []openflow.Action{x}, nil }
	switch a.Type {
	case flow.ActOutput:
		o := &openflow.ActOutput{Port: ofPort(a.Port)}
		if a.Port == flow.PortController {
			o.MaxLen = 0xffff
		}
		return one(o)
	case flow.ActController:
		return one(controllerAction(a))
	case flow.ActDecTTL:
		if a.Note != "" {
			var ids []uint16
			for _, s := range strings.Split(a.Note, ",") {
				n, err := strconv.ParseUint(s, 10, 16)
				if err != nil {
					return nil, fmt.Errorf("%w: dec_ttl controller id %q", openflow.ErrUnencodable, s)
				}
				ids = append(ids, uint16(n))
			}
			d := binary.BigEndian.AppendUint16(nil, uint16(len(ids)))
			d = append(d, 0, 0, 0, 0)
			for _, id := range ids {
				d = binary.BigEndian.AppendUint16(d, id)
			}
			for (len(d)+6)%8 != 0 {
				d = append(d, 0)
			}
			return one(&openflow.ActRaw{Type: typeExperimenter, Experimenter: openflow.NiciraExperimenter, Subtype: nxDecTTLCntIDs, Data: d})
		}
		if v10 {
			return one(&openflow.ActNX{Subtype: openflow.NXActDecTTL})
		}
		return one(&openflow.ActSimple{Type: openflow.ActTypeDecNWTTL})
	case flow.ActSetVLANVID:
		if v10 {
			return one(&openflow.ActSetVLANVID{VID: uint16(a.Value)})
		}
		return impliedPush(a, e.setField("vlan_vid", b16(uint16(a.Value)|flow.VLANPresent)))
	case flow.ActSetVLANPCP:
		if v10 {
			return one(&openflow.ActSetVLANPCP{PCP: uint8(a.Value)})
		}
		return impliedPush(a, e.setField("vlan_pcp", b8(uint8(a.Value))))
	case flow.ActPushVLAN:
		if v10 {
			// OpenFlow 1.0 has no push_vlan: as in Open vSwitch, the
			// mod_vlan_vid that follows pushes the tag.
			return nil, nil
		}
		return one(&openflow.ActEthertype{Type: openflow.ActTypePushVLAN, EtherType: uint16(a.Value)})
	case flow.ActPopVLAN:
		return one(&openflow.ActPopVLAN{})
	case flow.ActSetField:
		return e.set(a)
	case flow.ActLoad:
		if s, ok := setTunnelToOF(e.v, a); ok {
			return one(s)
		}
		if v10 && a.Spelling == flow.SpellSetField && a.Dst.Field == flow.FieldVLANTCI && a.Dst.Ofs == 0 && a.Dst.Bits() == 16 {
			// OpenFlow 1.0 has no set_field: as Open vSwitch, the
			// actions that do the same (mod_vlan_vid pushes a tag if
			// there is none).
			if uint16(a.Value)&flow.VLANPresent == 0 {
				return one(&openflow.ActPopVLAN{})
			}
			return []openflow.Action{
				&openflow.ActSetVLANVID{VID: uint16(a.Value) & flow.VLANVIDMask},
				&openflow.ActSetVLANPCP{PCP: uint8(a.Value >> 13 & 7)},
			}, nil
		}
		if a.Dst.Field >= flow.FieldTunMeta0 && a.Dst.Field < flow.FieldTunMeta0+flow.NumTunMeta {
			return one(tunMetaSet(a, v10))
		}
		h, err := header(a.Dst.Field)
		if err != nil {
			return nil, err
		}
		if name := fieldWire[a.Dst.Field]; a.Spelling == flow.SpellSetField && !v10 && a.Dst.Ofs == 0 && int(a.Dst.Bits()) == fieldBits(name) {
			// Written set_field:V->F: a set_field of the whole field, as
			// Open vSwitch keeps it.
			s := maskedSet(name, h, a).(*openflow.ActSetField)
			s.Field.Mask = nil
			return one(s)
		}
		if e.v >= openflow.Version15 {
			// Open vSwitch takes no NXAST_REG_LOAD in OpenFlow 1.5: a
			// (masked) set_field says the same.
			return one(maskedSet(fieldWire[a.Dst.Field], h, a))
		}
		return one(&openflow.ActRegLoad{Dst: h, Ofs: uint16(a.Dst.Ofs), NBits: uint16(a.Dst.Bits()), Value: a.Value})
	case flow.ActMove:
		src, err := header(a.Src.Field)
		if err != nil {
			return nil, err
		}
		dst, err := header(a.Dst.Field)
		if err != nil {
			return nil, err
		}
		return one(&openflow.ActRegMove{NBits: uint16(a.Src.Bits()), SrcOfs: uint16(a.Src.Ofs), DstOfs: uint16(a.Dst.Ofs), Src: src, Dst: dst, CopyField: e.v >= openflow.Version15})
	case flow.ActOutputReg:
		h, err := header(a.Src.Field)
		if err != nil {
			return nil, err
		}
		return one(&openflow.ActOutputReg{Src: h, Ofs: uint16(a.Src.Ofs), NBits: uint16(a.Src.Bits())})
	case flow.ActResubmit:
		return one(&openflow.ActResubmit{InPort: uint16(a.Port), Table: a.Table, WithTable: a.Table != flow.TableCurrent})
	case flow.ActWriteMetadata:
		d := make([]byte, 6, 22)
		d = binary.BigEndian.AppendUint64(d, a.Value)
		d = binary.BigEndian.AppendUint64(d, a.Mask)
		return one(&openflow.ActRaw{Type: typeExperimenter, Experimenter: openflow.NiciraExperimenter, Subtype: nxWriteMetadata, Data: d})
	case flow.ActPush, flow.ActPop:
		sf, st := a.Src, uint16(nxStackPush)
		if a.Type == flow.ActPop {
			sf, st = a.Dst, nxStackPop
		}
		h, err := header(sf.Field)
		if err != nil {
			return nil, err
		}
		d := binary.BigEndian.AppendUint16(nil, uint16(sf.Ofs))
		d = binary.BigEndian.AppendUint32(d, headerWord(h))
		d = binary.BigEndian.AppendUint16(d, uint16(sf.Bits()))
		d = append(d, make([]byte, 6)...)
		return one(&openflow.ActRaw{Type: typeExperimenter, Experimenter: openflow.NiciraExperimenter, Subtype: st, Data: d})
	case flow.ActCheckPktLarger:
		h, err := header(a.Dst.Field)
		if err != nil {
			return nil, err
		}
		// NXAST_CHECK_PKT_LARGER: the length, the bit's offset, the
		// destination's header, zeros to 24 bytes.
		d := binary.BigEndian.AppendUint16(nil, uint16(a.Value))
		d = binary.BigEndian.AppendUint16(d, uint16(a.Dst.Ofs))
		d = binary.BigEndian.AppendUint32(d, headerWord(h))
		d = append(d, make([]byte, 6)...)
		return one(&openflow.ActRaw{Type: typeExperimenter, Experimenter: openflow.NiciraExperimenter, Subtype: nxCheckPktLarger, Data: d})
	case flow.ActGroup:
		return one(&openflow.ActU32{Type: openflow.ActTypeGroup, Value: uint32(a.Value)})
	case flow.ActMeter:
		switch {
		case v10:
			// OpenFlow 1.0 has no meters: Open vSwitch leaves the
			// meter out of the flow it describes.
			return nil, nil
		case e.v < openflow.Version15:
			// OpenFlow 1.3 and 1.4 have the meter instruction only
			// (InstructionsFromActions).
			return nil, fmt.Errorf("%w: meter:%d as an action in OpenFlow 0x%02x", openflow.ErrUnencodable, a.Value, e.v)
		}
		return one(&openflow.ActU32{Type: openflow.ActTypeMeter, Value: uint32(a.Value)})
	case flow.ActConjunction:
		return one(&openflow.ActConjunction{ID: uint32(a.Value), Clause: a.Table - 1, NClauses: uint8(a.Port)})
	case flow.ActNote:
		return one(&openflow.ActNote{Data: []byte(a.Note)})
	case flow.ActExit:
		return one(&openflow.ActNX{Subtype: openflow.NXActExit})
	case flow.ActLearn:
		if a.Learn == nil {
			return nil, fmt.Errorf("%w: learn without arguments", openflow.ErrUnencodable)
		}
		l, err := learnAction(a.Learn)
		if err != nil {
			return nil, err
		}
		return one(l)
	case flow.ActFinTimeout:
		return one(finTimeoutAction(a))
	case flow.ActCT:
		ct, err := e.ctToOF(a.CT)
		if err != nil {
			return nil, err
		}
		return one(ct)
	case flow.ActCTClear:
		return one(&openflow.ActNX{Subtype: openflow.NXActCTClear})
	}
	return nil, fmt.Errorf("%w: flow action type %d", openflow.ErrUnencodable, a.Type)
}

// impliedPush returns set, a set_field on vlan_vid or vlan_pcp of OpenFlow
// 1.1+, preceded by the push_vlan that OpenFlow 1.0's mod_vlan_vid or
// mod_vlan_pcp a carries when no tag is known where it stands, as Open
// vSwitch sends it.
func impliedPush(a *flow.Action, set openflow.Action) ([]openflow.Action, error) {
	if a.Spelling != flow.SpellImpliedPush {
		return []openflow.Action{set}, nil
	}
	return []openflow.Action{&openflow.ActEthertype{Type: openflow.ActTypePushVLAN, EtherType: flow.EthTypeVLAN}, set}, nil
}

// set encodes a set_field (mod_*) action.
func (e *encoder) set(a *flow.Action) ([]openflow.Action, error) {
	v10 := e.v == openflow.Version10
	one := func(x openflow.Action) ([]openflow.Action, error) { return []openflow.Action{x}, nil }
	mac := func() [6]byte {
		var m [6]byte
		for i := range m {
			m[i] = byte(a.Value >> (40 - 8*i))
		}
		return m
	}
	switch a.Field {
	case flow.FieldDlSrc, flow.FieldDlDst:
		if v10 {
			return one(&openflow.ActSetDLAddr{Dst: a.Field == flow.FieldDlDst, Addr: mac()})
		}
		m := mac()
		return one(e.setField(fieldWire[a.Field], m[:]))
	case flow.FieldNwSrc, flow.FieldNwDst:
		if v10 {
			return one(&openflow.ActSetNWAddr{Dst: a.Field == flow.FieldNwDst, Addr: uint32(a.Value)})
		}
		return one(e.setField(fieldWire[a.Field], b32(uint32(a.Value))))
	case flow.FieldNwTos:
		if v10 {
			return one(&openflow.ActSetNWTOS{TOS: uint8(a.Value)})
		}
		return one(e.setField("ip_dscp", b8(uint8(a.Value)>>2)))
	case flow.FieldTpSrc, flow.FieldTpDst:
		if v10 {
			return one(&openflow.ActSetTPPort{Dst: a.Field == flow.FieldTpDst, Port: uint16(a.Value)})
		}
		return one(e.setField(e.tpName(a.Field == flow.FieldTpDst), b16(uint16(a.Value))))
	}
	if a.Field == flow.FieldNwTTL && !v10 {
		return one(&openflow.ActTTL{Type: openflow.ActTypeSetNWTTL, TTL: uint8(a.Value)})
	}
	name, ok := fieldWire[a.Field]
	if !ok {
		return nil, fmt.Errorf("%w: set_field on flow field %d", openflow.ErrUnencodable, a.Field)
	}
	h, ok := openflow.FieldByName(name, v10)
	if !ok {
		return nil, fmt.Errorf("%w: set_field on %s", openflow.ErrUnencodable, name)
	}
	size := int(h.Len)
	if h.Class == openflow.ClassExperimenter {
		size -= 4
	}
	var val []byte
	switch {
	case size == 16:
		val = append([]byte(nil), a.IPv6[:]...)
	case size <= 8:
		val = b64(a.Value)[8-size:]
	default:
		return nil, fmt.Errorf("%w: set_field on %s", openflow.ErrUnencodable, name)
	}
	if v10 || e.v < openflow.Version15 && size <= 8 && a.Spelling != flow.SpellSetField {
		// Written load:V->NXM_...[], which Open vSwitch sends as
		// reg_load (in OpenFlow 1.0 also set_field, as two loads for a
		// 128-bit field); written set_field, it is one from 1.2 on.
		dst, err := header(a.Field)
		if err != nil {
			return nil, err
		}
		if size == 16 {
			lo := binary.BigEndian.Uint64(val[8:])
			hi := binary.BigEndian.Uint64(val[:8])
			return []openflow.Action{
				&openflow.ActRegLoad{Dst: dst, Ofs: 0, NBits: 64, Value: lo},
				&openflow.ActRegLoad{Dst: dst, Ofs: 64, NBits: 64, Value: hi},
			}, nil
		}
		return one(&openflow.ActRegLoad{Dst: dst, NBits: uint16(fieldBits(name)), Value: a.Value})
	}
	return one(e.setField(name, val))
}

// InstructionsFromActions converts a flow's actions to the instructions of
// an OpenFlow 1.1+ flow: meter when the list starts with one (before
// OpenFlow 1.5, where it is an action), apply_actions, clear_actions,
// write_actions, then write_metadata when the list ends with it, then
// goto_table:T when the list ends with a resubmit(,T) to a later table
// that the flow wrote goto_table:T, or that follows write_metadata (which
// only goto_table may follow).
func InstructionsFromActions(v uint8, m *flow.Match, table uint8, acts []flow.Action) ([]openflow.Instruction, error) {
	var gotoTable *uint8
	var md, meter *flow.Action
	if len(acts) > 0 && acts[0].Type == flow.ActMeter && v < openflow.Version15 {
		// The meter instruction, which runs first.
		meter, acts = &acts[0], acts[1:]
	}
	if n := len(acts); n > 0 {
		last := &acts[n-1]
		afterMetadata := n > 1 && acts[n-2].Type == flow.ActWriteMetadata
		if last.Type == flow.ActResubmit && last.Port == flow.PortInPort && last.Table != flow.TableCurrent && last.Table > table &&
			(afterMetadata || last.Spelling == flow.SpellGotoTable) && !inNested(acts, n-1) {
			t := last.Table
			gotoTable = &t
			acts = acts[:n-1]
		}
	}
	if n := len(acts); n > 0 && acts[n-1].Type == flow.ActWriteMetadata && !inNested(acts, n-1) {
		md = &acts[n-1]
		acts = acts[:n-1]
	}
	// clear_actions and write_actions(...) close the list that is left:
	// the body of a write_actions runs to its end.
	var clearSet bool
	var write []flow.Action
	for i := 0; i < len(acts); i++ {
		switch acts[i].Type {
		case flow.ActClone:
			i += int(acts[i].Value)
			continue
		case flow.ActClearActions, flow.ActWriteActions:
		default:
			continue
		}
		rest := acts[i:]
		acts = acts[:i]
		if rest[0].Type == flow.ActClearActions {
			clearSet = true
			rest = rest[1:]
		}
		if len(rest) > 0 && rest[0].Type == flow.ActWriteActions {
			write = rest[1:]
		}
		break
	}
	insts := []openflow.Instruction{}
	if meter != nil {
		insts = append(insts, openflow.Instruction{Type: openflow.InstMeter, MeterID: uint32(meter.Value)})
	}
	if len(acts) > 0 {
		oa, err := ActionsToOF(v, m, acts)
		if err != nil {
			return nil, err
		}
		insts = append(insts, openflow.Instruction{Type: openflow.InstApplyActions, Actions: oa})
	}
	if clearSet {
		insts = append(insts, openflow.Instruction{Type: openflow.InstClearActions})
	}
	if len(write) > 0 {
		oa, err := ActionsToOF(v, m, write)
		if err != nil {
			return nil, err
		}
		insts = append(insts, openflow.Instruction{Type: openflow.InstWriteActions, Actions: oa})
	}
	if md != nil {
		insts = append(insts, openflow.Instruction{Type: openflow.InstWriteMetadata, Metadata: md.Value, MetadataMask: md.Mask})
	}
	if gotoTable != nil {
		insts = append(insts, openflow.Instruction{Type: openflow.InstGotoTable, TableID: *gotoTable})
	}
	return insts, nil
}

// inNested reports whether acts[i] is inside some clone's or
// write_actions' body.
func inNested(acts []flow.Action, i int) bool {
	for j := 0; j < i; j++ {
		if (acts[j].Type == flow.ActClone || acts[j].Type == flow.ActWriteActions) && j+int(acts[j].Value) >= i {
			return true
		}
	}
	return false
}

// actionsText writes wire actions as ovs-ofctl action text.
func actionsText(acts []openflow.Action) (string, error) {
	var items []string
	for _, a := range acts {
		s, err := actionText(a)
		if err != nil {
			return "", err
		}
		if s != "" {
			items = append(items, s)
		}
	}
	return strings.Join(items, ","), nil
}

// subfieldText writes a field header and bit range as NAME[A..B].
func subfieldText(h openflow.FieldHeader, ofs, nbits uint16) (string, error) {
	if h.Name == "" || !supportedFields[h.Name] {
		return "", actionError(openflow.CodeBadActionArgument, "field 0x%04x:%d is not supported by ovsxdp", h.Class, h.Field)
	}
	if nbits == 0 {
		return "", actionError(openflow.CodeBadActionArgument, "%s: zero bits", h.Name)
	}
	if ofs == 0 && int(nbits) == fieldBits(h.Name) {
		return h.Name + "[]", nil
	}
	return fmt.Sprintf("%s[%d..%d]", h.Name, ofs, int(ofs)+int(nbits)-1), nil
}

// narrowFields are the fields narrower than their wire value, by bits.
var narrowFields = map[string]int{"nw_ecn": 2, "ip_dscp": 6, "ipv6_label": 20, "tcp_flags": 12, "vlan_vid": 12, "vlan_pcp": 3, "tun_flags": 1}

// fieldBits returns the width of the named field in bits.
func fieldBits(name string) int {
	if n, ok := narrowFields[name]; ok {
		return n
	}
	h, ok := openflow.FieldByName(name, true)
	if !ok {
		return 0
	}
	n := int(h.Len)
	if h.Class == openflow.ClassExperimenter {
		n -= 4
	}
	return 8 * n
}

// unsupportedAction refuses the action what (as Open vSwitch names it,
// such as NXAST_CT) with OFPBAC_BAD_TYPE.
func unsupportedAction(what string) error {
	e := actionError(openflow.CodeBadActionType, "action %s is not supported by ovsxdp", what)
	e.Item = what
	return e
}

func actionText(a openflow.Action) (string, error) {
	switch a := a.(type) {
	case *openflow.ActSetTunnel:
		return setTunnelText(a), nil
	case *openflow.ActOutput:
		p := a.Port
		if p == openflow.PortAny {
			return "", actionError(4, "output to port ANY") // OFPBAC_BAD_OUT_PORT
		}
		if p < openflow.PortMax && p > 0xfeff {
			return "", actionError(4, "output to port %d", p)
		}
		if p == openflow.PortController || p == flow.PortController {
			return "controller:" + strconv.Itoa(int(a.MaxLen)), nil
		}
		return "output:" + portName(p), nil
	case *openflow.ActController, *openflow.ActController2:
		return controllerText(a)
	case *openflow.ActSetVLANVID:
		return "mod_vlan_vid:" + strconv.Itoa(int(a.VID)), nil
	case *openflow.ActSetVLANPCP:
		return "mod_vlan_pcp:" + strconv.Itoa(int(a.PCP)), nil
	case *openflow.ActPopVLAN:
		return "strip_vlan", nil
	case *openflow.ActSetDLAddr:
		n := "mod_dl_src:"
		if a.Dst {
			n = "mod_dl_dst:"
		}
		return n + valueText("eth_src", a.Addr[:]), nil
	case *openflow.ActSetNWAddr:
		n := "mod_nw_src:"
		if a.Dst {
			n = "mod_nw_dst:"
		}
		return n + valueText("ip_src", b32(a.Addr)), nil
	case *openflow.ActSetNWTOS:
		return "mod_nw_tos:" + strconv.Itoa(int(a.TOS)), nil
	case *openflow.ActSetTPPort:
		n := "mod_tp_src:"
		if a.Dst {
			n = "mod_tp_dst:"
		}
		return n + strconv.Itoa(int(a.Port)), nil
	case *openflow.ActEthertype:
		if a.Type == openflow.ActTypePushVLAN {
			return "push_vlan:0x" + strconv.FormatUint(uint64(a.EtherType), 16), nil
		}
		return "", unsupportedAction(openflow.ActionTypeName(openflow.Version13, a.Type))
	case *openflow.ActTTL:
		if a.Type == openflow.ActTypeSetNWTTL {
			return "mod_nw_ttl:" + strconv.Itoa(int(a.TTL)), nil
		}
		return "", unsupportedAction(openflow.ActionTypeName(openflow.Version13, a.Type))
	case *openflow.ActSimple:
		switch a.Type {
		case openflow.ActTypeDecNWTTL:
			return "dec_ttl", nil
		case openflow.ActTypePopVLAN:
			return "pop_vlan", nil
		}
		return "", unsupportedAction(openflow.ActionTypeName(openflow.Version13, a.Type))
	case *openflow.ActSetField:
		return setFieldText(&a.Field)
	case *openflow.ActResubmit:
		if a.CT {
			return "", unsupportedAction("NXAST_RESUBMIT_TABLE_CT")
		}
		port := ""
		if a.InPort != flow.PortInPort {
			port = portName(uint32(a.InPort))
		}
		if !a.WithTable || a.Table == 255 {
			if port == "" {
				port = "IN_PORT"
			}
			return "resubmit:" + port, nil
		}
		return "resubmit(" + port + "," + strconv.Itoa(int(a.Table)) + ")", nil
	case *openflow.ActRegLoad:
		sf, err := subfieldText(a.Dst, a.Ofs, a.NBits)
		if err != nil {
			return "", err
		}
		return "load:0x" + strconv.FormatUint(a.Value, 16) + "->" + sf, nil
	case *openflow.ActRegMove:
		src, err := subfieldText(a.Src, a.SrcOfs, a.NBits)
		if err != nil {
			return "", err
		}
		dst, err := subfieldText(a.Dst, a.DstOfs, a.NBits)
		if err != nil {
			return "", err
		}
		return "move:" + src + "->" + dst, nil
	case *openflow.ActOutputReg:
		if a.MaxLen != 0 && a.MaxLen != 0xffff {
			return "", unsupportedAction("output_reg with max_len")
		}
		return subfieldOutput(a)
	case *openflow.ActU32:
		if a.Type == openflow.ActTypeGroup {
			return "group:" + strconv.FormatUint(uint64(a.Value), 10), nil
		}
		if a.Type == openflow.ActTypeMeter {
			return "meter:" + strconv.FormatUint(uint64(a.Value), 10), nil
		}
		return "", unsupportedAction(openflow.ActionTypeName(openflow.Version13, a.Type))
	case *openflow.ActConjunction:
		return fmt.Sprintf("conjunction(%d,%d/%d)", a.ID, int(a.Clause)+1, a.NClauses), nil
	case *openflow.ActNote:
		return "note:" + dotted(a.Data), nil
	case *openflow.ActNX:
		switch a.Subtype {
		case openflow.NXActExit:
			return "exit", nil
		case openflow.NXActDecTTL:
			return "dec_ttl", nil
		case openflow.NXActCTClear:
			return "ct_clear", nil
		}
		return "", unsupportedAction(openflow.NXActionName(a.Subtype))
	case *openflow.ActClone:
		body, err := actionsText(a.Actions)
		if err != nil {
			return "", err
		}
		return "clone(" + body + ")", nil
	case *openflow.ActLearn:
		return learnText(a)
	case *openflow.ActRaw:
		return rawText(a)
	case *openflow.ActCT:
		return ctText(a)
	case *openflow.ActNAT:
		return "nat", nil // outside ct, which the parser refuses
	}
	return "", unsupportedAction(fmt.Sprintf("%T", a))
}

func subfieldOutput(a *openflow.ActOutputReg) (string, error) {
	sf, err := subfieldText(a.Src, a.Ofs, a.NBits)
	if err != nil {
		return "", err
	}
	return "output:" + sf, nil
}

// dotted writes bytes as hex pairs joined by dots (note's syntax).
func dotted(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = hex.EncodeToString([]byte{c})
	}
	return strings.Join(parts, ".")
}

// setFieldText writes a set_field action as the ovs-ofctl action the flow
// language reads.
func setFieldText(f *openflow.Field) (string, error) {
	if f.Name == "" || !supportedFields[f.Name] || f.Name == "ip_frag" || f.Name == "eth_type" {
		return "", actionError(openflow.CodeBadActionArgument, "set_field on %s is not supported by ovsxdp", fieldLabel(f))
	}
	if f.Mask != nil && !allOnes(f.Mask) {
		return maskedSetText(f)
	}
	num := func() uint64 {
		var v uint64
		for _, c := range f.Value {
			v = v<<8 | uint64(c)
		}
		return v
	}
	switch f.Name {
	case "eth_src", "eth_dst":
		return "mod_dl_" + f.Name[4:] + ":" + valueText(f.Name, f.Value), nil
	case "ip_src", "ip_dst":
		return "mod_nw_" + f.Name[3:] + ":" + valueText(f.Name, f.Value), nil
	case "ip_dscp":
		return "mod_nw_tos:" + strconv.FormatUint(num()<<2&0xfc, 10), nil
	case "nw_tos":
		return "mod_nw_tos:" + strconv.FormatUint(num()&0xfc, 10), nil
	case "tcp_src", "udp_src":
		return "mod_tp_src:" + strconv.FormatUint(num(), 10), nil
	case "tcp_dst", "udp_dst":
		return "mod_tp_dst:" + strconv.FormatUint(num(), 10), nil
	case "vlan_vid":
		return "mod_vlan_vid:" + strconv.FormatUint(num()&flow.VLANVIDMask, 10), nil
	case "vlan_pcp":
		return "mod_vlan_pcp:" + strconv.FormatUint(num()&7, 10), nil
	}
	return "set_field:" + valueText(f.Name, f.Value) + "->" + f.Name, nil
}

// rawText decodes the Nicira actions the codec keeps as bytes.
func rawText(a *openflow.ActRaw) (string, error) {
	if a.Type != typeExperimenter || a.Experimenter != openflow.NiciraExperimenter {
		return "", unsupportedAction(openflow.ActionTypeName(openflow.Version13, a.Type))
	}
	d := a.Data
	switch a.Subtype {
	case nxFinTimeout:
		return finTimeoutText(d)
	case nxWriteMetadata:
		if len(d) != 22 {
			return "", actionError(openflow.CodeBadActionLen, "write_metadata length")
		}
		v, m := binary.BigEndian.Uint64(d[6:]), binary.BigEndian.Uint64(d[14:])
		return fmt.Sprintf("write_metadata:0x%x/0x%x", v, m), nil
	case nxStackPush, nxStackPop:
		if len(d) != 14 {
			return "", actionError(openflow.CodeBadActionLen, "stack action length")
		}
		ofs := binary.BigEndian.Uint16(d)
		hw := binary.BigEndian.Uint32(d[2:])
		nbits := binary.BigEndian.Uint16(d[6:])
		sf, err := wordSubfieldText(hw, ofs, nbits, "stack action on")
		if err != nil {
			return "", err
		}
		if a.Subtype == nxStackPush {
			return "push:" + sf, nil
		}
		return "pop:" + sf, nil
	case nxCheckPktLarger:
		return checkPktLargerText(d)
	case nxDecTTLCntIDs:
		if len(d) < 6 {
			return "", actionError(openflow.CodeBadActionLen, "dec_ttl length")
		}
		n := int(binary.BigEndian.Uint16(d))
		if 6+2*n > len(d) {
			return "", actionError(openflow.CodeBadActionLen, "dec_ttl with %d controller ids", n)
		}
		if n == 0 {
			return "dec_ttl", nil
		}
		ids := make([]string, n)
		for i := range n {
			ids[i] = strconv.Itoa(int(binary.BigEndian.Uint16(d[6+2*i:])))
		}
		return "dec_ttl(" + strings.Join(ids, ",") + ")", nil
	}
	return "", unsupportedAction(openflow.NXActionName(a.Subtype))
}

// checkPktLargerText writes NXAST_CHECK_PKT_LARGER, d its bytes after the
// subtype, as the flow language reads it.
func checkPktLargerText(d []byte) (string, error) {
	if len(d) != 14 {
		return "", actionError(openflow.CodeBadActionLen, "check_pkt_larger length %d", len(d)+10)
	}
	n, ofs, hw := binary.BigEndian.Uint16(d), binary.BigEndian.Uint16(d[2:]), binary.BigEndian.Uint32(d[4:])
	if hw>>16 == 0xffff {
		return "", unsupportedAction("check_pkt_larger to an experimenter field")
	}
	for _, b := range d[8:] {
		if b != 0 {
			return "", actionError(openflow.CodeBadActionArgument, "check_pkt_larger: padding that is not zero")
		}
	}
	sf, err := wordSubfieldText(hw, ofs, 1, "check_pkt_larger to")
	if err != nil {
		return "", err
	}
	return "check_pkt_larger(" + strconv.Itoa(int(n)) + ")->" + sf, nil
}

// wordSubfieldText writes nbits of the field whose 32-bit header is hw,
// from bit ofs, as the flow language names them; what says, for the
// error, what used a header no field has ("stack action on").
func wordSubfieldText(hw uint32, ofs, nbits uint16, what string) (string, error) {
	name, ok := headerName(hw)
	if !ok {
		return "", actionError(openflow.CodeBadActionArgument, "%s an unknown field", what)
	}
	return subfieldText(openflow.FieldHeader{Name: name, Class: uint16(hw >> 16), Field: uint8(hw >> 9 & 0x7f)}, ofs, nbits)
}

// headerName finds the name of the field whose 32-bit header is hw.
func headerName(hw uint32) (string, bool) {
	for _, name := range fieldWire {
		for _, nxm := range []bool{true, false} {
			h, ok := openflow.FieldByName(name, nxm)
			if ok && uint32(h.Class)<<16|uint32(h.Field&0x7f)<<9 == hw&^0x1ff {
				return name, true
			}
		}
	}
	return "", false
}

// instructionsText writes OpenFlow 1.1+ instructions as ovs-ofctl action
// text: meter, apply_actions, clear_actions, write_actions,
// write_metadata, goto_table.
func instructionsText(insts []openflow.Instruction) (string, error) {
	var meter, apply, clearSet, write, md, gt string
	seen := map[uint16]bool{}
	for i := range insts {
		in := &insts[i]
		if seen[in.Type] {
			return "", &openflow.Error{Type: openflow.ErrTypeBadInstruction, Code: codeUnsupInst, Sentinel: openflow.ErrBadInstruction, Detail: fmt.Sprintf("instruction %d appears twice", in.Type)}
		}
		seen[in.Type] = true
		switch in.Type {
		case openflow.InstApplyActions:
			s, err := actionsText(in.Actions)
			if err != nil {
				return "", err
			}
			apply = s
		case openflow.InstWriteMetadata:
			md = fmt.Sprintf("write_metadata:0x%x/0x%x", in.Metadata&in.MetadataMask, in.MetadataMask)
		case openflow.InstGotoTable:
			if in.TableID > flow.MaxTable {
				return "", &openflow.Error{Type: openflow.ErrTypeBadInstruction, Code: codeBadTableID, Sentinel: openflow.ErrBadInstruction, Detail: fmt.Sprintf("goto_table:%d", in.TableID)}
			}
			gt = "goto_table:" + strconv.Itoa(int(in.TableID))
		case openflow.InstMeter:
			meter = "meter:" + strconv.FormatUint(uint64(in.MeterID), 10)
		case openflow.InstClearActions:
			clearSet = "clear_actions"
		case openflow.InstWriteActions:
			s, err := actionsText(in.Actions)
			if err != nil {
				return "", err
			}
			if s != "" {
				write = "write_actions(" + s + ")"
			}
		default:
			return "", &openflow.Error{Type: openflow.ErrTypeBadInstruction, Code: codeUnsupInst, Sentinel: openflow.ErrBadInstruction,
				Detail: fmt.Sprintf("instruction type %d is not supported by ovsxdp", in.Type), Item: openflow.InstructionName(in.Type)}
		}
	}
	var parts []string
	for _, s := range []string{meter, apply, clearSet, write, md, gt} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ","), nil
}

// maskedSetText writes a masked set_field (OpenFlow 1.5 writes
// load:V->F[A..B] so) as loads to the bits the mask covers, one per run
// of mask bits (at most 64 bits each, as the flow parser splits them), as
// Open vSwitch sends it in OpenFlow 1.0 to 1.4.
func maskedSetText(f *openflow.Field) (string, error) {
	if len(f.Mask) != len(f.Value) {
		return "", actionError(openflow.CodeBadActionLen, "set_field mask of %d bytes for %d", len(f.Mask), len(f.Value))
	}
	v, m := new(big.Int).SetBytes(f.Value), new(big.Int).SetBytes(f.Mask)
	if m.Sign() == 0 {
		return "", actionError(openflow.CodeBadActionArgument, "set_field with an empty mask")
	}
	v.And(v, m)
	var loads []string
	for ofs := uint(0); ofs < uint(m.BitLen()); {
		if m.Bit(int(ofs)) == 0 {
			ofs++
			continue
		}
		n := uint(0)
		for n < 64 && m.Bit(int(ofs+n)) == 1 {
			n++
		}
		run := new(big.Int).Rsh(v, ofs)
		run.And(run, new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), n), big.NewInt(1)))
		loads = append(loads, fmt.Sprintf("load:0x%x->%s[%d..%d]", run.Uint64(), f.Name, ofs, ofs+n-1))
		ofs += n
	}
	return strings.Join(loads, ","), nil
}

// maskedSet writes load:V->F[A..B] as set_field with a mask.
func maskedSet(name string, h openflow.FieldHeader, a *flow.Action) openflow.Action {
	size := int(h.Len)
	if h.Class == openflow.ClassExperimenter {
		size -= 4
	}
	ofs, n := uint(a.Dst.Ofs), a.Dst.Bits()
	v := new(big.Int).Lsh(new(big.Int).SetUint64(a.Value), ofs)
	m := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), n), big.NewInt(1))
	m.Lsh(m, ofs)
	v.And(v, m)
	vb, mb := make([]byte, size), make([]byte, size)
	v.FillBytes(vb)
	if m.BitLen() <= 8*size {
		m.FillBytes(mb)
	}
	// in_port has no OXM field of its width (OXM_OF_IN_PORT is 32 bits):
	// as Open vSwitch, a set_field on it carries NXM_OF_IN_PORT.
	return &openflow.ActSetField{Field: field(name, name == "in_port", vb, mb)}
}
