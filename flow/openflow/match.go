package openflow

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Experimenter ids.
const (
	NiciraExperimenter uint32 = 0x00002320
	onfExperimenter    uint32 = 0x4f4e4600
)

// OXM/NXM classes.
const (
	ClassNXM0         uint16 = 0x0000
	ClassNXM1         uint16 = 0x0001
	ClassOpenFlow     uint16 = 0x8000
	ClassPacketRegs   uint16 = 0x8001
	ClassExperimenter uint16 = 0xffff
)

type fieldInfo struct {
	name         string
	class        uint16
	experimenter uint32
	field        uint8
	size         int
	wire         string
}

type fieldKey struct {
	class        uint16
	experimenter uint32
	field        uint8
}

var fieldsByKey = func() map[fieldKey]*fieldInfo {
	m := make(map[fieldKey]*fieldInfo, len(fieldTable)+2)
	for i := range fieldTable {
		f := &fieldTable[i]
		m[fieldKey{f.class, f.experimenter, f.field}] = f
	}
	// Datapath metadata fields that ovs-fields(7) does not tabulate.
	for _, f := range []fieldInfo{
		{name: "dp_hash", class: ClassNXM1, field: 35, size: 4, wire: "NXM_NX_DP_HASH"},
		{name: "recirc_id", class: ClassNXM1, field: 36, size: 4, wire: "NXM_NX_RECIRC_ID"},
	} {
		f := f
		m[fieldKey{f.class, f.experimenter, f.field}] = &f
	}
	for i := range tunMetadataFields {
		f := &tunMetadataFields[i]
		m[fieldKey{f.class, f.experimenter, f.field}] = f
	}
	return m
}()

// nxmCookieField is NXM_NX_COOKIE's field number (class NXM1, 8 bytes),
// which NXM flow mods and NXST_FLOW requests use to select by cookie.
const nxmCookieField = 30

// Field is one OXM or NXM TLV: a match on a field, or the target of a
// set_field / reg_load2 action. Name is Open vSwitch's name for the field
// ("in_port", "eth_dst", "reg0", "xxreg1", ...), empty for a field this
// package does not know (the daemon replies OFPBMC_BAD_FIELD). Class, Field
// and Experimenter are the wire identity, kept so re-encoding gives the same
// bytes; "in_port" is 2 bytes wide as NXM_OF_IN_PORT and 4 as OXM_OF_IN_PORT.
// Mask is nil for an exact match.
type Field struct {
	Name         string
	Class        uint16
	Field        uint8
	Experimenter uint32
	Value        []byte
	Mask         []byte
}

// FieldHeader identifies a field without a value, as NXAST_REG_MOVE and
// similar actions name their source and destination.
type FieldHeader struct {
	Name         string
	Class        uint16
	Field        uint8
	Experimenter uint32
	// Len is the header's payload length byte, kept for exact re-encoding.
	Len     uint8
	HasMask bool
}

// FieldByName returns the wire identity of a named field: with nxm, the
// NXM one when there is one (as Open vSwitch uses in OpenFlow 1.0);
// otherwise the OpenFlow basic (or packet-register) class first, then an
// experimenter or NXM one.
func FieldByName(name string, nxm bool) (FieldHeader, bool) {
	rank := func(f *fieldInfo) int {
		isNXM := f.class == ClassNXM0 || f.class == ClassNXM1
		switch {
		case isNXM && nxm:
			return 0
		case f.class == ClassOpenFlow || f.class == ClassPacketRegs:
			return 1
		case isNXM:
			return 3
		}
		return 2
	}
	var best *fieldInfo
	for i := range fieldTable {
		f := &fieldTable[i]
		if f.name == name && (best == nil || rank(f) < rank(best)) {
			best = f
		}
	}
	if f := tunMetadataField(name); f != nil {
		best = f
	}
	if best == nil {
		return FieldHeader{}, false
	}
	n := best.size
	if best.class == ClassExperimenter {
		n += 4
	}
	return FieldHeader{Name: name, Class: best.class, Field: best.field, Experimenter: best.experimenter, Len: uint8(n)}, true
}

// decodeFieldHeader reads a 4-byte header, or 8 bytes for the experimenter
// class. It returns the header and the payload length after the header.
func decodeFieldHeader(r *rd) (FieldHeader, int) {
	h := r.u32("field header")
	fh := FieldHeader{Class: uint16(h >> 16), Field: uint8(h>>9) & 0x7f, HasMask: h&0x100 != 0, Len: uint8(h)}
	n := int(fh.Len)
	if fh.Class == ClassExperimenter {
		fh.Experimenter = r.u32("experimenter field header")
		n -= 4
	}
	if f := fieldsByKey[fieldKey{fh.Class, fh.Experimenter, fh.Field}]; f != nil {
		fh.Name = f.name
	}
	return fh, n
}

func (fh FieldHeader) append(w *wr) {
	h := uint32(fh.Class)<<16 | uint32(fh.Field&0x7f)<<9 | uint32(fh.Len)
	if fh.HasMask {
		h |= 0x100
	}
	w.u32(h)
	if fh.Class == ClassExperimenter {
		w.u32(fh.Experimenter)
	}
}

// decodeField reads one TLV, its value and mask copied.
func decodeField(r *rd) (Field, error) {
	f, err := decodeFieldIn(r, false)
	var e *Error
	if errors.As(err, &e) && e.Type == ErrTypeBadMatch && e.Code == CodeBadMatchField {
		// A set_field or NXAST_REG_LOAD2 whose field has the wrong
		// length, as Open vSwitch refuses it.
		return Field{}, badAction(CodeBadActionSetLen, "%s", e.Detail)
	}
	return f, err
}

// decodeFieldIn reads one TLV. Its value and mask are parts of r's bytes
// when owned (the caller made them a copy of its own), else copies.
func decodeFieldIn(r *rd, owned bool) (Field, error) {
	take := r.copyN
	if owned {
		take = func(n int, what string) []byte {
			if v := r.bytes(n, what); len(v) > 0 {
				return v
			}
			return nil
		}
	}
	fh, n := decodeFieldHeader(r)
	if r.err != nil {
		return Field{}, r.err
	}
	if n < 0 || (fh.HasMask && n%2 != 0) {
		return Field{}, badMatch(CodeBadMatchLen, "field %s length %d", fieldLabel(fh), fh.Len)
	}
	f := Field{Name: fh.Name, Class: fh.Class, Field: fh.Field, Experimenter: fh.Experimenter}
	if fh.HasMask {
		f.Value = take(n/2, "field value")
		f.Mask = take(n/2, "field mask")
		if f.Mask == nil {
			f.Mask = []byte{}
		}
	} else {
		f.Value = take(n, "field value")
	}
	if r.err != nil {
		return Field{}, relabel(r.err, ErrBadMatch, ErrTypeBadMatch, CodeBadMatchLen)
	}
	if fh.Class == ClassNXM1 && fh.Field == nxmCookieField && len(f.Value) == 8 {
		// NXM_NX_COOKIE shares its number with NXM_NX_MPLS_TTL and is
		// told apart by its length, as Open vSwitch does.
		f.Name = "cookie"
		return f, nil
	}
	info := fieldsByKey[fieldKey{fh.Class, fh.Experimenter, fh.Field}]
	if info != nil && info.size == 0 && (len(f.Value) == 0 || len(f.Value) > tlvMaxOptLen) {
		// A variable-length field (tun_metadata0-63): 1 to 124 bytes.
		return Field{}, badMatch(CodeBadMatchLen, "field %s has %d bytes, want 1 to %d", info.name, len(f.Value), tlvMaxOptLen)
	}
	if info != nil && info.size != 0 && len(f.Value) != info.size {
		// Open vSwitch knows a field by its header, length included:
		// with another length it is a field it does not know.
		return Field{}, badMatch(CodeBadMatchField, "field %s has %d bytes, want %d", info.name, len(f.Value), info.size)
	}
	return f, nil
}

func fieldLabel(fh FieldHeader) string {
	if fh.Name != "" {
		return fh.Name
	}
	return fmt.Sprintf("0x%04x:%d", fh.Class, fh.Field)
}

func (f *Field) header() (FieldHeader, error) {
	n := len(f.Value)
	if f.Mask != nil {
		if len(f.Mask) != n {
			return FieldHeader{}, fmt.Errorf("%w: field %s mask length %d, value %d", ErrUnencodable, f.Name, len(f.Mask), n)
		}
		n *= 2
	}
	if f.Class == ClassExperimenter {
		n += 4
	}
	if n > 0xff {
		return FieldHeader{}, fmt.Errorf("%w: field %s of %d bytes", ErrUnencodable, f.Name, n)
	}
	return FieldHeader{Class: f.Class, Field: f.Field, Experimenter: f.Experimenter, Len: uint8(n), HasMask: f.Mask != nil}, nil
}

func (f *Field) append(w *wr) error {
	fh, err := f.header()
	if err != nil {
		return err
	}
	fh.append(w)
	w.bytes(f.Value)
	w.bytes(f.Mask)
	return nil
}

// decodeFields reads TLVs until r is empty.
func decodeFields(r *rd) ([]Field, error) {
	return decodeFieldsTo(r, nil)
}

// decodeFieldsTo is decodeFields; with reuse, the list is *reuse's
// (kept there for the next call) and the values alias r's bytes
// (FlowModDecoder).
func decodeFieldsTo(r *rd, reuse *[]Field) ([]Field, error) {
	if r.err != nil || r.len() == 0 {
		return nil, r.err
	}
	// Every flow mod's match is decoded: its values are parts of one
	// copy of the list, and the fields are counted first, so that a
	// match is two allocations, not two per field and the list's
	// growth.
	var own *rd
	var fs []Field
	if reuse != nil {
		own = &rd{b: r.b}
		r.b = nil
		fs = (*reuse)[:0]
	} else {
		own = &rd{b: r.rest()}
		fs = make([]Field, 0, countFields(own.b))
	}
	for own.err == nil && own.len() > 0 {
		f, err := decodeFieldIn(own, true)
		if err != nil {
			return nil, err
		}
		fs = append(fs, f)
	}
	if reuse != nil {
		*reuse = fs
	}
	return fs, own.err
}

// countFields counts the TLVs of b by their headers alone (a malformed
// list is counted roughly: decodeFields refuses it).
func countFields(b []byte) int {
	n := 0
	for len(b) >= 4 {
		n++
		b = b[min(len(b), 4+int(b[3])):]
	}
	return n
}

// countTLVs counts the actions or instructions of b (a type and a
// 16-bit length, which includes them, of at least 8 bytes) by their
// headers alone; a malformed list is counted roughly, and refused by its
// decoder.
func countTLVs(b []byte) int {
	n := 0
	for len(b) >= 4 {
		n++
		b = b[min(len(b), max(8, int(b[2])<<8|int(b[3]))):]
	}
	return n
}

func appendFields(w *wr, fs []Field) error {
	for i := range fs {
		if err := fs[i].append(w); err != nil {
			return err
		}
	}
	return nil
}

// decodeOXMMatch reads struct ofp_match of OpenFlow 1.2+ (type OFPMT_OXM,
// length, TLVs, padding to 8 bytes).
func decodeOXMMatch(r *rd) ([]Field, error) {
	return decodeOXMMatchTo(r, nil)
}

// decodeOXMMatchTo is decodeOXMMatch, reusing *reuse as decodeFieldsTo
// does.
func decodeOXMMatchTo(r *rd, reuse *[]Field) ([]Field, error) {
	t := r.u16("match")
	l := int(r.u16("match"))
	if r.err != nil {
		return nil, r.err
	}
	if t != 1 {
		return nil, badMatch(CodeBadMatchType, "match type %d", t)
	}
	if l < 4 {
		return nil, badMatch(CodeBadMatchLen, "match length %d", l)
	}
	fs, err := decodeFieldsTo(r.sub(l-4, "match"), reuse)
	if err != nil {
		return nil, relabel(err, ErrBadMatch, ErrTypeBadMatch, CodeBadMatchLen)
	}
	r.skip(pad8(l)-l, "match padding")
	return fs, relabel(r.err, ErrBadMatch, ErrTypeBadMatch, CodeBadMatchLen)
}

func appendOXMMatch(w *wr, fs []Field) error {
	start := w.pos()
	w.u16(1)
	w.u16(0)
	if err := appendFields(w, fs); err != nil {
		return err
	}
	l := w.pos() - start
	if l > 0xffff {
		return fmt.Errorf("%w: match of %d bytes", ErrTooLong, l)
	}
	w.put16(start+2, uint16(l))
	w.pad8(start)
	return nil
}

// decodeNXMatch reads an nx_match of n bytes followed by padding to 8 bytes.
func decodeNXMatch(r *rd, n int) ([]Field, error) {
	fs, err := decodeFields(r.sub(n, "nx_match"))
	if err != nil {
		return nil, relabel(err, ErrBadMatch, ErrTypeBadMatch, CodeBadMatchLen)
	}
	r.skip(pad8(n)-n, "nx_match padding")
	return fs, r.err
}

// appendNXMatch writes the TLVs and padding and returns the unpadded length.
func appendNXMatch(w *wr, fs []Field) (int, error) {
	start := w.pos()
	if err := appendFields(w, fs); err != nil {
		return 0, err
	}
	n := w.pos() - start
	if n > 0xffff {
		return 0, fmt.Errorf("%w: nx_match of %d bytes", ErrTooLong, n)
	}
	w.pad8(start)
	return n, nil
}

// Match10 is OpenFlow 1.0's fixed struct ofp_match, kept field by field so
// re-encoding is exact. Fields converts it to the neutral list.
type Match10 struct {
	Wildcards uint32
	InPort    uint16
	DlSrc     [6]byte
	DlDst     [6]byte
	DlVlan    uint16
	DlVlanPCP uint8
	DlType    uint16
	NwTOS     uint8
	NwProto   uint8
	NwSrc     uint32
	NwDst     uint32
	TpSrc     uint16
	TpDst     uint16
}

// OpenFlow 1.0 wildcard bits.
const (
	Wc10InPort     uint32 = 1 << 0
	Wc10DlVlan     uint32 = 1 << 1
	Wc10DlSrc      uint32 = 1 << 2
	Wc10DlDst      uint32 = 1 << 3
	Wc10DlType     uint32 = 1 << 4
	Wc10NwProto    uint32 = 1 << 5
	Wc10TpSrc      uint32 = 1 << 6
	Wc10TpDst      uint32 = 1 << 7
	Wc10NwSrcShift        = 8
	Wc10NwDstShift        = 14
	Wc10DlVlanPCP  uint32 = 1 << 20
	Wc10NwTOS      uint32 = 1 << 21
	Wc10All        uint32 = 1<<22 - 1
)

const match10Len = 40

func decodeMatch10(r *rd) Match10 {
	var m Match10
	m.Wildcards = r.u32("match")
	m.InPort = r.u16("match")
	copy(m.DlSrc[:], r.bytes(6, "match"))
	copy(m.DlDst[:], r.bytes(6, "match"))
	m.DlVlan = r.u16("match")
	m.DlVlanPCP = r.u8("match")
	r.skip(1, "match")
	m.DlType = r.u16("match")
	m.NwTOS = r.u8("match")
	m.NwProto = r.u8("match")
	r.skip(2, "match")
	m.NwSrc = r.u32("match")
	m.NwDst = r.u32("match")
	m.TpSrc = r.u16("match")
	m.TpDst = r.u16("match")
	return m
}

func (m *Match10) append(w *wr) {
	w.u32(m.Wildcards)
	w.u16(m.InPort)
	w.bytes(m.DlSrc[:])
	w.bytes(m.DlDst[:])
	w.u16(m.DlVlan)
	w.u8(m.DlVlanPCP)
	w.zeros(1)
	w.u16(m.DlType)
	w.u8(m.NwTOS)
	w.u8(m.NwProto)
	w.zeros(2)
	w.u32(m.NwSrc)
	w.u32(m.NwDst)
	w.u16(m.TpSrc)
	w.u16(m.TpDst)
}

func named(name string, value, mask []byte) Field {
	fh, _ := FieldByName(name, true)
	return Field{Name: name, Class: fh.Class, Field: fh.Field, Experimenter: fh.Experimenter, Value: value, Mask: mask}
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// Fields converts the match to the neutral list with NXM identities, with
// OpenFlow 1.0's semantics: dl_vlan 0xffff means "no VLAN" (vlan_tci=0),
// network fields apply only to IPv4 and ARP, transport fields only to TCP,
// UDP and ICMP (whose type and code ride in tp_src and tp_dst).
func (m *Match10) Fields() []Field {
	wc := m.Wildcards
	var fs []Field
	if wc&Wc10InPort == 0 {
		fs = append(fs, named("in_port", be16(m.InPort), nil))
	}
	if wc&Wc10DlSrc == 0 {
		fs = append(fs, named("eth_src", append([]byte(nil), m.DlSrc[:]...), nil))
	}
	if wc&Wc10DlDst == 0 {
		fs = append(fs, named("eth_dst", append([]byte(nil), m.DlDst[:]...), nil))
	}
	vlanExact, pcpExact := wc&Wc10DlVlan == 0, wc&Wc10DlVlanPCP == 0
	switch {
	case vlanExact && m.DlVlan == 0xffff:
		fs = append(fs, named("vlan_tci", be16(0), nil))
	case vlanExact && pcpExact:
		fs = append(fs, named("vlan_tci", be16(0x1000|m.DlVlan&0xfff|uint16(m.DlVlanPCP&7)<<13), nil))
	case vlanExact:
		fs = append(fs, named("vlan_tci", be16(0x1000|m.DlVlan&0xfff), be16(0x1fff)))
	case pcpExact:
		fs = append(fs, named("vlan_tci", be16(0x1000|uint16(m.DlVlanPCP&7)<<13), be16(0xf000)))
	}
	if wc&Wc10DlType != 0 {
		return fs
	}
	fs = append(fs, named("eth_type", be16(m.DlType), nil))
	ip, arp := m.DlType == 0x0800, m.DlType == 0x0806
	if !ip && !arp {
		return fs
	}
	src, dst := "ip_src", "ip_dst"
	if arp {
		src, dst = "arp_spa", "arp_tpa"
	}
	if ip && wc&Wc10NwTOS == 0 {
		fs = append(fs, named("nw_tos", []byte{m.NwTOS & 0xfc}, nil))
	}
	if wc&Wc10NwProto == 0 {
		if arp {
			fs = append(fs, named("arp_op", be16(uint16(m.NwProto)), nil))
		} else {
			fs = append(fs, named("nw_proto", []byte{m.NwProto}, nil))
		}
	}
	for _, a := range []struct {
		name  string
		shift uint
		v     uint32
	}{{src, Wc10NwSrcShift, m.NwSrc}, {dst, Wc10NwDstShift, m.NwDst}} {
		n := (wc >> a.shift) & 0x3f
		if n >= 32 {
			continue
		}
		if n == 0 {
			fs = append(fs, named(a.name, be32(a.v), nil))
		} else {
			mask := ^uint32(0) << n
			fs = append(fs, named(a.name, be32(a.v&mask), be32(mask)))
		}
	}
	if !ip || wc&Wc10NwProto != 0 {
		return fs
	}
	var tsrc, tdst string
	switch m.NwProto {
	case 6:
		tsrc, tdst = "tcp_src", "tcp_dst"
	case 17:
		tsrc, tdst = "udp_src", "udp_dst"
	case 1:
		if wc&Wc10TpSrc == 0 {
			fs = append(fs, named("icmp_type", []byte{uint8(m.TpSrc)}, nil))
		}
		if wc&Wc10TpDst == 0 {
			fs = append(fs, named("icmp_code", []byte{uint8(m.TpDst)}, nil))
		}
		return fs
	default:
		return fs
	}
	if wc&Wc10TpSrc == 0 {
		fs = append(fs, named(tsrc, be16(m.TpSrc), nil))
	}
	if wc&Wc10TpDst == 0 {
		fs = append(fs, named(tdst, be16(m.TpDst), nil))
	}
	return fs
}
