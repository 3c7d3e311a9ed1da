package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ovsxdp/ovsxdp/vport/underlay"
)

// The route table's and the tunnel neighbour cache's commands, named and
// printed as Open vSwitch's (ovs/route/*, tnl/neigh/*, and tnl/arp/*, the
// older names Open vSwitch keeps). They concern the daemon's own network
// namespace, whose routes and neighbours the table follows from the
// first of these commands (or the first tunnel port) on.
func init() {
	register(
		&verb{VerbInfo: VerbInfo{Name: "ovs/route/show", Short: "Print the routes tunnels take: the kernel's (Cached) and those added with ovs/route/add (User)", Max: 0}, run: (*Daemon).routeShow},
		&verb{VerbInfo: VerbInfo{Name: "ovs/route/add", Usage: "IP/PLEN DEV [GW] [pkt_mark=MARK]", Short: "Add a route for tunnels (its source: DEV's address on the prefix's or the gateway's subnet)", Min: 2, Max: 4}, run: (*Daemon).routeAdd},
		&verb{VerbInfo: VerbInfo{Name: "ovs/route/del", Usage: "IP/PLEN [pkt_mark=MARK]", Short: "Delete a route added with ovs/route/add", Min: 1, Max: 2}, run: (*Daemon).routeDel},
		&verb{VerbInfo: VerbInfo{Name: "ovs/route/lookup", Usage: "IP [pkt_mark=MARK]", Short: "Print the source, gateway and device of the route to IP", Min: 1, Max: 2}, run: (*Daemon).routeLookup},
	)
	for _, prefix := range []string{"tnl/neigh/", "tnl/arp/"} {
		register(
			&verb{VerbInfo: VerbInfo{Name: prefix + "show", Short: "Print the tunnel neighbour cache: addresses learnt from ARP and neighbour advertisements, or set", Max: 0}, run: (*Daemon).neighShow},
			&verb{VerbInfo: VerbInfo{Name: prefix + "set", Usage: "DEV IP MAC", Short: "Set a tunnel neighbour's address", Min: 3, Max: 3}, run: (*Daemon).neighSet},
			&verb{VerbInfo: VerbInfo{Name: prefix + "flush", Short: "Empty the tunnel neighbour cache", Max: 0}, run: (*Daemon).neighFlush},
			&verb{VerbInfo: VerbInfo{Name: prefix + "aging", Usage: "[SECS]", Short: "Print or set how long a tunnel neighbour is kept after it was last learnt or used (1 to 3600 s, default 900)", Max: 1}, run: (*Daemon).neighAging},
		)
	}
}

// underlayState is the daemon's route table, opened when first needed
// and closed with the daemon.
type underlayState struct {
	mu     sync.Mutex // guards table and closed
	table  *underlay.Table
	closed bool
}

// ErrClosed: the daemon is closing.
var errUnderlayClosed = errors.New("the daemon is closing")

// underlayTable returns the table of the daemon's namespace, opening it
// the first time. Tunnel ports resolve their paths through it (newTunnels)
// and feed the ARP replies and neighbour advertisements their underlay
// bridges output to an internal port to its Neighbours().Snoop.
func (d *Daemon) underlayTable() (*underlay.Table, error) {
	u := &d.underlay
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil, errUnderlayClosed
	}
	if u.table == nil {
		t, err := underlay.NewTable(underlay.TableConfig{Logger: d.log.With("component", "underlay")})
		if err != nil {
			return nil, err
		}
		u.table = t
	}
	return u.table, nil
}

// close closes the table, if it was opened.
func (u *underlayState) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	if u.table != nil {
		u.table.Close()
		u.table = nil
	}
}

func (d *Daemon) routeShow(*call) (string, error) {
	t, err := d.underlayTable()
	if err != nil {
		return "", err
	}
	return underlay.FormatRoutes(t.Routes()), nil
}

// parseRoutePrefix reads IP/PLEN (a bare address is a host route).
func parseRoutePrefix(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// parseMark reads pkt_mark=MARK.
func parseMark(s string) (uint32, bool) {
	v, ok := strings.CutPrefix(s, "pkt_mark=")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 0, 32)
	return uint32(n), err == nil
}

func (d *Daemon) routeAdd(c *call) (string, error) {
	prefix, ok := parseRoutePrefix(c.args[0])
	if !ok {
		return "", fmt.Errorf("ovs/route/add: %w: Invalid parameters", ErrUsage)
	}
	var gw netip.Addr
	var mark uint32
	if len(c.args) > 2 {
		if m, ok := parseMark(c.args[2]); ok {
			mark = m
		} else if a, err := netip.ParseAddr(c.args[2]); err == nil && a.Is4() == prefix.Addr().Is4() {
			gw = a
		} else {
			return "", fmt.Errorf("ovs/route/add: %w: Invalid pkt_mark or gateway", ErrUsage)
		}
	}
	if len(c.args) > 3 {
		m, ok := parseMark(c.args[3])
		if !ok {
			return "", fmt.Errorf("ovs/route/add: %w: Invalid pkt_mark", ErrUsage)
		}
		mark = m
	}
	t, err := d.underlayTable()
	if err != nil {
		return "", err
	}
	if err := t.AddRoute(prefix, c.args[1], gw, mark); err != nil {
		return "", fmt.Errorf("ovs/route/add: Error while inserting route: %w", err)
	}
	return "OK\n", nil
}

func (d *Daemon) routeDel(c *call) (string, error) {
	prefix, ok := parseRoutePrefix(c.args[0])
	if !ok {
		return "", fmt.Errorf("ovs/route/del: %w: Invalid parameters", ErrUsage)
	}
	var mark uint32
	if len(c.args) > 1 {
		if mark, ok = parseMark(c.args[1]); !ok {
			return "", fmt.Errorf("ovs/route/del: %w: Invalid pkt_mark", ErrUsage)
		}
	}
	t, err := d.underlayTable()
	if err != nil {
		return "", err
	}
	if err := t.DelRoute(prefix, mark); err != nil {
		return "", fmt.Errorf("ovs/route/del: Not found: %w", err)
	}
	return "OK\n", nil
}

// routeLookup prints the route to an address as Open vSwitch's
// ovs/route/lookup does: "gateway ::" for an on-link route.
func (d *Daemon) routeLookup(c *call) (string, error) {
	a, err := netip.ParseAddr(c.args[0])
	if err != nil {
		return "", fmt.Errorf("ovs/route/lookup: %w: Invalid parameters", ErrUsage)
	}
	if len(c.args) > 1 {
		if m, ok := parseMark(c.args[1]); !ok || m != 0 {
			return "", fmt.Errorf("ovs/route/lookup: %w: only pkt_mark=0 is looked up", ErrUsage)
		}
	}
	t, err := d.underlayTable()
	if err != nil {
		return "", err
	}
	r, ok := t.LookupRoute(a)
	if !ok {
		return "", fmt.Errorf("ovs/route/lookup %s: Not found: %w", a, underlay.ErrNoRoute)
	}
	return fmt.Sprintf("src %s\ngateway %s\ndev %s\n", underlay.FormatAddr(r.Src), underlay.FormatAddr(r.Gw), r.Dev), nil
}

func (d *Daemon) neighShow(*call) (string, error) {
	t, err := d.underlayTable()
	if err != nil {
		return "", err
	}
	return underlay.FormatNeighbours(t.Neighbours().Entries(), time.Now()), nil
}

func (d *Daemon) neighSet(c *call) (string, error) {
	ip, err := netip.ParseAddr(c.args[1])
	if err != nil {
		return "", fmt.Errorf("tnl/neigh/set: %w: bad IP address %q", ErrUsage, c.args[1])
	}
	mac, err := net.ParseMAC(c.args[2])
	if err != nil || len(mac) != 6 {
		return "", fmt.Errorf("tnl/neigh/set: %w: bad MAC address %q", ErrUsage, c.args[2])
	}
	t, err := d.underlayTable()
	if err != nil {
		return "", err
	}
	t.Neighbours().Set(c.args[0], ip, [6]byte(mac))
	return "OK\n", nil
}

func (d *Daemon) neighFlush(*call) (string, error) {
	t, err := d.underlayTable()
	if err != nil {
		return "", err
	}
	t.Neighbours().Flush()
	return "OK\n", nil
}

func (d *Daemon) neighAging(c *call) (string, error) {
	t, err := d.underlayTable()
	if err != nil {
		return "", err
	}
	if len(c.args) == 0 {
		return fmt.Sprintf("%d\n", int(t.Neighbours().Aging()/time.Second)), nil
	}
	secs, err := strconv.ParseUint(c.args[0], 10, 32)
	if err != nil {
		return "", fmt.Errorf("tnl/neigh/aging: %w: %w", ErrUsage, underlay.ErrBadAging)
	}
	if err := t.Neighbours().SetAging(time.Duration(secs) * time.Second); err != nil {
		return "", fmt.Errorf("tnl/neigh/aging: %w: %w", ErrUsage, err)
	}
	return "OK\n", nil
}
