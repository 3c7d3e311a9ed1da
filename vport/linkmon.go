package vport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/vport/nldump"
)

// LinkMonitorConfig configures a LinkMonitor.
type LinkMonitorConfig struct {
	// Netns is the path of the network namespace whose links are watched
	// (such as /var/run/netns/NAME); empty for the caller's namespace.
	Netns string
	// ReceiveBufferSize sets the netlink socket's receive buffer in bytes
	// (the kernel's default when 0). A buffer that overflows loses events
	// (ENOBUFS); the monitor then resubscribes and resyncs.
	ReceiveBufferSize int
	// Logger receives the monitor's warnings (slog.Default() when nil).
	Logger *slog.Logger

	// subscribe replaces netlink.LinkSubscribeWithOptions in tests.
	subscribe subscribeFunc
}

type subscribeFunc func(ch chan<- netlink.LinkUpdate, done <-chan struct{}, opts netlink.LinkSubscribeOptions) error

// LinkMonitor keeps the Device models of real links up to date from
// rtnetlink link events of one network namespace: running (IFF_UP),
// carrier (IFF_LOWER_UP), the number of tx queues (IFLA_NUM_TX_QUEUES) and
// deletion, which it applies in the kernel's unregister order (down, no
// carrier, unregistering, no tx queues, unregistered) and reports to the
// watcher's callback.
//
// Netlink may lose events (the socket's buffer overflows: ENOBUFS) or
// fail; the monitor then subscribes again and resyncs every watched device
// from a full dump, in which a device that is missing was deleted.
//
// A monitor is used as NewLinkMonitor, Start, Watch (any time), Stop.
type LinkMonitor struct {
	cfg  LinkMonitorConfig
	log  *slog.Logger
	h    *netlink.Handle
	ns   netns.NsHandle // of cfg.Netns; closed at Stop
	stop chan struct{}
	done chan struct{}
	cbs  sync.WaitGroup // onDelete callbacks running

	subscriptions atomic.Uint64
	resyncs       atomic.Uint64

	// life serializes Start and Stop, and protects started.
	life    sync.Mutex
	started bool

	// order makes a read of a link's state and its application one step
	// that no event's application falls between: Watch and resync hold it
	// from the read to the last application, apply while it applies. A
	// read applied after a newer event would undo that event, and with
	// no further event to come (a veth whose ends are both up stays
	// quiet) the device would keep the stale state.
	order sync.Mutex

	// mu protects watches, names and stopped.
	mu      sync.Mutex
	watches map[int]*linkWatch
	names   map[string]*nameWatch
	stopped bool
}

// Linked is a port on a real link, whose state a LinkMonitor of its
// namespace follows.
type Linked interface {
	Port
	// Ifindex is the link's interface index.
	Ifindex() int
	// Netns is the path of the link's network namespace, empty for the
	// caller's.
	Netns() string
}

var _ Linked = (*XSKPort)(nil)

// nameWatch waits for a link of a name to appear.
type nameWatch struct {
	name string
	fn   func()
}

type linkWatch struct {
	dev      *Device
	ifindex  int
	onDelete func(*Device)
	deleted  bool
}

// NewLinkMonitor returns a monitor of the links of cfg.Netns. Start starts
// it.
func NewLinkMonitor(cfg LinkMonitorConfig) (*LinkMonitor, error) {
	m := &LinkMonitor{
		cfg:     cfg,
		log:     cfg.Logger,
		ns:      netns.None(),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		watches: make(map[int]*linkWatch),
		names:   make(map[string]*nameWatch),
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.cfg.subscribe == nil {
		m.cfg.subscribe = netlink.LinkSubscribeWithOptions
	}
	if cfg.Netns != "" {
		ns, err := netns.GetFromPath(cfg.Netns)
		if err != nil {
			return nil, fmt.Errorf("link monitor: network namespace %s: %w", cfg.Netns, err)
		}
		m.ns = ns
	}
	h, err := netlinkHandle(cfg.Netns)
	if err != nil {
		m.ns.Close()
		return nil, fmt.Errorf("link monitor: %w", err)
	}
	m.h = h
	return m, nil
}

// Watch keeps dev up to date with the link ifindex of the monitor's
// namespace, from now on, and calls onDelete (if not nil) once, on a
// goroutine of its own, when the link is deleted. It reads the link's
// current state first; a link that is already gone counts as deleted. The
// returned function stops watching.
func (m *LinkMonitor) Watch(dev *Device, ifindex int, onDelete func(*Device)) (cancel func(), err error) {
	w := &linkWatch{dev: dev, ifindex: ifindex, onDelete: onDelete}
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return nil, errors.New("link monitor: stopped")
	}
	if _, dup := m.watches[ifindex]; dup {
		m.mu.Unlock()
		return nil, fmt.Errorf("link monitor: ifindex %d (%s) is already watched", ifindex, dev.Name())
	}
	// Logged before the watch is in place (under mu, which event records
	// take), so that no event of the link is recorded before it; up and
	// carrier are the device's state as its port read it.
	st := dev.Snapshot()
	m.log.Debug("link monitor: watch", "netns", m.cfg.Netns, "name", dev.Name(), "ifindex", ifindex, "up", st.Running(), "carrier", st.Carrier())
	m.watches[ifindex] = w
	m.mu.Unlock()

	cancel = func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.watches[ifindex] == w {
			delete(m.watches, ifindex)
		}
	}
	m.order.Lock()
	defer m.order.Unlock()
	lk, err := m.h.LinkByIndex(ifindex)
	if watchReadHook != nil {
		watchReadHook()
	}
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound) || errors.Is(err, unix.ENODEV):
		m.markDeleted(w, "watch")
	case err != nil:
		cancel()
		return nil, fmt.Errorf("link monitor: link %d (%s): %w", ifindex, dev.Name(), err)
	default:
		m.applyLink(w, lk.Attrs())
	}
	return cancel, nil
}

// watchReadHook, when set (by tests), runs between Watch's read of the
// link and its application.
var watchReadHook func()

// WatchName calls fn whenever a link named name is reported new or
// changed (RTM_NEWLINK) in the monitor's namespace, and after each resync
// that lists one, until cancel: it is how the owner of a port whose link
// is missing learns that the link has appeared. fn runs on the goroutine
// that applies events (or resyncs): it must be quick and must not call the
// monitor (a non-blocking send that wakes its owner is what it is for).
// present
// reports whether a link of that name exists now, as read after the watch
// began, so that an appearance in between is not missed.
func (m *LinkMonitor) WatchName(name string, fn func()) (present bool, cancel func(), err error) {
	w := &nameWatch{name: name, fn: fn}
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return false, nil, errors.New("link monitor: stopped")
	}
	if _, dup := m.names[name]; dup {
		m.mu.Unlock()
		return false, nil, fmt.Errorf("link monitor: link name %s is already watched", name)
	}
	m.names[name] = w
	m.mu.Unlock()
	cancel = func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.names[name] == w {
			delete(m.names, name)
		}
	}
	present, err = m.LinkExists(name)
	if err != nil {
		cancel()
		return false, nil, err
	}
	return present, cancel, nil
}

// LinkExists reports whether a link named name exists in the monitor's
// namespace.
func (m *LinkMonitor) LinkExists(name string) (bool, error) {
	_, err := m.h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound) || errors.Is(err, unix.ENODEV):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("link monitor: link %s: %w", name, err)
	}
	return true, nil
}

// Start subscribes to link events, resyncs the watched devices and starts
// the monitor's goroutine.
func (m *LinkMonitor) Start() error {
	m.life.Lock()
	defer m.life.Unlock()
	m.mu.Lock()
	stopped := m.stopped
	m.mu.Unlock()
	switch {
	case stopped:
		return errors.New("link monitor: stopped")
	case m.started:
		return nil
	}
	sub, err := m.subscribeAndResync()
	if err != nil {
		return err
	}
	m.started = true
	go m.run(sub)
	return nil
}

// Stop stops the monitor, waits for its goroutine and for the deletion
// callbacks it started, and releases its netlink sockets. It is
// idempotent.
func (m *LinkMonitor) Stop() {
	m.life.Lock()
	defer m.life.Unlock()
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	m.stopped = true
	m.mu.Unlock()
	close(m.stop)
	if m.started {
		<-m.done
	}
	m.cbs.Wait()
	m.h.Close()
	m.ns.Close()
}

// Subscriptions is the number of netlink subscriptions made so far: one,
// plus one per resubscription after a lost or failed subscription.
func (m *LinkMonitor) Subscriptions() uint64 { return m.subscriptions.Load() }

// Resyncs is the number of full resyncs made so far (one per
// subscription).
func (m *LinkMonitor) Resyncs() uint64 { return m.resyncs.Load() }

// subscription is one netlink link subscription.
type subscription struct {
	ch     chan netlink.LinkUpdate
	done   chan struct{}
	failed chan struct{} // closed by the first error reported
	once   sync.Once
}

// cancel ends the subscription: it closes done, which closes the netlink
// socket, and drains the channel until the library's goroutine closes it.
func (s *subscription) cancel() {
	close(s.done)
	for range s.ch {
	}
}

func (m *LinkMonitor) subscribeAndResync() (*subscription, error) {
	s := &subscription{
		ch:     make(chan netlink.LinkUpdate, 64),
		done:   make(chan struct{}),
		failed: make(chan struct{}),
	}
	opts := netlink.LinkSubscribeOptions{
		ReceiveBufferSize: m.cfg.ReceiveBufferSize,
		ErrorCallback: func(err error) {
			select {
			case <-s.done:
				return // the socket was closed by cancel
			default:
			}
			m.log.Warn("link monitor: netlink subscription failed, resyncing", "netns", m.cfg.Netns, "err", err)
			s.once.Do(func() { close(s.failed) })
		},
	}
	if m.cfg.Netns != "" {
		opts.Namespace = &m.ns
	}
	if err := m.cfg.subscribe(s.ch, s.done, opts); err != nil {
		close(s.done) // ends the library's closer goroutine, if it started one
		return nil, fmt.Errorf("link monitor: subscribe: %w", err)
	}
	m.subscriptions.Add(1)
	if err := m.resync(); err != nil {
		s.cancel()
		return nil, err
	}
	return s, nil
}

// run applies events until Stop, and resubscribes (with a resync) when a
// subscription fails or its channel closes.
func (m *LinkMonitor) run(sub *subscription) {
	defer close(m.done)
	for {
		if stopped := m.consume(sub); stopped {
			sub.cancel()
			return
		}
		sub.cancel()
		backoff := 10 * time.Millisecond
		for {
			var err error
			if sub, err = m.subscribeAndResync(); err == nil {
				break
			}
			m.log.Warn("link monitor: resubscribe failed", "netns", m.cfg.Netns, "err", err, "retry", backoff)
			select {
			case <-m.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
		}
	}
}

// consume applies sub's events until Stop (true) or until sub fails or
// ends (false).
func (m *LinkMonitor) consume(sub *subscription) (stopped bool) {
	for {
		select {
		case <-m.stop:
			return true
		case <-sub.failed:
			return false
		case u, ok := <-sub.ch:
			if !ok {
				return false
			}
			m.apply(u)
		}
	}
}

// apply applies one link event.
func (m *LinkMonitor) apply(u netlink.LinkUpdate) {
	m.mu.Lock()
	w := m.watches[int(u.Index)]
	var nw *nameWatch
	if u.Header.Type == unix.RTM_NEWLINK && u.Link != nil {
		nw = m.names[u.Link.Attrs().Name]
	}
	m.mu.Unlock()
	if nw != nil {
		nw.fn()
	}
	if w == nil && nw == nil {
		return
	}
	m.record(u, w)
	if w == nil {
		return
	}
	m.order.Lock()
	defer m.order.Unlock()
	if u.Header.Type == unix.RTM_DELLINK {
		m.markDeleted(w, "dellink")
		return
	}
	if u.Link != nil {
		m.applyLink(w, u.Link.Attrs())
	}
}

// The monitor records, at debug level, the link events of the links it
// watches (by ifindex or by name) in the order it receives them, with what
// each changes in the watched device, and its resyncs and deletions, so
// that the order the kernel's events arrived in can be compared with the
// order a model assumes. The lines:
//
//	msg="link monitor: event" netns=NS name=NAME ifindex=N type=new|del up=B carrier=B txqueues=N watched=B changes=LIST
//	msg="link monitor: watch" netns=NS name=NAME ifindex=N up=B carrier=B
//	msg="link monitor: resync" netns=NS watched=N
//	msg="link monitor: deleted" netns=NS name=NAME ifindex=N via=dellink|resync|watch
//
// LIST names the device's state changes that the event carries, in the
// order the monitor applies them ("running-,carrier-", "none"); an event
// with two or more carries changes that the kernel made one by one.

// record logs u, a link event of a watched link or name.
func (m *LinkMonitor) record(u netlink.LinkUpdate, w *linkWatch) {
	if !m.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	typ := "new"
	if u.Header.Type == unix.RTM_DELLINK {
		typ = "del"
	}
	var a netlink.LinkAttrs
	if u.Link != nil {
		a = *u.Link.Attrs()
	}
	up, carrier := a.RawFlags&unix.IFF_UP != 0, a.RawFlags&unix.IFF_LOWER_UP != 0
	changes := "none"
	if w != nil {
		m.mu.Lock()
		deleted := w.deleted
		m.mu.Unlock()
		switch {
		case deleted:
			changes = "late"
		case typ == "del":
			changes = "deleted"
		default:
			changes = linkChanges(w.dev, up, carrier, a.NumTxQueues)
		}
	}
	m.log.Debug("link monitor: event", "netns", m.cfg.Netns, "name", a.Name, "ifindex", u.Index, "type", typ,
		"up", up, "carrier", carrier, "txqueues", a.NumTxQueues, "watched", w != nil, "changes", changes)
}

// linkChanges lists what applyLink changes in dev for a link in state up,
// carrier, txq, in its order: running-, carrier+/-, txqueues=N, running+.
func linkChanges(dev *Device, up, carrier bool, txq int) string {
	st := dev.Snapshot()
	var ch []string
	if !up && st.Running() {
		ch = append(ch, "running-")
	}
	if carrier != st.Carrier() {
		if carrier {
			ch = append(ch, "carrier+")
		} else {
			ch = append(ch, "carrier-")
		}
	}
	if txq > 0 && min(txq, dev.MaxTxQueues()) != st.TxQueues() {
		ch = append(ch, "txqueues="+strconv.Itoa(min(txq, dev.MaxTxQueues())))
	}
	if up && !st.Running() {
		ch = append(ch, "running+")
	}
	if len(ch) == 0 {
		return "none"
	}
	return strings.Join(ch, ",")
}

// resync reads every link and applies it to the watched devices; a watched
// link that is not listed was deleted.
func (m *LinkMonitor) resync() error {
	m.order.Lock()
	defer m.order.Unlock()
	links, err := nldump.Retry(m.h.LinkList)
	if err != nil {
		return fmt.Errorf("link monitor: list links: %w", err)
	}
	m.resyncs.Add(1)
	m.mu.Lock()
	watched := len(m.watches)
	m.mu.Unlock()
	m.log.Debug("link monitor: resync", "netns", m.cfg.Netns, "watched", watched)
	byIndex := make(map[int]*netlink.LinkAttrs, len(links))
	for _, l := range links {
		byIndex[l.Attrs().Index] = l.Attrs()
	}
	m.mu.Lock()
	ws := make([]*linkWatch, 0, len(m.watches))
	for _, w := range m.watches {
		ws = append(ws, w)
	}
	var appeared []*nameWatch
	for _, l := range links {
		if nw := m.names[l.Attrs().Name]; nw != nil {
			appeared = append(appeared, nw)
		}
	}
	m.mu.Unlock()
	for _, nw := range appeared {
		nw.fn()
	}
	for _, w := range ws {
		if a, ok := byIndex[w.ifindex]; ok {
			m.applyLink(w, a)
		} else {
			m.markDeleted(w, "resync")
		}
	}
	return nil
}

// applyLink applies a link's attributes. A change towards down clears
// running before carrier, a change towards up sets carrier before running,
// so that no snapshot in between looks more usable than either end.
func (m *LinkMonitor) applyLink(w *linkWatch, a *netlink.LinkAttrs) {
	m.mu.Lock()
	deleted := w.deleted
	m.mu.Unlock()
	if deleted {
		return // a late event of a deleted link
	}
	running := a.RawFlags&unix.IFF_UP != 0
	carrier := a.RawFlags&unix.IFF_LOWER_UP != 0
	if !running {
		w.dev.SetRunning(false)
	}
	w.dev.SetCarrier(carrier)
	if n := a.NumTxQueues; n > 0 {
		if err := w.dev.SetTxQueues(min(n, w.dev.MaxTxQueues())); err != nil {
			m.log.Warn("link monitor: tx queues", "dev", w.dev.Name(), "err", err)
		}
	}
	if running {
		w.dev.SetRunning(true)
	}
}

// markDeleted applies the deletion of w's link, once, and starts its
// callback. via says how the monitor learnt of it: a "dellink" event, a
// "resync" that did not list the link, or a "watch" that found it gone.
func (m *LinkMonitor) markDeleted(w *linkWatch, via string) {
	m.mu.Lock()
	if w.deleted {
		m.mu.Unlock()
		return
	}
	w.deleted = true
	callback := w.onDelete != nil && !m.stopped
	if callback {
		m.cbs.Add(1) // under mu and before stopped, so that Stop's Wait sees it
	}
	m.mu.Unlock()
	m.log.Debug("link monitor: deleted", "netns", m.cfg.Netns, "name", w.dev.Name(), "ifindex", w.ifindex, "via", via)

	d := w.dev
	d.SetRunning(false)
	d.SetCarrier(false)
	advanceRegistration(d, Unregistering)
	if err := d.SetTxQueues(0); err != nil {
		m.log.Warn("link monitor: tx queues", "dev", d.Name(), "err", err)
	}
	advanceRegistration(d, Unregistered)
	if callback {
		go func() {
			defer m.cbs.Done()
			w.onDelete(d)
		}()
	}
}

// advanceRegistration moves d's registration forward to r, step by step,
// if it is not there yet.
func advanceRegistration(d *Device, r Registration) {
	for cur := d.Snapshot().Registration(); cur < r; cur = d.Snapshot().Registration() {
		if d.SetRegistration(cur+1) != nil {
			return
		}
	}
}
