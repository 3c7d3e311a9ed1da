package flow

import "testing"

func TestFormatActions(t *testing.T) {
	tests := []struct {
		name string
		in   []Action
		want string
	}{
		{"empty is drop", nil, "drop"},
		{"outputs", []Action{{Type: ActOutput, Port: 2}, {Type: ActOutput, Port: PortInPort}, {Type: ActOutput, Port: PortFlood}}, "output:2,IN_PORT,FLOOD"},
		{"mod spellings", []Action{
			{Type: ActSetField, Field: FieldDlSrc, Value: 0x001122334455},
			{Type: ActSetField, Field: FieldNwDst, Value: 0x0a000001},
			{Type: ActSetField, Field: FieldNwTos, Value: 32},
			{Type: ActSetField, Field: FieldTpDst, Value: 8080},
		}, "mod_dl_src:00:11:22:33:44:55,mod_nw_dst:10.0.0.1,mod_nw_tos:32,mod_tp_dst:8080"},
		{"load spellings", []Action{
			{Type: ActSetField, Field: FieldNwTTL, Value: 5},
			{Type: ActSetField, Field: FieldNwECN, Value: 0},
			{Type: ActSetField, Field: FieldArpSha, Value: 0x001122334455},
			{Type: ActSetField, Field: FieldSCTPDst, Value: 80},
		}, "load:0x5->NXM_NX_IP_TTL[],load:0->NXM_NX_IP_ECN[],load:0x1122334455->NXM_NX_ARP_SHA[],load:0x50->OXM_OF_SCTP_DST[]"},
		{"128-bit load", []Action{{Type: ActSetField, Field: FieldIPv6Src, IPv6: [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}}},
			"load:0x1->NXM_NX_IPV6_SRC[0..63],load:0x20010db800000000->NXM_NX_IPV6_SRC[64..127]"},
		{"vlan", []Action{{Type: ActPushVLAN, Value: EthTypeQinQ}, {Type: ActSetVLANVID, Value: 5}, {Type: ActSetVLANPCP, Value: 3}, {Type: ActPopVLAN}, {Type: ActDecTTL}},
			"push_vlan:0x88a8,mod_vlan_vid:5,mod_vlan_pcp:3,strip_vlan,dec_ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatActions(tt.in); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}

func TestFormatMatchPriority(t *testing.T) {
	m := Match{Key: Key{DlType: EthTypeIPv4, NwProto: IPProtoUDP, TpDst: 53}, Mask: Key{DlType: 0xffff, NwProto: 0xff, TpDst: 0xffff}}
	tests := []struct {
		prio uint16
		want string
	}{
		{DefaultPriority, "udp,tp_dst=53"},
		{0, "priority=0,udp,tp_dst=53"},
		{65535, "priority=65535,udp,tp_dst=53"},
	}
	for _, tt := range tests {
		if got := FormatMatch(&m, tt.prio); got != tt.want {
			t.Errorf("priority %d: got %q; want %q", tt.prio, got, tt.want)
		}
	}
	if got := FormatMatch(&Match{}, 9); got != "priority=9" {
		t.Errorf("catch-all: got %q", got)
	}
}

// TestIPv6Text checks the address spellings of glibc's inet_ntop, which
// ovs-ofctl uses.
func TestIPv6Text(t *testing.T) {
	tests := []struct{ in, want string }{
		{"::", "::"},
		{"::1", "::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"2001:db8::", "2001:db8::"},
		{"1:0:0:2:0:0:0:3", "1:0:0:2::3"},
		{"1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"},
		{"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
		{"::1.2.3.4", "::1.2.3.4"},
		{"fe80:0:0:0:1:0:0:0", "fe80::1:0:0:0"},
		{"::0.0.1.2", "::102"},
		{"ffff:ffff::", "ffff:ffff::"},
	}
	for _, tt := range tests {
		a, ok := ipv6FromText(tt.in)
		if !ok {
			t.Fatalf("ipv6FromText(%q) failed", tt.in)
		}
		if got := ipv6Text(&a); got != tt.want {
			t.Errorf("ipv6Text(%s) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestTCPFlagsText(t *testing.T) {
	tests := []struct {
		v, m uint16
		want string
	}{
		{0, 0xfff, "0"},
		{0x12, 0xfff, "syn|ack"},
		{0x12, 0x12, "+syn+ack"},
		{0x02, 0x13, "-fin+syn-ack"},
		{0x800, 0x800, "+[800]"},
	}
	for _, tt := range tests {
		if got := tcpFlagsText(tt.v, tt.m); got != tt.want {
			t.Errorf("tcpFlagsText(%#x, %#x) = %q; want %q", tt.v, tt.m, got, tt.want)
		}
	}
}
