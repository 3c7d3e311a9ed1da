package daemon

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/vport"
)

// The datapaths as ovs-appctl's dpif/show, dpctl/show and ofproto/list
// show Open vSwitch's. Each ovsxdp bridge is its own datapath, named
// ovsxdp@BRIDGE, and its ports' datapath numbers are their OpenFlow
// numbers.
func init() {
	register(
		&verb{VerbInfo: VerbInfo{Name: "dpif/show", Short: "Print each bridge's datapath: its lookups and its ports, with their OpenFlow and datapath numbers and types", Max: 0}, run: (*Daemon).dpifShow},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/show", Usage: "[BR]", Short: "Print the datapaths (of one bridge): lookups, megaflows and ports", Max: 1,
			Flags: []FlagInfo{{Name: "statistics", Shorthand: "s", Bool: true, Usage: "with each port's packet and byte counters"}}}, run: (*Daemon).dpctlShow},
		&verb{VerbInfo: VerbInfo{Name: "ofproto/list", Short: "Print the bridges' names", Max: 0}, run: (*Daemon).ofprotoList},
	)
}

// dpName is the datapath's name as dpif/show heads it (Open vSwitch's is
// TYPE@NAME, netdev@ovs-netdev).
func dpName(b *bridge) string { return "ovsxdp@" + b.name }

// lookups adds up the poll threads' lookups: hit in a cache (exact match
// or megaflow), missed (an upcall), and lost (malformed, not classified).
func lookups(b *bridge) (hit, missed, lost uint64) {
	for _, st := range b.dp.PMDStats() {
		hit += st.EMCHits + st.MegaflowHit
		missed += st.Upcalls
		lost += st.Lost
	}
	return hit, missed, lost
}

// dpPorts are the bridge's ports in its datapath, by name.
func dpPorts(b *bridge) []*datapath.Port {
	ps := b.dp.Ports()
	slices.SortFunc(ps, func(x, y *datapath.Port) int { return strings.Compare(x.Name, y.Name) })
	return ps
}

// dpPortType is a port's type and configuration as dpif/show writes them
// in parentheses: "afxdp: n_rxq=1, use-need-wakeup=true, xdp-mode=...,
// xdp-mode-in-use=native" as Open vSwitch writes its AF_XDP ports', "tap"
// for an internal port, else the type and its options.
func dpPortType(b *bridge, p *datapath.Port) string {
	var opts map[string]string
	typ := ""
	if pc := b.ports[p.Name]; pc != nil {
		typ, opts = pc.Type, pc.Options
	}
	switch vp := p.VPort().(type) {
	case *vport.XSKPort:
		inUse := vp.Mode().String()
		if vp.Info().ZeroCopy {
			inUse += "-with-zerocopy"
		}
		return fmt.Sprintf("afxdp: n_rxq=%d, use-need-wakeup=%t, xdp-mode=%s, xdp-mode-in-use=%s",
			vp.RxQueues(), vp.Info().NeedWakeup, cmp.Or(opts["xdp-mode"], "best-effort"), inUse)
	case *vport.TapPort:
		return "tap"
	}
	if len(opts) == 0 {
		return typ
	}
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		kv = append(kv, k+"="+opts[k])
	}
	return typ + ": " + strings.Join(kv, ", ")
}

func (d *Daemon) dpifShow(*call) (string, error) {
	var s strings.Builder
	for _, b := range d.sortedLocked() {
		hit, missed, _ := lookups(b)
		fmt.Fprintf(&s, "%s: hit:%d missed:%d\n  %s:\n", dpName(b), hit, missed, b.name)
		for _, p := range dpPorts(b) {
			fmt.Fprintf(&s, "    %s %d/%d: (%s)\n", p.Name, p.OFPort, p.OFPort, dpPortType(b, p))
		}
	}
	return s.String(), nil
}

func (d *Daemon) dpctlShow(c *call) (string, error) {
	bs, err := d.selectLocked(c)
	if err != nil {
		return "", err
	}
	live, err := liveMegaflows(c, bs, "dpctl/show")
	if err != nil {
		return "", err
	}
	var s strings.Builder
	for i, b := range bs {
		hit, missed, lost := lookups(b)
		fmt.Fprintf(&s, "%s:\n  lookups: hit:%d missed:%d lost:%d\n  flows: %d\n", dpName(b), hit, missed, lost, len(live[i]))
		ps := b.dp.Ports()
		slices.SortFunc(ps, func(x, y *datapath.Port) int { return cmp.Compare(x.OFPort, y.OFPort) })
		for _, p := range ps {
			fmt.Fprintf(&s, "  port %d: %s (%s)\n", p.OFPort, p.Name, dpPortType(b, p))
			if !c.boolFlag("statistics") {
				continue
			}
			// The counters ovsxdp does not keep are "?", as Open
			// vSwitch writes those its ports do not keep.
			st := p.Stats()
			fmt.Fprintf(&s, "    RX packets:%d errors:? dropped:%d overruns:? frame:?\n", st.RxPackets, st.RxDropped())
			fmt.Fprintf(&s, "    TX packets:%d errors:? dropped:%d aborted:? carrier:?\n", st.TxPackets, st.TxDropped())
			fmt.Fprintf(&s, "    collisions:?\n")
			fmt.Fprintf(&s, "    RX bytes:%d  TX bytes:%d\n", st.RxBytes, st.TxBytes)
		}
	}
	return s.String(), nil
}

func (d *Daemon) ofprotoList(*call) (string, error) {
	var s strings.Builder
	for _, b := range d.sortedLocked() {
		s.WriteString(b.name + "\n")
	}
	return s.String(), nil
}
