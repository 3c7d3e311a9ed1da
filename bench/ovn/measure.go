package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// OVN's database schemas (Debian's ovn-central... and ovn-common).
const (
	nbSchema = "/usr/share/ovn/ovn-nb.ovsschema"
	sbSchema = "/usr/share/ovn/ovn-sb.ovsschema"
)

// cmdTimeout bounds each command run against a daemon.
const cmdTimeout = 30 * time.Second

// lport is a logical switch port bound to a namespace.
type lport struct {
	name, ip string
	mac      net.HardwareAddr
	ns       *netns.NS
	chassis  *chassis
	sw       string // the logical switch
	host     string // the veth end on br-int
	key      int    // the southbound Port_Binding's tunnel_key
	bound    bool   // the southbound Port_Binding has a chassis
	up       bool   // the northbound port is up
}

// row is one line of the daemon's ofproto/rejections --csv output.
type row struct {
	kind, message, errName, reason string
	typ, code                      int
	count                          uint64
	distinct                       int
	example                        string // hex
	printed                        string // the example, as ovs-ofctl ofp-print prints it
}

// pingResult is one ping from one logical port to another.
type pingResult struct {
	from, to *lport
	what     string
	stats    topo.PingStats
	err      error
}

// measurement is what a run found.
type measurement struct {
	complete   bool
	versions   map[string]string
	chassis    []*chassis
	ports      []*lport
	dpKey      int  // sw0's tunnel_key, the Geneve VNI
	hvSynced   bool // ovn-nbctl --wait=hv sync returned
	hvSyncErr  string
	pings      []pingResult
	routed     []*lport      // sw1's ports, across lr0 from sw0's
	hops       []routedPing  // pings across lr0
	conns      []connResult  // TCP connections under the ACLs and to the load balancer's VIP
	lbBackends []backendSeen // whether each backend answered a connection to the VIP
	geneve     *capture      // the underlay's Geneve packets, with two chassis
	problems   []string
	logs       map[string]string // name → path, while the run lasts
	logText    map[string]string // name → text, read when the daemons have stopped
	bindTime   string
}

// proc is a daemon started in a namespace.
type proc struct {
	name string
	p    *topo.Process
}

// startProc starts args in ns; when the run ends it is stopped by its PID
// (SIGTERM, SIGKILL after 10 s).
func startProc(t *runner, ns *netns.NS, name string, args ...string) *proc {
	p := &proc{name: name, p: ns.Start(t, args...)}
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *proc) stop(t *runner) {
	if p.p.Exited() {
		return
	}
	syscall.Kill(p.p.Cmd.Process.Pid, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.p.Wait(ctx); err != nil && ctx.Err() != nil {
		t.Logf("%s (pid %d) ignored SIGTERM for 10s; killed", p.name, p.p.Cmd.Process.Pid)
		p.p.Kill()
	}
}

// waitFor polls ok every 100 ms until it holds, p exits or timeout
// passes; it returns the last error.
func waitFor(p *proc, timeout time.Duration, ok func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ok()
		if err == nil {
			return nil
		}
		if p != nil && p.p.Exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, err, tail(p.p.Output(), 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not after %v: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sh runs a command with env added to the environment, bounded by
// cmdTimeout.
func sh(env []string, name string, args ...string) (string, error) {
	return shFor(cmdTimeout, env, name, args...)
}

// shFor is sh bounded by timeout.
func shFor(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Env = append(os.Environ(), env...)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func must(t *runner, out string, err error) string {
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// measure builds the setup, measures and returns what it found; the
// runner's cleanups tear the setup down.
func measure(ctx context.Context, t *runner, o options, bin string) *measurement {
	m := &measurement{versions: map[string]string{}, logs: map[string]string{}, logText: map[string]string{}}
	for _, v := range [][]string{{"ovn-controller", "--version"}, {"ovn-northd", "--version"}, {"ovsdb-server", "--version"}, {"go", "version"}} {
		out, _ := sh(nil, v[0], v[1:]...)
		m.versions[v[0]] = strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(out), "\n", "; ")), " ")
	}
	if out, err := sh(nil, "git", "rev-parse", "--short", "HEAD"); err == nil {
		m.versions["ovsxdp"] = strings.TrimSpace(out)
	}

	// Each chassis's namespace holds its ovsxdp daemon (and br-int's
	// LOCAL port, a TAP device), its ovn-controller and the veths' host
	// ends; the first also OVN's central daemons. With two, each host's
	// underlay veth leads to a namespace of its own, the wire, where a
	// Linux bridge joins them and tcpdump sees the Geneve packets (a
	// capture on an AF_XDP port's device sees neither what XDP redirects
	// nor what AF_XDP sends).
	for i := range o.chassis {
		c := &chassis{name: fmt.Sprintf("chassis-%d", i+1), ns: netns.New(t, fmt.Sprintf("ovn-ch%d", i+1)), encapIP: "127.0.0.1"}
		if o.chassis > 1 {
			c.encapIP, c.uplink = fmt.Sprintf("192.0.2.%d", i+1), fmt.Sprintf("ovn-u%d", i+1)
		}
		m.chassis = append(m.chassis, c)
	}
	var wire *netns.NS
	if o.chassis > 1 {
		wire = netns.New(t, "ovn-wire")
		wire.IP(t, "link", "add", "wire0", "type", "bridge")
		for i, c := range m.chassis {
			end := fmt.Sprintf("w%d", i+1)
			netns.AddVeth(t, c.ns, c.uplink, wire, end, 1)
			wire.IP(t, "link", "set", end, "master", "wire0")
		}
		if err := wire.SetLinkUp("wire0"); err != nil {
			t.Fatal(err)
		}
	}

	// OVN's databases and ovn-northd, beside the first chassis.
	central := t.TempDir()
	cns := m.chassis[0].ns
	ovnEnv := []string{"OVN_RUNDIR=" + central, "OVN_LOGDIR=" + central, "OVN_DBDIR=" + central}
	for _, d := range []struct{ name, schema string }{{"nb", nbSchema}, {"sb", sbSchema}} {
		dbFile := filepath.Join(central, d.name+".db")
		if _, err := sh(nil, "ovsdb-tool", "create", dbFile, d.schema); err != nil {
			t.Fatal(err)
		}
		logFile := filepath.Join(central, d.name+".log")
		m.logs["ovsdb-server-"+d.name+".log"] = logFile
		p := startProc(t, cns, "ovsdb-server ("+d.name+")", "ovsdb-server", dbFile, "--remote=punix:"+filepath.Join(central, d.name+".sock"),
			"--no-chdir", "--unixctl="+filepath.Join(central, d.name+".ctl"), "--log-file="+logFile)
		ctl := "ovn-nbctl"
		if d.name == "sb" {
			ctl = "ovn-sbctl"
		}
		if err := waitFor(p, cmdTimeout, func() error {
			_, err := sh(nil, ctl, "--db=unix:"+filepath.Join(central, d.name+".sock"), "--timeout=5", "show")
			return err
		}); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
	}
	// Runs once every daemon has stopped, before central is removed.
	t.Cleanup(func() {
		for name, path := range m.logs {
			if b, err := os.ReadFile(path); err == nil {
				m.logText[name] = string(b)
			}
		}
	})
	nbDB, sbDB := "unix:"+filepath.Join(central, "nb.sock"), "unix:"+filepath.Join(central, "sb.sock")
	nbctl := func(args ...string) (string, error) {
		return sh(nil, "ovn-nbctl", append([]string{"--db=" + nbDB, "--timeout=30"}, args...)...)
	}
	sbctl := func(args ...string) (string, error) {
		return sh(nil, "ovn-sbctl", append([]string{"--db=" + sbDB, "--timeout=30"}, args...)...)
	}
	m.logs["ovn-northd.log"] = filepath.Join(central, "ovn-northd.log")
	startProc(t, cns, "ovn-northd", "env", ovnEnv[0], ovnEnv[1], ovnEnv[2], "ovn-northd", "--ovnnb-db="+nbDB, "--ovnsb-db="+sbDB,
		"--no-chdir", "--unixctl="+filepath.Join(central, "ovn-northd.ctl"), "--log-file="+m.logs["ovn-northd.log"])

	for _, c := range m.chassis {
		c.start(t, m, bin, sbDB)
	}

	// One logical switch; two ports on the first chassis, and one on the
	// second when there is one, each bound to a namespace of its own.
	if _, err := nbctl("ls-add", "sw0"); err != nil {
		t.Fatal(err)
	}
	on := []*chassis{m.chassis[0], m.chassis[0]}
	if len(m.chassis) > 1 {
		on = append(on, m.chassis[1])
	}
	for i, c := range on {
		m.ports = append(m.ports, addPort(t, nbctl, c, "sw0", fmt.Sprintf("lsp%d", i+1), fmt.Sprintf("10.0.0.%d", i+1), i, len(m.chassis) > 1))
	}
	// A second switch joined to sw0 by a router, stateful ACLs and a load
	// balancer: what OVN deployments use every day.
	m.addRouter(t, nbctl, len(m.chassis) > 1)
	start := time.Now()
	for _, lp := range append(append([]*lport(nil), m.ports...), m.routed...) {
		err := waitFor(lp.chassis.controller, o.bindWait, func() error {
			out, err := sbctl("--bare", "--columns=chassis", "find", "port_binding", "logical_port="+lp.name)
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) == "" {
				return fmt.Errorf("port %s has no chassis", lp.name)
			}
			lp.bound = true
			out, err = nbctl("lsp-get-up", lp.name)
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) != "up" {
				return fmt.Errorf("port %s is %s", lp.name, strings.TrimSpace(out))
			}
			lp.up = true
			return nil
		})
		if err != nil {
			t.Logf("logical port %s: %v", lp.name, err)
		}
		if out, err := sbctl("--bare", "--columns=tunnel_key", "find", "port_binding", "logical_port="+lp.name); err == nil {
			lp.key, _ = strconv.Atoi(strings.TrimSpace(out))
		}
	}
	m.bindTime = time.Since(start).Round(100 * time.Millisecond).String()
	if out, err := sbctl("--bare", "--columns=tunnel_key", "find", "datapath_binding", "external_ids:name=sw0"); err == nil {
		m.dpKey, _ = strconv.Atoi(strings.TrimSpace(out))
	}
	// ovn-controller reports the northbound configuration it has put in
	// place (hv_cfg) once its flows are installed.
	if _, err := shFor(o.bindWait+10*time.Second, nil, "ovn-nbctl", "--db="+nbDB, "--timeout="+strconv.Itoa(int(o.bindWait.Seconds())),
		"--wait=hv", "sync"); err != nil {
		m.hvSyncErr = err.Error()
	} else {
		m.hvSynced = true
	}

	// With two chassis, the wire is captured while the pings run.
	var pcap string
	var dump *proc
	if wire != nil {
		// Immediate mode, and stopped by SIGTERM, so that the last
		// packets are in the file.
		pcap = filepath.Join(t.TempDir(), "underlay.pcap")
		dump = startProc(t, wire, "tcpdump", "tcpdump", "-i", "wire0", "-n", "--immediate-mode", "-U", "-w", pcap, "udp", "port", "6081")
		if err := dump.p.WaitOutput("listening on", cmdTimeout); err != nil {
			t.Fatalf("tcpdump on the wire: %v: %s", err, dump.p.Output())
		}
	}

	// Ping, first as it comes (ARP through OVN's pipeline), then with
	// permanent neighbour entries (ICMP alone) if the first lost all.
	ping := func(a, b *lport, what string) pingResult {
		pctx, cancel := context.WithTimeout(ctx, time.Duration(o.pingCount)*time.Second+10*time.Second)
		defer cancel()
		st, err := a.ns.Ping(pctx, net.ParseIP(b.ip), o.pingCount, 200*time.Millisecond, 2*time.Second)
		r := pingResult{from: a, to: b, what: what, stats: st, err: err}
		m.pings = append(m.pings, r)
		return r
	}
	pairs := [][2]*lport{{m.ports[0], m.ports[1]}}
	if len(m.ports) > 2 {
		pairs = append(pairs, [2]*lport{m.ports[0], m.ports[2]}, [2]*lport{m.ports[2], m.ports[1]})
	}
	var failed [][2]*lport
	for _, p := range pairs {
		a, b := p[0], p[1]
		if ping(a, b, "with ARP").stats.Received > 0 {
			continue
		}
		a.ns.SetNeigh(t, "eth0", b.ip, b.mac)
		b.ns.SetNeigh(t, "eth0", a.ip, a.mac)
		if ping(a, b, "with permanent neighbour entries").stats.Received == 0 {
			failed = append(failed, p)
		}
	}
	if dump != nil {
		dump.stop(t)
		var err error
		if m.geneve, err = readCapture(pcap); err != nil {
			t.Errorf("the wire's capture: %v", err)
		}
	}

	// Across the router, and the ACLs and load balancer, after the wire's
	// capture: its verdict is about sw0's packets alone.
	failed = append(failed, m.routedChecks(ctx, t, o)...)

	for _, c := range m.chassis {
		c.collect(t)
		var traces []string
		for _, p := range failed {
			if p[0].chassis == c {
				traces = append(traces, fmt.Sprintf("in_port=%s,icmp,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,icmp_type=8",
					p[0].host, p[0].mac, dlDst(p[0], p[1]), p[0].ip, p[1].ip))
			}
		}
		if len(failed) > 0 {
			c.diagnose(traces...)
		}
	}
	// Stop ovn-controller before reading its log, so that it is whole.
	for _, c := range m.chassis {
		c.controller.stop(t)
	}
	m.complete = true
	return m
}

// dlDst is the Ethernet destination of a's packets to b: b's MAC on the
// same switch, else the gateway's.
func dlDst(a, b *lport) string {
	if a.sw == b.sw {
		return b.mac.String()
	}
	return gateways[a.sw].mac
}

// collect reads what the daemon refused and installed, and the tunnel
// ports ovn-controller made.
func (c *chassis) collect(t *runner) {
	out, err := c.cli("ofproto/rejections", "--csv", "br-int")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parseRows(out)
	if err != nil {
		t.Fatalf("ofproto/rejections --csv on %s: %v\n%s", c.name, err, out)
	}
	for i := range rows {
		if rows[i].example == "" {
			continue
		}
		out, err := sh(nil, "ovs-ofctl", "ofp-print", rows[i].example)
		if err != nil {
			out = err.Error()
		}
		rows[i].printed = strings.TrimSpace(out)
	}
	c.rows = rows
	if text, err := c.cli("ofproto/rejections", "br-int"); err == nil {
		t.Logf("ofproto/rejections br-int on %s:\n%s", c.name, text)
	}
	if flows, err := c.cli("dump-flows", "br-int", "--no-stats"); err == nil {
		for _, l := range strings.Split(flows, "\n") {
			match, actions, ok := strings.Cut(l, "actions=")
			if !ok {
				continue
			}
			c.flowsInstalled++
			if strings.Contains(match, "ct_state") || strings.Contains(match, "ct_mark") || strings.Contains(match, "ct_label") {
				c.ctMatches++
			}
			if strings.Contains(actions, "ct(") {
				c.ctActions++
			}
		}
	}
	if out, err := c.cli("dump-groups", "br-int"); err == nil {
		c.groups = strings.TrimSpace(out)
	} else {
		t.Errorf("dump-groups br-int on %s: %v", c.name, err)
	}
	if out, err := c.cli("dpctl/dump-flows"); err == nil {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "nat(dst=") {
				c.natFlows = append(c.natFlows, strings.TrimSpace(l))
			}
		}
	}
	if err := c.readTunnels(); err != nil {
		t.Errorf("tunnel ports on %s: %v", c.name, err)
	}
	if c.uplink != "" {
		c.tunnelFlows = nil
		out, err := c.cli("dpctl/dump-flows")
		if err != nil {
			t.Errorf("dpctl/dump-flows on %s: %v", c.name, err)
		}
		// The megaflows br-int holds for what it decapsulated (a tunnel
		// match) or encapsulates (a tnl_push, or tun_metadata set where
		// the tunnel's path is not resolved); br-phy's are left out.
		inInt := false
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "flow-dump from") {
				inInt = strings.HasSuffix(l, "bridge br-int:")
				continue
			}
			if inInt && (strings.Contains(l, "tunnel(") || strings.Contains(l, "tnl_push(") || strings.Contains(l, "tun_metadata")) {
				c.tunnelFlows = append(c.tunnelFlows, strings.TrimSpace(l))
			}
		}
	}
}

// parseRows reads ofproto/rejections --csv output.
func parseRows(out string) ([]row, error) {
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		return nil, err
	}
	var rows []row
	for i, r := range recs {
		if i == 0 {
			continue // header
		}
		if len(r) != 10 {
			return nil, fmt.Errorf("line %d: %d fields, want 10", i+1, len(r))
		}
		n, err := strconv.ParseUint(r[7], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: count %q", i+1, r[7])
		}
		typ, _ := strconv.Atoi(r[4])
		code, _ := strconv.Atoi(r[5])
		distinct, _ := strconv.Atoi(r[8])
		rows = append(rows, row{kind: r[1], message: r[2], errName: r[3], typ: typ, code: code, reason: r[6], count: n,
			distinct: distinct, example: r[9]})
	}
	return rows, nil
}

// copyLogs copies the daemons' logs into dir.
func (m *measurement) copyLogs(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	for name, text := range m.logText {
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
	}
}
