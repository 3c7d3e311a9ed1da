package datapath

import (
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// A packet's dispatch: its key is extracted, the flow caches (exact-match
// cache, megaflows, and on a miss the translation of the OpenFlow
// pipeline, flow.Cache) give its datapath actions, and flow.Execute runs
// them, calling back Output (output.go) for each output.

// process classifies one packet and runs its actions.
func (p *pmd) process(in *Port, frame []byte, rxQueue vport.RxQueue) {
	c := &in.counters[p.id]
	if flow.Extract(&p.key, &p.off, frame, in.OFPort) != flow.MalformedNone {
		p.counters.lost.Add(1)
		c.drops[DropMalformed].Add(1)
		return
	}
	mf, src := p.cache.Lookup(&p.key)
	switch src {
	case flow.SourceEMC:
		p.counters.emcHits.Add(1)
	case flow.SourceMegaflow:
		p.counters.mfHits.Add(1)
	default:
		p.counters.upcalls.Add(1)
	}
	p.cache.Account(mf, 1, uint64(len(frame)), p.now) // its rules' counters at the end of the poll
	p.cache.AccountTCPFlags(mf, p.key.TcpFlags)       // for fin_timeout

	p.in = in
	p.copies = 0
	p.pick.hashed = false
	p.pick.rxQueue = rxQueue
	p.out.startPacket(mf.Actions)
	_, verdict := flow.Execute(frame, &p.key, &p.off, mf.Actions, p)
	if verdict == flow.VerdictOK {
		verdict = mf.Verdict // why translation dropped the packet, if it did
	}
	switch {
	case p.copies > 1:
		c.copies.Add(uint64(p.copies - 1))
	case p.copies == 0:
		c.drops[verdictDrop(verdict)].Add(1)
	}
}

// verdictDrop maps the verdict of a packet that was output nowhere to its
// drop reason.
func verdictDrop(v flow.Verdict) DropReason {
	switch v {
	case flow.VerdictActionCap:
		return DropActionCap
	case flow.VerdictTTLExceeded:
		return DropTTLExceeded
	case flow.VerdictNoRoom:
		return DropNoRoom
	case flow.VerdictResubmitDepth:
		return DropResubmitDepth
	case flow.VerdictResubmitLimit:
		return DropResubmitLimit
	case flow.VerdictStackTooDeep:
		return DropStackTooDeep
	}
	return DropNoRule
}
