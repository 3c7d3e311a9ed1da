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
		&verb{VerbInfo: VerbInfo{Name: "dpctl/dump-conntrack", Usage: "[-m] [-s] [zone=N]", Short: "Print the tracked connections (of one zone; -m: with each TCP side's state, -s: with the seconds left before they time out)", Max: 3,
			Flags: []FlagInfo{
				{Name: "more", Shorthand: "m", Bool: true, Usage: "print each TCP side's state, window scale and flags, and the id and status"},
				{Name: "statistics", Shorthand: "s", Bool: true, Usage: "print the seconds left before each connection times out"},
			}}, run: (*Daemon).dumpConntrack},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/flush-conntrack", Usage: "[zone=N]", Short: "Delete the tracked connections (of one zone)", Max: 1}, run: (*Daemon).flushConntrack},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-stats-show", Usage: "[zone=N] [verbose]", Short: "Print the tracked connections' counts by protocol (verbose: and TCP state)", Max: 2}, run: (*Daemon).ctStatsShow},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-set-maxconns", Usage: "N", Short: "Set the most connections the tracker holds", Min: 1, Max: 1}, run: (*Daemon).ctSetMaxconns},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-get-maxconns", Short: "Print the most connections the tracker holds", Max: 0}, run: (*Daemon).ctGetMaxconns},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-get-nconns", Short: "Print the number of tracked connections", Max: 0}, run: (*Daemon).ctGetNconns},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-set-limits", Usage: "[default=N] [zone=N,limit=M]...", Short: "Set the default and per-zone connection limits (0: none)", Min: 1, Max: -1}, run: (*Daemon).ctSetLimits},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-get-limits", Usage: "[zone=N[,N]...]", Short: "Print the default and per-zone connection limits with the zones' counts", Max: 1}, run: (*Daemon).ctGetLimits},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ct-del-limits", Usage: "zone=N[,N]...", Short: "Delete per-zone connection limits", Min: 1, Max: 1}, run: (*Daemon).ctDelLimits},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ipf-set-enabled", Usage: "v4|v6", Short: "Reassemble the fragments of IPv4 or IPv6 packets before ct tracks them", Min: 1, Max: 1}, run: (*Daemon).ipfSetEnabled},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ipf-set-disabled", Usage: "v4|v6", Short: "Stop reassembling IPv4 or IPv6 fragments (ct then tracks each as it is: +trk+inv)", Min: 1, Max: 1}, run: (*Daemon).ipfSetDisabled},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ipf-set-min-frag", Usage: "v4|v6 N", Short: "Set the smallest fragment, not the last, that reassembly takes (at least 400 bytes)", Min: 2, Max: 2}, run: (*Daemon).ipfSetMinFrag},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ipf-set-max-nfrags", Usage: "N", Short: "Set how many fragments reassembly holds at most (0 to 5000)", Min: 1, Max: 1}, run: (*Daemon).ipfSetMaxNfrags},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/ipf-get-status", Usage: "[-m]", Short: "Print the fragment reassembly settings and counts (-m: and the packets whose fragments are held)", Max: 1,
			Flags: []FlagInfo{{Name: "more", Shorthand: "m", Bool: true, Usage: "print the packets whose fragments are held"}}}, run: (*Daemon).ipfGetStatus},
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
	// The switches come as flags from the command line, as arguments
	// from an ovs-appctl-style request.
	v, _ := c.flag("more")
	st, _ := c.flag("statistics")
	verbose, stats := v == "true", st == "true"
	var rest []string
	for _, a := range c.args {
		switch a {
		case "-m", "--more":
			verbose = true
		case "-s", "--statistics":
			stats = true
		default:
			rest = append(rest, a)
		}
	}
	zone, _, err := ctArgs(rest, false)
	if err != nil {
		return "", err
	}
	var lines []string
	now := datapath.ConntrackNow()
	for e := range d.ct.Dump(now, zone) {
		lines = append(lines, e.Format(verbose, stats, now))
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

// ipfVersion reads the v4|v6 argument of the ipf commands.
func ipfVersion(a string) (v6 bool, err error) {
	switch a {
	case "v4":
		return false, nil
	case "v6":
		return true, nil
	}
	return false, fmt.Errorf("%w: parameter missing: 'v4' for IPv4 or 'v6' for IPv6, not %q", ErrUsage, a)
}

func (d *Daemon) ipfSetEnabled(c *call) (string, error) {
	v6, err := ipfVersion(c.args[0])
	if err != nil {
		return "", err
	}
	d.defrag.SetEnabled(v6, true)
	return "enabling fragmentation reassembly successful\n", nil
}

func (d *Daemon) ipfSetDisabled(c *call) (string, error) {
	v6, err := ipfVersion(c.args[0])
	if err != nil {
		return "", err
	}
	d.defrag.SetEnabled(v6, false)
	return "disabling fragmentation reassembly successful\n", nil
}

func (d *Daemon) ipfSetMinFrag(c *call) (string, error) {
	v6, err := ipfVersion(c.args[0])
	if err != nil {
		return "", err
	}
	n, err := strconv.ParseUint(c.args[1], 10, 32)
	if err != nil {
		return "", fmt.Errorf("%w: minimum fragment size %q is not a number", ErrUsage, c.args[1])
	}
	if err := d.defrag.SetMinFragSize(v6, int(n)); err != nil {
		return "", fmt.Errorf("requested minimum fragment size too small: %w", err)
	}
	return "setting minimum fragment size successful\n", nil
}

func (d *Daemon) ipfSetMaxNfrags(c *call) (string, error) {
	n, err := strconv.ParseUint(c.args[0], 10, 32)
	if err != nil {
		return "", fmt.Errorf("%w: maximum fragments %q is not a number", ErrUsage, c.args[0])
	}
	if err := d.defrag.SetMaxFrags(int(min(n, 1<<31))); err != nil {
		return "", fmt.Errorf("setting maximum fragments failed: %w", err)
	}
	return "setting maximum fragments successful\n", nil
}

func (d *Daemon) ipfGetStatus(c *call) (string, error) {
	v, _ := c.flag("more")
	more := v == "true"
	if len(c.args) == 1 {
		if c.args[0] != "-m" && c.args[0] != "--more" {
			return "", fmt.Errorf("%w: %q is not -m", ErrUsage, c.args[0])
		}
		more = true
	}
	s := d.defrag.Status()
	if more {
		s += "\n        Fragment Lists:\n\n"
		for _, l := range d.defrag.Lists() {
			s += l + "\n"
		}
	}
	return s, nil
}

// FlushConntrackZone implements ofconn.ConntrackFlusher: NXT_CT_FLUSH_ZONE
// (ovs-ofctl ct-flush-zone) flushes the zone in the daemon's tracker,
// which the bridges share.
func (o *ofBridge) FlushConntrackZone(zone uint16) {
	o.d.ct.Flush(int(zone))
}
