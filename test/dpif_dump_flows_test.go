package test

import (
	"encoding/hex"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
)

// dumpCounters are a datapath flow line's counters.
var dumpCounters = regexp.MustCompile(`, packets:\d+, bytes:\d+, used:[^,]+, `)

// udpDpifFlows sends the test's datagram from a through s until
// dpif/dump-flows --names br0 lists a megaflow for it, and returns the
// UDP lines, counters left out, sorted.
func udpDpifFlows(t *testing.T, s *dpSwitch) []string {
	t.Helper()
	frame := hex.EncodeToString(dpActionsFrame(t, false))
	var got []string
	var out string
	if !netns.Eventually(20*time.Second, func() bool {
		if o, err := s.a.Run(helperArgs(t, "frame-send", "pa", frame)...); err != nil {
			t.Fatalf("%s: frame-send: %v\n%s", s.name, err, o)
		}
		out = s.appctl(t, "dpif/dump-flows", "--names", "br0")
		got = got[:0]
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "proto=17") {
				got = append(got, dumpCounters.ReplaceAllString(l, " "))
			}
		}
		return len(got) > 0
	}) {
		t.Fatalf("%s: no UDP megaflow in dpif/dump-flows --names br0 after 20 s:\n%s", s.name, out)
	}
	slices.Sort(got)
	return slices.Compact(got)
}

// TestDpifDumpFlowsMatchesOVS: ovs-appctl dpif/dump-flows --names BR prints
// the megaflows of ovsxdp's bridge as Open vSwitch 3.1 prints its bridge's,
// ports by name, for rules that output, drop, rewrite and send to two
// ports; revalidator/purge empties both; and without --names, ovsxdp's
// lines are its dpctl/dump-flows lines for the bridge, without the poll
// threads' heads.
func TestDpifDumpFlowsMatchesOVS(t *testing.T) {
	netns.Require(t)
	switches := []*dpSwitch{startOVSDPActions(t), startOvsxdpDPActions(t)}
	for _, rules := range []string{
		"priority=100,udp,in_port=1,actions=output:2",
		"priority=100,udp,in_port=1,actions=drop",
		"priority=100,udp,in_port=1,actions=mod_nw_tos:0x20,mod_tp_dst:53,output:2",
		"priority=100,udp,in_port=1,nw_dst=10.0.0.0/8,actions=output:2,LOCAL",
	} {
		got := map[string][]string{}
		for _, s := range switches {
			s.ofctl(t, nil, "del-flows")
			s.ofctl(t, []byte(rules+"\npriority=0,actions=drop\n"), "add-flows", "-")
			s.appctl(t, s.purge...)
			got[s.name] = udpDpifFlows(t, s)
		}
		if !slices.Equal(got["ovs"], got["ovsxdp"]) {
			t.Errorf("%s: dpif/dump-flows --names br0, UDP lines:\nOpen vSwitch %q\novsxdp       %q", rules, got["ovs"], got["ovsxdp"])
		}
	}

	x := switches[1]
	numbered := strings.Split(strings.TrimSpace(x.appctl(t, "dpif/dump-flows", "br0")), "\n")
	var dpctl []string
	for _, l := range strings.Split(strings.TrimSpace(x.appctl(t, "dpctl/dump-flows", "br0")), "\n") {
		if !strings.HasPrefix(l, "flow-dump from ") {
			dpctl = append(dpctl, l)
		}
	}
	// The counters may move between the two dumps.
	for _, ls := range [][]string{numbered, dpctl} {
		for i := range ls {
			ls[i] = dumpCounters.ReplaceAllString(ls[i], " ")
		}
		slices.Sort(ls)
	}
	if !slices.Equal(numbered, dpctl) || !strings.Contains(strings.Join(numbered, "\n"), "in_port(1)") {
		t.Errorf("ovsxdp: dpif/dump-flows br0\n%s\ndpctl/dump-flows br0, without its heads\n%s", strings.Join(numbered, "\n"), strings.Join(dpctl, "\n"))
	}

	// revalidator/purge takes every megaflow away (a frame of the test's
	// still in a ring may make one again: purge again), on both.
	for _, s := range switches {
		var out string
		if !netns.Eventually(5*time.Second, func() bool {
			s.appctl(t, "revalidator/wait")
			s.appctl(t, "revalidator/purge")
			out = s.appctl(t, "dpif/dump-flows", "br0")
			return !strings.Contains(out, "proto=17")
		}) {
			t.Errorf("%s: a UDP megaflow after revalidator/purge, for 5 s:\n%s", s.name, out)
		}
	}
}
