package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/vport/nldump"
	vtopo "github.com/ovsxdp/ovsxdp/vport/topo"
)

// ovsxdpDriver runs the ovsxdp daemon, built from this tree, as a process
// in the switch namespace, configured and read through its control socket
// with the requests the CLI sends.
type ovsxdpDriver struct {
	bin    string // the ovsxdp binary
	policy string

	dir  string
	proc *vtopo.Process
	e    *Env
	pid  int
	// past is the output of the daemon's processes before the current one.
	past []string
	// lockups is the watchdog's count of soft lockups at the last check,
	// for the current process (its count starts at 0).
	lockups, spinning int
	// txOver is the sum of the ports' transmits on a tx queue at or above
	// the count at the last check, for the current process.
	txOver uint64
}

const (
	bridgeName = "br0"
	pprofAddr  = "127.0.0.1:6060" // inside the switch namespace
	cliTimeout = 20 * time.Second
)

func (d *ovsxdpDriver) Name() string { return "ovsxdp-" + d.policy }

func (d *ovsxdpDriver) Start(e *Env) error {
	dir, err := os.MkdirTemp("", "chaos-ovsxdp-")
	if err != nil {
		return err
	}
	d.dir, d.e = dir, e
	if err := d.startDaemon(); err != nil {
		return err
	}
	if _, err := d.config(request{Verb: "add-br", Args: []string{bridgeName}, Flags: map[string]string{"policy": d.policy, "pmds": "1"}}); err != nil {
		return err
	}
	var flows []string
	for i := range e.Slots {
		if err := d.AddPort(e, i); err != nil {
			return err
		}
		flows = append(flows, fmt.Sprintf("dl_dst=%s,actions=output:%d", slotMAC(i), OFPort(i)))
	}
	_, err = d.config(request{Verb: "add-flows", Args: []string{bridgeName}, Input: flows})
	return err
}

func (d *ovsxdpDriver) startDaemon() error {
	p, err := d.e.SW.Start(d.bin, "daemon", "--socket", filepath.Join(d.dir, "ovsxdp.sock"),
		"--state", filepath.Join(d.dir, "state.json"), "--rundir", filepath.Join(d.dir, "run"), "--pprof", pprofAddr,
		"--log-level", "debug") // the link monitor's record of link events is at debug level
	if err != nil {
		return err
	}
	d.proc, d.pid, d.lockups, d.spinning, d.txOver = p, p.Cmd.Process.Pid, 0, 0, 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := d.Answers(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("the daemon does not answer: %w (exited: %v): %s", err, p.Exited(), tail(quiet(p.Output())))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// request is one request to the daemon's control socket, as the CLI
// sends it: the verb, its arguments, its flags by name and the lines of
// the file it reads (add-flows).
type request struct {
	Verb  string            `json:"verb"`
	Args  []string          `json:"args,omitempty"`
	Flags map[string]string `json:"flags,omitempty"`
	Input []string          `json:"input,omitempty"`
}

// query sends one request to the daemon's control socket, as the CLI
// does (one JSON request per line, one JSON response per line), and
// returns its output.
func (d *ovsxdpDriver) query(ctx context.Context, verb string, args ...string) (string, error) {
	return d.send(ctx, request{Verb: verb, Args: args})
}

// config sends a configuration request (add-br, add-port, ...) bounded
// by cliTimeout. The driver speaks the control protocol itself rather
// than running the CLI: a CLI process costs 0.1 to 0.3 s of start-up on
// a loaded machine, the request itself microseconds, and the daemon
// handles the same request either way.
func (d *ovsxdpDriver) config(r request) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	return d.send(ctx, r)
}

func (d *ovsxdpDriver) send(ctx context.Context, r request) (string, error) {
	verb, args := r.Verb, r.Args
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "unix", filepath.Join(d.dir, "ovsxdp.sock"))
	if err != nil {
		return "", fmt.Errorf("ovsxdp %s: %w", verb, err)
	}
	defer c.Close()
	if end, ok := ctx.Deadline(); ok {
		c.SetDeadline(end)
	}
	req, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	if _, err := c.Write(append(req, '\n')); err != nil {
		return "", fmt.Errorf("ovsxdp %s: %w", verb, err)
	}
	line, err := bufio.NewReaderSize(c, 64<<10).ReadBytes('\n')
	if err != nil {
		return "", fmt.Errorf("ovsxdp %s: no response: %w", verb, err)
	}
	var resp struct {
		Output string `json:"output"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return "", fmt.Errorf("ovsxdp %s: response %q: %w", verb, tail(string(line)), err)
	}
	if resp.Error != "" {
		return resp.Output, fmt.Errorf("ovsxdp %s %s: %s", verb, strings.Join(args, " "), resp.Error)
	}
	return resp.Output, nil
}

func (d *ovsxdpDriver) AddPort(e *Env, i int) error {
	_, err := d.config(request{Verb: "add-port", Args: []string{bridgeName, hostName(i), "type=afxdp", "ofport=" + strconv.Itoa(OFPort(i))}})
	return err
}

func (d *ovsxdpDriver) DelPort(e *Env, i int) error {
	_, err := d.config(request{Verb: "del-port", Args: []string{bridgeName, hostName(i)}})
	return err
}

// Relink: the daemon takes a device of a configured port's name back by
// itself.
func (d *ovsxdpDriver) Relink(*Env, int, slotState) error { return nil }

func (d *ovsxdpDriver) Restart(e *Env, sig syscall.Signal) error {
	err := stopProcess(d.proc, sig, "the daemon")
	d.past = append(d.past, d.proc.Output())
	if err != nil {
		return err
	}
	return d.startDaemon()
}

// LinkRecord is the output of every daemon process since Start, where the
// link monitor records the link events it saw.
func (d *ovsxdpDriver) LinkRecord() []string {
	out := slices.Clone(d.past)
	if d.proc != nil {
		out = append(out, d.proc.Output())
	}
	return out
}

// quiet drops the daemon's debug lines other than the link monitor's
// from its output, for error messages.
func quiet(out string) string {
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "level=DEBUG") && !strings.Contains(line, `msg="link monitor: `) {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

func (d *ovsxdpDriver) Answers(ctx context.Context) error {
	_, err := d.query(ctx, "show")
	return err
}

func (d *ovsxdpDriver) Stop() error {
	if d.proc != nil {
		if stopProcess(d.proc, syscall.SIGTERM, "the daemon") != nil {
			d.proc.Kill()
		}
		d.proc = nil
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
		d.dir = ""
	}
	return nil
}

// LogTail is the end of the daemon's log, with the state of its ports.
func (d *ovsxdpDriver) LogTail() string {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	show, err := d.query(ctx, "show")
	if err != nil {
		show = err.Error()
	}
	ports, err := d.query(ctx, "dump-ports", bridgeName)
	if err != nil {
		ports = err.Error()
	}
	var links strings.Builder
	names := make([]string, d.e.Slots)
	for i := range names {
		names[i] = hostName(i)
	}
	rec := parseLinkRecord(d.LinkRecord(), names)
	for _, n := range names {
		for i, l := range lifetimes(rec[n]) {
			fmt.Fprintf(&links, "%s link %d: %s\n", n, i+1, signature(l))
		}
	}
	return "daemon log:\n" + tail(quiet(d.proc.Output())) + "\nshow:\n" + show + "\ndump-ports:\n" + ports +
		"\nlink events the daemon saw (every process):\n" + links.String()
}

var lockupsRE = regexp.MustCompile(`soft lockups detected: (\d+), spinning in output: (\d+)`)

// lockupCount reads watchdog/show's output: the soft lockups the watchdog
// detected, and how many of them were a poll thread spinning in output's
// queue loop; ok is false if the output has no counts.
func lockupCount(out string) (n, spinning int, ok bool) {
	m := lockupsRE.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, false
	}
	n, err1 := strconv.Atoi(m[1])
	spinning, err2 := strconv.Atoi(m[2])
	return n, spinning, err1 == nil && err2 == nil
}

// leakBound is how long a process may hold more than its attached ports
// do: ring mappings of closed sockets (a port's close closes its sockets'
// descriptors before it unmaps their rings, vport's xskSocket.close), and
// AF_XDP sockets, XDP programs or BPF links of a port being opened (a
// detached port's open of a link that appeared, and went again, under
// way, which retries a busy queue for up to vport's 5 s bind timeout) or
// closed. What goes within leakBound is that moment, not a leak.
const leakBound = 10 * time.Second

// overPorts reports whether f holds more than devs attached ports of
// ovsxdp may: an XDP program and a BPF link each, a socket per queue.
func overPorts(f Footprint, devs int) bool {
	return f.Orphans > 0 || f.XSK > devs*maxQueues || f.Progs > devs || f.Links > devs
}

// settleFootprint reads pid's footprint again, every 50 ms up to
// leakBound, while over holds (f is the first reading), and returns the
// last reading.
func settleFootprint(pid int, f Footprint, over func(Footprint) bool) Footprint {
	for deadline := time.Now().Add(leakBound); over(f) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		g, err := procFootprint(pid)
		if err != nil {
			break
		}
		g.Goroutines = f.Goroutines
		f = g
	}
	return f
}

// Check: no soft lockup (a poll thread stalled past the watchdog's
// threshold), the bridge's ledger balances, no XDP program or socket
// outlives its port, the process has not exited.
func (d *ovsxdpDriver) Check(ctx context.Context, e *Env, st []slotState) (int, []Violation) {
	var vs []Violation
	n := 0
	add := func(kind, format string, args ...any) {
		vs = append(vs, Violation{Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}

	n++
	if d.proc.Exited() {
		add(KindCrash, "the daemon exited: %s", tail(quiet(d.proc.Output())))
		return n, vs
	}
	n++
	if out, err := d.query(ctx, "watchdog/show", bridgeName); err != nil {
		add(KindNoAnswer, "%v", err)
	} else if n, spinning, ok := lockupCount(out); !ok {
		add(KindNoAnswer, "watchdog/show: unexpected output %q", out)
	} else {
		// The counts are the process's totals: a lockup is reported at the
		// check after it happened, not again at every later one. A lockup
		// that is not spinning in output is a poll thread that took longer
		// than the threshold over a batch, such as one a busy machine
		// descheduled: the watchdog reports it with nothing to release, and
		// so does the fuzzer, as a stall, not a violation.
		if spinning > d.spinning {
			add(KindLockup, "%d new: %s", spinning-d.spinning, strings.TrimSpace(out))
		}
		if stalls := (n - spinning) - (d.lockups - d.spinning); stalls > 0 {
			add(KindStall, "%d new: %s", stalls, strings.TrimSpace(out))
		}
		d.lockups, d.spinning = n, spinning
	}
	n++
	if err := d.linkStates(ctx, e, st); err != nil {
		add(KindLinkState, "%v", err)
	}
	n++
	ports, err := d.ledger(ctx)
	if err != nil {
		add(KindLedger, "%v", err)
	}
	if ports != "" {
		n++
		var err error
		if d.txOver, err = txQueueOver(ports, d.txOver); err != nil {
			add(KindTxQueue, "%v", err)
		}
	}
	n++
	for i, s := range st {
		if !s.NS || s.Port {
			continue
		}
		if on, err := e.XDPAttached(i); err == nil && on {
			add(KindXDPLeak, "%s carries an XDP program but is not a port", hostName(i))
		}
	}
	n++
	f, _, err := d.Footprint(ctx)
	if err != nil {
		add(KindNoAnswer, "footprint: %v", err)
		return n, vs
	}
	devs := 0
	for _, s := range st {
		if s.NS && s.Port {
			devs++
		}
	}
	f = settleFootprint(d.pid, f, func(f Footprint) bool { return overPorts(f, devs) })
	if f.Orphans > 0 {
		add(KindXSKLeak, "%d ring mappings of closed sockets after %v (%s)", f.Orphans, leakBound, f)
	}
	if f.XSK > devs*maxQueues {
		add(KindXSKLeak, "%d AF_XDP sockets for %d attached ports of at most %d queues after %v (%s)", f.XSK, devs, maxQueues, leakBound, f)
	}
	if f.Progs > devs || f.Links > devs {
		add(KindBPFLeak, "%d XDP programs and %d BPF links for %d attached ports after %v (%s)", f.Progs, f.Links, devs, leakBound, f)
	}
	return n, vs
}

var (
	overRE   = regexp.MustCompile(`(?m)^\s*port\s+(\S+): rx pkts=[^\n]*\n(?:[^\n]*\n){3}\s*tx on queue >= count: (\d+)$`)
	rxRE     = regexp.MustCompile(`port\s+\S+: rx pkts=(\d+)`)
	txRE     = regexp.MustCompile(`tx pkts=(\d+)`)
	rxDropRE = regexp.MustCompile(`rx dropped by reason: (.*)`)
)

// linkStateBound is how long the datapath's view of a link may lag the
// kernel's: the time a link event takes to arrive and be applied.
const linkStateBound = 5 * time.Second

// linkStates checks that the daemon's view of every attached port's link
// (show's link_state: running with carrier) is the kernel's (UP and
// LOWER_UP), within linkStateBound: a link event that was lost, or
// applied before an older state, leaves the port's device model wrong
// until the next event, and a veth whose ends are both up sends none.
func (d *ovsxdpDriver) linkStates(ctx context.Context, e *Env, st []slotState) error {
	deadline := time.Now().Add(linkStateBound)
	for {
		show, err := d.query(ctx, "show")
		if err != nil {
			return err
		}
		kernel, err := kernelLinkStates(e)
		if err != nil {
			return err
		}
		bad := linkStateMismatches(show, kernel, st)
		if len(bad) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("after %v the daemon's link state differs from the kernel's: %s", linkStateBound, strings.Join(bad, "; "))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// kernelLinkStates reads the links of the switch namespace: "up" for a
// link that is UP and LOWER_UP, "down" otherwise, by name.
func kernelLinkStates(e *Env) (map[string]string, error) {
	var links []netlink.Link
	err := e.SW.Do(func() (err error) {
		links, err = nldump.Retry(netlink.LinkList)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("links of the switch namespace: %w", err)
	}
	out := map[string]string{}
	for _, l := range links {
		a := l.Attrs()
		out[a.Name] = "down"
		if a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_LOWER_UP != 0 {
			out[a.Name] = "up"
		}
	}
	return out, nil
}

// linkStateMismatches compares show's link_state of the slots' host ends
// that are attached ports (in state st) with the kernel's (kernelLinkStates).
func linkStateMismatches(show string, kernel map[string]string, st []slotState) []string {
	daemon := map[string]string{}
	var iface string
	attached := map[string]bool{}
	for _, line := range strings.Split(show, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Interface "):
			iface = strings.TrimPrefix(line, "Interface ")
			attached[iface] = true
		case strings.HasPrefix(line, "error: "):
			attached[iface] = false // waiting for its device
		case strings.HasPrefix(line, "link_state: "):
			daemon[iface] = strings.TrimPrefix(line, "link_state: ")
		}
	}
	var bad []string
	for i, s := range st {
		h := hostName(i)
		if !s.NS || !s.Port || !attached[h] {
			continue
		}
		k, ok := kernel[h]
		if !ok {
			continue // gone meanwhile
		}
		if daemon[h] != k {
			bad = append(bad, fmt.Sprintf("%s: kernel %s, daemon %s", h, k, daemon[h]))
		}
	}
	return bad
}

// txQueueOver checks, from dump-ports, that no port transmitted on a tx
// queue at or above its device's tx queue count since the last check,
// where the rows' counts added up to since: every port's row has the
// count, and they add up to since. It returns their sum. (The counts are
// the process's totals: a transmit is reported at the check after it, not
// again at every later one.)
func txQueueOver(ports string, since uint64) (uint64, error) {
	rows := len(rxRE.FindAllStringIndex(ports, -1))
	ms := overRE.FindAllStringSubmatch(ports, -1)
	if len(ms) != rows || rows == 0 {
		return since, fmt.Errorf("dump-ports shows %d ports but %d counts of transmits on a queue >= the tx queue count:\n%s", rows, len(ms), ports)
	}
	var bad []string
	var total uint64
	for _, m := range ms {
		v, _ := strconv.ParseUint(m[2], 10, 64)
		total += v
		if v != 0 {
			bad = append(bad, fmt.Sprintf("port %s: %s", m[1], m[2]))
		}
	}
	if total > since {
		return total, fmt.Errorf("%d transmits on a tx queue at or above the device's tx queue count since the last check: %s", total-since, strings.Join(bad, ", "))
	}
	return total, nil
}

// ledger checks, from dump-ports, that what the bridge received (every
// port, and the row of removed ports) equals what it sent plus what it
// dropped by reason: with unicast rules every received packet is sent to
// one port or dropped once (a copy dropped at its output port counts as a
// drop of the packet it came from). Packets in flight make the counters
// differ for a moment, so it reads them until they balance, up to 5 s.
// It returns the dump-ports output it read last ("" if none).
func (d *ovsxdpDriver) ledger(ctx context.Context) (string, error) {
	deadline := time.Now().Add(5 * time.Second)
	var last string
	for {
		out, err := d.query(ctx, "dump-ports", bridgeName)
		if err != nil {
			return "", err
		}
		var rx, tx, drops uint64
		for _, m := range rxRE.FindAllStringSubmatch(out, -1) {
			v, _ := strconv.ParseUint(m[1], 10, 64)
			rx += v
		}
		for _, m := range txRE.FindAllStringSubmatch(out, -1) {
			v, _ := strconv.ParseUint(m[1], 10, 64)
			tx += v
		}
		for _, m := range rxDropRE.FindAllStringSubmatch(out, -1) {
			if m[1] == "none" {
				continue
			}
			for _, kv := range strings.Split(m[1], ", ") {
				if _, v, ok := strings.Cut(kv, "="); ok {
					n, _ := strconv.ParseUint(v, 10, 64)
					drops += n
				}
			}
		}
		if rx == tx+drops {
			return out, nil
		}
		last = fmt.Sprintf("received %d, sent %d + dropped %d = %d", rx, tx, drops, tx+drops)
		if time.Now().After(deadline) {
			return out, fmt.Errorf("the bridge's ledger does not balance after 5s: %s\n%s", last, out)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

var goroutinesRE = regexp.MustCompile(`goroutine profile: total (\d+)`)

func (d *ovsxdpDriver) Footprint(ctx context.Context) (Footprint, bool, error) {
	f, err := procFootprint(d.pid)
	if err != nil {
		return f, true, err
	}
	var c net.Conn
	err = d.e.SW.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", pprofAddr, 5*time.Second)
		return err
	})
	if err != nil {
		return f, true, fmt.Errorf("pprof: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /debug/pprof/goroutine?debug=1 HTTP/1.0\r\nHost: localhost\r\n\r\n"); err != nil {
		return f, true, fmt.Errorf("pprof: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(c, 4<<20))
	if err != nil {
		return f, true, fmt.Errorf("pprof: %w", err)
	}
	m := goroutinesRE.FindSubmatch(b)
	if m == nil {
		return f, true, fmt.Errorf("pprof: no goroutine total in %q", tail(string(b)))
	}
	f.Goroutines, _ = strconv.Atoi(string(m[1]))
	// The connection just made is open in the daemon too.
	return f, true, nil
}

// tail is the end of a process's output, for error messages.
func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}
