package datapath

import "github.com/ovsxdp/ovsxdp/vport"

// schedPort is a vport.Port around a vport.Device for the deterministic
// driver of the teardown schedules: frames are injected with the RxInfo the
// schedule chooses (recorded rx queue or not, per frame), and what is
// transmitted is counted, not kept. Like the in-memory port, it refuses I/O
// while its device is down or unregistered. It is used by one goroutine.
type schedPort struct {
	name   string
	dev    *vport.Device
	rx     []schedQueue
	txq    int
	closed bool
	stats  vport.Stats
}

var _ vport.Port = (*schedPort)(nil)

// schedQueueLen bounds each rx queue.
const schedQueueLen = 64

type schedQueue struct {
	frames [][]byte
	info   []vport.RxInfo
}

func newSchedPort(dev *vport.Device, rxQueues int) *schedPort {
	return &schedPort{name: dev.Name(), dev: dev, rx: make([]schedQueue, rxQueues), txq: dev.MaxTxQueues()}
}

func (p *schedPort) Name() string          { return p.name }
func (p *schedPort) Device() *vport.Device { return p.dev }
func (p *schedPort) BatchSize() int        { return vport.MaxBatch }
func (p *schedPort) RxQueues() int         { return len(p.rx) }
func (p *schedPort) TxQueues() int         { return p.txq }
func (p *schedPort) Stats() vport.Stats    { return p.stats }

func (p *schedPort) usable() error {
	if p.closed {
		return vport.ErrClosed
	}
	if s := p.dev.Snapshot(); !s.Running() || s.Registration() == vport.Unregistered {
		return vport.ErrPortDown
	}
	return nil
}

// inject queues frame on rx queue q with info, as the wire would deliver
// it; it reports whether the frame was queued (a full queue, or a device
// that is down, drops it).
func (p *schedPort) inject(q int, frame []byte, info vport.RxInfo) bool {
	if p.usable() != nil || len(p.rx[q].frames) == schedQueueLen {
		p.stats.RxDropped++
		return false
	}
	p.rx[q].frames = append(p.rx[q].frames, frame)
	p.rx[q].info = append(p.rx[q].info, info)
	return true
}

func (p *schedPort) Receive(q int, bufs [][]byte, sizes []int, info []vport.RxInfo) (int, error) {
	if q < 0 || q >= len(p.rx) {
		return 0, vport.ErrBadQueue
	}
	if err := p.usable(); err != nil {
		return 0, err
	}
	rq := &p.rx[q]
	n := min(len(rq.frames), len(bufs), len(sizes), vport.MaxBatch)
	if info != nil {
		n = min(n, len(info))
	}
	for i := 0; i < n; i++ {
		sizes[i] = copy(bufs[i], rq.frames[i])
		if info != nil {
			info[i] = rq.info[i]
		}
		p.stats.RxPackets++
		p.stats.RxBytes += uint64(sizes[i])
	}
	rq.frames = append(rq.frames[:0], rq.frames[n:]...)
	rq.info = append(rq.info[:0], rq.info[n:]...)
	return n, nil
}

func (p *schedPort) Transmit(q int, frames [][]byte) (int, error) {
	if q < 0 || q >= p.txq {
		return 0, vport.ErrBadQueue
	}
	if err := p.usable(); err != nil {
		return 0, err
	}
	n := min(len(frames), vport.MaxBatch)
	for _, f := range frames[:n] {
		p.stats.TxPackets++
		p.stats.TxBytes += uint64(len(f))
	}
	return n, nil
}

// PrepareWait is never called: the deterministic driver does not sleep.
func (p *schedPort) PrepareWait(q int) (int, bool, error) {
	return -1, false, vport.ErrNotSupported
}

func (p *schedPort) Close() error {
	p.closed = true
	return nil
}
