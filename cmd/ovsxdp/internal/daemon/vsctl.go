package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// maxOFPort is the highest OpenFlow port number a port may ask for.
const maxOFPort = datapath.MaxOFPort

// maxPMDs bounds a bridge's poll threads.
const maxPMDs = 64

// validName is what bridge and port names may look like: what a Linux
// interface name may be, and nothing that needs quoting.
var validName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,62}$`)

func checkName(what, name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid %s name %q (letters, digits, '_', '.', ':' and '-', at most 63)", what, flow.Clipped(name))
	}
	return nil
}

// The commands modelled on ovs-vsctl.
func init() {
	register(
		&verb{VerbInfo: VerbInfo{Name: "add-br", Usage: "BR", Short: "Add a bridge and its LOCAL port (an internal port named as the bridge)", Min: 1, Max: 1, Flags: []FlagInfo{
			{Name: "policy", Usage: "output policy: guarded (default), legacy, carrier or upstream"},
			{Name: "pmds", Usage: "number of poll threads (default 1)"},
			{Name: "idle", Usage: "what idle poll threads do: adaptive (default: nap under light load, sleep when idle), spin (busy-poll a CPU each) or sleep"},
			{Name: "gro", Usage: "on (default) or off: send runs of one TCP connection's segments or one UDP flow's datagrams to AF_XDP ports as one GSO packet"},
			{Name: "spare-spin", Usage: "adaptive threads: how long to keep polling after the last packet while other threads leave it the CPU, before sleeping (default 20ms; off or 0: sleep 50µs after it)"},
		}}, changes: true, run: (*Daemon).addBr},
		&verb{VerbInfo: VerbInfo{Name: "del-br", Usage: "BR", Short: "Delete a bridge and its ports", Min: 1, Max: 1}, changes: true, run: (*Daemon).delBr},
		&verb{VerbInfo: VerbInfo{Name: "add-port", Usage: "BR IFACE [type=mem|pcap|afxdp] [ofport=N] [OPTION=VALUE...]",
			Short: "Add a port (mem: rxq= txq= ring= record-rxq=; pcap: read= write= loop= rate= record-rxq=; afxdp: rxq= (0: every queue) xdp-mode= frames= ring=)",
			Min:   2, Max: -1}, changes: true, run: (*Daemon).addPort},
		&verb{VerbInfo: VerbInfo{Name: "del-port", Usage: "BR IFACE", Short: "Delete a port", Min: 2, Max: 2}, changes: true, run: (*Daemon).delPort},
		&verb{VerbInfo: VerbInfo{Name: "list-br", Short: "List the bridges", Max: 0}, run: (*Daemon).listBr},
		&verb{VerbInfo: VerbInfo{Name: "list-ports", Usage: "BR", Short: "List a bridge's ports", Min: 1, Max: 1}, run: (*Daemon).listPorts},
		&verb{VerbInfo: VerbInfo{Name: "show", Short: "Show the configuration as a tree", Max: 0}, run: (*Daemon).show},
	)
}

func (d *Daemon) addBr(c *call) (string, error) {
	name := c.args[0]
	pol := datapath.Guarded
	if s, ok := c.flag("policy"); ok {
		p, err := datapath.ParsePolicy(s)
		if err != nil {
			return "", fmt.Errorf("add-br %s: %w", name, err)
		}
		pol = p
	}
	pmds := 1
	if s, ok := c.flag("pmds"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPMDs {
			return "", fmt.Errorf("add-br %s: --pmds %s: want a number from 1 to %d", name, s, maxPMDs)
		}
		pmds = n
	}
	idle := datapath.IdleAdaptive
	if s, ok := c.flag("idle"); ok {
		st, err := datapath.ParseIdleStrategy(s)
		if err != nil {
			return "", fmt.Errorf("add-br %s: %w", name, err)
		}
		idle = st
	}
	gro := true
	if s, ok := c.flag("gro"); ok {
		on, err := parseOnOff(s)
		if err != nil {
			return "", fmt.Errorf("add-br %s: --gro %w", name, err)
		}
		gro = on
	}
	var spare time.Duration
	if s, ok := c.flag("spare-spin"); ok {
		v, err := parseSpareSpin(s)
		if err != nil {
			return "", fmt.Errorf("add-br %s: --spare-spin %w", name, err)
		}
		spare = v
	}
	// The bridge's LOCAL port is named as the bridge: as ovs-vsctl, no
	// bridge takes the name of a port.
	for _, other := range d.bridges {
		if other.ports[name] != nil {
			return "", fmt.Errorf("add-br %s: cannot create a bridge named %s because a port named %s already exists on bridge %s", name, name, name, other.name)
		}
	}
	b, err := d.addBridgeLocked(datapath.Config{Name: name, Policy: pol, PMDs: pmds, Idle: idle, DisableGRO: !gro, SpareSpin: spare})
	if err != nil {
		return "", err
	}
	if !d.cfg.NoLocalPort {
		d.addLocalPortLocked(b)
	}
	return "", nil
}

// maxSpareSpin bounds --spare-spin.
const maxSpareSpin = 10 * time.Second

// parseSpareSpin parses a --spare-spin value ("off", or a duration such as
// 20ms, 0 meaning off) into datapath.Config.SpareSpin.
func parseSpareSpin(s string) (time.Duration, error) {
	if s == "off" {
		return -1, nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q: want a duration such as 20ms, or off", flow.Clipped(s))
	case d < 0 || d > maxSpareSpin:
		return 0, fmt.Errorf("%q: want 0 (off) to %v", flow.Clipped(s), maxSpareSpin)
	case d == 0:
		return -1, nil
	}
	return d, nil
}

// spareSpinName names a bridge's spare-spin setting as parseSpareSpin
// reads it.
func spareSpinName(d time.Duration) string {
	if d == 0 {
		return "off"
	}
	return d.String()
}

// parseOnOff parses an on/off option value.
func parseOnOff(s string) (bool, error) {
	switch s {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("%q: want on or off", flow.Clipped(s))
}

// onOff names a boolean option value.
func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// addBridgeLocked creates and starts a bridge. d.mu must be held.
func (d *Daemon) addBridgeLocked(cfg datapath.Config) (*bridge, error) {
	name, pmds := cfg.Name, cfg.PMDs
	if err := checkName("bridge", name); err != nil {
		return nil, err
	}
	if d.bridges[name] != nil {
		return nil, fmt.Errorf("bridge %s: %w", name, ErrBridgeExists)
	}
	if pmds < 1 || pmds > maxPMDs {
		return nil, fmt.Errorf("bridge %s: %d pmds, want 1 to %d", name, pmds, maxPMDs)
	}
	cfg.Log = d.log.With("bridge", name)
	if cfg.Conntrack == nil {
		cfg.Conntrack = d.ct
		cfg.Defrag = d.defrag
	}
	if cfg.Tunnels == nil {
		cfg.Tunnels = d.tunnels
	}
	cfg.Threads = d.threads
	dp, err := datapath.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := dp.Start(); err != nil {
		dp.Close()
		return nil, fmt.Errorf("bridge %s: %w", name, err)
	}
	b := &bridge{name: name, dp: dp, pmds: pmds, ports: map[string]*portConfig{}}
	d.bridges[name] = b
	d.log.Info("bridge added", "bridge", name, "policy", cfg.Policy, "pmds", pmds, "idle", cfg.Idle, "gro", onOff(dp.GRO()), "spare-spin", spareSpinName(dp.SpareSpin()))
	return b, nil
}

func (d *Daemon) delBr(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	delete(d.bridges, b.name)
	for name := range b.ports {
		d.forgetPortLocked(b, name)
	}
	if err := b.dp.Close(); err != nil {
		return "", fmt.Errorf("del-br %s: %w", b.name, err)
	}
	d.log.Info("bridge deleted", "bridge", b.name)
	return "", nil
}

func (d *Daemon) addPort(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	pc, err := parsePortArgs(c.args[1], c.args[2:])
	if err != nil {
		return "", err
	}
	return "", d.addPortLocked(b, pc, false)
}

// addPortLocked creates the port pc describes and adds it to b. Port names
// are unique over all bridges, as in Open vSwitch. An AF_XDP port's link
// is followed by the bridge; when restoring, a port whose device does not
// exist stays configured with its error and is attached when the device
// appears, as Open vSwitch keeps such an Interface (add-port refuses it
// instead, so that a mistyped name is not saved). An internal port named
// as the bridge is the bridge's LOCAL port. d.mu must be held.
func (d *Daemon) addPortLocked(b *bridge, pc *portConfig, restoring bool) error {
	if err := checkName("port", pc.Name); err != nil {
		return err
	}
	for _, other := range d.bridges {
		if other.ports[pc.Name] != nil {
			return fmt.Errorf("port %s: already on bridge %s", pc.Name, other.name)
		}
	}
	if pc.Type == typeInternal && pc.Name == b.name {
		// The bridge's own internal port is its LOCAL port, as in Open
		// vSwitch.
		pc.OFPort = flow.PortLocal
	}
	if _, taken := b.dp.PortByOF(pc.OFPort); pc.OFPort != 0 && taken {
		return fmt.Errorf("port %s: ofport %d is taken on bridge %s", pc.Name, pc.OFPort, b.name)
	}
	saved := *pc
	if pc.Type == typeAFXDP {
		ofport, err := b.dp.AddLinkPort(datapath.LinkPort{
			Name:      pc.Name,
			OFPort:    pc.OFPort,
			Open:      func() (vport.Port, error) { return newVPort(&saved, d.log, nil, false, d.tapOwner()) },
			MustExist: !restoring,
		})
		switch {
		case errors.Is(err, datapath.ErrNoDevice):
			d.log.Warn("port configured; its device is missing, it is attached when the device appears", "bridge", b.name, "port", pc.Name, "ofport", ofport, "err", err)
		case err != nil:
			return fmt.Errorf("port %s: %w", pc.Name, err)
		}
		saved.OFPort = ofport
	} else {
		var gone func()
		if pc.Type == typeInternal {
			gone = d.internalGone(b.name, &saved)
		}
		vp, err := newVPort(pc, d.log, gone, restoring, d.tapOwner())
		if err != nil {
			return fmt.Errorf("port %s: %w", pc.Name, &deviceError{err})
		}
		p, err := b.dp.AddPort(vp, pc.OFPort)
		if err != nil {
			if tp, ok := vp.(*vport.TapPort); ok && restoring {
				tp.Keep() // the device it took up stays as it was
			}
			vp.Close()
			return err
		}
		saved.OFPort = p.OFPort
	}
	b.ports[pc.Name] = &saved
	d.log.Info("port added", "bridge", b.name, "port", pc.Name, "type", pc.Type, "ofport", saved.OFPort)
	d.tunnelsChangedLocked(pc.Type)
	return nil
}

// sortedPorts returns b's configured ports, attached or not, by OpenFlow
// port number. Daemon.mu must be held.
func (b *bridge) sortedPorts() []*portConfig {
	out := slices.Collect(maps.Values(b.ports))
	slices.SortFunc(out, func(x, y *portConfig) int { return cmp.Compare(x.OFPort, y.OFPort) })
	return out
}

func (d *Daemon) delPort(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	name := c.args[1]
	pc := b.ports[name]
	if pc == nil {
		return "", fmt.Errorf("bridge %s: no port named %s", b.name, name)
	}
	if pc.OFPort == flow.PortLocal {
		return "", fmt.Errorf("cannot delete port %s because it is the local port for bridge %s (deleting this port requires deleting the entire bridge)", name, b.name)
	}
	if pc.err == "" { // else it is not on the bridge (keepFailedLocked)
		ctx, cancel := context.WithTimeout(c.ctx, removeTimeout)
		defer cancel()
		if _, err := b.dp.RemovePort(ctx, name); err != nil {
			return "", err
		}
	}
	d.forgetPortLocked(b, name)
	d.log.Info("port deleted", "bridge", b.name, "port", name)
	d.tunnelsChangedLocked(pc.Type)
	return "", nil
}

// forgetPortLocked drops a removed port's configuration. d.mu must be
// held.
func (d *Daemon) forgetPortLocked(b *bridge, name string) {
	delete(b.ports, name)
}

func (d *Daemon) listBr(*call) (string, error) {
	var names []string
	for _, b := range d.sortedLocked() {
		names = append(names, b.name)
	}
	return lines(names), nil
}

func (d *Daemon) listPorts(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	// As ovs-vsctl, without the bridge's LOCAL port.
	names := slices.DeleteFunc(slices.Sorted(maps.Keys(b.ports)), func(n string) bool { return n == b.name })
	return lines(names), nil
}

// show prints the configuration as a tree, in the manner of ovs-vsctl show.
func (d *Daemon) show(*call) (string, error) {
	var s strings.Builder
	for _, b := range d.sortedLocked() {
		fmt.Fprintf(&s, "    Bridge %s\n", b.name)
		fmt.Fprintf(&s, "        datapath_type: ovsxdp\n")
		fmt.Fprintf(&s, "        policy: %s\n", b.dp.Policy())
		fmt.Fprintf(&s, "        pmds: %d\n", b.pmds)
		fmt.Fprintf(&s, "        idle: %s\n", b.dp.Idle())
		fmt.Fprintf(&s, "        gro: %s\n", onOff(b.dp.GRO()))
		fmt.Fprintf(&s, "        spare-spin: %s\n", spareSpinName(b.dp.SpareSpin()))
		detached := map[string]error{}
		for _, dp := range b.dp.Detached() {
			detached[dp.Name] = dp.Err
		}
		for _, pc := range b.sortedPorts() {
			fmt.Fprintf(&s, "        Port %s\n", pc.Name)
			fmt.Fprintf(&s, "            Interface %s\n", pc.Name)
			fmt.Fprintf(&s, "                type: %s\n", pc.Type)
			if len(pc.Options) > 0 {
				fmt.Fprintf(&s, "                options: %s\n", ovsdbMap(pc.Options))
			}
			// A port waiting for its device shows the error as
			// ovs-vsctl shows an Interface's error column.
			if err, ok := detached[pc.Name]; ok {
				fmt.Fprintf(&s, "                error: %s\n", strconv.Quote(err.Error()))
			} else if pc.err != "" {
				fmt.Fprintf(&s, "                error: %s\n", strconv.Quote(pc.err))
			}
			fmt.Fprintf(&s, "                ofport: %d\n", pc.OFPort)
			state := "down"
			if p, ok := b.dp.Port(pc.Name); ok {
				state = linkState(p)
			}
			fmt.Fprintf(&s, "                link_state: %s\n", state)
		}
	}
	return s.String(), nil
}

// linkState is "up" when the port's device is registered, running and has
// carrier, as OVS reports a link, and "down" otherwise.
func linkState(p *datapath.Port) string {
	st := p.VPort().Device().Snapshot()
	if st.Running() && st.Carrier() {
		return "up"
	}
	return "down"
}

// ovsdbMap writes a string map as ovs-vsctl prints one: {k=v, k2="2"},
// keys sorted, values quoted unless they read as a plain identifier.
func ovsdbMap(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, ovsdbString(k)+"="+ovsdbString(m[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

var bareString = regexp.MustCompile(`^[A-Za-z_][A-Za-z_.-]*$`)

func ovsdbString(s string) string {
	if bareString.MatchString(s) && s != "true" && s != "false" {
		return s
	}
	return strconv.Quote(s)
}

// parser returns a flow parser that knows the bridge's port names.
func (b *bridge) parser() *flow.Parser {
	return &flow.Parser{PortNames: func(name string) (uint32, bool) {
		if p, ok := b.dp.Port(name); ok {
			return p.OFPort, true
		}
		// A configured port waiting for its device keeps its number.
		if pc := b.ports[name]; pc != nil {
			return pc.OFPort, true
		}
		return 0, false
	}, TLV: b.dp.Table().TLVMap()}
}
