package test

import (
	"encoding/hex"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// dumpMatchLine splits a dpctl/dump-flows line into its match and its
// actions, leaving out the counters.
var dumpMatchLine = regexp.MustCompile(`^(?:ufid:\S+ )?(.*), packets:.*, actions:(.*)$`)

// udpMegaflowMatches sends frame from a through s and returns the
// megaflows that match UDP, match and actions as dpctl/dump-flows prints
// them with in_port and outputs by port name, sorted; it waits a
// generous while for one to show.
func udpMegaflowMatches(t *testing.T, s *dpSwitch, frame []byte) []string {
	t.Helper()
	h := hex.EncodeToString(frame)
	inPort := regexp.MustCompile(`in_port\((\d+)\)`)
	var got []string
	found := netns.Eventually(20*time.Second, func() bool {
		if out, err := s.a.Run(helperArgs(t, "frame-send", "pa", h)...); err != nil {
			t.Fatalf("%s: frame-send: %v\n%s", s.name, err, out)
		}
		got = got[:0]
		for _, l := range strings.Split(s.appctl(t, "dpctl/dump-flows", s.dp), "\n") {
			m := dumpMatchLine.FindStringSubmatch(strings.TrimSpace(l))
			if m == nil || !strings.Contains(m[1], "proto=17") {
				continue
			}
			match := inPort.ReplaceAllStringFunc(m[1], func(p string) string {
				n, _ := strconv.Atoi(inPort.FindStringSubmatch(p)[1])
				if name, ok := s.portName(n); ok {
					return "in_port(" + name + ")"
				}
				return p
			})
			got = append(got, match+" actions:"+ovsref.MapActions(m[2], s.portName))
		}
		return len(got) > 0
	})
	if !found {
		t.Fatalf("%s: no UDP megaflow after 20 s:\n%s", s.name, s.appctl(t, "dpctl/dump-flows", s.dp))
	}
	slices.Sort(got)
	return slices.Compact(got)
}

// TestDumpFlowsPartialMasksMatchOVS loads a rule that matches part of a
// field into Open vSwitch 3.1 and into ovsxdp, sends each the same
// datagram (TOS 0xb9) and compares the megaflow each dpctl/dump-flows
// prints: Open vSwitch's userspace datapath keeps the key of the packet
// that installed a megaflow and prints it under the mask, so a partly
// masked field shows the packet's bits outside the mask too
// (ipv4(src=10.77.0.1/255.255.255.0), tos=0xb9/0x3), not the masked
// value.
func TestDumpFlowsPartialMasksMatchOVS(t *testing.T) {
	netns.Require(t)
	switches := []*dpSwitch{startOVSDPActions(t), startOvsxdpDPActions(t)}
	for _, tc := range []struct{ name, match string }{
		{name: "ipv4 prefix", match: "nw_src=10.77.0.0/24"},
		{name: "ecn", match: "nw_ecn=1"},
		{name: "dscp", match: "nw_tos=0xb8"},
		{name: "mac prefix", match: "dl_src=02:00:5e:00:00:00/ff:ff:ff:00:00:00"},
		{name: "port range", match: "tp_dst=0x8/0xfff8"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			got := map[string][]string{}
			for _, s := range switches {
				s.ofctl(t, nil, "del-flows")
				flows := "priority=100,udp,in_port=1," + tc.match + ",actions=output:2\npriority=0,actions=drop\n"
				s.ofctl(t, []byte(flows), "add-flows", "-")
				s.appctl(t, s.purge...)
				got[s.name] = udpMegaflowMatches(t, s, ecnInnerFrame(t, false, 0xb9))
			}
			t.Logf("%s: %s", tc.match, strings.Join(got["ovs"], " | "))
			if !slices.Equal(got["ovs"], got["ovsxdp"]) {
				t.Errorf("%s: megaflows differ\n  ovs:    %s\n  ovsxdp: %s", tc.match,
					strings.Join(got["ovs"], " | "), strings.Join(got["ovsxdp"], " | "))
			}
		})
	}
}
