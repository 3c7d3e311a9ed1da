package test

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// ecnInnerFrame is dpActionsFrame's datagram with the TOS tos, over IPv4,
// or over IPv6 (fd00:77::1 to fd00:77::2) with the traffic class tos.
func ecnInnerFrame(t *testing.T, v6 bool, tos uint8) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{0x02, 0, 0x5e, 0, 0x53, 0x01}, DstMAC: net.HardwareAddr{0x02, 0, 0x5e, 0, 0x53, 0x02},
		EthernetType: layers.EthernetTypeIPv4}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 9}
	var ip gopacket.SerializableLayer
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, TrafficClass: tos, NextHeader: layers.IPProtocolUDP,
			SrcIP: net.ParseIP("fd00:77::1"), DstIP: net.ParseIP("fd00:77::2")}
		if err := udp.SetNetworkLayerForChecksum(ip6); err != nil {
			t.Fatal(err)
		}
		ip = ip6
	} else {
		ip4 := &layers.IPv4{Version: 4, TTL: 64, TOS: tos, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(ctAddrA).To4(), DstIP: net.ParseIP(ctAddrB).To4()}
		if err := udp.SetNetworkLayerForChecksum(ip4); err != nil {
			t.Fatal(err)
		}
		ip = ip4
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload("dpactions")); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestTunnelDecapECNMatchesOVS sends VXLAN datagrams whose outer header
// says congestion experienced (CE) over an ECN-capable inner packet,
// IPv4 and IPv6, ECT(0) and ECT(1), to Open vSwitch 3.1 and to ovsxdp
// set up alike, and compares the megaflows each installed and the frame
// each delivered to the workload. As RFC 6040 asks, and Open vSwitch's
// translation does with a set action, the inner packet leaves marked CE,
// its DSCP kept and its IPv4 checksum updated.
func TestTunnelDecapECNMatchesOVS(t *testing.T) {
	for _, tc := range []struct {
		name  string
		v6    bool
		inner uint8  // the inner TOS or traffic class
		flow  string // br-int's rule for the decapsulated packet
	}{
		// Each case starts both switches: the other combinations are
		// datapath's TestTunnelDecapECN.
		{name: "ipv4 ect0", inner: 0x02},
		{name: "ipv6 ect1 with dscp", v6: true, inner: 0xb9},
		// A rule that reads the DSCP: the megaflow matches the whole
		// TOS byte, and the set that marks CE writes all of it.
		{name: "ipv4 ect1 with the dscp read", inner: 0xb9, flow: "priority=100,in_port=10,ip,nw_tos=0xb8,actions=output:1"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			netns.Require(t)
			inner := ecnInnerFrame(t, tc.v6, tc.inner)
			want := ecnInnerFrame(t, tc.v6, tc.inner|0x03)
			sides := []*tunnelPushSide{startOVSTunnelPush(t, "vxlan"), startOvsxdpTunnelPush(t, "vxlan")}
			flows, frames := map[string][]string{}, map[string][]byte{}
			for _, s := range sides {
				tunnelUnderlay(t, s, cmp.Or(tc.flow, "priority=100,in_port=10,actions=output:1"))
				received := openCapture(t, s.wl, "wa0")
				flows[s.name] = tunnelPopMegaflows(t, s, encapFrame(t, s, "vxlan", underlayPeer4, underlayHost4, 0x03, inner, nil, false))
				t.Logf("%s: %s", s.name, strings.Join(flows[s.name], " | "))
				got := received(1)
				if len(got) == 0 {
					t.Fatalf("%s: the workload received nothing in 20 s", s.name)
				}
				frames[s.name] = got[0]
			}
			if !slices.Equal(flows["ovs"], flows["ovsxdp"]) {
				t.Errorf("decapsulated megaflows differ\n  ovs:    %s\n  ovsxdp: %s", strings.Join(flows["ovs"], " | "), strings.Join(flows["ovsxdp"], " | "))
			}
			for _, name := range []string{"ovs", "ovsxdp"} {
				if !bytes.Equal(frames[name], want) {
					t.Errorf("%s delivered\n  %s\nwant (inner packet marked CE)\n  %s", name, hex.EncodeToString(frames[name]), hex.EncodeToString(want))
				}
			}
		})
	}
}

// ipv6Underlay gives the host's br-phy and the peer's ub an IPv6 underlay
// address each (the test's namespaces start with IPv6 off).
func ipv6Underlay(t *testing.T, s *tunnelPushSide) {
	t.Helper()
	s.host.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.br-phy.disable_ipv6=0")
	s.peer.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.ub.disable_ipv6=0")
	s.host.IP(t, "-6", "addr", "add", underlayHost6.String()+"/64", "dev", "br-phy", "nodad")
	s.peer.IP(t, "-6", "addr", "add", underlayPeer6.String()+"/64", "dev", "ub", "nodad")
}

// TestTunnelPopIPv6MegaflowsMatchOVS is TestTunnelPopMegaflowsMatchOVS
// over an IPv6 underlay: a VXLAN or Geneve port whose remote_ip (and
// local_ip) is IPv6 receives datagrams from the peer's IPv6 address, and
// the megaflows of the decapsulated packet match the outer IPv6
// addresses (tun_ipv6_src, tun_ipv6_dst) where an IPv4 underlay's match
// tun_src and tun_dst, and the outer traffic class where they match the
// TOS (its CE copied inward, as over IPv4).
func TestTunnelPopIPv6MegaflowsMatchOVS(t *testing.T) {
	for _, tc := range []struct {
		name, kind string
		portOpts   []string
		tlv        string
		flow       string
		tos        uint8
		opt        []byte
		csum       bool
	}{
		{name: "remote", portOpts: []string{"remote_ip=" + underlayPeer6.String()}, csum: true,
			flow: "priority=100,in_port=10,udp,actions=output:1"},
		{name: "remote and local", portOpts: []string{"remote_ip=" + underlayPeer6.String(), "local_ip=" + underlayHost6.String()},
			tos: 0x2e, csum: true, flow: "priority=100,in_port=10,tun_id=5,udp,actions=output:1"},
		{name: "flow reads the outer source", portOpts: []string{"remote_ip=" + underlayPeer6.String()},
			flow: "priority=100,in_port=10,tun_ipv6_src=" + underlayPeer6.String() + ",udp,actions=output:1"},
		{name: "geneve option", kind: "geneve", portOpts: []string{"remote_ip=" + underlayPeer6.String()}, csum: true,
			tlv: "{class=0x102,type=0x80,len=4}->tun_metadata0", opt: []byte{0x01, 0x02, 0x80, 0x01, 0x00, 0x01, 0x00, 0x02},
			flow: "priority=100,in_port=10,tun_metadata0=0x10002/0xffff,udp,actions=output:1"},
		{name: "ce over ect0", portOpts: []string{"remote_ip=" + underlayPeer6.String()}, tos: 0x03, csum: true,
			flow: "priority=100,in_port=10,udp,actions=output:1"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			netns.Require(t)
			kind := cmp.Or(tc.kind, "vxlan")
			sides := []*tunnelPushSide{startOVSTunnelPush(t, kind, tc.portOpts...), startOvsxdpTunnelPush(t, kind, tc.portOpts...)}
			got := map[string][]string{}
			for _, s := range sides {
				if tc.tlv != "" {
					s.ofctl(t, "br-int", "add-tlv-map", tc.tlv)
				}
				tunnelUnderlay(t, s, tc.flow)
				ipv6Underlay(t, s)
				inner := dpActionsFrame(t, false)
				if tc.tos&0x03 == 0x03 {
					inner = ecnInnerFrame(t, false, 0x02)
				}
				frame := encapFrame(t, s, kind, underlayPeer6, underlayHost6, tc.tos, inner, tc.opt, tc.csum)
				got[s.name] = tunnelPopMegaflows(t, s, frame)
				t.Logf("%s: %s", s.name, strings.Join(got[s.name], " | "))
			}
			if !slices.Equal(got["ovs"], got["ovsxdp"]) {
				t.Errorf("decapsulated megaflows differ\n  ovs:    %s\n  ovsxdp: %s", strings.Join(got["ovs"], " | "), strings.Join(got["ovsxdp"], " | "))
			}
		})
	}
}

// TestTunnelTraceMatchesOVS traces packets that a VXLAN port received
// (their tunnel metadata in the microflow) through br-int of Open vSwitch
// 3.1 and of ovsxdp, set up alike, and compares the "Flow:", "Final
// flow:", "Megaflow:" and "Datapath actions:" lines: the flows carry the
// tunnel fields Open vSwitch keeps for a decapsulated packet, the
// megaflow matches the tunnel fields Open vSwitch matches for every
// decapsulated packet, and an outer CE marks an ECN-capable inner packet
// with a set action.
func TestTunnelTraceMatchesOVS(t *testing.T) {
	netns.Require(t)
	sides := []*tunnelPushSide{startOVSTunnelPush(t, "vxlan"), startOvsxdpTunnelPush(t, "vxlan")}
	const udp = "udp,dl_src=02:00:5e:00:53:01,dl_dst=02:00:5e:00:53:02,nw_src=10.77.0.1,nw_dst=10.77.0.2,nw_ttl=64,udp_src=40000,udp_dst=9"
	const tun4 = "in_port=10,tun_id=5,tun_src=192.0.2.2,tun_dst=192.0.2.1,"
	const odpTun = "tunnel(tun_id=0x5,src=192.0.2.2,dst=192.0.2.1,tos=0x2e,ttl=9,tp_src=49152,tp_dst=4789,flags(+df+csum+key)),"
	const odpUDP = "in_port(TUN),eth(src=02:00:5e:00:53:01,dst=02:00:5e:00:53:02),eth_type(0x0800),ipv4(src=10.77.0.1,dst=10.77.0.2,proto=17,tos=0xb9,ttl=64,frag=no),udp(src=40000,dst=9)"
	for _, tc := range []struct {
		name, flow, microflow string
	}{
		{name: "tun_id", flow: "priority=100,in_port=10,tun_id=5,udp,actions=output:1", microflow: tun4 + udp},
		{name: "any", flow: "priority=100,in_port=10,actions=output:1", microflow: tun4 + udp},
		{name: "tun_src", flow: "priority=100,in_port=10,tun_src=192.0.2.2,actions=output:1", microflow: tun4 + udp},
		{name: "other vni", flow: "priority=100,in_port=10,tun_id=6,actions=output:1", microflow: tun4 + udp},
		{name: "set_tunnel", flow: "priority=100,in_port=10,actions=set_tunnel:7,output:1", microflow: tun4 + udp},
		{name: "ipv6 underlay", flow: "priority=100,in_port=10,udp,actions=output:1",
			microflow: "in_port=10,tun_id=5,tun_ipv6_src=2001:db8:ee::2,tun_ipv6_dst=2001:db8:ee::1," + udp},
		// Registers and metadata that the pipeline writes: the tunnel
		// fields go between them in the Final flow line.
		{name: "registers and metadata", flow: "priority=100,in_port=10,actions=load:0x5->NXM_NX_REG3[],load:0x7->OXM_OF_METADATA[],output:1", microflow: tun4 + udp},
		{name: "not from a tunnel", flow: "priority=100,in_port=10,udp,actions=output:1", microflow: "in_port=10,tun_id=5," + udp},
		{name: "outer tos", flow: "priority=100,in_port=10,actions=output:1", microflow: tun4 + "tun_tos=0x2e,tun_ttl=9," + udp},
		{name: "ce over ect0", flow: "priority=100,in_port=10,actions=output:1", microflow: tun4 + "tun_tos=3," + udp + ",nw_ecn=2"},
		{name: "ce over ect1 with dscp", flow: "priority=100,in_port=10,actions=output:1", microflow: tun4 + "tun_tos=0xbb," + udp + ",nw_tos=0xb8,nw_ecn=1"},
		{name: "ce over ce", flow: "priority=100,in_port=10,actions=output:1", microflow: tun4 + "tun_tos=3," + udp + ",nw_ecn=3"},
		{name: "ce over not-ect", flow: "priority=100,in_port=10,actions=output:1", microflow: tun4 + "tun_tos=3," + udp},
		{name: "ce over ipv6 ect0", flow: "priority=100,in_port=10,actions=output:1",
			microflow: tun4 + "tun_tos=3,udp6,ipv6_src=fd00:77::1,ipv6_dst=fd00:77::2,nw_ecn=2,udp_src=40000,udp_dst=9"},
		// A rule that reads the DSCP makes the megaflow match the whole
		// TOS byte, and Open vSwitch's set then writes all of it.
		{name: "ce over ect1 with the dscp read", flow: "priority=100,in_port=10,ip,nw_tos=0xb8,actions=output:1", microflow: tun4 + "tun_tos=3," + udp + ",nw_tos=0xb8,nw_ecn=1"},
		{name: "ce over ect0 with a dscp written", flow: "priority=100,in_port=10,actions=mod_nw_tos:0x20,output:1", microflow: tun4 + "tun_tos=3," + udp + ",nw_ecn=2"},
		{name: "ce over ect0 between writes", flow: "priority=100,in_port=10,actions=mod_dl_src:00:00:5e:00:53:aa,output:1,mod_nw_tos:0x20,output:1",
			microflow: tun4 + "tun_tos=3," + udp + ",nw_ecn=2"},
		{name: "ect0 outer", flow: "priority=100,in_port=10,actions=output:1", microflow: tun4 + "tun_tos=2," + udp + ",nw_ecn=1"},
		// A datapath flow, as dpctl/dump-flows writes one (the tunnel's
		// flags included), traced as Open vSwitch traces it.
		{name: "datapath flow", flow: "priority=100,in_port=10,tun_id=5,udp,actions=output:1", microflow: odpTun + odpUDP},
		{name: "datapath flow with ce", flow: "priority=100,in_port=10,actions=output:1",
			microflow: "tunnel(tun_id=0x5,src=192.0.2.2,dst=192.0.2.1,tos=0x3,ttl=64,tp_src=49152,tp_dst=4789,flags(+key))," + odpUDP},
		{name: "datapath flow setting the tunnel", flow: "priority=100,in_port=10,actions=set_tunnel:7,set_field:192.0.2.9->tun_dst,output:1", microflow: odpTun + odpUDP},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			got := map[string]*ovsref.Trace{}
			for _, s := range sides {
				s.ofctl(t, "br-int", "del-flows")
				s.ofctl(t, "br-int", "add-flow", tc.flow)
				s.ofctl(t, "br-int", "add-flow", "priority=0,actions=drop")
				var out string
				if strings.HasPrefix(tc.microflow, "tunnel(") {
					out = s.traceODP(t, tc.microflow)
				} else {
					out = s.trace(t, tc.microflow)
				}
				tr, err := ovsref.ParseTrace(out)
				if err != nil {
					t.Fatalf("%s: %v\n%s", s.name, err, out)
				}
				tr.Actions = s.normaliseIn(tr.Actions)
				got[s.name] = tr
			}
			o, x := got["ovs"], got["ovsxdp"]
			if o.Flow != x.Flow {
				t.Errorf("Flow lines differ\n  ovs:    %s\n  ovsxdp: %s", o.Flow, x.Flow)
			}
			if o.FinalFlow != x.FinalFlow {
				t.Errorf("Final flow lines differ\n  ovs:    %s\n  ovsxdp: %s", o.FinalFlow, x.FinalFlow)
			}
			if !sameMegaflow(o.Megaflow, x.Megaflow) {
				t.Errorf("megaflows differ\n  ovs:    %s\n  ovsxdp: %s", o.Megaflow, x.Megaflow)
			}
			if o.Actions != x.Actions {
				t.Errorf("datapath actions differ\n  ovs:    %s\n  ovsxdp: %s", o.Actions, x.Actions)
			}
			if t.Failed() {
				t.Logf("Open vSwitch's trace:\n%s\novsxdp's trace:\n%s", o.Text, x.Text)
			}
		})
	}
}
