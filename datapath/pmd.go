package datapath

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/datapath/conntrack"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

const (
	// bufSize is the size of every frame buffer a poll thread owns; the
	// last bufSpare bytes are kept free so that actions can push tags.
	bufSize  = 4096
	bufSpare = 64
	maxFrame = bufSize - bufSpare
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
	tally    pmdTally // this poll's additions to counters
	// published lists the port counters the thread changed since it last
	// published them (counter.go).
	published *publishList
	idle      idleCounters // adaptive naps (idle.go)
	ctl       controlQueue // control requests, run between batches (control.go)

	// owner is held around each batch: by the thread itself, or by
	// another bridge's poll thread that runs this one's injected frames
	// in its place (inject.go). What follows is owned by its holder; live
	// (under owner) says that the thread runs, helper is the read-side
	// record and goroutine of a helper, and injTo the bridges the batch
	// injected frames into.
	owner  sync.Mutex
	live   bool
	helper struct {
		rd   reader
		goid atomic.Int64
	}
	injTo injectTargets

	// Per-batch state, allocated once.
	cache *flow.Cache
	bufs  [][]byte
	sizes []int
	info  []vport.RxInfo
	batch keyBatch
	key   flow.Key // the packet being executed, when its actions read it from here (flow.OutputsNormal)
	// noLearn: the normal action being resolved runs after the flow wrote
	// in_port to no port of the bridge; it forwards without learning.
	noLearn bool
	off     flow.Offsets // the packet out's offsets (packetout.go)
	out     outBatches
	gsoBuf  []byte // merged TCP segments (coalesce.go), allocated on first use
	poller  *vport.Poller
	polled  *[]rxq // the rxq list poller was built for
	spare   spareCPU

	// The packet being executed, for Output.
	tbl    *portTable
	policy Policy
	in     *Port
	pick   txPick
	copies int
	now    int64
	mono   int64 // the poll's time on the tracker's monotonic clock (recirc.go)
	// The nested passes of a recirculating packet (recirc.go), allocated
	// with the thread when the bridge tracks connections.
	recirc      *[MaxRecircDepth]recircPass
	recircDepth int
	// Fragment reassembly (reassembly.go): the expired fragments being
	// sent on, and when the thread next looks for them.
	expired  []conntrack.Expired
	fragNext int64
	frame    []byte // the frame being output (Output)
	// Tunnels: the injected batch being dispatched (inject.go) and the
	// encapsulation scratch space (tunnelpush.go).
	inj injectState
	tnl tunnelState
}

func newPMD(br *Bridge, id int) (*pmd, error) {
	cache, err := flow.NewCache(br.table, br.cfg.EMCEntries, br.cfg.EMCInsertInvProb)
	if err != nil {
		return nil, err
	}
	p := &pmd{id: id, br: br, cache: cache, done: make(chan struct{}), published: newPublishList()}
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
	if br.cfg.Conntrack != nil {
		p.recirc = newRecircPasses()
	}
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

// runBatch runs one batch as the thread's owner: the control requests
// queued for it, then a poll of its queues. Then, outside owner, so that
// a thread this one helps may help this one at the same time, it runs or
// wakes the bridges the batch injected frames into (inject.go). It
// returns the packets the poll handled and when the poll started.
func (p *pmd) runBatch() (int, time.Time) {
	p.owner.Lock()
	p.ctl.serve(p)
	start := time.Now()
	p.rd.enter()
	n := p.poll(start)
	p.rd.leave()
	to := p.injTo
	p.injTo = injectTargets{}
	p.owner.Unlock()
	p.helpInjected(&to, start)
	return n, start
}

// run is the poll loop.
func (p *pmd) run() {
	defer close(p.done)
	p.stall.goid.Store(goroutineID())
	p.br.rcu.register(&p.rd)
	p.br.rcu.register(&p.helper.rd)
	p.owner.Lock()
	p.live = true
	p.owner.Unlock()
	defer func() {
		// After this, helpers find the thread stopped and leave its
		// ports alone (the bridge closes them once the thread is done).
		p.owner.Lock()
		p.live = false
		p.owner.Unlock()
		p.br.rcu.unregister(&p.helper.rd)
		p.br.rcu.unregister(&p.rd)
	}()

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
		n, start := p.runBatch()
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
