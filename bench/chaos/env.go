package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

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
	e := &Env{Slots: slots, role: vtopo.Suffix(), ns: make([]*vtopo.Namespace, slots), ping: make([]*vtopo.Process, slots)}
	e.tp = vtopo.New(strings.TrimSuffix(nsPrefix, "-") + "-" + e.role)
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.SW, err = e.tp.AddNamespace("sw"); err != nil {
		return nil, err
	}
	for i := range slots {
		if err := e.CreateSlot(i); err != nil {
			return nil, err
		}
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
// device of a port's name as soon as it appears finds it configured.
func (e *Env) addVeth(i int) error {
	ns, h, p := e.ns[i], hostName(i), peerName(i)
	mq, q := strconv.Itoa(maxQueues), strconv.Itoa(initQueues)
	ctx := context.Background()
	steps := []func() error{
		func() error {
			_, err := ns.IP("link", "add", h, "numtxqueues", mq, "numrxqueues", mq, "type", "veth", "peer", "name", p, "numtxqueues", mq, "numrxqueues", mq)
			return err
		},
		func() error { _, err := ns.Output(ctx, "ethtool", "-L", h, "rx", q, "tx", q); return err },
		func() error { _, err := ns.Output(ctx, "ethtool", "-L", p, "rx", q, "tx", q); return err },
		func() error { _, err := ns.Output(ctx, "ethtool", "-K", p, "tx", "off"); return err },
		func() error { _, err := ns.IP("link", "set", p, "address", slotMAC(i).String()); return err },
		func() error { _, err := ns.IP("link", "set", h, "netns", e.SW.Name); return err },
		func() error { _, err := e.SW.IP("link", "set", h, "up"); return err },
		func() error { _, err := ns.IP("link", "set", p, "up"); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// RecreateVeth deletes slot i's veth pair and adds it again with the same
// names, address and neighbours: the host end gets a new ifindex.
func (e *Env) RecreateVeth(i int) error {
	if _, err := e.SW.IP("link", "del", hostName(i)); err != nil {
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
	if err := e.Peer(i, "link", "set", peerName(i), "up"); err != nil {
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

// Peer runs ip in slot i's namespace.
func (e *Env) Peer(i int, args ...string) error {
	_, err := e.ns[i].IP(args...)
	return err
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
