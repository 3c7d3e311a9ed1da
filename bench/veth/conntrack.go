package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The stateful-firewall configurations (ovsxdp-ct, ovs-ct) load the same
// flows as the conntrack differential test (test/conntrack_diff_test.go),
// with its TCP rule opened to the ports this harness uses: namespace a
// (OpenFlow port 1) may open TCP connections to iperf3 (5201) and to the
// echo server (echoPort) on b, ping b and send UDP to b; b's replies pass,
// and so do ICMP errors related to a's connections; b may open nothing;
// invalid packets are dropped, and so is everything else.
const (
	iperfPort = 5201
	echoPort  = 7007
)

var ctFlows = []string{
	"priority=100,arp,in_port=1,actions=output:2",
	"priority=100,arp,in_port=2,actions=output:1",
	"priority=90,ip,ct_state=-trk,actions=ct(table=1)",
	"table=1,priority=100,ct_state=+trk+inv,actions=drop",
	fmt.Sprintf("table=1,priority=90,ct_state=+trk+new,tcp,in_port=1,tp_dst=%d,actions=ct(commit),output:2", iperfPort),
	fmt.Sprintf("table=1,priority=90,ct_state=+trk+new,tcp,in_port=1,tp_dst=%d,actions=ct(commit),output:2", echoPort),
	"table=1,priority=90,ct_state=+trk+new,icmp,in_port=1,actions=ct(commit),output:2",
	"table=1,priority=90,ct_state=+trk+new,udp,in_port=1,actions=ct(commit),output:2",
	"table=1,priority=80,ct_state=+trk+est,in_port=1,actions=output:2",
	"table=1,priority=80,ct_state=+trk+est,in_port=2,actions=output:1",
	"table=1,priority=80,ct_state=+trk+rel,in_port=2,actions=output:1",
	"table=1,priority=0,actions=drop",
}

// ctChecker is a stateful configuration, which reports after the
// measurements what its tracker and its drop rules saw.
type ctChecker interface {
	conntrack() (ctReport, error)
}

// ctReport is a stateful configuration's account of a run: the
// connections its tracker held at the end (dpctl/ct-get-nconns) and the
// packets its +inv rule and its final drop rule took.
type ctReport struct {
	nconns           int
	invalid, dropped uint64
}

// ctReportOf asks for dpctl/ct-get-nconns with appctl and for the rules'
// counters with dumpFlows (ovs-ofctl dump-flows' output).
func ctReportOf(appctl func(args ...string) (string, error), dumpFlows func() (string, error)) (ctReport, error) {
	var r ctReport
	out, err := appctl("dpctl/ct-get-nconns")
	if err != nil {
		return r, err
	}
	if r.nconns, err = strconv.Atoi(strings.TrimSpace(out)); err != nil {
		return r, fmt.Errorf("dpctl/ct-get-nconns: %q: %w", out, err)
	}
	flows, err := dumpFlows()
	if err != nil {
		return r, err
	}
	if r.invalid, err = ruleCount(flows, invRule); err != nil {
		return r, err
	}
	if r.dropped, err = ruleCount(flows, lastRule); err != nil {
		return r, err
	}
	return r, nil
}

var (
	nPackets = regexp.MustCompile(`n_packets=(\d+)`)
	// invRule and lastRule find the +inv drop rule and the final drop
	// rule of table 1 in ovs-ofctl dump-flows' output (which orders
	// ct_state's flags its own way).
	invRule  = regexp.MustCompile(`\btable=1,.*\bct_state=[-+a-z]*\+inv\b`)
	lastRule = regexp.MustCompile(`\btable=1,.*\bpriority=0[ ,]`)
)

// ruleCount returns the packet count of the one flow of ovs-ofctl
// dump-flows' output that rule matches.
func ruleCount(flows string, rule *regexp.Regexp) (uint64, error) {
	var found []string
	for _, l := range strings.Split(flows, "\n") {
		if rule.MatchString(l) {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("dump-flows: %d flows match %s, want 1", len(found), rule)
	}
	m := nPackets.FindStringSubmatch(found[0])
	if m == nil {
		return 0, fmt.Errorf("dump-flows: no n_packets in %q", found[0])
	}
	return strconv.ParseUint(m[1], 10, 64)
}

// ovsxdpDaemonFwd runs the ovsxdp daemon (the CLI built from ./cmd/ovsxdp)
// in the switch namespace with the bridge br-bench and two afxdp ports,
// and loads flows with ovs-ofctl on the bridge's OpenFlow socket: the
// tracker is the daemon's.
type ovsxdpDaemonFwd struct {
	flows []string

	dir    string
	bin    string
	daemon *exec.Cmd
	log    *os.File
	// bridges are the bridges stop deletes.
	bridges []string
}

// ovsxdpBin is the CLI, built once per run of the harness.
var ovsxdpBin struct {
	once sync.Once
	path string
	err  error
}

// buildOvsxdp builds ./cmd/ovsxdp into a temporary directory, once, and
// returns the binary's path.
func buildOvsxdp() (string, error) {
	ovsxdpBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "vethbench-bin-")
		if err != nil {
			ovsxdpBin.err = err
			return
		}
		bin := filepath.Join(dir, "ovsxdp")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/ovsxdp/ovsxdp/cmd/ovsxdp").CombinedOutput()
		if err != nil {
			ovsxdpBin.err = fmt.Errorf("go build ./cmd/ovsxdp: %w: %s", err, out)
			return
		}
		ovsxdpBin.path = bin
	})
	return ovsxdpBin.path, ovsxdpBin.err
}

// removeOvsxdpBin removes the binary built by buildOvsxdp, if any.
func removeOvsxdpBin() {
	if ovsxdpBin.path != "" {
		os.RemoveAll(filepath.Dir(ovsxdpBin.path))
	}
}

func (f *ovsxdpDaemonFwd) start(t *topo) error {
	if err := ensureOVS(); err != nil { // for ovs-ofctl
		return err
	}
	if err := f.launch(t.sw); err != nil {
		return err
	}
	f.bridges = []string{"br-bench"}
	if _, err := f.cli("add-br", "br-bench"); err != nil {
		return err
	}
	for i, dev := range []string{t.hostA, t.hostB} {
		if _, err := f.cli("add-port", "br-bench", dev, "type=afxdp", fmt.Sprintf("ofport=%d", i+1)); err != nil {
			return err
		}
	}
	_, err := f.ofctl(strings.Join(f.flows, "\n")+"\n", "add-flows", "-")
	return err
}

// launch builds the CLI (once per run) and starts its daemon in
// namespace ns, with its socket and run directory in a private
// directory, and waits until it answers.
func (f *ovsxdpDaemonFwd) launch(ns string) error {
	bin, err := buildOvsxdp()
	if err != nil {
		return err
	}
	f.bin = bin
	if f.dir, err = os.MkdirTemp("", "vethbench-ovsxdp-"); err != nil {
		return err
	}
	if f.log, err = os.Create(filepath.Join(f.dir, "daemon.log")); err != nil {
		return err
	}
	// ip netns exec execs the daemon in place: the child's PID is the
	// daemon's.
	f.daemon = exec.Command("ip", "netns", "exec", ns, bin, "daemon", "--socket", f.sock(), "--state", "",
		"--rundir", filepath.Join(f.dir, "run"), "--local-port=false", "--log-level", "warn")
	f.daemon.Stdout, f.daemon.Stderr = f.log, f.log
	f.daemon.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := f.daemon.Start(); err != nil {
		return fmt.Errorf("ovsxdp daemon: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		f.daemon.Process.Wait() //nolint:errcheck // only whether it has exited matters here
		close(exited)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := f.cli("version"); err == nil {
			break
		}
		select {
		case <-exited:
			f.daemon = nil
			return fmt.Errorf("ovsxdp daemon exited: %s", f.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ovsxdp daemon does not answer after 20s: %s", f.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func (f *ovsxdpDaemonFwd) sock() string { return filepath.Join(f.dir, "ovsxdp.sock") }

// cli runs the ovsxdp CLI against the daemon.
func (f *ovsxdpDaemonFwd) cli(args ...string) (string, error) {
	return sh(f.bin, append([]string{"--socket", f.sock()}, args...)...)
}

// ofctl runs ovs-ofctl against the bridge's OpenFlow socket, with stdin.
func (f *ovsxdpDaemonFwd) ofctl(stdin, cmd string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	all := append([]string{"--timeout=30", cmd, "unix:" + filepath.Join(f.dir, "run", "br-bench.mgmt")}, args...)
	c := exec.CommandContext(ctx, "ovs-ofctl", all...)
	c.Stdin = strings.NewReader(stdin)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ovs-ofctl %s: %w: %s", strings.Join(all, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (f *ovsxdpDaemonFwd) logTail() string {
	b, _ := os.ReadFile(filepath.Join(f.dir, "daemon.log"))
	if len(b) > 500 {
		b = b[len(b)-500:]
	}
	return strings.TrimSpace(string(b))
}

func (f *ovsxdpDaemonFwd) pid() int {
	if f.daemon == nil || f.daemon.Process == nil {
		return 0
	}
	return f.daemon.Process.Pid
}

func (f *ovsxdpDaemonFwd) conntrack() (ctReport, error) {
	return ctReportOf(f.cli, func() (string, error) { return f.ofctl("", "dump-flows") })
}

// stop deletes the bridges (their ports detach their XDP programs), then
// stops the daemon by PID.
func (f *ovsxdpDaemonFwd) stop() error {
	var errs []error
	if f.daemon != nil && f.daemon.Process != nil {
		for _, br := range f.bridges {
			if _, err := f.cli("del-br", br); err != nil && !strings.Contains(err.Error(), "no bridge") {
				errs = append(errs, err)
			}
		}
		errs = append(errs, stopProc(f.daemon, "ovsxdp daemon"))
		f.daemon = nil
	}
	if f.log != nil {
		errs = append(errs, f.log.Close())
		f.log = nil
	}
	if f.dir != "" {
		errs = append(errs, os.RemoveAll(f.dir))
		f.dir = ""
	}
	return errors.Join(errs...)
}

// conntrack is ovs-ct's account of the run.
func (f *ovsFwd) conntrack() (ctReport, error) {
	appctl := func(args ...string) (string, error) {
		return f.cmd("ovs-appctl", append([]string{"-t", filepath.Join(f.dir, "ovs-vswitchd.ctl")}, args...)...)
	}
	return ctReportOf(appctl, func() (string, error) { return f.cmd("ovs-ofctl", "dump-flows", "br-bench") })
}

// Roles of this binary for the connection-rate test.
const (
	echoRole = "-vethbench-echo"
	connRole = "-vethbench-conns"
)

// connParallel is how many connections the generator keeps open at once.
const connParallel = 16

// connPayload is what the generator sends on each connection and expects
// back.
var connPayload = []byte("vethbench-ping16")

// echoServer listens on addr and, on each connection, echoes what it
// reads until the peer closes. It prints "listening" once it listens.
func echoServer(addr string) error {
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		return err
	}
	fmt.Println("listening")
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				time.Sleep(time.Millisecond)
				continue
			}
			return err
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck // a stuck peer is dropped
			io.Copy(c, c)                                   //nolint:errcheck // the peer's close or reset ends it
		}()
	}
}

// connGenerator opens and closes TCP connections to dst for d, with
// connParallel of them at a time: connect, send connPayload, read it back,
// close. It prints how many completed, how many failed, in how long, and
// the first errors of each kind.
func connGenerator(dst string, d time.Duration) error {
	var done, failed atomic.Int64
	var mu sync.Mutex
	kinds := map[string]int{}
	var order []string
	fail := func(err error) {
		failed.Add(1)
		k := errKind(err)
		mu.Lock()
		if kinds[k] == 0 {
			order = append(order, k)
		}
		kinds[k]++
		mu.Unlock()
	}
	// used marks the source ports of completed connections: as many
	// distinct 4-tuples as the tracker must hold afterwards (a port the
	// client reuses from TIME_WAIT replaces its earlier connection).
	var used [1 << 16]atomic.Bool
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for range connParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, len(connPayload))
			for time.Now().Before(end) {
				c, err := net.DialTimeout("tcp4", dst, 3*time.Second)
				if err != nil {
					fail(err)
					continue
				}
				port := c.LocalAddr().(*net.TCPAddr).Port
				c.SetDeadline(time.Now().Add(3 * time.Second)) //nolint:errcheck // the read fails instead
				if _, err = c.Write(connPayload); err == nil {
					_, err = io.ReadFull(c, buf)
				}
				if cerr := c.Close(); err == nil {
					err = cerr
				}
				if err == nil && string(buf) != string(connPayload) {
					err = errors.New("reply differs")
				}
				if err != nil {
					fail(err)
					continue
				}
				done.Add(1)
				used[port].Store(true)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	ports := 0
	for i := range used {
		if used[i].Load() {
			ports++
		}
	}
	fmt.Printf("connections %d failures %d ports %d in %g\n", done.Load(), failed.Load(), ports, secs)
	for _, k := range order {
		fmt.Printf("%d× %s\n", kinds[k], k)
	}
	return nil
}

// errKind names an error without the parts that differ per connection
// (addresses and ports).
func errKind(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed by the server before the reply"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return err.Error()
}

// connResult is the generator's account.
type connResult struct {
	perSec   float64
	done     int
	failures int
	// ports is how many distinct source ports the completed connections
	// used.
	ports int
	// errors lists the failures by kind, "N× kind; ...".
	errors string
}

// measureConns runs the connection generator in a against the echo
// server on b for d. Namespace a gets the whole port range and reuses
// ports in TIME_WAIT (the client closes first), so that it does not run
// out of ports at tens of thousands of connections.
func measureConns(ctx context.Context, t *topo, d time.Duration) (connResult, error) {
	var r connResult
	if _, err := t.inNS(t.a, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1"); err != nil {
		return r, err
	}
	exe, err := os.Executable()
	if err != nil {
		return r, err
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", t.a, exe, connRole, net.JoinHostPort(t.ipB, strconv.Itoa(echoPort)), d.String()).CombinedOutput()
	if err != nil {
		return r, fmt.Errorf("connection generator: %w: %.300s", err, out)
	}
	first, rest, _ := strings.Cut(string(out), "\n")
	var secs float64
	if _, err := fmt.Sscanf(first, "connections %d failures %d ports %d in %g", &r.done, &r.failures, &r.ports, &secs); err != nil || secs <= 0 {
		return r, fmt.Errorf("connection generator output %q: %v", out, err)
	}
	r.perSec = float64(r.done) / secs
	r.errors = strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(rest), "\n", "; ")), " ")
	if r.done == 0 {
		return r, fmt.Errorf("connection generator: no connection completed (%d failed: %s)", r.failures, r.errors)
	}
	return r, nil
}

// startEchoServer starts the echo server in b and waits until it
// listens.
func startEchoServer(t *topo) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := exec.Command("ip", "netns", "exec", t.b, exe, echoRole, net.JoinHostPort(t.ipB, strconv.Itoa(echoPort)))
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.Stderr = c.Stdout
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("echo server: %w", err)
	}
	line := make(chan string, 1)
	go func() {
		b := make([]byte, 256)
		n, _ := stdout.Read(b)
		line <- string(b[:n])
		io.Copy(io.Discard, stdout) //nolint:errcheck // drained until it exits
	}()
	select {
	case l := <-line:
		if strings.TrimSpace(l) == "listening" {
			return c, nil
		}
		stopProc(c, "echo server") //nolint:errcheck // it failed already
		return nil, fmt.Errorf("echo server: %s", strings.TrimSpace(l))
	case <-time.After(20 * time.Second):
		stopProc(c, "echo server") //nolint:errcheck // it did not start
		return nil, errors.New("echo server: not listening after 20s")
	}
}
