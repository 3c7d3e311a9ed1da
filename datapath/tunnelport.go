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
// kernel's routing and neighbour tables give (the output device, the
// source address, the next hop's MAC), refreshed periodically, when a
// packet asks for a remote it has not resolved, and when the underlay
// port it names is gone; the packet path only reads it. A next hop
// without a neighbour entry is probed: a datagram to its discard port
// makes the kernel resolve it (ARP or neighbour solicitation out of the
// internal port), and the path is looked up again shortly after.

// PathResolver finds the way to a tunnel's remote endpoint: the route
// and the next hop's neighbour entry. underlay.Resolver implements it.
type PathResolver interface {
	Lookup(remote netip.Addr) (underlay.Path, error)
}

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
}

// TunnelsConfig configures the tunnel ports' paths.
type TunnelsConfig struct {
	// Resolver looks paths up; nil: no path resolves, and tunnel
	// output drops as tunnel-routing-failed.
	Resolver PathResolver
	// Refresh is how often every path is looked up again
	// (DefaultTunnelRefresh when zero).
	Refresh time.Duration
	// Log receives path changes; slog.Default() when nil.
	Log *slog.Logger
}

// DefaultTunnelRefresh is how often the tunnel paths are looked up again.
const DefaultTunnelRefresh = time.Second

// neighRetry is how soon a path whose next hop was probed is looked up
// again.
const neighRetry = 200 * time.Millisecond

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
	last map[*TunnelPort]map[netip.Addr]string // the path last logged
}

type tunnelWant struct {
	tp     *TunnelPort
	remote netip.Addr
}

// NewTunnels starts the resolution of tunnel paths. Close stops it.
func NewTunnels(cfg TunnelsConfig) *Tunnels {
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultTunnelRefresh
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	t := &Tunnels{cfg: cfg, log: cfg.Log, wants: map[*TunnelPort]map[netip.Addr]bool{},
		want: make(chan tunnelWant, 64), kick: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
		last: map[*TunnelPort]map[netip.Addr]string{}}
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
// underlay port is no longer on its bridge. It never blocks.
func (t *Tunnels) underlayGone() {
	select {
	case t.want <- tunnelWant{}:
	default:
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

	next := t.cfg.Refresh
	probed := map[netip.Addr]bool{}
	for i, r := range tps {
		m := make(map[netip.Addr]*tunnelPath, len(remotes[i]))
		old := *r.tp.paths.Load()
		for _, remote := range remotes[i] {
			tpath := t.resolve(r.tp, remote, internals)
			if prev := old[remote]; prev != nil && prev.same(tpath) {
				// Kept as it was: the poll threads' cached
				// encapsulations of it stay valid.
				tpath = prev
			}
			if !tpath.ok && tpath.reason == DropTunnelNeighMiss {
				if hop := tpath.path.NextHop; hop.IsValid() && !probed[hop] {
					probed[hop] = true
					probeNeighbour(hop)
				}
				next = min(next, neighRetry)
			}
			m[remote] = tpath
			t.logPath(r, remote, tpath)
		}
		r.tp.paths.Store(&m)
	}
	t.rx.Store(newTunnelRx(tps, internals))
	return next
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
	// (the next hop is probed only there: never through a device that
	// is not the daemon's).
	in := internals[path.Dev]
	if in == nil {
		tpath.reason = DropTunnelRouting
		tpath.err = fmt.Errorf("route to %s leaves through %s, which is not an internal port of a bridge", remote, path.Dev)
		return tpath
	}
	if err != nil {
		tpath.reason = DropTunnelNeighMiss
		return tpath
	}
	tpath.ok = true
	tpath.bridge, tpath.port = in.bridge, in.port
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

// probeNeighbour makes the kernel resolve hop's link-layer address: an
// empty datagram to its discard port needs it, so the kernel sends an ARP
// request or a neighbour solicitation out of the route's device.
func probeNeighbour(hop netip.Addr) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(hop, 9)))
	if err != nil {
		return
	}
	c.Write(nil) //nolint:errcheck // a probe: the neighbour lookup tells
	c.Close()
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
