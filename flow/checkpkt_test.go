package flow

import (
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ipv4UDP().build(t)
			k, _ := extracted(in, 1)
			tr := pipeline(t, tt.flows...).Snapshot().Translate(&k, false)
			var start Key
			k.Masked(&tr.Mask, &start)
			if got := FormatDatapathActions(tr.Actions, &start, nil); got != tt.want {
				t.Fatalf("datapath actions\n got %s\nwant %s\n(%s)", got, tt.want, FormatActions(tr.Actions))
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
