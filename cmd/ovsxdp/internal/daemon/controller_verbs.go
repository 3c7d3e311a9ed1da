package daemon

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The controller commands, as ovs-vsctl's: set-controller, del-controller,
// get-controller, set-fail-mode, del-fail-mode, get-fail-mode; and
// controller-status, which tells what ovs-vsctl list controller would.
func init() {
	register(
		&verb{VerbInfo: VerbInfo{Name: "set-controller", Usage: "BR TARGET...",
			Short: "Set a bridge's OpenFlow controllers (tcp:IP[:PORT], unix:PATH, ptcp:[PORT][:IP], punix:PATH)", Min: 2, Max: -1, Flags: []FlagInfo{
				{Name: "inactivity-probe", Usage: "milliseconds of silence before an echo request (default 5000, at least 5000; 0: no probes)"},
				{Name: "max-backoff", Usage: "most milliseconds between two connection attempts (default 8000, at least 1000)"},
			}}, changes: true, run: (*Daemon).setController},
		&verb{VerbInfo: VerbInfo{Name: "del-controller", Usage: "BR", Short: "Delete a bridge's controllers", Min: 1, Max: 1}, changes: true, run: (*Daemon).delController},
		&verb{VerbInfo: VerbInfo{Name: "get-controller", Usage: "BR", Short: "Print a bridge's controllers", Min: 1, Max: 1}, run: (*Daemon).getController},
		&verb{VerbInfo: VerbInfo{Name: "set-fail-mode", Usage: "BR standalone|secure", Short: "Set what a bridge does without a controller", Min: 2, Max: 2}, changes: true, run: (*Daemon).setFailMode},
		&verb{VerbInfo: VerbInfo{Name: "del-fail-mode", Usage: "BR", Short: "Unset a bridge's fail mode (standalone)", Min: 1, Max: 1}, changes: true, run: (*Daemon).delFailMode},
		&verb{VerbInfo: VerbInfo{Name: "get-fail-mode", Usage: "BR", Short: "Print a bridge's fail mode", Min: 1, Max: 1}, run: (*Daemon).getFailMode},
		&verb{VerbInfo: VerbInfo{Name: "controller-status", Usage: "BR", Short: "Print the state of a bridge's controller connections", Min: 1, Max: 1}, run: (*Daemon).controllerStatus},
	)
}

// msFlag reads a millisecond flag.
func msFlag(c *call, name string, def, least time.Duration, zeroOK bool) (time.Duration, error) {
	s, ok := c.flag(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--%s %s: want milliseconds", name, s)
	}
	d := time.Duration(n) * time.Millisecond
	if d == 0 && zeroOK {
		return 0, nil
	}
	return max(d, least), nil
}

func (d *Daemon) setController(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	probe, err := msFlag(c, "inactivity-probe", defaultProbe, minProbe, true)
	if err != nil {
		return "", fmt.Errorf("set-controller %s: %w", b.name, err)
	}
	backoff, err := msFlag(c, "max-backoff", defaultMaxBackoff, minBackoff, false)
	if err != nil {
		return "", fmt.Errorf("set-controller %s: %w", b.name, err)
	}
	cfg := d.controllersLocked(b.name)
	cfg.Specs = nil
	for _, t := range c.args[1:] {
		if _, err := parseTarget(t); err != nil {
			return "", fmt.Errorf("set-controller %s: %w", b.name, err)
		}
		if !slices.ContainsFunc(cfg.Specs, func(s ctlSpec) bool { return s.Target == t }) {
			cfg.Specs = append(cfg.Specs, ctlSpec{Target: t, Probe: probe, MaxBackoff: backoff})
		}
	}
	d.setControllersLocked(b.name, cfg)
	return "", nil
}

func (d *Daemon) delController(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	cfg := d.controllersLocked(b.name)
	cfg.Specs = nil
	d.setControllersLocked(b.name, cfg)
	return "", nil
}

func (d *Daemon) getController(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	var ts []string
	for _, s := range d.controllersLocked(b.name).Specs {
		ts = append(ts, s.Target)
	}
	slices.Sort(ts)
	return lines(ts), nil
}

func (d *Daemon) setFailMode(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	mode := c.args[1]
	if mode != failStandalone && mode != failSecure {
		return "", fmt.Errorf("set-fail-mode %s: fail mode must be \"standalone\" or \"secure\", not %q", b.name, mode)
	}
	cfg := d.controllersLocked(b.name)
	cfg.FailMode = mode
	d.setControllersLocked(b.name, cfg)
	return "", nil
}

func (d *Daemon) delFailMode(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	cfg := d.controllersLocked(b.name)
	cfg.FailMode = ""
	d.setControllersLocked(b.name, cfg)
	return "", nil
}

func (d *Daemon) getFailMode(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	if m := d.controllersLocked(b.name).FailMode; m != "" {
		return m + "\n", nil
	}
	return "", nil
}

func (d *Daemon) controllerStatus(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	sts := d.controllerStatuses(b.name)
	var out []string
	for _, t := range slices.Sorted(mapKeys(sts)) {
		st := sts[t]
		l := fmt.Sprintf("%s is_connected=%t state=%s", t, st.Connected, st.State)
		if st.Role != "" {
			l += " role=" + st.Role
		}
		if st.LastError != "" {
			l += " last_error=" + strconv.Quote(st.LastError)
		}
		out = append(out, l)
	}
	if len(out) > 0 {
		queued, dropped := b.dp.PacketInStats()
		var as struct{ Sent, Dropped uint64 }
		if st, ok := d.asyncStats(b.name); ok {
			as.Sent, as.Dropped = st.Sent, st.Dropped
		}
		out = append(out, fmt.Sprintf("packet ins: queued=%d dropped=%d; messages to connections: sent=%d dropped=%d", queued, dropped, as.Sent, as.Dropped))
	}
	return strings.Join(out, "\n") + strings.Repeat("\n", min(len(out), 1)), nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
