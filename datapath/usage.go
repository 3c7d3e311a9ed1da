package datapath

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Rx queue usage, as ovs-appctl dpif-netdev/pmd-rxq-show prints it: the
// share of a poll thread's time that each of its rx queues took, over the
// last few intervals of UsageInterval.
//
// A batch's busy time (runOne) is credited to the rx queues whose packets
// it handled: all of it to the one queue when only one had packets, else
// split in proportion to the queues' packets, as Open vSwitch splits a
// batch's transmit cycles among the queues that sent. Frames that came
// from no rx queue (tunnel injections) credit none; their time is the
// thread's overhead, with the rest of its busy time that no queue took.
// A thread's time is the wall-clock time between samples: a poll thread
// runs (polls, naps or sleeps) the whole time it has members.

const (
	// UsageInterval is how often a pool samples its threads' usage
	// (Threads.SampleUsage), Open vSwitch's interval.
	UsageInterval = 5 * time.Second
	// UsageIntervals is how many intervals a pool keeps: a minute's.
	UsageIntervals = 12
)

// rxHit is an rx queue a poll received n frames from.
type rxHit struct {
	busy *atomic.Uint64
	n    int
}

// creditRxqs credits busy, the time of the batch runBatch ran last, which
// handled n frames, to the rx queues it received them from.
func (p *pmd) creditRxqs(busy time.Duration, n int) {
	if n <= 0 {
		return
	}
	for _, h := range p.batchHits {
		h.busy.Add(uint64(busy) * uint64(h.n) / uint64(n))
	}
}

// ThreadUsage is one of a pool's running threads over the last intervals
// (Threads.Usage).
type ThreadUsage struct {
	Thread int // its number in the pool
	CPU    int // the CPU it is pinned to, -1 for none
	// Bridges names the bridges with a pmd on the thread.
	Bridges []string
	// Total is the time the intervals took, 0 when no interval has
	// ended yet; Busy the time its batches with packets took in them.
	Total, Busy time.Duration
	// Rxqs are the rx queues it polls, by port name and queue.
	Rxqs []RxqUsage
}

// RxqUsage is an rx queue's busy time over the intervals.
type RxqUsage struct {
	Bridge, Port string
	Queue        int
	Busy         time.Duration
}

// usageSample is the pool's cumulative counters at one time.
type usageSample struct {
	at   time.Time
	busy map[*pmd]uint64           // each member's busy time
	rxq  map[*atomic.Uint64]uint64 // the busy time of every rx queue of the members' bridges
}

// usageHistory is a pool's last UsageIntervals+1 samples, oldest first.
type usageHistory struct {
	mu      sync.Mutex
	samples []usageSample
}

// SampleUsage records the pool's counters at now, if an interval has
// passed since the last sample (a tenth of one early is on time: the
// caller's ticker is not exact), and forgets those older than
// UsageIntervals intervals.
func (t *Threads) SampleUsage(now time.Time) {
	h := &t.usage
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.samples); n > 0 && now.Sub(h.samples[n-1].at) < UsageInterval-UsageInterval/10 {
		return
	}
	s := usageSample{at: now, busy: map[*pmd]uint64{}, rxq: map[*atomic.Uint64]uint64{}}
	for _, th := range t.threads {
		for _, m := range *th.members.Load() {
			s.busy[m] = m.counters.busyNanos.Load()
			for _, p := range m.br.ports.Load().list {
				for q := range p.rxBusy {
					s.rxq[&p.rxBusy[q]] = p.rxBusy[q].Load()
				}
			}
		}
	}
	if len(h.samples) == UsageIntervals+1 {
		h.samples = append(h.samples[:0], h.samples[1:]...)
	}
	h.samples = append(h.samples, s)
}

// Usage returns each running thread's usage over the last intervals
// intervals that ended (fewer if fewer have), by thread number.
func (t *Threads) Usage(intervals int) []ThreadUsage {
	h := &t.usage
	h.mu.Lock()
	defer h.mu.Unlock()
	var first, last *usageSample
	if n := len(h.samples); n >= 2 {
		last = &h.samples[n-1]
		first = &h.samples[max(0, n-1-intervals)]
	}
	var out []ThreadUsage
	for i, th := range t.threads {
		ms := *th.members.Load()
		if len(ms) == 0 {
			continue
		}
		u := ThreadUsage{Thread: i, CPU: int(th.pinned.Load())}
		for _, m := range ms {
			u.Bridges = append(u.Bridges, m.br.cfg.Name)
			if last != nil {
				u.Busy += grown(first.busy, last.busy, m)
			}
			for _, rq := range *m.rxqs.Load() {
				r := RxqUsage{Bridge: m.br.cfg.Name, Port: rq.port.Name, Queue: rq.q}
				if last != nil && rq.busy != nil {
					r.Busy = grown(first.rxq, last.rxq, rq.busy)
				}
				u.Rxqs = append(u.Rxqs, r)
			}
		}
		if last != nil {
			u.Total = last.at.Sub(first.at)
		}
		sort.Slice(u.Rxqs, func(a, b int) bool {
			ra, rb := u.Rxqs[a], u.Rxqs[b]
			if ra.Port != rb.Port {
				return ra.Port < rb.Port
			}
			return ra.Queue < rb.Queue
		})
		out = append(out, u)
	}
	return out
}

// grown is how much the time counted under k grew from sample first to
// sample last (a counter missing from first started after it, at 0).
func grown[K comparable](first, last map[K]uint64, k K) time.Duration {
	return time.Duration(last[k] - min(first[k], last[k]))
}
