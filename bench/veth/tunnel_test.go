package main

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dumpRow renders one port's row as the ovsxdp CLI's dump-ports does.
func dumpRow(port string, rx, tx uint64, rxDrops, txDrops string) string {
	return "  port " + port + ": rx pkts=" + strconv.FormatUint(rx, 10) + ", bytes=0, drop=0, errs=0, frame=0, over=0, crc=0\n" +
		"           tx pkts=" + strconv.FormatUint(tx, 10) + ", bytes=0, drop=0, errs=0, coll=0\n" +
		"           rx dropped by reason: " + rxDrops + "\n" +
		"           tx dropped by reason: " + txDrops + "\n" +
		"           tx on queue >= count: 0\n"
}

func TestCheckLedger(t *testing.T) {
	const head = "OFPST_PORT reply (xid=0x2): 2 ports\n"
	tests := []struct {
		name             string
		inInt, inPhy     string
		wantErr          string
		wantRx, wantDrop uint64
		wantReasons      []string
	}{{
		name: "balanced",
		// br-int: the workload port received 100 (90 out of the tunnel
		// port, 10 dropped as its tx ring was full); the tunnel port
		// decapsulated 50, sent to the workload. br-phy: the uplink
		// received 53 (50 decapsulated, 3 dropped) and sent 90; phy0
		// received 90. 293 received = 230 sent + 13 dropped + 50
		// decapsulated.
		inInt:       head + dumpRow(" 1", 100, 50, "tx-ring-full=10", "none") + dumpRow("10", 50, 90, "none", "tx-ring-full=10"),
		inPhy:       head + dumpRow(" 1", 53, 90, "no-rule=1, truncated=2", "none") + dumpRow(" 2", 90, 0, "none", "none"),
		wantRx:      100 + 50 + 53 + 90,
		wantDrop:    13,
		wantReasons: []string{"br-int port 1 rx tx-ring-full=10", "br-int port 10 tx tx-ring-full=10", "br-phy port 1 rx no-rule=1", "br-phy port 1 rx truncated=2"},
	}, {
		name:    "a packet missing",
		inInt:   head + dumpRow(" 1", 100, 50, "none", "none") + dumpRow("10", 50, 99, "none", "none"),
		inPhy:   head + dumpRow(" 1", 50, 99, "none", "none") + dumpRow(" 2", 99, 50, "none", "none"),
		wantErr: "not accounted for",
	}, {
		name:    "tunnel idle one way",
		inInt:   head + dumpRow(" 1", 5, 0, "none", "none") + dumpRow("10", 0, 5, "none", "none"),
		inPhy:   head + dumpRow(" 1", 0, 5, "none", "none") + dumpRow(" 2", 5, 0, "none", "none"),
		wantErr: "want both",
	}, {
		name:    "no tunnel port",
		inInt:   head + dumpRow(" 1", 5, 5, "none", "none"),
		inPhy:   head + dumpRow(" 1", 5, 5, "none", "none"),
		wantErr: "no tunnel port 10",
	}, {
		name:    "not dump-ports",
		inInt:   "ovs-ofctl: br-int is not a bridge or a socket\n",
		inPhy:   head + dumpRow(" 1", 5, 5, "none", "none"),
		wantErr: "no port rows",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := checkLedger(tc.inInt, tc.inPhy, "10")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("checkLedger: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("checkLedger: %v", err)
			}
			if l.rx != tc.wantRx || l.drops != tc.wantDrop {
				t.Errorf("rx %d, drops %d; want %d, %d", l.rx, l.drops, tc.wantRx, tc.wantDrop)
			}
			if got := strings.Join(l.reasons, "; "); got != strings.Join(tc.wantReasons, "; ") {
				t.Errorf("reasons %q, want %q", got, strings.Join(tc.wantReasons, "; "))
			}
			if s := l.summary(); !strings.Contains(s, "decapsulated 50") || !strings.Contains(s, "no-rule=1") {
				t.Errorf("summary %q", s)
			}
		})
	}
}

// tunnelSamples are two rounds of the tunnel configurations with the
// given TCP rates (Gbit/s) and iperf3 and AF_XDP packet rates.
func tunnelSamples(tcp, udp, xsk map[string][2]float64) []sample {
	var out []sample
	for r := range 2 {
		for _, c := range tunnelConfigs {
			out = append(out, sample{round: r + 1, config: c.name, tcpGbps: tcp[c.name][r], udpPps: udp[c.name][r], xskPps: xsk[c.name][r],
				flowsPps: math.NaN(), rttAvg: 100, rttP99: 200, cpuPerMpkt: 1, cpu: cpuTimes{1, 0, 0, 2}})
		}
	}
	return out
}

func TestTunnelTargets(t *testing.T) {
	o := options{suite: "tunnel", rounds: 2, duration: time.Second, only: tunnelConfigs}
	samples := tunnelSamples(
		map[string][2]float64{"ovsxdp-vxlan": {3, 3}, "ovs-vxlan": {2, 2}, "ovs-vxlan-maxsleep": {2.4, 2.6}, "kernel-vxlan": {6, 6}},
		map[string][2]float64{"ovsxdp-vxlan": {120, 120}, "ovs-vxlan": {100, 100}, "ovs-vxlan-maxsleep": {50, 50}, "kernel-vxlan": {60, 60}},
		map[string][2]float64{"ovsxdp-vxlan": {100, 100}, "ovs-vxlan": {100, 100}, "ovs-vxlan-maxsleep": {100, 100}, "kernel-vxlan": {200, 200}},
	)
	got := tunnelTargets(o, samples)
	for _, want := range []string{
		// 3 / 2.5 against the better OVS for TCP, ovs-vxlan-maxsleep.
		"| TCP throughput through the tunnel: ovsxdp ≥ 1.2× Open vSwitch | 1.20× (against ovs-vxlan-maxsleep) | yes |",
		"| Small-packet rate through the tunnel, iperf3 UDP: ovsxdp ≥ 1.2× Open vSwitch | 1.20× (against ovs-vxlan) | yes |",
		"| Small-packet rate through the tunnel, AF_XDP sender, 1,000 flows: ovsxdp ≥ 1.2× Open vSwitch | 1.00× (against ovs-vxlan) | no, missed by 17% |",
		"| For reference, not a target: TCP throughput, ovsxdp / kernel | 0.50× | – |",
		"| For reference, not a target: small packets (iperf3), ovsxdp / kernel | 2.00× | – |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets lack\n%s\nin\n%s", want, got)
		}
	}

	// Every ovsxdp run failed: nothing to compare.
	for i := range samples {
		if samples[i].config == tunnelOurs {
			samples[i].err = "start: no daemon"
		}
	}
	got = tunnelTargets(o, samples)
	if !strings.Contains(got, "not measured (ovsxdp-vxlan or ovs-vxlan-maxsleep failed) | – |") {
		t.Errorf("targets without ovsxdp runs:\n%s", got)
	}
}

func TestTunnelMarkdown(t *testing.T) {
	o := options{suite: "tunnel", rounds: 2, duration: 4 * time.Second, only: tunnelConfigs}
	one := map[string][2]float64{"ovsxdp-vxlan": {1, 1}, "ovs-vxlan": {1, 1}, "ovs-vxlan-maxsleep": {1, 1}, "kernel-vxlan": {1, 1}}
	samples := tunnelSamples(one, one, one)
	samples[0].counters = "host A: rx 3 = tx 2 + dropped 1 + decapsulated 0; drops by reason: br-int port 1 rx no-rule=1"
	md := tunnelMarkdown([]string{"-suite", "tunnel"}, o, machine{cpu: "cpu", cores: 2}, "abc123", "no: Unknown device type", samples, time.Minute, "")
	for _, want := range []string{
		"go run ./bench/veth -suite tunnel\n",
		"Commit abc123.",
		"| ovsxdp-vxlan | 1.00 | 1 | 1 | 100.0 | 200.0 | 1.00 | 2.00 | 2/2 |",
		"| kernel-vxlan | 1.00× | 1.00× | 1.00× |",
		"## Targets",
		"cannot be measured against the kernel's on this machine",
		"- round 1, ovsxdp-vxlan: host A: rx 3 = tx 2 + dropped 1",
		"tunnel.csv",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestParseFlagsSuite(t *testing.T) {
	o, err := parseFlags([]string{"-suite", "tunnel"})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.only) != len(tunnelConfigs) || o.only[0].name != tunnelOurs || o.profile {
		t.Errorf("tunnel suite: configs %v, pprof %v", configNames(o.only), o.profile)
	}
	if o.pings != 200 {
		t.Errorf("tunnel suite: %d pings, want 200", o.pings)
	}
	if o, err = parseFlags(nil); err != nil || len(o.only) != len(configs) || o.pings != 1000 {
		t.Errorf("default suite: %v, %d configs, %d pings", err, len(o.only), o.pings)
	}
	if o, err = parseFlags([]string{"-pings", "50"}); err != nil || o.pings != 50 {
		t.Errorf("-pings 50: %v, %d pings", err, o.pings)
	}
	for _, args := range [][]string{{"-suite", "tunnel", "-configs", "ovsxdp"}, {"-configs", "kernel-vxlan"}, {"-suite", "gre"}, {"-pings", "9"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
	for _, c := range tunnelConfigs {
		if _, err := newTunnelForwarder(c.name); err != nil {
			t.Errorf("configuration %s: %v", c.name, err)
		}
	}
}

func TestAllocsTarget(t *testing.T) {
	const head = "| package | benchmark | ns/op | packets/s | allocs/op | other metrics |\n|---|---|---|---|---|---|\n"
	tests := []struct {
		name, in, want string
	}{
		{"none allocate", head + "| ./datapath/tunnel | Encap/vxlan4/64 | 10.2 | 9.8e+07 | 0 | 6301 MB/s |\n| ./datapath/tunnel | Decap/vxlan4/64 | 26.8 | 3.7e+07 | 0 | 2387 MB/s |\n",
			"| 0 allocs/op in all 2 benchmarks | yes |"},
		{"one allocates", head + "| ./datapath/tunnel | Encap/vxlan4/64 | 10.2 | - | 0 | |\n| ./datapath/tunnel | Decap/geneve4-opts-csum/1400 | 288.0 | - | 2 | |\n",
			"| 1 of 2 benchmarks allocate: Decap/geneve4-opts-csum/1400 2 | no |"},
		{"other benchmarks only", head + "| ./flow | Extract/tcp64 | 20 | - | 0 | |\n", "| not measured"},
		{"gobench failed", "not run: go run ./bench/gobench: exit status 1", "| not measured"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := allocsTarget(tc.in); !strings.Contains(got, tc.want) {
				t.Errorf("allocsTarget: %q, want it to contain %q", got, tc.want)
			}
		})
	}
}
