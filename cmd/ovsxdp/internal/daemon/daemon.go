// Package daemon is the ovsxdp daemon: the bridges it runs, the commands
// the command-line tool sends it (modelled on ovs-vsctl, ovs-ofctl and
// ovs-appctl), the persistent state it restores at start, and its metrics.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/control"
	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/datapath/conntrack"
	"github.com/ovsxdp/ovsxdp/flow"
)

// Errors that commands return, wrapped with what they concern.
var (
	ErrNoBridge     = errors.New("no such bridge")
	ErrBridgeExists = errors.New("bridge exists")
	ErrUnknownVerb  = errors.New("unknown command")
	ErrUsage        = errors.New("wrong arguments")
)

// Timeouts of commands that wait for the poll threads.
const (
	// pmdTimeout bounds the wait for every poll thread to answer a control
	// request (megaflow dumps); a thread held in a soft lockup answers once
	// the watchdog releases it.
	pmdTimeout = 5 * time.Second
	// removeTimeout bounds the grace period of a port removal.
	removeTimeout = 10 * time.Second
)

// Config configures a Daemon.
type Config struct {
	// StatePath is the state file; "" keeps no state.
	StatePath string
	// Version is what the version command reports.
	Version string
	// RunDir is where each bridge's OpenFlow management socket,
	// BRIDGE.mgmt, is created; "" runs no OpenFlow channel.
	RunDir string
	// OVSDB, if set, is the remote of an ovsdb-server ("unix:PATH" or
	// "tcp:HOST:PORT") whose Open_vSwitch database configures the bridges
	// and ports (ovsdb.go); StatePath must then be "".
	OVSDB string
	// FlowsPath, with OVSDB, is the flows file: each bridge's OpenFlow
	// flows and groups, by bridge name, restored when the database
	// brings the bridge up again (ovsdb_flows.go); "" keeps none.
	FlowsPath string
	// NoLocalPort makes add-br add bridges without their LOCAL port
	// (addLocalPortLocked), for a daemon that must make no device in its
	// network namespace.
	NoLocalPort bool
	// PMDCPUMask pins the poll threads as other_config:pmd-cpu-mask
	// does (daemon --pmd-cpu-mask); "" leaves them on any CPU. With
	// OVSDB it must be "": the database's column pins them.
	PMDCPUMask string
	Logger     *slog.Logger
	// LogLevel is the level of Logger's handler, which vlog/set changes
	// (vlog.go); nil: it stays as it is.
	LogLevel *slog.LevelVar
}

// tapOwner names the configuration whose internal ports' devices this
// daemon made and may take up again after a restart: its state file, or
// its database and run directory. Two daemons of different
// configurations never take up each other's devices.
func (d *Daemon) tapOwner() string {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil && p != "" {
			return a
		}
		return p
	}
	if d.cfg.StatePath != "" {
		return "state " + abs(d.cfg.StatePath)
	}
	return "ovsdb " + d.cfg.OVSDB + " rundir " + abs(d.cfg.RunDir)
}

// Daemon owns the bridges and runs commands on them.
type Daemon struct {
	cfg Config
	log *slog.Logger

	// mu serializes commands: each runs whole, and the state file is
	// written after it. It protects bridges.
	mu      sync.Mutex
	bridges map[string]*bridge
	// view is the bridges sorted by name, republished after every change,
	// for readers that must not wait for a command (metrics).
	view atomic.Pointer[[]*bridge]

	// lock holds the state file's lock (state.go) until Close; nil
	// without a state file. Guarded by mu.
	lock *os.File

	// channels are the bridges' OpenFlow listeners (ofchannel.go).
	channels channels

	// ct is the connection tracker every bridge's ct actions run with, as
	// Open vSwitch's netdev bridges share their datapath's (conntrack.go).
	ct *conntrack.Tracker
	// defrag reassembles fragments before ct tracks them, shared as ct is.
	defrag *conntrack.Defrag
	// threads are the poll threads every bridge's pmds run on: pmd i of
	// each bridge on thread i, as Open vSwitch's netdev datapath has one
	// set of PMD threads (one per core of other_config:pmd-cpu-mask)
	// that polls the rx queues of all its bridges' ports. A tunnelled
	// packet then crosses both of its bridges on one thread. As many
	// threads run as the largest bridge's --pmds.
	threads *datapath.Threads
	// tunnels resolves every bridge's tunnel ports' paths and tells the
	// bridges what to decapsulate (tunnel.go).
	tunnels *datapath.Tunnels

	// ovsdb follows the database when Config.OVSDB is set (ovsdb.go).
	ovsdb *ovsdbSync
	// savedFlows are the flows file's bridges that the database has not
	// brought up yet (ovsdb_flows.go). Guarded by mu.
	savedFlows map[string]*savedBridge

	// saver coalesces the state saves of OpenFlow changes (state.go).
	saver stateSaver
	// underlay is the namespace's route table and tunnel neighbour
	// cache (underlay.go).
	underlay underlayState

	// The flow expiry and state saving goroutine (expire.go); closeOnce
	// stops it.
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	// exitReq is closed when a client asks the daemon to exit
	// (unixctl.go); cleanup (guarded by mu) has Close delete the internal
	// ports' devices instead of keeping them.
	exitReq  chan struct{}
	exitOnce sync.Once
	cleanup  bool

	// vlogLevel is the level vlog/set last set, in Open vSwitch's words
	// ("" before any; vlog.go). Guarded by mu.
	vlogLevel string
}

// bridge is one bridge and what the daemon remembers about it.
type bridge struct {
	name string
	dp   *datapath.Bridge
	pmds int
	// ports are the ports' configurations, by name. Guarded by Daemon.mu.
	ports map[string]*portConfig
	// baseline are the poll threads' counters at the last pmd-stats-clear.
	// Guarded by Daemon.mu.
	baseline []datapath.PMDStats
	// macBaseline are the MAC table's counters at the last
	// fdb/stats-clear (fdb.go). Guarded by Daemon.mu.
	macBaseline flow.MACStats
	// dpid is the datapath ID Open vSwitch would give the bridge
	// (localmac.go), set under --ovsdb; 0 elsewhere, where the ID is
	// derived from the name. Written under Daemon.mu; connections read
	// it without.
	dpid atomic.Uint64
}

// New restores the bridges, ports and flows of cfg.StatePath (if it exists)
// and returns the daemon. A state file that cannot be read or restored is
// an error naming the file and the problem; the file is left as it is.
func New(cfg Config) (*Daemon, error) {
	if cfg.OVSDB != "" && cfg.StatePath != "" {
		return nil, errors.New("a daemon configured from ovsdb-server keeps no state file")
	}
	if cfg.OVSDB == "" && cfg.FlowsPath != "" {
		return nil, errors.New("a flows file is kept only by a daemon configured from ovsdb-server")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	threads := datapath.NewThreads(maxPMDs)
	if cfg.PMDCPUMask != "" {
		if cfg.OVSDB != "" {
			return nil, errors.New("a daemon configured from ovsdb-server takes its pmd-cpu-mask from the database (other_config:pmd-cpu-mask)")
		}
		cpus, err := parsePMDCPUMask(cfg.PMDCPUMask)
		if err != nil {
			return nil, err
		}
		if err := threads.SetCPUs(cpus); err != nil {
			return nil, fmt.Errorf("pmd-cpu-mask %q: %w", cfg.PMDCPUMask, err)
		}
	}
	ct, err := conntrack.New(conntrack.Config{Logger: cfg.Logger.With("component", "conntrack")})
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, bridges: make(map[string]*bridge), ct: ct, defrag: conntrack.NewDefrag(), threads: threads, stop: make(chan struct{}), done: make(chan struct{}), exitReq: make(chan struct{}), saver: newStateSaver()}
	d.tunnels = d.newTunnels(cfg.Logger)
	d.publishLocked()
	if cfg.StatePath != "" {
		lock, err := lockState(cfg.StatePath, "state file", "--state")
		if err != nil {
			d.tunnels.Close()
			return nil, err
		}
		d.lock = lock
		st, err := loadState(cfg.StatePath)
		if err != nil {
			lock.Close()
			d.tunnels.Close()
			return nil, err
		}
		if err := d.restore(st); err != nil {
			close(d.done)
			d.Close()
			return nil, fmt.Errorf("state file %s: %w (the file is left unchanged)", cfg.StatePath, err)
		}
	}
	if cfg.FlowsPath != "" {
		lock, err := lockState(cfg.FlowsPath, "flows file", "--rundir")
		if err != nil {
			d.tunnels.Close()
			return nil, err
		}
		d.lock = lock
		if d.savedFlows, err = loadFlows(cfg.FlowsPath); err != nil {
			lock.Close()
			d.tunnels.Close()
			return nil, err
		}
	}
	go d.expireLoop()
	go d.ct.Run(d.stop, time.Second, datapath.ConntrackNow)
	if cfg.OVSDB != "" {
		d.startOVSDB(cfg.OVSDB)
	}
	return d, nil
}

// Close stops the flow expiry and every bridge. The internal ports'
// devices stay (keepInternalLocked).
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() { close(d.stop) })
	<-d.done
	d.underlay.close()
	d.stopOVSDB()
	d.closeChannels()
	d.saveIfDirty(runtime.GOMAXPROCS(0)) // what the OpenFlow channels changed last
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.cleanup {
		d.keepInternalLocked()
	}
	var errs []error
	for _, b := range d.bridges {
		if err := b.dp.Close(); err != nil {
			errs = append(errs, fmt.Errorf("bridge %s: %w", b.name, err))
		}
	}
	clear(d.bridges)
	d.publishLocked()
	d.tunnels.Close()
	if d.lock != nil {
		d.lock.Close() // releases the state file for another daemon
		d.lock = nil
	}
	return errors.Join(errs...)
}

// publishLocked republishes the sorted bridge list. d.mu must be held.
func (d *Daemon) publishLocked() {
	list := make([]*bridge, 0, len(d.bridges))
	for _, b := range d.bridges {
		list = append(list, b)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	d.view.Store(&list)
	d.syncChannelsLocked()
}

// sortedLocked returns the bridges sorted by name. d.mu must be held.
func (d *Daemon) sortedLocked() []*bridge {
	return *d.view.Load()
}

// bridgeLocked returns the bridge named name. d.mu must be held.
func (d *Daemon) bridgeLocked(name string) (*bridge, error) {
	b := d.bridges[name]
	if b == nil {
		return nil, fmt.Errorf("bridge %s: %w", name, ErrNoBridge)
	}
	return b, nil
}

// call is one command's arguments.
type call struct {
	ctx   context.Context
	args  []string
	flags map[string]string
	input []string
}

// flag returns the value of flag name, and whether it was given.
func (c *call) flag(name string) (string, bool) {
	v, ok := c.flags[name]
	return v, ok
}

// boolFlag reports whether the boolean flag name is set.
func (c *call) boolFlag(name string) bool {
	v, ok := c.flags[name]
	return ok && v != "false"
}

// verb describes one command.
type verb struct {
	VerbInfo
	changes bool // it changes the configuration: the state is saved after it
	run     func(d *Daemon, c *call) (string, error)
}

// VerbInfo describes a command for the command-line tool, which builds its
// commands from them.
type VerbInfo struct {
	Name  string
	Usage string // the arguments, as "BR [FLOW]"
	Short string // one line of help
	// Min and Max bound the positional arguments the daemon takes (Max -1:
	// any number).
	Min, Max int
	Flags    []FlagInfo
	// File means the command's last argument on the command line is a file
	// that the client reads and sends as the request's input lines.
	File bool
}

// FlagInfo describes a command's flag.
type FlagInfo struct {
	Name      string
	Shorthand string // a one-letter form (-O), if any
	Bool      bool   // a switch; otherwise it takes a value
	Usage     string
}

// verbs are the commands, by name.
var verbs = map[string]*verb{}

func register(vs ...*verb) {
	for _, v := range vs {
		verbs[v.Name] = v
	}
}

// Verbs describes the commands the daemon knows, sorted by name.
func Verbs() []VerbInfo {
	out := make([]VerbInfo, 0, len(verbs))
	for _, v := range verbs {
		out = append(out, v.VerbInfo)
	}
	slices.SortFunc(out, func(a, b VerbInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (v *verb) hasFlag(name string) bool {
	return slices.ContainsFunc(v.Flags, func(f FlagInfo) bool { return f.Name == name })
}

// Handle runs one request. It is the control server's handler.
func (d *Daemon) Handle(ctx context.Context, req *control.Request) (string, error) {
	if req.Appctl {
		return d.handleAppctl(ctx, req)
	}
	v := verbs[req.Verb]
	if v == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownVerb, flow.Clipped(req.Verb))
	}
	if err := d.refuseConfigVerb(v.Name); err != nil {
		return "", err
	}
	usage := func(why string) error {
		return fmt.Errorf("%s: %w: %s (usage: ovsxdp %s %s)", req.Verb, ErrUsage, why, req.Verb, v.Usage)
	}
	switch n := len(req.Args); {
	case n < v.Min:
		return "", usage(fmt.Sprintf("%d given, want at least %d", n, v.Min))
	case v.Max >= 0 && n > v.Max:
		return "", usage(fmt.Sprintf("%d given, want at most %d", n, v.Max))
	}
	for f := range req.Flags {
		if !v.hasFlag(f) {
			return "", usage(fmt.Sprintf("unknown flag --%s", flow.Clipped(f)))
		}
	}
	if len(req.Input) > 0 && !v.File {
		return "", usage("takes no input file")
	}
	c := &call{ctx: ctx, args: req.Args, flags: req.Flags, input: req.Input}

	d.mu.Lock()
	defer d.mu.Unlock()
	out, err := v.run(d, c)
	if err != nil || !v.changes {
		return out, err
	}
	d.publishLocked()
	if serr := d.saveLocked(); serr != nil {
		return out, fmt.Errorf("%s done, but the state was not saved: %w", req.Verb, serr)
	}
	return out, nil
}

// lines joins names, one per line, each ending in a newline.
func lines(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return strings.Join(names, "\n") + "\n"
}
