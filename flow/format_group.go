package flow

import (
	"strconv"
	"strings"
	"time"
)

// GroupDialect is the OpenFlow version whose dump-groups text FormatGroup
// writes: ovs-ofctl prints bucket ids and the selection method only when
// it speaks OpenFlow 1.5, which carries them, and set-field actions as
// set_field from OpenFlow 1.2 on.
type GroupDialect uint8

// The dialects.
const (
	GroupOF15 GroupDialect = iota // ovs-ofctl -O OpenFlow15
	GroupOF13                     // ovs-ofctl -O OpenFlow13 (also 1.1, 1.2, 1.4)
)

// FormatGroup writes g as ovs-ofctl dump-groups writes it (without the
// leading space): group_id, type, the selection method, then the buckets.
// Its output parses back to the same group (ParseGroup) in GroupOF15.
func FormatGroup(g *Group, d GroupDialect) string {
	var b strings.Builder
	b.WriteString("group_id=" + strconv.FormatUint(uint64(g.ID), 10))
	b.WriteString(",type=" + g.Type.String())
	if g.SelectionMethod != "" && d == GroupOF15 {
		b.WriteString(",selection_method=" + g.SelectionMethod)
		if g.SelectionParam != 0 {
			b.WriteString(",selection_method_param=" + strconv.FormatUint(g.SelectionParam, 10))
		}
		fs := g.sortedFields()
		switch {
		case len(fs) == 1:
			b.WriteString(",fields=")
			formatHashFields(&b, fs)
		case len(fs) > 1:
			b.WriteString(",fields(")
			formatHashFields(&b, fs)
			b.WriteByte(')')
		}
	}
	defWeight := uint16(0)
	if g.Type == GroupSelect {
		defWeight = 1
	}
	for i := range g.Buckets {
		bk := &g.Buckets[i]
		b.WriteString(",bucket=")
		if d == GroupOF15 {
			b.WriteString("bucket_id:" + strconv.FormatUint(uint64(bk.ID), 10) + ",")
		}
		if bk.Weight != defWeight {
			b.WriteString("weight:" + strconv.FormatUint(uint64(bk.Weight), 10) + ",")
		}
		if bk.WatchPort != PortNone {
			b.WriteString("watch_port:" + portText(bk.WatchPort) + ",")
		}
		if bk.WatchGroup != GroupAny {
			b.WriteString("watch_group:" + strconv.FormatUint(uint64(bk.WatchGroup), 10) + ",")
		}
		b.WriteString("actions=")
		formatActionsOXM(&b, bk.Actions)
	}
	return b.String()
}

// formatHashFields writes selection_method=hash's fields: their names,
// with =MASK when a mask is not all ones.
func formatHashFields(b *strings.Builder, fs []HashField) {
	for i, hf := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		h := hashableByID(hf.Field)
		f := fieldByID[hf.Field]
		b.WriteString(h.name)
		if hf.mask != ones(f.width()) {
			b.WriteString("=" + fieldValueText(f, hf.mask))
		}
	}
}

// fieldValueText writes a value of f as Open vSwitch writes the field.
func fieldValueText(f *field, v u128) string {
	switch f.kind {
	case kindMAC:
		return macText(v.lo)
	case kindIPv4:
		return ipv4Text(uint32(v.lo))
	case kindIPv6:
		var a [16]byte
		fieldBytes(a[:0], v, 16)
		return ipv6Text(&a)
	case kindNum128:
		return u128Text(v)
	}
	switch f.id {
	case FieldTCPSrc, FieldTCPDst, FieldUDPSrc, FieldUDPDst, FieldSCTPSrc, FieldSCTPDst,
		FieldTpSrc, FieldTpDst, FieldNwProto, FieldNwTTL, FieldIPDSCP, FieldNwECN, FieldArpOp,
		FieldICMPType, FieldICMPCode, FieldICMPv6Type, FieldICMPv6Code, FieldInPort:
		return strconv.FormatUint(v.lo, 10)
	}
	return "0x" + strconv.FormatUint(v.lo, 16)
}

// formatActionsOXM writes an action list as ovs-ofctl prints it when it
// speaks OpenFlow 1.2 or later: header rewrites and whole-field register
// loads are set_field actions.
func formatActionsOXM(b *strings.Builder, acts []Action) {
	writeActionList(b, acts, func(acts []Action, i int) int {
		if s, ok := setFieldOXM(&acts[i]); ok {
			b.WriteString(s)
		} else if acts[i].Type == ActCT {
			formatCT(b, acts[i].CT, formatActionsOXM)
		} else {
			formatAction(b, &acts[i])
		}
		return 0
	})
}

// setFieldOXM spells a set-field action, or a load of a whole register,
// as set_field:VALUE->FIELD.
func setFieldOXM(a *Action) (string, bool) {
	switch a.Type {
	case ActSetField:
		f := fieldByID[a.Field]
		if f == nil {
			return "", false
		}
		switch f.kind {
		case kindMAC:
			return "set_field:" + macText(a.Value) + "->" + f.name, true
		case kindIPv4:
			return "set_field:" + ipv4Text(uint32(a.Value)) + "->" + f.name, true
		case kindIPv6:
			return "set_field:" + ipv6Text(&a.IPv6) + "->" + f.name, true
		}
		switch a.Field {
		case FieldNwTos:
			return "set_field:" + strconv.FormatUint(a.Value>>2, 10) + "->ip_dscp", true
		case FieldNwTTL, FieldNwECN:
			return "set_field:" + strconv.FormatUint(a.Value, 10) + "->" + f.name, true
		}
	case ActLoad:
		f := fieldByID[a.Dst.Field]
		if f == nil || a.Dst.Ofs != 0 || a.Dst.Bits() != f.width() {
			return "", false
		}
		return "set_field:" + loadValue(a.Value) + "->" + f.name, true
	}
	return "", false
}

// FormatGroupStats writes a group's counters as ovs-ofctl
// dump-group-stats does (without the leading space): group_id, duration,
// ref_count (the flows that name the group), the packet and byte counts
// and each bucket's.
func FormatGroupStats(g *InstalledGroup, refs int, now time.Time) string {
	packets, bytes, buckets := g.Stats()
	var b strings.Builder
	b.WriteString("group_id=" + strconv.FormatUint(uint64(g.ID), 10) + ",")
	d := max(now.Sub(g.Installed), 0)
	b.WriteString("duration=" + strconv.FormatInt(int64(d/time.Second), 10))
	if ms := int64(d % time.Second / time.Millisecond); ms > 0 { // as Open vSwitch: milliseconds, none when 0
		b.WriteString("." + pad3(ms))
	}
	b.WriteString("s,")
	b.WriteString("ref_count=" + strconv.Itoa(refs) + ",")
	b.WriteString("packet_count=" + strconv.FormatUint(packets, 10) + ",")
	b.WriteString("byte_count=" + strconv.FormatUint(bytes, 10))
	for i, c := range buckets {
		b.WriteString(",bucket" + strconv.Itoa(i) + ":packet_count=" + strconv.FormatUint(c[0], 10) +
			",byte_count=" + strconv.FormatUint(c[1], 10))
	}
	return b.String()
}

func pad3(v int64) string {
	s := strconv.FormatInt(v, 10)
	return strings.Repeat("0", 3-len(s)) + s
}
