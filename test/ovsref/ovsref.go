// Package ovsref runs a sandboxed Open vSwitch (ovsdb-server and
// ovs-vswitchd of the Debian package openvswitch-switch) for one test, as a
// reference to compare ovsxdp with: a private database, run and log
// directory, ovs-vswitchd inside a network namespace the test creates, one
// bridge with the userspace (netdev) datapath, fail-mode secure and
// internal ports with chosen OpenFlow port numbers. Both daemons are child
// processes of the test, stopped by PID when it ends, whether it passed or
// failed, or by a later test process if it was killed (stale.go); the tap devices of the bridge and its internal ports are
// deleted, then the namespace (see taps.go). StartShared lends one such switch to one test at a time
// instead, for the tests that need only their bridge; the package's
// TestMain stops it with StopShared.
//
// Without root or without Open vSwitch the test is skipped with the
// reason, or failed under CI=true (test/testenv).
package ovsref

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// Schema is the OVSDB schema of Open vSwitch's configuration database.
const Schema = "/usr/share/openvswitch/vswitch.ovsschema"

// StartTimeout bounds how long a daemon may take to answer on its control
// socket; CommandTimeout bounds every command run against the daemons.
// Both are generous: CI machines are loaded.
var (
	StartTimeout   = 30 * time.Second
	CommandTimeout = 30 * time.Second
)

// Port is an internal port of the bridge and its OpenFlow port number.
type Port struct {
	Name   string
	OFPort int
}

// Switch is a running sandboxed Open vSwitch with one bridge.
type Switch struct {
	Bridge string
	Dir    string // OVS_RUNDIR, OVS_DBDIR, OVS_LOGDIR and OVS_SYSCONFDIR
	Ports  []Port

	env      []string
	ns       *netns.NS
	db, vs   *exec.Cmd
	dbExit   chan error
	vsExit   chan error
	odpNames map[int]string // datapath port number → port name
}

// Require skips the test (fails it under CI=true) unless it runs as root
// and Open vSwitch's daemons and tools are installed.
func Require(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-ofctl", "ovs-appctl"} {
		testenv.RequireTool(t, tool, "openvswitch-common")
	}
	testenv.RequireTool(t, "ovs-vswitchd", "openvswitch-switch")
	if _, err := os.Stat(Schema); err != nil {
		testenv.Missing(t, "Open vSwitch's database schema: %v (install openvswitch-common, or run `make deps`)", err)
	}
}

// Start starts ovsdb-server and ovs-vswitchd for the test and creates the
// bridge with its ports, all up. The daemons are stopped, and their logs
// printed if the test failed, when the test ends. A test that needs
// nothing of the daemons but its bridge takes StartShared.
func Start(t testing.TB, bridge string, ports []Port) *Switch {
	t.Helper()
	Require(t)
	if err := sweepStale(); err != nil {
		t.Fatal(err)
	}
	s, err := newSwitch("ovsref-", netns.New(t, "ovs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stop(t) })
	if err := s.startDaemons(); err != nil {
		t.Fatal(err)
	}
	if err := s.addBridge(bridge, ports); err != nil {
		t.Fatal(err)
	}
	return s
}

// newSwitch makes the sandbox directory of a switch whose ovs-vswitchd
// will run in ns.
func newSwitch(prefix string, ns *netns.NS) (*Switch, error) {
	dir, err := makeRunDir(prefix)
	if err != nil {
		return nil, err
	}
	s := &Switch{Dir: dir, ns: ns}
	s.env = append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_DBDIR="+dir, "OVS_LOGDIR="+dir, "OVS_SYSCONFDIR="+dir)
	return s, nil
}

// startDaemons creates the database and starts ovsdb-server and
// ovs-vswitchd on it; stop stops whatever of them started.
func (s *Switch) startDaemons() error {
	db := filepath.Join(s.Dir, "conf.db")
	if _, err := s.run(nil, "ovsdb-tool", "create", db, Schema); err != nil {
		return err
	}
	s.db = exec.Command("ovsdb-server", db, "--remote=punix:"+s.dbSock(), "--no-chdir",
		"--pidfile="+filepath.Join(s.Dir, "ovsdb-server.pid"), "--unixctl="+s.ctl("ovsdb-server"),
		"--log-file="+filepath.Join(s.Dir, "ovsdb-server.log"))
	var err error
	if s.dbExit, err = s.startProc(s.db, "ovsdb-server"); err != nil {
		return err
	}
	if err := s.waitCtl("ovsdb-server", s.dbExit); err != nil {
		return err
	}
	if _, err := s.vsctl("--no-wait", "init"); err != nil {
		return err
	}

	// ovs-vswitchd runs in the namespace, where it creates the tap devices
	// of the internal ports; its pid is the process the test started.
	s.vs = s.ns.Namespace.Command(context.Background(), "ovs-vswitchd", "unix:"+s.dbSock(), "--no-chdir",
		"--pidfile="+filepath.Join(s.Dir, "ovs-vswitchd.pid"), "--unixctl="+s.ctl("ovs-vswitchd"),
		"--log-file="+filepath.Join(s.Dir, "ovs-vswitchd.log"))
	if s.vsExit, err = s.startProc(s.vs, "ovs-vswitchd"); err != nil {
		return err
	}
	return s.waitCtl("ovs-vswitchd", s.vsExit)
}

// addBridge creates the bridge with its internal ports, all up, and makes
// it the switch's.
func (s *Switch) addBridge(bridge string, ports []Port) error {
	s.Bridge, s.Ports = bridge, ports
	args := []string{"--timeout=30", "add-br", bridge, "--", "set", "bridge", bridge,
		"datapath_type=netdev", "fail-mode=secure"}
	for _, p := range ports {
		args = append(args, "--", "add-port", bridge, p.Name, "--", "set", "interface", p.Name,
			"type=internal", fmt.Sprintf("ofport_request=%d", p.OFPort))
	}
	if _, err := s.vsctl(args...); err != nil {
		return err
	}
	for _, p := range ports {
		out, err := s.vsctl("get", "interface", p.Name, "ofport")
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(out); got != strconv.Itoa(p.OFPort) {
			return fmt.Errorf("port %s has ofport %s, want %d (log: %s)", p.Name, got, p.OFPort, s.log("ovs-vswitchd"))
		}
		// Up, so that group liveness (fast_failover) sees them alive.
		if err := s.ns.Namespace.SetLinkUp(p.Name); err != nil {
			return err
		}
	}
	if err := s.markTaps(); err != nil {
		return err
	}
	// The bridge's own (LOCAL) port has no counterpart in ovsxdp: keep it
	// out of flooding.
	if _, err := s.Ofctl("mod-port", bridge, bridge, "no-flood"); err != nil {
		return err
	}
	return s.loadPortMap()
}

func (s *Switch) dbSock() string           { return filepath.Join(s.Dir, "db.sock") }
func (s *Switch) ctl(daemon string) string { return filepath.Join(s.Dir, daemon+".ctl") }
func (s *Switch) log(daemon string) string { return filepath.Join(s.Dir, daemon+".log") }
func (s *Switch) vsctl(args ...string) (string, error) {
	return s.run(nil, "ovs-vsctl", append([]string{"--db=unix:" + s.dbSock()}, args...)...)
}

// startProc starts a daemon in a process group of its own and returns a
// channel that receives its exit.
func (s *Switch) startProc(c *exec.Cmd, name string) (chan error, error) {
	c.Env = s.env
	var out bytes.Buffer // the daemons log to their files too
	c.Stdout, c.Stderr = &out, &out
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	return exited, nil
}

// waitCtl polls the daemon's control socket until it answers, the daemon
// exits or StartTimeout passes.
func (s *Switch) waitCtl(name string, exited chan error) error {
	deadline := time.Now().Add(StartTimeout)
	for {
		if _, err := s.run(nil, "ovs-appctl", "-t", s.ctl(name), "version"); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("%s exited at start: %v\n%s", name, err, s.readLog(name))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer on %s after %v\n%s", name, s.ctl(name), StartTimeout, s.readLog(name))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Switch) readLog(name string) string {
	b, err := os.ReadFile(s.log(name))
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// logProblems returns the lines of a daemon's log above level INFO.
func (s *Switch) logProblems(name string) string {
	var out []string
	for _, l := range strings.Split(s.readLog(name), "\n") {
		if strings.Contains(l, "|WARN|") || strings.Contains(l, "|ERR|") || strings.Contains(l, "|EMER|") || strings.HasPrefix(l, "(no log") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// stop asks each daemon to exit through its control socket, kills it by
// PID if it has not within 10 s, and removes the sandbox directory.
func (s *Switch) stop(t testing.TB) {
	if t.Failed() {
		for _, name := range []string{"ovs-vswitchd", "ovsdb-server"} {
			if name == "ovs-vswitchd" && s.vs == nil {
				continue // ovsdb-server alone (StartDB)
			}
			if l := s.logProblems(name); l != "" {
				t.Logf("%s logged:\n%s", name, l)
			}
		}
	}
	if err := s.stopDaemons(); err != nil {
		t.Error(err)
	}
}

// stopDaemons stops the daemons as stop does, without a test, and
// deletes the taps ovs-vswitchd left in its namespace.
func (s *Switch) stopDaemons() error {
	var errs []error
	for _, d := range []struct {
		name   string
		cmd    *exec.Cmd
		exited chan error
	}{{"ovs-vswitchd", s.vs, s.vsExit}, {"ovsdb-server", s.db, s.dbExit}} {
		if d.exited == nil {
			continue
		}
		s.run(nil, "ovs-appctl", "-t", s.ctl(d.name), "--timeout=5", "exit") // it may be gone already
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-d.exited:
			case <-time.After(10 * time.Second):
				errs = append(errs, fmt.Errorf("%s (pid %d) does not exit after SIGKILL", d.name, d.cmd.Process.Pid))
			}
		}
	}
	if s.vs != nil && len(errs) == 0 {
		// Exited without deleting its bridges, or killed: their taps
		// are still there, persistent.
		errs = append(errs, deleteTaps(s.ns.Namespace))
	}
	if err := os.RemoveAll(s.Dir); err != nil {
		errs = append(errs, fmt.Errorf("cleanup: %w", err))
	}
	return errors.Join(errs...)
}

// run runs a tool with the sandbox's environment, bounded by
// CommandTimeout, stdin from stdin if not nil; the error includes the
// command line and its standard error.
func (s *Switch) run(stdin []byte, name string, args ...string) (string, error) {
	out, _, err := s.runStderr(stdin, name, args...)
	return out, err
}

// runStderr is run that returns the standard error too.
func (s *Switch) runStderr(stdin []byte, name string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Env = s.env
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v: %w", CommandTimeout, err)
		}
		return stdout.String(), stderr.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), nil
}

// Vsctl runs ovs-vsctl against the switch's database, bounded by
// CommandTimeout, and returns its standard output; the error includes its
// standard error.
func (s *Switch) Vsctl(args ...string) (string, error) { return s.vsctl(args...) }

// Ofctl runs ovs-ofctl with args and returns its standard output.
func (s *Switch) Ofctl(args ...string) (string, error) {
	return s.run(nil, "ovs-ofctl", args...)
}

// OfctlStderr runs ovs-ofctl with args and returns its standard output
// and standard error, for a command that is expected to fail.
func (s *Switch) OfctlStderr(args ...string) (stdout, stderr string, err error) {
	return s.runStderr(nil, "ovs-ofctl", args...)
}

// Appctl runs ovs-appctl against ovs-vswitchd.
//
// It speaks ovs-appctl's protocol itself (JSON-RPC 1.0 on ovs-vswitchd's
// unixctl socket: one request, one reply) rather than starting ovs-appctl
// for each command: a differential run traces about a thousand
// microflows.
func (s *Switch) Appctl(args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("ovs-appctl: no command")
	}
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("ovs-appctl %s: %w", strings.Join(args, " "), err)
	}
	c, err := net.DialTimeout("unix", s.ctl("ovs-vswitchd"), CommandTimeout)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(CommandTimeout))
	params := args[1:]
	if params == nil {
		params = []string{}
	}
	req := struct {
		Method string   `json:"method"`
		Params []string `json:"params"`
		ID     int      `json:"id"`
	}{args[0], params, 0}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return fail(err)
	}
	var reply struct {
		Result *string          `json:"result"`
		Error  *json.RawMessage `json:"error"`
	}
	if err := json.NewDecoder(c).Decode(&reply); err != nil {
		return fail(err)
	}
	if reply.Error != nil && string(*reply.Error) != "null" {
		var msg string
		if json.Unmarshal(*reply.Error, &msg) != nil {
			msg = string(*reply.Error)
		}
		return fail(errors.New(strings.TrimSpace(msg)))
	}
	if reply.Result == nil {
		return fail(errors.New("a reply without a result"))
	}
	return *reply.Result, nil
}

// AddFlows adds the flows of text (ovs-ofctl add-flows syntax) with
// OpenFlow version proto (such as "OpenFlow15"; "" lets ovs-ofctl choose).
func (s *Switch) AddFlows(proto, text string) error {
	_, err := s.run([]byte(text), "ovs-ofctl", append(protoArgs(proto), "add-flows", s.Bridge, "-")...)
	return err
}

// AddGroups adds the groups of text (ovs-ofctl add-groups syntax), with
// OpenFlow 1.5 unless proto names another version.
func (s *Switch) AddGroups(proto, text string) error {
	if proto == "" {
		proto = "OpenFlow15"
	}
	_, err := s.run([]byte(text), "ovs-ofctl", append(protoArgs(proto), "add-groups", s.Bridge, "-")...)
	return err
}

// DelFlows deletes every flow and group.
func (s *Switch) DelFlows() error {
	if _, err := s.Ofctl("del-flows", s.Bridge); err != nil {
		return err
	}
	_, err := s.Ofctl("-O", "OpenFlow15", "del-groups", s.Bridge)
	return err
}

// DumpFlows returns `ovs-ofctl dump-flows --no-stats` normalised by
// NormaliseDump.
func (s *Switch) DumpFlows(proto string) (string, error) {
	out, err := s.run(nil, "ovs-ofctl", append(protoArgs(proto), "dump-flows", "--no-stats", s.Bridge)...)
	if err != nil {
		return "", err
	}
	return NormaliseDump(out), nil
}

// DumpGroups returns `ovs-ofctl dump-groups` with OpenFlow version proto
// (OpenFlow 1.5 when empty), normalised by NormaliseDump.
func (s *Switch) DumpGroups(proto string) (string, error) {
	if proto == "" {
		proto = "OpenFlow15"
	}
	out, err := s.run(nil, "ovs-ofctl", append(protoArgs(proto), "dump-groups", s.Bridge)...)
	if err != nil {
		return "", err
	}
	return NormaliseDump(out), nil
}

// DumpGroupStats returns `ovs-ofctl dump-group-stats` (in ovs-ofctl's
// default dialect) normalised by NormaliseGroupStats.
func (s *Switch) DumpGroupStats() (string, error) {
	out, err := s.run(nil, "ovs-ofctl", "dump-group-stats", s.Bridge)
	if err != nil {
		return "", err
	}
	return NormaliseGroupStats(out), nil
}

var (
	groupStatsHeader = regexp.MustCompile(`^(NXST|OFPST)_GROUP reply`)
	groupDuration    = regexp.MustCompile(`,duration=[0-9.]+s,`)
)

// NormaliseGroupStats turns dump-group-stats output into one group a line
// without the reply header and without the duration (which differs run to
// run), sorted.
func NormaliseGroupStats(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || groupStatsHeader.MatchString(l) {
			continue
		}
		lines = append(lines, groupDuration.ReplaceAllString(l, ","))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func protoArgs(proto string) []string {
	if proto == "" {
		return nil
	}
	return []string{"-O", proto}
}

var replyHeader = regexp.MustCompile(`^(NXST|OFPST)_FLOW reply|^OFPST_FLOW_DESC reply|^OFPST_FLOW reply|^(NXST|OFPST)_GROUP_DESC reply`)

// NormaliseDump turns dump-flows (or dump-groups) output into one flow (or
// group) a line, without
// the reply header, leading and trailing space, sorted, so that two
// switches that list the same flows in a different order compare equal.
func NormaliseDump(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || replyHeader.MatchString(l) {
			continue
		}
		lines = append(lines, l)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// Trace runs ofproto/trace for the microflow (such as
// "in_port=1,ip,nw_dst=10.0.0.1") and parses its output.
func (s *Switch) Trace(microflow string) (*Trace, error) {
	return s.trace(microflow)
}

// TraceGenerate runs ofproto/trace -generate for the microflow: the
// packet's side effects (learned flows) take place.
func (s *Switch) TraceGenerate(microflow string) (*Trace, error) {
	return s.trace(microflow, "-generate")
}

func (s *Switch) trace(microflow string, opts ...string) (*Trace, error) {
	out, err := s.Appctl(append([]string{"ofproto/trace", s.Bridge, microflow}, opts...)...)
	if err != nil {
		return nil, err
	}
	tr, err := ParseTrace(out)
	if err != nil {
		return nil, fmt.Errorf("ofproto/trace %s: %w\n%s", microflow, err, out)
	}
	return tr, nil
}

// PortName returns the name of the port with datapath port number odp.
func (s *Switch) PortName(odp int) (string, bool) {
	n, ok := s.odpNames[odp]
	return n, ok
}

// OFPort returns the OpenFlow port number of the named port.
func (s *Switch) OFPort(name string) (int, bool) {
	for _, p := range s.Ports {
		if p.Name == name {
			return p.OFPort, true
		}
	}
	return 0, false
}

// dpifPort is a line of `ovs-appctl dpif/show`: "    p1 1/2: (tap)".
var dpifPort = regexp.MustCompile(`^\s+(\S+) (\d+)/(\d+):`)

// loadPortMap reads which datapath port number each port has: the numbers
// in "Datapath actions:" are those, not OpenFlow port numbers.
func (s *Switch) loadPortMap() error {
	out, err := s.Appctl("dpif/show")
	if err != nil {
		return err
	}
	s.odpNames = map[int]string{}
	for _, l := range strings.Split(out, "\n") {
		m := dpifPort.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		odp, _ := strconv.Atoi(m[3])
		s.odpNames[odp] = m[1]
	}
	for _, p := range s.Ports {
		found := false
		for _, n := range s.odpNames {
			found = found || n == p.Name
		}
		if !found {
			return fmt.Errorf("dpif/show does not list port %s:\n%s", p.Name, out)
		}
	}
	return nil
}

// NS is the namespace ovs-vswitchd runs in: devices that AddAFXDPPort
// opens must be there.
func (s *Switch) NS() *netns.NS { return s.ns }

// VswitchdPID is the process ID of the switch's ovs-vswitchd.
func (s *Switch) VswitchdPID() int { return s.vs.Process.Pid }

// AddAFXDPPort adds device dev of the switch's namespace to the bridge as
// an AF_XDP port (type=afxdp, one rx queue) with OpenFlow port number
// ofport, and refreshes the port map.
func (s *Switch) AddAFXDPPort(dev string, ofport int) error {
	if _, err := s.vsctl("--timeout=30", "add-port", s.Bridge, dev, "--", "set", "interface", dev,
		"type=afxdp", "options:n_rxq=1", fmt.Sprintf("ofport_request=%d", ofport)); err != nil {
		return err
	}
	out, err := s.vsctl("get", "interface", dev, "ofport")
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(out); got != strconv.Itoa(ofport) {
		return fmt.Errorf("port %s has ofport %s, want %d (see %s)", dev, got, ofport, s.log("ovs-vswitchd"))
	}
	s.Ports = append(s.Ports, Port{Name: dev, OFPort: ofport})
	return s.loadPortMap()
}
