package datapath

import (
	"sync/atomic"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// A batch's dispatch, in three passes so that each runs as a tight loop
// over the batch: the packets' keys are extracted, the flow caches
// (exact-match cache, megaflows, and on a miss the translation of the
// OpenFlow pipeline, flow.Cache) give their datapath actions in one
// lookup, and flow.Execute runs each packet's actions, calling back Output
// (output.go) for each output. The statistics are counted per run of
// packets that took the same megaflow and per batch, not per packet.

// keyBatch is a poll thread's per-batch classification state, allocated
// once.
type keyBatch struct {
	keys [vport.MaxBatch]flow.Key
	offs [vport.MaxBatch]flow.Offsets
	mfs  [vport.MaxBatch]*flow.Megaflow
	srcs [vport.MaxBatch]flow.Source
	pkt  [vport.MaxBatch]uint8 // the index in the thread's buffers of each key's packet
	// plain has bit m set while keys[m] is a plain key (flow.IsPlain)
	// that nothing changed since its extraction reported it so: the next
	// extraction into keys[m] then zeroes only the words a plain key may
	// have non-zero, and the exact-match probe reads only those. Whatever
	// may write to a key (tunnel metadata, actions) clears its bit.
	plain uint64
}

// pmdTally is what a poll thread counts in one poll, added to its
// pmdCounters once at the end of the poll (publish).
type pmdTally struct {
	packets, emcHits, mfHits, upcalls, lost, recircs uint64
}

// publish adds the tally to c and zeroes it.
func (t *pmdTally) publish(c *pmdCounters) {
	if t.packets == 0 && t.lost == 0 && t.recircs == 0 {
		return
	}
	c.packets.Add(t.packets)
	addNonZero(&c.emcHits, t.emcHits)
	addNonZero(&c.mfHits, t.mfHits)
	addNonZero(&c.upcalls, t.upcalls)
	addNonZero(&c.lost, t.lost)
	addNonZero(&c.recircs, t.recircs)
	*t = pmdTally{}
}

func addNonZero(c *atomic.Uint64, n uint64) {
	if n != 0 {
		c.Add(n)
	}
}

// dispatch classifies the first n packets received on in (rxFrame) and
// runs their actions.
func (p *pmd) dispatch(in *Port, n int) {
	b := &p.batch
	c := &in.counters[p.id]
	// The loop's state in locals, stored once after it: the calls in it
	// would otherwise have it reloaded and stored for every packet.
	m, plainKeys, inPort, injected := 0, b.plain, in.OFPort, p.inj.on
	for i := range n {
		why, plain := flow.ExtractReusing(&b.keys[m], &b.offs[m], p.rxBytes(i), inPort, plainKeys>>m&1 != 0)
		plainKeys &^= 1 << m
		if why != flow.MalformedNone {
			p.tally.lost++
			c.drops[DropMalformed].Add(1)
			continue
		}
		if injected {
			p.injectedKey(&b.keys[m], i) // a decapsulated frame's tunnel metadata
			plain = false
		}
		if plain {
			plainKeys |= 1 << m
		}
		b.pkt[m] = uint8(i)
		m++
	}
	b.plain = plainKeys
	if m == 0 {
		return
	}
	before := p.cache.Stats()
	p.cache.LookupBatchPlain(b.keys[:m], b.plain, b.mfs[:m], b.srcs[:m])
	p.account(m, before)

	p.in = in
	p.holdRecircs()
	var copies uint64
	for j := 0; j < m; {
		mf := b.mfs[j]
		port, only := flow.OnlyOutput(mf.Actions)
		single := only && singleOutput(port)
		if dst := p.plainOutput(port, single); dst != nil {
			// A run of packets that took mf: each goes straight to
			// output, its one copy taking the frame, with the port
			// resolved once for the run.
			end := j + 1
			for end < m && b.mfs[end] == mf {
				end++
			}
			p.outputRun(dst, j, end)
			j = end
			continue
		}
		i := b.pkt[j]
		k := &b.keys[j]
		b.plain &^= 1 << j // the actions below may write to the key
		if mf.OutputsNormal() {
			// The normal action reads the key from the thread (MAC
			// learning); the rest reads it where it was extracted.
			p.key = *k
			k = &p.key
		}
		p.copies = 0
		p.pick.key = k
		p.pick.hashed = false
		p.pick.rxQueue = p.rxQueueOf(int(i))
		frame := p.rxFrame(int(i)) // batch.go: lent or in the thread's buffer
		p.out.startPacket(mf.FinalOutputs())
		verdict := flow.VerdictOK
		if only {
			// Execute's one call for these actions, which need not wait
			// to learn whether a copy is the last when there is one copy
			// at most (output.go).
			if single {
				p.outputOnly(port, frame)
			} else {
				p.Output(port, frame)
			}
		} else {
			_, verdict = flow.Execute(frame, k, &b.offs[j], mf.Actions, p)
		}
		if verdict == flow.VerdictOK {
			verdict = mf.Verdict // why translation dropped the packet, if it did
		}
		switch {
		case p.copies > 1:
			copies += uint64(p.copies - 1)
		case p.copies == 0:
			c.drops[verdictDrop(verdict)].Add(1)
		}
		j++
	}
	p.pick.key = &p.key
	if copies != 0 {
		c.copies.Add(copies)
	}
	p.runRecircs()
}

// plainOutput returns the port where the packets of a megaflow go, when
// its actions are one output to port and that port makes one copy at
// most (single: flow.OnlyOutput and singleOutput, which dispatch works
// out once per megaflow), and it resolves to a port of the bridge that
// output takes as it is: not a tunnel port, on a bridge without tunnels.
// It returns nil for any other megaflow, whose packets go outputOnly's or
// Execute's way, one by one.
func (p *pmd) plainOutput(port uint32, single bool) *Port {
	if !single || p.br.tunnels != nil {
		return nil
	}
	dst, _, _ := resolveOne(p.tbl, p.in, p.in.OFPort, port)
	if dst == nil {
		return nil
	}
	if _, tunnel := dst.vp.(*TunnelPort); tunnel {
		return nil
	}
	return dst
}

// account counts the classified packets of the batch on the stage that
// answered them, from what the cache counted since before (its stats
// before the batch's lookup), and on their megaflows, once per run of
// packets that took the same megaflow.
func (p *pmd) account(m int, before flow.CacheStats) {
	b := &p.batch
	after := p.cache.Stats()
	p.tally.emcHits += after.EMCHits - before.EMCHits
	p.tally.mfHits += after.MegaflowHits - before.MegaflowHits
	p.tally.upcalls += after.Upcalls - before.Upcalls
	// The batch's slices in locals: the calls below would otherwise have
	// them loaded again for every packet.
	mfs, pkt, keys, sizes := b.mfs[:m], b.pkt[:m], b.keys[:m], p.sizes
	for j := 0; j < m; {
		mf := mfs[j]
		var bytes uint64
		var flags uint16
		end := j
		for ; end < len(mfs) && mfs[end] == mf; end++ {
			bytes += uint64(sizes[pkt[end]])
			flags |= keys[end].TcpFlags
		}
		// The flags first: flags then need not outlive Account's call,
		// which kept them on the stack, stored for every packet.
		p.cache.AccountTCPFlags(mf, flags)               // for fin_timeout
		p.cache.Account(mf, uint64(end-j), bytes, p.now) // its rules' counters at the end of the poll
		j = end
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
	case flow.VerdictCTFull:
		return DropConntrackFull
	case flow.VerdictNoConntrack:
		return DropNoConntrack
	case flow.VerdictNoRecircContext:
		return DropNoRecircContext
	case flow.VerdictMeterDrop:
		return DropMeter
	}
	return DropNoRule
}
