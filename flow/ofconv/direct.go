package ofconv

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"sync"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// This file converts the common flow mods straight into a flow.Flow: the
// match fields into flow.Match through flow.WireMatch, and the actions
// and instructions that OVN and ovs-ofctl send most (output, resubmit,
// goto_table, load and set_field, move, VLAN, mod_*, dec_ttl,
// conjunction, note, write_metadata, group, exit, clone, ct_clear) into
// []flow.Action. Writing a flow mod as ovs-ofctl text and parsing it back
// (flowFromModText) cost about a tenth of the daemon's time per flow mod,
// and more in garbage.
//
// The text path stays the reference: each conversion here gives exactly
// the flow the parser makes of the text flowFromModText writes, and for
// anything it does not take, or that the parser would refuse, it gives up
// on the whole flow mod, so that the text path converts it or gives the
// error. FuzzFlowModDirect and TestFlowModDirectMatchesText hold the two
// equal.

// direct is the reusable state of one conversion.
type direct struct {
	wm   flow.WireMatch
	acts []flow.Action

	m           *flow.Match
	table       uint8
	vlan        bool // a VLAN tag is known at this point of the actions
	conj, other bool // a conjunction, an action that may not go with one
	base        int  // the first action of the list being read (a clone's body)
}

var directPool = sync.Pool{New: func() any { return new(direct) }}

// modFlow holds a Mod and its Flow in one allocation.
type modFlow struct {
	mod Mod
	f   flow.Flow
}

// wireBits is fieldBits of each field the flow language knows, which
// decides whether the text names a field whole (NAME[]).
var wireBits = func() map[string]int {
	m := make(map[string]int, len(supportedFields))
	for name := range supportedFields {
		m[name] = fieldBits(name)
	}
	return m
}()

// directFlowInto converts a flow mod of command cmd into table, whose
// match is fields, into mf, which it overwrites, without the text round
// trip; false when the flow mod has something it does not convert, or
// something the parser would refuse.
func directFlowInto(mf *modFlow, v uint8, fm *openflow.FlowMod, fields []openflow.Field, cmd flow.Command, table uint8) bool {
	d := directPool.Get().(*direct)
	defer directPool.Put(d)
	d.wm.Reset()
	for i := range fields {
		f := &fields[i]
		if f.Name == "" || !supportedFields[f.Name] {
			return false
		}
		for j := range i {
			if fields[j].Name == f.Name {
				return false
			}
		}
		if !d.wm.InOrder(f.Name) {
			return false // matchText refuses it
		}
		if f.Name == "ip_frag" {
			// As matchText writes it: the two flags by name, nothing
			// when the mask covers neither.
			if len(f.Value) != 1 {
				return false
			}
			m := byte(0xff)
			if f.Mask != nil && !allOnes(f.Mask) && len(f.Mask) == 1 {
				m = f.Mask[0]
			}
			if m&3 != 0 && !d.wm.AddFrag(fragText(f.Value[0]&3, m&3)) {
				return false
			}
			continue
		}
		if !d.wm.Add(f.Name, f.Value, f.Mask) {
			return false
		}
	}
	*mf = modFlow{}
	fl := &mf.f
	if !d.wm.Finish(&fl.Match) {
		return false
	}
	fl.Table = table
	if cmd == flow.CmdDelete {
		return true
	}
	d.acts = d.acts[:0]
	d.m, d.table = &fl.Match, table
	d.vlan = fl.Match.Key.VLANs[0].TCI&flow.VLANPresent != 0
	d.conj, d.other, d.base = false, false, 0
	ok := false
	if v == openflow.Version10 || fm.Nicira {
		ok = d.list(fm.Actions)
	} else {
		ok = d.instructions(fm.Instructions)
	}
	d.m = nil
	if !ok || d.conj && d.other || len(d.acts) > flow.MaxActions {
		return false
	}
	if len(d.acts) > 0 {
		fl.Actions = append([]flow.Action(nil), d.acts...)
	}
	return true
}

// instructions converts OpenFlow 1.1+ instructions in the order the text
// writes them: meter, apply_actions, clear_actions, write_actions,
// write_metadata, goto_table.
func (d *direct) instructions(insts []openflow.Instruction) bool {
	var meter, apply, clearSet, write, md, gt *openflow.Instruction
	for i := range insts {
		in := &insts[i]
		for j := range i {
			if insts[j].Type == in.Type {
				return false
			}
		}
		switch in.Type {
		case openflow.InstApplyActions:
			apply = in
		case openflow.InstWriteMetadata:
			md = in
		case openflow.InstGotoTable:
			if in.TableID > flow.MaxTable || d.table != flow.TableAll && in.TableID <= d.table {
				return false
			}
			gt = in
		case openflow.InstMeter:
			meter = in
		case openflow.InstClearActions:
			clearSet = in
		case openflow.InstWriteActions:
			write = in
		default:
			return false
		}
	}
	if meter != nil {
		d.add(flow.Action{Type: flow.ActMeter, Value: uint64(meter.MeterID)})
	}
	if apply != nil && !d.list(apply.Actions) {
		return false
	}
	if (clearSet != nil || write != nil) && slices.ContainsFunc(d.acts, func(a flow.Action) bool {
		return a.Type == flow.ActWriteMetadata || a.Type == flow.ActResubmit && a.Spelling == flow.SpellGotoTable
	}) {
		return false // an instruction among the applied actions, before the set: the text refuses the order
	}
	if clearSet != nil {
		d.other = true
		d.add(flow.Action{Type: flow.ActClearActions})
	}
	if write != nil && len(write.Actions) > 0 {
		d.other = true
		at := len(d.acts)
		d.add(flow.Action{Type: flow.ActWriteActions})
		if !d.list(write.Actions) {
			return false
		}
		body := d.acts[at+1:]
		for i := range body {
			if !flow.InActionSet(&body[i]) {
				return false // the flow language says why (Convert)
			}
		}
		d.acts[at].Value = uint64(len(body))
	}
	if md != nil {
		d.other = true
		d.add(flow.Action{Type: flow.ActWriteMetadata, Value: md.Metadata & md.MetadataMask, Mask: md.MetadataMask})
	}
	if gt != nil {
		d.other = true
		d.add(flow.Action{Type: flow.ActResubmit, Port: flow.PortInPort, Table: gt.TableID, Spelling: flow.SpellGotoTable})
	}
	return true
}

func (d *direct) add(a flow.Action) { d.acts = append(d.acts, a) }

func (d *direct) list(acts []openflow.Action) bool {
	for _, a := range acts {
		if !d.action(a) {
			return false
		}
	}
	return true
}

// impliedPush is the spelling of a mod_vlan_vid or mod_vlan_pcp where it
// stands (flow.Parser's).
func (d *direct) impliedPush() flow.Spelling {
	if d.vlan {
		return flow.SpellDefault
	}
	return flow.SpellImpliedPush
}

// isIP reports whether the flow's match says IPv4 or IPv6.
func (d *direct) isIP() bool {
	k := &d.m.Key
	return d.m.Mask.DlType == 0xffff && (k.DlType == flow.EthTypeIPv4 || k.DlType == flow.EthTypeIPv6)
}

func (d *direct) action(a openflow.Action) bool {
	switch a := a.(type) {
	case *openflow.ActConjunction:
		d.conj = true
		return d.conjunction(a)
	case *openflow.ActNote:
		// Padded after its 10-byte header to a multiple of 8 bytes, as
		// the parser pads it.
		n := (10+len(a.Data)+7)/8*8 - 10
		b := make([]byte, n)
		copy(b, a.Data)
		d.add(flow.Action{Type: flow.ActNote, Note: string(b)})
		return true
	}
	d.other = true
	switch a := a.(type) {
	case *openflow.ActOutput:
		return d.output(a)
	case *openflow.ActResubmit:
		if a.CT {
			return false
		}
		r := flow.Action{Type: flow.ActResubmit, Port: uint32(a.InPort), Table: flow.TableCurrent}
		if a.WithTable && a.Table != flow.TableAll {
			r.Table = a.Table
		} else if r.Port == flow.PortInPort {
			return false
		}
		d.add(r)
	case *openflow.ActRegLoad:
		sf, ok := d.subfield(a.Dst.Name, a.Ofs, a.NBits)
		if !ok {
			return false
		}
		l, ok := flow.LoadAction(sf, a.Value)
		if !ok {
			return false
		}
		d.add(l)
	case *openflow.ActRegMove:
		src, ok := d.subfield(a.Src.Name, a.SrcOfs, a.NBits)
		if !ok {
			return false
		}
		dst, ok := d.subfield(a.Dst.Name, a.DstOfs, a.NBits)
		if !ok {
			return false
		}
		mv, ok := flow.MoveAction(d.m, src, dst)
		if !ok {
			return false
		}
		d.add(mv)
	case *openflow.ActSetField:
		return d.setField(&a.Field)
	case *openflow.ActSetVLANVID:
		if a.VID > flow.VLANVIDMask {
			return false
		}
		d.add(flow.Action{Type: flow.ActSetVLANVID, Value: uint64(a.VID), Spelling: d.impliedPush()})
		d.vlan = true
	case *openflow.ActSetVLANPCP:
		if a.PCP > 7 {
			return false
		}
		d.add(flow.Action{Type: flow.ActSetVLANPCP, Value: uint64(a.PCP), Spelling: d.impliedPush()})
		d.vlan = true
	case *openflow.ActPopVLAN:
		d.vlan = false
		d.add(flow.Action{Type: flow.ActPopVLAN})
	case *openflow.ActEthertype:
		if a.Type != openflow.ActTypePushVLAN || a.EtherType != flow.EthTypeVLAN && a.EtherType != flow.EthTypeQinQ {
			return false
		}
		d.vlan = true
		d.add(flow.Action{Type: flow.ActPushVLAN, Value: uint64(a.EtherType)})
	case *openflow.ActSetDLAddr:
		id := flow.FieldDlSrc
		if a.Dst {
			id = flow.FieldDlDst
		}
		d.add(flow.Action{Type: flow.ActSetField, Field: id, Value: macValue(a.Addr[:])})
	case *openflow.ActSetNWAddr:
		id := flow.FieldNwSrc
		if a.Dst {
			id = flow.FieldNwDst
		}
		d.add(flow.Action{Type: flow.ActSetField, Field: id, Value: uint64(a.Addr)})
	case *openflow.ActSetNWTOS:
		if a.TOS&3 != 0 {
			return false
		}
		d.add(flow.Action{Type: flow.ActSetField, Field: flow.FieldNwTos, Value: uint64(a.TOS)})
	case *openflow.ActSetTPPort:
		id := flow.FieldTpSrc
		if a.Dst {
			id = flow.FieldTpDst
		}
		d.add(flow.Action{Type: flow.ActSetField, Field: id, Value: uint64(a.Port)})
	case *openflow.ActTTL:
		if a.Type != openflow.ActTypeSetNWTTL || !d.isIP() {
			return false
		}
		d.add(flow.Action{Type: flow.ActSetField, Field: flow.FieldNwTTL, Value: uint64(a.TTL), Spelling: flow.SpellMod})
	case *openflow.ActSimple:
		switch a.Type {
		case openflow.ActTypeDecNWTTL:
			d.add(flow.Action{Type: flow.ActDecTTL})
		case openflow.ActTypePopVLAN:
			d.vlan = false
			d.add(flow.Action{Type: flow.ActPopVLAN})
		default:
			return false
		}
	case *openflow.ActNX:
		switch a.Subtype {
		case openflow.NXActExit:
			d.add(flow.Action{Type: flow.ActExit})
		case openflow.NXActDecTTL:
			d.add(flow.Action{Type: flow.ActDecTTL})
		case openflow.NXActCTClear:
			d.add(flow.Action{Type: flow.ActCTClear})
		default:
			return false
		}
	case *openflow.ActClone:
		return d.clone(a)
	case *openflow.ActU32:
		switch a.Type {
		case openflow.ActTypeGroup:
			d.add(flow.Action{Type: flow.ActGroup, Value: uint64(a.Value)})
		case openflow.ActTypeMeter:
			d.add(flow.Action{Type: flow.ActMeter, Value: uint64(a.Value)})
		default:
			return false
		}
	case *openflow.ActRaw:
		if a.Type != typeExperimenter || a.Experimenter != openflow.NiciraExperimenter || a.Subtype != nxWriteMetadata || len(a.Data) != 22 {
			return false
		}
		v, m := binary.BigEndian.Uint64(a.Data[6:]), binary.BigEndian.Uint64(a.Data[14:])
		d.add(flow.Action{Type: flow.ActWriteMetadata, Value: v & m, Mask: m})
	default:
		return false
	}
	return true
}

// clone converts clone(actions): the clone, holding the number of
// actions of its body, then the body, which the parser reads as a list
// of its own (a conjunction in it goes only with notes in it) from the
// VLAN tag known where the clone stands, and which leaves that as it
// was.
func (d *direct) clone(a *openflow.ActClone) bool {
	vlan, conj, base := d.vlan, d.conj, d.base
	start := len(d.acts)
	d.add(flow.Action{Type: flow.ActClone})
	d.conj, d.other, d.base = false, false, len(d.acts)
	if !d.list(a.Actions) || d.conj && d.other {
		return false
	}
	d.acts[start].Value = uint64(len(d.acts) - start - 1)
	d.vlan, d.conj, d.other, d.base = vlan, conj, true, base
	return true
}

// output converts an output action; the controller port becomes the
// controller action (controller:MAX_LEN in the text).
func (d *direct) output(a *openflow.ActOutput) bool {
	p := a.Port
	switch {
	case p == openflow.PortAny, p < openflow.PortMax && p > 0xfeff:
		return false
	case p == openflow.PortController:
		d.add(flow.ControllerAction(flow.ReasonAction, a.MaxLen))
		return true
	}
	port := flowPort(p)
	if port == flow.PortTable || port == flow.PortNone || port >= flow.PortMax && port < flow.PortInPort {
		return false
	}
	d.add(flow.Action{Type: flow.ActOutput, Port: port})
	return true
}

// conjunction converts conjunction(id,k/n) with the parser's checks.
func (d *direct) conjunction(a *openflow.ActConjunction) bool {
	k, n := int(a.Clause)+1, int(a.NClauses)
	if k > 0xff || n < 2 || n > 64 || k > n {
		return false
	}
	for i := d.base; i < len(d.acts); i++ {
		if c := &d.acts[i]; c.Type == flow.ActConjunction && c.Value == uint64(a.ID) && c.Port != uint32(n) {
			return false
		}
	}
	d.add(flow.Action{Type: flow.ActConjunction, Value: uint64(a.ID), Table: uint8(k), Port: uint32(n)})
	return true
}

// subfield is the subfield an NXM action names: the text writes NAME[]
// for the whole field as the wire gives its width, NAME[A..B] otherwise.
func (d *direct) subfield(name string, ofs, nbits uint16) (flow.Subfield, bool) {
	if name == "" || !supportedFields[name] {
		return flow.Subfield{}, false
	}
	whole := ofs == 0 && int(nbits) == wireBits[name]
	return flow.WireSubfield(name, uint(ofs), uint(nbits), whole)
}

// setField converts a set_field as setFieldText writes it: the mod_*
// actions for the fields that have one, the loads of each run of mask
// bits for a masked one, set_field for a pipeline field.
func (d *direct) setField(f *openflow.Field) bool {
	name := f.Name
	if name == "" || !supportedFields[name] || name == "ip_frag" || name == "eth_type" {
		return false
	}
	if f.Mask != nil && !allOnes(f.Mask) {
		return d.maskedSet(f)
	}
	var num uint64
	for _, c := range f.Value {
		num = num<<8 | uint64(c)
	}
	set := func(id flow.FieldID, v uint64) bool {
		d.add(flow.Action{Type: flow.ActSetField, Field: id, Value: v})
		return true
	}
	switch name {
	case "eth_src", "eth_dst":
		if len(f.Value) != 6 {
			return false
		}
		if name == "eth_src" {
			return set(flow.FieldDlSrc, num)
		}
		return set(flow.FieldDlDst, num)
	case "ip_src", "ip_dst":
		if len(f.Value) != 4 {
			return false
		}
		if name == "ip_src" {
			return set(flow.FieldNwSrc, num)
		}
		return set(flow.FieldNwDst, num)
	case "ip_dscp":
		return set(flow.FieldNwTos, num<<2&0xfc)
	case "nw_tos":
		return set(flow.FieldNwTos, num&0xfc)
	case "tcp_src", "udp_src", "tcp_dst", "udp_dst":
		if num > 0xffff {
			return false
		}
		if name[4:] == "src" {
			return set(flow.FieldTpSrc, num)
		}
		return set(flow.FieldTpDst, num)
	case "vlan_vid":
		d.add(flow.Action{Type: flow.ActSetVLANVID, Value: num & flow.VLANVIDMask, Spelling: d.impliedPush()})
		d.vlan = true
		return true
	case "vlan_pcp":
		d.add(flow.Action{Type: flow.ActSetVLANPCP, Value: num & 7, Spelling: d.impliedPush()})
		d.vlan = true
		return true
	}
	v, ok := flow.WireNumber(f.Value)
	if !ok {
		return false
	}
	a, ok := flow.SetFieldRegAction(name, v)
	if !ok {
		return false
	}
	d.add(a)
	return true
}

// maskedSet converts a masked set_field on a pipeline field of at most 64
// bits into the loads maskedSetText writes: one per run of mask bits.
func (d *direct) maskedSet(f *openflow.Field) bool {
	if len(f.Mask) != len(f.Value) {
		return false
	}
	v, ok := flow.WireNumber(f.Value)
	m, ok2 := flow.WireNumber(f.Mask)
	if !ok || !ok2 || m == 0 {
		return false
	}
	v &= m
	for ofs := uint(0); ofs < uint(bits.Len64(m)); {
		if m>>ofs&1 == 0 {
			ofs++
			continue
		}
		n := uint(bits.TrailingZeros64(^(m >> ofs)))
		run := v >> ofs
		if n < 64 {
			run &= 1<<n - 1
		}
		sf, ok := flow.WireSubfield(f.Name, ofs, n, false)
		if !ok {
			return false
		}
		l, ok := flow.LoadAction(sf, run)
		if !ok {
			return false
		}
		d.add(l)
		ofs += n
	}
	return true
}

// macValue reads an Ethernet address as the flow language's number.
func macValue(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
