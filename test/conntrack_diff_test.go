package test

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// The conntrack differential test loads one stateful firewall into
// Open vSwitch 3.1 (userspace datapath, AF_XDP ports on veths) and into
// ovsxdp (AF_XDP ports on veths, the same topology), sends the same probes
// through each, and compares what got through and the connections each
// tracker holds afterwards.
//
// The firewall: namespace a (port 1) may open TCP connections to b's port
// 80, ping b and send UDP to b; b's replies pass, and so do ICMP errors
// related to a's connections; b may open nothing to a; invalid packets are
// dropped.
var ctFirewallFlows = []string{
	"priority=100,arp,in_port=1,actions=output:2",
	"priority=100,arp,in_port=2,actions=output:1",
	"priority=90,ip,ct_state=-trk,actions=ct(table=1)",
	"table=1,priority=100,ct_state=+trk+inv,actions=drop",
	"table=1,priority=90,ct_state=+trk+new,tcp,in_port=1,tp_dst=80,actions=ct(commit),output:2",
	"table=1,priority=90,ct_state=+trk+new,icmp,in_port=1,actions=ct(commit),output:2",
	"table=1,priority=90,ct_state=+trk+new,udp,in_port=1,actions=ct(commit),output:2",
	"table=1,priority=80,ct_state=+trk+est,in_port=1,actions=output:2",
	"table=1,priority=80,ct_state=+trk+est,in_port=2,actions=output:1",
	"table=1,priority=80,ct_state=+trk+rel,in_port=2,actions=output:1",
	"table=1,priority=0,actions=drop",
}

const (
	ctAddrA = "10.77.0.1"
	ctAddrB = "10.77.0.2"
	// ctAddrB2 is b's second address, where an echo server on port 80
	// holds connections open as long as the client does.
	ctAddrB2 = "10.77.0.3"
	// ctHoldPort is the source port of the connection the out-of-window
	// probe aims at.
	ctHoldPort = "40100"
)

// ctSwitch is a switch under test with two AF_XDP ports, ha (1) and hb
// (2), on veths to namespaces a and b.
type ctSwitch struct {
	name string
	a, b *netns.NS
	// ofctl runs ovs-ofctl against the switch's bridge: the command,
	// then the bridge (name or unix: target), then args.
	ofctl func(t *testing.T, stdin []byte, cmd string, args ...string) string
	// conntrack returns dpctl/dump-conntrack's output.
	conntrack func(t *testing.T) string
}

// ctTopo makes namespaces a and b with veths to sw (host ends ha and hb)
// and addresses ctAddrA and ctAddrB.
func ctTopo(t *testing.T, sw *netns.NS) (a, b *netns.NS) {
	t.Helper()
	a, b = netns.New(t, "cta"), netns.New(t, "ctb")
	va := netns.AddVeth(t, sw, "ha", a, "pa", 1)
	vb := netns.AddVeth(t, sw, "hb", b, "pb", 1)
	a.AddAddr(t, va.Peer, ctAddrA+"/24")
	b.AddAddr(t, vb.Peer, ctAddrB+"/24")
	b.AddAddr(t, vb.Peer, ctAddrB2+"/24")
	return a, b
}

func startOVSConntrack(t *testing.T) *ctSwitch {
	t.Helper()
	s := ovsref.Start(t, "br0", nil)
	a, b := ctTopo(t, s.NS())
	for i, dev := range []string{"ha", "hb"} {
		if err := s.AddAFXDPPort(dev, i+1); err != nil {
			t.Fatal(err)
		}
	}
	return &ctSwitch{
		name: "ovs", a: a, b: b,
		ofctl: func(t *testing.T, stdin []byte, cmd string, args ...string) string {
			t.Helper()
			out, err := runOfctl(stdin, append([]string{cmd, "br0"}, args...), "OVS_RUNDIR="+s.Dir)
			if err != nil {
				t.Fatalf("ovs: %v", err)
			}
			return out
		},
		conntrack: func(t *testing.T) string {
			t.Helper()
			out, err := s.Appctl("dpctl/dump-conntrack")
			if err != nil {
				t.Fatalf("ovs: %v", err)
			}
			return out
		},
	}
}

func startOvsxdpConntrack(t *testing.T) *ctSwitch {
	t.Helper()
	testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	sw := netns.New(t, "ctsw")
	a, b := ctTopo(t, sw)
	d, runDir := startHaHbBridge(t, sw)
	target := "unix:" + filepath.Join(runDir, "br0.mgmt")
	return &ctSwitch{
		name: "ovsxdp", a: a, b: b,
		ofctl: func(t *testing.T, stdin []byte, cmd string, args ...string) string {
			t.Helper()
			out, err := runOfctl(stdin, append([]string{cmd, target}, args...))
			if err != nil {
				t.Fatalf("ovsxdp: %v", err)
			}
			return out
		},
		conntrack: func(t *testing.T) string {
			t.Helper()
			return d.run(t, "dpctl/dump-conntrack")
		},
	}
}

// runOfctl runs ovs-ofctl with a generous timeout.
func runOfctl(stdin []byte, args []string, env ...string) (string, error) {
	c := exec.Command("ovs-ofctl", append([]string{"--timeout=30"}, args...)...)
	c.Env = append(c.Environ(), env...)
	c.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("ovs-ofctl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// ctProbes runs the probes through s and returns what each saw, and the
// number of packets the rule that drops invalid packets took.
func ctProbes(t *testing.T, s *ctSwitch) map[string]string {
	t.Helper()
	s.ofctl(t, []byte(strings.Join(ctFirewallFlows, "\n")+"\n"), "add-flows", "-")
	waitListening(t, s.b, s.b.Start(t, helperArgs(t, "http-server", ctAddrB+":80")...))
	waitListening(t, s.a, s.a.Start(t, helperArgs(t, "tcp-echo", ctAddrA+":8080")...))
	waitListening(t, s.b, s.b.Start(t, helperArgs(t, "tcp-echo", ctAddrB2+":80")...))

	got := map[string]string{}
	// A probe that should pass is tried up to three times, so that a
	// packet lost on a loaded machine (or an ARP resolution) does not
	// count as a refusal; one that should fail fails every time.
	retry := func(ok string, probe func() string) string {
		var r string
		for range 3 {
			if r = probe(); r == ok {
				break
			}
		}
		return r
	}
	ping := func(ns *netns.NS, dst string) string {
		out, err := ns.Run("ping", "-n", "-c", "1", "-W", "2", dst)
		if err == nil && strings.Contains(out, " 0% packet loss") {
			return "ok"
		}
		return "lost"
	}
	got["ping a->b"] = retry("ok", func() string { return ping(s.a, ctAddrB) })
	got["ping b->a"] = ping(s.b, ctAddrA)
	got["http a->b:80"] = retry("ovsxdp ok", func() string {
		out, err := s.a.Run("curl", "-sS", "--max-time", "5", "http://"+ctAddrB+"/")
		if err != nil {
			return "failed: " + strings.TrimSpace(out)
		}
		return strings.TrimSpace(out)
	})
	got["tcp b->a:8080"] = helperLine(t, s.b, "tcp-connect", ctAddrA+":8080")
	got["udp a->b:9"] = retry("refused", func() string { return helperLine(t, s.a, "udp-refused", ctAddrB+":9") })
	if _, err := s.a.Run(helperArgs(t, "tcp-raw", ctAddrA, ctAddrB, "80", "SF")...); err != nil {
		t.Fatalf("%s: tcp-raw: %v", s.name, err)
	}
	// The invalid segment is dropped by its rule; wait until the rule
	// counted it (or a generous bound passes, and the comparison shows
	// what each switch did).
	inv := "0"
	netns.Eventually(10*time.Second, func() bool {
		inv = ruleCount(t, s, "table=1,ct_state=+trk+inv")
		return inv != "0"
	})
	got["invalid SYN+FIN dropped by the +inv rule"] = inv
	got["out-of-window segment dropped by the +inv rule"] = outOfWindowProbe(t, s, inv)
	return got
}

// outOfWindowProbe holds a TCP connection from a (port ctHoldPort) to
// ctAddrB2:80 open and sends on it, through a raw socket, a segment with
// data whose sequence number is a gigabyte past the connection's (a
// segment without data passes the sequence checks whatever its number, in
// Open vSwitch as in Linux): it returns how many
// packets the +inv rule counted for it (inv is the count before), or why
// the connection could not be held.
func outOfWindowProbe(t *testing.T, s *ctSwitch, inv string) string {
	t.Helper()
	var p *netns.Process
	var held []string
	// The connection should open: try three times, as other probes that
	// should pass, from the same port (a failed attempt leaves the
	// tracker an entry in SYN_SENT that the next SYN reopens).
	for range 3 {
		p = s.a.Start(t, helperArgs(t, "tcp-hold", ctAddrA+":"+ctHoldPort, ctAddrB2+":80")...)
		netns.Eventually(30*time.Second, func() bool {
			held = strings.Fields(p.Output())
			return len(held) >= 3 && held[0] == "held" || p.Exited()
		})
		if len(held) >= 3 && held[0] == "held" {
			break
		}
		p.Kill()
		held = nil
	}
	if held == nil {
		return "no connection held: " + strings.TrimSpace(p.Output())
	}
	seq, err1 := strconv.ParseUint(held[1], 10, 32)
	ack, err2 := strconv.ParseUint(held[2], 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("%s: tcp-hold printed %q", s.name, p.Output())
	}
	far := strconv.FormatUint((seq+1<<30)&0xffffffff, 10)
	if out, err := s.a.Run(helperArgs(t, "tcp-raw", ctAddrA, ctAddrB2, "80", "PA", ctHoldPort, far, strconv.FormatUint(ack, 10), "out of window")...); err != nil {
		t.Fatalf("%s: tcp-raw: %v\n%s", s.name, err, out)
	}
	before, _ := strconv.Atoi(inv)
	n := 0
	netns.Eventually(10*time.Second, func() bool {
		n, _ = strconv.Atoi(ruleCount(t, s, "table=1,ct_state=+trk+inv"))
		return n != before
	})
	if n == before {
		t.Logf("%s: held %s; the out-of-window segment (seq %s) was not counted as invalid; flows:\n%s", s.name, strings.TrimSpace(p.Output()), far, s.ofctl(t, nil, "dump-flows"))
	}
	return strconv.Itoa(n - before)
}

// waitListening waits until a helper server prints "listening".
func waitListening(t *testing.T, ns *netns.NS, p *netns.Process) {
	t.Helper()
	if !netns.Eventually(20*time.Second, func() bool { return strings.Contains(p.Output(), "listening") || p.Exited() }) || p.Exited() {
		t.Fatalf("%s: server did not start: %s", ns.Name, p.Output())
	}
}

// helperLine runs a helper role in ns and returns the line it printed.
func helperLine(t *testing.T, ns *netns.NS, role string, args ...string) string {
	t.Helper()
	out, err := ns.Run(helperArgs(t, role, args...)...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", role, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

var nPackets = regexp.MustCompile(`n_packets=(\d+)`)

// ruleCount returns the packet count of the flows dump-flows shows for
// match.
func ruleCount(t *testing.T, s *ctSwitch, match string) string {
	t.Helper()
	m := nPackets.FindAllStringSubmatch(s.ofctl(t, nil, "dump-flows", match), -1)
	if len(m) != 1 {
		return fmt.Sprintf("%d flows", len(m))
	}
	return m[0][1]
}

// ephemeral matches the numbers of a dump-conntrack line that change run
// to run: ICMP ids and ports of the dynamic range.
var ephemeral = regexp.MustCompile(`\b(id|sport|dport)=(\d+)`)

// normaliseConntrack sorts dump-conntrack's lines, replaces ICMP ids and
// ports from the dynamic range with a placeholder and keeps one of each
// line: a probe retried on a loaded machine leaves one more connection of
// its kind on one switch than on the other.
func normaliseConntrack(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		lines = append(lines, ephemeral.ReplaceAllStringFunc(l, func(m string) string {
			k, v, _ := strings.Cut(m, "=")
			if n, _ := strconv.Atoi(v); k == "id" || n >= 1024 && n != 8080 {
				return k + "=N"
			}
			return m
		}))
	}
	slices.Sort(lines)
	return slices.Compact(lines)
}

func TestConntrackFirewallMatchesOVS(t *testing.T) {
	ovsref.Require(t)
	netns.Require(t)
	testenv.RequireTool(t, "curl", "curl")
	testenv.RequireTool(t, "ping", "iputils-ping")

	want := map[string]string{
		"ping a->b":     "ok",
		"ping b->a":     "lost",
		"http a->b:80":  "ovsxdp ok",
		"tcp b->a:8080": "failed",
		"udp a->b:9":    "refused",
		"invalid SYN+FIN dropped by the +inv rule":       "1",
		"out-of-window segment dropped by the +inv rule": "1",
	}
	results := map[string]map[string]string{}
	tracked := map[string][]string{}
	for _, start := range []func(*testing.T) *ctSwitch{startOVSConntrack, startOvsxdpConntrack} {
		s := start(t)
		results[s.name] = ctProbes(t, s)
		tracked[s.name] = normaliseConntrack(s.conntrack(t))
		// ovs-ofctl ct-flush-zone (NXT_CT_FLUSH_ZONE) empties zone 0.
		s.ofctl(t, nil, "ct-flush-zone", "0")
		if left := s.conntrack(t); strings.TrimSpace(left) != "" {
			t.Errorf("%s: connections left after ct-flush-zone 0:\n%s", s.name, left)
		}
		t.Logf("%s: %v\n  %s", s.name, results[s.name], strings.Join(tracked[s.name], "\n  "))
	}
	for probe, w := range want {
		o, x := results["ovs"][probe], results["ovsxdp"][probe]
		if o != w {
			t.Errorf("%s: Open vSwitch saw %q, the test expects %q", probe, o, w)
		}
		if x != o {
			t.Errorf("%s: ovsxdp saw %q, Open vSwitch %q", probe, x, o)
		}
	}
	if !slices.Equal(tracked["ovs"], tracked["ovsxdp"]) {
		t.Errorf("dump-conntrack differs:\nOpen vSwitch:\n  %s\novsxdp:\n  %s",
			strings.Join(tracked["ovs"], "\n  "), strings.Join(tracked["ovsxdp"], "\n  "))
	}
	if len(tracked["ovs"]) < 3 {
		t.Errorf("Open vSwitch tracks %d connections after the probes, want the TCP, ICMP and UDP ones:\n%s",
			len(tracked["ovs"]), strings.Join(tracked["ovs"], "\n"))
	}
}
