package ofconv

import (
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TestInPortWriteRoundTrip sends writes to in_port through a flow stats
// reply and back in every version the codec speaks: OpenFlow 1.0 carries them as
// NXAST_REG_LOAD into NXM_OF_IN_PORT, 1.3 a set_field as OFPAT_SET_FIELD
// on NXM_OF_IN_PORT (and a load as a load), 1.5 both as set_field.
func TestInPortWriteRoundTrip(t *testing.T) {
	for _, s := range []string{
		"table=64,priority=100,actions=push:NXM_OF_IN_PORT[],set_field:ANY->in_port,resubmit(,65),pop:NXM_OF_IN_PORT[]",
		"actions=set_field:3->in_port,set_field:LOCAL->in_port,output:1",
		"actions=load:0xffff->NXM_OF_IN_PORT[],load:0x1->NXM_OF_IN_PORT[0],move:NXM_NX_REG0[0..15]->NXM_OF_IN_PORT[],IN_PORT",
	} {
		f, err := flow.ParseFlow(s, flow.CmdAdd)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		for _, v := range []uint8{openflow.Version10, openflow.Version13, openflow.Version14, openflow.Version15} {
			got, err := roundTrip(v, f)
			if err != nil {
				t.Errorf("v0x%02x %s: %v", v, s, err)
				continue
			}
			if g, w := flow.FormatFlow(got), flow.FormatFlow(f); g != w {
				t.Errorf("v0x%02x:\n got %s\nwant %s", v, g, w)
			}
		}
	}
}

// TestInPortSetFieldFromWire decodes OFPAT_SET_FIELD on in_port as a
// controller may send it: on NXM_OF_IN_PORT (16 bits, Open vSwitch's
// encoding) or on OXM_OF_IN_PORT (32 bits, where ANY is 0xffffffff).
func TestInPortSetFieldFromWire(t *testing.T) {
	for _, tt := range []struct {
		name    string
		nxm     bool
		value   []byte
		want    string
		wantErr bool
	}{
		{name: "NXM ANY", nxm: true, value: b16(0xffff), want: "set_field:ANY->in_port"},
		{name: "NXM port 3", nxm: true, value: b16(3), want: "set_field:3->in_port"},
		{name: "OXM ANY", value: b32(0xffffffff), want: "set_field:ANY->in_port"},
		{name: "OXM LOCAL", value: b32(0xfffffffe), want: "set_field:LOCAL->in_port"},
		{name: "OXM port 3", value: b32(3), want: "set_field:3->in_port"},
		{name: "OXM out of range", value: b32(0x10000), wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			acts := []openflow.Action{&openflow.ActSetField{Field: field("in_port", tt.nxm, tt.value, nil)}}
			fm := &openflow.FlowMod{Command: openflow.FlowAdd, OutPort: openflow.PortAny, OutGroup: openflow.GroupAny,
				Instructions: []openflow.Instruction{{Type: openflow.InstApplyActions, Actions: acts}}}
			mod, err := fromWire(nil, openflow.Version13, fm)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("accepted: %s", flow.FormatFlow(mod.Flow))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := flow.FormatActionsIn(flow.OpenFlow13, &mod.Flow.Match, mod.Flow.Actions); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
