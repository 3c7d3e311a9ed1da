package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ovsxdp/ovsxdp/vport/ethtool"
	vtopo "github.com/ovsxdp/ovsxdp/vport/topo"
)

// nsPrefix starts every namespace the fuzzer creates, so that leftovers
// of an interrupted run can be recognised (and removed with -clean).
const nsPrefix = "chaos-"

// Env is one schedule's topology: a switch namespace holding the host
// ends h0..hN-1 of N veth pairs, whose peers p0..pN-1 live in namespaces
// of their own (a "slot" each), with 10.77.0.(i+1)/24, a fixed MAC
// 02:00:00:77:00:(i+1) and permanent neighbour entries for the other
// slots, and a light ping between slots as background traffic.
type Env struct {
	Slots int
	SW    *vtopo.Namespace
	tp    *vtopo.Topology
	ns    []*vtopo.Namespace
	ping  []*vtopo.Process
	role  string
}

func hostName(i int) string { return "h" + strconv.Itoa(i) }
func peerName(i int) string { return "p" + strconv.Itoa(i) }
func slotIP(i int) net.IP   { return net.IPv4(10, 77, 0, byte(i+1)) }
func slotMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0, 0, 0x77, 0, byte(i + 1)}
}

// OFPort is the port number of slot i's host end.
func OFPort(i int) int { return i + 1 }

// NewEnv builds the topology of slots slots, without traffic.
func NewEnv(slots int) (_ *Env, err error) {
	// The process ID keeps the names of runs side by side (-procs) apart;
	// the random suffix, those of one process's runs.
	e := &Env{Slots: slots, role: strconv.Itoa(os.Getpid()) + "-" + vtopo.Suffix(), ns: make([]*vtopo.Namespace, slots), ping: make([]*vtopo.Process, slots)}
	e.tp = vtopo.New(strings.TrimSuffix(nsPrefix, "-") + "-" + e.role)
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.SW, err = e.tp.AddNamespace("sw"); err != nil {
		return nil, err
	}
	// The slots are independent: build them side by side.
	errs := make([]error, slots)
	var wg sync.WaitGroup
	for i := range slots {
		wg.Go(func() { errs[i] = e.CreateSlot(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return e, nil
}

// CreateSlot creates slot i's namespace and veth pair.
func (e *Env) CreateSlot(i int) error {
	ns, err := e.tp.AddNamespace("n" + strconv.Itoa(i))
	if err != nil {
		return err
	}
	e.ns[i] = ns
	if err := e.addVeth(i); err != nil {
		return err
	}
	if err := ns.AddAddr(peerName(i), slotIP(i).String()+"/24"); err != nil {
		return err
	}
	return e.setNeighbours(i)
}

// addVeth adds slot i's veth pair with maxQueues queues, initQueues of
// them in use on each end, tx checksum offload off and the slot's MAC on
// the peer. The pair is built inside the slot's namespace and the host end
// then moved into the switch namespace, so that a datapath that takes a
// device of a port's name as soon as it appears finds it configured. It
// talks netlink and the ethtool ioctl itself, as ip and ethtool would (a
// schedule builds up to 6 pairs; a process per command was most of the
// topology's time on a loaded machine).
func (e *Env) addVeth(i int) error {
	ns, h, p := e.ns[i], hostName(i), peerName(i)
	sw, err := netns.GetFromPath(e.SW.Path())
	if err != nil {
		return fmt.Errorf("namespace %s: %w", e.SW.Name, err)
	}
	defer sw.Close()
	err = ns.Do(func() error {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.NumTxQueues, attrs.NumRxQueues = h, maxQueues, maxQueues
		veth := &netlink.Veth{LinkAttrs: attrs, PeerName: p, PeerHardwareAddr: slotMAC(i),
			PeerNumTxQueues: maxQueues, PeerNumRxQueues: maxQueues}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s peer %s: %w", h, p, err)
		}
		if err := withEthtool(func(et *ethtool.Handle) error { return initChannelsAndOffload(et, h, p) }); err != nil {
			return err
		}
		l, err := netlink.LinkByName(h)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetNsFd(l, int(sw)); err != nil {
			return fmt.Errorf("move %s into %s: %w", h, e.SW.Name, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("in %s: %w", ns.Name, err)
	}
	if err := e.SW.SetLinkUp(h); err != nil {
		return err
	}
	return ns.SetLinkUp(p)
}

// RecreateVeth deletes slot i's veth pair and adds it again with the same
// names, address and neighbours: the host end gets a new ifindex.
func (e *Env) RecreateVeth(i int) error {
	if err := e.hostLink(hostName(i), "del", netlink.LinkDel); err != nil {
		return err
	}
	if err := e.waitGone(i, 10*time.Second); err != nil {
		return err
	}
	if err := e.addVeth(i); err != nil {
		return err
	}
	ns := e.ns[i]
	if err := ns.AddAddr(peerName(i), slotIP(i).String()+"/24"); err != nil {
		return err
	}
	return e.setNeighbours(i)
}

// errHeld is returned when a deleted namespace's host end stays.
var errHeld = errors.New("namespace still held")

// DeleteSlot stops slot i's traffic and deletes its namespace, then waits
// for the kernel to remove the host end with it.
func (e *Env) DeleteSlot(i int) error {
	e.StopTraffic(i)
	ns := e.ns[i]
	holders, _ := ns.Holders()
	if err := ns.Delete(); err != nil {
		return err
	}
	if err := e.waitGone(i, 15*time.Second); err != nil {
		return fmt.Errorf("%w: %w (holders before deletion: %v)", errHeld, err, holders)
	}
	return nil
}

// waitGone waits until the host end of slot i is gone.
func (e *Env) waitGone(i int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := e.SW.Ifindex(hostName(i)); err != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still exists %v after its peer's deletion", hostName(i), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartTraffic starts slot i's background traffic: a ping every 50 ms to
// the next slot.
func (e *Env) StartTraffic(i int) error {
	e.StopTraffic(i)
	p, err := e.ns[i].Start("ping", "-q", "-n", "-i", "0.05", slotIP((i+1)%e.Slots).String())
	if err != nil {
		return err
	}
	e.ping[i] = p
	return nil
}

// StopTraffic stops slot i's background traffic, if any.
func (e *Env) StopTraffic(i int) {
	if p := e.ping[i]; p != nil {
		p.Kill()
		e.ping[i] = nil
	}
}

// PeerUp brings slot i's peer up and sets its neighbour entries again:
// taking a device down flushes them, permanent ones included, and the
// datapaths forward by destination MAC only (no ARP).
func (e *Env) PeerUp(i int) error {
	if err := e.peerLink(i, "up", netlink.LinkSetUp); err != nil {
		return err
	}
	return e.setNeighbours(i)
}

func (e *Env) setNeighbours(i int) error {
	for j := range e.Slots {
		if j != i {
			if err := e.ns[i].SetNeigh(peerName(i), slotIP(j), slotMAC(j)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Host runs ip in the switch namespace.
func (e *Env) Host(args ...string) error {
	_, err := e.SW.IP(args...)
	return err
}

// The steps act on the devices through netlink (and the ethtool ioctl)
// from inside the namespaces, with the messages ip link (and ethtool)
// send: the kernel does the same, without a process per step.

// hostLink runs fn on the switch namespace's device dev; what is the
// operation as ip link would name it, for errors.
func (e *Env) hostLink(dev, what string, fn func(netlink.Link) error) error {
	return linkOp(e.SW, dev, what, fn)
}

// peerLink runs fn on slot i's peer, in the slot's namespace.
func (e *Env) peerLink(i int, what string, fn func(netlink.Link) error) error {
	return linkOp(e.ns[i], peerName(i), what, fn)
}

func linkOp(ns *vtopo.Namespace, dev, what string, fn func(netlink.Link) error) error {
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		return fn(l)
	})
	if err != nil {
		return fmt.Errorf("in %s: ip link %s %s: %w", ns.Name, dev, what, err)
	}
	return nil
}

// SetTxQueues sets the number of tx queues in use on the switch
// namespace's device dev, as ethtool -L DEV tx N does.
func (e *Env) SetTxQueues(dev string, n int) error {
	err := e.SW.Do(func() error {
		et, err := ethtool.Open()
		if err != nil {
			return err
		}
		defer et.Close()
		ch, err := et.Channels(dev)
		if err != nil {
			return err
		}
		ch.Tx = uint32(n)
		return et.SetChannels(dev, ch)
	})
	if err != nil {
		return fmt.Errorf("in %s: ethtool -L %s tx %d: %w", e.SW.Name, dev, n, err)
	}
	return nil
}

// Reach pings slot to from slot from once, waiting up to wait for the
// reply.
func (e *Env) Reach(ctx context.Context, from, to int, wait time.Duration) bool {
	st, err := e.ns[from].Ping(ctx, slotIP(to), 1, wait, wait)
	return err == nil && st.Received == 1
}

// XDPAttached reports whether slot i's host end has an XDP program.
func (e *Env) XDPAttached(i int) (bool, error) { return e.SW.XDPAttached(hostName(i)) }

// Close stops the traffic and deletes every namespace, and with them the
// veths.
func (e *Env) Close() error {
	for i := range e.ping {
		e.StopTraffic(i)
	}
	return e.tp.Close()
}

// withEthtool runs fn with an ethtool handle of the calling thread's
// namespace.
func withEthtool(fn func(et *ethtool.Handle) error) error {
	et, err := ethtool.Open()
	if err != nil {
		return err
	}
	defer et.Close()
	return fn(et)
}

// initChannelsAndOffload puts initQueues rx and tx queues in use on h and
// p (ethtool -L DEV rx N tx N) and turns p's tx checksum offload off
// (ethtool -K P tx off: every tx-checksum-* feature), and reads both back.
func initChannelsAndOffload(et *ethtool.Handle, h, p string) error {
	for _, dev := range []string{h, p} {
		ch, err := et.Channels(dev)
		if err != nil {
			return err
		}
		ch.Rx, ch.Tx = initQueues, initQueues
		if err := et.SetChannels(dev, ch); err != nil {
			return err
		}
		if ch, err = et.Channels(dev); err != nil {
			return err
		}
		if ch.Rx != initQueues || ch.Tx != initQueues {
			return fmt.Errorf("ethtool -L %s rx %d tx %d: rx %d tx %d in use", dev, initQueues, initQueues, ch.Rx, ch.Tx)
		}
	}
	feats, err := et.Features(p)
	if err != nil {
		return err
	}
	off := map[string]bool{}
	for name := range feats {
		if strings.HasPrefix(name, "tx-checksum-") {
			off[name] = false
		}
	}
	if len(off) == 0 {
		return fmt.Errorf("features of %s: no tx-checksum-* feature", p)
	}
	if err := et.SetFeatures(p, off); err != nil {
		return err
	}
	if feats, err = et.Features(p); err != nil {
		return err
	}
	for name := range off {
		if feats[name] {
			return fmt.Errorf("ethtool -K %s tx off: %s still on", p, name)
		}
	}
	return nil
}
