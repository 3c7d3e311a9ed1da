package datapath

import (
	"net/netip"

	"github.com/ovsxdp/ovsxdp/datapath/tunnel"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport/underlay"
)

// Encapsulation (Open vSwitch's tnl_push): a copy output to a tunnel port
// gets the outer headers its key and the port's options say
// (tunnel.Options.Config: remote_ip and key from the options, or from the
// key's tun_dst and tun_id when they say flow), on the path the Tunnels
// refresh resolved for its remote endpoint, and goes into the underlay
// bridge as received on the internal port the route leaves through. The
// copy counts as sent on its ingress port and as transmitted on the
// tunnel port when the underlay bridge takes it; every other end is a
// drop with its reason, on both.

// encapCacheSize is the number of encapsulations a poll thread keeps.
const encapCacheSize = 16

// tunnelState is a poll thread's tunnel scratch space.
type tunnelState struct {
	hdr    tunnel.Header // the outer header being decapsulated
	ipID   uint16        // the next outer IPv4 identification
	encaps [encapCacheSize]encapEntry
	neigh  underlay.NeighMessage       // the ARP or neighbour advertisement being snooped
	opts   [2 * flow.TunMetaSpace]byte // the Geneve options being encapsulated
}

// encapKey is what an outer header is built from.
type encapKey struct {
	tp       *TunnelPort
	path     *tunnelPath
	src, dst netip.Addr
	vni      uint32
	tos, ttl uint8
	// The Geneve options of the key's tun_metadata (at most one 4-byte
	// header per 4-byte slot of metadata).
	opts     [2 * flow.TunMetaSpace]byte
	nopts    uint8
	critical bool
}

type encapEntry struct {
	key encapKey
	e   *tunnel.Encap
}

// encap returns the outer header for c on path, from the thread's cache
// or built (once per key and path).
func (s *tunnelState) encap(tp *TunnelPort, path *tunnelPath, c *tunnel.Config) *tunnel.Encap {
	k := encapKey{tp: tp, path: path, src: c.Src, dst: c.Dst, vni: c.VNI, tos: c.TOS, ttl: c.TTL, critical: c.Critical}
	if len(c.Options) > len(k.opts) {
		return nil
	}
	k.nopts = uint8(copy(k.opts[:], c.Options))
	d := c.Dst.As16()
	i := (c.VNI ^ uint32(d[15]) ^ uint32(d[14])<<2 ^ uint32(c.TOS)>>2 ^ uint32(k.nopts)) % encapCacheSize
	if e := &s.encaps[i]; e.e != nil && e.key == k {
		return e.e
	}
	c.EthDst, c.EthSrc = path.dstMAC, path.srcMAC
	enc, err := tunnel.NewEncap(*c)
	if err != nil {
		return nil
	}
	s.encaps[i] = encapEntry{key: k, e: enc}
	return enc
}

// tunnelPush encapsulates a copy of frame for dst, tunnel port tp, and
// hands it to the underlay bridge.
func (p *pmd) tunnelPush(dst *Port, tp *TunnelPort, frame []byte) {
	p.copies++
	if reason, ok := checkOutput(Guarded, dst.dev.Snapshot()); !ok {
		p.dropCopy(dst, reason)
		return
	}
	k := p.pick.key
	var tos, ttl uint8
	if k.DlType == flow.EthTypeIPv4 || k.DlType == flow.EthTypeIPv6 {
		tos, ttl = k.NwTos, k.NwTTL
	}
	c, err := tp.opts.Config(k, tos, ttl)
	if err != nil {
		p.dropCopy(dst, DropTunnelMetadata)
		return
	}
	path := tp.path(c.Dst)
	if path == nil {
		if t := p.br.tunnels; t != nil {
			t.wantPath(tp, c.Dst)
		}
		p.dropCopy(dst, DropTunnelRouting)
		return
	}
	if !path.ok {
		if path.reason == DropTunnelNeighMiss {
			if t := p.br.tunnels; t != nil {
				t.neighWanted(path)
			}
		}
		p.dropCopy(dst, path.reason)
		return
	}
	ub, up := path.bridge, path.port
	if ub.ports.Load().lookup(up.OFPort) != up {
		if t := p.br.tunnels; t != nil {
			t.underlayGone()
		}
		p.dropCopy(dst, DropPortGone)
		return
	}
	if !completeConfig(&c, path, k, p.br.Table().TLVMap(), p.tnl.opts[:0]) {
		p.dropCopy(dst, DropTunnelMetadata)
		return
	}
	enc := p.tnl.encap(tp, path, &c)
	if enc == nil {
		p.dropCopy(dst, DropTunnelPush)
		return
	}
	hlen := enc.HeaderLen()
	n := hlen + len(frame)
	if n-tunnel.EthLen > path.mtu {
		p.dropCopy(dst, DropTunnelMTU)
		return
	}
	if n > maxFrame {
		p.dropCopy(dst, DropTunnelPush)
		return
	}
	s, pos := ub.injectReserve()
	if s == nil {
		p.dropCopy(dst, DropTxRingFull)
		return
	}
	s.buf = s.buf[:n]
	copy(s.buf[hlen:], frame)
	p.tnl.ipID++
	if err := enc.Put(s.buf, tunnel.SourcePort(p.pick.flowHash()), p.tnl.ipID); err != nil {
		s.port = nil // the consumer skips it
		p.injectCommit(ub, s, pos)
		p.dropCopy(dst, DropTunnelPush)
		return
	}
	s.port = up
	p.injectCommit(ub, s, pos)
	dc := &dst.counters[p.id]
	dc.txPackets.Add(1)
	dc.txBytes.Add(uint64(len(frame)))
	p.in.counters[p.id].sent.Add(1)
}

// completeConfig completes the configuration of an encapsulation to a
// resolved path: the outer source address from the route when the port
// names none, and a Geneve port's options from the key's tun_metadata (as
// the bridge's TLV map, tlv, maps them), appended to buf. It reports
// false when the outer addresses are not of one family.
func completeConfig(c *tunnel.Config, path *tunnelPath, k *flow.Key, tlv *flow.TLVMap, buf []byte) bool {
	if !c.Src.IsValid() {
		c.Src = path.src
	}
	if c.Kind == tunnel.Geneve && k.TunMetaPresent != 0 {
		// The tun_metadata the packet came with or a flow set, as the
		// bridge's TLV map maps them.
		o, crit := tunnel.AppendMetaOptions(buf, tlv, k)
		if len(c.Options) == 0 {
			c.Options = o
		} else {
			c.Options = append(c.Options[:len(c.Options):len(c.Options)], o...)
		}
		c.Critical = c.Critical || crit
	}
	return c.Src.IsValid() && c.Src.Is4() == c.Dst.Is4()
}
