package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/control"
	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/daemon"
)

// defaultState is where the daemon keeps its configuration.
const defaultState = "/var/lib/ovsxdp/state.json"

// defaultRunDir is where the bridges' OpenFlow management sockets are.
const defaultRunDir = "/run/ovsxdp"

func newDaemonCmd(g *globals) *cobra.Command {
	var o daemonOptions
	var logLevel string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the daemon in the foreground",
		Long: `Run the daemon in the foreground. It listens on the control socket
(--socket), restores the bridges, ports and flows of the state file and
saves them there after every change; the state file is locked, so two
daemons cannot share it. Each bridge has an OpenFlow management socket,
RUNDIR/BRIDGE.mgmt (--rundir), for ovs-ofctl and OpenFlow clients. --metrics serves Prometheus metrics on /metrics,
--pprof the Go profiler on /debug/pprof/, each on a loopback address only
(both may name the same address). The daemon logs to stderr; SIGHUP is
logged and otherwise ignored, SIGINT and SIGTERM stop it.

With --ovsdb the daemon is a client of ovsdb-server's Open_vSwitch
database instead, as ovs-vswitchd is: the bridges whose datapath_type is
ovsxdp, and their ports, come from the database (ovs-vsctl manages them),
the daemon writes back the Interface, Bridge and Open_vSwitch columns that
ovs-vswitchd writes, and no state file is used. The bridges' OpenFlow
flows and groups are kept across restarts in RUNDIR/flows.json (as Open
vSwitch's restart keeps them with ovs-save) and restored when the database
brings each bridge up again; a bridge deleted from the database drops them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
			}
			// A variable level, which vlog/set changes.
			lv := new(slog.LevelVar)
			lv.Set(level)
			o.logLevel = lv
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
			slog.SetDefault(log)
			o.socket = g.socket
			if o.ovsdb != "" {
				// The database is the configuration.
				o.statePath = ""
			}
			return runDaemon(cmd.Context(), log, o)
		},
	}
	cmd.Flags().StringVar(&o.statePath, "state", defaultState, `the state file ("" keeps no state)`)
	cmd.Flags().StringVar(&o.runDir, "rundir", defaultRunDir, `where each bridge's OpenFlow socket BRIDGE.mgmt is created, for ovs-ofctl ("" runs none)`)
	cmd.Flags().BoolVar(&o.appctl, "appctl", true, `answer ovs-appctl as ovs-vswitchd does: the socket RUNDIR/ovs-vswitchd.PID.ctl and the pidfile RUNDIR/ovs-vswitchd.pid, so that "OVS_RUNDIR=RUNDIR ovs-appctl -t ovs-vswitchd COMMAND" reaches the daemon (not without --rundir)`)
	cmd.Flags().StringVar(&o.ovsdb, "ovsdb", "", `take the configuration from this ovsdb-server, e.g. unix:/run/openvswitch/db.sock (the state file is then not used)`)
	cmd.Flags().StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics on this loopback address, e.g. 127.0.0.1:9476")
	cmd.Flags().StringVar(&o.pprof, "pprof", "", "serve the Go profiler (/debug/pprof/) on this loopback address")
	cmd.Flags().BoolVar(&o.localPort, "local-port", true, "add-br gives each bridge its LOCAL port, an internal port (TAP device) named as the bridge, as ovs-vsctl add-br does; false adds bridges without it, for a daemon that must make no device in its namespace")
	cmd.Flags().StringVar(&o.pmdCPUMask, "pmd-cpu-mask", "", "pin the poll threads to these CPUs, as Open vSwitch's other_config:pmd-cpu-mask: a hexadecimal mask whose lowest bit is CPU 0, thread N on its Nth CPU (with --ovsdb, set that column instead)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// daemonOptions are the daemon command's options.
type daemonOptions struct {
	socket, statePath string
	// runDir holds the bridges' OpenFlow management sockets, and with
	// appctl ovs-appctl's socket and pidfile.
	runDir string
	appctl bool
	// ovsdb is the ovsdb-server remote that configures the daemon ("":
	// the state file does).
	ovsdb string
	// metrics and pprof are the loopback addresses to serve metrics and
	// the profiler on ("": not served).
	metrics, pprof string
	// localPort: add-br adds each bridge's LOCAL port.
	localPort bool
	// pmdCPUMask pins the poll threads ("": not pinned).
	pmdCPUMask string
	// logLevel is the log's level, for vlog/set.
	logLevel *slog.LevelVar
}

// HTTP server limits: no client can hold a connection open for long.
const (
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 10 * time.Second
	httpIdleTimeout       = time.Minute
	// httpWriteTimeout bounds a metrics response; the profiler's is longer
	// than its longest default profile (30 s).
	httpWriteTimeout  = 30 * time.Second
	pprofWriteTimeout = 2 * time.Minute
)

// runDaemon runs the daemon until SIGINT or SIGTERM.
func runDaemon(ctx context.Context, log *slog.Logger, o daemonOptions) error {
	if o.metrics != "" {
		if err := daemon.CheckLoopback("--metrics", o.metrics); err != nil {
			return err
		}
	}
	if o.pprof != "" {
		if err := daemon.CheckLoopback("--pprof", o.pprof); err != nil {
			return err
		}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP would end the process (and leave the socket behind). The
	// daemon logs to stderr and has no file to reopen: note it and go on.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP received: ignored (the daemon logs to stderr and has no log file to reopen)")
			case <-ctx.Done():
				return
			}
		}
	}()

	// The socket first: it refuses to start next to a running daemon,
	// before the state is restored (which opens the ports' files).
	ln, err := control.Listen(o.socket)
	if err != nil {
		return err
	}
	var actl *control.AppctlListener
	if o.appctl && o.runDir != "" {
		if actl, err = control.ListenAppctl(o.runDir, appctlTarget); err != nil {
			ln.Close()
			return err
		}
		defer actl.Close()
	}
	flowsPath := ""
	if o.ovsdb != "" && o.runDir != "" {
		flowsPath = filepath.Join(o.runDir, "flows.json")
	}
	d, err := daemon.New(daemon.Config{StatePath: o.statePath, FlowsPath: flowsPath, Version: buildVersion(), RunDir: o.runDir, OVSDB: o.ovsdb, NoLocalPort: !o.localPort, PMDCPUMask: o.pmdCPUMask, Logger: log, LogLevel: o.logLevel})
	if err != nil {
		ln.Close()
		return err
	}
	defer d.Close()

	// One HTTP server per address: metrics and the profiler may share one.
	muxes := map[string]*http.ServeMux{}
	mux := func(addr string) *http.ServeMux {
		if muxes[addr] == nil {
			muxes[addr] = http.NewServeMux()
		}
		return muxes[addr]
	}
	if o.metrics != "" {
		d.RegisterMetrics(mux(o.metrics))
	}
	if o.pprof != "" {
		daemon.RegisterPprof(mux(o.pprof))
	}
	var servers []*http.Server
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, hs := range servers {
			hs.Shutdown(sctx)
		}
	}()
	for addr, m := range muxes {
		hl, err := net.Listen("tcp", addr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("http %s: %w", addr, err)
		}
		wt := httpWriteTimeout
		if addr == o.pprof {
			wt = pprofWriteTimeout
		}
		hs := &http.Server{Handler: m, ReadHeaderTimeout: httpReadHeaderTimeout, ReadTimeout: httpReadTimeout,
			WriteTimeout: wt, IdleTimeout: httpIdleTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		servers = append(servers, hs)
		go func() {
			if err := hs.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server", "addr", addr, "err", err)
			}
		}()
	}

	srv := control.NewServer(d.Handle, log)
	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	appctlSocket := ""
	asrv := control.NewAppctlServer(d.Handle, log)
	if actl != nil {
		appctlSocket = actl.Addr().String()
		go func() { served <- asrv.Serve(actl) }()
	}
	log.Info("ovsxdp daemon running", "pid", os.Getpid(), "socket", o.socket, "appctl", appctlSocket, "state", o.statePath, "rundir", o.runDir, "ovsdb", o.ovsdb, "metrics", o.metrics, "pprof", o.pprof, "version", buildVersion())

	select {
	case <-ctx.Done():
		log.Info("ovsxdp daemon stopping")
	case <-d.ExitRequested():
		log.Info("ovsxdp daemon stopping: exit requested")
	case err = <-served:
	}
	srv.Close()
	asrv.Close()
	return err
}

// appctlTarget is the name ovs-appctl -t finds the daemon by: ovs-vswitchd's,
// whose place it takes.
const appctlTarget = "ovs-vswitchd"
