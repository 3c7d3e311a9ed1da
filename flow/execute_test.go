package flow

import (
	"bytes"
	"encoding/hex"
	"net"
	"testing"

	"github.com/google/gopacket/layers"
)

const execInPort = 3

// TestExecuteRewrites runs each action on a gopacket-built frame and checks
// the result against the frame gopacket builds with the expected header
// values (checksums computed from scratch), and the key and offsets against
// extraction of the result.
func TestExecuteRewrites(t *testing.T) {
	newMAC := "0a:0b:0c:0d:0e:0f"
	tests := []struct {
		name string
		in   func() frameSpec
		acts []Action
		want func(s *frameSpec) // the expected frame, from a fresh copy of in
	}{
		// Ethernet.
		{"dl_src", ipv4TCP, []Action{set(FieldDlSrc, macValue(newMAC))},
			func(s *frameSpec) { s.eth.SrcMAC = mustMAC(newMAC) }},
		{"dl_dst", ipv6UDP, []Action{set(FieldDlDst, macValue(newMAC))},
			func(s *frameSpec) { s.eth.DstMAC = mustMAC(newMAC) }},

		// IPv4 addresses: header checksum, and the pseudo-header of TCP/UDP.
		{"ipv4/tcp nw_src", ipv4TCP, []Action{set(FieldNwSrc, ipValue("172.16.5.4"))},
			func(s *frameSpec) { s.ip4.SrcIP = net.IPv4(172, 16, 5, 4) }},
		{"ipv4/tcp nw_dst", ipv4TCP, []Action{set(FieldNwDst, ipValue("1.2.3.4"))},
			func(s *frameSpec) { s.ip4.DstIP = net.IPv4(1, 2, 3, 4) }},
		{"ipv4 options nw_dst", ipv4Options, []Action{set(FieldNwDst, ipValue("9.9.9.9"))},
			func(s *frameSpec) { s.ip4.DstIP = net.IPv4(9, 9, 9, 9) }},
		{"ipv4/udp nw_src", ipv4UDP, []Action{set(FieldNwSrc, ipValue("100.64.0.1"))},
			func(s *frameSpec) { s.ip4.SrcIP = net.IPv4(100, 64, 0, 1) }},
		{"ipv4/udp no csum nw_dst", ipv4UDPNoCsum, []Action{set(FieldNwDst, ipValue("100.64.0.2"))},
			func(s *frameSpec) { s.ip4.DstIP = net.IPv4(100, 64, 0, 2) }},
		{"ipv4/icmp nw_src", ipv4ICMP, []Action{set(FieldNwSrc, ipValue("8.8.4.4"))},
			func(s *frameSpec) { s.ip4.SrcIP = net.IPv4(8, 8, 4, 4) }},
		{"ipv4/sctp nw_dst", ipv4SCTP, []Action{set(FieldNwDst, ipValue("8.8.4.4"))},
			func(s *frameSpec) { s.ip4.DstIP = net.IPv4(8, 8, 4, 4) }},

		// IPv4 TOS, TTL.
		{"ipv4 nw_tos", ipv4TCP, []Action{set(FieldNwTos, 0xb8)},
			func(s *frameSpec) { s.ip4.TOS = 0xb8 | 0x1 }},
		{"ipv4 ip_dscp", ipv4UDP, []Action{set(FieldIPDSCP, 10)},
			func(s *frameSpec) { s.ip4.TOS = 10<<2 | 0x1 }},
		{"ipv4 nw_ecn", ipv4TCP, []Action{set(FieldNwECN, 3)},
			func(s *frameSpec) { s.ip4.TOS = 0x28 | 3 }},
		{"ipv4 nw_ttl", ipv4ICMP, []Action{set(FieldNwTTL, 7)},
			func(s *frameSpec) { s.ip4.TTL = 7 }},
		{"ipv4 dec_ttl", ipv4TCP, []Action{act(ActDecTTL, 0)},
			func(s *frameSpec) { s.ip4.TTL = 63 }},

		// Transport ports.
		{"ipv4/tcp tp_src", ipv4TCP, []Action{set(FieldTpSrc, 1024)},
			func(s *frameSpec) { s.tcp.SrcPort = 1024 }},
		{"ipv4/tcp tcp_dst", ipv4TCP, []Action{set(FieldTCPDst, 8080)},
			func(s *frameSpec) { s.tcp.DstPort = 8080 }},
		{"ipv4/tcp udp_dst is a no-op", ipv4TCP, []Action{set(FieldUDPDst, 8080)},
			func(s *frameSpec) {}},
		{"ipv4/udp tp_dst", ipv4UDP, []Action{set(FieldTpDst, 5300)},
			func(s *frameSpec) { s.udp.DstPort = 5300 }},
		{"ipv4/udp no csum udp_src", ipv4UDPNoCsum, []Action{set(FieldUDPSrc, 1)},
			func(s *frameSpec) { s.udp.SrcPort = 1 }},
		{"ipv4/sctp tp_src", ipv4SCTP, []Action{set(FieldTpSrc, 9)},
			func(s *frameSpec) { s.sctp.SrcPort = 9 }},
		{"ipv4/sctp sctp_dst", ipv4SCTP, []Action{set(FieldSCTPDst, 0xfedc)},
			func(s *frameSpec) { s.sctp.DstPort = 0xfedc }},
		{"ipv6/sctp tp_dst", ipv6SCTP, []Action{set(FieldTpDst, 38412)},
			func(s *frameSpec) { s.sctp.DstPort = 38412 }},

		// ICMP.
		{"ipv4/icmp tp_dst is a no-op", ipv4ICMP, []Action{set(FieldTpDst, 99)},
			func(s *frameSpec) {}},
		{"ipv4/icmp icmp_type", ipv4ICMP, []Action{set(FieldICMPType, 0)},
			func(s *frameSpec) { s.icmp4.TypeCode = layers.CreateICMPv4TypeCode(0, 0) }},
		{"ipv4/icmp icmp_code", ipv4ICMP, []Action{set(FieldICMPCode, 4)},
			func(s *frameSpec) { s.icmp4.TypeCode = layers.CreateICMPv4TypeCode(8, 4) }},
		{"ipv4/icmp icmpv6_type is a no-op", ipv4ICMP, []Action{set(FieldICMPv6Type, 129)},
			func(s *frameSpec) {}},

		// IPv6.
		{"ipv6/tcp ipv6_src", ipv6TCP, []Action{set6(FieldIPv6Src, "fd00::1:2:3")},
			func(s *frameSpec) { s.ip6.SrcIP = net.ParseIP("fd00::1:2:3") }},
		{"ipv6/tcp ipv6_dst", ipv6TCP, []Action{set6(FieldIPv6Dst, "fe80::ffff")},
			func(s *frameSpec) { s.ip6.DstIP = net.ParseIP("fe80::ffff") }},
		{"ipv6/udp ipv6_dst", ipv6UDP, []Action{set6(FieldIPv6Dst, "2001:db8::99")},
			func(s *frameSpec) { s.ip6.DstIP = net.ParseIP("2001:db8::99") }},
		{"ipv6/icmpv6 ipv6_src", ipv6Echo, []Action{set6(FieldIPv6Src, "2001:db8::99")},
			func(s *frameSpec) { s.ip6.SrcIP = net.ParseIP("2001:db8::99") }},
		{"ipv6/sctp ipv6_src", ipv6SCTP, []Action{set6(FieldIPv6Src, "2001:db8::98")},
			func(s *frameSpec) { s.ip6.SrcIP = net.ParseIP("2001:db8::98") }},
		{"ipv6 nw_tos", ipv6TCP, []Action{set(FieldNwTos, 0x20)},
			func(s *frameSpec) { s.ip6.TrafficClass = 0x20 | 0x2 }},
		{"ipv6 nw_ecn", ipv6UDP, []Action{set(FieldNwECN, 1)},
			func(s *frameSpec) { s.ip6.TrafficClass = 0xb8 | 0x1 }},
		{"ipv6 ipv6_label", ipv6TCP, []Action{set(FieldIPv6Label, 0xfedcb)},
			func(s *frameSpec) { s.ip6.FlowLabel = 0xfedcb }},
		{"ipv6 nw_ttl", ipv6UDP, []Action{set(FieldNwTTL, 255)},
			func(s *frameSpec) { s.ip6.HopLimit = 255 }},
		{"ipv6 dec_ttl", ipv6TCP, []Action{act(ActDecTTL, 0)},
			func(s *frameSpec) { s.ip6.HopLimit = 63 }},
		{"ipv6/tcp tp_dst", ipv6TCP, []Action{set(FieldTpDst, 8443)},
			func(s *frameSpec) { s.tcp.DstPort = 8443 }},
		{"ipv6/udp udp_src", ipv6UDP, []Action{set(FieldUDPSrc, 7)},
			func(s *frameSpec) { s.udp.SrcPort = 7 }},
		{"ipv6 nw_src is a no-op", ipv6TCP, []Action{set(FieldNwSrc, ipValue("1.1.1.1"))},
			func(s *frameSpec) {}},
		{"ipv4 ipv6_src is a no-op", ipv4TCP, []Action{set6(FieldIPv6Src, "::1")},
			func(s *frameSpec) {}},
		{"ipv6/icmpv6 icmpv6_type", ipv6Echo, []Action{set(FieldICMPv6Type, 129)},
			func(s *frameSpec) { s.icmp6.TypeCode = layers.CreateICMPv6TypeCode(129, 0) }},
		{"ipv6/icmpv6 icmpv6_code", ipv6Echo, []Action{set(FieldICMPv6Code, 1)},
			func(s *frameSpec) { s.icmp6.TypeCode = layers.CreateICMPv6TypeCode(128, 1) }},
		{"ipv6/icmpv6 icmp_type is a no-op", ipv6Echo, []Action{set(FieldICMPType, 0)},
			func(s *frameSpec) {}},

		// Neighbour discovery.
		{"nd_target", ipv6NS, []Action{set6(FieldNdTarget, "2001:db8::78")},
			func(s *frameSpec) {
				s.icmp6Body.(*layers.ICMPv6NeighborSolicitation).TargetAddress = net.ParseIP("2001:db8::78")
			}},
		{"nd_sll", ipv6NS, []Action{set(FieldNdSll, macValue(newMAC))},
			func(s *frameSpec) {
				s.icmp6Body.(*layers.ICMPv6NeighborSolicitation).Options[1].Data = mustMAC(newMAC)
			}},
		{"nd_tll", ipv6NA, []Action{set(FieldNdTll, macValue(newMAC))},
			func(s *frameSpec) {
				s.icmp6Body.(*layers.ICMPv6NeighborAdvertisement).Options[0].Data = mustMAC(newMAC)
			}},
		{"nd_tll without the option is a no-op", ipv6NS, []Action{set(FieldNdTll, macValue(newMAC))},
			func(s *frameSpec) {}},
		{"nd_target on echo is a no-op", ipv6Echo, []Action{set6(FieldNdTarget, "::1")},
			func(s *frameSpec) {}},

		// ARP.
		{"arp nw_src sets spa", arpRequest, []Action{set(FieldNwSrc, ipValue("10.9.9.9"))},
			func(s *frameSpec) { s.arp.SourceProtAddress = net.IPv4(10, 9, 9, 9).To4() }},
		{"arp nw_dst sets tpa", arpRequest, []Action{set(FieldNwDst, ipValue("10.9.9.8"))},
			func(s *frameSpec) { s.arp.DstProtAddress = net.IPv4(10, 9, 9, 8).To4() }},
		{"arp_spa", arpRequest, []Action{set(FieldArpSpa, ipValue("10.9.9.7"))},
			func(s *frameSpec) { s.arp.SourceProtAddress = net.IPv4(10, 9, 9, 7).To4() }},
		{"arp_sha arp_tha", arpRequest, []Action{set(FieldArpSha, macValue(newMAC)), set(FieldArpTha, macValue("02:00:00:00:00:99"))},
			func(s *frameSpec) {
				s.arp.SourceHwAddress = mustMAC(newMAC)
				s.arp.DstHwAddress = mustMAC("02:00:00:00:00:99")
			}},
		{"arp_op", arpRequest, []Action{set(FieldArpOp, 2)},
			func(s *frameSpec) { s.arp.Operation = 2 }},
		{"arp dec_ttl tp_dst are no-ops", arpRequest, []Action{act(ActDecTTL, 0), set(FieldTpDst, 1), set(FieldNwTTL, 1)},
			func(s *frameSpec) {}},
		{"ipv4 arp_spa is a no-op", ipv4TCP, []Action{set(FieldArpSpa, 1)},
			func(s *frameSpec) {}},

		// VLAN on an untagged frame: mod_vlan_* push an 802.1Q tag.
		{"untagged mod_vlan_vid", ipv4TCP, []Action{act(ActSetVLANVID, 42)},
			func(s *frameSpec) { s.tags = []testTag{vlanTag(42, 0)} }},
		{"untagged mod_vlan_pcp", ipv6UDP, []Action{act(ActSetVLANPCP, 5)},
			func(s *frameSpec) { s.tags = []testTag{vlanTag(0, 5)} }},
		{"untagged push_vlan", arpRequest, []Action{act(ActPushVLAN, EthTypeVLAN)},
			func(s *frameSpec) { s.tags = []testTag{vlanTag(0, 0)} }},
		{"untagged strip_vlan is a no-op", ipv4TCP, []Action{act(ActPopVLAN, 0)},
			func(s *frameSpec) {}},
		{"untagged vlan_tci", ipv4TCP, []Action{set(FieldVLANTCI, 0x1000|3<<13|99)},
			func(s *frameSpec) { s.tags = []testTag{vlanTag(99, 3)} }},
		{"untagged push then nw_dst tp_dst", ipv4UDP, []Action{act(ActSetVLANVID, 10), set(FieldNwDst, ipValue("10.1.1.1")), set(FieldTpDst, 99)},
			func(s *frameSpec) {
				s.tags = []testTag{vlanTag(10, 0)}
				s.ip4.DstIP = net.IPv4(10, 1, 1, 1)
				s.udp.DstPort = 99
			}},

		// VLAN on a tagged frame.
		{"tagged mod_vlan_vid", tagged(ipv4TCP, vlanTag(100, 6)), []Action{act(ActSetVLANVID, 200)},
			func(s *frameSpec) { s.tags = []testTag{vlanTag(200, 6)} }},
		{"tagged mod_vlan_pcp", tagged(ipv4TCP, vlanTag(100, 6)), []Action{act(ActSetVLANPCP, 1)},
			func(s *frameSpec) { s.tags = []testTag{vlanTag(100, 1)} }},
		{"tagged dl_vlan", tagged(ipv6TCP, vlanTag(100, 6)), []Action{set(FieldDlVLAN, 7)},
			func(s *frameSpec) { s.tags = []testTag{vlanTag(7, 6)} }},
		{"tagged vlan_vid", tagged(ipv6TCP, vlanTag(100, 6)), []Action{set(FieldVLANVID, 0x1000|8)},
			func(s *frameSpec) { s.tags = []testTag{vlanTag(8, 6)} }},
		{"tagged vlan_pcp", tagged(ipv6TCP, vlanTag(100, 6)), []Action{set(FieldVLANPCP, 2)},
			func(s *frameSpec) { s.tags = []testTag{vlanTag(100, 2)} }},
		{"tagged strip_vlan", tagged(ipv4TCP, vlanTag(100, 6)), []Action{act(ActPopVLAN, 0)},
			func(s *frameSpec) { s.tags = nil }},
		{"tagged dl_vlan none strips", tagged(ipv4UDP, vlanTag(100, 6)), []Action{set(FieldDlVLAN, 0xffff)},
			func(s *frameSpec) { s.tags = nil }},
		{"tagged vlan_tci 0 strips", tagged(arpRequest, vlanTag(100, 6)), []Action{set(FieldVLANTCI, 0)},
			func(s *frameSpec) { s.tags = nil }},
		// Open vSwitch pushes VID 0, priority 0, not a copy of the outer tag.
		{"tagged push_vlan 802.1ad pushes vid 0", tagged(ipv4TCP, vlanTag(100, 6)), []Action{act(ActPushVLAN, EthTypeQinQ)},
			func(s *frameSpec) { s.tags = []testTag{dot1ad(0, 0), vlanTag(100, 6)} }},
		{"tagged nw_dst dec_ttl", tagged(ipv4TCP, vlanTag(100, 6)), []Action{set(FieldNwDst, ipValue("10.1.1.1")), act(ActDecTTL, 0)},
			func(s *frameSpec) {
				s.ip4.DstIP = net.IPv4(10, 1, 1, 1)
				s.ip4.TTL = 63
			}},
		{"tagged strip then tp_src", tagged(ipv4TCP, vlanTag(100, 6)), []Action{act(ActPopVLAN, 0), set(FieldTpSrc, 1)},
			func(s *frameSpec) {
				s.tags = nil
				s.tcp.SrcPort = 1
			}},

		// QinQ.
		{"qinq mod_vlan_vid sets the outer tag", tagged(ipv4TCP, dot1ad(10, 0), vlanTag(20, 0)), []Action{act(ActSetVLANVID, 11)},
			func(s *frameSpec) { s.tags = []testTag{dot1ad(11, 0), vlanTag(20, 0)} }},
		{"qinq pop", tagged(ipv4TCP, dot1ad(10, 0), vlanTag(20, 0)), []Action{act(ActPopVLAN, 0)},
			func(s *frameSpec) { s.tags = []testTag{vlanTag(20, 0)} }},
		{"qinq pop twice", tagged(ipv6UDP, dot1ad(10, 0), vlanTag(20, 0)), []Action{act(ActPopVLAN, 0), act(ActPopVLAN, 0), set(FieldTpDst, 1)},
			func(s *frameSpec) {
				s.tags = nil
				s.udp.DstPort = 1
			}},
		{"qinq push a third tag", tagged(ipv4TCP, dot1ad(10, 0), vlanTag(20, 0)), []Action{act(ActPushVLAN, EthTypeQinQ)},
			func(s *frameSpec) { s.tags = []testTag{dot1ad(0, 0), dot1ad(10, 0), vlanTag(20, 0)} }},
		{"qinq push and pop", tagged(ipv4TCP, dot1ad(10, 0), vlanTag(20, 0)), []Action{act(ActPushVLAN, EthTypeVLAN), act(ActPopVLAN, 0), set(FieldNwSrc, ipValue("1.1.1.1"))},
			func(s *frameSpec) { s.ip4.SrcIP = net.IPv4(1, 1, 1, 1) }},
		{"three tags pop", tagged(ipv4TCP, dot1ad(1, 0), vlanTag(2, 0), vlanTag(3, 0)), []Action{act(ActPopVLAN, 0), set(FieldTpDst, 5)},
			func(s *frameSpec) {
				s.tags = []testTag{vlanTag(2, 0), vlanTag(3, 0)}
				s.tcp.DstPort = 5
			}},
		{"qinq tp_dst", tagged(ipv4SCTP, dot1ad(10, 0), vlanTag(20, 0)), []Action{set(FieldTpDst, 5)},
			func(s *frameSpec) { s.sctp.DstPort = 5 }},

		// A typical router rewrite.
		{"route", ipv4TCP, []Action{
			set(FieldDlSrc, macValue("02:aa:00:00:00:01")), set(FieldDlDst, macValue("02:bb:00:00:00:02")), act(ActDecTTL, 0),
			set(FieldNwDst, ipValue("10.20.30.40")), set(FieldTpDst, 8080), output(2),
		}, func(s *frameSpec) {
			s.eth.SrcMAC = mustMAC("02:aa:00:00:00:01")
			s.eth.DstMAC = mustMAC("02:bb:00:00:00:02")
			s.ip4.TTL = 63
			s.ip4.DstIP = net.IPv4(10, 20, 30, 40)
			s.tcp.DstPort = 8080
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in().build(t)
			buf := withSpare(in, 8)
			k, off := extracted(buf, execInPort)

			got, v := Execute(buf, &k, &off, tt.acts, nil)
			if v != VerdictOK {
				t.Fatalf("verdict %v, want ok", v)
			}
			spec := tt.in()
			tt.want(&spec)
			want := spec.build(t)
			if !bytes.Equal(got, want) {
				t.Fatalf("frame after actions:\n got %s\nwant %s", hex.EncodeToString(got), hex.EncodeToString(want))
			}
			wantKey, wantOff := extracted(want, execInPort)
			if k != wantKey {
				t.Errorf("key after actions:\n got %+v\nwant %+v", k, wantKey)
			}
			if off != wantOff {
				t.Errorf("offsets after actions: got %+v, want %+v", off, wantOff)
			}
		})
	}
}

// recorder is an Outputter that keeps a copy of each output.
type recorder struct {
	ports  []uint32
	frames [][]byte
}

func (r *recorder) Output(port uint32, frame []byte) {
	r.ports = append(r.ports, port)
	r.frames = append(r.frames, append([]byte(nil), frame...))
}

func TestExecuteOutputOrder(t *testing.T) {
	in := ipv4TCP().build(t)
	k, off := extracted(in, execInPort)
	var r recorder
	acts := []Action{
		output(1),
		set(FieldDlSrc, macValue("0a:00:00:00:00:01")),
		output(2),
		act(ActSetVLANVID, 5),
		output(PortInPort),
	}
	got, v := Execute(withSpare(in, 4), &k, &off, acts, &r)
	if v != VerdictOK {
		t.Fatalf("verdict %v", v)
	}
	if want := []uint32{1, 2, PortInPort}; len(r.ports) != len(want) || r.ports[0] != want[0] || r.ports[1] != want[1] || r.ports[2] != want[2] {
		t.Fatalf("output ports %v, want %v", r.ports, want)
	}
	if !bytes.Equal(r.frames[0], in) {
		t.Errorf("port 1 saw a modified frame")
	}
	mod := ipv4TCP()
	mod.eth.SrcMAC = mustMAC("0a:00:00:00:00:01")
	if want := mod.build(t); !bytes.Equal(r.frames[1], want) {
		t.Errorf("port 2 frame:\n got %x\nwant %x", r.frames[1], want)
	}
	mod.tags = []testTag{vlanTag(5, 0)}
	if want := mod.build(t); !bytes.Equal(r.frames[2], want) || !bytes.Equal(got, want) {
		t.Errorf("in_port frame:\n got %x\nwant %x", r.frames[2], want)
	}
}

func TestExecuteVerdicts(t *testing.T) {
	tooMany := make([]Action, MaxActions+1)
	for i := range tooMany {
		tooMany[i] = set(FieldNwTTL, 1)
	}
	ttl1 := func() frameSpec { s := ipv4TCP(); s.ip4.TTL = 1; return s }
	hop1 := func() frameSpec { s := ipv6UDP(); s.ip6.HopLimit = 1; return s }
	ttl0 := func() frameSpec { s := ipv4UDP(); s.ip4.TTL = 0; return s }
	tests := []struct {
		name        string
		in          func() frameSpec
		spare       int
		acts        []Action
		wantVerdict Verdict
		wantOutputs []uint32
		want        func(s *frameSpec)
	}{
		{"action cap: nothing runs", ipv4TCP, 4, append(append([]Action{output(1)}, tooMany...)[:MaxActions], output(2)),
			VerdictActionCap, nil, func(s *frameSpec) {}},
		{"at the cap everything runs", ipv4TCP, 4, append(append([]Action{output(1)}, tooMany...)[:MaxActions-1], output(2)),
			VerdictOK, []uint32{1, 2}, func(s *frameSpec) { s.ip4.TTL = 1 }},
		{"ipv4 ttl 1", ttl1, 4, []Action{output(1), set(FieldDlSrc, 0x0a0000000001), act(ActDecTTL, 0), output(2)},
			VerdictTTLExceeded, []uint32{1}, func(s *frameSpec) { s.eth.SrcMAC = mustMAC("0a:00:00:00:00:01") }},
		{"ipv4 ttl 0", ttl0, 4, []Action{act(ActDecTTL, 0), output(2)},
			VerdictTTLExceeded, nil, func(s *frameSpec) {}},
		{"ipv6 hop limit 1", hop1, 4, []Action{act(ActDecTTL, 0), output(2)},
			VerdictTTLExceeded, nil, func(s *frameSpec) {}},
		{"push with no room", ipv4TCP, 3, []Action{output(1), act(ActPushVLAN, EthTypeVLAN), output(2)},
			VerdictNoRoom, []uint32{1}, func(s *frameSpec) {}},
		{"mod_vlan_vid with no room", ipv6TCP, 0, []Action{act(ActSetVLANVID, 1), output(2)},
			VerdictNoRoom, nil, func(s *frameSpec) {}},
		{"mod_vlan_vid on a tag needs no room", tagged(ipv6TCP, vlanTag(1, 0)), 0, []Action{act(ActSetVLANVID, 2), output(2)},
			VerdictOK, []uint32{2}, func(s *frameSpec) { s.tags[0].vid = 2 }},
		{"pop needs no room", tagged(ipv6TCP, vlanTag(1, 0)), 0, []Action{act(ActPopVLAN, 0), output(2)},
			VerdictOK, []uint32{2}, func(s *frameSpec) { s.tags = nil }},
		{"read-only field", ipv4TCP, 4, []Action{set(FieldDlType, 0x86dd), output(2)},
			VerdictBadAction, nil, func(s *frameSpec) {}},
		{"unknown action", ipv4TCP, 4, []Action{{Type: 0}, output(2)},
			VerdictBadAction, nil, func(s *frameSpec) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := withSpare(tt.in().build(t), tt.spare)
			k, off := extracted(buf, execInPort)
			var r recorder
			got, v := Execute(buf, &k, &off, tt.acts, &r)
			if v != tt.wantVerdict {
				t.Errorf("verdict %v, want %v", v, tt.wantVerdict)
			}
			if len(r.ports) != len(tt.wantOutputs) {
				t.Fatalf("outputs %v, want %v", r.ports, tt.wantOutputs)
			}
			for i := range r.ports {
				if r.ports[i] != tt.wantOutputs[i] {
					t.Fatalf("outputs %v, want %v", r.ports, tt.wantOutputs)
				}
			}
			spec := tt.in()
			tt.want(&spec)
			if want := spec.build(t); !bytes.Equal(got, want) {
				t.Errorf("frame:\n got %x\nwant %x", got, want)
			}
			if wantKey, wantOff := extracted(got, execInPort); k != wantKey || off != wantOff {
				t.Errorf("key/offsets disagree with extraction of the result")
			}
		})
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{
		VerdictOK: "ok", VerdictActionCap: "action-cap", VerdictTTLExceeded: "ttl-exceeded",
		VerdictNoRoom: "no-room", VerdictBadAction: "bad-action", 200: "verdict(200)",
	} {
		if got := v.String(); got != want {
			t.Errorf("Verdict(%d).String() = %q, want %q", v, got, want)
		}
	}
}

// discard is an Outputter that keeps nothing, like a port whose copy is
// made elsewhere.
type discard struct{ n int }

func (d *discard) Output(port uint32, frame []byte) { d.n += len(frame) }

func TestExecuteAllocs(t *testing.T) {
	in := tagged(ipv4TCP, vlanTag(7, 0))().build(t)
	buf := withSpare(in, 8)
	acts := []Action{
		set(FieldDlSrc, macValue("02:aa:00:00:00:01")), set(FieldDlDst, macValue("02:bb:00:00:00:02")),
		act(ActDecTTL, 0), set(FieldNwDst, ipValue("10.20.30.40")), set(FieldTpDst, 8080),
		act(ActPopVLAN, 0), output(1), act(ActPushVLAN, EthTypeVLAN), act(ActSetVLANVID, 9), output(2),
	}
	out := &discard{}
	var k Key
	var off Offsets
	allocs := testing.AllocsPerRun(1000, func() {
		frame := buf[:copy(buf, in)]
		Extract(&k, &off, frame, execInPort)
		if _, v := Execute(frame, &k, &off, acts, out); v != VerdictOK {
			t.Fatalf("verdict %v", v)
		}
	})
	if allocs != 0 {
		t.Errorf("Execute allocates %v times per packet, want 0", allocs)
	}
}

func BenchmarkExecute(b *testing.B) {
	for _, bb := range []struct {
		name string
		acts []Action
	}{
		{"l3-rewrite", []Action{set(FieldNwDst, ipValue("10.20.30.40")), set(FieldTpDst, 8080), output(2)}},
		{"output-only", []Action{output(2)}},
		{"route", []Action{
			set(FieldDlSrc, macValue("02:aa:00:00:00:01")), set(FieldDlDst, macValue("02:bb:00:00:00:02")),
			act(ActDecTTL, 0), output(2),
		}},
		{"push-pop-vlan", []Action{act(ActPushVLAN, EthTypeVLAN), output(2), act(ActPopVLAN, 0), output(3)}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			in := ipv4TCP().build(b)
			buf := withSpare(in, 8)
			k, off := extracted(buf, execInPort)
			out := &discard{}
			b.ReportAllocs()
			for b.Loop() {
				if bb.name == "route" {
					k.NwTTL = 64 // keep dec_ttl from running out
					buf[off.L3+8] = 64
				}
				if _, v := Execute(buf, &k, &off, bb.acts, out); v != VerdictOK {
					b.Fatalf("verdict %v", v)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}

// TestOnlyOutput checks the action lists OnlyOutput picks out, and that
// Execute runs each of them as one Output of the unchanged frame to the
// port OnlyOutput returns, with VerdictOK.
func TestOnlyOutput(t *testing.T) {
	asInPort := output(PortFlood)
	asInPort.Value = outputAsInPort | 7
	tests := []struct {
		name     string
		inActs   []Action
		wantPort uint32
		wantOK   bool
	}{
		{name: "output", inActs: []Action{output(3)}, wantPort: 3, wantOK: true},
		{name: "normal", inActs: []Action{output(PortNormal)}, wantPort: PortNormal, wantOK: true},
		{name: "in_port", inActs: []Action{output(PortInPort)}, wantPort: PortInPort, wantOK: true},
		{name: "flood as a written in_port", inActs: []Action{asInPort}},
		{name: "two outputs", inActs: []Action{output(3), output(4)}},
		{name: "rewrite then output", inActs: []Action{set(FieldDlSrc, macValue("0a:00:00:00:00:01")), output(3)}},
		{name: "no action", inActs: nil},
	}
	in := ipv4TCP().build(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, ok := OnlyOutput(tt.inActs)
			if port != tt.wantPort || ok != tt.wantOK {
				t.Fatalf("OnlyOutput = %d, %v, want %d, %v", port, ok, tt.wantPort, tt.wantOK)
			}
			if !ok {
				return
			}
			k, off := extracted(in, execInPort)
			var r recorder
			got, v := Execute(withSpare(in, 4), &k, &off, tt.inActs, &r)
			if v != VerdictOK || len(r.ports) != 1 || r.ports[0] != port || !bytes.Equal(r.frames[0], in) || !bytes.Equal(got, in) {
				t.Errorf("Execute: verdict %v, outputs to %v; want VerdictOK and one output of the frame to %d", v, r.ports, port)
			}
		})
	}
}
