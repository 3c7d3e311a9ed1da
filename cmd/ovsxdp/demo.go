package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// demoOptions are the demo's knobs; the defaults finish in well under a
// minute on two CPUs.
type demoOptions struct {
	teardowns int           // teardowns per policy and device kind
	rate      float64       // generator packets per second
	window    time.Duration // delay of the deferred port deletion (unregister step 7)
	threshold time.Duration // soft-lockup watchdog threshold
	traffic   time.Duration // traffic time before the teardowns, for the throughput figure

	// The real path (AF_XDP ports between network namespaces).
	mode   demoMode
	cycles int           // teardowns under load per policy
	queues int           // rx and tx queues of every veth
	load   time.Duration // load before each client namespace is deleted
	prefix string        // of the namespaces' names; a unique one when empty
}

// demoMode chooses between real AF_XDP ports and in-memory ports.
type demoMode uint8

const (
	demoAuto  demoMode = iota // AF_XDP when it can run here, in-memory otherwise
	demoMem                   // in-memory ports only
	demoAFXDP                 // AF_XDP ports, or an error
)

func init() { extraCommands = append(extraCommands, newDemoCmd) }

func newDemoCmd(*globals) *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Tear a port down under traffic under each output policy, and report",
		Long: `demo tears a port down under traffic under each output policy (legacy,
carrier, upstream, guarded) and reports what happened.

With root and AF_XDP it runs on real ports: a server and a client network
namespace on veth pairs whose host ends are AF_XDP ports of a bridge with L2
flows. It measures ping RTT and HTTP throughput, then deletes the client's
namespace under HTTP load and a UDP stream from the server; the kernel
unregisters the veth, and the link monitor, which applies the kernel's
unregister order to the port's device model, removes the port. It reports
the drops by reason, the soft lockups the watchdog caught (with a short
threshold), and whether a new client reaches the server afterwards. Every
namespace, veth and XDP program is removed at the end, also on an error or
a signal.

Otherwise (or with --mem) it builds a bridge of in-memory ports, sends
generator traffic through it and tears the port that receives the traffic
down with the kernel's unregister sequence, for each policy and device kind
(veth-like, dummy-like).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mem, _ := cmd.Flags().GetBool("mem")
			afxdp, _ := cmd.Flags().GetBool("afxdp")
			switch {
			case mem && afxdp:
				return errors.New("demo: --mem and --afxdp exclude each other")
			case mem:
				o.mode = demoMem
			case afxdp:
				o.mode = demoAFXDP
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.Bool("mem", false, "run on in-memory ports only")
	f.Bool("afxdp", false, "run on real AF_XDP ports, or fail")
	f.IntVar(&o.cycles, "cycles", 5, "AF_XDP: client namespaces deleted under load per policy")
	f.IntVar(&o.queues, "queues", 4, "AF_XDP: rx and tx queues of every veth")
	f.DurationVar(&o.load, "load", 300*time.Millisecond, "AF_XDP: load time before each client namespace is deleted")
	f.IntVar(&o.teardowns, "teardowns", 20, "teardowns per policy and device kind")
	f.Float64Var(&o.rate, "rate", 50000, "generator rate, packets per second (AF_XDP: of the server's UDP stream to the dying client)")
	f.DurationVar(&o.window, "window", 2*time.Millisecond, "delay before the deferred port deletion (unregister step 7; on AF_XDP ports, after the link monitor saw the deletion)")
	f.DurationVar(&o.threshold, "threshold", 100*time.Millisecond, "soft-lockup watchdog threshold (the kernel's is 20s; shorter keeps the demo short)")
	f.DurationVar(&o.traffic, "traffic", 500*time.Millisecond, "traffic time before the teardowns, for the throughput figure")
	return cmd
}

// demoResult is one row of the demo's report.
type demoResult struct {
	policy    datapath.Policy
	kind      vport.DeviceKind
	pps       float64 // packets per second reaching the steady port
	teardowns int
	lockups   demoLockups
	drops     [datapath.NumDropReasons]uint64
}

func runDemo(ctx context.Context, w io.Writer, o demoOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.mode != demoMem {
		err := runAFXDPDemo(ctx, w, o)
		if o.mode == demoAFXDP || !errors.Is(err, errNoAFXDP) {
			return err
		}
		fmt.Fprintf(w, "%s; running on in-memory ports instead.\n\n", oneLine(err.Error()))
	}
	return runMemDemo(ctx, w, o)
}

// runAFXDPDemo runs the demo on AF_XDP ports and writes its report. A
// signal (SIGINT, SIGTERM) stops it; what it created is removed either way.
func runAFXDPDemo(ctx context.Context, w io.Writer, o demoOptions) error {
	if err := afxdpPreflight(); err != nil {
		return err
	}
	switch {
	case o.cycles < 1:
		return fmt.Errorf("demo: --cycles %d: want at least 1", o.cycles)
	case o.queues < 1:
		return fmt.Errorf("demo: --queues %d: want at least 1", o.queues)
	case o.load <= 0 || o.traffic <= 0:
		return fmt.Errorf("demo: --load %s, --traffic %s: want positive durations", o.load, o.traffic)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.prefix == "" {
		o.prefix = "ovsxdp-demo-" + topo.Suffix()
	}
	fmt.Fprintf(w, "ovsxdp demo: AF_XDP ports on veths with %d queues, namespaces %s-*; per policy, %d client\n", o.queues, o.prefix, o.cycles)
	fmt.Fprintf(w, "namespaces deleted under HTTP load and a %.0f datagrams/s stream; watchdog threshold %s.\n\n", o.rate, o.threshold)
	start := time.Now()
	results, err := afxdpResults(ctx, o)
	left, lerr := afxdpLeftovers(o.prefix)
	if err != nil {
		if ctx.Err() != nil && lerr == nil && len(left) == 0 {
			return fmt.Errorf("demo interrupted, everything it created was removed: %w", err)
		}
		return errors.Join(err, lerr)
	}
	writeAFXDPReport(w, results)
	switch {
	case lerr != nil:
		return lerr
	case len(left) > 0:
		return fmt.Errorf("demo: namespaces left behind: %s", strings.Join(left, " "))
	}
	fmt.Fprintf(w, "\nremoved: every namespace, veth and XDP program of the demo; took %s.\n", time.Since(start).Round(100*time.Millisecond))
	fmt.Fprint(w, `
Every deletion goes through the kernel: the veth is unregistered, the link
monitor applies the unregister order to the port's device model (its tx
queues go to 0 while the port is still in the port table) and then, after
--window (the kernel datapath defers a vport's deletion to a work queue),
removes the port. Under legacy a packet to the port in that window spins
until the watchdog reports a lockup and releases it; guarded never spins and
counts such packets as not-registered drops. A legacy lockup on real ports
needs a packet to land in the window; the in-memory demo (--mem) shows the
same with generator traffic. Lockups in parentheses caught a poll thread
spinning in output; the others are batches that outlasted the threshold for
another reason (a descheduled thread).
`)
	return nil
}

// runMemDemo runs the demo on in-memory ports and writes its report.
func runMemDemo(ctx context.Context, w io.Writer, o demoOptions) error {
	fmt.Fprintf(w, "ovsxdp demo: in-memory ports, %.0f packets/s with recorded rx queues,\n", o.rate)
	fmt.Fprintf(w, "%d teardowns of the receiving port per row, deferred deletion after %s.\n\n", o.teardowns, o.window)
	results, err := demoResults(ctx, o)
	if err != nil {
		return err
	}
	writeDemoReport(w, results)
	return nil
}

// demoResults runs every row of the demo.
func demoResults(ctx context.Context, o demoOptions) ([]demoResult, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	// The kernel's once-only warning of a zero queue count goes to the
	// default logger; the report says the same.
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.DiscardHandler))
	var results []demoResult
	for _, pol := range []datapath.Policy{datapath.Legacy, datapath.Carrier, datapath.Upstream, datapath.Guarded} {
		for _, kind := range []vport.DeviceKind{vport.VethLike, vport.DummyLike} {
			r, err := demoRow(ctx, o, pol, kind)
			if err != nil {
				return nil, fmt.Errorf("demo %s/%s: %w", pol, kind, err)
			}
			results = append(results, r)
		}
	}
	return results, nil
}

// The demo's ports: traffic enters on client, leaves on server (always
// there) and on container (torn down and added again, as a container's
// veth when its namespace is deleted).
const (
	demoClient    = 1
	demoServer    = 2
	demoContainer = 3
)

// firstPacketWait bounds how long a row's rate measurement waits for its
// first packet.
const firstPacketWait = 10 * time.Second

func demoRow(ctx context.Context, o demoOptions, pol datapath.Policy, kind vport.DeviceKind) (demoResult, error) {
	res := demoResult{policy: pol, kind: kind}
	// The lockups are expected here and summarized in the report, so their
	// log lines are not printed.
	quiet := slog.New(slog.DiscardHandler)
	b, err := datapath.New(datapath.Config{Name: "demo", Policy: pol, Watchdog: datapath.WatchdogConfig{Threshold: o.threshold, Log: quiet}})
	if err != nil {
		return res, err
	}
	defer b.Close()
	client, err := vport.NewMemPort(vport.MemConfig{Name: "client", RxQueues: 4, RecordRxQueue: true})
	if err != nil {
		return res, err
	}
	server, err := vport.NewMemPort(vport.MemConfig{Name: "server"})
	if err != nil {
		client.Close()
		return res, err
	}
	for _, p := range []struct {
		port   vport.Port
		ofport uint32
	}{{client, demoClient}, {server, demoServer}} {
		if _, err := b.AddPort(p.port, p.ofport); err != nil {
			p.port.Close()
			return res, err
		}
	}
	f, err := flow.ParseFlow(fmt.Sprintf("in_port=%d,actions=output:%d,output:%d", demoClient, demoServer, demoContainer), flow.CmdAdd)
	if err != nil {
		return res, err
	}
	b.Table().Add(f)
	if err := b.Start(); err != nil {
		return res, err
	}

	gen, err := vport.NewGenerator(client, vport.GenConfig{Seed: 1, Flows: 64, Rate: o.rate})
	if err != nil {
		return res, err
	}
	sink, err := vport.NewSink(server, vport.SinkConfig{Flows: 64})
	if err != nil {
		return res, err
	}
	if err := sink.Start(); err != nil {
		return res, err
	}
	defer sink.Stop()
	if err := gen.Start(); err != nil {
		return res, err
	}
	defer gen.Stop()

	addContainer := func() error {
		p, err := vport.NewMemPort(vport.MemConfig{Name: "container", Kind: kind, RxQueues: 2, TxQueues: 2, RingSize: 256})
		if err != nil {
			return err
		}
		if _, err := b.AddPort(p, demoContainer); err != nil {
			p.Close()
			return err
		}
		return nil
	}
	if err := addContainer(); err != nil {
		return res, err
	}
	before := sink.Stats().Packets
	start := time.Now()
	// The rate is measured over o.traffic, or longer until the first packet
	// arrives (at most firstPacketWait): on a busy machine the generator
	// or the poll thread may not run at all for a while.
	deadline := start.Add(firstPacketWait)
	for wait := o.traffic; ; wait = 10 * time.Millisecond {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return res, ctx.Err()
		}
		if sink.Stats().Packets > before || time.Now().After(deadline) {
			break
		}
	}
	res.pps = float64(sink.Stats().Packets-before) / time.Since(start).Seconds()

	var cfg datapath.UnregisterConfig
	cfg.Delays[datapath.StepDelete] = o.window
	clientPort, _ := b.Port("client")
	dropsBefore := clientPort.Stats().Drops
	for i := 0; i < o.teardowns; i++ {
		if i > 0 {
			if err := addContainer(); err != nil {
				return res, err
			}
			time.Sleep(2 * time.Millisecond) // let traffic reach it
		}
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := b.Unregister(tctx, "container", cfg)
		cancel()
		if err != nil {
			return res, fmt.Errorf("teardown %d: %w", i, err)
		}
		res.teardowns++
	}
	res.lockups = lockupSummary(b)
	dropsAfter := clientPort.Stats().Drops
	for i := range res.drops {
		res.drops[i] = dropsAfter[i] - dropsBefore[i]
	}
	return res, nil
}

func writeDemoReport(w io.Writer, results []demoResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "policy\tdevice\tpkt/s to server\tteardowns\tlockups (spinning)\tdrops by reason (packets from client)")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%d\t%s\t%s\n", r.policy, r.kind, r.pps, r.teardowns, r.lockups, dropSummary(r.drops))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, r := range results {
		if r.lockups.example != "" {
			fmt.Fprintf(w, "%s/%s: %s\n", r.policy, r.kind, r.lockups.example)
		}
	}
	fmt.Fprint(w, `
legacy spins whenever a packet meets the port in the window between its tx
queues going to 0 and its deferred deletion; carrier (the 2023 fix) still
spins on dummy-like devices, which keep carrier while unregistering; upstream
(both fixes) holds here because the model applies the kernel's order;
guarded never spins, whatever the order, by construction. In parentheses:
the lockups that caught a poll thread spinning in output.
`)
}

// demoLockups summarizes the soft lockups of a bridge.
type demoLockups struct {
	total    uint64 // detected by the watchdog
	spinning uint64 // of the recorded ones, those that caught a poll thread spinning in output
	example  string // the first spinning one, else the first one
}

// lockupSummary reads b's lockups. A lockup that did not catch its poll
// thread spinning in output is a batch that took longer than the threshold
// for another reason, such as a thread descheduled on a busy machine.
func lockupSummary(b *datapath.Bridge) demoLockups {
	records, n := b.Lockups()
	l := demoLockups{total: n}
	for _, r := range records {
		if !r.Spinning {
			continue
		}
		if l.spinning == 0 {
			l.example = r.String()
		}
		l.spinning++
	}
	if l.example == "" && len(records) > 0 {
		l.example = records[0].String()
	}
	return l
}

// String formats the lockups as "TOTAL (SPINNING)", or "0".
func (l demoLockups) String() string {
	if l.total == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%d)", l.total, l.spinning)
}

// dropSummary renders the non-zero drop counts as "reason=n ...", or "-".
func dropSummary(d [datapath.NumDropReasons]uint64) string {
	return datapath.FormatDrops(&d, " ", "-")
}
