package datapath

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath/tunnel"
	"github.com/ovsxdp/ovsxdp/vport"
)

// startShared returns a started bridge whose poll threads run on threads;
// the caller closes it.
func startShared(t *testing.T, threads *Threads, cfg Config) *Bridge {
	t.Helper()
	cfg.Threads = threads
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		b.Close()
		t.Fatal(err)
	}
	return b
}

// pairTraffic is a bridge with ports a (1) and b (2) forwarding to each
// other, a generator and a sink on each.
type pairTraffic struct {
	b       *Bridge
	a, bm   *vport.MemPort
	gens    []*vport.Generator
	sinks   []*vport.Sink
	pa, pb  *Port
	rate    float64
	count   uint64
	seed    uint64
	stopped bool
}

func newPairTraffic(t *testing.T, b *Bridge, seed uint64, rate float64, count uint64) *pairTraffic {
	t.Helper()
	pt := &pairTraffic{b: b, rate: rate, count: count, seed: seed}
	pt.a, pt.pa = addMemPort(t, b, vport.MemConfig{Name: b.Name() + "a"}, 1)
	pt.bm, pt.pb = addMemPort(t, b, vport.MemConfig{Name: b.Name() + "b"}, 2)
	addFlows(t, b, "in_port=1,actions=output:2", "in_port=2,actions=output:1")
	for i, mp := range []*vport.MemPort{pt.a, pt.bm} {
		g, err := vport.NewGenerator(mp, vport.GenConfig{Seed: seed + uint64(i), Flows: 8, Rate: rate, Count: count, Lossless: true})
		if err != nil {
			t.Fatal(err)
		}
		s, err := vport.NewSink(mp, vport.SinkConfig{Flows: 8})
		if err != nil {
			t.Fatal(err)
		}
		pt.gens, pt.sinks = append(pt.gens, g), append(pt.sinks, s)
	}
	return pt
}

func (pt *pairTraffic) start(t *testing.T) {
	t.Helper()
	for i := range pt.gens {
		if err := errors.Join(pt.sinks[i].Start(), pt.gens[i].Start()); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(pt.stop)
}

// stopGens stops the generators; the sinks go on draining.
func (pt *pairTraffic) stopGens() {
	for _, g := range pt.gens {
		g.Stop()
	}
}

func (pt *pairTraffic) stop() {
	if pt.stopped {
		return
	}
	pt.stopped = true
	for i := range pt.gens {
		pt.gens[i].Stop()
		pt.sinks[i].Stop()
	}
}

// injected is how many frames generator i put on its port's rx queues
// (its Total also counts those a stop left waiting for room).
func (pt *pairTraffic) injected(i int) uint64 {
	var n uint64
	for f := range pt.gens[i].Flows() {
		n += pt.gens[i].Sent(f)
	}
	return n
}

// settle waits until what the generators handed the ports has been
// received, and what the ports sent has been drained, and checks that
// each port's counters add up: rx = tx + drops, the tx what its sink saw.
func (pt *pairTraffic) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		a, b := pt.pa.Stats(), pt.pb.Stats()
		sa, sb := pt.sinks[0].Stats(), pt.sinks[1].Stats()
		if a.RxPackets == pt.injected(0) && b.RxPackets == pt.injected(1) &&
			a.Balanced() && b.Balanced() && sa.Packets == a.TxPackets && sb.Packets == b.TxPackets {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge %s not settled after 60s: generated %d and %d; port a %+v (sink %d); port b %+v (sink %d)",
				pt.b.Name(), pt.injected(0), pt.injected(1), a, sa.Packets, b, sb.Packets)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSharedThreadForwards: two bridges whose poll threads share one
// thread forward both ways between their ports, under each idle
// strategy; every packet each port received is sent or dropped with a
// reason, and both bridges' pmd counters saw their own packets. Once both
// bridges are closed the thread is gone.
func TestSharedThreadForwards(t *testing.T) {
	for _, idle := range []IdleStrategy{IdleAdaptive, IdleSleep, IdleSpin} {
		t.Run(idle.String(), func(t *testing.T) {
			leaks := goroutineBaseline(t)
			pool := NewThreads(1)
			const count = 3000
			var pts []*pairTraffic
			for i, name := range []string{"br0", "br1"} {
				b := startShared(t, pool, Config{Name: name, Idle: idle})
				defer b.Close()
				pts = append(pts, newPairTraffic(t, b, uint64(10*i+1), 30000, count))
			}
			if th := pts[0].b.pmds[0].thread; th != pts[1].b.pmds[0].thread || pool.Running() != 1 {
				t.Fatalf("the bridges' pmds are not on one thread (%d threads run)", pool.Running())
			}
			for _, pt := range pts {
				pt.start(t)
			}
			for _, pt := range pts {
				for _, g := range pt.gens {
					select {
					case <-g.Done():
					case <-time.After(60 * time.Second):
						t.Fatalf("generator on %s not done after 60s", pt.b.Name())
					}
				}
			}
			for _, pt := range pts {
				pt.settle(t)
				pt.stop()
				checkAccounting(t, pt.b)
				if got := pt.pa.Stats().RxPackets + pt.pb.Stats().RxPackets; got != 2*count {
					t.Errorf("%s received %d packets, want %d", pt.b.Name(), got, 2*count)
				}
				var handled uint64
				for _, s := range pt.b.PMDStats() {
					handled += s.Packets
				}
				if handled != 2*count {
					t.Errorf("%s's pmd handled %d packets, want %d", pt.b.Name(), handled, 2*count)
				}
			}
			for _, pt := range pts {
				if err := pt.b.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if n := pool.Running(); n != 0 {
				t.Errorf("%d threads run after the bridges closed", n)
			}
			leaks()
		})
	}
}

// TestSharedThreadTunnel: a tunnel between two bridges whose poll threads
// share one thread. The thread takes each packet through both bridges
// (it runs the other bridge's injected batch itself, always finding it
// out of a batch), so nothing waits in an injection ring and none is
// dropped there as tx-ring-full; every frame sent either way comes out.
func TestSharedThreadTunnel(t *testing.T) {
	pool := NewThreads(1)
	r := newTunnelRigOn(t, tunnel.VXLAN, map[string]string{"remote_ip": "192.0.2.2", "key": "5"}, pool)
	inner := buildFrame(t, frameSpec{src: "10.9.0.1", dst: "10.9.0.2", proto: "udp", sport: 1000, dport: 2000, payloadSz: 100})
	back := encapsulated(t, inner, 5)
	for _, b := range []*Bridge{r.in, r.phy} {
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if r.in.pmds[0].thread != r.phy.pmds[0].thread {
		t.Fatal("the bridges' pmds are not on one thread")
	}
	// A moderate rate: 16 frames each way per round, every 200 µs or
	// more (the sleeps of a loaded machine only slow it down).
	const rounds = 1000
	outFrames, backFrames := make([][]byte, 16), make([][]byte, 16)
	for i := range outFrames {
		outFrames[i], backFrames[i] = inner, back
	}
	var sentOut, sentBack, gotOut, gotBack uint64
	for range rounds {
		sentOut += uint64(r.w.Inject(0, outFrames))
		sentBack += uint64(r.up.Inject(0, backFrames))
		gotOut += uint64(len(drainAll(r.up)))
		gotBack += uint64(len(drainAll(r.w)))
		time.Sleep(200 * time.Microsecond)
	}
	deadline := time.Now().Add(60 * time.Second)
	for gotOut < sentOut || gotBack < sentBack {
		if time.Now().After(deadline) {
			t.Fatalf("sent %d out and %d back, got %d and %d after 60s; vx %+v; up %+v", sentOut, sentBack, gotOut, gotBack, r.vxp.Stats(), r.upp.Stats())
		}
		time.Sleep(5 * time.Millisecond)
		gotOut += uint64(len(drainAll(r.up)))
		gotBack += uint64(len(drainAll(r.w)))
	}
	if gotOut != sentOut || gotBack != sentBack {
		t.Errorf("sent %d out and %d back, got %d and %d", sentOut, sentBack, gotOut, gotBack)
	}
	for _, p := range []*Port{r.wp, r.vxp, r.upp, r.phyp} {
		if s := p.Stats(); s.Drops[DropTxRingFull] != 0 || !s.Balanced() {
			t.Errorf("port %s: %d tx-ring-full drops; %+v", s.Name, s.Drops[DropTxRingFull], s)
		}
	}
	// Every injected frame was taken by the thread right after the batch
	// that injected it, as the other bridge's helper.
	if in, phy := r.in.PMDStats()[0].Helped, r.phy.PMDStats()[0].Helped; in != r.vxp.Stats().RxPackets || phy != r.phyp.Stats().RxPackets {
		t.Errorf("helped with %d and %d frames, want all %d decapsulated and %d encapsulated", in, phy, r.vxp.Stats().RxPackets, r.phyp.Stats().RxPackets)
	}
	checkAccounting(t, r.in)
	checkAccounting(t, r.phy)
}

// TestSharedThreadBridgeClosed: a bridge closed while the thread it
// shares runs traffic on both: Close returns once the thread is out of
// its ports, the other bridge forwards on and accounts for everything,
// and a bridge that starts on the pool after both are gone has the thread
// back.
func TestSharedThreadBridgeClosed(t *testing.T) {
	leaks := goroutineBaseline(t)
	pool := NewThreads(1)
	gone := startShared(t, pool, Config{Name: "gone"})
	defer gone.Close()
	stays := startShared(t, pool, Config{Name: "stays"})
	defer stays.Close()
	ptGone := newPairTraffic(t, gone, 1, 20000, 0)
	ptStays := newPairTraffic(t, stays, 11, 20000, 0)
	ptGone.start(t)
	ptStays.start(t)
	if !eventually(30*time.Second, func() bool {
		return ptGone.sinks[1].Stats().Packets > 100 && ptStays.sinks[1].Stats().Packets > 100
	}) {
		t.Fatal("no traffic through both bridges")
	}
	// The generators keep putting frames on the closed bridge's rx rings:
	// nothing polls them any more.
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(*stays.pmds[0].thread.members.Load()); n != 1 || pool.Running() != 1 {
		t.Fatalf("the thread has %d members after a bridge closed (%d threads run), want 1", n, pool.Running())
	}
	after := ptStays.sinks[1].Stats().Packets
	if !eventually(30*time.Second, func() bool { return ptStays.sinks[1].Stats().Packets > after+100 }) {
		t.Fatal("the other bridge stopped forwarding when one closed")
	}
	ptGone.stop()
	ptStays.stopGens()
	ptStays.settle(t)
	ptStays.stop()
	checkAccounting(t, stays)
	if err := stays.Close(); err != nil {
		t.Fatal(err)
	}
	if pool.Running() != 0 {
		t.Fatalf("%d threads run after every bridge closed", pool.Running())
	}

	again := startShared(t, pool, Config{Name: "again"})
	defer again.Close()
	pt := newPairTraffic(t, again, 21, 20000, 500)
	pt.start(t)
	for _, g := range pt.gens {
		<-g.Done()
	}
	pt.settle(t)
	checkAccounting(t, again)
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
	leaks()
}

// TestSharedThreadWatchdog: a member of a shared thread spins in the
// kernel's queue loop (legacy policy, a port without tx queues). The
// spinning bridge has two pmds, both on the pool's one thread with the
// other bridge's. Its watchdog reports the lockup on the pmd that polls
// the port and on the port it spins on, and releases it; the other bridge
// on the thread has no spinning lockup, and forwards again once the spin
// is released.
func TestSharedThreadWatchdog(t *testing.T) {
	pool := NewThreads(1)
	spin := startShared(t, pool, Config{Name: "spin", Policy: Legacy, Idle: IdleSleep, PMDs: 2,
		Watchdog: WatchdogConfig{Threshold: 50 * time.Millisecond, Log: discardLog}})
	defer spin.Close()
	calm := startShared(t, pool, Config{Name: "calm", Idle: IdleSleep, Watchdog: WatchdogConfig{Log: discardLog}})
	defer calm.Close()
	if n := len(*pool.thread(0).members.Load()); n != 3 {
		t.Fatalf("the thread has %d members, want 3 (2 pmds of one bridge, 1 of the other)", n)
	}
	dst, _ := addMemPort(t, spin, vport.MemConfig{Name: "dst", TxQueues: 2}, 1)
	src, srcPort := addMemPort(t, spin, vport.MemConfig{Name: "src", RecordRxQueue: true}, 2)
	addFlows(t, spin, "in_port=2,actions=output:1")
	wantPMD := -1
	for _, p := range spin.pmds {
		for _, rq := range *p.rxqs.Load() {
			if rq.port == srcPort {
				wantPMD = p.id
			}
		}
	}
	if wantPMD < 0 {
		t.Fatal("no pmd polls port src")
	}
	in, _ := addMemPort(t, calm, vport.MemConfig{Name: "in"}, 1)
	out, _ := addMemPort(t, calm, vport.MemConfig{Name: "out"}, 2)
	addFlows(t, calm, "in_port=1,actions=output:2")
	if err := dst.Device().SetTxQueues(0); err != nil {
		t.Fatal(err)
	}
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 18})
	src.Inject(0, [][]byte{frame})
	if !eventually(30*time.Second, func() bool { return spin.SpinningLockups() == 1 }) {
		t.Fatalf("no spinning lockup reported: %d", spin.SpinningLockups())
	}
	ls := spinningLockups(spin)
	if l := ls[0]; l.PMD != wantPMD || l.Port != "dst" || l.TxQueues != 0 || !strings.Contains(l.Stack, "kernelQueueLoop") {
		t.Errorf("lockup %s, want on pmd#%d\n%s", l, wantPMD, l.Stack)
	}
	if n := calm.SpinningLockups(); n != 0 {
		t.Errorf("the other bridge reported %d spinning lockups", n)
	}
	// The other member forwards on the released thread.
	in.Inject(0, [][]byte{frame, frame, frame})
	var got int
	if !eventually(30*time.Second, func() bool { got += len(drainAll(out)); return got == 3 }) {
		t.Fatalf("the other bridge forwarded %d of 3 frames after the release", got)
	}
	checkAccounting(t, spin)
	checkAccounting(t, calm)
}

// TestThreadRefreshOnlyOnChange checks that a round of batches looks at
// the thread's members only when one joined or left (gen moved): a member
// list stored behind its back is not taken up until gen moves, and then
// it is.
func TestThreadRefreshOnlyOnChange(t *testing.T) {
	var pmds []*pmd
	for _, name := range []string{"r0", "r1"} {
		b, err := New(Config{Name: name, Idle: IdleSleep}) // strategy would lock the test's goroutine to its thread for naps
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		pmds = append(pmds, b.pmds[0])
	}
	th := newThread()
	th.members.Store(&[]*pmd{pmds[0]})
	th.gen.Add(1) // as a join does
	if !th.refresh() || len(th.ms) != 1 || th.ms[0] != pmds[0] {
		t.Fatalf("after a join the thread runs %v, want [r0]", th.ms)
	}
	th.members.Store(&[]*pmd{pmds[0], pmds[1]})
	for range 3 {
		if !th.refresh() || len(th.ms) != 1 {
			t.Fatalf("gen did not move, yet the thread took up %d members", len(th.ms))
		}
	}
	th.gen.Add(1)
	if !th.refresh() || len(th.ms) != 2 || th.ms[1] != pmds[1] {
		t.Fatalf("gen moved; the thread runs %d members, want 2", len(th.ms))
	}
}

// eventually polls cond until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}
