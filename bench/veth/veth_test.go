package main

import (
	"math"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/flow"
)

func TestManyRules(t *testing.T) {
	rules := manyRules()
	if len(rules) != 1000 {
		t.Fatalf("%d rules, want 1000", len(rules))
	}
	seen := map[string]bool{}
	for i, r := range rules {
		if seen[r] {
			t.Errorf("rule %d %q repeats", i, r)
		}
		seen[r] = true
		if _, err := flow.ParseFlow(r, flow.CmdAdd); err != nil {
			t.Errorf("rule %d %q: %v", i, r, err)
		}
	}
}

func TestXSKFrames(t *testing.T) {
	src, _ := net.ParseMAC("02:00:00:00:00:01")
	dst, _ := net.ParseMAC("02:00:00:00:00:02")
	frames, err := xskFrames(src, dst, ipA, ipB)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != flowPorts {
		t.Fatalf("%d frames, want %d", len(frames), flowPorts)
	}
	for i, f := range frames {
		if len(f) != 60 {
			t.Fatalf("frame %d: %d bytes, want 60", i, len(f))
		}
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if udp == nil || ip == nil {
			t.Fatalf("frame %d does not decode as IPv4/UDP: %v", i, p)
		}
		if want := layers.UDPPort(flowPortBase + i); udp.DstPort != want {
			t.Errorf("frame %d: destination port %d, want %d", i, udp.DstPort, want)
		}
		if ip.SrcIP.String() != ipA || ip.DstIP.String() != ipB || len(udp.Payload) != 18 {
			t.Errorf("frame %d: %v -> %v, %d-byte payload", i, ip.SrcIP, ip.DstIP, len(udp.Payload))
		}
	}
}

func TestRatio(t *testing.T) {
	tcp := metricByKey("tcp_gbps")
	tests := []struct {
		name    string
		in      []sample
		want    float64
		wantNaN bool
	}{
		{"pairs by round", []sample{
			{round: 1, config: "ovsxdp", tcpGbps: 2}, {round: 1, config: "bridge", tcpGbps: 1},
			{round: 2, config: "ovsxdp", tcpGbps: 3}, {round: 2, config: "bridge", tcpGbps: 3},
			{round: 3, config: "ovsxdp", tcpGbps: 4}, {round: 3, config: "bridge", tcpGbps: 1},
		}, 2, false},
		{"failed runs left out", []sample{
			{round: 1, config: "ovsxdp", tcpGbps: 2}, {round: 1, config: "bridge", tcpGbps: 1},
			{round: 2, config: "ovsxdp", tcpGbps: 9}, {round: 2, config: "bridge", err: "boom"},
		}, 2, false},
		{"nothing to pair", []sample{{round: 1, config: "ovsxdp", tcpGbps: 2}, {round: 2, config: "bridge", tcpGbps: 1}}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ratio(tt.in, "ovsxdp", "bridge", tcp)
			if tt.wantNaN != math.IsNaN(got) || (!tt.wantNaN && got != tt.want) {
				t.Errorf("ratio = %v, want %v (NaN %v)", got, tt.want, tt.wantNaN)
			}
		})
	}
}

func TestBestOVS(t *testing.T) {
	o := options{only: configs}
	in := []sample{
		{round: 1, config: "ovs-pmd", udpPps: 10, rttAvg: 50},
		{round: 1, config: "ovs-nonpmd", udpPps: 20, rttAvg: 70},
		{round: 1, config: "bridge", udpPps: 99, rttAvg: 1},
	}
	if got := bestOVS(o, in, metricByKey("udp_pps")); got != "ovs-nonpmd" {
		t.Errorf("best OVS for a rate = %q, want ovs-nonpmd", got)
	}
	if got := bestOVS(o, in, metricByKey("rtt_avg_us")); got != "ovs-pmd" {
		t.Errorf("best OVS for a time = %q, want ovs-pmd", got)
	}
}

func TestProcCPU(t *testing.T) {
	u, sys, err := procCPU(os.Getpid())
	if err != nil || u < 0 || sys < 0 {
		t.Fatalf("procCPU(self) = %v, %v, %v", u, sys, err)
	}
	if _, _, err := procCPU(-1); err == nil {
		t.Error("procCPU(-1): no error")
	}
	if _, _, err := machineCPU(); err != nil {
		t.Error(err)
	}
}

func TestProfileShares(t *testing.T) {
	top := `Duration: 4.11s, Total samples = 1.13s (27.48%)
      flat  flat%   sum%        cum   cum%
     0.01s  0.88% 99.12%      0.78s 69.03%  syscall.RawSyscall6
         0     0%   100%      0.75s 66.37%  github.com/ovsxdp/ovsxdp/datapath.(*pmd).transmit
`
	got := profileShares(top)
	for _, want := range []string{"Total samples = 1.13s (27.48%)", "69% of the samples are in system calls", "66% of the samples are under the poll thread's transmit"} {
		if !strings.Contains(got, want) {
			t.Errorf("profileShares: %q lacks %q", got, want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"some configs", []string{"-configs", "ovsxdp,bridge"}, ""},
		{"unknown config", []string{"-configs", "ovsxdp,nope"}, `unknown configuration "nope"`},
		{"no rounds", []string{"-rounds", "0"}, "want at least 1"},
		{"fractional time", []string{"-time", "1500ms"}, "whole seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.in)
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	o := options{only: configs}
	in := []sample{
		{round: 1, config: "ovsxdp", udpPps: 150},
		{round: 1, config: "ovs-maxsleep", udpPps: 100},
		{round: 1, config: "bridge", udpPps: 160},
		{round: 1, config: "xdp-redirect", udpPps: 120},
	}
	got := limits(o, in)
	want := "UDP (iperf3): the target, 1.2× ovs-maxsleep, is 120 packets/s; the kernel-only path reached 160 packets/s (bridge), " +
		"so the target is 0.75× the best the kernel itself forwarded here; ovsxdp reached 0.94× of that."
	if !strings.Contains(got, want) {
		t.Errorf("limits:\n%s\nwant it to contain\n%s", got, want)
	}
	if strings.Contains(got, "TCP") {
		t.Errorf("limits speaks of TCP, which no sample measured:\n%s", got)
	}
}

func TestTargetsPaced(t *testing.T) {
	o := options{only: configs, duration: 4e9}
	in := []sample{
		{round: 1, config: "ovsxdp", xskPps: 1000, paced: pacedRun{measured: true, offered: 800, sent: 800, received: 800}},
		{round: 2, config: "ovsxdp", xskPps: 1000, paced: pacedRun{measured: true, offered: 800, sent: 700, received: 690, drops: kernelDrops{noFrame: 28},
			gauges: &phaseGauges{maxPollGap: 12500 * time.Microsecond, fillLow: 0, fillSize: 8192, foundEmpty: 2},
			sched:  &phaseSched{pollCPU: 2100 * time.Millisecond, pollWait: 900 * time.Millisecond}}},
		{round: 1, config: "ovs-pmd", xskPps: 900},
		{round: 2, config: "ovs-pmd", xskPps: 900},
	}
	got := targets(o, in)
	for _, want := range []string{
		"| UDP small packets, AF_XDP sender, 1,000 flows: ovsxdp ≥ 1.2× best OVS | 1.11× (against ovs-pmd) | no, missed by 7% |",
		"28 dropped (rx ring full 0, no fill frame 28) of about 6000 sent, 2 runs | no, 0.47% of the frames sent dropped |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets:\n%s\nwant a line containing\n%s", got, want)
		}
	}
	in[1].paced.drops = kernelDrops{}
	if got := targets(o, in); !strings.Contains(got, "0 dropped (rx ring full 0, no fill frame 0) of about 6000 sent, 2 runs | not shown: no drop, but in 1 of the runs the sender sent under 95% of its target |") {
		t.Errorf("targets without drops, a sender short of its target:\n%s", got)
	}
	in[1].paced.sent = 790
	if got := targets(o, in); !strings.Contains(got, "0 dropped (rx ring full 0, no fill frame 0) of about 6360 sent, 2 runs | yes |") {
		t.Errorf("targets without drops:\n%s", got)
	}
	in[1].paced.sent = 700
	if got := pacedLimits(o, in); got != "" {
		t.Errorf("paced limits without a run that dropped: %q", got)
	}
	in[1].paced.drops = kernelDrops{noFrame: 28}
	want := "1 of 1 ovsxdp runs dropped frames. In 0 of them the poll thread's longest gap outlasted its rx frames at the rate sent (a stall); 0 of them saw a GC cycle. " +
		"In the runs that dropped, the poll thread waited for a CPU a median 900 ms of the 4s phase:"
	if got := pacedLimits(o, in); !strings.Contains(got, want) {
		t.Errorf("paced limits:\n%s\nwant it to contain\n%s", got, want)
	}
	// 8 frames last 11.4 ms at 700 packets/s: the 12.5 ms gap emptied them.
	in[1].paced.gauges.fillSize = 8
	if got, want := pacedLimits(o, in), "In 1 of them the poll thread's longest gap outlasted"; !strings.Contains(got, want) {
		t.Errorf("paced limits:\n%s\nwant it to contain\n%s", got, want)
	}
	in[1].paced.gauges.fillSize = 8192
	in[1].paced.drops = kernelDrops{}
	got = paced(o, in)
	for _, want := range []string{"| 1 | ovsxdp | 800 | 800 | 800 | 0 | 0 | – | – | – | – | – | – |", "| 2 | ovsxdp | 800 | 700 | 690 | 0 | 0 | 12.50 | 8192 | 0 | 2 | 2100 | 900 |"} {
		if !strings.Contains(got, want) {
			t.Errorf("paced:\n%s\nwant a line containing\n%s", got, want)
		}
	}
}

func TestDoubleCount(t *testing.T) {
	for _, c := range []struct {
		irqTime string
		twice   bool
	}{{"yes", false}, {"no", true}, {"", true}} {
		if got := strings.Contains(doubleCount(c.irqTime), "counted twice"); got != c.twice {
			t.Errorf("irq time accounting %q: says counted twice %v, want %v: %s", c.irqTime, got, c.twice, doubleCount(c.irqTime))
		}
	}
	if v := irqTimeAccounting(); v != "" && v != "yes" && v != "no" {
		t.Errorf("irqTimeAccounting() = %q", v)
	}
}

func TestCTFlows(t *testing.T) {
	for i, r := range ctFlows {
		if _, err := flow.ParseFlow(r, flow.CmdAdd); err != nil {
			t.Errorf("flow %d %q: %v", i, r, err)
		}
	}
}

func TestRuleCount(t *testing.T) {
	// ovs-ofctl dump-flows as Open vSwitch 3.1 prints it.
	dump := ` cookie=0x0, duration=3.1s, table=0, n_packets=12, n_bytes=720, priority=100,arp,in_port=1 actions=output:2
 cookie=0x0, duration=3.1s, table=0, n_packets=40211, n_bytes=9000000, priority=90,ct_state=-trk,ip actions=ct(table=1)
 cookie=0x0, duration=3.1s, table=1, n_packets=7, n_bytes=420, priority=100,ct_state=+inv+trk actions=drop
 cookie=0x0, duration=3.1s, table=1, n_packets=100, n_bytes=6000, priority=90,ct_state=+new+trk,tcp,in_port=1,tp_dst=7007 actions=ct(commit),output:2
 cookie=0x0, duration=3.1s, table=1, n_packets=3, n_bytes=180, priority=0 actions=drop
`
	for _, tc := range []struct {
		name string
		rule *regexp.Regexp
		want uint64
	}{{"+inv", invRule, 7}, {"final drop", lastRule, 3}} {
		got, err := ruleCount(dump, tc.rule)
		if err != nil || got != tc.want {
			t.Errorf("%s: %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
	if _, err := ruleCount("table=0, n_packets=1, priority=0 actions=drop\n", lastRule); err == nil {
		t.Error("a table 0 rule counted as table 1's final drop rule")
	}
}

// TestRoundOrder: every round runs every configuration once, the rounds
// start with different configurations, and over the strides of twelve
// configurations each follows four different ones.
func TestRoundOrder(t *testing.T) {
	var cs []config
	for i := range 12 {
		cs = append(cs, config{name: string(rune('a' + i))})
	}
	first := map[string]bool{}
	after := map[string]map[string]bool{}
	for r := 1; r <= 4; r++ {
		got := roundOrder(cs, r)
		if len(got) != len(cs) {
			t.Fatalf("round %d: %d configurations, want %d", r, len(got), len(cs))
		}
		seen := map[string]bool{}
		for j, c := range got {
			seen[c.name] = true
			if j > 0 {
				if after[c.name] == nil {
					after[c.name] = map[string]bool{}
				}
				after[c.name][got[j-1].name] = true
			}
		}
		if len(seen) != len(cs) {
			t.Fatalf("round %d: %v is not every configuration once", r, got)
		}
		first[got[0].name] = true
	}
	if len(first) != 4 {
		t.Errorf("4 rounds started with %d different configurations, want 4", len(first))
	}
	for _, c := range cs {
		if n := len(after[c.name]); n < 3 {
			t.Errorf("%s followed %d different configurations in 4 rounds, want at least 3", c.name, n)
		}
	}
	if got := roundOrder(cs, 1); got[0].name != "a" || got[11].name != "l" {
		t.Errorf("round 1: %v, want the suite's order", got)
	}
	if cs[0].name != "a" || cs[1].name != "b" {
		t.Errorf("roundOrder changed its argument: %v", cs)
	}
	for n := 1; n <= 3; n++ {
		if got := roundOrder(cs[:n], 2); len(got) != n {
			t.Errorf("%d configurations: round 2 has %d", n, len(got))
		}
	}
	if roundOrder(nil, 1) != nil {
		t.Error("no configurations: want none")
	}
}

func TestParsePerfStat(t *testing.T) {
	out := strings.Join([]string{
		"veth-101;1200;;raw_syscalls:sys_enter;4000;100.00;;",
		"veth-101;30;;context-switches;4000;100.00;;",
		"veth-101;700;;syscalls:sys_enter_writev;4000;100.00;;",
		"veth-102;<not counted>;;syscalls:sys_enter_writev;0;100.00;;",
		"veth-102;9;;raw_syscalls:sys_enter;4000;100.00;;",
		"veth-102;5;;probe_veth:now;4000;100.00;;",
		"",
		"not a count line",
	}, "\n")
	got, err := parsePerfStat(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]uint64{
		"veth-101": {"": 1200, "cs": 30, "writev": 700},
		"veth-102": {"": 9, "probe_veth:now": 5},
	}
	if len(got) != len(want) {
		t.Fatalf("threads %v, want %v", got, want)
	}
	for tid, w := range want {
		for k, v := range w {
			if got[tid][k] != v {
				t.Errorf("%s %q: %d, want %d", tid, k, got[tid][k], v)
			}
		}
		if len(got[tid]) != len(w) {
			t.Errorf("%s: %v, want %v", tid, got[tid], w)
		}
	}
	if _, err := parsePerfStat("perf: no permission\n"); err == nil {
		t.Error("no counts: no error")
	}
	if _, err := parsePerfStat("veth-1;12x;;raw_syscalls:sys_enter;1;100.00;;"); err == nil {
		t.Error("a bad count: no error")
	}
}
