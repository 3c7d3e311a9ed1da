package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// Port types.
const (
	typeMem   = "mem"
	typePcap  = "pcap"
	typeAFXDP = "afxdp"
	// typeInternal is a TAP device the port creates, as Open vSwitch's
	// internal ports in its userspace datapath.
	typeInternal = "internal"
)

// portConfig is how a port was added: what the state file keeps.
type portConfig struct {
	Name    string            `json:"name"`
	Type    string            `json:"type"`
	OFPort  uint32            `json:"ofport"`
	Options map[string]string `json:"options,omitempty"`
	// err is why the port is configured but not on its bridge: an
	// internal port whose device could not be made (keepFailedLocked),
	// as Open vSwitch sets an Interface's error. Not saved: the next
	// start tries again.
	err string
}

// deviceError is the error of a port whose device could not be made or
// taken up; an internal port stays configured with it when the daemon
// makes the port itself (a bridge's LOCAL port, a restore).
type deviceError struct{ err error }

func (e *deviceError) Error() string { return e.err.Error() }
func (e *deviceError) Unwrap() error { return e.err }

// keepFailedLocked keeps pc configured on b, off the bridge, with err as
// its error: show lists it with it, the state file keeps it, del-port
// forgets it, and the next start tries again. d.mu must be held.
func (d *Daemon) keepFailedLocked(b *bridge, pc *portConfig, err error) {
	saved := *pc
	saved.err = err.Error()
	b.ports[pc.Name] = &saved
	d.log.Error("port configured; its device could not be made", "bridge", b.name, "port", pc.Name, "type", pc.Type, "ofport", pc.OFPort, "err", err)
}

// addLocalPortLocked gives the new bridge b its LOCAL port, OpenFlow port
// 65534, an internal port named as the bridge, as ovs-vsctl add-br does.
// A device that cannot be made leaves the port configured with its error
// (keepFailedLocked): the bridge is there all the same. d.mu must be
// held.
func (d *Daemon) addLocalPortLocked(b *bridge) {
	pc := &portConfig{Name: b.name, Type: typeInternal, OFPort: flow.PortLocal}
	if err := d.addPortLocked(b, pc, false); err != nil {
		d.keepFailedLocked(b, pc, err)
	}
}

// newVPort creates the port that pc describes. It is the one place that
// knows the port types and their options. Ports log to log. gone, if not
// nil, is called (on a goroutine of the port's) when the kernel
// unregisters the device of a port that owns its device (internal).
// restoring takes up the device an internal port left when the daemon
// stopped, wherever it was moved (see keepInternalLocked).
// owner names the daemon's configuration, which made the persistent
// devices it may take up (vport.TapConfig.Owner).
func newVPort(pc *portConfig, log *slog.Logger, gone func(), restoring bool, owner string) (vport.Port, error) {
	o := options{typ: pc.Type, m: pc.Options}
	var (
		p   vport.Port
		err error
	)
	switch pc.Type {
	case typeMem:
		cfg := vport.MemConfig{
			Name:          pc.Name,
			RxQueues:      o.int("rxq", 1, 1, vport.MaxQueues),
			TxQueues:      o.int("txq", 1, 1, vport.MaxQueues),
			RingSize:      o.int("ring", vport.DefaultRingSize, 1, 1<<20),
			RecordRxQueue: o.bool("record-rxq", false),
		}
		if err := o.done("rxq", "txq", "ring", "record-rxq"); err != nil {
			return nil, err
		}
		p, err = vport.NewMemPort(cfg)
	case typePcap:
		cfg := vport.PcapConfig{
			Name:          pc.Name,
			ReadFile:      o.str("read"),
			WriteFile:     o.str("write"),
			Loop:          o.int("loop", 1, -1, math.MaxInt32),
			Rate:          o.float("rate", 0, 0, 1e9),
			RecordRxQueue: o.bool("record-rxq", false),
			Overwrite:     o.bool("overwrite", false),
		}
		if err := o.done("read", "write", "loop", "rate", "record-rxq", "overwrite"); err != nil {
			return nil, err
		}
		if cfg.ReadFile == "" && cfg.WriteFile == "" {
			return nil, errors.New("port type pcap: needs read=FILE, write=FILE or both")
		}
		p, err = vport.NewPcapPort(cfg)
		switch {
		case errors.Is(err, vport.ErrFileExists):
			return nil, fmt.Errorf("port type pcap: option write=%s: %w; add overwrite=true to replace it", cfg.WriteFile, err)
		case err == nil && cfg.WriteFile != "":
			// The capture is the port's own file now: a restart that
			// restores the port starts it again.
			pc.Options["overwrite"] = "true"
		}
	case typeAFXDP:
		mode, merr := vport.ParseXDPMode(o.choice("xdp-mode", "best-effort", "best-effort", "native", "generic"))
		if merr != nil {
			return nil, merr
		}
		cfg := vport.XSKConfig{
			Device:            pc.Name,
			Queues:            o.int("rxq", 0, 0, vport.MaxQueues),
			Frames:            o.int("frames", vport.DefaultXSKFrames, 64, vport.MaxXSKFrames),
			RingSize:          o.int("ring", 0, 0, vport.MaxXSKFrames/2),
			Mode:              mode,
			AllowDefaultRoute: o.bool("force", false),
			Logger:            log,
		}
		if err := o.done("rxq", "xdp-mode", "frames", "ring", "force"); err != nil {
			return nil, err
		}
		var xp *vport.XSKPort
		xp, err = vport.OpenXSK(cfg)
		switch {
		case err == nil:
			p = xp
		case errors.Is(err, vport.ErrDefaultRoute):
			return nil, fmt.Errorf("%w; the host would lose the connectivity of that route: add force=true to add it all the same", err)
		case errors.Is(err, vport.ErrLoopback):
			return nil, fmt.Errorf("%w; loopback cannot be a port", err)
		}
	case typeInternal:
		if err := o.done(); err != nil {
			return nil, err
		}
		// Persistent, as an internal port of Open vSwitch's kernel
		// datapath outlives ovs-vswitchd: a crash or a stop of the
		// daemon leaves the device (and the addresses and namespace it
		// has), and the restarted daemon takes it up again.
		p, err = vport.NewTapPort(vport.TapConfig{Name: pc.Name, OnGone: gone, Logger: log, Persist: true, Reattach: restoring, Owner: owner})
	case typeVXLAN, typeGeneve:
		p, err = newTunnelVPort(pc)
	default:
		return nil, fmt.Errorf("unknown port type %q (want %s, %s, %s, %s, %s or %s)", flow.Clipped(pc.Type), typeMem, typePcap, typeAFXDP, typeInternal, typeVXLAN, typeGeneve)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// parsePortArgs reads add-port's KEY=VALUE arguments: type=, ofport= and the
// type's options.
func parsePortArgs(name string, args []string) (*portConfig, error) {
	pc := &portConfig{Name: name, Type: typeMem, Options: map[string]string{}}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("port %s: %q is not KEY=VALUE", name, flow.Clipped(a))
		}
		switch k {
		case "type":
			pc.Type = v
		case "ofport", "ofport_request":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 || n > uint64(maxOFPort) {
				return nil, fmt.Errorf("port %s: ofport=%s: want a number from 1 to %d", name, v, maxOFPort)
			}
			pc.OFPort = uint32(n)
		default:
			if _, dup := pc.Options[k]; dup {
				return nil, fmt.Errorf("port %s: option %s given twice", name, k)
			}
			pc.Options[k] = v
		}
	}
	if len(pc.Options) == 0 {
		pc.Options = nil
	}
	return pc, nil
}

// options reads a port type's options, remembering the first bad value.
type options struct {
	typ string
	m   map[string]string
	err error
}

func (o *options) fail(name, why string) {
	if o.err == nil {
		o.err = fmt.Errorf("port type %s: option %s=%s: %s", o.typ, name, o.m[name], why)
	}
}

func (o *options) str(name string) string { return o.m[name] }

func (o *options) int(name string, def, lo, hi int) int {
	s, ok := o.m[name]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		o.fail(name, fmt.Sprintf("want a whole number from %d to %d", lo, hi))
		return def
	}
	return n
}

func (o *options) float(name string, def, lo, hi float64) float64 {
	s, ok := o.m[name]
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		o.fail(name, fmt.Sprintf("want a number from %g to %g", lo, hi))
		return def
	}
	return f
}

func (o *options) bool(name string, def bool) bool {
	s, ok := o.m[name]
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		o.fail(name, "want true or false")
		return def
	}
	return b
}

func (o *options) choice(name, def string, allowed ...string) string {
	s, ok := o.m[name]
	if !ok {
		return def
	}
	if !slices.Contains(allowed, s) {
		o.fail(name, "want one of "+strings.Join(allowed, ", "))
		return def
	}
	return s
}

// done returns the first bad value, or an error naming an option that the
// type does not have.
func (o *options) done(known ...string) error {
	if o.err != nil {
		return o.err
	}
	for _, k := range slices.Sorted(maps.Keys(o.m)) {
		if !slices.Contains(known, k) {
			return fmt.Errorf("port type %s: unknown option %s (options: %s)", o.typ, flow.Clipped(k), strings.Join(known, ", "))
		}
	}
	return nil
}

// internalGone returns what an internal port calls when the kernel
// unregisters its device (its network namespace was deleted): the port is
// torn down: removed from its bridge after a grace period (its counters
// join the bridge's removed ports) and forgotten, as del-port does.
func (d *Daemon) internalGone(bridge string, pc *portConfig) func() {
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		b := d.bridges[bridge]
		if b == nil || b.ports[pc.Name] != pc {
			return // removed or replaced meanwhile
		}
		ctx, cancel := context.WithTimeout(context.Background(), removeTimeout)
		defer cancel()
		st, err := b.dp.RemovePort(ctx, pc.Name)
		if err != nil {
			d.log.Error("internal port's device unregistered; removing the port failed", "bridge", bridge, "port", pc.Name, "err", err)
			return
		}
		d.forgetPortLocked(b, pc.Name)
		d.log.Warn("internal port's device unregistered; port removed", "bridge", bridge, "port", pc.Name, "ofport", pc.OFPort,
			"rx_packets", st.RxPackets, "tx_packets", st.TxPackets)
		d.publishLocked()
		if err := d.saveLocked(); err != nil {
			d.log.Error("saving the state after an internal port was torn down", "err", err)
		}
	}
}

// keepInternalLocked makes the internal ports' devices outlive the
// daemon: closing the bridges then leaves them where they are, as Open
// vSwitch's kernel datapath keeps its internal ports when ovs-vswitchd
// stops, and the daemon takes them up again at its next start. Only
// del-port, del-br and a port's removal from the database delete them.
// d.mu must be held.
func (d *Daemon) keepInternalLocked() {
	for _, b := range d.bridges {
		for _, p := range b.dp.Ports() {
			if tp, ok := p.VPort().(*vport.TapPort); ok {
				tp.Keep()
			}
		}
	}
}
