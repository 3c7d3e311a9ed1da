package datapath

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/ovsxdp/ovsxdp/datapath/tunnel"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport/underlay"
)

// Decapsulation (Open vSwitch's tnl_pop): a packet that a bridge outputs
// to one of its internal ports, addressed to one of the internal ports'
// addresses and to a tunnel port's UDP port, is decapsulated instead of
// sent to the internal port, and its inner frame runs through the tunnel
// port's bridge as received on the tunnel port whose options take it
// (tunnel.Options.Accepts), with the outer header in the key's tunnel
// fields. A malformed outer or tunnel header drops as tunnel-pop-error; a
// packet no tunnel port takes as tunnel-no-port. An ARP or neighbour
// advertisement frame output to an internal port also teaches the tunnel
// neighbour cache (snoopNeigh), and goes on to the internal port.

// tunnelRx is what the bridges decapsulate: an immutable table that the
// Tunnels refresh publishes.
type tunnelRx struct {
	// entries are the tunnel ports, the most specific first.
	entries []rxEntry
	ports   []uint16     // the UDP ports of entries
	addrs   []netip.Addr // the local tunnel endpoint addresses
	// endpoints are the internal ports, whose output is decapsulated
	// when it is for a tunnel.
	endpoints []*Port
	// neigh, if not nil, learns from the ARP replies and neighbour
	// advertisements output to the endpoints.
	neigh *underlay.NeighCache
}

// rxEntry is a tunnel port that takes decapsulated packets.
type rxEntry struct {
	kind    tunnel.Kind
	dstPort uint16
	opts    *tunnel.Options
	bridge  *Bridge
	port    *Port
	score   int
}

// newTunnelRx builds the table from the tunnel ports and internal ports
// found on the bridges.
func newTunnelRx(tps []tunnelPortRef, internals map[string]*internalRef) *tunnelRx {
	rx := &tunnelRx{}
	for _, r := range tps {
		o := &r.tp.opts
		e := rxEntry{kind: o.Kind, dstPort: o.DstPort, opts: o, bridge: r.bridge, port: r.port}
		// Open vSwitch's order of preference: a port with a fixed
		// remote before remote_ip=flow, then a fixed local_ip, then a
		// fixed key.
		if !o.RemoteFlow {
			e.score += 4
		}
		if o.Local.IsValid() {
			e.score += 2
			rx.addrs = append(rx.addrs, o.Local)
		}
		if !o.InKeyFlow {
			e.score++
		}
		rx.entries = append(rx.entries, e)
		if !slices.Contains(rx.ports, o.DstPort) {
			rx.ports = append(rx.ports, o.DstPort)
		}
	}
	slices.SortStableFunc(rx.entries, func(a, b rxEntry) int {
		if a.score != b.score {
			return b.score - a.score
		}
		return int(a.port.OFPort) - int(b.port.OFPort)
	})
	for _, in := range internals {
		rx.addrs = append(rx.addrs, in.addrs...)
		rx.endpoints = append(rx.endpoints, in.port)
	}
	return rx
}

// lookup returns the tunnel port that takes a packet with outer header h
// on UDP port dstPort, or nil.
func (rx *tunnelRx) lookup(kind tunnel.Kind, dstPort uint16, h *tunnel.Header) *rxEntry {
	for i := range rx.entries {
		e := &rx.entries[i]
		if e.kind == kind && e.dstPort == dstPort && e.opts.Accepts(h) {
			return e
		}
	}
	return nil
}

// kindFor returns the kind of the tunnel ports on UDP port dstPort.
func (rx *tunnelRx) kindFor(dstPort uint16) (tunnel.Kind, bool) {
	for i := range rx.entries {
		if rx.entries[i].dstPort == dstPort {
			return rx.entries[i].kind, true
		}
	}
	return 0, false
}

// local reports whether a is a local tunnel endpoint address.
func (rx *tunnelRx) local(a netip.Addr) bool {
	for _, l := range rx.addrs {
		if l == a {
			return true
		}
	}
	return false
}

// tunnelCandidate reads just enough of frame to tell whether it is for a
// tunnel: IPv4 or IPv6, UDP, to one of rx's ports and addresses. It
// returns the UDP destination port.
func (rx *tunnelRx) candidate(frame []byte) (uint16, bool) {
	if len(frame) < tunnel.EthLen+tunnel.IPv4Len+tunnel.UDPLen {
		return 0, false
	}
	var dst netip.Addr
	var udp []byte
	switch binary.BigEndian.Uint16(frame[12:]) {
	case flow.EthTypeIPv4:
		ip := frame[tunnel.EthLen:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != flow.IPProtoUDP || ihl < tunnel.IPv4Len || len(ip) < ihl+tunnel.UDPLen ||
			binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 { // a later fragment has no UDP header
			return 0, false
		}
		dst = netip.AddrFrom4([4]byte(ip[16:20]))
		udp = ip[ihl:]
	case flow.EthTypeIPv6:
		ip := frame[tunnel.EthLen:]
		if len(ip) < tunnel.IPv6Len+tunnel.UDPLen || ip[6] != flow.IPProtoUDP {
			return 0, false
		}
		dst = netip.AddrFrom16([16]byte(ip[24:40]))
		udp = ip[tunnel.IPv6Len:]
	default:
		return 0, false
	}
	port := binary.BigEndian.Uint16(udp[2:])
	if !slices.Contains(rx.ports, port) || !rx.local(dst) {
		return 0, false
	}
	return port, true
}

// tunnelOrOutput sends a copy of frame to dst: decapsulated if dst is an
// internal port and the frame is for a tunnel, encapsulated if dst is a
// tunnel port, else through output. It is output's one hook for tunnels.
func (p *pmd) tunnelOrOutput(dst *Port, frame []byte) {
	if tp, ok := dst.vp.(*TunnelPort); ok {
		p.tunnelPush(dst, tp, frame)
		return
	}
	if t := p.br.tunnels; t != nil {
		if rx := t.rx.Load(); len(rx.entries) > 0 && slices.Contains(rx.endpoints, dst) {
			if port, ok := rx.candidate(frame); ok {
				p.tunnelPop(rx, port, frame)
				return
			}
			if rx.neigh != nil && neighFrame(frame) {
				p.snoopNeigh(rx.neigh, dst, frame)
			}
		}
	}
	p.output(dst, frame)
}

// neighFrame reports, from its EtherType and at most two more bytes,
// whether frame may be an ARP message or a neighbour advertisement: the
// frames the tunnel neighbour cache learns from.
func neighFrame(frame []byte) bool {
	if len(frame) < tunnel.EthLen {
		return false
	}
	switch binary.BigEndian.Uint16(frame[12:]) {
	case flow.EthTypeARP:
		return true
	case flow.EthTypeIPv6:
		const icmp = tunnel.EthLen + tunnel.IPv6Len
		return len(frame) > icmp && frame[tunnel.EthLen+6] == flow.IPProtoICMPv6 && frame[icmp] == ndNeighAdvert
	}
	return false
}

// ndNeighAdvert is the ICMPv6 type of a neighbour advertisement.
const ndNeighAdvert = 136

// snoopNeigh teaches the tunnel neighbour cache what an ARP reply,
// gratuitous ARP or neighbour advertisement output to the internal port
// dst says (Open vSwitch's tnl-neigh snooping), under dst's device name,
// the name routes give. A learnt or changed entry changes the resolver,
// and the tunnel paths are looked up again. It does not allocate unless
// the entry is new or changed; a malformed frame teaches nothing.
func (p *pmd) snoopNeigh(c *underlay.NeighCache, dst *Port, frame []byte) {
	c.Snoop(dst.Name, frame, &p.tnl.neigh) //nolint:errcheck // most frames teach nothing; the frame goes on regardless
}

// tunnelPop decapsulates frame, a packet for UDP port port, and hands its
// inner frame to the tunnel port that takes it.
func (p *pmd) tunnelPop(rx *tunnelRx, port uint16, frame []byte) {
	p.copies++
	c := &p.in.counters[p.id]
	kind, _ := rx.kindFor(port)
	h := &p.tnl.hdr
	if err := (tunnel.Decoder{Kind: kind, DstPort: port}).Decode(frame, h); err != nil {
		c.drops[DropTunnelPop].Add(1)
		return
	}
	e := rx.lookup(kind, port, h)
	if e == nil {
		c.drops[DropTunnelNoPort].Add(1)
		return
	}
	if h.MapOptions(e.bridge.Table().TLVMap()) != nil {
		c.drops[DropTunnelPop].Add(1) // an option Open vSwitch drops for
		return
	}
	if !p.inject(e.bridge, e.port, h.Inner, h) {
		c.drops[DropTxRingFull].Add(1)
		return
	}
	c.sent.Add(1)
}
