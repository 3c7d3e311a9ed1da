package openflow

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// ctActions returns the actions of a captured flow mod of any version.
func ctActions(t *testing.T, name string) ([]Field, []Action) {
	t.Helper()
	h, m := loadCaptured(t, name)
	fm, ok := m.(*FlowMod)
	if !ok {
		t.Fatalf("%s decoded %T, want *FlowMod", name, m)
	}
	if h.Version == Version10 {
		return fm.Match, fm.Actions
	}
	if len(fm.Instructions) == 0 {
		return fm.Match, nil
	}
	if len(fm.Instructions) != 1 || fm.Instructions[0].Type != InstApplyActions {
		t.Fatalf("%s: instructions %+v, want one apply_actions", name, fm.Instructions)
	}
	return fm.Match, fm.Instructions[0].Actions
}

// TestDecodeCTFromOfctl decodes the ct actions and ct matches that
// ovs-ofctl 3.1 sent (OVN's two ct actions among them) in every version.
func TestDecodeCTFromOfctl(t *testing.T) {
	reg13 := FieldHeader{Name: "reg13", Class: ClassNXM1, Field: 13, Len: 4}
	ctMark := FieldHeader{Name: "ct_mark", Class: ClassNXM1, Field: 107, Len: 4}
	ctLabel := FieldHeader{Name: "ct_label", Class: ClassNXM1, Field: 108, Len: 16}
	xxreg0 := FieldHeader{Name: "xxreg0", Class: ClassNXM1, Field: 111, Len: 16}
	tests := []struct {
		inSession   string
		wantMatch   string
		wantActions []Action
		// wantActions13 replaces wantActions in OpenFlow 1.3, where
		// ovs-ofctl sends a whole-field set_field as OFPAT_SET_FIELD.
		wantActions13 []Action
	}{
		{
			inSession: "add-flow-ct-ovn",
			wantActions: []Action{&ActCT{ZoneFromField: true, ZoneSrc: reg13, ZoneNBits: 16, RecircTable: 15,
				Actions: []Action{&ActNAT{}}}},
		},
		{
			inSession: "add-flow-ct-ovn-commit",
			wantMatch: "eth_type=0800,ct_state=00000022/00000026,ct_mark=00000002/00000003,ct_label=00000000000000000000000000000001/00000000000000000000000000000001",
			wantActions: []Action{&ActCT{Flags: CTFlagCommit, ZoneFromField: true, ZoneSrc: reg13, ZoneNBits: 16, RecircTable: CTRecircNone,
				Actions: []Action{
					&ActNAT{Flags: NATFlagSrc},
					&ActRegLoad{Dst: ctMark, NBits: 1, Value: 0},
					&ActRegMove{NBits: 32, SrcOfs: 0, DstOfs: 96, Src: xxreg0, Dst: ctLabel},
				}}},
		},
		{
			inSession: "add-flow-ct-nat-range",
			wantActions: []Action{&ActCT{Flags: CTFlagCommit | CTFlagForce, ZoneImm: 5, RecircTable: CTRecircNone, Alg: 21,
				Actions: []Action{
					&ActNAT{Flags: NATFlagDst | NATFlagPersistent | NATFlagProtoRandom,
						AddrMin: netip.MustParseAddr("10.0.0.1"), AddrMax: netip.MustParseAddr("10.0.0.9"), ProtoMin: 80, ProtoMax: 90},
					&ActRegLoad{Dst: ctLabel, NBits: 64, Value: 0x11},
					&ActRegLoad{Dst: ctLabel, Ofs: 64, NBits: 64, Value: 0},
					&ActRegLoad{Dst: ctMark, NBits: 32, Value: 5},
				}}, &ActNX{Subtype: NXActCTClear}},
			wantActions13: []Action{&ActCT{Flags: CTFlagCommit | CTFlagForce, ZoneImm: 5, RecircTable: CTRecircNone, Alg: 21,
				Actions: []Action{
					&ActNAT{Flags: NATFlagDst | NATFlagPersistent | NATFlagProtoRandom,
						AddrMin: netip.MustParseAddr("10.0.0.1"), AddrMax: netip.MustParseAddr("10.0.0.9"), ProtoMin: 80, ProtoMax: 90},
					&ActSetField{Field: oxmNX("ct_label", append(make([]byte, 15), 0x11), nil)},
					&ActSetField{Field: oxmNX("ct_mark", be32(5), nil)},
				}}, &ActNX{Subtype: NXActCTClear}},
		},
		{
			inSession: "add-flow-ct-ipv6",
			wantActions: []Action{&ActCT{Flags: CTFlagCommit, RecircTable: 23,
				Actions: []Action{&ActNAT{Flags: NATFlagSrc | NATFlagProtoHash,
					AddrMin: netip.MustParseAddr("fd00::1"), AddrMax: netip.MustParseAddr("fd00::9"), ProtoMin: 1000}}}},
		},
	}
	for _, ver := range []struct{ name, msg string }{{"of10", "09"}, {"of13", "05"}, {"of15", "05"}} {
		for _, tc := range tests {
			t.Run(ver.name+"-"+tc.inSession, func(t *testing.T) {
				match, acts := ctActions(t, ver.name+"-"+tc.inSession+"-"+ver.msg)
				want := tc.wantActions
				if ver.name == "of13" && tc.wantActions13 != nil {
					want = tc.wantActions13
				}
				if ver.name == "of15" {
					// OpenFlow 1.5 has no NXAST_REG_LOAD or REG_MOVE:
					// ovs-ofctl sends set_field and copy_field.
					want = nil
				}
				if want != nil && !reflect.DeepEqual(acts, want) {
					for i := range acts {
						t.Logf("got action %d: %#v", i, acts[i])
					}
					t.Errorf("actions differ from the %d wanted", len(want))
				}
				if _, ok := acts[0].(*ActCT); !ok {
					t.Errorf("first action %T, want *ActCT", acts[0])
				}
				if tc.wantMatch != "" {
					// ovs-ofctl puts eth_type and the ct fields in the
					// same order in NXM and OXM.
					if got := fieldsText(match); got != tc.wantMatch {
						t.Errorf("match %s, want %s", got, tc.wantMatch)
					}
				}
			})
		}
	}
}

// TestDecodeCTTupleMatch checks the original-direction tuple fields as
// ovs-ofctl encodes them (NXM class 1 in OXM matches too).
func TestDecodeCTTupleMatch(t *testing.T) {
	for _, name := range []string{"of10-add-flow-ct-tuple-09", "of13-add-flow-ct-tuple-05", "of15-add-flow-ct-tuple-05"} {
		match, _ := ctActions(t, name)
		want := "eth_type=0800,nw_proto=06,ct_state=00000020/00000030,ct_zone=0007,ct_nw_src=0a000000/ff000000,ct_nw_dst=0a010101,ct_nw_proto=06,ct_tp_src=1000/ff00,ct_tp_dst=0050"
		if got := fieldsText(match); got != want {
			t.Errorf("%s: match %s, want %s", name, got, want)
		}
	}
}

// TestEncodeCTRoundTrip: ct actions built in code encode as ovs-ofctl
// would and decode back to the same values, in every version.
func TestEncodeCTRoundTrip(t *testing.T) {
	acts := []Action{
		&ActCT{Flags: CTFlagCommit, ZoneImm: 9, RecircTable: 4, Alg: 69, Actions: []Action{
			&ActNAT{Flags: NATFlagSrc, AddrMin: netip.MustParseAddr("192.168.0.1")},
			&ActSetField{Field: oxmNX("ct_mark", be32(7), be32(0xf)), Nicira: true},
		}},
		&ActCT{RecircTable: CTRecircNone, Actions: []Action{}},
		&ActNAT{Flags: NATFlagDst, AddrMin: netip.MustParseAddr("::1"), AddrMax: netip.MustParseAddr("::2"), ProtoMin: 1, ProtoMax: 2},
		&ActNX{Subtype: NXActCTClear},
	}
	for _, v := range []uint8{Version10, Version13, Version15} {
		b, err := EncodeActions(v, acts)
		if err != nil {
			t.Fatalf("v%d encode: %v", v, err)
		}
		got, err := DecodeActions(v, b)
		if err != nil {
			t.Fatalf("v%d decode %x: %v", v, b, err)
		}
		if !reflect.DeepEqual(got, acts) {
			t.Fatalf("v%d: round trip changed the actions\n got %#v\nwant %#v", v, got, acts)
		}
		b2, _ := EncodeActions(v, got)
		if !bytes.Equal(b, b2) {
			t.Fatalf("v%d: re-encoding differs", v)
		}
	}
}

func oxmNX(name string, v, m []byte) Field {
	fh := hdr(name, true)
	return Field{Name: name, Class: fh.Class, Field: fh.Field, Value: v, Mask: m}
}

// TestDecodeCTBadInput: malformed ct and nat actions are refused with the
// error Open vSwitch sends, never a panic.
func TestDecodeCTBadInput(t *testing.T) {
	ct := func(flags uint16, zoneSrc uint32, zone uint16, nested ...byte) []byte {
		b := []byte{0xff, 0xff, 0, byte(24 + len(nested)), 0, 0, 0x23, 0x20, 0, nxCT, byte(flags >> 8), byte(flags)}
		b = append(b, be32(zoneSrc)...)
		b = append(b, byte(zone>>8), byte(zone), 0xff, 0, 0, 0, 0, 0)
		return append(b, nested...)
	}
	nat := func(flags, present uint16, opts ...byte) []byte {
		n := 16 + len(opts)
		n = (n + 7) &^ 7
		b := []byte{0xff, 0xff, 0, byte(n), 0, 0, 0x23, 0x20, 0, nxNAT, 0, 0, byte(flags >> 8), byte(flags), byte(present >> 8), byte(present)}
		b = append(b, opts...)
		return append(b, make([]byte, n-len(b))...)
	}
	reg13 := uint32(ClassNXM1)<<16 | 13<<9 | 4
	tests := []struct {
		name     string
		in       []byte
		wantCode uint16
	}{
		{"short-ct", []byte{0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, nxCT, 0, 0, 0, 0, 0, 0}, CodeBadActionLen},
		{"force-without-commit", ct(CTFlagForce, 0, 0), CodeBadActionArgument},
		{"zone-of-8-bits", ct(0, reg13, 7, nil...), CodeBadActionSetLen},
		{"exec-without-commit", ct(0, 0, 0, []byte{0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, NXActCTClear, 0, 0, 0, 0, 0, 0}...), CodeBadActionArgument},
		{"nat-src-without-commit", ct(0, 0, 0, nat(NATFlagSrc, 0)...), CodeBadActionArgument},
		{"nested-truncated", ct(CTFlagCommit, 0, 0, 0, 0, 0, 8), CodeBadActionLen},
		{"nat-src-and-dst", nat(NATFlagSrc|NATFlagDst, 0), CodeBadActionArgument},
		{"nat-hash-and-random", nat(NATFlagProtoHash|NATFlagProtoRandom, 0), CodeBadActionArgument},
		{"nat-unknown-flag", nat(1<<5, 0), CodeBadActionArgument},
		{"nat-ipv4-max-alone", nat(NATFlagSrc, natRangeIPv4Max, 1, 2, 3, 4), CodeBadActionArgument},
		{"nat-ipv4-zero", nat(NATFlagSrc, natRangeIPv4Min, 0, 0, 0, 0), CodeBadActionArgument},
		{"nat-ipv4-backwards", nat(NATFlagSrc, natRangeIPv4Min|natRangeIPv4Max, 10, 0, 0, 9, 10, 0, 0, 1), CodeBadActionArgument},
		{"nat-ipv4-and-ipv6", nat(NATFlagSrc, natRangeIPv4Min|natRangeIPv6Min, 10, 0, 0, 1), CodeBadActionArgument},
		{"nat-ipv6-truncated", nat(NATFlagSrc, natRangeIPv6Min, 0xfd, 0, 0, 0, 0, 0, 0, 0), CodeBadActionArgument},
		{"nat-port-without-address", nat(NATFlagSrc, natRangeProtoMin, 0, 80), CodeBadActionArgument},
		{"nat-port-zero", nat(NATFlagSrc, natRangeIPv4Min|natRangeProtoMin, 10, 0, 0, 1, 0, 0), CodeBadActionArgument},
		{"nat-port-backwards", nat(NATFlagSrc, natRangeIPv4Min|natRangeProtoMin|natRangeProtoMax, 10, 0, 0, 1, 0, 90, 0, 80), CodeBadActionArgument},
		{"nat-port-max-alone", nat(NATFlagSrc, natRangeIPv4Min|natRangeProtoMax, 10, 0, 0, 1, 0, 90), CodeBadActionArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeActions(Version13, tc.in)
			var oe *Error
			if !errors.Is(err, ErrBadAction) || !errors.As(err, &oe) || oe.Type != ErrTypeBadAction || oe.Code != tc.wantCode {
				t.Fatalf("got %v (%+v), want OFPET_BAD_ACTION code %d", err, oe, tc.wantCode)
			}
		})
	}
}
