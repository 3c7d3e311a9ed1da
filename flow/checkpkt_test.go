package flow

import (
	"regexp"
	"testing"
)

// TestCheckPktLarger translates check_pkt_larger as Open vSwitch 3.1 does
// (each want is what its ofproto/trace printed for the same flows, with
// its port numbers turned into the OpenFlow ones): the flow's changes
// committed before the check, the rest of the list translated into each
// branch from the flow as it was, an empty branch written drop, and the
// lists around the check going on after it, with the packet as before.
// Then it runs each translation on a short and a long packet: each takes
// its branch, and what follows the check sees the packet unchanged.
func TestCheckPktLarger(t *testing.T) {
	tests := []struct {
		name  string
		flows []string
		want  string
		// The ports each packet leaves by, and the destination MAC's
		// last byte on each.
		short, long []uint32
		shortDst    []byte
		longDst     []byte
		noRun       bool // not run: its ct needs a tracker
	}{
		{name: "both branches",
			flows: []string{
				"table=0,in_port=1,actions=mod_dl_src:02:00:00:00:00:07,check_pkt_larger(1500)->reg0[0],resubmit(,1),output:2",
				"table=1,reg0=0x1/0x1,actions=output:LOCAL",
				"table=1,reg0=0/0x1,actions=mod_dl_dst:02:00:00:00:00:09,output:2",
			},
			want:  "set(eth(src=02:00:00:00:00:07)),check_pkt_len(size=1500,gt(LOCAL,2),le(set(eth(dst=02:00:00:00:00:09)),2,2))",
			short: []uint32{2, 2}, shortDst: []byte{9, 9},
			long: []uint32{PortLocal, 2}, longDst: []byte{2, 2}},
		{name: "an empty branch",
			flows: []string{
				"table=0,in_port=1,actions=check_pkt_larger(1500)->reg0[0],resubmit(,1)",
				"table=1,reg0=0/0x1,actions=output:2",
			},
			want:  "check_pkt_len(size=1500,gt(drop),le(2))",
			short: []uint32{2}, shortDst: []byte{2}},
		{name: "nothing after",
			flows: []string{"table=0,in_port=1,actions=check_pkt_larger(1500)->reg0[0]"},
			want:  "check_pkt_len(size=1500,gt(drop),le(drop))"},
		{name: "the list around goes on",
			flows: []string{
				"table=0,in_port=1,actions=resubmit(,1),output:2",
				"table=1,actions=check_pkt_larger(100)->reg0[0],mod_dl_dst:02:00:00:00:00:09,output:LOCAL",
			},
			want:  "check_pkt_len(size=100,gt(set(eth(dst=02:00:00:00:00:09)),LOCAL),le(set(eth(dst=02:00:00:00:00:09)),LOCAL)),2",
			short: []uint32{PortLocal, 2}, shortDst: []byte{9, 2},
			long: []uint32{PortLocal, 2}, longDst: []byte{9, 2}},
		{name: "ct in each branch",
			flows: []string{
				"table=0,ip,in_port=1,actions=check_pkt_larger(200)->reg0[0],ct(table=1,zone=5)",
				"table=1,actions=output:2",
			},
			want:  "check_pkt_len(size=200,gt(ct(zone=5),recirc(ID)),le(ct(zone=5),recirc(ID)))",
			noRun: true},
		{name: "nested",
			flows: []string{
				"table=0,ip,in_port=1,actions=check_pkt_larger(200)->reg0[0],check_pkt_larger(100)->reg0[1],resubmit(,1)",
				"table=1,reg0=0x3/0x3,actions=output:2",
				"table=1,reg0=0x2/0x3,actions=output:LOCAL",
			},
			want:  "check_pkt_len(size=200,gt(check_pkt_len(size=100,gt(2),le(drop))),le(check_pkt_len(size=100,gt(LOCAL),le(drop))))",
			short: nil, long: []uint32{2}, longDst: []byte{2}},
	}
	recircID := regexp.MustCompile(`recirc\(0x[0-9a-f]+\)`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ipv4UDP().build(t)
			k, _ := extracted(in, 1)
			tr := pipeline(t, tt.flows...).Snapshot().Translate(&k, false)
			var start Key
			k.Masked(&tr.Mask, &start)
			got := FormatDatapathActions(tr.Actions, &start, nil)
			if ids := recircID.FindAllString(got, -1); len(ids) == 2 && ids[0] == ids[1] {
				t.Errorf("both branches recirculate to %s: their frozen states differ in reg0", ids[0])
			}
			if got = recircID.ReplaceAllString(got, "recirc(ID)"); got != tt.want {
				t.Fatalf("datapath actions\n got %s\nwant %s\n(%s)", got, tt.want, FormatActions(tr.Actions))
			}
			if tt.noRun {
				return
			}
			for _, c := range []struct {
				name  string
				size  int
				ports []uint32
				dst   []byte
			}{{"short", len(in), tt.short, tt.shortDst}, {"long", 1600, tt.long, tt.longDst}} {
				frame := make([]byte, c.size, c.size+FrameSpare)
				copy(frame, in)
				k, off := extracted(frame, 1)
				var r recorder
				if _, v := Execute(frame, &k, &off, tr.Actions, &r); v != VerdictOK {
					t.Fatalf("%s packet: verdict %v", c.name, v)
				}
				if len(r.ports) != len(c.ports) {
					t.Fatalf("%s packet (%d bytes) left by %v, want %v", c.name, c.size, r.ports, c.ports)
				}
				for i := range r.ports {
					if r.ports[i] != c.ports[i] || r.frames[i][5] != c.dst[i] {
						t.Errorf("%s packet: output %d to %d with destination ...:%02x, want %d with ...:%02x", c.name, i, r.ports[i], r.frames[i][5], c.ports[i], c.dst[i])
					}
				}
			}
		})
	}
}

// TestCheckPktLargerSyntax: check_pkt_larger's text reads back as Open
// vSwitch writes it, and what Open vSwitch refuses is refused.
func TestCheckPktLargerSyntax(t *testing.T) {
	for in, want := range map[string]string{
		"actions=check_pkt_larger(1500)->reg0[0],resubmit(,1)": "check_pkt_larger(1500)->NXM_NX_REG0[0],resubmit(,1)",
		"actions=check_pkt_larger(0x10)->metadata[5]":          "check_pkt_larger(16)->OXM_OF_METADATA[5]",
		"actions=check_pkt_larger( 7 )->NXM_NX_REG3[31]":       "check_pkt_larger(7)->NXM_NX_REG3[31]",
	} {
		f, err := ParseFlow(in, CmdAdd)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := FormatActions(f.Actions); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
	for _, in := range []string{
		"actions=check_pkt_larger(100)->reg1",
		"actions=check_pkt_larger(70000)->reg1[0]",
		"actions=check_pkt_larger(-1)->reg1[0]",
		"actions=check_pkt_larger(100)",
		"actions=check_pkt_larger:100",
		"actions=check_pkt_larger(100)->nosuch[0]",
		"actions=check_pkt_larger(100)->reg0[0]x",
		"actions=check_pkt_larger(100)->reg0[40]",
		"actions=output(1)->reg0[0]",
	} {
		if _, err := ParseFlow(in, CmdAdd); err == nil {
			t.Errorf("%s: taken", in)
		}
	}
}

// TestCheckPktLargerDpHashGroup: a dp_hash select group in each branch
// freezes the branch's pipeline, and each branch recirculates to a state
// of its own (reg0 differs), as Open vSwitch 3.1's trace of the same
// flows shows: check_pkt_len(size=200,gt(hash(l4(0)),recirc(0x3)),
// le(hash(l4(0)),recirc(0x4))).
func TestCheckPktLargerDpHashGroup(t *testing.T) {
	tb := groupTable(t, []string{"group_id=1,type=select,selection_method=dp_hash,bucket=bucket_id=0,output:2,bucket=bucket_id=1,output:LOCAL"},
		"ip,in_port=1,actions=check_pkt_larger(200)->reg0[0],group:1")
	k := microflow(t, "in_port=1,udp")
	tr := tb.Snapshot().Translate(&k, false)
	var start Key
	k.Masked(&tr.Mask, &start)
	got := FormatDatapathActions(tr.Actions, &start, nil)
	ids := regexp.MustCompile(`recirc\(0x[0-9a-f]+\)`).FindAllString(got, -1)
	want := "check_pkt_len(size=200,gt(hash(l4(0)),recirc(ID)),le(hash(l4(0)),recirc(ID)))"
	if len(ids) != 2 || ids[0] == ids[1] || regexp.MustCompile(`recirc\(0x[0-9a-f]+\)`).ReplaceAllString(got, "recirc(ID)") != want {
		t.Errorf("datapath actions\n got %s\nwant %s, with two recirculation ids", got, want)
	}
}
