package daemon

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// formatRule writes one line of dump-flows as ovs-ofctl prints it (without
// the reply header): with stats,
//
//	cookie=0x0, duration=1.234s, table=0, n_packets=0, n_bytes=0, idle_age=1, priority=100,ip,in_port=1 actions=output:2
//
// and without (--no-stats) only a non-zero cookie, a non-zero table, the
// timeouts, the match and the actions. In OpenFlow 1.3 (d), the flags
// (reset_counts, ...) come after the timeouts, and there are no ages, as
// OpenFlow 1.3's flow stats carry them.
func formatRule(r *flow.Rule, now time.Time, stats bool) string {
	return formatRuleIn(flow.OpenFlow10, r, now, stats)
}

// formatRuleIn is formatRule with the actions spelled in dialect d (see
// flow.DumpDialect).
func formatRuleIn(d flow.Dialect, r *flow.Rule, now time.Time, stats bool) string {
	var b strings.Builder
	b.WriteByte(' ')
	if stats || r.Cookie != 0 {
		b.WriteString("cookie=0x" + strconv.FormatUint(r.Cookie, 16) + ", ")
	}
	dur := r.Duration(now)
	if stats {
		b.WriteString("duration=" + formatDuration(dur) + ", ")
	}
	if stats || r.Table != 0 {
		b.WriteString("table=" + strconv.Itoa(int(r.Table)) + ", ")
	}
	if stats {
		packets, bytes := r.Stats()
		b.WriteString("n_packets=" + strconv.FormatUint(packets, 10) + ", n_bytes=" + strconv.FormatUint(bytes, 10) + ", ")
	}
	idle, hard := r.Timeouts() // as a fin_timeout action left them
	if idle != 0 {
		b.WriteString("idle_timeout=" + strconv.Itoa(int(idle)) + ", ")
	}
	if hard != 0 {
		b.WriteString("hard_timeout=" + strconv.Itoa(int(hard)) + ", ")
	}
	if d != flow.OpenFlow10 {
		// OpenFlow 1.3's flow stats carry the flags, and no ages.
		b.WriteString(r.Flags.String())
	} else if stats {
		b.WriteString("idle_age=" + strconv.Itoa(ageSeconds(now, r.LastUsed())) + ", ")
		if hard := ageSeconds(now, r.Modified); hard != int(dur/time.Second) {
			b.WriteString("hard_age=" + strconv.Itoa(hard) + ", ")
		}
	}
	m := r.Match()
	b.WriteString(flow.FormatMatchIn(d, &m, r.Priority))
	if s := b.String(); s[len(s)-1] != ' ' {
		b.WriteByte(' ')
	}
	b.WriteString("actions=" + flow.FormatActionsIn(d, &m, r.Actions))
	return b.String()
}

// formatDuration writes a duration as ovs-ofctl does: whole seconds, then
// milliseconds when there are any ("1s", "0.012s").
func formatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	sec, ms := int64(d/time.Second), int64(d%time.Second/time.Millisecond)
	if ms == 0 {
		return strconv.FormatInt(sec, 10) + "s"
	}
	return fmt.Sprintf("%d.%03ds", sec, ms)
}

func ageSeconds(now, then time.Time) int {
	return int(max(now.Sub(then), 0) / time.Second)
}

// formatPortStats writes a port's counters as ovs-ofctl dump-ports does,
// with the errors the datapath does not have as 0, followed by ovsxdp's
// drops by reason: of packets received on the port, and of copies sent to
// it.
//
// rx drop counts the frames the port itself dropped on receive (ring full,
// device down); tx drop counts the copies the datapath or the port dropped
// on transmit. "tx on queue >= count" counts frames transmitted on a tx
// queue at or above the device's tx queue count (0 under the guarded
// policy).
func formatPortStats(s datapath.PortStats, vs vport.Stats) string {
	num := strconv.FormatUint(uint64(s.OFPort), 10)
	switch {
	case s.OFPort == flow.PortLocal:
		num = "LOCAL"
	case s.OFPort < 10:
		num = " " + num
	}
	return formatPortRow(num, s, vs)
}

// formatRemovedStats formats the bridge's row for its removed ports as
// formatPortStats formats a port ("port (removed):"), so that the rows of
// dump-ports add up to everything the bridge received.
func formatRemovedStats(r datapath.RemovedStats) string {
	return formatPortRow(datapath.RemovedPortsName, r.Stats, r.Device)
}

func formatPortRow(num string, s datapath.PortStats, vs vport.Stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  port %s: rx pkts=%d, bytes=%d, drop=%d, errs=0, frame=0, over=0, crc=0\n", num, s.RxPackets, s.RxBytes, vs.RxDropped)
	fmt.Fprintf(&b, "           tx pkts=%d, bytes=%d, drop=%d, errs=0, coll=0\n", s.TxPackets, s.TxBytes, s.TxDropped()+vs.TxDropped)
	fmt.Fprintf(&b, "           rx dropped by reason: %s\n", reasons(&s.Drops))
	fmt.Fprintf(&b, "           tx dropped by reason: %s\n", reasons(&s.TxDrops))
	fmt.Fprintf(&b, "           tx on queue >= count: %d\n", s.TxQueueOver)
	if s.Held != 0 {
		// Received fragments that ct's reassembly holds: the rest of
		// the ledger (rx = sent + drops + held).
		fmt.Fprintf(&b, "           held for reassembly: %d\n", s.Held)
	}
	return b.String()
}

// reasons writes the non-zero counters as "no-rule=3, no-carrier=1", or
// "none".
func reasons(c *[datapath.NumDropReasons]uint64) string {
	var parts []string
	for r, n := range c {
		if n != 0 {
			parts = append(parts, datapath.DropReason(r).String()+"="+strconv.FormatUint(n, 10))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// subPMD returns cur minus the baseline base (pmd-stats-clear), counter by
// counter; a counter below its baseline (which does not happen while the
// thread lives) reads as 0.
func subPMD(cur, base datapath.PMDStats) datapath.PMDStats {
	sub := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	s := cur
	s.Packets = sub(cur.Packets, base.Packets)
	s.EMCHits = sub(cur.EMCHits, base.EMCHits)
	s.MegaflowHit = sub(cur.MegaflowHit, base.MegaflowHit)
	s.Upcalls = sub(cur.Upcalls, base.Upcalls)
	s.Lost = sub(cur.Lost, base.Lost)
	s.Recircs = sub(cur.Recircs, base.Recircs)
	s.Batches = sub(cur.Batches, base.Batches)
	s.Busy = time.Duration(sub(uint64(cur.Busy), uint64(base.Busy)))
	s.Idle = time.Duration(sub(uint64(cur.Idle), uint64(base.Idle)))
	s.GSOPackets = sub(cur.GSOPackets, base.GSOPackets)
	s.GSOSegments = sub(cur.GSOSegments, base.GSOSegments)
	s.GSOFailed = sub(cur.GSOFailed, base.GSOFailed)
	s.SpinsGivenUp = sub(cur.SpinsGivenUp, base.SpinsGivenUp)
	s.Helped = sub(cur.Helped, base.Helped)
	s.Naps = sub(cur.Naps, base.Naps)
	s.NapTime = time.Duration(sub(uint64(cur.NapTime), uint64(base.NapTime)))
	s.NapsHeld = sub(cur.NapsHeld, base.NapsHeld)
	s.HeldFrames = sub(cur.HeldFrames, base.HeldFrames)
	s.NapsShort = sub(cur.NapsShort, base.NapsShort)
	return s
}

// coreID is the core_id pmd-stats-show gives a poll thread: its CPU when
// pinned, else its number.
func coreID(s datapath.PMDStats) int {
	if s.CPU >= 0 {
		return s.CPU
	}
	return s.ID
}

// formatPMDStats writes one poll thread's statistics in the layout of
// ovs-appctl dpif-netdev/pmd-stats-show, with the counters ovsxdp has.
// Open vSwitch counts CPU cycles; ovsxdp measures nanoseconds, and says so
// in the lines' names. core_id is the CPU the thread is pinned to
// (other_config:pmd-cpu-mask), else the thread's number: every bridge's
// pmd of that number runs on the daemon's thread of that number, as each
// Open vSwitch PMD thread, on its core, polls queues of every bridge.
func formatPMDStats(s datapath.PMDStats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pmd thread numa_id 0 core_id %d:\n", coreID(s))
	fmt.Fprintf(&b, "  packets received: %d\n", s.Packets)
	fmt.Fprintf(&b, "  packet recirculations: %d\n", s.Recircs)
	// A packet's passes: its own and those of its recirculations (ct with
	// table=T), which the stage counters below count too, as Open
	// vSwitch's do.
	passes := 0.0
	if s.Packets > 0 {
		passes = float64(s.Packets+s.Recircs) / float64(s.Packets)
	}
	fmt.Fprintf(&b, "  avg. datapath passes per packet: %.02f\n", passes)
	fmt.Fprintf(&b, "  emc hits: %d\n", s.EMCHits)
	fmt.Fprintf(&b, "  megaflow hits: %d\n", s.MegaflowHit)
	fmt.Fprintf(&b, "  miss with success upcall: %d\n", s.Upcalls)
	fmt.Fprintf(&b, "  miss with failed upcall: 0\n")
	fmt.Fprintf(&b, "  malformed (not classified): %d\n", s.Lost)
	fmt.Fprintf(&b, "  avg. packets per rx batch: %.02f\n", s.PacketsPerBatch())
	fmt.Fprintf(&b, "  segments sent coalesced (tcp, udp): %d (in %d gso packets, %d more refused)\n", s.GSOSegments, s.GSOPackets, s.GSOFailed)
	fmt.Fprintf(&b, "  idle spins given up to other threads: %d\n", s.SpinsGivenUp)
	fmt.Fprintf(&b, "  tunnelled packets run by the sending bridge's thread: %d\n", s.Helped)
	fmt.Fprintf(&b, "  naps: %d (%v), not taken with frames waiting: %d (%d frames), not taken for ring room: %d\n",
		s.Naps, s.NapTime.Round(time.Microsecond), s.NapsHeld, s.HeldFrames, s.NapsShort)
	total := s.Busy + s.Idle
	pct := func(d time.Duration) float64 {
		if total == 0 {
			return 0
		}
		return 100 * float64(d) / float64(total)
	}
	fmt.Fprintf(&b, "  idle ns: %d (%.02f%%)\n", s.Idle.Nanoseconds(), pct(s.Idle))
	fmt.Fprintf(&b, "  processing ns: %d (%.02f%%)\n", s.Busy.Nanoseconds(), pct(s.Busy))
	if s.Packets > 0 {
		fmt.Fprintf(&b, "  avg ns per packet: %.02f (%d/%d)\n", float64(total.Nanoseconds())/float64(s.Packets), total.Nanoseconds(), s.Packets)
		fmt.Fprintf(&b, "  avg processing ns per packet: %.02f (%d/%d)\n", s.NanosPerPacket(), s.Busy.Nanoseconds(), s.Packets)
	}
	fmt.Fprintf(&b, "  rx queues: %d\n", s.RxQueues)
	return b.String()
}

// usageSecsMax is the longest span pmd-rxq-show averages over, and its
// default: the intervals a pool keeps.
const usageSecsMax = int(datapath.UsageIntervals * datapath.UsageInterval / time.Second)

// formatRxqUsage writes the poll threads' rx queues in the layout of
// ovs-appctl dpif-netdev/pmd-rxq-show, over the last intervals usage
// intervals: each thread that core (-1: any) names and, if only names a
// bridge, that has a pmd of that bridge, with that bridge's queues alone.
// As Open vSwitch's, a queue's usage is its share of the thread's time,
// rounded, and the overhead the busy time no queue took, truncated; both
// read NOT AVAIL until an interval has ended. Every queue ovsxdp polls is
// enabled, and no thread is isolated (no queue is pinned to one).
func formatRxqUsage(us []datapath.ThreadUsage, intervals int, only string, core int) string {
	var b strings.Builder
	for _, u := range us {
		id := u.Thread
		if u.CPU >= 0 {
			id = u.CPU
		}
		if (core >= 0 && id != core) || (only != "" && !slices.Contains(u.Bridges, only)) {
			continue
		}
		if b.Len() == 0 {
			fmt.Fprintf(&b, "Displaying last %d seconds pmd usage %%\n", intervals*int(datapath.UsageInterval/time.Second))
		}
		fmt.Fprintf(&b, "pmd thread numa_id 0 core_id %d:\n  isolated : false\n", id)
		n := 0
		var queues time.Duration
		for _, r := range u.Rxqs {
			queues += r.Busy
			if only != "" && r.Bridge != only {
				continue
			}
			n++
			fmt.Fprintf(&b, "  port: %-16s  queue-id: %2d (enabled)   pmd usage: ", r.Port, r.Queue)
			if u.Total > 0 {
				fmt.Fprintf(&b, "%2.0f %%\n", 100*float64(r.Busy)/float64(u.Total))
			} else {
				b.WriteString("NOT AVAIL\n")
			}
		}
		if n == 0 {
			continue
		}
		b.WriteString("  overhead: ")
		if u.Total > 0 {
			fmt.Fprintf(&b, "%2d %%\n", 100*max(u.Busy-queues, 0)/u.Total)
		} else {
			b.WriteString("NOT AVAIL\n")
		}
	}
	return b.String()
}
