package main

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/vport/topo"
)

func TestParseRows(t *testing.T) {
	in := "bridge,kind,message,error,type,code,reason,count,distinct,example\n" +
		"br-int,received,OFPT_FLOW_MOD,,,,,12,,\n" +
		"br-int,refused,OFPT_FLOW_MOD,OFPBAC_BAD_TYPE,2,0,NXAST_CT,5,2,0604\n"
	got, err := parseRows(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []row{
		{kind: "received", message: "OFPT_FLOW_MOD", count: 12},
		{kind: "refused", message: "OFPT_FLOW_MOD", errName: "OFPBAC_BAD_TYPE", typ: 2, code: 0, reason: "NXAST_CT", count: 5, distinct: 2, example: "0604"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseRows:\n%+v\nwant\n%+v", got, want)
	}
	if _, err := parseRows("h\nbr-int,refused,x\n"); err == nil {
		t.Error("a short row was taken")
	}
}

func TestDistinctLines(t *testing.T) {
	log := "2026-12-05T11:00:00.000Z|00001|vlog|INFO|opened log file\n" +
		"2026-12-05T11:00:01.000Z|00002|ofctrl|INFO|OpenFlow error: OFPT_ERROR (OF1.5) (xid=0x5): OFPBAC_BAD_TYPE\n" +
		"OFPT_BUNDLE_ADD_MESSAGE (OF1.5) (xid=0x5):\n" +
		"2026-12-05T11:00:02.000Z|00003|ofctrl|INFO|OpenFlow error: OFPT_ERROR (OF1.5) (xid=0x9): OFPBAC_BAD_TYPE\n" +
		"OFPT_BUNDLE_ADD_MESSAGE (OF1.5) (xid=0x9):\n" +
		"2026-12-05T11:00:03.000Z|00004|rconn|WARN|connection failed\n"
	got := distinctLines(log)
	want := []logCount{
		{"ofctrl|INFO|OpenFlow error: OFPT_ERROR (xid=…): OFPBAC_BAD_TYPE / OFPT_BUNDLE_ADD_MESSAGE (xid=…):", 2},
		{"rconn|WARN|connection failed", 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("distinctLines:\n%+v\nwant\n%+v", got, want)
	}
}

// TestRunner checks that Fatal ends the body, that the code after it does
// not run, and that cleanups run last first.
func TestRunner(t *testing.T) {
	r := newRunner(slog.New(slog.NewTextHandler(io.Discard, nil)))
	var order []string
	reached := false
	r.run(func(tb *runner) {
		tb.Cleanup(func() { order = append(order, "first") })
		tb.Cleanup(func() { order = append(order, "second") })
		tb.Fatalf("stop %d", 1)
		reached = true
	})
	if reached {
		t.Fatal("the body went on after Fatal")
	}
	if errs := r.errors(); !reflect.DeepEqual(errs, []string{"stop 1"}) || !r.Failed() {
		t.Fatalf("errors %q", errs)
	}
	r.cleanup()
	if !reflect.DeepEqual(order, []string{"second", "first"}) {
		t.Fatalf("cleanups ran in order %q", order)
	}
	// A panic in the body is a failure, not a crash.
	r2 := newRunner(slog.New(slog.NewTextHandler(io.Discard, nil)))
	r2.run(func(*runner) { panic("boom") })
	if !r2.Failed() {
		t.Fatal("a panic was not reported")
	}
}

func TestParseCapture(t *testing.T) {
	in := "192.0.2.1,10.0.0.1|192.0.2.2,10.0.0.3|1|0x000001|0x0102|0x80|8,8|00010003||8\n" +
		"192.0.2.1,10.0.0.1|192.0.2.2,10.0.0.3|1|0x000001|0x0102|0x80|8,8|00010003||8\n" +
		"192.0.2.2|192.0.2.1|0|0x000001|0x0102|0x80|8,8|00030001|2|\n"
	got, err := parseCapture(in)
	if err != nil {
		t.Fatal(err)
	}
	want := &capture{packets: 3, groups: []geneveGroup{
		{src: "192.0.2.1", dst: "192.0.2.2", csum: "good", vni: "0x000001", class: "0x0102", typ: "0x80", length: "8", data: "00010003", inner: "ICMP echo request", n: 2},
		{src: "192.0.2.2", dst: "192.0.2.1", csum: "bad", vni: "0x000001", class: "0x0102", typ: "0x80", length: "8", data: "00030001", inner: "ARP reply", n: 1},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseCapture:\n%+v\nwant\n%+v", got, want)
	}
	if _, err := parseCapture("192.0.2.1|192.0.2.2|1\n"); err == nil {
		t.Error("a short line was taken")
	}
}

func TestOVNPorts(t *testing.T) {
	for _, tc := range []struct {
		name, in        string
		wantIn, wantOut int
		wantOK          bool
	}{
		{name: "plain hex", in: "00010003", wantIn: 1, wantOut: 3, wantOK: true},
		{name: "colons", in: "00:03:80:00", wantIn: 3, wantOut: 0x8000, wantOK: true},
		{name: "bit 31 is not the ingress port's", in: "80020001", wantIn: 2, wantOut: 1, wantOK: true},
		{name: "two options", in: "00010003,00010003"},
		{name: "short", in: "0001"},
		{name: "not hex", in: "0001000x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, out, ok := ovnPorts(tc.in)
			if ok != tc.wantOK || (ok && (in != tc.wantIn || out != tc.wantOut)) {
				t.Errorf("ovnPorts(%q) = %d, %d, %v; want %d, %d, %v", tc.in, in, out, ok, tc.wantIn, tc.wantOut, tc.wantOK)
			}
		})
	}
}

// TestGeneveVerdict checks that the verdict on the wire's packets names
// what is not as OVN sends it.
func TestGeneveVerdict(t *testing.T) {
	c1 := &chassis{name: "chassis-1", encapIP: "192.0.2.1"}
	c2 := &chassis{name: "chassis-2", encapIP: "192.0.2.2"}
	lsp1 := &lport{name: "lsp1", chassis: c1, key: 1}
	lsp3 := &lport{name: "lsp3", chassis: c2, key: 3}
	good := func() []geneveGroup {
		return []geneveGroup{
			{src: "192.0.2.1", dst: "192.0.2.2", csum: "good", vni: "0x000001", class: "0x0102", typ: "0x80", length: "8", data: "00010003", inner: "ICMP echo request", n: 5},
			{src: "192.0.2.2", dst: "192.0.2.1", csum: "good", vni: "0x000001", class: "0x0102", typ: "0x80", length: "8", data: "00030001", inner: "ICMP echo reply", n: 5},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(g []geneveGroup)
		want   string
	}{
		{name: "as OVN sends them", change: func([]geneveGroup) {}, want: "**Every packet as OVN sends it:**"},
		{name: "another VNI", change: func(g []geneveGroup) { g[0].vni = "0x000002" }, want: "5 packets of VNI 0x000002"},
		{name: "no checksum", change: func(g []geneveGroup) { g[1].csum = "none" }, want: "5 packets with outer UDP checksum none"},
		{name: "another class", change: func(g []geneveGroup) { g[0].class = "0x0101" }, want: `option class "0x0101"`},
		{name: "ports swapped", change: func(g []geneveGroup) { g[0].data = "00030001" }, want: "name ports 3 → 1, want lsp1 → lsp3"},
		{name: "no option", change: func(g []geneveGroup) { g[1].data = "" }, want: "is not 4 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := good()
			tc.change(g)
			m := &measurement{chassis: []*chassis{c1, c2}, ports: []*lport{lsp1, lsp3}, dpKey: 1,
				pings: []pingResult{{from: lsp1, to: lsp3}}, geneve: &capture{packets: 10, groups: g}}
			if got := geneveVerdict(m); !strings.Contains(got, tc.want) {
				t.Errorf("verdict %q, want it to hold %q", got, tc.want)
			}
		})
	}
}

func TestParseRequests(t *testing.T) {
	out := "tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n" +
		"08:50:20.123456 00:00:00:00:ff:02 > 96:1e:43:c2:94:1f, ethertype IPv4 (0x0800), length 98: (tos 0x0, ttl 63, id 4711, offset 0, flags [DF], proto ICMP (1), length 84)\n" +
		"    10.0.0.1 > 10.0.1.4: ICMP echo request, id 1, seq 0, length 64\n" +
		"08:50:20.323456 00:00:00:00:ff:02 > 96:1e:43:c2:94:1f, ethertype IPv4 (0x0800), length 98: (tos 0x0, ttl 62, id 4712, offset 0, flags [DF], proto ICMP (1), length 84)\n" +
		"    10.0.0.1 > 10.0.1.4: ICMP echo request, id 1, seq 1, length 64\n" +
		"2 packets captured\n"
	n, ttl, src, dst := parseRequests(out)
	if n != 2 || ttl != 63 || src != "00:00:00:00:ff:02" || dst != "96:1e:43:c2:94:1f" {
		t.Errorf("parseRequests: %d requests, the first TTL %d from %s to %s; want 2, 63, 00:00:00:00:ff:02, 96:1e:43:c2:94:1f", n, ttl, src, dst)
	}
	if n, _, _, _ := parseRequests("tcpdump: listening on eth0\n0 packets captured\n"); n != 0 {
		t.Errorf("parseRequests of no packet: %d", n)
	}
}

func TestRoutedPingOK(t *testing.T) {
	to := &lport{name: "lsp4", sw: "sw1", mac: net.HardwareAddr{0x96, 0x1e, 0x43, 0xc2, 0x94, 0x1f}}
	good := routedPing{pingResult: pingResult{to: to, stats: topo.PingStats{Sent: 5, Received: 5}}, seen: 5, ttl: 63,
		ethSrc: "00:00:00:00:ff:02", ethDst: "96:1e:43:c2:94:1f"}
	tests := []struct {
		name   string
		change func(r *routedPing)
		want   bool
	}{
		{"routed", func(*routedPing) {}, true},
		{"no reply", func(r *routedPing) { r.stats.Received = 0 }, false},
		{"not captured", func(r *routedPing) { r.seen = 0 }, false},
		{"TTL not decremented", func(r *routedPing) { r.ttl = 64 }, false},
		{"source MAC not rewritten", func(r *routedPing) { r.ethSrc = "0e:00:00:00:00:01" }, false},
		{"source MAC of the other router port", func(r *routedPing) { r.ethSrc = "00:00:00:00:ff:01" }, false},
		{"destination MAC not rewritten", func(r *routedPing) { r.ethDst = "00:00:00:00:ff:01" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.change(&r)
			if got := r.ok(); got != tt.want {
				t.Errorf("ok() = %v, want %v", got, tt.want)
			}
		})
	}
}

// timeoutErr is a dial's timeout, as net reports it.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestConnResultOK(t *testing.T) {
	refused := &net.OpError{Op: "dial", Err: errors.New("connect: connection refused")}
	timeout := &net.OpError{Op: "dial", Err: timeoutErr{}}
	tests := []struct {
		name        string
		inWantOK    bool
		inErr       error
		want        bool
		wantVerdict string
	}{
		{"allowed, answered", true, nil, true, "answered"},
		{"allowed, dropped", true, timeout, false, "dropped (no answer in 4s)"},
		{"denied, dropped", false, timeout, true, "dropped (no answer in 4s)"},
		{"denied, but reset: the ACL did not drop", false, refused, false, "refused"},
		{"denied, but answered", false, nil, false, "answered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := connResult{wantOK: tt.inWantOK, err: tt.inErr}
			if got := c.ok(); got != tt.want {
				t.Errorf("ok() = %v, want %v", got, tt.want)
			}
			if got := connVerdict(tt.inErr); got != tt.wantVerdict {
				t.Errorf("connVerdict = %q, want %q", got, tt.wantVerdict)
			}
		})
	}
}
