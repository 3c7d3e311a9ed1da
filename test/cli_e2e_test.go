package test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// cliFlows are the flows of the end-to-end test, in ovs-ofctl syntax with
// port numbers (so that ovs-ofctl parse-flow reads them too). The first
// ones are added with add-flow, the rest with add-flows.
var cliFlows = []string{
	"priority=100,ip,in_port=1,actions=output:2",
	"priority=200,tcp,in_port=1,tp_dst=80,actions=mod_nw_src:10.9.9.9,mod_tp_dst:8080,output:2",
	"cookie=0x5,idle_timeout=600,hard_timeout=1200,priority=10,actions=drop",
	"priority=300,in_port=3,udp,actions=output:4",
	"ipv6,ipv6_src=2001:db8::/32,actions=normal",
	"priority=50,dl_vlan=10,actions=strip_vlan,output:1",
	"priority=60,arp,arp_tpa=10.0.0.0/24,actions=flood",
	"priority=70,udp,nw_dst=10.0.0.0/255.255.255.0,tp_dst=53,actions=mod_dl_dst:00:11:22:33:44:55,output:2",
	"priority=80,icmp6,icmp_type=135,icmp_code=0,nd_target=fe80::1,actions=drop",
	"priority=90,tcp,tcp_flags=+syn-ack,actions=output:2",
	"priority=95,ip,in_port=2,nw_src=192.168.0.0/16,actions=dec_ttl,mod_vlan_vid:5,output:3",
}

const cliAddFlowCount = 4 // cliFlows[:4] by add-flow, the rest by add-flows

// ofctlDumpForm returns the line `ovs-ofctl dump-flows --no-stats` prints
// for flow s, derived from `ovs-ofctl parse-flow s`: parse-flow writes the
// flow_mod's cookie and timeouts as "cookie:X idle:N hard:N" between the
// match and the actions, dump-flows as "cookie=X, idle_timeout=N,
// hard_timeout=N, " before the match.
func ofctlDumpForm(t *testing.T, ofctl, s string) string {
	t.Helper()
	out, err := exec.Command(ofctl, "parse-flow", s).CombinedOutput()
	if err != nil {
		t.Fatalf("ovs-ofctl parse-flow %q: %v\n%s", s, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	_, rest, ok := strings.Cut(lines[len(lines)-1], ": ADD ")
	if !ok {
		t.Fatalf("ovs-ofctl parse-flow %q: unexpected output %q", s, out)
	}
	head, acts, _ := strings.Cut(rest, "actions=")
	var prefix, match string
	for _, tok := range strings.Fields(head) {
		switch k, v, _ := strings.Cut(tok, ":"); k {
		case "cookie":
			prefix += "cookie=" + v + ", "
		case "idle":
			prefix += "idle_timeout=" + v + ", "
		case "hard":
			prefix += "hard_timeout=" + v + ", "
		default:
			match = tok
		}
	}
	line := " " + prefix + match
	if match != "" {
		line += " "
	}
	return line + "actions=" + acts
}

func sortedLines(s string) []string {
	l := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(l)
	return l
}

func TestCLIEndToEnd(t *testing.T) {
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	bin := buildCLI(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "ovsxdp.sock")
	state := filepath.Join(dir, "lib", "state.json")
	metrics := freeLoopbackAddr(t)
	d := startCLIDaemon(t, bin, sock, state, "--metrics", metrics)

	const n = 50
	in, out := filepath.Join(dir, "in.pcap"), filepath.Join(dir, "out.pcap")
	var frames [][]byte
	for i := range n {
		frames = append(frames, udpFrame(t, i, 26))
	}
	writeCLIPcap(t, in, frames)

	d.run(t, "add-br", "br0", "--pmds", "2")
	d.run(t, "add-br", "br1", "--policy", "upstream")
	d.run(t, "add-port", "br0", "p1", "type=mem", "rxq=2")
	d.run(t, "add-port", "br0", "p2", "ofport=2", "record-rxq=true")
	d.run(t, "add-port", "br0", "cap", "type=pcap", "ofport=4", "write="+out)
	d.run(t, "add-port", "br1", "q1")
	for _, f := range cliFlows[:cliAddFlowCount] {
		d.run(t, "add-flow", "br0", f)
	}
	file := filepath.Join(dir, "flows.txt")
	text := "# the rest of the flows\n\n" + strings.Join(cliFlows[cliAddFlowCount:], "\n") + "\n"
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	d.run(t, "add-flows", "br0", file)
	// The replay port last, once its flow is in: the file is replayed at
	// once.
	d.run(t, "add-port", "br0", "replay", "type=pcap", "ofport=3", "read="+in)

	t.Run("dump-flows matches ovs-ofctl", func(t *testing.T) {
		var want []string
		for _, f := range cliFlows {
			want = append(want, ofctlDumpForm(t, ofctl, f))
		}
		slices.Sort(want)
		got := sortedLines(d.run(t, "dump-flows", "br0", "--no-stats"))
		if !slices.Equal(got, want) {
			t.Errorf("dump-flows --no-stats:\n%s\nwant (ovs-ofctl):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("traffic and counters", func(t *testing.T) {
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(d.run(t, "dump-ports", "br0", "replay"), "rx pkts="+strconv.Itoa(n)+",") {
			if time.Now().After(deadline) {
				t.Fatalf("the replay port did not receive %d frames:\n%s", n, d.run(t, "dump-ports", "br0", "replay"))
			}
			time.Sleep(20 * time.Millisecond)
		}
		flows := d.run(t, "dump-flows", "br0", "in_port=3")
		if !regexp.MustCompile(`^ cookie=0x0, duration=[0-9.]+s, table=0, n_packets=50, n_bytes=\d+, idle_age=\d+, priority=300,udp,in_port=3 actions=output:4\n$`).MatchString(flows) {
			t.Errorf("dump-flows in_port=3:\n%s", flows)
		}
		ports := d.run(t, "dump-ports", "br0", "4")
		if !strings.HasPrefix(ports, "  port  4: rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0\n           tx pkts=50, bytes=") {
			t.Errorf("dump-ports br0 4:\n%s", ports)
		}
		if !strings.Contains(ports, "rx dropped by reason: none\n") {
			t.Errorf("dump-ports: no drop line:\n%s", ports)
		}
		pmd := d.run(t, "pmd-stats-show", "br0")
		total := 0
		for _, m := range regexp.MustCompile(`packets received: (\d+)`).FindAllStringSubmatch(pmd, -1) {
			v, _ := strconv.Atoi(m[1])
			total += v
		}
		if total != n || strings.Count(pmd, "pmd thread numa_id 0 core_id") != 2 {
			t.Errorf("pmd-stats-show counts %d packets over its threads, want %d:\n%s", total, n, pmd)
		}
		d.run(t, "pmd-stats-clear", "br0")
		if pmd := d.run(t, "pmd-stats-show", "br0"); strings.Count(pmd, "packets received: 0\n") != 2 {
			t.Errorf("after pmd-stats-clear:\n%s", pmd)
		}
		mfs := d.run(t, "dpctl/dump-flows", "br0")
		var mfPackets int
		for _, m := range regexp.MustCompile(`(?m)^recirc_id\(0\),in_port\(3\),.*, packets:(\d+), bytes:\d+, used:[0-9.]+s, actions:4$`).FindAllStringSubmatch(mfs, -1) {
			v, _ := strconv.Atoi(m[1])
			mfPackets += v
		}
		if mfPackets != n {
			t.Errorf("dpctl/dump-flows counts %d packets to port 4, want %d:\n%s", mfPackets, n, mfs)
		}
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`ovsxdp_port_rx_packets_total{bridge="br0",port="replay"} 50` + "\n",
			`ovsxdp_port_tx_packets_total{bridge="br0",port="cap"} 50` + "\n",
			`ovsxdp_port_drops_total{bridge="br0",port="replay",reason="no-rule"} 0` + "\n",
			`ovsxdp_lockups_total{bridge="br1"} 0` + "\n",
		} {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("metrics lack %q", want)
			}
		}
		if resp, err := http.Get("http://" + metrics + "/debug/pprof/"); err != nil || resp.StatusCode != 404 {
			t.Errorf("pprof without --pprof: %v, want 404", err)
		} else {
			resp.Body.Close()
		}
		// Removing the capture port closes (and flushes) its file.
		d.run(t, "del-port", "br0", "cap")
		got := readCLIPcap(t, out)
		if len(got) != n {
			t.Fatalf("the capture holds %d frames, want %d", len(got), n)
		}
		for i := range got {
			if !bytes.Equal(got[i], frames[i]) {
				t.Fatalf("captured frame %d differs from the one replayed", i)
			}
		}
		d.run(t, "add-port", "br0", "cap", "type=pcap", "ofport=4", "write="+out, "overwrite=true")
	})

	t.Run("trace", func(t *testing.T) {
		tests := []struct {
			in          string
			wantRule    string // the " 0. ..." line
			wantFinal   []string
			wantActions string
		}{
			{"in_port=1,tcp,nw_src=10.1.1.1,tp_dst=80,nw_ttl=64", " 0. tcp,in_port=1,tp_dst=80, priority 200",
				[]string{"nw_src=10.9.9.9", "tp_dst=8080"}, "set(ipv4(src=10.9.9.9)),set(tcp(dst=8080)),2"},
			{"in_port=3,udp,udp_dst=53", " 0. udp,in_port=3, priority 300", nil, "4"},
			{"in_port=2,arp,arp_tpa=10.0.0.9", " 0. arp,arp_tpa=10.0.0.0/24, priority 60", nil, "1,3,4"},
			{"in_port=9,udp6,ipv6_src=2001:db8::1", " 0. ipv6,ipv6_src=2001:db8::/32, priority 32768", nil, "1,2,3,4"},
			{"in_port=2,udp,nw_src=192.168.1.1,nw_ttl=5", " 0. ip,in_port=2,nw_src=192.168.0.0/16, priority 95",
				[]string{"dl_vlan=5", "nw_ttl=4"}, "push_vlan(vid=5,pcp=0),set(ipv4(ttl=4)),3"},
			{"in_port=2,udp6", " 0. priority 10, cookie 0x5", nil, "drop"},
		}
		table := flow.NewTable()
		for _, s := range cliFlows {
			f, err := flow.ParseFlow(s, flow.CmdAdd)
			if err != nil {
				t.Fatal(err)
			}
			table.Add(f)
		}
		for _, tt := range tests {
			t.Run(tt.in, func(t *testing.T) {
				out := d.run(t, "ofproto/trace", "br0", tt.in)
				lines := strings.Split(out, "\n")
				if !strings.HasPrefix(lines[0], "Flow: ") || lines[2] != `bridge("br0")` || lines[3] != "-------------" {
					t.Fatalf("trace layout:\n%s", out)
				}
				if lines[4] != tt.wantRule {
					t.Errorf("rule line %q, want %q", lines[4], tt.wantRule)
				}
				final := lineWith(lines, "Final flow: ")
				if tt.wantFinal == nil && final != "unchanged" {
					t.Errorf("final flow %q, want unchanged", final)
				}
				for _, f := range tt.wantFinal {
					if !strings.Contains(","+final+",", ","+f+",") {
						t.Errorf("final flow %q lacks %s", final, f)
					}
				}
				if got := lineWith(lines, "Datapath actions: "); got != tt.wantActions {
					t.Errorf("datapath actions %q, want %q", got, tt.wantActions)
				}
				checkMegaflow(t, table, tt.in, lineWith(lines, "Megaflow: "))
			})
		}
		out := d.run(t, "ofproto/trace", "br1", "in_port=1,ip")
		if !strings.Contains(out, "\n 0. No match.\n    drop\n") || lineWith(strings.Split(out, "\n"), "Datapath actions: ") != "drop" {
			t.Errorf("trace without a matching rule:\n%s", out)
		}
	})

	before := map[string]string{}
	for _, args := range [][]string{{"show"}, {"list-br"}, {"list-ports", "br0"}, {"dump-flows", "br0", "--no-stats"}, {"dump-flows", "br1", "--no-stats"}} {
		before[strings.Join(args, " ")] = d.run(t, args...)
	}
	if !strings.Contains(before["show"], "Port replay\n            Interface replay\n                type: pcap\n                options: {read=\""+in+"\"}\n                ofport: 3\n") {
		t.Errorf("show:\n%s", before["show"])
	}

	t.Run("restart", func(t *testing.T) {
		// SIGKILL, and wait until the process is gone: until then it
		// still holds the control socket, and the new daemon would find
		// another listening there.
		d.crash(t)
		d2 := startCLIDaemon(t, bin, sock, state)
		for args, want := range before {
			if got := d2.run(t, strings.Fields(args)...); got != want {
				t.Errorf("after a restart, %s:\n%s\nwant\n%s", args, got, want)
			}
		}
	})
}

// lineWith returns the rest of the line that starts with prefix.
func lineWith(lines []string, prefix string) string {
	for _, l := range lines {
		if s, ok := strings.CutPrefix(l, prefix); ok {
			return s
		}
	}
	return "<no " + strings.TrimSpace(prefix) + " line>"
}

// checkMegaflow checks a trace's megaflow against the rule table: it
// matches the microflow, covers the winning rule's whole match, and every
// packet it matches gets the same rule (checked on random packets).
func checkMegaflow(t *testing.T, table *flow.Table, microflow, text string) {
	t.Helper()
	body, ok := strings.CutPrefix(text, "recirc_id=0,eth")
	if !ok {
		t.Fatalf("megaflow %q does not start with recirc_id=0,eth", text)
	}
	mf, err := flow.ParseMatch(strings.TrimPrefix(body, ","))
	if err != nil {
		t.Fatalf("megaflow %q: %v", text, err)
	}
	k, err := flow.ParseMicroflow(microflow)
	if err != nil {
		t.Fatal(err)
	}
	if !mf.Matches(&k) {
		t.Fatalf("megaflow %q does not match the microflow", text)
	}
	snap := table.Snapshot()
	want := snap.Lookup(&k, nil)
	if want != nil {
		wm := want.Match()
		rm, mm := wm.Mask.Words(), mf.Mask.Words()
		for i := range rm {
			if rm[i]&^mm[i] != 0 {
				t.Fatalf("megaflow %q does not cover the rule's match", text)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, uint64(len(microflow))))
	for range 500 {
		p := k
		pw, mw := p.Words(), mf.Mask.Words()
		for i := range pw {
			pw[i] = pw[i]&mw[i] | rng.Uint64()&^mw[i]
		}
		pw[len(pw)-1] &= 0x0000_0000_ffff_ffff // the key's padding stays zero
		if got := snap.Lookup(&p, nil); got != want {
			t.Fatalf("megaflow %q: a packet inside it gets another rule", text)
		}
	}
}
