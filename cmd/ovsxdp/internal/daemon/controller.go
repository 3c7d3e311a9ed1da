package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ofconn"
)

// Controllers: each bridge may have OpenFlow controllers, as the Bridge
// controller column of Open vSwitch's database describes them. An active
// target (tcp:IP[:PORT], unix:PATH) is dialled, kept alive with echo
// probes (inactivity_probe) and dialled again after a backoff that
// doubles up to max_backoff; a passive one (ptcp:[PORT][:IP], on the
// loopback address unless one is given; punix:PATH) listens for
// controllers. Every controller connection is a primary connection of the
// bridge's OpenFlow server: it gets packet ins and port status.
//
// fail_mode is Open vSwitch's: "secure" leaves the flow table alone when
// no controller is connected; "standalone" (also when unset) makes the
// bridge forward as a learning switch (the normal action) once every
// controller has been disconnected for three inactivity probe intervals,
// until one connects again.

// Controller defaults, as Open vSwitch's.
const (
	defaultOFPort     = 6653
	defaultProbe      = 5 * time.Second
	minProbe          = 5 * time.Second
	defaultMaxBackoff = 8 * time.Second
	minBackoff        = time.Second
	dialTimeout       = 5 * time.Second
)

// Fail modes.
const (
	failStandalone = "standalone"
	failSecure     = "secure"
)

// ErrBadTarget is the error of a controller target ovsxdp cannot use.
var ErrBadTarget = errors.New("invalid controller target")

// ctlSpec is one controller of a bridge's configuration.
type ctlSpec struct {
	Target     string        `json:"target"`
	Probe      time.Duration `json:"inactivity_probe"` // 0: no probes
	MaxBackoff time.Duration `json:"max_backoff"`
}

// ctlConfig is a bridge's controller configuration.
type ctlConfig struct {
	Specs    []ctlSpec
	FailMode string // "", standalone or secure
}

func (c *ctlConfig) equal(o *ctlConfig) bool {
	return c.FailMode == o.FailMode && slices.Equal(c.Specs, o.Specs)
}

// target is a parsed controller target.
type target struct {
	network, addr string
	passive       bool
}

// parseTarget parses a controller target.
func parseTarget(s string) (target, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok && kind != "ptcp" {
		return target{}, fmt.Errorf("%w %q: want tcp:IP[:PORT], unix:PATH, ptcp:[PORT][:IP] or punix:PATH", ErrBadTarget, s)
	}
	switch kind {
	case "tcp":
		host, port, err := splitHostPort(rest, false)
		if err != nil || host == "" {
			return target{}, fmt.Errorf("%w %q: want tcp:IP[:PORT]", ErrBadTarget, s)
		}
		return target{network: "tcp", addr: net.JoinHostPort(host, port)}, nil
	case "ptcp":
		port, host, err := splitHostPort(rest, true)
		if err != nil {
			return target{}, fmt.Errorf("%w %q: want ptcp:[PORT][:IP]", ErrBadTarget, s)
		}
		if host == "" {
			host = "127.0.0.1" // loopback unless an address is given
		}
		return target{network: "tcp", addr: net.JoinHostPort(host, port), passive: true}, nil
	case "unix", "punix":
		if rest == "" {
			return target{}, fmt.Errorf("%w %q: want %s:PATH", ErrBadTarget, s, kind)
		}
		return target{network: "unix", addr: rest, passive: kind == "punix"}, nil
	}
	return target{}, fmt.Errorf("%w %q: want tcp:, unix:, ptcp: or punix:", ErrBadTarget, s)
}

// splitHostPort splits "A[:B]" where B may be a port (tcp: IP then port)
// or, for ptcp, "PORT[:IP]" (portFirst); an IPv6 address is in brackets.
// It returns the host (or, portFirst, the port) first.
func splitHostPort(s string, portFirst bool) (string, string, error) {
	var a, b string
	if portFirst {
		a, b, _ = strings.Cut(s, ":")
		if a == "" {
			a = strconv.Itoa(defaultOFPort)
		}
		b = strings.TrimSuffix(strings.TrimPrefix(b, "["), "]")
		if n, err := strconv.Atoi(a); err != nil || n < 0 || n > 65535 {
			return "", "", errors.New("bad port")
		}
		if b != "" && net.ParseIP(b) == nil {
			return "", "", errors.New("bad address")
		}
		return a, b, nil
	}
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return "", "", errors.New("bad address")
		}
		a, b = s[1:end], strings.TrimPrefix(s[end+1:], ":")
	} else {
		a, b, _ = strings.Cut(s, ":")
	}
	if b == "" {
		b = strconv.Itoa(defaultOFPort)
	}
	if net.ParseIP(a) == nil {
		return "", "", errors.New("bad address")
	}
	if n, err := strconv.Atoi(b); err != nil || n < 1 || n > 65535 {
		return "", "", errors.New("bad port")
	}
	return a, b, nil
}

// ctlStatus is what a controller's connection is doing, as the
// Controller table's status column reports it.
type ctlStatus struct {
	Target    string
	Connected bool
	State     string // CONNECTING, ACTIVE, BACKOFF, LISTENING
	Role      string // other, master or slave while connected
	LastError string
	Since     time.Time // of the last connect or disconnect
}

// ctlRun is one running controller.
type ctlRun struct {
	spec   ctlSpec
	tgt    target
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex // protects st
	st ctlStatus
}

func (r *ctlRun) set(f func(st *ctlStatus)) {
	r.mu.Lock()
	f(&r.st)
	r.mu.Unlock()
}

func (r *ctlRun) status() ctlStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// controllers are one bridge's running controllers.
type controllers struct {
	ch *channel

	mu   sync.Mutex // protects the fields below
	cfg  ctlConfig
	runs map[string]*ctlRun
	// lastUp is when some controller was last connected (or when the
	// controllers were configured), for fail-open.
	lastUp time.Time
}

// apply makes the running controllers those of cfg. It does not wait for
// the controllers it stops (their connections may wait for the daemon's
// lock): it returns them, for a caller without the lock to wait.
func (cs *controllers) apply(cfg ctlConfig) (stopped []*ctlRun) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.runs == nil {
		cs.runs = map[string]*ctlRun{}
	}
	if len(cs.cfg.Specs) == 0 && len(cfg.Specs) > 0 {
		cs.lastUp = time.Now()
	}
	cs.cfg = cfg
	want := map[string]ctlSpec{}
	for _, s := range cfg.Specs {
		want[s.Target] = s
	}
	for t, r := range cs.runs {
		if s, ok := want[t]; !ok || s != r.spec {
			r.cancel()
			stopped = append(stopped, r)
			delete(cs.runs, t)
		}
	}
	for t, s := range want {
		if cs.runs[t] != nil {
			continue
		}
		tgt, err := parseTarget(t)
		if err != nil {
			cs.ch.log.Warn("openflow: controller target not usable", "target", t, "err", err)
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &ctlRun{spec: s, tgt: tgt, cancel: cancel, done: make(chan struct{}), st: ctlStatus{Target: t, State: "CONNECTING", Since: time.Now()}}
		cs.runs[t] = r
		if tgt.passive {
			go cs.listen(ctx, r)
		} else {
			go cs.dial(ctx, r)
		}
	}
	return stopped
}

// waitRuns waits until the stopped controllers' goroutines have ended.
func waitRuns(rs []*ctlRun) {
	for _, r := range rs {
		<-r.done
	}
}

// statuses returns the controllers' statuses, by target.
func (cs *controllers) statuses() map[string]ctlStatus {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make(map[string]ctlStatus, len(cs.runs))
	for t, r := range cs.runs {
		out[t] = r.status()
	}
	return out
}

// probe returns the probe interval of spec for the connection.
func probeOf(s ctlSpec) time.Duration {
	if s.Probe <= 0 {
		return -1
	}
	return s.Probe
}

// dial keeps an active controller connected until ctx ends.
func (cs *controllers) dial(ctx context.Context, r *ctlRun) {
	defer close(r.done)
	srv := cs.ch.srv
	backoff := minBackoff
	for ctx.Err() == nil {
		r.set(func(st *ctlStatus) { st.State = "CONNECTING" })
		d := net.Dialer{Timeout: dialTimeout}
		nc, err := d.DialContext(ctx, r.tgt.network, r.tgt.addr)
		wasUp := false
		if err == nil {
			stop := context.AfterFunc(ctx, func() { nc.Close() })
			srv.ServeController(nc, ofconn.ControllerOptions{Probe: probeOf(r.spec), Up: func(v uint8) {
				wasUp = true
				r.set(func(st *ctlStatus) {
					st.Connected, st.State, st.Role, st.LastError, st.Since = true, "ACTIVE", "other", "", time.Now()
				})
				cs.ch.log.Info("openflow: connected to controller", "target", r.spec.Target, "version", v)
			}})
			stop()
			nc.Close()
			err = errors.New("connection closed by peer")
			if wasUp {
				cs.noteUp()
				cs.ch.log.Info("openflow: controller connection closed", "target", r.spec.Target)
			}
		}
		if ctx.Err() != nil {
			return
		}
		if wasUp {
			backoff = minBackoff
		}
		msg := err.Error()
		r.set(func(st *ctlStatus) {
			if st.Connected {
				st.Since = time.Now()
			}
			st.Connected, st.State, st.Role, st.LastError = false, "BACKOFF", "", msg
		})
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, max(r.spec.MaxBackoff, minBackoff))
	}
}

// listen serves a passive controller target until ctx ends.
func (cs *controllers) listen(ctx context.Context, r *ctlRun) {
	defer close(r.done)
	for ctx.Err() == nil {
		ln, err := (&net.ListenConfig{}).Listen(ctx, r.tgt.network, r.tgt.addr)
		if err != nil {
			msg := err.Error()
			r.set(func(st *ctlStatus) { st.State, st.LastError = "BACKOFF", msg })
			cs.ch.log.Warn("openflow: cannot listen for controllers", "target", r.spec.Target, "err", err)
			t := time.NewTimer(max(r.spec.MaxBackoff, minBackoff))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		r.set(func(st *ctlStatus) { st.State, st.LastError = "LISTENING", "" })
		stop := context.AfterFunc(ctx, func() { ln.Close() })
		err = cs.ch.srv.ServePrimary(ln, ofconn.ControllerOptions{Probe: probeOf(r.spec), Up: func(uint8) { cs.noteUp() }})
		stop()
		ln.Close()
		if ctx.Err() == nil {
			cs.ch.log.Warn("openflow: controller listener stopped", "target", r.spec.Target, "err", err)
		}
	}
}

// noteUp records that a controller was connected until now.
func (cs *controllers) noteUp() {
	cs.mu.Lock()
	cs.lastUp = time.Now()
	cs.mu.Unlock()
}

// failOpen reports whether the bridge should forward on its own now: in
// standalone mode, with controllers configured, none connected for three
// probe intervals.
func (cs *controllers) failOpen(now time.Time) bool {
	connected := cs.ch.srv.Connected() > 0
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if connected {
		cs.lastUp = now
		return false
	}
	if len(cs.cfg.Specs) == 0 || cs.cfg.FailMode == failSecure {
		return false
	}
	probe := defaultProbe
	for _, s := range cs.cfg.Specs {
		probe = max(probe, s.Probe)
	}
	return now.Sub(cs.lastUp) >= 3*probe
}

// portWatchInterval is how often a bridge's ports are compared with what
// the connections were told (ofBridge.Ports, portdesc.go).
const portWatchInterval = 200 * time.Millisecond

// watch runs until stop: it hands the bridge's packet ins to the server,
// tells the connections of port changes (a port torn down is a delete),
// and turns fail-open on and off.
func (ch *channel) watch(stop <-chan struct{}) {
	dp := ch.b.dp
	tick := time.NewTicker(portWatchInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case pi := <-dp.PacketIns():
			ch.srv.PacketIn(pi.PacketIn, pi.Data, pi.TotalLen)
			dp.ReleasePacketIn(pi)
		case now := <-tick.C:
			ch.ob.Ports()
			dp.SetFailOpen(ch.ctl.failOpen(now))
		}
	}
}

// asyncChanged follows the connections: the bridge queues packet ins
// only while some connection takes them, and sends table misses to the
// controller as Open vSwitch does.
func (ch *channel) asyncChanged() {
	pins, miss := ch.srv.Wants()
	ch.b.dp.SetPacketInsWanted(pins)
	ch.b.dp.SetMissToController(miss)
}

// setControllersLocked sets bridge name's controller configuration and
// applies it to its channel. d.mu must be held.
func (d *Daemon) setControllersLocked(name string, cfg ctlConfig) {
	cs := &d.channels
	cs.mu.Lock()
	if cs.cfgs == nil {
		cs.cfgs = map[string]ctlConfig{}
	}
	old, had := cs.cfgs[name]
	if had && old.equal(&cfg) {
		cs.mu.Unlock()
		return
	}
	if len(cfg.Specs) == 0 && cfg.FailMode == "" {
		delete(cs.cfgs, name)
	} else {
		cs.cfgs[name] = cfg
	}
	ch := cs.byName[name]
	cs.mu.Unlock()
	if ch != nil {
		go waitRuns(ch.ctl.apply(cfg))
	}
}

// controllersLocked returns bridge name's controller configuration.
func (d *Daemon) controllersLocked(name string) ctlConfig {
	cs := &d.channels
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.cfgs[name]
}

// controllerStatuses returns the status of bridge name's controllers.
func (d *Daemon) controllerStatuses(name string) map[string]ctlStatus {
	cs := &d.channels
	cs.mu.Lock()
	ch := cs.byName[name]
	cs.mu.Unlock()
	if ch == nil {
		return nil
	}
	return ch.ctl.statuses()
}

// asyncStats returns the asynchronous message counters of bridge name's
// OpenFlow server.
func (d *Daemon) asyncStats(name string) (ofconn.AsyncStats, bool) {
	cs := &d.channels
	cs.mu.Lock()
	ch := cs.byName[name]
	cs.mu.Unlock()
	if ch == nil {
		return ofconn.AsyncStats{}, false
	}
	return ch.srv.AsyncStats(), true
}
