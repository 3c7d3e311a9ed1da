package datapath

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath/tunnel"
	"github.com/ovsxdp/ovsxdp/flow"
)

// MegaflowEntry is one poll thread's megaflow as dpctl/dump-flows shows it.
// It is a copy, taken on the thread that owns the megaflow.
type MegaflowEntry struct {
	PMD   int
	Match flow.Match // the masked key and the mask
	// Packet is the key of the packet that installed the megaflow
	// (flow.Megaflow.PacketKey), which dpctl/dump-flows prints under
	// the mask.
	Packet flow.Key
	// Rule is the rule the megaflow caches, nil for a drop megaflow. Its
	// Actions are the actions the datapath runs.
	Rule    *flow.Rule
	Actions []flow.Action
	Packets uint64
	Bytes   uint64
	// LastUsed is when a packet last took the megaflow; zero if none has.
	LastUsed time.Time
	// Stale reports that the megaflow was computed at an older generation
	// of the rule table; the next packet that hits it revalidates it.
	Stale bool
	// TLV is the bridge's TLV map when the megaflow was copied, which
	// names the Geneve options of its tun_metadata fields.
	TLV *flow.TLVMap
	// Output writes an output action of the megaflow as the datapath
	// action it is (Bridge.ODPOutput).
	Output func(port uint32, k *flow.Key) string
}

// Megaflows returns every poll thread's megaflows, by thread. Each thread
// copies its own between two batches (see control.go), so the call waits
// for the threads and fails with ctx's error if one does not answer in
// time.
func (b *Bridge) Megaflows(ctx context.Context) ([]MegaflowEntry, error) {
	per := make([][]MegaflowEntry, len(b.pmds))
	err := b.onEachPMD(ctx, func(p *pmd) {
		gen, tlv := b.table.Generation(), b.table.TLVMap()
		var out []MegaflowEntry
		p.cache.Megaflows().Range(func(mf *flow.Megaflow) bool {
			e := MegaflowEntry{
				PMD:     p.id,
				Match:   mf.Match(),
				Packet:  mf.PacketKey(),
				Rule:    mf.Rule,
				Actions: mf.Actions,
				Packets: mf.Packets,
				Bytes:   mf.Bytes,
				Stale:   mf.Generation != gen,
				TLV:     tlv,
				Output:  b.ODPOutput,
			}
			if mf.LastUsed != 0 {
				e.LastUsed = time.Unix(0, mf.LastUsed)
			}
			out = append(out, e)
			return true
		})
		per[p.id] = out
	})
	if err != nil {
		return nil, err
	}
	var all []MegaflowEntry
	for _, l := range per {
		all = append(all, l...)
	}
	return all, nil
}

// FlushMegaflows empties every poll thread's exact-match cache and
// megaflows (dpctl/del-flows); the next packets go through the rule table
// again.
func (b *Bridge) FlushMegaflows(ctx context.Context) error {
	return b.onEachPMD(ctx, func(p *pmd) { p.cache.Flush() })
}

// String formats the megaflow as one line of dpctl/dump-flows at now:
// match, packets, bytes, time since last use ("never" if unused) and
// actions, in Open vSwitch's datapath syntax (flow.FormatODPMatch, with
// the bridge's TLV map, and flow.FormatDatapathActions). As Open
// vSwitch's userspace datapath, it writes the key of the packet that
// installed the megaflow under the mask: a partly masked field shows
// that packet's bits outside the mask too (tos=0xb9/0x3). A bridge is
// its own datapath here: its ports' datapath numbers are their OpenFlow
// numbers, in in_port(N) and in the outputs alike.
func (e *MegaflowEntry) String(now time.Time) string {
	return e.format(now, "", e.Output)
}

// Named formats the megaflow as String does, with the bridge's ports by
// name, as dpif/dump-flows --names writes them: in_port, and each output
// to one of the bridge's ports that name knows (an output that
// encapsulates keeps its numbers, as String writes it).
func (e *MegaflowEntry) Named(now time.Time, name func(port uint32) (string, bool)) string {
	inPort, _ := name(e.Packet.InPort)
	return e.format(now, inPort, func(port uint32, k *flow.Key) string {
		s := e.Output(port, k)
		if n, ok := name(port); ok && (s == strconv.FormatUint(uint64(port), 10) || port == flow.PortLocal) {
			return n
		}
		return s
	})
}

// format writes the megaflow's line with in_port written as inPort (its
// number when "") and the outputs as output writes them.
func (e *MegaflowEntry) format(now time.Time, inPort string, output func(port uint32, k *flow.Key) string) string {
	used := "never"
	if !e.LastUsed.IsZero() {
		d := max(now.Sub(e.LastUsed), 0)
		used = strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
	}
	m := flow.Match{Key: e.Packet, Mask: e.Match.Mask}
	return fmt.Sprintf("%s, packets:%d, bytes:%d, used:%s, actions:%s",
		flow.FormatODPMatchNamed(&m, e.TLV, inPort), e.Packets, e.Bytes, used, flow.FormatDatapathActions(e.Actions, &e.Packet, output))
}

// ODPOutput writes an output to the bridge's port number port, of a
// packet with key k, as Open vSwitch writes the datapath action: the
// port's number (LOCAL for the bridge's own port), or for a tunnel port whose path to the remote endpoint
// is resolved, the encapsulation it does,
// "tnl_push(tnl_port(N),header(...),out_port(M))", with M the internal
// port of the underlay bridge the encapsulated packet enters as received
// on, followed, as Open vSwitch follows it in the same megaflow, by the
// actions the underlay bridge's rules give the encapsulated packet (ports
// and M by the underlay bridge's numbers: it is a datapath of its own,
// whose poll threads run those actions from a megaflow of their own).
func (b *Bridge) ODPOutput(port uint32, k *flow.Key) string {
	if port == flow.PortLocal {
		return "LOCAL"
	}
	num := strconv.FormatUint(uint64(port), 10)
	p := b.ports.Load().lookup(port)
	if p == nil {
		return num
	}
	tp, ok := p.vp.(*TunnelPort)
	if !ok {
		return num
	}
	var tos, ttl uint8
	if k.DlType == flow.EthTypeIPv4 || k.DlType == flow.EthTypeIPv6 {
		tos, ttl = k.NwTos, k.NwTTL
	}
	c, err := tp.opts.Config(k, tos, ttl)
	if err != nil {
		return num
	}
	path := tp.path(c.Dst)
	if path == nil || !path.ok || !completeConfig(&c, path, k, b.table.TLVMap(), nil) {
		return num // the copy is dropped, for the reason drop-reasons counts
	}
	c.EthDst, c.EthSrc = path.dstMAC, path.srcMAC
	enc, err := tunnel.NewEncap(c)
	if err != nil {
		return num
	}
	push := "tnl_push(tnl_port(" + num + ")," + enc.ODPHeader() + ",out_port(" + strconv.FormatUint(uint64(path.port.OFPort), 10) + "))"
	if after := underlayActions(path, enc, k); after != "" {
		push += "," + after
	}
	return push
}

// underlayActions translates a packet with key k, encapsulated with enc,
// through the rules of path's underlay bridge as received on its internal
// port, and writes the datapath actions it gets ("" for none). Outputs
// are by number: the underlay bridge's own tunnel ports are not followed.
func underlayActions(path *tunnelPath, enc *tunnel.Encap, k *flow.Key) string {
	inner := flow.BuildFrame(k)
	frame := make([]byte, enc.HeaderLen()+len(inner))
	copy(frame[enc.HeaderLen():], inner)
	if err := enc.Put(frame, 0, 0); err != nil {
		return ""
	}
	var outer, start flow.Key
	var off flow.Offsets
	flow.Extract(&outer, &off, frame, path.port.OFPort)
	tr := path.bridge.table.Snapshot().Translate(&outer, false)
	if len(tr.Actions) == 0 {
		return ""
	}
	outer.Masked(&tr.Mask, &start)
	return flow.FormatDatapathActions(tr.Actions, &start, nil)
}
