package ovsref

import (
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	tnetns "github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/vport/nldump"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// The tap devices of a netdev bridge (the bridge's own port, its internal
// ports, the datapath's ovs-netdev) are persistent: Open vSwitch makes
// them so, so that they outlive its restarts, and a daemon that exits
// without deleting its bridges, or is killed, leaves them behind. A
// switch's cleanup deletes them in its namespace before the namespace
// goes, so that nothing that holds the namespace keeps them, and none can
// be moved out of it. Each is marked with tapMark as its alias when the
// bridge is made, and the first switch of a test process deletes the
// marked taps it finds in its own namespace (sweepStale): those of an
// earlier run that was killed before its cleanup. A tap without the mark is never touched
// there, whatever its name.

// tapMark is the alias of the taps of the switches this package makes.
const tapMark = "ovsxdp-ovsref"

// datapathTap is the tap of the userspace datapath's own port.
const datapathTap = "ovs-netdev"

// markTaps marks the bridge's taps with tapMark, in the switch's
// namespace.
func (s *Switch) markTaps() error {
	names := []string{s.Bridge, datapathTap}
	for _, p := range s.Ports {
		names = append(names, p.Name)
	}
	return s.ns.Namespace.Do(func() error {
		var errs []error
		for _, name := range names {
			l, err := netlink.LinkByName(name)
			if err != nil {
				errs = append(errs, fmt.Errorf("mark tap %s: %w", name, err))
				continue
			}
			if _, ok := l.(*netlink.Tuntap); !ok || l.Attrs().Alias == tapMark {
				continue
			}
			if err := netlink.LinkSetAlias(l, tapMark); err != nil {
				errs = append(errs, fmt.Errorf("mark tap %s: %w", name, err))
			}
		}
		return errors.Join(errs...)
	})
}

// DeleteTaps deletes every tap device of the namespace n: for a test that
// runs an ovs-vswitchd of its own there, in a cleanup that runs once the
// daemon is stopped and before the namespace is deleted.
func DeleteTaps(n *tnetns.NS) error { return deleteTaps(n.Namespace) }

// deleteTaps deletes every tap device of the namespace, which the switch
// owns whole, its daemons stopped.
func deleteTaps(n *topo.Namespace) error {
	if n.Deleted() {
		return nil
	}
	err := n.Do(func() error {
		links, err := nldump.Retry(netlink.LinkList)
		if err != nil {
			return err
		}
		var errs []error
		for _, l := range links {
			if _, ok := l.(*netlink.Tuntap); ok {
				if err := netlink.LinkDel(l); err != nil {
					errs = append(errs, fmt.Errorf("delete tap %s: %w", l.Attrs().Name, err))
				}
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("namespace %s: %w", n.Name, err)
	}
	return nil
}

// deleteMarkedTaps deletes the taps marked with tapMark in the test
// process's namespace.
func deleteMarkedTaps() error {
	ns, err := netns.GetFromPid(os.Getpid())
	if err != nil {
		return fmt.Errorf("stale taps: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("stale taps: %w", err)
	}
	defer h.Close()
	links, err := nldump.Retry(h.LinkList)
	if err != nil {
		return fmt.Errorf("stale taps: %w", err)
	}
	var errs []error
	for _, l := range links {
		if _, ok := l.(*netlink.Tuntap); !ok || l.Attrs().Alias != tapMark {
			continue
		}
		if err := h.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete stale tap %s: %w", l.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}
