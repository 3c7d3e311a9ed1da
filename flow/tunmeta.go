package flow

import (
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// This file is the bridge's TLV map: which Geneve option (class, type,
// length) each tunnel metadata field tun_metadata0-63 stands for
// (ovs-fields(7) "Tunnel Metadata Fields"; ovs-ofctl add-tlv-map).
//
// Storage. Open vSwitch keeps 256 bytes of option values in every flow;
// ovsxdp keeps TunMetaSpace bytes (Key.TunMeta) and a word of descriptors
// (Key.TunMetaPresent), so that a key grows by three words rather than
// thirty-three. Each mapping is given a contiguous run of 4-byte slots of
// Key.TunMeta when it is added; a key that carries the field has, for the
// run's first slot, a descriptor saying which field and how long (see
// SetTunMeta). A map whose options do not fit is refused as Open vSwitch
// refuses one that exceeds its space (NXTTMFC_TABLE_FULL); dump-tlv-map
// says "max option space=16". A mapping keeps its place while it exists,
// and one that a flow uses cannot be deleted (NXTTMFC_INVALID_TLV_DEL).

// TunMetaSpace is the number of bytes of Geneve option values a key holds:
// the most that the mapped options' lengths may add up to.
const TunMetaSpace = 16

// NumTunMeta is the number of tunnel metadata fields (tun_metadata0-63).
const NumTunMeta = 64

// MaxTLVLen is the largest Geneve option body that a mapping may name
// (31 words less the 4-byte header, as Open vSwitch's TLV_MAX_OPT_SIZE).
const MaxTLVLen = 124

// TLV table mod commands (NXTTMC_*).
const (
	TLVAdd    uint16 = 0 // add mappings; fails if an index or option is mapped
	TLVDelete uint16 = 1 // delete mappings by index; unmapped indexes are ignored
	TLVClear  uint16 = 2 // delete every mapping
)

// Errors of a TLV table change, as Open vSwitch's NXTTMFC_* codes.
var (
	ErrTLVBadCommand    = errors.New("unknown tlv table mod command")                          // NXTTMFC_BAD_COMMAND
	ErrTLVBadLen        = errors.New("option length is not a valid option size")               // NXTTMFC_BAD_OPT_LEN
	ErrTLVBadIndex      = errors.New("field index out of range")                               // NXTTMFC_BAD_FIELD_IDX
	ErrTLVTableFull     = errors.New("options exceed the space for tunnel metadata")           // NXTTMFC_TABLE_FULL
	ErrTLVAlreadyMapped = errors.New("field index is already mapped")                          // NXTTMFC_ALREADY_MAPPED
	ErrTLVDupEntry      = errors.New("option is already mapped to another field")              // NXTTMFC_DUP_ENTRY
	ErrTLVInUse         = errors.New("mapping is used by a flow")                              // NXTTMFC_INVALID_TLV_DEL
	ErrTLVUnmapped      = errors.New("tunnel metadata field is not mapped to a Geneve option") // NXFMFC_INVALID_TLV_FIELD
)

// TLVMapping maps the Geneve option (Class, Type) of Len bytes to
// tun_metadata<Index>.
type TLVMapping struct {
	Class uint16
	Type  uint8
	Len   uint8
	Index uint16
}

// tlvEntry is one mapped field: its option and where its value lives in
// Key.TunMeta.
type tlvEntry struct {
	valid bool
	class uint16
	typ   uint8
	len   uint8
	off   uint8
}

// TLVMap is a bridge's TLV map. It is immutable: a change builds a new one
// (Apply), so that translation and the datapath read it without a lock.
// The zero TLVMap (and a nil *TLVMap) maps nothing.
type TLVMap struct {
	entries [NumTunMeta]tlvEntry
	used    uint8 // bytes of TunMeta given out
}

// Mappings returns the map's mappings by index.
func (m *TLVMap) Mappings() []TLVMapping {
	if m == nil {
		return nil
	}
	var out []TLVMapping
	for i, e := range m.entries {
		if e.valid {
			out = append(out, TLVMapping{Class: e.class, Type: e.typ, Len: e.len, Index: uint16(i)})
		}
	}
	return out
}

// Lookup returns the mapping of tun_metadata<index> and where its value
// lives in Key.TunMeta; ok is false when it is not mapped.
func (m *TLVMap) Lookup(index int) (mp TLVMapping, off int, ok bool) {
	if m == nil || index < 0 || index >= NumTunMeta || !m.entries[index].valid {
		return TLVMapping{}, 0, false
	}
	e := m.entries[index]
	return TLVMapping{Class: e.class, Type: e.typ, Len: e.len, Index: uint16(index)}, int(e.off), true
}

// Find returns the index and value offset of the field that the Geneve
// option (class, typ) maps to, if any, and the option's mapped length.
func (m *TLVMap) Find(class uint16, typ uint8) (index, off, n int, ok bool) {
	if m == nil {
		return 0, 0, 0, false
	}
	for i := range m.entries {
		e := &m.entries[i]
		if e.valid && e.class == class && e.typ == typ {
			return i, int(e.off), int(e.len), true
		}
	}
	return 0, 0, 0, false
}

// Used returns the bytes of option space the mappings take.
func (m *TLVMap) Used() int {
	if m == nil {
		return 0
	}
	return int(m.used)
}

// Empty reports whether nothing is mapped.
func (m *TLVMap) Empty() bool { return len(m.Mappings()) == 0 }

// CheckTLVMapping checks what a TLV table message's decoder checks of
// one mapping: the length and the index.
func CheckTLVMapping(mp TLVMapping) error {
	if mp.Len%4 != 0 || mp.Len > MaxTLVLen {
		return fmt.Errorf("tun_metadata%d: length %d: %w (4 to %d, a multiple of 4)", mp.Index, mp.Len, ErrTLVBadLen, MaxTLVLen)
	}
	if mp.Index >= NumTunMeta {
		return fmt.Errorf("tun_metadata%d: %w (max %d)", mp.Index, ErrTLVBadIndex, NumTunMeta-1)
	}
	return nil
}

// Apply returns the map that the command cmd with mappings makes of m,
// atomically: on error m is unchanged and nothing is applied. inUse, if not
// nil, reports whether a flow uses tun_metadata<index>; a delete or clear
// of a mapping in use is refused (ErrTLVInUse), as Open vSwitch refuses it.
func (m *TLVMap) Apply(cmd uint16, mappings []TLVMapping, inUse func(index int) bool) (*TLVMap, error) {
	n := new(TLVMap)
	if m != nil {
		*n = *m
	}
	for _, mp := range mappings {
		if err := CheckTLVMapping(mp); err != nil {
			return nil, err
		}
	}
	del := func(i int) error {
		if !n.entries[i].valid {
			return nil
		}
		if inUse != nil && inUse(i) {
			return fmt.Errorf("tun_metadata%d: %w", i, ErrTLVInUse)
		}
		n.entries[i] = tlvEntry{}
		return nil
	}
	switch cmd {
	case TLVAdd:
		for _, mp := range mappings {
			if err := n.add(mp); err != nil {
				return nil, err
			}
		}
	case TLVDelete:
		for _, mp := range mappings {
			if err := del(int(mp.Index)); err != nil {
				return nil, err
			}
		}
	case TLVClear:
		for i := range n.entries {
			if err := del(i); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("command %d: %w", cmd, ErrTLVBadCommand)
	}
	n.used = 0
	for _, e := range n.entries {
		if e.valid {
			n.used += e.len
		}
	}
	return n, nil
}

// add maps mp's option to its index, in the first run of free 4-byte
// slots of TunMeta long enough for it.
func (n *TLVMap) add(mp TLVMapping) error {
	e := &n.entries[mp.Index]
	if mp.Len == 0 {
		return fmt.Errorf("tun_metadata%d: length 0: %w (4 to %d, a multiple of 4)", mp.Index, ErrTLVBadLen, MaxTLVLen)
	}
	if e.valid {
		return fmt.Errorf("tun_metadata%d: %w", mp.Index, ErrTLVAlreadyMapped)
	}
	if i, _, _, ok := n.Find(mp.Class, mp.Type); ok {
		return fmt.Errorf("{class=%#x,type=%#x}: %w (tun_metadata%d)", mp.Class, mp.Type, ErrTLVDupEntry, i)
	}
	var busy [TunMetaSpace / 4]bool
	used := 0
	for _, o := range n.entries {
		if o.valid {
			used += int(o.len)
			for s := int(o.off) / 4; s < int(o.off+o.len)/4; s++ {
				busy[s] = true
			}
		}
	}
	need := int(mp.Len) / 4
	for start := 0; start+need <= len(busy); start++ {
		free := true
		for s := start; s < start+need; s++ {
			free = free && !busy[s]
		}
		if free {
			*e = tlvEntry{valid: true, class: mp.Class, typ: mp.Type, len: mp.Len, off: uint8(start * 4)}
			return nil
		}
	}
	return fmt.Errorf("tun_metadata%d of %d bytes: %w (%d of %d bytes in use; ovsxdp keeps at most %d bytes of Geneve options per packet)",
		mp.Index, mp.Len, ErrTLVTableFull, used, TunMetaSpace, TunMetaSpace)
}

// ParseTLVMappings parses the mappings of ovs-ofctl's add-tlv-map and
// del-tlv-map: {class=C,type=T,len=L}->tun_metadataN, separated by
// commas. Numbers are decimal, or hexadecimal with 0x.
func ParseTLVMappings(s string) ([]TLVMapping, error) {
	var out []TLVMapping
	rest := strings.TrimSpace(s)
	for rest != "" {
		item := rest
		if i := strings.Index(rest[1:], ",{"); i >= 0 {
			item, rest = rest[:i+1], rest[i+2:] // rest keeps the '{'

		} else {
			rest = ""
		}
		mp, err := parseTLVMapping(item)
		if err != nil {
			return nil, fmt.Errorf("%s: invalid tlv mapping: %w", Clipped(item), err)
		}
		out = append(out, mp)
	}
	return out, nil
}

// parseTLVMapping parses one {class=C,type=T,len=L}->tun_metadataN.
func parseTLVMapping(s string) (TLVMapping, error) {
	var mp TLVMapping
	body, target, ok := strings.Cut(s, "}->tun_metadata")
	body, ok2 := strings.CutPrefix(body, "{")
	if !ok || !ok2 {
		return mp, errors.New("want {class=C,type=T,len=L}->tun_metadataN")
	}
	parts := strings.Split(body, ",")
	if len(parts) != 3 {
		return mp, errors.New("want class, type and len")
	}
	var nums [3]uint64
	for i, want := range []string{"class", "type", "len"} {
		k, v, _ := strings.Cut(parts[i], "=")
		if k != want {
			return mp, fmt.Errorf("want %s=", want)
		}
		n, err := strconv.ParseUint(v, 0, []int{16, 8, 8}[i])
		if err != nil {
			return mp, fmt.Errorf("%s: %s is not a %d-bit number", want, Clipped(v), []int{16, 8, 8}[i])
		}
		nums[i] = n
	}
	idx, err := strconv.ParseUint(target, 10, 16)
	if err != nil {
		return mp, fmt.Errorf("tun_metadata%s: bad index", Clipped(target))
	}
	return TLVMapping{Class: uint16(nums[0]), Type: uint8(nums[1]), Len: uint8(nums[2]), Index: uint16(idx)}, nil
}

// FormatTLVTable writes the TLV map m as ovs-ofctl prints an
// NXT_TLV_TABLE_REPLY (dump-tlv-map), without the message's first line.
func FormatTLVTable(maxSpace uint32, maxFields uint16, mappings []TLVMapping) string {
	var b strings.Builder
	used := 0
	for _, mp := range mappings {
		used += int(mp.Len)
	}
	fmt.Fprintf(&b, " max option space=%d max fields=%d\n", maxSpace, maxFields)
	fmt.Fprintf(&b, " allocated option space=%d\n\n", used)
	b.WriteString(" mapping table:\n")
	b.WriteString("  class  type  length  match field\n")
	b.WriteString(" ------  ----  ------  --------------")
	for _, mp := range mappings {
		fmt.Fprintf(&b, "\n %6s  %4s  %6d  tun_metadata%d", hexC(uint64(mp.Class)), hexC(uint64(mp.Type)), mp.Len, mp.Index)
	}
	b.WriteByte('\n')
	return b.String()
}

// hexC is C's %#x: 0x-prefixed hexadecimal, and 0 bare.
func hexC(v uint64) string {
	if v == 0 {
		return "0"
	}
	return "0x" + strconv.FormatUint(v, 16)
}

// TLVMap returns the table's TLV map (nil when nothing was ever mapped).
func (t *Table) TLVMap() *TLVMap { return t.tlv.Load() }

// ModTLVMap applies a TLV table change (add-tlv-map, del-tlv-map,
// NXT_TLV_TABLE_MOD) atomically: all of it or, with an error, nothing. A
// delete or clear of a mapping that an installed flow uses is refused
// (ErrTLVInUse).
func (t *Table) ModTLVMap(cmd uint16, mappings []TLVMapping) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var rules []*Rule
	old := t.tlv.Load()
	inUse := func(i int) bool {
		if rules == nil {
			rules = t.Dump(nil)
			if rules == nil {
				rules = []*Rule{}
			}
		}
		for _, r := range rules {
			if ruleUsesTunMeta(r, i) {
				return true
			}
		}
		return false
	}
	n, err := old.Apply(cmd, mappings, inUse)
	if err != nil {
		return err
	}
	t.tlv.Store(n)
	return nil
}

// ruleUsesTunMeta reports whether r matches on tun_metadata<i> or its
// actions read or write it.
func ruleUsesTunMeta(r *Rule, i int) bool {
	m := r.Match()
	used := false
	m.Key.TunMetaFields(&m.Mask, func(index int, _, _ []byte) { used = used || index == i })
	id := FieldTunMeta0 + FieldID(i)
	for _, a := range r.Actions {
		switch a.Type {
		case ActLoad, ActPop, ActCheckPktLarger:
			used = used || a.Dst.Field == id
		case ActMove:
			used = used || a.Dst.Field == id || a.Src.Field == id
		case ActPush, ActOutputReg:
			used = used || a.Src.Field == id
		}
	}
	return used
}

// FormatTLVMapping writes mp as add-tlv-map takes it.
func FormatTLVMapping(mp TLVMapping) string {
	return fmt.Sprintf("{class=%#x,type=%#x,len=%d}->tun_metadata%d", mp.Class, mp.Type, mp.Len, mp.Index)
}

// Key.TunMetaPresent holds, for each 4-byte slot S of Key.TunMeta, a 16-bit
// descriptor at bit 16*S of the field whose value starts there: the
// present bit, the value's length in slots less one, and the field's
// index. A key says itself which fields it carries and where, so that
// matching, masking and formatting need no TLV map; a match on a field
// matches its whole descriptor.
const (
	tunMetaDescPresent = 0x8000
	tunMetaDescMask    = 0xffff
)

func tunMetaDesc(index, n int) uint64 {
	return tunMetaDescPresent | uint64(n/4-1)<<8 | uint64(index)
}

func tunMetaShift(off int) uint { return uint(off/4) * 16 }

// tunMetaSlot decodes the descriptor of slot s of d: the field's index and
// length, and whether a field starts there.
func tunMetaSlot(d uint64, s int) (index, n int, ok bool) {
	x := d >> (16 * uint(s)) & tunMetaDescMask
	if x&tunMetaDescPresent == 0 {
		return 0, 0, false
	}
	return int(x & 0x3f), (int(x>>8&3) + 1) * 4, true
}

// SetTunMeta gives k tun_metadata<index>, whose value of n bytes lives at
// off (as the TLV map places it): val, right-aligned in n bytes.
func (k *Key) SetTunMeta(index, off, n int, val []byte) {
	SetTunMeta(&k.TunMeta, &k.TunMetaPresent, index, off, n, val)
}

// SetTunMeta is Key.SetTunMeta on a key's TunMeta and TunMetaPresent held
// elsewhere (a decapsulated packet's, before it has a key).
func SetTunMeta(meta *[TunMetaSpace]byte, present *uint64, index, off, n int, val []byte) {
	sh := tunMetaShift(off)
	*present = *present&^(tunMetaDescMask<<sh) | tunMetaDesc(index, n)<<sh
	dst := meta[off : off+n]
	clear(dst)
	if len(val) > n {
		val = val[len(val)-n:]
	}
	copy(dst[n-len(val):], val)
}

// TunMetaFields calls fn for each tun_metadata field k carries, in slot
// order: its index, and its value and the matching bytes of mask (nil
// for none).
func (k *Key) TunMetaFields(mask *Key, fn func(index int, val, maskBytes []byte)) {
	d := k.TunMetaPresent
	if mask != nil {
		d &= mask.TunMetaPresent
	}
	for s := range TunMetaSpace / 4 {
		i, n, ok := tunMetaSlot(d, s)
		if !ok {
			continue
		}
		var m []byte
		if mask != nil {
			m = mask.TunMeta[4*s : 4*s+n]
		}
		fn(i, k.TunMeta[4*s:4*s+n], m)
	}
}

// TunMetaValue returns the value of tun_metadata<index> in k, or nil when
// k does not carry it. The slice aliases k.
func (k *Key) TunMetaValue(index int) []byte {
	for s := range TunMetaSpace / 4 {
		if i, n, ok := tunMetaSlot(k.TunMetaPresent, s); ok && i == index {
			return k.TunMeta[4*s : 4*s+n]
		}
	}
	return nil
}

// tunMetaIndex returns N of a field name tun_metadataN.
func tunMetaIndex(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "tun_metadata")
	if !ok || s == "" || len(s) > 2 || s[0] == '0' && len(s) > 1 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= NumTunMeta {
		return 0, false
	}
	return n, true
}

// setTunMeta applies a match on tun_metadataN: value[/mask] as a number of
// up to the mapped length, which the parser's TLV map gives; a field the
// map does not map is refused (ErrTLVUnmapped), as Open vSwitch refuses it.
func (mp *matchParser) setTunMeta(index int, t *token) error {
	s := mp.s
	_, off, ok := mp.p.TLV.Lookup(index)
	if !ok {
		e := errAt(s, t, "tun_metadata%d: %v (map it first with add-tlv-map)", index, ErrTLVUnmapped)
		e.Err = ErrTLVUnmapped
		return e
	}
	mapping, _, _ := mp.p.TLV.Lookup(index)
	n := int(mapping.Len)
	value := t.value
	if !t.hasValue {
		// The bare name matches the field's presence, as in Open vSwitch.
		value = "0/0"
	}
	val, maskText, hasMask := strings.Cut(value, "/")
	v, reason := parse128(val, t.key)
	if reason != "" {
		return errAt(s, t, "%s", reason)
	}
	m := ones(uint(8 * n))
	if hasMask {
		if m, reason = parse128(maskText, t.key); reason != "" {
			return errAt(s, t, "%s", reason)
		}
	}
	if !v.andNot(ones(uint(8*n))).isZero() || !m.andNot(ones(uint(8*n))).isZero() {
		return errAt(s, t, "%s: value too large for tun_metadata%d of %d bytes", value, index, n)
	}
	vb, mb := u128Bytes(v.and(m)), u128Bytes(m)
	mp.m.Key.SetTunMeta(index, off, n, vb[:])
	mp.m.Mask.SetTunMeta(index, off, n, mb[:])
	sh := tunMetaShift(off)
	mp.m.Mask.TunMetaPresent |= tunMetaDescMask << sh
	return nil
}

// u128Bytes writes v as 16 big-endian bytes.
func u128Bytes(v u128) [16]byte {
	var b [16]byte
	for i := range 8 {
		b[7-i] = byte(v.hi >> (8 * i))
		b[15-i] = byte(v.lo >> (8 * i))
	}
	return b
}

// formatTunMetaMatch writes the tun_metadata fields of a match as
// ovs-ofctl does: the value in hexadecimal without leading zeros, the mask
// after it unless it is all ones, and the bare name for a match on the
// field's presence only.
func formatTunMetaMatch(w *matchWriter, k, mk *Key) {
	type item struct {
		index  int
		v, msk []byte
	}
	var items []item
	k.TunMetaFields(mk, func(index int, v, msk []byte) {
		items = append(items, item{index, v, msk})
	})
	sort.Slice(items, func(i, j int) bool { return items[i].index < items[j].index })
	for _, it := range items {
		name := "tun_metadata" + strconv.Itoa(it.index)
		allZero, allOnes := true, true
		for _, c := range it.msk {
			allZero = allZero && c == 0
			allOnes = allOnes && c == 0xff
		}
		switch {
		case allZero:
			w.item(name)
		case allOnes:
			w.item(name, "=", hexBytes(it.v))
		default:
			w.item(name, "=", hexBytes(it.v), "/", hexBytes(it.msk))
		}
	}
}

// hexBytes writes b as a 0x-prefixed hexadecimal number without leading
// zeros ("0" for zero).
func hexBytes(b []byte) string {
	s := strings.TrimLeft(hex.EncodeToString(b), "0")
	if s == "" {
		return "0"
	}
	return "0x" + s
}

// tunMetaFields are the field-table entries of tun_metadata0-63: numbers
// of up to 128 bits (the whole metadata space) that set_field, load and
// move write and read. Where a field lives is the TLV map's business, so
// the storage names only the field; matches go through setTunMeta.
func tunMetaFields() []field {
	fs := make([]field, NumTunMeta)
	for i := range fs {
		n := strconv.Itoa(i)
		fs[i] = field{id: FieldTunMeta0 + FieldID(i), name: "tun_metadata" + n, kind: kindNum128, st: stTunMeta0 + storage(i), maskable: true, set: setReg, nxm: "NXM_NX_TUN_METADATA" + n}
	}
	return fs
}

// isTunMetaField reports whether id is one of tun_metadata0-63.
func isTunMetaField(id FieldID) bool { return id >= FieldTunMeta0 && id < FieldTunMeta0+NumTunMeta }

// tunMetaGet returns the value of tun_metadata<index> in k as a number;
// zero when k does not carry it, as Open vSwitch reads an absent option.
func tunMetaGet(k *Key, index int) u128 {
	var v u128
	for _, c := range k.TunMetaValue(index) {
		v = v.shl(8).or(u128{lo: uint64(c)})
	}
	return v
}

// tunMetaPut stores the low bytes of v into tun_metadata<index> of k, which
// must carry it (tunMetaPrepare gives it the field first); a key without
// the field is left alone.
func tunMetaPut(k *Key, index int, v u128) {
	dst := k.TunMetaValue(index)
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte(v.lo)
		v = v.shr(8)
	}
}

// tunMetaPrepare makes k carry tun_metadata<index> before a write to it:
// a field the key lacks is added, zero, where m places it. It reports
// false when m does not map the field (the write then does nothing, as in
// Open vSwitch).
func tunMetaPrepare(k *Key, m *TLVMap, index int) bool {
	if k.TunMetaValue(index) != nil {
		return true
	}
	mp, off, ok := m.Lookup(index)
	if !ok {
		return false
	}
	k.SetTunMeta(index, off, int(mp.Len), nil)
	return true
}

// tunMetaWildcard unwildcards in wc the whole of tun_metadata<index> as
// flow carries it: its descriptor and its bytes.
func tunMetaWildcard(wc, flow *Key, index int) {
	for s := range TunMetaSpace / 4 {
		if i, n, ok := tunMetaSlot(flow.TunMetaPresent, s); ok && i == index {
			wc.TunMetaPresent |= tunMetaDescMask << (16 * uint(s))
			for j := 4 * s; j < 4*s+n; j++ {
				wc.TunMeta[j] = 0xff
			}
			return
		}
	}
}

// checkTunMetaMapped refuses an action on tun_metadataN that the parser's
// TLV map does not map, as a match on it is refused.
func (ap *actionParser) checkTunMetaMapped(t *token, id FieldID) error {
	if !isTunMetaField(id) {
		return nil
	}
	index := int(id - FieldTunMeta0)
	if _, _, ok := ap.p.TLV.Lookup(index); !ok {
		e := errAt(ap.s, t, "tun_metadata%d: %v (map it first with add-tlv-map)", index, ErrTLVUnmapped)
		e.Err = ErrTLVUnmapped
		return e
	}
	return nil
}

// formatTunMetaLoad writes a load into tun_metadataN as ovs-ofctl prints
// it: set_field with the value, and with a mask unless the load writes
// the whole field from bit 0.
func formatTunMetaLoad(b *strings.Builder, a *Action) {
	name := "tun_metadata" + strconv.Itoa(int(a.Dst.Field-FieldTunMeta0))
	v := u128{lo: a.Value}.and(ones(a.Dst.Bits())).shl(uint(a.Dst.Ofs))
	if a.Spelling == SpellSetField && a.Dst.Ofs == 0 {
		b.WriteString("set_field:" + tunMetaHex(v) + "->" + name)
		return
	}
	b.WriteString("set_field:" + tunMetaHex(v) + "/" + tunMetaHex(a.Dst.mask()) + "->" + name)
}

// tunMetaHex writes v in hexadecimal with 0x, or 0.
func tunMetaHex(v u128) string {
	b := u128Bytes(v)
	return hexBytes(b[:])
}

// setTunMetaField parses set_field:VALUE[/MASK]->tun_metadataN (the field
// mapped): VALUE fits in the mapped length. It adds one load per run of
// mask bits, at most 64 bits each; an unmasked one writes the whole field
// and prints back as set_field:VALUE->tun_metadataN.
func (ap *actionParser) setTunMetaField(t *token, f *field, val string) error {
	mapping, _, _ := ap.p.TLV.Lookup(int(f.id - FieldTunMeta0))
	w := 8 * uint(mapping.Len)
	valText, maskText, hasMask := strings.Cut(val, "/")
	v, reason := parse128(valText, f.name)
	m := ones(w)
	if reason == "" && hasMask {
		m, reason = parse128(maskText, f.name)
	}
	if reason != "" {
		return errAt(ap.s, t, "%s", reason)
	}
	if !v.andNot(ones(w)).isZero() || !m.andNot(ones(w)).isZero() {
		return errAt(ap.s, t, "%s: value too large for %s of %d bytes", val, f.name, mapping.Len)
	}
	v = v.and(m)
	spell := SpellDefault
	if m == ones(w) {
		spell = SpellSetField
		if w > 64 {
			// Two loads; each prints with its mask.
			spell = SpellDefault
		}
	}
	ap.addMaskedLoads(f.id, w, v, m, spell)
	return nil
}

// tunMetaSrc unwildcards a tun_metadata field that an action reads: its
// presence and value decide what is read.
func (x *xlate) tunMetaSrc(sf Subfield) {
	if isTunMetaField(sf.Field) {
		index := int(sf.Field - FieldTunMeta0)
		tunMetaWildcard(&x.wc, &x.flow, index)
		if x.flow.TunMetaValue(index) == nil {
			// Absent: the flow must keep it absent wherever the map would
			// put it.
			if x.s == nil {
				return
			}
			if _, off, ok := x.s.tlv.Lookup(index); ok {
				x.wc.TunMetaPresent |= tunMetaDescMask << tunMetaShift(off)
			}
		}
	}
}

// tunMetaDst readies the flow for a write to sf: a tun_metadata field the
// flow lacks is added where the TLV map puts it. It reports false for a
// field the map does not map (the write does nothing).
func (x *xlate) tunMetaDst(sf Subfield) bool {
	if !isTunMetaField(sf.Field) {
		return true
	}
	index := int(sf.Field - FieldTunMeta0)
	var m *TLVMap
	if x.s != nil {
		m = x.s.tlv
	}
	if !tunMetaPrepare(&x.flow, m, index) {
		x.report(TraceDetail, "tun_metadata"+strconv.Itoa(index)+" is not mapped: the write does nothing")
		return false
	}
	return true
}

// commitTunMeta writes a datapath action that gives the packet the flow's
// tunnel metadata when the actions changed it, for a tunnel port's output
// to encapsulate as Geneve options.
func (x *xlate) commitTunMeta() {
	if x.flow.TunMeta == x.base.TunMeta && x.flow.TunMetaPresent == x.base.TunMetaPresent {
		return
	}
	x.wc.TunMetaPresent = ^uint64(0)
	for i := range x.wc.TunMeta {
		x.wc.TunMeta[i] = 0xff
	}
	x.emit(Action{Type: ActSetField, Field: FieldTunMeta0, Value: x.flow.TunMetaPresent, IPv6: x.flow.TunMeta})
}

// formatTunMetaCommit writes the datapath action that gives a packet its
// tunnel metadata (commitTunMeta): set(tun_metadata(FIELD=VALUE,...)),
// the fields in index order, or set(tun_metadata()) for none.
func formatTunMetaCommit(b *strings.Builder, a *Action) {
	k := Key{TunMeta: a.IPv6, TunMetaPresent: a.Value}
	type item struct {
		index int
		v     []byte
	}
	var items []item
	k.TunMetaFields(nil, func(index int, v, _ []byte) { items = append(items, item{index, v}) })
	sort.Slice(items, func(i, j int) bool { return items[i].index < items[j].index })
	b.WriteString("set(tun_metadata(")
	for i, it := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("tun_metadata" + strconv.Itoa(it.index) + "=" + hexBytes(it.v))
	}
	b.WriteString("))")
}
