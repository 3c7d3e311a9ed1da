package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// demoOptions are the demo's knobs; the defaults finish in well under a
// minute on two CPUs.
type demoOptions struct {
	teardowns int           // teardowns per policy and device kind
	rate      float64       // generator packets per second
	window    time.Duration // delay of the deferred port deletion (unregister step 7)
	threshold time.Duration // soft-lockup watchdog threshold
	traffic   time.Duration // traffic time before the teardowns, for the throughput figure
}

func init() { extraCommands = append(extraCommands, newDemoCmd) }

func newDemoCmd(*globals) *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Tear a port down under traffic under each output policy, and report",
		Long: `demo builds a bridge of in-memory ports, sends generator traffic through
it, and tears the port that receives the traffic down under load, with the
kernel's unregister sequence, under each output policy (legacy, carrier,
upstream, guarded) and device kind (veth-like, dummy-like). It reports the
throughput to a second port, the drops by reason and the soft lockups the
watchdog detected.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.teardowns, "teardowns", 20, "teardowns per policy and device kind")
	f.Float64Var(&o.rate, "rate", 50000, "generator rate, packets per second")
	f.DurationVar(&o.window, "window", 2*time.Millisecond, "delay before the deferred port deletion (unregister step 7)")
	f.DurationVar(&o.threshold, "threshold", 100*time.Millisecond, "soft-lockup watchdog threshold (the kernel's is 20s; shorter keeps the demo short)")
	f.DurationVar(&o.traffic, "traffic", 500*time.Millisecond, "traffic time before the teardowns")
	return cmd
}

// demoResult is one row of the demo's report.
type demoResult struct {
	policy    datapath.Policy
	kind      vport.DeviceKind
	pps       float64 // packets per second reaching the steady port
	teardowns int
	lockups   uint64
	example   string // the first lockup report
	drops     [datapath.NumDropReasons]uint64
}

func runDemo(ctx context.Context, w io.Writer, o demoOptions) error {
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
	select {
	case <-time.After(o.traffic):
	case <-ctx.Done():
		return res, ctx.Err()
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
	records, n := b.Lockups()
	res.lockups = n
	if len(records) > 0 {
		res.example = records[0].String()
	}
	dropsAfter := clientPort.Stats().Drops
	for i := range res.drops {
		res.drops[i] = dropsAfter[i] - dropsBefore[i]
	}
	return res, nil
}

func writeDemoReport(w io.Writer, results []demoResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "policy\tdevice\tpkt/s to server\tteardowns\tlockups\tdrops by reason (packets from client)")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%d\t%d\t%s\n", r.policy, r.kind, r.pps, r.teardowns, r.lockups, datapath.FormatDrops(&r.drops, " ", "-"))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, r := range results {
		if r.example != "" {
			fmt.Fprintf(w, "%s/%s: %s\n", r.policy, r.kind, r.example)
		}
	}
	fmt.Fprint(w, `
legacy spins whenever a packet meets the port in the window between its tx
queues going to 0 and its deferred deletion; carrier (the 2023 fix) still
spins on dummy-like devices, which keep carrier while unregistering; upstream
(both fixes) holds here because the model applies the kernel's order;
guarded never spins, whatever the order, by construction.
`)
}

