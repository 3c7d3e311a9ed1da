package datapath

import (
	"sync"
	"testing"

	"github.com/ovsxdp/ovsxdp/vport"
)

// TestCountersPublishedPerBatch polls a poll thread batch by batch while
// another goroutine reads the ports' counters: the reader never sees a
// total go backwards or run ahead of what was sent, and after each poll
// the counters are whole (published at the end of the batch). Under the
// race detector it also checks that the readers' loads and the thread's
// plain adds do not race.
func TestCountersPublishedPerBatch(t *testing.T) {
	pb := newPipelineBench(t, Guarded, vport.MaxBatch, []string{"udp"}, "in_port=1,udp,actions=output:2")
	p := pb.b.pmds[0]
	rqs := []rxq{{port: pb.b.ports.Load().list[0], q: 0}}
	p.rxqs.Store(&rqs)
	src, dst := pb.b.ports.Load().lookup(1), pb.b.ports.Load().lookup(2)
	batch := pb.frames[:vport.MaxBatch]
	const polls = 200
	total := uint64(polls * len(batch))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var last uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			rx, tx := src.Stats().RxPackets, dst.Stats().TxPackets
			if rx < last || rx > total || tx > total {
				t.Errorf("read rx %d (before %d), tx %d, of %d sent", rx, last, tx, total)
				return
			}
			last = rx
		}
	}()
	for i := range polls {
		if out := pb.pollOnce(batch); out != len(batch) {
			t.Fatalf("poll %d: %d of %d frames sent", i, out, len(batch))
		}
		want := uint64((i + 1) * len(batch))
		if s, d := src.Stats(), dst.Stats(); s.RxPackets != want || s.Sent != want || d.TxPackets != want {
			t.Fatalf("after poll %d: rx %d, sent %d, tx %d, want %d each", i, s.RxPackets, s.Sent, d.TxPackets, want)
		}
	}
	close(stop)
	wg.Wait()
	checkAccounting(t, pb.b)
}

// TestCounterWithoutOwner checks that a counter made without
// newPortCounters counts at once, so that no count is lost.
func TestCounterWithoutOwner(t *testing.T) {
	var c portCounters
	c.txPackets.Add(3)
	c.drops[DropNoRule].Add(1)
	if got := c.txPackets.Load(); got != 3 {
		t.Errorf("txPackets %d, want 3", got)
	}
	if got := c.drops[DropNoRule].Load(); got != 1 {
		t.Errorf("drops %d, want 1", got)
	}
}
