package datapath

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath/tunnel"
	"github.com/ovsxdp/ovsxdp/vport"
	"github.com/ovsxdp/ovsxdp/vport/underlay"
)

// This file is native tunnelling's control plane, as Open vSwitch's
// userspace datapath does it: a vxlan or geneve port has no device; what
// is output to it is encapsulated (tunnelpush.go) and runs through the
// bridge whose internal port the route to the remote endpoint leaves
// through, as if that internal port had received it (Open vSwitch's
// br-phy with the host's underlay address on its LOCAL port, and the
// uplink on it). A packet for a tunnel's UDP port that the underlay
// bridge sends to one of its internal ports is decapsulated instead
// (tunnelpop.go) and runs through the tunnel port's bridge as received
// on the tunnel port whose options take it.
//
// Tunnels keeps, per tunnel port and remote endpoint, the path the
// resolver gives (the output device, the source address, the next hop's
// MAC: the daemon's underlay.Table, which follows the kernel's routes
// and neighbours over netlink and holds ovsxdp's own tunnel neighbour
// cache), looked up again whenever the resolver announces a change, when
// a packet asks for a remote it has not resolved, when the underlay port
// it names is gone, and slowly on a timer as a safety net; the packet
// path only reads it. A next hop whose link-layer address is unknown is
// resolved by ovsxdp itself, as Open vSwitch's userspace tunnelling does:
// an ARP request or neighbour solicitation from the internal port's MAC
// and the route's source address goes into the underlay bridge as if
// that internal port had sent it (at most one per next hop per
// solicitInterval), and the answer is learnt from the ARP replies and
// neighbour advertisements the underlay bridge outputs to its internal
// ports (snoopNeigh), which changes the resolver and so the path.

// PathResolver finds the way to a tunnel's remote endpoint: the route
// and the next hop's neighbour entry. underlay.Table (the daemon's) and
// underlay.Resolver implement it.
type PathResolver interface {
	Lookup(remote netip.Addr) (underlay.Path, error)
}

// A PathResolver may also announce its changes and learn neighbours, as
// underlay.Table does: Tunnels then looks the paths up again when
// Changed's channel closes, and feeds the ARP and neighbour
// advertisement frames the underlay delivers to the cache.
type (
	changeNotifier interface{ Changed() <-chan struct{} }
	neighLearner   interface{ Neighbours() *underlay.NeighCache }
)

// TunnelPort is a vxlan or geneve port: a vport without a device whose
// output is encapsulated and whose input comes from decapsulation.
type TunnelPort struct {
	name string
	opts tunnel.Options
	dev  *vport.Device
	// paths are the resolved paths, by remote endpoint: an immutable
	// map, replaced by the Tunnels refresh.
	paths atomic.Pointer[map[netip.Addr]*tunnelPath]
}

var _ vport.Port = (*TunnelPort)(nil)

// NewTunnelPort returns a tunnel port named name with options opts
// (tunnel.ParseOptions). Its bridge must have been made with
// Config.Tunnels, which resolves its paths.
func NewTunnelPort(name string, opts tunnel.Options) (*TunnelPort, error) {
	if opts.Kind != tunnel.VXLAN && opts.Kind != tunnel.Geneve {
		return nil, fmt.Errorf("tunnel port %s: %w", name, tunnel.ErrKind)
	}
	dev, err := vport.NewDevice(name, vport.DummyLike, 1)
	if err != nil {
		return nil, fmt.Errorf("tunnel port %s: %w", name, err)
	}
	if err := dev.SetUp(); err != nil {
		return nil, fmt.Errorf("tunnel port %s: %w", name, err)
	}
	tp := &TunnelPort{name: name, opts: opts, dev: dev}
	empty := map[netip.Addr]*tunnelPath{}
	tp.paths.Store(&empty)
	return tp, nil
}

// Options returns the port's options.
func (tp *TunnelPort) Options() tunnel.Options { return tp.opts }

// Name, Device, BatchSize, RxQueues, TxQueues, Receive, Transmit,
// PrepareWait, Stats and Close make the port a vport.Port. It has no rx
// queue: what it receives is injected by decapsulation. Its output never
// reaches Transmit: the poll thread encapsulates it (tunnelPush).
func (tp *TunnelPort) Name() string          { return tp.name }
func (tp *TunnelPort) Device() *vport.Device { return tp.dev }
func (tp *TunnelPort) BatchSize() int        { return vport.MaxBatch }
func (tp *TunnelPort) RxQueues() int         { return 0 }
func (tp *TunnelPort) TxQueues() int         { return 1 }
func (tp *TunnelPort) Receive(int, [][]byte, []int, []vport.RxInfo) (int, error) {
	return 0, vport.ErrBadQueue
}
func (tp *TunnelPort) Transmit(int, [][]byte) (int, error) { return 0, vport.ErrNotSupported }
func (tp *TunnelPort) PrepareWait(int) (int, bool, error)  { return -1, false, vport.ErrBadQueue }
func (tp *TunnelPort) Stats() vport.Stats                  { return vport.Stats{} }
func (tp *TunnelPort) Close() error                        { return nil }

// path returns the resolved path to remote, or nil when it has not been
// looked up.
func (tp *TunnelPort) path(remote netip.Addr) *tunnelPath {
	return (*tp.paths.Load())[remote]
}

// tunnelPath is one remote endpoint's path, as last resolved. Immutable.
type tunnelPath struct {
	ok     bool
	reason DropReason // why output to the remote drops, when not ok
	err    error      // the lookup's error, when not ok

	bridge *Bridge // the underlay bridge
	port   *Port   // its internal port the route leaves through
	src    netip.Addr
	srcMAC [6]byte
	dstMAC [6]byte
	mtu    int
	path   underlay.Path

	// demand is set by a poll thread that dropped a packet because the
	// next hop is unknown: the refresh then solicits it again (rate
	// limited) and clears it.
	demand atomic.Bool
}

// TunnelsConfig configures the tunnel ports' paths.
type TunnelsConfig struct {
	// Resolver looks paths up. When nil, OpenResolver opens one the
	// first time there are tunnel ports to serve (and again at each
	// refresh until it succeeds); without either, no path resolves,
	// and tunnel output drops as tunnel-routing-failed.
	Resolver     PathResolver
	OpenResolver func() (PathResolver, error)
	// Refresh is how often every path is looked up again when nothing
	// announced a change: DefaultTunnelRefresh when zero, or
	// FollowedTunnelRefresh when the resolver announces its changes.
	Refresh time.Duration
	// Log receives path changes; slog.Default() when nil.
	Log *slog.Logger
}

// DefaultTunnelRefresh is how often the tunnel paths are looked up again
// through a resolver that does not announce its changes.
const DefaultTunnelRefresh = time.Second

// FollowedTunnelRefresh is how often they are looked up again through one
// that does (underlay.Table): a safety net, the changes refresh them.
const FollowedTunnelRefresh = 5 * time.Second

// neighRetry is how soon a path whose next hop was solicited is looked up
// again through a resolver that does not announce its changes.
const neighRetry = 200 * time.Millisecond

// solicitInterval is the least time between two solicitations of one
// next hop (Open vSwitch sends at most one ARP request per second too).
const solicitInterval = time.Second

// maxFlowRemotes bounds the remote endpoints a remote_ip=flow port keeps
// paths for.
const maxFlowRemotes = 1024

// Tunnels resolves the paths of the tunnel ports of a set of bridges and
// tells those bridges which packets to decapsulate. One serves a daemon.
type Tunnels struct {
	cfg TunnelsConfig
	log *slog.Logger

	// mu protects bridges and wants.
	mu      sync.Mutex
	bridges []*Bridge
	// wants are the remote endpoints that remote_ip=flow ports were
	// asked for.
	wants map[*TunnelPort]map[netip.Addr]bool

	want chan tunnelWant
	kick chan chan struct{}
	rx   atomic.Pointer[tunnelRx]
	stop chan struct{}
	done chan struct{}

	// Owned by the refresh goroutine.
	last      map[*TunnelPort]map[netip.Addr]string // the path last logged
	changed   <-chan struct{}                       // the resolver's, taken before the last lookups
	openErr   string                                // OpenResolver's last error, logged once
	solicits  solicitLimiter
	solicitTo []byte // the solicitation being built
}

type tunnelWant struct {
	tp     *TunnelPort
	remote netip.Addr
}

// NewTunnels starts the resolution of tunnel paths. Close stops it.
func NewTunnels(cfg TunnelsConfig) *Tunnels {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	t := &Tunnels{cfg: cfg, log: cfg.Log, wants: map[*TunnelPort]map[netip.Addr]bool{},
		want: make(chan tunnelWant, 64), kick: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
		last: map[*TunnelPort]map[netip.Addr]string{}, solicits: solicitLimiter{every: solicitInterval}}
	t.rx.Store(&tunnelRx{})
	go t.run()
	return t
}

// Close stops the resolution.
func (t *Tunnels) Close() {
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	<-t.done
}

// register makes b one of the bridges whose ports t serves.
func (t *Tunnels) register(b *Bridge) {
	t.mu.Lock()
	t.bridges = append(t.bridges, b)
	t.mu.Unlock()
}

// unregister forgets b.
func (t *Tunnels) unregister(b *Bridge) {
	t.mu.Lock()
	t.bridges = slices.DeleteFunc(t.bridges, func(x *Bridge) bool { return x == b })
	t.mu.Unlock()
	t.underlayGone() // its ports may have been the paths' underlay
}

// Refresh looks every path up again and returns once done: the daemon
// calls it after adding or removing a tunnel or internal port.
func (t *Tunnels) Refresh(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case t.kick <- done:
	case <-t.stop:
		return ErrStopped
	case <-ctx.Done():
		return fmt.Errorf("tunnel paths refresh: %w", ctx.Err())
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("tunnel paths refresh: %w", ctx.Err())
	}
}

// wantPath asks, from the packet path, for the path of a remote endpoint
// that tp has not resolved. It never blocks: a full queue loses the
// request, which the next packet repeats.
func (t *Tunnels) wantPath(tp *TunnelPort, remote netip.Addr) {
	select {
	case t.want <- tunnelWant{tp, remote}:
	default:
	}
}

// underlayGone asks for a refresh without waiting for it: a path's
// underlay port is no longer on its bridge, or a packet waits for a next
// hop to be solicited. It never blocks.
func (t *Tunnels) underlayGone() {
	select {
	case t.want <- tunnelWant{}:
	default:
	}
}

// neighWanted tells the refresh, from the packet path, that a packet
// dropped because path's next hop is unknown: the next hop is solicited
// again once its rate limit allows. Only the first packet since the last
// solicitation asks.
func (t *Tunnels) neighWanted(path *tunnelPath) {
	if !path.demand.Load() {
		path.demand.Store(true)
		t.underlayGone()
	}
}

func (t *Tunnels) run() {
	defer close(t.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		var done chan struct{}
		select {
		case <-t.stop:
			return
		case <-timer.C:
		case w := <-t.want:
			t.addWant(w)
		drain:
			for {
				select {
				case w := <-t.want:
					t.addWant(w)
				default:
					break drain
				}
			}
		case done = <-t.kick:
		case <-t.changed: // the resolver's routes or neighbours changed
		}
		next := t.refresh()
		if done != nil {
			close(done)
		}
		timer.Reset(next)
	}
}

func (t *Tunnels) addWant(w tunnelWant) {
	if w.tp == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.wants[w.tp]
	if m == nil {
		m = map[netip.Addr]bool{}
		t.wants[w.tp] = m
	}
	if len(m) < maxFlowRemotes {
		m[w.remote] = true
	}
}

// tunnelPortRef is a tunnel port found on a bridge.
type tunnelPortRef struct {
	bridge *Bridge
	port   *Port
	tp     *TunnelPort
}

// internalRef is an internal port found on a bridge.
type internalRef struct {
	bridge *Bridge
	port   *Port
	mtu    int
	addrs  []netip.Addr
}

// refresh looks every path up and publishes the paths and the
// decapsulation table. It returns when to refresh next.
func (t *Tunnels) refresh() time.Duration {
	t.mu.Lock()
	bridges := slices.Clone(t.bridges)
	t.mu.Unlock()

	var tps []tunnelPortRef
	for _, b := range bridges {
		for _, p := range b.ports.Load().list {
			if vp, ok := p.vp.(*TunnelPort); ok {
				tps = append(tps, tunnelPortRef{b, p, vp})
			}
		}
	}
	// The internal ports' addresses and MTUs, read only when there are
	// tunnels to serve.
	internals := map[string]*internalRef{}
	for _, b := range bridges {
		for _, p := range b.ports.Load().list {
			if _, ok := p.vp.(*vport.TapPort); ok && len(tps) > 0 {
				internals[p.Name] = readInternal(b, p)
			}
		}
	}

	t.mu.Lock()
	live := map[*TunnelPort]bool{}
	remotes := make([][]netip.Addr, len(tps))
	for i, r := range tps {
		live[r.tp] = true
		if r.tp.opts.Remote.IsValid() {
			remotes[i] = append(remotes[i], r.tp.opts.Remote)
		}
		for a := range t.wants[r.tp] {
			remotes[i] = append(remotes[i], a)
		}
	}
	for tp := range t.wants {
		if !live[tp] {
			delete(t.wants, tp)
		}
	}
	t.mu.Unlock()
	for tp := range t.last {
		if !live[tp] {
			delete(t.last, tp)
		}
	}

	if len(tps) > 0 {
		t.openResolver()
	}
	// The resolver's change channel, taken before the lookups: a change
	// during them closes it, and the paths are looked up again.
	followed := false
	if cn, ok := t.cfg.Resolver.(changeNotifier); ok {
		t.changed, followed = cn.Changed(), true
	}
	next := t.cfg.Refresh
	switch {
	case next > 0:
	case followed:
		next = FollowedTunnelRefresh
	default:
		next = DefaultTunnelRefresh
	}
	now := time.Now()
	t.solicits.expire(now)
	for i, r := range tps {
		m := make(map[netip.Addr]*tunnelPath, len(remotes[i]))
		old := *r.tp.paths.Load()
		for _, remote := range remotes[i] {
			tpath := t.resolve(r.tp, remote, internals)
			prev := old[remote]
			if prev != nil && prev.same(tpath) {
				// Kept as it was: the poll threads' cached
				// encapsulations of it stay valid.
				tpath = prev
			}
			if !tpath.ok && tpath.reason == DropTunnelNeighMiss {
				if wait := t.neighMiss(tpath, prev, internals[tpath.path.Dev], now); wait > 0 {
					next = min(next, wait)
				}
				if !followed {
					next = min(next, neighRetry)
				}
			}
			m[remote] = tpath
			t.logPath(r, remote, tpath)
		}
		r.tp.paths.Store(&m)
	}
	rx := newTunnelRx(tps, internals)
	if nl, ok := t.cfg.Resolver.(neighLearner); ok {
		rx.neigh = nl.Neighbours()
	}
	t.rx.Store(rx)
	return next
}

// openResolver opens the resolver through OpenResolver, if there is none
// yet; a failure is logged once and tried again at the next refresh.
func (t *Tunnels) openResolver() {
	if t.cfg.Resolver != nil || t.cfg.OpenResolver == nil {
		return
	}
	res, err := t.cfg.OpenResolver()
	if err != nil {
		if s := err.Error(); s != t.openErr {
			t.openErr = s
			t.log.Warn("tunnel ports cannot resolve their paths", "err", err)
		}
		return
	}
	t.cfg.Resolver, t.openErr = res, ""
}

// neighMiss solicits the next hop of tpath, a path whose next hop is
// unknown, when it newly is (prev, the path before, is another) or when
// a packet asked since the last solicitation (demand), as the rate limit
// allows; it returns how soon to look again when the limit held it back.
func (t *Tunnels) neighMiss(tpath, prev *tunnelPath, in *internalRef, now time.Time) time.Duration {
	if tpath == prev && !tpath.demand.Load() {
		return 0
	}
	if wait := t.solicit(tpath, in, now); wait > 0 {
		tpath.demand.Store(true) // solicited once the limit allows
		return wait
	}
	tpath.demand.Store(false)
	return 0
}

// solicit sends the ARP request or neighbour solicitation that resolves
// tpath's next hop into the underlay bridge, as received on the internal
// port in that the route leaves through, unless that next hop was
// solicited less than solicitInterval ago: it then returns how long to
// wait. It returns 0 when it sent one, or when none can be built or sent
// (logged).
func (t *Tunnels) solicit(tpath *tunnelPath, in *internalRef, now time.Time) time.Duration {
	p := tpath.path
	if in == nil || !p.NextHop.IsValid() {
		return 0
	}
	if wait := t.solicits.allow(p.NextHop, now); wait > 0 {
		return wait
	}
	if !p.Src.IsValid() || p.Src.Is4() != p.NextHop.Is4() {
		// A resolver that gives no source: the internal port's first
		// address of the next hop's family.
		for _, a := range in.addrs {
			if a.Is4() == p.NextHop.Is4() && !(a.Is6() && a.IsLinkLocalUnicast()) {
				p.Src = a
				break
			}
		}
	}
	b, err := underlay.AppendSolicit(t.solicitTo[:0], p)
	if err != nil {
		t.log.Warn("tunnel next hop not solicited", "next_hop", p.NextHop, "dev", p.Dev, "err", err)
		return 0
	}
	t.solicitTo = b
	if !in.bridge.injectWake(in.port, b, nil) {
		t.log.Warn("tunnel next hop not solicited: the underlay bridge's injection ring is full", "next_hop", p.NextHop, "bridge", in.bridge.Name())
		return 0
	}
	t.log.Debug("tunnel next hop solicited", "next_hop", p.NextHop, "dev", p.Dev, "src", p.Src)
	return 0
}

// solicitLimiter allows one solicitation per next hop per interval.
// Owned by the refresh goroutine; expire keeps it as small as the next
// hops solicited within the last interval.
type solicitLimiter struct {
	every time.Duration
	last  map[netip.Addr]time.Time
}

// allow reports 0 and records now if hop may be solicited at now, else
// how long until it may.
func (l *solicitLimiter) allow(hop netip.Addr, now time.Time) time.Duration {
	if at, ok := l.last[hop]; ok {
		if wait := at.Add(l.every).Sub(now); wait > 0 {
			return wait
		}
	}
	if l.last == nil {
		l.last = map[netip.Addr]time.Time{}
	}
	l.last[hop] = now
	return 0
}

// expire forgets the next hops that may be solicited again.
func (l *solicitLimiter) expire(now time.Time) {
	for hop, at := range l.last {
		if !now.Before(at.Add(l.every)) {
			delete(l.last, hop)
		}
	}
}

// readInternal reads an internal port's device: its MTU and addresses.
func readInternal(b *Bridge, p *Port) *internalRef {
	ref := &internalRef{bridge: b, port: p}
	ifi, err := net.InterfaceByName(p.Name)
	if err != nil {
		return ref
	}
	ref.mtu = ifi.MTU
	as, err := ifi.Addrs()
	if err != nil {
		return ref
	}
	for _, a := range as {
		if pfx, err := netip.ParsePrefix(a.String()); err == nil {
			ref.addrs = append(ref.addrs, pfx.Addr().Unmap())
		}
	}
	return ref
}

// resolve finds the path of tp to remote.
func (t *Tunnels) resolve(tp *TunnelPort, remote netip.Addr, internals map[string]*internalRef) *tunnelPath {
	if t.cfg.Resolver == nil {
		return &tunnelPath{reason: DropTunnelRouting, err: errors.New("no route resolver")}
	}
	path, err := t.cfg.Resolver.Lookup(remote)
	tpath := &tunnelPath{path: path, err: err}
	if err != nil && !errors.Is(err, underlay.ErrNoNeighbour) {
		tpath.reason = DropTunnelRouting
		return tpath
	}
	// The route must leave through one of the bridges' internal ports
	// (the next hop is solicited only there: never through a device
	// that is not the daemon's).
	in := internals[path.Dev]
	if in == nil {
		tpath.reason = DropTunnelRouting
		tpath.err = fmt.Errorf("route to %s leaves through %s, which is not an internal port of a bridge", remote, path.Dev)
		return tpath
	}
	tpath.bridge, tpath.port = in.bridge, in.port
	if err != nil {
		tpath.reason = DropTunnelNeighMiss
		return tpath
	}
	tpath.ok = true
	tpath.src = path.Src
	if tp.opts.Local.IsValid() {
		tpath.src = tp.opts.Local
	}
	tpath.srcMAC, tpath.dstMAC = path.SrcMAC, path.DstMAC
	tpath.mtu = in.mtu
	if tpath.mtu <= 0 {
		tpath.mtu = 1500
	}
	return tpath
}

// same reports whether p and q say the same about a path.
func (p *tunnelPath) same(q *tunnelPath) bool {
	return p.ok == q.ok && p.reason == q.reason && p.bridge == q.bridge && p.port == q.port && p.src == q.src &&
		p.srcMAC == q.srcMAC && p.dstMAC == q.dstMAC && p.mtu == q.mtu && p.path == q.path
}

// logPath logs a path when what it says changed.
func (t *Tunnels) logPath(r tunnelPortRef, remote netip.Addr, tpath *tunnelPath) {
	s := tpath.String()
	m := t.last[r.tp]
	if m == nil {
		m = map[netip.Addr]string{}
		t.last[r.tp] = m
	}
	if m[remote] == s {
		return
	}
	m[remote] = s
	if tpath.ok {
		t.log.Info("tunnel path", "bridge", r.bridge.Name(), "port", r.tp.name, "remote", remote, "path", s)
	} else {
		t.log.Warn("tunnel path unusable", "bridge", r.bridge.Name(), "port", r.tp.name, "remote", remote, "drop", tpath.reason, "err", tpath.err)
	}
}

// String writes the path as tnl/ports/show would.
func (tp *tunnelPath) String() string {
	if !tp.ok {
		return fmt.Sprintf("%s (%v)", tp.reason, tp.err)
	}
	return fmt.Sprintf("%s bridge %s mtu %d", tp.path, tp.bridge.Name(), tp.mtu)
}

// TunnelPath describes one tunnel port's path to a remote endpoint, for
// tnl/ports/show.
type TunnelPath struct {
	Bridge, Port string
	Remote       netip.Addr
	OK           bool
	Drop         DropReason // when not OK
	Detail       string
}

// Paths returns the tunnel ports' paths, by bridge, port and remote.
func (t *Tunnels) Paths() []TunnelPath {
	t.mu.Lock()
	bridges := slices.Clone(t.bridges)
	t.mu.Unlock()
	var out []TunnelPath
	for _, b := range bridges {
		for _, p := range b.ports.Load().list {
			tp, ok := p.vp.(*TunnelPort)
			if !ok {
				continue
			}
			for remote, tpath := range *tp.paths.Load() {
				out = append(out, TunnelPath{Bridge: b.Name(), Port: p.Name, Remote: remote, OK: tpath.ok, Drop: tpath.reason, Detail: tpath.String()})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Bridge != b.Bridge {
			return a.Bridge < b.Bridge
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Remote.Less(b.Remote)
	})
	return out
}
