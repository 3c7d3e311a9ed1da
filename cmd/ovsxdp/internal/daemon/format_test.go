package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{12 * time.Millisecond, "0.012s"},
		{1234567 * time.Microsecond, "1.234s"},
		{3 * time.Second, "3s"},
		{999 * time.Microsecond, "0s"},
		{-time.Second, "0s"},
		{90061 * time.Second, "90061s"},
	}
	for _, tt := range tests {
		if got := formatDuration(tt.in); got != tt.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// installed adds flows to a fresh table and returns its rules in dump
// order.
func installed(t *testing.T, flows ...string) (*flow.Table, []*flow.Rule) {
	t.Helper()
	tbl := flow.NewTable()
	for _, s := range flows {
		f, err := flow.ParseFlow(s, flow.CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		tbl.Add(f)
	}
	return tbl, tbl.Dump(nil)
}

func TestFormatRule(t *testing.T) {
	_, rules := installed(t,
		"priority=100,ip,in_port=1,actions=output:2",
		"cookie=0x5,idle_timeout=60,hard_timeout=120,priority=10,actions=drop",
		"actions=normal",
	)
	at := func(r *flow.Rule, d time.Duration) time.Time { return r.Installed.Add(d) }
	tests := []struct {
		name  string
		r     *flow.Rule
		now   time.Time
		stats bool
		want  string
	}{
		{"stats", rules[1], at(rules[1], 1234*time.Millisecond), true,
			" cookie=0x0, duration=1.234s, table=0, n_packets=0, n_bytes=0, idle_age=1, priority=100,ip,in_port=1 actions=output:2"},
		{"no stats", rules[1], at(rules[1], time.Second), false, " priority=100,ip,in_port=1 actions=output:2"},
		{"default priority catch-all", rules[0], at(rules[0], 0), false, " actions=NORMAL"},
		{"catch-all with stats", rules[0], at(rules[0], 2*time.Second), true,
			" cookie=0x0, duration=2s, table=0, n_packets=0, n_bytes=0, idle_age=2, actions=NORMAL"},
		{"cookie and timeouts", rules[2], at(rules[2], 22747*time.Millisecond), true,
			" cookie=0x5, duration=22.747s, table=0, n_packets=0, n_bytes=0, idle_timeout=60, hard_timeout=120, idle_age=22, priority=10 actions=drop"},
		{"cookie and timeouts without stats", rules[2], at(rules[2], 0), false,
			" cookie=0x5, idle_timeout=60, hard_timeout=120, priority=10 actions=drop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatRule(tt.r, tt.now, tt.stats); got != tt.want {
				t.Errorf("\n got %q\nwant %q", got, tt.want)
			}
		})
	}

	// Counters, idle_age from the last use, hard_age after a mod-flows
	// (5ms after the add: 9s at a duration of 10s).
	tbl, rules := installed(t, "priority=7,actions=drop")
	r := rules[0]
	r.AddStats(3, 180, r.Installed.Add(4*time.Second).UnixNano())
	time.Sleep(5 * time.Millisecond)
	mod, _ := flow.ParseFlow("priority=7,actions=output:3", flow.CmdModify)
	tbl.Modify(mod, true)
	r = tbl.Dump(nil)[0]
	got := formatRule(r, r.Installed.Add(10*time.Second), true)
	want := " cookie=0x0, duration=10s, table=0, n_packets=3, n_bytes=180, idle_age=6, hard_age=9, priority=7 actions=output:3"
	if got != want {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
}

func TestFormatPortStats(t *testing.T) {
	s := datapath.PortStats{Name: "p1", OFPort: 3, RxPackets: 10, RxBytes: 640, TxPackets: 4, TxBytes: 256}
	s.Drops[datapath.DropNoRule] = 3
	s.Drops[datapath.DropPortGone] = 1
	s.TxDrops[datapath.DropNoCarrier] = 2
	s.TxQueueOver = 1
	got := formatPortStats(s, vport.Stats{RxDropped: 5, TxDropped: 1})
	want := "  port  3: rx pkts=10, bytes=640, drop=5, errs=0, frame=0, over=0, crc=0\n" +
		"           tx pkts=4, bytes=256, drop=3, errs=0, coll=0\n" +
		"           rx dropped by reason: no-rule=3, port-gone=1\n" +
		"           tx dropped by reason: no-carrier=2\n" +
		"           tx on queue >= count: 1\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	s.OFPort = 12
	if got := formatPortStats(s, vport.Stats{}); !strings.HasPrefix(got, "  port 12: rx pkts=10") {
		t.Errorf("two-digit port: %q", got)
	}
	s.Held = 2
	if got := formatPortStats(s, vport.Stats{}); !strings.HasSuffix(got, "tx on queue >= count: 1\n           held for reassembly: 2\n") {
		t.Errorf("with fragments held: %q", got)
	}
}

func TestFormatPMDStats(t *testing.T) {
	base := datapath.PMDStats{ID: 1, CPU: -1, RxQueues: 2, Packets: 100, EMCHits: 60, MegaflowHit: 50, Upcalls: 10, Recircs: 20, Batches: 10, Busy: time.Microsecond, Idle: 3 * time.Microsecond, GSOPackets: 2, GSOSegments: 10, SpinsGivenUp: 4, Helped: 6,
		Naps: 10, NapTime: 100 * time.Microsecond, NapsHeld: 1, HeldFrames: 3}
	cur := datapath.PMDStats{ID: 1, CPU: -1, RxQueues: 2, Packets: 300, EMCHits: 200, MegaflowHit: 170, Upcalls: 28, Lost: 2, Recircs: 100, Batches: 20, Busy: 5 * time.Microsecond, Idle: 7 * time.Microsecond, GSOPackets: 5, GSOSegments: 25, GSOFailed: 1, SpinsGivenUp: 7, Helped: 16,
		Naps: 15, NapTime: 160 * time.Microsecond, NapsHeld: 3, HeldFrames: 10, NapsShort: 1}
	got := formatPMDStats(subPMD(cur, base))
	want := `pmd thread numa_id 0 core_id 1:
  packets received: 200
  packet recirculations: 80
  avg. datapath passes per packet: 1.40
  emc hits: 140
  megaflow hits: 120
  miss with success upcall: 18
  miss with failed upcall: 0
  malformed (not classified): 2
  avg. packets per rx batch: 20.00
  segments sent coalesced (tcp, udp): 15 (in 3 gso packets, 1 more refused)
  idle spins given up to other threads: 3
  tunnelled packets run by the sending bridge's thread: 10
  naps: 5 (60µs), not taken with frames waiting: 2 (7 frames), not taken for ring room: 1
  idle ns: 4000 (50.00%)
  processing ns: 4000 (50.00%)
  avg ns per packet: 40.00 (8000/200)
  avg processing ns per packet: 20.00 (4000/200)
  rx queues: 2
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if s := subPMD(base, cur); s.Packets != 0 || s.Busy != 0 {
		t.Errorf("a counter below its baseline: %+v", s)
	}
	// A thread pinned by other_config:pmd-cpu-mask shows its CPU, CPU 0
	// included.
	for _, cpu := range []int{0, 3} {
		cur.CPU = cpu
		if got, want := formatPMDStats(cur), fmt.Sprintf("pmd thread numa_id 0 core_id %d:\n", cpu); !strings.HasPrefix(got, want) {
			t.Errorf("pinned to CPU %d: %q, want it to start %q", cpu, got, want)
		}
	}
}

func TestOVSDBMap(t *testing.T) {
	got := ovsdbMap(map[string]string{"rxq": "2", "xdp-mode": "native", "write": "/tmp/a b.pcap", "flag": "true", "n_rxq": "x"})
	want := `{flag="true", n_rxq=x, rxq="2", write="/tmp/a b.pcap", xdp-mode=native}`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestMetrics checks the exposition format line by line and a few values.
func TestMetrics(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	run(t, d, "add-port", "br0", "p1")
	run(t, d, "add-flow", "br0", "actions=drop")
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	d.writeMetrics(w)
	w.Flush()
	sample := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [0-9.e+-]+$`)
	seen := map[string]bool{}
	typed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP "):
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 || (f[3] != "counter" && f[3] != "gauge") {
				t.Errorf("bad TYPE line %q", line)
			}
			if f[3] == "counter" && !strings.HasSuffix(f[2], "_total") {
				t.Errorf("counter %s does not end in _total", f[2])
			}
			typed[f[2]] = true
		default:
			if !sample.MatchString(line) {
				t.Errorf("bad sample line %q", line)
			}
			name, _, _ := strings.Cut(line, "{")
			name, _, _ = strings.Cut(name, " ")
			if !typed[name] {
				t.Errorf("sample of %s before its TYPE", name)
			}
			seen[line[:strings.LastIndexByte(line, ' ')]] = true
		}
	}
	for _, want := range []string{
		`ovsxdp_port_rx_packets_total{bridge="br0",port="p1"}`,
		`ovsxdp_port_tx_bytes_total{bridge="br0",port="p1"}`,
		`ovsxdp_port_drops_total{bridge="br0",port="p1",reason="no-rule"}`,
		`ovsxdp_port_drops_total{bridge="br0",port="p1",reason="not-running"}`,
		`ovsxdp_pmd_packets_total{bridge="br0",pmd="0"}`,
		`ovsxdp_lockups_total{bridge="br0"}`,
		`ovsxdp_flows{bridge="br0"}`,
	} {
		if !seen[want] {
			t.Errorf("missing %s", want)
		}
	}
	if !strings.Contains(buf.String(), "ovsxdp_flows{bridge=\"br0\"} 1\n") {
		t.Errorf("flow count not 1")
	}
	if got := escapeLabel("a\"b\\c\nd"); got != `a\"b\\c\nd` {
		t.Errorf("escapeLabel = %q", got)
	}
}

// TestFormatRuleTable checks the table column: always with statistics,
// and without them (--no-stats) only for a table other than 0, as
// ovs-ofctl dump-flows prints it.
func TestFormatRuleTable(t *testing.T) {
	_, rules := installed(t,
		"table=8,priority=5,reg15=0x1/0xfffc,actions=resubmit(,9)",
		"actions=resubmit(,8)",
	)
	now := rules[0].Installed
	for _, tt := range []struct {
		r     *flow.Rule
		stats bool
		want  string
	}{
		{rules[0], false, " actions=resubmit(,8)"},
		{rules[1], false, " table=8, priority=5,reg15=0/0xfffc actions=resubmit(,9)"},
		{rules[1], true, " cookie=0x0, duration=0s, table=8, n_packets=0, n_bytes=0, idle_age=0, priority=5,reg15=0/0xfffc actions=resubmit(,9)"},
	} {
		if got := formatRule(tt.r, now, tt.stats); got != tt.want {
			t.Errorf("formatRule(stats=%v) = %q, want %q", tt.stats, got, tt.want)
		}
	}
}

// TestFormatRxqUsage: pmd-rxq-show's layout, as Open vSwitch 3.1 prints it
// (test/TestPmdRxqShowMatchesOVS compares the two daemons): NOT AVAIL
// before an interval ends, then each queue's share of the thread's time
// rounded and the overhead truncated; a thread with no queue has no
// overhead line; -pmd and a bridge select, and what selects no thread
// prints nothing, not even the first line.
func TestFormatRxqUsage(t *testing.T) {
	s := time.Second
	us := []datapath.ThreadUsage{
		{Thread: 0, CPU: -1, Bridges: []string{"br0", "br1"}, Total: 10 * s, Busy: 5 * s, Rxqs: []datapath.RxqUsage{
			{Bridge: "br1", Port: "p-long-device-name", Queue: 0, Busy: 2*s + 60*time.Millisecond},
			{Bridge: "br0", Port: "pxa", Queue: 11, Busy: 2*s - time.Millisecond},
		}},
		{Thread: 1, CPU: 3, Bridges: []string{"br0"}, Total: 10 * s},
	}
	for _, c := range []struct {
		name, only string
		core       int
		want       string
	}{
		{"all", "", -1, `Displaying last 10 seconds pmd usage %
pmd thread numa_id 0 core_id 0:
  isolated : false
  port: p-long-device-name  queue-id:  0 (enabled)   pmd usage: 21 %
  port: pxa               queue-id: 11 (enabled)   pmd usage: 20 %
  overhead:  9 %
pmd thread numa_id 0 core_id 3:
  isolated : false
`},
		{"core 3", "", 3, `Displaying last 10 seconds pmd usage %
pmd thread numa_id 0 core_id 3:
  isolated : false
`},
		{"br1", "br1", -1, `Displaying last 10 seconds pmd usage %
pmd thread numa_id 0 core_id 0:
  isolated : false
  port: p-long-device-name  queue-id:  0 (enabled)   pmd usage: 21 %
  overhead:  9 %
`},
		{"no core 1", "", 1, ""},
		{"br1 on core 3", "br1", 3, ""},
	} {
		if got := formatRxqUsage(us, 2, c.only, c.core); got != c.want {
			t.Errorf("%s:\n%s\nwant\n%s", c.name, got, c.want)
		}
	}
	us[0].Total = 0
	us[0].Rxqs = us[0].Rxqs[1:]
	want := `Displaying last 60 seconds pmd usage %
pmd thread numa_id 0 core_id 0:
  isolated : false
  port: pxa               queue-id: 11 (enabled)   pmd usage: NOT AVAIL
  overhead: NOT AVAIL
`
	if got := formatRxqUsage(us[:1], 12, "", -1); got != want {
		t.Errorf("before an interval ends:\n%s\nwant\n%s", got, want)
	}
}

// TestPmdRxqShow: the daemon's pmd-rxq-show lists its bridges' queues on
// the pool's threads, NOT AVAIL until the pool has sampled an interval,
// counts -secs in intervals, and refuses a -secs or -pmd it cannot read.
func TestPmdRxqShow(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	run(t, d, "add-port", "br0", "p1", "type=mem", "ofport=1")
	got := run(t, d, "pmd-rxq-show")
	if !strings.HasPrefix(got, "Displaying last 60 seconds pmd usage %\npmd thread numa_id 0 core_id 0:\n  isolated : false\n") ||
		!strings.Contains(got, "\n  port: p1                queue-id:  0 (enabled)   pmd usage: NOT AVAIL\n") ||
		!strings.HasSuffix(got, "\n  overhead: NOT AVAIL\n") {
		t.Errorf("before an interval:\n%s", got)
	}
	// An hour ahead: the daemon's own samples, each second, come before
	// them and are too early to count after them.
	now := time.Now().Add(time.Hour)
	d.threads.SampleUsage(now)
	d.threads.SampleUsage(now.Add(datapath.UsageInterval))
	got, err := runFlags(d, "pmd-rxq-show", map[string]string{"secs": "6", "pmd": "0"}, "br0")
	if err != nil || !strings.HasPrefix(got, "Displaying last 10 seconds pmd usage %\n") ||
		!regexp.MustCompile(`\n  port: p1 +queue-id:  0 \(enabled\)   pmd usage: +\d+ %\n`).MatchString(got) {
		t.Errorf("-secs 6 -pmd 0 br0 after an interval: %v\n%s", err, got)
	}
	for _, flags := range []map[string]string{{"secs": "0"}, {"secs": "x"}, {"pmd": "-1"}} {
		if _, err := runFlags(d, "pmd-rxq-show", flags); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: %v, want a usage error", flags, err)
		}
	}
	if _, err := runFlags(d, "pmd-rxq-show", nil, "br9"); err == nil || err.Error() != "bridge br9: no such bridge" {
		t.Errorf("br9: %v, want bridge br9: no such bridge", err)
	}
}
