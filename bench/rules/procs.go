package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startTimeout bounds how long a daemon may take to answer after start;
// cmdTimeout bounds each short command run against one.
const (
	startTimeout = 30 * time.Second
	cmdTimeout   = 60 * time.Second
)

// proc is a daemon the benchmark started. stop ends it by its PID.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan error
}

// startProc starts c with its output appended to logPath.
func startProc(name string, c *exec.Cmd, logPath string) (*proc, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own descriptor
	c.Stdout, c.Stderr = log, log
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: c, exited: make(chan error, 1)}
	go func() { p.exited <- c.Wait() }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// alive reports whether the process has not exited yet.
func (p *proc) alive() bool {
	select {
	case err := <-p.exited:
		p.exited <- err
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process, then SIGKILL if it has not exited
// within 10 s, and waits for it.
func (p *proc) stop() error {
	if p == nil || !p.alive() {
		return nil
	}
	syscall.Kill(p.pid(), syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	syscall.Kill(p.pid(), syscall.SIGKILL)
	select {
	case <-p.exited:
		return fmt.Errorf("%s (pid %d) ignored SIGTERM for 10s; killed", p.name, p.pid())
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) does not exit after SIGKILL", p.name, p.pid())
	}
}

// run runs a command to completion within timeout and returns its
// combined output.
func run(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	out, _, err := runCPU(timeout, env, name, args...)
	return out, err
}

// runCPU is run that also returns the CPU time the command used.
func runCPU(timeout time.Duration, env []string, name string, args ...string) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Env = env
	b, err := c.CombinedOutput()
	out := string(b)
	var cpu time.Duration
	if c.ProcessState != nil {
		cpu = c.ProcessState.UserTime() + c.ProcessState.SystemTime()
	}
	if ctx.Err() != nil {
		return out, cpu, fmt.Errorf("%s %s: timed out after %v", name, strings.Join(args, " "), timeout)
	}
	if err != nil {
		return out, cpu, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out))
	}
	return out, cpu, nil
}

// waitFor polls ok until it succeeds, p exits or startTimeout passes.
func waitFor(p *proc, what string, ok func() error) error {
	deadline := time.Now().Add(startTimeout)
	for {
		err := ok()
		if err == nil {
			return nil
		}
		if !p.alive() {
			return fmt.Errorf("%s exited before %s: %v", p.name, what, <-p.exited)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %s after %v: %w", p.name, what, startTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// switchUnderTest is a running switch with one bridge, empty, whose rules
// the benchmark adds.
type switchUnderTest interface {
	// pid is the process whose memory is measured.
	pid() int
	// mgmt is the bridge's OpenFlow socket, for ovs-ofctl.
	mgmt() string
	stop() error
}

// bridgeName is the bridge both switches get.
const bridgeName = "br0"

// ovsxdpDaemon is an ovsxdp daemon with its own control socket, state
// file and run directory in a temporary directory.
type ovsxdpDaemon struct {
	bin, dir, sock string
	p              *proc
}

func startOvsxdp(bin string) (_ *ovsxdpDaemon, err error) {
	dir, err := os.MkdirTemp("", "rules-ovsxdp-")
	if err != nil {
		return nil, err
	}
	d := &ovsxdpDaemon{bin: bin, dir: dir, sock: filepath.Join(dir, "ctl.sock")}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.stop())
		}
	}()
	// It runs in the host's namespace: its bridge gets no LOCAL port
	// (a TAP device there).
	c := exec.Command(bin, "daemon", "--socket", d.sock, "--state", filepath.Join(dir, "state.json"),
		"--rundir", filepath.Join(dir, "run"), "--log-level", "warn", "--local-port=false")
	if d.p, err = startProc("ovsxdp daemon", c, filepath.Join(dir, "daemon.log")); err != nil {
		return d, err
	}
	if err := waitFor(d.p, "answer on "+d.sock, func() error { _, err := d.cli(cmdTimeout, "show"); return err }); err != nil {
		return d, fmt.Errorf("%w (log %s)", err, filepath.Join(dir, "daemon.log"))
	}
	if _, err := d.cli(cmdTimeout, "add-br", bridgeName); err != nil {
		return d, err
	}
	return d, waitFor(d.p, "OpenFlow socket", func() error { _, err := os.Stat(d.mgmt()); return err })
}

func (d *ovsxdpDaemon) cli(timeout time.Duration, args ...string) (string, error) {
	out, _, err := d.cliCPU(timeout, args...)
	return out, err
}

func (d *ovsxdpDaemon) cliCPU(timeout time.Duration, args ...string) (string, time.Duration, error) {
	return runCPU(timeout, nil, d.bin, append([]string{"--socket", d.sock}, args...)...)
}

func (d *ovsxdpDaemon) pid() int     { return d.p.pid() }
func (d *ovsxdpDaemon) mgmt() string { return filepath.Join(d.dir, "run", bridgeName+".mgmt") }

func (d *ovsxdpDaemon) stop() error {
	err := d.p.stop()
	return errors.Join(err, os.RemoveAll(d.dir))
}

// ovsSwitch is a sandboxed Open vSwitch: ovsdb-server with a private
// database, and ovs-vswitchd in a network namespace of its own (unshare
// execs it in place, so its PID is the one started; the namespace, with the
// bridge's tap device, goes when it exits), one bridge on the userspace
// (netdev) datapath, fail-mode secure, no ports.
type ovsSwitch struct {
	dir    string
	env    []string
	db, vs *proc
}

// ovsSchema is Open vSwitch's database schema (Debian's openvswitch-common).
const ovsSchema = "/usr/share/openvswitch/vswitch.ovsschema"

func startOVS() (_ *ovsSwitch, err error) {
	dir, err := os.MkdirTemp("", "rules-ovs-") // short: unix socket paths are at most 108 bytes
	if err != nil {
		return nil, err
	}
	s := &ovsSwitch{dir: dir}
	s.env = append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_DBDIR="+dir, "OVS_LOGDIR="+dir, "OVS_SYSCONFDIR="+dir)
	defer func() {
		if err != nil {
			err = errors.Join(err, s.stop())
		}
	}()
	db := filepath.Join(dir, "conf.db")
	if _, err := run(cmdTimeout, s.env, "ovsdb-tool", "create", db, ovsSchema); err != nil {
		return s, err
	}
	dbSock := filepath.Join(dir, "db.sock")
	c := exec.Command("ovsdb-server", db, "--remote=punix:"+dbSock, "--no-chdir",
		"--unixctl="+s.ctl("ovsdb-server"), "--log-file="+filepath.Join(dir, "ovsdb-server.log"))
	c.Env = s.env
	if s.db, err = startProc("ovsdb-server", c, filepath.Join(dir, "ovsdb-server.out")); err != nil {
		return s, err
	}
	if err := waitFor(s.db, "control socket", func() error { return s.appctl("ovsdb-server", "version") }); err != nil {
		return s, err
	}
	if _, err := run(cmdTimeout, s.env, "ovs-vsctl", "--db=unix:"+dbSock, "--no-wait", "init"); err != nil {
		return s, err
	}
	c = exec.Command("unshare", "--net", "ovs-vswitchd", "unix:"+dbSock, "--no-chdir",
		"--unixctl="+s.ctl("ovs-vswitchd"), "--log-file="+filepath.Join(dir, "ovs-vswitchd.log"))
	c.Env = s.env
	if s.vs, err = startProc("ovs-vswitchd", c, filepath.Join(dir, "ovs-vswitchd.out")); err != nil {
		return s, err
	}
	if err := waitFor(s.vs, "control socket", func() error { return s.appctl("ovs-vswitchd", "version") }); err != nil {
		return s, err
	}
	if _, err := run(cmdTimeout, s.env, "ovs-vsctl", "--db=unix:"+dbSock, "--timeout=30", "add-br", bridgeName,
		"--", "set", "bridge", bridgeName, "datapath_type=netdev", "fail-mode=secure"); err != nil {
		return s, err
	}
	return s, waitFor(s.vs, "OpenFlow socket", func() error { _, err := os.Stat(s.mgmt()); return err })
}

func (s *ovsSwitch) ctl(daemon string) string { return filepath.Join(s.dir, daemon+".ctl") }

func (s *ovsSwitch) appctl(daemon string, args ...string) error {
	_, err := run(cmdTimeout, s.env, "ovs-appctl", append([]string{"-t", s.ctl(daemon), "--timeout=5"}, args...)...)
	return err
}

func (s *ovsSwitch) pid() int     { return s.vs.pid() }
func (s *ovsSwitch) mgmt() string { return filepath.Join(s.dir, bridgeName+".mgmt") }

// stop stops ovs-vswitchd, then ovsdb-server, by PID, and removes the
// sandbox.
func (s *ovsSwitch) stop() error {
	var errs []error
	if s.vs != nil {
		errs = append(errs, s.vs.stop())
	}
	if s.db != nil {
		errs = append(errs, s.db.stop())
	}
	errs = append(errs, os.RemoveAll(s.dir))
	return errors.Join(errs...)
}

// cpuTime returns the CPU time (user and system) that process pid has
// used so far, from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q: too few fields", pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// memory is a process's memory as /proc/PID/status reports it, in KiB.
type memory struct {
	rss, hwm int64 // VmRSS, VmHWM (the peak)
}

func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.rss
		case "VmHWM":
			dst = &m.hwm
		default:
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
		}
		*dst = n
	}
	if m.rss == 0 {
		return m, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return m, sc.Err()
}
