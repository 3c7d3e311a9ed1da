package datapath

import (
	"sync/atomic"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath/conntrack"
	"github.com/ovsxdp/ovsxdp/flow"
)

// This file is fragment reassembly on a poll thread, as Open vSwitch's
// userspace datapath does it around conntrack (lib/ipf.c): a ct action
// that meets an IPv4 or IPv6 fragment hands it to the bridge's
// reassembler (Config.Defrag), which holds a copy; the packet's actions
// stop there. The fragment that completes its packet gets the reassembled
// packet tracked; the connection's state, zone, mark and label, and the
// addresses (every fragment) and ports (the first) that NAT rewrote, are
// carried over to the held fragments, which then run, one by one in the
// order of their offsets, the actions that followed the ct action. So
// fragments leave as they came, each within the MTU it arrived under.
//
// The ledger: a held fragment is one fate of the packet received
// (PortStats.Held, a gauge); its release turns it into outputs or a drop
// on the port it came in on, whichever thread releases it.
//
// As in Open vSwitch 3.1, a fragment that reassembly refuses (too small,
// overlapping, malformed, over the limit of held fragments, or met while
// reassembly is off) is tracked as it is, which makes it +trk+inv, and
// the flows decide its fate; a packet that does not complete within the
// reassembler's timeout has its fragments sent on through the actions
// that followed the ct action, with ct_state +inv and without +trk, as
// ipf marks the expired fragments it sends.

// fragDomains numbers the bridges for the reassembler they may share:
// a bridge reassembles only its own fragments.
var fragDomains atomic.Uint32

// fragExpireEvery is how often a poll thread looks for expired fragments
// when no fragment makes it look.
const fragExpireEvery = int64(time.Second)

// heldFrag is what a poll thread keeps with a fragment the reassembler
// holds: the port it came in on, and its key and offsets as the actions
// before the ct action left them.
type heldFrag struct {
	in   *Port
	key  flow.Key
	off  flow.Offsets
	rest []flow.Action // the actions after the ct action
}

// conntrack runs a ct action for a packet whose outputs go to out. Only
// fragments, with a reassembler, leave the tracker's own path.
func (p *pmd) conntrack(frame []byte, k *flow.Key, off *flow.Offsets, ct *flow.CT, rest []flow.Action, out flow.Outputter) flow.Verdict {
	t := p.br.cfg.Conntrack
	if t == nil {
		return flow.VerdictNoConntrack
	}
	if k.NwFrag&flow.FragAny != 0 && p.br.cfg.Defrag != nil {
		return p.reassemble(frame, k, off, ct, rest, out)
	}
	return t.Track(frame, k, off, ct, p.mono)
}

// reassemble gives a fragment to the reassembler. It returns
// VerdictTaken, the fragment's fate being counted here (held), except for
// a fragment that reassembly refuses, or a frame that is not a fragment
// after all, which is tracked as it is (a fragment then is +trk+inv).
func (p *pmd) reassemble(frame []byte, k *flow.Key, off *flow.Offsets, ct *flow.CT, rest []flow.Action, out flow.Outputter) flow.Verdict {
	d := p.br.cfg.Defrag
	r := d.Hold(frame, k, off, ct.Zone, p.br.fragDomain, p.mono, &heldFrag{in: p.in, key: *k, off: *off, rest: rest})
	p.sendExpiredFrags()
	switch r.Status {
	case conntrack.NotFragment, conntrack.FragInvalid:
		return p.br.cfg.Conntrack.Track(frame, k, off, ct, p.mono)
	case conntrack.FragHeld:
		p.holdFrag()
		return flow.VerdictTaken
	}
	// The fragment completed its packet: it is held with the others, and
	// released with them in the order of their offsets.
	p.holdFrag()

	// The reassembled packet is tracked with the completing fragment's
	// metadata (registers, recirculation id, earlier ct results) and its
	// own transport: the protocol (an IPv6 fragment that is not the first
	// has 44, its fragment header, there), ports and flags.
	var whole flow.Key
	var wo flow.Offsets
	flow.Extract(&whole, &wo, r.Whole, k.InPort)
	wk := *k
	wk.NwProto, wk.NwFrag = whole.NwProto, whole.NwFrag
	wk.TpSrc, wk.TpDst, wk.TcpFlags = whole.TpSrc, whole.TpDst, whole.TcpFlags
	verdict := p.br.cfg.Conntrack.Track(r.Whole, &wk, &wo, ct, p.mono)

	keys := make([]flow.Key, len(r.Frags))
	for i, m := range r.Metas {
		keys[i] = m.(*heldFrag).key
	}
	if verdict == flow.VerdictOK {
		conntrack.Finish(r.Whole, &wk, r.Frags, keys)
	}
	for i, fr := range r.Frags {
		h := r.Metas[i].(*heldFrag)
		h.key = keys[i]
		p.releaseFrag(h, fr, rest, out, verdict)
	}
	return flow.VerdictTaken
}

// holdFrag counts the packet being executed as held: a copy of it whose
// fate is decided later.
func (p *pmd) holdFrag() {
	p.copies++
	p.in.counters[p.id].held.Add(1)
}

// releaseFrag runs rest on a held fragment, frame as its packet's ct left
// it, and counts what becomes of it on the port it came in on: outputs,
// or a drop for the reason rest (or failed, the reassembled packet's ct
// verdict when it is not VerdictOK) gave. The packet being executed keeps
// its own output state meanwhile, as a recirculation does.
func (p *pmd) releaseFrag(h *heldFrag, frame []byte, rest []flow.Action, out flow.Outputter, failed flow.Verdict) {
	c := &h.in.counters[p.id]
	c.held.Add(^uint64(0)) // -1
	switch {
	case failed != flow.VerdictOK:
		c.drops[verdictDrop(failed)].Add(1)
		return
	case p.recircDepth >= MaxRecircDepth:
		c.drops[DropRecircDepth].Add(1)
		return
	}
	if p.recirc == nil {
		p.recirc = newRecircPasses()
	}
	r := &p.recirc[p.recircDepth]
	r.buf = append(r.buf[:0], frame...)
	r.key, r.off = h.key, h.off
	p.recircDepth++

	// The fragment's copies count on the port it came in on, apart from
	// those of the packet being executed.
	in, copies := p.in, p.copies
	p.in, p.copies = h.in, 0
	verdict := p.executeCopy(r.buf, &r.key, &r.off, rest, out)
	switch {
	case p.copies == 0:
		c.drops[verdictDrop(verdict)].Add(1)
	case p.copies > 1:
		c.copies.Add(uint64(p.copies - 1))
	}
	p.in, p.copies = in, copies
	p.recircDepth--
}

// sendExpiredFrags sends on the fragments the reassembler gave up on
// for their timeout, each through the actions that followed its ct
// action and counted on the port it came in on, with ct_state +inv and
// no other connection tracking state changed, as Open vSwitch's ipf
// sends its expired fragments.
func (p *pmd) sendExpiredFrags() {
	p.expired = p.br.cfg.Defrag.TakeExpired(p.br.fragDomain, p.expired[:0])
	for i, e := range p.expired {
		h := e.Meta.(*heldFrag)
		h.key.CtState = flow.CtStateInv
		p.releaseFrag(h, e.Frame, h.rest, p, flow.VerdictOK)
		p.expired[i] = conntrack.Expired{}
	}
}

// expireFrags sends on the fragments held past the reassembler's
// timeout, at most once every fragExpireEvery: a poll thread calls it
// between batches, so that the fragments of a packet whose other
// fragments never come leave even when no fragment follows.
func (p *pmd) expireFrags() {
	if p.mono < p.fragNext {
		return
	}
	p.fragNext = p.mono + fragExpireEvery
	p.br.cfg.Defrag.Expire(p.mono)
	p.sendExpiredFrags()
}
