package datapath

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ovsxdp/ovsxdp/vport"
)

// This file is the one place where a bridge follows the real links under
// its ports: it owns a link monitor per network namespace, watches the
// link of every port on a real link (vport.Linked), and acts when the
// kernel deletes one. A port added with AddPort is then removed, as
// del-port removes it. A port added with AddLinkPort stays configured, as
// Open vSwitch keeps an Interface whose device is gone: it is detached
// (taken out of the port table after a grace period, and closed), keeps
// its OpenFlow port number and records its error, and is opened and
// attached again when a link of its name appears.

// ErrNoDevice is what errors.Is finds in the error of a port whose link
// does not exist.
var ErrNoDevice = errors.New("no such device")

// linkRemoveTimeout bounds the grace period of a removal that a link's
// deletion starts.
const linkRemoveTimeout = 10 * time.Second

// LinkConfig sets what a bridge does with the links under its ports.
type LinkConfig struct {
	// RemoveDelay is how long the bridge waits, once it learns that a
	// port's link was deleted, before it removes or detaches the port:
	// it stands for the latency of the kernel's deferred vport deletion.
	RemoveDelay time.Duration
	// OnEvent, if set, is called after the bridge acted on a port's link,
	// on a goroutine of the bridge's, with no lock held: it may call the
	// bridge.
	OnEvent func(LinkEvent)
	// Logger receives what the bridge does on link events; slog.Default()
	// when nil.
	Logger *slog.Logger
}

// LinkEventKind says what the bridge did on a link event.
type LinkEventKind uint8

const (
	// LinkRemoved: the port's link was deleted and the port removed.
	LinkRemoved LinkEventKind = iota + 1
	// LinkDetached: the port's link was deleted; the port stays
	// configured, detached, until a link of its name appears.
	LinkDetached
	// LinkAttached: a link of a detached port's name appeared and the port
	// was opened on it and attached (with Err: opening it failed, and the
	// port stays detached with that error).
	LinkAttached
)

func (k LinkEventKind) String() string {
	switch k {
	case LinkRemoved:
		return "removed"
	case LinkDetached:
		return "detached"
	case LinkAttached:
		return "attached"
	}
	return fmt.Sprintf("link-event(%d)", uint8(k))
}

// LinkEvent reports what the bridge did when a port's link was deleted or
// appeared.
type LinkEvent struct {
	Kind   LinkEventKind
	Port   string
	OFPort uint32
	// Stats are the final counters of a port removed or detached.
	Stats PortStats
	// Took is the time from the deletion's notice to the port closed,
	// RemoveDelay included.
	Took time.Duration
	// Err is the removal's or the attach's error, if it failed.
	Err error
}

// LinkPort is a port on a real link that the bridge opens itself, so that
// it can open it again when its link comes back (AddLinkPort).
type LinkPort struct {
	// Name is the link's name, and the port's.
	Name string
	// Netns is the path of the link's network namespace, empty for the
	// bridge's caller's.
	Netns string
	// OFPort is the OpenFlow port number asked for; 0 for the next one
	// as Open vSwitch hands them out.
	OFPort uint32
	// Open opens the port on the link named Name; the port must be a
	// vport.Linked.
	Open func() (vport.Port, error)
	// MustExist makes AddLinkPort fail, with Open's error, when the link
	// does not exist, instead of keeping the port configured and detached.
	MustExist bool
}

// DetachedPort is a configured port of a bridge that is not attached: its
// link is missing, or could not be opened.
type DetachedPort struct {
	Name   string
	OFPort uint32
	// Err says why, in Open vSwitch's words: "could not open network
	// device NAME (No such device)".
	Err error
}

// OpenError is the error of a port that could not be opened on its link.
type OpenError struct {
	Device string
	Err    error // ErrNoDevice when the link does not exist
}

func (e *OpenError) Error() string {
	why := "No such device"
	if !errors.Is(e.Err, ErrNoDevice) {
		why = e.Err.Error()
	}
	return "could not open network device " + e.Device + " (" + why + ")"
}

func (e *OpenError) Unwrap() error { return e.Err }

// links is what a bridge keeps to follow its ports' links. Its fields are
// protected by the bridge's mu.
type links struct {
	cfg  LinkConfig
	log  *slog.Logger
	mons map[string]*vport.LinkMonitor // by namespace path
	// detached are the configured ports that are not attached, by name.
	detached map[string]*detachedPort
	// stop is closed by Close: delays and attach loops end.
	stop chan struct{}
	// loops counts the attach loops running.
	loops sync.WaitGroup
}

// detachedPort is a configured port waiting for its link.
type detachedPort struct {
	lp      LinkPort
	ofport  uint32
	err     error
	kick    chan struct{} // a link of the port's name was seen
	stop    chan struct{} // closed when the port is removed or attached
	done    chan struct{} // closed when its attach loop has returned
	unwatch func()        // stops watching the name
}

func (l *links) init(cfg LinkConfig) {
	*l = links{cfg: cfg, log: cfg.Logger, mons: map[string]*vport.LinkMonitor{}, detached: map[string]*detachedPort{}, stop: make(chan struct{})}
	if l.log == nil {
		l.log = slog.Default()
	}
}

// monitorLocked returns the link monitor of namespace ns, started. b.mu
// must be held.
func (b *Bridge) monitorLocked(ns string) (*vport.LinkMonitor, error) {
	if m := b.links.mons[ns]; m != nil {
		return m, nil
	}
	m, err := vport.NewLinkMonitor(vport.LinkMonitorConfig{Netns: ns, Logger: b.links.log})
	if err != nil {
		return nil, err
	}
	if err := m.Start(); err != nil {
		m.Stop()
		return nil, err
	}
	b.links.mons[ns] = m
	return m, nil
}

// watchLinkLocked has the bridge follow the link under p, if p is on a
// real link: its device state from now on, and its deletion. b.mu must be
// held; p is not published yet.
func (b *Bridge) watchLinkLocked(p *Port) error {
	lk, ok := p.vp.(vport.Linked)
	if !ok {
		return nil
	}
	m, err := b.monitorLocked(lk.Netns())
	if err != nil {
		return fmt.Errorf("add port %s to %s: %w", p.Name, b.cfg.Name, err)
	}
	cancel, err := m.Watch(p.dev, lk.Ifindex(), func(*vport.Device) { b.linkDeleted(p) })
	if err != nil {
		return fmt.Errorf("add port %s to %s: %w", p.Name, b.cfg.Name, err)
	}
	p.unwatch = cancel
	return nil
}

// linkDeleted removes or detaches p, whose link the kernel deleted. It
// runs on a goroutine of its own.
func (b *Bridge) linkDeleted(p *Port) {
	start := time.Now()
	if d := b.links.cfg.RemoveDelay; d > 0 {
		select {
		case <-time.After(d):
		case <-b.links.stop:
			return
		}
	}
	b.mu.Lock()
	if b.stopped || b.ports.Load().lookup(p.OFPort) != p {
		b.mu.Unlock()
		return // removed or replaced meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), linkRemoveTimeout)
	st, err := b.removeLocked(ctx, p)
	cancel()
	ev := LinkEvent{Kind: LinkRemoved, Port: p.Name, OFPort: p.OFPort, Stats: st, Took: time.Since(start), Err: err}
	if p.link != nil {
		// The configured port is kept whatever the removal's outcome.
		ev.Kind = LinkDetached
		b.keepDetachedLocked(*p.link, p.OFPort, &OpenError{Device: p.Name, Err: ErrNoDevice})
	}
	b.mu.Unlock()
	if err != nil {
		b.links.log.Error("link deleted; removing its port failed", "bridge", b.cfg.Name, "port", p.Name, "err", err)
	} else {
		b.links.log.Warn("link deleted; port "+ev.Kind.String(), "bridge", b.cfg.Name, "port", p.Name, "ofport", p.OFPort)
	}
	b.linkEvent(ev)
}

func (b *Bridge) linkEvent(ev LinkEvent) {
	if f := b.links.cfg.OnEvent; f != nil {
		f(ev)
	}
}

// AddLinkPort adds the port lp opens, and follows its link: when the link
// is deleted the port stays configured, detached, with its OpenFlow port
// number and an error, and is attached again when a link of its name
// appears in lp.Netns. When the link does not exist at all (and
// !lp.MustExist) the port is added in that detached state: AddLinkPort
// then returns its OpenFlow port number with an *OpenError wrapping
// ErrNoDevice, and the port is configured. Any other error means nothing
// was added.
func (b *Bridge) AddLinkPort(lp LinkPort) (ofport uint32, err error) {
	// Refuse a name or number in use before opening anything.
	b.mu.Lock()
	stopped := b.stopped
	if !stopped {
		err = b.checkNewPortLocked(lp.Name, lp.OFPort)
	}
	b.mu.Unlock()
	switch {
	case stopped:
		return 0, ErrStopped
	case err != nil:
		return 0, err
	}
	vp, openErr := lp.Open() // binding sockets takes time: not under b.mu
	if openErr == nil {
		if _, ok := vp.(vport.Linked); !ok {
			vp.Close()
			return 0, fmt.Errorf("add port %s to %s: the port is not on a link", lp.Name, b.cfg.Name)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		if vp != nil {
			vp.Close()
		}
		return 0, ErrStopped
	}
	if openErr == nil {
		p, err := b.addLocked(vp, lp.OFPort, &lp)
		if err != nil {
			vp.Close()
			return 0, err
		}
		return p.OFPort, nil
	}
	if lp.MustExist {
		return 0, openErr
	}
	m, err := b.monitorLocked(lp.Netns)
	if err != nil {
		return 0, fmt.Errorf("add port %s to %s: %w", lp.Name, b.cfg.Name, err)
	}
	exists, err := m.LinkExists(lp.Name)
	switch {
	case err != nil:
		return 0, fmt.Errorf("add port %s to %s: %w", lp.Name, b.cfg.Name, err)
	case exists:
		return 0, openErr // the link is there; the port is wrong
	}
	if ofport, err = b.pickOFPortLocked(lp.Name, lp.OFPort); err != nil {
		return 0, err
	}
	oerr := &OpenError{Device: lp.Name, Err: ErrNoDevice}
	b.keepDetachedLocked(lp, ofport, oerr)
	return ofport, oerr
}

// keepDetachedLocked records lp as configured but detached, with error
// why, and starts waiting for a link of its name. b.mu must be held.
func (b *Bridge) keepDetachedLocked(lp LinkPort, ofport uint32, why error) {
	dp := &detachedPort{lp: lp, ofport: ofport, err: why, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	m, err := b.monitorLocked(lp.Netns)
	var present bool
	if err == nil {
		present, dp.unwatch, err = m.WatchName(lp.Name, dp.wake)
	}
	if err != nil {
		// The port stays configured; without a watch it is attached only
		// when added again.
		b.links.log.Error("port detached; cannot watch for its link", "bridge", b.cfg.Name, "port", lp.Name, "err", err)
		dp.err = fmt.Errorf("%w; not watching for the link: %v", why, err)
		dp.unwatch = func() {}
	}
	b.links.detached[lp.Name] = dp
	if present {
		dp.wake()
	}
	b.links.loops.Add(1)
	go b.attachLoop(dp)
}

// wake tells dp's attach loop that a link of its name was seen; it never
// blocks.
func (dp *detachedPort) wake() {
	select {
	case dp.kick <- struct{}{}:
	default:
	}
}

// forgetDetachedLocked drops a detached port. b.mu must be held.
func (b *Bridge) forgetDetachedLocked(dp *detachedPort) {
	if b.links.detached[dp.lp.Name] == dp {
		delete(b.links.detached, dp.lp.Name)
	}
	dp.unwatch()
	close(dp.stop)
}

// attachLoop opens and attaches dp each time a link of its name is seen,
// until it is attached or removed.
func (b *Bridge) attachLoop(dp *detachedPort) {
	defer b.links.loops.Done()
	defer close(dp.done)
	for {
		select {
		case <-dp.stop:
			return
		case <-b.links.stop:
			return
		case <-dp.kick:
		}
		if b.tryAttach(dp) {
			return
		}
	}
}

// tryAttach opens dp's port and attaches it; it reports whether dp is
// done with (attached, or removed meanwhile).
func (b *Bridge) tryAttach(dp *detachedPort) (done bool) {
	vp, err := dp.lp.Open() // binding sockets takes time: not under b.mu
	b.mu.Lock()
	if b.stopped || b.links.detached[dp.lp.Name] != dp {
		b.mu.Unlock()
		if vp != nil {
			vp.Close()
		}
		return true
	}
	var p *Port
	if err == nil {
		// The port leaves the detached ports to take its place in the
		// table; it goes back there if that fails.
		delete(b.links.detached, dp.lp.Name)
		if p, err = b.addLocked(vp, dp.ofport, &dp.lp); err != nil {
			b.links.detached[dp.lp.Name] = dp
			vp.Close()
		}
	}
	if err != nil {
		dp.err = &OpenError{Device: dp.lp.Name, Err: err}
		b.mu.Unlock()
		b.links.log.Warn("link appeared; opening its port failed", "bridge", b.cfg.Name, "port", dp.lp.Name, "err", err)
		b.linkEvent(LinkEvent{Kind: LinkAttached, Port: dp.lp.Name, OFPort: dp.ofport, Err: err})
		return false
	}
	b.forgetDetachedLocked(dp)
	b.mu.Unlock()
	b.links.log.Info("link appeared; port attached", "bridge", b.cfg.Name, "port", p.Name, "ofport", p.OFPort)
	b.linkEvent(LinkEvent{Kind: LinkAttached, Port: p.Name, OFPort: p.OFPort})
	return true
}

// Detached returns the bridge's configured ports that are not attached,
// with why, by OpenFlow port number.
func (b *Bridge) Detached() []DetachedPort {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]DetachedPort, 0, len(b.links.detached))
	for _, dp := range b.links.detached {
		out = append(out, DetachedPort{Name: dp.lp.Name, OFPort: dp.ofport, Err: dp.err})
	}
	slices.SortFunc(out, func(x, y DetachedPort) int { return cmp.Compare(x.OFPort, y.OFPort) })
	return out
}

// stopLinks ends the bridge's following of links: the detached ports'
// loops and the monitors, with the deletion callbacks they started. It
// must be called without b.mu, once b.stopped is set.
func (b *Bridge) stopLinks(mons []*vport.LinkMonitor) {
	for _, m := range mons {
		m.Stop()
	}
	b.links.loops.Wait()
}

// takeLinksLocked closes the links' stop channel and takes the monitors
// and the detached ports, for stopLinks. b.mu must be held.
func (b *Bridge) takeLinksLocked() []*vport.LinkMonitor {
	close(b.links.stop)
	mons := make([]*vport.LinkMonitor, 0, len(b.links.mons))
	for _, m := range b.links.mons {
		mons = append(mons, m)
	}
	clear(b.links.mons)
	for _, dp := range b.links.detached {
		b.forgetDetachedLocked(dp)
	}
	return mons
}
