package ofconv

import (
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TestRoundTripTunCorpus: every tunnel flow of the corpus crosses
// OpenFlow 1.0 (NXM, Nicira set_tunnel) and 1.3 (OXM tunnel_id, set_field)
// as a flow stats entry and back as a flow mod, and reads the same in the
// spelling of that version (OpenFlow 1.3 has no set_tunnel: Open vSwitch
// prints it as set_field on tun_id there, and so does the flow that comes
// back).
func TestRoundTripTunCorpus(t *testing.T) {
	flows := corpusFile(t, "tun_flows.txt")
	if len(flows) < 40 {
		t.Fatalf("only %d flows in tun_flows.txt", len(flows))
	}
	for _, v := range []uint8{openflow.Version10, openflow.Version13} {
		d := flow.OpenFlow10
		if v != openflow.Version10 {
			d = flow.OpenFlow13
		}
		for _, s := range flows {
			f, err := flow.ParseFlow(s, flow.CmdAdd)
			if err != nil {
				t.Fatal(err)
			}
			got, err := roundTrip(v, f)
			if err != nil {
				t.Errorf("v0x%02x %q: %v", v, s, err)
				continue
			}
			g := flow.FormatMatch(&got.Match, got.Priority) + " " + flow.FormatActionsIn(d, &got.Match, got.Actions)
			w := flow.FormatMatch(&f.Match, f.Priority) + " " + flow.FormatActionsIn(d, &f.Match, f.Actions)
			if g != w {
				t.Errorf("v0x%02x %q:\n got %s\nwant %s", v, s, g, w)
			}
		}
	}
}

// TestTunEncodeAsOfctl decodes the tunnel flow mod that ovs-ofctl 3.1
// sent in OpenFlow 1.0, 1.3 and 1.5 (the codec's captures), and encodes
// the flow back: the match fields and the actions must be ovs-ofctl's,
// byte for byte.
func TestTunEncodeAsOfctl(t *testing.T) {
	for _, ver := range ctVersions {
		name := ver.name + "-add-flow-tunnel-" + ver.msg
		v, fm, _ := capturedMod(t, name)
		mod, err := fromWire(nil, v, fm)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f := mod.Flow
		nxm := v == openflow.Version10
		if g, w := fieldsKey(FieldsFromMatch(&f.Match, nxm)), fieldsKey(fm.Match); g != w {
			t.Errorf("%s: match\n got %s\nwant %s", name, g, w)
		}
		compareActionsAsOfctl(t, name, v, fm, f)
		t.Logf("%s: %s", name, flow.FormatFlow(f))
	}
}
