package test

import (
	"encoding/hex"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// The datapath actions differential test loads one flow at a time into
// Open vSwitch 3.1 (userspace datapath, AF_XDP ports on veths) and into
// ovsxdp (the same topology), sends one UDP datagram from namespace a
// through each, and compares the actions of the megaflow each installed
// for it, as dpctl/dump-flows prints them, once the port numbers are
// mapped to port names: Open vSwitch numbers a port in its datapath
// (shared by every bridge, 0 being the datapath's own port), ovsxdp by
// its OpenFlow number, each bridge being its own datapath.
var dpActionCases = []struct {
	name  string
	vlan  bool   // the datagram has a VLAN 7 tag
	acts  string // the actions of the flow for a's UDP
	group string // a group that acts name, added before the flow
	proto string // the OpenFlow version the flows are added in ("": ovs-ofctl's default)
}{
	{name: "output", acts: "output:2"},
	{name: "drop", acts: "drop"},
	{name: "mod_dl_src", acts: "mod_dl_src:00:00:5e:00:53:aa,output:2"},
	{name: "mod_nw_dst", acts: "mod_nw_dst:10.77.0.9,output:2"},
	{name: "eth and ipv4 between outputs", acts: "mod_dl_dst:00:00:5e:00:53:bb,output:2,mod_nw_src:10.77.0.8,mod_nw_ttl:9,output:2"},
	{name: "push vlan", acts: "mod_vlan_vid:5,mod_vlan_pcp:3,output:2"},
	{name: "pop vlan", vlan: true, acts: "strip_vlan,output:2"},
	{name: "new vid on a tag", vlan: true, acts: "mod_vlan_vid:9,output:2"},
	{name: "ct commit", acts: "ct(commit),output:2"},
	{name: "ct commit in a zone", acts: "ct(commit,zone=5),output:2"},
	// Without a selection method, Open vSwitch hashes in the datapath
	// where the weights fit: hash(sym_l4(0)),recirc(id), then a megaflow
	// of dp_hash under the map's mask (16 values for 1 and 2, 128 for 1
	// and 100). The buckets do the same, because the two switches' hashes
	// of the datagram differ.
	{name: "default select group", acts: "group:1", group: "group_id=1,type=select,bucket=weight:1,actions=output:2,bucket=weight:2,actions=output:2"},
	{name: "default select group of 128 values", acts: "group:1", group: "group_id=1,type=select,bucket=weight:1,actions=output:2,bucket=weight:100,actions=output:2"},
	// Weights that need 512 values: the translation picks.
	{name: "default select group too wide", acts: "group:1", group: "group_id=1,type=select,bucket=weight:1,actions=output:2,bucket=weight:300,actions=output:2"},
	// The action set (OpenFlow 1.1+): it runs after the applied
	// actions, in its own order, with the last output written.
	{name: "action set", proto: "OpenFlow13", acts: "mod_dl_src:00:00:5e:00:53:aa,clear_actions,write_actions(output:1,mod_nw_dst:10.77.0.9,dec_ttl,output:2)"},
	{name: "action set group over output", proto: "OpenFlow13", acts: "write_actions(group:1,output:1)", group: "group_id=1,type=all,bucket=actions=mod_nw_ttl:7,output:2"},
	{name: "action set vlan", proto: "OpenFlow13", vlan: true, acts: "write_actions(push_vlan:0x88a8,set_field:4105->vlan_vid,strip_vlan,output:2)"},
}

// dpSwitch is a switch of the datapath actions test.
type dpSwitch struct {
	name string
	a    *netns.NS
	// rundir and target are where ovs-ofctl finds the bridge, for a
	// monitor.
	rundir, target string
	// ofctl runs ovs-ofctl COMMAND BRIDGE ARGS against the switch.
	ofctl func(t *testing.T, stdin []byte, cmd string, args ...string) string
	// appctl runs a dpctl verb.
	appctl func(t *testing.T, args ...string) string
	// dp is the datapath dpctl verbs name.
	dp string
	// purge is the command that forgets every megaflow: Open vSwitch's
	// revalidator/purge, because after dpctl/del-flows its revalidators
	// keep the flows' keys, and the next upcall for the same packet
	// fails to install its megaflow until they let go of them.
	purge []string
	// portName names a port by the number the datapath actions give it.
	portName func(int) (string, bool)
}

// dpActionsTopo makes ctTopo's namespaces and returns a, whose veth
// end pa sends the test's frames.
func dpActionsTopo(t *testing.T, sw *netns.NS) *netns.NS {
	t.Helper()
	a, _ := ctTopo(t, sw)
	return a
}

// dpActionsFrame is the datagram the test sends from a to b, with a VLAN 7
// tag (priority 2) when vlan is set.
func dpActionsFrame(t *testing.T, vlan bool) []byte {
	t.Helper()
	return dpFrame(t, vlan, []byte("dpactions"))
}

// dpFrame is dpActionsFrame with payload as its payload.
func dpFrame(t *testing.T, vlan bool, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{0x02, 0, 0x5e, 0, 0x53, 0x01}, DstMAC: net.HardwareAddr{0x02, 0, 0x5e, 0, 0x53, 0x02},
		EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(ctAddrA).To4(), DstIP: net.ParseIP(ctAddrB).To4()}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 9}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ls := []gopacket.SerializableLayer{eth, ip, udp, gopacket.Payload(payload)}
	if vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append([]gopacket.SerializableLayer{eth, &layers.Dot1Q{Priority: 2, VLANIdentifier: 7, Type: layers.EthernetTypeIPv4}}, ls[1:]...)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// frameSend sends frame (in hex) on dev through a packet socket.
func frameSend(dev, frame string) error { return frameBurst(dev, frame, 1) }

func startOVSDPActions(t *testing.T) *dpSwitch {
	t.Helper()
	s := ovsref.Start(t, "br0", nil)
	a := dpActionsTopo(t, s.NS())
	for i, dev := range []string{"ha", "hb"} {
		if err := s.AddAFXDPPort(dev, i+1); err != nil {
			t.Fatal(err)
		}
	}
	return &dpSwitch{
		name: "ovs", a: a, rundir: s.Dir, target: "unix:" + filepath.Join(s.Dir, "br0.mgmt"),
		ofctl: func(t *testing.T, stdin []byte, cmd string, args ...string) string {
			t.Helper()
			out, err := runOfctl(stdin, append([]string{cmd, "br0"}, args...), "OVS_RUNDIR="+s.Dir)
			if err != nil {
				t.Fatalf("ovs: %v", err)
			}
			return out
		},
		appctl: func(t *testing.T, args ...string) string {
			t.Helper()
			out, err := s.Appctl(args...)
			if err != nil {
				t.Fatalf("ovs: %v", err)
			}
			return out
		},
		portName: s.PortName,
		dp:       "netdev@ovs-netdev",
		purge:    []string{"revalidator/purge"},
	}
}

func startOvsxdpDPActions(t *testing.T) *dpSwitch {
	t.Helper()
	testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	sw := netns.New(t, "dpsw")
	a := dpActionsTopo(t, sw)
	d, runDir := startHaHbBridge(t, sw)
	target := "unix:" + filepath.Join(runDir, "br0.mgmt")
	names := map[int]string{1: "ha", 2: "hb"}
	return &dpSwitch{
		name: "ovsxdp", a: a, rundir: runDir, target: target,
		ofctl: func(t *testing.T, stdin []byte, cmd string, args ...string) string {
			t.Helper()
			out, err := runOfctl(stdin, append([]string{cmd, target}, args...))
			if err != nil {
				t.Fatalf("ovsxdp: %v", err)
			}
			return out
		},
		appctl: func(t *testing.T, args ...string) string {
			t.Helper()
			return d.run(t, args...)
		},
		portName: func(n int) (string, bool) {
			name, ok := names[n]
			return name, ok
		},
		dp:    "br0",
		purge: []string{"dpctl/del-flows", "br0"},
	}
}

var (
	// dumpLineActions matches a dpctl/dump-flows line and captures its
	// actions.
	dumpLineActions = regexp.MustCompile(`, actions:(.*)$`)
	// dumpDpHashMask captures the mask of a megaflow's dp_hash match.
	dumpDpHashMask = regexp.MustCompile(`dp_hash\(0x[0-9a-f]+(/0x[0-9a-f]+)?\)`)
	dumpRecircID   = regexp.MustCompile(`recirc\(0x[0-9a-f]+\)`)
)

// udpMegaflowActions sends one datagram from a (tagged with VLAN 7 when
// vlan is set) through s and returns the actions of the megaflows that
// match UDP, and those of the megaflows that match dp_hash after a
// recirculation, preceded by the dp_hash mask, with ports by name and
// recirculation ids as ID, sorted; it waits a generous while for the
// megaflows to show (both passes, when the first recirculates). A
// first-pass megaflow counts only if it matches a VLAN tag when vlan is
// set, and none otherwise.
func udpMegaflowActions(t *testing.T, s *dpSwitch, vlan bool) []string {
	t.Helper()
	frame := hex.EncodeToString(dpActionsFrame(t, vlan))
	var acts []string
	found := netns.Eventually(20*time.Second, func() bool {
		if out, err := s.a.Run(helperArgs(t, "frame-send", "pa", frame)...); err != nil {
			t.Fatalf("%s: frame-send: %v\n%s", s.name, err, out)
		}
		acts = acts[:0]
		recirculates, recirculated := false, false
		for _, l := range strings.Split(s.appctl(t, "dpctl/dump-flows", s.dp), "\n") {
			m := dumpLineActions.FindStringSubmatch(l)
			h := dumpDpHashMask.FindStringSubmatch(l)
			if m == nil || (h == nil && !strings.Contains(l, "proto=17")) {
				continue
			}
			// Every case sends the same datagram, tagged or not: a frame
			// the case before sent, which a loaded switch reads only after
			// the purge, makes a megaflow under this case's rules that
			// differs from this case's only by its tag.
			if h == nil && strings.Contains(l[:len(l)-len(m[0])], "vlan(") != vlan {
				continue
			}
			a := dumpRecircID.ReplaceAllString(ovsref.MapActions(m[1], s.portName), "recirc(ID)")
			recirculates = recirculates || strings.Contains(a, "recirc(")
			if h != nil {
				recirculated = true
				a = "dp_hash(" + h[1] + ") " + a
			}
			acts = append(acts, a)
		}
		return len(acts) > 0 && recirculates == recirculated
	})
	if !found {
		t.Fatalf("%s: no UDP megaflow after 20 s:\n%s", s.name, s.appctl(t, "dpctl/dump-flows", s.dp))
	}
	slices.Sort(acts)
	return slices.Compact(acts)
}

// TestDatapathActionsMatchOVS checks that dpctl/dump-flows writes each
// case's megaflow actions as Open vSwitch 3.1 does.
func TestDatapathActionsMatchOVS(t *testing.T) {
	netns.Require(t)
	switches := []*dpSwitch{startOVSDPActions(t), startOvsxdpDPActions(t)}
	for _, tt := range dpActionCases {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			got := map[string][]string{}
			for _, s := range switches {
				s.ofctl(t, nil, "del-flows")
				s.ofctl(t, nil, "del-groups")
				if tt.group != "" {
					s.ofctl(t, nil, "add-group", tt.group)
				}
				flows := "priority=100,udp,in_port=1,actions=" + tt.acts + "\npriority=0,actions=drop\n"
				if tt.proto != "" {
					s.ofctl(t, []byte(flows), "add-flows", "-", "-O", tt.proto)
				} else {
					s.ofctl(t, []byte(flows), "add-flows", "-")
				}
				s.appctl(t, s.purge...)
				got[s.name] = udpMegaflowActions(t, s, tt.vlan)
			}
			t.Logf("flow actions=%s: megaflow actions %s", tt.acts, strings.Join(got["ovs"], " | "))
			if !slices.Equal(got["ovs"], got["ovsxdp"]) {
				t.Errorf("flow actions=%s: megaflow actions differ\n  ovs:    %s\n  ovsxdp: %s", tt.acts,
					strings.Join(got["ovs"], " | "), strings.Join(got["ovsxdp"], " | "))
			}
		})
	}
}

// tunnelPushSide is one switch of TestTunnelPushActionsMatchOVS: br-int
// with the workload's AF_XDP port wa (1) and a tunnel port vx0 (10, of
// the case's kind, key 5, remote 192.0.2.2 unless the test gives other
// port options), br-phy with the uplink ua (1) and its LOCAL port
// holding 192.0.2.1; the peer namespace holds 192.0.2.2.
type tunnelPushSide struct {
	name      string
	host, wl  *netns.NS
	peer      *netns.NS
	ofctl     func(t *testing.T, br string, args ...string)
	dumpFlows func(t *testing.T) string
	// trace runs ofproto/trace of a microflow through br-int.
	trace func(t *testing.T, microflow string) string
	// traceODP runs ofproto/trace of a datapath flow received on vx0,
	// written with in_port(TUN): the switch's datapath number of vx0
	// replaces TUN.
	traceODP  func(t *testing.T, odpFlow string) string
	normalise func(acts string) string
	// normaliseIn names the ports of a decapsulated packet's megaflow
	// actions, which are the overlay bridge's.
	normaliseIn func(acts string) string
	underlayBr  string
}

// tunnelPushTopo makes the host's veths: wa to the workload (wa0) and ua
// to the peer (ub, 192.0.2.2).
func tunnelPushTopo(t *testing.T, host *netns.NS) (wl, peer *netns.NS) {
	t.Helper()
	wl, peer = netns.New(t, "tpwl"), netns.New(t, "tppeer")
	netns.AddVeth(t, host, "wa", wl, "wa0", 1)
	netns.AddVeth(t, host, "ua", peer, "ub", 1)
	peer.AddAddr(t, "ub", "192.0.2.2/24")
	return wl, peer
}

// tunnelPorts rewrites the port numbers inside tnl_push (tnl_port(N) of
// the overlay datapath, out_port(N) of the underlay one) with names.
func tunnelPorts(acts string, overlay, underlay func(int) (string, bool)) string {
	re := regexp.MustCompile(`(tnl_port|out_port)\((\d+)\)`)
	return re.ReplaceAllStringFunc(acts, func(m string) string {
		sm := re.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sm[2])
		look := overlay
		if sm[1] == "out_port" {
			look = underlay
		}
		if name, ok := look(n); ok {
			return sm[1] + "(" + name + ")"
		}
		return m
	})
}

// macNames replaces the host's br-phy MAC and the peer's in acts with
// their roles: each switch's devices have random addresses.
func macNames(t *testing.T, acts string, host, peer *netns.NS) string {
	t.Helper()
	acts = strings.ReplaceAll(acts, host.MAC(t, "br-phy").String(), "BR-PHY-MAC")
	return strings.ReplaceAll(acts, peer.MAC(t, "ub").String(), "PEER-MAC")
}

// tunnelPortOptions are vx0's options, NAME=VALUE: portOpts, or a
// remote of 192.0.2.2 when there are none; and key 5.
func tunnelPortOptions(portOpts []string) []string {
	if len(portOpts) == 0 {
		portOpts = []string{"remote_ip=192.0.2.2"}
	}
	return append(slices.Clip(portOpts), "key=5")
}

// startOVSTunnelPush starts Open vSwitch's side, vx0 of type kind with
// portOpts (see tunnelPortOptions).
func startOVSTunnelPush(t *testing.T, kind string, portOpts ...string) *tunnelPushSide {
	t.Helper()
	s := ovsref.Start(t, "br-int", nil)
	host := s.NS()
	wl, peer := tunnelPushTopo(t, host)
	vx := []string{"--timeout=30", "add-port", "br-int", "vx0", "--", "set", "interface", "vx0", "type=" + kind, "ofport_request=10"}
	for _, o := range tunnelPortOptions(portOpts) {
		vx = append(vx, "options:"+o)
	}
	for _, args := range [][]string{
		{"--timeout=30", "add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev", "fail-mode=secure"},
		{"--timeout=30", "add-port", "br-phy", "ua", "--", "set", "interface", "ua", "type=afxdp", "options:n_rxq=1", "ofport_request=1"},
		vx,
	} {
		if out, err := s.Vsctl(args...); err != nil {
			t.Fatalf("ovs-vsctl %v: %v\n%s", args, err, out)
		}
	}
	if err := s.AddAFXDPPort("wa", 1); err != nil {
		t.Fatal(err)
	}
	return &tunnelPushSide{
		name: "ovs", host: host, wl: wl, peer: peer,
		ofctl: func(t *testing.T, br string, args ...string) {
			t.Helper()
			if out, err := s.Ofctl(append([]string{args[0], br}, args[1:]...)...); err != nil {
				t.Fatalf("ovs: ovs-ofctl %v: %v\n%s", args, err, out)
			}
		},
		dumpFlows: func(t *testing.T) string {
			t.Helper()
			out, err := s.Appctl("dpctl/dump-flows", "netdev@ovs-netdev")
			if err != nil {
				t.Fatalf("ovs: %v", err)
			}
			return out
		},
		trace: func(t *testing.T, microflow string) string {
			t.Helper()
			out, err := s.Appctl("ofproto/trace", "br-int", microflow)
			if err != nil {
				t.Fatalf("ovs: ofproto/trace %s: %v", microflow, err)
			}
			return out
		},
		traceODP: func(t *testing.T, odpFlow string) string {
			t.Helper()
			tun := -1
			for n := range 1 << 10 {
				if name, ok := s.PortName(n); ok && name == "vx0" {
					tun = n
					break
				}
			}
			if tun < 0 {
				t.Fatal("ovs: vx0 has no datapath port number")
			}
			odpFlow = strings.ReplaceAll(odpFlow, "in_port(TUN)", "in_port("+strconv.Itoa(tun)+")")
			// One datapath (netdev@ovs-netdev) holds every bridge.
			out, err := s.Appctl("ofproto/trace", odpFlow)
			if err != nil {
				t.Fatalf("ovs: ofproto/trace %s: %v", odpFlow, err)
			}
			return out
		},
		normalise: func(acts string) string {
			return ovsref.MapActions(tunnelPorts(acts, s.PortName, s.PortName), s.PortName)
		},
		normaliseIn: func(acts string) string { return ovsref.MapActions(acts, s.PortName) },
	}
}

// startOvsxdpTunnelPush starts ovsxdp's side, vx0 of type kind with
// portOpts (see tunnelPortOptions).
func startOvsxdpTunnelPush(t *testing.T, kind string, portOpts ...string) *tunnelPushSide {
	t.Helper()
	host := netns.New(t, "tphost")
	wl, peer := tunnelPushTopo(t, host)
	bin := buildCLI(t)
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	d, _ := startCLIDaemonIn(t, host, bin, filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "state.json"), "--rundir", runDir)
	d.run(t, "add-br", "br-phy")
	d.run(t, "add-port", "br-phy", "ua", "type=afxdp", "ofport=1")
	d.run(t, "add-br", "br-int")
	d.run(t, "add-port", "br-int", "wa", "type=afxdp", "ofport=1")
	d.run(t, append([]string{"add-port", "br-int", "vx0", "type=" + kind, "ofport=10"}, tunnelPortOptions(portOpts)...)...)
	overlay := map[int]string{1: "wa", 10: "vx0"}
	underlay := map[int]string{1: "ua", 65534: "br-phy"}
	look := func(m map[int]string) func(int) (string, bool) {
		return func(n int) (string, bool) { name, ok := m[n]; return name, ok }
	}
	return &tunnelPushSide{
		name: "ovsxdp", host: host, wl: wl, peer: peer,
		ofctl: func(t *testing.T, br string, args ...string) {
			t.Helper()
			target := "unix:" + filepath.Join(runDir, br+".mgmt")
			if _, err := runOfctl(nil, append([]string{args[0], target}, args[1:]...)); err != nil {
				t.Fatalf("ovsxdp: %v", err)
			}
		},
		dumpFlows: func(t *testing.T) string {
			t.Helper()
			return d.run(t, "dpctl/dump-flows", "br-int")
		},
		trace: func(t *testing.T, microflow string) string {
			t.Helper()
			return d.run(t, "ofproto/trace", "br-int", microflow)
		},
		traceODP: func(t *testing.T, odpFlow string) string {
			t.Helper()
			// br-int is vx0's datapath, numbered as in OpenFlow.
			return d.run(t, "ofproto/trace", "br-int", strings.ReplaceAll(odpFlow, "in_port(TUN)", "in_port(10)"))
		},
		normalise: func(acts string) string {
			// The outputs after tnl_push are the underlay bridge's.
			return ovsref.MapActions(tunnelPorts(acts, look(overlay), look(underlay)), look(underlay))
		},
		normaliseIn: func(acts string) string { return ovsref.MapActions(acts, look(overlay)) },
	}
}

// TestTunnelPushActionsMatchOVS sends a datagram from the workload to a
// flow that outputs it to a tunnel port, on Open vSwitch 3.1 and on
// ovsxdp set up alike for native tunnelling, and compares the actions of
// the megaflow each installed for it: tnl_push with the outer headers,
// then br-phy's output to the uplink. The Geneve case carries an option
// from tun_metadata0, as OVN's packets do.
func TestTunnelPushActionsMatchOVS(t *testing.T) {
	for _, tc := range []struct {
		kind string
		tlv  string // the TLV map, when the actions write tun_metadata
		acts string
	}{
		{kind: "vxlan", acts: "output:10"},
		{kind: "geneve", tlv: "{class=0x102,type=0x80,len=4}->tun_metadata0", acts: "set_field:0xa->tun_metadata0,output:10"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			netns.Require(t)
			sides := []*tunnelPushSide{startOVSTunnelPush(t, tc.kind), startOvsxdpTunnelPush(t, tc.kind)}
			got := map[string][]string{}
			for _, s := range sides {
				if tc.tlv != "" {
					s.ofctl(t, "br-int", "add-tlv-map", tc.tlv)
				}
				got[s.name] = tunnelPushActions(t, s, tc.acts)
				t.Logf("%s: %s", s.name, strings.Join(got[s.name], " | "))
			}
			if !slices.Equal(got["ovs"], got["ovsxdp"]) {
				t.Errorf("megaflow actions differ\n  ovs:    %s\n  ovsxdp: %s", strings.Join(got["ovs"], " | "), strings.Join(got["ovsxdp"], " | "))
			}
		})
	}
}

// tunnelPushActions sets s's flows (br-int's UDP from the workload gets
// acts; br-phy joins its LOCAL port and the uplink), sends a datagram from
// the workload and returns the actions of the megaflows that
// encapsulate it, normalised.
func tunnelPushActions(t *testing.T, s *tunnelPushSide, acts string) []string {
	t.Helper()
	frame := hex.EncodeToString(dpActionsFrame(t, false))
	tunnelUnderlay(t, s, "priority=100,udp,in_port=1,actions="+acts)
	var got []string
	found := netns.Eventually(30*time.Second, func() bool {
		if out, err := s.wl.Run(helperArgs(t, "frame-send", "wa0", frame)...); err != nil {
			t.Fatalf("%s: frame-send: %v\n%s", s.name, err, out)
		}
		got = got[:0]
		for _, l := range strings.Split(s.dumpFlows(t), "\n") {
			m := dumpLineActions.FindStringSubmatch(l)
			if m == nil || !strings.Contains(l, "proto=17") || !strings.Contains(m[1], "tnl_push(") {
				continue
			}
			got = append(got, macNames(t, s.normalise(m[1]), s.host, s.peer))
		}
		return len(got) > 0
	})
	if !found {
		t.Fatalf("%s: no tnl_push megaflow after 30 s:\n%s", s.name, s.dumpFlows(t))
	}
	slices.Sort(got)
	return slices.Compact(got)
}

// tunnelUnderlay gives br-phy's LOCAL port the host's address 192.0.2.1
// and joins it to the uplink, sets br-int's flows (flow, then a drop of
// everything else) and waits until the host reaches the peer through
// br-phy: the host has learnt the peer's MAC, and the switch its path.
func tunnelUnderlay(t *testing.T, s *tunnelPushSide, flow string) {
	t.Helper()
	s.host.IP(t, "addr", "add", "192.0.2.1/24", "dev", "br-phy")
	if err := s.host.SetLinkUp("br-phy"); err != nil {
		t.Fatal(err)
	}
	s.ofctl(t, "br-phy", "del-flows")
	s.ofctl(t, "br-phy", "add-flow", "in_port=LOCAL,actions=output:1")
	s.ofctl(t, "br-phy", "add-flow", "in_port=1,actions=LOCAL")
	s.ofctl(t, "br-int", "del-flows")
	s.ofctl(t, "br-int", "add-flow", flow)
	s.ofctl(t, "br-int", "add-flow", "priority=0,actions=drop")
	if !netns.Eventually(30*time.Second, func() bool {
		_, err := s.host.Run("ping", "-c", "1", "-W", "1", "192.0.2.2")
		return err == nil
	}) {
		t.Fatalf("%s: the host does not reach the peer through br-phy", s.name)
	}
}
