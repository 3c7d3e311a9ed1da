package datapath

import "time"

// The route of a packet through a poll thread: rx.go reads a batch from
// each rx queue, dispatch.go extracts the batch's keys, looks them up
// together and runs each packet's actions, output.go decides where each
// copy goes, batch.go holds the copies per (port, tx queue), and tx.go
// transmits them at the end of the batch (coalesce.go merging TCP and UDP
// runs into GSO packets). pmd.go is the loop around it, idle.go what the
// thread does between batches, counter.go how the counters reach readers.

// poll polls each rx queue once and returns the number of packets handled.
func (p *pmd) poll(now time.Time) int {
	p.begin(now)
	total := 0
	if p.id == 0 && p.br.injRing != nil {
		total += p.pollInjected() // inject.go: from tunnel ports and decapsulation
	}
	for _, rq := range *p.rxqs.Load() {
		total += p.pollQueue(rq)
	}
	if p.br.cfg.Defrag != nil {
		p.expireFrags()
	}
	p.end()
	return total
}

// begin readies the thread for a batch that starts at now.
func (p *pmd) begin(now time.Time) {
	p.stall.clear()
	p.rxHits = p.rxHits[:0]
	p.tbl = p.br.ports.Load()
	p.policy = p.br.Policy()
	p.now = now.UnixNano()
	p.mono = int64(now.Sub(monoBase))
}

// end transmits the batch's output and publishes its counters.
func (p *pmd) end() {
	p.flush()
	p.cache.CreditRules()
	p.tally.publish(&p.counters)
	p.published.publish()
	p.tbl = nil
	// Cleared at the end too, so that a thread held between its next
	// enter and poll is not taken for still spinning.
	p.stall.clear()
}

func (p *pmd) pollQueue(rq rxq) int {
	n, bytes, err := p.receive(rq) // batch.go: lent or copied
	if err != nil || n == 0 {
		return 0
	}
	p.tally.packets += uint64(n)
	if rq.busy != nil {
		p.rxHits = append(p.rxHits, rxHit{rq.busy, n})
	}
	c := &rq.port.counters[p.id]
	c.rxPackets.Add(uint64(n))
	c.rxBytes.Add(uint64(bytes))
	if rec := p.rxQueueOf(0).Recorded(); rec != rq.port.rxRecorded.Load() {
		rq.port.rxRecorded.Store(rec)
	}
	p.dispatch(rq.port, n)
	p.rxDone()
	return n
}
