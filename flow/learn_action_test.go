package flow

import (
	"errors"
	"strings"
	"testing"
)

// TestLearnParseFormat checks learn(...) and fin_timeout(...) against what
// ovs-ofctl 3.1 parse-flow prints for the same text, and the errors it
// gives.
func TestLearnParseFormat(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"mac learning to a register",
			"actions=learn(table=11,priority=5,cookie=0x42,idle_timeout=60,NXM_OF_ETH_SRC[],load:NXM_NX_REG0[]->NXM_NX_REG1[],load:0x7->NXM_NX_REG2[0..3])",
			"learn(table=11,idle_timeout=60,priority=5,cookie=0x42,NXM_OF_ETH_SRC[],load:NXM_NX_REG0[]->NXM_NX_REG1[],load:0x7->NXM_NX_REG2[0..3])"},
		{"vlan and output",
			"actions=learn(table=10,idle_timeout=300,hard_timeout=600,fin_idle_timeout=5,priority=100,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])",
			"learn(table=10,idle_timeout=300,hard_timeout=600,fin_idle_timeout=5,priority=100,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[])"},
		{"immediates and flags",
			"actions=learn(NXM_OF_ETH_DST[]=00:11:22:33:44:55,reg1=5,NXM_OF_VLAN_TCI[0..11]=0x5,eth_type=0x800,load:0x1234->NXM_NX_REG4[0..15],load:5->reg3[],delete_learned,send_flow_rem,fin_hard_timeout=3)",
			"learn(table=1,fin_hard_timeout=3,send_flow_rem,delete_learned,eth_dst=00:11:22:33:44:55,reg1=0x5,NXM_OF_VLAN_TCI[0..11]=0x5,eth_type=0x800,load:0x1234->NXM_NX_REG4[0..15],load:0x5->NXM_NX_REG3[])"},
		{"field names",
			"ip,actions=learn(in_port=1,eth_type=0x800,nw_src=1.2.3.4,ip_dst=10.0.0.1,nw_proto=6,tcp_dst=80,reg2[1..3]=reg3[4..6],load:NXM_OF_IN_PORT[]->reg5[0..15],output:reg4[0..15],table=254,vlan_tci=0x1005,metadata=0x10,in_port=LOCAL,dl_src=NXM_OF_ETH_DST[])",
			"learn(table=254,in_port=1,eth_type=0x800,ip_src=1.2.3.4,ip_dst=10.0.0.1,nw_proto=6,tcp_dst=80,NXM_NX_REG2[1..3]=NXM_NX_REG3[4..6],load:NXM_OF_IN_PORT[]->NXM_NX_REG5[0..15],output:NXM_NX_REG4[0..15],vlan_tci=0x1005,metadata=0x10,in_port=LOCAL,NXM_OF_ETH_SRC[]=NXM_OF_ETH_DST[])"},
		{"zeros",
			"actions=learn(table=0,NXM_NX_REG0[0..3]=0,load:0->NXM_NX_REG1[],priority=0,cookie=0xffffffffffffffff)",
			"learn(table=0,priority=0,cookie=0xffffffffffffffff,NXM_NX_REG0[0..3]=0,load:0->NXM_NX_REG1[])"},
		{"in_port from a register",
			"actions=learn(table=1,fin_idle_timeout=1,fin_hard_timeout=2,in_port=NXM_NX_REG0[0..15])",
			"learn(table=1,fin_idle_timeout=1,fin_hard_timeout=2,NXM_OF_IN_PORT[]=NXM_NX_REG0[0..15])"},
		{"empty", "actions=learn()", "learn(table=1)"},
		{"whole register", "actions=learn(table=1,reg0=reg1[])", "learn(table=1,NXM_NX_REG0[]=NXM_NX_REG1[])"},
		{"fin_timeout", "actions=fin_timeout(hard_timeout=3,idle_timeout=4)", "fin_timeout(idle_timeout=4,hard_timeout=3)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFlow(tt.in, CmdAdd)
			if err != nil {
				t.Fatal(err)
			}
			if got := FormatActions(f.Actions); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			again, err := ParseFlow("actions="+tt.want, CmdAdd)
			if err != nil {
				t.Fatalf("the printed form does not parse: %v", err)
			}
			if got := FormatActions(again.Actions); got != tt.want {
				t.Errorf("round trip: got %s", got)
			}
		})
	}
}

func TestLearnParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name, in, wantErr string
		unsupported       bool
	}{
		{"table 255", "actions=learn(table=255)", "table id 255 not valid for `learn' action", false},
		{"immediate too wide", "actions=learn(table=3,reg0[0..3]=0x1f)", "does not fit into 4 bits", false},
		{"widths differ", "actions=learn(table=1,reg0[0..7]=reg1[0..3])", "bit widths of reg0[0..7] (4) and reg1[0..3] (8) differ", false},
		{"load widths differ", "actions=learn(table=1,load:reg0[0..3]->reg1[0..7])", "source field is 4 bits wide but destination is 8 bits wide", false},
		{"load value too wide", "actions=learn(table=1,load:0x10->reg1[0..3])", "value does not fit into 4 bits", false},
		{"unknown keyword", "actions=learn(table=1,foo=1)", "unknown keyword foo", false},
		{"source prerequisites", "actions=learn(table=1,NXM_OF_IP_SRC[])", "prerequisites", false},
		{"limit", "actions=learn(table=1,limit=10)", "limit= is not supported", true},
		{"result_dst", "actions=learn(table=1,result_dst=reg0[1])", "result_dst= is not supported", true},
		{"load into a packet field", "actions=learn(table=1,load:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[])", "not supported", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFlow(tt.in, CmdAdd)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error with %q", err, tt.wantErr)
			}
			if got := errors.Is(err, ErrUnsupportedSyntax); got != tt.unsupported {
				t.Errorf("unsupported: got %v, want %v (%v)", got, tt.unsupported, err)
			}
		})
	}
}
