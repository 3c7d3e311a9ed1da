package flow

// This file builds a match, and the pipeline actions that name fields,
// from values already decoded (OpenFlow's OXM and NXM), with the parser's
// own checks and results, so that a flow mod need not be written as text
// and parsed back. Each builder answers false for anything it does not
// take or that the parser would refuse: the caller then parses the flow's
// text, which gives the error (or the result) the parser gives.

// WireMatch builds a Match from OXM/NXM fields, as ParseMatch builds it
// from the text name=value[/mask] of each. A WireMatch may be reused
// after Reset; its zero value is ready.
type WireMatch struct {
	mp matchParser
}

// Reset empties w for a new match, keeping its buffers.
func (w *WireMatch) Reset() {
	w.mp.m = Match{}
	w.mp.nxm = false
	w.mp.used = w.mp.used[:0]
}

// WireNumber reads big-endian bytes (a field's value or mask as OpenFlow
// carries it) as a number; false when it has more than 64 significant
// bits (the text's number would not parse).
func WireNumber(b []byte) (uint64, bool) {
	var v uint64
	for i, c := range b {
		if i < len(b)-8 {
			if c != 0 {
				return 0, false
			}
			continue
		}
		v = v<<8 | uint64(c)
	}
	return v, true
}

// Add matches the field called name (the parser's name for it) on the
// big-endian value, under mask unless mask is nil or all ones. It takes
// the numeric fields (128-bit ones included), Ethernet, IPv4 and IPv6
// addresses, ct_state, tcp_flags, and in_port unmasked; it answers false
// for the others (ip_frag, which AddFrag takes, tun_flags, tun_metadata),
// for a value of the wrong width, and for whatever the parser refuses.
func (w *WireMatch) Add(name string, value, mask []byte) bool {
	mp := &w.mp
	f := fieldByName[name]
	if f == nil || isTunMetaField(f.id) {
		return false
	}
	if mask != nil && allOnesBytes(mask) {
		mask = nil
	}
	hasMask := mask != nil
	if hasMask && !f.maskable && f.kind != kindIPv6 && f.kind != kindNum128 {
		return false
	}
	full := storageBits(f.st)
	var v, m uint64
	switch f.kind {
	case kindPort:
		if hasMask {
			return false
		}
		switch len(value) {
		case 2:
			v = uint64(value[0])<<8 | uint64(value[1])
		case 4:
			p := uint64(value[0])<<24 | uint64(value[1])<<16 | uint64(value[2])<<8 | uint64(value[3])
			switch {
			case p <= 0xffff:
				v = p
			case p >= 0xffffff00:
				v = p - 0xffff0000
			default:
				return false
			}
		default:
			return false
		}
		m = full
	case kindMAC:
		if len(value) != 6 || hasMask && len(mask) != 6 {
			return false
		}
		v, _ = WireNumber(value)
		m = full
		if hasMask {
			m, _ = WireNumber(mask)
		}
		if m != full && m != 0 {
			mp.nxm = true
		}
	case kindIPv4:
		if len(value) != 4 || hasMask && len(mask) != 4 {
			return false
		}
		v, _ = WireNumber(value)
		m = full
		if hasMask {
			m, _ = WireNumber(mask)
		}
		if !isCIDR32(uint32(m)) || f.of10 == of10No && m != 0 {
			mp.nxm = true
		}
	case kindIPv6:
		if len(value) != 16 || hasMask && len(mask) != 16 {
			return false
		}
		k, mk := ip6Of(&mp.m.Key, f.st), ip6Of(&mp.m.Mask, f.st)
		nonzero := false
		for i := range k {
			mi := byte(0xff)
			if hasMask {
				mi = mask[i]
			}
			k[i], mk[i] = value[i]&mi, mi
			nonzero = nonzero || mi != 0
		}
		if nonzero {
			mp.nxm = true
			mp.used = append(mp.used, usedField{f: f})
		}
		return true
	case kindNum128:
		v, ok := be128(value)
		m := ones(128)
		if hasMask {
			var mok bool
			m, mok = be128(mask)
			ok = ok && mok
		}
		if !ok {
			return false
		}
		set128(&mp.m.Key, f.st, v.and(m))
		set128(&mp.m.Mask, f.st, m)
		if !m.isZero() {
			mp.nxm = true
		}
		return true
	case kindCtState, kindTCPFlags:
		// The text is 0xV[/0xM], which both parse as numbers of at most
		// 8 (ct_state) or 12 (tcp_flags) bits.
		var ok bool
		if v, ok = WireNumber(value); !ok {
			return false
		}
		m = f.bits
		if hasMask {
			if m, ok = WireNumber(mask); !ok {
				return false
			}
		}
		if v&^f.bits != 0 || m&^f.bits != 0 {
			return false
		}
		v &= m
	case kindNum:
		var ok bool
		if v, ok = WireNumber(value); !ok {
			return false
		}
		m = f.bits >> f.shift
		if hasMask {
			if m, ok = WireNumber(mask); !ok || m > f.max {
				return false
			}
		}
		if checkMatchValue(f, v) != "" {
			return false
		}
		if f.of10 == of10No && m != 0 || hasMask && m != 0 && m != 0xffff {
			mp.nxm = true
		}
		mp.applyNum(f, v, m)
		mp.record(f, &token{}, m)
		return true
	default:
		return false
	}
	mp.applyRaw(f.st, v&m, m, full)
	mp.record(f, &token{}, m)
	if f.of10 == of10No && m != 0 {
		mp.nxm = true
	}
	return true
}

// AddFrag matches ip_frag as the word the text writes (no, yes, first,
// later, not_later); false for another word.
func (w *WireMatch) AddFrag(word string) bool {
	v, m, ok := parseFrag(word)
	if !ok {
		return false
	}
	f := fieldByName["ip_frag"]
	w.mp.nxm = true
	w.mp.applyRaw(f.st, v&m, m, storageBits(f.st))
	w.mp.record(f, &token{}, m)
	return true
}

// be128 reads big-endian bytes as a 128-bit number; false when it has
// more significant bits.
func be128(b []byte) (u128, bool) {
	var v u128
	for i, c := range b {
		if i < len(b)-16 {
			if c != 0 {
				return u128{}, false
			}
			continue
		}
		v = v.shl(8).or(u128{lo: uint64(c)})
	}
	return v, true
}

// InOrder reports whether the fields added so far meet the prerequisites
// of the field called name. Open vSwitch decodes an NXM or OXM match
// field by field and refuses a field whose prerequisites the fields
// before it do not meet (OFPBMC_BAD_PREREQ), where the text may name
// them in any order. OXM's vlan_pcp requires a VLAN header. Of a
// connection tracking tuple field it checks there only that ct_state
// says the packet has a connection: that the tuple is IPv4 or IPv6, and
// has a protocol, Finish checks on the whole match, as Open vSwitch does.
// A name the parser does not know has no prerequisite.
func (w *WireMatch) InOrder(name string) bool {
	f := fieldByName[name]
	if f == nil {
		return true
	}
	switch {
	case f.id == FieldVLANPCP:
		// The text's vlan_pcp matches a VLAN header itself; OXM's
		// requires a vlan_vid that does.
		return prereqMet(&w.mp.m, preVLAN)
	case f.pre == preCtIPv4 || f.pre == preCtIPv6 || f.pre == preCtIP || f.pre == preCtProto:
		return ctValid(&w.mp.m)
	}
	return prereqMet(&w.mp.m, f.pre)
}

// Finish checks the prerequisites of the fields added and stores the
// match in *m, as ParseMatch ends; false when a prerequisite is missing.
func (w *WireMatch) Finish(m *Match) bool {
	w.mp.wire = true
	if err := w.mp.finish(); err != nil {
		return false
	}
	*m = w.mp.m
	return true
}

func allOnesBytes(b []byte) bool {
	for _, c := range b {
		if c != 0xff {
			return false
		}
	}
	return true
}

// WireSubfield returns the bits of the field called name that an NXM
// action names: the whole field when whole (the text NAME[]), else nbits
// bits from ofs (NAME[A..B]); false when the parser would refuse it (an
// unknown field, bits outside the field) or the field is a tun_metadata
// field, whose use depends on the bridge's TLV map.
func WireSubfield(name string, ofs, nbits uint, whole bool) (Subfield, bool) {
	f := fieldByName[name]
	if f == nil || isTunMetaField(f.id) || nbits == 0 {
		return Subfield{}, false
	}
	w := f.width()
	sf := Subfield{Field: f.id}
	if whole {
		if w < 128 {
			sf.NBits = uint8(w)
		}
		return sf, true
	}
	end := ofs + nbits - 1
	if end > 255 || end >= w {
		return Subfield{}, false
	}
	sf.Ofs = uint8(ofs)
	if nbits < 128 {
		sf.NBits = uint8(nbits)
	}
	return sf, true
}

// LoadAction returns load:v->sf as the parser reads it for the pipeline's
// fields (registers, metadata, pkt_mark, in_port, tun_id): false for any
// other field, a subfield of more than 64 bits, or a value that does not
// fit.
func LoadAction(sf Subfield, v uint64) (Action, bool) {
	f := sf.field()
	if f == nil || f.set != setReg || sf.Bits() > 64 || sf.Bits() < 64 && v>>sf.Bits() != 0 {
		return Action{}, false
	}
	return Action{Type: ActLoad, Dst: sf, Value: v}, true
}

// SetFieldRegAction returns set_field:v->F for the pipeline field F
// called name, of at most 64 bits, as the parser reads it (a load of the
// whole field spelt set_field); false for any other field (in_port and
// the tunnel's fields have their own syntax) or a value that does not
// fit.
func SetFieldRegAction(name string, v uint64) (Action, bool) {
	f := fieldByName[name]
	if f == nil || f.set != setReg || f.kind != kindNum || f.st >= stTunID && f.st <= stTunIPv6Dst || f.id == FieldTunFlags {
		return Action{}, false
	}
	id := f.id
	w := f.width()
	if w > 64 || w < 64 && v>>w != 0 {
		return Action{}, false
	}
	return Action{Type: ActLoad, Dst: Subfield{Field: id, NBits: uint8(w)}, Value: v, Spelling: SpellSetField}, true
}

// MoveAction returns move:src->dst as the parser reads it in a flow
// whose match is m: false when the source's prerequisites are missing,
// the destination may not be written (or lacks its prerequisites), or the
// widths differ.
func MoveAction(m *Match, src, dst Subfield) (Action, bool) {
	sf, df := src.field(), dst.field()
	if sf == nil || df == nil || src.Bits() != dst.Bits() || !prereqMet(m, sf.pre) {
		return Action{}, false
	}
	switch df.set {
	case setReg:
	case setMod, setLoad, setTCI:
		if !prereqMet(m, df.setPre) {
			return Action{}, false
		}
	default:
		return Action{}, false
	}
	return Action{Type: ActMove, Src: src, Dst: dst}, true
}
