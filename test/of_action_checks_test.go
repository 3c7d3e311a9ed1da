package test

// How Open vSwitch 3.1 checks actions against the flow they will run on,
// against ovsxdp: each case's actions, written by ovs-ofctl for OpenFlow
// 1.0, 1.3 and 1.5, go to both switches in a packet out of the case's
// packet and in a flow mod whose match names the packet's protocols, and
// both must answer alike (no error, or the same error echoing the same
// request). The actions are ones whose prerequisites the packet lacks,
// beside ones that meet them.

import (
	"encoding/binary"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// ofctlMessages runs `ovs-ofctl -O proto ARGS` against a switch of our
// own that speaks version v, and returns the messages ovs-ofctl sent
// after the hello, barriers left out: what it would send a real switch,
// byte for byte. A barrier gets its reply, so ovs-ofctl ends.
func ofctlMessages(t *testing.T, v uint8, proto string, args ...string) ([][]byte, error) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "fake.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan [][]byte, 1)
	go func() {
		var msgs [][]byte
		defer func() { got <- msgs }()
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		hello, _ := openflow.NewHello(v)
		b, _ := openflow.Encode(v, 0, hello)
		if _, err := c.Write(b); err != nil {
			return
		}
		r := openflow.NewReader(c, 0)
		for {
			b, err := r.ReadMessage()
			if err != nil {
				return
			}
			h, err := openflow.ParseHeader(b)
			if err != nil {
				return
			}
			switch h.Type {
			case 0: // hello
			case 18, 20: // barrier request (1.0), (1.1+)
				rt := h.Type + 1
				reply := append([]byte(nil), b[:8]...)
				reply[1] = rt
				if _, err := c.Write(reply); err != nil {
					return
				}
			default:
				msgs = append(msgs, append([]byte(nil), b...))
			}
		}
	}()
	full := append([]string{"-O", proto, "--no-names", "--timeout=30"}, args...)
	for i, a := range full {
		full[i] = strings.ReplaceAll(a, "SOCK", "unix:"+sock)
	}
	out, err := exec.Command("ovs-ofctl", full...).CombinedOutput()
	l.Close()
	msgs := <-got
	if err != nil {
		return msgs, fmt.Errorf("ovs-ofctl %s: %v: %s", strings.Join(full, " "), err, out)
	}
	return msgs, nil
}

// rawReplies sends the raw messages (their xids replaced by 1, 2, ...)
// then a barrier on a connection of version v to sock, and returns the
// errors answered before the barrier's reply.
func rawReplies(t *testing.T, sock string, v uint8, raws [][]byte) string {
	t.Helper()
	c := errorCase{v: v, msgs: func(t *testing.T) []openflow.Message {
		var ms []openflow.Message
		for _, raw := range raws {
			ms = append(ms, &openflow.Unknown{Type: raw[1], Body: raw[8:]})
		}
		return ms
	}}
	return errorReplies(t, sock, c)
}

// actionCheckCase is a list of actions as ovs-ofctl writes them and the
// packet (a key of checkPackets) they run on; from is the first version
// that ovs-ofctl can write them in.
type actionCheckCase struct {
	pkt, acts string
	from      uint8
}

// checkPackets are the packets of the cases, in hex.
var checkPackets = map[string]string{
	"udp":  pinFrameSum,
	"tcp":  "ffffffffffff0000000000010800450000280001000040069f75c0a80001c0a80002003500500000000000000000500220000000000000",
	"arp":  "ffffffffffff000000000001080600010800060400010000000000010a0000010000000000000a000002",
	"vudp": "ffffffffffff0000000000018100000508004500001c000100004011f97cc0a80001c0a800020035003500080000",
	"mpls": "ffffffffffff00000000000188470001413f4500001c000100004011f97cc0a80001c0a800020035003500080000",
	"raw":  "ffffffffffff00000000000188b50102030405060708090a0b0c0d0e0f10111213141516171819",
	"ip6":  "ffffffffffff00000000000186dd6000000000081140fe800000000000000000000000000001fe80000000000000000000000000000200350035000800000000",
}

// checkMatch is the match of a case's flow mod: the protocols of its
// packet, as NXM (OpenFlow 1.0's Nicira flow mod) or OXM fields.
func checkMatch(pkt string, nx bool) []openflow.Field {
	f := func(name string, v ...byte) openflow.Field {
		fh, _ := openflow.FieldByName(name, nx)
		return openflow.Field{Name: name, Class: fh.Class, Field: fh.Field, Value: v}
	}
	ip := f("eth_type", 8, 0)
	switch pkt {
	case "udp":
		return []openflow.Field{ip, f("nw_proto", 17)}
	case "tcp":
		return []openflow.Field{ip, f("nw_proto", 6)}
	case "arp":
		return []openflow.Field{f("eth_type", 8, 6)}
	case "vudp":
		tag := f("vlan_vid", 0x10, 5)
		if nx {
			tag = f("vlan_tci", 0x10, 5)
		}
		return []openflow.Field{tag, ip, f("nw_proto", 17)}
	case "mpls":
		return []openflow.Field{f("eth_type", 0x88, 0x47)}
	case "raw":
		return []openflow.Field{f("eth_type", 0x88, 0xb5)}
	case "ip6":
		return []openflow.Field{f("eth_type", 0x86, 0xdd), f("nw_proto", 17)}
	}
	return nil
}

var actionCheckCases = []actionCheckCase{
	// set_field (mod_tp_src and friends in OpenFlow 1.0) on fields whose
	// protocol the packet has or lacks.
	{"udp", "set_field:80->tcp_src", 0},
	{"tcp", "set_field:80->tcp_src", 0},
	{"tcp", "set_field:80->udp_src", 0},
	{"udp", "set_field:80->udp_dst", 0},
	{"arp", "set_field:80->udp_dst", 0},
	{"udp", "set_field:80->sctp_src", openflow.Version13},
	{"arp", "set_field:10.0.0.9->ip_src", 0},
	{"ip6", "set_field:10.0.0.9->ip_src", 0},
	{"arp", "set_field:8->ip_dscp", 0},
	{"arp", "set_field:9->nw_ttl", openflow.Version13},
	{"udp", "set_field:1->arp_op", 0},
	{"udp", "set_field:10.0.0.1->arp_spa", 0},
	{"udp", "set_field:::1->ipv6_src", openflow.Version13},
	{"udp", "set_field:1->icmp_type", 0},
	{"udp", "set_field:1->ipv6_label", openflow.Version13},
	{"udp", "set_field:1->mpls_label", openflow.Version13},
	{"udp", "set_field:1->mpls_ttl", openflow.Version13},
	{"udp", "set_field:1->tun_id", openflow.Version13},
	{"raw", "mod_dl_src:00:00:00:00:00:09,set_field:1->reg0", 0},
	{"arp", "mod_nw_src:10.0.0.9", 0},
	// mod_tp_src without a protocol in the match, which ovs-ofctl
	// writes in OpenFlow 1.1+ as OFPAT11_SET_TP_SRC/DST (type 9, 10).
	{"tcp", "mod_tp_src:80", 0},
	{"udp", "mod_tp_dst:80", 0},
	{"arp", "mod_tp_src:80", 0},
	{"ip6", "mod_nw_src:10.0.0.9", 0},
	{"arp", "mod_nw_tos:8", 0},
	{"arp", "mod_nw_ecn:1", 0},
	{"arp", "mod_nw_ttl:9", 0},
	{"udp", "mod_nw_ttl:5", 0},
	{"arp", "dec_ttl", 0},
	{"raw", "dec_ttl", 0},
	// VLAN tags: set_field of vlan_vid needs a tag (and OFPVID_PRESENT
	// in its value), strip_vlan a tag, push_vlan room for one.
	{"udp", "set_field:1->vlan_vid", 0},
	{"udp", "set_field:0x1001->vlan_vid", 0},
	{"vudp", "set_field:0x1001->vlan_vid", 0},
	{"udp", "set_field:3->vlan_pcp", 0},
	{"vudp", "set_field:3->vlan_pcp", 0},
	{"udp", "mod_vlan_vid:7", 0},
	{"udp", "mod_vlan_pcp:3", 0},
	{"udp", "mod_vlan_vid:7,set_field:3->vlan_pcp", 0},
	{"udp", "strip_vlan", 0},
	{"vudp", "strip_vlan", 0},
	{"vudp", "strip_vlan,strip_vlan", 0},
	{"vudp", "strip_vlan,set_field:3->vlan_pcp", 0},
	{"udp", "pop_vlan", 0},
	{"vudp", "push_vlan:0x8100", openflow.Version13},
	{"vudp", "push_vlan:0x8100,push_vlan:0x8100", openflow.Version13},
	{"udp", "push_vlan:0x8100,set_field:0x1001->vlan_vid", openflow.Version13},
	{"udp", "push_vlan:0x8100,strip_vlan,set_field:0x1001->vlan_vid", openflow.Version13},
	// MPLS actions on a packet that is not MPLS (ovsxdp implements none
	// of them: OpenFlow 1.0, which takes them, is left out).
	{"udp", "dec_mpls_ttl", openflow.Version13},
	{"udp", "set_mpls_ttl:5", openflow.Version13},
	{"udp", "set_mpls_label:5", openflow.Version13},
	{"udp", "pop_mpls:0x0800", openflow.Version13},
	{"udp", "clone(dec_mpls_ttl)", openflow.Version13},
	// Ports: in the reserved range but no reserved port.
	{"udp", "output:65300", 0},
	{"udp", "output:65280", 0},
	{"udp", "output:65279", 0},
	{"udp", "output:0", 0},
	{"udp", "enqueue:65300:1", 0},
	// Actions that read or write a field through a subfield.
	{"udp", "load:80->NXM_OF_TCP_SRC[]", 0},
	{"udp", "load:1->NXM_OF_TCP_SRC[0..3]", 0},
	{"tcp", "load:80->NXM_OF_TCP_SRC[]", 0},
	{"tcp", "load:80->NXM_OF_TCP_DST[]", 0},
	{"udp", "load:80->NXM_OF_UDP_SRC[]", 0},
	{"udp", "load:80->NXM_OF_UDP_DST[]", 0},
	{"tcp", "load:80->NXM_OF_UDP_DST[]", 0},
	{"udp", "load:80->OXM_OF_SCTP_SRC[]", 0},
	{"udp", "move:NXM_OF_TCP_SRC[]->NXM_NX_REG0[0..15]", 0},
	{"udp", "move:NXM_NX_REG0[0..15]->NXM_OF_TCP_DST[]", 0},
	{"udp", "move:NXM_OF_UDP_SRC[]->NXM_NX_REG0[0..15]", 0},
	{"udp", "output:NXM_OF_TCP_SRC[]", 0},
	{"udp", "push:NXM_OF_TCP_SRC[]", 0},
	{"udp", "learn(table=1,NXM_OF_TCP_SRC[])", 0},
	{"udp", "learn(table=1,NXM_OF_UDP_SRC[])", 0},
	{"udp", "learn(table=1,eth_type=0x800,nw_proto=17,NXM_OF_UDP_SRC[])", 0},
	{"udp", "fin_timeout(idle_timeout=5)", 0},
	{"tcp", "fin_timeout(idle_timeout=5)", 0},
	// Conntrack.
	{"arp", "ct(commit)", 0},
	{"arp", "ct_clear", 0},
	{"udp", "ct(commit,alg=ftp)", 0},
	{"arp", "ct(zone=NXM_OF_TCP_SRC[])", 0},
	{"udp", "ct(commit,nat(src=10.0.0.1))", 0},
	{"ip6", "ct(commit,nat(src=10.0.0.1))", 0},
	// Nesting, and what an inconsistency before a clone becomes.
	{"udp", "clone(set_field:80->tcp_src)", 0},
	{"arp", "dec_ttl,clone(note:01)", 0},
	{"arp", "clone(dec_ttl),note:01", 0},
	// Actions without prerequisites.
	{"udp", "resubmit(,1)", 0},
	{"udp", "controller", 0},
	{"udp", "note:01", 0},
}

// TestActionChecksMatchOVS sends each case to both switches, as a packet
// out and as a flow mod, in each version, and compares their answers.
func TestActionChecksMatchOVS(t *testing.T) {
	ports := []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}}
	ref := ovsref.StartShared(t, "br0", ports)
	s := startOFSwitchPorts(t, ports)
	refSock, sock := filepath.Join(ref.Dir, "br0.mgmt"), filepath.Join(s.runDir, "br0.mgmt")
	versions := []struct {
		v     uint8
		proto string
	}{{openflow.Version10, "OpenFlow10"}, {openflow.Version13, "OpenFlow13"}, {openflow.Version15, "OpenFlow15"}}
	// Open vSwitch must both refuse and take some: a harness that lost
	// every error, or made every request wrong, would compare alike.
	refused, taken := 0, 0
	for _, c := range actionCheckCases {
		for _, ver := range versions {
			if ver.v < c.from {
				continue
			}
			t.Run(fmt.Sprintf("%s/%s/%s", ver.proto, c.pkt, c.acts), func(t *testing.T) {
				msgs, err := ofctlMessages(t, ver.v, ver.proto, "packet-out", "SOCK",
					"in_port=1,packet="+checkPackets[c.pkt]+",actions="+c.acts)
				if err != nil {
					t.Fatal(err)
				}
				// What ovs-ofctl sends before the packet out (such as a
				// flow format) goes too.
				po := msgs[len(msgs)-1]
				if po[1] != 13 { // OFPT_PACKET_OUT
					t.Fatalf("ovs-ofctl's last message is not a packet out: %x", po)
				}
				want := rawReplies(t, refSock, ver.v, msgs)
				if got := rawReplies(t, sock, ver.v, msgs); got != want {
					t.Errorf("packet out: ovsxdp answered:\n%s\nOpen vSwitch:\n%s", got, want)
				}
				if want == "" {
					taken++
				} else {
					refused++
				}

				_, m, err := openflow.Decode(po)
				if err != nil {
					t.Fatalf("decode ovs-ofctl's packet out: %v", err)
				}
				fm := &openflow.FlowMod{Command: openflow.FlowAdd, Priority: 7, BufferID: openflow.NoBuffer,
					OutPort: openflow.PortAny, OutGroup: 0xffffffff, Match: checkMatch(c.pkt, ver.v == openflow.Version10)}
				acts := m.(*openflow.PacketOut).Actions
				if ver.v == openflow.Version10 {
					fm.Nicira, fm.Actions = true, acts
				} else {
					fm.Instructions = []openflow.Instruction{{Type: openflow.InstApplyActions, Actions: acts}}
				}
				b, err := openflow.Encode(ver.v, 1, fm)
				if err != nil {
					t.Fatal(err)
				}
				want = rawReplies(t, refSock, ver.v, [][]byte{b})
				if got := rawReplies(t, sock, ver.v, [][]byte{b}); got != want {
					t.Errorf("flow mod: ovsxdp answered:\n%s\nOpen vSwitch:\n%s", got, want)
				}
				if ver.v != openflow.Version10 {
					return
				}
				// And OpenFlow 1.0's own flow mod, its match as ovsxdp
				// writes it (both switches get the same bytes).
				m10, err := ofconv.MatchFromFields(nil, fm.Match)
				if err != nil {
					t.Fatal(err)
				}
				fm.Nicira, fm.Match, fm.Match10 = false, nil, ofconv.Match10FromMatch(m10)
				if b, err = openflow.Encode(ver.v, 1, fm); err != nil {
					t.Fatal(err)
				}
				want = rawReplies(t, refSock, ver.v, [][]byte{b})
				if got := rawReplies(t, sock, ver.v, [][]byte{b}); got != want {
					t.Errorf("OpenFlow 1.0 flow mod: ovsxdp answered:\n%s\nOpen vSwitch:\n%s", got, want)
				}
			})
		}
	}
	if refused == 0 || taken == 0 {
		t.Errorf("Open vSwitch refused %d packet outs and took %d: both should be some", refused, taken)
	}
}

// TestPacketOutInPortMatchesOVS sends packet outs from every reserved
// port, from numbers in the reserved range that name none, and from a
// 32-bit number past the 16-bit ports (OpenFlow 1.1+), as the packet
// out's in_port or, in OpenFlow 1.5, its match, and compares the answers.
func TestPacketOutInPortMatchesOVS(t *testing.T) {
	ports := []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}}
	ref := ovsref.StartShared(t, "br0", ports)
	s := startOFSwitchPorts(t, ports)
	refSock, sock := filepath.Join(ref.Dir, "br0.mgmt"), filepath.Join(s.runDir, "br0.mgmt")
	inPorts := []uint32{1, 3, 0xfeff, 0xff14, 0xffffff00, 0xffffff14, openflow.PortInPort, openflow.PortTable,
		openflow.PortNormal, openflow.PortFlood, openflow.PortAll, openflow.PortController, openflow.PortLocal, openflow.PortAny}
	for _, v := range []uint8{openflow.Version10, openflow.Version13, openflow.Version15} {
		for _, in := range inPorts {
			if v == openflow.Version10 && in == 0xff14 {
				continue // not a 16-bit port number
			}
			t.Run(fmt.Sprintf("0x%02x/%#x", v, in), func(t *testing.T) {
				c := errorCase{v: v, msgs: func(t *testing.T) []openflow.Message {
					po := &openflow.PacketOut{BufferID: openflow.NoBuffer, InPort: in, Data: errorFrame(t),
						Actions: []openflow.Action{&openflow.ActOutput{Port: 2}}}
					if v >= openflow.Version15 {
						po.Match = []openflow.Field{pinField("in_port", binary.BigEndian.AppendUint32(nil, in))}
					}
					return []openflow.Message{po}
				}}
				want := errorReplies(t, refSock, c)
				if got := errorReplies(t, sock, c); got != want {
					t.Errorf("ovsxdp answered:\n%s\nOpen vSwitch:\n%s", got, want)
				}
			})
		}
	}
}

// actionSetCheckCases are write_actions bodies (checked against the
// packet's match, as for actionCheckCases) for TestActionSetChecksMatchOVS:
// actions an action set may not hold, actions that do not apply to the
// match, a missing group, and some that are taken.
var actionSetCheckCases = []struct{ pkt, acts string }{
	{"udp", "output:2"},
	{"udp", "set_field:10.0.0.9->ip_dst,dec_ttl,output:2"},
	{"udp", "group:99"},
	{"udp", "note:01"},
	{"udp", "clone(output:2)"},
	{"udp", "push:NXM_NX_REG0[]"},
	{"udp", "output:NXM_NX_REG0[0..15]"},
	{"udp", "set_field:80->tcp_src"},
	{"udp", "set_field:0x1001->vlan_vid"},
	{"vudp", "set_field:0x1001->vlan_vid,output:2"},
	{"arp", "dec_ttl"},
	{"udp", "resubmit(,1)"},
}

// TestActionSetChecksMatchOVS sends flow mods whose write_actions
// instruction holds each case's actions (encoded as ovs-ofctl encodes
// them), after an apply_actions and a clear_actions, to both switches in
// OpenFlow 1.3 and 1.5, and compares their answers: the same errors, or
// none.
func TestActionSetChecksMatchOVS(t *testing.T) {
	ports := []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}}
	ref := ovsref.StartShared(t, "br0", ports)
	s := startOFSwitchPorts(t, ports)
	refSock, sock := filepath.Join(ref.Dir, "br0.mgmt"), filepath.Join(s.runDir, "br0.mgmt")
	refused, taken := 0, 0
	for _, c := range actionSetCheckCases {
		for _, ver := range []struct {
			v     uint8
			proto string
		}{{openflow.Version13, "OpenFlow13"}, {openflow.Version15, "OpenFlow15"}} {
			t.Run(fmt.Sprintf("%s/%s/%s", ver.proto, c.pkt, c.acts), func(t *testing.T) {
				// ovs-ofctl encodes the actions (as a packet out's).
				msgs, err := ofctlMessages(t, ver.v, ver.proto, "packet-out", "SOCK",
					"in_port=1,packet="+checkPackets[c.pkt]+",actions="+c.acts)
				if err != nil {
					t.Fatal(err)
				}
				_, m, err := openflow.Decode(msgs[len(msgs)-1])
				if err != nil {
					t.Fatalf("decode ovs-ofctl's packet out: %v", err)
				}
				fm := &openflow.FlowMod{Command: openflow.FlowAdd, Priority: 7, BufferID: openflow.NoBuffer,
					OutPort: openflow.PortAny, OutGroup: 0xffffffff, Match: checkMatch(c.pkt, false),
					Instructions: []openflow.Instruction{
						{Type: openflow.InstApplyActions, Actions: []openflow.Action{&openflow.ActOutput{Port: 1}}},
						{Type: openflow.InstClearActions},
						{Type: openflow.InstWriteActions, Actions: m.(*openflow.PacketOut).Actions},
					}}
				b, err := openflow.Encode(ver.v, 1, fm)
				if err != nil {
					t.Fatal(err)
				}
				want := rawReplies(t, refSock, ver.v, [][]byte{b})
				if got := rawReplies(t, sock, ver.v, [][]byte{b}); got != want {
					t.Errorf("flow mod: ovsxdp answered:\n%s\nOpen vSwitch:\n%s", got, want)
				}
				if want == "" {
					taken++
				} else {
					refused++
				}
			})
		}
	}
	if refused == 0 || taken == 0 {
		t.Errorf("Open vSwitch refused %d flow mods and took %d: both should be some", refused, taken)
	}
}
