package datapath

import "github.com/ovsxdp/ovsxdp/vport"

const (
	// outBuffers is how many output copies a thread holds before it must
	// flush its output batches.
	outBuffers = 4 * vport.MaxBatch
)

// outBatches are a poll thread's pending output batches, one per (port, tx
// queue) it sent to in this batch, with copies of the frames in buffers the
// thread owns.
type outBatches struct {
	bufs    [outBuffers][]byte
	used    int
	pending []outBatch
}

type outBatch struct {
	port    *Port
	q       int
	frames  [][]byte
	origins []*Port
}

func (o *outBatches) init() {
	for i := range o.bufs {
		o.bufs[i] = make([]byte, 0, bufSize)
	}
	o.pending = make([]outBatch, 0, 16)
}

func (o *outBatches) full() bool { return o.used == len(o.bufs) }

// add queues a copy of frame for port's tx queue q.
func (o *outBatches) add(port, origin *Port, q int, frame []byte) {
	buf := append(o.bufs[o.used][:0], frame...)
	o.used++
	for i := range o.pending {
		b := &o.pending[i]
		if b.port == port && b.q == q {
			b.frames = append(b.frames, buf)
			b.origins = append(b.origins, origin)
			return
		}
	}
	if len(o.pending) < cap(o.pending) {
		// Reuse the slices of an earlier batch's entry.
		o.pending = o.pending[:len(o.pending)+1]
		b := &o.pending[len(o.pending)-1]
		b.port, b.q = port, q
		b.frames = append(b.frames[:0], buf)
		b.origins = append(b.origins[:0], origin)
		return
	}
	o.pending = append(o.pending, outBatch{port: port, q: q, frames: [][]byte{buf}, origins: []*Port{origin}})
}

func (o *outBatches) reset() {
	for i := range o.pending {
		b := &o.pending[i]
		b.port = nil
		clear(b.origins)
	}
	o.pending = o.pending[:0]
	o.used = 0
}
