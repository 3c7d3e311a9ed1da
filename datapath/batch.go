package datapath

import "github.com/ovsxdp/ovsxdp/vport"

const (
	// outBuffers is how many output frames a thread holds before it must
	// flush its output batches.
	outBuffers = 4 * vport.MaxBatch
)

// outBatches are a poll thread's pending output batches, one per (port, tx
// queue) it sent to in this batch. A queued frame is a copy, in one of the
// buffers the thread owns, for every output of a packet but its last; for
// the last, when no action follows it, it is the received frame itself (as
// Open vSwitch clones a packet only for the outputs that are not its last
// action). A frame received into the thread's rx buffers has its buffer
// swapped with a free output buffer, which the next Receive fills instead.
// A frame that a port lent (vport.Lender) stays lent until its batch is
// sent, and then goes back to its port; the frames a batch's outputs did
// not take go back at the end of the batch.
type outBatches struct {
	bufs    [outBuffers][]byte
	used    int
	pending []outBatch
	// last is the entry of pending that queue filled last: the packets
	// of a batch mostly go where the one before went.
	last int

	// The rx batch, when its port lent it: lender, its rx queue lentQ,
	// the frames lent (nlent of them) and which an output took (a bit
	// each: frame i is bit i).
	lender vport.Lender
	// runLender is lender when it gives a run of its loan back by place
	// (vport.RunLender), else nil.
	runLender vport.RunLender
	lentQ     int
	lent      [vport.MaxBatch][]byte
	taken     lentMask
	nlent     int
	// lentIdx is the lent frame of the packet being executed, -1 for
	// none.
	lentIdx int
	// lentOut are the lent frames that output batches hold, to give back
	// once sent: lentRuns say which port and rx queue lent them, a run
	// of lentOut per batch received; release collects the frames an rx
	// batch's outputs did not take. The frames of a runLender are not
	// in lentOut: loanRuns hold them, a run of consecutive frames of a
	// loan each, whichever output batches they are in.
	lentOut  [][]byte
	lentRuns []lentRun
	loanRuns []loanRun
	loanFrom int // the first of loanRuns that the rx batch's loan holds
	release  [][]byte

	// The packet being executed. rx is the slot of the thread's rx
	// buffers that holds it (nil when it is not a received frame, as a
	// packet out); finalOut is the ordinal of its output that may take the
	// frame (0 for none) and outSeen the outputs it has made so far. An
	// output that may take the frame holds its last copy in held until
	// its port is resolved (holding), since only the last copy takes the
	// frame; one that makes a copy at most lets it take the frame at once
	// (takeOne).
	rx       *[]byte
	finalOut int
	outSeen  int
	holding  bool
	held     heldCopy
	takeOne  bool
}

// heldCopy is a copy that waits to learn whether it is its output's last.
type heldCopy struct {
	port, origin *Port
	q            int
	ok           bool
}

// lentMask has a bit for each frame of a lent rx batch.
type lentMask uint64

// A lentMask has room for a batch (checked at compile time).
var _ = [1]struct{}{}[vport.MaxBatch/65]

// lentRun is where the lent frames of lentOut from start on (up to the
// next run's start) come from: port's rx queue q.
type lentRun struct {
	port  vport.Lender
	q     int
	start int
}

// loanRun is a run of n lent frames that output batches hold, frames
// first to first+n-1 of the loan out on port's rx queue q, to give back
// at once (vport.RunLender).
type loanRun struct {
	port     vport.RunLender
	q        int
	first, n int
}

type outBatch struct {
	port   *Port
	q      int
	frames [][]byte
	// origins are the ports that frames came in on, in order: a run
	// of consecutive frames from one port each, so that a batch of
	// frames from one port costs one entry and is counted as one.
	origins []originRun
}

// originRun is a run of n consecutive frames of an output batch that
// came in on port from.
type originRun struct {
	from *Port
	n    int
}

// addOrigins records that the next n frames of b came in on from.
func (b *outBatch) addOrigins(from *Port, n int) {
	if k := len(b.origins); k > 0 && b.origins[k-1].from == from {
		b.origins[k-1].n += n
		return
	}
	b.origins = append(b.origins, originRun{from: from, n: n})
}

// originCursor walks the origins of an output batch's frames in their
// order, as transmit counts the frames it sent and dropped: each frame's
// origin once.
type originCursor struct {
	runs []originRun
	used int // the frames of runs[0] walked already
}

// next walks up to n frames (n > 0, no more than are left) from one port
// and returns that port and how many it walked.
func (c *originCursor) next(n int) (*Port, int) {
	r := c.runs[0]
	k := min(n, r.n-c.used)
	if c.used += k; c.used == r.n {
		c.runs, c.used = c.runs[1:], 0
	}
	return r.from, k
}

func (o *outBatches) init() {
	for i := range o.bufs {
		o.bufs[i] = make([]byte, 0, bufSize)
	}
	o.pending = make([]outBatch, 0, 16)
	o.lentOut = make([][]byte, 0, 4*vport.MaxBatch)
	o.lentRuns = make([]lentRun, 0, maxLentRuns)
	o.loanRuns = make([]loanRun, 0, maxLentRuns)
	o.release = make([][]byte, 0, 4*vport.MaxBatch)
	o.lentIdx = -1
}

func (o *outBatches) full() bool { return o.used == len(o.bufs) }

// startPacket readies the batches for a packet whose datapath actions
// have finalOut outputs, the last of them their last action (0 when that
// is not an output; flow.FinalOutputs): that output may take the frame.
func (o *outBatches) startPacket(finalOut int) {
	o.outSeen = 0
	o.finalOut = finalOut
}

// nextOutput counts an output of the packet and reports whether it may take
// the frame (it is the packet's last action, and the frame is in an rx
// buffer).
func (o *outBatches) nextOutput() bool {
	o.outSeen++
	return (o.rx != nil || o.lentIdx >= 0) && o.outSeen == o.finalOut
}

// add queues a copy of frame for port's tx queue q.
func (o *outBatches) add(port, origin *Port, q int, frame []byte) {
	buf := append(o.bufs[o.used][:0], frame...)
	o.used++
	o.queue(port, origin, q, buf)
}

// take queues frame itself for port's tx queue q, without a copy, if it is
// in the rx buffer of the packet being executed: that buffer becomes an
// output buffer and a free output buffer takes its place for the next
// Receive. It reports whether it did; if not, the caller adds a copy.
func (o *outBatches) take(port, origin *Port, q int, frame []byte) bool {
	if o.lentIdx >= 0 {
		return o.takeLent(port, origin, q, frame)
	}
	if o.rx == nil || !sameBuffer(*o.rx, frame) {
		return false
	}
	free := o.bufs[o.used]
	o.bufs[o.used] = *o.rx
	*o.rx = free[:maxFrame]
	o.rx = nil // taken: the rest of the packet copies
	o.used++
	o.queue(port, origin, q, frame)
	return true
}

// takeLent is take for a packet whose frame was lent (lentIdx >= 0).
func (o *outBatches) takeLent(port, origin *Port, q int, frame []byte) bool {
	i := o.lentIdx
	if !sameBuffer(o.lent[i], frame) {
		return false
	}
	o.taken |= 1 << i
	o.lentIdx = -1 // taken: the rest of the packet copies
	o.holdLent(i, 1)
	o.queue(port, origin, q, frame)
	return true
}

// holdLent records that output batches hold the n lent frames from
// first on, to give back once sent: as a run of the loan, which extends
// the run before it when it follows it, or in lentOut.
func (o *outBatches) holdLent(first, n int) {
	if k := len(o.loanRuns); k > o.loanFrom {
		if r := &o.loanRuns[k-1]; r.first+r.n == first {
			r.n += n
			return
		}
	}
	o.holdLentRun(first, n)
}

// holdLentRun is holdLent for frames that start a run of their own.
func (o *outBatches) holdLentRun(first, n int) {
	if o.runLender == nil {
		o.lentOut = append(o.lentOut, o.lent[first:first+n]...)
		return
	}
	o.loanRuns = append(o.loanRuns, loanRun{port: o.runLender, q: o.lentQ, first: first, n: n})
}

// sameBuffer reports whether frame is a part of buf's backing array that
// ends where buf's capacity ends (the frame is buf, resliced by actions
// that push or pop tags).
func sameBuffer(buf, frame []byte) bool {
	if cap(buf) == 0 || cap(frame) == 0 {
		return false
	}
	return &buf[:cap(buf)][cap(buf)-1] == &frame[:cap(frame)][cap(frame)-1]
}

func (o *outBatches) queue(port, origin *Port, q int, buf []byte) {
	b := o.batchFor(port, q)
	b.frames = append(b.frames, buf)
	b.addOrigins(origin, 1)
}

// batchFor returns the pending batch of port's tx queue q, adding an
// empty one if there is none. The pointer holds until the next batch is
// added or the batches are sent.
func (o *outBatches) batchFor(port *Port, q int) *outBatch {
	if o.last < len(o.pending) {
		if b := &o.pending[o.last]; b.port == port && b.q == q {
			return b
		}
	}
	for i := range o.pending {
		if b := &o.pending[i]; b.port == port && b.q == q {
			o.last = i
			return b
		}
	}
	o.last = len(o.pending)
	if len(o.pending) < cap(o.pending) {
		// Reuse the slices of an earlier batch's entry.
		o.pending = o.pending[:len(o.pending)+1]
		b := &o.pending[o.last]
		b.port, b.q = port, q
		b.frames, b.origins = b.frames[:0], b.origins[:0]
		return b
	}
	o.pending = append(o.pending, outBatch{port: port, q: q})
	return &o.pending[o.last]
}

func (o *outBatches) reset() {
	for i := range o.pending {
		b := &o.pending[i]
		b.port = nil
		clear(b.origins)
	}
	o.pending = o.pending[:0]
	o.used = 0
	// The lent frames the batches held are sent: give them back, a run
	// of one port and queue per call.
	for i, r := range o.lentRuns {
		end := len(o.lentOut)
		if i+1 < len(o.lentRuns) {
			end = o.lentRuns[i+1].start
		}
		if r.start < end {
			r.port.Release(r.q, o.lentOut[r.start:end])
		}
	}
	clear(o.lentOut)
	o.lentOut = o.lentOut[:0]
	for _, r := range o.loanRuns {
		r.port.ReleaseRun(r.q, r.first, r.n)
	}
	clear(o.loanRuns)
	o.loanRuns, o.loanFrom = o.loanRuns[:0], 0
	clear(o.lentRuns)
	o.lentRuns = o.lentRuns[:0]
	if o.nlent > 0 {
		// A flush in the middle of an rx batch: the frames its outputs
		// take from now on still come from its port.
		o.lentRuns = append(o.lentRuns, lentRun{port: o.lender, q: o.lentQ})
	}
}

// maxLentRuns is how many rx batches' runs of lent frames the output
// batches have room for before a flush, without growing: more than a
// poll thread usually receives between two flushes.
const maxLentRuns = 64

// receive receives a batch from rq: lent by a port that lends (into
// p.out.lent), else copied into the thread's rx buffers (p.bufs). sizes and
// info (or rxInfo, for a port whose frames all have the same: sameInfo)
// describe the frames either way. It returns how many frames it received
// and their bytes.
func (p *pmd) receive(rq rxq) (n, bytes int, err error) {
	o := &p.out
	info := p.info
	u, same := rq.port.vp.(vport.UniformRx)
	if same {
		info, p.rxInfo = nil, u.RxQueueInfo(rq.q)
	}
	p.sameInfo = same
	if l, ok := rq.port.vp.(vport.Lender); ok {
		n, err := l.ReceiveLent(rq.q, o.lent[:], info)
		if err != nil || n <= 0 {
			return 0, 0, err
		}
		n = min(n, len(o.lent), len(p.sizes))
		sizes := p.sizes[:n]
		for i, f := range o.lent[:n] {
			sizes[i] = len(f)
			bytes += len(f)
		}
		o.lender, o.lentQ, o.nlent = l, rq.q, n
		o.runLender, _ = l.(vport.RunLender)
		o.loanFrom = len(o.loanRuns)
		// The frames its outputs take are a new run of lentOut. Past
		// maxLentRuns the runs grow, once.
		o.lentRuns = append(o.lentRuns, lentRun{port: l, q: rq.q, start: len(o.lentOut)})
		return n, bytes, nil
	}
	if n, err = rq.port.vp.Receive(rq.q, p.bufs, p.sizes, info); err != nil || n <= 0 {
		return 0, 0, err
	}
	for _, size := range p.sizes[:n] {
		bytes += size
	}
	return n, bytes, nil
}

// rxQueueOf returns the rx queue recorded for frame i of the batch
// receive received.
func (p *pmd) rxQueueOf(i int) vport.RxQueue {
	if p.sameInfo {
		return p.rxInfo.RxQueue
	}
	return p.info[i].RxQueue
}

// rxFrame returns frame i of the batch receive received, and makes it the
// frame that its packet's final output may take.
func (p *pmd) rxFrame(i int) []byte {
	o := &p.out
	if o.nlent > 0 {
		o.lentIdx = i
		return o.lent[i]
	}
	o.rx = &p.bufs[i]
	return p.bufs[i][:p.sizes[i]]
}

// rxBytes returns frame i of the batch receive received, as rxFrame does,
// without making it the frame an output may take: for reading it only.
func (p *pmd) rxBytes(i int) []byte {
	if p.out.nlent > 0 {
		return p.out.lent[i]
	}
	return p.bufs[i][:p.sizes[i]]
}

// rxDone ends the batch receive received: the lent frames that no output
// took go back to their port at once.
func (p *pmd) rxDone() {
	o := &p.out
	o.rx = nil
	o.lentIdx = -1
	if o.nlent == 0 {
		return
	}
	if all := lentMask(1)<<o.nlent - 1; o.taken != all {
		o.release = o.release[:0]
		for i := range o.nlent {
			if o.taken&(1<<i) == 0 {
				o.release = append(o.release, o.lent[i])
			}
		}
		o.lender.Release(o.lentQ, o.release)
		clear(o.release)
		o.release = o.release[:0]
	}
	o.taken = 0
	clear(o.lent[:o.nlent])
	o.lender, o.runLender, o.nlent = nil, nil, 0
}
