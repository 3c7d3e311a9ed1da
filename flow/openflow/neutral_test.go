package openflow

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fieldsText renders fields as "name=value/mask" with hex bytes, for
// comparisons that read like the flow they came from.
func fieldsText(fs []Field) string {
	var parts []string
	for _, f := range fs {
		s := fmt.Sprintf("%s=%x", f.Name, f.Value)
		if f.Mask != nil {
			s += fmt.Sprintf("/%x", f.Mask)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

func loadCaptured(t *testing.T, name string) (Header, Message) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "captured", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	h, m, err := Decode(raw)
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return h, m
}

// TestDecodeNeutral checks the neutral representation of flows that real
// ovs-ofctl encoded: field names, values and masks, and action values.
func TestDecodeNeutral(t *testing.T) {
	regsWantMatch := "reg0=00000005,reg3=00000010/000000f0"
	regsWantActions := []Action{
		&ActResubmit{InPort: 0xfff8, Table: 2, WithTable: true},
		&ActRegLoad{Dst: FieldHeader{Name: "reg1", Class: ClassNXM1, Field: 1, Len: 4}, NBits: 32, Value: 5},
		&ActRegMove{NBits: 48, Src: FieldHeader{Name: "eth_src", Class: ClassNXM0, Field: 2, Len: 6}, Dst: FieldHeader{Name: "eth_dst", Class: ClassNXM0, Field: 1, Len: 6}},
	}
	tests := []struct {
		name        string
		inFile      string
		wantVersion uint8
		wantMatch   string
		wantActions []Action
		wantTable   uint8
	}{
		{name: "of10-ofp_match", inFile: "of10-add-flow-basic-05", wantVersion: Version10,
			wantMatch: "in_port=0001,eth_type=0800,ip_src=0a000000/ff000000", wantActions: []Action{&ActOutput{Port: 2}}},
		{name: "of10-nxm", inFile: "of10-add-flow-table-regs-09", wantVersion: Version10, wantTable: 1,
			wantMatch: regsWantMatch, wantActions: regsWantActions},
		{name: "of13-oxm", inFile: "of13-add-flow-table-regs-05", wantVersion: Version13, wantTable: 1,
			wantMatch: regsWantMatch, wantActions: regsWantActions},
		{name: "of15-set-field", inFile: "of15-add-flow-set-field-05", wantVersion: Version15,
			wantMatch: "eth_type=0806,arp_tpa=0a000001",
			wantActions: []Action{
				&ActSetField{Field: Field{Name: "eth_src", Class: ClassOpenFlow, Field: 4, Value: mac1[:]}},
				&ActSetField{Field: Field{Name: "reg2", Class: ClassNXM1, Field: 2, Value: be32(5)}},
				&ActEthertype{Type: ActTypePushVLAN, EtherType: 0x8100},
				&ActSetField{Field: Field{Name: "vlan_vid", Class: ClassOpenFlow, Field: 6, Value: be16(0x1007)}},
				&ActPopVLAN{},
				&ActOutput{Port: PortController, MaxLen: 0xffff},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, m := loadCaptured(t, tc.inFile)
			fm, ok := m.(*FlowMod)
			if !ok {
				t.Fatalf("decoded %T, want *FlowMod", m)
			}
			if h.Version != tc.wantVersion || fm.TableID != tc.wantTable {
				t.Fatalf("version %d table %d, want %d %d", h.Version, fm.TableID, tc.wantVersion, tc.wantTable)
			}
			match, acts := fm.Match, fm.Actions
			if h.Version == Version10 && !fm.Nicira {
				match = fm.Match10.Fields()
			}
			if h.Version != Version10 {
				if len(fm.Instructions) != 1 || fm.Instructions[0].Type != InstApplyActions {
					t.Fatalf("instructions %+v, want one apply_actions", fm.Instructions)
				}
				acts = fm.Instructions[0].Actions
			}
			if got := fieldsText(match); got != tc.wantMatch {
				t.Errorf("match %s, want %s", got, tc.wantMatch)
			}
			if !reflect.DeepEqual(acts, tc.wantActions) {
				for i := range acts {
					t.Logf("got action %d: %#v", i, acts[i])
				}
				t.Errorf("actions differ from %d wanted", len(tc.wantActions))
			}
		})
	}
}

// TestDecodeNeutralLearn checks a learn action as ovs-ofctl encoded it.
func TestDecodeNeutralLearn(t *testing.T) {
	_, m := loadCaptured(t, "of13-add-flow-learn-05")
	acts := m.(*FlowMod).Instructions[0].Actions
	l, ok := acts[0].(*ActLearn)
	if !ok {
		t.Fatalf("action %T, want *ActLearn", acts[0])
	}
	if l.TableID != 10 || l.IdleTimeout != 60 || l.Priority != 5 || l.Cookie != 9 || len(l.Specs) != 5 {
		t.Fatalf("learn %+v", l)
	}
	var got []string
	for _, s := range l.Specs {
		src := s.Src.Name
		if s.SrcImmediate {
			src = fmt.Sprintf("%x", s.Value)
		}
		got = append(got, fmt.Sprintf("%d:%s[%d]->%d:%s[%d]", s.NBits, src, s.SrcOfs, s.Dst, s.DstField.Name, s.DstOfs))
	}
	want := []string{"12:vlan_tci[0]->0:vlan_tci[0]", "48:eth_src[0]->0:eth_dst[0]", "16:in_port[0]->1:reg0[0]", "32:00000005[0]->1:reg1[0]", "16:in_port[0]->2:[0]"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("specs %q, want %q", got, want)
	}
}

// TestFieldByName: names map to the wire identity OVS uses.
func TestFieldByName(t *testing.T) {
	tests := []struct {
		inName   string
		inNXM    bool
		wantHdr  string
		wantSize uint8
	}{
		{inName: "in_port", inNXM: true, wantHdr: "00000002", wantSize: 2},
		{inName: "in_port", inNXM: false, wantHdr: "80000004", wantSize: 4},
		{inName: "reg15", inNXM: true, wantHdr: "00011e04", wantSize: 4},
		{inName: "xxreg3", inNXM: true, wantHdr: "0001e410", wantSize: 16},
		{inName: "xreg7", inNXM: false, wantHdr: "80010e08", wantSize: 8},
		{inName: "eth_dst", inNXM: false, wantHdr: "80000606", wantSize: 6},
		{inName: "tcp_flags", inNXM: false, wantHdr: "80005402", wantSize: 2},
		{inName: "tcp_flags", inNXM: true, wantHdr: "00014402", wantSize: 2},
		{inName: "actset_output", inNXM: false, wantHdr: "80005604", wantSize: 4},
		{inName: "tun_erspan_idx", inNXM: true, wantHdr: "ffff160800002320", wantSize: 8},
	}
	for _, tc := range tests {
		t.Run(tc.inName, func(t *testing.T) {
			fh, ok := FieldByName(tc.inName, tc.inNXM)
			if !ok {
				t.Fatalf("unknown")
			}
			w := &wr{}
			fh.append(w)
			if got := fmt.Sprintf("%x", w.b); got != tc.wantHdr || fh.Len != tc.wantSize {
				t.Fatalf("header %s len %d, want %s len %d", got, fh.Len, tc.wantHdr, tc.wantSize)
			}
		})
	}
}

// TestDecodeFieldsAllocs checks that a match is decoded in two
// allocations whatever its number of fields (one copy of its bytes, one
// list), and that its fields are still its own: a change to the buffer
// it was decoded from changes none of them.
func TestDecodeFieldsAllocs(t *testing.T) {
	var fs []Field
	for i, name := range []string{"reg0", "reg1", "metadata", "eth_src", "eth_dst", "ip_src", "ip_dst", "tcp_dst"} {
		fh, ok := FieldByName(name, true)
		if !ok {
			t.Fatalf("no field %s", name)
		}
		f := Field{Name: name, Class: fh.Class, Field: fh.Field, Value: make([]byte, fh.Len)}
		f.Value[0] = byte(i + 1)
		if i%2 == 0 {
			f.Mask = make([]byte, fh.Len)
			f.Mask[0] = 0xff
		}
		fs = append(fs, f)
	}
	w := &wr{}
	if err := appendFields(w, fs); err != nil {
		t.Fatal(err)
	}
	in := w.b
	want := fieldsText(fs)
	var got []Field
	n := testing.AllocsPerRun(100, func() {
		var err error
		if got, err = decodeFields(&rd{b: in}); err != nil {
			t.Fatal(err)
		}
	})
	if n > 2 {
		t.Errorf("decoding %d fields allocates %v times, want 2", len(fs), n)
	}
	clear(in)
	if s := fieldsText(got); s != want {
		t.Errorf("decoded %s, want %s", s, want)
	}
}
