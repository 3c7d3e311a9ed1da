// Command race measures the teardown race: it tears a port down N times
// under traffic, for each output policy and device kind, with real
// concurrent poll threads and the real soft-lockup watchdog, and sweeps the
// width of the window between the device losing its tx queues (unregister
// step 5) and the port's deferred deletion (step 7).
//
// Traffic comes from a vport.Generator on an in-memory port whose frames
// carry a recorded rx queue; a rule sends every packet both to the port
// being torn down and to a second port drained by a vport.Sink. For every
// (policy, kind, window) it reports the lockups per 1000 teardowns, the
// share of teardowns with a lockup, the drops by reason and the throughput
// to the other port during the teardowns, and it writes a CSV, a plot of
// lockup probability against window width, and a Markdown summary with the
// exact command. It also measures, per policy, the cost per packet with no
// teardown.
//
// The watchdog threshold is short (-threshold, 25ms by default) so that a
// run with many lockups finishes: the kernel's is 20s or more, which only
// stretches each lockup, not the count.
package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// options are the command's flags.
type options struct {
	n         int
	windows   []time.Duration
	policies  []datapath.Policy
	kinds     []vport.DeviceKind
	rate      float64
	threshold time.Duration
	settle    time.Duration
	costTime  time.Duration
	out       string
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "race:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("race", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.n, "n", 100, "teardowns per policy, device kind and window")
	windows := fs.String("windows", "0s,10us,30us,100us,300us,1ms,3ms", "delays before the deferred deletion (step 7) to sweep, comma-separated")
	policies := fs.String("policies", "legacy,carrier,upstream,guarded", "output policies, comma-separated")
	kinds := fs.String("kinds", "veth,dummy", "device kinds of the port torn down, comma-separated")
	fs.Float64Var(&o.rate, "rate", 20000, "generator rate in packets per second during teardowns")
	fs.DurationVar(&o.threshold, "threshold", 25*time.Millisecond, "soft-lockup watchdog threshold")
	fs.DurationVar(&o.settle, "settle", 2*time.Millisecond, "traffic time between adding the port and tearing it down")
	fs.DurationVar(&o.costTime, "cost-time", 1800*time.Millisecond, "how long each policy forwards at full rate, in all, for the per-packet cost")
	fs.StringVar(&o.out, "out", "bench/results", "directory for race.csv, race.png and race.md")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.n < 1 {
		return o, fmt.Errorf("-n %d: want at least 1", o.n)
	}
	if o.rate <= 0 {
		return o, fmt.Errorf("-rate %g: want a positive rate", o.rate)
	}
	for i, s := range strings.Split(*windows, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return o, fmt.Errorf("-windows: item %d %q: want a duration of 0 or more", i+1, s)
		}
		o.windows = append(o.windows, d)
	}
	for _, s := range strings.Split(*policies, ",") {
		p, err := datapath.ParsePolicy(strings.TrimSpace(s))
		if err != nil {
			return o, fmt.Errorf("-policies: %w", err)
		}
		o.policies = append(o.policies, p)
	}
	for _, s := range strings.Split(*kinds, ",") {
		switch strings.TrimSpace(s) {
		case "veth":
			o.kinds = append(o.kinds, vport.VethLike)
		case "dummy":
			o.kinds = append(o.kinds, vport.DummyLike)
		default:
			return o, fmt.Errorf("-kinds: unknown device kind %q (want veth or dummy)", s)
		}
	}
	return o, nil
}

// cell is the result of one (policy, kind, window).
type cell struct {
	policy     datapath.Policy
	kind       vport.DeviceKind
	window     time.Duration // the delay set before step 7
	teardowns  int
	withLockup int           // teardowns during which at least one lockup happened
	lockups    uint64        // lockups in all: the watchdog found the thread spinning in the queue loop
	stalls     uint64        // watchdog reports of a thread that was not spinning (descheduled by the host)
	window50   time.Duration // measured median: end of step 5 to start of step 7
	meanTime   time.Duration // measured: a whole teardown
	sinkPPS    float64       // packets per second reaching the other port during teardowns
	drops      [datapath.NumDropReasons]uint64
	example    string // a lockup report
}

func (c *cell) lockupsPer1000() float64 { return 1000 * float64(c.lockups) / float64(c.teardowns) }
func (c *cell) probability() float64    { return float64(c.withLockup) / float64(c.teardowns) }

// rig is the bridge under test: the traffic source (port 1), the port torn
// down and added back (port 2) and the other output port (port 3).
type rig struct {
	b    *datapath.Bridge
	src  *vport.MemPort
	out  *vport.MemPort
	sink *vport.Sink
}

const (
	srcPort    = 1
	victimPort = 2
	outPort    = 3
	victimName = "victim"
)

func newRig(o options) (*rig, error) {
	b, err := datapath.New(datapath.Config{
		Name: "race",
		Watchdog: datapath.WatchdogConfig{
			Threshold: o.threshold,
			Log:       slog.New(slog.DiscardHandler), // each lockup is counted; one per cell is printed
		},
	})
	if err != nil {
		return nil, err
	}
	r := &rig{b: b}
	if r.src, err = addMemPort(b, vport.MemConfig{Name: "src", RxQueues: 2, RecordRxQueue: true}, srcPort); err != nil {
		return nil, errors.Join(err, b.Close())
	}
	if r.out, err = addMemPort(b, vport.MemConfig{Name: "out", TxQueues: 2}, outPort); err != nil {
		return nil, errors.Join(err, b.Close())
	}
	f, err := flow.ParseFlow(fmt.Sprintf("in_port=%d,actions=output:%d,output:%d", srcPort, victimPort, outPort), flow.CmdAdd)
	if err != nil {
		return nil, errors.Join(err, b.Close())
	}
	b.Table().Add(f)
	if r.sink, err = vport.NewSink(r.out, vport.SinkConfig{}); err != nil {
		return nil, errors.Join(err, b.Close())
	}
	if err := errors.Join(b.Start(), r.sink.Start()); err != nil {
		return nil, errors.Join(err, b.Close())
	}
	return r, nil
}

func (r *rig) close() error {
	r.sink.Stop()
	return r.b.Close()
}

// classify splits watchdog reports into lockups, where the thread was
// spinning in the kernel's queue loop (the report names the port, or the
// stack shows the loop), and stalls, where it was not: a poll thread that
// the host did not run for longer than the threshold looks stuck too.
func classify(records []datapath.Lockup) (spins []datapath.Lockup, stalls uint64) {
	for _, l := range records {
		if l.Port != "" || strings.Contains(l.Stack, "kernelQueueLoop") {
			spins = append(spins, l)
			continue
		}
		stalls++
	}
	return spins, stalls
}

// addMemPort adds an in-memory port to b; once added, b.Close closes it.
func addMemPort(b *datapath.Bridge, cfg vport.MemConfig, ofport uint32) (*vport.MemPort, error) {
	mp, err := vport.NewMemPort(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := b.AddPort(mp, ofport); err != nil {
		return nil, errors.Join(err, mp.Close())
	}
	return mp, nil
}

// measure runs o.n teardowns of a port of kind under policy pol with delay
// window before the deletion.
func (r *rig) measure(o options, pol datapath.Policy, kind vport.DeviceKind, window time.Duration) (cell, error) {
	c := cell{policy: pol, kind: kind, window: window}
	if err := r.b.SetPolicy(pol); err != nil {
		return c, err
	}
	srcPort, _ := r.b.Port("src")
	dropsBefore := srcPort.Stats().Drops
	var cfg datapath.UnregisterConfig
	cfg.Delays[datapath.StepDelete] = window
	var windows []time.Duration
	var busy time.Duration
	var sinkPackets uint64
	for i := 0; i < o.n; i++ {
		if _, err := addMemPort(r.b, vport.MemConfig{Name: victimName, Kind: kind, RxQueues: 2, TxQueues: 2}, victimPort); err != nil {
			return c, err
		}
		time.Sleep(o.settle)
		_, lockBefore := r.b.Lockups()
		sinkBefore := r.sink.Stats().Packets
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		td, err := r.b.Unregister(ctx, victimName, cfg)
		cancel()
		if err != nil {
			return c, fmt.Errorf("teardown %d: %w", i, err)
		}
		busy += time.Since(start)
		sinkPackets += r.sink.Stats().Packets - sinkBefore
		w, ok := td.Window()
		if !ok {
			return c, fmt.Errorf("teardown %d: no window in %v", i, td.Events)
		}
		windows = append(windows, w)
		records, lockAfter := r.b.Lockups()
		spins, stalls := classify(records[max(0, len(records)-int(lockAfter-lockBefore)):])
		if len(spins) > 0 {
			c.withLockup++
		}
		c.lockups += uint64(len(spins))
		c.stalls += stalls
		if c.example == "" && len(spins) > 0 {
			c.example = spins[0].String()
		}
		c.teardowns++
	}
	dropsAfter := srcPort.Stats().Drops
	for i := range c.drops {
		c.drops[i] = dropsAfter[i] - dropsBefore[i]
	}
	slices.Sort(windows)
	c.window50 = windows[len(windows)/2]
	c.meanTime = busy / time.Duration(c.teardowns)
	c.sinkPPS = float64(sinkPackets) / busy.Seconds()
	return c, nil
}

// cost is a policy's forwarding cost with no teardown.
type cost struct {
	policy      datapath.Policy
	nsPerPacket float64 // poll thread busy time per packet, least of the rounds
	vsLegacy    float64 // median over the rounds of this policy's cost / legacy's in the same round; 0 without legacy
	packets     uint64  // packets forwarded in all rounds
}

// costRounds is how many times each policy's cost is measured, the
// policies taking turns, so that a change in the machine's load touches all
// of them alike.
const costRounds = 9

// measureCost forwards 64-byte frames of 64 flows from one port to another
// under each policy, driving the poll thread synchronously on this goroutine
// (Bridge.PollOnce: inject a batch, poll once, drain the output), so that no
// other thread shares the measurement, and times it per packet.
func measureCost(o options) ([]cost, error) {
	b, err := datapath.New(datapath.Config{Name: "cost"})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	src, err := addMemPort(b, vport.MemConfig{Name: "src", RecordRxQueue: true}, 1)
	if err != nil {
		return nil, err
	}
	out, err := addMemPort(b, vport.MemConfig{Name: "out", TxQueues: 2}, 2)
	if err != nil {
		return nil, err
	}
	f, err := flow.ParseFlow("in_port=1,actions=output:2", flow.CmdAdd)
	if err != nil {
		return nil, err
	}
	b.Table().Add(f)
	gen, err := vport.NewGenerator(src, vport.GenConfig{Seed: 1, Flows: 64})
	if err != nil {
		return nil, err
	}
	batch := make([][]byte, vport.MaxBatch)
	for i := range batch {
		batch[i] = gen.Frame(i)
	}
	drain := make([][]byte, vport.MaxBatch)
	for i := range drain {
		drain[i] = make([]byte, out.FrameSize())
	}
	sizes := make([]int, vport.MaxBatch)
	forward := func(batches int) (time.Duration, uint64, error) {
		var pkts uint64
		start := time.Now()
		for range batches {
			src.Inject(0, batch)
			n, err := b.PollOnce(0)
			if err != nil {
				return 0, 0, err
			}
			pkts += uint64(n)
			for q := 0; q < out.TxQueues(); q++ {
				for out.Drain(q, drain, sizes) > 0 {
				}
			}
		}
		return time.Since(start), pkts, nil
	}
	if _, _, err := forward(1000); err != nil { // warm the caches
		return nil, err
	}
	batches := max(1, int(o.costTime/costRounds/(4*time.Microsecond)))
	samples := make([][]float64, len(o.policies))
	costs := make([]cost, len(o.policies))
	for range costRounds {
		for i, pol := range o.policies {
			if err := b.SetPolicy(pol); err != nil {
				return nil, err
			}
			took, pkts, err := forward(batches)
			if err != nil {
				return nil, err
			}
			if pkts == 0 {
				return nil, fmt.Errorf("policy %s: nothing forwarded", pol)
			}
			samples[i] = append(samples[i], float64(took)/float64(pkts))
			costs[i].policy = pol
			costs[i].packets += pkts
		}
	}
	legacy := slices.Index(o.policies, datapath.Legacy)
	for i := range costs {
		costs[i].nsPerPacket = slices.Min(samples[i])
		if legacy >= 0 {
			ratios := make([]float64, len(samples[i]))
			for r := range ratios {
				ratios[r] = samples[i][r] / samples[legacy][r]
			}
			slices.Sort(ratios)
			costs[i].vsLegacy = ratios[len(ratios)/2]
		}
	}
	return costs, nil
}

func run(args []string, stdout io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	began := time.Now()

	costs, err := measureCost(o)
	if err != nil {
		return fmt.Errorf("per-packet cost: %w", err)
	}
	for _, c := range costs {
		fmt.Fprintf(stdout, "cost %-8s %6.1f ns/packet (whole path, no teardown, %d packets)\n", c.policy, c.nsPerPacket, c.packets)
	}

	r, err := newRig(o)
	if err != nil {
		return err
	}
	gen, err := vport.NewGenerator(r.src, vport.GenConfig{Seed: 2, Flows: 64, Rate: o.rate})
	if err != nil {
		return errors.Join(err, r.close())
	}
	if err := gen.Start(); err != nil {
		return errors.Join(err, r.close())
	}
	var cells []cell
	for _, pol := range o.policies {
		for _, kind := range o.kinds {
			for _, w := range o.windows {
				c, err := r.measure(o, pol, kind, w)
				if err != nil {
					gen.Stop()
					return errors.Join(fmt.Errorf("%s/%s/%v: %w", pol, kind, w, err), r.close())
				}
				fmt.Fprintf(stdout, "%-8s %-5s window %7v (measured %9v): %3d/%d teardowns locked up, %6.0f lockups/1000, %d stalls, teardown %8v, %7.0f pkt/s to the other port\n",
					pol, kind, w, c.window50.Round(time.Microsecond), c.withLockup, c.teardowns, c.lockupsPer1000(), c.stalls, c.meanTime.Round(time.Microsecond), c.sinkPPS)
				if c.example != "" {
					fmt.Fprintf(stdout, "    %s\n", c.example)
				}
				cells = append(cells, c)
			}
		}
	}
	gen.Stop()
	if err := r.close(); err != nil {
		return err
	}
	elapsed := time.Since(began)

	if err := writeCSV(filepath.Join(o.out, "race.csv"), cells); err != nil {
		return err
	}
	if err := writePlot(filepath.Join(o.out, "race.png"), o, cells); err != nil {
		return err
	}
	return writeMarkdown(filepath.Join(o.out, "race.md"), args, o, cells, costs, elapsed)
}

func writeCSV(path string, cells []cell) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	head := []string{"policy", "kind", "window_set_us", "window_median_us", "teardowns", "teardowns_with_lockup",
		"lockup_probability", "lockups", "lockups_per_1000", "watchdog_stalls", "teardown_mean_us", "other_port_pps"}
	for r := range datapath.NumDropReasons {
		head = append(head, "drops_"+r.String())
	}
	w.Write(head)
	for _, c := range cells {
		row := []string{c.policy.String(), c.kind.String(), us(c.window), us(c.window50), strconv.Itoa(c.teardowns),
			strconv.Itoa(c.withLockup), ftoa(c.probability(), 3), strconv.FormatUint(c.lockups, 10), ftoa(c.lockupsPer1000(), 1),
			strconv.FormatUint(c.stalls, 10), us(c.meanTime), ftoa(c.sinkPPS, 0)}
		for _, n := range c.drops {
			row = append(row, strconv.FormatUint(n, 10))
		}
		w.Write(row)
	}
	w.Flush()
	return errors.Join(w.Error(), f.Close())
}

func us(d time.Duration) string { return ftoa(float64(d)/float64(time.Microsecond), 1) }

func ftoa(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }

// writePlot draws the lockup probability against the measured window, one
// line per policy and device kind.
func writePlot(path string, o options, cells []cell) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Teardown under traffic (%.0f pkt/s, recorded rx queue): lockups", o.rate)
	p.X.Label.Text = "window: tx queues = 0 to port deletion (µs, median)"
	p.Y.Label.Text = "share of teardowns with a soft lockup"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = -0.05, 1.05
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	// A margin on both sides keeps the glyphs at the ends off the axes.
	p.X.Min, p.X.Max = math.Inf(1), 0
	for _, c := range cells {
		x := windowMicros(c)
		p.X.Min, p.X.Max = min(p.X.Min, x/2), max(p.X.Max, x*2)
	}
	series := 0
	for _, pol := range o.policies {
		for _, kind := range o.kinds {
			var xys plotter.XYs
			for _, c := range cells {
				if c.policy == pol && c.kind == kind {
					xys = append(xys, plotter.XY{X: windowMicros(c), Y: c.probability()})
				}
			}
			slices.SortFunc(xys, func(a, b plotter.XY) int {
				switch {
				case a.X < b.X:
					return -1
				case a.X > b.X:
					return 1
				}
				return 0
			})
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return err
			}
			col := seriesColor(series)
			line.Color = col
			line.Width = vg.Points(1.5)
			if kind == vport.DummyLike {
				line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			points.Color = col
			points.Shape = seriesGlyph(series)
			points.Radius = vg.Points(3)
			p.Add(line, points)
			p.Legend.Add(fmt.Sprintf("%s / %s", pol, kind), line, points)
			series++
		}
	}
	return p.Save(9*vg.Inch, 5.5*vg.Inch, path)
}

// windowMicros is the cell's measured window in microseconds, at least
// 0.1 (the plot's axis is logarithmic).
func windowMicros(c cell) float64 {
	return max(float64(c.window50)/float64(time.Microsecond), 0.1)
}

func seriesColor(i int) color.Color {
	palette := []color.RGBA{
		{0xd6, 0x27, 0x28, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x1f, 0x77, 0xb4, 0xff}, {0x17, 0xbe, 0xcf, 0xff},
		{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0x7f, 0x7f, 0x7f, 0xff},
	}
	return palette[i%len(palette)]
}

func seriesGlyph(i int) draw.GlyphDrawer {
	glyphs := []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{},
		draw.RingGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{}, draw.PlusGlyph{}}
	return glyphs[i%len(glyphs)]
}

func writeMarkdown(path string, args []string, o options, cells []cell, costs []cost, elapsed time.Duration) error {
	var sb strings.Builder
	cmd := "go run ./bench/race"
	if len(args) > 0 {
		cmd += " " + strings.Join(args, " ")
	}
	fmt.Fprintf(&sb, "# Teardown race benchmark\n\n")
	fmt.Fprintf(&sb, "Produced by this command (`make bench-race` runs it, with the flags of RACE_ARGS):\n\n```\n%s\n```\n\n", cmd)
	fmt.Fprintf(&sb, "%s, %s/%s, %d CPUs (GOMAXPROCS %d), %s, run took %v.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), elapsed.Round(time.Second))
	fmt.Fprintf(&sb, "Setup: one bridge, one poll thread (adaptive idle) and the soft-lockup watchdog running concurrently, "+
		"watchdog threshold **%v** (the kernel's is 20s or more; a short threshold only shortens each lockup, so the run finishes). "+
		"A vport.Generator sends %.0f packets/s (64 flows, 64-byte frames, each with a recorded rx queue) into port 1; "+
		"the rule `in_port=1,actions=output:2,output:3` sends every packet to the port torn down (2) and to a port drained by a sink (3). "+
		"Each teardown adds a fresh in-memory port 2 of the given kind, lets traffic reach it for %v, then runs `Bridge.Unregister` "+
		"(the kernel's seven steps) with the given delay before step 7 (the deferred deletion); every other delay is 0. "+
		"%d teardowns per row. The window column is measured, the median over the row's teardowns: end of step 5 (tx queues = 0) to start of step 7. "+
		"It includes step 6's grace period, which waits for the poll thread to finish the batch in flight, or wakes it from its sleep in poll (a sleeping thread holds the ports it sleeps on) and waits for it to forward what arrived meanwhile: a packet that reaches the port then meets its zero tx queues. "+
		"The generator paces its packets with a timer; at this rate they arrive in bursts about a millisecond apart "+
		"(Go's timers fire at about millisecond granularity), so a window shorter than the gap between bursts catches one only some of the time, "+
		"and one of a millisecond or more nearly always does. "+
		"A lockup is a watchdog report of the poll thread spinning in the kernel's queue loop (the report names the port, or its stack shows the loop); "+
		"a report of a thread that was not spinning (on a loaded host, a thread not run for longer than the threshold) is counted as a watchdog stall instead.\n\n",
		o.threshold, o.rate, o.settle, o.n)
	sb.WriteString("![lockup probability against window width](race.png)\n\n")
	sb.WriteString("| policy | kind | delay before step 7 | window (measured median) | teardowns with lockup | lockups / 1000 teardowns | watchdog stalls | teardown (mean) | pkt/s to port 3 during teardown | drops by reason (ingress) |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cells {
		fmt.Fprintf(&sb, "| %s | %s | %v | %v | %d/%d | %.0f | %d | %v | %.0f | %s |\n", c.policy, c.kind, c.window,
			c.window50.Round(time.Microsecond), c.withLockup, c.teardowns, c.lockupsPer1000(), c.stalls, c.meanTime.Round(time.Microsecond), c.sinkPPS, datapath.FormatDrops(&c.drops, ", ", "none"))
	}
	fmt.Fprintf(&sb, "\nPer-packet cost with no teardown: 64-byte frames of 64 flows (recorded rx queue) forwarded from one in-memory port to another, "+
		"the poll thread driven synchronously on one goroutine (inject a batch of 32, poll once, drain), so that nothing else shares the measurement; "+
		"%d rounds of about %v per policy, the policies taking turns. Time per packet of the whole path (receive, extraction, classification, "+
		"output policy, transmit, drain): the least of the rounds, and the ratio to legacy's in the same round (the median over the rounds).\n\n", costRounds, o.costTime/costRounds)
	sb.WriteString("| policy | ns/packet | cost / legacy's | packets measured |\n|---|---|---|---|\n")
	for _, c := range costs {
		ratio := "-"
		if c.vsLegacy > 0 {
			ratio = ftoa(c.vsLegacy, 3)
		}
		fmt.Fprintf(&sb, "| %s | %.1f | %s | %d |\n", c.policy, c.nsPerPacket, ratio, c.packets)
	}
	sb.WriteString("\nFor the output step alone, see `go test -run '^$' -bench BenchmarkOutputPolicy ./datapath`.\n")
	sb.WriteString("\nData: [race.csv](race.csv).\n")
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}
