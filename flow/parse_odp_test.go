package flow

import (
	"errors"
	"testing"
)

func TestParseODPFlow(t *testing.T) {
	tests := []struct {
		name, in string
		want     func(k *Key)
		wantErr  bool
	}{
		{name: "vxlan decapsulated udp",
			in: "tunnel(tun_id=0x5,src=192.0.2.2,dst=192.0.2.1,tos=0x2e,ttl=9,tp_src=49152,tp_dst=4789,flags(+df+csum+key)),recirc_id(0),in_port(10),packet_type(ns=0,id=0)," +
				"eth(src=02:00:5e:00:53:01,dst=02:00:5e:00:53:02),eth_type(0x0800),ipv4(src=10.77.0.1,dst=10.77.0.2,proto=17,tos=0xb9,ttl=64,frag=no),udp(src=40000,dst=9)",
			want: func(k *Key) {
				k.TunID, k.TunSrc, k.TunDst, k.TunTOS, k.TunTTL = 5, 0xc0000202, 0xc0000201, 0x2e, 9
				k.TunFlags = TunFlagDF | TunFlagCsum | TunFlagKey
				k.InPort, k.DlSrc, k.DlDst, k.DlType = 10, [6]byte{2, 0, 0x5e, 0, 0x53, 1}, [6]byte{2, 0, 0x5e, 0, 0x53, 2}, EthTypeIPv4
				k.NwSrc, k.NwDst, k.NwProto, k.NwTos, k.NwTTL = 0x0a4d0001, 0x0a4d0002, IPProtoUDP, 0xb9, 64
				k.TpSrc, k.TpDst = 40000, 9
			}},
		{name: "dump flags", in: "tunnel(tun_id=0x5,ipv6_src=2001:db8::2,ipv6_dst=2001:db8::1,flags(-df-csum+key)),in_port(3)",
			want: func(k *Key) {
				k.TunID, k.TunFlags, k.InPort = 5, TunFlagKey, 3
				k.TunIPv6Src = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 2}
				k.TunIPv6Dst = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
			}},
		{name: "vlan", in: "in_port(1),eth(src=00:00:00:00:00:01,dst=00:00:00:00:00:02),eth_type(0x8100),vlan(vid=7,pcp=2),encap(eth_type(0x0806),arp(sip=10.0.0.1,tip=10.0.0.2,op=1,sha=00:00:00:00:00:01,tha=00:00:00:00:00:00))",
			want: func(k *Key) {
				k.InPort, k.DlSrc, k.DlDst = 1, [6]byte{5: 1}, [6]byte{5: 2}
				k.VLANs[0] = VLAN{TPID: EthTypeVLAN, TCI: VLANPresent | 2<<13 | 7}
				k.DlType, k.NwSrc, k.NwDst, k.NwProto, k.ArpSha = EthTypeARP, 0x0a000001, 0x0a000002, 1, [6]byte{5: 1}
			}},
		{name: "a mask", in: "in_port(1),eth_type(0x0800),ipv4(src=10.0.0.1/255.255.255.0)", wantErr: true},
		{name: "unknown attribute", in: "in_port(1),frob(1)", wantErr: true},
		{name: "geneve options", in: "tunnel(tun_id=0x5,dst=192.0.2.1,geneve({class=0x102,type=0x80,len=4,0x1})),in_port(1)", wantErr: true},
		{name: "unknown tunnel flag", in: "tunnel(dst=192.0.2.1,flags(+frob)),in_port(1)", wantErr: true},
		{name: "unbalanced", in: "in_port(1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseODPFlow(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrODPFlow) {
					t.Fatalf("got %v, want an ErrODPFlow", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want Key
			tt.want(&want)
			if got != want {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			if !IsODPFlow(tt.in) {
				t.Error("IsODPFlow: false")
			}
		})
	}
	for _, micro := range []string{"in_port=1,udp", "udp,in_port=1", "tcp"} {
		if IsODPFlow(micro) {
			t.Errorf("IsODPFlow(%q): true", micro)
		}
	}
}
