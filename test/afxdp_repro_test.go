package test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
	"github.com/ovsxdp/ovsxdp/vport"
)

// Settings of TestAFXDPUpstreamReproducer, from the environment.
const (
	envCycles   = "OVSXDP_REPRO_CYCLES"   // delete-under-load cycles; at least 20 under CI=true (default 20 in CI, 3 elsewhere)
	envRequests = "OVSXDP_REPRO_REQUESTS" // curl requests per cycle (default 3000)
	envParallel = "OVSXDP_REPRO_PARALLEL" // curl requests in flight (default 100)
	envLoad     = "OVSXDP_REPRO_LOAD"     // time under load before the client namespace is deleted (default 1s)
)

// minCICycles is the least number of cycles CI runs.
const minCICycles = 20

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// reproCycles is the number of cycles to run.
func reproCycles(t *testing.T) int {
	def := 3
	if testenv.InCI() {
		def = minCICycles
	}
	n := envInt(t, envCycles, def)
	if testenv.InCI() && n < minCICycles {
		t.Logf("%s=%d raised to %d under CI", envCycles, n, minCICycles)
		n = minCICycles
	}
	return n
}

// leakState is what the reproducer must not leak.
type leakState struct {
	fds, rings, goroutines int
}

func measureLeaks(t *testing.T) leakState {
	t.Helper()
	fds, err := netns.FDs()
	if err != nil {
		t.Fatal(err)
	}
	rings, err := vport.XDPRingMappings()
	if err != nil {
		t.Fatal(err)
	}
	return leakState{fds: fds, rings: rings, goroutines: runtime.NumGoroutine()}
}

// TestAFXDPUpstreamReproducer adapts the reproducer of the kernel soft
// lockup (see the design notes): a client and a server namespace on veths
// with 32 rx and 32 tx queues, an HTTP server, a burst of parallel curl
// requests from the client, and the client namespace deleted under load,
// so that the datapath outputs to a port whose device is being
// unregistered. Each cycle checks that the datapath runs on (no lockup,
// no panic), that the dead port is removed within a bounded time through
// the link monitor's deletion callback, with balanced counters, and the
// next cycle's fresh client reaches the server. At the end nothing has
// leaked: file descriptors, ring mappings, goroutines.
func TestAFXDPUpstreamReproducer(t *testing.T) {
	curl := testenv.RequireTool(t, "curl", "curl")
	testenv.RequireTool(t, "xargs", "findutils")
	cycles := reproCycles(t)
	requests := envInt(t, envRequests, 3000)
	parallel := envInt(t, envParallel, 100)
	load := time.Duration(envInt(t, envLoad, 1000)) * time.Millisecond
	if v := os.Getenv(envLoad); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", envLoad, v, err)
		}
		load = d
	}
	const removeBound = 30 * time.Second // the kernel frees a deleted namespace from a work queue, slow on a busy machine

	d := newDPTopo(t)
	srv := d.addEndpoint(t, "srv", "10.0.0.2", 1, 32, 512)
	addFlows(t, d.br, l2Flows...)
	server := srv.ns.Start(t, helperArgs(t, "http-server", "10.0.0.2:8080")...)
	if err := server.WaitOutput("listening", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	url := "http://10.0.0.2:8080/"
	before := measureLeaks(t)
	start := time.Now()

	for i := range cycles + 1 {
		// The last client comes without load: it reaches the server after
		// the last deletion, and its namespace is simply deleted.
		c := reproCycle{d: d, srv: srv, curl: curl, url: url, load: load, requests: requests, parallel: parallel, idle: i == cycles}
		c.run(t, i, removeBound)
		if _, ok := d.br.Port(c.cli.veth.Host); ok {
			t.Fatalf("cycle %d: port still in the bridge", i)
		}
		if n := d.br.SpinningLockups(); n != 0 {
			t.Fatalf("cycle %d: %d spinning soft lockups", i, n)
		}
	}
	t.Logf("%d cycles in %v", cycles, time.Since(start).Round(time.Millisecond))

	stats := quiesceStats(t, d.br)
	checkBalanced(t, stats...)
	for _, s := range stats {
		t.Logf("%s: rx %d sent %d tx %d, drops of its traffic: %s", s.Name, s.RxPackets, s.Sent, s.TxPackets, nonZeroDrops(s.Drops))
	}

	var after leakState
	if !netns.Eventually(20*time.Second, func() bool {
		after = measureLeaks(t)
		return after.fds <= before.fds && after.rings <= before.rings && after.goroutines <= before.goroutines
	}) {
		t.Errorf("leak after %d cycles: before %+v, after %+v", cycles, before, after)
	}
}

// loadStartBound bounds the wait for the first answered request of a
// cycle's load, and for the first copy of the server's stream dropped for
// the dying port.
const loadStartBound = 30 * time.Second

// reproCycle is one cycle of the reproducer.
type reproCycle struct {
	d                  *dpTopo
	srv, cli           *endpoint
	curl, url          string
	load               time.Duration
	requests, parallel int
	idle               bool // no load
}

// run adds a client, checks that it reaches the server, loads the server
// from it, deletes its namespace under load while the server streams to
// it, and waits for the port's removal.
func (c *reproCycle) run(t *testing.T, i int, removeBound time.Duration) {
	t.Helper()
	start := time.Now()
	c.cli = c.d.addEndpoint(t, "cli", "10.0.0.10", 2, 32, 512)
	// The server's stream below needs no ARP while the client dies.
	c.srv.ns.SetNeigh(t, c.srv.veth.Peer, c.cli.ip, c.cli.ns.MAC(t, c.cli.veth.Peer))
	if !c.cli.reach(c.srv.ip, 10*time.Second) {
		t.Fatalf("cycle %d: a new client does not reach the server", i)
	}
	if out, err := c.cli.ns.Run(c.curl, "-sS", "--max-time", "5", c.url); err != nil || out != "ovsxdp ok\n" {
		t.Fatalf("cycle %d: first request: %v: %q", i, err, out)
	}
	ok := 0
	dropsBefore := unusablePortDrops(c.srv.dp.Stats())
	if !c.idle {
		// The server streams to the client while it dies, so that output
		// meets the port in every state of its unregistration.
		stream := c.srv.ns.Start(t, "ping", "-n", "-q", "-i", "0.002", c.cli.ip)
		defer stream.Kill()
		script := fmt.Sprintf("seq %d | xargs -P %d -I{} %s -s -o /dev/null --connect-timeout 2 --max-time 3 -w '%%{http_code}\\n' %s",
			c.requests, c.parallel, c.curl, c.url)
		burst := c.cli.ns.Start(t, "sh", "-c", script)
		// The load runs for c.load from its first answered request: on a
		// busy machine the burst's processes can take seconds to start.
		if err := burst.WaitOutput("200\n", loadStartBound); err != nil {
			t.Fatalf("cycle %d: no request succeeded under load: %.300v", i, err)
		}
		time.Sleep(c.load)
		ok = strings.Count(burst.Output(), "200\n")
		// Delete the namespace under load: its name goes first, the
		// namespace and its veth once its processes are gone.
		if err := c.cli.ns.Delete(); err != nil {
			t.Fatal(err)
		}
		burst.Kill()
	} else if err := c.cli.ns.Delete(); err != nil {
		t.Fatal(err)
	}

	select {
	case r := <-c.d.removed:
		if r.err != nil {
			t.Fatalf("cycle %d: remove port: %v", i, r.err)
		}
		if r.stats.Name != c.cli.veth.Host {
			t.Fatalf("cycle %d: removed %s, want %s", i, r.stats.Name, c.cli.veth.Host)
		}
		checkBalanced(t, r.stats)
		// The stream meets the port dying or gone: wait for the first copy
		// dropped for it (the stream may be descheduled for a while).
		var dead uint64
		streamDrops := func() bool {
			dead = unusablePortDrops(c.srv.dp.Stats()) - dropsBefore
			return dead > 0
		}
		if !c.idle && !netns.Eventually(loadStartBound, streamDrops) {
			t.Errorf("cycle %d: no copy of the server's stream dropped for the dying port within %v", i, loadStartBound)
		}
		t.Logf("cycle %d: %d requests ok; port removed in %v; its rx %d sent %d tx %d, tx drops [%s]; server copies dropped for it: %d; cycle %v",
			i, ok, r.took.Round(time.Millisecond), r.stats.RxPackets, r.stats.Sent, r.stats.TxPackets,
			nonZeroDrops(r.stats.TxDrops), dead, time.Since(start).Round(time.Millisecond))
	case <-time.After(removeBound):
		holders, err := c.cli.ns.Holders()
		t.Fatalf("cycle %d: port %s not removed %v after its namespace was deleted (state %v; the namespace is held by %q, %v)",
			i, c.cli.veth.Host, removeBound, c.cli.port.Device().Snapshot(), holders, err)
	}
}

// unusablePortDrops counts the copies of a port's traffic dropped because
// the output port was going or gone.
func unusablePortDrops(s datapath.PortStats) uint64 {
	var n uint64
	for _, r := range []datapath.DropReason{datapath.DropPortGone, datapath.DropNotRegistered, datapath.DropNotRunning,
		datapath.DropNoCarrier, datapath.DropNoTxQueues, datapath.DropTxError} {
		n += s.Drops[r]
	}
	return n
}

// nonZeroDrops names the non-zero drop counters.
func nonZeroDrops(drops [datapath.NumDropReasons]uint64) string {
	var b strings.Builder
	for r, n := range drops {
		if n != 0 {
			fmt.Fprintf(&b, "%s=%d ", datapath.DropReason(r), n)
		}
	}
	return strings.TrimSpace(b.String())
}
