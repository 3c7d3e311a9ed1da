package daemon

import (
	"regexp"
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
