package underlay

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FormatRoutes prints routes as Open vSwitch 3.1's ovs/route/show does:
//
//	Route Table:
//	Cached: 192.0.2.0/24 dev br0 SRC 192.0.2.1
//	Cached: 198.51.100.0/24 dev br0 GW 192.0.2.254 SRC 192.0.2.1
//	User: 10.9.0.0/16 MARK 7 dev br0 GW 192.0.2.7 SRC 192.0.2.1
//	Cached: 192.0.2.1/32 dev br0 SRC 192.0.2.1 local
func FormatRoutes(rs []Route) string {
	var b strings.Builder
	b.WriteString("Route Table:\n")
	for i := range rs {
		r := &rs[i]
		if r.User && !r.Local {
			b.WriteString("User: ")
		} else {
			b.WriteString("Cached: ")
		}
		fmt.Fprintf(&b, "%s/%d", FormatAddr(r.Prefix.Addr()), r.Prefix.Bits())
		if r.Mark != 0 {
			fmt.Fprintf(&b, " MARK %d", r.Mark)
		}
		fmt.Fprintf(&b, " dev %s", r.Dev)
		if r.Gw.IsValid() && !r.Gw.IsUnspecified() {
			fmt.Fprintf(&b, " GW %s", FormatAddr(r.Gw))
		}
		fmt.Fprintf(&b, " SRC %s", FormatAddr(r.Src))
		if r.Local {
			b.WriteString(" local")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// neighAddrWidth is the column of tnl/neigh/show's addresses: Open
// vSwitch pads them to INET6_ADDRSTRLEN.
const neighAddrWidth = 46

// FormatNeighbours prints the tunnel neighbour cache's entries as Open
// vSwitch 3.1's tnl/neigh/show does; an entry that expired by now (and is
// not swept yet) is marked STALE.
//
//	IP                                            MAC                 Bridge
//	==========================================================================
//	192.0.2.9                                     02:00:00:00:00:09   br0
func FormatNeighbours(es []NeighEntry, now time.Time) string {
	var b strings.Builder
	b.WriteString("IP                                            MAC                 Bridge\n")
	b.WriteString("==========================================================================\n")
	for _, e := range es {
		ip := FormatAddr(e.IP)
		b.WriteString(ip)
		for n := len(ip); n < neighAddrWidth; n++ {
			b.WriteByte(' ')
		}
		m := e.MAC
		fmt.Fprintf(&b, "%02x:%02x:%02x:%02x:%02x:%02x   %s", m[0], m[1], m[2], m[3], m[4], m[5], e.Dev)
		if !e.Expires.After(now) {
			b.WriteString(" STALE")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// FormatAddr prints an address as Open vSwitch's ipv6_format_mapped does:
// IPv4 (and IPv4-mapped IPv6) dotted, IPv6 as the C library's inet_ntop,
// which also writes an IPv4-compatible address (::a.b.c.d) dotted.
func FormatAddr(a netip.Addr) string {
	if !a.IsValid() {
		return "::"
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	b := a.As16()
	if [12]byte(b[:12]) == [12]byte{} && (b[12] != 0 || b[13] != 0) {
		return "::" + netip.AddrFrom4([4]byte(b[12:])).String()
	}
	return a.String()
}

// NormaliseRouteShow puts the routes of ovs/route/show's output in one
// canonical order, for comparing outputs: by their prefix length's
// highest priority (a local route's prefix length plus 64, a user's plus
// 32; an IPv4 /n counts as /n+96), then prefix length, then text. Open
// vSwitch prints the routes of one prefix length in its hash table's
// order, and prefix lengths of equal priority in no fixed order.
func NormaliseRouteShow(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) < 2 {
		return s
	}
	type entry struct {
		text      string
		bits, pri int
	}
	es := make([]entry, 0, len(lines)-1)
	top := map[int]int{}
	for _, l := range lines[1:] {
		e := entry{text: l, bits: -1}
		if f := strings.Fields(l); len(f) >= 2 {
			addr, n, _ := strings.Cut(f[1], "/")
			if b, err := strconv.Atoi(n); err == nil {
				if a, err := netip.ParseAddr(addr); err == nil && a.Is4() {
					b += 96
				}
				e.bits, e.pri = b, b
				switch {
				case strings.HasSuffix(l, " local"):
					e.pri += 64
				case f[0] == "User:":
					e.pri += 32
				}
			}
		}
		top[e.bits] = max(top[e.bits], e.pri)
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b entry) int {
		if c := top[b.bits] - top[a.bits]; c != 0 {
			return c
		}
		if c := b.bits - a.bits; c != 0 {
			return c
		}
		return strings.Compare(a.text, b.text)
	})
	out := lines[0] + "\n"
	for _, e := range es {
		out += e.text + "\n"
	}
	return out
}
