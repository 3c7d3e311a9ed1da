package daemon

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/control"
	"github.com/ovsxdp/ovsxdp/flow"
)

// The commands ovs-appctl reaches (control.NewAppctlServer): the daemon's
// appctl-like verbs, by Open vSwitch's name where ovs-vswitchd has the
// command, and list-commands. Their arguments are ovs-appctl's: options
// with one dash or two, a value after a space or an equals sign.

// appctlNames are Open vSwitch's names of the verbs ovsxdp names
// otherwise. Every verb whose name has a slash (dpctl/..., ofproto/...,
// ovs/route/...) is reached by that name, and so are these.
var appctlNames = map[string]string{
	"dpif-netdev/pmd-stats-show":  "pmd-stats-show",
	"dpif-netdev/pmd-stats-clear": "pmd-stats-clear",
	"dpif-netdev/pmd-rxq-show":    "pmd-rxq-show",
	"drop-reasons":                "drop-reasons",
	"exit":                        "exit",
	"version":                     "version",
}

var (
	appctlOnce     sync.Once
	appctlCommands map[string]*verb // by ovs-appctl name
)

// appctlVerbs returns the verbs ovs-appctl reaches, by its names.
func appctlVerbs() map[string]*verb {
	appctlOnce.Do(func() {
		appctlCommands = map[string]*verb{}
		for name, v := range verbs {
			if strings.Contains(name, "/") {
				appctlCommands[name] = v
			}
		}
		for name, v := range appctlNames {
			appctlCommands[name] = verbs[v]
		}
	})
	return appctlCommands
}

// handleAppctl runs a command from ovs-appctl. Its errors are worded as
// Open vSwitch's unixctl server words them.
func (d *Daemon) handleAppctl(ctx context.Context, req *control.Request) (string, error) {
	name := flow.Clipped(req.Verb)
	if req.Verb == "list-commands" {
		if len(req.Args) > 0 {
			return "", fmt.Errorf(`"%s" command takes at most 0 arguments`, name)
		}
		return listAppctlCommands(), nil
	}
	v := appctlVerbs()[req.Verb]
	if v == nil {
		return "", fmt.Errorf(`"%s" is not a valid command (use "list-commands" to see a list of valid commands)`, name)
	}
	// Open vSwitch bounds the arguments with the options among them.
	maxRaw := v.Max
	for _, f := range v.Flags {
		if maxRaw < 0 {
			break
		}
		maxRaw++
		if !f.Bool {
			maxRaw++
		}
	}
	switch n := len(req.Args); {
	case n < v.Min:
		return "", fmt.Errorf(`"%s" command requires at least %d arguments`, name, v.Min)
	case maxRaw >= 0 && n > maxRaw:
		return "", fmt.Errorf(`"%s" command takes at most %d arguments`, name, maxRaw)
	}
	args, flags, err := appctlArgs(v, req.Args)
	if err == nil && len(args) < v.Min {
		err = fmt.Errorf("%d arguments besides options, want at least %d", len(args), v.Min)
	}
	if err == nil && v.Max >= 0 && len(args) > v.Max {
		err = fmt.Errorf("%d arguments besides options, want at most %d", len(args), v.Max)
	}
	if err != nil {
		return "", fmt.Errorf(`"%s" command: %w (usage: %s)`, name, err, appctlUsage(v))
	}
	return d.Handle(ctx, &control.Request{Verb: v.Name, Args: args, Flags: flags})
}

// appctlArgs splits ovs-appctl's arguments into the verb's positional
// arguments and its flags: "-generate" and "--generate" are the flag
// generate, "-pmd 1" and "--pmd=1" the flag pmd with the value 1. An
// argument that starts with a dash and names none of the verb's flags
// stays an argument, for the verb to take or refuse.
func appctlArgs(v *verb, in []string) (args []string, flags map[string]string, err error) {
	for i := 0; i < len(in); i++ {
		a := in[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		j := slices.IndexFunc(v.Flags, func(f FlagInfo) bool { return f.Name == name || (f.Shorthand != "" && f.Shorthand == name) })
		if len(a) < 2 || a[0] != '-' || j < 0 {
			args = append(args, a)
			continue
		}
		f := v.Flags[j]
		switch {
		case f.Bool && hasVal:
			return nil, nil, fmt.Errorf("option %s takes no value", flow.Clipped(a))
		case f.Bool:
			val = "true"
		case !hasVal && i+1 == len(in):
			return nil, nil, fmt.Errorf("option %s needs a value", flow.Clipped(a))
		case !hasVal:
			i++
			val = in[i]
		}
		if flags == nil {
			flags = map[string]string{}
		}
		flags[f.Name] = val
	}
	return args, flags, nil
}

// appctlUsage is a verb's arguments as list-commands shows them: its
// flags (but those its usage shows already), then its positional
// arguments.
func appctlUsage(v *verb) string {
	var parts []string
	for _, f := range v.Flags {
		switch {
		case strings.Contains(v.Usage, "--"+f.Name) || (f.Shorthand != "" && strings.Contains(v.Usage, "-"+f.Shorthand+"]")):
		case f.Bool:
			parts = append(parts, "[--"+f.Name+"]")
		default:
			parts = append(parts, "[--"+f.Name+" "+strings.ToUpper(f.Name)+"]")
		}
	}
	if v.Usage != "" {
		parts = append(parts, v.Usage)
	}
	return strings.Join(parts, " ")
}

// listAppctlCommands is list-commands' answer, in Open vSwitch's layout.
func listAppctlCommands() string {
	names := []string{"list-commands"}
	for name := range appctlVerbs() {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("The available commands are:\n")
	for _, name := range names {
		usage := ""
		if v := appctlVerbs()[name]; v != nil {
			usage = appctlUsage(v)
		}
		fmt.Fprintf(&b, "  %-23s %s\n", name, usage)
	}
	return b.String()
}

// exit stops the daemon once its answer is sent, as ovs-vswitchd's exit
// command does. With --cleanup the internal ports' devices go with it, as
// Open vSwitch's --cleanup deletes its datapaths' ports; without, they
// stay for the next daemon, as on SIGTERM.
func (d *Daemon) exit(c *call) (string, error) {
	if c.boolFlag("cleanup") {
		d.cleanup = true
	}
	control.AfterAnswer(c.ctx, func() { d.exitOnce.Do(func() { close(d.exitReq) }) })
	return "", nil
}

// ExitRequested is closed once a client has asked the daemon to exit.
func (d *Daemon) ExitRequested() <-chan struct{} {
	return d.exitReq
}
