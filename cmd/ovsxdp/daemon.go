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
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/control"
	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/daemon"
)

// defaultState is where the daemon keeps its configuration.
const defaultState = "/var/lib/ovsxdp/state.json"

func newDaemonCmd(g *globals) *cobra.Command {
	var statePath, metrics, logLevel string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the daemon in the foreground",
		Long: `Run the daemon in the foreground. It listens on the control socket
(--socket), restores the bridges, ports and flows of the state file and
saves them there after every change. --metrics serves Prometheus metrics
on /metrics and the Go profiler on /debug/pprof/, on a loopback address
only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			slog.SetDefault(log)
			return runDaemon(cmd.Context(), log, g.socket, statePath, metrics)
		},
	}
	cmd.Flags().StringVar(&statePath, "state", defaultState, `the state file ("" keeps no state)`)
	cmd.Flags().StringVar(&metrics, "metrics", "", "serve metrics and pprof on this loopback address, e.g. 127.0.0.1:9476")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// runDaemon runs the daemon until SIGINT or SIGTERM.
func runDaemon(ctx context.Context, log *slog.Logger, socket, statePath, metrics string) error {
	if metrics != "" {
		if err := daemon.CheckLoopback(metrics); err != nil {
			return err
		}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// The socket first: it refuses to start next to a running daemon,
	// before the state is restored (which opens the ports' files).
	ln, err := control.Listen(socket)
	if err != nil {
		return err
	}
	d, err := daemon.New(daemon.Config{StatePath: statePath, Version: buildVersion(), Logger: log})
	if err != nil {
		ln.Close()
		return err
	}
	defer d.Close()

	var hs *http.Server
	if metrics != "" {
		ml, err := net.Listen("tcp", metrics)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics: %w", err)
		}
		hs = &http.Server{Handler: d.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := hs.Serve(ml); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "err", err)
			}
		}()
	}

	srv := control.NewServer(d.Handle, log)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("ovsxdp daemon running", "pid", os.Getpid(), "socket", socket, "state", statePath, "metrics", metrics, "version", buildVersion())

	select {
	case <-ctx.Done():
		log.Info("ovsxdp daemon stopping")
	case err = <-served:
	}
	srv.Close()
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		hs.Shutdown(sctx)
		cancel()
	}
	return err
}
