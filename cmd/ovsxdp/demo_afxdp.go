package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// errNoAFXDP marks what keeps the demo off real AF_XDP ports: no root, a
// missing tool, or a kernel or privilege without AF_XDP.
var errNoAFXDP = errors.New("AF_XDP demo unavailable")

// The real demo's topology: a switch namespace holds the host ends of the
// veths (the bridge's AF_XDP ports), the server and each client live in
// namespaces of their own on the other ends.
const (
	afxdpServerIP   = "10.77.0.2"
	afxdpClientIP   = "10.77.0.10"
	afxdpServerPort = 1 // OpenFlow port numbers
	afxdpClientPort = 2
	afxdpFrames     = 512              // UMEM frames per socket
	afxdpRemoveMax  = 30 * time.Second // bound on a port's removal after its namespace is deleted (the kernel frees a namespace from a work queue, slow on a busy machine)
	afxdpReachMax   = 5 * time.Second  // bound on a new client's first ping reply
	// afxdpFirstByteMax bounds the wait for the throughput figure's first
	// byte, before its window starts.
	afxdpFirstByteMax = 10 * time.Second
)

// afxdpResult is one policy's row of the real demo's report.
type afxdpResult struct {
	policy     datapath.Policy
	rtt        time.Duration // average ping round trip, client to server
	pingLoss   int           // of afxdpPings
	mbps       float64       // HTTP goodput, server to client
	teardowns  int
	underLoad  uint64        // HTTP requests that succeeded under load, all teardowns
	streamed   uint64        // UDP datagrams the server sent to the dying clients
	removeMax  time.Duration // longest time from a deletion's notice to the port removed
	lockups    demoLockups
	drops      [datapath.NumDropReasons]uint64
	reachAfter int  // clients added after a teardown that reached the server
	up         bool // the datapath stayed up: every client added after a teardown reached the server
	xdpLeft    bool // an XDP program stayed on the server's device after the bridge closed
}

// afxdpPings is the number of pings of the RTT figure.
const afxdpPings = 20

// afxdpDemo is the topology shared by every row.
type afxdpDemo struct {
	o       demoOptions
	log     *slog.Logger
	tp      *topo.Topology
	sw, srv *topo.Namespace
	srvVeth *topo.Veth
	http    *demoHTTPServer
	clients int // clients created so far, for unique names
}

// afxdpPreflight returns an error wrapping errNoAFXDP when the real demo
// cannot run here.
func afxdpPreflight() error {
	if err := topo.Check(); err != nil {
		return fmt.Errorf("%w: %w", errNoAFXDP, err)
	}
	return nil
}

// afxdpUnavailable reports whether err says AF_XDP cannot be used here.
func afxdpUnavailable(err error) bool {
	return errors.Is(err, vport.ErrNotSupported) || errors.Is(err, os.ErrPermission)
}

// afxdpResults runs the real demo: one row per policy, everything removed
// at the end whatever happens. The namespaces are named o.prefix-ROLE.
func afxdpResults(ctx context.Context, o demoOptions) (results []afxdpResult, err error) {
	if err := afxdpPreflight(); err != nil {
		return nil, err
	}
	d := &afxdpDemo{o: o, log: slog.New(slog.DiscardHandler), tp: topo.New(o.prefix)}
	defer func() {
		if d.http != nil {
			d.http.Close()
		}
		if cerr := d.tp.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove the demo's namespaces: %w", cerr))
		}
	}()
	if err := d.setup(); err != nil {
		return nil, err
	}
	for _, pol := range []datapath.Policy{datapath.Legacy, datapath.Carrier, datapath.Upstream, datapath.Guarded} {
		r, err := d.row(ctx, pol)
		if err != nil {
			return results, fmt.Errorf("demo %s: %w", pol, err)
		}
		results = append(results, r)
	}
	return results, nil
}

// setup creates the switch and server namespaces, the server's veth and
// the HTTP server.
func (d *afxdpDemo) setup() error {
	var err error
	if d.sw, err = d.tp.AddNamespace("sw"); err != nil {
		return err
	}
	if d.srv, err = d.tp.AddNamespace("srv"); err != nil {
		return err
	}
	if d.srvVeth, err = topo.AddVeth(d.sw, "h-srv", d.srv, "p-srv", d.o.queues); err != nil {
		return err
	}
	if err := d.srv.AddAddr("p-srv", afxdpServerIP+"/24"); err != nil {
		return err
	}
	d.http, err = startDemoHTTPServer(d.srv, afxdpServerIP+":8080")
	return err
}

// afxdpRow is one policy's bridge (which follows its ports' links) and
// server port.
type afxdpRow struct {
	*afxdpDemo
	br      *datapath.Bridge
	server  *datapath.Port
	removed chan afxdpRemoval
}

// afxdpRemoval is what the bridge reports of a port it removed because
// the port's link was deleted.
type afxdpRemoval struct {
	stats datapath.PortStats
	err   error
	took  time.Duration
}

// afxdpClient is one client namespace with its bridge port.
type afxdpClient struct {
	ns   *topo.Namespace
	veth *topo.Veth
	http *demoHTTPClient
}

func (d *afxdpDemo) row(ctx context.Context, pol datapath.Policy) (res afxdpResult, err error) {
	res.policy = pol
	r := &afxdpRow{afxdpDemo: d, removed: make(chan afxdpRemoval, 4)}
	defer func() {
		if cerr := r.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		attached, xerr := d.sw.XDPAttached(d.srvVeth.Host)
		res.xdpLeft = attached
		err = errors.Join(err, xerr)
	}()
	if err := r.start(pol); err != nil {
		return res, err
	}
	srvBefore := r.server.Stats()
	for i := 0; i <= d.o.cycles; i++ {
		c, err := r.addClient()
		if err != nil {
			return res, err
		}
		if !demoReach(ctx, c.ns, afxdpServerIP, afxdpReachMax) || r.get(ctx, c) != nil {
			if i == 0 {
				return res, fmt.Errorf("client %s does not reach the server", c.ns.Name)
			}
		} else if i > 0 {
			res.reachAfter++
		}
		if i == 0 {
			if err := r.measure(ctx, c, &res); err != nil {
				return res, err
			}
		}
		if i == d.o.cycles {
			// The last client leaves without load.
			if _, err := r.remove(ctx, c, nil); err != nil {
				return res, err
			}
			break
		}
		rm, err := r.teardown(ctx, c, &res)
		if err != nil {
			return res, err
		}
		res.teardowns++
		res.removeMax = max(res.removeMax, rm.took)
		addDrops(&res.drops, rm.stats.Drops)
	}
	// The datapath stayed up when every client added after a teardown
	// reached the server through it.
	res.up = res.reachAfter == res.teardowns
	srvAfter := r.server.Stats()
	for i := range res.drops {
		res.drops[i] += srvAfter.Drops[i] - srvBefore.Drops[i]
	}
	res.lockups = lockupSummary(r.br)
	return res, nil
}

func addDrops(dst *[datapath.NumDropReasons]uint64, src [datapath.NumDropReasons]uint64) {
	for i := range dst {
		dst[i] += src[i]
	}
}

// close closes the row's bridge, which stops following its ports' links,
// with every port, which detaches their XDP programs.
func (r *afxdpRow) close() error {
	if r.br != nil {
		return r.br.Close()
	}
	return nil
}

// start creates the row's bridge, the server's port and the L2 flows. The
// bridge removes a client's port when the kernel deletes its link, after
// --window (the kernel datapath's dp_device_event leaves the vport's
// deletion to a work queue; the window stands for that latency), and
// reports it on r.removed.
func (r *afxdpRow) start(pol datapath.Policy) error {
	br, err := datapath.New(datapath.Config{Name: "demo-" + pol.String(), Policy: pol,
		Watchdog: datapath.WatchdogConfig{Threshold: r.o.threshold, Log: r.log},
		Links:    datapath.LinkConfig{RemoveDelay: r.o.window, OnEvent: r.linkEvent, Logger: r.log}})
	if err != nil {
		return err
	}
	r.br = br
	port, err := vport.OpenXSK(vport.XSKConfig{Device: r.srvVeth.Host, Netns: r.sw.Path(), Frames: afxdpFrames})
	if err != nil {
		if afxdpUnavailable(err) {
			return fmt.Errorf("%w: %w", errNoAFXDP, err)
		}
		return err
	}
	if r.server, err = br.AddPort(port, afxdpServerPort); err != nil {
		port.Close()
		return err
	}
	for _, s := range []string{
		fmt.Sprintf("in_port=%d,actions=output:%d", afxdpServerPort, afxdpClientPort),
		fmt.Sprintf("in_port=%d,actions=output:%d", afxdpClientPort, afxdpServerPort),
	} {
		f, err := flow.ParseFlow(s, flow.CmdAdd)
		if err != nil {
			return fmt.Errorf("flow %q: %w", s, err)
		}
		br.Table().Add(f)
	}
	return br.Start()
}

// linkEvent passes on the removal of a client's port.
func (r *afxdpRow) linkEvent(ev datapath.LinkEvent) {
	if ev.Kind != datapath.LinkRemoved || ev.Port == r.srvVeth.Host {
		return
	}
	select {
	case r.removed <- afxdpRemoval{stats: ev.Stats, err: ev.Err, took: ev.Took}:
	default: // nobody waits for it: the row is over
	}
}

// addClient creates a client namespace and its veth and opens the host end
// as the bridge's client port (which the bridge removes when its link is
// deleted). The server gets a permanent neighbour entry for the
// client, so that its stream needs no ARP while the client dies.
func (r *afxdpRow) addClient() (*afxdpClient, error) {
	n := r.clients
	r.clients++
	ns, err := r.tp.AddNamespace(fmt.Sprintf("cli%d", n))
	if err != nil {
		return nil, err
	}
	v, err := topo.AddVeth(r.sw, fmt.Sprintf("h-cli%d", n), ns, "p-cli", r.o.queues)
	if err != nil {
		return nil, err
	}
	if err := ns.AddAddr(v.Peer, afxdpClientIP+"/24"); err != nil {
		return nil, err
	}
	mac, err := ns.MAC(v.Peer)
	if err != nil {
		return nil, err
	}
	if err := r.srv.SetNeigh(r.srvVeth.Peer, net.ParseIP(afxdpClientIP), mac); err != nil {
		return nil, err
	}
	port, err := vport.OpenXSK(vport.XSKConfig{Device: v.Host, Netns: r.sw.Path(), Frames: afxdpFrames})
	if err != nil {
		return nil, err
	}
	if _, err := r.br.AddPort(port, afxdpClientPort); err != nil {
		port.Close()
		return nil, err
	}
	return &afxdpClient{ns: ns, veth: v, http: newDemoHTTPClient(ns)}, nil
}

// get makes one request from c to the server.
func (r *afxdpRow) get(ctx context.Context, c *afxdpClient) error {
	_, err := c.http.get(ctx, "http://"+afxdpServerIP+":8080/")
	return err
}

// measure takes the RTT and throughput figures from c.
func (r *afxdpRow) measure(ctx context.Context, c *afxdpClient, res *afxdpResult) error {
	got, rtt, err := demoPing(ctx, c.ns, afxdpServerIP, afxdpPings)
	if err != nil && got == 0 {
		return err
	}
	res.rtt, res.pingLoss = rtt, afxdpPings-got
	lctx, cancel := context.WithTimeout(ctx, r.o.traffic+afxdpFirstByteMax)
	defer cancel()
	load := runDemoLoad(lctx, c.http, "http://"+afxdpServerIP+":8080/big", 4, r.o.traffic, newLoadBytes())
	res.mbps = load.Mbps()
	return ctx.Err()
}

// teardown loads the server from c and streams to c, deletes c's namespace
// under that load (its processes' sockets close, the kernel unregisters
// the veth, the bridge removes the port) and waits for the removal.
func (r *afxdpRow) teardown(ctx context.Context, c *afxdpClient, res *afxdpResult) (afxdpRemoval, error) {
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadc := make(chan demoLoad, 1)
	answers := newLoadBytes()
	go func() { loadc <- runDemoLoad(lctx, c.http, "http://"+afxdpServerIP+":8080/", 8, 0, answers) }()
	sctx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	streamc := make(chan uint64, 1)
	go func() {
		n, _ := runDemoStream(sctx, r.srv, afxdpClientIP+":9", r.o.rate)
		streamc <- n
	}()
	// The load runs for r.o.load once the server answers (on a loaded
	// machine the first answer may take longer than that).
	select {
	case <-answers.first:
	case <-time.After(afxdpFirstByteMax):
	case <-ctx.Done():
		return afxdpRemoval{}, ctx.Err()
	}
	select {
	case <-time.After(r.o.load):
	case <-ctx.Done():
		return afxdpRemoval{}, ctx.Err()
	}
	rm, err := r.remove(ctx, c, func() {
		stopLoad()
		res.underLoad += (<-loadc).ok
	})
	if err == nil {
		r.awaitPortGoneDrop(ctx)
	}
	stopStream()
	res.streamed += <-streamc
	return rm, err
}

// awaitPortGoneDrop lets the stream meet the port's absence: it waits,
// up to afxdpFirstByteMax, for the server's port to drop one more packet
// as port-gone.
func (r *afxdpRow) awaitPortGoneDrop(ctx context.Context) {
	before := r.server.Stats().Drops[datapath.DropPortGone]
	deadline := time.Now().Add(afxdpFirstByteMax)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if r.server.Stats().Drops[datapath.DropPortGone] > before {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// remove deletes c's namespace, runs then (the client's processes ending)
// if not nil, closes c's connections so that the namespace can go, and
// waits for the bridge to remove the port.
func (r *afxdpRow) remove(ctx context.Context, c *afxdpClient, then func()) (afxdpRemoval, error) {
	if err := c.ns.Delete(); err != nil {
		return afxdpRemoval{}, err
	}
	if then != nil {
		then()
	}
	c.http.Close()
	select {
	case rm := <-r.removed:
		if rm.err != nil {
			return rm, fmt.Errorf("remove port %s: %w", c.veth.Host, rm.err)
		}
		return rm, nil
	case <-time.After(afxdpRemoveMax):
		// Say which side failed: the kernel (the link is still there:
		// something keeps the client's namespace alive) or the bridge (the
		// link is gone, but its deletion did not reach the bridge).
		link := "the link is gone: its deletion did not remove the port"
		if _, err := r.sw.Ifindex(c.veth.Host); err == nil {
			link = "the link is still there: the client's namespace has not been freed"
			switch h, err := c.ns.Holders(); {
			case err != nil:
				link += fmt.Sprintf(" (%v)", err)
			case len(h) == 0:
				link += " (no process holds it: the kernel does, as for a closed TCP connection still closing)"
			default:
				link += " (held by " + strings.Join(h, ", ") + ")"
			}
		}
		return afxdpRemoval{}, fmt.Errorf("port %s not removed %v after its namespace was deleted; %s", c.veth.Host, afxdpRemoveMax, link)
	case <-ctx.Done():
		return afxdpRemoval{}, ctx.Err()
	}
}

// afxdpLeftovers lists what the demo left behind: namespaces named with
// prefix.
func afxdpLeftovers(prefix string) ([]string, error) {
	all, err := topo.List()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(n string) bool { return !strings.HasPrefix(n, prefix+"-") }), nil
}

func writeAFXDPReport(w io.Writer, results []afxdpResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "policy\tRTT\tHTTP Mbit/s\tteardowns\tlockups (spinning)\tremoval\tnew client\tdatapath\tdrops by reason")
	for _, r := range results {
		up := "down"
		if r.up {
			up = "up"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%d\t%s\t%s\t%d/%d reached\t%s\t%s\n", r.policy, r.rtt.Round(time.Microsecond), r.mbps,
			r.teardowns, r.lockups, r.removeMax.Round(time.Millisecond), r.reachAfter, r.teardowns, up, dropSummary(r.drops))
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, r := range results {
		fmt.Fprintf(w, "%s: %d of %d pings lost; %d requests served under load, %d datagrams streamed to the dying clients",
			r.policy, r.pingLoss, afxdpPings, r.underLoad, r.streamed)
		if r.xdpLeft {
			fmt.Fprint(w, "; an XDP program stayed on h-srv")
		}
		fmt.Fprintln(w)
		if r.lockups.example != "" {
			fmt.Fprintf(w, "  %s\n", r.lockups.example)
		}
	}
}
