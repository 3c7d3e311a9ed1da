package ofconv

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// This file converts between the codec's groups (group mod, group desc
// and group stats entries) and the flow language's. A group mod is
// written as ovs-ofctl group text and parsed by the flow language, as a
// flow mod is, so that a group added over OpenFlow is checked as one
// added by add-group.

// Group mod commands beyond OpenFlow 1.1's add, modify and delete.
const (
	GroupInsertBucket uint16 = 3      // OFPGC15_INSERT_BUCKET
	GroupRemoveBucket uint16 = 5      // OFPGC15_REMOVE_BUCKET (4 is unused)
	GroupAddOrModify  uint16 = 0x8000 // OFPGC11_ADD_OR_MOD (Open vSwitch's mod-group --may-create)
)

// Special bucket ids of OpenFlow 1.5's command_bucket_id.
const (
	BucketFirst uint32 = 0xfffffffd // OFPG15_BUCKET_FIRST
	BucketLast  uint32 = 0xfffffffe // OFPG15_BUCKET_LAST
	BucketAll   uint32 = 0xffffffff // OFPG15_BUCKET_ALL
)

// OFPET_GROUP_MOD_FAILED codes.
const (
	CodeGroupExists     uint16 = 0  // OFPGMFC_GROUP_EXISTS
	CodeInvalidGroup    uint16 = 1  // OFPGMFC_INVALID_GROUP
	CodeUnknownGroup    uint16 = 8  // OFPGMFC_UNKNOWN_GROUP
	CodeGroupBadType    uint16 = 10 // OFPGMFC_BAD_TYPE
	CodeGroupBadCommand uint16 = 11 // OFPGMFC_BAD_COMMAND
	CodeGroupBadBucket  uint16 = 12 // OFPGMFC_BAD_BUCKET
	CodeUnknownBucket   uint16 = 15 // OFPGMFC_UNKNOWN_BUCKET
	CodeBucketExists    uint16 = 16 // OFPGMFC_BUCKET_EXISTS

	codeBadOutGroup uint16 = 9 // OFPBAC_BAD_OUT_GROUP
)

// GroupModError is an OFPET_GROUP_MOD_FAILED error with code code.
func GroupModError(code uint16, format string, args ...any) *openflow.Error {
	return &openflow.Error{Type: openflow.ErrTypeGroupModFailed, Code: code, Sentinel: openflow.ErrBadMessage, Detail: fmt.Sprintf(format, args...)}
}

// AddError is TableError for the adds of flow mods of version v, which
// a table may also refuse for check_overlap: OFPFMFC_OVERLAP.
func AddError(v uint8, err error) error {
	if errors.Is(err, flow.ErrOverlap) {
		return flowModError(v, "overlap", err.Error())
	}
	return TableError(err)
}

// TableError turns what a flow.Table refuses a group or flow change with
// into Open vSwitch's OpenFlow error: OFPGMFC_GROUP_EXISTS,
// OFPGMFC_UNKNOWN_GROUP, OFPBAC_BAD_OUT_GROUP. Other errors are returned
// as they are.
func TableError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flow.ErrGroupExists):
		return GroupModError(CodeGroupExists, "%v", err)
	case errors.Is(err, flow.ErrUnknownGroup):
		return GroupModError(CodeUnknownGroup, "%v", err)
	case errors.Is(err, flow.ErrBadOutGroup):
		return actionError(codeBadOutGroup, "%v", err)
	}
	if code, ok := meterCode(err); ok {
		return &openflow.Error{Type: openflow.ErrTypeMeterModFailed, Code: code, Sentinel: openflow.ErrBadMessage, Detail: err.Error(), Item: "meter"}
	}
	return err
}

// NTR_SELECTION_METHOD: Open vSwitch's group property (experimenter
// Netronome) that carries selection_method, its parameter and fields.
const (
	groupPropExperimenter uint16 = 0xffff
	ntrVendorID           uint32 = 0x0000154d
	ntrSelectionMethod    uint32 = 1
	selectionMethodLen           = 16
	selectionPropFixed           = 4 + 4 + 4 + selectionMethodLen + 8 // after the type and length
)

// GroupFromMod converts an add, modify or insert/remove-bucket group mod
// of version v to a group (for a bucket command: a group of type typ
// holding the mod's buckets). Buckets are numbered as Open vSwitch numbers
// them: by position before OpenFlow 1.5, by their bucket_id in 1.5.
func GroupFromMod(p *flow.Parser, v uint8, gm *openflow.GroupMod) (*flow.Group, error) {
	if gm.GroupID > flow.GroupMax {
		return nil, GroupModError(CodeInvalidGroup, "group id %#x", gm.GroupID)
	}
	if gm.Type > openflow.GroupFF {
		return nil, GroupModError(CodeGroupBadType, "group type %d", gm.Type)
	}
	var b strings.Builder
	b.WriteString("group_id=" + strconv.FormatUint(uint64(gm.GroupID), 10))
	b.WriteString(",type=" + flow.GroupType(gm.Type).String())
	for _, pr := range gm.Props {
		s, err := selectionText(pr)
		if err != nil {
			return nil, err
		}
		b.WriteString(s)
	}
	for i := range gm.Buckets {
		s, err := bucketText(v, gm.Type, i, &gm.Buckets[i])
		if err != nil {
			return nil, err
		}
		b.WriteString(s)
	}
	if p == nil {
		p = &flow.Parser{}
	}
	text := b.String()
	g, err := p.ParseGroup(text, flow.GroupCmdAdd)
	if err != nil {
		var oe *openflow.Error
		if errors.As(err, &oe) {
			return nil, err
		}
		if strings.Contains(err.Error(), "bucket") || strings.Contains(err.Error(), "watch_") || strings.Contains(err.Error(), "weight") {
			return nil, GroupModError(CodeGroupBadBucket, "%v", err)
		}
		return nil, parseError(err, false, text)
	}
	return g, nil
}

// bucketText writes bucket i of a group mod as ovs-ofctl group text.
func bucketText(v uint8, typ uint8, i int, bk *openflow.Bucket) (string, error) {
	id := uint32(i)
	if openflow.GroupBodies15(v) {
		id = bk.BucketID
		if id > flow.BucketMax {
			return "", GroupModError(CodeGroupBadBucket, "bucket id %#x", id)
		}
	}
	s := ",bucket=bucket_id:" + strconv.FormatUint(uint64(id), 10)
	if bk.HasWeight && (bk.Weight != 0 || typ == openflow.GroupSelect) {
		s += ",weight:" + strconv.FormatUint(uint64(bk.Weight), 10)
	}
	if bk.HasWatchPort && bk.WatchPort != openflow.PortAny {
		p := bk.WatchPort
		if p < openflow.PortMax && p > 0xffff {
			return "", GroupModError(CodeGroupBadBucket, "watch_port %d", p)
		}
		s += ",watch_port:" + strconv.FormatUint(uint64(flowPort(p)), 10)
	}
	if bk.HasWatchGroup && bk.WatchGroup != openflow.GroupAny {
		s += ",watch_group:" + strconv.FormatUint(uint64(bk.WatchGroup), 10)
	}
	at, err := actionsText(bk.Actions)
	if err != nil {
		return "", err
	}
	if at == "" {
		at = "drop"
	}
	return s + ",actions=" + at, nil
}

// selectionText writes an NTR_SELECTION_METHOD group property as
// ovs-ofctl text: selection_method, its parameter and fields. Any other
// group property is refused, as Open vSwitch refuses it.
func selectionText(pr openflow.Property) (string, error) {
	d := pr.Data
	if pr.Type != groupPropExperimenter || len(d) < 8 ||
		binary.BigEndian.Uint32(d) != ntrVendorID || binary.BigEndian.Uint32(d[4:]) != ntrSelectionMethod {
		return "", badProp("group property type %d is not supported", pr.Type)
	}
	if len(d) < selectionPropFixed {
		return "", badProp("selection method property of %d bytes", len(d)+4)
	}
	name := d[12 : 12+selectionMethodLen]
	if i := strings.IndexByte(string(name), 0); i >= 0 {
		name = name[:i]
	} else {
		return "", badProp("selection method is not terminated")
	}
	method := string(name)
	if method != "hash" && method != "dp_hash" {
		return "", badProp("selection method %q is not supported", method)
	}
	param := binary.BigEndian.Uint64(d[12+selectionMethodLen:])
	s := ",selection_method=" + method
	if param != 0 {
		s += ",selection_method_param=" + strconv.FormatUint(param, 10)
	}
	var fields []string
	r := d[selectionPropFixed:]
	for len(r) >= 4 {
		hw := binary.BigEndian.Uint32(r)
		if hw == 0 {
			break // padding
		}
		n := int(hw & 0xff)
		if hw>>16 == uint32(openflow.ClassExperimenter) {
			return "", badProp("experimenter field %#x in a field array", hw)
		}
		if hw&0x100 != 0 || 4+n > len(r) {
			return "", matchError(codeBadMatchMask, "field array entry %#x", hw)
		}
		fname, ok := headerName(hw)
		if !ok {
			return "", matchError(codeBadMatchField, "field array entry %#x", hw)
		}
		val := r[4 : 4+n]
		if allOnes(val) {
			fields = append(fields, fname)
		} else {
			fields = append(fields, fname+"="+valueText(fname, val))
		}
		r = r[4+n:]
	}
	if len(fields) > 0 && method == "hash" {
		s += ",fields(" + strings.Join(fields, ",") + ")"
	}
	return s, nil
}

// codeBadMatchField is OFPBMC_BAD_FIELD.
const codeBadMatchField uint16 = 6

// badProp is OFPBPC_BAD_TYPE-like refusal of a group property: Open
// vSwitch answers an unknown group property with OFPBPC_BAD_TYPE.
func badProp(format string, args ...any) *openflow.Error {
	return &openflow.Error{Type: 14, Code: 0, Sentinel: openflow.ErrBadMessage, Detail: fmt.Sprintf(format, args...)} // OFPET_BAD_PROPERTY, OFPBPC_BAD_TYPE
}

// GroupDesc converts a group to a group desc entry of version v.
func GroupDesc(v uint8, g *flow.Group) (openflow.GroupDesc, error) {
	d := openflow.GroupDesc{Type: uint8(g.Type), GroupID: g.ID, Buckets: make([]openflow.Bucket, 0, len(g.Buckets))}
	for i := range g.Buckets {
		bk := &g.Buckets[i]
		acts, err := ActionsToOF(v, &flow.Match{}, bk.Actions)
		if err != nil {
			return d, err
		}
		ob := openflow.Bucket{Weight: bk.Weight, WatchPort: ofPort(bk.WatchPort), WatchGroup: bk.WatchGroup, Actions: acts}
		if openflow.GroupBodies15(v) {
			ob.BucketID = bk.ID
			ob.HasWeight = g.Type == flow.GroupSelect
			ob.HasWatchPort = bk.WatchPort != flow.PortNone
			ob.HasWatchGroup = bk.WatchGroup != flow.GroupAny
		} else {
			ob.HasWeight, ob.HasWatchPort, ob.HasWatchGroup = true, true, true
		}
		d.Buckets = append(d.Buckets, ob)
	}
	if openflow.GroupBodies15(v) && g.SelectionMethod != "" {
		pr, err := selectionProp(g)
		if err != nil {
			return d, err
		}
		d.Props = []openflow.Property{pr}
	}
	return d, nil
}

// selectionProp builds the NTR_SELECTION_METHOD property of a group: the
// fields are an OXM field array whose values are the fields' masks, in
// Open vSwitch's field order (as dump-groups prints them).
func selectionProp(g *flow.Group) (openflow.Property, error) {
	d := binary.BigEndian.AppendUint32(nil, ntrVendorID)
	d = binary.BigEndian.AppendUint32(d, ntrSelectionMethod)
	d = append(d, 0, 0, 0, 0)
	var name [selectionMethodLen]byte
	copy(name[:selectionMethodLen-1], g.SelectionMethod)
	d = append(d, name[:]...)
	d = binary.BigEndian.AppendUint64(d, g.SelectionParam)
	for _, f := range hashFieldsText(g) {
		fname, mask, _ := strings.Cut(f, "=")
		h, ok := openflow.FieldByName(fname, false)
		if !ok || h.Class == openflow.ClassExperimenter {
			return openflow.Property{}, fmt.Errorf("selection field %s: %w", fname, openflow.ErrUnencodable)
		}
		n := int(h.Len)
		val, err := maskBytes(mask, n)
		if err != nil {
			return openflow.Property{}, fmt.Errorf("selection field %s: %w", f, err)
		}
		d = binary.BigEndian.AppendUint32(d, uint32(h.Class)<<16|uint32(h.Field&0x7f)<<9|uint32(n))
		d = append(d, val...)
	}
	return openflow.Property{Type: groupPropExperimenter, Data: d}, nil
}

// hashFieldsText returns a group's selection fields as NAME or
// NAME=MASK, as the flow language writes them.
func hashFieldsText(g *flow.Group) []string {
	if len(g.Fields) == 0 {
		return nil
	}
	s := flow.FormatGroup(&flow.Group{ID: g.ID, Type: g.Type, SelectionMethod: g.SelectionMethod, Fields: g.Fields}, flow.GroupOF15)
	i := strings.Index(s, ",fields")
	if i < 0 {
		return nil
	}
	s = s[i+len(",fields"):]
	if j := strings.Index(s, ",bucket="); j >= 0 {
		s = s[:j]
	}
	s = strings.TrimPrefix(s, "=")
	s = strings.TrimSuffix(strings.TrimPrefix(s, "("), ")")
	return strings.Split(s, ",")
}

// maskBytes writes a mask's text (empty: all ones) as n big-endian bytes.
func maskBytes(s string, n int) ([]byte, error) {
	if s == "" {
		b := make([]byte, n)
		for i := range b {
			b[i] = 0xff
		}
		return b, nil
	}
	if mac, err := net.ParseMAC(s); err == nil && len(mac) == n {
		return mac, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		b := a.AsSlice()
		if len(b) == n {
			return b, nil
		}
	}
	if h, ok := strings.CutPrefix(s, "0x"); ok {
		if len(h)%2 == 1 {
			h = "0" + h
		}
		raw, err := hex.DecodeString(h)
		if err != nil || len(raw) > n {
			return nil, fmt.Errorf("mask %q: %w", s, openflow.ErrUnencodable)
		}
		return append(make([]byte, n-len(raw)), raw...), nil
	}
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < 8 && u>>(8*n) != 0 {
		return nil, fmt.Errorf("mask %q: %w", s, openflow.ErrUnencodable)
	}
	b := binary.BigEndian.AppendUint64(nil, u)
	if n <= 8 {
		return b[8-n:], nil
	}
	return append(make([]byte, n-8), b...), nil
}

// GroupStats converts a group's counters to a group stats entry; refs is
// how many flows name the group.
func GroupStats(g *flow.InstalledGroup, refs int, now time.Time) openflow.GroupStats {
	p, b, bs := g.Stats()
	d := now.Sub(g.Installed)
	if d < 0 {
		d = 0
	}
	e := openflow.GroupStats{GroupID: g.ID, RefCount: uint32(refs), PacketCount: p, ByteCount: b,
		DurationSec: uint32(d / time.Second), DurationNsec: uint32(d % time.Second), Buckets: make([]openflow.BucketCounter, len(bs))}
	for i, c := range bs {
		e.Buckets[i] = openflow.BucketCounter{PacketCount: c[0], ByteCount: c[1]}
	}
	return e
}
