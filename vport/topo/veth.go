package topo

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ovsxdp/ovsxdp/vport/ethtool"
)

// Veth is a veth pair: Host in HostNS (the side a datapath opens), Peer in
// PeerNS (the side a traffic endpoint uses).
type Veth struct {
	Host, Peer     string
	HostNS, PeerNS *Namespace
}

// AddVeth creates the veth pair host (in hostNS) – peer (in peerNS) with
// queues rx and tx queues on each end, all in use (ethtool channels),
// turns tx checksum offload off on the peer (an AF_XDP datapath hands
// frames over without completing offloaded checksums) and brings both ends
// up. The pair goes away with either namespace.
func AddVeth(hostNS *Namespace, host string, peerNS *Namespace, peer string, queues int) (*Veth, error) {
	if queues < 1 {
		return nil, fmt.Errorf("veth %s: %d queues, want at least 1", host, queues)
	}
	peerNetns, err := netns.GetFromPath(peerNS.Path())
	if err != nil {
		return nil, fmt.Errorf("veth %s: namespace %s: %w", host, peerNS.Name, err)
	}
	defer peerNetns.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.NumTxQueues, attrs.NumRxQueues = host, queues, queues
	link := &netlink.Veth{LinkAttrs: attrs, PeerName: peer, PeerNamespace: netlink.NsFd(peerNetns),
		PeerNumTxQueues: uint32(queues), PeerNumRxQueues: uint32(queues)}
	if err := hostNS.withNetlink(func(h *netlink.Handle) error { return h.LinkAdd(link) }); err != nil {
		return nil, fmt.Errorf("add veth %s in %s, peer %s in %s: %w", host, hostNS.Name, peer, peerNS.Name, err)
	}
	v := &Veth{Host: host, Peer: peer, HostNS: hostNS, PeerNS: peerNS}
	err = peerNS.disableTxChecksum(peer)
	if err == nil {
		err = hostNS.useChannels(host, queues)
	}
	if err == nil {
		err = peerNS.useChannels(peer, queues)
	}
	if err == nil {
		err = hostNS.SetLinkUp(host)
	}
	if err == nil {
		err = peerNS.SetLinkUp(peer)
	}
	if err != nil {
		derr := hostNS.withNetlink(func(h *netlink.Handle) error {
			return h.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host}})
		})
		if derr != nil {
			err = errors.Join(err, fmt.Errorf("delete veth %s in %s: %w", host, hostNS.Name, derr))
		}
		return nil, err
	}
	return v, nil
}

// Ifindex returns dev's interface index in the namespace.
func (n *Namespace) Ifindex(dev string) (int, error) {
	l, err := n.link(dev)
	if err != nil {
		return 0, err
	}
	return l.Attrs().Index, nil
}

// MAC returns dev's hardware address.
func (n *Namespace) MAC(dev string) (net.HardwareAddr, error) {
	l, err := n.link(dev)
	if err != nil {
		return nil, err
	}
	return l.Attrs().HardwareAddr, nil
}

// XDPAttached reports whether dev has an XDP program attached.
func (n *Namespace) XDPAttached(dev string) (bool, error) {
	l, err := n.link(dev)
	if err != nil {
		return false, err
	}
	return l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached, nil
}

// Queues returns the number of rx and tx queues allocated for dev.
func (n *Namespace) Queues(dev string) (rx, tx int, err error) {
	l, err := n.link(dev)
	if err != nil {
		return 0, 0, err
	}
	return l.Attrs().NumRxQueues, l.Attrs().NumTxQueues, nil
}

func (n *Namespace) link(dev string) (l netlink.Link, err error) {
	err = n.withNetlink(func(h *netlink.Handle) error {
		l, err = n.linkByName(h, dev)
		return err
	})
	return l, err
}

// withEthtool runs fn with an ethtool handle (a socket for the SIOCETHTOOL
// ioctl) in the namespace, closed when fn returns.
func (n *Namespace) withEthtool(fn func(e *ethtool.Handle) error) error {
	var e *ethtool.Handle
	if err := n.Do(func() (err error) {
		e, err = ethtool.Open()
		return err
	}); err != nil {
		return fmt.Errorf("ethtool socket in %s: %w", n.Name, err)
	}
	defer e.Close()
	return fn(e)
}

// txChecksumPrefix starts the name of every feature that ethtool's "tx"
// (tx-checksumming) switches: tx-checksum-ipv4, tx-checksum-ip-generic,
// tx-checksum-ipv6, tx-checksum-fcoe-crc, tx-checksum-sctp.
const txChecksumPrefix = "tx-checksum-"

// disableTxChecksum turns dev's tx checksum offload off, as
// "ethtool -K DEV tx off" does, and checks that it is off.
func (n *Namespace) disableTxChecksum(dev string) error {
	return n.withEthtool(func(e *ethtool.Handle) error {
		features, err := e.Features(dev)
		if err != nil {
			return fmt.Errorf("features of %s in %s: %w", dev, n.Name, err)
		}
		change := map[string]bool{}
		for name := range features {
			if strings.HasPrefix(name, txChecksumPrefix) {
				change[name] = false
			}
		}
		if err := e.SetFeatures(dev, change); err != nil {
			return fmt.Errorf("tx checksum offload of %s in %s: %w", dev, n.Name, err)
		}
		on, err := txChecksum(e, dev)
		if err != nil {
			return fmt.Errorf("tx checksum offload of %s in %s: %w", dev, n.Name, err)
		}
		if on {
			return fmt.Errorf("tx checksum offload of %s in %s: still on", dev, n.Name)
		}
		return nil
	})
}

// TxChecksum reports whether tx checksum offload (any tx-checksum-*
// feature) is on for dev.
func (n *Namespace) TxChecksum(dev string) (on bool, err error) {
	err = n.withEthtool(func(e *ethtool.Handle) error {
		on, err = txChecksum(e, dev)
		if err != nil {
			return fmt.Errorf("features of %s in %s: %w", dev, n.Name, err)
		}
		return nil
	})
	return on, err
}

func txChecksum(e *ethtool.Handle, dev string) (bool, error) {
	features, err := e.Features(dev)
	if err != nil {
		return false, err
	}
	for name, active := range features {
		if active && strings.HasPrefix(name, txChecksumPrefix) {
			return true, nil
		}
	}
	return false, nil
}

// Channels returns the number of rx and tx queues dev has in use (ethtool
// channels; a device can allocate more than it uses).
func (n *Namespace) Channels(dev string) (rx, tx int, err error) {
	err = n.withEthtool(func(e *ethtool.Handle) error {
		ch, err := e.Channels(dev)
		if err != nil {
			return fmt.Errorf("in %s: %w", n.Name, err)
		}
		rx, tx = int(ch.Rx), int(ch.Tx)
		return nil
	})
	return rx, tx, err
}

// useChannels makes dev use queues rx and tx queues, unless it does
// already.
func (n *Namespace) useChannels(dev string, queues int) error {
	return n.withEthtool(func(e *ethtool.Handle) error {
		ch, err := e.Channels(dev)
		if err != nil {
			return fmt.Errorf("in %s: %w", n.Name, err)
		}
		q := uint32(queues)
		if ch.Rx == q && ch.Tx == q {
			return nil
		}
		ch.Rx, ch.Tx = q, q
		if err := e.SetChannels(dev, ch); err != nil {
			return fmt.Errorf("in %s: %w", n.Name, err)
		}
		return nil
	})
}
