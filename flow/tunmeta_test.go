package flow

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestTLVMapApply(t *testing.T) {
	m0, err := (*TLVMap)(nil).Apply(TLVAdd, []TLVMapping{{Class: 0x102, Type: 0x80, Len: 4, Index: 0}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		inCmd   uint16
		inMaps  []TLVMapping
		inUse   int // index a flow uses, or -1
		wantErr error
		wantMap []TLVMapping // when wantErr is nil
	}{
		{"add", TLVAdd, []TLVMapping{{Class: 1, Type: 2, Len: 12, Index: 5}}, -1, nil,
			[]TLVMapping{{0x102, 0x80, 4, 0}, {1, 2, 12, 5}}},
		{"index mapped", TLVAdd, []TLVMapping{{Class: 1, Type: 2, Len: 4, Index: 0}}, -1, ErrTLVAlreadyMapped, nil},
		{"option mapped", TLVAdd, []TLVMapping{{Class: 0x102, Type: 0x80, Len: 4, Index: 1}}, -1, ErrTLVDupEntry, nil},
		{"option twice in one mod", TLVAdd, []TLVMapping{{Class: 7, Type: 7, Len: 4, Index: 1}, {Class: 7, Type: 7, Len: 4, Index: 2}}, -1, ErrTLVDupEntry, nil},
		{"bad length", TLVAdd, []TLVMapping{{Class: 1, Type: 2, Len: 5, Index: 1}}, -1, ErrTLVBadLen, nil},
		{"zero length", TLVAdd, []TLVMapping{{Class: 1, Type: 2, Len: 0, Index: 1}}, -1, ErrTLVBadLen, nil},
		{"length over 124", TLVAdd, []TLVMapping{{Class: 1, Type: 2, Len: 128, Index: 1}}, -1, ErrTLVBadLen, nil},
		{"index 64", TLVAdd, []TLVMapping{{Class: 1, Type: 2, Len: 4, Index: 64}}, -1, ErrTLVBadIndex, nil},
		{"over the space", TLVAdd, []TLVMapping{{Class: 1, Type: 2, Len: 16, Index: 1}}, -1, ErrTLVTableFull, nil},
		{"second over the space", TLVAdd, []TLVMapping{{Class: 1, Type: 2, Len: 8, Index: 1}, {Class: 1, Type: 3, Len: 8, Index: 2}}, -1, ErrTLVTableFull, nil},
		{"delete", TLVDelete, []TLVMapping{{Index: 0}, {Index: 9}}, -1, nil, nil},
		{"delete in use", TLVDelete, []TLVMapping{{Index: 0}}, 0, ErrTLVInUse, nil},
		{"clear in use", TLVClear, nil, 0, ErrTLVInUse, nil},
		{"clear", TLVClear, nil, 3, nil, nil},
		{"bad command", 3, nil, -1, ErrTLVBadCommand, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := m0.Apply(tc.inCmd, tc.inMaps, func(i int) bool { return i == tc.inUse })
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Apply: %v, want %v", err, tc.wantErr)
			}
			if got := m0.Mappings(); len(got) != 1 || got[0] != (TLVMapping{0x102, 0x80, 4, 0}) {
				t.Fatalf("the map changed in place: %+v", got)
			}
			if err != nil {
				return
			}
			got := n.Mappings()
			if len(got) != len(tc.wantMap) {
				t.Fatalf("mappings %+v, want %+v", got, tc.wantMap)
			}
			for i := range got {
				if got[i] != tc.wantMap[i] {
					t.Fatalf("mappings %+v, want %+v", got, tc.wantMap)
				}
			}
		})
	}
}

// TestTLVMapOffsets: mappings get disjoint runs of the key's option
// space, and a freed run is used again.
func TestTLVMapOffsets(t *testing.T) {
	m, err := (*TLVMap)(nil).Apply(TLVAdd, []TLVMapping{{1, 1, 4, 3}, {1, 2, 8, 4}, {1, 3, 4, 5}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	offs := map[int]int{}
	for _, i := range []int{3, 4, 5} {
		_, off, ok := m.Lookup(i)
		if !ok {
			t.Fatalf("tun_metadata%d not mapped", i)
		}
		offs[i] = off
	}
	if offs[3] != 0 || offs[4] != 4 || offs[5] != 12 {
		t.Fatalf("offsets %v", offs)
	}
	if m, err = m.Apply(TLVDelete, []TLVMapping{{Index: 4}}, nil); err != nil {
		t.Fatal(err)
	}
	if m, err = m.Apply(TLVAdd, []TLVMapping{{2, 2, 8, 9}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, off, _ := m.Lookup(9); off != 4 {
		t.Fatalf("tun_metadata9 at %d, want the freed bytes 4-11", off)
	}
	if i, off, n, ok := m.Find(2, 2); !ok || i != 9 || off != 4 || n != 8 {
		t.Fatalf("Find(2, 2) = %d %d %d %v", i, off, n, ok)
	}
	if m.Used() != 16 {
		t.Fatalf("used %d", m.Used())
	}
}

func TestParseTLVMappings(t *testing.T) {
	tests := []struct {
		in      string
		want    []TLVMapping
		wantErr bool
	}{
		{"{class=0x102,type=0x80,len=4}->tun_metadata0", []TLVMapping{{0x102, 0x80, 4, 0}}, false},
		{"{class=65535,type=0,len=8}->tun_metadata7,{class=0xffff,type=1,len=4}->tun_metadata63",
			[]TLVMapping{{0xffff, 0, 8, 7}, {0xffff, 1, 4, 63}}, false},
		{"{class=0x102,type=0x80}->tun_metadata0", nil, true},
		{"{class=0x10000,type=0,len=4}->tun_metadata0", nil, true},
		{"{class=1,type=0,len=4}->reg0", nil, true},
		{"{class=1,type=0,len=4}->tun_metadata", nil, true},
		{"class=1,type=0,len=4", nil, true},
	}
	for _, tc := range tests {
		got, err := ParseTLVMappings(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %+v, want %+v", tc.in, got, tc.want)
			}
			if back, err := ParseTLVMappings(FormatTLVMapping(got[i])); err != nil || back[0] != got[i] {
				t.Errorf("%s: round trip of %+v: %+v %v", tc.in, got[i], back, err)
			}
		}
	}
}

// TestTunMetaMatchAgainstOfctl parses and prints matches on tun_metadata
// fields mapped as OVN maps tun_metadata0 (4 bytes), and an 8-byte
// tun_metadata5, and compares with what ovs-ofctl parse-flow prints. The
// values are written at widths where ovs-ofctl's own assignment of lengths
// (it has no map) agrees with the map.
func TestTunMetaMatchAgainstOfctl(t *testing.T) {
	bin := ofctlBinary(t)
	m, err := (*TLVMap)(nil).Apply(TLVAdd, []TLVMapping{{0x102, 0x80, 4, 0}, {0xffff, 1, 8, 5}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := Parser{TLV: m}
	for _, in := range []string{
		"tun_metadata0=0x1234,actions=drop",
		"tun_metadata0=0x12345678/0xff00ff00,actions=drop",
		"tun_metadata0=0x1/0x0,actions=drop",
		"tun_metadata0,actions=drop",
		"tun_metadata0=0,actions=drop",
		"tun_metadata5=0x1122334455667788,actions=drop",
		"in_port=1,tun_id=5,tun_metadata0=0x1,tun_flags=+oam,tun_src=1.1.1.1,tun_metadata5=0x2/0x3,ip,actions=output:2",
		"priority=7,tun_metadata5=0x8000000000000000/0x8000000000000000,tun_metadata0=0xabcdef01,actions=drop",
	} {
		out, err := exec.Command(bin, "parse-flow", in).CombinedOutput()
		if err != nil {
			t.Fatalf("ovs-ofctl parse-flow %s: %v\n%s", in, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		_, want, ok := strings.Cut(lines[len(lines)-1], " ADD ")
		if !ok {
			t.Fatalf("ovs-ofctl parse-flow %s printed\n%s", in, out)
		}
		f, err := p.ParseFlow(in, CmdAdd)
		if err != nil {
			t.Errorf("%s: %v (ovs-ofctl: %s)", in, err, want)
			continue
		}
		if got := FormatFlow(f); got != want {
			t.Errorf("%s:\n got %s\nwant %s", in, got, want)
		}
	}
}

// tunMetaTestMap maps tun_metadata0 (4 bytes) and tun_metadata5 (8 bytes).
func tunMetaTestMap(t *testing.T) *TLVMap {
	t.Helper()
	m, err := (*TLVMap)(nil).Apply(TLVAdd, []TLVMapping{{0x102, 0x80, 4, 0}, {0xffff, 1, 8, 5}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTunMetaActionsAgainstOfctl: set_field, load and move on
// tun_metadataN parse and print back as ovs-ofctl parse-flow prints them.
func TestTunMetaActionsAgainstOfctl(t *testing.T) {
	bin := ofctlBinary(t)
	p := Parser{TLV: tunMetaTestMap(t)}
	for _, in := range []string{
		"actions=set_field:0x1234->tun_metadata0",
		"actions=set_field:0x1/0xff->tun_metadata0",
		"actions=set_field:0x1122334455667788->tun_metadata5,output:1",
		"actions=load:0x5->tun_metadata0[0..15]",
		"actions=load:0x5->tun_metadata0[16..31]",
		"actions=load:0x5->NXM_NX_TUN_METADATA0[]",
		"actions=move:NXM_NX_REG0[0..14]->NXM_NX_TUN_METADATA0[16..30]",
		"actions=move:tun_metadata0[0..15]->reg1[0..15]",
		"actions=move:NXM_NX_TUN_METADATA0[0..31]->NXM_NX_TUN_METADATA5[32..63]",
	} {
		out, err := exec.Command(bin, "parse-flow", in).CombinedOutput()
		if err != nil {
			t.Fatalf("ovs-ofctl parse-flow %s: %v\n%s", in, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		_, want, ok := strings.Cut(lines[len(lines)-1], " ADD ")
		if !ok {
			t.Fatalf("ovs-ofctl parse-flow %s printed\n%s", in, out)
		}
		f, err := p.ParseFlow(in, CmdAdd)
		if err != nil {
			t.Errorf("%s: %v (ovs-ofctl: %s)", in, err, want)
			continue
		}
		if got := FormatFlow(f); got != want {
			t.Errorf("%s:\n got %s\nwant %s", in, got, want)
		}
	}
}

// TestTunMetaActionsUnmapped: writing or reading a field the TLV map does
// not map is refused with ErrTLVUnmapped, as a match on it is; a value
// longer than the mapped length is refused.
func TestTunMetaActionsUnmapped(t *testing.T) {
	p := Parser{TLV: tunMetaTestMap(t)}
	for _, in := range []string{
		"actions=set_field:0x1->tun_metadata1",
		"actions=load:0x1->tun_metadata2[0..7]",
		"actions=move:reg0[0..7]->tun_metadata3[0..7]",
		"actions=move:tun_metadata3[0..7]->reg0[0..7]",
	} {
		_, err := p.ParseFlow(in, CmdAdd)
		if !errors.Is(err, ErrTLVUnmapped) {
			t.Errorf("%s: err %v, want ErrTLVUnmapped", in, err)
		}
		if _, err := ParseFlow(in, CmdAdd); !errors.Is(err, ErrTLVUnmapped) {
			t.Errorf("%s without a map: err %v, want ErrTLVUnmapped", in, err)
		}
	}
	if _, err := p.ParseFlow("actions=set_field:0x123456789->tun_metadata0", CmdAdd); err == nil {
		t.Error("a 5-byte value into a 4-byte tun_metadata0 was accepted")
	}
}

// TestTunMetaActionsTranslate: set_field, load and move on tun_metadata
// write the flow's field where the map places it, marked present; a later
// table matches on it; the datapath actions carry the metadata to the
// packet's key.
func TestTunMetaActionsTranslate(t *testing.T) {
	m := tunMetaTestMap(t)
	p := Parser{TLV: m}
	tbl := NewTable()
	if err := tbl.ModTLVMap(TLVAdd, m.Mappings()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"in_port=1,actions=load:0xabcd->tun_metadata0[0..15],move:NXM_OF_IN_PORT[]->NXM_NX_TUN_METADATA0[16..31],set_field:0x77->tun_metadata5,resubmit(,1)",
		"table=1,tun_metadata0=0x1abcd,actions=move:tun_metadata5[0..7]->reg3[8..15],output:2",
	} {
		f, err := p.ParseFlow(s, CmdAdd)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if err := tbl.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	k := microflow(t, "in_port=1")
	tr := tbl.Snapshot().Translate(&k, false)
	if len(tr.Actions) != 2 || tr.Actions[0].Type != ActSetField || tr.Actions[0].Field != FieldTunMeta0 || tr.Actions[1].Type != ActOutput || tr.Actions[1].Port != 2 {
		t.Fatalf("actions %s (%+v), want the tunnel metadata set then output:2", FormatActions(tr.Actions), tr.Actions)
	}
	if got, want := FormatActions(tr.Actions), "set(tun_metadata(tun_metadata0=0x1abcd,tun_metadata5=0x77)),output:2"; got != want {
		t.Errorf("datapath actions %s, want %s", got, want)
	}
	if tr.Final.Regs[3] != 0x7700 {
		t.Errorf("reg3 = %#x, want 0x7700 (moved from tun_metadata5)", tr.Final.Regs[3])
	}
	var pk Key
	pk.TunMeta, pk.TunMetaPresent = tr.Actions[0].IPv6, tr.Actions[0].Value
	if v := pk.TunMetaValue(0); string(v) != "\x00\x01\xab\xcd" {
		t.Errorf("tun_metadata0 = %x, want 0001abcd", v)
	}
	if v := pk.TunMetaValue(5); string(v) != "\x00\x00\x00\x00\x00\x00\x00\x77" {
		t.Errorf("tun_metadata5 = %x, want 0000000000000077", v)
	}
	// Executing the datapath actions gives the packet's key the fields.
	frame := make([]byte, 60)
	var ek Key
	if _, v := Execute(frame, &ek, &Offsets{}, tr.Actions[:1], nil); v != VerdictOK {
		t.Fatalf("execute: verdict %v", v)
	}
	if ek.TunMetaPresent != pk.TunMetaPresent || ek.TunMeta != pk.TunMeta {
		t.Errorf("executed key carries %x/%x, want %x/%x", ek.TunMeta, ek.TunMetaPresent, pk.TunMeta, pk.TunMetaPresent)
	}
}

// TestTunMetaActionsKeepMapping: a mapping that a flow's actions write is
// in use; deleting it is refused (ErrTLVInUse).
func TestTunMetaActionsKeepMapping(t *testing.T) {
	m := tunMetaTestMap(t)
	tbl := NewTable()
	if err := tbl.ModTLVMap(TLVAdd, m.Mappings()); err != nil {
		t.Fatal(err)
	}
	p := Parser{TLV: tbl.TLVMap()}
	f, err := p.ParseFlow("actions=load:0x1->tun_metadata5[0..7]", CmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Add(f); err != nil {
		t.Fatal(err)
	}
	mp, _, _ := m.Lookup(5)
	if err := tbl.ModTLVMap(TLVDelete, []TLVMapping{mp}); !errors.Is(err, ErrTLVInUse) {
		t.Errorf("deleting the mapping of a written tun_metadata5: err %v, want ErrTLVInUse", err)
	}
	mp0, _, _ := m.Lookup(0)
	if err := tbl.ModTLVMap(TLVDelete, []TLVMapping{mp0}); err != nil {
		t.Errorf("deleting the unused tun_metadata0 mapping: %v", err)
	}
}
