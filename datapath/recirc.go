package datapath

import (
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// This file is connection tracking and recirculation on a poll thread:
// flow.Execute hands the thread (a flow.Recirculator) the ct and recirc
// datapath actions that translation made of ct(...). ct runs the bridge's
// tracker (Config.Conntrack); recirc sends a copy of the packet, with its
// key as the actions left it (ct fields set) and RecircID set, through the
// caches again, on the same thread, as Open vSwitch's userspace datapath
// does. The copies a received batch's actions make wait until those
// actions have run, then go through the caches together, as the batch
// did (Open vSwitch recirculates a batch too): their lookups' cache misses
// overlap, and the tracker's work and the caches' alternate once per
// batch rather than once per packet. Nested recirculations, and those of
// a packet out or a reassembled packet's fragments, run at once. Packets
// whose actions hold neither never come here.

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

// heldRecircs are the recirculated copies of a received batch's packets,
// waiting for the batch's actions to finish (holdRecircs, runRecircs),
// owned by the poll thread.
type heldRecircs struct {
	on   bool // a batch's actions are running: its copies wait here
	n    int
	bufs [vport.MaxBatch][]byte
	keys [vport.MaxBatch]flow.Key
	offs [vport.MaxBatch]flow.Offsets
	ins  [vport.MaxBatch]*Port         // the port that received each copy's packet
	rxqs [vport.MaxBatch]vport.RxQueue // and the rx queue it recorded
	mfs  [vport.MaxBatch]*flow.Megaflow
	srcs [vport.MaxBatch]flow.Source
}

func newHeldRecircs() *heldRecircs {
	h := new(heldRecircs)
	for i := range h.bufs {
		h.bufs[i] = make([]byte, 0, bufSize)
	}
	return h
}

// holdRecircs makes the recirculations of the batch whose actions dispatch
// is about to run wait for runRecircs.
func (p *pmd) holdRecircs() {
	if p.held != nil {
		p.held.on = true
	}
}

// runRecircs runs the recirculated copies held since holdRecircs: their
// keys are looked up together, then each copy's actions run, in the order
// the copies were made, their outputs and drops counted on the port that
// received the copy's packet. The copy was counted as one of its packet's
// fates when it was held (Recirculate): it becomes what its actions make
// of it, none (a drop, for the reason they give), one or more.
func (p *pmd) runRecircs() {
	if p.held != nil {
		p.held.on = false
		p.runHeld()
	}
}

// runHeld runs the held copies and empties the list; the packet being
// executed, if any, keeps its own port, rx queue and fates.
func (p *pmd) runHeld() {
	h := p.held
	n := h.n
	if n == 0 {
		return
	}
	h.n = 0
	p.cache.LookupBatchPlain(h.keys[:n], 0, h.mfs[:n], h.srcs[:n])
	in, rxq, copies := p.in, p.pick.rxQueue, p.copies
	p.recircDepth = 1 // the copies' own recirculations nest, at once
	for i := range n {
		mf := h.mfs[i]
		p.tallyRecirc(h.srcs[i])
		p.cache.Account(mf, 1, uint64(len(h.bufs[i])), p.now)
		p.cache.AccountTCPFlags(mf, h.keys[i].TcpFlags)
		p.in, p.pick.rxQueue = h.ins[i], h.rxqs[i]
		p.copies = 0
		verdict := p.executeCopy(h.bufs[i], &h.keys[i], &h.offs[i], mf.Actions, p)
		if verdict == flow.VerdictOK {
			verdict = mf.Verdict
		}
		c := &p.in.counters[p.id]
		switch {
		case p.copies == 0:
			c.drops[verdictDrop(verdict)].Add(1)
		case p.copies > 1:
			c.copies.Add(uint64(p.copies - 1))
		}
	}
	p.recircDepth = 0
	p.in, p.pick.rxQueue, p.copies = in, rxq, copies
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
//
// A copy made by a received batch's actions waits for runRecircs, and
// counts as one of its packet's fates meanwhile. When the batch has made
// more copies than the list holds, those held run first, so that copies
// still run in the order they were made.
func (p *pmd) Recirculate(frame []byte, k *flow.Key, off *flow.Offsets) {
	if h := p.held; h != nil && h.on && p.recircDepth == 0 {
		if h.n == len(h.keys) {
			p.runHeld()
		}
		i := h.n
		h.n++
		h.bufs[i] = append(h.bufs[i][:0], frame...)
		h.keys[i], h.offs[i] = *k, *off
		h.ins[i], h.rxqs[i] = p.in, p.pick.rxQueue
		p.copies++
		return
	}
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

	mf, src := p.cache.Lookup(&r.key)
	p.tallyRecirc(src)
	p.cache.Account(mf, 1, uint64(len(frame)), p.now)
	p.cache.AccountTCPFlags(mf, r.key.TcpFlags)

	copies := p.copies
	verdict := p.executeCopy(r.buf, &r.key, &r.off, mf.Actions, out)
	if verdict == flow.VerdictOK {
		verdict = mf.Verdict
	}
	if p.copies == copies {
		p.drop(k.InPort, verdictDrop(verdict))
	}
	p.recircDepth--
}

// executeCopy runs acts on a copy of a packet (its frame in a buffer of
// the thread's, its key and offsets), its outputs going to out, while the
// received packet's own output state (the output batches' marks, the tx
// queue pick and the thread's key) waits; it returns the actions' verdict.
func (p *pmd) executeCopy(buf []byte, k *flow.Key, off *flow.Offsets, acts []flow.Action, out flow.Outputter) flow.Verdict {
	o := &p.out
	rx, lentIdx, finalOut, outSeen := o.rx, o.lentIdx, o.finalOut, o.outSeen
	pick := p.pick
	o.rx, o.lentIdx, o.finalOut, o.outSeen = nil, -1, 0, 0
	key := k
	var saved flow.Key
	needs := flow.OutputsNormal(acts) // the normal action reads the key from the thread
	if needs {
		saved = p.key
		p.key = *k
		key = &p.key
	}
	p.pick.key = key
	p.pick.hashed = false

	_, verdict := flow.Execute(buf, key, off, acts, out)

	if needs {
		p.key = saved
	}
	p.pick = pick
	o.rx, o.lentIdx, o.finalOut, o.outSeen = rx, lentIdx, finalOut, outSeen
	return verdict
}

// tallyRecirc counts a recirculated pass, and the cache stage that
// answered its lookup (src), in the thread's tally.
func (p *pmd) tallyRecirc(src flow.Source) {
	p.tally.recircs++
	switch src {
	case flow.SourceEMC:
		p.tally.emcHits++
	case flow.SourceMegaflow:
		p.tally.mfHits++
	default:
		p.tally.upcalls++
	}
}
