package main

import (
	"context"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"
)

// bridgeDriver is the Linux bridge: the host ends are its ports. It has no
// process to restart, and no configuration that survives a device's
// deletion: Relink enslaves a re-created device again, as a network
// manager would.
type bridgeDriver struct{ e *Env }

const linuxBridge = "brc"

func (d *bridgeDriver) Name() string { return "bridge" }

func (d *bridgeDriver) Start(e *Env) error {
	d.e = e
	if err := e.Host("link", "add", linuxBridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"); err != nil {
		return err
	}
	for i := range e.Slots {
		if err := d.AddPort(e, i); err != nil {
			return err
		}
	}
	return e.hostLink(linuxBridge, "up", netlink.LinkSetUp)
}

func (d *bridgeDriver) Stop() error {
	if d.e == nil {
		return nil
	}
	err := d.e.Host("link", "del", linuxBridge)
	d.e = nil
	return err
}

func (d *bridgeDriver) AddPort(e *Env, i int) error {
	return e.hostLink(hostName(i), "master "+linuxBridge, func(l netlink.Link) error {
		br, err := netlink.LinkByName(linuxBridge)
		if err != nil {
			return err
		}
		return netlink.LinkSetMaster(l, br)
	})
}

func (d *bridgeDriver) DelPort(e *Env, i int) error {
	return e.hostLink(hostName(i), "nomaster", netlink.LinkSetNoMaster)
}

func (d *bridgeDriver) Relink(e *Env, i int, st slotState) error {
	if !st.Port {
		return nil
	}
	return d.AddPort(e, i)
}

func (d *bridgeDriver) Restart(*Env, syscall.Signal) error { return ErrUnsupported }

func (d *bridgeDriver) Answers(ctx context.Context) error {
	_, err := d.e.SW.Ifindex(linuxBridge)
	return err
}

// Check: no XDP program on any host end (the bridge attaches none).
func (d *bridgeDriver) Check(ctx context.Context, e *Env, st []slotState) (int, []Violation) {
	var vs []Violation
	for i, s := range st {
		if !s.NS {
			continue
		}
		if on, err := e.XDPAttached(i); err == nil && on {
			vs = append(vs, Violation{Kind: KindXDPLeak, Detail: fmt.Sprintf("%s carries an XDP program", hostName(i))})
		}
	}
	return 1, vs
}

func (d *bridgeDriver) Footprint(context.Context) (Footprint, bool, error) {
	return Footprint{}, false, nil
}
