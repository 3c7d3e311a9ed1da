package test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// TestFdbAddDelMatchesOVS runs the same fdb/add, fdb/del, fdb/show,
// fdb/stats-show and fdb/flush commands, good and bad, against Open
// vSwitch 3.1 and ovsxdp with the real ovs-appctl, and compares what each
// prints, on standard output and standard error, and its exit code.
// Static entries never age, learning does not move them and fdb/flush
// keeps them; fdb/del deletes only them. A bridge may have learned other
// addresses of its own (its ports' IPv6 traffic), so fdb/show is compared
// on the test's addresses only, in a set order.
//
// Where ovsxdp differs on purpose, the test checks ovsxdp's answer alone:
// Open vSwitch 3.1 takes any number as the VLAN (and a word as VLAN 0)
// and keeps an entry no packet can match, where ovsxdp refuses it; and it
// answers a port it does not have with "software error, odp port is
// present but no ofp port", where ovsxdp names the port.
func TestFdbAddDelMatchesOVS(t *testing.T) {
	ports := []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}}
	ref := ovsref.StartShared(t, "br0", ports)
	sw := startOFSwitchPorts(t, ports)
	const macA, macB, macC = "02:00:00:00:fd:01", "02:00:00:00:fd:02", "02:00:00:00:fd:03"
	steps := [][]string{
		{"fdb/flush", "br0"},
		{"fdb/stats-clear", "br0"},
		{"fdb/add", "br0", "p1", "0", macA},
		{"fdb/add", "br0", "p2", "10", macB},
		{"fdb/add", "br0", "br0", "0", macC}, // the local port
		{"fdb/show", "br0"},
		{"fdb/stats-show", "br0"},
		{"fdb/add", "br0", "p2", "0", macA}, // the static entry moves
		{"fdb/show", "br0"},
		{"fdb/flush", "br0"}, // keeps static entries
		{"fdb/show", "br0"},
		{"fdb/del", "br0", "0", macA},
		{"fdb/del", "br0", "0", macA}, // gone already
		{"fdb/show", "br0"},
		{"fdb/stats-show", "br0"},
		{"fdb/add", "nobr", "p1", "0", macA},
		{"fdb/add", "br0", "p1", "0", "zz"},
		{"fdb/add", "br0", "p1", "0", "02-00-00-00-fd-01"},
		{"fdb/add", "br0", "p1", "0", "02:00:00:00:fd"},
		{"fdb/del", "br0", "0", "zz"},
		{"fdb/del", "nobr", "0", macA},
		{"fdb/show", "nobr"},
		{"fdb/stats-show", "nobr"},
		{"fdb/flush", "nobr"},
		{"fdb/stats-clear", "nobr"},
		{"fdb/del", "br0", "10", macB},
		{"fdb/del", "br0", "0", macC},
		{"fdb/show", "br0"},
	}
	// ovsxdp's own answers where it differs on purpose.
	own := map[string]string{
		"fdb/add br0 nope 0 " + macA:  "fdb/add br0 nope 0 " + macA + ": exit 2\nno such port nope in bridge br0",
		"fdb/add br0 p1 4096 " + macA: "fdb/add br0 p1 4096 " + macA + ": exit 2\nbad VLAN \"4096\": want a VLAN ID from 0 to 4095",
		"fdb/add br0 p1 x " + macA:    "fdb/add br0 p1 x " + macA + ": exit 2\nbad VLAN \"x\": want a VLAN ID from 0 to 4095",
		"fdb/del br0 -1 " + macA:      "fdb/del br0 -1 " + macA + ": exit 2\nbad VLAN \"-1\": want a VLAN ID from 0 to 4095",
	}
	// Only the test's addresses; ages and other counters vary.
	ours := func(cmd, out string) string {
		switch cmd {
		case "fdb/show":
			var rows []string
			lines := strings.SplitAfter(out, "\n")
			for _, l := range lines[1:] {
				if strings.Contains(l, macA) || strings.Contains(l, macB) {
					rows = append(rows, l)
				}
			}
			slices.Sort(rows)
			return lines[0] + strings.Join(rows, "")
		case "fdb/stats-show":
			// Only the static entries: the bridge's own learning
			// moves the other counts.
			return regexp.MustCompile(`(?m)^  Current static MAC entries.*$`).FindString(out)
		}
		return out
	}
	run := func(runDir, target string, steps [][]string) []string {
		var got []string
		for _, step := range steps {
			out, errOut, code := ovsAppctl(t, runDir, target, step...)
			first, _, _ := strings.Cut(errOut, "\n")
			got = append(got, fmt.Sprintf("%s: exit %d\n%s%s", strings.Join(step, " "), code, ours(step[0], out), first))
		}
		return got
	}
	want, got := run(ref.Dir, filepath.Join(ref.Dir, "ovs-vswitchd.ctl"), steps), run(sw.runDir, "ovs-vswitchd", steps)
	for i := range steps {
		if got[i] != want[i] {
			t.Errorf("ovsxdp:\n%s\nOpen vSwitch:\n%s", got[i], want[i])
		} else {
			t.Logf("%s", got[i])
		}
	}
	// What the comparison rests on: the entries were there to compare,
	// and fdb/flush kept them.
	for _, i := range []int{5, 10} {
		if !strings.Contains(want[i], "static") || !strings.Contains(want[i], macB) {
			t.Errorf("Open vSwitch's answer lists no static entries:\n%s", want[i])
		}
	}
	var ownSteps [][]string
	for k := range own {
		ownSteps = append(ownSteps, strings.Fields(k))
	}
	slices.SortFunc(ownSteps, func(a, b []string) int { return strings.Compare(strings.Join(a, " "), strings.Join(b, " ")) })
	for _, g := range run(sw.runDir, "ovs-vswitchd", ownSteps) {
		step, _, _ := strings.Cut(g, ": exit")
		if g != own[step] {
			t.Errorf("ovsxdp:\n%s\nwant:\n%s", g, own[step])
		}
	}
}
