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
	"github.com/ovsxdp/ovsxdp/test/ovsref"
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
	host     string // the veth end on br-int
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

// pingResult is one ping from the first namespace to the second.
type pingResult struct {
	what  string
	stats topo.PingStats
	err   error
}

// measurement is what a run found.
type measurement struct {
	complete       bool
	versions       map[string]string
	ports          []*lport
	hvSynced       bool // ovn-nbctl --wait=hv sync returned
	hvSyncErr      string
	pings          []pingResult
	rows           []row
	flowsInstalled int
	problems       []string
	logs           map[string]string // name → path, while the run lasts
	logText        map[string]string // name → text, read when the daemons have stopped
	bindTime       string
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

	// The Open_vSwitch database, as ovs-vswitchd would have it.
	db := ovsref.StartDB(t)
	vsctl := func(args ...string) string {
		out, err := db.Vsctl(append([]string{"--timeout=30"}, args...)...)
		return must(t, out, err)
	}

	// The switch namespace holds the ovsxdp daemon (and br-int's LOCAL
	// port, a TAP device), the OVN daemons and the veths' host ends.
	sw := netns.New(t, "ovn-sw")
	dir := t.TempDir() // short: unix socket paths are bounded
	// Runs once every daemon has stopped, before dir is removed.
	t.Cleanup(func() {
		for name, path := range m.logs {
			if b, err := os.ReadFile(path); err == nil {
				m.logText[name] = string(b)
			}
		}
	})
	runDir := filepath.Join(dir, "run")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "ovsxdp.sock")
	cli := func(args ...string) (string, error) {
		return sh(nil, bin, append([]string{"--socket", sock}, args...)...)
	}
	daemon := startProc(t, sw, "ovsxdp daemon", bin, "daemon", "--socket", sock, "--rundir", runDir,
		"--ovsdb", db.Remote(), "--log-level", "info")
	t.Cleanup(func() { m.logText["ovsxdp.log"] = daemon.p.Output() })
	if err := waitFor(daemon, cmdTimeout, func() error { _, err := cli("show"); return err }); err != nil {
		t.Fatalf("ovsxdp daemon: %v", err)
	}

	// OVN's databases and ovn-northd.
	ovnEnv := []string{"OVN_RUNDIR=" + dir, "OVN_LOGDIR=" + dir, "OVN_DBDIR=" + dir}
	for _, d := range []struct{ name, schema string }{{"nb", nbSchema}, {"sb", sbSchema}} {
		dbFile := filepath.Join(dir, d.name+".db")
		if _, err := sh(nil, "ovsdb-tool", "create", dbFile, d.schema); err != nil {
			t.Fatal(err)
		}
		logFile := filepath.Join(dir, d.name+".log")
		m.logs["ovsdb-server-"+d.name+".log"] = logFile
		p := startProc(t, sw, "ovsdb-server ("+d.name+")", "ovsdb-server", dbFile, "--remote=punix:"+filepath.Join(dir, d.name+".sock"),
			"--no-chdir", "--unixctl="+filepath.Join(dir, d.name+".ctl"), "--log-file="+logFile)
		ctl := "ovn-nbctl"
		if d.name == "sb" {
			ctl = "ovn-sbctl"
		}
		if err := waitFor(p, cmdTimeout, func() error {
			_, err := sh(nil, ctl, "--db=unix:"+filepath.Join(dir, d.name+".sock"), "--timeout=5", "show")
			return err
		}); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
	}
	nbDB, sbDB := "unix:"+filepath.Join(dir, "nb.sock"), "unix:"+filepath.Join(dir, "sb.sock")
	nbctl := func(args ...string) (string, error) {
		return sh(nil, "ovn-nbctl", append([]string{"--db=" + nbDB, "--timeout=30"}, args...)...)
	}
	sbctl := func(args ...string) (string, error) {
		return sh(nil, "ovn-sbctl", append([]string{"--db=" + sbDB, "--timeout=30"}, args...)...)
	}
	m.logs["ovn-northd.log"] = filepath.Join(dir, "ovn-northd.log")
	startProc(t, sw, "ovn-northd", "env", ovnEnv[0], ovnEnv[1], ovnEnv[2], "ovn-northd", "--ovnnb-db="+nbDB, "--ovnsb-db="+sbDB,
		"--no-chdir", "--unixctl="+filepath.Join(dir, "ovn-northd.ctl"), "--log-file="+m.logs["ovn-northd.log"])

	// The chassis: ovn-controller on the Open_vSwitch database, br-int an
	// ovsxdp bridge whose OpenFlow socket is in the daemon's run directory.
	vsctl("set", "open_vswitch", ".", "external_ids:system-id=ovsxdp-chassis", "external_ids:ovn-remote="+sbDB,
		"external_ids:ovn-encap-type=geneve", "external_ids:ovn-encap-ip=127.0.0.1", "external_ids:ovn-bridge-datapath-type=ovsxdp")
	ctlLog := filepath.Join(dir, "ovn-controller.log")
	m.logs["ovn-controller.log"] = ctlLog
	controller := startProc(t, sw, "ovn-controller", "env", "OVS_RUNDIR="+runDir, ovnEnv[0], ovnEnv[1], ovnEnv[2],
		"ovn-controller", db.Remote(), "--no-chdir", "--log-file="+ctlLog)
	mgmt := filepath.Join(runDir, "br-int.mgmt")
	if err := waitFor(controller, 2*cmdTimeout, func() error { _, err := os.Stat(mgmt); return err }); err != nil {
		t.Fatalf("br-int's OpenFlow socket (ovn-controller creates br-int with datapath_type ovsxdp): %v", err)
	}

	// One logical switch, two ports, each bound to a namespace.
	if _, err := nbctl("ls-add", "sw0"); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"lsp1", "lsp2"} {
		ns := netns.New(t, fmt.Sprintf("ovn-%c", 'a'+i))
		host := fmt.Sprintf("ovn-h%d", i+1)
		netns.AddVeth(t, sw, host, ns, "eth0", 1)
		lp := &lport{name: name, ip: fmt.Sprintf("10.0.0.%d", i+1), ns: ns, host: host, mac: ns.MAC(t, "eth0")}
		ns.AddAddr(t, "eth0", lp.ip+"/24")
		if _, err := nbctl("lsp-add", "sw0", name, "--", "lsp-set-addresses", name, lp.mac.String()+" "+lp.ip); err != nil {
			t.Fatal(err)
		}
		vsctl("add-port", "br-int", host, "--", "set", "interface", host, "type=afxdp", "external_ids:iface-id="+name)
		m.ports = append(m.ports, lp)
	}
	start := time.Now()
	for _, lp := range m.ports {
		err := waitFor(controller, o.bindWait, func() error {
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
	}
	m.bindTime = time.Since(start).Round(100 * time.Millisecond).String()
	// ovn-controller reports the northbound configuration it has put in
	// place (hv_cfg) once its flows are installed.
	if _, err := shFor(o.bindWait+10*time.Second, nil, "ovn-nbctl", "--db="+nbDB, "--timeout="+strconv.Itoa(int(o.bindWait.Seconds())),
		"--wait=hv", "sync"); err != nil {
		m.hvSyncErr = err.Error()
	} else {
		m.hvSynced = true
	}

	// Ping, first as it comes (ARP through OVN's pipeline), then with
	// permanent neighbour entries (ICMP alone) if the first lost all.
	a, b := m.ports[0], m.ports[1]
	ping := func(what string) {
		pctx, cancel := context.WithTimeout(ctx, time.Duration(o.pingCount)*time.Second+10*time.Second)
		defer cancel()
		st, err := a.ns.Ping(pctx, net.ParseIP(b.ip), o.pingCount, 200*time.Millisecond, 2*time.Second)
		m.pings = append(m.pings, pingResult{what: what, stats: st, err: err})
	}
	ping("with ARP")
	if last := m.pings[len(m.pings)-1]; last.stats.Received == 0 {
		a.ns.SetNeigh(t, "eth0", b.ip, b.mac)
		b.ns.SetNeigh(t, "eth0", a.ip, a.mac)
		ping("with permanent neighbour entries")
	}

	out, err := cli("ofproto/rejections", "--csv", "br-int")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parseRows(out)
	if err != nil {
		t.Fatalf("ofproto/rejections --csv: %v\n%s", err, out)
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
	m.rows = rows
	if text, err := cli("ofproto/rejections", "br-int"); err == nil {
		t.Logf("ofproto/rejections br-int:\n%s", text)
	}
	if flows, err := cli("dump-flows", "br-int", "--no-stats"); err == nil {
		for _, l := range strings.Split(flows, "\n") {
			if strings.Contains(l, "actions=") {
				m.flowsInstalled++
			}
		}
	}
	// Stop ovn-controller before reading its log, so that it is whole.
	controller.stop(t)
	m.complete = true
	return m
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
