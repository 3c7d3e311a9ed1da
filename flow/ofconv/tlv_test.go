package ofconv

import (
	"errors"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// tlvParser is a parser whose bridge maps tun_metadata0 (4 bytes, as OVN
// maps it) and tun_metadata5 (8 bytes).
func tlvParser(t testing.TB) *flow.Parser {
	m, err := (*flow.TLVMap)(nil).Apply(flow.TLVAdd, []flow.TLVMapping{{Class: 0x102, Type: 0x80, Len: 4, Index: 0}, {Class: 0xffff, Type: 1, Len: 8, Index: 5}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &flow.Parser{TLV: m}
}

// TestTunMetadataFieldsRoundTrip: a match on tun_metadata fields becomes
// NXM_NX_TUN_METADATA fields of the mapped lengths, which encode, decode
// and convert back to the same match, in every version.
func TestTunMetadataFieldsRoundTrip(t *testing.T) {
	p := tlvParser(t)
	for _, in := range []string{
		"tun_metadata0=0x1234",
		"tun_metadata0=0x1200/0xff00,tun_metadata5=0x5",
		"tun_metadata0",
		"tun_id=7,tun_metadata5=0x8000000000000000/0x8000000000000000",
	} {
		m, err := p.ParseMatch(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		for _, v := range []uint8{openflow.Version10, openflow.Version13, openflow.Version15} {
			nxm := v == openflow.Version10
			fs := FieldsFromMatch(m, nxm)
			fm := &openflow.FlowMod{Nicira: nxm, Command: openflow.FlowAdd, Match: fs, Priority: 1}
			b, err := openflow.Encode(v, 1, fm)
			if err != nil {
				t.Fatalf("%s: encode 0x%02x: %v", in, v, err)
			}
			_, dm, err := openflow.Decode(b)
			if err != nil {
				t.Fatalf("%s: decode 0x%02x: %v", in, v, err)
			}
			back, err := MatchFromFields(p, dm.(*openflow.FlowMod).Match)
			if err != nil {
				t.Fatalf("%s: 0x%02x: %v", in, v, err)
			}
			if got, want := flow.FormatMatch(back, flow.DefaultPriority), flow.FormatMatch(m, flow.DefaultPriority); got != want {
				t.Errorf("0x%02x: %s came back as %s", v, want, got)
			}
		}
	}
	// A field the map does not map is refused with Open vSwitch's error.
	_, err := MatchFromFields(p, []openflow.Field{field("tun_metadata1", true, []byte{1}, nil)})
	var oe *openflow.Error
	if !errors.As(err, &oe) || oe.Type != openflow.ErrTypeExperimenter || oe.Code != openflow.CodeInvalidTLVField {
		t.Fatalf("unmapped tun_metadata1: %v, want NXFMFC_INVALID_TLV_FIELD", err)
	}
}

// TestTunMetadataActionsRoundTrip: set_field, load and move on mapped
// tun_metadata fields encode, decode and convert back to the same
// actions, in every version.
func TestTunMetadataActionsRoundTrip(t *testing.T) {
	p := tlvParser(t)
	for _, in := range []string{
		"actions=set_field:0x1234->tun_metadata0",
		"actions=load:0x5->tun_metadata0[16..31],output:1",
		"actions=set_field:0x12/0xff->tun_metadata5",
		"actions=move:NXM_NX_REG0[0..14]->NXM_NX_TUN_METADATA0[16..30]",
		"actions=move:tun_metadata5[0..15]->reg1[0..15]",
	} {
		f, err := p.ParseFlow(in, flow.CmdAdd)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		want := flow.FormatActions(f.Actions)
		for _, v := range []uint8{openflow.Version10, openflow.Version13, openflow.Version15} {
			fm := &openflow.FlowMod{Nicira: v == openflow.Version10, Command: openflow.FlowAdd, Priority: 1}
			if v == openflow.Version10 {
				fm.Actions, err = ActionsToOF(v, &f.Match, f.Actions)
			} else {
				fm.Instructions, err = InstructionsFromActions(v, &f.Match, 0, f.Actions)
			}
			if err != nil {
				t.Errorf("%s: 0x%02x: encode: %v", in, v, err)
				continue
			}
			b, err := openflow.Encode(v, 1, fm)
			if err != nil {
				t.Errorf("%s: 0x%02x: wire encode: %v", in, v, err)
				continue
			}
			_, dm, err := openflow.Decode(b)
			if err != nil {
				t.Errorf("%s: 0x%02x: decode: %v", in, v, err)
				continue
			}
			var text string
			if d := dm.(*openflow.FlowMod); v == openflow.Version10 {
				text, err = actionsText(d.Actions)
			} else {
				text, err = instructionsText(d.Instructions)
			}
			if err != nil {
				t.Errorf("%s: 0x%02x: %v", in, v, err)
				continue
			}
			back, err := p.ParseFlow("actions="+text, flow.CmdAdd)
			if err != nil {
				t.Errorf("%s: 0x%02x: %s does not parse: %v", in, v, text, err)
				continue
			}
			if got := flow.FormatActions(back.Actions); got != want {
				t.Errorf("%s: 0x%02x: came back as %s (%s), want %s", in, v, got, text, want)
			}
		}
	}
}
