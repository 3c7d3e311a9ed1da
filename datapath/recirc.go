package datapath

import (
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// This file is connection tracking and recirculation on a poll thread:
// flow.Execute hands the thread (a flow.Recirculator) the ct and recirc
// datapath actions that translation made of ct(...). ct runs the bridge's
// tracker (Config.Conntrack); recirc sends a copy of the packet, with its
// key as the actions left it (ct fields set) and RecircID set, through the
// caches again, at once and on the same thread, as Open vSwitch's
// userspace datapath does. Packets whose actions hold neither never come
// here.

// MaxRecircDepth is how many recirculations one received packet may go
// through, nested (Open vSwitch's userspace datapath's MAX_RECIRC_DEPTH);
// a recirculation past it is dropped as recirc-depth.
const MaxRecircDepth = 6

// recircPass is one nested pass of a recirculated packet: its copy of the
// frame, its key and its offsets, owned by the poll thread.
type recircPass struct {
	buf []byte
	key flow.Key
	off flow.Offsets
}

// newRecircPasses allocates a poll thread's nested passes, each with a
// frame buffer as large as the thread's own.
func newRecircPasses() *[MaxRecircDepth]recircPass {
	var ps [MaxRecircDepth]recircPass
	for i := range ps {
		ps[i].buf = make([]byte, 0, bufSize)
	}
	return &ps
}

// monoBase is the origin of the monotonic clock the tracker runs on.
var monoBase = time.Now()

// ConntrackNow is the time on the monotonic clock the poll threads give
// the connection tracker, in nanoseconds: what the tracker's owner passes
// to its Dump, Stats and Run.
func ConntrackNow() int64 { return int64(time.Since(monoBase)) }

// Conntrack implements flow.Recirculator: it runs ct with the bridge's
// tracker, at the poll's time, fragments going through the reassembler
// first (reassembly.go).
func (p *pmd) Conntrack(frame []byte, k *flow.Key, off *flow.Offsets, ct *flow.CT, rest []flow.Action) flow.Verdict {
	return p.conntrack(frame, k, off, ct, rest, p)
}

// Recirculate implements flow.Recirculator: the copy of the packet goes
// through the caches with its key and runs the actions it gets, as a
// received packet would, except that it never takes the received frame
// (it is a copy in the thread's own buffer). A copy that ends output
// nowhere is counted as a dropped copy of the received packet, for the
// reason its actions or translation gave, so that rx = tx + drops holds
// whatever the passes do.
func (p *pmd) Recirculate(frame []byte, k *flow.Key, off *flow.Offsets) {
	p.recirculate(frame, k, off, p)
}

// recirculate is Recirculate with the copy's outputs going to out (the
// thread itself, or a packet out's sink).
func (p *pmd) recirculate(frame []byte, k *flow.Key, off *flow.Offsets, out flow.Outputter) {
	if p.recircDepth >= MaxRecircDepth {
		p.drop(k.InPort, DropRecircDepth)
		return
	}
	if p.recirc == nil {
		p.recirc = newRecircPasses() // only ct recirculates, and it needs a tracker
	}
	r := &p.recirc[p.recircDepth]
	r.buf = append(r.buf[:0], frame...)
	r.key, r.off = *k, *off
	p.recircDepth++

	p.tally.recircs++
	mf, src := p.cache.Lookup(&r.key)
	switch src {
	case flow.SourceEMC:
		p.tally.emcHits++
	case flow.SourceMegaflow:
		p.tally.mfHits++
	default:
		p.tally.upcalls++
	}
	p.cache.Account(mf, 1, uint64(len(frame)), p.now)
	p.cache.AccountTCPFlags(mf, r.key.TcpFlags)

	copies := p.copies
	verdict := p.executeCopy(r, mf.Actions, out)
	if verdict == flow.VerdictOK {
		verdict = mf.Verdict
	}
	if p.copies == copies {
		p.drop(k.InPort, verdictDrop(verdict))
	}
	p.recircDepth--
}

// executeCopy runs acts on the copy in r, its outputs going to out, while
// the received packet's own output state (the output batches' marks, the
// tx queue pick and the thread's key) waits; it returns the actions'
// verdict.
func (p *pmd) executeCopy(r *recircPass, acts []flow.Action, out flow.Outputter) flow.Verdict {
	o := &p.out
	rx, lentIdx, finalOut, outSeen := o.rx, o.lentIdx, o.finalOut, o.outSeen
	pick := p.pick
	o.rx, o.lentIdx, o.finalOut, o.outSeen = nil, -1, 0, 0
	key := &r.key
	var saved flow.Key
	needs := flow.OutputsNormal(acts) // the normal action reads the key from the thread
	if needs {
		saved = p.key
		p.key = r.key
		key = &p.key
	}
	p.pick.key = key
	p.pick.hashed = false

	_, verdict := flow.Execute(r.buf, key, &r.off, acts, out)

	if needs {
		p.key = saved
	}
	p.pick = pick
	o.rx, o.lentIdx, o.finalOut, o.outSeen = rx, lentIdx, finalOut, outSeen
	return verdict
}
