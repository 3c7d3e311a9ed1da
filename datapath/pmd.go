package datapath

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// IdleStrategy is what a poll thread does when its queues are empty.
type IdleStrategy uint8

// NapTimerSlack is the timer slack of an adaptive poll thread: by
// default Linux lets a sleep of a normal thread overrun by 50 µs, as long
// as a whole nap.
const NapTimerSlack = time.Microsecond

// DefaultSpareSpin is how long an adaptive poll thread keeps polling after
// its last packet, as long as other threads leave it its CPU, when
// Config.SpareSpin is zero.
const DefaultSpareSpin = 20 * time.Millisecond

// The idle strategies.
const (
	// IdleAdaptive follows the load. Under heavy load (full half
	// batches) it polls again at once. Under light load (a few packets
	// per poll) it naps between polls, a little longer each time up to
	// maxNap, so that the packets gather into batches: one transmit call
	// then carries several packets, and the CPU the thread does not spin
	// away goes to the endpoints and the kernel's own packet work. When
	// a poll finds nothing, it keeps polling for spinWindow (a reply
	// usually comes back within it, and is forwarded without a wake-up),
	// and then for up to Config.SpareSpin after its last packet as long
	// as other threads leave it its CPU (spareCPU): with a CPU to spare,
	// sparse traffic such as pings finds the thread awake, as a busy
	// polling one would. Then it sleeps in poll(2) until a queue has
	// traffic. The default.
	IdleAdaptive IdleStrategy = iota
	// IdleSpin never sleeps (busy polling, as OVS's PMDs by default).
	IdleSpin
	// IdleSleep sleeps in poll(2) as soon as the queues are empty.
	IdleSleep
)

// ParseIdleStrategy returns the idle strategy named s, as String names it.
func ParseIdleStrategy(s string) (IdleStrategy, error) {
	for _, st := range []IdleStrategy{IdleAdaptive, IdleSpin, IdleSleep} {
		if s == st.String() {
			return st, nil
		}
	}
	return 0, fmt.Errorf("unknown idle strategy %q (want adaptive, spin or sleep)", s)
}

func (s IdleStrategy) String() string {
	switch s {
	case IdleAdaptive:
		return "adaptive"
	case IdleSpin:
		return "spin"
	case IdleSleep:
		return "sleep"
	}
	return "idle(?)"
}

const (
	// spinWindow is how long an adaptive thread keeps polling after the
	// last packet before it sleeps.
	spinWindow = 50 * time.Microsecond
	// napStep and maxNap shape an adaptive thread's naps under light
	// load: each light poll lengthens the next nap by napStep, up to
	// maxNap (see adapt). A poll with at least napThreshold packets ends
	// napping.
	napStep      = 5 * time.Microsecond
	maxNap       = 50 * time.Microsecond
	napThreshold = vport.MaxBatch / 2
	// loadGap tells light load from a packet after a quiet spell: a
	// thread starts napping only when packets came in polls less than
	// loadGap apart (above about 50,000 packets/s); a lone packet is
	// followed by polls at once, so that its reply is not delayed.
	loadGap = 20 * time.Microsecond
	// spinYield is how often a spinning thread yields, well within the
	// 10 ms after which the runtime preempts a goroutine that never
	// does.
	spinYield = time.Millisecond
	// spareCheck is how often a thread that polls on after its last
	// packet (spareCPU) checks that it still gets its CPU; spareLoss is
	// the share of the time it may lose to other threads; spareBackoff is
	// how long it sleeps at once after it lost more.
	spareCheck   = 100 * time.Microsecond
	spareLoss    = 0.25
	spareBackoff = 100 * time.Millisecond
	// maxSleep bounds one sleep, so that a thread sees new queues and stop
	// requests within it.
	maxSleep = 5 * time.Millisecond
	// bufSize is the size of every frame buffer a poll thread owns; the
	// last bufSpare bytes are kept free so that actions can push tags.
	bufSize  = 4096
	bufSpare = 64
	maxFrame = bufSize - bufSpare
	// outBuffers is how many output copies a thread holds before it must
	// flush its output batches.
	outBuffers = 4 * vport.MaxBatch
)

// rxq is one rx queue that a poll thread polls.
type rxq struct {
	port *Port
	q    int
}

// pmd is one poll thread. Everything in it is owned by its goroutine,
// except what is atomic (read by the control path and the watchdog).
type pmd struct {
	id   int
	br   *Bridge
	rd   reader
	rxqs atomic.Pointer[[]rxq]
	stop atomic.Bool
	done chan struct{}

	stall    stall
	counters pmdCounters
	ctl      controlQueue // control requests, run between batches (control.go)

	// Per-batch state, allocated once.
	cache  *flow.Cache
	bufs   [][]byte
	sizes  []int
	info   []vport.RxInfo
	key    flow.Key
	off    flow.Offsets
	out    outBatches
	gsoBuf []byte // merged TCP segments (coalesce.go), allocated on first use
	poller *vport.Poller
	polled *[]rxq // the rxq list poller was built for
	spare  spareCPU

	// The packet being executed, for Output.
	tbl    *portTable
	policy Policy
	in     *Port
	pick   txPick
	copies int
	now    int64
	frame  []byte // the frame being output (Output)
}

func newPMD(br *Bridge, id int) (*pmd, error) {
	cache, err := flow.NewCache(br.table, br.cfg.EMCEntries, br.cfg.EMCInsertInvProb)
	if err != nil {
		return nil, err
	}
	p := &pmd{id: id, br: br, cache: cache, done: make(chan struct{})}
	if p.rd.waker, err = vport.NewWaker(); err != nil {
		return nil, err
	}
	p.bufs = make([][]byte, vport.MaxBatch)
	for i := range p.bufs {
		p.bufs[i] = make([]byte, maxFrame, bufSize)
	}
	p.sizes = make([]int, vport.MaxBatch)
	p.info = make([]vport.RxInfo, vport.MaxBatch)
	p.out.init()
	p.pick.w = &p.stall
	p.pick.warn = &br.zeroQueues
	p.pick.key = &p.key
	p.spare = spareCPU{window: br.SpareSpin(), cpuTime: threadCPUTime} // 0 when off: never polls on
	p.stall.budget = br.cfg.Watchdog.SpinBudget
	p.stall.overrun = func() { br.wd.overrun(p) }
	empty := []rxq{}
	p.rxqs.Store(&empty)
	return p, nil
}

// run is the poll loop.
func (p *pmd) run() {
	defer close(p.done)
	p.stall.goid.Store(goroutineID())
	p.br.rcu.register(&p.rd)
	defer p.br.rcu.unregister(&p.rd)

	if p.br.cfg.Idle == IdleAdaptive {
		// Naps need the thread's own timer slack, so the goroutine keeps
		// its thread, which ends with it (it never unlocks). A spinning
		// thread must not be locked: each Gosched would then hand the
		// thread's P over and back.
		runtime.LockOSThread()
		unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(NapTimerSlack), 0, 0, 0) //nolint:errcheck // naps are only longer without it
	}

	yield := p.br.cfg.PMDs >= runtime.GOMAXPROCS(0) // read once: it takes a lock
	lastBusy := time.Now()
	lastYield := lastBusy
	var nap time.Duration
	for !p.stop.Load() {
		p.ctl.serve(p)
		start := time.Now()
		p.rd.enter()
		n := p.poll(start)
		p.rd.leave()
		end := time.Now()
		prevBusy := lastBusy
		if n > 0 {
			p.counters.batches.Add(1)
			p.counters.busyNanos.Add(uint64(end.Sub(start)))
			lastBusy = end
		} else {
			p.counters.idleNanos.Add(uint64(end.Sub(start)))
		}
		switch p.br.cfg.Idle {
		case IdleAdaptive:
			nap = p.adapt(n, nap, start, end, prevBusy)
		case IdleSpin:
			// Yielding costs a trip through the scheduler per empty
			// poll (a quarter more CPU per packet and 10 µs more RTT
			// here); spinning threads yield only when they would
			// otherwise hold every P, and starve the control path.
			// They also yield every spinYield, so that the runtime
			// never has to preempt them: it does that with a signal
			// after 10 ms, which interrupts the thread in the middle
			// of a packet (15 µs more ping RTT here, pings being 10 ms
			// apart too).
			if (n == 0 && yield) || end.Sub(lastYield) >= spinYield {
				runtime.Gosched()
				lastYield = end
			}
		case IdleSleep:
			if n == 0 {
				p.sleep()
			}
		}
	}
}

// adapt is the adaptive idle strategy (IdleAdaptive) after a poll that
// ran from start to end and handled n packets, after a nap of nap (0 for
// none); prevBusy is when the last poll with packets before it ended. It
// naps, sleeps or returns at once, and returns the length of the next
// nap.
func (p *pmd) adapt(n int, nap time.Duration, start, end, prevBusy time.Time) time.Duration {
	act, next := adaptive(n, nap, start.Sub(prevBusy), end.Sub(prevBusy))
	switch {
	case n > 0:
		p.spare.busy()
	case act == idleSleep:
		switch p.spare.spin(end, end.Sub(prevBusy)) {
		case spinOn:
			act = idlePoll
		case spinPreempted:
			p.counters.spinsGivenUp.Add(1)
		}
	}
	switch act {
	case idleNap:
		// A nap reads no port, so it is outside any read-side section:
		// grace periods need not wait for it.
		ts := unix.NsecToTimespec(int64(next))
		unix.Nanosleep(&ts, nil) //nolint:errcheck // EINTR: a shorter nap
		p.counters.idleNanos.Add(uint64(time.Since(end)))
		return next
	case idleSleep:
		p.sleep()
	}
	return 0
}

// idleAction is what an adaptive thread does after a poll.
type idleAction uint8

const (
	idlePoll  idleAction = iota // poll again at once
	idleNap                     // nap, then poll
	idleSleep                   // sleep until a queue has traffic
)

// adaptive decides IdleAdaptive's action after a poll that handled n
// packets, after a nap of nap; gap is the time from the end of the last
// poll with packets before it to its start, sinceBusy to its end. It also
// returns the length of the nap to take.
func adaptive(n int, nap, gap, sinceBusy time.Duration) (idleAction, time.Duration) {
	switch {
	case n >= napThreshold:
		return idlePoll, 0
	case n > 0 && (nap > 0 || gap <= loadGap):
		return idleNap, min(nap+napStep, maxNap)
	case n > 0:
		// A packet after a quiet spell, such as a ping: whatever it
		// triggers (a reply) is forwarded at once.
		return idlePoll, 0
	case sinceBusy >= spinWindow:
		return idleSleep, 0
	}
	return idlePoll, 0
}

// poll polls each rx queue once and returns the number of packets handled.
func (p *pmd) poll(now time.Time) int {
	p.stall.clear()
	p.tbl = p.br.ports.Load()
	p.policy = p.br.Policy()
	p.now = now.UnixNano()
	total := 0
	for _, rq := range *p.rxqs.Load() {
		total += p.pollQueue(rq)
	}
	p.flush()
	p.cache.CreditRules()
	p.tbl = nil
	// Cleared at the end too, so that a thread held between its next
	// enter and poll is not taken for still spinning.
	p.stall.clear()
	return total
}

func (p *pmd) pollQueue(rq rxq) int {
	n, err := rq.port.vp.Receive(rq.q, p.bufs, p.sizes, p.info)
	if err != nil || n == 0 {
		return 0
	}
	p.counters.packets.Add(uint64(n))
	c := &rq.port.counters[p.id]
	bytes := 0
	for _, size := range p.sizes[:n] {
		bytes += size
	}
	c.rxPackets.Add(uint64(n))
	c.rxBytes.Add(uint64(bytes))
	if rec := p.info[0].RxQueue.Recorded(); rec != rq.port.rxRecorded.Load() {
		rq.port.rxRecorded.Store(rec)
	}
	for i := 0; i < n; i++ {
		p.process(rq.port, p.bufs[i][:p.sizes[i]], p.info[i].RxQueue)
	}
	return n
}

// process classifies one packet and runs its actions.
func (p *pmd) process(in *Port, frame []byte, rxQueue vport.RxQueue) {
	c := &in.counters[p.id]
	if flow.Extract(&p.key, &p.off, frame, in.OFPort) != flow.MalformedNone {
		p.counters.lost.Add(1)
		c.drops[DropMalformed].Add(1)
		return
	}
	mf, src := p.cache.Lookup(&p.key)
	switch src {
	case flow.SourceEMC:
		p.counters.emcHits.Add(1)
	case flow.SourceMegaflow:
		p.counters.mfHits.Add(1)
	default:
		p.counters.upcalls.Add(1)
	}
	p.cache.Account(mf, 1, uint64(len(frame)), p.now) // its rules' counters at the end of the poll

	p.in = in
	p.copies = 0
	p.pick.hashed = false
	p.pick.rxQueue = rxQueue
	_, verdict := flow.Execute(frame, &p.key, &p.off, mf.Actions, p)
	if verdict == flow.VerdictOK {
		verdict = mf.Verdict // why translation dropped the packet, if it did
	}
	switch {
	case p.copies > 1:
		c.copies.Add(uint64(p.copies - 1))
	case p.copies == 0:
		c.drops[verdictDrop(verdict)].Add(1)
	}
}

// verdictDrop maps the verdict of a packet that was output nowhere to its
// drop reason.
func verdictDrop(v flow.Verdict) DropReason {
	switch v {
	case flow.VerdictActionCap:
		return DropActionCap
	case flow.VerdictTTLExceeded:
		return DropTTLExceeded
	case flow.VerdictNoRoom:
		return DropNoRoom
	case flow.VerdictResubmitDepth:
		return DropResubmitDepth
	case flow.VerdictResubmitLimit:
		return DropResubmitLimit
	case flow.VerdictStackTooDeep:
		return DropStackTooDeep
	}
	return DropNoRule
}

// Output implements flow.Outputter: resolveOutput turns the port into
// bridge ports, and each copy goes to output.
func (p *pmd) Output(port uint32, frame []byte) {
	p.frame = frame
	resolveOutput(p.tbl, p.in, p.in.OFPort, port, p)
	p.frame = nil
}

// send, drop and normal make the poll thread resolveOutput's sink.
func (p *pmd) send(dst *Port) { p.output(dst, p.frame) }

func (p *pmd) drop(_ uint32, reason DropReason) {
	p.copies++
	p.in.counters[p.id].drops[reason].Add(1)
}

func (p *pmd) normal() uint32 { return p.br.macs.Normal(&p.key, p.now) }

// output is the single output function every packet copy goes through: it
// reads dst's device state once, applies the policy, picks the tx queue and
// queues a copy of frame on it.
func (p *pmd) output(dst *Port, frame []byte) {
	p.copies++
	st := dst.dev.Snapshot()
	if reason, ok := checkOutput(p.policy, st); !ok {
		p.dropCopy(dst, reason)
		return
	}
	p.stall.cur = dst
	q, ok := pickTxQueue(p.policy, st.TxQueues(), &p.pick)
	if !ok {
		p.dropCopy(dst, DropLockup)
		return
	}
	if h := p.br.outputHook; h != nil {
		h(p.tbl, dst, st, q)
	}
	if p.out.full() {
		p.flush()
	}
	p.out.add(dst, p.in, q, frame)
}

func (p *pmd) dropCopy(dst *Port, reason DropReason) {
	p.in.counters[p.id].drops[reason].Add(1)
	dst.counters[p.id].txDrops[reason].Add(1)
}

// flush transmits every pending output batch.
func (p *pmd) flush() {
	for i := range p.out.pending {
		b := &p.out.pending[i]
		step := b.port.vp.BatchSize()
		for start := 0; start < len(b.frames); start += step {
			end := min(start+step, len(b.frames))
			p.transmit(b.port, b.q, b.frames[start:end], b.origins[start:end])
		}
	}
	p.out.reset()
}

// transmit sends one batch on port's tx queue q and counts each frame as
// sent or dropped, on port and on the port it came from. Runs of TCP
// segments go out as GSO packets where the port can send them (see
// coalesce.go); the frames keep their order.
func (p *pmd) transmit(port *Port, q int, frames [][]byte, origins []*Port) {
	g, ok := port.vp.(vport.GSOSender)
	if !ok || p.br.cfg.DisableGRO || len(frames) < 2 {
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
			p.transmitFrames(port, q, frames[plain:i], origins[plain:i])
		}
		pkt, desc := mergeRun(p.gsoBuf, frames[i:j], s)
		if err := g.TransmitGSO(pkt, desc); err != nil {
			// Not taken: the segments go the ordinary way, which
			// counts them as sent or dropped.
			p.counters.gsoFailed.Add(1)
			p.transmitFrames(port, q, frames[i:j], origins[i:j])
		} else {
			p.counters.gsoPackets.Add(1)
			p.counters.gsoSegments.Add(uint64(j - i))
			p.countSent(port, frames[i:j], origins[i:j])
		}
		plain, i = j, j
	}
	if plain < len(frames) {
		p.transmitFrames(port, q, frames[plain:], origins[plain:])
	}
}

// countSent counts frames as sent on port and on the ports they came from.
func (p *pmd) countSent(port *Port, frames [][]byte, origins []*Port) {
	dc := &port.counters[p.id]
	for j, f := range frames {
		dc.txPackets.Add(1)
		dc.txBytes.Add(uint64(len(f)))
		origins[j].counters[p.id].sent.Add(1)
	}
}

// transmitFrames sends frames on port's tx queue q one by one (in one
// Transmit call) and counts each as sent or dropped.
func (p *pmd) transmitFrames(port *Port, q int, frames [][]byte, origins []*Port) {
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
	p.countSent(port, frames[:n], origins[:n])
	dc := &port.counters[p.id]
	for j := n; j < len(frames); j++ {
		dc.txDrops[reason].Add(1)
		origins[j].counters[p.id].drops[reason].Add(1)
	}
}

// sleep sleeps until a queue has traffic, maxSleep passes or a grace
// period wakes the thread.
func (p *pmd) sleep() {
	// Sleeping on a queue reads the port (its socket, its rings), so the
	// sleep is a read-side section like a batch: a port is closed only
	// after every thread has left it. A grace period wakes the thread
	// (reader.waker) rather than wait out the sleep, which lasts at most
	// maxSleep.
	start := time.Now()
	p.rd.enter()
	rqs := p.rxqs.Load()
	if p.polled != rqs {
		p.poller = new(vport.Poller)
		p.poller.SetWaker(p.rd.waker)
		for _, rq := range *rqs {
			if err := p.poller.Add(rq.port.vp, rq.q); err != nil {
				p.br.log.Warn("pmd: cannot sleep on queue", "pmd", p.id, "port", rq.port.Name, "queue", rq.q, "err", err)
			}
		}
		p.polled = rqs
	}
	p.rd.sleeping.Store(true)
	if _, err := p.poller.Wait(maxSleep); err != nil {
		// A queue cannot be slept on (its device is down): sleep briefly
		// without it, rather than spin.
		time.Sleep(maxSleep / 5)
	}
	p.rd.sleeping.Store(false)
	p.rd.leave()
	p.counters.idleNanos.Add(uint64(time.Since(start)))
}

// outBatches are a poll thread's pending output batches, one per (port, tx
// queue) it sent to in this batch, with copies of the frames in buffers the
// thread owns.
type outBatches struct {
	bufs    [outBuffers][]byte
	used    int
	pending []outBatch
}

type outBatch struct {
	port    *Port
	q       int
	frames  [][]byte
	origins []*Port
}

func (o *outBatches) init() {
	for i := range o.bufs {
		o.bufs[i] = make([]byte, 0, bufSize)
	}
	o.pending = make([]outBatch, 0, 16)
}

func (o *outBatches) full() bool { return o.used == len(o.bufs) }

// add queues a copy of frame for port's tx queue q.
func (o *outBatches) add(port, origin *Port, q int, frame []byte) {
	buf := append(o.bufs[o.used][:0], frame...)
	o.used++
	for i := range o.pending {
		b := &o.pending[i]
		if b.port == port && b.q == q {
			b.frames = append(b.frames, buf)
			b.origins = append(b.origins, origin)
			return
		}
	}
	if len(o.pending) < cap(o.pending) {
		// Reuse the slices of an earlier batch's entry.
		o.pending = o.pending[:len(o.pending)+1]
		b := &o.pending[len(o.pending)-1]
		b.port, b.q = port, q
		b.frames = append(b.frames[:0], buf)
		b.origins = append(b.origins[:0], origin)
		return
	}
	o.pending = append(o.pending, outBatch{port: port, q: q, frames: [][]byte{buf}, origins: []*Port{origin}})
}

func (o *outBatches) reset() {
	for i := range o.pending {
		b := &o.pending[i]
		b.port = nil
		clear(b.origins)
	}
	o.pending = o.pending[:0]
	o.used = 0
}

// spareCPU decides whether an adaptive poll thread, its queues empty, may
// keep polling rather than sleep: within window after its last packet, as
// long as it gets its CPU. While it polls, its own CPU time grows as fast
// as the clock, unless the kernel runs other threads on its CPU in its
// place: when it has lost more than a spareLoss share of the time since it
// went idle, other threads want the CPU, and it sleeps. A brief
// preemption, such as an endpoint woken on its CPU by the packet it just
// forwarded, costs it much less than that. After it gives up, it does not
// poll on after its packets again for spareBackoff: on a busy machine it
// then takes from the others hardly more than a thread that sleeps at once.
// It belongs to the poll thread, which is locked to its OS thread.
type spareCPU struct {
	window time.Duration
	// cpuTime reads the calling thread's CPU time.
	cpuTime func() (time.Duration, error)
	idle    bool          // the idle spell's start (wall0, cpu0) is read
	wall0   time.Time     // the idle spell's start
	cpu0    time.Duration // the thread's CPU time then
	next    time.Time     // when to read the CPU time again
	until   time.Time     // no polling on before it (backoff)
}

// spinVerdict is spareCPU's answer.
type spinVerdict uint8

const (
	spinOff       spinVerdict = iota // sleep: outside the window, backing off, or unknown
	spinOn                           // poll on
	spinPreempted                    // sleep: other threads took the CPU
)

// busy records that the thread handled packets: its next idle spell is
// measured afresh.
func (s *spareCPU) busy() { s.idle = false }

// spin is the verdict at now, sinceBusy after the last packet.
func (s *spareCPU) spin(now time.Time, sinceBusy time.Duration) spinVerdict {
	if sinceBusy >= s.window || now.Before(s.until) {
		return spinOff
	}
	if s.idle && now.Before(s.next) {
		return spinOn
	}
	cpu, err := s.cpuTime()
	if err != nil {
		return spinOff
	}
	s.next = now.Add(spareCheck)
	if !s.idle {
		s.idle, s.wall0, s.cpu0 = true, now, cpu
		return spinOn
	}
	wall := now.Sub(s.wall0)
	if lost := wall - (cpu - s.cpu0); float64(lost) > spareLoss*float64(wall) {
		s.until = now.Add(spareBackoff)
		return spinPreempted
	}
	return spinOn
}

// threadCPUTime is the calling thread's CPU time.
func threadCPUTime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}
