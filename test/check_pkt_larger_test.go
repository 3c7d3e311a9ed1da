package test

import (
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
)

// port2TxPackets is port 2's transmitted packets, as ovs-ofctl dump-ports
// prints them.
func port2TxPackets(t *testing.T, s *dpSwitch) int {
	t.Helper()
	return txPacketsIn(t, s.ofctl(t, nil, "dump-ports", "2"), s.name+": dump-ports 2")
}

// TestCheckPktLargerMatchesOVS: flows with check_pkt_larger, in Open
// vSwitch 3.1 and in ovsxdp, each sent the same short (51-byte) and long
// (341-byte) datagrams on port 1: both send port 2 the same number of
// them (the long ones only, when only the longer-than branch outputs),
// and print the same megaflow for them (dpif/dump-flows --names),
// check_pkt_len and its two branches included; ovs-ofctl dump-flows, in
// OpenFlow 1.0 and 1.3, prints the same flows from both.
func TestCheckPktLargerMatchesOVS(t *testing.T) {
	netns.Require(t)
	switches := []*dpSwitch{startOVSDPActions(t), startOvsxdpDPActions(t)}
	short, long := hex.EncodeToString(dpFrame(t, false, make([]byte, 9))), hex.EncodeToString(dpFrame(t, false, make([]byte, 299)))
	for _, tc := range []struct {
		name  string
		flows string
		sent  int // of the 3 short and 4 long datagrams, those port 2 sends
	}{
		{name: "long only", sent: 4, flows: `priority=100,udp,in_port=1,actions=check_pkt_larger(200)->reg0[0],resubmit(,1)
table=1,reg0=0x1/0x1,actions=output:2
`},
		{name: "both, the short rewritten", sent: 7, flows: `priority=100,udp,in_port=1,actions=mod_nw_tos:0x20,check_pkt_larger(200)->reg0[0],resubmit(,1)
table=1,reg0=0x1/0x1,actions=output:2
table=1,reg0=0/0x1,actions=mod_dl_dst:02:00:5e:00:53:09,output:2
`},
		{name: "the list around goes on", sent: 7, flows: `priority=100,udp,in_port=1,actions=resubmit(,1),output:2
table=1,actions=check_pkt_larger(200)->reg0[0],resubmit(,2)
table=2,reg0=0x1/0x1,actions=mod_dl_dst:02:00:5e:00:53:09,output:LOCAL
`},
	} {
		lines, dumps := map[string][]string{}, map[string]string{}
		for _, s := range switches {
			s.ofctl(t, nil, "del-flows")
			s.ofctl(t, []byte(tc.flows+"priority=0,actions=drop\n"), "add-flows", "-")
			for _, proto := range []string{"OpenFlow10", "OpenFlow13"} {
				dumps[s.name] += flowLines(s.ofctl(t, nil, "dump-flows", "--protocols="+proto)) + "\n"
			}
			s.appctl(t, s.purge...)
			before := port2TxPackets(t, s)
			for i := range 7 {
				frame := short
				if i%2 == 1 || i == 6 {
					frame = long
				}
				if out, err := s.a.Run(helperArgs(t, "frame-send", "pa", frame)...); err != nil {
					t.Fatalf("%s: frame-send: %v\n%s", s.name, err, out)
				}
			}
			var got int
			if !netns.Eventually(10*time.Second, func() bool { got = port2TxPackets(t, s) - before; return got >= tc.sent }) {
				t.Errorf("%s: %s: port 2 sent %d datagrams after 10 s, want %d", tc.name, s.name, got, tc.sent)
			}
			time.Sleep(200 * time.Millisecond) // any extra one would show now
			if got = port2TxPackets(t, s) - before; got != tc.sent {
				t.Errorf("%s: %s: port 2 sent %d datagrams, want %d", tc.name, s.name, got, tc.sent)
			}
			for _, l := range strings.Split(s.appctl(t, "dpif/dump-flows", "--names", "br0"), "\n") {
				if strings.Contains(l, "proto=17") {
					lines[s.name] = append(lines[s.name], dumpCounters.ReplaceAllString(l, " "))
				}
			}
			slices.Sort(lines[s.name])
		}
		if dumps["ovs"] != dumps["ovsxdp"] || !strings.Contains(dumps["ovs"], "check_pkt_larger(200)->NXM_NX_REG0[0]") {
			t.Errorf("%s: ovs-ofctl dump-flows in OpenFlow 1.0 and 1.3:\nOpen vSwitch\n%s\novsxdp\n%s", tc.name, dumps["ovs"], dumps["ovsxdp"])
		}
		if !slices.Equal(lines["ovs"], lines["ovsxdp"]) || len(lines["ovs"]) == 0 || !strings.Contains(lines["ovs"][0], "check_pkt_len(") {
			t.Errorf("%s: dpif/dump-flows --names br0, UDP lines:\nOpen vSwitch %q\novsxdp       %q", tc.name, lines["ovs"], lines["ovsxdp"])
		}
	}
}
