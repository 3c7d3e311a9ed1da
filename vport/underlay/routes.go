package underlay

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Errors of the route table's commands.
var (
	// ErrNoSource: the route's device has no address on the route's
	// destination or gateway subnet, so a tunnel could not take a source
	// address from it (Open vSwitch refuses such a route too).
	ErrNoSource = errors.New("no source address for the route on its device")
	// ErrRouteNotFound: ovs/route/del names no route added with
	// ovs/route/add.
	ErrRouteNotFound = errors.New("route not found")
)

// Route is one entry of the route table, as Open vSwitch's ovs/route/show
// prints it: a route of the kernel ("Cached") or one added with
// ovs/route/add ("User").
type Route struct {
	Prefix  netip.Prefix // the destination, masked; IPv4 as IPv4
	Mark    uint32       // the packet mark it applies to (pkt_mark=); 0 for the kernel's
	Dev     string       // the output device
	Ifindex int          // its interface index
	Gw      netip.Addr   // the gateway; invalid for an on-link route
	Src     netip.Addr   // the source address a tunnel takes from the route
	Local   bool         // a local route: the destination is the host's own
	User    bool         // added with ovs/route/add
}

// bits6 is the prefix length as Open vSwitch counts it: IPv4 prefixes
// are IPv4-mapped IPv6 prefixes, 96 bits longer.
func (r *Route) bits6() int {
	if r.Prefix.Addr().Is4() {
		return r.Prefix.Bits() + 96
	}
	return r.Prefix.Bits()
}

// priority is the route's rank in Open vSwitch's route classifier: the
// longer prefix first; a route added by the user before the kernel's of
// the same length, a local route before both.
func (r *Route) priority() int {
	switch {
	case r.Local:
		return r.bits6() + 64
	case r.User:
		return r.bits6() + 32
	}
	return r.bits6()
}

// kernelRoute is what the table takes from one of the kernel's routes
// (RTM_NEWROUTE): only unicast and local routes with an output device,
// of any table, as Open vSwitch's route-table.c takes them.
type kernelRoute struct {
	Dst     netip.Prefix
	Gw      netip.Addr
	Ifindex int
	Local   bool
}

// link is what the table keeps about one of the namespace's devices.
type link struct {
	Name  string
	MAC   [6]byte
	Ether bool           // MAC is an Ethernet address
	Addrs []netip.Prefix // its addresses with their prefix lengths, in the kernel's order
	MTU   int            // its MTU, which a tunnel path takes: a change of it is a change
}

// routeKey identifies a route in the classifier: the same destination,
// mark and priority replace one another, the later winning.
type routeKey struct {
	prefix   netip.Prefix
	mark     uint32
	priority int
}

// buildRoutes turns the kernel's routes, in the order the kernel dumped
// them, and the user's into the table's entries in ovs/route/show's
// order. A kernel route whose device is unknown or has no usable source
// address is left out, as Open vSwitch leaves it out.
func buildRoutes(krs []kernelRoute, user []Route, links map[int]*link) []Route {
	out := make([]Route, 0, len(krs)+len(user))
	index := make(map[routeKey]int, len(krs)+len(user))
	add := func(r Route) {
		k := routeKey{r.Prefix, r.Mark, r.priority()}
		if i, ok := index[k]; ok {
			out[i] = r
			return
		}
		index[k] = len(out)
		out = append(out, r)
	}
	for _, kr := range krs {
		l := links[kr.Ifindex]
		if l == nil {
			continue
		}
		src, ok := routeSource(kr.Dst.Addr(), kr.Gw, l.Addrs)
		if !ok {
			continue
		}
		add(Route{Prefix: kr.Dst.Masked(), Dev: l.Name, Ifindex: kr.Ifindex, Gw: kr.Gw, Src: src, Local: kr.Local})
	}
	for _, r := range user {
		r.Ifindex = 0 // the device's index now, if it is there
		for i, l := range links {
			if l.Name == r.Dev {
				r.Ifindex = i
			}
		}
		add(r)
	}
	sortRoutes(out)
	return out
}

// sortRoutes puts routes in ovs/route/show's order. Open vSwitch prints
// its classifier's subtables, one per prefix length, the subtable with
// the highest priority first; within one it prints in hash order, for
// which this prints IPv4 before IPv6, then by address.
func sortRoutes(rs []Route) {
	top := map[int]int{} // prefix length → its subtable's highest priority
	for i := range rs {
		b := rs[i].bits6()
		top[b] = max(top[b], rs[i].priority())
	}
	slices.SortStableFunc(rs, func(a, b Route) int {
		ab, bb := a.bits6(), b.bits6()
		if c := cmp.Compare(top[bb], top[ab]); c != 0 {
			return c
		}
		if c := cmp.Compare(bb, ab); c != 0 {
			return c
		}
		if a.Prefix.Addr().Is4() != b.Prefix.Addr().Is4() {
			if a.Prefix.Addr().Is4() {
				return -1
			}
			return 1
		}
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		if c := cmp.Compare(b.priority(), a.priority()); c != 0 {
			return c
		}
		return cmp.Compare(a.Mark, b.Mark)
	})
}

// routeSource picks a route's source address as Open vSwitch does: the
// device's address whose subnet holds the destination, the longest
// such subnet first; failing that, the one whose subnet holds the
// gateway. Addresses compare as IPv4-mapped IPv6 addresses with
// IPv4-mapped masks, so an IPv4 destination looks only at IPv4
// addresses.
func routeSource(dst, gw netip.Addr, addrs []netip.Prefix) (netip.Addr, bool) {
	if src, ok := sourceFor(dst, addrs); ok {
		return src, true
	}
	if gw.IsValid() && !gw.IsUnspecified() {
		return sourceFor(gw, addrs)
	}
	return netip.Addr{}, false
}

func sourceFor(dst netip.Addr, addrs []netip.Prefix) (netip.Addr, bool) {
	d := dst.As16()
	is4 := dst.Is4()
	best, bestBits := netip.Addr{}, -1
	for _, a := range addrs {
		if is4 && !a.Addr().Is4() {
			continue
		}
		mask := mask16(a)
		x := a.Addr().As16()
		same := true
		for i := range 16 {
			if d[i]&mask[i] != x[i]&mask[i] {
				same = false
				break
			}
		}
		bits := a.Bits()
		if a.Addr().Is4() {
			bits += 16 // the mapped mask's ffff
		}
		if same && bits > bestBits {
			best, bestBits = a.Addr(), bits
		}
	}
	return best, bestBits >= 0
}

// mask16 is an address's mask in Open vSwitch's form: an IPv6 mask, or
// for IPv4 the IPv4-mapped form of the IPv4 mask (::ffff:255.255.255.0).
func mask16(a netip.Prefix) [16]byte {
	var m [16]byte
	bits := a.Bits()
	off := 0
	if a.Addr().Is4() {
		m[10], m[11] = 0xff, 0xff
		off = 12
	}
	for i := 0; i < bits; i++ {
		m[off+i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// userRoute checks a route for ovs/route/add and gives it its source
// address from its device's addresses, as Open vSwitch does when the
// route is added.
func userRoute(prefix netip.Prefix, dev string, gw netip.Addr, mark uint32, links map[int]*link) (Route, error) {
	if !prefix.IsValid() {
		return Route{}, fmt.Errorf("route %s: invalid prefix", prefix)
	}
	prefix = netip.PrefixFrom(prefix.Addr().Unmap(), prefix.Bits())
	if gw.IsValid() {
		gw = gw.Unmap()
		if gw.Is4() != prefix.Addr().Is4() {
			return Route{}, fmt.Errorf("route %s: gateway %s is of the other family", prefix, gw)
		}
		if gw.IsUnspecified() {
			gw = netip.Addr{}
		}
	}
	r := Route{Prefix: prefix.Masked(), Mark: mark, Dev: dev, Gw: gw, User: true}
	for i, l := range links {
		if l.Name != dev {
			continue
		}
		r.Ifindex = i
		src, ok := routeSource(prefix.Addr(), gw, l.Addrs)
		if !ok {
			return Route{}, fmt.Errorf("route %s dev %s: %w", prefix, dev, ErrNoSource)
		}
		r.Src = src
		return r, nil
	}
	return Route{}, fmt.Errorf("route %s dev %s: no such device: %w", prefix, dev, ErrNoSource)
}
