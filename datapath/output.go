package datapath

import (
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// This file is where output is decided. resolveOutput turns an output
// action's port into bridge ports, for the poll threads and ofproto/trace
// alike. It is also the one place where a packet copy meets an output
// port's device state: the poll thread's output reads the state once,
// checkOutput applies the policy's checks, and pickTxQueue chooses the tx
// queue as that policy's kernel would. The copy then waits in the thread's
// output batches (batch.go) until the batch ends (tx.go).

// checkOutput returns why the policy refuses to transmit on a device in
// state st, or ok. The port exists (it is in the port table snapshot the
// caller holds), which is all Legacy asks.
func checkOutput(pol Policy, st vport.DeviceState) (DropReason, bool) {
	switch pol {
	case Legacy:
		return 0, true
	case Carrier:
		if !st.Carrier() {
			return DropNoCarrier, false
		}
		return 0, true
	case Upstream:
		if !st.Running() {
			return DropNotRunning, false
		}
		if !st.Carrier() {
			return DropNoCarrier, false
		}
		return 0, true
	}
	// Guarded: everything the transmit depends on, from one snapshot
	// (transmittable).
	switch {
	case st.Registration() != vport.Registered:
		return DropNotRegistered, false
	case !st.Running():
		return DropNotRunning, false
	case !st.Carrier():
		return DropNoCarrier, false
	case st.TxQueues() == 0:
		return DropNoTxQueues, false
	}
	return 0, true
}

// transmittable reports whether Guarded lets a copy through to a device
// in state st (checkOutput): what output tests first, inlined, so that the
// usual copy makes no call to checkOutput.
func transmittable(st vport.DeviceState) bool {
	return st.Registration() == vport.Registered && st.Running() && st.Carrier() && st.TxQueues() != 0
}

// portSink receives what resolveOutput decides for one output action.
type portSink interface {
	// send is a copy for dst, which the sink puts through the output
	// policy (checkOutput, then the tx queue pick).
	send(dst *Port)
	// drop is a copy dropped before it reaches a device, for reason;
	// port is the port it was for.
	drop(port uint32, reason DropReason)
	// normal is where the normal action sends the packet: a port,
	// flow.PortFlood, or flow.PortNone when it would go back out its
	// ingress port.
	normal() uint32
}

// resolveOutput is the one place where an output action's port becomes
// bridge ports: the poll threads (pmd.Output) and ofproto/trace (tracer)
// both call it. in is the ingress port (nil if it is gone), inPort its
// number.
func resolveOutput(tbl *portTable, in *Port, inPort, port uint32, sink portSink) {
	switch port {
	case flow.PortFlood, flow.PortAll:
		for _, dst := range tbl.list {
			if dst != in {
				sink.send(dst)
			}
		}
	case flow.PortNormal:
		switch to := sink.normal(); to {
		case flow.PortFlood:
			resolveOutput(tbl, in, inPort, flow.PortFlood, sink)
		case flow.PortNone:
			sink.drop(inPort, DropSamePort)
		default:
			resolveOutput(tbl, in, inPort, to, sink)
		}
	default:
		if dst, dropPort, reason := resolveOne(tbl, in, inPort, port); dst != nil {
			sink.send(dst)
		} else {
			sink.drop(dropPort, reason)
		}
	}
}

// singleOutput reports whether an output to port makes one copy at most:
// it is not to flood, all or normal.
func singleOutput(port uint32) bool {
	return port != flow.PortFlood && port != flow.PortAll && port != flow.PortNormal
}

// resolveOne is resolveOutput for a port that makes one copy at most
// (singleOutput): the port to send it to, or nil and the port and reason
// to drop it for.
func resolveOne(tbl *portTable, in *Port, inPort, port uint32) (dst *Port, dropPort uint32, reason DropReason) {
	if port == flow.PortInPort {
		if in == nil {
			return nil, inPort, DropPortGone
		}
		return in, 0, 0
	}
	dst = tbl.lookup(port)
	switch {
	case dst == nil:
		return nil, port, DropPortGone
	case dst == in:
		return nil, port, DropSamePort
	}
	return dst, 0, 0
}

// queueSpins tells whether pickTxQueue spins (and the packet ends as a
// lockup) for a device with txq tx queues in use, for a packet whose rx
// queue is recorded or not: only the kernel's loop over a recorded rx
// queue, with no queue to reduce it to, never ends.
func queueSpins(pol Policy, txq int, rxRecorded bool) bool {
	return pol != Guarded && rxRecorded && txq == 0
}

// txPick is what a poll thread knows about the packet whose tx queue is
// being picked, and how the watchdog can end a spin.
type txPick struct {
	key     *flow.Key // the packet's key, hashed on demand (skb_get_hash)
	hash    uint32    // the hash, once hashed is set
	hashed  bool
	rxQueue vport.RxQueue // the rx queue recorded for the packet, if any
	w       *stall        // the calling poll thread's stall record
	warn    *onceWarning  // the bridge's warning of a device without tx queues
}

// flowHash returns the packet's flow hash, computing it on first use: only
// packets without a recorded rx queue need it.
func (p *txPick) flowHash() uint32 {
	if !p.hashed {
		p.hash = uint32(p.key.Hash())
		p.hashed = true
	}
	return p.hash
}

// pickTxQueue picks the tx queue for a device with txq queues in use, as
// skb_tx_hash does. For Guarded it is a bounded O(1) reduction and txq is
// never 0 here (checkOutput refused it). For the other policies it is the
// kernel's loop, which never terminates when txq is 0 and a rx queue is
// recorded: the calling thread spins until the watchdog releases it, and
// then pickTxQueue returns ok=false (the packet is dropped as DropLockup).
func pickTxQueue(pol Policy, txq int, p *txPick) (q int, ok bool) {
	qcount := uint32(txq)
	if pol == Guarded {
		if p.rxQueue.Recorded() {
			return recordedQueue(p.rxQueue, txq), true
		}
		return int(reciprocalScale(p.flowHash(), qcount)), true
	}
	if pol != Legacy && qcount == 0 {
		p.warn.warn("WARNING: skb_tx_hash: qcount == 0 (tx to a device without tx queues)")
	}
	if !p.rxQueue.Recorded() {
		// reciprocal_scale(hash, 0) is 0: harmless, as in the kernel.
		return int(reciprocalScale(p.flowHash(), qcount)), true
	}
	hash := uint32(p.rxQueue.Queue())
	return kernelQueueLoop(hash, qcount, p.w)
}

// recordedQueue is Guarded's tx queue for a packet whose rx queue rq is
// recorded, on a device with txq > 0 tx queues: rq modulo txq, without
// the division when rq is below txq already. It is small enough to be
// inlined into output.
func recordedQueue(rq vport.RxQueue, txq int) int {
	q, n := uint32(rq.Queue()), uint32(txq)
	if q < n {
		return int(q)
	}
	return int(q % n)
}

// kernelQueueLoop is skb_tx_hash's reduction of a recorded rx queue:
//
//	while (unlikely(hash >= qcount))
//		hash -= qcount;
//
// It is a real loop: with qcount == 0 it does not terminate by itself. The
// only way out is the stall's release flag, checked on every iteration (the
// userspace stand-in for the kernel's watchdog panic), which the watchdog
// sets, or the thread itself when its spin budget (if any) runs out. The
// budget does not bound the loop for the device's sake: it is when the
// detector calls the spin a lockup.
func kernelQueueLoop(hash, qcount uint32, w *stall) (int, bool) {
	var spins uint64
	for hash >= qcount {
		hash -= qcount
		spins++
		if spins == spinNote || spins == w.budget {
			w.noteSpin(hash, qcount)
			if spins == w.budget {
				w.overrun()
			}
		}
		if w.released.Load() {
			return 0, false
		}
	}
	return int(hash), true
}

// spinNote is the number of iterations after which a spinning thread writes
// down what it is spinning on, for the watchdog's report. No terminating
// reduction of a 16-bit rx queue reaches it (see MinSpinBudget), and it is
// short enough to be reached well within any watchdog threshold, even
// under the race detector.
const spinNote = MinSpinBudget

// reciprocalScale maps hash into [0, n) as the kernel's reciprocal_scale.
func reciprocalScale(hash, n uint32) uint32 {
	return uint32(uint64(hash) * uint64(n) >> 32)
}

// onceWarning logs a warning the first time only, as the kernel's
// DEBUG_NET_WARN_ON_ONCE(qcount == 0) in skb_tx_hash, which the 2023 fix
// added and only debug kernels compile. Each bridge has its own.
type onceWarning struct {
	done atomic.Bool
	log  *slog.Logger
}

// warn logs msg if it is the first call; a nil onceWarning logs nothing.
func (o *onceWarning) warn(msg string) {
	if o != nil && o.done.CompareAndSwap(false, true) {
		o.log.Warn(msg)
	}
}

// Output implements flow.Outputter: resolveOutput turns the port into
// bridge ports, and each copy goes to output. The last copy of the
// packet's final output takes the received frame instead of a copy of it
// (batch.go): its copies are held one at a time until the port is resolved.
func (p *pmd) Output(port uint32, frame []byte) {
	p.outputFrom(p.in, p.in.OFPort, port, frame)
}

// OutputAs implements flow.InPortOutputter: flood, all and normal after
// the flow wrote in_port resolve against the written port (in and
// inPort), normal learning and forwarding as if the packet had come in
// there. The copies are still the ingress port's in its ledger.
func (p *pmd) OutputAs(port, inPort uint32, frame []byte) {
	in := p.tbl.lookup(inPort)
	if port != flow.PortNormal {
		p.outputFrom(in, inPort, port, frame)
		return
	}
	// The normal action reads the key's in_port. The tx queue pick's flow
	// hash is the packet's own, taken before the key changes.
	p.pick.flowHash()
	saved := p.key.InPort
	p.key.InPort = inPort
	p.noLearn = in == nil
	p.outputFrom(in, inPort, port, frame)
	p.key.InPort, p.noLearn = saved, false
}

// outputFrom is Output with in (nil if none) and inPort the port the
// output resolves against.
func (p *pmd) outputFrom(in *Port, inPort, port uint32, frame []byte) {
	p.frame = frame
	if !p.out.nextOutput() {
		resolveOutput(p.tbl, in, inPort, port, p)
		p.frame = nil
		return
	}
	if singleOutput(port) {
		// One copy at most: it is the last, and may take the frame
		// without being held. resolveOutput's answer, without the sink's
		// interface.
		p.out.takeOne = true
		if dst, dropPort, reason := resolveOne(p.tbl, in, inPort, port); dst != nil {
			p.send(dst)
		} else {
			p.drop(dropPort, reason)
		}
		p.out.takeOne = false
		p.frame = nil
		return
	}
	p.out.held.ok = false
	p.out.holding = true
	resolveOutput(p.tbl, in, inPort, port, p)
	p.out.holding = false
	if h := p.out.held; h.ok {
		p.out.held = heldCopy{}
		p.enqueue(h.port, h.origin, h.q, frame, true)
	}
	p.frame = nil
}

// outputOnly is Output for a packet whose actions are one output, to a
// port that makes one copy at most (singleOutput): that copy is the
// packet's last and may take the frame. It is outputFrom's path for such
// an output, without the count of outputs and the frame kept for the sink,
// which only a packet with several outputs needs.
func (p *pmd) outputOnly(port uint32, frame []byte) {
	in := p.in
	dst, dropPort, reason := resolveOne(p.tbl, in, in.OFPort, port)
	if dst == nil {
		p.drop(dropPort, reason)
		return
	}
	p.out.takeOne = true
	p.tunnelOrOutput(dst, frame)
	p.out.takeOne = false
}

// send, drop and normal make the poll thread resolveOutput's sink.
func (p *pmd) send(dst *Port) { p.tunnelOrOutput(dst, p.frame) }

func (p *pmd) drop(_ uint32, reason DropReason) {
	p.copies++
	p.in.counters[p.id].drops[reason].Add(1)
}

func (p *pmd) normal() uint32 {
	if p.noLearn {
		// in_port was written to no port of the bridge: nothing to learn
		// it on.
		return p.br.macs.Forward(&p.key, p.now)
	}
	return p.br.macs.Normal(&p.key, p.now)
}

// output is the single output function every packet copy goes through: it
// reads dst's device state once, applies the policy, picks the tx queue and
// queues a copy of frame on it.
func (p *pmd) output(dst *Port, frame []byte) {
	p.copies++
	st := dst.dev.Snapshot()
	var q int
	if rq := p.pick.rxQueue; p.policy == Guarded && transmittable(st) && rq.Recorded() {
		// The usual copy: checkOutput's and pickTxQueue's answers for
		// it, without their calls.
		q = recordedQueue(rq, st.TxQueues())
	} else {
		if reason, ok := checkOutput(p.policy, st); !ok {
			p.dropCopy(dst, reason)
			return
		}
		p.stall.cur = dst
		var ok bool
		if q, ok = pickTxQueue(p.policy, st.TxQueues(), &p.pick); !ok {
			p.dropCopy(dst, DropLockup)
			return
		}
	}
	if h := p.br.outputHook; h != nil {
		h(p.tbl, dst, st, q)
	}
	o := &p.out
	if o.holding {
		// The copy held before this one was not the last: it is copied.
		if h := o.held; h.ok {
			p.enqueue(h.port, h.origin, h.q, frame, false)
		}
		o.held = heldCopy{port: dst, origin: p.in, q: q, ok: true}
		return
	}
	if o.takeOne && o.lentIdx >= 0 && !o.full() && o.takeLent(dst, p.in, q, frame) {
		// The usual copy, a lent frame's only one: enqueue's answer
		// without its call.
		return
	}
	p.enqueue(dst, p.in, q, frame, o.takeOne)
}

// outputRun is output for the packets of a run that dispatch sends to
// dst, b.pkt[j:end], each the only copy of its packet, which takes its
// frame. The usual copies, under Guarded, of lent frames whose rx queue is
// recorded, to a device that takes them, go into dst's output batch in
// takeRun's loop (or at once, takeAll, when the port recorded one rx queue
// for the whole batch: sameInfo); any other copy goes through output.
func (p *pmd) outputRun(dst *Port, j, end int) {
	b, o := &p.batch, &p.out
	fast := p.policy == Guarded && o.nlent > 0 && p.br.outputHook == nil
	for j < end {
		if fast && !o.full() {
			if p.sameInfo {
				j += o.takeAll(dst, p.in, b.pkt[j:end], p.rxInfo.RxQueue)
			} else {
				j += o.takeRun(dst, p.in, b.pkt[j:end], p.info)
			}
			if j == end {
				break
			}
		}
		i := b.pkt[j]
		p.pick.key = &b.keys[j]
		p.pick.hashed = false
		p.pick.rxQueue = p.rxQueueOf(int(i))
		o.takeOne = true
		p.output(dst, p.rxFrame(int(i)))
		o.takeOne = false
		j++
	}
	o.lentIdx = -1
}

// takeRun queues the lent frames of the packets pkt (indexes in the rx
// batch, whose info it has) for dst, as output and takeLent would for
// each packet's only copy, from the first up to one that output must
// see: a copy that Guarded drops, or whose rx queue is not recorded. It
// returns how many it queued. It reads dst's device state once for the
// copies it queues, which go to the device together at the end of the
// batch as one output's would (and flush reads the state again before
// it transmits them, queueOver); it picks the tx queue and finds dst's
// batch once per run of packets from one rx queue, and queues the run
// in queueLent's loop.
func (o *outBatches) takeRun(dst, origin *Port, pkt []uint8, info []vport.RxInfo) int {
	txq := takesCopies(dst)
	if txq == 0 {
		return 0
	}
	n := 0
	for n < len(pkt) {
		rq := info[pkt[n]].RxQueue
		if !rq.Recorded() {
			break
		}
		end := n + 1
		for end < len(pkt) && info[pkt[end]].RxQueue == rq {
			end++
		}
		o.queueLent(o.batchFor(dst, recordedQueue(rq, txq)), origin, pkt[n:end])
		n = end
	}
	return n
}

// takeAll is takeRun for packets that all have rx queue rq: they are
// one run, queued at once, or none.
func (o *outBatches) takeAll(dst, origin *Port, pkt []uint8, rq vport.RxQueue) int {
	txq := takesCopies(dst)
	if txq == 0 || !rq.Recorded() {
		return 0
	}
	o.queueLent(o.batchFor(dst, recordedQueue(rq, txq)), origin, pkt)
	return len(pkt)
}

// takesCopies returns the tx queues that dst's device has when Guarded
// lets copies through to it (transmittable), else 0.
func takesCopies(dst *Port) int {
	st := dst.dev.Snapshot()
	if !transmittable(st) {
		return 0
	}
	return st.TxQueues()
}

// queueLent appends the lent frames of the packets pkt to b, from origin,
// holds them (holdLent) and marks them taken. It makes room for them
// first, so that its loop stores without append's checks and calls,
// which kept the loop's slices in memory. pkt increase, as dispatch
// numbers the packets of a batch: when the last is as far from the first
// as their count says, they are consecutive (the usual run, of a whole
// batch), held as one run, and marked taken at once; the frames of such a
// run of minCopyRun or more are copied at once.
func (o *outBatches) queueLent(b *outBatch, origin *Port, pkt []uint8) {
	b.addOrigins(origin, len(pkt))
	nf := len(b.frames)
	b.frames = slices.Grow(b.frames, len(pkt))[:nf+len(pkt)]
	frames := b.frames[nf:][:len(pkt)]
	if first, k := int(pkt[0]), len(pkt); int(pkt[k-1])-first == k-1 {
		if lent := o.lent[first : first+k]; k >= minCopyRun {
			copy(frames, lent)
		} else {
			for x, f := range lent {
				frames[x] = f
			}
		}
		o.holdLent(first, k)
		o.taken |= (lentMask(1)<<k - 1) << first
		return
	}
	taken := o.taken
	for x, i := range pkt {
		frames[x] = o.lent[i]
		taken |= 1 << i
	}
	o.taken = taken
	// The runs of consecutive packets, held a run at a time.
	for x := 0; x < len(pkt); {
		end := x + 1
		for end < len(pkt) && pkt[end] == pkt[end-1]+1 {
			end++
		}
		o.holdLent(int(pkt[x]), end-x)
		x = end
	}
}

// minCopyRun is the shortest run of consecutive packets whose lent frames
// queueLent copies: the copies' calls cost about what its loop spends on
// 8 packets.
const minCopyRun = 8

// enqueue puts frame in the output batch of dst's tx queue q, flushing the
// batches first if they are full: a copy of it, or with take the frame
// itself when it may (see outBatches.take).
func (p *pmd) enqueue(dst, origin *Port, q int, frame []byte, take bool) {
	if p.out.full() {
		p.flush()
	}
	if take && p.out.take(dst, origin, q, frame) {
		return
	}
	p.out.add(dst, origin, q, frame)
}

func (p *pmd) dropCopy(dst *Port, reason DropReason) {
	p.in.counters[p.id].drops[reason].Add(1)
	dst.counters[p.id].txDrops[reason].Add(1)
}
