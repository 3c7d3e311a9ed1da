package flow

import "testing"

// TestFormatActionsIn checks action lists printed in the OpenFlow 1.3
// spelling against what `ovs-ofctl -O OpenFlow13 dump-flows` prints for
// the same flows added with -O OpenFlow13 to Open vSwitch 3.1, and in the
// OpenFlow 1.0 spelling against its default dump.
func TestFormatActionsIn(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		dialect Dialect
		want    string
	}{
		{"mod actions become set_field", "tcp,actions=mod_dl_src:00:00:00:00:00:01,mod_nw_src:10.0.0.9,mod_nw_dst:10.0.0.8,mod_nw_tos:16,mod_tp_src:99,mod_tp_dst:8080,mod_nw_ttl:5,dec_ttl,dec_ttl(7,9),output:1,IN_PORT,normal,flood,all,local", OpenFlow13,
			"set_field:00:00:00:00:00:01->eth_src,set_field:10.0.0.9->ip_src,set_field:10.0.0.8->ip_dst,set_field:4->ip_dscp,set_field:99->tcp_src,set_field:8080->tcp_dst,mod_nw_ttl:5,dec_ttl,dec_ttl(7,9),output:1,IN_PORT,NORMAL,FLOOD,ALL,LOCAL"},
		{"set_field keeps its field", "udp,actions=mod_tp_dst:8080,set_field:53->udp_src,mod_nw_ecn:1,set_field:3->ip_dscp,set_field:16->nw_tos", OpenFlow13,
			"set_field:8080->udp_dst,set_field:53->udp_src,set_field:1->nw_ecn,set_field:3->ip_dscp,set_field:16->nw_tos"},
		{"ports of the match's protocol", "tcp6,actions=mod_tp_dst:8080,mod_nw_tos:16", OpenFlow13,
			"set_field:8080->tcp_dst,set_field:4->ip_dscp"},
		{"load stays load", "arp,actions=set_field:2->arp_op,load:0x2->NXM_OF_ARP_OP[],load:0xa0a00fe->NXM_OF_ARP_SPA[],set_field:10.0.0.1->arp_tpa,load:0xaabbccddeeff->NXM_NX_ARP_SHA[],mod_dl_dst:00:00:00:00:00:02,load:0x5->NXM_NX_PKT_MARK[]", OpenFlow13,
			"set_field:2->arp_op,load:0x2->NXM_OF_ARP_OP[],load:0xa0a00fe->NXM_OF_ARP_SPA[],set_field:10.0.0.1->arp_tpa,load:0xaabbccddeeff->NXM_NX_ARP_SHA[],set_field:00:00:00:00:00:02->eth_dst,load:0x5->NXM_NX_PKT_MARK[]"},
		{"vlan", "actions=mod_vlan_vid:9,mod_vlan_pcp:3,strip_vlan,push_vlan:0x8100,set_field:4116->vlan_vid,set_field:3->vlan_pcp,pop_vlan,push:NXM_NX_REG0[],pop:NXM_NX_REG1[],note:ab,clone(set_field:1->reg0,output:2),exit", OpenFlow13,
			"push_vlan:0x8100,set_field:4105->vlan_vid,set_field:3->vlan_pcp,pop_vlan,push_vlan:0x8100,set_field:4116->vlan_vid,set_field:3->vlan_pcp,pop_vlan,push:NXM_NX_REG0[],pop:NXM_NX_REG1[],note:ab.00.00.00.00.00,clone(set_field:0x1->reg0,output:2),exit"},
		{"registers", "ipv6,actions=set_field:2001:db8::1->ipv6_dst,load:0x1->NXM_NX_IPV6_SRC[0..63],load:0->NXM_NX_IPV6_SRC[64..127],set_field:5->ipv6_label,set_field:0x10/0xf0->reg5,set_field:0x1/0x1->xxreg1,set_field:0x10->metadata,set_field:0x1/0xff->metadata,set_field:0x1->xreg0,load:0x1->OXM_OF_PKT_REG0[],load:1->NXM_NX_XXREG0[0..63],load:0->NXM_NX_XXREG0[64..127],resubmit(,3),resubmit(1,3),resubmit:2,output:NXM_NX_REG0[0..15]", OpenFlow13,
			"set_field:2001:db8::1->ipv6_dst,load:0x1->NXM_NX_IPV6_SRC[0..63],load:0->NXM_NX_IPV6_SRC[64..127],set_field:0x5->ipv6_label,load:0x1->NXM_NX_REG5[4..7],load:0x1->NXM_NX_XXREG1[0],set_field:0x10->metadata,load:0x1->OXM_OF_METADATA[0..7],set_field:0x1->xreg0,load:0x1->OXM_OF_PKT_REG0[],load:0x1->NXM_NX_XXREG0[0..63],load:0->NXM_NX_XXREG0[64..127],resubmit(,3),resubmit(1,3),resubmit:2,output:NXM_NX_REG0[0..15]"},
		{"instructions", "ip,actions=move:NXM_NX_REG0[]->NXM_NX_REG1[],write_metadata:0x5,goto_table:3", OpenFlow13,
			"move:NXM_NX_REG0[]->NXM_NX_REG1[],write_metadata:0x5,goto_table:3"},
		{"xxreg set_field", "actions=set_field:0x1->xxreg3,set_field:0x5->pkt_mark,set_field:0x3->reg5,set_field:0xdead->xreg3,goto_table:1", OpenFlow13,
			"set_field:0x1->xxreg3,set_field:0x5->pkt_mark,set_field:0x3->reg5,set_field:0xdead->xreg3,goto_table:1"},
		{"OpenFlow 1.0", "actions=set_field:0x1->xxreg3,set_field:0x5->pkt_mark,set_field:0x3->reg5,set_field:0xdead->xreg3,set_field:0x10/0xf0->reg5,mod_dl_dst:00:00:00:00:de:ad,goto_table:1", OpenFlow10,
			"load:0x1->NXM_NX_XXREG3[0..63],load:0->NXM_NX_XXREG3[64..127],load:0x5->NXM_NX_PKT_MARK[],load:0x3->NXM_NX_REG5[],load:0xdead->OXM_OF_PKT_REG3[],load:0x1->NXM_NX_REG5[4..7],mod_dl_dst:00:00:00:00:de:ad,resubmit(,1)"},
		{"set_field on vlan_tci", vlanTCISets, OpenFlow13,
			"set_field:0x1005->vlan_tci,set_field:3->vlan_pcp,set_field:0->vlan_tci,load:0x5->NXM_OF_VLAN_TCI[0..3],load:0x10->NXM_OF_VLAN_TCI[8..12],set_field:4101->vlan_vid,load:0x1->NXM_OF_VLAN_TCI[12],set_field:0x1388->vlan_tci,set_field:0xe123->vlan_tci,push_vlan:0x8100,set_field:4103->vlan_vid,output:2"},
		{"set_field on vlan_tci in OpenFlow 1.0", vlanTCISets, OpenFlow10,
			"mod_vlan_vid:5,mod_vlan_pcp:0,mod_vlan_pcp:3,strip_vlan,load:0x5->NXM_OF_VLAN_TCI[0..3],load:0x10->NXM_OF_VLAN_TCI[8..12],mod_vlan_vid:5,load:0x1->NXM_OF_VLAN_TCI[12],mod_vlan_vid:904,mod_vlan_pcp:0,strip_vlan,mod_vlan_vid:7,output:2"},
		{"a load of the present bit makes a tag", "actions=load:0x1->NXM_OF_VLAN_TCI[12],mod_vlan_vid:3,set_field:2->vlan_pcp,load:0->NXM_OF_VLAN_TCI[],mod_vlan_pcp:1", OpenFlow13,
			"load:0x1->NXM_OF_VLAN_TCI[12],set_field:4099->vlan_vid,set_field:2->vlan_pcp,load:0->NXM_OF_VLAN_TCI[],push_vlan:0x8100,set_field:1->vlan_pcp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFlow(tc.in, CmdAdd)
			if err != nil {
				t.Fatal(err)
			}
			if got := FormatActionsIn(tc.dialect, &f.Match, f.Actions); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// vlanTCISets writes vlan_tci whole and masked, with the present bit and
// without, so that a later mod_vlan_vid pushes a tag or not.
const vlanTCISets = "actions=set_field:0x1005->vlan_tci,mod_vlan_pcp:3,set_field:0->vlan_tci,set_field:0x1005/0x1f0f->vlan_tci,mod_vlan_vid:5," +
	"set_field:0x1000/0x1000->vlan_tci,set_field:5000->vlan_tci,set_field:0xe123->vlan_tci,mod_vlan_vid:7,output:2"

// TestSetFieldVLANTCINeedsTag checks that a set_field on vlan_vid or
// vlan_pcp after a write into vlan_tci is accepted only when the value
// written has the present bit, as Open vSwitch checks an action list.
func TestSetFieldVLANTCINeedsTag(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"actions=set_field:0x1005->vlan_tci,set_field:3->vlan_pcp", true},
		{"actions=load:0x1->NXM_OF_VLAN_TCI[12],set_field:4099->vlan_vid", true},
		{"actions=push_vlan:0x8100,set_field:0x5->vlan_tci,set_field:4100->vlan_vid", false},
		{"actions=push_vlan:0x8100,load:0x5->NXM_OF_VLAN_TCI[0..11],set_field:3->vlan_pcp", false},
		{"dl_vlan=5,actions=set_field:0x1005/0->vlan_tci,set_field:3->vlan_pcp", true}, // an empty mask writes nothing
	} {
		_, err := ParseFlow(tt.in, CmdAdd)
		if (err == nil) != tt.ok {
			t.Errorf("%s: error %v, want accepted %v", tt.in, err, tt.ok)
		}
	}
}

// TestFormatMatchIn checks VLAN matches printed in the OpenFlow 1.3
// spelling against `ovs-ofctl -O OpenFlow13 parse-flow` of Open vSwitch
// 3.1 (OXM carries vlan_vid and vlan_pcp, not vlan_tci).
func TestFormatMatchIn(t *testing.T) {
	for _, tt := range []struct{ in, want13 string }{
		{"vlan_tci=0", "vlan_tci=0x0000/0x1fff"},
		{"vlan_tci=0x1005/0x1fff", "dl_vlan=5"},
		{"vlan_tci=0x0005/0x0fff", "vlan_tci=0x0005/0x0fff"},
		{"dl_vlan=5,dl_vlan_pcp=3", "dl_vlan=5,dl_vlan_pcp=3"},
		{"vlan_tci=0x3005", "dl_vlan=5,dl_vlan_pcp=1"},
		{"vlan_tci=0x2000/0xe000", ""},
		{"vlan_tci=0x1000/0x1000", "vlan_tci=0x1000/0x1000"},
		{"vlan_tci=0x3000/0x3000", "dl_vlan_pcp=1"},
		{"vlan_tci=0x0000/0x1000", "vlan_tci=0x0000/0x1000"},
		{"vlan_tci=0x2000/0x2fff", "vlan_tci=0x0000/0x0fff"},
		{"in_port=1,vlan_tci=0x1005/0x100f", "in_port=1,vlan_tci=0x1005/0x100f"},
		{"in_port=1,ip", "ip,in_port=1"},
	} {
		f, err := ParseFlow(tt.in+",actions=drop", CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		if got := FormatMatchIn(OpenFlow13, &f.Match, DefaultPriority); got != tt.want13 {
			t.Errorf("%s in OpenFlow 1.3: %q, want %q", tt.in, got, tt.want13)
		}
		if got, want := FormatMatchIn(OpenFlow10, &f.Match, DefaultPriority), FormatMatch(&f.Match, DefaultPriority); got != want {
			t.Errorf("%s in OpenFlow 1.0: %q, want %q", tt.in, got, want)
		}
	}
}

func TestDumpDialect(t *testing.T) {
	tests := []struct {
		name  string
		flows []string
		want  Dialect
	}{
		{"resubmit only", []string{"actions=resubmit(,1)", "table=1,actions=set_field:1->reg0,output:1"}, OpenFlow10},
		{"goto_table", []string{"actions=resubmit(,1)", "table=1,actions=write_metadata:1,goto_table:2"}, OpenFlow13},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl := conjTable(t, tc.flows)
			if got := DumpDialect(tbl.Dump(nil)); got != tc.want {
				t.Errorf("dialect %d, want %d", got, tc.want)
			}
		})
	}
}

// TestVLANTCISetAsWritten checks that a flow with set_field on vlan_tci,
// saved as written, reads back the same flow (the daemon's state file).
func TestVLANTCISetAsWritten(t *testing.T) {
	f, err := ParseFlow(vlanTCISets, CmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	text := FormatFlowAsWritten(f)
	back, err := ParseFlow(text, CmdAdd)
	if err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	if got := FormatFlowAsWritten(back); got != text {
		t.Errorf("read back as %s, want %s", got, text)
	}
	for _, d := range []Dialect{OpenFlow10, OpenFlow13} {
		if got, want := FormatActionsIn(d, &back.Match, back.Actions), FormatActionsIn(d, &f.Match, f.Actions); got != want {
			t.Errorf("dialect %d: read back prints %s, want %s", d, got, want)
		}
	}
}
