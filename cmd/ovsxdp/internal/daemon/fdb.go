package daemon

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// The MAC learning table behind each bridge's normal action, as
// ovs-appctl's fdb/ commands show it.
func init() {
	register(
		&verb{VerbInfo: VerbInfo{Name: "fdb/show", Usage: "BR", Short: "Print the MAC addresses a bridge's normal action learned: port, VLAN, address and age in seconds, the least recently seen first", Min: 1, Max: 1}, run: (*Daemon).fdbShow},
		&verb{VerbInfo: VerbInfo{Name: "fdb/flush", Usage: "[BR]", Short: "Forget the learned MAC addresses (of one bridge)", Max: 1}, run: (*Daemon).fdbFlush},
		&verb{VerbInfo: VerbInfo{Name: "fdb/stats-show", Usage: "BR", Short: "Print a bridge's MAC learning counters", Min: 1, Max: 1}, run: (*Daemon).fdbStatsShow},
		&verb{VerbInfo: VerbInfo{Name: "fdb/stats-clear", Usage: "[BR]", Short: "Zero what fdb/stats-show counts (of one bridge)", Max: 1}, run: (*Daemon).fdbStatsClear},
	)
}

// fdbShow lists the live entries in Open vSwitch's layout, oldest first
// as its least-recently-used list is (ties by port, VLAN and address).
func (d *Daemon) fdbShow(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	entries := slices.Collect(b.dp.MACs().All(time.Now().UnixNano()))
	slices.SortFunc(entries, func(x, y flow.MACEntry) int {
		return cmp.Or(cmp.Compare(y.Age, x.Age), cmp.Compare(x.Port, y.Port), cmp.Compare(x.VLAN, y.VLAN), slices.Compare(x.MAC[:], y.MAC[:]))
	})
	var s strings.Builder
	s.WriteString(" port  VLAN  MAC                Age\n")
	for _, e := range entries {
		fmt.Fprintf(&s, "%5s  %4d  %s  %3d\n", portNumber(e.Port), e.VLAN, net.HardwareAddr(e.MAC[:]), int(e.Age/time.Second))
	}
	return s.String(), nil
}

// portNumber writes an OpenFlow port number as Open vSwitch does without
// port names: the number, or the reserved port's name.
func portNumber(p uint32) string {
	if p == flow.PortLocal {
		return "LOCAL"
	}
	return fmt.Sprint(p)
}

func (d *Daemon) fdbFlush(c *call) (string, error) {
	bs, err := d.selectLocked(c)
	if err != nil {
		return "", err
	}
	for _, b := range bs {
		b.dp.MACs().Flush()
	}
	return "table successfully flushed\n", nil
}

// fdbStatsShow prints the counters Open vSwitch's fdb/stats-show prints
// that the table keeps: it does not count the entries that age out, and
// it has no static entries.
func (d *Daemon) fdbStatsShow(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	t := b.dp.MACs()
	st, base := t.Stats(), b.macBaseline
	var s strings.Builder
	fmt.Fprintf(&s, "Statistics for bridge \"%s\":\n", b.name)
	fmt.Fprintf(&s, "  Current/maximum MAC entries in the table: %d/%d\n", t.Len(time.Now().UnixNano()), t.Cap())
	s.WriteString("  Current static MAC entries in the table : 0\n") // there are none: fdb/add is not taken
	fmt.Fprintf(&s, "  Total number of learned MAC entries     : %d\n", st.Learned-base.Learned)
	fmt.Fprintf(&s, "  Total number of evicted MAC entries     : %d\n", st.Evicted-base.Evicted)
	fmt.Fprintf(&s, "  Total number of port moved MAC entries  : %d\n", st.Moved-base.Moved)
	return s.String(), nil
}

func (d *Daemon) fdbStatsClear(c *call) (string, error) {
	bs, err := d.selectLocked(c)
	if err != nil {
		return "", err
	}
	for _, b := range bs {
		b.macBaseline = b.dp.MACs().Stats()
	}
	return "statistics successfully cleared\n", nil
}
