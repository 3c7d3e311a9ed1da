package test

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestInternalPortsAcrossNamespaces starts a real daemon in a switch
// namespace with a bridge of two internal ports (TAP devices the daemon
// creates), moves each into a namespace of its own, addresses them and
// has ping and a TCP echo run between the two through the bridge's normal
// action. Every packet the ports received is accounted for. del-port
// deletes a port's device; deleting the other port's namespace tears the
// port down (removed, its counters in the bridge's removed row) without
// wedging the daemon; del-br leaves no device behind (its LOCAL port's
// included).
func TestInternalPortsAcrossNamespaces(t *testing.T) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	a := netns.New(t, "a")
	b := netns.New(t, "b")

	dir := t.TempDir()
	sock, statePath := filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json")
	d, _ := startCLIDaemonIn(t, sw, bin, sock, statePath)

	d.run(t, "add-br", "br0")
	d.run(t, "add-port", "br0", "i-a", "type=internal")
	d.run(t, "add-port", "br0", "i-b", "type=internal", "ofport=7")
	d.run(t, "add-flow", "br0", "actions=normal")
	if _, errOut, err := d.try("add-port", "br0", "i-c", "type=internal", "rxq=2"); err == nil {
		t.Errorf("add-port with an option internal ports do not have succeeded")
	} else if !strings.Contains(errOut, "unknown option rxq") {
		t.Errorf("add-port i-c rxq=2: %q, want an unknown option error", errOut)
	}
	show := d.run(t, "show")
	for _, want := range []string{"Port i-a", "type: internal", "ofport: 1", "Port i-b", "ofport: 7"} {
		if !strings.Contains(show, want) {
			t.Fatalf("show lacks %q:\n%s", want, show)
		}
	}
	if out, err := sw.Run("ip", "-d", "link", "show", "i-a"); err != nil || !strings.Contains(out, "tun type tap") {
		t.Fatalf("i-a is not a tap device in the switch namespace: %v\n%s", err, out)
	}

	for _, x := range []struct {
		ns   *netns.NS
		dev  string
		addr string
	}{{a, "i-a", "10.77.0.1/24"}, {b, "i-b", "10.77.0.2/24"}} {
		sw.IP(t, "link", "set", x.dev, "netns", x.ns.Name)
		x.ns.AddAddr(t, x.dev, x.addr)
		if err := x.ns.SetLinkUp(x.dev); err != nil {
			t.Fatal(err)
		}
	}
	if !netns.Eventually(20*time.Second, func() bool {
		return strings.Count(d.run(t, "show"), "link_state: up") == 2
	}) {
		t.Fatalf("the moved ports do not show up:\n%s", d.run(t, "show"))
	}

	if !netns.Eventually(20*time.Second, func() bool {
		_, err := a.Run("ping", "-c", "1", "-W", "1", "10.77.0.2")
		return err == nil
	}) {
		t.Fatalf("a does not reach b through the bridge:\n%s\n%s", d.run(t, "show"), d.run(t, "dump-ports", "br0"))
	}
	if out, err := a.Run("ping", "-c", "5", "-i", "0.2", "-W", "2", "10.77.0.2"); err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping a -> b: %v\n%s", err, out)
	}

	echo := b.Start(t, helperArgs(t, "tcp-echo", "10.77.0.2:7000")...)
	if !netns.Eventually(10*time.Second, func() bool { return strings.Contains(echo.Output(), "listening") || echo.Exited() }) || echo.Exited() {
		t.Fatalf("tcp echo server: %s", echo.Output())
	}
	if out, err := a.Run(helperArgs(t, "tcp-client", "10.77.0.2:7000", "2000000")...); err != nil || !strings.Contains(out, "ok 2000000") {
		t.Fatalf("tcp a -> b: %v\n%s\n%s", err, out, d.run(t, "dump-ports", "br0"))
	}
	checkCLIBalanced(t, d.run(t, "dump-ports", "br0"))

	// del-port deletes the device, in whichever namespace it is.
	d.run(t, "del-port", "br0", "i-a")
	if out, err := a.Run("ip", "link", "show", "i-a"); err == nil {
		t.Errorf("i-a is still in namespace a after del-port:\n%s", out)
	}

	// Deleting b's namespace unregisters i-b: the port is torn down.
	echo.Kill()
	if !netns.Eventually(10*time.Second, echo.Exited) {
		t.Fatal("the echo server does not exit")
	}
	if err := b.Delete(); err != nil {
		t.Fatal(err)
	}
	if !netns.Eventually(30*time.Second, func() bool {
		out, _, err := d.try("list-ports", "br0")
		return err == nil && out == ""
	}) {
		t.Fatalf("i-b is not torn down once its namespace is deleted:\n%s", d.run(t, "show"))
	}
	ports := d.run(t, "dump-ports", "br0")
	if !regexp.MustCompile(`port \(removed\): rx pkts=[1-9]`).MatchString(ports) {
		t.Errorf("the removed ports' counters are not kept:\n%s", ports)
	}
	checkCLIBalanced(t, ports)
	checkStatePorts(t, statePath, "br0") // its LOCAL port stays

	// The daemon goes on: a new internal port of the same name works.
	d.run(t, "add-port", "br0", "i-b", "type=internal")
	d.run(t, "del-br", "br0")
	if out, err := sw.Run("ip", "-o", "link", "show"); err != nil || strings.Contains(out, "i-") || len(tunDevices(t, sw)) > 0 {
		t.Errorf("devices left in the switch namespace after del-br: %v\n%s", err, out)
	}
}

var (
	dumpRx      = regexp.MustCompile(`rx pkts=(\d+),`)
	dumpTx      = regexp.MustCompile(`tx pkts=(\d+),`)
	dumpRxDrops = regexp.MustCompile(`rx dropped by reason: (.*)`)
	dumpTxDrops = regexp.MustCompile(`tx dropped by reason: (.*)`)
	dumpReason  = regexp.MustCompile(`[a-z-]+=(\d+)`)
)

// checkCLIBalanced checks dump-ports of a bridge whose packets each go out
// one port at most (two ports, or fewer): every packet received on the
// bridge's rows, removed row included, was sent or dropped with a reason.
// A packet's drop counts on the row it came in on ("rx dropped by
// reason"), also when its port of output dropped it, which that port's row
// counts too ("tx dropped by reason"): the sum takes the ingress rows'.
// A LOCAL port that received nothing may be a third port: the copies
// flooded to it are left out (its row, and its dropped copies, which the
// ingress rows count too).
func checkCLIBalanced(t *testing.T, dump string) {
	t.Helper()
	var localDrops uint64 // copies to LOCAL dropped, as its row counts them
	if i := strings.Index(dump, "  port LOCAL: rx pkts=0,"); i >= 0 {
		local, rest := dump[i:], ""
		if j := strings.Index(local[1:], "  port "); j >= 0 {
			local, rest = local[:j+1], local[j+1:]
		}
		dump = dump[:i] + rest
		localDrops = sumMatches(dumpTxDrops, local, dumpReason)
	}
	rx, tx := sumMatches(dumpRx, dump, nil), sumMatches(dumpTx, dump, nil)
	drops := sumMatches(dumpRxDrops, dump, dumpReason) - localDrops
	if rx == 0 || rx != tx+drops {
		t.Errorf("packets not accounted: rx %d != tx %d + drops %d\n%s", rx, tx, drops, dump)
	}
}

// sumMatches adds up the numbers that re's first group captures in text,
// or, with each not nil, the numbers that each captures within the group.
func sumMatches(re *regexp.Regexp, text string, each *regexp.Regexp) uint64 {
	var n uint64
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		if each == nil {
			v, _ := strconv.ParseUint(m[1], 10, 64)
			n += v
			continue
		}
		n += sumMatches(each, m[1], nil)
	}
	return n
}

// TestOVSDBInternalPorts drives internal ports through the real
// ovsdb-server and ovs-vsctl: each gets its ofport written back, works
// once moved into a namespace, and del-port deletes its device.
func TestOVSDBInternalPorts(t *testing.T) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	a := netns.New(t, "a")
	b := netns.New(t, "b")
	x := startOVSDBDaemon(t, bin, sw, t.TempDir(), db.Remote())
	vsctl := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := db.Vsctl(append([]string{"--timeout=60"}, args...)...)
		if err != nil {
			t.Fatalf("%v\novsxdp output:\n%s", err, x.proc.Output())
		}
		return strings.Trim(strings.TrimSpace(out), `"`)
	}

	vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp")
	vsctl(t, "add-port", "br0", "int-a", "--", "set", "interface", "int-a", "type=internal", "ofport_request=5")
	vsctl(t, "add-port", "br0", "int-b", "--", "set", "interface", "int-b", "type=internal")
	if got := vsctl(t, "get", "interface", "int-a", "ofport"); got != "5" {
		t.Fatalf("int-a ofport %s, want 5", got)
	}
	if got := vsctl(t, "get", "interface", "int-b", "ofport"); got == "5" || got == "[]" || got == "-1" {
		t.Fatalf("int-b ofport %s, want a free number", got)
	}
	if e := vsctl(t, "get", "interface", "int-a", "error"); e != "[]" {
		t.Fatalf("int-a error %s", e)
	}
	target := "unix:" + filepath.Join(x.runDir, "br0.mgmt")
	if out, err := sw.Run(ofctl, "--timeout=30", "add-flow", target, "actions=normal"); err != nil {
		t.Fatalf("ovs-ofctl add-flow: %v\n%s", err, out)
	}
	for _, m := range []struct {
		ns        *netns.NS
		dev, addr string
	}{{a, "int-a", "10.78.0.1/24"}, {b, "int-b", "10.78.0.2/24"}} {
		sw.IP(t, "link", "set", m.dev, "netns", m.ns.Name)
		m.ns.AddAddr(t, m.dev, m.addr)
		if err := m.ns.SetLinkUp(m.dev); err != nil {
			t.Fatal(err)
		}
	}
	if !netns.Eventually(30*time.Second, func() bool {
		_, err := a.Run("ping", "-n", "-c", "1", "-W", "1", "10.78.0.2")
		return err == nil
	}) {
		t.Fatalf("int-a does not reach int-b through br0\n%s\n%s", vsctl(t, "show"), x.cli.run(t, "dump-ports", "br0"))
	}
	checkCLIBalanced(t, x.cli.run(t, "dump-ports", "br0"))
	vsctl(t, "del-port", "br0", "int-a")
	if !linkGone(a, "int-a", 20*time.Second) {
		t.Errorf("int-a is still in namespace a after del-port")
	}
}

// TestInternalPortsOutliveRestart moves two internal ports into namespaces
// of their own, addresses them and pings between them through the bridge;
// then it stops the daemon, with SIGTERM and then with SIGKILL, and starts
// it again on its state file: each time the devices stay in their
// namespaces with their addresses and MTU while the daemon is away (as an
// Open vSwitch kernel datapath's internal ports outlive ovs-vswitchd),
// the restarted daemon takes them up where they are (none is created in
// the switch namespace) and the ping works again. del-port and del-br
// then delete them: no TUN/TAP device is left anywhere.
func TestInternalPortsOutliveRestart(t *testing.T) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	a := netns.New(t, "a")
	b := netns.New(t, "b")
	dir := t.TempDir()
	sock, statePath := filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json")
	d, proc := startCLIDaemonIn(t, sw, bin, sock, statePath)

	d.run(t, "add-br", "br0")
	d.run(t, "add-port", "br0", "i-a", "type=internal")
	d.run(t, "add-port", "br0", "i-b", "type=internal", "ofport=7")
	d.run(t, "add-flow", "br0", "actions=normal")
	moveInternal(t, sw, a, "i-a", "10.80.0.1/24")
	a.IP(t, "link", "set", "i-a", "mtu", "1400")
	moveInternal(t, sw, b, "i-b", "10.80.0.2/24")
	if !pings(a, "10.80.0.2", 30*time.Second) {
		t.Fatalf("a does not reach b through the bridge:\n%s\n%s", d.run(t, "show"), d.run(t, "dump-ports", "br0"))
	}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		stopDaemon(t, proc, sig)
		checkAddr(t, a, "i-a", "10.80.0.1/24")
		checkAddr(t, b, "i-b", "10.80.0.2/24")
		d, proc = startCLIDaemonIn(t, sw, bin, sock, statePath)
		for _, dev := range []string{"i-a", "i-b"} {
			if out, err := sw.Run("ip", "link", "show", dev); err == nil {
				t.Fatalf("after %v the restarted daemon made %s anew in the switch namespace:\n%s", sig, dev, out)
			}
		}
		if !netns.Eventually(30*time.Second, func() bool {
			return strings.Count(d.run(t, "show"), "link_state: up") == 2
		}) {
			t.Fatalf("after %v the ports do not show up:\n%s\n%s", sig, d.run(t, "show"), proc.Output())
		}
		if show := d.run(t, "show"); !strings.Contains(show, "ofport: 1\n") || !strings.Contains(show, "ofport: 7\n") {
			t.Fatalf("after %v the ports lost their numbers:\n%s", sig, show)
		}
		if !pings(a, "10.80.0.2", 30*time.Second) {
			t.Fatalf("after %v a does not reach b through the bridge:\n%s\n%s\n%s", sig, d.run(t, "show"), d.run(t, "dump-ports", "br0"), proc.Output())
		}
		if out, err := a.Run("ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "10.80.0.2"); err != nil || !strings.Contains(out, " 0% packet loss") {
			t.Fatalf("after %v ping a -> b: %v\n%s", sig, err, out)
		}
		checkAddr(t, a, "i-a", "10.80.0.1/24")
		if out := a.IP(t, "link", "show", "i-a"); !strings.Contains(out, "mtu 1400") {
			t.Fatalf("after %v i-a lost its MTU:\n%s", sig, out)
		}
	}

	d.run(t, "del-port", "br0", "i-a")
	if out, err := a.Run("ip", "link", "show", "i-a"); err == nil {
		t.Errorf("i-a is still in namespace a after del-port:\n%s", out)
	}
	d.run(t, "del-br", "br0")
	if !netns.Eventually(10*time.Second, func() bool {
		return len(tunDevices(t, sw))+len(tunDevices(t, a))+len(tunDevices(t, b)) == 0
	}) {
		t.Errorf("TUN/TAP devices left after del-port and del-br: switch %v, a %v, b %v", tunDevices(t, sw), tunDevices(t, a), tunDevices(t, b))
	}
}

// TestOVSDBInternalPortsOutliveRestart is TestInternalPortsOutliveRestart
// through the real ovsdb-server and ovs-vsctl: the daemon, stopped with
// SIGTERM and then with SIGKILL and started again on the same database,
// takes up the internal ports where they were moved (their ofports and
// addresses unchanged) and keeps the flow ovs-ofctl added before.
// Removing the ports from the database deletes their devices.
func TestOVSDBInternalPortsOutliveRestart(t *testing.T) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	a := netns.New(t, "a")
	b := netns.New(t, "b")
	dir := t.TempDir()
	x := startOVSDBDaemon(t, bin, sw, dir, db.Remote())
	vsctl := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := db.Vsctl(append([]string{"--timeout=60"}, args...)...)
		if err != nil {
			t.Fatalf("%v\novsxdp output:\n%s", err, x.proc.Output())
		}
		return strings.Trim(strings.TrimSpace(out), `"`)
	}
	addFlow := func(t *testing.T) {
		t.Helper()
		target := "unix:" + filepath.Join(x.runDir, "br0.mgmt")
		if !netns.Eventually(30*time.Second, func() bool {
			_, err := sw.Run(ofctl, "--timeout=30", "add-flow", target, "actions=normal")
			return err == nil
		}) {
			t.Fatalf("ovs-ofctl add-flow %s fails\n%s", target, x.proc.Output())
		}
	}

	vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp")
	vsctl(t, "add-port", "br0", "int-a", "--", "set", "interface", "int-a", "type=internal", "ofport_request=5")
	vsctl(t, "add-port", "br0", "int-b", "--", "set", "interface", "int-b", "type=internal")
	ofB := vsctl(t, "get", "interface", "int-b", "ofport")
	addFlow(t)
	moveInternal(t, sw, a, "int-a", "10.81.0.1/24")
	moveInternal(t, sw, b, "int-b", "10.81.0.2/24")
	if !pings(a, "10.81.0.2", 30*time.Second) {
		t.Fatalf("int-a does not reach int-b through br0\n%s\n%s", vsctl(t, "show"), x.cli.run(t, "dump-ports", "br0"))
	}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		stopDaemon(t, x.proc, sig)
		checkAddr(t, a, "int-a", "10.81.0.1/24")
		checkAddr(t, b, "int-b", "10.81.0.2/24")
		x = startOVSDBDaemon(t, bin, sw, dir, db.Remote())
		for _, dev := range []string{"int-a", "int-b"} {
			if out, err := sw.Run("ip", "link", "show", dev); err == nil {
				t.Fatalf("after %v the restarted daemon made %s anew in the switch namespace:\n%s", sig, dev, out)
			}
		}
		if !netns.Eventually(30*time.Second, func() bool {
			return vsctl(t, "get", "interface", "int-a", "link_state") == "up" && vsctl(t, "get", "interface", "int-b", "link_state") == "up"
		}) {
			t.Fatalf("after %v the ports do not come up: int-a error %s, int-b error %s\n%s", sig,
				vsctl(t, "get", "interface", "int-a", "error"), vsctl(t, "get", "interface", "int-b", "error"), x.proc.Output())
		}
		if got := vsctl(t, "get", "interface", "int-a", "ofport"); got != "5" {
			t.Errorf("after %v int-a ofport %s, want 5", sig, got)
		}
		if got := vsctl(t, "get", "interface", "int-b", "ofport"); got != ofB {
			t.Errorf("after %v int-b ofport %s, want %s", sig, got, ofB)
		}
		if out, err := sw.Run(ofctl, "--timeout=30", "dump-flows", "unix:"+filepath.Join(x.runDir, "br0.mgmt")); err != nil || !strings.Contains(out, "actions=NORMAL") {
			t.Fatalf("after %v the flow is not kept: %v\n%s", sig, err, out)
		}
		if !pings(a, "10.81.0.2", 30*time.Second) {
			t.Fatalf("after %v int-a does not reach int-b\n%s\n%s", sig, x.cli.run(t, "dump-ports", "br0"), x.proc.Output())
		}
	}

	vsctl(t, "del-port", "br0", "int-a")
	if !linkGone(a, "int-a", 20*time.Second) {
		t.Errorf("int-a is still in namespace a after del-port")
	}
	vsctl(t, "del-br", "br0")
	if !netns.Eventually(20*time.Second, func() bool {
		return len(tunDevices(t, sw))+len(tunDevices(t, a))+len(tunDevices(t, b)) == 0
	}) {
		t.Errorf("TUN/TAP devices left after del-port and del-br: switch %v, a %v, b %v", tunDevices(t, sw), tunDevices(t, a), tunDevices(t, b))
	}
}
