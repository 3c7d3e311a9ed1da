package daemon

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// TestFdb checks fdb/show's layout and order (least recently seen first,
// then by port), the LOCAL port's name, and the counters that
// fdb/stats-clear zeroes and fdb/flush leaves.
func TestFdb(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	macs := d.bridges["br0"].dp.MACs()
	now := time.Now()
	macs.Learn([6]byte{0x02, 0, 0, 0, 0, 0x0b}, 0, 2, now.Add(-3*time.Second).UnixNano())
	macs.Learn([6]byte{0x02, 0, 0, 0, 0, 0x0a}, 10, 1, now.Add(-3*time.Second).UnixNano())
	macs.Learn([6]byte{0x02, 0, 0, 0, 0, 0x0c}, 0, flow.PortLocal, now.UnixNano())
	macs.Learn([6]byte{0x02, 0, 0, 0, 0, 0x0c}, 0, 1, now.UnixNano()) // moved

	// An age is whole seconds: a second may begin between the learning
	// and fdb/show.
	want := "^ port  VLAN  MAC                Age\n" +
		"    1    10  02:00:00:00:00:0a    [34]\n" +
		"    2     0  02:00:00:00:00:0b    [34]\n" +
		"    1     0  02:00:00:00:00:0c    [01]\n$"
	if got := run(t, d, "fdb/show", "br0"); !regexp.MustCompile(want).MatchString(got) {
		t.Errorf("fdb/show:\n%s\nwant\n%s", got, want)
	}
	macs.Learn([6]byte{0x02, 0, 0, 0, 0, 0x0c}, 0, flow.PortLocal, now.UnixNano())
	want = "^ port  VLAN  MAC                Age\n" +
		"    1    10  02:00:00:00:00:0a    [34]\n" +
		"    2     0  02:00:00:00:00:0b    [34]\n" +
		"LOCAL     0  02:00:00:00:00:0c    [01]\n$"
	if got := run(t, d, "fdb/show", "br0"); !regexp.MustCompile(want).MatchString(got) {
		t.Errorf("fdb/show with an address on LOCAL:\n%s\nwant\n%s", got, want)
	}
	wantStats := "Statistics for bridge \"br0\":\n" +
		"  Current/maximum MAC entries in the table: 3/8192\n" +
		"  Current static MAC entries in the table : 0\n" +
		"  Total number of learned MAC entries     : 3\n" +
		"  Total number of evicted MAC entries     : 0\n" +
		"  Total number of port moved MAC entries  : 2\n"
	if got := run(t, d, "fdb/stats-show", "br0"); got != wantStats {
		t.Errorf("fdb/stats-show:\n%s\nwant\n%s", got, wantStats)
	}
	if got := run(t, d, "fdb/stats-clear"); got != "statistics successfully cleared\n" {
		t.Errorf("fdb/stats-clear: %q", got)
	}
	if got := run(t, d, "fdb/flush", "br0"); got != "table successfully flushed\n" {
		t.Errorf("fdb/flush: %q", got)
	}
	wantStats = "Statistics for bridge \"br0\":\n" +
		"  Current/maximum MAC entries in the table: 0/8192\n" +
		"  Current static MAC entries in the table : 0\n" +
		"  Total number of learned MAC entries     : 0\n" +
		"  Total number of evicted MAC entries     : 0\n" +
		"  Total number of port moved MAC entries  : 0\n"
	if got := run(t, d, "fdb/stats-show", "br0"); got != wantStats {
		t.Errorf("fdb/stats-show after fdb/stats-clear and fdb/flush:\n%s\nwant\n%s", got, wantStats)
	}
	if _, err := runFlags(d, "fdb/show", nil, "br9"); err == nil {
		t.Error("fdb/show of a bridge that does not exist")
	}
}

// TestFdbAddDel checks fdb/add's static entries through fdb/show,
// fdb/stats-show, fdb/flush (which keeps them) and fdb/del, and the
// refusals of bad arguments.
func TestFdbAddDel(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	run(t, d, "add-port", "br0", "p1", "type=mem", "ofport=1")
	if got := run(t, d, "fdb/add", "br0", "p1", "7", "02:00:00:00:00:0a"); got != "" {
		t.Errorf("fdb/add: %q, want nothing", got)
	}
	if got := run(t, d, "fdb/add", "br0", "br0", "7", "02:00:00:00:00:0a"); got != "Overriding already existing static entry on 1\n" {
		t.Errorf("fdb/add over a static entry: %q", got)
	}
	run(t, d, "fdb/flush", "br0")
	want := " port  VLAN  MAC                Age\nLOCAL     7  02:00:00:00:00:0a  static\n"
	if got := run(t, d, "fdb/show", "br0"); got != want {
		t.Errorf("fdb/show after fdb/flush:\n%q\nwant\n%q", got, want)
	}
	// The bridge's datapath name serves as its name, as in the other
	// commands that take a bridge.
	run(t, d, "fdb/flush", "ovsxdp@br0")
	if got := run(t, d, "fdb/show", "ovsxdp@br0"); got != want {
		t.Errorf("fdb/show ovsxdp@br0 after fdb/flush ovsxdp@br0:\n%q\nwant\n%q", got, want)
	}
	if got := run(t, d, "fdb/stats-show", "br0"); !strings.Contains(got, "  Current static MAC entries in the table : 1\n") {
		t.Errorf("fdb/stats-show:\n%s", got)
	}
	run(t, d, "fdb/del", "br0", "7", "02:00:00:00:00:0a")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fdb/del", "br0", "7", "02:00:00:00:00:0a"}, "could not find static mac entry"},
		{[]string{"fdb/add", "br9", "p1", "0", "02:00:00:00:00:0a"}, "no such bridge"},
		{[]string{"fdb/add", "br0", "p9", "0", "02:00:00:00:00:0a"}, "no such port p9 in bridge br0"},
		{[]string{"fdb/add", "br0", "p1", "4096", "02:00:00:00:00:0a"}, `bad VLAN "4096": want a VLAN ID from 0 to 4095`},
		{[]string{"fdb/add", "br0", "p1", "0", "02-00-00-00-00-0a"}, "bad MAC address"},
		{[]string{"fdb/add", "br0", "p1", "0", "02:00:00:00:00:100"}, "bad MAC address"},
		{[]string{"fdb/del", "br0", "0", "02:00:00:00:00"}, "bad MAC address"},
	} {
		if _, err := runFlags(d, tc.args[0], nil, tc.args[1:]...); err == nil || err.Error() != tc.want {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
