package test

import (
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
	"github.com/ovsxdp/ovsxdp/test/netns"
)

// Continuations against Open vSwitch 3.1: controller(pause) freezes the
// pipeline into a packet in; ovs-ofctl monitor's resume (an NXT_RESUME
// of each such packet in, continuation as it came) resumes it.

// pauseFrame is a UDP datagram from 192.168.0.1 to 192.168.0.2.
const pauseFrame = "ffffffffffff00000000000108004500001c0001000040110000c0a80001c0a800020035003500080000"

// continuationIDs are the bridge's id and the datapath's port number in
// a printed continuation, which each switch numbers its own way.
var continuationIDs = regexp.MustCompile(`continuation\.(bridge|odp_port)=[0-9a-f-]+`)

// TestContinuationMatchesOVS: packet outs into pipelines that pause in
// a nested table, on Open vSwitch 3.1 and on ovsxdp under ovs-ofctl
// monitor ... resume: both print the same packet in, continuation
// included, and, once the monitor resumed it, both send the packet to
// ports 2 and 3, which only the rest of the pipeline does. In the first
// pipeline, table 2's match needs a register written before the pause
// (it travels in the packet in's metadata) and one written after it; in
// the second, the rules have cookies, and a value pushed before the
// pause is popped after it (it travels in the continuation's stack).
// Without the monitor, the packet goes nowhere.
func TestContinuationMatchesOVS(t *testing.T) {
	pipelines := [][]string{{
		"priority=10,ip,actions=load:0x5->NXM_NX_REG1[],resubmit(,1),output:2",
		"table=1,actions=controller(userdata=01.02,pause),load:0x7->NXM_NX_REG2[],resubmit(,2)",
		"table=2,reg1=5,reg2=7,actions=output:3",
	}, {
		"cookie=0x10,priority=10,ip,actions=load:0x9->NXM_NX_REG1[],push:NXM_NX_REG1[],load:0x5->NXM_NX_REG1[],resubmit(,1),pop:NXM_NX_REG3[],resubmit(,3)",
		"table=1,cookie=0x11,actions=controller(pause),output:2",
		"table=3,reg3=9,actions=output:3",
	}}
	switches := flagSwitches(t)
	for i, flows := range pipelines {
		printed := map[string]string{}
		for _, s := range switches {
			printed[s.name] = pauseAndResume(t, &s, flows)
		}
		t.Logf("pipeline %d: Open vSwitch printed\n%s", i, printed["Open vSwitch"])
		if printed["Open vSwitch"] != printed["ovsxdp"] || !strings.Contains(printed["ovsxdp"], "continuation.actions=") {
			t.Errorf("pipeline %d: the paused packet in, as ovs-ofctl monitor prints it:\nOpen vSwitch\n%s\novsxdp\n%s", i, printed["Open vSwitch"], printed["ovsxdp"])
		}
	}
}

// pauseAndResume installs flows on s, sends a packet out into them
// without a monitor and then under ovs-ofctl monitor ... resume until
// one is resumed, checks that ports 2 and 3 sent each resumed packet,
// and returns the first paused packet in as the monitor printed it,
// without the ids each switch makes its own.
func pauseAndResume(t *testing.T, s *flagSwitch, flows []string) string {
	t.Helper()
	const v = "OpenFlow13"
	s.must(t, v, "del-flows")
	for _, f := range flows {
		s.must(t, v, "add-flow", f)
	}
	tx := func(port string) int {
		return txPacketsIn(t, s.must(t, v, "dump-ports", port), s.name+": dump-ports "+port)
	}
	before2, before3 := tx("2"), tx("3")
	packetOut := func() { s.must(t, v, "packet-out", "in_port=1,packet="+pauseFrame+",actions=resubmit(,0)") }
	packetOut() // nobody to resume it: the pipeline stops at the pause
	m := startMonitorArgs(t, s.rundir, "-O", v, "--timeout=60", "monitor", s.target, "resume")
	defer m.cmd.Process.Kill()
	// The monitor takes packet ins once it has set its miss_send_len:
	// send until one is resumed.
	waitFor(t, func() bool {
		if strings.Count(m.text(), "NXT_PACKET_IN2") == 0 {
			packetOut()
		}
		return strings.Count(m.text(), "NXT_RESUME") > 0
	}, s.name+": a resumed packet in: "+m.text())
	resumed := func() int { return strings.Count(m.text(), "send: NXT_RESUME") }
	waitFor(t, func() bool { return tx("2")-before2 >= resumed() && tx("3")-before3 >= resumed() },
		fmt.Sprintf("%s: the resumed packets on ports 2 and 3\n%s", s.name, m.text()))
	if got2, got3, n := tx("2")-before2, tx("3")-before3, resumed(); got2 != n || got3 != n {
		t.Errorf("%s: %d packet ins resumed, ports 2 and 3 sent %d and %d", s.name, n, got2, got3)
	}
	if strings.Contains(m.text(), "OFPT_ERROR") {
		t.Errorf("%s: an error:\n%s", s.name, m.text())
	}
	return continuationIDs.ReplaceAllString(firstPacketIn(m.text()), "continuation.$1=*")
}

// firstPacketIn is the first NXT_PACKET_IN2 a monitor printed, its lines
// up to the next message.
func firstPacketIn(out string) string {
	i := strings.Index(out, "NXT_PACKET_IN2")
	if i < 0 {
		return ""
	}
	rest := out[i:]
	if j := strings.Index(rest[1:], "\n"+"send: "); j >= 0 {
		rest = rest[:j+1]
	}
	return rest
}

// TestResumeErrorsMatchOVS: NXT_RESUME with no continuation, with one of
// no bridge, and with one that holds a property neither switch knows, to
// Open vSwitch 3.1 and to ovsxdp: both answer the same errors.
func TestResumeErrorsMatchOVS(t *testing.T) {
	frame, err := hex.DecodeString(pauseFrame)
	if err != nil {
		t.Fatal(err)
	}
	resume := func(cont []byte) func(*testing.T) []openflow.Message {
		m := &openflow.Resume{PacketIn2: openflow.PacketIn2{Packet: frame, Reason: 1, Cookie: openflow.NoCookie,
			Metadata: []openflow.Field{pinField("in_port", []byte{0, 0, 0, 1})}}}
		if cont != nil {
			m.Continuation, m.HasContinuation = cont, true
		}
		return asyncMsgs(m)
	}
	noBridge := make([]byte, 4)
	unknown := append(make([]byte, 4), 0x80, 0x09, 0, 8, 0, 0, 0, 0)
	var cases []errorCase
	for _, v := range []uint8{openflow.Version10, openflow.Version13, openflow.Version15} {
		cases = append(cases,
			errorCase{fmt.Sprintf("no-continuation-%d", v), v, resume(nil)},
			errorCase{fmt.Sprintf("no-bridge-%d", v), v, resume(noBridge)},
			errorCase{fmt.Sprintf("unknown-property-%d", v), v, resume(unknown)})
	}
	if refused := refusals(compareCases(t, cases, nil)); refused != len(cases) {
		t.Errorf("Open vSwitch refused %d of the %d cases, want all", refused, len(cases))
	}
}

// TestContinuationTrafficMatchesOVS: a datagram that comes in on an
// AF_XDP port into a pipeline that pauses in table 1, on Open vSwitch
// 3.1 and on ovsxdp under ovs-ofctl monitor ... resume: both print the
// same paused packet in (for a received packet, the table and cookie are
// table 0's rule's) and, resumed, send the datagram out of port 2,
// which only the rest of the pipeline does.
func TestContinuationTrafficMatchesOVS(t *testing.T) {
	netns.Require(t)
	frame := hex.EncodeToString(dpFrame(t, false, make([]byte, 9)))
	printed := map[string]string{}
	for _, s := range []*dpSwitch{startOVSDPActions(t), startOvsxdpDPActions(t)} {
		s.ofctl(t, nil, "del-flows")
		s.ofctl(t, []byte(`cookie=0x20,priority=100,udp,in_port=1,actions=load:0x3->NXM_NX_REG0[],resubmit(,1),output:2
table=1,cookie=0x21,actions=controller(pause,userdata=0a)
priority=0,actions=drop
`), "add-flows", "-")
		m := startMonitorArgs(t, s.rundir, "-O", "OpenFlow13", "--timeout=60", "monitor", s.target, "resume")
		before := port2TxPackets(t, s)
		waitFor(t, func() bool {
			if strings.Count(m.text(), "NXT_PACKET_IN2") == 0 {
				if out, err := s.a.Run(helperArgs(t, "frame-send", "pa", frame)...); err != nil {
					t.Fatalf("%s: frame-send: %v\n%s", s.name, err, out)
				}
			}
			return strings.Contains(m.text(), "NXT_RESUME")
		}, s.name+": a resumed packet in: "+m.text())
		resumed := func() int { return strings.Count(m.text(), "send: NXT_RESUME") }
		waitFor(t, func() bool { return port2TxPackets(t, s)-before >= resumed() }, s.name+": the resumed datagrams on port 2")
		if got, n := port2TxPackets(t, s)-before, resumed(); got != n || strings.Contains(m.text(), "OFPT_ERROR") {
			t.Errorf("%s: %d packet ins resumed, port 2 sent %d\n%s", s.name, n, got, m.text())
		}
		printed[s.name] = continuationIDs.ReplaceAllString(firstPacketIn(m.text()), "continuation.$1=*")
		m.cmd.Process.Kill()
	}
	if printed["ovs"] != printed["ovsxdp"] || !strings.Contains(printed["ovs"], "cookie=0x20") {
		t.Errorf("the paused packet in, as ovs-ofctl monitor prints it:\nOpen vSwitch\n%s\novsxdp\n%s", printed["ovs"], printed["ovsxdp"])
	}
}
