package daemon

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/datapath/conntrack"
)

// The connection tracker's commands, named and printed as Open vSwitch's
// dpctl/* commands for the userspace datapath. The daemon has one tracker,
// shared by its bridges, as Open vSwitch's netdev bridges share their
// datapath's; the datapath argument Open vSwitch takes first is not taken.
func init() {
	register(
		&verb{VerbInfo: VerbInfo{Name: "dpctl/dump-conntrack", Usage: "[zone=N]", Short: "Print the tracked connections (of one zone)", Max: 1}, run: (*Daemon).dumpConntrack},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/flush-conntrack", Usage: "[zone=N]", Short: "Delete the tracked connections (of one zone)", Max: 1}, run: (*Daemon).flushConntrack},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-stats-show", Usage: "[zone=N] [verbose]", Short: "Print the tracked connections' counts by protocol (verbose: and TCP state)", Max: 2}, run: (*Daemon).ctStatsShow},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-set-maxconns", Usage: "N", Short: "Set the most connections the tracker holds", Min: 1, Max: 1}, run: (*Daemon).ctSetMaxconns},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-get-maxconns", Short: "Print the most connections the tracker holds", Max: 0}, run: (*Daemon).ctGetMaxconns},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-get-nconns", Short: "Print the number of tracked connections", Max: 0}, run: (*Daemon).ctGetNconns},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-set-limits", Usage: "[default=N] [zone=N,limit=M]...", Short: "Set the default and per-zone connection limits (0: none)", Min: 1, Max: -1}, run: (*Daemon).ctSetLimits},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-get-limits", Usage: "[zone=N[,N]...]", Short: "Print the default and per-zone connection limits with the zones' counts", Max: 1}, run: (*Daemon).ctGetLimits},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-del-limits", Usage: "zone=N[,N]...", Short: "Delete per-zone connection limits", Min: 1, Max: 1}, run: (*Daemon).ctDelLimits},
	)
}

// ctArgs reads the zone=N and verbose arguments of the conntrack commands.
func ctArgs(args []string, verboseOK bool) (zone int, verbose bool, err error) {
	zone = conntrack.AllZones
	for _, a := range args {
		switch {
		case a == "verbose" && verboseOK:
			verbose = true
		case strings.HasPrefix(a, "zone=") && zone == conntrack.AllZones:
			z, err := parseZone(strings.TrimPrefix(a, "zone="))
			if err != nil {
				return 0, false, err
			}
			zone = int(z)
		default:
			return 0, false, fmt.Errorf("%w: %q is not zone=N", ErrUsage, a)
		}
	}
	return zone, verbose, nil
}

func parseZone(s string) (uint16, error) {
	z, err := strconv.ParseUint(s, 0, 16)
	if err != nil {
		return 0, fmt.Errorf("%w: zone %q is not a number from 0 to 65535", ErrUsage, s)
	}
	return uint16(z), nil
}

func (d *Daemon) dumpConntrack(c *call) (string, error) {
	zone, _, err := ctArgs(c.args, false)
	if err != nil {
		return "", err
	}
	var lines []string
	for e := range d.ct.Dump(datapath.ConntrackNow(), zone) {
		lines = append(lines, e.String())
	}
	// Open vSwitch prints in hash order; sorted is as good and stable.
	slices.Sort(lines)
	var s strings.Builder
	for _, l := range lines {
		s.WriteString(l + "\n")
	}
	return s.String(), nil
}

func (d *Daemon) flushConntrack(c *call) (string, error) {
	zone, _, err := ctArgs(c.args, false)
	if err != nil {
		return "", err
	}
	d.ct.Flush(zone)
	return "", nil
}

func (d *Daemon) ctStatsShow(c *call) (string, error) {
	zone, verbose, err := ctArgs(c.args, true)
	if err != nil {
		return "", err
	}
	return d.ct.Stats(datapath.ConntrackNow(), zone).Format(verbose), nil
}

func (d *Daemon) ctSetMaxconns(c *call) (string, error) {
	n, err := strconv.ParseUint(c.args[0], 10, 32)
	if err != nil {
		return "", fmt.Errorf("%w: maxconns %q is not a number from 0 to 4294967295", ErrUsage, c.args[0])
	}
	d.ct.SetMaxConns(uint32(n))
	return "setting maxconns successful\n", nil
}

func (d *Daemon) ctGetMaxconns(*call) (string, error) {
	return strconv.FormatUint(uint64(d.ct.MaxConns()), 10) + "\n", nil
}

func (d *Daemon) ctGetNconns(*call) (string, error) {
	return strconv.Itoa(d.ct.Len()) + "\n", nil
}

// ctSetLimits reads every argument before it changes anything, so that a
// bad one changes nothing.
func (d *Daemon) ctSetLimits(c *call) (string, error) {
	def, setDef := uint32(0), false
	var zones []conntrack.ZoneLimit
	for _, a := range c.args {
		if v, ok := strings.CutPrefix(a, "default="); ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return "", fmt.Errorf("%w: default limit %q is not a number", ErrUsage, v)
			}
			def, setDef = uint32(n), true
			continue
		}
		zs, rest, ok := strings.Cut(a, ",")
		zv, zok := strings.CutPrefix(zs, "zone=")
		lv, lok := strings.CutPrefix(rest, "limit=")
		if !ok || !zok || !lok {
			return "", fmt.Errorf("%w: %q is neither default=N nor zone=N,limit=M", ErrUsage, a)
		}
		z, err := parseZone(zv)
		if err != nil {
			return "", err
		}
		n, err := strconv.ParseUint(lv, 10, 32)
		if err != nil {
			return "", fmt.Errorf("%w: limit %q is not a number", ErrUsage, lv)
		}
		zones = append(zones, conntrack.ZoneLimit{Zone: z, Limit: uint32(n)})
	}
	if setDef {
		d.ct.SetDefaultZoneLimit(def)
	}
	for _, z := range zones {
		if err := d.ct.SetZoneLimit(z.Zone, z.Limit); err != nil {
			return "", err
		}
	}
	return "", nil
}

// zoneList reads zone=N[,N]...
func zoneList(a string) ([]uint16, error) {
	v, ok := strings.CutPrefix(a, "zone=")
	if !ok {
		return nil, fmt.Errorf("%w: %q is not zone=N[,N]...", ErrUsage, a)
	}
	var zones []uint16
	for _, s := range strings.Split(v, ",") {
		z, err := parseZone(s)
		if err != nil {
			return nil, err
		}
		zones = append(zones, z)
	}
	return zones, nil
}

func (d *Daemon) ctGetLimits(c *call) (string, error) {
	var zones []uint16
	if len(c.args) == 1 {
		var err error
		if zones, err = zoneList(c.args[0]); err != nil {
			return "", err
		}
	}
	return conntrack.FormatZoneLimits(d.ct.DefaultZoneLimit(), d.ct.ZoneLimits(zones...)) + "\n", nil
}

func (d *Daemon) ctDelLimits(c *call) (string, error) {
	zones, err := zoneList(c.args[0])
	if err != nil {
		return "", err
	}
	for _, z := range zones {
		d.ct.DeleteZoneLimit(z)
	}
	return "", nil
}

// FlushConntrackZone implements ofconn.ConntrackFlusher: NXT_CT_FLUSH_ZONE
// (ovs-ofctl ct-flush-zone) flushes the zone in the daemon's tracker,
// which the bridges share.
func (o *ofBridge) FlushConntrackZone(zone uint16) {
	o.d.ct.Flush(int(zone))
}
