package datapath

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

func TestCheckOutput(t *testing.T) {
	live := vport.DeviceFields{Registration: vport.Registered, Running: true, Carrier: true, TxQueues: 4}
	with := func(f func(*vport.DeviceFields)) vport.DeviceState {
		d := live
		f(&d)
		return d.State()
	}
	down := with(func(d *vport.DeviceFields) { d.Running = false })
	noCarrier := with(func(d *vport.DeviceFields) { d.Carrier = false })
	unregistering := with(func(d *vport.DeviceFields) { d.Registration = vport.Unregistering })
	noQueues := with(func(d *vport.DeviceFields) { d.TxQueues = 0 })
	// A dummy device being unregistered: down, carrier kept, no queues.
	dummyGoing := with(func(d *vport.DeviceFields) {
		d.Registration, d.Running, d.TxQueues = vport.Unregistering, false, 0
	})
	// What a userspace datapath can observe when events arrive out of order:
	// queues gone, but still running with carrier.
	freeOrder := with(func(d *vport.DeviceFields) { d.Registration, d.TxQueues = vport.Unregistering, 0 })

	tests := []struct {
		name   string
		inPol  Policy
		inSt   vport.DeviceState
		wantOK bool
		want   DropReason
	}{
		{"guarded live", Guarded, live.State(), true, 0},
		{"guarded down", Guarded, down, false, DropNotRunning},
		{"guarded no carrier", Guarded, noCarrier, false, DropNoCarrier},
		{"guarded unregistering", Guarded, unregistering, false, DropNotRegistered},
		{"guarded no queues", Guarded, noQueues, false, DropNoTxQueues},
		{"guarded dummy going", Guarded, dummyGoing, false, DropNotRegistered},
		{"guarded free order", Guarded, freeOrder, false, DropNotRegistered},
		{"legacy down", Legacy, down, true, 0},
		{"legacy no queues", Legacy, noQueues, true, 0},
		{"carrier no carrier", Carrier, noCarrier, false, DropNoCarrier},
		{"carrier dummy going", Carrier, dummyGoing, true, 0},
		{"upstream dummy going", Upstream, dummyGoing, false, DropNotRunning},
		{"upstream free order", Upstream, freeOrder, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := checkOutput(tt.inPol, tt.inSt)
			if ok != tt.wantOK || (!ok && got != tt.want) {
				t.Errorf("checkOutput(%s, %s) = %s, %v; want %s, %v", tt.inPol, tt.inSt, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestTransmittable checks that output's inlined test lets through exactly
// the states that checkOutput lets through under Guarded.
func TestTransmittable(t *testing.T) {
	for reg := vport.Uninitialized; reg <= vport.Unregistered; reg++ {
		for _, running := range []bool{false, true} {
			for _, carrier := range []bool{false, true} {
				for _, txq := range []int{0, 1, 4} {
					st := vport.DeviceFields{Registration: reg, Running: running, Carrier: carrier, TxQueues: txq}.State()
					if _, want := checkOutput(Guarded, st); transmittable(st) != want {
						t.Errorf("transmittable(%s) = %v, checkOutput(guarded) says %v", st, !want, want)
					}
				}
			}
		}
	}
}

func TestPickTxQueue(t *testing.T) {
	var w stall
	tests := []struct {
		name   string
		inPol  Policy
		inTxq  int
		inRxq  vport.RxQueue
		inHash uint32
		want   int
	}{
		{"guarded recorded", Guarded, 4, vport.RecordRxQueue(9), 0, 1},
		{"guarded recorded below", Guarded, 4, vport.RecordRxQueue(3), 0, 3},
		{"guarded recorded at", Guarded, 4, vport.RecordRxQueue(4), 0, 0},
		{"guarded unrecorded", Guarded, 4, 0, 0x80000000, 2},
		{"legacy recorded", Legacy, 4, vport.RecordRxQueue(9), 0, 1},
		{"legacy recorded below", Legacy, 32, vport.RecordRxQueue(3), 0, 3},
		{"legacy unrecorded no queues", Legacy, 0, 0, 0xffffffff, 0},
		{"upstream unrecorded", Upstream, 8, 0, 0xffffffff, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, ok := pickTxQueue(tt.inPol, tt.inTxq, &txPick{hash: tt.inHash, hashed: true, rxQueue: tt.inRxq, w: &w})
			if !ok || q != tt.want {
				t.Errorf("got %d, %v; want %d", q, ok, tt.want)
			}
		})
	}
}

// TestLegacySpinsUntilWatchdog sends a packet with a recorded rx queue to a
// port with no tx queues under the legacy policy: the poll thread spins in
// the kernel's loop, the watchdog reports the lockup and releases it, the
// packet is dropped as a lockup, and forwarding goes on.
func TestLegacySpinsUntilWatchdog(t *testing.T) {
	b := newTestBridge(t, Config{Policy: Legacy, Watchdog: WatchdogConfig{Threshold: 100 * time.Millisecond}})
	src, _ := addMemPort(t, b, vport.MemConfig{Name: "src", RecordRxQueue: true}, 1)
	dst, _ := addMemPort(t, b, vport.MemConfig{Name: "dst", TxQueues: 2}, 2)
	addFlows(t, b, "in_port=1,actions=output:2")
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 18})

	if err := dst.Device().SetTxQueues(0); err != nil {
		t.Fatal(err)
	}
	src.Inject(0, [][]byte{frame})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b.SpinningLockups() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no lockup detected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	quiesce(t, b, src)
	l := spinningLockups(b)[0]
	if !strings.HasPrefix(l.String(), "BUG: soft lockup - pmd#0 stuck for") || l.Port != "dst" || l.TxQueues != 0 {
		t.Errorf("lockup report: %s (port %q, txqueues %d)", l, l.Port, l.TxQueues)
	}
	if !strings.Contains(l.Stack, "kernelQueueLoop") {
		t.Errorf("lockup stack does not show the spin:\n%s", l.Stack)
	}
	p1, _ := b.Port("src")
	if s := p1.Stats(); s.Drops[DropLockup] != 1 {
		t.Errorf("lockup drops = %d, want 1", s.Drops[DropLockup])
	}

	// The thread is free again: with queues back, traffic flows.
	if err := dst.Device().SetTxQueues(2); err != nil {
		t.Fatal(err)
	}
	src.Inject(0, [][]byte{frame})
	quiesce(t, b, src)
	if got := len(drainAll(dst)); got != 1 {
		t.Errorf("after the lockup: %d frames out, want 1", got)
	}
	checkAccounting(t, b)
}

// TestGuardedNeverSpins is the same scenario under the guarded policy: the
// packet is dropped as no-tx-queues at once, and no lockup is recorded.
func TestGuardedNeverSpins(t *testing.T) {
	b := newTestBridge(t, Config{Watchdog: WatchdogConfig{Threshold: 100 * time.Millisecond}})
	src, _ := addMemPort(t, b, vport.MemConfig{Name: "src", RecordRxQueue: true}, 1)
	dst, _ := addMemPort(t, b, vport.MemConfig{Name: "dst", TxQueues: 2}, 2)
	addFlows(t, b, "in_port=1,actions=output:2")
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 18})
	if err := dst.Device().SetTxQueues(0); err != nil {
		t.Fatal(err)
	}
	src.Inject(0, [][]byte{frame})
	quiesce(t, b, src)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Synchronize(ctx); err != nil {
		t.Fatal(err)
	}
	if n := b.SpinningLockups(); n != 0 {
		t.Errorf("%d spinning lockups under guarded: %v", n, spinningLockups(b))
	}
	p1, _ := b.Port("src")
	if s := p1.Stats(); s.Drops[DropNoTxQueues] != 1 {
		t.Errorf("drops: %v", s.Drops)
	}
	checkAccounting(t, b)
}

// sinkRecord is a portSink that writes down what resolveOutput decides.
type sinkRecord struct {
	sent    []*Port
	dropped []uint32
	reasons []DropReason
	to      uint32 // what normal answers
}

func (s *sinkRecord) send(dst *Port) { s.sent = append(s.sent, dst) }
func (s *sinkRecord) drop(port uint32, reason DropReason) {
	s.dropped = append(s.dropped, port)
	s.reasons = append(s.reasons, reason)
}
func (s *sinkRecord) normal() uint32 { return s.to }

// TestResolveOne checks that the ports singleOutput admits make one copy
// at most, and that resolveOne sends or drops it as resolveOutput does.
func TestResolveOne(t *testing.T) {
	p1, p2, local := &Port{OFPort: 1}, &Port{OFPort: 2}, &Port{OFPort: flow.PortLocal}
	tbl := &portTable{byOF: []*Port{nil, p1, p2}, local: local, list: []*Port{p1, p2, local}}
	tests := []struct {
		name       string
		in         *Port
		inPort     uint32
		port       uint32
		wantSingle bool
		wantDst    *Port
		wantDrop   uint32
		wantReason DropReason
	}{
		{name: "another port", in: p1, inPort: 1, port: 2, wantSingle: true, wantDst: p2},
		{name: "its own port", in: p1, inPort: 1, port: 1, wantSingle: true, wantDrop: 1, wantReason: DropSamePort},
		{name: "no such port", in: p1, inPort: 1, port: 7, wantSingle: true, wantDrop: 7, wantReason: DropPortGone},
		{name: "past the table", in: p1, inPort: 1, port: 0xfeff, wantSingle: true, wantDrop: 0xfeff, wantReason: DropPortGone},
		{name: "local", in: p1, inPort: 1, port: flow.PortLocal, wantSingle: true, wantDst: local},
		{name: "in_port", in: p1, inPort: 1, port: flow.PortInPort, wantSingle: true, wantDst: p1},
		{name: "in_port gone", in: nil, inPort: 5, port: flow.PortInPort, wantSingle: true, wantDrop: 5, wantReason: DropPortGone},
		{name: "flood", in: p1, inPort: 1, port: flow.PortFlood},
		{name: "all", in: p1, inPort: 1, port: flow.PortAll},
		{name: "normal", in: p1, inPort: 1, port: flow.PortNormal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := singleOutput(tt.port); got != tt.wantSingle {
				t.Fatalf("singleOutput = %v, want %v", got, tt.wantSingle)
			}
			if !tt.wantSingle {
				return
			}
			dst, drop, reason := resolveOne(tbl, tt.in, tt.inPort, tt.port)
			if dst != tt.wantDst || (dst == nil && (drop != tt.wantDrop || reason != tt.wantReason)) {
				t.Errorf("resolveOne = %v, %d, %v; want %v, %d, %v", dst, drop, reason, tt.wantDst, tt.wantDrop, tt.wantReason)
			}
			var s sinkRecord
			resolveOutput(tbl, tt.in, tt.inPort, tt.port, &s)
			if len(s.sent)+len(s.dropped) != 1 {
				t.Fatalf("resolveOutput made %d copies, want 1", len(s.sent)+len(s.dropped))
			}
			if dst != nil && s.sent[0] != dst || dst == nil && (s.dropped[0] != drop || s.reasons[0] != reason) {
				t.Errorf("resolveOutput sent %v, dropped %v %v; resolveOne %v, %d, %v", s.sent, s.dropped, s.reasons, dst, drop, reason)
			}
		})
	}
}

// queueLender is an in-memory port that lends its frames with the rx
// queues of queues recorded for them (frame i gets queues[i]), as a port
// whose frames came in on several queues would. It is a Lender only, not
// a vport.UniformRx.
type queueLender struct {
	vport.Lender
	queues []vport.RxQueue
}

func (ql *queueLender) ReceiveLent(q int, frames [][]byte, info []vport.RxInfo) (int, error) {
	n, err := ql.Lender.ReceiveLent(q, frames, info)
	for i := range info[:n] {
		info[i].RxQueue = ql.queues[i%len(ql.queues)]
	}
	return n, err
}

// TestOutputRunQueues: a run of packets that dispatch sends to one port
// in one loop (outputRun) puts each on the tx queue output would pick
// for it, in order, whether its rx queue is recorded (its queue modulo
// the device's, each queue's batch found as the run goes from one to
// another) or not (its flow hash, through output): the copies the loop
// queues and the ones output queues between them interleave as they
// would one by one, every lent frame goes back, and every packet is
// counted.
func TestOutputRunQueues(t *testing.T) {
	b, err := New(Config{Name: "runq", Policy: Guarded})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	mp, err := vport.NewMemPort(vport.MemConfig{Name: "src", RecordRxQueue: true, RingSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	queues := []vport.RxQueue{0, vport.RecordRxQueue(1), vport.RecordRxQueue(6), vport.RecordRxQueue(1), vport.RecordRxQueue(3), 0}
	src := &queueLender{Lender: mp, queues: queues}
	if _, err := b.AddPort(src, 1); err != nil {
		t.Fatal(err)
	}
	dst, _ := addMemPort(t, b, vport.MemConfig{Name: "dst", TxQueues: 4, RingSize: 256}, 2)
	addFlows(t, b, "in_port=1,udp,actions=output:2")
	p := b.pmds[0]
	rqs := []rxq{{port: b.ports.Load().lookup(1), q: 0}}
	p.rxqs.Store(&rqs)

	for round := range 2 { // the second finds every slot given back
		frames := make([][]byte, vport.MaxBatch)
		want := make([][]uint16, dst.TxQueues()) // the source ports each tx queue gets, in order
		for i := range frames {
			sport := uint16(1000 + 100*round + i)
			frames[i] = buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: sport, dport: 80})
			q := 0
			if rq := queues[i%len(queues)]; rq.Recorded() {
				q = rq.Queue() % dst.TxQueues()
			} else {
				var k flow.Key
				var off flow.Offsets
				flow.Extract(&k, &off, frames[i], 1)
				q = int(reciprocalScale(uint32(k.Hash()), uint32(dst.TxQueues())))
			}
			want[q] = append(want[q], sport)
		}
		pollBatch(t, p, mp, frames, round)
		for q := range dst.TxQueues() {
			if got := drainSourcePorts(dst, q); !slices.Equal(got, want[q]) {
				t.Errorf("round %d: tx queue %d got source ports %v, want %v", round, q, got, want[q])
			}
		}
	}
	checkAccounting(t, b)
}

// TestOutputRunNotConsecutive: a run of lent frames that malformed frames
// split into packets that are not consecutive in the rx batch (queueLent's
// loop, not its copy of a consecutive run) still puts each good frame on
// the tx queue in order, counts the malformed ones, and gives every lent
// frame back: the second round finds every slot free.
func TestOutputRunNotConsecutive(t *testing.T) {
	b, err := New(Config{Name: "runnc", Policy: Guarded})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	src, _ := addMemPort(t, b, vport.MemConfig{Name: "src", RecordRxQueue: true, RingSize: 64}, 1)
	dst, _ := addMemPort(t, b, vport.MemConfig{Name: "dst", RingSize: 256}, 2)
	addFlows(t, b, "in_port=1,udp,actions=output:2")
	p := b.pmds[0]
	rqs := []rxq{{port: b.ports.Load().lookup(1), q: 0}}
	p.rxqs.Store(&rqs)

	for round := range 2 {
		frames := make([][]byte, vport.MaxBatch)
		var want []uint16
		for i := range frames {
			if i == 3 || i == 10 {
				frames[i] = []byte{1, 2, 3} // malformed: shorter than Ethernet
				continue
			}
			sport := uint16(1000 + 100*round + i)
			frames[i] = buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: sport, dport: 80})
			want = append(want, sport)
		}
		pollBatch(t, p, src, frames, round)
		if got := drainSourcePorts(dst, 0); !slices.Equal(got, want) {
			t.Errorf("round %d: got source ports %v, want %v", round, got, want)
		}
	}
	if s := b.ports.Load().lookup(1).Stats(); s.Drops[DropMalformed] != 4 {
		t.Errorf("malformed drops %d, want 4", s.Drops[DropMalformed])
	}
	checkAccounting(t, b)
}

// TestOutputRunsLentAcrossOutputs: the lent frames of a batch whose
// packets go to two ports in turn, in runs of one to four, and some
// nowhere (malformed), are held as runs of the loan that cross the output
// batches; each port gets its frames in order, every packet is counted,
// and every lent frame goes back: the second round finds every slot free.
func TestOutputRunsLentAcrossOutputs(t *testing.T) {
	b, err := New(Config{Name: "runx", Policy: Guarded})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	src, _ := addMemPort(t, b, vport.MemConfig{Name: "src", RecordRxQueue: true, RingSize: 64}, 1)
	dsts := []*vport.MemPort{}
	for i := range 2 {
		d, _ := addMemPort(t, b, vport.MemConfig{Name: fmt.Sprintf("dst%d", i), RingSize: 256}, uint32(2+i))
		dsts = append(dsts, d)
	}
	addFlows(t, b, "in_port=1,udp,tp_dst=53,actions=output:2", "in_port=1,udp,tp_dst=80,actions=output:3")
	p := b.pmds[0]
	rqs := []rxq{{port: b.ports.Load().lookup(1), q: 0}}
	p.rxqs.Store(&rqs)

	runs := []int{1, 2, 3, 4, 1, 1, 2, 4, 3}
	for round := range 2 {
		frames := make([][]byte, 0, vport.MaxBatch)
		want := make([][]uint16, 2)
		for r := 0; len(frames) < vport.MaxBatch; r++ {
			to := r % 2
			for range runs[r%len(runs)] {
				i := len(frames)
				if i == vport.MaxBatch {
					break
				}
				if i == 7 {
					frames = append(frames, []byte{1, 2, 3}) // malformed
					continue
				}
				sport := uint16(1000 + 100*round + i)
				frames = append(frames, buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: sport, dport: []uint16{53, 80}[to]}))
				want[to] = append(want[to], sport)
			}
		}
		pollBatch(t, p, src, frames, round)
		for i, d := range dsts {
			if got := drainSourcePorts(d, 0); !slices.Equal(got, want[i]) {
				t.Errorf("round %d: port %s got source ports %v, want %v", round, d.Name(), got, want[i])
			}
		}
	}
	if s := b.ports.Load().lookup(1).Stats(); s.Drops[DropMalformed] != 2 || s.Sent != 2*(vport.MaxBatch-1) {
		t.Errorf("malformed drops %d, sent %d; want 2, %d", s.Drops[DropMalformed], s.Sent, 2*(vport.MaxBatch-1))
	}
	checkAccounting(t, b)
}

// TestOutputRunUniformRx: a port that records one rx queue for a whole
// batch (vport.UniformRx, whose info the thread takes once) puts a run of
// packets on the tx queue of that rx queue, or, when it records none, each
// on the tx queue of its flow hash; the port is marked as recording or
// not, and every packet is counted.
func TestOutputRunUniformRx(t *testing.T) {
	for _, record := range []bool{true, false} {
		t.Run(fmt.Sprintf("record=%v", record), func(t *testing.T) {
			b, err := New(Config{Name: "uni", Policy: Guarded})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			src, in := addMemPort(t, b, vport.MemConfig{Name: "src", RecordRxQueue: record, RxQueues: 3, RingSize: 64}, 1)
			dst, _ := addMemPort(t, b, vport.MemConfig{Name: "dst", TxQueues: 4, RingSize: 256}, 2)
			addFlows(t, b, "in_port=1,udp,actions=output:2")
			p := b.pmds[0]
			rqs := []rxq{{port: in, q: 2}}
			p.rxqs.Store(&rqs)
			for round := range 2 {
				frames := make([][]byte, vport.MaxBatch)
				want := make([][]uint16, dst.TxQueues())
				for i := range frames {
					sport := uint16(1000 + 100*round + i)
					frames[i] = buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: sport, dport: 80})
					q := 2 // rx queue 2 of 4 tx queues
					if !record {
						var k flow.Key
						var off flow.Offsets
						flow.Extract(&k, &off, frames[i], 1)
						q = int(reciprocalScale(uint32(k.Hash()), uint32(dst.TxQueues())))
					}
					want[q] = append(want[q], sport)
				}
				if n := src.Inject(2, frames); n != len(frames) {
					t.Fatalf("round %d: injected %d of %d frames", round, n, len(frames))
				}
				p.rd.enter()
				p.poll(timeNow())
				p.rd.leave()
				for q := range dst.TxQueues() {
					if got := drainSourcePorts(dst, q); !slices.Equal(got, want[q]) {
						t.Errorf("round %d: tx queue %d got source ports %v, want %v", round, q, got, want[q])
					}
				}
			}
			if in.rxRecorded.Load() != record {
				t.Errorf("port marked as recording its rx queue: %v, want %v", in.rxRecorded.Load(), record)
			}
			checkAccounting(t, b)
		})
	}
}

// pollBatch injects frames into src's rx queue 0 and has p poll them.
func pollBatch(t *testing.T, p *pmd, src interface{ Inject(int, [][]byte) int }, frames [][]byte, round int) {
	t.Helper()
	if n := src.Inject(0, frames); n != len(frames) {
		t.Fatalf("round %d: injected %d of %d frames", round, n, len(frames))
	}
	p.rd.enter()
	p.poll(timeNow())
	p.rd.leave()
}

// drainSourcePorts drains dst's tx queue q and returns the UDP source
// ports of the frames, in order.
func drainSourcePorts(dst *vport.MemPort, q int) []uint16 {
	bufs, sizes := [][]byte{make([]byte, dst.FrameSize())}, []int{0}
	var got []uint16
	for dst.Drain(q, bufs, sizes) == 1 {
		var k flow.Key
		var off flow.Offsets
		flow.Extract(&k, &off, bufs[0][:sizes[0]], 2)
		got = append(got, k.TpSrc)
	}
	return got
}
