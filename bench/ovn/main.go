// Command ovn points Debian's OVN (ovn-northd, ovn-controller) at ovsxdp
// daemons and reports what of OVN's OpenFlow ovsxdp refuses, and whether
// logical ports on one chassis and across two reach each other.
//
// Each chassis is a network namespace with a sandboxed ovsdb-server
// holding its Open_vSwitch database (test/ovsref), an ovsxdp daemon that
// takes its configuration from it (--ovsdb) and serves br-int's OpenFlow
// socket where ovn-controller looks for it (--rundir, OVS_RUNDIR), and
// ovn-controller. OVN's northbound and southbound ovsdb-servers and
// ovn-northd run beside the first chassis. One logical switch has two
// ports on the first chassis and, with -chassis 2 (the default), a third
// on the second; each is bound to a network namespace through a veth whose
// host end is an AF_XDP port of br-int. With two chassis each has br-phy,
// an ovsxdp bridge with the underlay veth as an AF_XDP port and the
// host's address (ovn-encap-ip) on its LOCAL port, and ovn-controller
// makes the Geneve tunnel ports; the underlay veths meet in a namespace
// of their own, where a Linux bridge joins them and tcpdump captures the
// Geneve packets for tshark. A second switch, sw1, has a port on each
// chassis, and a logical router joins it to sw0; sw0 has stateful ACLs
// (allow-related, and a drop through a port group and an address set),
// and a load balancer on both switches sends a VIP to backends on sw0.
// The harness waits for the ports to be bound and up, pings within the
// first chassis and across, on sw0 and across the router (where tcpdump
// in the destination's namespace checks the TTL and MACs the router
// rewrote), connects over TCP where the ACLs allow and deny and to the
// VIP until every backend has answered, and reads from each daemon
// (ofproto/rejections) every message ovn-controller sent and every error
// reply ovsxdp answered with; a failed ping has each daemon's trace,
// flows, tunnels and drops recorded. Everything it starts is
// stopped by PID and every namespace removed, also on failure. It writes
// ovn.md and ovn.csv.
//
// Run as root: make bench-ovn (OVN_ARGS='-out DIR -chassis 1').
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

type options struct {
	out       string
	bindWait  time.Duration
	pingCount int
	keepLogs  string
	chassis   int
}

func main() {
	var o options
	fs := flag.NewFlagSet("ovn", flag.ExitOnError)
	fs.StringVar(&o.out, "out", "bench/results", "directory for ovn.md and ovn.csv")
	fs.DurationVar(&o.bindWait, "bind-wait", 90*time.Second, "how long to wait for the logical ports to be bound and up, and for ovn-controller to catch up")
	fs.IntVar(&o.pingCount, "count", 5, "echo requests per ping")
	fs.StringVar(&o.keepLogs, "logs", "", "copy the daemons' logs into this directory (default: none kept)")
	fs.IntVar(&o.chassis, "chassis", 2, "1: one chassis, two logical ports on it; 2: a second chassis with a third port, Geneve between them over an underlay veth")
	fs.Parse(os.Args[1:])
	if o.chassis != 1 && o.chassis != 2 {
		fmt.Fprintf(os.Stderr, "bench/ovn: -chassis %d: want 1 or 2\n", o.chassis)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := runBench(context.Background(), o, log); err != nil {
		fmt.Fprintln(os.Stderr, "bench/ovn:", err)
		os.Exit(1)
	}
}

func runBench(ctx context.Context, o options, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root: network namespaces, veths and AF_XDP ports")
	}
	tools := []struct{ name, pkg string }{
		{"ovsdb-tool", "openvswitch-common"}, {"ovsdb-server", "openvswitch-common"}, {"ovs-vsctl", "openvswitch-common"},
		{"ovn-northd", "ovn-central"}, {"ovn-nbctl", "ovn-common"}, {"ovn-sbctl", "ovn-common"}, {"ovn-controller", "ovn-host"},
	}
	if o.chassis > 1 {
		tools = append(tools, struct{ name, pkg string }{"tcpdump", "tcpdump"}, struct{ name, pkg string }{"tshark", "tshark"})
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool.name); err != nil {
			return fmt.Errorf("%s is missing (install the Debian package %s, or run `make deps`)", tool.name, tool.pkg)
		}
	}
	for _, schema := range []string{nbSchema, sbSchema} {
		if _, err := os.Stat(schema); err != nil {
			return fmt.Errorf("OVN's schema: %w (install ovn-central, or run `make deps`)", err)
		}
	}
	work, err := os.MkdirTemp("", "ovn-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "ovsxdp")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/ovsxdp").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/ovsxdp: %w\n%s", err, out)
	}
	r := newRunner(log)
	var m *measurement
	r.run(func(t *runner) { m = measure(ctx, t, o, bin) })
	r.cleanup()
	if m != nil && o.keepLogs != "" {
		m.copyLogs(o.keepLogs)
	}
	errs := r.errors()
	if m == nil || !m.complete {
		return fmt.Errorf("the run did not complete: %s", strings.Join(errs, "; "))
	}
	m.problems = errs
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if err := writeReport(o, m); err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s\n", filepath.Join(o.out, "ovn.md"), filepath.Join(o.out, "ovn.csv"))
	return nil
}
