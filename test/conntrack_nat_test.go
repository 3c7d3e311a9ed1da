package test

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// The NAT tests run a real daemon in a switch namespace with AF_XDP ports
// on veths to endpoint namespaces, all on 10.78.0.0/24. Neighbours are
// static (the flows forward no ARP), and the NAT addresses answer to no
// one: the endpoints know them by a made-up MAC.

// natEndpoint is a namespace on port ofport of the switch.
type natEndpoint struct {
	ns     *netns.NS
	ip     string
	mac    net.HardwareAddr
	ofport int
}

// natSwitch is an ovsxdp daemon with one bridge whose ports lead to the
// endpoints.
type natSwitch struct {
	d      *cliDaemon
	target string // the bridge's OpenFlow socket for ovs-ofctl
	eps    []*natEndpoint
}

// startNATSwitch starts the daemon and one endpoint per address, on
// ports 1, 2, ...
func startNATSwitch(t *testing.T, addrs ...string) *natSwitch {
	t.Helper()
	netns.Require(t)
	testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	sw := netns.New(t, "natsw")
	s := &natSwitch{}
	for i, ip := range addrs {
		ns := netns.New(t, fmt.Sprintf("nat%d", i+1))
		host := fmt.Sprintf("h%d", i+1)
		v := netns.AddVeth(t, sw, host, ns, "p0", 1)
		ns.AddAddr(t, v.Peer, ip+"/24")
		s.eps = append(s.eps, &natEndpoint{ns: ns, ip: ip, mac: ns.MAC(t, v.Peer), ofport: i + 1})
	}
	bin := buildCLI(t)
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	s.d, _ = startCLIDaemonIn(t, sw, bin, filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "state.json"), "--rundir", runDir)
	s.d.run(t, "add-br", "br0")
	for i := range addrs {
		s.d.run(t, "add-port", "br0", fmt.Sprintf("h%d", i+1), "type=afxdp", fmt.Sprintf("ofport=%d", i+1))
	}
	s.target = "unix:" + filepath.Join(runDir, "br0.mgmt")
	return s
}

// ofctl runs ovs-ofctl -O OpenFlow15 CMD BRIDGE ARGS with stdin.
func (s *natSwitch) ofctl(t *testing.T, stdin string, cmd string, args ...string) string {
	t.Helper()
	out, err := runOfctl([]byte(stdin), append([]string{"-O", "OpenFlow15", cmd, s.target}, args...))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// neigh makes ep reach ip at mac.
func (ep *natEndpoint) neigh(t *testing.T, ip string, mac net.HardwareAddr) {
	t.Helper()
	ep.ns.SetNeigh(t, "p0", ip, mac)
}

// runHelperProcs starts a helper role in each namespace at once and
// returns the output of each, once all have exited.
func runHelperProcs(t *testing.T, eps []*natEndpoint, role string, args ...string) []string {
	t.Helper()
	var procs []*netns.Process
	for _, ep := range eps {
		procs = append(procs, ep.ns.Start(t, helperArgs(t, role, args...)...))
	}
	var outs []string
	for i, p := range procs {
		if !netns.Eventually(120*time.Second, p.Exited) {
			t.Fatalf("%s in %s still runs after 120s:\n%s", role, eps[i].ns.Name, p.Output())
		}
		outs = append(outs, p.Output())
	}
	return outs
}

// ctEntry is one connection of dpctl/dump-conntrack: its original and
// reply tuples.
type ctEntry struct {
	origSrc, origDst, replySrc, replyDst         string
	origSport, origDport, replySport, replyDport int
}

var ctTuples = regexp.MustCompile(`^tcp,orig=\(src=([0-9.]+),dst=([0-9.]+),sport=(\d+),dport=(\d+)\),reply=\(src=([0-9.]+),dst=([0-9.]+),sport=(\d+),dport=(\d+)\)`)

// tcpConntrack parses the TCP connections of a dump-conntrack output.
func tcpConntrack(out string) []ctEntry {
	var es []ctEntry
	for _, l := range strings.Split(out, "\n") {
		m := ctTuples.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
		es = append(es, ctEntry{origSrc: m[1], origDst: m[2], origSport: n(3), origDport: n(4),
			replySrc: m[5], replyDst: m[6], replySport: n(7), replyDport: n(8)})
	}
	return es
}

// whoamiAnswer matches a whoami-clients line: "ok ID IP:PORT via REMOTE".
var whoamiAnswer = regexp.MustCompile(`^ok (\S+) ([0-9.]+):(\d+) via (\S+)$`)

// TestConntrackSNAT sends TCP connections from two clients behind one
// source NAT address to a server, from the same source ports so that the
// NAT has to pick other ports for some: the server sees only the NAT
// address, every connection a port of its own, the answers reach the
// client that asked, and dump-conntrack shows the translated reply tuples.
func TestConntrackSNAT(t *testing.T) {
	const (
		snat    = "10.78.0.100"
		srv     = "10.78.0.10"
		conns   = 3
		firstSP = 41000
	)
	s := startNATSwitch(t, "10.78.0.1", "10.78.0.2", srv)
	c1, c2, server := s.eps[0], s.eps[1], s.eps[2]
	c1.neigh(t, srv, server.mac)
	c2.neigh(t, srv, server.mac)
	server.neigh(t, snat, net.HardwareAddr{0x02, 0, 0, 0x4e, 0, 0x64})
	flows := []string{
		"priority=0,actions=drop",
		"priority=100,ip,in_port=1,actions=ct(table=1,nat)",
		"priority=100,ip,in_port=2,actions=ct(table=1,nat)",
		"priority=100,ip,in_port=3,actions=ct(table=2,nat)",
		"table=1,priority=100,ct_state=+trk+new,tcp,nw_dst=" + srv + ",actions=ct(commit,nat(src=" + snat + ")),output:3",
		"table=1,priority=90,ct_state=+trk+est,ip,nw_dst=" + srv + ",actions=output:3",
		"table=1,priority=0,actions=drop",
		fmt.Sprintf("table=2,priority=100,ct_state=+trk+est,ip,nw_dst=%s,actions=mod_dl_dst:%s,output:1", c1.ip, c1.mac),
		fmt.Sprintf("table=2,priority=100,ct_state=+trk+est,ip,nw_dst=%s,actions=mod_dl_dst:%s,output:2", c2.ip, c2.mac),
		"table=2,priority=0,actions=drop",
	}
	s.ofctl(t, strings.Join(flows, "\n")+"\n", "add-flows", "-")
	waitListening(t, server.ns, server.ns.Start(t, helperArgs(t, "whoami-server", srv+":80", "srv")...))

	outs := runHelperProcs(t, []*natEndpoint{c1, c2}, "whoami-clients", srv+":80", strconv.Itoa(firstSP), strconv.Itoa(conns), "5")
	// seen maps the NAT port the server saw to the client that used it.
	seen := map[int]string{}
	for i, out := range outs {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != conns {
			t.Fatalf("client %s printed %d lines, want %d:\n%s", s.eps[i].ip, len(lines), conns, out)
		}
		for _, l := range lines {
			m := whoamiAnswer.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("client %s: %s", s.eps[i].ip, l)
				continue
			}
			if m[2] != snat {
				t.Errorf("client %s: the server saw the connection come from %s, want the SNAT address %s", s.eps[i].ip, m[2], snat)
			}
			if m[4] != srv+":80" {
				t.Errorf("client %s: the answers came from %s, want %s:80", s.eps[i].ip, m[4], srv)
			}
			port, _ := strconv.Atoi(m[3])
			if other, dup := seen[port]; dup {
				t.Errorf("the server saw two connections from %s:%d (clients %s and %s)", snat, port, other, s.eps[i].ip)
			}
			seen[port] = s.eps[i].ip
		}
	}
	if t.Failed() {
		t.Logf("dump-conntrack:\n%s", s.d.run(t, "dpctl/dump-conntrack"))
		return
	}

	// Every connection is tracked with its reply tuple translated: from
	// the server to the SNAT address, at the port the server saw.
	dump := s.d.run(t, "dpctl/dump-conntrack")
	found := 0
	for _, e := range tcpConntrack(dump) {
		if e.origDst != srv || e.origDport != 80 {
			continue
		}
		if e.replySrc != srv || e.replySport != 80 || e.replyDst != snat {
			t.Errorf("connection %s:%d -> %s:80 has reply tuple %s:%d -> %s:%d, want %s:80 -> %s:PORT",
				e.origSrc, e.origSport, srv, e.replySrc, e.replySport, e.replyDst, e.replyDport, srv, snat)
			continue
		}
		if e.origSport < firstSP || e.origSport >= firstSP+conns || seen[e.replyDport] != e.origSrc {
			t.Errorf("connection %s:%d translated to %s:%d, which the server did not see from that client (%q)",
				e.origSrc, e.origSport, snat, e.replyDport, seen[e.replyDport])
			continue
		}
		found++
	}
	if found != 2*conns {
		t.Errorf("dump-conntrack has %d of the %d connections:\n%s", found, 2*conns, dump)
	}
}

// TestConntrackDNATLoadBalancer puts three backends behind one virtual
// address with a select group whose buckets destination-NAT to one
// backend each, and opens many connections to the virtual address from
// one client, each with several requests: the connections spread over
// every backend, each stays on one backend for its life, and the answers
// come from the virtual address.
func TestConntrackDNATLoadBalancer(t *testing.T) {
	const (
		vip   = "10.78.0.200"
		conns = 48
	)
	s := startNATSwitch(t, "10.78.0.1", "10.78.0.11", "10.78.0.12", "10.78.0.13")
	client, backends := s.eps[0], s.eps[1:]
	client.neigh(t, vip, net.HardwareAddr{0x02, 0, 0, 0x4e, 0, 0xc8})
	var buckets []string
	flows := []string{
		"priority=0,actions=drop",
		"priority=100,ip,in_port=1,actions=ct(table=1,nat)",
		"table=1,priority=100,ct_state=+trk+new,tcp,nw_dst=" + vip + ",tp_dst=80,actions=group:1",
		"table=1,priority=90,ct_state=+trk+est,ip,actions=resubmit(,3)",
		"table=1,priority=0,actions=drop",
		fmt.Sprintf("table=2,priority=100,ct_state=+trk+est,ip,nw_dst=%s,actions=output:1", client.ip),
		"table=2,priority=0,actions=drop",
		"table=3,priority=0,actions=drop",
	}
	for i, b := range backends {
		b.neigh(t, client.ip, client.mac)
		buckets = append(buckets, fmt.Sprintf("bucket=bucket_id:%d,actions=ct(commit,nat(dst=%s:8080),table=3)", i, b.ip))
		flows = append(flows,
			fmt.Sprintf("priority=100,ip,in_port=%d,actions=ct(table=2,nat)", b.ofport),
			fmt.Sprintf("table=3,priority=100,ip,nw_dst=%s,actions=mod_dl_dst:%s,output:%d", b.ip, b.mac, b.ofport))
		waitListening(t, b.ns, b.ns.Start(t, helperArgs(t, "whoami-server", b.ip+":8080", fmt.Sprintf("b%d", i+1))...))
	}
	s.ofctl(t, "", "add-group", "group_id=1,type=select,"+strings.Join(buckets, ","))
	s.ofctl(t, strings.Join(flows, "\n")+"\n", "add-flows", "-")

	out := runHelperProcs(t, []*natEndpoint{client}, "whoami-clients", vip+":80", "0", strconv.Itoa(conns), "5")[0]
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != conns {
		t.Fatalf("the client printed %d lines, want %d:\n%s", len(lines), conns, out)
	}
	perBackend := map[string]int{}
	// backendOf maps a client port to the backend that answered it.
	backendOf := map[int]string{}
	for _, l := range lines {
		m := whoamiAnswer.FindStringSubmatch(l)
		if m == nil {
			// A connection whose answers changed backend, or that failed.
			t.Errorf("client: %s", l)
			continue
		}
		perBackend[m[1]]++
		if m[2] != client.ip {
			t.Errorf("backend %s saw the connection come from %s, want the client %s", m[1], m[2], client.ip)
		}
		if m[4] != vip+":80" {
			t.Errorf("answers came from %s, want the virtual address %s:80", m[4], vip)
		}
		port, _ := strconv.Atoi(m[3])
		backendOf[port] = m[1]
	}
	for i := range backends {
		if id := fmt.Sprintf("b%d", i+1); perBackend[id] == 0 {
			t.Errorf("backend %s got none of %d connections (per backend: %v)", id, conns, perBackend)
		}
	}
	t.Logf("connections per backend: %v", perBackend)

	// dump-conntrack has each connection to the virtual address with its
	// reply from the backend that answered it, at port 8080.
	dump := s.d.run(t, "dpctl/dump-conntrack")
	found := 0
	for _, e := range tcpConntrack(dump) {
		if e.origDst != vip {
			continue
		}
		want, ok := backendOf[e.origSport]
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(want, "b"))
		if e.origDport != 80 || e.replySrc != backends[n-1].ip || e.replySport != 8080 || e.replyDst != client.ip || e.replyDport != e.origSport {
			t.Errorf("connection from port %d (answered by %s): tuples %+v", e.origSport, want, e)
			continue
		}
		found++
	}
	if found != len(backendOf) {
		t.Errorf("dump-conntrack has %d of the %d connections:\n%s", found, len(backendOf), dump)
	}
}
