package test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// The fragment test loads a stateful firewall for IPv4 and IPv6 into
// Open vSwitch 3.1 (userspace datapath, AF_XDP ports on veths) and into
// ovsxdp, and sends packets larger than the veths' MTU through each: pings
// of 3,000 bytes and UDP datagrams of 3,000 bytes that an echo server in b
// sends back, both ways fragmented by the kernels, and a datagram whose
// fragments a raw socket sends out of order. Both switches must reassemble
// the fragments to track them (a fragment alone has no ports), let the
// original fragments through (the receiving kernel counts them in its
// reassembly counters: Ip ReasmReqds, Ip6ReasmReqds), and track the same
// connections.
var ctFragFlows = []string{
	"priority=100,arp,in_port=1,actions=output:2",
	"priority=100,arp,in_port=2,actions=output:1",
	// Neighbour discovery passes untracked.
	"priority=100,icmp6,in_port=1,icmp_type=135,actions=output:2",
	"priority=100,icmp6,in_port=1,icmp_type=136,actions=output:2",
	"priority=100,icmp6,in_port=2,icmp_type=135,actions=output:1",
	"priority=100,icmp6,in_port=2,icmp_type=136,actions=output:1",
	"priority=90,ip,ct_state=-trk,actions=ct(table=1)",
	"priority=90,ipv6,ct_state=-trk,actions=ct(table=1)",
	"table=1,priority=100,ct_state=+trk+inv,actions=drop",
	"table=1,priority=90,ct_state=+trk+new,ip,in_port=1,actions=ct(commit),output:2",
	"table=1,priority=90,ct_state=+trk+new,ipv6,in_port=1,actions=ct(commit),output:2",
	"table=1,priority=80,ct_state=+trk+est,in_port=1,actions=output:2",
	"table=1,priority=80,ct_state=+trk+est,in_port=2,actions=output:1",
	"table=1,priority=0,actions=drop",
}

const (
	ctAddr6A = "fd77::1"
	ctAddr6B = "fd77::2"
	// ctFragPort is where b's echo server for large datagrams listens.
	ctFragPort = "7777"
)

// reasmCounters reads the kernel's reassembly counters of the namespace:
// fragments received that needed reassembly, and packets reassembled, for
// IPv4 and IPv6.
func reasmCounters(t *testing.T, ns *netns.NS) map[string]int {
	t.Helper()
	m := map[string]int{}
	// /proc/net/snmp: a line of names, then a line of values, per
	// protocol; /proc/net/snmp6: a name and a value per line.
	snmp := strings.Split(ns.MustRun(t, "cat", "/proc/net/snmp"), "\n")
	for i := 0; i+1 < len(snmp); i++ {
		names, values := strings.Fields(snmp[i]), strings.Fields(snmp[i+1])
		if len(names) == 0 || names[0] != "Ip:" || len(values) != len(names) || values[0] != "Ip:" {
			continue
		}
		for j, n := range names {
			if n == "ReasmReqds" || n == "ReasmOKs" {
				m["Ip"+n], _ = strconv.Atoi(values[j])
			}
		}
	}
	for _, l := range strings.Split(ns.MustRun(t, "cat", "/proc/net/snmp6"), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && (f[0] == "Ip6ReasmReqds" || f[0] == "Ip6ReasmOKs") {
			m[f[0]], _ = strconv.Atoi(f[1])
		}
	}
	return m
}

// reasmDelta is what the kernels of a and b counted between two reads.
func reasmDelta(before, after [2]map[string]int) string {
	var parts []string
	for i, side := range []string{"a", "b"} {
		for _, k := range []string{"IpReasmReqds", "IpReasmOKs", "Ip6ReasmReqds", "Ip6ReasmOKs"} {
			if d := after[i][k] - before[i][k]; d != 0 {
				parts = append(parts, fmt.Sprintf("%s %s +%d", side, k, d))
			}
		}
	}
	return strings.Join(parts, ", ")
}

// ctFragProbes runs the probes through s and returns, for each, its
// outcome and what the two kernels counted in reassembly for the attempt
// that decided it; and the connections tracked after each probe (a
// connection may time out before the last: Open vSwitch's ICMP reply
// timeout is 30 s).
func ctFragProbes(t *testing.T, s *ctSwitch) (map[string]string, []string) {
	t.Helper()
	// The topology's veths come without IPv6.
	for _, n := range []struct {
		ns        *netns.NS
		dev, addr string
	}{{s.a, "pa", ctAddr6A}, {s.b, "pb", ctAddr6B}} {
		n.ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+n.dev+".disable_ipv6=0")
		n.ns.MustRun(t, "ip", "-6", "addr", "add", n.addr+"/64", "dev", n.dev, "nodad")
	}
	s.ofctl(t, []byte(strings.Join(ctFragFlows, "\n")+"\n"), "add-flows", "-")
	waitListening(t, s.b, s.b.Start(t, fragHelperArgs(t, "udp-echo", "0.0.0.0:"+ctFragPort)...))
	waitListening(t, s.b, s.b.Start(t, fragHelperArgs(t, "udp-echo", "[::]:"+ctFragPort)...))

	ping := func(ns *netns.NS, dst string, size int) string {
		out, err := ns.Run("ping", "-n", "-c", "1", "-W", "3", "-s", strconv.Itoa(size), dst)
		if err == nil && strings.Contains(out, " 0% packet loss") {
			return "ok"
		}
		return "lost"
	}
	// Neighbours first, with small packets, so that the large probes
	// are each one exchange.
	for _, dst := range []string{ctAddrB, ctAddr6B} {
		for range 3 {
			if ping(s.a, dst, 56) == "ok" {
				break
			}
		}
	}
	got := map[string]string{}
	var tracked []string
	// A probe that should pass is tried up to three times (a packet
	// lost on a loaded machine is not a refusal); one that should fail
	// fails every time. The counters are those of the last attempt.
	probe := func(name, ok string, tries int, run func() string) {
		var r, delta string
		for range tries {
			before := [2]map[string]int{reasmCounters(t, s.a), reasmCounters(t, s.b)}
			r = run()
			delta = reasmDelta(before, [2]map[string]int{reasmCounters(t, s.a), reasmCounters(t, s.b)})
			if r == ok {
				break
			}
		}
		got[name] = r + "; " + delta
		tracked = append(tracked, normaliseConntrack(s.conntrack(t))...)
	}
	probe("ping -s 3000 a->b", "ok", 3, func() string { return ping(s.a, ctAddrB, 3000) })
	probe("ping -6 -s 3000 a->b", "ok", 3, func() string { return ping(s.a, ctAddr6B, 3000) })
	probe("udp 3000 a->b", "echoed 3000", 3, func() string {
		return fragHelperLine(t, s.a, "udp-big", net.JoinHostPort(ctAddrB, ctFragPort), "3000")
	})
	probe("udp -6 3000 a->b", "echoed 3000", 3, func() string {
		return fragHelperLine(t, s.a, "udp-big", net.JoinHostPort(ctAddr6B, ctFragPort), "3000")
	})
	probe("udp 3000 out of order a->b", "echoed 3000", 3, func() string {
		return fragHelperLine(t, s.a, "udp-frags", ctAddrA, net.JoinHostPort(ctAddrB, ctFragPort), "3000", "2,0,1")
	})
	probe("ping -s 3000 b->a", "lost", 1, func() string { return ping(s.b, ctAddrA, 3000) })
	slices.Sort(tracked)
	return got, slices.Compact(tracked)
}

func TestConntrackFragmentsMatchOVS(t *testing.T) {
	ovsref.Require(t)
	netns.Require(t)
	testenv.RequireTool(t, "ping", "iputils-ping")

	want := map[string]string{
		"ping -s 3000 a->b":          "ok; a IpReasmReqds +3, a IpReasmOKs +1, b IpReasmReqds +3, b IpReasmOKs +1",
		"ping -6 -s 3000 a->b":       "ok; a Ip6ReasmReqds +3, a Ip6ReasmOKs +1, b Ip6ReasmReqds +3, b Ip6ReasmOKs +1",
		"udp 3000 a->b":              "echoed 3000; a IpReasmReqds +3, a IpReasmOKs +1, b IpReasmReqds +3, b IpReasmOKs +1",
		"udp -6 3000 a->b":           "echoed 3000; a Ip6ReasmReqds +3, a Ip6ReasmOKs +1, b Ip6ReasmReqds +3, b Ip6ReasmOKs +1",
		"udp 3000 out of order a->b": "echoed 3000; a IpReasmReqds +3, a IpReasmOKs +1, b IpReasmReqds +3, b IpReasmOKs +1",
		"ping -s 3000 b->a":          "lost; ",
	}
	results := map[string]map[string]string{}
	tracked := map[string][]string{}
	for _, start := range []func(*testing.T) *ctSwitch{startOVSConntrack, startOvsxdpConntrack} {
		s := start(t)
		results[s.name], tracked[s.name] = ctFragProbes(t, s)
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
	for _, proto := range []string{"icmp,", "icmpv6,", "udp,"} {
		n := 0
		for _, l := range tracked["ovs"] {
			if strings.HasPrefix(l, proto) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("Open vSwitch tracks no %s connection after the probes:\n%s", strings.TrimSuffix(proto, ","), strings.Join(tracked["ovs"], "\n"))
		}
	}
}

// fragHelperArgs returns the command line that runs a role of
// TestFragHelperProcess in a namespace.
func fragHelperArgs(t *testing.T, role string, args ...string) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{exe, "-test.run=^TestFragHelperProcess$", "--", role}, args...)
}

// fragHelperLine runs a role in ns and returns the line it printed.
func fragHelperLine(t *testing.T, ns *netns.NS, role string, args ...string) string {
	t.Helper()
	out, err := ns.Run(fragHelperArgs(t, role, args...)...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", role, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// TestFragHelperProcess is not a test: it runs a role of the fragment
// test when the binary is started as a helper, and does nothing
// otherwise. The roles: udp-echo ADDR (echo every datagram back),
// udp-big ADDR SIZE (send a datagram of SIZE bytes, print whether it came
// back), udp-frags SRC ADDR SIZE ORDER (the same, its IPv4 fragments sent
// by a raw socket in ORDER, indexes joined by commas).
func TestFragHelperProcess(t *testing.T) {
	args := os.Args
	for len(args) > 0 && args[0] != "--" {
		args = args[1:]
	}
	if len(args) < 2 {
		return
	}
	var err error
	switch a := args[2:]; {
	case args[1] == "udp-echo" && len(a) == 1:
		err = udpEcho(a[0])
	case args[1] == "udp-big" && len(a) == 2:
		err = udpBig(a[0], a[1])
	case args[1] == "udp-frags" && len(a) == 4:
		err = udpFrags(a[0], a[1], a[2], a[3])
	default:
		err = fmt.Errorf("unknown role or arguments %q", args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func udpEcho(addr string) error {
	network := "udp4"
	if strings.HasPrefix(addr, "[") {
		network = "udp6"
	}
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		return err
	}
	fmt.Println("listening")
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		if _, err := c.WriteTo(buf[:n], from); err != nil {
			return err
		}
	}
}

// awaitEcho waits for a datagram of size bytes on c and prints
// "echoed SIZE", or "timeout".
func awaitEcho(c net.PacketConn, size int) error {
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65536)
	n, _, err := c.ReadFrom(buf)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		fmt.Println("timeout")
		return nil
	case err != nil:
		return err
	}
	if n != size {
		fmt.Printf("echoed %d of %d\n", n, size)
		return nil
	}
	fmt.Printf("echoed %d\n", n)
	return nil
}

func udpBig(addr, sizeArg string) error {
	size, err := strconv.Atoi(sizeArg)
	if err != nil {
		return err
	}
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	c, err := net.ListenUDP("udp", nil)
	if err != nil {
		return err
	}
	defer c.Close()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i)
	}
	if _, err := c.WriteTo(payload, ra); err != nil {
		return err
	}
	return awaitEcho(c, size)
}

// udpFrags builds a UDP datagram of size bytes from src (a port of a
// socket it listens on) to addr, cuts it into IPv4 fragments of 1,480 data
// bytes and sends them through a raw socket in the order given, then
// waits for the echo on the socket.
func udpFrags(src, addr, sizeArg, orderArg string) error {
	size, err := strconv.Atoi(sizeArg)
	if err != nil {
		return err
	}
	dst, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	s4, err := netip.ParseAddr(src)
	if err != nil {
		return err
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: s4.AsSlice()})
	if err != nil {
		return err
	}
	defer c.Close()
	sport := uint16(c.LocalAddr().(*net.UDPAddr).Port)

	udp := make([]byte, 8+size)
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	for i := range size {
		udp[8+i] = byte(i)
	}
	binary.BigEndian.PutUint16(udp[6:], transportChecksum4(s4, dst.Addr(), syscall.IPPROTO_UDP, udp))
	sa, da := s4.As4(), dst.Addr().As4()

	const fragData = 1480
	var frags [][]byte
	id := uint16(os.Getpid())
	for off := 0; off < len(udp); off += fragData {
		end := min(off+fragData, len(udp))
		h := make([]byte, 20, 20+end-off)
		h[0], h[8], h[9] = 0x45, 64, syscall.IPPROTO_UDP
		binary.BigEndian.PutUint16(h[2:], uint16(20+end-off))
		binary.BigEndian.PutUint16(h[4:], id)
		fo := uint16(off / 8)
		if end < len(udp) {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(h[6:], fo)
		copy(h[12:], sa[:])
		copy(h[16:], da[:])
		frags = append(frags, append(h, udp[off:end]...))
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(orderArg, ",", "\n")))
	for sc.Scan() {
		i, err := strconv.Atoi(sc.Text())
		if err != nil || i < 0 || i >= len(frags) {
			return fmt.Errorf("fragment %q of %d", sc.Text(), len(frags))
		}
		// The kernel fills in the header checksum of a raw IPv4 packet.
		if err := syscall.Sendto(fd, frags[i], 0, &syscall.SockaddrInet4{Addr: da}); err != nil {
			return err
		}
	}
	return awaitEcho(c, size)
}
