package test

import (
	"strings"
	"testing"
)

// TestOpenFlowCTFlows installs connection tracking flows (OVN's two ct
// actions among them) with the real ovs-ofctl in OpenFlow 1.0, 1.3 and
// 1.5, and reads them back with dump-flows: ovs-ofctl prints what it
// added. A del-flows --strict on a ct_state match removes only its flow.
func TestOpenFlowCTFlows(t *testing.T) {
	s := startOFSwitch(t)
	flows := []string{
		"table=14,priority=100,ip,reg13=0x5/0xffff,actions=ct(table=15,zone=NXM_NX_REG13[0..15],nat)",
		"table=20,priority=9,ip,ct_state=+trk+est-rel,ct_label=0x1/0x1,ct_mark=0x2/0x3,actions=ct(commit,zone=NXM_NX_REG13[0..15],nat(src),exec(set_field:0/0x1->ct_mark,move:NXM_NX_XXREG0[0..31]->NXM_NX_CT_LABEL[96..127]))",
		"table=21,priority=8,tcp,actions=ct(commit,force,zone=5,alg=ftp,nat(dst=10.0.0.1-10.0.0.9:80-90,persistent,random),exec(set_field:0x11->ct_label,set_field:5->ct_mark)),ct_clear,output:2",
		"table=22,priority=7,ipv6,ct_state=+new+trk,ct_ipv6_src=fe80::/64,actions=ct(commit,table=23,nat(src=[fd00::1]-[fd00::9]:1000,hash))",
		"table=24,priority=6,tcp,ct_state=-inv+trk,ct_zone=7,ct_nw_src=10.0.0.0/8,ct_nw_proto=6,ct_tp_dst=80,actions=drop",
	}
	want := []string{
		"table=14, priority=100,ip,reg13=0x5/0xffff actions=ct(table=15,zone=NXM_NX_REG13[0..15],nat)",
		"table=20, priority=9,ct_state=+est-rel+trk,ct_mark=0x2/0x3,ct_label=0x1/0x1,ip actions=ct(commit,zone=NXM_NX_REG13[0..15],nat(src),exec(",
		"move:NXM_NX_XXREG0[0..31]->NXM_NX_CT_LABEL[96..127]))",
		"table=21, priority=8,tcp actions=ct(commit,force,zone=5,nat(dst=10.0.0.1-10.0.0.9:80-90,persistent,random),exec(",
		"alg=ftp),ct_clear,output:2",
		"table=22, priority=7,ct_state=+new+trk,ct_ipv6_src=fe80::/64,ipv6 actions=ct(commit,table=23,nat(src=[fd00::1]-[fd00::9]:1000,hash))",
		"table=24, priority=6,ct_state=-inv+trk,ct_zone=7,ct_nw_src=10.0.0.0/8,ct_nw_proto=6,ct_tp_dst=80,tcp actions=drop",
	}
	for _, v := range ofVersions {
		t.Run(v, func(t *testing.T) {
			s.run(t, v, "del-flows")
			for _, f := range flows {
				s.run(t, v, "add-flow", f)
			}
			dump := func() string {
				out, errOut, err := s.try(v, []string{"--no-stats"}, "dump-flows")
				if err != nil {
					t.Fatalf("dump-flows: %v\n%s", err, errOut)
				}
				return out
			}
			out := dump()
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("dump-flows lacks %q:\n%s", w, out)
				}
			}
			if _, errOut, err := s.try(v, []string{"--strict"}, "del-flows", "table=20,priority=9,ip,ct_state=+trk+est-rel,ct_label=0x1/0x1,ct_mark=0x2/0x3"); err != nil {
				t.Fatalf("del-flows --strict: %v\n%s", err, errOut)
			}
			out = dump()
			if strings.Contains(out, "table=20") || !strings.Contains(out, "table=14") || strings.Count(out, "actions=") != len(flows)-1 {
				t.Errorf("del-flows --strict on the ct_state flow left:\n%s", out)
			}
		})
	}
}
