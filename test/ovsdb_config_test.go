package test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// The daemon configured from a real ovsdb-server (--ovsdb), driven by the
// real ovs-vsctl and ovs-ofctl, as ovs-vswitchd would be.

// ovsdbDaemon is `ovsxdp daemon --ovsdb` running in a switch namespace.
type ovsdbDaemon struct {
	cli    *cliDaemon
	proc   *netns.Process
	sw     *netns.NS
	remote string
	runDir string
}

func startOVSDBDaemon(t *testing.T, bin string, sw *netns.NS, dir, remote string) *ovsdbDaemon {
	t.Helper()
	sock, runDir := filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "run")
	proc := sw.Start(t, bin, "daemon", "--socket", sock, "--ovsdb", remote, "--rundir", runDir)
	x := &ovsdbDaemon{cli: &cliDaemon{bin: bin, sock: sock}, proc: proc, sw: sw, remote: remote, runDir: runDir}
	if !netns.Eventually(20*time.Second, func() bool {
		_, _, err := x.cli.try("version")
		return err == nil || proc.Exited()
	}) || proc.Exited() {
		t.Fatalf("the daemon does not answer (exited: %v)\n%s", proc.Exited(), proc.Output())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ovsxdp daemon output:\n%s", proc.Output())
		}
	})
	return x
}

// vsctl runs each of cmds with the real ovs-vsctl against db (which
// waits for the daemon to apply it), failing the test with the daemon's
// output.
func (x *ovsdbDaemon) vsctl(t *testing.T, db *ovsref.DB, cmds ...[]string) {
	t.Helper()
	for _, args := range cmds {
		if _, err := db.Vsctl(append([]string{"--timeout=60"}, args...)...); err != nil {
			t.Fatalf("ovs-vsctl %s: %v\novsxdp output:\n%s", strings.Join(args, " "), err, x.proc.Output())
		}
	}
}

// addNormalFlow adds actions=normal to the daemon's br0 with the real
// ovs-ofctl (ofctl).
func (x *ovsdbDaemon) addNormalFlow(t *testing.T, ofctl string) {
	t.Helper()
	if out, err := x.sw.Run(ofctl, "--timeout=30", "add-flow", "unix:"+filepath.Join(x.runDir, "br0.mgmt"), "actions=normal"); err != nil {
		t.Fatalf("ovs-ofctl add-flow: %v\n%s", err, out)
	}
}

// switchedHosts makes a switch namespace with a veth (queues queues each
// side) to each of namespaces a and b: h-a and h-b on the switch, p-a at
// prefix.1/24 in a and p-b at prefix.2/24 in b.
func switchedHosts(t *testing.T, prefix string, queues int) (sw, a, b *netns.NS) {
	t.Helper()
	sw, a, b = netns.New(t, "sw"), netns.New(t, "a"), netns.New(t, "b")
	va := netns.AddVeth(t, sw, "h-a", a, "p-a", queues)
	a.AddAddr(t, va.Peer, prefix+".1/24")
	vb := netns.AddVeth(t, sw, "h-b", b, "p-b", queues)
	b.AddAddr(t, vb.Peer, prefix+".2/24")
	return sw, a, b
}

// portsAdded counts the ports the daemon has created since it started.
func (x *ovsdbDaemon) portsAdded() int { return strings.Count(x.proc.Output(), `msg="port added"`) }

func TestOVSDBConfig(t *testing.T) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	db := ovsref.StartDB(t)
	bin := buildCLI(t)
	sw, a, b := switchedHosts(t, "10.8.0", 2)
	x := startOVSDBDaemon(t, bin, sw, t.TempDir(), db.Remote())

	// ovs-vsctl without --no-wait returns once the daemon has set cur_cfg
	// to next_cfg: whatever it changed is in place when it returns.
	vsctl := func(t *testing.T, args ...string) string {
		t.Helper()
		out, errOut, err := db.VsctlStderr(append([]string{"--timeout=60"}, args...)...)
		if err != nil {
			t.Fatalf("%v\novsxdp output:\n%s", err, x.proc.Output())
		}
		if errOut != "" {
			t.Logf("ovs-vsctl %s: %s", strings.Join(args, " "), errOut)
		}
		return strings.TrimSpace(out)
	}
	get := func(t *testing.T, args ...string) string {
		t.Helper()
		return strings.Trim(vsctl(t, append([]string{"get"}, args...)...), `"`)
	}
	ofAddFlow := func(t *testing.T) {
		t.Helper()
		target := "unix:" + filepath.Join(x.runDir, "br0.mgmt")
		if out, err := sw.Run(ofctl, "--timeout=30", "add-flow", target, "actions=normal"); err != nil {
			t.Fatalf("ovs-ofctl add-flow: %v\n%s", err, out)
		}
	}
	reach := func(t *testing.T, why string) {
		t.Helper()
		if !netns.Eventually(30*time.Second, func() bool {
			_, err := a.Run("ping", "-n", "-c", "1", "-W", "1", "10.8.0.2")
			return err == nil
		}) {
			t.Fatalf("%s: p-a does not reach p-b through br0 in 30s\n%s\n%s", why, vsctl(t, "show"), x.cli.run(t, "show"))
		}
	}

	vsctl(t, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=ovsxdp")
	// No waiting here: ovs-vsctl already waited for cur_cfg.
	if got := x.cli.run(t, "list-br"); got != "br0\n" {
		t.Fatalf("ovs-vsctl add-br returned; the daemon's bridges are %q, want br0", got)
	}
	if cur, next := get(t, "open_vswitch", ".", "cur_cfg"), get(t, "open_vswitch", ".", "next_cfg"); cur != next {
		t.Errorf("cur_cfg %s, next_cfg %s", cur, next)
	}
	if dt, it := get(t, "open_vswitch", ".", "datapath_types"), get(t, "open_vswitch", ".", "iface_types"); !strings.Contains(dt, "ovsxdp") || !strings.Contains(it, "afxdp") {
		t.Errorf("datapath_types %s, iface_types %s: want ovsxdp and afxdp in them", dt, it)
	}
	if id := get(t, "bridge", "br0", "datapath_id"); len(id) != 16 {
		t.Errorf("datapath_id %q, want 16 hex digits", id)
	}
	// The bridge's own internal port is its LOCAL port.
	if e, of := get(t, "interface", "br0", "error"), get(t, "interface", "br0", "ofport"); e != "[]" || of != "65534" {
		t.Errorf("interface br0: error %s, ofport %s; want none and 65534 (LOCAL)", e, of)
	}
	// Another datapath type is not ovsxdp's.
	vsctl(t, "add-br", "br-other", "--", "set", "bridge", "br-other", "datapath_type=netdev")
	if got := x.cli.run(t, "list-br"); got != "br0\n" {
		t.Errorf("a netdev bridge reached the daemon: %q", got)
	}

	vsctl(t, "add-port", "br0", "h-a", "--", "set", "interface", "h-a", "type=afxdp", "ofport_request=7")
	vsctl(t, "add-port", "br0", "h-b", "--", "set", "interface", "h-b", "type=afxdp")
	if got := get(t, "interface", "h-a", "ofport"); got != "7" {
		t.Fatalf("h-a ofport %s, want 7 (its ofport_request)", got)
	}
	hbOF := get(t, "interface", "h-b", "ofport")
	if n, err := strconv.Atoi(hbOF); err != nil || n <= 0 || n == 7 {
		t.Fatalf("h-b ofport %q, want a free port number", hbOF)
	}
	ofAddFlow(t)
	reach(t, "after add-port")

	t.Run("interface-columns", func(t *testing.T) {
		for _, iface := range []string{"h-a", "h-b"} {
			for col, want := range map[string]string{"link_state": "up", "admin_state": "up", "mtu": "1500",
				"mac_in_use": sw.MAC(t, iface).String(), "error": "[]"} {
				if got := get(t, "interface", iface, col); got != want {
					t.Errorf("%s %s: %q, want %q", iface, col, got, want)
				}
			}
		}
		if !netns.Eventually(30*time.Second, func() bool {
			rx := statistic(get(t, "interface", "h-a", "statistics"), "rx_packets")
			tx := statistic(get(t, "interface", "h-b", "statistics"), "tx_packets")
			return rx > 0 && tx > 0
		}) {
			t.Errorf("statistics do not count the pings in 30s: h-a %s, h-b %s",
				get(t, "interface", "h-a", "statistics"), get(t, "interface", "h-b", "statistics"))
		}
		list := vsctl(t, "list", "interface", "h-a")
		for _, want := range []string{"ofport              : 7", "link_state          : up", "rx_packets="} {
			if !strings.Contains(list, want) {
				t.Errorf("list interface h-a lacks %q:\n%s", want, list)
			}
		}
		// The peer goes down: link_state follows.
		b.IP(t, "link", "set", "p-b", "down")
		if !netns.Eventually(30*time.Second, func() bool { return get(t, "interface", "h-b", "link_state") == "down" }) {
			t.Errorf("h-b link_state %s 30s after its peer went down, want down", get(t, "interface", "h-b", "link_state"))
		}
		b.IP(t, "link", "set", "p-b", "up")
		if !netns.Eventually(30*time.Second, func() bool { return get(t, "interface", "h-b", "link_state") == "up" }) {
			t.Errorf("h-b link_state %s 30s after its peer came up, want up", get(t, "interface", "h-b", "link_state"))
		}
		reach(t, "after the peer came back up")
	})

	t.Run("missing-device", func(t *testing.T) {
		const want = "could not open network device h-c (No such device)"
		vsctl(t, "add-port", "br0", "h-c", "--", "set", "interface", "h-c", "type=afxdp")
		if e, of := get(t, "interface", "h-c", "error"), get(t, "interface", "h-c", "ofport"); e != want || of != "-1" {
			t.Fatalf("h-c: error %q ofport %s, want %q and -1", e, of, want)
		}
		if show := vsctl(t, "show"); !strings.Contains(show, `error: "`+want+`"`) {
			t.Errorf("ovs-vsctl show lacks h-c's error:\n%s", show)
		}
		c := netns.New(t, "c")
		netns.AddVeth(t, sw, "h-c", c, "p-c", 1)
		if !netns.Eventually(30*time.Second, func() bool {
			of, _ := strconv.Atoi(get(t, "interface", "h-c", "ofport"))
			return of > 0 && get(t, "interface", "h-c", "error") == "[]"
		}) {
			t.Fatalf("h-c not attached 30s after its device appeared: error %s ofport %s",
				get(t, "interface", "h-c", "error"), get(t, "interface", "h-c", "ofport"))
		}
		vsctl(t, "del-port", "br0", "h-c")
		if ports := x.cli.run(t, "list-ports", "br0"); strings.Contains(ports, "h-c") {
			t.Errorf("del-port returned; the daemon still has h-c: %q", ports)
		}
	})

	t.Run("options", func(t *testing.T) {
		added := x.portsAdded()
		// With one rx queue the port reads h-b's queue 0 only. What p-b
		// sends arrives on the h-b queue of p-b's tx queue, which a
		// 2-queue veth picks by the flow's hash, whose seed is random at
		// boot: p-b sends on one queue, so that the replies reach the port
		// on every boot.
		ethtool := testenv.RequireTool(t, "ethtool", "ethtool")
		if out, err := b.Run(ethtool, "-L", "p-b", "tx", "1"); err != nil {
			t.Fatalf("ethtool -L p-b tx 1: %v\n%s", err, out)
		}
		defer func() {
			if out, err := b.Run(ethtool, "-L", "p-b", "tx", "2"); err != nil {
				t.Errorf("ethtool -L p-b tx 2: %v\n%s", err, out)
			}
		}()
		vsctl(t, "set", "interface", "h-b", "options:n_rxq=1")
		if show := x.cli.run(t, "show"); !strings.Contains(portBlock(show, "h-b"), `options: {rxq="1"}`) {
			t.Fatalf("options:n_rxq=1 did not re-create h-b with rxq=1:\n%s", show)
		}
		if x.portsAdded() != added+1 {
			t.Errorf("%d ports added for one set of options", x.portsAdded()-added)
		}
		if got := get(t, "interface", "h-b", "ofport"); got != hbOF {
			t.Errorf("h-b re-created on ofport %s, want %s (the one it had)", got, hbOF)
		}
		reach(t, "after options:n_rxq=1")
		// A bad option is the Interface's error; removing it brings the
		// port back.
		vsctl(t, "set", "interface", "h-b", "options:xdp-mode=bogus")
		if e := get(t, "interface", "h-b", "error"); !strings.Contains(e, "xdp-mode") {
			t.Errorf("h-b error %q, want one naming xdp-mode", e)
		}
		vsctl(t, "remove", "interface", "h-b", "options", "xdp-mode", "--", "remove", "interface", "h-b", "options", "n_rxq")
		if show := x.cli.run(t, "show"); strings.Contains(portBlock(show, "h-b"), "options:") || strings.Contains(portBlock(show, "h-b"), "error:") {
			t.Fatalf("h-b still has options or an error after they were removed:\n%s", show)
		}
		reach(t, "after the options were removed")
	})

	t.Run("control-socket-refuses", func(t *testing.T) {
		_, errOut, err := x.cli.try("add-port", "br0", "h-z", "type=afxdp")
		if err == nil || !strings.Contains(errOut, "ovs-vsctl") {
			t.Errorf("add-port on the control socket: %v %q, want a refusal pointing at ovs-vsctl", err, errOut)
		}
	})

	t.Run("ovsdb-server-restart", func(t *testing.T) {
		added := x.portsAdded()
		// Traffic goes on while the server is away and after the resync.
		ping := a.Start(t, "ping", "-n", "-c", "20", "-i", "0.2", "-W", "5", "10.8.0.2")
		db.Restart(t)
		// A change waits for cur_cfg: the daemon is back in step.
		vsctl(t, "set", "interface", "h-a", "external_ids:restarted=1")
		if got := get(t, "interface", "h-a", "ofport"); got != "7" {
			t.Errorf("h-a ofport %s after the restart, want 7", got)
		}
		if x.portsAdded() != added {
			t.Errorf("the resync re-created %d ports", x.portsAdded()-added)
		}
		reach(t, "after ovsdb-server restarted")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := ping.Wait(ctx); err != nil || !strings.Contains(ping.Output(), " 0% packet loss") {
			t.Errorf("ping across the ovsdb-server restart: %v\n%s", err, ping.Output())
		}
	})

	top := t // the restarted daemon lives as long as the whole test
	t.Run("ovsxdp-restart", func(t *testing.T) {
		// h-b's number now: a port refused for a bad option and added
		// again takes a new one, as in Open vSwitch.
		hbOF := get(t, "interface", "h-b", "ofport")
		x.proc.Kill()
		x = startOVSDBDaemon(top, bin, sw, top.TempDir(), db.Remote())
		if !netns.Eventually(30*time.Second, func() bool {
			out, _, err := x.cli.try("list-ports", "br0")
			return err == nil && out == "h-a\nh-b\n"
		}) {
			t.Fatalf("the restarted daemon does not have h-a and h-b in 30s:\n%s", x.proc.Output())
		}
		vsctl(t, "set", "interface", "h-a", "external_ids:restarted=2")
		if a, b := get(t, "interface", "h-a", "ofport"), get(t, "interface", "h-b", "ofport"); a != "7" || b != hbOF {
			t.Errorf("after the restart h-a ofport %s, h-b ofport %s; want 7 and %s", a, b, hbOF)
		}
		// Flows are not kept (as in Open vSwitch): the controller, here
		// the test, adds them again.
		ofAddFlow(t)
		reach(t, "after ovsxdp restarted")
	})

	t.Run("del-port-del-br", func(t *testing.T) {
		vsctl(t, "del-port", "br0", "h-b")
		if ports := x.cli.run(t, "list-ports", "br0"); ports != "h-a\n" {
			t.Errorf("after del-port h-b the daemon's ports are %q", ports)
		}
		vsctl(t, "del-br", "br0")
		if got := x.cli.run(t, "list-br"); got != "" {
			t.Errorf("after del-br the daemon's bridges are %q", got)
		}
	})
}

// statistic reads one counter of an Interface statistics column as
// ovs-vsctl prints it ({rx_bytes=0, rx_packets=3, ...}); -1 if absent.
func statistic(m, key string) int {
	for _, kv := range strings.Split(strings.Trim(m, "{}"), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k == key {
			n, err := strconv.Atoi(v)
			if err == nil {
				return n
			}
		}
	}
	return -1
}
