package vport

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// SinkConfig describes a Sink.
type SinkConfig struct {
	// Flows is the number of generator flows to account (ids 0 to
	// Flows-1); stamped frames of other flows count as Unknown.
	Flows int
	// OnFrame, if set, sees every frame the sink drains, with the tx queue
	// it came from. frame is valid only during the call.
	OnFrame func(q int, frame []byte)
}

// SinkStats are a Sink's totals.
type SinkStats struct {
	Packets, Bytes uint64 // every frame drained
	// Corrupt frames carry a stamp that disagrees with their bytes.
	Corrupt uint64
	// Foreign frames carry no stamp; Unknown ones a stamp of a flow id
	// outside the configured flows.
	Foreign, Unknown uint64
	// OutOfOrder counts frames whose sequence number is below the next one
	// expected (late or duplicated); Lost counts sequence numbers skipped.
	OutOfOrder, Lost uint64
}

// FlowStats are a Sink's counters for one flow (intact frames only).
type FlowStats struct {
	Packets, Bytes   uint64
	OutOfOrder, Lost uint64
	NextSeq          uint32 // the sequence number expected next
}

// Sink drains the tx queues of a MemPort, counts frames per generator flow
// and checks each frame's stamp. One goroutine, started by Start and
// stopped by Stop, does the work; Poll does it on the caller's goroutine.
type Sink struct {
	port *MemPort
	cfg  SinkConfig

	flows  []sinkFlow
	totals struct {
		packets, bytes, corrupt, foreign, unknown, outOfOrder, lost atomic.Uint64
	}

	bufs  [MaxBatch][]byte
	sizes [MaxBatch]int
	fds   []unix.PollFd

	// mu serializes Start and Stop and protects stop and done.
	mu   sync.Mutex
	stop chan struct{}
	done chan struct{}
}

type sinkFlow struct {
	packets, bytes, outOfOrder, lost atomic.Uint64
	next                             atomic.Uint32
}

// NewSink returns a sink for port, which must not be connected to a peer
// (a connected port's frames go to the peer, not to its tx queues).
func NewSink(port *MemPort, cfg SinkConfig) (*Sink, error) {
	if port.Peer() != nil {
		return nil, fmt.Errorf("sink: port %s is connected to %s: nothing to drain", port.Name(), port.Peer().Name())
	}
	if cfg.Flows < 0 || cfg.Flows > maxGenFlows {
		return nil, fmt.Errorf("sink: %d flows, want 0 to %d", cfg.Flows, maxGenFlows)
	}
	s := &Sink{port: port, cfg: cfg, flows: make([]sinkFlow, cfg.Flows)}
	arena := make([]byte, MaxBatch*port.FrameSize())
	for i := range s.bufs {
		s.bufs[i] = arena[i*port.FrameSize() : (i+1)*port.FrameSize()]
	}
	s.fds = make([]unix.PollFd, port.TxQueues())
	done := make(chan struct{})
	close(done)
	s.done = done
	return s, nil
}

// Poll drains what is waiting on the port's tx queues now (at most one
// ring's worth per queue) and returns how many frames it took. It must not
// be called while the sink runs.
func (s *Sink) Poll() int {
	total := 0
	for q := range s.port.TxQueues() {
		for range s.port.tx[q].capacity()/MaxBatch + 1 {
			n := s.port.Drain(q, s.bufs[:], s.sizes[:])
			for i := range n {
				s.account(q, s.bufs[i][:s.sizes[i]])
			}
			total += n
			if n < MaxBatch {
				break
			}
		}
	}
	return total
}

func (s *Sink) account(q int, frame []byte) {
	if s.cfg.OnFrame != nil {
		s.cfg.OnFrame(q, frame)
	}
	s.totals.packets.Add(1)
	s.totals.bytes.Add(uint64(len(frame)))
	id, seq, err := VerifyStamp(frame)
	switch {
	case errors.Is(err, ErrNoStamp):
		s.totals.foreign.Add(1)
		return
	case err != nil:
		s.totals.corrupt.Add(1)
		return
	case int64(id) >= int64(len(s.flows)):
		s.totals.unknown.Add(1)
		return
	}
	f := &s.flows[id]
	f.packets.Add(1)
	f.bytes.Add(uint64(len(frame)))
	next := f.next.Load()
	switch d := int32(seq - next); {
	case d < 0:
		f.outOfOrder.Add(1)
		s.totals.outOfOrder.Add(1)
		return
	case d > 0:
		f.lost.Add(uint64(d))
		s.totals.lost.Add(uint64(d))
	}
	f.next.Store(seq + 1)
}

// Stats returns the sink's totals. It may be called while the sink runs.
func (s *Sink) Stats() SinkStats {
	t := &s.totals
	return SinkStats{
		Packets: t.packets.Load(), Bytes: t.bytes.Load(),
		Corrupt: t.corrupt.Load(), Foreign: t.foreign.Load(), Unknown: t.unknown.Load(),
		OutOfOrder: t.outOfOrder.Load(), Lost: t.lost.Load(),
	}
}

// Flow returns the counters of flow i (zero if i is not a configured flow).
func (s *Sink) Flow(i int) FlowStats {
	if i < 0 || i >= len(s.flows) {
		return FlowStats{}
	}
	f := &s.flows[i]
	return FlowStats{
		Packets: f.packets.Load(), Bytes: f.bytes.Load(),
		OutOfOrder: f.outOfOrder.Load(), Lost: f.lost.Load(), NextSeq: f.next.Load(),
	}
}

// Start starts draining on a goroutine of the sink's own.
func (s *Sink) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
	default:
		return errors.New("sink: already running")
	}
	s.stop = make(chan struct{})
	s.done = make(chan struct{})
	go s.run(s.stop, s.done)
	return nil
}

// Stop stops draining and waits for the goroutine to exit. It is
// idempotent. Frames still queued stay queued (Poll takes them).
func (s *Sink) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		close(s.stop)
		s.stop = nil
	}
	<-s.done
}

// sinkIdleWait bounds how long the idle sink sleeps, and so how long Stop
// may wait.
const sinkIdleWait = 5 * time.Millisecond

func (s *Sink) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		default:
		}
		if s.Poll() > 0 {
			continue
		}
		if !s.sleep() {
			return
		}
	}
}

// sleep waits for a transmitted frame or sinkIdleWait. It returns false
// once the port is closed.
func (s *Sink) sleep() bool {
	for q := range s.fds {
		fd, ready, err := s.port.prepareDrainWait(q)
		if err != nil {
			return false
		}
		if ready {
			return true
		}
		s.fds[q] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	_, err := pollFds(s.fds, sinkIdleWait)
	return err == nil
}
