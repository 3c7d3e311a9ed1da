package flow

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// This file parses the actions of the OpenFlow pipeline: resubmit,
// goto_table, write_metadata, move, load and set_field on the pipeline's
// fields, push, pop, note, exit, clone and dec_ttl with controller ids.

// pipelineAction parses t if it is one of this file's actions and reports
// whether it was.
func (ap *actionParser) pipelineAction(t *token, name string) (bool, error) {
	s := ap.s
	noArg := func() error {
		if t.hasValue || t.paren {
			return errAt(s, t, "%s takes no argument", name)
		}
		return nil
	}
	switch name {
	case "resubmit":
		return true, ap.resubmit(t)
	case "goto_table":
		v, err := parseDecimal(t.value, 32)
		switch {
		case !t.hasValue || err != nil:
			return true, errAt(s, t, "goto_table needs a table number")
		case v > MaxTable:
			return true, errAt(s, t, "goto_table:%d: tables are 0 to %d", v, MaxTable)
		case ap.table != TableAll && v <= uint64(ap.table):
			return true, errAt(s, t, "goto_table:%d must go to a table after this flow's table %d", v, ap.table)
		}
		// ovs-ofctl's default dialect (OpenFlow 1.0) carries goto_table
		// as resubmit(,T), and so does ovsxdp; OpenFlow 1.1+ dumps print
		// it back as goto_table.
		ap.add(Action{Type: ActResubmit, Port: PortInPort, Table: uint8(v), Spelling: SpellGotoTable})
	case "write_metadata":
		val, maskText, hasMask := strings.Cut(t.value, "/")
		v, err := parseNum(val, 64)
		if !t.hasValue || err != nil {
			return true, errAt(s, t, "write_metadata needs VALUE[/MASK]")
		}
		m := uint64(1<<64 - 1)
		if hasMask {
			if m, err = parseNum(maskText, 64); err != nil {
				return true, errAt(s, t, "write_metadata mask: %v", err)
			}
		}
		ap.add(Action{Type: ActWriteMetadata, Value: v & m, Mask: m})
	case "move":
		src, dst, ok := strings.Cut(t.value, "->")
		if !ok {
			return true, errAt(s, t, "move needs SRC->DST")
		}
		ss, reason := ap.readableSubfield(src)
		if reason != "" {
			return true, errAt(s, t, "%s", reason)
		}
		ds, reason := ap.writableSubfield(dst)
		if reason != "" {
			return true, errAt(s, t, "%s", reason)
		}
		if ss.Bits() != ds.Bits() {
			return true, errAt(s, t, "%s: source field is %d bits wide but destination is %d bits wide", t.value, ss.Bits(), ds.Bits())
		}
		if err := ap.checkTunMetaMapped(t, ss.Field); err != nil {
			return true, err
		}
		if err := ap.checkTunMetaMapped(t, ds.Field); err != nil {
			return true, err
		}
		ap.add(Action{Type: ActMove, Src: ss, Dst: ds})
	case "check_pkt_larger":
		return true, ap.checkPktLarger(t)
	case "push", "stack_push":
		ss, reason := ap.readableSubfield(t.value)
		if reason != "" {
			return true, errAt(s, t, "%s", reason)
		}
		ap.add(Action{Type: ActPush, Src: ss})
	case "pop", "stack_pop":
		ds, reason := ap.writableSubfield(t.value)
		if reason != "" {
			return true, errAt(s, t, "%s", reason)
		}
		ap.add(Action{Type: ActPop, Dst: ds})
	case "note":
		text := strings.ReplaceAll(t.value, ".", "")
		b, err := hex.DecodeString(text)
		if err != nil || !t.hasValue && t.value != "" {
			return true, errAt(s, t, "bad hex digit in `note' argument")
		}
		// The action is padded to a multiple of 8 bytes after its 10-byte
		// header, as Open vSwitch encodes it.
		n := (10+len(b)+7)/8*8 - 10
		b = append(b, make([]byte, n-len(b))...)
		ap.add(Action{Type: ActNote, Note: string(b)})
	case "exit":
		if err := noArg(); err != nil {
			return true, err
		}
		ap.add(Action{Type: ActExit})
	case "clone":
		if !t.paren {
			return true, errAt(s, t, "clone needs (actions)")
		}
		sub := actionParser{p: ap.p, s: s, m: ap.m, vlan: ap.vlan, table: ap.table}
		body, err := sub.parse(t.valPos, t.valPos+len(t.value))
		if err != nil {
			return true, err
		}
		ap.add(Action{Type: ActClone, Value: uint64(len(body))})
		ap.acts = append(ap.acts, body...)
	case "dec_ttl":
		if !t.paren {
			return false, nil
		}
		var ids []string
		for _, id := range strings.Split(t.value, ",") {
			id = strings.TrimSpace(id)
			v, err := parseDecimal(id, 16)
			if err != nil {
				return true, errAt(s, t, "dec_ttl: invalid controller id %q", id)
			}
			ids = append(ids, strconv.FormatUint(v, 10))
		}
		ap.add(Action{Type: ActDecTTL, Note: strings.Join(ids, ",")})
	default:
		return false, nil
	}
	return true, nil
}

// resubmit parses resubmit:PORT and resubmit([PORT][,TABLE]).
func (ap *actionParser) resubmit(t *token) error {
	s := ap.s
	a := Action{Type: ActResubmit, Port: PortInPort, Table: TableCurrent}
	portText, tableText := t.value, ""
	if t.paren {
		var hasTable bool
		portText, tableText, hasTable = strings.Cut(t.value, ",")
		if hasTable && strings.Contains(tableText, ",") {
			return unsupportedAt(s, t, "resubmit with ct is not supported")
		}
	} else if !t.hasValue {
		return errAt(s, t, "resubmit needs a port or (port,table)")
	}
	portText, tableText = strings.TrimSpace(portText), strings.TrimSpace(tableText)
	if portText != "" {
		port, err := ap.p.parsePort(portText)
		if err != nil {
			return errAt(s, t, "%v", err)
		}
		a.Port = port
	}
	if tableText != "" {
		v, err := parseDecimal(tableText, 32)
		if err != nil {
			return errAt(s, t, "%s: resubmit to unknown table", tableText)
		}
		if v > TableAll {
			return errAt(s, t, "%s: resubmit to unknown table (tables are 0 to %d)", tableText, MaxTable)
		}
		a.Table = uint8(v)
	}
	if a.Port == PortInPort && a.Table == TableCurrent {
		return errAt(s, t, `at least one "in_port" or "table" must be specified on resubmit`)
	}
	ap.add(a)
	return nil
}

// readable checks that a subfield may be read by this flow: its field's
// prerequisites hold in the match.
func (ap *actionParser) readable(sf Subfield) string {
	f := sf.field()
	if !prereqMet(ap.m, f.pre) {
		return "source field " + f.name + " lacks correct prerequisites (" + prereqText[f.pre] + ")"
	}
	return ""
}

// writable checks that a subfield may be written by this flow.
func (ap *actionParser) writable(sf Subfield) string {
	f := sf.field()
	switch f.set {
	case setReg, setMod, setLoad, setTCI:
	case setCT:
		if ap.inCT == nil {
			return ctFieldOutside
		}
	default:
		return "destination field " + f.name + " is not writable"
	}
	if f.set != setReg && f.set != setCT && !prereqMet(ap.m, f.setPre) {
		return "destination field " + f.name + " lacks correct prerequisites (" + prereqText[f.setPre] + ")"
	}
	return ""
}

// loadReg parses load:VALUE->DST for the pipeline's fields and ct_mark
// and ct_label. A load into more than 64 bits becomes one load per 64 bits,
// lowest first, as ovs-ofctl prints it.
func (ap *actionParser) loadReg(t *token, val, dst string) error {
	sf, reason := parseSubfield(dst)
	if reason != "" {
		return errAt(ap.s, t, "%s", reason)
	}
	if sf.field().set == setCT && ap.inCT == nil {
		return errAt(ap.s, t, "%s", ctFieldOutside)
	}
	if isTunMetaField(sf.Field) {
		if err := ap.checkTunMetaMapped(t, sf.Field); err != nil {
			return err
		}
		if sf.Ofs == 0 && sf.Bits() == sf.field().width() {
			return ap.setTunMetaField(t, sf.field(), val) // ovs-ofctl prints it as set_field
		}
	}
	if sf.Bits() > 64 {
		v, reason := parse128(val, sf.field().name)
		if reason == "" && !v.andNot(ones(sf.Bits())).isZero() {
			reason = fmt.Sprintf("%s: value %s does not fit into %d bits", t.value, val, sf.Bits())
		}
		if reason != "" {
			return errAt(ap.s, t, "%s", reason)
		}
		for ofs := uint(0); ofs < sf.Bits(); ofs += 64 {
			n := min(64, sf.Bits()-ofs)
			part := Subfield{Field: sf.Field, Ofs: sf.Ofs + uint8(ofs), NBits: uint8(n)}
			ap.add(Action{Type: ActLoad, Dst: part, Value: v.shr(ofs).lo & ones(n).lo})
		}
		return nil
	}
	v, err := parseNum(val, 64)
	if err != nil {
		return errAt(ap.s, t, "%v", err)
	}
	if sf.Bits() < 64 && v>>sf.Bits() != 0 {
		return errAt(ap.s, t, "%s: value %s does not fit into %d bits", t.value, val, sf.Bits())
	}
	ap.add(Action{Type: ActLoad, Dst: sf, Value: v})
	if sf.field().set == setTCI {
		ap.wroteTCI(ap.acts[len(ap.acts)-1:])
	}
	return nil
}

// wroteTCI notes whether the packet has a VLAN tag after loads into
// vlan_tci (a set_field or a load), as Open vSwitch checks an action list:
// the tag is there when the value written, the bits outside the loads
// taken as zero, has the present (CFI) bit. A later set_field on vlan_vid
// or vlan_pcp needs it, and a mod_vlan_vid after it pushes no tag.
func (ap *actionParser) wroteTCI(loads []Action) {
	if len(loads) == 0 {
		return // an empty mask writes nothing
	}
	var tci uint64
	for _, a := range loads {
		tci |= a.Value << a.Dst.Ofs
	}
	ap.vlan = tci&VLANPresent != 0
}

// addMaskedLoads adds the loads of v into the w-bit field id under mask
// m: one per run of set mask bits, at most 64 bits each, as ovs-ofctl
// prints a masked set_field in OpenFlow 1.0.
func (ap *actionParser) addMaskedLoads(id FieldID, w uint, v, m u128, spell Spelling) {
	for ofs := uint(0); ofs < w; {
		if m.shr(ofs).lo&1 == 0 {
			ofs++
			continue
		}
		n := uint(0)
		for ofs+n < w && n < 64 && m.shr(ofs+n).lo&1 == 1 {
			n++
		}
		sf := Subfield{Field: id, Ofs: uint8(ofs), NBits: uint8(n)}
		ap.add(Action{Type: ActLoad, Dst: sf, Value: v.shr(ofs).lo & ones(n).lo, Spelling: spell})
		ofs += n
	}
}

// setFieldReg parses set_field:VALUE[/MASK]->FIELD for the pipeline's
// fields. It adds the loads ovs-ofctl prints for it in OpenFlow 1.0: one
// per run of set mask bits, at most 64 bits each.
func (ap *actionParser) setFieldReg(t *token, f *field, val string) error {
	if f.kind == kindPort {
		return ap.setFieldPort(t, f, val)
	}
	valText, maskText, hasMask := strings.Cut(val, "/")
	w := f.width()
	var v, m u128
	var reason string
	if f.id == FieldTunFlags {
		return ap.setTunFlags(t, val)
	}
	if f.st >= stTunID && f.st <= stTunIPv6Dst {
		v, m, reason = parseTunValue(f, val) // addresses in their own syntax
	} else {
		v, reason = parse128(valText, f.name)
		m = ones(w)
		if reason == "" && hasMask {
			m, reason = parse128(maskText, f.name)
		}
	}
	if reason != "" {
		return errAt(ap.s, t, "%s", reason)
	}
	if !v.andNot(ones(w)).isZero() || !m.andNot(ones(w)).isZero() {
		return errAt(ap.s, t, "%s: value too large for %d-bit field %s", val, w, f.name)
	}
	v = v.and(m)
	// A set_field of the whole field prints back as one set_field in
	// OpenFlow 1.1+ dumps; a masked one as its loads.
	spell := SpellDefault
	if m == ones(w) {
		spell = SpellSetField
	}
	ap.addMaskedLoads(f.id, w, v, m, spell)
	return nil
}

// setFieldPort parses set_field:PORT->in_port: a port number or name
// (ANY and NONE are 0xffff), without a mask, as one load of the whole
// field.
func (ap *actionParser) setFieldPort(t *token, f *field, val string) error {
	port, err := ap.p.parsePort(val)
	if err != nil || strings.Contains(val, "/") {
		return errAt(ap.s, t, "%s: invalid or unknown port for %s", Clipped(val), f.name)
	}
	sf := Subfield{Field: f.id, NBits: uint8(f.width())}
	ap.add(Action{Type: ActLoad, Dst: sf, Value: uint64(port), Spelling: SpellSetField})
	return nil
}

// noteText formats a note's bytes as ovs-ofctl does: hex pairs joined by
// dots.
func noteText(b string) string {
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		if i > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(hex.EncodeToString([]byte{b[i]}))
	}
	return sb.String()
}

// checkPktLarger parses check_pkt_larger(LEN)->DST: LEN a number of bytes
// (decimal, or hexadecimal after 0x), DST a writable one-bit subfield.
func (ap *actionParser) checkPktLarger(t *token) error {
	s := ap.s
	if !t.paren || !t.hasArrow {
		return errAt(s, t, "check_pkt_larger needs (LENGTH)->DST[BIT]")
	}
	n, err := parseNum(strings.TrimSpace(t.value), 16)
	if err != nil {
		return errAt(s, t, "check_pkt_larger: %q is not a length in bytes (0 to 65535)", t.value)
	}
	ds, reason := ap.writableSubfield(t.arrow)
	if reason != "" {
		return errAt(s, t, "%s", reason)
	}
	if ds.Bits() != 1 {
		return errAt(s, t, "check_pkt_larger writes one bit, and %s has %d", t.arrow, ds.Bits())
	}
	if err := ap.checkTunMetaMapped(t, ds.Field); err != nil {
		return err
	}
	ap.add(Action{Type: ActCheckPktLarger, Value: n, Dst: ds})
	return nil
}

// readableSubfield parses text as a subfield an action may read, or says
// why it is not one.
func (ap *actionParser) readableSubfield(text string) (Subfield, string) {
	sf, reason := parseSubfield(text)
	if reason == "" {
		reason = ap.readable(sf)
	}
	return sf, reason
}

// writableSubfield parses text as a subfield an action may write, or says
// why it is not one.
func (ap *actionParser) writableSubfield(text string) (Subfield, string) {
	sf, reason := parseSubfield(text)
	if reason == "" {
		reason = ap.writable(sf)
	}
	return sf, reason
}
