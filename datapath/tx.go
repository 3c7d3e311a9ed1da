package datapath

import (
	"errors"

	"github.com/ovsxdp/ovsxdp/vport"
)

// flush transmits every pending output batch.
func (p *pmd) flush() {
	for i := range p.out.pending {
		b := &p.out.pending[i]
		step := b.port.vp.BatchSize()
		origins := originCursor{runs: b.origins}
		for start := 0; start < len(b.frames); start += step {
			end := min(start+step, len(b.frames))
			p.transmit(b.port, b.q, b.frames[start:end], &origins)
		}
	}
	p.out.reset()
}

// transmit sends one batch on port's tx queue q and counts each frame as
// sent or dropped, on port and on the port it came from (origins walks
// past them). Runs of TCP segments go out as GSO packets where the port
// can send them (see coalesce.go); the frames keep their order.
func (p *pmd) transmit(port *Port, q int, frames [][]byte, origins *originCursor) {
	g, ok := port.vp.(vport.GSOSender)
	if !ok || p.br.cfg.DisableGRO || len(frames) < 2 || queueOver(port, q) {
		p.transmitFrames(port, q, frames, origins)
		return
	}
	if p.gsoBuf == nil {
		p.gsoBuf = make([]byte, 0, maxGSOFrame)
	}
	plain := 0 // frames[plain:i] wait to go out one by one
	for i := 0; i < len(frames); {
		j, s := gsoRun(frames, i)
		if j-i < 2 {
			i = j
			continue
		}
		if plain < i {
			p.transmitFrames(port, q, frames[plain:i], origins)
		}
		pkt, desc := mergeRun(p.gsoBuf, frames[i:j], s)
		if err := g.TransmitGSO(pkt, desc); err != nil {
			// Not taken: the segments go the ordinary way, which
			// counts them as sent or dropped.
			p.counters.gsoFailed.Add(1)
			p.transmitFrames(port, q, frames[i:j], origins)
		} else {
			p.counters.gsoPackets.Add(1)
			p.counters.gsoSegments.Add(uint64(j - i))
			p.countSent(port, frames[i:j], origins)
		}
		plain, i = j, j
	}
	if plain < len(frames) {
		p.transmitFrames(port, q, frames[plain:], origins)
	}
}

// countSent counts frames as sent on port and on the ports they came from
// (origins walks past them), once per batch on port and once per run of
// frames from one port on those.
func (p *pmd) countSent(port *Port, frames [][]byte, origins *originCursor) {
	if len(frames) == 0 {
		return
	}
	bytes := frameBytes(frames)
	for left := len(frames); left > 0; {
		from, k := origins.next(left)
		from.counters[p.id].sent.Add(uint64(k))
		left -= k
	}
	dc := &port.counters[p.id]
	dc.txPackets.Add(uint64(len(frames)))
	dc.txBytes.Add(uint64(bytes))
}

// frameBytes returns the bytes of frames, summed four frames a step: a
// frame a step spent as much on the loop as on the sum.
func frameBytes(frames [][]byte) int {
	bytes := 0
	for ; len(frames) >= 4; frames = frames[4:] {
		bytes += len(frames[0]) + len(frames[1]) + len(frames[2]) + len(frames[3])
	}
	for _, f := range frames {
		bytes += len(f)
	}
	return bytes
}

// countDropped counts n frames as dropped for reason on port and on the
// ports they came from (origins walks past them), once per run of frames
// from one port on those.
func (p *pmd) countDropped(port *Port, n int, reason DropReason, origins *originCursor) {
	if n == 0 {
		return
	}
	port.counters[p.id].txDrops[reason].Add(uint64(n))
	for left := n; left > 0; {
		from, k := origins.next(left)
		from.counters[p.id].drops[reason].Add(uint64(k))
		left -= k
	}
}

// queueOver reports whether q is at or above the tx queue count that port's
// device has now. Output picked q below the count it read (or at 0 of 0,
// under the kernel-like policies), but the batch waits until its end, and
// the count may drop meanwhile.
func queueOver(port *Port, q int) bool { return q >= port.dev.Snapshot().TxQueues() }

// transmitFrames sends frames on port's tx queue q one by one (in one
// Transmit call) and counts each as sent or dropped. Frames sent on a
// queue at or above the device's tx queue count are also counted as such
// (PortStats.TxQueueOver); Guarded drops them as no-tx-queues instead.
func (p *pmd) transmitFrames(port *Port, q int, frames [][]byte, origins *originCursor) {
	over := queueOver(port, q)
	if over && p.policy == Guarded {
		p.countDropped(port, len(frames), DropNoTxQueues, origins)
		return
	}
	n, err := port.vp.Transmit(q, frames)
	if n < 0 || n > len(frames) {
		n = 0
	}
	reason := DropTxRingFull
	if err != nil {
		n = 0
		reason = DropTxError
		if errors.Is(err, vport.ErrPortDown) {
			reason = DropNotRunning
		}
	}
	p.countSent(port, frames[:n], origins)
	if over && n > 0 {
		port.counters[p.id].txQueueOver.Add(uint64(n))
	}
	p.countDropped(port, len(frames)-n, reason, origins)
}
