package test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// vxlanHosts is two "host" namespaces joined by an underlay veth (ua in
// host A, ub in host B, 192.0.2.0/24), each with a workload namespace
// behind it (10.9.0.1 behind A, 10.9.0.2 behind B, MTU 1450 to leave room
// for the outer headers). Host A runs ovsxdp (tunnelHost); the far end is
// the caller's.
type vxlanHosts struct {
	a, b, wa, wb *netns.NS
	d            *cliDaemon
}

const (
	vxlanKey   = 4242
	vxlanOFTun = 10 // the tunnel port's OpenFlow port number
)

// underlayNet is the underlay's addressing: host A's and host B's
// addresses with their prefix length, and the workloads' MTU (the
// underlay's 1500 less the outer headers).
type underlayNet struct {
	name         string
	a, b, prefix string
	v6           bool
	mtu          string
}

var (
	underlay4 = underlayNet{name: "ipv4", a: "192.0.2.1", b: "192.0.2.2", prefix: "/24", mtu: "1450"}
	underlay6 = underlayNet{name: "ipv6", a: "2001:db8:1::1", b: "2001:db8:1::2", prefix: "/64", v6: true, mtu: "1430"}
)

func newVXLANHostA(t *testing.T, u underlayNet, tunnelOpts ...string) *vxlanHosts {
	t.Helper()
	testenv.RequireTool(t, "ip", "iproute2")
	testenv.RequireTool(t, "ping", "iputils-ping")
	h := &vxlanHosts{a: netns.New(t, "hosta"), b: netns.New(t, "hostb"), wa: netns.New(t, "wla"), wb: netns.New(t, "wlb")}
	if u.v6 {
		for _, ns := range []*netns.NS{h.a, h.b} {
			for _, key := range []string{"all", "default"} {
				ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+key+".disable_ipv6=0")
			}
		}
	}
	netns.AddVeth(t, h.a, "ua", h.b, "ub", 1)
	// Without coalescing, every frame captured on the underlay is a
	// packet as a wire would carry it.
	h.d = tunnelHost(t, h.a, h.wa, "ua", u.a+u.prefix, "10.9.0.1/24", false, "vxlan", tunnelOpts...)
	h.wa.IP(t, "link", "set", "wa0", "mtu", u.mtu)
	return h
}

// tunnelHost runs ovsxdp in host namespace host as Open vSwitch's
// userspace datapath is set up for native tunnelling: br-int (brint)
// holds the workload's veth (wa, its peer wa0 in wl with address wlAddr)
// and the tunnel port (vx0, of type kind, OpenFlow port vxlanOFTun);
// br-phy (brphy) the underlay device (uplink, afxdp) and an internal port
// (phy0) with the host's underlay address. Both bridges run the normal
// action. gro sets br-phy's segment coalescing: with it, runs of tunnel
// packets go to the underlay veth as UDP GSO packets, which a capture on
// the veth shows unsegmented, with the partial checksum of an offload.
func tunnelHost(t *testing.T, host, wl *netns.NS, uplink, underlayAddr, wlAddr string, gro bool, kind string, tunnelOpts ...string) *cliDaemon {
	t.Helper()
	bin := buildCLI(t)
	netns.AddVeth(t, host, "wa", wl, "wa0", 1)
	wl.AddAddr(t, "wa0", wlAddr)
	wl.IP(t, "link", "set", "wa0", "mtu", "1450")
	dir := t.TempDir()
	d, _ := startCLIDaemonIn(t, host, bin, filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json"), "--local-port=false")
	d.run(t, "add-br", "brphy", "--gro", map[bool]string{true: "on", false: "off"}[gro])
	d.run(t, "add-port", "brphy", uplink, "type=afxdp")
	d.run(t, "add-port", "brphy", "phy0", "type=internal")
	d.run(t, "add-flow", "brphy", "actions=normal")
	host.IP(t, "addr", "add", underlayAddr, "dev", "phy0", "nodad")
	if err := host.SetLinkUp("phy0"); err != nil {
		t.Fatal(err)
	}
	d.run(t, "add-br", "brint")
	d.run(t, "add-port", "brint", "wa", "type=afxdp")
	d.run(t, append([]string{"add-port", "brint", "vx0", "type=" + kind, "ofport=" + strconv.Itoa(vxlanOFTun)}, tunnelOpts...)...)
	d.run(t, "add-flow", "brint", "actions=normal")
	return d
}

// TestTunnelVXLANKernel is ovsxdp's vxlan port against the Linux
// kernel's vxlan device: host B bridges its vxlan device (dstport 4789,
// id 4242) and the workload's veth with a Linux bridge. Ping and TCP (2 MB
// each way) run between the workloads; the underlay capture holds VXLAN
// packets both ways that tshark decodes without a warning; every packet
// host A's bridges received is accounted for. Then the route to host B
// is withdrawn under traffic and comes back. Over an IPv4 and an IPv6
// underlay.
func TestTunnelVXLANKernel(t *testing.T) {
	for _, u := range []underlayNet{underlay4, underlay6} {
		t.Run(u.name, func(t *testing.T) { testTunnelVXLANKernel(t, u) })
	}
}

func testTunnelVXLANKernel(t *testing.T, u underlayNet) {
	tshark := testenv.RequireTool(t, "tshark", "tshark")
	testenv.RequireTool(t, "tcpdump", "tcpdump")
	opts := []string{"remote_ip=" + u.b, "key=" + strconv.Itoa(vxlanKey)}
	if u.v6 {
		// The kernel's vxlan device refuses a zero UDP checksum over
		// IPv6 (without udp6zerocsumrx), and Open vSwitch 3.1 sends one
		// unless csum=true.
		opts = append(opts, "csum=true")
	}
	h := newVXLANHostA(t, u, opts...)
	d := h.d

	// Host B: the kernel's vxlan device, bridged to the workload.
	kernelVXLANHost(t, h.b, h.wb, u)

	show := d.run(t, "show")
	for _, want := range []string{"Port vx0", "type: vxlan", "remote_ip=", "ofport: 10"} {
		if !strings.Contains(show, want) {
			t.Fatalf("show lacks %q:\n%s", want, show)
		}
	}

	pcap := filepath.Join(t.TempDir(), "underlay.pcap")
	dump := h.b.Start(t, "tcpdump", "-i", "ub", "-n", "-U", "-w", pcap, "udp", "port", "4789")
	if err := dump.WaitOutput("listening on", 20*time.Second); err != nil {
		t.Fatalf("tcpdump: %v: %s", err, dump.Output())
	}

	if !netns.Eventually(30*time.Second, func() bool {
		_, err := h.wa.Run("ping", "-c", "1", "-W", "1", "10.9.0.2")
		return err == nil
	}) {
		t.Fatalf("workload A does not reach workload B through the tunnel:\n%s\n%s\n%s",
			d.run(t, "tnl/ports/show"), d.run(t, "dump-ports", "brint"), d.run(t, "dump-ports", "brphy"))
	}
	for _, p := range []struct {
		from *netns.NS
		to   string
	}{{h.wa, "10.9.0.2"}, {h.wb, "10.9.0.1"}} {
		if out, err := p.from.Run("ping", "-c", "5", "-i", "0.2", "-W", "2", p.to); err != nil || !strings.Contains(out, " 0% packet loss") {
			t.Fatalf("ping %s: %v\n%s", p.to, err, out)
		}
	}
	tcpBothWays(t, h, d)

	dump.Kill()
	if !netns.Eventually(10*time.Second, dump.Exited) {
		t.Fatal("tcpdump does not exit")
	}
	checkVXLANCapture(t, tshark, pcap, u)
	checkTunnelLedger(t, d)

	// The route withdrawn under traffic: drops as tunnel-routing-failed,
	// no spin; the route and the neighbour back: traffic again.
	flood := h.wa.Start(t, "ping", "-i", "0.02", "-W", "1", "10.9.0.2")
	h.a.IP(t, "addr", "del", u.a+u.prefix, "dev", "phy0")
	wantDrop(t, d, "vx0", "tx", "tunnel-routing-failed", 10)
	h.a.IP(t, "addr", "add", u.a+u.prefix, "dev", "phy0", "nodad")
	h.a.IP(t, "neigh", "flush", "dev", "phy0")
	if !netns.Eventually(30*time.Second, func() bool {
		_, err := h.wa.Run("ping", "-c", "1", "-W", "1", "10.9.0.2")
		return err == nil
	}) {
		t.Fatalf("no traffic once the route is back:\n%s\n%s", d.run(t, "tnl/ports/show"), d.run(t, "drop-reasons"))
	}
	flood.Kill()
	if w := d.run(t, "watchdog/show"); regexp.MustCompile(`soft lockups detected: [1-9]`).MatchString(w) {
		t.Errorf("a poll thread locked up:\n%s", w)
	}
	checkTunnelLedger(t, d)
	t.Logf("drop reasons:\n%s", d.run(t, "drop-reasons"))
}

// tcpBothWays moves 2 MB over TCP from each workload to the other.
func tcpBothWays(t *testing.T, h *vxlanHosts, d *cliDaemon) {
	t.Helper()
	for _, p := range []struct {
		server, client *netns.NS
		addr           string
	}{{h.wb, h.wa, "10.9.0.2:7000"}, {h.wa, h.wb, "10.9.0.1:7001"}} {
		echo := p.server.Start(t, helperArgs(t, "tcp-echo", p.addr)...)
		if !netns.Eventually(10*time.Second, func() bool { return strings.Contains(echo.Output(), "listening") || echo.Exited() }) || echo.Exited() {
			t.Fatalf("tcp echo server: %s", echo.Output())
		}
		if out, err := p.client.Run(helperArgs(t, "tcp-client", p.addr, "2000000")...); err != nil || !strings.Contains(out, "ok 2000000") {
			t.Fatalf("tcp to %s: %v\n%s\n%s\n%s", p.addr, err, out, d.run(t, "dump-ports", "brint"), d.run(t, "drop-reasons"))
		}
		echo.Kill()
	}
}

// checkVXLANCapture has tshark dissect the underlay capture: VXLAN with
// the key both ways, and not a warning, error or malformed packet.
func checkVXLANCapture(t *testing.T, tshark, pcap string, u underlayNet) {
	t.Helper()
	a, b, ipField := u.a, u.b, "ip"
	if u.v6 {
		ipField = "ipv6"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := []string{"-d", "udp.port==4789,vxlan", "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		// The inner TCP payload is the test's random bytes: dissected
		// as whatever protocol has its port, it would look malformed.
		"--disable-protocol", "tcp"}
	out, err := runTool(ctx, tshark, append(append([]string{"-r", pcap}, opts...),
		"-T", "fields", "-E", "occurrence=f", "-e", ipField+".src", "-e", ipField+".dst", "-e", "vxlan.vni")...)
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	dirs := map[string]int{}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) < 3 {
			t.Fatalf("tshark line %q", l)
		}
		if f[2] != strconv.Itoa(vxlanKey) {
			t.Errorf("packet %s -> %s with vni %q, want %d", f[0], f[1], f[2], vxlanKey)
		}
		dirs[f[0]+">"+f[1]]++
	}
	if dirs[a+">"+b] < 10 || dirs[b+">"+a] < 10 {
		t.Errorf("captured VXLAN packets by direction %v, want both %s>%s and back", dirs, a, b)
	}
	// The whole dissection, with its expert infos.
	full, err := runTool(ctx, tshark, append(append([]string{"-r", pcap}, opts...), "-V")...)
	if err != nil {
		t.Fatalf("tshark -V: %v\n%s", err, full)
	}
	for _, bad := range []string{"Expert Info (Error", "Expert Info (Warning", "Malformed"} {
		if strings.Contains(full, bad) {
			i := strings.Index(full, bad)
			t.Errorf("tshark reports %s: ...%s...", bad, full[max(0, i-300):min(len(full), i+300)])
		}
	}
	t.Logf("underlay capture: %d VXLAN packets, by direction %v", len(lines), dirs)
}

var (
	portRowRe = regexp.MustCompile(`(?m)^  port +(\S+): rx pkts=(\d+),`)
	txRowRe   = regexp.MustCompile(`(?m)^ +tx pkts=(\d+),`)
	rxDropsRe = regexp.MustCompile(`(?m)^ +rx dropped by reason: (.*)$`)
)

// tunnelRow is one port's row of dump-ports.
type tunnelRow struct {
	rx, tx, rxDrops uint64
	reasons         string
}

// parseDumpPorts reads dump-ports' rows by port.
func parseDumpPorts(t *testing.T, dump string) map[string]tunnelRow {
	t.Helper()
	rows := map[string]tunnelRow{}
	starts := portRowRe.FindAllStringSubmatchIndex(dump, -1)
	for i, s := range starts {
		end := len(dump)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		block := dump[s[0]:end]
		name := dump[s[2]:s[3]]
		var r tunnelRow
		r.rx, _ = strconv.ParseUint(dump[s[4]:s[5]], 10, 64)
		if m := txRowRe.FindStringSubmatch(block); m != nil {
			r.tx, _ = strconv.ParseUint(m[1], 10, 64)
		}
		if m := rxDropsRe.FindStringSubmatch(block); m != nil {
			r.reasons = m[1]
			for _, x := range dumpReason.FindAllStringSubmatch(m[1], -1) {
				v, _ := strconv.ParseUint(x[1], 10, 64)
				r.rxDrops += v
			}
		}
		rows[name] = r
	}
	return rows
}

// checkTunnelLedger checks host A's two bridges of two ports each, where
// every packet goes out one port at most: every packet received was
// transmitted by a port, dropped with a reason, or decapsulated, and each
// decapsulated packet was received on the vxlan port. So the rx of both
// bridges is their tx, their ingress drops and the vxlan port's rx.
func checkTunnelLedger(t *testing.T, d *cliDaemon) {
	t.Helper()
	var last string
	if !netns.Eventually(20*time.Second, func() bool {
		dumpInt, dumpPhy := d.run(t, "dump-ports", "brint"), d.run(t, "dump-ports", "brphy")
		last = dumpInt + dumpPhy
		in, phy := parseDumpPorts(t, dumpInt), parseDumpPorts(t, dumpPhy)
		var rx, tx, drops uint64
		for _, rows := range []map[string]tunnelRow{in, phy} {
			for _, r := range rows {
				rx += r.rx
				tx += r.tx
				drops += r.rxDrops
			}
		}
		tun := in[strconv.Itoa(vxlanOFTun)]
		last += fmt.Sprintf("rx %d, tx %d, ingress drops %d, decapsulated %d\n", rx, tx, drops, tun.rx)
		return tun.rx > 0 && tun.tx > 0 && rx == tx+drops+tun.rx
	}) {
		t.Errorf("host A's packets are not accounted for:\n%s", last)
	}
}
