package flow

import (
	"strconv"
	"strings"
)

// This file prints action lists in the spelling of an OpenFlow version.
// Open vSwitch keeps how each action was written (its "raw" encoding) and
// prints it back in the version of the dump: in OpenFlow 1.0 with Nicira
// extensions (ovs-ofctl's default) goto_table is resubmit(,T) and a
// set_field is a load or a mod_* action; in OpenFlow 1.3 goto_table,
// set_field and load each print as written, and mod_* actions print as
// set_field.

// Dialect is the OpenFlow version whose spelling a dump uses.
type Dialect uint8

// The dialects.
const (
	// OpenFlow10 is ovs-ofctl's default: OpenFlow 1.0 with Nicira
	// extensions (NXM).
	OpenFlow10 Dialect = iota
	// OpenFlow13 is `ovs-ofctl -O OpenFlow13`.
	OpenFlow13
)

// DumpDialect is the dialect a dump of rules is printed in: OpenFlow 1.3
// when a rule was written with the OpenFlow 1.1+ instruction goto_table,
// clear_actions or write_actions
// (whoever writes instructions reads the table in OpenFlow 1.1+, and
// Open vSwitch 3.1 refuses an OpenFlow 1.0 dump of a table where
// write_metadata precedes goto_table), OpenFlow 1.0 otherwise.
func DumpDialect(rules []*Rule) Dialect {
	for _, r := range rules {
		for i := range r.Actions {
			if a := &r.Actions[i]; a.Type == ActResubmit && a.Spelling == SpellGotoTable || isActionSetInstr(a.Type) {
				return OpenFlow13
			}
		}
	}
	return OpenFlow10
}

// FormatMatchIn is FormatMatch in dialect d. OpenFlow 1.2+ carries the
// outer VLAN as OXM vlan_vid (the VID and the present bit) and vlan_pcp,
// which Open vSwitch sends only for a tagged VID: a match on vlan_tci
// prints as what those fields say (vlan_tci=0 as vlan_tci=0x0000/0x1fff).
func FormatMatchIn(d Dialect, m *Match, priority uint16) string {
	if d == OpenFlow10 || m.Mask.VLANs[0].TCI == 0 {
		return FormatMatch(m, priority)
	}
	c := *m
	c.Key.VLANs[0].TCI, c.Mask.VLANs[0].TCI = oxmTCI(m.Key.VLANs[0].TCI, m.Mask.VLANs[0].TCI)
	return FormatMatch(&c, priority)
}

// oxmTCI returns the TCI and mask a match on tci/mask has once carried as
// OXM vlan_vid and vlan_pcp.
func oxmTCI(tci, mask uint16) (uint16, uint16) {
	const vidCFI = VLANVIDMask | VLANPresent
	vid, vidMask := tci&mask&vidCFI, mask&vidCFI
	if vid != 0 && mask&VLANPCPMask != 0 {
		return vid | tci&mask&VLANPCPMask, vidMask | VLANPCPMask
	}
	return vid, vidMask
}

// FormatActionsIn returns the action list of a flow with match m as
// ovs-ofctl prints it in dialect d (FormatActions is OpenFlow10).
func FormatActionsIn(d Dialect, m *Match, acts []Action) string {
	if d == OpenFlow10 {
		return FormatActions(WithoutActionSet(acts))
	}
	var b strings.Builder
	formatActions13(&b, m, acts)
	return b.String()
}

func formatActions13(b *strings.Builder, m *Match, acts []Action) {
	writeActionList(b, acts, func(acts []Action, i int) int {
		// The two halves of a 128-bit set_field print as one.
		if setField128(acts, i) {
			b.WriteString("set_field:" + setField128Text(acts[i].Dst.Field, u128{hi: acts[i+1].Value, lo: acts[i].Value}) + "->" + fieldName(acts[i].Dst.Field))
			return 1
		}
		formatAction13(b, m, &acts[i])
		return 0
	})
}

// formatAction13 prints one action as an OpenFlow 1.3 dump does.
func formatAction13(b *strings.Builder, m *Match, a *Action) {
	switch {
	case a.Type == ActResubmit && a.Spelling == SpellGotoTable:
		b.WriteString("goto_table:" + strconv.Itoa(int(a.Table)))
	case a.Type == ActCT:
		formatCT(b, a.CT, func(b *strings.Builder, acts []Action) { formatActions13(b, m, acts) })
	case a.Type == ActLoad && (a.Spelling == SpellSetTunnel || a.Spelling == SpellSetTunnel64):
		b.WriteString("set_field:" + loadValue(a.Value) + "->tun_id") // OpenFlow 1.3 sets tun_id with OXM
	case a.Type == ActLoad && a.Spelling == SpellSetField && a.Dst.Field == FieldTunFlags:
		b.WriteString("set_field:" + tunFlagsText(tunFlagNames, a.Value) + "->tun_flags")
	case a.Type == ActLoad && a.Spelling == SpellSetField && a.Dst.Ofs == 0 && a.Dst.Bits() == a.Dst.field().width():
		v := loadValue(a.Value)
		switch a.Dst.Field {
		case FieldInPort:
			v = portText(uint32(a.Value))
		case FieldTunSrc, FieldTunDst:
			v = ipv4Text(uint32(a.Value))
		}
		b.WriteString("set_field:" + v + "->" + fieldName(a.Dst.Field))
	case a.Type == ActSetField && a.Spelling != SpellLoad && !(a.Field == FieldNwTTL && a.Spelling == SpellMod):
		formatSetField13(b, m, a)
	case a.Type == ActSetVLANVID:
		if a.Spelling == SpellImpliedPush {
			b.WriteString("push_vlan:0x8100,")
		}
		b.WriteString("set_field:" + strconv.FormatUint(a.Value|VLANPresent, 10) + "->vlan_vid")
	case a.Type == ActSetVLANPCP:
		if a.Spelling == SpellImpliedPush {
			b.WriteString("push_vlan:0x8100,")
		}
		b.WriteString("set_field:" + strconv.FormatUint(a.Value, 10) + "->vlan_pcp")
	case a.Type == ActPopVLAN:
		b.WriteString("pop_vlan")
	case a.Type == ActSetField && a.Field == FieldNwTTL:
		b.WriteString("mod_nw_ttl:" + strconv.FormatUint(a.Value, 10))
	default:
		formatAction(b, a)
	}
}

// formatSetField13 prints a set-field action as set_field:VALUE->FIELD,
// naming the field as Open vSwitch does: as written for set_field, and for
// the mod_* actions by the field they become (mod_nw_tos sets ip_dscp,
// mod_tp_dst the destination port of the match's protocol).
func formatSetField13(b *strings.Builder, m *Match, a *Action) {
	id, v := a.Named, a.Value
	if id == FieldNone {
		id = a.Field
		switch a.Field {
		case FieldNwTos:
			id, v = FieldIPDSCP, v>>2
		case FieldTpSrc, FieldTpDst:
			id = l4Field(m, a.Field == FieldTpSrc)
		}
	} else if id == FieldIPDSCP {
		v >>= 2
	}
	f := fieldByID[id]
	if f == nil {
		formatAction(b, a)
		return
	}
	b.WriteString("set_field:")
	switch f.kind {
	case kindMAC:
		b.WriteString(macText(v))
	case kindIPv4:
		b.WriteString(ipv4Text(uint32(v)))
	case kindIPv6:
		b.WriteString(ipv6Text(&a.IPv6))
	default:
		if hexField(id) {
			b.WriteString(loadValue(v))
		} else {
			b.WriteString(strconv.FormatUint(v, 10))
		}
	}
	b.WriteString("->" + f.name)
}

// l4Field names the port field of the match's protocol, as Open vSwitch
// turns mod_tp_src and mod_tp_dst into a set_field.
func l4Field(m *Match, src bool) FieldID {
	proto := uint8(0)
	if m != nil && m.Mask.NwProto != 0 {
		proto = m.Key.NwProto
	}
	switch {
	case proto == IPProtoUDP && src:
		return FieldUDPSrc
	case proto == IPProtoUDP:
		return FieldUDPDst
	case proto == IPProtoSCTP && src:
		return FieldSCTPSrc
	case proto == IPProtoSCTP:
		return FieldSCTPDst
	case src:
		return FieldTCPSrc
	}
	return FieldTCPDst
}

// hexField reports whether Open vSwitch prints the field's values in
// hexadecimal.
func hexField(id FieldID) bool {
	switch id {
	case FieldIPv6Label, FieldPktMark, FieldMetadata:
		return true
	}
	return id >= FieldReg0
}

// impliedPush is the spelling of a mod_vlan_vid or mod_vlan_pcp at this
// point of the list: with no tag known (the match has none and no action
// pushed one), OpenFlow 1.1+ carries it as a push_vlan and a set_field.
func (ap *actionParser) impliedPush() Spelling {
	if ap.vlan {
		return SpellDefault
	}
	return SpellImpliedPush
}

// FormatFlowAsWritten is FormatFlow with each action in the spelling the
// flow was written in where it has several (goto_table, set_field,
// mod_nw_ttl, mod_nw_ecn), so that ParseFlow reads back exactly the same
// flow, spellings included. The daemon saves its flows so.
func FormatFlowAsWritten(f *Flow) string {
	var b strings.Builder
	// Room for most flows' text at once (OVN's are 100 to 200 bytes),
	// rather than its growth from 8 bytes: a state save formats every
	// flow.
	b.Grow(flowTextRoom)
	formatFlowHead(&b, f)
	formatActionsAsWritten(&b, f.Actions)
	return b.String()
}

const flowTextRoom = 192

func formatActionsAsWritten(b *strings.Builder, acts []Action) {
	if len(acts) == 0 {
		b.WriteString("drop")
		return
	}
	for i := 0; i < len(acts); i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		a := &acts[i]
		switch {
		case nestedName(a.Type) != "":
			body := nestedBody(acts, i)
			b.WriteString(nestedName(a.Type) + "(")
			if len(body) > 0 {
				formatActionsAsWritten(b, body)
			}
			b.WriteByte(')')
			i += len(body)
		case a.Type == ActCT:
			formatCT(b, a.CT, formatActionsAsWritten)
		case a.Type == ActResubmit && a.Spelling == SpellGotoTable,
			a.Type == ActSetVLANVID && a.Spelling == SpellSetField,
			a.Type == ActSetVLANPCP && a.Spelling == SpellSetField,
			a.Type == ActSetField && a.Spelling == SpellSetField:
			formatAction13(b, nil, a)
		case setField128(acts, i):
			b.WriteString("set_field:" + setField128Text(a.Dst.Field, u128{hi: acts[i+1].Value, lo: a.Value}) + "->" + fieldName(a.Dst.Field))
			i++
		case a.Type == ActLoad && a.Spelling == SpellSetField:
			formatAction13(b, nil, a)
		case a.Type == ActSetField && a.Spelling == SpellMod && a.Field == FieldNwTTL:
			b.WriteString("mod_nw_ttl:" + strconv.FormatUint(a.Value, 10))
		case a.Type == ActSetField && a.Spelling == SpellDefault && a.Field == FieldNwECN:
			b.WriteString("mod_nw_ecn:" + strconv.FormatUint(a.Value, 10))
		default:
			formatAction(b, a)
		}
	}
}

// setField128 reports whether acts[i] and acts[i+1] are the two loads of a
// set_field on a whole 128-bit field.
func setField128(acts []Action, i int) bool {
	if i+1 >= len(acts) {
		return false
	}
	a, n := &acts[i], &acts[i+1]
	return a.Type == ActLoad && a.Spelling == SpellSetField && n.Type == ActLoad && n.Spelling == SpellSetField &&
		n.Dst.Field == a.Dst.Field && a.Dst.Ofs == 0 && a.Dst.NBits == 64 && n.Dst.Ofs == 64 && n.Dst.NBits == 64
}

// sameAction reports whether a and b are the same action however each was
// written.
func sameAction(a, b Action) bool {
	a.Spelling, a.Named = SpellDefault, FieldNone
	b.Spelling, b.Named = SpellDefault, FieldNone
	if a.Type == ActCT && b.Type == ActCT {
		same := a.CT.equal(b.CT)
		a.CT, b.CT = nil, nil
		return same && a == b
	}
	return a == b
}
