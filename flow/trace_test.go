package flow

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseMicroflow(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" for success
		check   func(*Key) bool
	}{
		{name: "tcp", in: "in_port=1,tcp,nw_src=10.1.1.1,tp_dst=80",
			check: func(k *Key) bool {
				return k.InPort == 1 && k.DlType == EthTypeIPv4 && k.NwProto == IPProtoTCP && k.NwSrc == 0x0a010101 && k.TpDst == 80 && k.NwDst == 0
			}},
		{name: "udp_src alias", in: "udp,udp_src=53", check: func(k *Key) bool { return k.NwProto == IPProtoUDP && k.TpSrc == 53 }},
		{name: "icmpv6_type", in: "icmp6,icmpv6_type=135,icmp_code=0", check: func(k *Key) bool { return k.DlType == EthTypeIPv6 && k.TpSrc == 135 }},
		{name: "vlan gets a TPID", in: "dl_vlan=5,ip", check: func(k *Key) bool {
			return k.VLANs[0] == VLAN{TPID: EthTypeVLAN, TCI: VLANPresent | 5}
		}},
		{name: "unspecified fields are zero", in: "ip", check: func(k *Key) bool { return *k == Key{DlType: EthTypeIPv4} }},
		{name: "prefix", in: "ip,nw_src=10.0.0.0/8", wantErr: `"nw_src=10.0.0.0/8": prefix/mask not allowed`},
		{name: "mask", in: "tcp,tp_dst=0x50/0xfff0", wantErr: "prefix/mask not allowed"},
		{name: "partial tcp flags", in: "tcp,tcp_flags=+syn", wantErr: "every TCP flag"},
		{name: "partial frag", in: "ip,nw_frag=yes", wantErr: "fragment type is exact"},
		{name: "unknown field", in: "ip,nw_bogus=1", wantErr: "unknown field nw_bogus"},
		{name: "prerequisite", in: "tp_dst=80", wantErr: "requires"},
		{name: "outer tos and ttl", in: "tun_tos=0x2e,in_port=10,tun_dst=192.0.2.1,tun_ttl=9,udp", check: func(k *Key) bool {
			return k.TunTOS == 0x2e && k.TunTTL == 9 && k.TunDst == 0xc0000201 && k.InPort == 10 && k.NwProto == IPProtoUDP
		}},
		{name: "outer tos too wide", in: "tun_tos=256,udp", wantErr: `"tun_tos=256": tun_tos needs a number of up to 8 bits`},
		{name: "outer ttl without a value", in: "udp,tun_ttl", wantErr: "tun_ttl needs a number"},
		{name: "error after an outer tos", in: "tun_tos=3,ip,nw_bogus=1", wantErr: "unknown field nw_bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseMicroflow(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMicroflow(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Errorf("error %v is not a *SyntaxError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMicroflow(%q): %v", tt.in, err)
			}
			if !tt.check(&k) {
				t.Errorf("ParseMicroflow(%q) = %+v", tt.in, k)
			}
		})
	}
}

// TestBuildFrameRoundTrip checks that Extract reads back the key a frame was
// built from, for the kinds of packets ofproto/trace is asked about.
func TestBuildFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"tcp", "in_port=3,tcp,dl_src=00:11:22:33:44:55,dl_dst=66:77:88:99:aa:bb,nw_src=10.1.1.1,nw_dst=10.2.2.2,nw_tos=8,nw_ecn=1,nw_ttl=64,tp_src=1234,tp_dst=80,tcp_flags=syn|ack"},
		{"udp", "udp,nw_src=192.168.0.1,udp_src=53,udp_dst=5353,nw_ttl=1"},
		{"sctp", "sctp,sctp_src=1,sctp_dst=2"},
		{"icmp", "icmp,icmp_type=8,icmp_code=0,nw_ttl=255"},
		{"arp", "arp,arp_op=2,arp_spa=10.0.0.1,arp_tpa=10.0.0.2,arp_sha=00:00:00:00:00:01,arp_tha=00:00:00:00:00:02"},
		{"rarp", "rarp,arp_op=3"},
		{"ipv6 tcp", "tcp6,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,ipv6_label=0x12345,nw_tos=32,nw_ttl=9,tp_dst=443"},
		{"nd solicit", "icmp6,icmp_type=135,icmp_code=0,nd_target=fe80::1,nd_sll=00:00:00:00:00:0a"},
		{"nd advert", "icmp6,icmp_type=136,icmp_code=0,nd_target=fe80::2,nd_tll=00:00:00:00:00:0b"},
		{"icmpv6 echo", "icmp6,icmp_type=128,icmp_code=0"},
		{"vlan", "dl_vlan=10,dl_vlan_pcp=5,udp,tp_dst=7"},
		{"first fragment", "tcp,nw_frag=first,tp_dst=22"},
		{"later fragment", "ip,nw_proto=17,nw_frag=later"},
		{"ipv6 first fragment", "udp6,nw_frag=first,tp_src=9"},
		{"other ethertype", "dl_type=0x88cc"},
		{"other ip protocol", "ip,nw_proto=47"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseMicroflow(tt.in)
			if err != nil {
				t.Fatalf("ParseMicroflow(%q): %v", tt.in, err)
			}
			frame := BuildFrame(&k)
			if cap(frame)-len(frame) < FrameSpare {
				t.Errorf("spare capacity %d, want at least %d", cap(frame)-len(frame), FrameSpare)
			}
			var got Key
			var off Offsets
			if why := Extract(&got, &off, frame, k.InPort); why != MalformedNone {
				t.Fatalf("Extract: %v", why)
			}
			if got != k {
				t.Errorf("Extract(BuildFrame(k)) =\n %+v\nwant\n %+v", got, k)
			}
		})
	}
}

func TestRuleLastUsed(t *testing.T) {
	tbl := NewTable()
	base := time.Unix(1000, 0)
	tbl.now = func() time.Time { return base }
	f, err := ParseFlow("ip,actions=drop", CmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	tbl.Add(f)
	r := tbl.Dump(nil)[0]
	if got := r.LastUsed(); !got.Equal(base) {
		t.Errorf("unused rule: LastUsed = %v, want its install time %v", got, base)
	}
	used := base.Add(3 * time.Second)
	r.AddStats(1, 60, used.UnixNano())
	if got := r.LastUsed(); !got.Equal(used) {
		t.Errorf("after AddStats: LastUsed = %v, want %v", got, used)
	}
}
