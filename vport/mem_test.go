package vport

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

func newTestMem(t testing.TB, cfg MemConfig) *MemPort {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "mem0"
	}
	p, err := NewMemPort(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// batchBufs returns n buffers of size bytes each, and a sizes slice.
func batchBufs(n, size int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, n)
}

// testFrames returns n distinct frames of length size.
func testFrames(n, size int) [][]byte {
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = bytes.Repeat([]byte{byte(i + 1)}, size)
		frames[i][0] = byte(i >> 8)
	}
	return frames
}

func TestMemRingCapacity(t *testing.T) {
	tests := []struct {
		name       string
		inRing     int
		inBatch    int
		inInject   int
		wantTaken  int
		wantRecv   int // by one Receive
		wantCapRnd int
	}{
		{name: "fits", inRing: 64, inBatch: 32, inInject: 10, wantTaken: 10, wantRecv: 10, wantCapRnd: 64},
		{name: "ring full", inRing: 16, inBatch: 32, inInject: 32, wantTaken: 16, wantRecv: 16, wantCapRnd: 16},
		{name: "rounded up to power of two", inRing: 5, inBatch: 32, inInject: 32, wantTaken: 8, wantRecv: 8, wantCapRnd: 8},
		{name: "receive bounded by batch size", inRing: 64, inBatch: 4, inInject: 20, wantTaken: 20, wantRecv: 4, wantCapRnd: 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestMem(t, MemConfig{RingSize: tt.inRing, BatchSize: tt.inBatch})
			if got := p.rx[0].capacity(); got != tt.wantCapRnd {
				t.Errorf("capacity %d, want %d", got, tt.wantCapRnd)
			}
			frames := testFrames(tt.inInject, 60)
			if got := p.Inject(0, frames); got != tt.wantTaken {
				t.Errorf("Inject took %d, want %d", got, tt.wantTaken)
			}
			bufs, sizes := batchBufs(MaxBatch, 2048)
			n, err := p.Receive(0, bufs, sizes, nil)
			if err != nil || n != tt.wantRecv {
				t.Fatalf("Receive = %d, %v, want %d", n, err, tt.wantRecv)
			}
			for i := range n {
				if !bytes.Equal(bufs[i][:sizes[i]], frames[i]) {
					t.Errorf("frame %d differs", i)
				}
			}
		})
	}
}

func TestMemTransmitRingFull(t *testing.T) {
	p := newTestMem(t, MemConfig{RingSize: 8, TxQueues: 2})
	frames := testFrames(12, 100)
	n, err := p.Transmit(1, frames)
	if err != nil || n != 8 {
		t.Fatalf("Transmit = %d, %v, want 8 (ring full)", n, err)
	}
	if n, _ := p.Transmit(1, frames); n != 0 {
		t.Errorf("Transmit on full ring sent %d", n)
	}
	if n, _ := p.Transmit(0, frames); n != 8 {
		t.Errorf("Transmit on queue 0 sent %d, want 8: queues are independent", n)
	}
	bufs, sizes := batchBufs(MaxBatch, 2048)
	if got := p.Drain(1, bufs, sizes); got != 8 {
		t.Fatalf("Drain = %d, want 8", got)
	}
	for i := range 8 {
		if !bytes.Equal(bufs[i][:sizes[i]], frames[i]) {
			t.Errorf("frame %d differs", i)
		}
	}
	st := p.Stats()
	if st.TxPackets != 16 || st.TxBytes != 1600 || st.TxDropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestMemBatchEdges(t *testing.T) {
	p := newTestMem(t, MemConfig{FrameSize: 128, RecordRxQueue: true, RxQueues: 2})
	frames := [][]byte{make([]byte, 60), make([]byte, 129), make([]byte, 100), make([]byte, 62)}
	if got := p.Inject(1, frames); got != 4 {
		t.Fatalf("Inject took %d, want 4", got)
	}
	if got := p.Stats().RxDropped; got != 1 {
		t.Errorf("RxDropped %d, want 1 (oversize frame)", got)
	}
	// A buffer too short for the frame drops it; a batch of 2 stops at 2.
	bufs := [][]byte{make([]byte, 128), make([]byte, 64), make([]byte, 128)}
	sizes := make([]int, 2)
	info := make([]RxInfo, 3)
	n, err := p.Receive(1, bufs, sizes, info)
	if err != nil || n != 2 {
		t.Fatalf("Receive = %d, %v, want 2", n, err)
	}
	if sizes[0] != 60 || sizes[1] != 62 {
		t.Errorf("sizes %v, want [60 62] (the 100-byte frame did not fit 64 bytes)", sizes)
	}
	if info[0].RxQueue.Queue() != 1 || !info[1].RxQueue.Recorded() {
		t.Errorf("info %+v, want rx queue 1 recorded", info[:2])
	}
	if got := p.Stats().RxDropped; got != 2 {
		t.Errorf("RxDropped %d, want 2", got)
	}
	for _, tc := range []struct {
		name string
		err  error
		call func() error
	}{
		{"receive bad queue", ErrBadQueue, func() error { _, err := p.Receive(2, bufs, sizes, nil); return err }},
		{"receive negative queue", ErrBadQueue, func() error { _, err := p.Receive(-1, bufs, sizes, nil); return err }},
		{"transmit bad queue", ErrBadQueue, func() error { _, err := p.Transmit(1, frames); return err }},
		{"prepare wait bad queue", ErrBadQueue, func() error { _, _, err := p.PrepareWait(5); return err }},
	} {
		if err := tc.call(); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	if n, err := p.Receive(0, nil, nil, nil); n != 0 || err != nil {
		t.Errorf("empty batch: %d, %v", n, err)
	}
}

func TestMemDeviceAndClose(t *testing.T) {
	p := newTestMem(t, MemConfig{})
	bufs, sizes := batchBufs(4, 2048)
	frames := testFrames(4, 60)
	p.Device().Close()
	if _, err := p.Receive(0, bufs, sizes, nil); !errors.Is(err, ErrPortDown) {
		t.Errorf("Receive on a down device: %v, want ErrPortDown", err)
	}
	if _, err := p.Transmit(0, frames); !errors.Is(err, ErrPortDown) {
		t.Errorf("Transmit on a down device: %v, want ErrPortDown", err)
	}
	if got := p.Inject(0, frames); got != 4 || p.RxPending(0) != 0 || p.Stats().RxDropped != 4 {
		t.Errorf("Inject on a down device took %d, queued %d, dropped %d; want 4, 0, 4", got, p.RxPending(0), p.Stats().RxDropped)
	}
	want := [3]DeviceDrop{{DeviceDropRingFull, 0}, {DeviceDropNoFrame, 0}, {DeviceDropPort, 4}}
	if got := p.Stats().RxDrops(); got != want {
		t.Errorf("RxDrops %v, want %v", got, want)
	}
	must(t, p.Device().SetUp())
	if _, err := p.Transmit(0, frames); err != nil {
		t.Errorf("Transmit after up: %v", err)
	}
	must(t, p.Close())
	must(t, p.Close())
	if _, err := p.Receive(0, bufs, sizes, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Receive after Close: %v, want ErrClosed", err)
	}
	if _, _, err := p.PrepareWait(0); !errors.Is(err, ErrClosed) {
		t.Errorf("PrepareWait after Close: %v, want ErrClosed", err)
	}
}

func TestMemPair(t *testing.T) {
	a, b, err := NewMemPair(
		MemConfig{Name: "a", TxQueues: 4, RxQueues: 1},
		MemConfig{Name: "b", RxQueues: 2, RecordRxQueue: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if s := b.Device().Snapshot(); !s.Carrier() || !s.Running() {
		t.Fatalf("b = %s, want running with carrier", s)
	}
	frames := testFrames(3, 80)
	if n, err := a.Transmit(3, frames); n != 3 || err != nil {
		t.Fatalf("Transmit = %d, %v", n, err)
	}
	bufs, sizes := batchBufs(MaxBatch, 2048)
	info := make([]RxInfo, MaxBatch)
	n, err := b.Receive(1, bufs, sizes, info) // tx queue 3 lands on rx queue 3 % 2
	if err != nil || n != 3 {
		t.Fatalf("Receive = %d, %v, want 3", n, err)
	}
	for i := range n {
		if !bytes.Equal(bufs[i][:sizes[i]], frames[i]) || info[i].RxQueue.Queue() != 1 {
			t.Errorf("frame %d differs or rx queue %d", i, info[i].RxQueue.Queue())
		}
	}
	// Closing b drops carrier on a; what a sends is dropped, as by a veth.
	b.Device().Close()
	if s := a.Device().Snapshot(); s.Carrier() {
		t.Errorf("a = %s after closing b, want no carrier", s)
	}
	if n, err := a.Transmit(0, frames); n != 3 || err != nil {
		t.Errorf("Transmit to a down peer = %d, %v, want 3 taken", n, err)
	}
	if st := a.Stats(); st.TxDropped != 3 || st.TxPackets != 3 {
		t.Errorf("a stats %+v, want 3 sent, 3 dropped", st)
	}
	if _, err := NewSink(a, SinkConfig{}); err == nil {
		t.Error("NewSink on a connected port succeeded")
	}
}

func TestMemReceiveTransmitNoAlloc(t *testing.T) {
	p := newTestMem(t, MemConfig{RecordRxQueue: true})
	frames := testFrames(MaxBatch, 64)
	bufs, sizes := batchBufs(MaxBatch, 2048)
	info := make([]RxInfo, MaxBatch)
	tx := make([][]byte, MaxBatch)
	allocs := testing.AllocsPerRun(200, func() {
		p.Inject(0, frames)
		n, _ := p.Receive(0, bufs, sizes, info)
		for i := range n {
			tx[i] = bufs[i][:sizes[i]]
		}
		p.Transmit(0, tx[:n])
		p.Drain(0, bufs, sizes)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
	if raceEnabled {
		return // the race detector's syscall instrumentation allocates in Wait
	}
	var poller Poller
	must(t, poller.Add(p, 0))
	if allocs := testing.AllocsPerRun(50, func() { poller.Wait(0) }); allocs != 0 {
		t.Errorf("%v allocations per idle Wait, want 0", allocs)
	}
}

// TestMemConcurrent runs two producers and a consumer on one rx queue and
// checks every frame arrives once, intact and in order per producer.
func TestMemConcurrent(t *testing.T) {
	p := newTestMem(t, MemConfig{RingSize: 64})
	const perProducer = 20000
	var wg sync.WaitGroup
	for prod := range 2 {
		wg.Go(func() {
			frame := make([]byte, 64)
			batch := make([][]byte, 1)
			for i := 0; i < perProducer; {
				frame[0] = byte(prod)
				frame[1], frame[2], frame[3] = byte(i>>16), byte(i>>8), byte(i)
				frame[63] = frame[1] ^ frame[2] ^ frame[3] ^ byte(prod)
				batch[0] = frame
				if p.Inject(0, batch) == 1 {
					i++
				} else {
					runtime.Gosched() // ring full: let the consumer run
				}
			}
		})
	}
	next := [2]int{}
	bufs, sizes := batchBufs(MaxBatch, 128)
	deadline := time.Now().Add(30 * time.Second)
	for next[0]+next[1] < 2*perProducer && time.Now().Before(deadline) {
		n, err := p.Receive(0, bufs, sizes, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			runtime.Gosched()
		}
		for i := range n {
			f := bufs[i][:sizes[i]]
			prod := int(f[0])
			seq := int(f[1])<<16 | int(f[2])<<8 | int(f[3])
			if sizes[i] != 64 || prod > 1 || f[63] != f[1]^f[2]^f[3]^f[0] || seq != next[prod] {
				t.Fatalf("frame from %d seq %d (want %d) size %d: torn or out of order", prod, seq, next[prod], sizes[i])
			}
			next[prod]++
		}
	}
	wg.Wait()
	if next[0] != perProducer || next[1] != perProducer {
		t.Errorf("received %v, want %d each", next, perProducer)
	}
}

func TestWaitRx(t *testing.T) {
	p := newTestMem(t, MemConfig{RxQueues: 2})
	start := time.Now()
	ready, err := WaitRx(p, 0, 30*time.Millisecond)
	if err != nil || ready {
		t.Fatalf("idle WaitRx = %v, %v, want false", ready, err)
	}
	if el := time.Since(start); el < 25*time.Millisecond {
		t.Errorf("idle WaitRx returned after %v, want about the 30ms timeout", el)
	}
	p.Inject(1, testFrames(1, 60))
	if ready, err := WaitRx(p, 1, time.Second); !ready || err != nil {
		t.Errorf("WaitRx with a frame queued = %v, %v, want true", ready, err)
	}

	// A frame injected while the poller sleeps wakes it.
	var poller Poller
	must(t, poller.Add(p, 0))
	bufs, sizes := batchBufs(MaxBatch, 2048)
	p.Receive(1, bufs, sizes, nil)
	go func() {
		time.Sleep(20 * time.Millisecond)
		p.Inject(0, testFrames(1, 60))
	}()
	start = time.Now()
	ready, err = poller.Wait(10 * time.Second)
	if err != nil || !ready {
		t.Fatalf("Wait = %v, %v, want woken by traffic", ready, err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("woken after %v", el)
	}
	if err := poller.Add(p, 2); !errors.Is(err, ErrBadQueue) {
		t.Errorf("Add(queue 2) = %v, want ErrBadQueue", err)
	}
	p.Device().Close()
	if _, err := poller.Wait(time.Millisecond); !errors.Is(err, ErrPortDown) {
		t.Errorf("Wait on a down port = %v, want ErrPortDown", err)
	}
}

// TestWaitAcrossPorts sleeps on two ports' queues and is woken by the
// second, through a peer's Transmit.
func TestWaitAcrossPorts(t *testing.T) {
	solo := newTestMem(t, MemConfig{Name: "solo"})
	a, b, err := NewMemPair(MemConfig{Name: "a"}, MemConfig{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	var poller Poller
	must(t, poller.Add(solo, 0))
	must(t, poller.Add(b, 0))
	if ready, err := poller.Wait(0); ready || err != nil {
		t.Fatalf("Wait(0) on idle queues = %v, %v", ready, err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		a.Transmit(0, testFrames(1, 60))
	}()
	if ready, err := poller.Wait(10 * time.Second); !ready || err != nil {
		t.Fatalf("Wait = %v, %v, want woken", ready, err)
	}
	if b.RxPending(0) != 1 {
		t.Errorf("b has %d frames pending, want 1", b.RxPending(0))
	}
}

func TestMemConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      MemConfig
		wantErr string
	}{
		{"no name", MemConfig{}, "empty name"},
		{"too many rx queues", MemConfig{Name: "m", RxQueues: MaxQueues + 1}, "4097 rx queues"},
		{"bad batch", MemConfig{Name: "m", BatchSize: 33}, "batch size 33"},
		{"tiny frames", MemConfig{Name: "m", FrameSize: 10}, "frame size 10"},
		{"huge ring", MemConfig{Name: "m", RingSize: maxRingSize + 1}, "ring size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewMemPort(tt.in)
			if err == nil {
				p.Close()
			}
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.wantErr)) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func BenchmarkMemReceiveTransmit(b *testing.B) {
	p := newTestMem(b, MemConfig{RecordRxQueue: true})
	frames := testFrames(MaxBatch, 64)
	bufs, sizes := batchBufs(MaxBatch, 2048)
	info := make([]RxInfo, MaxBatch)
	tx := make([][]byte, MaxBatch)
	drain, drainSizes := batchBufs(MaxBatch, 2048)
	b.ReportAllocs()
	for b.Loop() {
		p.Inject(0, frames)
		n, _ := p.Receive(0, bufs, sizes, info)
		for i := range n {
			tx[i] = bufs[i][:sizes[i]]
		}
		p.Transmit(0, tx[:n])
		p.Drain(0, drain, drainSizes)
	}
	b.ReportMetric(float64(b.N*MaxBatch)/b.Elapsed().Seconds(), "pkts/s")
}

func BenchmarkMemPairTransmitReceive(b *testing.B) {
	pa, pb, err := NewMemPair(MemConfig{Name: "a"}, MemConfig{Name: "b"})
	if err != nil {
		b.Fatal(err)
	}
	defer pa.Close()
	defer pb.Close()
	frames := testFrames(MaxBatch, 64)
	bufs, sizes := batchBufs(MaxBatch, 2048)
	info := make([]RxInfo, MaxBatch)
	b.ReportAllocs()
	for b.Loop() {
		pa.Transmit(0, frames)
		pb.Receive(0, bufs, sizes, info)
	}
	b.ReportMetric(float64(b.N*MaxBatch)/b.Elapsed().Seconds(), "pkts/s")
}

// TestMemLend receives frames on loan: in the rx ring's slots, with room
// to grow, counted as received, and back in the ring's hands on Release,
// also across a Close.
func TestMemLend(t *testing.T) {
	p := newTestMem(t, MemConfig{RingSize: 8, FrameSize: 128, RecordRxQueue: true, RxQueues: 2})
	frames := testFrames(6, 100)
	if got := p.Inject(1, frames); got != 6 {
		t.Fatalf("Inject took %d, want 6", got)
	}
	lent := make([][]byte, MaxBatch)
	info := make([]RxInfo, MaxBatch)
	if _, err := p.ReceiveLent(2, lent, info); !errors.Is(err, ErrBadQueue) {
		t.Errorf("ReceiveLent on queue 2: %v, want ErrBadQueue", err)
	}
	n, err := p.ReceiveLent(1, lent[:4], info)
	if err != nil || n != 4 {
		t.Fatalf("ReceiveLent = %d, %v, want 4", n, err)
	}
	for i, f := range lent[:n] {
		if !bytes.Equal(f, frames[i]) || cap(f) < 128+64 || info[i].RxQueue.Queue() != 1 || !info[i].RxQueue.Recorded() {
			t.Errorf("lent frame %d: equal %v, cap %d, rx queue %v", i, bytes.Equal(f, frames[i]), cap(f), info[i].RxQueue)
		}
	}
	if st := p.Stats(); st.RxPackets != 4 || st.RxBytes != 400 {
		t.Errorf("stats %+v, want 4 packets, 400 bytes received", st)
	}
	// While they are out, the queue receives nothing more and their slots
	// stay taken.
	if m, err := p.ReceiveLent(1, lent[4:], info[4:]); m != 0 || err != nil {
		t.Errorf("second ReceiveLent = %d, %v, want 0", m, err)
	}
	bufs, sizes := batchBufs(MaxBatch, 2048)
	if m, err := p.Receive(1, bufs, sizes, nil); m != 0 || err != nil {
		t.Errorf("Receive while frames are lent = %d, %v, want 0", m, err)
	}
	if got := p.Inject(1, frames); got != 2 {
		t.Errorf("Inject with 4 of 8 slots lent and 2 queued took %d, want 2", got)
	}
	p.Release(0, lent[:n]) // not queue 0's
	p.Release(1, lent[1:n])
	if m, _ := p.ReceiveLent(1, lent[4:], info[4:]); m != 0 {
		t.Errorf("ReceiveLent with one frame out = %d, want 0", m)
	}
	p.Release(1, lent[:1])
	if got := p.RxPending(1); got != 4 {
		t.Errorf("%d frames pending after Release, want 4", got)
	}
	// Out on loan across Close: Release after it is harmless.
	n, err = p.ReceiveLent(1, lent, info)
	if err != nil || n != 4 || !bytes.Equal(lent[0], frames[4]) {
		t.Fatalf("ReceiveLent = %d, %v, want 4 from frame 4", n, err)
	}
	must(t, p.Close())
	p.Release(1, lent[:n])
	if _, err := p.ReceiveLent(1, lent, info); !errors.Is(err, ErrClosed) {
		t.Errorf("ReceiveLent after Close: %v, want ErrClosed", err)
	}
}

func TestMemLendDown(t *testing.T) {
	p := newTestMem(t, MemConfig{})
	p.Inject(0, testFrames(2, 60))
	p.Device().Close()
	lent := make([][]byte, MaxBatch)
	if _, err := p.ReceiveLent(0, lent, nil); !errors.Is(err, ErrPortDown) {
		t.Errorf("ReceiveLent on a down device: %v, want ErrPortDown", err)
	}
}

func TestMemLendNoAlloc(t *testing.T) {
	p := newTestMem(t, MemConfig{RecordRxQueue: true})
	frames := testFrames(MaxBatch, 64)
	bufs, sizes := batchBufs(MaxBatch, 2048)
	lent := make([][]byte, MaxBatch)
	info := make([]RxInfo, MaxBatch)
	allocs := testing.AllocsPerRun(200, func() {
		p.Inject(0, frames)
		n, _ := p.ReceiveLent(0, lent, info)
		p.Transmit(0, lent[:n])
		p.Release(0, lent[:n])
		p.Drain(0, bufs, sizes)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch, want 0", allocs)
	}
}

// TestMemLendPair lends frames that a peer transmitted: while they are
// out, the peer's Transmit finds only the free slots, as a full ring; once
// they are back, the rest follow in order.
func TestMemLendPair(t *testing.T) {
	a, b, err := NewMemPair(MemConfig{Name: "a"}, MemConfig{Name: "b", RingSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	frames := testFrames(12, 70)
	if n, err := a.Transmit(0, frames[:6]); n != 6 || err != nil {
		t.Fatalf("Transmit = %d, %v, want 6", n, err)
	}
	lent := make([][]byte, MaxBatch)
	n, err := b.ReceiveLent(0, lent, nil)
	if err != nil || n != 6 {
		t.Fatalf("ReceiveLent = %d, %v, want 6", n, err)
	}
	if n, err := a.Transmit(0, frames[6:]); n != 2 || err != nil {
		t.Errorf("Transmit with 6 of 8 slots lent = %d, %v, want 2", n, err)
	}
	b.Release(0, lent[:n])
	if n, err := a.Transmit(0, frames[8:]); n != 4 || err != nil {
		t.Errorf("Transmit after Release = %d, %v, want 4", n, err)
	}
	bufs, sizes := batchBufs(MaxBatch, 2048)
	m, err := b.Receive(0, bufs, sizes, nil)
	if err != nil || m != 6 {
		t.Fatalf("Receive = %d, %v, want 6", m, err)
	}
	for i := range m {
		if !bytes.Equal(bufs[i][:sizes[i]], frames[6+i]) {
			t.Errorf("frame %d is not frame %d", i, 6+i)
		}
	}
	if st := a.Stats(); st.TxPackets != 12 || st.TxDropped != 0 {
		t.Errorf("a stats %+v, want 12 sent", st)
	}
}

// TestMemRxQueueInfo: RxQueueInfo is the info that Receive and
// ReceiveLent write for every frame of a queue, recorded or not.
func TestMemRxQueueInfo(t *testing.T) {
	for _, record := range []bool{false, true} {
		p := newTestMem(t, MemConfig{RecordRxQueue: record, RxQueues: 2})
		frames := [][]byte{make([]byte, 60), make([]byte, 61)}
		for q := range 2 {
			want := p.RxQueueInfo(q)
			if want.RxQueue.Recorded() != record || record && want.RxQueue.Queue() != q {
				t.Errorf("record %v: RxQueueInfo(%d) = %+v", record, q, want)
			}
			p.Inject(q, frames)
			bufs := [][]byte{make([]byte, 128), make([]byte, 128)}
			info := make([]RxInfo, 2)
			if n, err := p.Receive(q, bufs, make([]int, 2), info); n != 2 || err != nil {
				t.Fatalf("Receive = %d, %v", n, err)
			}
			p.Inject(q, frames)
			lentInfo := make([]RxInfo, 2)
			n, err := p.ReceiveLent(q, bufs, lentInfo)
			if n != 2 || err != nil {
				t.Fatalf("ReceiveLent = %d, %v", n, err)
			}
			p.ReleaseRun(q, 0, n)
			for i := range 2 {
				if info[i] != want || lentInfo[i] != want {
					t.Errorf("record %v, queue %d, frame %d: Receive's info %+v, ReceiveLent's %+v, want %+v", record, q, i, info[i], lentInfo[i], want)
				}
			}
		}
	}
}
