// Command rules measures what N OpenFlow rules cost ovsxdp and Open
// vSwitch: the wall time of adding them to an empty bridge and the
// resident memory of the process that holds them (VmRSS of the ovsxdp
// daemon, and of ovs-vswitchd), before, after, and after a settling pause.
//
// The rules are shaped as OVN writes them (several tables, matches over
// registers, metadata, MAC and IP addresses and prefixes, transport ports,
// conjunctions, with loads, resubmits and outputs). Each round starts every
// switch afresh, in a rotating order:
//
//   - ovsxdp-cli: an ovsxdp daemon with its own state file and run
//     directory in a temporary directory; `ovsxdp add-flows BR FILE`;
//   - ovsxdp-ofctl: the same, with `ovs-ofctl add-flows` over the bridge's
//     OpenFlow socket RUNDIR/BR.mgmt;
//   - ovs: a sandboxed ovsdb-server and ovs-vswitchd (netdev datapath, its
//     own network namespace); `ovs-ofctl add-flows`;
//   - ovsxdp-bundle and ovs-bundle: ovsxdp-ofctl and ovs with
//     `ovs-ofctl --bundle add-flows`, all the rules in one bundle, as OVN
//     and other controllers send them.
//
// Every switch is then asked how many flows it holds (ovs-ofctl
// dump-aggregate), so a rule that was dropped or replaced fails the run.
// It writes rules.md and rules.csv with the ratios of each round, measured
// in the same run. Only the processes it starts are stopped, by PID, also
// on failure or Ctrl-C.
//
// Usage (as root, from the repository root):
//
//	go run ./bench/rules [-n 100000] [-rounds 3] [-configs ovsxdp-cli,ovsxdp-ofctl,ovs,ovsxdp-bundle,ovs-bundle] [-out bench/results]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ovsxdp/ovsxdp/bench/rules/ovnrules"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runBench(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rules:", err)
		os.Exit(1)
	}
}

type options struct {
	n, rounds  int
	configs    []string
	out        string
	addTimeout time.Duration
	// ofctlTimeout bounds ovsxdp-ofctl's add, which takes a flow mod at a
	// time: ovs-ofctl add-flows sends each with a barrier and waits for
	// the barrier's reply before it sends the next.
	ofctlTimeout time.Duration
	settle       time.Duration
}

var allConfigs = []string{"ovsxdp-cli", "ovsxdp-ofctl", "ovs", "ovsxdp-bundle", "ovs-bundle"}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("rules", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.n, "n", 100000, "rules to add")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; every configuration runs once per round, on a fresh switch")
	only := fs.String("configs", strings.Join(allConfigs, ","), "configurations, comma-separated")
	fs.StringVar(&o.out, "out", "bench/results", "directory for rules.md and rules.csv")
	fs.DurationVar(&o.addTimeout, "add-timeout", 5*time.Minute, "longest an add of all rules may take; a slower one is reported as timed out")
	fs.DurationVar(&o.ofctlTimeout, "ofctl-timeout", time.Minute, "longest ovsxdp-ofctl's add may take; it is then reported with the flows it added by then")
	fs.DurationVar(&o.settle, "settle", 5*time.Second, "pause after the add before the settled memory reading")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.n < 1 || o.rounds < 1 {
		return o, fmt.Errorf("-n %d -rounds %d: want at least 1 each", o.n, o.rounds)
	}
	for _, c := range strings.Split(*only, ",") {
		c = strings.TrimSpace(c)
		if !contains(allConfigs, c) {
			return o, fmt.Errorf("-configs: unknown configuration %q (want some of %s)", c, strings.Join(allConfigs, ","))
		}
		o.configs = append(o.configs, c)
	}
	return o, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// result is one configuration's measurement in one round.
type result struct {
	round  int
	config string
	rules  int // flows the switch reports after the add
	add    time.Duration
	// timedOut: the add did not finish within -add-timeout (add is then
	// the timeout, rules what the switch held when it was stopped).
	timedOut              bool
	before, after, settle memory
	// switchCPU is the CPU time the switch's process used during the
	// add, clientCPU the adding command's.
	switchCPU, clientCPU time.Duration
}

func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: ovs-vswitchd runs in a network namespace of its own")
	}
	for _, tool := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing (install openvswitch-switch and util-linux, or run `make deps`)", tool)
		}
	}
	work, err := os.MkdirTemp("", "rules-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "ovsxdp")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/ovsxdp").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/ovsxdp (run from the repository root): %w\n%s", err, out)
	}
	file := filepath.Join(work, "flows.txt")
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := ovnrules.Write(f, o.n); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	st, _ := os.Stat(file)
	env := environment(o, st.Size())
	slog.Info("rules", "n", o.n, "file bytes", st.Size(), "rounds", o.rounds, "configs", o.configs, "load", env.loadStart)

	var results []result
	for round := range o.rounds {
		for i := range o.configs {
			cfg := o.configs[(i+round)%len(o.configs)] // rotate the order
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r, err := measure(ctx, o, cfg, bin, file)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round+1, cfg, err)
			}
			r.round = round + 1
			slog.Info("measured", "round", r.round, "config", cfg, "rules", r.rules, "add", r.add.Round(time.Millisecond),
				"timed out", r.timedOut, "rss before MiB", mib(r.before.rss), "rss after MiB", mib(r.after.rss),
				"rss settled MiB", mib(r.settle.rss), "peak MiB", mib(r.settle.hwm),
				"switch cpu", r.switchCPU, "client cpu", r.clientCPU)
			results = append(results, r)
		}
	}
	env.loadEnd = loadavg()
	return writeReport(o, env, results, stdout)
}

// measure starts a fresh switch for cfg, adds the rules, reads the
// memory and stops the switch.
func measure(ctx context.Context, o options, cfg, bin, file string) (r result, err error) {
	r.config = cfg
	var sw switchUnderTest
	var add func() (time.Duration, error) // returns the client's CPU time
	switch cfg {
	case "ovsxdp-cli", "ovsxdp-ofctl", "ovsxdp-bundle":
		d, err := startOvsxdp(bin)
		if err != nil {
			return r, err
		}
		sw = d
		switch cfg {
		case "ovsxdp-cli":
			add = func() (time.Duration, error) {
				_, cpu, err := d.cliCPU(o.addTimeout, "add-flows", bridgeName, file)
				return cpu, err
			}
		case "ovsxdp-ofctl":
			add = func() (time.Duration, error) {
				_, cpu, err := runCPU(o.ofctlTimeout, nil, "ovs-ofctl", "add-flows", "unix:"+d.mgmt(), file)
				return cpu, err
			}
		default:
			// One bundle: no barrier per flow mod, so -add-timeout
			// bounds it as it bounds the CLI's add.
			add = func() (time.Duration, error) {
				_, cpu, err := runCPU(o.addTimeout, nil, "ovs-ofctl", "--bundle", "add-flows", "unix:"+d.mgmt(), file)
				return cpu, err
			}
		}
	case "ovs", "ovs-bundle":
		s, err := startOVS()
		if err != nil {
			return r, err
		}
		sw = s
		args := []string{"add-flows", "unix:" + s.mgmt(), file}
		if cfg == "ovs-bundle" {
			args = append([]string{"--bundle"}, args...)
		}
		add = func() (time.Duration, error) {
			_, cpu, err := runCPU(o.addTimeout, s.env, "ovs-ofctl", args...)
			return cpu, err
		}
	}
	defer func() { err = errors.Join(err, sw.stop()) }()

	// Let the switch finish starting up before the first reading.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return r, err
	}
	if r.before, err = readMemory(sw.pid()); err != nil {
		return r, err
	}
	cpu0, err := cpuTime(sw.pid())
	if err != nil {
		return r, err
	}
	start := time.Now()
	r.clientCPU, err = add()
	r.add = time.Since(start)
	cpu1, cpuErr := cpuTime(sw.pid())
	if cpuErr != nil {
		return r, cpuErr
	}
	r.switchCPU = cpu1 - cpu0
	if err != nil {
		if !strings.Contains(err.Error(), "timed out") {
			return r, err
		}
		r.timedOut = true
	}
	if r.after, err = readMemory(sw.pid()); err != nil {
		return r, err
	}
	if err := sleep(ctx, o.settle); err != nil {
		return r, err
	}
	if r.settle, err = readMemory(sw.pid()); err != nil {
		return r, err
	}
	if r.rules, err = flowCount(sw.mgmt()); err != nil {
		return r, err
	}
	if !r.timedOut && r.rules != o.n {
		return r, fmt.Errorf("the switch holds %d flows after adding %d", r.rules, o.n)
	}
	return r, nil
}

var flowCountRE = regexp.MustCompile(`flow_count=(\d+)`)

// flowCount asks a switch how many flows it holds.
func flowCount(mgmt string) (int, error) {
	out, err := run(cmdTimeout, nil, "ovs-ofctl", "dump-aggregate", "unix:"+mgmt)
	if err != nil {
		return 0, err
	}
	m := flowCountRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("ovs-ofctl dump-aggregate: no flow_count in %q", out)
	}
	return strconv.Atoi(m[1])
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func mib(kib int64) string { return fmt.Sprintf("%.1f", float64(kib)/1024) }
