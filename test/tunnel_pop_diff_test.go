package test

import (
	"encoding/binary"
	"encoding/hex"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/test/netns"
)

// tunnelFrame is a VXLAN (kind "vxlan") or Geneve datagram from the peer
// (192.0.2.2, its MAC) to the host (192.0.2.1, br-phy's MAC) with VNI 5,
// the outer IPv4 TOS tos and DF set, carrying dpActionsFrame; a Geneve
// one carries opt (whole options, class, type, length and data) and a UDP
// checksum when csum is set.
func tunnelFrame(t *testing.T, s *tunnelPushSide, kind string, tos uint8, opt []byte, csum bool) []byte {
	t.Helper()
	return encapFrame(t, s, kind, underlayPeer4, underlayHost4, tos, dpActionsFrame(t, false), opt, csum)
}

// The underlay addresses of the peer and the host that encapFrame's
// datagrams go between.
var (
	underlayPeer4 = net.IPv4(192, 0, 2, 2).To4()
	underlayHost4 = net.IPv4(192, 0, 2, 1).To4()
	underlayPeer6 = net.ParseIP("2001:db8:ee::2")
	underlayHost6 = net.ParseIP("2001:db8:ee::1")
)

// encapFrame is tunnelFrame from src to dst, IPv4 (with DF set) or IPv6
// addresses of the peer and the host, with the outer TOS or traffic
// class tos, carrying the Ethernet frame inner.
func encapFrame(t *testing.T, s *tunnelPushSide, kind string, src, dst net.IP, tos uint8, inner, opt []byte, csum bool) []byte {
	t.Helper()
	var hdr []byte
	dport := layers.UDPPort(4789)
	switch kind {
	case "vxlan":
		hdr = []byte{0x08, 0, 0, 0, 0, 0, 5, 0}
	default:
		dport = 6081
		hdr = []byte{byte(len(opt) / 4), 0, 0x65, 0x58, 0, 0, 5, 0}
		hdr = append(hdr, opt...)
	}
	eth := &layers.Ethernet{SrcMAC: s.peer.MAC(t, "ub"), DstMAC: s.host.MAC(t, "br-phy"), EthernetType: layers.EthernetTypeIPv4}
	udp := &layers.UDP{SrcPort: 49152, DstPort: dport}
	var ip gopacket.SerializableLayer
	ipLen := 20
	if src.To4() != nil {
		ip4 := &layers.IPv4{Version: 4, TTL: 64, TOS: tos, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolUDP,
			SrcIP: src.To4(), DstIP: dst.To4()}
		if err := udp.SetNetworkLayerForChecksum(ip4); err != nil {
			t.Fatal(err)
		}
		ip = ip4
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, TrafficClass: tos, NextHeader: layers.IPProtocolUDP, SrcIP: src, DstIP: dst}
		if err := udp.SetNetworkLayerForChecksum(ip6); err != nil {
			t.Fatal(err)
		}
		ip, ipLen = ip6, 40
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(append(hdr, inner...))); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if !csum {
		binary.BigEndian.PutUint16(b[14+ipLen+6:], 0)
	}
	return b
}

var (
	dumpTunnelMatch = regexp.MustCompile(`^(?:ufid:\S+ )?(tunnel\(.*), packets:.*, actions:(.*)$`)
	dumpInPort      = regexp.MustCompile(`in_port\(\d+\)`)
)

// tunnelPopMegaflows sends frame from the peer to s's host and returns the
// megaflows of br-int that match a decapsulated packet (those with a
// tunnel(...) group), their match and actions as dpctl/dump-flows prints
// them, with the tunnel port's number as TUN, MACs by role and output
// ports by name, sorted; it waits a generous while for one to show. A
// partly masked value is the packet's, bits outside the mask included,
// on both switches.
func tunnelPopMegaflows(t *testing.T, s *tunnelPushSide, frame []byte) []string {
	t.Helper()
	h := hex.EncodeToString(frame)
	var got []string
	found := netns.Eventually(30*time.Second, func() bool {
		if out, err := s.peer.Run(helperArgs(t, "frame-send", "ub", h)...); err != nil {
			t.Fatalf("%s: frame-send: %v\n%s", s.name, err, out)
		}
		got = got[:0]
		for _, l := range strings.Split(s.dumpFlows(t), "\n") {
			m := dumpTunnelMatch.FindStringSubmatch(strings.TrimSpace(l))
			if m == nil {
				continue
			}
			match := dumpInPort.ReplaceAllString(m[1], "in_port(TUN)")
			got = append(got, macNames(t, match+" actions:"+s.normaliseIn(m[2]), s.host, s.peer))
		}
		return len(got) > 0
	})
	if !found {
		t.Fatalf("%s: no decapsulated megaflow after 30 s:\n%s", s.name, s.dumpFlows(t))
	}
	slices.Sort(got)
	return slices.Compact(got)
}

// TestTunnelPopMegaflowsMatchOVS sends VXLAN and Geneve datagrams from
// the peer to Open vSwitch 3.1 and to ovsxdp, set up alike for native
// tunnelling, and compares the megaflows each installed for the
// decapsulated packet, match and actions as dpctl/dump-flows prints them:
// whatever the rule reads, Open vSwitch matches the whole tun_id, the
// outer addresses and TOS, and the df, csum and key flags; a Geneve
// option only as far as the rule reads it (geneve({}) when it reads none
// of the options that came).
func TestTunnelPopMegaflowsMatchOVS(t *testing.T) {
	geneveOpt := []byte{0x01, 0x02, 0x80, 0x01, 0x00, 0x01, 0x00, 0x02}
	for _, tc := range []struct {
		name, kind string
		tlv        string
		flow       string
		tos        uint8
		opt        []byte
		csum       bool
	}{
		{name: "vxlan", kind: "vxlan", flow: "priority=100,in_port=10,tun_id=5,udp,actions=output:1"},
		{name: "vxlan any", kind: "vxlan", tos: 0x2e, flow: "priority=100,in_port=10,udp,actions=output:1"},
		{name: "geneve masked option", kind: "geneve", tlv: "{class=0x102,type=0x80,len=4}->tun_metadata0", opt: geneveOpt, csum: true,
			flow: "priority=100,in_port=10,tun_metadata0=0x10002/0x7fff7fff,udp,actions=output:1"},
		{name: "geneve option unread", kind: "geneve", tlv: "{class=0x102,type=0x80,len=4}->tun_metadata0", opt: geneveOpt,
			flow: "priority=100,in_port=10,udp,actions=output:1"},
		{name: "geneve without options", kind: "geneve", tlv: "{class=0x102,type=0x80,len=4}->tun_metadata0",
			flow: "priority=100,in_port=10,udp,actions=output:1"},
		{name: "vxlan ce", kind: "vxlan", tos: 0x03, flow: "priority=100,in_port=10,udp,actions=output:1"},
		{name: "geneve whole option", kind: "geneve", tlv: "{class=0x102,type=0x80,len=4}->tun_metadata0", opt: geneveOpt,
			flow: "priority=100,in_port=10,tun_metadata0=0x10002,udp,actions=output:1"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			netns.Require(t)
			sides := []*tunnelPushSide{startOVSTunnelPush(t, tc.kind), startOvsxdpTunnelPush(t, tc.kind)}
			got := map[string][]string{}
			for _, s := range sides {
				if tc.tlv != "" {
					s.ofctl(t, "br-int", "add-tlv-map", tc.tlv)
				}
				tunnelUnderlay(t, s, tc.flow)
				got[s.name] = tunnelPopMegaflows(t, s, tunnelFrame(t, s, tc.kind, tc.tos, tc.opt, tc.csum))
				t.Logf("%s: %s", s.name, strings.Join(got[s.name], " | "))
			}
			if !slices.Equal(got["ovs"], got["ovsxdp"]) {
				t.Errorf("decapsulated megaflows differ\n  ovs:    %s\n  ovsxdp: %s", strings.Join(got["ovs"], " | "), strings.Join(got["ovsxdp"], " | "))
			}
		})
	}
}
