// Command ovsxdp is the ovsxdp daemon and its command-line tool.
//
// `ovsxdp daemon` runs the bridges in the foreground; every other command
// talks to it over its control socket, with the verbs Open vSwitch users
// know from ovs-vsctl (add-br, add-port, show, ...), ovs-ofctl (add-flow,
// dump-flows, dump-ports, ...) and ovs-appctl (pmd-stats-show,
// dpctl/dump-flows, ofproto/trace, ...).
//
// Every error is one line on stderr, "ovsxdp: <problem>", with a non-zero
// exit status.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/control"
)

// version is the version the binary reports; the build may set it with
// -ldflags "-X main.version=...".
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		if v == "" || v == "(devel)" {
			v = "devel"
		}
		return v + " (" + bi.GoVersion + ")"
	}
	return "devel"
}

// extraCommands are commands that other files of this package add to the
// root command, each from its own init function.
var extraCommands []func(*globals) *cobra.Command

// globals are the options every command shares.
type globals struct {
	socket string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:                "ovsxdp",
		Short:              "ovsxdp: an Open vSwitch-like userspace datapath",
		Version:            buildVersion(),
		SilenceErrors:      true,
		SilenceUsage:       true,
		DisableSuggestions: true,
		CompletionOptions:  cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	sock := os.Getenv(control.SocketEnv)
	if sock == "" {
		sock = control.DefaultSocket
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", sock, "the daemon's control socket (env "+control.SocketEnv+")")
	root.AddCommand(newDaemonCmd(g))
	addRemoteCommands(root, g)
	for _, f := range extraCommands {
		root.AddCommand(f(g))
	}
	return root
}

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ovsxdp: "+oneLine(explain(root, err)))
		os.Exit(1)
	}
}

// explain adds a suggestion to an unknown command error.
func explain(root *cobra.Command, err error) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "unknown command "); ok {
		name, _, _ := strings.Cut(strings.Trim(rest, `"`), `"`)
		if s := root.SuggestionsFor(name); len(s) > 0 {
			return fmt.Sprintf("unknown command %q (did you mean %s?)", name, strings.Join(s, " or "))
		}
		return fmt.Sprintf("unknown command %q (run `ovsxdp help` for the list)", name)
	}
	return msg
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	return strings.TrimSpace(strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s))
}
