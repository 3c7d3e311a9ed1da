package tunnel

import (
	"net/netip"
	"testing"
)

// TestODPHeader checks the header(...) of tnl_push against what Open
// vSwitch 3.1's userspace datapath printed for the same ports (ofproto/trace
// on br-int, with br-phy's address 192.0.2.1 and the neighbour 192.0.2.2).
func TestODPHeader(t *testing.T) {
	base := Config{EthDst: [6]byte{0xa6, 0xc3, 0xeb, 0xd8, 0xf2, 0x30}, EthSrc: [6]byte{0xfa, 0x1c, 0x23, 0xe7, 0xe5, 0x42},
		Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"), DF: true}
	tests := []struct {
		name string
		in   func(c *Config)
		want string
	}{
		{"vxlan key=5", func(c *Config) { c.Kind, c.VNI = VXLAN, 5 },
			"header(size=50,type=4,eth(dst=a6:c3:eb:d8:f2:30,src=fa:1c:23:e7:e5:42,dl_type=0x0800),ipv4(src=192.0.2.1,dst=192.0.2.2,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x5))"},
		{"geneve key=7", func(c *Config) { c.Kind, c.VNI = Geneve, 7 },
			"header(size=50,type=5,eth(dst=a6:c3:eb:d8:f2:30,src=fa:1c:23:e7:e5:42,dl_type=0x0800),ipv4(src=192.0.2.1,dst=192.0.2.2,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=6081,csum=0x0),geneve(vni=0x7))"},
		{"geneve with a critical option", func(c *Config) {
			c.Kind, c.VNI, c.Options = Geneve, 7, []byte{0x01, 0x02, 0x80, 0x01, 0, 0, 0, 0x0a}
		},
			"header(size=58,type=5,eth(dst=a6:c3:eb:d8:f2:30,src=fa:1c:23:e7:e5:42,dl_type=0x0800),ipv4(src=192.0.2.1,dst=192.0.2.2,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=6081,csum=0x0),geneve(crit,vni=0x7,options({class=0x102,type=0x80,len=4,0xa})))"},
		{"vxlan dst_port, csum, tos and ttl", func(c *Config) { c.Kind, c.VNI, c.DstPort, c.Csum, c.TOS, c.TTL = VXLAN, 9, 4790, true, 0x21, 10 },
			"header(size=50,type=4,eth(dst=a6:c3:eb:d8:f2:30,src=fa:1c:23:e7:e5:42,dl_type=0x0800),ipv4(src=192.0.2.1,dst=192.0.2.2,proto=17,tos=0x21,ttl=10,frag=0x4000),udp(src=0,dst=4790,csum=0xffff),vxlan(flags=0x8000000,vni=0x9))"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.in(&c)
			e, err := NewEncap(c)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.ODPHeader(); got != tt.want {
				t.Errorf("ODPHeader()\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}
