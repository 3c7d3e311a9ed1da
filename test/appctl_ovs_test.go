package test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// fdbHosts makes namespaces a and b, without IPv6 (whose router
// solicitations would be learned at any time), with veths to sw (host ends
// ha and hb) at 10.8.5.1 and 10.8.5.2, and returns them with their
// addresses' MACs.
func fdbHosts(t *testing.T, sw *netns.NS) (a, b *netns.NS, macA, macB string) {
	t.Helper()
	mac := func(n *netns.NS, dev string) string {
		out, err := n.Run("cat", "/sys/class/net/"+dev+"/address")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	a, b = netns.New(t, "fdba"), netns.New(t, "fdbb")
	for _, n := range []*netns.NS{a, b} {
		for _, conf := range []string{"all", "default"} {
			if out, err := n.Run("sysctl", "-qw", "net.ipv6.conf."+conf+".disable_ipv6=1"); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
		}
	}
	va := netns.AddVeth(t, sw, "ha", a, "pa", 1)
	vb := netns.AddVeth(t, sw, "hb", b, "pb", 1)
	a.AddAddr(t, va.Peer, "10.8.5.1/24")
	b.AddAddr(t, vb.Peer, "10.8.5.2/24")
	return a, b, mac(a, va.Peer), mac(b, vb.Peer)
}

// TestAppctlMatchesOVS: after the same pings through a bridge of two AF_XDP
// ports whose one flow is actions=normal, ovs-appctl's dpif/show and
// dpctl/show -s show the AF_XDP ports alike (their counts aside), and
// fdb/show,
// fdb/stats-show, fdb/add over a learned entry, fdb/del, fdb/flush and
// fdb/stats-clear answer for ovsxdp as
// for Open vSwitch: the same table layout, ports, VLANs and addresses
// (the addresses' MACs named, the ages and order left out), the same counters (less
// the count of aged-out entries, which ovsxdp does not keep) and the same
// messages.
func TestAppctlMatchesOVS(t *testing.T) {
	testenv.RequireTool(t, "ovs-appctl", "openvswitch-common")
	testenv.RequireTool(t, "ping", "iputils-ping")
	testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	type side struct {
		name       string
		a          *netns.NS
		macA, macB string
		appctl     func(args ...string) string
	}
	var sides []side

	s := ovsref.Start(t, "br0", nil)
	oa, _, omA, omB := fdbHosts(t, s.NS())
	for i, dev := range []string{"ha", "hb"} {
		if err := s.AddAFXDPPort(dev, i+1); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddFlows("", "actions=normal\n"); err != nil {
		t.Fatal(err)
	}
	sides = append(sides, side{"Open vSwitch", oa, omA, omB, func(args ...string) string {
		t.Helper()
		out, err := s.Appctl(args...)
		if err != nil {
			t.Fatalf("Open vSwitch: %v", err)
		}
		return out
	}})

	sw := netns.New(t, "fdbsw")
	xa, _, xmA, xmB := fdbHosts(t, sw)
	_, runDir := startHaHbBridge(t, sw)
	if out, err := runOfctl(nil, []string{"add-flow", "unix:" + filepath.Join(runDir, "br0.mgmt"), "actions=normal"}); err != nil {
		t.Fatalf("ovs-ofctl add-flow: %v\n%s", err, out)
	}
	sides = append(sides, side{"ovsxdp", xa, xmA, xmB, func(args ...string) string {
		t.Helper()
		out, errOut, code := ovsAppctl(t, runDir, "ovs-vswitchd", args...)
		if code != 0 {
			t.Fatalf("ovsxdp: ovs-appctl %s: exit code %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}})

	ages := regexp.MustCompile(`(?m) +\d+$`)
	// Each command's answers, by side, with the MACs named and ages cut.
	answers := map[string][]string{}
	for _, x := range sides {
		seen := map[string]int{} // the command's answers so far
		if out, err := x.a.Run("ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "10.8.5.2"); err != nil {
			t.Fatalf("%s: pa does not reach pb: %v\n%s", x.name, err, out)
		}
		flushed := false
		for _, cmd := range [][]string{
			{"dpif/show"}, {"dpctl/show", "-s"},
			{"fdb/show", "br0"}, {"fdb/stats-show", "br0"},
			// A static entry over a learned one says so, and
			// fdb/del takes it away.
			{"fdb/add", "br0", "hb", "0", "MAC-A"}, {"fdb/show", "br0"},
			{"fdb/del", "br0", "0", "MAC-A"},
			{"fdb/stats-clear", "br0"}, {"fdb/flush", "br0"},
			{"fdb/show", "br0"}, {"fdb/stats-show", "br0"},
		} {
			args := slices.Clone(cmd)
			for i, a := range args {
				args[i] = strings.NewReplacer("MAC-A", x.macA).Replace(a)
			}
			out := x.appctl(args...)
			out = strings.NewReplacer(x.macA, "MAC-A", x.macB, "MAC-B").Replace(out)
			if cmd[0] == "fdb/show" {
				// The rows' order is the entries' last use, which
				// Open vSwitch's revalidators update in no set order.
				rows := strings.SplitAfter(ages.ReplaceAllString(out, ""), "\n")
				slices.Sort(rows[1:])
				out = strings.Join(rows, "")
			}
			if cmd[0] == "dpif/show" || cmd[0] == "dpctl/show" {
				// The AF_XDP ports' lines, and dpctl/show's
				// counters under them: the datapaths' names, their
				// other ports, their lookups and (in dpctl/show)
				// their port numbers differ.
				var lines []string
				keep := false
				for _, l := range strings.SplitAfter(out, "\n") {
					if strings.HasPrefix(l, "  port ") || !strings.HasPrefix(l, "    ") || cmd[0] == "dpif/show" {
						keep = strings.Contains(l, "afxdp:")
					}
					if keep {
						l = regexp.MustCompile(`^  port \d+:`).ReplaceAllString(l, "  port:")
						lines = append(lines, regexp.MustCompile(`^(    \S+ \d+)/\d+:`).ReplaceAllString(l, "$1/D:"))
					}
				}
				out = strings.Join(lines, "")
				if cmd[0] == "dpctl/show" {
					// The counts, and the drops Open vSwitch does not
					// keep for AF_XDP ports.
					out = regexp.MustCompile(`dropped:\S+`).ReplaceAllString(out, "dropped:D")
					out = regexp.MustCompile(`(packets|bytes):\d+`).ReplaceAllString(out, "$1:N")
				}
			}
			if cmd[0] == "fdb/stats-show" {
				// ovsxdp does not count the entries that aged out.
				out = regexp.MustCompile(`(?m)^  Total number of expired MAC entries .*\n`).ReplaceAllString(out, "")
			}
			key := fmt.Sprintf("%s #%d", strings.Join(cmd, " "), seen[strings.Join(cmd, " ")])
			seen[strings.Join(cmd, " ")]++
			if flushed {
				// After the flush Open vSwitch may learn the
				// addresses again at any time without a packet
				// (its revalidators replay the datapath flows'
				// learning): compare the layout, not the counts.
				out = regexp.MustCompile(`\d+`).ReplaceAllString(out, "N")
				out = regexp.MustCompile(`(?m)^ +N +N +MAC-[AB]\n`).ReplaceAllString(out, "")
			}
			answers[key] = append(answers[key], out)
			flushed = flushed || cmd[0] == "fdb/flush"
		}
	}
	for cmd, outs := range answers {
		if outs[0] != outs[1] {
			t.Errorf("%s: Open vSwitch answers\n%s\novsxdp\n%s", cmd, outs[0], outs[1])
		}
	}
	if dp := answers["dpif/show #0"]; len(dp) == 0 || !strings.Contains(dp[0], "    ha 1/D: (afxdp: n_rxq=1,") || !strings.Contains(dp[0], "    hb 2/D: (afxdp: n_rxq=1,") {
		t.Errorf("dpif/show does not list both AF_XDP ports: %q", dp)
	}
	if first := answers["fdb/show br0 #0"]; len(first) == 0 || !strings.Contains(first[0], "MAC-A") || !strings.Contains(first[0], "MAC-B") {
		t.Errorf("fdb/show after the pings does not list both hosts' addresses: %q", first)
	}
	if add := answers["fdb/add br0 hb 0 MAC-A #0"]; len(add) == 0 || !strings.Contains(add[0], "Overriding already existing dynamic entry on 1") {
		t.Errorf("fdb/add over a learned entry: %q", add)
	}
	// ovsxdp learns only from packets, and none came after the flush.
	if got, want := sides[1].appctl("fdb/show", "br0"), " port  VLAN  MAC                Age\n"; got != want {
		t.Errorf("ovsxdp's fdb/show after fdb/flush: %q, want %q", got, want)
	}
	if got := sides[1].appctl("fdb/stats-show", "br0"); !strings.Contains(got, "table: 0/8192\n") || !strings.Contains(got, "learned MAC entries     : 0\n") {
		t.Errorf("ovsxdp's fdb/stats-show after fdb/flush and fdb/stats-clear:\n%s", got)
	}
}
