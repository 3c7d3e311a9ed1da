package datapath

import (
	"sync/atomic"

	"github.com/ovsxdp/ovsxdp/flow"
)

// This file is the datapath's side of packet ins: a controller action
// (or a table miss that goes to the controller) hands a copy of the
// packet, cut to the action's max_len, with what the packet in reports,
// to the bridge's bounded packet-in queue. A poll thread never blocks on
// it: when the queue is full, or no controller takes packet ins, the copy
// is dropped and counted under its own reason.

// PacketInQueueLen is how many packet ins a bridge holds for its
// controllers before it drops new ones (DropPacketInQueueFull).
const PacketInQueueLen = 512

// packetInBufSize is the size of the reused buffers; longer packets get
// their own.
const packetInBufSize = 2048

// PacketIn is one packet for the controllers.
type PacketIn struct {
	*flow.PacketIn
	// Data is the packet, cut to the action's max_len; TotalLen is its
	// whole length.
	Data     []byte
	TotalLen int
	buf      []byte
}

// packetIns is a bridge's packet-in queue.
type packetIns struct {
	q    chan *PacketIn
	free chan *PacketIn // spare entries with their buffers
	// wanted is set while some controller takes packet ins; without one
	// they are dropped as DropNoController, as Open vSwitch drops them.
	wanted atomic.Bool
	miss   atomic.Bool // table misses go to the controller (flow.MissPolicy)
	open   atomic.Bool // fail-open: forward with the normal action (flow.FailOpenPolicy)

	queued, dropped atomic.Uint64
}

func (q *packetIns) init() {
	q.q = make(chan *PacketIn, PacketInQueueLen)
	q.free = make(chan *PacketIn, PacketInQueueLen)
}

// offer queues a copy of frame for pi; it reports why it did not.
func (q *packetIns) offer(pi *flow.PacketIn, frame []byte) (DropReason, bool) {
	if !q.wanted.Load() {
		q.dropped.Add(1)
		return DropNoController, false
	}
	var e *PacketIn
	select {
	case e = <-q.free:
	default:
		e = &PacketIn{buf: make([]byte, packetInBufSize)}
	}
	n := min(len(frame), int(pi.MaxLen))
	if n > len(e.buf) {
		e.buf = make([]byte, n)
	}
	e.PacketIn, e.TotalLen = pi, len(frame)
	e.Data = e.buf[:n]
	copy(e.Data, frame)
	select {
	case q.q <- e:
		q.queued.Add(1)
		return 0, true
	default:
		q.release(e)
		q.dropped.Add(1)
		return DropPacketInQueueFull, false
	}
}

func (q *packetIns) release(e *PacketIn) {
	if len(e.buf) > packetInBufSize {
		e.buf = e.buf[:packetInBufSize:packetInBufSize]
	}
	e.PacketIn, e.Data = nil, nil
	select {
	case q.free <- e:
	default:
	}
}

// PacketIns returns the bridge's packet-in queue. Its reader owns each
// packet in until it calls ReleasePacketIn.
func (b *Bridge) PacketIns() <-chan *PacketIn { return b.pins.q }

// ReleasePacketIn gives a packet in's buffer back for reuse; pi must not
// be used afterwards.
func (b *Bridge) ReleasePacketIn(pi *PacketIn) { b.pins.release(pi) }

// SetPacketInsWanted says whether some controller takes packet ins now.
// Without one, controller actions drop their copies (DropNoController).
func (b *Bridge) SetPacketInsWanted(on bool) { b.pins.wanted.Store(on) }

// PacketInStats returns how many packet ins were queued and how many
// were dropped (queue full, or no controller).
func (b *Bridge) PacketInStats() (queued, dropped uint64) {
	return b.pins.queued.Load(), b.pins.dropped.Load()
}

// SetMissToController sets whether table misses go to the controller (as
// Open vSwitch does while a controller speaking OpenFlow 1.0 to 1.2 is
// connected). Megaflows translated with the old answer are revalidated.
func (b *Bridge) SetMissToController(on bool) {
	if b.pins.miss.Swap(on) != on {
		b.table.SetPortLiveness(b) // publishes a new generation
	}
}

// MissToController implements flow.MissPolicy.
func (b *Bridge) MissToController() bool { return b.pins.miss.Load() }

// SetFailOpen turns fail-open on or off: while it is on, every packet
// takes the normal action, whatever the flow table says, as Open vSwitch's
// standalone fail mode does while no controller is connected. Megaflows
// translated with the old setting are revalidated.
func (b *Bridge) SetFailOpen(on bool) {
	if b.pins.open.Swap(on) != on {
		b.log.Info("fail-open", "bridge", b.cfg.Name, "on", on)
		b.table.SetPortLiveness(b)
	}
}

// FailOpen implements flow.FailOpenPolicy.
func (b *Bridge) FailOpen() bool { return b.pins.open.Load() }

var (
	_ flow.MissPolicy     = (*Bridge)(nil)
	_ flow.FailOpenPolicy = (*Bridge)(nil)
)

// PacketIn implements flow.PacketInSink for a poll thread: the copy is
// accounted as one output of the packet.
func (p *pmd) PacketIn(pi *flow.PacketIn, frame []byte) {
	p.copies++
	c := &p.in.counters[p.id]
	if pi.Meter != nil && !p.Meter(pi.MeterDpID, pi.Meter, len(frame)) {
		c.drops[DropMeter].Add(1)
		return
	}
	if reason, ok := p.br.pins.offer(pi, frame); !ok {
		c.drops[reason].Add(1)
		return
	}
	c.sent.Add(1)
}

// PacketIn implements flow.PacketInSink for a packet out's actions.
func (s *packetOutSink) PacketIn(pi *flow.PacketIn, frame []byte) { s.p.PacketIn(pi, frame) }

// PacketIn implements flow.PacketInSink for ofproto/trace: the copy is
// listed, not sent (the userspace action's dont_send=1).
func (tr *tracer) PacketIn(pi *flow.PacketIn, _ []byte) {
	tr.t.Outputs = append(tr.t.Outputs, TraceOutput{Action: flow.PortController, Port: flow.PortController, Key: *tr.key, PacketIn: pi})
}

var (
	_ flow.PacketInSink = (*pmd)(nil)
	_ flow.PacketInSink = (*packetOutSink)(nil)
	_ flow.PacketInSink = (*tracer)(nil)
)
