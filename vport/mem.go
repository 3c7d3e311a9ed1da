package vport

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Defaults of MemConfig.
const (
	DefaultRingSize  = 1024
	DefaultFrameSize = 2048
)

// MemConfig describes an in-memory port.
type MemConfig struct {
	Name string
	// Kind is the kind of device (VethLike by default). Ports of a pair
	// made by NewMemPair are always VethLike.
	Kind               DeviceKind
	RxQueues, TxQueues int // default 1 each
	RingSize           int // frames per queue ring, rounded up to a power of two; default DefaultRingSize
	FrameSize          int // longest frame; default DefaultFrameSize
	BatchSize          int // default MaxBatch
	// RecordRxQueue makes received frames carry the rx queue they came in
	// on, as a multi-queue driver records it in the skb.
	RecordRxQueue bool
}

// MemPort is an in-memory port. Its rx queues are fed from the wire side by
// Inject (a traffic generator) or by the Transmit of a connected peer; its
// tx queues are drained from the wire side by Drain (a sink), unless the
// port is connected to a peer, which then receives what it transmits.
//
// Every queue is a bounded ring whose producers and consumers each take
// their side once per batch (ring.go); nothing on the packet path
// allocates or waits without a bound.
//
// Like an AF_XDP port, it lends received frames (Lender) out of its rx
// rings' slots, so that a poll thread handles them in place as it does
// an AF_XDP port's: a lent frame may grow by up to 64 bytes after
// FrameSize. While frames of an rx queue are out on loan, that queue
// receives nothing more (ReceiveLent and Receive find it empty) and its
// slots stay taken: the borrower gives them back (Release) before it
// receives again.
type MemPort struct {
	name          string
	dev           *Device
	batch         int
	frameSize     int
	recordRxQueue bool

	rx []*ring // fed by Inject or the peer; read by Receive
	tx []*ring // fed by Transmit; read by Drain; nil when connected

	rxStats []queueStats
	txStats []queueStats

	peer   *MemPort // back-to-back peer, set at creation
	closed atomic.Bool
}

var (
	_ Port      = (*MemPort)(nil)
	_ Lender    = (*MemPort)(nil)
	_ RunLender = (*MemPort)(nil)
	_ UniformRx = (*MemPort)(nil)
)

type queueStats struct {
	packets, bytes, dropped atomic.Uint64
	_                       [40]byte
}

// NewMemPort returns an unconnected in-memory port whose device is
// registered and up.
func NewMemPort(cfg MemConfig) (*MemPort, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	dev, err := NewDevice(cfg.Name, cfg.Kind, cfg.TxQueues)
	if err != nil {
		return nil, fmt.Errorf("new mem port: %w", err)
	}
	p, err := newMemPort(cfg, dev, true)
	if err != nil {
		return nil, err
	}
	if err := dev.SetUp(); err != nil {
		p.Close()
		return nil, fmt.Errorf("new mem port %s: %w", cfg.Name, err)
	}
	return p, nil
}

// NewMemPair returns two in-memory ports connected back to back, like the
// two ends of a veth pair: what one transmits on tx queue q arrives on the
// other's rx queue q modulo its number of rx queues. Both devices are up.
func NewMemPair(a, b MemConfig) (*MemPort, *MemPort, error) {
	var err error
	if a, err = a.withDefaults(); err != nil {
		return nil, nil, err
	}
	if b, err = b.withDefaults(); err != nil {
		return nil, nil, err
	}
	if a.Kind != VethLike || b.Kind != VethLike {
		return nil, nil, fmt.Errorf("new mem pair %s/%s: both ends must be VethLike", a.Name, b.Name)
	}
	da, db, err := NewVethPair(a.Name, b.Name, a.TxQueues, b.TxQueues)
	if err != nil {
		return nil, nil, fmt.Errorf("new mem pair: %w", err)
	}
	pa, err := newMemPort(a, da, false)
	if err != nil {
		return nil, nil, err
	}
	pb, err := newMemPort(b, db, false)
	if err != nil {
		pa.Close()
		return nil, nil, err
	}
	pa.peer, pb.peer = pb, pa
	if err := errors.Join(da.SetUp(), db.SetUp()); err != nil {
		pa.Close()
		pb.Close()
		return nil, nil, fmt.Errorf("new mem pair: %w", err)
	}
	return pa, pb, nil
}

func (c MemConfig) withDefaults() (MemConfig, error) {
	if c.RxQueues == 0 {
		c.RxQueues = 1
	}
	if c.TxQueues == 0 {
		c.TxQueues = 1
	}
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.BatchSize == 0 {
		c.BatchSize = MaxBatch
	}
	switch {
	case c.Name == "":
		return c, errors.New("mem port: empty name")
	case c.RxQueues < 1 || c.RxQueues > MaxQueues:
		return c, fmt.Errorf("mem port %s: %d rx queues, want 1 to %d", c.Name, c.RxQueues, MaxQueues)
	case c.TxQueues < 1 || c.TxQueues > MaxQueues:
		return c, fmt.Errorf("mem port %s: %d tx queues, want 1 to %d", c.Name, c.TxQueues, MaxQueues)
	case c.BatchSize < 1 || c.BatchSize > MaxBatch:
		return c, fmt.Errorf("mem port %s: batch size %d, want 1 to %d", c.Name, c.BatchSize, MaxBatch)
	case c.FrameSize < 60 || c.FrameSize > 65535:
		return c, fmt.Errorf("mem port %s: frame size %d, want 60 to 65535", c.Name, c.FrameSize)
	}
	return c, nil
}

func newMemPort(cfg MemConfig, dev *Device, withTx bool) (_ *MemPort, err error) {
	p := &MemPort{
		name:          cfg.Name,
		dev:           dev,
		batch:         cfg.BatchSize,
		frameSize:     cfg.FrameSize,
		recordRxQueue: cfg.RecordRxQueue,
		rxStats:       make([]queueStats, cfg.RxQueues),
		txStats:       make([]queueStats, cfg.TxQueues),
	}
	defer func() {
		if err != nil {
			p.closeRings()
		}
	}()
	for range cfg.RxQueues {
		r, err := newRing(cfg.RingSize, cfg.FrameSize)
		if err != nil {
			return nil, fmt.Errorf("mem port %s: rx ring: %w", cfg.Name, err)
		}
		p.rx = append(p.rx, r)
	}
	if withTx {
		for range cfg.TxQueues {
			r, err := newRing(cfg.RingSize, cfg.FrameSize)
			if err != nil {
				return nil, fmt.Errorf("mem port %s: tx ring: %w", cfg.Name, err)
			}
			p.tx = append(p.tx, r)
		}
	}
	return p, nil
}

// Name is the port's name.
func (p *MemPort) Name() string { return p.name }

// Device is the port's device state.
func (p *MemPort) Device() *Device { return p.dev }

// BatchSize is the most frames one call moves.
func (p *MemPort) BatchSize() int { return p.batch }

// RxQueues is the number of rx queues.
func (p *MemPort) RxQueues() int { return len(p.rx) }

// TxQueues is the number of tx queues.
func (p *MemPort) TxQueues() int { return len(p.txStats) }

// FrameSize is the longest frame the port carries.
func (p *MemPort) FrameSize() int { return p.frameSize }

// Peer is the port connected back to back with p, or nil.
func (p *MemPort) Peer() *MemPort { return p.peer }

// usable is the port-level check of Receive and Transmit.
func (p *MemPort) usable() error {
	if p.closed.Load() {
		return ErrClosed
	}
	if s := p.dev.Snapshot(); !s.Running() || s.Registration() == Unregistered {
		return ErrPortDown
	}
	return nil
}

// Receive implements Port.
func (p *MemPort) Receive(q int, bufs [][]byte, sizes []int, info []RxInfo) (int, error) {
	if q < 0 || q >= len(p.rx) {
		return 0, ErrBadQueue
	}
	if err := p.usable(); err != nil {
		return 0, err
	}
	limit := min(p.batch, len(bufs), len(sizes))
	if info != nil {
		limit = min(limit, len(info))
	}
	n, dropped, bytes := p.rx[q].pop(bufs[:limit], sizes[:limit])
	fillRxInfo(info, n, p.RxQueueInfo(q))
	p.rxStats[q].add(n, bytes, dropped)
	return n, nil
}

// RxQueueInfo implements UniformRx: the rx queue is recorded when the
// port's MemConfig says so.
func (p *MemPort) RxQueueInfo(q int) RxInfo {
	if p.recordRxQueue {
		return RxInfo{RxQueue: RecordRxQueue(q)}
	}
	return RxInfo{}
}

// ReceiveLent implements Lender: the frames are in the slots of rx queue
// q's ring, with the rest of their slot as capacity, until Release gives
// them back.
func (p *MemPort) ReceiveLent(q int, frames [][]byte, info []RxInfo) (int, error) {
	if q < 0 || q >= len(p.rx) {
		return 0, ErrBadQueue
	}
	if err := p.usable(); err != nil {
		return 0, err
	}
	limit := min(p.batch, len(frames))
	if info != nil {
		limit = min(limit, len(info))
	}
	n, bytes := p.rx[q].lend(frames[:limit])
	fillRxInfo(info, n, p.RxQueueInfo(q))
	p.rxStats[q].add(n, bytes, 0)
	return n, nil
}

// Release implements Lender: once every frame lent on rx queue q is back,
// their slots take frames again. Frames that are not out on loan from q
// are ignored. It works on a closed port too, whose rings keep their
// memory, so that frames out on loan across Close come back harmlessly.
func (p *MemPort) Release(q int, frames [][]byte) {
	if q < 0 || q >= len(p.rx) {
		return
	}
	p.rx[q].giveBack(frames)
}

// ReleaseRun implements RunLender: a ring lends nothing while frames of
// its loan are out.
func (p *MemPort) ReleaseRun(q, first, n int) {
	if q < 0 || q >= len(p.rx) {
		return
	}
	p.rx[q].giveBackRun(first, n)
}

// Transmit implements Port. On a connected port the frames go to the
// peer's rx queue; while the peer is down they are dropped (and counted in
// TxDropped), as a veth drops what it sends to a peer that is down. Like a
// full ring, a ring that other producers keep busy past a bounded wait
// takes fewer frames than offered.
func (p *MemPort) Transmit(q int, frames [][]byte) (int, error) {
	if q < 0 || q >= len(p.txStats) {
		return 0, ErrBadQueue
	}
	if err := p.usable(); err != nil {
		return 0, err
	}
	frames = frames[:min(len(frames), p.batch)]
	r := p.txRing(q)
	if r == nil {
		p.txStats[q].add(0, 0, len(frames))
		return len(frames), nil
	}
	taken, dropped, bytes := r.push(frames)
	p.txStats[q].add(taken-dropped, bytes, dropped)
	return taken, nil
}

// txRing returns the ring that tx queue q feeds, or nil when the frames
// are to be dropped because the peer cannot receive.
func (p *MemPort) txRing(q int) *ring {
	if p.peer == nil {
		return p.tx[q]
	}
	if p.peer.closed.Load() || !p.peer.dev.Snapshot().Running() {
		return nil
	}
	return p.peer.rx[q%len(p.peer.rx)]
}

// Inject puts frames on rx queue q as if they had arrived from the wire and
// returns how many it took from the front of frames. It stops when the ring
// is full, and takes none when other producers keep the ring busy past a
// bounded wait (the caller may try again). Frames it took but dropped, because the device is down or a
// frame is longer than FrameSize, are counted in RxDropped.
func (p *MemPort) Inject(q int, frames [][]byte) int {
	if q < 0 || q >= len(p.rx) || p.closed.Load() {
		return 0
	}
	if s := p.dev.Snapshot(); !s.Running() || s.Registration() == Unregistered {
		p.rxStats[q].add(0, 0, len(frames))
		return len(frames)
	}
	taken, dropped, _ := p.rx[q].push(frames)
	p.rxStats[q].add(0, 0, dropped)
	return taken
}

// Drain takes up to min(len(bufs), len(sizes)) transmitted frames from tx
// queue q into bufs[i][:sizes[i]] and returns how many, as the wire side of
// the port. A connected port has nothing to drain. Frames longer than their
// buffer are dropped and counted in TxDropped.
func (p *MemPort) Drain(q int, bufs [][]byte, sizes []int) int {
	if q < 0 || q >= len(p.tx) {
		return 0
	}
	n, dropped, _ := p.tx[q].pop(bufs, sizes)
	p.txStats[q].add(0, 0, dropped)
	return n
}

// TxPending is the number of frames waiting on tx queue q for Drain.
func (p *MemPort) TxPending(q int) int {
	if q < 0 || q >= len(p.tx) {
		return 0
	}
	return p.tx[q].len()
}

// RxPending is the number of frames waiting on rx queue q for Receive.
func (p *MemPort) RxPending(q int) int {
	if q < 0 || q >= len(p.rx) {
		return 0
	}
	return p.rx[q].len()
}

// PrepareWait implements Port: the descriptor is an eventfd that the next
// producer on the queue writes to.
func (p *MemPort) PrepareWait(q int) (int, bool, error) {
	if q < 0 || q >= len(p.rx) {
		return -1, false, ErrBadQueue
	}
	if err := p.usable(); err != nil {
		return -1, false, err
	}
	return p.rx[q].arm()
}

// prepareDrainWait is PrepareWait for the wire side of tx queue q.
func (p *MemPort) prepareDrainWait(q int) (int, bool, error) {
	if q < 0 || q >= len(p.tx) || p.closed.Load() {
		return -1, false, ErrClosed
	}
	return p.tx[q].arm()
}

// Stats implements Port.
func (p *MemPort) Stats() Stats {
	var s Stats
	for i := range p.rxStats {
		q := &p.rxStats[i]
		s.RxPackets += q.packets.Load()
		s.RxBytes += q.bytes.Load()
		s.RxDropped += q.dropped.Load()
	}
	for i := range p.txStats {
		q := &p.txStats[i]
		s.TxPackets += q.packets.Load()
		s.TxBytes += q.bytes.Load()
		s.TxDropped += q.dropped.Load()
	}
	return s
}

// Close implements Port. It leaves the device state alone.
func (p *MemPort) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	if err := p.closeRings(); err != nil {
		return fmt.Errorf("close mem port %s: %w", p.name, err)
	}
	return nil
}

func (p *MemPort) closeRings() error {
	var errs []error
	for _, r := range p.rx {
		errs = append(errs, r.close())
	}
	for _, r := range p.tx {
		errs = append(errs, r.close())
	}
	return errors.Join(errs...)
}

func (s *queueStats) add(packets, bytes, dropped int) {
	if packets != 0 {
		s.packets.Add(uint64(packets))
		s.bytes.Add(uint64(bytes))
	}
	if dropped != 0 {
		s.dropped.Add(uint64(dropped))
	}
}
