package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
)

// The logical router lr0 joins sw0 (10.0.0.0/24) and sw1 (10.0.1.0/24);
// its port on each switch is the namespaces' default gateway.
var gateways = map[string]struct{ ip, mac, lrp string }{
	"sw0": {"10.0.0.254", "00:00:00:00:ff:01", "lr0-sw0"},
	"sw1": {"10.0.1.254", "00:00:00:00:ff:02", "lr0-sw1"},
}

// The load balancer's VIP, outside both subnets, so that clients reach it
// through their gateway as in OVN's own examples; its backends are lsp2
// and lsp3 (lsp2 alone with one chassis) on backendPort.
const (
	vip         = "172.16.0.100:80"
	backendPort = 8080
	// deniedPort is what the port group's drop ACL refuses to lsp2 from
	// the address set of clients; lsp2 listens on it too, so that only
	// the ACL can keep a connection from being made.
	deniedPort = 5001
	// connTimeout bounds each TCP connection attempt; a dropped SYN is
	// retried by the kernel after 1 s, 3 s, ..., so a denied connection
	// takes this long to be known as such.
	connTimeout = 4 * time.Second
	// maxVIPConns bounds the connections to the VIP from one client.
	maxVIPConns = 16
)

// backendSeen says whether a backend of the load balancer answered a
// connection to the VIP.
type backendSeen struct {
	lp   *lport
	seen bool
}

// nbctlFunc runs ovn-nbctl against the northbound database.
type nbctlFunc func(args ...string) (string, error)

// addPort binds the logical port name of switch sw, with address ip, to a
// namespace of its own on chassis c through a veth whose host end is an
// AF_XDP port of br-int; i numbers the port's namespace and veth.
func addPort(t *runner, nbctl nbctlFunc, c *chassis, sw, name, ip string, i int, underlay bool) *lport {
	ns := netns.New(t, fmt.Sprintf("ovn-%c", 'a'+i))
	host := fmt.Sprintf("ovn-h%d", i+1)
	netns.AddVeth(t, c.ns, host, ns, "eth0", 1)
	lp := &lport{name: name, ip: ip, ns: ns, chassis: c, sw: sw, host: host, mac: ns.MAC(t, "eth0")}
	ns.AddAddr(t, "eth0", lp.ip+"/24")
	if underlay {
		// Room for the Geneve headers and OVN's option on the
		// underlay's 1,500 bytes, as OVN's own MTU advice.
		ns.IP(t, "link", "set", "eth0", "mtu", "1400")
	}
	ns.IP(t, "route", "add", "default", "via", gateways[sw].ip)
	if _, err := nbctl("lsp-add", sw, name, "--", "lsp-set-addresses", name, lp.mac.String()+" "+lp.ip); err != nil {
		t.Fatal(err)
	}
	c.vsctl(t, "add-port", "br-int", host, "--", "set", "interface", host, "type=afxdp", "external_ids:iface-id="+name)
	return lp
}

// addRouter adds sw1 with a port on each chassis (lsp4, lsp5), lr0
// joining sw0 and sw1, sw0's stateful ACLs (ICMP and the backends' port
// allowed with their replies, deniedPort to lsp2 dropped through a port
// group and an address set) and a load balancer on both switches.
func (m *measurement) addRouter(t *runner, nbctl nbctlFunc, underlay bool) {
	cmds := [][]string{
		{"ls-add", "sw1"},
		{"lr-add", "lr0"},
	}
	for _, sw := range []string{"sw0", "sw1"} {
		g := gateways[sw]
		lsp := sw + "-lr0"
		cmds = append(cmds,
			[]string{"lrp-add", "lr0", g.lrp, g.mac, g.ip + "/24"},
			[]string{"lsp-add", sw, lsp, "--", "lsp-set-type", lsp, "router", "--", "lsp-set-addresses", lsp, "router",
				"--", "lsp-set-options", lsp, "router-port=" + g.lrp})
	}
	// sw1's ports, one a chassis, are numbered after sw0's.
	on := []*chassis{m.chassis[0]}
	if len(m.chassis) > 1 {
		on = append(on, m.chassis[1])
	}
	// Every port but the server, lsp2, is a client.
	var clients []string
	for _, lp := range m.ports {
		if lp != m.ports[1] {
			clients = append(clients, strconv.Quote(lp.ip))
		}
	}
	for i := range on {
		clients = append(clients, strconv.Quote(routedIP(len(m.ports)+i)))
	}
	backends := "10.0.0.2:" + strconv.Itoa(backendPort)
	if underlay {
		backends += ",10.0.0.3:" + strconv.Itoa(backendPort)
	}
	cmds = append(cmds,
		[]string{"acl-add", "sw0", "to-lport", "1002", "ip4 && icmp", "allow-related"},
		[]string{"acl-add", "sw0", "to-lport", "1002", "ip4 && tcp && tcp.dst == " + strconv.Itoa(backendPort), "allow-related"},
		[]string{"create", "address_set", "name=clients", "addresses=" + strings.Join(clients, ",")},
		[]string{"pg-add", "pg_servers", "lsp2"},
		[]string{"acl-add", "pg_servers", "to-lport", "1001", "outport == @pg_servers && ip4.src == $clients && tcp.dst == " + strconv.Itoa(deniedPort), "drop"},
		[]string{"lb-add", "lb0", vip, backends, "tcp"},
		[]string{"ls-lb-add", "sw0", "lb0"},
		[]string{"ls-lb-add", "sw1", "lb0"},
	)
	for _, c := range cmds {
		if _, err := nbctl(c...); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range on {
		n := len(m.ports) + i
		m.routed = append(m.routed, addPort(t, nbctl, c, "sw1", fmt.Sprintf("lsp%d", n+1), routedIP(n), n, underlay))
	}
}

// routedIP is the address of sw1's port numbered n from 0.
func routedIP(n int) string { return fmt.Sprintf("10.0.1.%d", n+1) }

// routedPing is a ping across lr0 and what the destination's namespace
// saw of the echo requests: lr0 decrements the TTL and rewrites the
// Ethernet source to its port on the destination's switch.
type routedPing struct {
	pingResult
	seen           int    // echo requests captured at the destination
	ttl            int    // of the first, as sent with 64
	ethSrc, ethDst string // of the first
	captureErr     string
}

// ok reports whether the ping passed and the requests arrived routed.
func (r routedPing) ok() bool {
	return r.stats.Received > 0 && r.seen > 0 && r.ttl == 63 && r.ethSrc == gateways[r.to.sw].mac && r.ethDst == r.to.mac.String()
}

// connResult is one TCP connection attempt from a namespace.
type connResult struct {
	from     *lport
	to       string // address:port
	what     string
	wantOK   bool
	answered string // the backend that answered, or ""
	err      error
}

// ok reports whether the attempt ended as wanted: answered, or, for a
// denied one, dropped (the ACL drops; an answer or a reset would mean
// it did not).
func (c connResult) ok() bool {
	if c.wantOK {
		return c.err == nil
	}
	return timedOut(c.err)
}

func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// routedChecks pings across lr0 (on a chassis and across), connects
// through sw0's ACLs and to the load balancer's VIP, and returns the
// pairs whose pings failed.
func (m *measurement) routedChecks(ctx context.Context, t *runner, o options) [][2]*lport {
	var failed [][2]*lport
	pairs := [][2]*lport{{m.ports[0], m.routed[0]}}
	if len(m.routed) > 1 {
		pairs = append(pairs, [2]*lport{m.ports[0], m.routed[1]}, [2]*lport{m.ports[2], m.routed[0]})
	}
	for _, p := range pairs {
		r := m.routedPing(ctx, t, o, p[0], p[1])
		m.hops = append(m.hops, r)
		if r.stats.Received == 0 {
			failed = append(failed, p)
		}
	}

	// Every backend, and lsp2's denied port, listens and answers with
	// its port's name.
	lsp2 := m.ports[1]
	backends := []*lport{lsp2}
	if len(m.ports) > 2 {
		backends = append(backends, m.ports[2])
	}
	for _, b := range backends {
		listen(t, b, backendPort)
	}
	listen(t, lsp2, deniedPort)
	conn := func(from *lport, to, what string, wantOK bool) {
		r := connResult{from: from, to: to, what: what, wantOK: wantOK}
		r.answered, r.err = dial(from, to)
		m.conns = append(m.conns, r)
	}
	conn(m.ports[0], net.JoinHostPort(lsp2.ip, strconv.Itoa(backendPort)), "allowed by an allow-related ACL", true)
	conn(m.ports[0], net.JoinHostPort(lsp2.ip, strconv.Itoa(deniedPort)), "denied by the port group's drop ACL", false)
	conn(m.routed[0], net.JoinHostPort(lsp2.ip, strconv.Itoa(deniedPort)), "denied by the port group's drop ACL, across lr0", false)
	// Connections to the VIP until every backend has answered one (each
	// new connection's source port changes its hash), at most
	// maxVIPConns: with two backends picked evenly, all of them going to
	// one has odds of 1 in 2^(maxVIPConns-1).
	answered := map[string]bool{}
	for range maxVIPConns {
		conn(m.ports[0], vip, "to the load balancer's VIP", true)
		answered[m.conns[len(m.conns)-1].answered] = true
		if len(answered) == len(backends) && !answered[""] {
			break
		}
	}
	for _, b := range backends {
		m.lbBackends = append(m.lbBackends, backendSeen{lp: b, seen: answered[b.name]})
	}
	for range 2 {
		conn(m.routed[len(m.routed)-1], vip, "to the load balancer's VIP, from sw1", true)
	}
	return failed
}

// tcpdumpLine is the link and IPv4 header tcpdump -e -v prints of a frame:
// "12:00:00.000000 00:00:00:00:ff:02 > aa:..:01, ethertype IPv4 (0x0800),
// length 98: (tos 0x0, ttl 63, ...".
var tcpdumpLine = regexp.MustCompile(`^\S+ ([0-9a-f:]{17}) > ([0-9a-f:]{17}), ethertype IPv4 \(0x0800\), length \d+: \(tos 0x[0-9a-f]+, ttl (\d+),`)

// parseRequests reads tcpdump -e -v's lines of echo requests and returns
// how many there were and the first's Ethernet addresses and TTL.
func parseRequests(out string) (n, ttl int, src, dst string) {
	for _, l := range strings.Split(out, "\n") {
		sm := tcpdumpLine.FindStringSubmatch(l)
		if sm == nil {
			continue
		}
		if n == 0 {
			src, dst = sm[1], sm[2]
			ttl, _ = strconv.Atoi(sm[3])
		}
		n++
	}
	return n, ttl, src, dst
}

// routedPing pings b from a across lr0, while tcpdump in b's namespace
// captures the echo requests as they arrive.
func (m *measurement) routedPing(ctx context.Context, t *runner, o options, a, b *lport) routedPing {
	dump := startProc(t, b.ns, "tcpdump ("+b.name+")", "tcpdump", "-i", "eth0", "-n", "-e", "-v", "-l", "--immediate-mode",
		"icmp[icmptype] == icmp-echo")
	r := routedPing{}
	if err := dump.p.WaitOutput("listening on", cmdTimeout); err != nil {
		r.captureErr = err.Error()
	}
	pctx, cancel := context.WithTimeout(ctx, time.Duration(o.pingCount)*time.Second+10*time.Second)
	defer cancel()
	st, err := a.ns.Ping(pctx, net.ParseIP(b.ip), o.pingCount, 200*time.Millisecond, 2*time.Second)
	r.pingResult = pingResult{from: a, to: b, what: "across lr0", stats: st, err: err}
	// tcpdump prints each request as it sees it (-l); the replies that
	// came mean their requests were printed before them.
	if st.Received > 0 {
		netns.Eventually(cmdTimeout, func() bool { n, _, _, _ := parseRequests(dump.p.Output()); return n >= st.Received })
	}
	dump.stop(t)
	r.seen, r.ttl, r.ethSrc, r.ethDst = parseRequests(dump.p.Output())
	return r
}

// listen accepts TCP connections on the port's address and port in its
// namespace and answers each with the port's name; the listener is
// closed when the run ends.
func listen(t *runner, lp *lport, port int) {
	var l net.Listener
	err := lp.ns.Do(func() (err error) {
		l, err = net.Listen("tcp4", net.JoinHostPort(lp.ip, strconv.Itoa(port)))
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s's namespace: %v", lp.name, err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(connTimeout))
			io.WriteString(c, lp.name+"\n")
			c.Close()
		}
	}()
}

// dial connects to addr from the port's namespace and returns the name
// the other end answered with.
func dial(from *lport, addr string) (string, error) {
	var c net.Conn
	err := from.ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, connTimeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(connTimeout))
	b, err := io.ReadAll(io.LimitReader(c, 64))
	if err != nil {
		return "", err
	}
	name := strings.TrimSpace(string(b))
	if name == "" {
		return "", fmt.Errorf("connected to %s, but nothing answered", addr)
	}
	return name, nil
}

// connVerdict says how a connection attempt ended, as the report prints
// it.
func connVerdict(err error) string {
	switch {
	case err == nil:
		return "answered"
	case timedOut(err):
		return "dropped (no answer in " + connTimeout.String() + ")"
	case strings.Contains(err.Error(), "connection refused"):
		return "refused"
	}
	return err.Error()
}
