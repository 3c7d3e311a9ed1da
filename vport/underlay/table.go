package underlay

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/vport/nldump"
)

// TableConfig configures a Table.
type TableConfig struct {
	// Namespace is the path of the network namespace to follow (such as
	// /run/netns/NAME); "" follows the calling thread's.
	Namespace string
	// Logger receives the table's resynchronisations and netlink errors.
	Logger *slog.Logger
	// Now is the neighbour cache's clock; time.Now if nil.
	Now func() time.Time
	// ReceiveBuffer, if set, is the size of the netlink subscriptions'
	// receive buffers (tests make it small to overflow it).
	ReceiveBuffer int
}

// Table is one network namespace's routes, devices and neighbours as the
// kernel has them, kept current by netlink notifications, together with
// the routes the operator added (ovs/route/add) and ovsxdp's own tunnel
// neighbour cache: Open vSwitch's ovs-router and tnl-neigh-cache for a
// userspace datapath. Lookups read an immutable snapshot published
// atomically and neither lock nor allocate, so a tunnel port may call
// Lookup from a poll thread; the Generation moves, and Changed's channel
// closes, whenever a lookup's answer may have changed.
//
// The table follows the kernel as Open vSwitch does: any route, address
// or device change makes it list the kernel's routes (every table's
// unicast and local routes), devices, addresses and neighbours again and
// publish a new snapshot, a burst of changes coalesced into one listing;
// neighbour notifications alone are applied as they come. A notification
// socket that overflows (ENOBUFS) or fails is opened again and everything
// listed again, so a lost notification is never a stale route. The
// sockets are opened before the first listing, so no change falls
// between (what ListExisting would give, but for all four at once).
type Table struct {
	log  *slog.Logger
	ns   netns.NsHandle // the namespace followed; closed by Close
	h    *netlink.Handle
	rbuf int

	snap  atomic.Pointer[snapshot]
	neigh *NeighCache

	// mu serialises building and publishing snapshots; it guards user
	// and kernel.
	mu     sync.Mutex
	user   []Route       // the ovs/route/add routes, in the order they were added
	kernel []kernelRoute // the kernel's routes as last listed

	// chMu guards changed, the channel closed at the next change; gen
	// counts the changes.
	chMu    sync.Mutex
	changed chan struct{}
	gen     atomic.Uint64

	resyncs atomic.Uint64
	// breakSub, in tests, ends the route subscription as an overflow
	// would.
	breakSub chan struct{}

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// snapshot is what Lookup reads: never changed once published.
type snapshot struct {
	routes  []Route
	buckets []bucket
	links   map[int]*link
	neighs  map[kernelNeigh][6]byte
}

// bucket holds the routes of one family, prefix length and priority that
// apply to every packet mark (mark 0), by masked prefix, as indexes into
// snapshot.routes.
type bucket struct {
	is4      bool
	bits     int
	priority int
	routes   map[netip.Prefix]int
}

// kernelNeigh keys the kernel's usable neighbour entries.
type kernelNeigh struct {
	ifindex int
	ip      netip.Addr
}

// NewTable lists the namespace's routes, devices and neighbours and
// starts following their changes, until Close.
func NewTable(cfg TableConfig) (*Table, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &Table{log: cfg.Logger, rbuf: cfg.ReceiveBuffer, changed: make(chan struct{}),
		breakSub: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	t.neigh = NewNeighCache(cfg.Now, t.bump)
	var err error
	if cfg.Namespace == "" {
		// The calling thread's namespace, held open: the table's
		// goroutines may run on threads of other namespaces.
		t.ns, err = netns.Get()
	} else {
		t.ns, err = netns.GetFromPath(cfg.Namespace)
	}
	if err != nil {
		return nil, fmt.Errorf("route table in %q: %w", cfg.Namespace, err)
	}
	t.h, err = netlink.NewHandleAt(t.ns)
	if err != nil {
		t.closeNS()
		return nil, fmt.Errorf("route table in %q: %w", cfg.Namespace, err)
	}
	// Subscribe first and list after, so that no change falls between.
	subs, err := t.subscribe()
	if err != nil {
		t.h.Close()
		t.closeNS()
		return nil, fmt.Errorf("route table in %q: %w", cfg.Namespace, err)
	}
	if err := t.resync(); err != nil {
		subs.close()
		t.h.Close()
		t.closeNS()
		return nil, fmt.Errorf("route table in %q: %w", cfg.Namespace, err)
	}
	go t.run(subs)
	return t, nil
}

func (t *Table) closeNS() {
	if t.ns.IsOpen() {
		t.ns.Close()
	}
}

// Close stops following the kernel and releases the netlink sockets; the
// last snapshot stays readable.
func (t *Table) Close() error {
	t.closeOnce.Do(func() {
		close(t.stop)
		<-t.done
		t.h.Close()
		t.closeNS()
	})
	return nil
}

// Neighbours returns the table's tunnel neighbour cache, which Lookup
// consults when the kernel has no entry for a next hop.
func (t *Table) Neighbours() *NeighCache { return t.neigh }

// Generation counts the changes to what Lookup answers: routes,
// devices (and their MTUs), the kernel's neighbours and the tunnel
// neighbour cache.
func (t *Table) Generation() uint64 { return t.gen.Load() }

// Changed returns a channel that is closed at the next change.
func (t *Table) Changed() <-chan struct{} {
	t.chMu.Lock()
	defer t.chMu.Unlock()
	return t.changed
}

// Resyncs counts the times a notification socket failed (overflowed) and
// the table was listed again from scratch.
func (t *Table) Resyncs() uint64 { return t.resyncs.Load() }

func (t *Table) bump() {
	t.chMu.Lock()
	t.gen.Add(1)
	close(t.changed)
	t.changed = make(chan struct{})
	t.chMu.Unlock()
}

// Routes returns the table's routes in ovs/route/show's order.
func (t *Table) Routes() []Route { return slices.Clone(t.snap.Load().routes) }

// Lookup returns the path to remote: the longest-prefix route (a local
// route before a user's, a user's before the kernel's of the same
// length), its device's address, and the next hop's link-layer address
// from the kernel's neighbour table or else from the tunnel neighbour
// cache. It fails with ErrNoRoute, with ErrNotEthernet (the device has
// no Ethernet address), or with ErrNoNeighbour, when the path is known
// but for the next hop's address: the caller may then resolve it
// (AppendSolicit). The errors are the sentinels themselves: Lookup
// neither locks nor allocates.
func (t *Table) Lookup(remote netip.Addr) (Path, error) {
	remote = remote.Unmap()
	s := t.snap.Load()
	r := s.route(remote)
	if r == nil {
		return Path{}, ErrNoRoute
	}
	return t.path(s, r, remote)
}

// LookupRoute returns the route Lookup takes to remote
// (ovs/route/lookup), if there is one.
func (t *Table) LookupRoute(remote netip.Addr) (Route, bool) {
	r := t.snap.Load().route(remote.Unmap())
	if r == nil {
		return Route{}, false
	}
	return *r, true
}

// route returns the route to remote: the first bucket, in priority
// order, that holds remote's prefix.
func (s *snapshot) route(remote netip.Addr) *Route {
	is4 := remote.Is4()
	for i := range s.buckets {
		b := &s.buckets[i]
		if b.is4 != is4 {
			continue
		}
		pfx, err := remote.Prefix(b.bits)
		if err != nil {
			continue
		}
		if j, ok := b.routes[pfx]; ok {
			return &s.routes[j]
		}
	}
	return nil
}

func (t *Table) path(s *snapshot, r *Route, remote netip.Addr) (Path, error) {
	p := Path{Dev: r.Dev, Ifindex: r.Ifindex, Src: r.Src, NextHop: remote}
	if r.Gw.IsValid() {
		p.NextHop = r.Gw
	}
	l := s.links[r.Ifindex]
	if l == nil || !l.Ether {
		return p, ErrNotEthernet
	}
	p.SrcMAC = l.MAC
	if mac, ok := s.neighs[kernelNeigh{r.Ifindex, p.NextHop}]; ok {
		p.DstMAC = mac
		return p, nil
	}
	if mac, ok := t.neigh.Lookup(r.Dev, p.NextHop); ok {
		p.DstMAC = mac
		return p, nil
	}
	return p, ErrNoNeighbour
}

// AddRoute adds a route as ovs/route/add does: prefix through dev, via gw
// if it is valid, for packets of mark (0: all). Its source address is
// dev's address on the prefix's (or else the gateway's) subnet, now;
// without one the route is refused (ErrNoSource). It replaces a route
// added before for the same prefix and mark.
func (t *Table) AddRoute(prefix netip.Prefix, dev string, gw netip.Addr, mark uint32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, err := userRoute(prefix, dev, gw, mark, t.snap.Load().links)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(t.user, func(u Route) bool { return u.Prefix == r.Prefix && u.Mark == r.Mark })
	if i >= 0 {
		t.user[i] = r
	} else {
		t.user = append(t.user, r)
	}
	t.publishLocked(t.kernel, t.snap.Load().links, t.snap.Load().neighs)
	return nil
}

// DelRoute deletes the route that ovs/route/add added for prefix and mark
// (ErrRouteNotFound if there is none).
func (t *Table) DelRoute(prefix netip.Prefix, mark uint32) error {
	if !prefix.IsValid() {
		return fmt.Errorf("route %s: invalid prefix", prefix)
	}
	prefix = netip.PrefixFrom(prefix.Addr().Unmap(), prefix.Bits()).Masked()
	t.mu.Lock()
	defer t.mu.Unlock()
	i := slices.IndexFunc(t.user, func(u Route) bool { return u.Prefix == prefix && u.Mark == mark })
	if i < 0 {
		return fmt.Errorf("route %s: %w", prefix, ErrRouteNotFound)
	}
	t.user = slices.Delete(t.user, i, i+1)
	t.publishLocked(t.kernel, t.snap.Load().links, t.snap.Load().neighs)
	return nil
}

// resync lists everything again and publishes it.
func (t *Table) resync() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	links, err := t.listLinks()
	if err != nil {
		return err
	}
	krs, err := t.listRoutes()
	if err != nil {
		return err
	}
	neighs, err := t.listNeighs()
	if err != nil {
		return err
	}
	t.kernel = krs
	t.publishLocked(krs, links, neighs)
	return nil
}

// publishLocked builds a snapshot and publishes it, announcing a change
// if it differs from the last. t.mu must be held.
func (t *Table) publishLocked(krs []kernelRoute, links map[int]*link, neighs map[kernelNeigh][6]byte) {
	s := &snapshot{routes: buildRoutes(krs, t.user, links), links: links, neighs: neighs}
	idx := map[[3]int]int{}
	for i := range s.routes {
		r := &s.routes[i]
		if r.Mark != 0 {
			continue
		}
		is4 := 0
		if r.Prefix.Addr().Is4() {
			is4 = 1
		}
		k := [3]int{is4, r.Prefix.Bits(), r.priority()}
		j, ok := idx[k]
		if !ok {
			j = len(s.buckets)
			idx[k] = j
			s.buckets = append(s.buckets, bucket{is4: is4 == 1, bits: r.Prefix.Bits(), priority: r.priority(), routes: map[netip.Prefix]int{}})
		}
		s.buckets[j].routes[r.Prefix] = i
	}
	slices.SortFunc(s.buckets, func(a, b bucket) int {
		if a.priority != b.priority {
			return b.priority - a.priority
		}
		return b.bits - a.bits
	})
	old := t.snap.Swap(s)
	if old == nil || !sameSnapshot(old, s) {
		t.bump()
	}
}

func sameSnapshot(a, b *snapshot) bool {
	return slices.Equal(a.routes, b.routes) && maps.Equal(a.neighs, b.neighs) &&
		maps.EqualFunc(a.links, b.links, func(x, y *link) bool {
			return x.Name == y.Name && x.MAC == y.MAC && x.Ether == y.Ether && x.MTU == y.MTU && slices.Equal(x.Addrs, y.Addrs)
		})
}

func (t *Table) listLinks() (map[int]*link, error) {
	ls, err := nldump.Retry(t.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	as, err := nldump.Retry(func() ([]netlink.Addr, error) { return t.h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	out := make(map[int]*link, len(ls))
	for _, l := range ls {
		a := l.Attrs()
		x := &link{Name: a.Name, MTU: a.MTU}
		if len(a.HardwareAddr) == 6 && a.EncapType != "loopback" {
			x.MAC, x.Ether = [6]byte(a.HardwareAddr), true
		}
		out[a.Index] = x
	}
	for _, a := range as {
		x := out[a.LinkIndex]
		if x == nil || a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		x.Addrs = append(x.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}

func (t *Table) listRoutes() ([]kernelRoute, error) {
	rs, err := nldump.Retry(func() ([]netlink.Route, error) {
		return t.h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	out := make([]kernelRoute, 0, len(rs))
	for _, r := range rs {
		if kr, ok := fromNetlink(r); ok {
			out = append(out, kr)
		}
	}
	return out, nil
}

// fromNetlink takes a kernel route as Open vSwitch's route-table.c does:
// unicast and local routes of any table with a scope and an output
// device.
func fromNetlink(r netlink.Route) (kernelRoute, bool) {
	if (r.Type != unix.RTN_UNICAST && r.Type != unix.RTN_LOCAL) || r.Scope == netlink.SCOPE_NOWHERE || r.LinkIndex <= 0 {
		return kernelRoute{}, false
	}
	kr := kernelRoute{Ifindex: r.LinkIndex, Local: r.Type == unix.RTN_LOCAL}
	switch {
	case r.Dst != nil:
		ip, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			return kernelRoute{}, false
		}
		ones, _ := r.Dst.Mask.Size()
		kr.Dst = netip.PrefixFrom(ip.Unmap(), ones)
	case r.Family == unix.AF_INET:
		kr.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case r.Family == unix.AF_INET6:
		kr.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	default:
		return kernelRoute{}, false
	}
	if gw, ok := netip.AddrFromSlice(r.Gw); ok && !gw.IsUnspecified() {
		kr.Gw = gw.Unmap()
	}
	return kr, true
}

func (t *Table) listNeighs() (map[kernelNeigh][6]byte, error) {
	out := map[kernelNeigh][6]byte{}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := nldump.Retry(func() ([]netlink.Neigh, error) { return t.h.NeighList(0, family) })
		if err != nil {
			return nil, fmt.Errorf("list neighbours: %w", err)
		}
		for _, n := range ns {
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok || len(n.HardwareAddr) != 6 || !usable(n.State) {
				continue
			}
			out[kernelNeigh{n.LinkIndex, ip.Unmap()}] = [6]byte(n.HardwareAddr)
		}
	}
	return out, nil
}

// subscription is the table's four netlink notification sockets. A
// channel closes when its socket fails (an overflow: ENOBUFS) or after
// done is closed.
type subscription struct {
	done     chan struct{}
	stopOnce sync.Once
	routes   chan netlink.RouteUpdate
	neighs   chan netlink.NeighUpdate
	links    chan netlink.LinkUpdate
	addrs    chan netlink.AddrUpdate
}

// events is how many notifications wait in a subscription's channel.
const events = 256

func (t *Table) subscribe() (*subscription, error) {
	s := &subscription{done: make(chan struct{})}
	cb := func(kind string) func(error) {
		return func(err error) {
			select {
			case <-s.done: // the socket closed because we closed it
			default:
				t.log.Warn("netlink notification socket", "kind", kind, "err", err)
			}
		}
	}
	ns := &t.ns
	routes := make(chan netlink.RouteUpdate, events)
	err := netlink.RouteSubscribeWithOptions(routes, s.done, netlink.RouteSubscribeOptions{Namespace: ns, ErrorCallback: cb("route"), ReceiveBufferSize: t.rbuf, ReceiveBufferForceSize: t.rbuf != 0})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("subscribe to routes: %w", err)
	}
	s.routes = routes
	neighs := make(chan netlink.NeighUpdate, events)
	err = netlink.NeighSubscribeWithOptions(neighs, s.done, netlink.NeighSubscribeOptions{Namespace: ns, ErrorCallback: cb("neighbour"), ReceiveBufferSize: t.rbuf, ReceiveBufferForceSize: t.rbuf != 0})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("subscribe to neighbours: %w", err)
	}
	s.neighs = neighs
	links := make(chan netlink.LinkUpdate, events)
	err = netlink.LinkSubscribeWithOptions(links, s.done, netlink.LinkSubscribeOptions{Namespace: ns, ErrorCallback: cb("link"), ReceiveBufferSize: t.rbuf, ReceiveBufferForceSize: t.rbuf != 0})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("subscribe to devices: %w", err)
	}
	s.links = links
	addrs := make(chan netlink.AddrUpdate, events)
	err = netlink.AddrSubscribeWithOptions(addrs, s.done, netlink.AddrSubscribeOptions{Namespace: ns, ErrorCallback: cb("address"), ReceiveBufferSize: t.rbuf, ReceiveBufferForceSize: t.rbuf != 0})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("subscribe to addresses: %w", err)
	}
	s.addrs = addrs
	return s, nil
}

// end closes the sockets; their channels close after.
func (s *subscription) end() { s.stopOnce.Do(func() { close(s.done) }) }

// close closes the sockets and waits for their receivers to end.
func (s *subscription) close() {
	s.end()
	drain(s.routes)
	drain(s.neighs)
	drain(s.links)
	drain(s.addrs)
}

func drain[T any](ch chan T) {
	if ch == nil {
		return
	}
	for range ch {
	}
}

// run follows the notifications until Close, and expires the tunnel
// neighbour cache's entries every second.
func (t *Table) run(s *subscription) {
	defer close(t.done)
	defer func() {
		if s != nil {
			s.close()
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	retry := time.NewTimer(0)
	<-retry.C
	var b batch
	for {
		ok := false
		b.full, b.neighs = false, b.neighs[:0]
		if s == nil {
			// Resubscribing failed: try again a little later.
			select {
			case <-t.stop:
				return
			case <-tick.C:
				t.neigh.Expire()
				continue
			case <-retry.C:
				s = t.resubscribe(retry)
				continue
			}
		}
		select {
		case <-t.stop:
			return
		case <-tick.C:
			t.neigh.Expire()
			continue
		case <-t.breakSub:
			s.end()
			continue
		case _, ok = <-s.routes:
			b.full = true
		case u, k := <-s.neighs:
			if ok = k; ok {
				b.neighs = append(b.neighs, u)
			}
		case _, ok = <-s.links:
			b.full = true
		case _, ok = <-s.addrs:
			b.full = true
		}
		if ok {
			ok = s.pending(&b)
		}
		if !ok {
			// A socket failed: what it would have said is lost.
			t.resyncs.Add(1)
			t.log.Info("netlink notifications lost; listing the routes and neighbours again")
			s.close()
			s = t.resubscribe(retry)
			continue
		}
		if b.full {
			if err := t.resync(); err != nil {
				t.log.Warn("route table listing", "err", err)
			}
		} else if len(b.neighs) > 0 {
			t.applyNeighs(b.neighs)
		}
	}
}

// batch is a burst of notifications: whether any concerned routes,
// devices or addresses, which make the table list everything again, and
// the neighbour updates, applied as they are otherwise.
type batch struct {
	full   bool
	neighs []netlink.NeighUpdate
}

// applyNeighs publishes the snapshot with the kernel's neighbour entries
// updated, if that changes them.
func (t *Table) applyNeighs(us []netlink.NeighUpdate) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.snap.Load()
	m := maps.Clone(old.neighs)
	for _, u := range us {
		if u.Family != unix.AF_INET && u.Family != unix.AF_INET6 {
			continue // bridge forwarding entries come this way too
		}
		ip, ok := netip.AddrFromSlice(u.IP)
		if !ok {
			continue
		}
		k := kernelNeigh{u.LinkIndex, ip.Unmap()}
		if u.Type == unix.RTM_NEWNEIGH && len(u.HardwareAddr) == 6 && usable(u.State) {
			m[k] = [6]byte(u.HardwareAddr)
		} else {
			delete(m, k)
		}
	}
	if maps.Equal(m, old.neighs) {
		return
	}
	s := *old
	s.neighs = m
	t.snap.Store(&s)
	t.bump()
}

// resubscribe opens the sockets again and lists everything; on failure
// it arms retry and returns nil.
func (t *Table) resubscribe(retry *time.Timer) *subscription {
	s, err := t.subscribe()
	if err == nil {
		if err = t.resync(); err == nil {
			return s
		}
		s.close()
	}
	t.log.Warn("route table resubscription", "err", err)
	retry.Reset(time.Second)
	return nil
}

// pending takes the notifications already waiting into b, so that a
// burst makes one listing, and reports false if a socket failed
// meanwhile.
func (s *subscription) pending(b *batch) bool {
	for range 4 * events {
		select {
		case _, ok := <-s.routes:
			if !ok {
				return false
			}
			b.full = true
		case u, ok := <-s.neighs:
			if !ok {
				return false
			}
			b.neighs = append(b.neighs, u)
		case _, ok := <-s.links:
			if !ok {
				return false
			}
			b.full = true
		case _, ok := <-s.addrs:
			if !ok {
				return false
			}
			b.full = true
		default:
			return true
		}
	}
	return true
}
