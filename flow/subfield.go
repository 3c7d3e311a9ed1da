package flow

import (
	"math/bits"
	"strconv"
	"strings"
)

// This file reads and writes fields, and bit ranges of them, as numbers of
// up to 128 bits: what move, load, push, pop, output:SRC[] and the
// translation's masks work on.

// u128 is a 128-bit number.
type u128 struct{ hi, lo uint64 }

func (a u128) and(b u128) u128    { return u128{a.hi & b.hi, a.lo & b.lo} }
func (a u128) or(b u128) u128     { return u128{a.hi | b.hi, a.lo | b.lo} }
func (a u128) andNot(b u128) u128 { return u128{a.hi &^ b.hi, a.lo &^ b.lo} }
func (a u128) isZero() bool       { return a.hi == 0 && a.lo == 0 }

func (a u128) shl(n uint) u128 {
	switch {
	case n == 0:
		return a
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{a.lo << (n - 64), 0}
	}
	return u128{a.hi<<n | a.lo>>(64-n), a.lo << n}
}

func (a u128) shr(n uint) u128 {
	switch {
	case n == 0:
		return a
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{0, a.hi >> (n - 64)}
	}
	return u128{a.hi >> n, a.lo>>n | a.hi<<(64-n)}
}

// ones returns a number whose low n bits are set.
func ones(n uint) u128 {
	switch {
	case n >= 128:
		return u128{^uint64(0), ^uint64(0)}
	case n >= 64:
		return u128{1<<(n-64) - 1, ^uint64(0)}
	}
	return u128{0, 1<<n - 1}
}

// width returns the field's width in bits, as NXM gives it.
func (f *field) width() uint {
	switch f.kind {
	case kindPort:
		return 16 // NXM_OF_IN_PORT
	case kindMAC:
		return 48
	case kindIPv4:
		return 32
	case kindIPv6, kindNum128:
		return 128
	case kindFrag:
		return 8
	case kindTCPFlags:
		return 12
	}
	return uint(bits.Len64(f.max))
}

// get128 returns a 128-bit storage of k.
func get128(k *Key, st storage) u128 {
	if a := ip6Of(k, st); a != nil {
		var v u128
		for i := 0; i < 8; i++ {
			v.hi = v.hi<<8 | uint64(a[i])
			v.lo = v.lo<<8 | uint64(a[8+i])
		}
		return v
	}
	if st >= stXXReg0 && st < stEnd {
		r := k.Regs[4*(st-stXXReg0):]
		return u128{uint64(r[0])<<32 | uint64(r[1]), uint64(r[2])<<32 | uint64(r[3])}
	}
	if st >= stTunMeta0 && st < stTunMetaEnd {
		return tunMetaGet(k, int(st-stTunMeta0))
	}
	return u128{}
}

// set128 stores v into a 128-bit storage of k.
func set128(k *Key, st storage, v u128) {
	if a := ip6Of(k, st); a != nil {
		for i := 0; i < 8; i++ {
			a[i] = byte(v.hi >> (56 - 8*i))
			a[8+i] = byte(v.lo >> (56 - 8*i))
		}
		return
	}
	if st >= stXXReg0 && st < stEnd {
		r := k.Regs[4*(st-stXXReg0):]
		r[0], r[1], r[2], r[3] = uint32(v.hi>>32), uint32(v.hi), uint32(v.lo>>32), uint32(v.lo)
		return
	}
	if st >= stTunMeta0 && st < stTunMetaEnd {
		tunMetaPut(k, int(st-stTunMeta0), v)
	}
}

func is128(f *field) bool { return f.kind == kindIPv6 || f.kind == kindNum128 }

// getField returns f's value in k, in the field's own units.
func getField(k *Key, f *field) u128 {
	if is128(f) {
		return get128(k, f.st)
	}
	return u128{lo: getNum(k, f.st) >> f.shift}.and(ones(f.width()))
}

// setFieldBits replaces the bits of f in k that m selects with those of v
// (both in the field's own units).
func setFieldBits(k *Key, f *field, v, m u128) {
	m = m.and(ones(f.width()))
	if is128(f) {
		set128(k, f.st, get128(k, f.st).andNot(m).or(v.and(m)))
		return
	}
	s := getNum(k, f.st)
	s = s&^(m.lo<<f.shift) | (v.lo&m.lo)<<f.shift
	setNum(k, f.st, s)
}

// Subfield is a bit range of a field, as NXM writes it: NAME[], NAME[N] or
// NAME[A..B].
type Subfield struct {
	Field FieldID
	Ofs   uint8 // first bit
	NBits uint8 // number of bits; 0 stands for 128 (see Bits)
}

// subfieldField returns the field description of sf.
func (sf Subfield) field() *field { return fieldByID[sf.Field] }

// Bits returns the subfield's width in bits.
func (sf Subfield) Bits() uint {
	if sf.NBits == 0 {
		return 128 // a whole 128-bit field
	}
	return uint(sf.NBits)
}

// mask returns the subfield's bits within its field.
func (sf Subfield) mask() u128 { return ones(sf.Bits()).shl(uint(sf.Ofs)) }

// read returns the subfield's bits of k, shifted down to bit 0.
func (sf Subfield) read(k *Key) u128 {
	return getField(k, sf.field()).shr(uint(sf.Ofs)).and(ones(sf.Bits()))
}

// write stores the low bits of v into the subfield of k.
func (sf Subfield) write(k *Key, v u128) {
	setFieldBits(k, sf.field(), v.shl(uint(sf.Ofs)), sf.mask())
}

// consult ORs the subfield's bits into the mask wc.
func (sf Subfield) consult(wc *Key) {
	f := sf.field()
	setFieldBits(wc, f, getField(wc, f).or(sf.mask()), ones(f.width()))
}

// String writes the subfield as ovs-ofctl prints it.
func (sf Subfield) String() string {
	f := sf.field()
	if f == nil {
		return ""
	}
	name := printNames[sf.Field]
	if name == "" {
		name = f.nxm
	}
	if name == "" {
		name = f.name
	}
	switch {
	case uint(sf.Ofs) == 0 && sf.Bits() == f.width():
		return name + "[]"
	case sf.Bits() == 1:
		return name + "[" + strconv.Itoa(int(sf.Ofs)) + "]"
	}
	return name + "[" + strconv.Itoa(int(sf.Ofs)) + ".." + strconv.Itoa(int(sf.Ofs)+int(sf.Bits())-1) + "]"
}

// nxmNames are the NXM/OXM spellings of fields that move and load accept
// besides the ones in the field table (its nxm and name columns).
var nxmNames = map[string]FieldID{
	"NXM_OF_IN_PORT":   FieldInPort,
	"NXM_OF_ETH_SRC":   FieldDlSrc,
	"NXM_OF_ETH_DST":   FieldDlDst,
	"NXM_OF_ETH_TYPE":  FieldDlType,
	"NXM_OF_VLAN_TCI":  FieldVLANTCI,
	"NXM_OF_IP_SRC":    FieldNwSrc,
	"NXM_OF_IP_DST":    FieldNwDst,
	"NXM_OF_IP_PROTO":  FieldNwProto,
	"NXM_OF_IP_TOS":    FieldNwTos,
	"NXM_OF_TCP_SRC":   FieldTCPSrc,
	"NXM_OF_TCP_DST":   FieldTCPDst,
	"NXM_OF_UDP_SRC":   FieldUDPSrc,
	"NXM_OF_UDP_DST":   FieldUDPDst,
	"OXM_OF_IN_PORT":   FieldInPort,
	"OXM_OF_ETH_SRC":   FieldDlSrc,
	"OXM_OF_ETH_DST":   FieldDlDst,
	"OXM_OF_IPV4_SRC":  FieldNwSrc,
	"OXM_OF_IPV4_DST":  FieldNwDst,
	"OXM_OF_METADATA":  FieldMetadata,
	"NXM_NX_PKT_MARK":  FieldPktMark,
	"NXM_NX_IP_TTL":    FieldNwTTL,
	"NXM_NX_TCP_FLAGS": FieldTCPFlags,
}

// printNames are the names ovs-ofctl prints for the fields of nxmNames
// whose field-table entry has no NXM name.
var printNames = map[FieldID]string{
	FieldInPort: "NXM_OF_IN_PORT", FieldDlSrc: "NXM_OF_ETH_SRC", FieldDlDst: "NXM_OF_ETH_DST",
	FieldDlType: "NXM_OF_ETH_TYPE", FieldVLANTCI: "NXM_OF_VLAN_TCI", FieldNwSrc: "NXM_OF_IP_SRC",
	FieldNwDst: "NXM_OF_IP_DST", FieldNwProto: "NXM_OF_IP_PROTO", FieldNwTos: "NXM_OF_IP_TOS",
	FieldTCPSrc: "NXM_OF_TCP_SRC", FieldTCPDst: "NXM_OF_TCP_DST", FieldUDPSrc: "NXM_OF_UDP_SRC",
	FieldUDPDst: "NXM_OF_UDP_DST", FieldTCPFlags: "NXM_NX_TCP_FLAGS",
}

// lookupSubfieldField finds a field by an NXM/OXM name or an ovs-fields(7)
// name.
func lookupSubfieldField(name string) *field {
	if id, ok := nxmNames[name]; ok {
		return fieldByID[id]
	}
	if f := fieldByNXM[name]; f != nil {
		return f
	}
	return fieldByName[name]
}

// parseSubfield parses NAME[], NAME[N], NAME[A..B] or a bare NAME (the
// whole field). It returns a reason when s is not valid.
func parseSubfield(s string) (Subfield, string) {
	name, rng, hasRange := strings.Cut(s, "[")
	f := lookupSubfieldField(name)
	if f == nil {
		return Subfield{}, "unknown field `" + name + "'"
	}
	w := f.width()
	sf := Subfield{Field: f.id}
	if !hasRange || rng == "]" {
		if w < 128 {
			sf.NBits = uint8(w)
		}
		return sf, ""
	}
	if !strings.HasSuffix(rng, "]") {
		return Subfield{}, s + ": missing ] after the bit range"
	}
	rng = strings.TrimSuffix(rng, "]")
	a, b, dots := strings.Cut(rng, "..")
	start, err := strconv.ParseUint(a, 10, 8)
	if err != nil {
		return Subfield{}, s + ": bad bit range"
	}
	end := start
	if dots {
		if end, err = strconv.ParseUint(b, 10, 8); err != nil {
			return Subfield{}, s + ": bad bit range"
		}
	}
	switch {
	case end < start:
		return Subfield{}, s + ": starting bit " + a + " is after ending bit " + strconv.FormatUint(end, 10)
	case start >= uint64(w):
		return Subfield{}, s + ": starting bit " + a + " is not valid because field is only " + strconv.Itoa(int(w)) + " bits wide"
	case end >= uint64(w):
		return Subfield{}, s + ": ending bit " + strconv.FormatUint(end, 10) + " is not valid because field is only " + strconv.Itoa(int(w)) + " bits wide"
	}
	sf.Ofs = uint8(start)
	if n := end - start + 1; n < 128 {
		sf.NBits = uint8(n)
	}
	return sf, ""
}
