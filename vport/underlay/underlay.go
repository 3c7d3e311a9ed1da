// Package underlay finds how a tunnel port reaches its remote endpoint
// through the host's network: the route the kernel would take (output
// device, preferred source address, next hop) and the next hop's
// link-layer address in the kernel's neighbour table, read over netlink.
// A tunnel port builds its outer headers (datapath/tunnel.Config) from a
// Path.
//
// Two ways to look paths up: a Resolver asks the kernel at each call
// (RTM_GETROUTE, a neighbour dump), a control-plane call made when a
// tunnel port is configured or its path changes, never per packet; a
// Table (table.go) keeps the namespace's routes and neighbours current
// from netlink notifications, as Open vSwitch's route table and tunnel
// neighbour cache, and answers from an atomic snapshot without locking
// or allocating. The Table also holds ovsxdp's own neighbour cache
// (neigh.go, snoop.go), builds the ARP requests and neighbour
// solicitations that resolve a next hop (solicit.go), and prints
// ovs/route/show and tnl/neigh/show as Open vSwitch 3.1 does (format.go).
package underlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ovsxdp/ovsxdp/vport/nldump"
)

// Errors that callers test.
var (
	// ErrNoRoute: the kernel has no route to the remote endpoint.
	ErrNoRoute = errors.New("no route to the tunnel's remote endpoint")
	// ErrNoNeighbour: the next hop has no usable entry in the kernel's
	// neighbour table (none, or incomplete or failed resolution).
	ErrNoNeighbour = errors.New("next hop's link-layer address is unknown")
	// ErrNotEthernet: the route leaves through a device without an
	// Ethernet address (a tunnel over a tun or a loopback device).
	ErrNotEthernet = errors.New("route's device is not an Ethernet device")
)

// Path is the way to a tunnel's remote endpoint.
type Path struct {
	Dev     string     // output device, the tunnel's underlay
	Ifindex int        // its interface index
	Src     netip.Addr // the route's preferred source: the outer source when local_ip is not set
	NextHop netip.Addr // the gateway, or the remote itself when it is on-link
	SrcMAC  [6]byte    // the device's address
	DstMAC  [6]byte    // the next hop's address
}

// String writes the path as Open vSwitch's tnl/neigh/show and
// ovs/route/show would name it.
func (p Path) String() string {
	return fmt.Sprintf("dev %s src %s via %s lladdr %s", p.Dev, p.Src, p.NextHop, net.HardwareAddr(p.DstMAC[:]))
}

// PathFinder finds the path to a tunnel's remote endpoint. A Resolver
// asks the kernel each time; a Table answers from its snapshot.
type PathFinder interface {
	Lookup(remote netip.Addr) (Path, error)
}

var (
	_ PathFinder = (*Resolver)(nil)
	_ PathFinder = (*Table)(nil)
)

// Resolver looks paths up in one network namespace's routing and
// neighbour tables.
type Resolver struct {
	h *netlink.Handle
}

// NewResolver returns a resolver for the network namespace at nsPath
// (such as /run/netns/NAME), or for the caller's own when nsPath is "".
func NewResolver(nsPath string) (*Resolver, error) {
	if nsPath == "" {
		h, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("underlay resolver: %w", err)
		}
		return &Resolver{h: h}, nil
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("underlay resolver in %s: %w", nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("underlay resolver in %s: %w", nsPath, err)
	}
	return &Resolver{h: h}, nil
}

// Close releases the resolver's netlink socket.
func (r *Resolver) Close() { r.h.Close() }

// Lookup returns the path to remote: the route the kernel picks for it
// and the next hop's neighbour entry.
func (r *Resolver) Lookup(remote netip.Addr) (Path, error) {
	remote = remote.Unmap()
	routes, err := r.h.RouteGet(remote.AsSlice())
	if err != nil || len(routes) == 0 {
		if err == nil || isUnreachable(err) {
			return Path{}, fmt.Errorf("route to %s: %w", remote, ErrNoRoute)
		}
		return Path{}, fmt.Errorf("route to %s: %w", remote, err)
	}
	rt := routes[0]
	link, err := r.h.LinkByIndex(rt.LinkIndex)
	if err != nil {
		return Path{}, fmt.Errorf("route to %s: device %d: %w", remote, rt.LinkIndex, err)
	}
	p := Path{Dev: link.Attrs().Name, Ifindex: rt.LinkIndex, NextHop: remote}
	if len(link.Attrs().HardwareAddr) != 6 {
		return Path{}, fmt.Errorf("route to %s through %s: %w", remote, p.Dev, ErrNotEthernet)
	}
	p.SrcMAC = [6]byte(link.Attrs().HardwareAddr)
	if a, ok := netip.AddrFromSlice(rt.Src); ok {
		p.Src = a.Unmap()
	}
	if a, ok := netip.AddrFromSlice(rt.Gw); ok && !a.IsUnspecified() {
		p.NextHop = a.Unmap()
	}
	family := netlink.FAMILY_V4
	if p.NextHop.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := nldump.Retry(func() ([]netlink.Neigh, error) { return r.h.NeighList(rt.LinkIndex, family) })
	if err != nil {
		return Path{}, fmt.Errorf("neighbours of %s: %w", p.Dev, err)
	}
	for _, n := range neighs {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || a.Unmap() != p.NextHop || len(n.HardwareAddr) != 6 || !usable(n.State) {
			continue
		}
		p.DstMAC = [6]byte(n.HardwareAddr)
		return p, nil
	}
	return p, fmt.Errorf("next hop %s on %s: %w", p.NextHop, p.Dev, ErrNoNeighbour)
}

// usable reports whether a neighbour entry in state s has a link-layer
// address that may be used: not incomplete, failed or none.
func usable(s int) bool {
	const bad = netlink.NUD_INCOMPLETE | netlink.NUD_FAILED | netlink.NUD_NONE
	return s&bad == 0 && s != 0
}

// isUnreachable reports whether a RouteGet error says the kernel has no
// route (ENETUNREACH, EHOSTUNREACH) rather than that netlink failed.
func isUnreachable(err error) bool {
	return errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH)
}
