package vport

import (
	"bytes"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// AdminSetter is a port whose device can be brought administratively up
// or down, as ip link set DEV up|down does: Open vSwitch turns a port's
// device down for an OpenFlow port mod, and the port's Device then
// follows what the kernel reports.
type AdminSetter interface {
	Port
	SetAdminUp(up bool) error
}

var (
	_ AdminSetter = (*XSKPort)(nil)
	_ AdminSetter = (*TapPort)(nil)
)

// SetAdminUp brings the link the socket is bound to up or down, found by
// index in its namespace.
func (p *XSKPort) SetAdminUp(up bool) error {
	h, err := netlinkHandle(p.netns)
	if err != nil {
		return err
	}
	defer h.Close()
	lk, err := h.LinkByIndex(p.ifindex)
	if err != nil {
		return fmt.Errorf("link %d of port %s: %w", p.ifindex, p.name, err)
	}
	return setLinkUp(h, lk, up)
}

// SetAdminUp brings the TAP device up or down, in the caller's namespace
// (a device moved into another is out of reach, an error).
func (p *TapPort) SetAdminUp(up bool) error {
	return p.withLink(func(h *netlink.Handle, lk netlink.Link) error {
		err := setLinkUp(h, lk, up)
		p.kick() // read the device's state at once
		return err
	})
}

// withLink runs f on the TAP device's link, found by name in the
// caller's namespace.
func (p *TapPort) withLink(f func(*netlink.Handle, netlink.Link) error) error {
	h, err := netlinkHandle("")
	if err != nil {
		return err
	}
	defer h.Close()
	lk, err := h.LinkByName(p.name)
	if err != nil {
		return fmt.Errorf("device of port %s: %w", p.name, err)
	}
	return f(h, lk)
}

func setLinkUp(h *netlink.Handle, lk netlink.Link, up bool) error {
	var err error
	if up {
		err = h.LinkSetUp(lk)
	} else {
		err = h.LinkSetDown(lk)
	}
	if err != nil {
		return fmt.Errorf("set %s %s: %w", lk.Attrs().Name, map[bool]string{true: "up", false: "down"}[up], err)
	}
	return nil
}

// SetHardwareAddr gives the TAP device the Ethernet address mac, as
// ovs-vswitchd sets the address it chooses for a bridge on the bridge's
// LOCAL device.
func (p *TapPort) SetHardwareAddr(mac net.HardwareAddr) error {
	return p.withLink(func(h *netlink.Handle, lk netlink.Link) error {
		if bytes.Equal(lk.Attrs().HardwareAddr, mac) {
			return nil
		}
		if err := h.LinkSetHardwareAddr(lk, mac); err != nil {
			return fmt.Errorf("set %s address %s: %w", p.name, mac, err)
		}
		p.kick() // read the device's state at once
		return nil
	})
}
