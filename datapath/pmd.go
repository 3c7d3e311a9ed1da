package datapath

import (
	"sync"
	"sync/atomic"
	"time"

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
	busy *atomic.Uint64 // the queue's busy time (usage.go); nil: not counted
}

// pmd is a bridge's poll thread: its share of the goroutine that runs it
// (thread.go), which it has to itself unless the bridge shares a pool of
// threads with others. Everything in it is owned by that goroutine, except
// what is atomic (read by the control path and the watchdog).
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
	// sameInfo is set when every frame of the rx batch has rxInfo
	// (vport.UniformRx), and info is not written: rxQueueOf.
	sameInfo bool
	rxInfo   vport.RxInfo
	batch    keyBatch
	// rxHits are the rx queues the poll received from, for their busy
	// time (usage.go); batchHits is runBatch's copy of them, which only
	// the thread's own goroutine touches (a helper's poll, under owner,
	// starts rxHits afresh while the thread counts its batch's time).
	rxHits, batchHits []rxHit
	key               flow.Key // the packet being executed, when its actions read it from here (flow.OutputsNormal)
	// noLearn: the normal action being resolved runs after the flow wrote
	// in_port to no port of the bridge; it forwards without learning.
	noLearn bool
	off     flow.Offsets // the packet out's offsets (packetout.go)
	out     outBatches
	gsoBuf  []byte // merged TCP segments (coalesce.go), allocated on first use
	// scratch are the copies of packets that check_pkt_len branches run
	// on (CopyFrame), scratchUsed of them in use; allocated on first use.
	scratch     [][]byte
	scratchUsed int
	// thread runs the pmd's batches (thread.go); polled is the rxq list
	// its poller was built for.
	thread *thread
	polled *[]rxq

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
	held        *heldRecircs // a batch's recirculations, waiting (recirc.go)
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
		p.held = newHeldRecircs()
	}
	p.pick.w = &p.stall
	p.pick.warn = &br.zeroQueues
	p.pick.key = &p.key
	if br.cfg.Threads != nil {
		p.thread = br.cfg.Threads.thread(id)
	} else {
		p.thread = newThread()
		p.thread.cpu.Store(cpuFor(br.cfg.CPUs, id))
	}
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
// returns the packets the poll handled. now is the time the caller read
// last, taken as the poll's start unless control requests ran before it:
// a clock read costs 200 ns on a virtual machine whose clock is kvm-clock,
// as much as a few packets' lookups, and the thread reads one per batch
// already (runOne).
func (p *pmd) runBatch(now time.Time) int {
	p.owner.Lock()
	start := now
	if p.ctl.head.Load() != nil {
		p.ctl.serve(p)
		start = time.Now()
	}
	p.rd.enter()
	n := p.poll(start)
	p.rd.leave()
	p.batchHits = append(p.batchHits[:0], p.rxHits...)
	to := p.injTo
	p.injTo = injectTargets{}
	p.owner.Unlock()
	p.helpInjected(&to, start)
	return n
}

// CopyFrame implements flow.FrameCopier: a copy of frame in one of the
// thread's scratch buffers, for a check_pkt_len branch that other actions
// follow. Outputs from it are copied, never taken (the buffer is no rx
// buffer).
func (p *pmd) CopyFrame(frame []byte) []byte {
	if p.scratchUsed == len(p.scratch) {
		p.scratch = append(p.scratch, make([]byte, 0, bufSize))
	}
	b := append(p.scratch[p.scratchUsed][:0], frame...)
	p.scratchUsed++
	return b
}

// ReleaseFrame implements flow.FrameCopier: the last copy is free again.
func (p *pmd) ReleaseFrame() { p.scratchUsed-- }
