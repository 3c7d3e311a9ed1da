package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	vtopo "github.com/ovsxdp/ovsxdp/vport/topo"
)

// ovsDriver is Open vSwitch's userspace datapath (datapath_type=netdev)
// with type=afxdp ports: ovsdb-server with a database of its own and
// ovs-vswitchd inside the switch namespace, both with a private run
// directory, stopped by PID.
type ovsDriver struct {
	dir     string
	env     []string
	e       *Env
	db      *vtopo.Process
	vswitch *vtopo.Process
}

const ovsSchema = "/usr/share/openvswitch/vswitch.ovsschema"

func (d *ovsDriver) Name() string { return "ovs" }

func (d *ovsDriver) Start(e *Env) error {
	for _, tool := range []string{"ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing (Debian: openvswitch-switch): %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "chaos-ovs-")
	if err != nil {
		return err
	}
	d.dir, d.e = dir, e
	d.env = []string{"OVS_RUNDIR=" + dir, "OVS_DBDIR=" + dir, "OVS_LOGDIR=" + dir, "OVS_SYSCONFDIR=" + dir}
	for _, kv := range d.env {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v) // inherited by the processes started in the namespace
	}
	db := filepath.Join(dir, "conf.db")
	if _, err := d.cmd("ovsdb-tool", "create", db, ovsSchema); err != nil {
		return err
	}
	if d.db, err = e.SW.Start("ovsdb-server", db, "--remote=punix:"+filepath.Join(dir, "db.sock"), "--no-chdir",
		"--pidfile="+filepath.Join(dir, "ovsdb-server.pid"), "--unixctl="+filepath.Join(dir, "ovsdb-server.ctl"),
		"--log-file="+filepath.Join(dir, "ovsdb-server.log")); err != nil {
		return err
	}
	if err := waitFor(10*time.Second, func() bool { _, err := os.Stat(filepath.Join(dir, "db.sock")); return err == nil }); err != nil {
		return fmt.Errorf("ovsdb-server: %w: %s", err, tail(d.db.Output()))
	}
	// PMD threads sleep up to 10 ms when their queues are idle
	// (other_config:pmd-maxsleep, Open vSwitch 3.1) instead of taking a
	// whole CPU of the 2 that the runs share: it adds latency, not loss.
	if _, err := d.vsctl("--no-wait", "init", "--", "set", "open_vswitch", ".", "other_config:pmd-maxsleep=10000"); err != nil {
		return err
	}
	if err := d.startVswitchd(); err != nil {
		return err
	}
	// The bridge and every port in one transaction: ovs-vsctl waits for
	// ovs-vswitchd to apply a transaction, and it sets AF_XDP ports up in
	// one pass.
	args := []string{"add-br", bridgeName, "--", "set", "bridge", bridgeName, "datapath_type=netdev"}
	for i := range e.Slots {
		args = append(args, "--")
		args = append(args, addPortArgs(i)...)
	}
	// ovs-vswitchd sets AF_XDP ports up one after the other, 3 s each on
	// a loaded machine, and more: each port gets the time of one.
	if _, err := d.vsctlWithin(time.Duration(e.Slots+1)*cliTimeout, args...); err != nil {
		return err
	}
	return d.replaceFlows()
}

// replaceFlows sets the bridge's flows: to each slot's MAC, output to its
// port.
func (d *ovsDriver) replaceFlows() error {
	var flows strings.Builder
	for i := range d.e.Slots {
		fmt.Fprintf(&flows, "dl_dst=%s,actions=output:%d\n", slotMAC(i), OFPort(i))
	}
	path := filepath.Join(d.dir, "flows")
	if err := os.WriteFile(path, []byte(flows.String()), 0o644); err != nil {
		return err
	}
	_, err := d.cmd("ovs-ofctl", "replace-flows", bridgeName, path)
	return err
}

func (d *ovsDriver) startVswitchd() error {
	var err error
	d.vswitch, err = d.e.SW.Start("ovs-vswitchd", "unix:"+filepath.Join(d.dir, "db.sock"), "--no-chdir",
		"--pidfile="+filepath.Join(d.dir, "ovs-vswitchd.pid"), "--unixctl="+d.ctl(),
		"--log-file="+filepath.Join(d.dir, "ovs-vswitchd.log"))
	if err != nil {
		return err
	}
	return waitFor(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return d.Answers(ctx) == nil
	})
}

func (d *ovsDriver) ctl() string { return filepath.Join(d.dir, "ovs-vswitchd.ctl") }

func (d *ovsDriver) cmd(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	return d.cmdCtx(ctx, name, args...)
}

func (d *ovsDriver) cmdCtx(ctx context.Context, name string, args ...string) (string, error) {
	c := exec.CommandContext(ctx, name, args...)
	c.Env = append(os.Environ(), d.env...)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (d *ovsDriver) vsctl(args ...string) (string, error) {
	return d.vsctlWithin(cliTimeout, args...)
}

// vsctlWithin runs ovs-vsctl, which waits for ovs-vswitchd to apply the
// transaction, for up to timeout.
func (d *ovsDriver) vsctlWithin(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	secs := strconv.Itoa(int(timeout / time.Second))
	return d.cmdCtx(ctx, "ovs-vsctl", append([]string{"--db=unix:" + filepath.Join(d.dir, "db.sock"), "--timeout=" + secs}, args...)...)
}

func (d *ovsDriver) AddPort(e *Env, i int) error {
	_, err := d.vsctl(addPortArgs(i)...)
	return err
}

// addPortArgs are the ovs-vsctl commands that add slot i's host end as
// an AF_XDP port with initQueues rx queues and port number OFPort(i).
func addPortArgs(i int) []string {
	h := hostName(i)
	return []string{"add-port", bridgeName, h, "--", "set", "interface", h, "type=afxdp",
		"options:n_rxq=" + strconv.Itoa(initQueues), "ofport_request=" + strconv.Itoa(OFPort(i))}
}

func (d *ovsDriver) DelPort(e *Env, i int) error {
	_, err := d.vsctl("del-port", bridgeName, hostName(i))
	return err
}

// Relink: ovs-vswitchd opens an interface again when its device appears.
func (d *ovsDriver) Relink(*Env, int, slotState) error { return nil }

func (d *ovsDriver) Restart(e *Env, sig syscall.Signal) error {
	if err := stopProcess(d.vswitch, sig, "ovs-vswitchd"); err != nil {
		return err
	}
	if err := d.startVswitchd(); err != nil {
		return err
	}
	// OpenFlow flows live in ovs-vswitchd, not in the database: a new
	// process starts with the bridge's fail-mode default (NORMAL), and
	// ovs-ctl's restart saves and restores them (ovs-save), as a
	// controller would install them again. Do the same, once the new
	// process has the bridge.
	var err error
	if waitFor(20*time.Second, func() bool { err = d.replaceFlows(); return err == nil }) != nil {
		return err
	}
	return nil
}

func (d *ovsDriver) Answers(ctx context.Context) error {
	_, err := d.cmdCtx(ctx, "ovs-appctl", "-t", d.ctl(), "version")
	return err
}

// LogTail is the end of ovs-vswitchd's log, with each slot's interface
// as the database shows it (ofport, link state, error).
func (d *ovsDriver) LogTail() string {
	log, err := os.ReadFile(filepath.Join(d.dir, "ovs-vswitchd.log"))
	if err != nil {
		log = []byte(err.Error())
	}
	// One ovs-vsctl for every slot's row, not a process each.
	args := []string{"--if-exists", "--columns=name,ofport,link_state,error", "list", "interface"}
	for i := range d.e.Slots {
		args = append(args, hostName(i))
	}
	ifaces, err := d.vsctl(args...)
	if err != nil {
		ifaces = err.Error()
	}
	return "ovs-vswitchd log:\n" + tail(string(log)) + "\ninterfaces:\n" + strings.TrimSpace(ifaces) + "\n"
}

func (d *ovsDriver) Stop() error {
	if d.vswitch != nil {
		d.vsctl("--if-exists", "del-br", bridgeName)
		if stopProcess(d.vswitch, syscall.SIGTERM, "ovs-vswitchd") != nil {
			d.vswitch.Kill()
		}
		d.vswitch = nil
	}
	if d.db != nil {
		d.db.Kill()
		d.db = nil
	}
	// The userspace datapath's tap devices (the datapath's own port and
	// the bridge's) are persistent: they outlive ovs-vswitchd, and live on
	// for as long as anything still holds the namespace open. Delete them
	// here rather than leave that to the namespace's end.
	if d.e != nil {
		for _, tap := range []string{"ovs-netdev", bridgeName} {
			if _, err := d.e.SW.Ifindex(tap); err == nil {
				d.e.hostLink(tap, "del", netlink.LinkDel)
			}
		}
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
		d.dir = ""
	}
	return nil
}

// Check: ovs-vswitchd has not exited, no XDP program on a host end that is
// not a port, no ring mapping of a closed AF_XDP socket, no more sockets
// than the attached ports' queues. (Open vSwitch has no soft-lockup
// watchdog and no per-reason drop ledger to read.)
func (d *ovsDriver) Check(ctx context.Context, e *Env, st []slotState) (int, []Violation) {
	var vs []Violation
	add := func(kind, format string, args ...any) {
		vs = append(vs, Violation{Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	if d.vswitch.Exited() {
		add(KindCrash, "ovs-vswitchd exited: %s", tail(d.vswitch.Output()))
		return 1, vs
	}
	for i, s := range st {
		if !s.NS || s.Port {
			continue
		}
		if on, err := e.XDPAttached(i); err == nil && on {
			add(KindXDPLeak, "%s carries an XDP program but is not a port", hostName(i))
		}
	}
	f, _, err := d.Footprint(ctx)
	if err != nil {
		add(KindNoAnswer, "footprint: %v", err)
		return 3, vs
	}
	devs := 0
	for _, s := range st {
		if s.NS && s.Port {
			devs++
		}
	}
	// As for ovsxdp, what goes within leakBound is not a leak. (Open
	// vSwitch holds several XDP program descriptors per port: only the
	// sockets are bounded by the ports.)
	f = settleFootprint(d.vswitch.Cmd.Process.Pid, f, func(f Footprint) bool { return f.Orphans > 0 || f.XSK > devs*maxQueues })
	if f.Orphans > 0 {
		add(KindXSKLeak, "%d ring mappings of closed sockets after %v (%s)", f.Orphans, leakBound, f)
	}
	if f.XSK > devs*maxQueues {
		add(KindXSKLeak, "%d AF_XDP sockets for %d attached ports of at most %d queues after %v (%s)", f.XSK, devs, maxQueues, leakBound, f)
	}
	return 3, vs
}

func (d *ovsDriver) Footprint(context.Context) (Footprint, bool, error) {
	f, err := procFootprint(d.vswitch.Cmd.Process.Pid)
	return f, true, err
}

// waitFor polls cond until it holds, up to timeout.
func waitFor(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
