package ofconv

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// This file converts connection tracking between the wire and the flow
// language: the NXM_NX_CT_* match fields, and the actions ct (with its nat
// and exec(...) arguments) and ct_clear. They are decoded directly into
// flow.Match and flow.Action rather than through the flow language's text;
// the subfields they read (zone=NXM_NX_REG13[0..15], move:SRC->ct_label)
// are still resolved and checked by the flow parser, against the flow's
// match.

// ctFields are the connection tracking match fields, by wire name.
var ctFields = map[string]flow.FieldID{
	"ct_state": flow.FieldCtState, "ct_zone": flow.FieldCtZone, "ct_mark": flow.FieldCtMark,
	"ct_label": flow.FieldCtLabel, "ct_nw_src": flow.FieldCtNwSrc, "ct_nw_dst": flow.FieldCtNwDst,
	"ct_ipv6_src": flow.FieldCtIPv6Src, "ct_ipv6_dst": flow.FieldCtIPv6Dst,
	"ct_nw_proto": flow.FieldCtNwProto, "ct_tp_src": flow.FieldCtTpSrc, "ct_tp_dst": flow.FieldCtTpDst,
}

// ctWritable are the fields only the exec(...) of a ct action may write.
var ctWritable = map[string]bool{"ct_mark": true, "ct_label": true}

// applyCTFields adds connection tracking match fields to m, checking them
// as Open vSwitch does: values within the field, masks only where the
// field takes one, and the original-direction tuple only with a ct_state
// that implies a connection.
func applyCTFields(m *flow.Match, fs []openflow.Field) error {
	k, w := &m.Key, &m.Mask
	for i := range fs {
		f := &fs[i]
		mask := f.Mask
		if mask == nil {
			mask = bytes.Repeat([]byte{0xff}, len(f.Value))
		}
		if len(mask) != len(f.Value) {
			return ctMatchError(f.Name, openflow.CodeBadMatchLen, "%s mask of %d bytes", f.Name, len(mask))
		}
		switch f.Name {
		case "ct_zone", "ct_nw_proto":
			if !allOnes(mask) {
				return ctMatchError(f.Name, codeBadMatchMask, "%s cannot be masked", f.Name)
			}
		}
		num := func(b []byte) uint64 {
			var v uint64
			for _, c := range b {
				v = v<<8 | uint64(c)
			}
			return v
		}
		v, mk := num(f.Value), num(mask)
		switch f.Name {
		case "ct_state":
			if v&^0xff != 0 {
				return ctMatchError(f.Name, codeBadMatchValue, "ct_state 0x%x has undefined bits", v)
			}
			k.CtState, w.CtState = uint8(v), uint8(mk)
		case "ct_zone":
			k.CtZone, w.CtZone = uint16(v), 0xffff
		case "ct_mark":
			k.CtMark, w.CtMark = uint32(v), uint32(mk)
		case "ct_label":
			copy(k.CtLabel[:], f.Value)
			copy(w.CtLabel[:], mask)
		case "ct_nw_src":
			k.CtNwSrc, w.CtNwSrc = uint32(v), uint32(mk)
		case "ct_nw_dst":
			k.CtNwDst, w.CtNwDst = uint32(v), uint32(mk)
		case "ct_ipv6_src":
			copy(k.CtIPv6Src[:], f.Value)
			copy(w.CtIPv6Src[:], mask)
		case "ct_ipv6_dst":
			copy(k.CtIPv6Dst[:], f.Value)
			copy(w.CtIPv6Dst[:], mask)
		case "ct_nw_proto":
			k.CtNwProto, w.CtNwProto = uint8(v), 0xff
		case "ct_tp_src":
			k.CtTpSrc, w.CtTpSrc = uint16(v), uint16(mk)
		case "ct_tp_dst":
			k.CtTpDst, w.CtTpDst = uint16(v), uint16(mk)
		}
	}
	m.Normalize()
	for i := range fs {
		switch fs[i].Name {
		case "ct_state", "ct_zone", "ct_mark", "ct_label":
		default:
			if !ctValid(m) {
				return ctMatchError(fs[i].Name, codeBadMatchPrereq, "%s requires a ct_state that implies a connection (such as +est, +new or +trk-inv)", fs[i].Name)
			}
		}
	}
	return nil
}

// ctMatchError is an OFPET_BAD_MATCH error about the ct field name.
func ctMatchError(name string, code uint16, format string, args ...any) error {
	e := matchError(code, format, args...)
	e.Item = name
	return e
}

// ctValid reports whether m's ct_state implies a tracked, valid
// connection: Open vSwitch's prerequisite for the original-direction tuple.
func ctValid(m *flow.Match) bool {
	const conn = flow.CtStateNew | flow.CtStateEst | flow.CtStateRel | flow.CtStateRpl | flow.CtStateSNAT | flow.CtStateDNAT
	s := m.Key.CtState
	return s&conn != 0 || s&flow.CtStateTracked != 0 && m.Mask.CtState&flow.CtStateInv != 0 && s&flow.CtStateInv == 0
}

// ctFieldsFromMatch returns m's connection tracking fields as wire fields,
// in Open vSwitch's order. As Open vSwitch, the transport ports of the
// tuple are written only with a ct_nw_proto.
func ctFieldsFromMatch(m *flow.Match, add func(name string, v, mask []byte)) {
	k, w := &m.Key, &m.Mask
	if w.CtState != 0 {
		add("ct_state", b32(uint32(k.CtState)), b32(uint32(w.CtState)))
	}
	if w.CtZone != 0 {
		add("ct_zone", b16(k.CtZone), nil)
	}
	if w.CtMark != 0 {
		add("ct_mark", b32(k.CtMark), b32(w.CtMark))
	}
	if w.CtLabel != ([16]byte{}) {
		add("ct_label", b16s(k.CtLabel), b16s(w.CtLabel))
	}
	if w.CtNwSrc != 0 {
		add("ct_nw_src", b32(k.CtNwSrc), b32(w.CtNwSrc))
	}
	if w.CtIPv6Src != ([16]byte{}) {
		add("ct_ipv6_src", b16s(k.CtIPv6Src), b16s(w.CtIPv6Src))
	}
	if w.CtNwDst != 0 {
		add("ct_nw_dst", b32(k.CtNwDst), b32(w.CtNwDst))
	}
	if w.CtIPv6Dst != ([16]byte{}) {
		add("ct_ipv6_dst", b16s(k.CtIPv6Dst), b16s(w.CtIPv6Dst))
	}
	if k.CtNwProto != 0 {
		add("ct_nw_proto", b8(k.CtNwProto), nil)
		if w.CtTpSrc != 0 {
			add("ct_tp_src", b16(k.CtTpSrc), b16(w.CtTpSrc))
		}
		if w.CtTpDst != 0 {
			add("ct_tp_dst", b16(k.CtTpDst), b16(w.CtTpDst))
		}
	}
}

// ctWire holds the ct and ct_clear actions met while a flow's actions are
// written as text. Each stands in the text as a note whose bytes are a
// random nonce, fresh for each flow, and the action's index; once the
// flow is parsed, splice puts the decoded action in the note's place.
type ctWire struct {
	nonce [10]byte
	acts  []openflow.Action
}

// newCTWire returns a ctWire with a fresh nonce.
func newCTWire() *ctWire {
	cw := &ctWire{}
	if _, err := rand.Read(cw.nonce[:]); err != nil {
		panic(fmt.Sprintf("ofconv: no randomness: %v", err))
	}
	return cw
}

// marker returns the note bytes that stand for action i.
func (cw *ctWire) marker(i int) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), cw.nonce[:]...), uint32(i))
}

// placeholder records a (ct or ct_clear) and returns the text that stands
// for it.
func (cw *ctWire) placeholder(a openflow.Action) (string, error) {
	if cw == nil {
		if x, ok := a.(*openflow.ActNX); ok {
			return "", unsupportedAction(openflow.NXActionName(x.Subtype))
		}
		return "", unsupportedAction("NXAST_CT")
	}
	cw.acts = append(cw.acts, a)
	return "note:" + dotted(cw.marker(len(cw.acts)-1)), nil
}

// splice replaces the placeholders in acts, the parsed actions of a flow
// (or a group bucket) whose match is m (nil for a bucket) and whose match
// text is mt, by the ct and ct_clear actions they stand for.
func (cw *ctWire) splice(p *flow.Parser, mt string, m *flow.Match, acts []flow.Action) ([]flow.Action, error) {
	if cw == nil || len(cw.acts) == 0 {
		return acts, nil
	}
	out := make([]flow.Action, 0, len(acts))
	conj := false
	found := 0
	for i := range acts {
		a := &acts[i]
		conj = conj || a.Type == flow.ActConjunction
		idx, ok := cw.index(a)
		if !ok {
			out = append(out, *a)
			continue
		}
		found++
		switch x := cw.acts[idx].(type) {
		case *openflow.ActCT:
			fa, err := flowCT(p, mt, m, x)
			if err != nil {
				var oe *openflow.Error
				if errors.As(err, &oe) && oe.Item == "" {
					oe.Item = "NXAST_CT"
				}
				return nil, err
			}
			out = append(out, fa)
		default:
			out = append(out, flow.Action{Type: flow.ActCTClear})
		}
	}
	if found == 0 {
		return acts, nil
	}
	if conj {
		return nil, actionError(openflow.CodeBadActionArgument, `"conjunction" actions may be used along with "note" but not any other kind of action (such as the "ct" action used here)`)
	}
	return out, nil
}

// index returns the index of the ct action that a stands for.
func (cw *ctWire) index(a *flow.Action) (int, bool) {
	if a.Type != flow.ActNote || len(a.Note) != len(cw.nonce)+4 || a.Note[:len(cw.nonce)] != string(cw.nonce[:]) {
		return 0, false
	}
	i := int(binary.BigEndian.Uint32([]byte(a.Note[len(cw.nonce):])))
	return i, i < len(cw.acts)
}

// readSubfields resolves subfields written as text (NAME[A..B]) that an
// action reads, checking with the flow parser that the flow with match
// text mt may read them.
func readSubfields(p *flow.Parser, mt string, srcs []string) ([]flow.Subfield, error) {
	if len(srcs) == 0 {
		return nil, nil
	}
	text := mt
	if text != "" {
		text += ","
	}
	text += "actions=push:" + strings.Join(srcs, ",push:")
	f, err := p.ParseFlow(text, flow.CmdAdd)
	if err != nil {
		return nil, parseError(err, false)
	}
	if len(f.Actions) != len(srcs) {
		return nil, actionError(openflow.CodeBadActionArgument, "subfields %q read as %d", srcs, len(f.Actions))
	}
	out := make([]flow.Subfield, len(srcs))
	for i := range f.Actions {
		out[i] = f.Actions[i].Src
	}
	return out, nil
}

// Connection tracking helpers (ALGs) ovsxdp knows, by port.
const (
	algFTP  = 21
	algTFTP = 69
)

// flowCT converts a wire ct action to a flow action, with the checks Open
// vSwitch makes of it: only nat and writes to ct_mark and ct_label nested,
// a known helper, and (for a flow) a match on IP with the helper's
// protocol and no commit of an invalid connection.
func flowCT(p *flow.Parser, mt string, m *flow.Match, a *openflow.ActCT) (flow.Action, error) {
	badArg := func(format string, args ...any) (flow.Action, error) {
		e := actionError(openflow.CodeBadActionArgument, format, args...)
		e.Item = "NXAST_CT"
		return flow.Action{}, e
	}
	if a.Flags&^(openflow.CTFlagCommit|openflow.CTFlagForce) != 0 {
		return badArg("ct flags 0x%x", a.Flags)
	}
	if a.Alg != 0 && a.Alg != algFTP && a.Alg != algTFTP {
		return badArg("ct alg %d is not supported by ovsxdp", a.Alg)
	}
	ct := &flow.CT{
		Commit: a.Flags&openflow.CTFlagCommit != 0,
		Force:  a.Flags&openflow.CTFlagForce != 0,
		Zone:   a.ZoneImm,
		Table:  a.RecircTable,
		Alg:    a.Alg,
	}
	// The subfields the action reads: the zone's source, then each
	// move's source.
	var srcs []string
	if a.ZoneFromField {
		s, err := srcText(a.ZoneSrc, a.ZoneOfs, a.ZoneNBits)
		if err != nil {
			return flow.Action{}, err
		}
		srcs = append(srcs, s)
	}
	for _, x := range a.Actions {
		if mv, ok := x.(*openflow.ActRegMove); ok {
			s, err := srcText(mv.Src, mv.SrcOfs, mv.NBits)
			if err != nil {
				return flow.Action{}, err
			}
			srcs = append(srcs, s)
		}
	}
	read, err := readSubfields(p, mt, srcs)
	if err != nil {
		return flow.Action{}, err
	}
	if a.ZoneFromField {
		ct.ZoneSrc, read = read[0], read[1:]
	}
	for _, x := range a.Actions {
		switch x := x.(type) {
		case *openflow.ActNAT:
			if ct.NAT != nil {
				return badArg("ct with two nat actions")
			}
			n, err := flowNAT(x)
			if err != nil {
				return flow.Action{}, err
			}
			ct.NAT = n
		case *openflow.ActRegLoad:
			dst, err := ctDst(x.Dst.Name, x.Ofs, x.NBits)
			if err != nil {
				return flow.Action{}, err
			}
			if x.NBits < 64 && x.Value>>x.NBits != 0 {
				return flow.Action{}, actionError(openflow.CodeBadActionSetArgument, "load of 0x%x into %d bits", x.Value, x.NBits)
			}
			ct.Exec = append(ct.Exec, flow.Action{Type: flow.ActLoad, Dst: dst, Value: x.Value})
		case *openflow.ActSetField:
			loads, err := ctSetField(&x.Field)
			if err != nil {
				return flow.Action{}, err
			}
			ct.Exec = append(ct.Exec, loads...)
		case *openflow.ActRegMove:
			dst, err := ctDst(x.Dst.Name, x.DstOfs, x.NBits)
			if err != nil {
				return flow.Action{}, err
			}
			ct.Exec = append(ct.Exec, flow.Action{Type: flow.ActMove, Src: read[0], Dst: dst})
			read = read[1:]
		default:
			name := fmt.Sprintf("%T", x)
			switch y := x.(type) {
			case *openflow.ActCT:
				name = "ct"
			case *openflow.ActNX:
				name = openflow.NXActionName(y.Subtype)
			default:
				if t, err := actionText(x, nil); err == nil && t != "" {
					name = t
				}
			}
			return badArg("ct action doesn't support nested action %s", name)
		}
	}
	if m != nil {
		k, w := &m.Key, &m.Mask
		inconsistent := func(format string, args ...any) (flow.Action, error) {
			e := actionError(codeMatchInconsistent, format, args...)
			e.Item = "NXAST_CT"
			return flow.Action{}, e
		}
		if w.DlType != 0xffff || k.DlType != flow.EthTypeIPv4 && k.DlType != flow.EthTypeIPv6 {
			return inconsistent("ct requires a match on ip or ipv6")
		}
		if ct.Commit && k.CtState&flow.CtStateInv != 0 {
			return inconsistent("ct(commit) of a connection matched +inv")
		}
		proto := map[uint16]uint8{algFTP: flow.IPProtoTCP, algTFTP: flow.IPProtoUDP}[ct.Alg]
		if proto != 0 && (w.NwProto != 0xff || k.NwProto != proto) {
			return inconsistent("ct alg=%d requires a match on IP protocol %d", ct.Alg, proto)
		}
	}
	return flow.Action{Type: flow.ActCT, CT: ct}, nil
}

// srcText writes a subfield a ct action reads as text, refusing an
// unknown field (OFPBAC_BAD_SET_TYPE) and bits outside the field
// (OFPBAC_BAD_SET_LEN) as Open vSwitch does.
func srcText(h openflow.FieldHeader, ofs, nbits uint16) (string, error) {
	if h.Name == "" || !supportedFields[h.Name] {
		return "", actionError(openflow.CodeBadActionSetType, "ct reads field 0x%04x:%d, which ovsxdp does not support", h.Class, h.Field)
	}
	if w := fieldBits(h.Name); nbits == 0 || int(ofs)+int(nbits) > w {
		return "", actionError(openflow.CodeBadActionSetLen, "%s[%d..%d] is outside the %d-bit field", h.Name, ofs, int(ofs)+int(nbits)-1, w)
	}
	return subfieldText(h, ofs, nbits)
}

// ctDst checks that a nested write goes to ct_mark or ct_label, within
// the field, and returns its subfield.
func ctDst(name string, ofs, nbits uint16) (flow.Subfield, error) {
	id, ok := ctFields[name]
	if !ok || !ctWritable[name] {
		if name == "" {
			name = "an unknown field"
		}
		e := actionError(openflow.CodeBadActionArgument, "ct action doesn't support nested modification of %s", name)
		e.Item = "NXAST_CT"
		return flow.Subfield{}, e
	}
	w := fieldBits(name)
	if nbits == 0 || int(ofs)+int(nbits) > w || nbits > 64 && !(ofs == 0 && int(nbits) == w) {
		return flow.Subfield{}, actionError(openflow.CodeBadActionSetLen, "%s[%d..%d] is outside the %d-bit field", name, ofs, int(ofs)+int(nbits)-1, w)
	}
	return flow.Subfield{Field: id, Ofs: uint8(ofs), NBits: uint8(nbits)}, nil
}

// ctSetField converts a nested set_field (or reg_load2) on ct_mark or
// ct_label to loads, as the flow parser writes set_field:V[/M]->F: one
// load per run of mask bits (at most 64 bits each), spelled set_field
// when the whole field is written.
func ctSetField(f *openflow.Field) ([]flow.Action, error) {
	dst, err := ctDst(f.Name, 0, uint16(8*len(f.Value)))
	if err != nil {
		return nil, err
	}
	w := fieldBits(f.Name)
	if len(f.Value)*8 != w || f.Mask != nil && len(f.Mask) != len(f.Value) {
		return nil, actionError(openflow.CodeBadActionSetLen, "set_field on %s of %d bytes", f.Name, len(f.Value))
	}
	v := new(big.Int).SetBytes(f.Value)
	m := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(w)), big.NewInt(1))
	spell := flow.SpellSetField
	if f.Mask != nil && !allOnes(f.Mask) {
		m.SetBytes(f.Mask)
		spell = flow.SpellDefault
	}
	if new(big.Int).AndNot(v, m).Sign() != 0 && f.Mask == nil {
		return nil, actionError(openflow.CodeBadActionSetArgument, "set_field value too large for %s", f.Name)
	}
	v.And(v, m)
	var loads []flow.Action
	for ofs := 0; ofs < w; {
		if m.Bit(ofs) == 0 {
			ofs++
			continue
		}
		n := 0
		for ofs+n < w && n < 64 && m.Bit(ofs+n) == 1 {
			n++
		}
		run := new(big.Int).Rsh(v, uint(ofs))
		run.And(run, new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(n)), big.NewInt(1)))
		sf := flow.Subfield{Field: dst.Field, Ofs: uint8(ofs), NBits: uint8(n)}
		loads = append(loads, flow.Action{Type: flow.ActLoad, Dst: sf, Value: run.Uint64(), Spelling: spell})
		ofs += n
	}
	return loads, nil
}

// flowNAT converts a wire nat action. A single address or port is a range
// of one, as flow.NAT holds it.
func flowNAT(x *openflow.ActNAT) (*flow.NAT, error) {
	n := &flow.NAT{
		AddrMin: x.AddrMin, AddrMax: x.AddrMax, PortMin: x.ProtoMin, PortMax: x.ProtoMax,
		Persistent: x.Flags&openflow.NATFlagPersistent != 0,
		Hash:       x.Flags&openflow.NATFlagProtoHash != 0,
		Random:     x.Flags&openflow.NATFlagProtoRandom != 0,
	}
	switch {
	case x.Flags&openflow.NATFlagSrc != 0:
		n.Kind = flow.NATSrc
	case x.Flags&openflow.NATFlagDst != 0:
		n.Kind = flow.NATDst
	case x.Flags != 0 || x.AddrMin.IsValid():
		e := actionError(openflow.CodeBadActionArgument, "nat with arguments but neither src nor dst")
		e.Item = "NXAST_NAT"
		return nil, e
	}
	if n.AddrMin.IsValid() && !n.AddrMax.IsValid() {
		n.AddrMax = n.AddrMin
	}
	if n.PortMin != 0 && n.PortMax == 0 {
		n.PortMax = n.PortMin
	}
	return n, nil
}

// ctToOF encodes a flow ct action as ovs-ofctl does: the nat first, then
// the exec actions.
func (e *encoder) ctToOF(ct *flow.CT) (openflow.Action, error) {
	if ct == nil {
		return nil, fmt.Errorf("%w: ct without arguments", openflow.ErrUnencodable)
	}
	a := &openflow.ActCT{ZoneImm: ct.Zone, RecircTable: ct.Table, Alg: ct.Alg, Actions: []openflow.Action{}}
	if ct.Commit {
		a.Flags |= openflow.CTFlagCommit
	}
	if ct.Force {
		a.Flags |= openflow.CTFlagForce
	}
	if ct.ZoneSrc.Field != flow.FieldNone {
		h, err := header(ct.ZoneSrc.Field)
		if err != nil {
			return nil, err
		}
		a.ZoneFromField, a.ZoneSrc, a.ZoneImm = true, h, 0
		a.ZoneOfs, a.ZoneNBits = uint16(ct.ZoneSrc.Ofs), uint16(ct.ZoneSrc.Bits())
	}
	if n := ct.NAT; n != nil {
		x := &openflow.ActNAT{AddrMin: n.AddrMin, ProtoMin: n.PortMin}
		switch n.Kind {
		case flow.NATSrc:
			x.Flags |= openflow.NATFlagSrc
		case flow.NATDst:
			x.Flags |= openflow.NATFlagDst
		}
		for _, f := range []struct {
			on   bool
			flag uint16
		}{{n.Persistent, openflow.NATFlagPersistent}, {n.Hash, openflow.NATFlagProtoHash}, {n.Random, openflow.NATFlagProtoRandom}} {
			if f.on {
				x.Flags |= f.flag
			}
		}
		if n.AddrMax != n.AddrMin {
			x.AddrMax = n.AddrMax
		}
		if n.PortMax != n.PortMin {
			x.ProtoMax = n.PortMax
		}
		a.Actions = append(a.Actions, x)
	}
	exec, err := e.list(ct.Exec)
	if err != nil {
		return nil, err
	}
	a.Actions = append(a.Actions, exec...)
	return a, nil
}
