package conntrack

import (
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// ovsFlows is a stateful firewall whose table 1 sorts packets by the
// ct_state the first ct gave them (one rule per state class, told apart
// by priority); port 1's new connections are committed.
const ovsFlows = `table=0,priority=100,ip,actions=ct(table=1,zone=0)
table=0,priority=100,ipv6,actions=ct(table=1,zone=0)
table=0,priority=1,actions=drop
table=1,priority=60,ct_state=+trk+inv,actions=drop
table=1,priority=50,ct_state=+trk+rel+rpl,actions=drop
table=1,priority=49,ct_state=+trk+rel-rpl,actions=drop
table=1,priority=40,ct_state=+trk+est+rpl,actions=drop
table=1,priority=39,ct_state=+trk+est-rpl,actions=drop
table=1,priority=30,ip,ct_state=+trk+new,in_port=1,actions=ct(commit,zone=0)
table=1,priority=30,ipv6,ct_state=+trk+new,in_port=1,actions=ct(commit,zone=0)
table=1,priority=29,ct_state=+trk+new,actions=drop
table=1,priority=1,actions=drop
`

var timeoutRE = regexp.MustCompile(`,timeout=(\d+)`)

var ovsClass = map[int]string{60: "inv", 50: "rel+rpl", 49: "rel", 40: "est+rpl", 39: "est", 30: "new", 29: "new", 1: "untracked"}

// stateClass names the table-1 rule of ovsFlows a ct_state would match.
func stateClass(s uint8) string {
	switch {
	case s&inv != 0:
		return "inv"
	case s&rel != 0 && s&rpl != 0:
		return "rel+rpl"
	case s&rel != 0:
		return "rel"
	case s&est != 0 && s&rpl != 0:
		return "est+rpl"
	case s&est != 0:
		return "est"
	case s&new_ != 0:
		return "new"
	}
	return "untracked"
}

// ovsSwitch is an Open vSwitch with a userspace (dummy) datapath, its
// own database and run directory, and two dummy ports.
type ovsSwitch struct {
	t   *testing.T
	dir string
	env []string
}

func (o *ovsSwitch) cmd(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	c.Env = o.env
	out, err := c.CombinedOutput()
	return string(out), err
}

func (o *ovsSwitch) must(name string, args ...string) string {
	o.t.Helper()
	out, err := o.cmd(name, args...)
	if err != nil {
		o.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// query runs a command that only reads the switch's state, as must does,
// trying again when the connection to the switch failed as it opened: on
// a loaded machine ovs-vswitchd now and then drops a new management
// connection ("failed to open socket (Broken pipe)") among the many that
// a test polling its counters opens.
func (o *ovsSwitch) query(name string, args ...string) string {
	o.t.Helper()
	for try := 1; ; try++ {
		out, err := o.cmd(name, args...)
		if err == nil {
			return out
		}
		if try == 5 || !strings.Contains(out, "failed to open socket") {
			o.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (o *ovsSwitch) appctl(args ...string) string {
	o.t.Helper()
	return o.must("ovs-appctl", append([]string{"-t", filepath.Join(o.dir, "vswitchd.ctl")}, args...)...)
}

// daemon starts a program of the switch; the test's cleanup kills it.
func (o *ovsSwitch) daemon(name string, args ...string) {
	o.t.Helper()
	c := exec.Command(name, args...)
	c.Env = o.env
	if err := c.Start(); err != nil {
		o.t.Fatalf("start %s: %v", name, err)
	}
	o.t.Cleanup(func() {
		_ = c.Process.Kill()
		_ = c.Wait()
	})
}

// waitFor runs a command until it succeeds, for up to 30 s.
func (o *ovsSwitch) waitFor(name string, args ...string) {
	o.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := o.cmd(name, args...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("%s %s never succeeded: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startOVS(t *testing.T) *ovsSwitch {
	for _, tool := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl"} {
		testenv.RequireTool(t, tool, "openvswitch-switch")
	}
	dir, err := os.MkdirTemp("", "ovsct")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	o := &ovsSwitch{t: t, dir: dir}
	o.env = append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_LOGDIR="+dir, "OVS_DBDIR="+dir, "OVS_SYSCONFDIR="+dir)
	db := filepath.Join(dir, "conf.db")
	sock := "unix:" + filepath.Join(dir, "db.sock")
	o.must("ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema")
	o.daemon("ovsdb-server", "--remote=p"+sock, "--unixctl="+filepath.Join(dir, "ovsdb.ctl"), "--no-chdir",
		"--log-file="+filepath.Join(dir, "ovsdb.log"), db)
	o.waitFor("ovs-vsctl", "--db="+sock, "--no-wait", "init")
	o.daemon("ovs-vswitchd", "--enable-dummy=override", sock, "--unixctl="+filepath.Join(dir, "vswitchd.ctl"), "--no-chdir",
		"--log-file="+filepath.Join(dir, "vswitchd.log"))
	o.waitFor("ovs-appctl", "-t", filepath.Join(dir, "vswitchd.ctl"), "version")
	o.must("ovs-vsctl", "--db="+sock, "--timeout=30", "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=dummy",
		"--", "add-port", "br0", "p1", "--", "set", "interface", "p1", "type=dummy", "ofport_request=1",
		"--", "add-port", "br0", "p2", "--", "set", "interface", "p2", "type=dummy", "ofport_request=2")
	flows := filepath.Join(dir, "flows.txt")
	if err := os.WriteFile(flows, []byte(ovsFlows), 0o644); err != nil {
		t.Fatal(err)
	}
	o.must("ovs-ofctl", "add-flows", "br0", flows)
	return o
}

// counters returns the packet count of each table-1 rule by priority.
func (o *ovsSwitch) counters() map[int]int {
	o.t.Helper()
	m := map[int]int{}
	for _, l := range strings.Split(o.query("ovs-ofctl", "dump-flows", "br0", "table=1"), "\n") {
		np, pr := field(l, "n_packets="), field(l, "priority=")
		if np != "" && pr != "" {
			n, _ := strconv.Atoi(np)
			p, _ := strconv.Atoi(pr)
			m[p] += n
		}
	}
	return m
}

func field(line, name string) string {
	i := strings.Index(line, name)
	if i < 0 {
		return ""
	}
	v := line[i+len(name):]
	if j := strings.IndexAny(v, ", "); j >= 0 {
		v = v[:j]
	}
	return v
}

// send injects a frame into a port and returns the class of the table-1
// rule it matched.
func (o *ovsSwitch) send(port int, frame []byte) string {
	o.t.Helper()
	before := o.counters()
	// Without datapath flows every packet is an upcall, which updates
	// the rules' counters before the next dump.
	o.appctl("dpctl/del-flows")
	o.appctl("netdev-dummy/receive", "p"+strconv.Itoa(port), hex.EncodeToString(frame))
	deadline := time.Now().Add(20 * time.Second)
	for {
		after := o.counters()
		for p, n := range after {
			if n > before[p] {
				return ovsClass[p]
			}
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("the packet matched no table-1 rule")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMatchesOVSUserspaceConntrack runs the same packets through this
// tracker and through Open vSwitch's userspace tracker (ovs-vswitchd with
// a dummy datapath, the same stateful-firewall flows), and compares the
// ct_state class of every packet, dpctl/dump-conntrack and
// dpctl/ct-stats-show.
func TestMatchesOVSUserspaceConntrack(t *testing.T) {
	o := startOVS(t)
	h := newHarness(t, Config{})
	// This tracker's clock follows the real one, so that connections
	// time out in both trackers alike however long the test takes.
	base, t0 := h.now, time.Now()
	tick := func() { h.now = base + int64(time.Since(t0)) }
	step := func(what string, p pkt, port int) {
		t.Helper()
		tick()
		fr := p.build(t)
		k, _ := h.run(append([]byte(nil), fr...), lookup(0))
		mine := stateClass(k.CtState)
		if mine == "new" && port == 1 {
			h.run(append([]byte(nil), fr...), commit(0))
		}
		got := o.send(port, fr)
		if got != mine {
			t.Errorf("%s: Open vSwitch %s, this tracker %s", what, got, mine)
		}
		t.Logf("%s: %s", what, got)
	}
	u := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 5000, dport: 53, payload: []byte("q")}
	ub := pkt{src: "10.0.0.2", dst: "10.0.0.1", proto: flow.IPProtoUDP, sport: 53, dport: 5000, payload: []byte("a")}
	step("udp first", u, 1)
	step("udp again", u, 1)
	step("udp reply", ub, 2)
	step("udp after reply", u, 1)
	u2 := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 5001, dport: 9999, payload: []byte("x")}
	step("udp to a closed port", u2, 1)
	step("port unreachable", pkt{src: "10.0.0.2", dst: "10.0.0.1", proto: flow.IPProtoICMP, icmpType: icmpDestUnreach, icmpCode: 3, quote: ipPacket(u2.build(t))}, 2)
	step("udp from the other side", pkt{src: "10.0.0.2", dst: "10.0.0.1", proto: flow.IPProtoUDP, sport: 7000, dport: 7001}, 2)
	step("echo reply first", pkt{src: "10.0.0.2", dst: "10.0.0.1", proto: flow.IPProtoICMP, icmpType: icmpEchoReply, icmpID: 9}, 2)
	step("echo request", pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoICMP, icmpType: icmpEcho, icmpID: 9}, 1)
	step("echo reply", pkt{src: "10.0.0.2", dst: "10.0.0.1", proto: flow.IPProtoICMP, icmpType: icmpEchoReply, icmpID: 9}, 2)
	step("echo request again", pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoICMP, icmpType: icmpEcho, icmpID: 9}, 1)
	step("echo6 request", pkt{src: "fd00::1", dst: "fd00::2", proto: flow.IPProtoICMPv6, icmpType: icmp6EchoRequest, icmpID: 5}, 1)
	step("echo6 reply", pkt{src: "fd00::2", dst: "fd00::1", proto: flow.IPProtoICMPv6, icmpType: icmp6EchoReply, icmpID: 5}, 2)
	step("udp6", pkt{src: "fd00::1", dst: "fd00::2", proto: flow.IPProtoUDP, sport: 1, dport: 2}, 1)
	step("udp6 reply", pkt{src: "fd00::2", dst: "fd00::1", proto: flow.IPProtoUDP, sport: 2, dport: 1}, 2)
	step("gre", pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: 47, payload: []byte{0, 0, 8, 0}}, 1)

	c := newTCPConn(h)
	step("syn", c.fromClient(tcpSYN, 0), 1)
	syn := c.fromClient(tcpSYN, 0)
	c.cseq--
	step("syn retransmitted", syn, 1)
	step("syn+ack", c.fromServer(tcpSYN|tcpACK, 0), 2)
	step("ack", c.fromClient(tcpACK, 0), 1)
	step("data", c.fromClient(tcpACK|tcpPSH, 100), 1)
	bad := c.fromClient(tcpACK|tcpPSH, 10)
	c.cseq -= 10
	bad.seq += 1 << 30
	step("out of window", bad, 1)
	synfin := c.fromClient(tcpSYN|tcpFIN, 0)
	c.cseq--
	step("syn+fin", synfin, 1)
	step("no flags", pkt{src: c.cli, dst: c.srv, proto: flow.IPProtoTCP, sport: c.cport, dport: c.sport, seq: c.cseq, win: 100}, 1)
	step("server ack", c.fromServer(tcpACK, 0), 2)
	c2 := newTCPConn(h)
	c2.cport = 41001
	step("second syn", c2.fromClient(tcpSYN, 0), 1)
	step("reset", c2.fromServer(tcpRST|tcpACK, 0), 2)
	step("ack after reset", c2.fromClient(tcpACK, 0), 1)
	step("syn+ack with no connection", pkt{src: c.srv, dst: c.cli, proto: flow.IPProtoTCP, sport: 80, dport: 42000, flags: tcpSYN | tcpACK, seq: 1, ack: 1, win: 100}, 2)
	// Window scaling: the server sends far more than an unscaled
	// window; then an old retransmission, an ack of unsent data and a
	// reset off the sequence.
	c3 := newTCPConn(h)
	c3.cport = 41002
	syn3 := c3.fromClient(tcpSYN, 0)
	syn3.wscale = 8
	step("scaled syn", syn3, 1)
	synack3 := c3.fromServer(tcpSYN|tcpACK, 0)
	synack3.wscale = 8
	step("scaled syn+ack", synack3, 2)
	step("scaled ack", c3.fromClient(tcpACK, 0), 1)
	for i := range 3 {
		step("burst "+strconv.Itoa(i), c3.fromServer(tcpACK, 1400), 2)
	}
	c3.sseq += 1 << 28
	step("far ahead of the scaled window", c3.fromServer(tcpACK, 1400), 2)
	c3.sseq -= 1<<28 + 1400
	old := c3.fromServer(tcpACK, 1400)
	old.seq -= 2800
	c3.sseq -= 1400
	step("old retransmission", old, 2)
	unsent := c3.fromClient(tcpACK, 0)
	unsent.ack += 1 << 20
	step("ack of unsent data", unsent, 1)
	rst := c3.fromClient(tcpRST, 0)
	rst.seq += 100000
	step("reset off the sequence", rst, 1)
	step("reset on the sequence", c3.fromClient(tcpRST, 0), 1)

	step("fin", c.fromClient(tcpFIN|tcpACK, 0), 1)
	step("fin back", c.fromServer(tcpFIN|tcpACK, 0), 2)
	step("last ack", c.fromClient(tcpACK, 0), 1)

	tick()
	mine, theirs := dumps(h, o, false, false)
	if !slices.Equal(mine, theirs) {
		t.Errorf("dump-conntrack differs:\nOpen vSwitch:\n%s\nthis tracker:\n%s", strings.Join(theirs, "\n"), strings.Join(mine, "\n"))
	}
	// -m: each TCP side's state, window scale and flags.
	if mine, theirs := dumps(h, o, true, false); !slices.Equal(mine, theirs) {
		t.Errorf("dump-conntrack -m differs:\nOpen vSwitch:\n%s\nthis tracker:\n%s", strings.Join(theirs, "\n"), strings.Join(mine, "\n"))
	}
	// -m -s: and the seconds left, which the two clocks may round a
	// second apart (a loaded machine: a few).
	tick()
	mine, theirs = dumps(h, o, true, true)
	timeouts := func(lines []string) ([]string, []int) {
		var rest []string
		var secs []int
		for _, l := range lines {
			m := timeoutRE.FindStringSubmatch(l)
			if m == nil {
				rest = append(rest, l)
				secs = append(secs, -1)
				continue
			}
			n, _ := strconv.Atoi(m[1])
			rest = append(rest, strings.Replace(l, m[0], ",timeout=N", 1))
			secs = append(secs, n)
		}
		return rest, secs
	}
	ml, ms := timeouts(mine)
	tl, ts := timeouts(theirs)
	if !slices.Equal(ml, tl) {
		t.Errorf("dump-conntrack -m -s differs:\nOpen vSwitch:\n%s\nthis tracker:\n%s", strings.Join(theirs, "\n"), strings.Join(mine, "\n"))
	} else {
		for i := range ms {
			if ms[i] < 0 || ts[i] < 0 || ms[i]-ts[i] > 5 || ts[i]-ms[i] > 5 {
				t.Errorf("timeouts differ: Open vSwitch %s, this tracker %s", theirs[i], mine[i])
			}
		}
	}
	if got, want := h.tr.Stats(h.now, AllZones).Format(true), o.appctl("dpctl/ct-stats-show", "verbose"); got != want {
		t.Errorf("ct-stats-show differs:\nOpen vSwitch:\n%s\nthis tracker:\n%s", want, got)
	}
}

// natFlows translate port 1's connections: to 10.0.0.100 by DNAT to
// 10.0.0.3:8080, others by SNAT to 192.0.2.10 (2001:db8::10); port 2's
// packets get the connection's translation back.
const natFlows = `table=0,priority=110,ip,in_port=1,nw_dst=10.0.0.100,actions=ct(commit,zone=1,nat(dst=10.0.0.3:8080)),output:2
table=0,priority=100,ip,in_port=1,actions=ct(commit,zone=1,nat(src=192.0.2.10)),output:2
table=0,priority=100,ipv6,in_port=1,actions=ct(commit,zone=1,nat(src=[2001:db8::10])),output:2
table=0,priority=100,ip,in_port=2,actions=ct(zone=1,nat),output:1
table=0,priority=100,ipv6,in_port=2,actions=ct(zone=1,nat),output:1
table=0,priority=1,actions=drop
`

// dumps returns the connections of h's tracker and of Open vSwitch's, as
// dump-conntrack lines (with -m when verbose, -s when stats), sorted.
func dumps(h *harness, o *ovsSwitch, verbose, stats bool) (mine, theirs []string) {
	for e := range h.tr.Dump(h.now, AllZones) {
		mine = append(mine, e.Format(verbose, stats, h.now))
	}
	args := []string{"dpctl/dump-conntrack"}
	if verbose {
		args = append(args, "-m")
	}
	if stats {
		args = append(args, "-s")
	}
	for _, l := range strings.Split(strings.TrimSpace(o.appctl(args...)), "\n") {
		if l != "" {
			theirs = append(theirs, l)
		}
	}
	slices.Sort(mine)
	slices.Sort(theirs)
	return mine, theirs
}

// readPcap returns the frames of a pcap file.
func readPcap(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out [][]byte
	for {
		b, _, err := r.ReadPacketData()
		if err != nil {
			return out
		}
		out = append(out, append([]byte(nil), b...))
	}
}

// TestNATMatchesOVSUserspaceConntrack sends the same packets through this
// tracker's NAT and through Open vSwitch's (SNAT and DNAT, IPv4 and IPv6,
// TCP, UDP, ICMP echo and a related ICMP error) and compares the
// translated frames byte for byte, and the connection tables.
func TestNATMatchesOVSUserspaceConntrack(t *testing.T) {
	o := startOVS(t)
	o.must("ovs-ofctl", "del-flows", "br0")
	flows := filepath.Join(o.dir, "nat.txt")
	if err := os.WriteFile(flows, []byte(natFlows), 0o644); err != nil {
		t.Fatal(err)
	}
	o.must("ovs-ofctl", "add-flows", "br0", flows)
	sock := "unix:" + filepath.Join(o.dir, "db.sock")
	pcaps := [3]string{"", filepath.Join(o.dir, "p1.pcap"), filepath.Join(o.dir, "p2.pcap")}
	o.must("ovs-vsctl", "--db="+sock, "--timeout=30", "set", "interface", "p1", "options:tx_pcap="+pcaps[1],
		"--", "set", "interface", "p2", "options:tx_pcap="+pcaps[2])

	h := newHarness(t, Config{})
	base, t0 := h.now, time.Now()
	var sent [3][][]byte // what this tracker sends out of each port
	step := func(p pkt, in int) {
		t.Helper()
		h.now = base + int64(time.Since(t0))
		fr := p.build(t)
		var ct flow.CT
		out := 1
		if in == 1 {
			out = 2
			ct = natCT(1, flow.NATSrc, "192.0.2.10", "", 0, 0)
			if p.dst == "10.0.0.100" {
				ct = natCT(1, flow.NATDst, "10.0.0.3", "", 8080, 8080)
			} else if strings.Contains(p.src, ":") {
				ct = natCT(1, flow.NATSrc, "2001:db8::10", "", 0, 0)
			}
		} else {
			ct = restoreCT(1)
		}
		mine := append([]byte(nil), fr...)
		h.run(mine, ct)
		sent[out] = append(sent[out], mine)
		o.appctl("netdev-dummy/receive", "p"+strconv.Itoa(in), hex.EncodeToString(fr))
	}
	c := newTCPConn(h)
	step(c.fromClient(tcpSYN, 0), 1)
	step(pkt{src: "10.0.0.2", dst: "192.0.2.10", proto: flow.IPProtoTCP, sport: 80, dport: 41000, flags: tcpSYN | tcpACK, seq: 5000, ack: c.cseq, win: 65535}, 2)
	c.sseq++
	step(c.fromClient(tcpACK|tcpPSH, 20), 1)
	u := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 5001, dport: 9999, payload: []byte("x")}
	step(u, 1)
	translated := sent[2][len(sent[2])-1]
	step(pkt{src: "10.0.0.2", dst: "192.0.2.10", proto: flow.IPProtoICMP, icmpType: icmpDestUnreach, icmpCode: 3, quote: ipPacket(translated)}, 2)
	// Another client's port is taken on the NAT address: both trackers
	// take the next free one.
	step(pkt{src: "10.0.0.5", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 5001, dport: 9999, payload: []byte("y")}, 1)
	step(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoICMP, icmpType: icmpEcho, icmpID: 33}, 1)
	step(pkt{src: "10.0.0.2", dst: "192.0.2.10", proto: flow.IPProtoICMP, icmpType: icmpEchoReply, icmpID: 33}, 2)
	step(pkt{src: "10.0.0.1", dst: "10.0.0.100", proto: flow.IPProtoUDP, sport: 6000, dport: 80, payload: []byte("lb")}, 1)
	step(pkt{src: "10.0.0.3", dst: "10.0.0.1", proto: flow.IPProtoUDP, sport: 8080, dport: 6000, payload: []byte("be")}, 2)
	step(pkt{src: "fd00::1", dst: "fd00::2", proto: flow.IPProtoUDP, sport: 7000, dport: 53, payload: []byte("six")}, 1)
	step(pkt{src: "fd00::2", dst: "2001:db8::10", proto: flow.IPProtoUDP, sport: 53, dport: 7000, payload: []byte("xis")}, 2)

	for port := 1; port <= 2; port++ {
		var got [][]byte
		deadline := time.Now().Add(20 * time.Second)
		for {
			got = readPcap(t, pcaps[port])
			if len(got) >= len(sent[port]) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(got) != len(sent[port]) {
			t.Fatalf("port %d: Open vSwitch sent %d frames, this tracker %d", port, len(got), len(sent[port]))
		}
		t.Logf("port %d: %d frames compared", port, len(got))
		for i := range got {
			if !slices.Equal(got[i], sent[port][i]) {
				t.Errorf("port %d frame %d differs:\nOpen vSwitch %x\nthis tracker %x", port, i, got[i], sent[port][i])
			}
		}
	}
	h.now = base + int64(time.Since(t0))
	mine, theirs := dumps(h, o, false, false)
	t.Logf("connections:\n%s", strings.Join(theirs, "\n"))
	if !slices.Equal(mine, theirs) {
		t.Errorf("dump-conntrack differs:\nOpen vSwitch:\n%s\nthis tracker:\n%s", strings.Join(theirs, "\n"), strings.Join(mine, "\n"))
	}
	// -m: translated connections have the same id and status.
	if mine, theirs := dumps(h, o, true, false); !slices.Equal(mine, theirs) {
		t.Errorf("dump-conntrack -m differs:\nOpen vSwitch:\n%s\nthis tracker:\n%s", strings.Join(theirs, "\n"), strings.Join(mine, "\n"))
	}
}

// TestDefragMatchesOVSUserspaceConntrack sends fragments out of order
// through Defrag, Track (with SNAT) and Finish, and through Open vSwitch's
// ipf and tracker, and compares the fragments that leave, byte for byte.
func TestDefragMatchesOVSUserspaceConntrack(t *testing.T) {
	o := startOVS(t)
	o.must("ovs-ofctl", "del-flows", "br0")
	flows := filepath.Join(o.dir, "frag.txt")
	if err := os.WriteFile(flows, []byte(natFlows), 0o644); err != nil {
		t.Fatal(err)
	}
	o.must("ovs-ofctl", "add-flows", "br0", flows)
	pcap := filepath.Join(o.dir, "p2.pcap")
	o.must("ovs-vsctl", "--db=unix:"+filepath.Join(o.dir, "db.sock"), "--timeout=30", "set", "interface", "p2", "options:tx_pcap="+pcap)

	h := newHarness(t, Config{})
	d := NewDefrag()
	var sent [][]byte
	for _, v6 := range []bool{false, true} {
		payload := make([]byte, 3000)
		for i := range payload {
			payload[i] = byte(i * 13)
		}
		var frags [][]byte
		ct := natCT(1, flow.NATSrc, "192.0.2.10", "", 0, 0)
		if v6 {
			frags = fragment6(pkt{src: "fd00::1", dst: "fd00::2", proto: flow.IPProtoUDP, sport: 4000, dport: 9000, payload: payload}.build(t), 1448, 99)
			ct = natCT(1, flow.NATSrc, "2001:db8::10", "", 0, 0)
		} else {
			frags = fragment4(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 4000, dport: 9000, payload: payload}.build(t), 1480, 99)
		}
		for _, i := range []int{2, 0, 1} {
			o.appctl("netdev-dummy/receive", "p1", hex.EncodeToString(frags[i]))
			st, whole, held := addFrag(t, d, append([]byte(nil), frags[i]...), h.now)
			if st != FragComplete {
				continue
			}
			var wk flow.Key
			var wo flow.Offsets
			flow.Extract(&wk, &wo, whole, 1)
			if v := h.tr.Track(whole, &wk, &wo, &ct, h.now); v != flow.VerdictOK {
				t.Fatalf("reassembled packet: %v", v)
			}
			Finish(whole, &wk, held, nil)
			sent = append(sent, held...)
		}
	}
	var got [][]byte
	deadline := time.Now().Add(20 * time.Second)
	for {
		got = readPcap(t, pcap)
		if len(got) >= len(sent) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(got) != len(sent) || len(sent) != 6 {
		t.Fatalf("Open vSwitch sent %d fragments, this tracker %d (want 6)", len(got), len(sent))
	}
	for i := range got {
		if !slices.Equal(got[i], sent[i]) {
			t.Errorf("fragment %d differs:\nOpen vSwitch %x\nthis tracker %x", i, got[i], sent[i])
		}
	}
	// A fragment too small to be anything but an attack.
	small := fragment4(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1, dport: 2, payload: make([]byte, 1000)}.build(t), 496, 7)[0]
	o.appctl("netdev-dummy/receive", "p1", hex.EncodeToString(small))
	addFrag(t, d, small, h.now)
	if got, want := d.Status(), o.appctl("dpctl/ipf-get-status"); got != want {
		t.Errorf("ipf-get-status differs:\nOpen vSwitch:\n%s\nthis reassembler:\n%s", want, got)
	}
	// Packets that stay incomplete: the first fragment of one, the last
	// of another, both held in zone 1 (the flows' ct zone).
	lone := [][]byte{
		fragment4(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 5, dport: 6, payload: make([]byte, 3000)}.build(t), 1480, 321)[0],
		fragment6(pkt{src: "fd00::1", dst: "fd00::2", proto: flow.IPProtoUDP, sport: 5, dport: 6, payload: make([]byte, 3000)}.build(t), 1448, 654)[2],
	}
	for _, fr := range lone {
		o.appctl("netdev-dummy/receive", "p1", hex.EncodeToString(fr))
		var k flow.Key
		var off flow.Offsets
		flow.Extract(&k, &off, fr, 1)
		if r := d.Hold(fr, &k, &off, 1, 0, h.now, nil); r.Status != FragHeld {
			t.Fatalf("a lone fragment: %v", r.Status)
		}
	}
	mine := d.Status() + "\n        Fragment Lists:\n\n" + strings.Join(d.Lists(), "\n") + "\n"
	var want string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if want = o.appctl("dpctl/ipf-get-status", "-m"); strings.Count(want, "(src=") == 2 {
			break
		}
	}
	// Open vSwitch lists the packets in hash order.
	head, lists, _ := strings.Cut(want, "Fragment Lists:\n\n")
	ls := strings.Split(strings.TrimSuffix(lists, "\n"), "\n")
	slices.Sort(ls)
	if want = head + "Fragment Lists:\n\n" + strings.Join(ls, "\n") + "\n"; mine != want {
		t.Errorf("ipf-get-status -m differs:\nOpen vSwitch:\n%s\nthis reassembler:\n%s", want, mine)
	}
}
