package flow

import "testing"

// TestFormatMicroflowCt checks the connection tracking fields of a packet
// as ofproto/trace prints its flow, against what Open vSwitch 3.1's
// ofproto/trace printed for the same microflows: the fields that are not
// zero, and the original tuple, zeros included, when ct_state says there
// is a connection and ct_nw_proto is not zero.
func TestFormatMicroflowCt(t *testing.T) {
	checkFormatMicroflow(t, []microflowCase{
		{"ipv6 tuple", "in_port=1,udp6,ipv6_src=fd00::1,ipv6_dst=fd00::2,udp_src=1234,udp_dst=53,ct_state=est|trk,ct_nw_proto=17,ct_ipv6_src=fd00::1,ct_tp_src=7",
			"ct_state=est|trk,ct_ipv6_src=fd00::1,ct_ipv6_dst=::,ct_nw_proto=17,ct_tp_src=7,ct_tp_dst=0,udp6,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,ipv6_src=fd00::1,ipv6_dst=fd00::2,ipv6_label=0x00000,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=1234,tp_dst=53"},
		{"ipv4 tuple", "in_port=1,tcp,ct_state=est|trk,ct_nw_proto=6,ct_nw_src=1.1.1.1",
			"ct_state=est|trk,ct_nw_src=1.1.1.1,ct_nw_dst=0.0.0.0,ct_nw_proto=6,ct_tp_src=0,ct_tp_dst=0,tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0"},
		{"no tuple without ct_nw_proto", "in_port=1,tcp,ct_state=est|trk,ct_nw_src=1.1.1.1",
			"ct_state=est|trk,tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0"},
		{"zone label and nat flags", "in_port=1,tcp,ct_state=est|trk|snat|dnat,ct_mark=0,ct_zone=65535,ct_nw_proto=6,ct_label=0x1000000000000000000000000000000f",
			"ct_state=est|trk|snat|dnat,ct_zone=65535,ct_label=0x1000000000000000000000000000000f,ct_nw_src=0.0.0.0,ct_nw_dst=0.0.0.0,ct_nw_proto=6,ct_tp_src=0,ct_tp_dst=0,tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0"},
	})
	// After a recirculation: Open vSwitch prints recirc_id first (and
	// "eth," before the protocol, which FormatMicroflow leaves to its
	// callers).
	k, err := ParseMicroflow("in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1234,tp_dst=80")
	if err != nil {
		t.Fatal(err)
	}
	k.RecircID, k.CtState, k.CtZone, k.CtMark, k.CtLabel[15] = 1, CtStateNew|CtStateTracked, 5, 5, 0x10
	const want = "recirc_id=0x1,ct_state=new|trk,ct_zone=5,ct_mark=0x5,ct_label=0x10,tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=1234,tp_dst=80,tcp_flags=0"
	if got := FormatMicroflow(&k); got != want {
		t.Errorf("after recirculation:\n got %s\nwant %s", got, want)
	}
}
