package flow

import (
	"math/rand/v2"
	"testing"
)

// TestParseInPortWrite checks the spellings of a write to in_port that
// Open vSwitch 3.1 accepts, and how ovs-ofctl prints them back: in
// OpenFlow 1.0 every one as a load into NXM_OF_IN_PORT, in 1.3 a
// set_field as set_field with the port's name (ANY for 0xffff), and each
// as written when the daemon saves it.
func TestParseInPortWrite(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want10  string
		want13  string
		wantErr bool
	}{
		{name: "OVN's table 64", in: "actions=push:NXM_OF_IN_PORT[],set_field:ANY->in_port,resubmit(,65),pop:NXM_OF_IN_PORT[]",
			want10: "push:NXM_OF_IN_PORT[],load:0xffff->NXM_OF_IN_PORT[],resubmit(,65),pop:NXM_OF_IN_PORT[]",
			want13: "push:NXM_OF_IN_PORT[],set_field:ANY->in_port,resubmit(,65),pop:NXM_OF_IN_PORT[]"},
		{name: "NONE and 65535 are ANY", in: "actions=set_field:NONE->in_port,set_field:65535->in_port",
			want10: "load:0xffff->NXM_OF_IN_PORT[],load:0xffff->NXM_OF_IN_PORT[]",
			want13: "set_field:ANY->in_port,set_field:ANY->in_port"},
		{name: "numbers and names", in: "actions=set_field:3->in_port,set_field:LOCAL->in_port,set_field:IN_PORT->in_port,set_field:4294967295->in_port",
			want10: "load:0x3->NXM_OF_IN_PORT[],load:0xfffe->NXM_OF_IN_PORT[],load:0xfff8->NXM_OF_IN_PORT[],load:0xffff->NXM_OF_IN_PORT[]",
			want13: "set_field:3->in_port,set_field:LOCAL->in_port,set_field:IN_PORT->in_port,set_field:ANY->in_port"},
		{name: "load and move stay loads and moves", in: "actions=load:0xffff->NXM_OF_IN_PORT[],load:0x1->NXM_OF_IN_PORT[0],move:NXM_NX_REG0[0..15]->NXM_OF_IN_PORT[]",
			want10: "load:0xffff->NXM_OF_IN_PORT[],load:0x1->NXM_OF_IN_PORT[0],move:NXM_NX_REG0[0..15]->NXM_OF_IN_PORT[]",
			want13: "load:0xffff->NXM_OF_IN_PORT[],load:0x1->NXM_OF_IN_PORT[0],move:NXM_NX_REG0[0..15]->NXM_OF_IN_PORT[]"},
		{name: "a mask is refused", in: "actions=set_field:1/1->in_port", wantErr: true},
		{name: "a port out of range is refused", in: "actions=set_field:70000->in_port", wantErr: true},
		{name: "a load wider than the field is refused", in: "actions=load:0x10000->NXM_OF_IN_PORT[]", wantErr: true},
		{name: "a move of other widths is refused", in: "actions=move:NXM_NX_REG0[]->NXM_OF_IN_PORT[]", wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFlow(tt.in, CmdAdd)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("accepted: %s", FormatActions(f.Actions))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := FormatActions(f.Actions); got != tt.want10 {
				t.Errorf("OpenFlow 1.0: %q, want %q", got, tt.want10)
			}
			if got := FormatActionsIn(OpenFlow13, &f.Match, f.Actions); got != tt.want13 {
				t.Errorf("OpenFlow 1.3: %q, want %q", got, tt.want13)
			}
			// Each spelling reads back as the same flow; as written, with
			// the same spellings.
			for _, format := range []func(*Flow) string{FormatFlow, FormatFlowAsWritten} {
				text := format(f)
				g, err := ParseFlow(text, CmdAdd)
				if err != nil {
					t.Fatalf("%s: %v", text, err)
				}
				if got := format(g); got != text {
					t.Errorf("%s reads back as %q", text, got)
				}
			}
		})
	}
}

// TestTranslateInPortWrite checks translation after a write to in_port,
// as Open vSwitch's: only the translation's idea of the ingress port
// changes (no datapath action, in_port stays exact in the megaflow), an
// output to the packet's own port is no longer skipped (the datapath
// sends it back through its in_port port), an output to the written port
// is skipped, IN_PORT goes to the written port, and later lookups see the
// written value.
func TestTranslateInPortWrite(t *testing.T) {
	for _, tt := range []struct {
		name        string
		flows       []string
		in          string
		wantActions string
		wantInPort  uint32 // the final flow's in_port
	}{
		{name: "OVN: ANY, then output to the ingress port",
			flows: []string{"actions=push:NXM_OF_IN_PORT[],set_field:ANY->in_port,resubmit(,65),pop:NXM_OF_IN_PORT[]",
				"table=65,in_port=ANY,actions=mod_dl_src:00:00:00:00:00:aa,output:1", "table=65,priority=0,actions=drop"},
			in: "in_port=1", wantActions: "mod_dl_src:00:00:00:00:00:aa,IN_PORT", wantInPort: 1},
		{name: "without the write the output to the ingress port is skipped",
			flows: []string{"actions=resubmit(,65)", "table=65,actions=output:1"},
			in:    "in_port=1", wantActions: "output:1", wantInPort: 1},
		{name: "IN_PORT goes to the written port",
			flows: []string{"actions=set_field:3->in_port,IN_PORT"},
			in:    "in_port=1", wantActions: "output:3", wantInPort: 3},
		{name: "the written port is skipped, the packet's is not",
			flows: []string{"actions=load:0x3->NXM_OF_IN_PORT[],output:3,output:1,output:2"},
			in:    "in_port=1", wantActions: "IN_PORT,output:2", wantInPort: 3},
		{name: "IN_PORT to ANY sends nothing",
			flows: []string{"actions=set_field:ANY->in_port,IN_PORT,output:2"},
			in:    "in_port=1", wantActions: "output:2", wantInPort: PortNone},
		{name: "move and pop write it too",
			flows: []string{"actions=load:0x7->NXM_NX_REG0[],move:NXM_NX_REG0[0..15]->NXM_OF_IN_PORT[],resubmit(,1),push:NXM_NX_REG0[0..15],pop:NXM_OF_IN_PORT[],output:1",
				"table=1,in_port=7,actions=output:2"},
			in: "in_port=1", wantActions: "output:2,IN_PORT", wantInPort: 7},
		{name: "ANY, then output to the packet's own port",
			flows: []string{"actions=set_field:ANY->in_port,output:1"},
			in:    "in_port=1", wantActions: "IN_PORT", wantInPort: PortNone},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tbl := pipeline(t, tt.flows...)
			k := microflow(t, tt.in)
			tr := tbl.Snapshot().Translate(&k, false)
			if got := FormatActions(tr.Actions); got != tt.wantActions {
				t.Errorf("actions %q, want %q", got, tt.wantActions)
			}
			if tr.Mask.InPort != ^uint32(0) {
				t.Errorf("megaflow in_port mask %#x, want exact", tr.Mask.InPort)
			}
			if tr.Final.InPort != tt.wantInPort {
				t.Errorf("final in_port %d, want %d", tr.Final.InPort, tt.wantInPort)
			}
			for _, a := range tr.Actions {
				if a.Type == ActSetField && a.Field == FieldInPort {
					t.Errorf("a datapath set of in_port: %s", FormatActions(tr.Actions))
				}
			}
			checkSound(t, tbl.Snapshot(), &k, tr, rand.New(rand.NewPCG(3, 4)), 200)
		})
	}
}
