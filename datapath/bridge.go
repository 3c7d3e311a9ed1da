// Package datapath is ovsxdp's forwarding core: bridges with their ports and
// poll threads, upcalls into the flow layer, the output policies, the port
// table with its grace periods, the soft-lockup watchdog, and the stats.
package datapath

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath/conntrack"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// Errors that callers test.
var (
	ErrPortExists = errors.New("port exists")
	ErrNoPort     = errors.New("no such port")
	ErrOFPortUsed = errors.New("OpenFlow port number in use")
	ErrStopped    = errors.New("bridge stopped")
)

// MaxOFPort is the highest OpenFlow port number a port may have.
const MaxOFPort = flow.PortMax - 1

// Config configures a bridge.
type Config struct {
	Name string
	// Policy is the output policy; Guarded (the zero value) by default.
	Policy Policy
	// PMDs is the number of poll threads; 1 when zero.
	PMDs int
	// Threads, when set, is the pool of threads that runs the poll
	// threads: poll thread i runs on the pool's thread i (modulo its
	// size), in turn with the other bridges' that share it (thread.go).
	// Nil: each poll thread has a goroutine of its own.
	Threads *Threads
	// CPUs pins the bridge's own poll threads, poll thread i to CPUs[i]
	// (modulo their number), as Open vSwitch pins its PMD threads to
	// the cores of other_config:pmd-cpu-mask; none: they run on any CPU
	// the process may use. A pool's threads are pinned with
	// Threads.SetCPUs instead: New refuses both.
	CPUs []int
	// Idle is what idle poll threads do.
	Idle IdleStrategy
	// SpareSpin is how long an adaptive poll thread (IdleAdaptive) keeps
	// polling after its last packet, as long as other threads leave it its
	// CPU, before it sleeps: DefaultSpareSpin when zero; negative turns it
	// off (the thread then sleeps 50 µs after its last packet).
	SpareSpin time.Duration
	// DisableGRO turns off segment coalescing: by default, runs of
	// segments of one TCP connection, or of datagrams of one UDP flow,
	// that a poll thread outputs together to a port that can send GSO
	// packets (vport.GSOSender) go out as one GSO packet, which the kernel
	// delivers whole or cuts back into the same packets (coalesce.go).
	DisableGRO bool
	// EMCEntries and EMCInsertInvProb size each poll thread's exact-match
	// cache (flow.DefaultEMCEntries and flow.DefaultEMCInsertInvProb
	// when zero).
	EMCEntries       int
	EMCInsertInvProb uint32
	// MACTableSize and MACAging set the table behind the normal action
	// (the flow package's defaults when zero).
	MACTableSize int
	MACAging     time.Duration
	// Watchdog sets the soft-lockup watchdog.
	Watchdog WatchdogConfig
	// Links sets what the bridge does when the link under one of its
	// ports is deleted (link.go).
	Links LinkConfig
	// Conntrack is the connection tracker that ct actions run with,
	// shared by the poll threads. Nil: the bridge has none, and a packet
	// whose actions reach a ct action is dropped there, counted as
	// no-conntrack (rather than taken as tracked, +trk+inv, which flows
	// could still forward).
	Conntrack flow.Conntrack
	// Defrag reassembles the IPv4 and IPv6 fragments that meet a ct
	// action before they are tracked, as Open vSwitch's ipf does
	// (reassembly.go). Nil: fragments go to the tracker as they are,
	// which finds them invalid.
	Defrag *conntrack.Defrag
	// Tunnels, when set, serves the bridge's tunnel ports (vxlan and
	// geneve, TunnelPort) and those of the bridges that share it: their
	// paths, and the decapsulation of what this bridge sends to its
	// internal ports (tunnelport.go). Nil: the bridge takes no tunnel
	// traffic.
	Tunnels *Tunnels
	// Log receives the bridge's warnings, and the watchdog's reports when
	// Watchdog.Log is nil; slog.Default() when nil.
	Log *slog.Logger
}

// Bridge is an OpenFlow bridge: ports with OpenFlow port numbers, a rule
// table, a MAC learning table, and the poll threads that forward between
// the ports.
type Bridge struct {
	cfg    Config
	table  *flow.Table
	macs   *flow.MACTable
	rcu    *rcu
	ports  atomic.Pointer[portTable]
	policy atomic.Uint32
	pmds   []*pmd
	wd     *watchdog
	log    *slog.Logger
	// fragDomain tells the bridge's fragments from other bridges' in a
	// shared Config.Defrag (reassembly.go).
	fragDomain uint32
	// removed holds the summed counters of the ports removed so far;
	// written under mu, read without it.
	removed atomic.Pointer[RemovedStats]
	// zeroQueues is the once-only warning of a transmit to a device
	// without tx queues (warnZeroQueues).
	zeroQueues onceWarning
	// pins is the queue of packet ins for the controllers (packetin.go).
	pins packetIns
	// tunnels is Config.Tunnels; injRing the frames other bridges hand
	// this one (inject.go), nil without tunnels.
	tunnels *Tunnels
	injRing *injectRing

	// outputHook, when set, sees every copy that output is about to queue:
	// the port table the poll thread holds, the destination, the device
	// snapshot the policy decided on, and the tx queue picked. Tests set
	// it before any poll thread runs, to check what output relies on.
	outputHook func(tbl *portTable, dst *Port, st vport.DeviceState, q int)

	// mu serializes changes to the port table, the rx queue assignment
	// and the running state; it protects started, stopped and links.
	mu      sync.Mutex
	ofports ofportAlloc // OpenFlow port numbers handed out; under mu
	started bool
	stopped bool
	links   links
}

// New returns a bridge with no ports. Start starts its poll threads.
func New(cfg Config) (*Bridge, error) {
	if cfg.PMDs <= 0 {
		cfg.PMDs = 1
	}
	if len(cfg.CPUs) > 0 && cfg.Threads != nil {
		return nil, fmt.Errorf("bridge %s: CPUs pins a bridge's own poll threads, not a pool's (Threads.SetCPUs)", cfg.Name)
	}
	if err := checkCPUs(cfg.CPUs); err != nil {
		return nil, fmt.Errorf("bridge %s: CPUs: %w", cfg.Name, err)
	}
	cfg.CPUs = slices.Clone(cfg.CPUs)
	if cfg.EMCEntries == 0 {
		cfg.EMCEntries = flow.DefaultEMCEntries
	}
	if cfg.EMCInsertInvProb == 0 {
		cfg.EMCInsertInvProb = flow.DefaultEMCInsertInvProb
	}
	if cfg.Policy >= numPolicies {
		return nil, fmt.Errorf("bridge %s: %v", cfg.Name, cfg.Policy)
	}
	if err := cfg.Watchdog.validate(); err != nil {
		return nil, fmt.Errorf("bridge %s: %w", cfg.Name, err)
	}
	if err := cfg.Watchdog.canEnd(cfg.Policy); err != nil {
		return nil, fmt.Errorf("bridge %s: %w", cfg.Name, err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Watchdog.Log == nil {
		cfg.Watchdog.Log = cfg.Log
	}
	b := &Bridge{cfg: cfg, table: flow.NewTable(), macs: flow.NewMACTable(cfg.MACTableSize, cfg.MACAging), rcu: newRCU(), log: cfg.Log, fragDomain: fragDomains.Add(1)}
	b.zeroQueues.log = cfg.Log
	b.pins.init()
	if cfg.Links.Logger == nil {
		cfg.Links.Logger = cfg.Log
	}
	b.links.init(cfg.Links)
	b.policy.Store(uint32(cfg.Policy))
	b.ports.Store(newPortTable(nil))
	b.table.SetPortLiveness(b)
	for i := 0; i < cfg.PMDs; i++ {
		p, err := newPMD(b, i)
		if err != nil {
			b.closeWakers()
			return nil, fmt.Errorf("bridge %s: %w", cfg.Name, err)
		}
		b.pmds = append(b.pmds, p)
	}
	b.wd = newWatchdog(cfg.Watchdog, b.pmds, b.Policy)
	if cfg.Tunnels != nil {
		b.tunnels, b.injRing = cfg.Tunnels, newInjectRing()
		cfg.Tunnels.register(b)
	}
	return b, nil
}

// closeWakers releases the poll threads' wakers, once no thread runs.
func (b *Bridge) closeWakers() {
	for _, p := range b.pmds {
		p.rd.waker.Close()
	}
}

// Name is the bridge's name.
func (b *Bridge) Name() string { return b.cfg.Name }

// Table is the bridge's OpenFlow rule table.
func (b *Bridge) Table() *flow.Table { return b.table }

// MACs is the bridge's MAC learning table.
func (b *Bridge) MACs() *flow.MACTable { return b.macs }

// Policy is the bridge's output policy.
func (b *Bridge) Policy() Policy { return Policy(b.policy.Load()) }

// Idle is what the bridge's idle poll threads do.
func (b *Bridge) Idle() IdleStrategy { return b.cfg.Idle }

// SpareSpin is how long the bridge's adaptive poll threads keep polling
// after their last packet while their CPU is not wanted (Config.SpareSpin):
// 0 when that is off.
func (b *Bridge) SpareSpin() time.Duration {
	switch {
	case b.cfg.SpareSpin < 0:
		return 0
	case b.cfg.SpareSpin == 0:
		return DefaultSpareSpin
	}
	return b.cfg.SpareSpin
}

// GRO reports whether segment coalescing is on (Config.DisableGRO).
func (b *Bridge) GRO() bool { return !b.cfg.DisableGRO }

// SetPolicy changes the output policy; poll threads use it from their next
// batch.
func (b *Bridge) SetPolicy(p Policy) error {
	if p >= numPolicies {
		return fmt.Errorf("bridge %s: %v", b.cfg.Name, p)
	}
	if err := b.cfg.Watchdog.canEnd(p); err != nil {
		return fmt.Errorf("bridge %s: %w", b.cfg.Name, err)
	}
	b.policy.Store(uint32(p))
	return nil
}

// Start starts the poll threads and the watchdog.
func (b *Bridge) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return ErrStopped
	}
	if b.started {
		return nil
	}
	b.started = true
	for _, p := range b.pmds {
		p.thread.join(p)
	}
	b.wd.start()
	return nil
}

// Close stops following the ports' links, stops the poll threads and the
// watchdog and closes every port.
func (b *Bridge) Close() error {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return nil
	}
	b.stopped = true
	if b.tunnels != nil {
		b.tunnels.unregister(b)
	}
	mons := b.takeLinksLocked()
	b.mu.Unlock()
	// Without b.mu: the monitors wait for their deletion callbacks, and
	// the attach loops for their attempts, which take it.
	b.stopLinks(mons)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		// A thread that other bridges share goes on without these.
		for _, p := range b.pmds {
			p.stop.Store(true)
			p.thread.leave(p)
		}
		for _, p := range b.pmds {
			<-p.done
		}
		b.wd.close()
	}
	if b.cfg.Defrag != nil {
		// Its held fragments would come back to no thread.
		b.cfg.Defrag.Forget(b.fragDomain)
	}
	var errs []error
	for _, p := range b.ports.Load().list {
		b.unfollowLivenessLocked(p)
		if err := p.vp.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close port %s: %w", p.Name, err))
		}
	}
	b.ports.Store(newPortTable(nil))
	b.closeWakers()
	return errors.Join(errs...)
}

// AddPort adds vp to the bridge with OpenFlow port number ofport, or the
// next number Open vSwitch would give when ofport is 0 (ofport.go). Its rx
// queues are spread over the poll threads. Traffic on other ports goes on.
// A port on a real link (vport.Linked) has its device state follow the
// link, and is removed when the kernel deletes the link (link.go).
func (b *Bridge) AddPort(vp vport.Port, ofport uint32) (*Port, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return nil, ErrStopped
	}
	return b.addLocked(vp, ofport, nil)
}

// addLocked adds vp as AddPort does; link is how AddLinkPort added it, or
// nil. b.mu must be held.
func (b *Bridge) addLocked(vp vport.Port, ofport uint32, link *LinkPort) (*Port, error) {
	ofport, err := b.pickOFPortLocked(vp.Name(), ofport)
	if err != nil {
		return nil, err
	}
	p := &Port{Name: vp.Name(), OFPort: ofport, vp: vp, dev: vp.Device(), counters: b.newPortCounters(), link: link}
	p.rxBusy = make([]atomic.Uint64, vp.RxQueues())
	if err := b.watchLinkLocked(p); err != nil {
		return nil, err
	}
	nt := b.ports.Load().with(p)
	b.ports.Store(nt)
	b.followLivenessLocked(p)
	b.table.LivenessChanged()
	b.assignRxQueuesLocked(nt)
	// Wait until no poll thread is still in a batch that loaded the table
	// without p, so that traffic sent to p once the call returns is never
	// dropped as port-gone. A batch lasts microseconds; a thread held in a
	// soft lockup is released by the watchdog.
	ctx, cancel := context.WithTimeout(context.Background(), addGrace)
	defer cancel()
	if err := b.rcu.Synchronize(ctx); err != nil {
		b.log.Warn("port added; a poll thread has not yet seen it", "port", p.Name, "ofport", p.OFPort, "err", err)
	}
	return p, nil
}

// addGrace bounds the wait of a port's addition for the poll threads to
// see it.
const addGrace = 10 * time.Second

// RemovePort removes the port named name: it publishes a port table and rx
// queue assignment without it, waits for a grace period (every poll thread
// has finished the batch it was in), then closes the port. It returns the
// port's final counters. A detached port (AddLinkPort) is forgotten, with
// zero counters, once an open of it that was under way has closed what it
// opened: the link is free of the port's XDP program and sockets when
// RemovePort returns.
func (b *Bridge) RemovePort(ctx context.Context, name string) (PortStats, error) {
	b.mu.Lock()
	p := b.ports.Load().byName(name)
	if p == nil {
		dp := b.links.detached[name]
		if dp == nil {
			b.mu.Unlock()
			return PortStats{}, fmt.Errorf("remove port %s from %s: %w", name, b.cfg.Name, ErrNoPort)
		}
		b.forgetDetachedLocked(dp)
		b.releaseOFPortLocked(dp.ofport)
		b.mu.Unlock()
		select {
		case <-dp.done: // its attach loop closes an open that lost the race
		case <-ctx.Done():
			return PortStats{}, fmt.Errorf("remove port %s from %s: waiting for its open to finish: %w", name, b.cfg.Name, ctx.Err())
		}
		return PortStats{Name: name, OFPort: dp.ofport}, nil
	}
	defer b.mu.Unlock()
	return b.removeLocked(ctx, p)
}

// removeLocked removes p, which is in the port table, as RemovePort does,
// and stops following its link. b.mu must be held.
func (b *Bridge) removeLocked(ctx context.Context, p *Port) (PortStats, error) {
	if p.unwatch != nil {
		p.unwatch()
		p.unwatch = nil
	}
	// The removed ports whose held fragments have all left by now are
	// settled once the grace period below has passed: their releases,
	// which a poll thread counts within one batch, are complete then.
	settled := b.settledRemovedLocked()
	if err := b.detachLocked(ctx, p); err != nil {
		return PortStats{}, err
	}
	b.settleRemovedLocked(settled)
	b.releaseOFPortLocked(p.OFPort)
	b.macs.FlushPort(p.OFPort)
	// The port's own counters are read before Close: a closed AF_XDP
	// socket no longer reports the kernel's drops.
	st, dev := p.Stats(), p.vp.Stats()
	err := p.vp.Close()
	b.keepRemovedLocked(p, &st, dev)
	return st, err
}

// keepRemovedLocked adds a removed port's final counters to the bridge's
// removed row. b.mu must be held.
func (b *Bridge) keepRemovedLocked(p *Port, st *PortStats, dev vport.Stats) {
	r := b.removedLocked()
	r.add(p, st, dev)
	b.removed.Store(&r)
}

// removedLocked returns a copy of the removed row as stored: without the
// counters of the ports it reads live. b.mu must be held.
func (b *Bridge) removedLocked() RemovedStats {
	if r := b.removed.Load(); r != nil {
		c := *r
		c.holding = slices.Clone(r.holding)
		return c
	}
	return RemovedStats{Stats: PortStats{Name: RemovedPortsName}}
}

// settledRemovedLocked returns the removed ports read live whose held
// fragments have all been released. b.mu must be held.
func (b *Bridge) settledRemovedLocked() []*Port {
	var done []*Port
	for _, p := range b.removedLocked().holding {
		if p.Stats().Held == 0 {
			done = append(done, p)
		}
	}
	return done
}

// settleRemovedLocked folds the final counters of ports, which
// settledRemovedLocked returned before a grace period, into the removed
// row. b.mu must be held.
func (b *Bridge) settleRemovedLocked(ports []*Port) {
	if len(ports) == 0 {
		return
	}
	r := b.removedLocked()
	r.holding = slices.DeleteFunc(r.holding, func(p *Port) bool {
		if !slices.Contains(ports, p) {
			return false
		}
		st := p.Stats()
		r.Stats.addStats(&st)
		return true
	})
	b.removed.Store(&r)
}

// RemovedStats returns the summed counters of the ports removed from the
// bridge (RemovePort, or the deletion of an unregistering device), with
// the fates of their fragments released after they went.
func (b *Bridge) RemovedStats() RemovedStats {
	r := b.removed.Load()
	if r == nil {
		return RemovedStats{Stats: PortStats{Name: RemovedPortsName}}
	}
	c := *r
	for _, p := range r.holding {
		st := p.Stats()
		c.Stats.addStats(&st)
	}
	c.holding = nil
	return c
}

// detachLocked publishes a port table without p and waits for a grace
// period. b.mu must be held.
func (b *Bridge) detachLocked(ctx context.Context, p *Port) error {
	nt := b.ports.Load().without(p)
	b.ports.Store(nt)
	b.unfollowLivenessLocked(p)
	b.table.LivenessChanged()
	b.assignRxQueuesLocked(nt)
	if err := b.rcu.Synchronize(ctx); err != nil {
		return fmt.Errorf("remove port %s from %s: waiting for a grace period: %w", p.Name, b.cfg.Name, err)
	}
	return nil
}

// PollOnce runs one iteration of poll thread i on the calling goroutine:
// it polls each of the thread's rx queues once, forwards what it received
// and flushes the output, and returns the number of packets it handled. It
// is for a bridge that is not started (benchmarks, deterministic drivers),
// where nothing else runs the thread.
func (b *Bridge) PollOnce(i int) (int, error) {
	b.mu.Lock()
	running := b.started || b.stopped
	b.mu.Unlock()
	if running {
		return 0, fmt.Errorf("bridge %s: PollOnce on a started or closed bridge", b.cfg.Name)
	}
	if i < 0 || i >= len(b.pmds) {
		return 0, fmt.Errorf("bridge %s: no poll thread %d", b.cfg.Name, i)
	}
	n := b.pmds[i].runBatch(time.Now()) // as the thread would
	return n, nil
}

// Synchronize waits for a grace period over the bridge's poll threads.
func (b *Bridge) Synchronize(ctx context.Context) error { return b.rcu.Synchronize(ctx) }

// assignRxQueuesLocked spreads the rx queues of t's ports over the poll
// threads, round robin, and publishes each thread's list. Ports whose rx is
// detached (by an unregister's notification) get no thread. b.mu must be
// held.
func (b *Bridge) assignRxQueuesLocked(t *portTable) {
	lists := make([][]rxq, len(b.pmds))
	i := 0
	for _, p := range t.list {
		if p.rxDetached {
			continue
		}
		for q := 0; q < p.vp.RxQueues(); q++ {
			lists[i%len(lists)] = append(lists[i%len(lists)], rxq{port: p, q: q, busy: p.rxBusyOf(q)})
			i++
		}
	}
	for j, p := range b.pmds {
		l := lists[j]
		p.rxqs.Store(&l)
	}
}

// Port returns the port named name.
func (b *Bridge) Port(name string) (*Port, bool) {
	p := b.ports.Load().byName(name)
	return p, p != nil
}

// PortByOF returns the port with OpenFlow number ofport.
func (b *Bridge) PortByOF(ofport uint32) (*Port, bool) {
	p := b.ports.Load().lookup(ofport)
	return p, p != nil
}

// Ports returns the bridge's ports, by OpenFlow port number.
func (b *Bridge) Ports() []*Port {
	return append([]*Port(nil), b.ports.Load().list...)
}

// PMDStats returns each poll thread's statistics.
func (b *Bridge) PMDStats() []PMDStats {
	out := make([]PMDStats, len(b.pmds))
	for i, p := range b.pmds {
		out[i] = p.counters.load(p.id, len(*p.rxqs.Load()))
		out[i].CPU = int(p.thread.pinned.Load())
		p.idle.load(&out[i])
	}
	return out
}

// ResetMaxPollGap starts every poll thread's PMDStats.MaxPollGap afresh,
// so that it covers only what follows (a phase of a benchmark). A gap the
// thread records at the same moment may outlive the reset.
func (b *Bridge) ResetMaxPollGap() {
	for _, p := range b.pmds {
		p.idle.maxGap.Store(0)
	}
}

// Lockups returns the soft lockups the watchdog recorded (the most recent
// ones) and how many it detected in all.
func (b *Bridge) Lockups() ([]Lockup, uint64) { return b.wd.Lockups() }

// SpinningLockups returns how many of the lockups detected caught a poll
// thread spinning in output's queue loop; the others were batches that
// took longer than the threshold for another reason (a descheduled
// thread on a busy machine).
func (b *Bridge) SpinningLockups() uint64 { return b.wd.SpinningLockups() }
