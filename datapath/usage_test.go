package datapath

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/vport"
)

// TestCreditRxqs: a batch's time goes to the rx queues it received from,
// in proportion to their frames; frames from no queue credit none.
func TestCreditRxqs(t *testing.T) {
	var a, b atomic.Uint64
	p := &pmd{batchHits: []rxHit{{&a, 3}, {&b, 1}}}
	p.creditRxqs(400, 4)
	if a.Load() != 300 || b.Load() != 100 {
		t.Errorf("4 frames, 3 and 1 from two queues, in 400ns: credited %d and %d, want 300 and 100", a.Load(), b.Load())
	}
	a.Store(0)
	b.Store(0)
	p.creditRxqs(500, 5) // a fifth injected
	if a.Load() != 300 || b.Load() != 100 {
		t.Errorf("5 frames, 3 and 1 from two queues, in 500ns: credited %d and %d, want 300 and 100", a.Load(), b.Load())
	}
	p.batchHits = p.batchHits[:1]
	a.Store(0)
	p.creditRxqs(0, 0) // an empty batch is never credited
	p.creditRxqs(777, 3)
	if a.Load() != 777 {
		t.Errorf("a batch from one queue: credited %d of its 777ns", a.Load())
	}
}

// usageOf returns the usage of the pool's only running thread.
func usageOf(t *testing.T, pool *Threads, intervals int) ThreadUsage {
	t.Helper()
	us := pool.Usage(intervals)
	if len(us) != 1 {
		t.Fatalf("%d threads running, want 1: %+v", len(us), us)
	}
	return us[0]
}

// TestRxqUsage: a pool's thread, polling three ports of which one
// receives, credits all of its busy time to that port's rx queue, over
// the intervals asked for; with one sample there is no interval yet.
func TestRxqUsage(t *testing.T) {
	pool := NewThreads(1)
	b := newTestBridge(t, Config{Threads: pool})
	src, srcPort := addMemPort(t, b, vport.MemConfig{Name: "src"}, 1)
	dst, _ := addMemPort(t, b, vport.MemConfig{Name: "dst"}, 2)
	addMemPort(t, b, vport.MemConfig{Name: "idle"}, 3)
	addFlows(t, b, "in_port=1,actions=output:2")

	base := time.Now()
	pool.SampleUsage(base)
	u := usageOf(t, pool, UsageIntervals)
	if u.Total != 0 || u.Busy != 0 || len(u.Rxqs) != 3 || u.Thread != 0 || u.CPU != -1 || len(u.Bridges) != 1 || u.Bridges[0] != "br0" {
		t.Fatalf("one sample: %+v; want no time yet, the three ports' queues, thread 0 unpinned, on br0", u)
	}
	for i, name := range []string{"dst", "idle", "src"} { // by name
		if r := u.Rxqs[i]; r.Port != name || r.Queue != 0 || r.Bridge != "br0" {
			t.Errorf("rx queue %d: %+v, want br0's %s queue 0", i, r, name)
		}
	}

	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 18})
	batch := [][]byte{frame, frame, frame, frame}
	sent := 0
	for range 200 {
		sent += src.Inject(0, batch)
		quiesce(t, b, src)
		drainAll(dst)
	}
	if sent == 0 {
		t.Fatal("no frame injected")
	}
	// The thread counts a batch's time after the batch, the thread's
	// first and the queue's next: wait for the last batch's credit.
	pm := b.pmds[0]
	if !eventually(10*time.Second, func() bool { return pm.counters.busyNanos.Load() == srcPort.rxBusy[0].Load() }) {
		t.Fatalf("after 10s, the thread was busy %dns, src's queue %dns", pm.counters.busyNanos.Load(), srcPort.rxBusy[0].Load())
	}
	pool.SampleUsage(base.Add(UsageInterval / 2)) // too early: no sample
	pool.SampleUsage(base.Add(UsageInterval))
	pool.SampleUsage(base.Add(2 * UsageInterval)) // a quiet interval
	busy := func(u ThreadUsage, port string) time.Duration {
		for _, r := range u.Rxqs {
			if r.Port == port {
				return r.Busy
			}
		}
		t.Fatalf("no rx queue of %s in %+v", port, u)
		return 0
	}
	u = usageOf(t, pool, UsageIntervals)
	if u.Total != 2*UsageInterval {
		t.Errorf("two intervals: total %v, want %v", u.Total, 2*UsageInterval)
	}
	if u.Busy == 0 || busy(u, "src") != u.Busy || busy(u, "dst") != 0 || busy(u, "idle") != 0 {
		t.Errorf("after %d frames from src: thread busy %v, src %v, dst %v, idle %v; want all of it src's",
			sent, u.Busy, busy(u, "src"), busy(u, "dst"), busy(u, "idle"))
	}
	if last := usageOf(t, pool, 1); last.Total != UsageInterval || last.Busy != 0 || busy(last, "src") != 0 {
		t.Errorf("the last, quiet interval: %+v", last)
	}

	// The pool keeps UsageIntervals intervals.
	for i := range UsageIntervals + 5 {
		pool.SampleUsage(base.Add(time.Duration(3+i) * UsageInterval))
	}
	if u := usageOf(t, pool, 100); u.Total != UsageIntervals*UsageInterval {
		t.Errorf("after %d samples: %v of history, want %v", UsageIntervals+7, u.Total, UsageIntervals*UsageInterval)
	}
}
