package datapath

import (
	"sync"
	"testing"
	"unsafe"

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

// TestCountersPublishChanged adds to counters across a port's counters,
// the first, the last and ones in between, publishing between rounds:
// each publish makes every total added so far visible, whichever of them
// changed since the last, and nothing before it.
func TestCountersPublishChanged(t *testing.T) {
	l := newPublishList()
	var c portCounters
	c.init(l)
	all := c.all()
	rounds := [][]int{
		{0, numPortCounters - 1},
		{63, 64, 65},
		{0, 5, 5, 5, numPortCounters - 1},
		{},
		{int(unsafe.Offsetof(c.txQueueOver) / unsafe.Sizeof(counter{}))},
	}
	var want [numPortCounters]uint64
	for r, adds := range rounds {
		for j, i := range adds {
			all[i].Add(uint64(j + 1))
			want[i] += uint64(j + 1)
			if got := all[i].Load(); got == want[i] {
				t.Errorf("round %d: counter %d shows %d before the publish", r, i, got)
			}
		}
		l.publish()
		for i := range all {
			if got := all[i].Load(); got != want[i] {
				t.Errorf("round %d: counter %d is %d, want %d", r, i, got, want[i])
			}
		}
	}
	if got := c.txQueueOver.Load(); got != want[numPortCounters-1] || got == 0 {
		t.Errorf("txQueueOver %d, want %d: the last counter", got, want[numPortCounters-1])
	}
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

// TestCountSentRuns counts a transmitted batch whose frames came from
// ports in runs (a, a, b, a, c, c): the output port counts every frame and
// its bytes, and each port of origin the frames that came from it.
func TestCountSentRuns(t *testing.T) {
	b, err := New(Config{Name: "runs"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	_, a := addMemPort(t, b, vport.MemConfig{Name: "a"}, 1)
	_, pb := addMemPort(t, b, vport.MemConfig{Name: "b"}, 2)
	_, c := addMemPort(t, b, vport.MemConfig{Name: "c"}, 3)
	_, out := addMemPort(t, b, vport.MemConfig{Name: "out"}, 4)
	frames := [][]byte{make([]byte, 60), make([]byte, 61), make([]byte, 62), make([]byte, 63), make([]byte, 64), make([]byte, 65)}
	var batch outBatch
	for _, from := range []*Port{a, a, pb, a, c, c} {
		batch.addOrigins(from, 1)
	}
	if len(batch.origins) != 4 {
		t.Fatalf("origins %v, want 4 runs", batch.origins)
	}
	origins := originCursor{runs: batch.origins}
	p := b.pmds[0]
	p.countSent(out, frames[:1], &origins) // a run cut by the end of a send
	p.countSent(out, frames[1:], &origins)
	p.countSent(out, nil, &origins)
	p.published.publish()
	if s := out.Stats(); s.TxPackets != 6 || s.TxBytes != 375 {
		t.Errorf("out: tx %d packets, %d bytes; want 6, 375", s.TxPackets, s.TxBytes)
	}
	for _, tt := range []struct {
		port *Port
		want uint64
	}{{a, 3}, {pb, 1}, {c, 2}} {
		if got := tt.port.Stats().Sent; got != tt.want {
			t.Errorf("%s: sent %d, want %d", tt.port.Name, got, tt.want)
		}
	}
}

// TestTransmitPartialRuns sends a batch whose frames came from two ports
// in runs (a, a, a, b, b, b) to a port whose tx ring has room for four:
// the send stops inside b's run, which is counted as sent up to there and
// dropped as tx-ring-full after, on the output port and on b.
func TestTransmitPartialRuns(t *testing.T) {
	b, err := New(Config{Name: "partial"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	_, a := addMemPort(t, b, vport.MemConfig{Name: "a"}, 1)
	_, pb := addMemPort(t, b, vport.MemConfig{Name: "b"}, 2)
	_, out := addMemPort(t, b, vport.MemConfig{Name: "out", RingSize: 4}, 3)
	p := b.pmds[0]
	for i, from := range []*Port{a, a, a, pb, pb, pb} {
		p.out.queue(out, from, 0, make([]byte, 60+i))
	}
	p.flush()
	p.published.publish()
	o := out.Stats()
	if o.TxPackets != 4 || o.TxBytes != 60+61+62+63 || o.TxDrops[DropTxRingFull] != 2 {
		t.Errorf("out: tx %d packets, %d bytes, %d tx-ring-full drops; want 4, 246, 2", o.TxPackets, o.TxBytes, o.TxDrops[DropTxRingFull])
	}
	for _, tt := range []struct {
		port        *Port
		sent, drops uint64
	}{{a, 3, 0}, {pb, 1, 2}} {
		if s := tt.port.Stats(); s.Sent != tt.sent || s.Drops[DropTxRingFull] != tt.drops {
			t.Errorf("%s: sent %d, tx-ring-full drops %d; want %d, %d", tt.port.Name, s.Sent, s.Drops[DropTxRingFull], tt.sent, tt.drops)
		}
	}
}

// TestFrameBytes sums batches of 0 to 9 frames, past and short of its
// steps of four.
func TestFrameBytes(t *testing.T) {
	var frames [][]byte
	want := 0
	for n := range 10 {
		if got := frameBytes(frames); got != want {
			t.Errorf("%d frames: %d bytes, want %d", n, got, want)
		}
		frames = append(frames, make([]byte, 60+n))
		want += 60 + n
	}
}
