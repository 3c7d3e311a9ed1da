package datapath

import (
	"sync/atomic"
	"time"

	"github.com/ovsxdp/ovsxdp/vport"
)

// portCounters are one poll thread's counters for one port. Only that thread
// writes them, publishing them once per batch (counter.go); readers sum
// them over the threads.
type portCounters struct {
	rxPackets, rxBytes counter
	txPackets, txBytes counter
	// The ingress ledger: the fate of every packet received on the port.
	// copies counts output copies beyond the first of each packet, so
	// that rx + copies = sent + drops.
	copies counter
	sent   counter // copies of packets received here that a port transmitted
	// held is a gauge: fragments received here that reassembly holds
	// (reassembly.go). The thread that holds one adds 1, the thread that
	// releases or expires it adds -1 (wrapping), so the sum over the
	// threads is the number held.
	held  counter
	drops [NumDropReasons]counter
	// The egress view: copies offered to this port and dropped by it.
	txDrops [NumDropReasons]counter
	// txQueueOver counts frames transmitted on a tx queue at or above the
	// device's tx queue count as the datapath knew it then (tx.go).
	txQueueOver counter

	list   *publishList // the thread's list of counters to publish
	listed bool         // in list
	// changed has a bit for each counter (all's index) added to since
	// the last publish.
	changed [2]uint64
}

// PortStats are a port's counters, summed over the poll threads.
//
// Two identities hold whenever the bridge is quiescent (no batch in
// flight): for packets received on the port,
//
//	RxPackets + Copies == Sent + sum(Drops) + Held
//
// (every packet, or each copy when actions output it several times, is
// either transmitted by some port, dropped for one reason, or a fragment
// that connection tracking holds until its packet is whole); and for
// copies offered to the port for output, TxPackets + sum(TxDrops) is their
// number.
type PortStats struct {
	Name               string
	OFPort             uint32
	RxPackets, RxBytes uint64
	TxPackets, TxBytes uint64
	Copies             uint64
	Sent               uint64
	Held               uint64                 // fragments received here that reassembly holds now
	Drops              [NumDropReasons]uint64 // of packets received here, by reason
	TxDrops            [NumDropReasons]uint64 // of copies sent to this port, by reason
	// TxQueueOver is how many frames went out on a tx queue at or above
	// the device's tx queue count: always 0 under Guarded; the kernel-like
	// policies send on queue 0 of a device without tx queues, as the
	// kernel's reciprocal_scale(hash, 0) does.
	TxQueueOver uint64
}

// RxDropped is the number of packets received on the port that were dropped.
func (s *PortStats) RxDropped() uint64 { return sum(s.Drops[:]) }

// TxDropped is the number of copies offered to the port that it dropped.
func (s *PortStats) TxDropped() uint64 { return sum(s.TxDrops[:]) }

// Balanced reports whether the ingress ledger balances.
func (s *PortStats) Balanced() bool {
	return s.RxPackets+s.Copies == s.Sent+s.RxDropped()+s.Held
}

func sum(v []uint64) uint64 {
	var t uint64
	for _, x := range v {
		t += x
	}
	return t
}

func (s *PortStats) add(c *portCounters) {
	s.RxPackets += c.rxPackets.Load()
	s.RxBytes += c.rxBytes.Load()
	s.TxPackets += c.txPackets.Load()
	s.TxBytes += c.txBytes.Load()
	s.Copies += c.copies.Load()
	s.Sent += c.sent.Load()
	s.Held += c.held.Load()
	s.TxQueueOver += c.txQueueOver.Load()
	for i := range c.drops {
		s.Drops[i] += c.drops[i].Load()
		s.TxDrops[i] += c.txDrops[i].Load()
	}
}

// addStats adds o's counters to s.
func (s *PortStats) addStats(o *PortStats) {
	s.RxPackets += o.RxPackets
	s.RxBytes += o.RxBytes
	s.TxPackets += o.TxPackets
	s.TxBytes += o.TxBytes
	s.Copies += o.Copies
	s.Sent += o.Sent
	s.Held += o.Held
	s.TxQueueOver += o.TxQueueOver
	for i := range o.Drops {
		s.Drops[i] += o.Drops[i]
		s.TxDrops[i] += o.TxDrops[i]
	}
}

// RemovedPortsName names the row of the ports removed from a bridge. No
// port can have it: it is not a valid interface name.
const RemovedPortsName = "(removed)"

// RemovedStats are the counters of the ports removed from a bridge, summed
// as each was removed, so that the bridge's ledger stays whole: with them,
// the ports' rows still add up to everything the bridge received. Its
// Stats balance as a port's do (Name is RemovedPortsName, OFPort 0).
type RemovedStats struct {
	Ports  int // how many ports were removed
	Stats  PortStats
	Device vport.Stats // the ports' own counters (frames they dropped themselves)
	// holding are the removed ports that still had fragments held for
	// reassembly when removed: their counters, which those fragments'
	// release goes on updating, are not in Stats but read live.
	holding []*Port
}

// add counts one more removed port, with final counters st and dev; p
// itself is kept, and its counters read live, while st has fragments
// held for reassembly.
func (r *RemovedStats) add(p *Port, st *PortStats, dev vport.Stats) {
	r.Ports++
	if st.Held != 0 {
		r.holding = append(r.holding, p)
	} else {
		r.Stats.addStats(st)
	}
	d := &r.Device
	d.RxPackets += dev.RxPackets
	d.RxBytes += dev.RxBytes
	d.RxDropped += dev.RxDropped
	d.RxRingFull += dev.RxRingFull
	d.RxNoFrame += dev.RxNoFrame
	d.TxPackets += dev.TxPackets
	d.TxBytes += dev.TxBytes
	d.TxGSO += dev.TxGSO
	d.TxDropped += dev.TxDropped
}

// pmdCounters are one poll thread's statistics, as pmd-stats-show reports
// them. Only the thread writes them.
type pmdCounters struct {
	packets   atomic.Uint64 // packets received
	emcHits   atomic.Uint64
	mfHits    atomic.Uint64
	upcalls   atomic.Uint64 // misses that went to the rule table
	lost      atomic.Uint64 // frames not classified (malformed)
	recircs   atomic.Uint64 // passes of recirculated packets (recirc.go)
	batches   atomic.Uint64 // non-empty batches
	busyNanos atomic.Uint64 // time in non-empty batches
	idleNanos atomic.Uint64 // time polling empty queues or sleeping
	// Segment coalescing (coalesce.go): GSO packets sent, the TCP
	// segments and UDP datagrams they carried, and GSO packets the port did not take
	// (their segments went out one by one).
	gsoPackets, gsoSegments, gsoFailed atomic.Uint64
	// Adaptive idle spells cut short because other threads took the CPU
	// (spareCPU).
	spinsGivenUp atomic.Uint64
	// Injected frames that another bridge's poll thread, which injected
	// them, ran in this thread's place (inject.go).
	helped atomic.Uint64
}

// PMDStats are one poll thread's statistics.
type PMDStats struct {
	ID int
	// CPU is the CPU the thread is pinned to (Config.CPUs,
	// Threads.SetCPUs), -1 when it runs on any.
	CPU         int
	RxQueues    int
	Packets     uint64
	EMCHits     uint64
	MegaflowHit uint64
	Upcalls     uint64
	Lost        uint64
	// Recircs counts the packets' later passes through the caches (a
	// ct(table=T) recirculation each), which the stage counters above
	// also count: EMCHits + MegaflowHit + Upcalls = Packets - Lost +
	// Recircs.
	Recircs    uint64
	Batches    uint64
	Busy, Idle time.Duration
	// GSOPackets counts the GSO packets that coalesced TCP segments and
	// UDP datagrams went out in, GSOSegments the packets they carried, and GSOFailed the
	// GSO packets a port did not take (their segments were sent one by
	// one instead).
	GSOPackets, GSOSegments, GSOFailed uint64
	// SpinsGivenUp counts the times an adaptive thread, polling on after
	// its last packet, went to sleep early because other threads took
	// its CPU (Config.SpareSpin).
	SpinsGivenUp uint64
	// Helped counts the injected frames (from tunnel ports) that the
	// poll thread of the bridge that injected them ran in this thread's
	// place, while this one was not in a batch. Packets counts them too.
	Helped uint64
	// Naps counts an adaptive thread's naps and NapTime the time they
	// took, wake-up included; NapsHeld the naps it did not take because
	// frames waited on a rx queue when the nap was due (HeldFrames of
	// them in all), NapsShort those it did not take because a rx ring
	// would have filled past half before it was back, or because frames
	// waited while the kernel had fewer than half of a queue's rx frames
	// (an AF_XDP fill ring below half).
	Naps, NapsHeld, HeldFrames, NapsShort uint64
	NapTime                               time.Duration
	// MaxPollGap is the longest time between the starts of two rounds of
	// polls either of which found packets (the batch, a nap or sleep, and
	// any time the kernel ran other threads in the thread's place): at the
	// rate packets came in then, what an rx queue had to hold.
	// Bridge.ResetMaxPollGap starts it afresh.
	MaxPollGap time.Duration
}

// PacketsPerBatch is the average batch size.
func (s *PMDStats) PacketsPerBatch() float64 {
	if s.Batches == 0 {
		return 0
	}
	return float64(s.Packets) / float64(s.Batches)
}

// NanosPerPacket is the busy time per packet.
func (s *PMDStats) NanosPerPacket() float64 {
	if s.Packets == 0 {
		return 0
	}
	return float64(s.Busy.Nanoseconds()) / float64(s.Packets)
}

func (c *pmdCounters) load(id, rxqs int) PMDStats {
	return PMDStats{
		ID:           id,
		RxQueues:     rxqs,
		Packets:      c.packets.Load(),
		EMCHits:      c.emcHits.Load(),
		MegaflowHit:  c.mfHits.Load(),
		Upcalls:      c.upcalls.Load(),
		Lost:         c.lost.Load(),
		Recircs:      c.recircs.Load(),
		Batches:      c.batches.Load(),
		Busy:         time.Duration(c.busyNanos.Load()),
		Idle:         time.Duration(c.idleNanos.Load()),
		GSOPackets:   c.gsoPackets.Load(),
		GSOSegments:  c.gsoSegments.Load(),
		GSOFailed:    c.gsoFailed.Load(),
		SpinsGivenUp: c.spinsGivenUp.Load(),
		Helped:       c.helped.Load(),
	}
}
