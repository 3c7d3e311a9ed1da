package daemon

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// The MAC learning table behind each bridge's normal action, as
// ovs-appctl's fdb/ commands show it.
func init() {
	register(
		&verb{VerbInfo: VerbInfo{Name: "fdb/show", Usage: "BR", Short: "Print the MAC addresses a bridge's normal action learned: port, VLAN, address and age in seconds, the least recently seen first", Min: 1, Max: 1}, run: (*Daemon).fdbShow},
		&verb{VerbInfo: VerbInfo{Name: "fdb/add", Usage: "BR PORT VLAN MAC", Short: "Add a static MAC entry: MAC in VLAN on PORT, which never ages and which learning does not move", Min: 4, Max: 4}, run: (*Daemon).fdbAdd},
		&verb{VerbInfo: VerbInfo{Name: "fdb/del", Usage: "BR VLAN MAC", Short: "Delete the static MAC entry of MAC in VLAN", Min: 3, Max: 3}, run: (*Daemon).fdbDel},
		&verb{VerbInfo: VerbInfo{Name: "fdb/flush", Usage: "[BR]", Short: "Forget the learned MAC addresses (of one bridge)", Max: 1}, run: (*Daemon).fdbFlush},
		&verb{VerbInfo: VerbInfo{Name: "fdb/stats-show", Usage: "BR", Short: "Print a bridge's MAC learning counters", Min: 1, Max: 1}, run: (*Daemon).fdbStatsShow},
		&verb{VerbInfo: VerbInfo{Name: "fdb/stats-clear", Usage: "[BR]", Short: "Zero what fdb/stats-show counts (of one bridge)", Max: 1}, run: (*Daemon).fdbStatsClear},
	)
}

// fdbShow lists the live entries in Open vSwitch's layout, oldest first
// as its least-recently-used list is (ties by port, VLAN and address).
func (d *Daemon) fdbShow(c *call) (string, error) {
	b, err := d.bridgeAsOVSLocked(c.args[0])
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
		fmt.Fprintf(&s, "%5s  %4d  %s  ", portNumber(e.Port), e.VLAN, net.HardwareAddr(e.MAC[:]))
		if e.Static {
			s.WriteString("static\n")
		} else {
			fmt.Fprintf(&s, "%3d\n", int(e.Age/time.Second))
		}
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
	bs, err := d.fdbSelect(c)
	if err != nil {
		return "", err
	}
	for _, b := range bs {
		b.dp.MACs().Flush()
	}
	return "table successfully flushed\n", nil
}

// fdbStatsShow prints the counters Open vSwitch's fdb/stats-show prints
// that the table keeps: it does not count the entries that age out.
func (d *Daemon) fdbStatsShow(c *call) (string, error) {
	b, err := d.bridgeAsOVSLocked(c.args[0])
	if err != nil {
		return "", err
	}
	t := b.dp.MACs()
	st, base := t.Stats(), b.macBaseline
	live, static := macEntries(t)
	var s strings.Builder
	fmt.Fprintf(&s, "Statistics for bridge \"%s\":\n", b.name)
	fmt.Fprintf(&s, "  Current/maximum MAC entries in the table: %d/%d\n", live, t.Cap())
	fmt.Fprintf(&s, "  Current static MAC entries in the table : %d\n", static)
	fmt.Fprintf(&s, "  Total number of learned MAC entries     : %d\n", st.Learned-base.Learned)
	fmt.Fprintf(&s, "  Total number of evicted MAC entries     : %d\n", st.Evicted-base.Evicted)
	fmt.Fprintf(&s, "  Total number of port moved MAC entries  : %d\n", st.Moved-base.Moved)
	return s.String(), nil
}

func (d *Daemon) fdbStatsClear(c *call) (string, error) {
	bs, err := d.fdbSelect(c)
	if err != nil {
		return "", err
	}
	for _, b := range bs {
		b.macBaseline = b.dp.MACs().Stats()
	}
	return "statistics successfully cleared\n", nil
}

// macEntries counts the table's live entries, and the static ones among
// them, in one pass over its slots.
func macEntries(t *flow.MACTable) (live, static int) {
	for e := range t.All(time.Now().UnixNano()) {
		live++
		if e.Static {
			static++
		}
	}
	return live, static
}

// fdbAdd is fdb/add BR PORT VLAN MAC. PORT is a port's name (the
// bridge's own name for its local port), as in Open vSwitch. Open
// vSwitch 3.1 takes any number as the VLAN (a word as 0) and keeps an
// entry no packet can match; ovsxdp refuses a VLAN outside 0-4095.
func (d *Daemon) fdbAdd(c *call) (string, error) {
	b, err := d.bridgeAsOVSLocked(c.args[0])
	if err != nil {
		return "", err
	}
	port := uint32(flow.PortLocal)
	if p, ok := b.dp.Port(c.args[1]); ok {
		port = p.OFPort
	} else if c.args[1] != b.name {
		return "", fmt.Errorf("no such port %s in bridge %s", c.args[1], b.name)
	}
	vlan, mac, err := fdbVLANMAC(c.args[2], c.args[3])
	if err != nil {
		return "", err
	}
	old, replaced, ok := b.dp.MACs().AddStatic(mac, vlan, port, time.Now().UnixNano())
	if !ok {
		return "", errors.New("could not add static mac entry")
	}
	if !replaced {
		return "", nil
	}
	kind := "dynamic"
	if old.Static {
		kind = "static"
	}
	return fmt.Sprintf("Overriding already existing %s entry on %d\n", kind, old.Port), nil
}

// fdbDel is fdb/del BR VLAN MAC: it deletes a static entry only.
func (d *Daemon) fdbDel(c *call) (string, error) {
	b, err := d.bridgeAsOVSLocked(c.args[0])
	if err != nil {
		return "", err
	}
	vlan, mac, err := fdbVLANMAC(c.args[1], c.args[2])
	if err != nil {
		return "", err
	}
	if !b.dp.MACs().DeleteStatic(mac, vlan) {
		return "", errors.New("could not find static mac entry")
	}
	return "", nil
}

// errNoSuchBridge is Open vSwitch's answer, in its fdb/ and dpif/
// commands, for a bridge that does not exist.
var errNoSuchBridge = errors.New("no such bridge")

// bridgeAsOVSLocked is the bridge (or datapath) called name, or Open
// vSwitch's errNoSuchBridge.
func (d *Daemon) bridgeAsOVSLocked(name string) (*bridge, error) {
	b, err := d.bridgeOrDatapathLocked(name)
	if err != nil {
		return nil, errNoSuchBridge
	}
	return b, nil
}

// fdbSelect is selectLocked with Open vSwitch's errNoSuchBridge.
func (d *Daemon) fdbSelect(c *call) ([]*bridge, error) {
	bs, err := d.selectLocked(c)
	if err != nil {
		return nil, errNoSuchBridge
	}
	return bs, nil
}

// fdbVLANMAC parses fdb/add's and fdb/del's VLAN and MAC: a VLAN ID from 0
// to 4095, and an Ethernet address as six hexadecimal bytes separated by
// colons, as Open vSwitch reads it ("bad MAC address" otherwise).
func fdbVLANMAC(vlanText, macText string) (uint16, [6]byte, error) {
	vlan, err := strconv.ParseUint(vlanText, 10, 16)
	if err != nil || vlan > flow.VLANVIDMask {
		return 0, [6]byte{}, fmt.Errorf("bad VLAN %q: want a VLAN ID from 0 to 4095", vlanText)
	}
	mac, ok := flow.ParseMAC(macText)
	if !ok {
		return 0, mac, errors.New("bad MAC address")
	}
	return uint16(vlan), mac, nil
}
