package daemon

import (
	"context"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ofconn"
	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// The commands modelled on ovs-appctl's.
func init() {
	register(
		&verb{VerbInfo: VerbInfo{Name: "pmd-stats-show", Usage: "[BR]", Short: "Print the poll threads' statistics", Max: 1, Flags: []FlagInfo{pmdFlag}}, run: (*Daemon).pmdStatsShow},
		&verb{VerbInfo: VerbInfo{Name: "pmd-stats-clear", Usage: "[BR]", Short: "Zero what pmd-stats-show prints", Max: 1, Flags: []FlagInfo{pmdFlag}}, run: (*Daemon).pmdStatsClear},
		&verb{VerbInfo: VerbInfo{Name: "pmd-rxq-show", Usage: "[BR]", Short: "Print each poll thread's rx queues and the share of the thread's time each took",
			Max: 1, Flags: []FlagInfo{pmdFlag, {Name: "secs", Usage: "over the last SECS seconds, in intervals of 5 (rounded up; at most and by default 60)"}}}, run: (*Daemon).pmdRxqShow},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/dump-flows", Usage: "[BR]", Short: "Print the poll threads' megaflows", Max: 1}, run: (*Daemon).dpctlDumpFlows},
		&verb{VerbInfo: VerbInfo{Name: "dpif/dump-flows", Usage: "BR", Short: "Print the megaflows of a bridge's datapath, as dpctl/dump-flows prints them, without its heads", Min: 1, Max: 1,
			Flags: []FlagInfo{
				{Name: "names", Bool: true, Usage: "ports by name"},
				{Name: "no-names", Bool: true, Usage: "ports by number (the default)"},
				{Name: "m", Bool: true, Usage: "refused: ovsxdp has no verbose form (ufid and every field, masked out or not); without it the lines are Open vSwitch's"},
			}}, run: (*Daemon).dpifDumpFlows},
		&verb{VerbInfo: VerbInfo{Name: "dpif/dump-dps", Short: "Print the datapaths' names, one per bridge (ovsxdp@BR)", Max: 0}, run: (*Daemon).dpifDumpDps},
		&verb{VerbInfo: VerbInfo{Name: "revalidator/purge", Short: "Flush every bridge's megaflows and exact-match caches, as dpctl/del-flows does each bridge's", Max: 0}, run: (*Daemon).revalidatorPurge},
		&verb{VerbInfo: VerbInfo{Name: "revalidator/wait", Short: "Return once every poll thread has finished the batch it was in: from then on packets meet the rules as they are now", Max: 0}, run: (*Daemon).revalidatorWait},
		&verb{VerbInfo: VerbInfo{Name: "dpctl/del-flows", Usage: "[BR]", Short: "Flush the poll threads' megaflows and exact-match caches", Max: 1}, run: (*Daemon).dpctlDelFlows},
		&verb{VerbInfo: VerbInfo{Name: "ofproto/trace", Usage: "[BR] FLOW", Short: "Trace a packet through a bridge's flows: an OpenFlow microflow, or a datapath flow (the bridge is its datapath; it may be left out when there is one)", Min: 1, Max: 2,
			Flags: []FlagInfo{{Name: "generate", Bool: true, Usage: "have the packet's side effects: the flows its learn actions learn are installed"}}}, run: (*Daemon).trace},
		&verb{VerbInfo: VerbInfo{Name: "watchdog/show", Usage: "[BR]", Short: "Print the soft lockups the watchdog detected", Max: 1}, run: (*Daemon).watchdogShow},
		&verb{VerbInfo: VerbInfo{Name: "drop-reasons", Usage: "[BR]", Short: "Print every port's drops by reason", Max: 1}, run: (*Daemon).dropReasons},
		&verb{VerbInfo: VerbInfo{Name: "ofproto/rejections", Usage: "[BR]", Short: "Print the OpenFlow messages each bridge received and the error replies it sent, by message, error and refused item", Max: 1,
			Flags: []FlagInfo{{Name: "csv", Bool: true, Usage: "print CSV rows: bridge,kind,message,error,type,code,reason,count,distinct,example (kind: received or refused; distinct: different messages, xids aside; example: the first refused message, in hex)"}}}, run: (*Daemon).ofRejections},
		&verb{VerbInfo: VerbInfo{Name: "tnl/ports/show", Short: "Print each tunnel port's path to each remote endpoint it resolved", Max: 0}, run: (*Daemon).tnlPortsShow},
		&verb{VerbInfo: VerbInfo{Name: "version", Short: "Print the daemon's version", Max: 0}, run: (*Daemon).version},
		&verb{VerbInfo: VerbInfo{Name: "exit", Short: "Stop the daemon, as SIGTERM does", Max: 0,
			Flags: []FlagInfo{{Name: "cleanup", Bool: true, Usage: "delete the internal ports' devices too, as Open vSwitch's exit --cleanup deletes its datapaths' ports (without it they stay for the next daemon)"}}}, run: (*Daemon).exit},
	)
}

// selectLocked returns the bridge named by the optional first argument, or
// every bridge. The argument may name the bridge's datapath, as dpif/show
// does (ovsxdp@BR). d.mu must be held.
func (d *Daemon) selectLocked(c *call) ([]*bridge, error) {
	if len(c.args) == 0 {
		return d.sortedLocked(), nil
	}
	b, err := d.bridgeOrDatapathLocked(c.args[0])
	if err != nil {
		return nil, err
	}
	return []*bridge{b}, nil
}

// bridgeOrDatapathLocked is the bridge called name, or whose datapath is
// called name (ovsxdp@BR).
func (d *Daemon) bridgeOrDatapathLocked(name string) (*bridge, error) {
	if _, ok := d.bridges[name]; !ok {
		name = strings.TrimPrefix(name, "ovsxdp@")
	}
	return d.bridgeLocked(name)
}

// pmdFlag selects one poll thread, as ovs-appctl's -pmd option does.
var pmdFlag = FlagInfo{Name: "pmd", Usage: "only the poll thread of this core_id (its CPU when pinned, else its number)"}

// pmdSelected returns which poll thread's core_id --pmd names, or -1 for
// every thread.
func pmdSelected(c *call) (int, error) {
	v, ok := c.flag("pmd")
	if !ok {
		return -1, nil
	}
	core, err := strconv.Atoi(v)
	if err != nil || core < 0 {
		return 0, fmt.Errorf("%w: --pmd %q is not a core_id", ErrUsage, flow.Clipped(v))
	}
	return core, nil
}

// pmdSelectLocked returns the bridges c selects (selectLocked) and the
// poll thread's core_id -pmd names (pmdSelected).
func (d *Daemon) pmdSelectLocked(c *call) ([]*bridge, int, error) {
	bs, err := d.selectLocked(c)
	if err != nil {
		return nil, 0, err
	}
	core, err := pmdSelected(c)
	if err != nil {
		return nil, 0, err
	}
	return bs, core, nil
}

func (d *Daemon) pmdStatsShow(c *call) (string, error) {
	bs, core, err := d.pmdSelectLocked(c)
	if err != nil {
		return "", err
	}
	var s strings.Builder
	for _, b := range bs {
		fmt.Fprintf(&s, "bridge %s:\n", b.name)
		for i, st := range b.dp.PMDStats() {
			if core >= 0 && coreID(st) != core {
				continue
			}
			if i < len(b.baseline) {
				st = subPMD(st, b.baseline[i])
			}
			s.WriteString(formatPMDStats(st))
		}
	}
	return s.String(), nil
}

// pmdStatsClear records the current counters as the baseline that
// pmd-stats-show subtracts: the counters belong to the poll threads, which
// alone write them.
func (d *Daemon) pmdStatsClear(c *call) (string, error) {
	bs, core, err := d.pmdSelectLocked(c)
	if err != nil {
		return "", err
	}
	for _, b := range bs {
		cur := b.dp.PMDStats()
		if core < 0 {
			b.baseline = cur
			continue
		}
		// The other threads keep their baselines (none: zero).
		base := make([]datapath.PMDStats, len(cur))
		copy(base, b.baseline)
		for i, st := range cur {
			if coreID(st) == core {
				base[i] = st
			}
		}
		b.baseline = base
	}
	return "", nil
}

// pmdRxqShow prints ovs-appctl dpif-netdev/pmd-rxq-show: the poll threads
// (of the bridge named, or all) by core_id, each with the rx queues it
// polls and their usage over the last -secs seconds (formatRxqUsage).
func (d *Daemon) pmdRxqShow(c *call) (string, error) {
	bs, core, err := d.pmdSelectLocked(c)
	if err != nil {
		return "", err
	}
	secs := usageSecsMax
	if v, ok := c.flag("secs"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return "", fmt.Errorf("%w: --secs %q is not a number of seconds above 0", ErrUsage, flow.Clipped(v))
		}
		secs = min(n, usageSecsMax)
	}
	intervals := (time.Duration(secs)*time.Second + datapath.UsageInterval - 1) / datapath.UsageInterval
	only := ""
	if len(c.args) > 0 {
		only = bs[0].name
	}
	return formatRxqUsage(d.threads.Usage(int(intervals)), int(intervals), only, core), nil
}

// liveMegaflows returns the megaflows of each of bs, as its poll threads
// hold them, less those of an older rule table (which the next packet
// revalidates or evicts). verb names the command in errors.
func liveMegaflows(c *call, bs []*bridge, verb string) ([][]datapath.MegaflowEntry, error) {
	ctx, cancel := context.WithTimeout(c.ctx, pmdTimeout)
	defer cancel()
	live := make([][]datapath.MegaflowEntry, len(bs))
	for i, b := range bs {
		mfs, err := b.dp.Megaflows(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", verb, b.name, err)
		}
		live[i] = slices.DeleteFunc(mfs, func(e datapath.MegaflowEntry) bool { return e.Stale })
	}
	return live, nil
}

// dpctlDumpFlows lists each poll thread's megaflows in Open vSwitch's
// datapath flow syntax.
func (d *Daemon) dpctlDumpFlows(c *call) (string, error) {
	bs, err := d.selectLocked(c)
	if err != nil {
		return "", err
	}
	live, err := liveMegaflows(c, bs, "dpctl/dump-flows")
	if err != nil {
		return "", err
	}
	var s strings.Builder
	for k, b := range bs {
		mfs := live[k]
		now := time.Now()
		last := -1
		for i := range mfs {
			e := &mfs[i]
			if e.PMD != last {
				fmt.Fprintf(&s, "flow-dump from pmd thread %d of bridge %s:\n", e.PMD, b.name)
				last = e.PMD
			}
			s.WriteString(e.String(now) + "\n")
		}
	}
	return s.String(), nil
}

// dpifDumpFlows prints ovs-appctl dpif/dump-flows BR: the bridge's
// megaflows, as dpctl/dump-flows prints them, without the head of each
// poll thread's, and with --names its ports by name. As Open vSwitch's,
// it answers "no such bridge" for a bridge it does not have.
func (d *Daemon) dpifDumpFlows(c *call) (string, error) {
	if c.boolFlag("m") {
		return "", fmt.Errorf("%w: dpif/dump-flows -m: ovsxdp has no verbose form of a datapath flow; without -m the lines are Open vSwitch's", ErrUsage)
	}
	b, err := d.bridgeAsOVSLocked(c.args[0])
	if err != nil {
		return "", err
	}
	live, err := liveMegaflows(c, []*bridge{b}, "dpif/dump-flows")
	if err != nil {
		return "", err
	}
	names := c.boolFlag("names") && !c.boolFlag("no-names")
	name := func(port uint32) (string, bool) {
		p, ok := b.dp.PortByOF(port)
		if !ok {
			return "", false
		}
		return p.Name, true
	}
	now := time.Now()
	var s strings.Builder
	for i := range live[0] {
		e := &live[0][i]
		if names {
			s.WriteString(e.Named(now, name) + "\n")
		} else {
			s.WriteString(e.String(now) + "\n")
		}
	}
	return s.String(), nil
}

// dpifDumpDps prints ovs-appctl dpif/dump-dps: each bridge's datapath.
func (d *Daemon) dpifDumpDps(*call) (string, error) {
	var s strings.Builder
	for _, b := range d.sortedLocked() {
		s.WriteString(dpName(b) + "\n")
	}
	return s.String(), nil
}

func (d *Daemon) dpctlDelFlows(c *call) (string, error) {
	bs, err := d.selectLocked(c)
	if err != nil {
		return "", err
	}
	return "", flushMegaflows(c, bs, "dpctl/del-flows")
}

// flushMegaflows empties the megaflows and exact-match caches of bs's
// poll threads; verb names the command in errors.
func flushMegaflows(c *call, bs []*bridge, verb string) error {
	ctx, cancel := context.WithTimeout(c.ctx, pmdTimeout)
	defer cancel()
	for _, b := range bs {
		if err := b.dp.FlushMegaflows(ctx); err != nil {
			return fmt.Errorf("%s %s: %w", verb, b.name, err)
		}
	}
	return nil
}

// revalidatorPurge is ovs-appctl revalidator/purge: every bridge's
// megaflows go, and the next packets meet the rules afresh.
func (d *Daemon) revalidatorPurge(c *call) (string, error) {
	return "", flushMegaflows(c, d.sortedLocked(), "revalidator/purge")
}

// revalidatorWait is ovs-appctl revalidator/wait. Open vSwitch's waits for
// its revalidators to bring the datapath flows in line with the rules;
// ovsxdp's poll threads check a megaflow against the rule table's version
// on each hit, so waiting for each bridge's batches in flight to end
// (a grace period) is enough: no packet is forwarded by rules older than
// those in place when the command came.
func (d *Daemon) revalidatorWait(c *call) (string, error) {
	ctx, cancel := context.WithTimeout(c.ctx, pmdTimeout)
	defer cancel()
	for _, b := range d.sortedLocked() {
		if err := b.dp.Synchronize(ctx); err != nil {
			return "", fmt.Errorf("revalidator/wait %s: %w", b.name, err)
		}
	}
	return "", nil
}

// trace runs ofproto/trace. As Open vSwitch's, it takes the packet as an
// OpenFlow microflow through a bridge, or as a datapath flow
// ("tunnel(...),in_port(N),eth(...),..."), whose datapath may be left
// out when there is only one: each bridge is its own datapath, and its
// ports' datapath numbers are their OpenFlow numbers.
func (d *Daemon) trace(c *call) (string, error) {
	text := c.args[len(c.args)-1]
	odp := flow.IsODPFlow(text)
	var b *bridge
	if len(c.args) == 2 {
		var err error
		if b, err = d.bridgeLocked(c.args[0]); err != nil {
			return "", err
		}
	} else {
		if !odp {
			return "", fmt.Errorf("ofproto/trace: a microflow needs its bridge: ofproto/trace BR MICROFLOW")
		}
		bs := d.sortedLocked()
		if len(bs) != 1 {
			return "", fmt.Errorf("ofproto/trace: %d datapaths: name the bridge whose datapath the flow is in", len(bs))
		}
		b = bs[0]
	}
	var k flow.Key
	var err error
	if odp {
		k, err = flow.ParseODPFlow(text)
	} else {
		k, err = b.parser().ParseMicroflow(text)
	}
	if err != nil {
		return "", err
	}
	if v, ok := c.flag("generate"); ok && v == "true" {
		return b.dp.TraceGenerate(k).String(), nil
	}
	return b.dp.Trace(k).String(), nil
}

func (d *Daemon) watchdogShow(c *call) (string, error) {
	bs, err := d.selectLocked(c)
	if err != nil {
		return "", err
	}
	var s strings.Builder
	for _, b := range bs {
		lockups, total := b.dp.Lockups()
		fmt.Fprintf(&s, "bridge %s: policy %s, soft lockups detected: %d, spinning in output: %d\n", b.name, b.dp.Policy(), total, b.dp.SpinningLockups())
		if n := uint64(len(lockups)); n < total {
			fmt.Fprintf(&s, "  (the %d most recent)\n", n)
		}
		for _, l := range lockups {
			fmt.Fprintf(&s, "  %s %s\n", l.Time.UTC().Format(time.RFC3339Nano), l)
		}
	}
	return s.String(), nil
}

// dropReasons lists, for every port, the drops by reason: of packets it
// received (rx), of copies sent to it (tx), and of frames its device
// dropped before the datapath saw them (device).
func (d *Daemon) dropReasons(c *call) (string, error) {
	bs, err := d.selectLocked(c)
	if err != nil {
		return "", err
	}
	var s strings.Builder
	for _, b := range bs {
		fmt.Fprintf(&s, "bridge %s:\n", b.name)
		for _, p := range b.dp.Ports() {
			st := p.Stats()
			fmt.Fprintf(&s, "  port %s (ofport %d):\n", p.Name, p.OFPort)
			n := 0
			for _, dir := range []struct {
				name   string
				counts *[datapath.NumDropReasons]uint64
			}{{"rx", &st.Drops}, {"tx", &st.TxDrops}} {
				for r, v := range dir.counts {
					if v != 0 {
						fmt.Fprintf(&s, "    %s %-16s %d\n", dir.name, datapath.DropReason(r).String()+":", v)
						n++
					}
				}
			}
			for _, dd := range p.VPort().Stats().RxDrops() {
				if dd.Count != 0 {
					fmt.Fprintf(&s, "    device %-16s %d\n", dd.Reason+":", dd.Count)
					n++
				}
			}
			// Where the kernel ran out of fill frames, how close it came
			// and how often.
			if x, ok := p.VPort().(*vport.XSKPort); ok {
				if f := x.FillStats(); f.FoundEmpty != 0 {
					fmt.Fprintf(&s, "    device fill ring: %d of %d frames posted, fewest %d, found empty by %d polls\n", f.Posted, f.Size, f.Low, f.FoundEmpty)
					n++
				}
			}
			if n == 0 {
				s.WriteString("    no drops\n")
			}
		}
	}
	return s.String(), nil
}

// ofRejections prints, for each bridge's OpenFlow channel (management
// socket and controllers), how many messages of each type it received and
// every error reply it sent, by the message it refused, the error and the
// refused action, match field, instruction or message.
func (d *Daemon) ofRejections(c *call) (string, error) {
	bs, err := d.selectLocked(c)
	if err != nil {
		return "", err
	}
	if v, ok := c.flag("csv"); ok && v == "true" {
		var buf strings.Builder
		w := csv.NewWriter(&buf)
		w.Write([]string{"bridge", "kind", "message", "error", "type", "code", "reason", "count", "distinct", "example"})
		for _, b := range bs {
			srv := d.ofServer(b)
			if srv == nil {
				continue
			}
			recv := srv.Received()
			names := make([]string, 0, len(recv))
			for n := range recv {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				w.Write([]string{b.name, "received", n, "", "", "", "", strconv.FormatUint(recv[n], 10), "", ""})
			}
			for _, r := range srv.Rejections() {
				w.Write([]string{b.name, "refused", r.Message, r.Error, strconv.Itoa(int(r.Type)), strconv.Itoa(int(r.Code)), r.Reason,
					strconv.FormatUint(r.Count, 10), strconv.Itoa(r.Distinct), hex.EncodeToString(r.Example)})
			}
		}
		w.Flush()
		return buf.String(), w.Error()
	}
	var s strings.Builder
	for _, b := range bs {
		fmt.Fprintf(&s, "bridge %s:\n", b.name)
		srv := d.ofServer(b)
		if srv == nil {
			s.WriteString("  no OpenFlow channel\n")
			continue
		}
		s.WriteString(formatRejections(srv.Received(), srv.Rejections()))
	}
	return s.String(), nil
}

// ofServer returns the OpenFlow server of bridge b, or nil when it has
// none (the bridge is being deleted).
func (d *Daemon) ofServer(b *bridge) *ofconn.Server {
	cs := &d.channels
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if ch := cs.byName[b.name]; ch != nil && ch.b == b {
		return ch.srv
	}
	return nil
}

// formatRejections writes the received counts, then one line per
// rejection row: message, error, reason, count.
func formatRejections(recv map[string]uint64, rej []ofconn.Rejection) string {
	var s strings.Builder
	names := make([]string, 0, len(recv))
	var total uint64
	for n, v := range recv {
		names = append(names, n)
		total += v
	}
	sort.Strings(names)
	refused := map[string]uint64{}
	var totalRefused uint64
	for _, r := range rej {
		refused[r.Message] += r.Count
		totalRefused += r.Count
	}
	fmt.Fprintf(&s, "  received: %d messages, refused: %d\n", total, totalRefused)
	for _, n := range names {
		fmt.Fprintf(&s, "    %-32s received %d, refused %d\n", n, recv[n], refused[n])
	}
	if len(rej) == 0 {
		s.WriteString("  no error replies\n")
		return s.String()
	}
	fmt.Fprintf(&s, "  error replies:\n    %8s %8s  %-28s %-26s %s\n", "count", "distinct", "message", "error", "reason")
	for _, r := range rej {
		fmt.Fprintf(&s, "    %8d %8d  %-28s %-26s %s\n", r.Count, r.Distinct, r.Message, r.Error, r.Reason)
	}
	return s.String()
}

func (d *Daemon) version(*call) (string, error) {
	return "ovsxdp " + d.cfg.Version + "\n", nil
}
