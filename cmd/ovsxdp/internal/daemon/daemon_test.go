package daemon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/control"
	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestDaemon returns a daemon keeping its state in a temp dir, closed
// when the test ends.
func newTestDaemon(t *testing.T, statePath string) *Daemon {
	t.Helper()
	d, err := New(Config{NoLocalPort: true, StatePath: statePath, Version: "test", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return d
}

// run sends one command and fails the test on error.
func run(t *testing.T, d *Daemon, verb string, args ...string) string {
	t.Helper()
	out, err := runFlags(d, verb, nil, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", verb, args, err)
	}
	return out
}

func runFlags(d *Daemon, verb string, flags map[string]string, args ...string) (string, error) {
	return d.Handle(context.Background(), &control.Request{Verb: verb, Args: args, Flags: flags})
}

func TestHandleErrors(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	run(t, d, "add-port", "br0", "p1")
	tests := []struct {
		name    string
		req     control.Request
		wantErr string
		wantIs  error
	}{
		{"unknown verb", control.Request{Verb: "frobnicate"}, `unknown command "frobnicate"`, ErrUnknownVerb},
		{"too few args", control.Request{Verb: "add-flow", Args: []string{"br0"}}, "add-flow: wrong arguments: 1 given, want at least 2", ErrUsage},
		{"too many args", control.Request{Verb: "list-br", Args: []string{"x"}}, "1 given, want at most 0", ErrUsage},
		{"unknown flag", control.Request{Verb: "dump-flows", Args: []string{"br0"}, Flags: map[string]string{"strict": "true"}}, "unknown flag --strict", ErrUsage},
		{"input not taken", control.Request{Verb: "add-flow", Args: []string{"br0", "actions=drop"}, Input: []string{"x"}}, "takes no input file", ErrUsage},
		{"no bridge", control.Request{Verb: "dump-flows", Args: []string{"br9"}}, "bridge br9: no such bridge", ErrNoBridge},
		{"bridge exists", control.Request{Verb: "add-br", Args: []string{"br0"}}, "bridge br0: bridge exists", ErrBridgeExists},
		{"bad bridge name", control.Request{Verb: "add-br", Args: []string{"br 0"}}, `invalid bridge name "br 0"`, nil},
		{"bad policy", control.Request{Verb: "add-br", Args: []string{"br1"}, Flags: map[string]string{"policy": "fast"}}, `unknown output policy "fast"`, nil},
		{"bad pmds", control.Request{Verb: "add-br", Args: []string{"br1"}, Flags: map[string]string{"pmds": "0"}}, "--pmds 0: want a number from 1 to 64", nil},
		{"bad idle", control.Request{Verb: "add-br", Args: []string{"br1"}, Flags: map[string]string{"idle": "doze"}}, `unknown idle strategy "doze" (want adaptive, spin or sleep)`, nil},
		{"bad gro", control.Request{Verb: "add-br", Args: []string{"br1"}, Flags: map[string]string{"gro": "yes"}}, `add-br br1: --gro "yes": want on or off`, nil},
		{"bad spare-spin", control.Request{Verb: "add-br", Args: []string{"br1"}, Flags: map[string]string{"spare-spin": "long"}}, `add-br br1: --spare-spin "long": want a duration such as 20ms, or off`, nil},
		{"negative spare-spin", control.Request{Verb: "add-br", Args: []string{"br1"}, Flags: map[string]string{"spare-spin": "-1ms"}}, `add-br br1: --spare-spin "-1ms": want 0 (off) to 10s`, nil},
		{"spare-spin too long", control.Request{Verb: "add-br", Args: []string{"br1"}, Flags: map[string]string{"spare-spin": "1m"}}, `add-br br1: --spare-spin "1m": want 0 (off) to 10s`, nil},
		{"malformed flow", control.Request{Verb: "add-flow", Args: []string{"br0", "ip,nw_src=1.2.3,actions=drop"}}, `"nw_src=1.2.3": invalid IP address`, nil},
		{"unknown port in flow", control.Request{Verb: "add-flow", Args: []string{"br0", "in_port=eth9,actions=drop"}}, `unknown port "eth9"`, nil},
		{"flow without actions", control.Request{Verb: "add-flow", Args: []string{"br0", "ip"}}, "must specify actions", nil},
		{"del-flows with actions", control.Request{Verb: "del-flows", Args: []string{"br0", "ip,actions=drop"}, Flags: map[string]string{"strict": "true"}}, "del-flows takes no actions", nil},
		{"unknown port to delete", control.Request{Verb: "del-port", Args: []string{"br0", "p9"}}, "bridge br0: no port named p9", nil},
		{"unknown port to dump", control.Request{Verb: "dump-ports", Args: []string{"br0", "p9"}}, `bridge br0: no port "p9"`, nil},
		{"port on two bridges", control.Request{Verb: "add-port", Args: []string{"br0", "p1"}}, "port p1: already on bridge br0", nil},
		{"bad port option value", control.Request{Verb: "add-port", Args: []string{"br0", "p2", "rxq=lots"}}, "port p2: port type mem: option rxq=lots: want a whole number from 1 to", nil},
		{"unknown port option", control.Request{Verb: "add-port", Args: []string{"br0", "p2", "colour=red"}}, "unknown option colour (options: rxq, txq, ring, record-rxq)", nil},
		{"unknown port type", control.Request{Verb: "add-port", Args: []string{"br0", "p2", "type=tap"}}, `unknown port type "tap"`, nil},
		{"afxdp without a device", control.Request{Verb: "add-port", Args: []string{"br0", "nosuchdev0", "type=afxdp", "xdp-mode=native"}}, "port nosuchdev0: xsk port nosuchdev0: Link not found", nil},
		{"afxdp bad ring", control.Request{Verb: "add-port", Args: []string{"br0", "p2", "type=afxdp", "ring=lots"}}, "option ring=lots", nil},
		{"afxdp bad mode", control.Request{Verb: "add-port", Args: []string{"br0", "p2", "type=afxdp", "xdp-mode=turbo"}}, "option xdp-mode=turbo: want one of best-effort, native, generic", nil},
		{"pcap without files", control.Request{Verb: "add-port", Args: []string{"br0", "p2", "type=pcap"}}, "needs read=FILE, write=FILE or both", nil},
		{"pcap missing file", control.Request{Verb: "add-port", Args: []string{"br0", "p2", "type=pcap", "read=/nonexistent.pcap"}}, "/nonexistent.pcap", nil},
		{"bad ofport", control.Request{Verb: "add-port", Args: []string{"br0", "p2", "ofport=0"}}, "ofport=0: want a number from 1 to", nil},
		{"taken ofport", control.Request{Verb: "add-port", Args: []string{"br0", "p2", "ofport=1"}}, "ofport 1 is taken on bridge br0", nil},
		{"not key=value", control.Request{Verb: "add-port", Args: []string{"br0", "p2", "rxq"}}, `"rxq" is not KEY=VALUE`, nil},
		{"bad microflow", control.Request{Verb: "ofproto/trace", Args: []string{"br0", "tcp,tp_dst=80/0xff"}}, "prefix/mask not allowed", nil},
		{"microflow without its bridge", control.Request{Verb: "ofproto/trace", Args: []string{"tcp"}}, "a microflow needs its bridge", nil},
		{"masked datapath flow", control.Request{Verb: "ofproto/trace", Args: []string{"br0", "in_port(1),eth_type(0x0800),ipv4(src=10.0.0.1/255.0.0.0)"}}, "without a mask", flow.ErrODPFlow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Handle(context.Background(), &tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
		})
	}
	// Nothing that failed changed the configuration.
	if got := run(t, d, "list-ports", "br0"); got != "p1\n" {
		t.Errorf("ports after the errors: %q", got)
	}
	if got := run(t, d, "dump-flows", "br0"); got != "" {
		t.Errorf("flows after the errors: %q", got)
	}
}

// TestErrorsClipInput checks that an error echoes at most a short prefix of
// a long bad argument, whatever the command.
func TestErrorsClipInput(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	long := strings.Repeat("x", 1<<20)
	for _, req := range []control.Request{
		{Verb: long},
		{Verb: "dump-flows", Args: []string{"br0"}, Flags: map[string]string{long: "true"}},
		{Verb: "add-br", Args: []string{long}},
		{Verb: "add-br", Args: []string{"br1"}, Flags: map[string]string{"gro": long}},
		{Verb: "add-br", Args: []string{"br1"}, Flags: map[string]string{"spare-spin": long}},
		{Verb: "add-port", Args: []string{"br0", "p1", long}},
		{Verb: "add-port", Args: []string{"br0", "p1", "type=" + long}},
		{Verb: "add-port", Args: []string{"br0", "p1", long + "=1"}},
	} {
		_, err := d.Handle(context.Background(), &req)
		if err == nil {
			t.Fatalf("%.20s...: no error", req.Verb)
		}
		if n := len(err.Error()); n > 512 || !strings.Contains(err.Error(), "... (") {
			t.Errorf("%.20s %.20q: a %d-byte error, want the argument clipped: %.200s", req.Verb, req.Args, n, err)
		}
	}
}

func TestFlowCommands(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	run(t, d, "add-port", "br0", "p1")
	run(t, d, "add-port", "br0", "p2", "ofport=7")
	run(t, d, "add-flow", "br0", "priority=100,ip,in_port=p1,actions=output:p2")
	run(t, d, "add-flow", "br0", "priority=100,ip,in_port=7,actions=output:1")
	if got, want := run(t, d, "dump-flows", "br0", "in_port=1"), "priority=100,ip,in_port=1 actions=output:7"; !strings.HasSuffix(strings.TrimSpace(got), want) || strings.Count(got, "\n") != 1 {
		t.Errorf("dump-flows with a selection: %q, want one line ending %q", got, want)
	}
	if _, err := runFlags(d, "mod-flows", map[string]string{"strict": "true"}, "br0", "priority=100,ip,in_port=1,actions=drop"); err != nil {
		t.Fatal(err)
	}
	out, _ := runFlags(d, "dump-flows", map[string]string{"no-stats": "true"}, "br0")
	want := " priority=100,ip,in_port=1 actions=drop\n priority=100,ip,in_port=7 actions=output:1\n"
	if out != want {
		t.Errorf("after mod-flows --strict:\n%s\nwant\n%s", out, want)
	}
	// A strict delete names the priority; a non-strict one ignores it.
	if _, err := runFlags(d, "del-flows", map[string]string{"strict": "true"}, "br0", "priority=99,ip,in_port=7"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(run(t, d, "dump-flows", "br0"), "\n"); n != 2 {
		t.Errorf("strict delete with another priority removed a flow: %d left", n)
	}
	if _, err := runFlags(d, "del-flows", map[string]string{"strict": "true"}, "br0", "priority=100,ip,in_port=7"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(run(t, d, "dump-flows", "br0"), "\n"); n != 1 {
		t.Errorf("after a strict delete: %d flows, want 1", n)
	}
	run(t, d, "del-flows", "br0")
	if got := run(t, d, "dump-flows", "br0"); got != "" {
		t.Errorf("after del-flows: %q", got)
	}

	// add-flows: comments and blank lines skipped; one bad line adds
	// nothing and is named.
	_, err := d.Handle(context.Background(), &control.Request{Verb: "add-flows", Args: []string{"br0"}, Input: []string{
		"# a comment", "", "priority=5,actions=drop", "   ", "priority=6,ip,actions=frobnicate",
	}})
	if err == nil || !strings.HasPrefix(err.Error(), "line 5: ") || !strings.Contains(err.Error(), "frobnicate") {
		t.Errorf("add-flows with a bad line 5: %v", err)
	}
	if got := run(t, d, "dump-flows", "br0"); got != "" {
		t.Errorf("a failed add-flows added flows: %q", got)
	}
	_, err = d.Handle(context.Background(), &control.Request{Verb: "add-flows", Args: []string{"br0"}, Input: []string{
		"# flows", "priority=5,actions=drop", "", "priority=6,ip actions=output:1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	out, _ = runFlags(d, "dump-flows", map[string]string{"no-stats": "true"}, "br0")
	if want := " priority=6,ip actions=output:1\n priority=5 actions=drop\n"; out != want {
		t.Errorf("after add-flows:\n%s\nwant\n%s", out, want)
	}
}

func TestStateRestore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lib", "state.json")
	pcapOut := filepath.Join(t.TempDir(), "out.pcap")
	d, err := New(Config{NoLocalPort: true, StatePath: path, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	run(t, d, "add-br", "br0")
	if _, err := runFlags(d, "add-br", map[string]string{"policy": "legacy", "pmds": "2", "idle": "sleep", "gro": "off", "spare-spin": "5ms"}, "br1"); err != nil {
		t.Fatal(err)
	}
	if _, err := runFlags(d, "add-br", map[string]string{"spare-spin": "0"}, "br2"); err != nil {
		t.Fatal(err)
	}
	run(t, d, "add-port", "br0", "p1", "rxq=2", "record-rxq=true")
	run(t, d, "add-port", "br0", "p2", "ofport=9")
	run(t, d, "add-port", "br1", "cap", "type=pcap", "write="+pcapOut)
	flows := []string{
		"priority=100,tcp,in_port=1,tp_dst=80,actions=mod_nw_src:10.9.9.9,output:9",
		"cookie=0x5,idle_timeout=60,hard_timeout=120,priority=10,actions=drop",
		"priority=10,ip,actions=normal",
		"ipv6,ipv6_src=2001:db8::/32,actions=flood",
		"priority=7,arp,send_flow_rem,check_overlap,no_byte_counts,actions=drop",
	}
	for _, f := range flows {
		run(t, d, "add-flow", "br0", f)
	}
	run(t, d, "del-port", "br0", "p2")
	run(t, d, "add-port", "br0", "p3", "txq=4")
	wantShow := run(t, d, "show")
	wantFlows, _ := runFlags(d, "dump-flows", map[string]string{"no-stats": "true"}, "br0")
	of13 := map[string]string{"no-stats": "true", "protocols": "OpenFlow13"}
	wantFlows13, _ := runFlags(d, "dump-flows", of13, "br0")
	if !strings.Contains(wantFlows13, " send_flow_rem check_overlap reset_counts no_byte_counts priority=7,arp actions=drop") {
		t.Errorf("the flags are not in the OpenFlow 1.3 dump:\n%s", wantFlows13)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}

	d2 := newTestDaemon(t, path)
	if got := run(t, d2, "show"); got != wantShow {
		t.Errorf("restored show:\n%s\nwant\n%s", got, wantShow)
	}
	if got, _ := runFlags(d2, "dump-flows", map[string]string{"no-stats": "true"}, "br0"); got != wantFlows {
		t.Errorf("restored flows:\n%s\nwant\n%s", got, wantFlows)
	}
	if got, _ := runFlags(d2, "dump-flows", of13, "br0"); got != wantFlows13 {
		t.Errorf("restored flows, with their flags:\n%s\nwant\n%s", got, wantFlows13)
	}
	if !strings.Contains(wantShow, "policy: legacy") || !strings.Contains(wantShow, "pmds: 2") || !strings.Contains(wantShow, "idle: sleep") || !strings.Contains(wantShow, "gro: off") || strings.Contains(wantShow, "p2") ||
		!strings.Contains(wantShow, "spare-spin: 20ms") || !strings.Contains(wantShow, "spare-spin: 5ms") || !strings.Contains(wantShow, "spare-spin: off") {
		t.Errorf("show does not reflect the configuration:\n%s", wantShow)
	}
}

func TestStateCorrupt(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr string
	}{
		{"syntax", "{\n  \"version\": 1,\n  \"bridges\": [}\n", "is corrupt: line 3, column 15: invalid character '}'"},
		{"truncated", `{"version": 1, "bridges": [`, "is corrupt: the JSON ends early"},
		{"wrong type", `{"version": "one"}`, "is corrupt: line 1, column"},
		{"unknown field", `{"version": 1, "colour": "red"}`, `unknown field "colour"`},
		{"trailing data", `{"version": 1} {}`, "data after the state object"},
		{"version", `{"version": 7}`, "version 7, this daemon reads version 1"},
		{"bad policy", `{"version": 1, "bridges": [{"name": "br0", "policy": "fast", "pmds": 1}]}`, `bridge br0: unknown output policy "fast"`},
		{"bad idle", `{"version": 1, "bridges": [{"name": "br0", "policy": "guarded", "pmds": 1, "idle": "doze"}]}`, `bridge br0: unknown idle strategy "doze"`},
		{"bad gro", `{"version": 1, "bridges": [{"name": "br0", "policy": "guarded", "pmds": 1, "gro": "maybe"}]}`, `bridge br0: gro "maybe": want on or off`},
		{"bad spare-spin", `{"version": 1, "bridges": [{"name": "br0", "policy": "guarded", "pmds": 1, "spare_spin": "forever"}]}`, `bridge br0: spare_spin "forever": want a duration`},
		{"bad port", `{"version": 1, "bridges": [{"name": "br0", "policy": "guarded", "pmds": 1, "ports": [{"name": "p1", "type": "tap"}]}]}`, `port p1: unknown port type "tap"`},
		{"bad flow", `{"version": 1, "bridges": [{"name": "br0", "policy": "guarded", "pmds": 1, "flows": ["actions=drop", "ip,actions=bogus"]}]}`, "bridge br0: flow 2: "},
		{"duplicate bridge", `{"version": 1, "bridges": [{"name": "br0", "policy": "guarded", "pmds": 1}, {"name": "br0", "policy": "guarded", "pmds": 1}]}`, "bridge br0: bridge exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			d, err := New(Config{NoLocalPort: true, StatePath: path, Logger: quietLogger()})
			if err == nil {
				d.Close()
				t.Fatal("New succeeded on a bad state file")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want the file name and %q", err, tt.wantErr)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tt.content {
				t.Errorf("the state file was changed")
			}
		})
	}
}

func TestExpire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	d := newTestDaemon(t, path)
	run(t, d, "add-br", "br0")
	run(t, d, "add-flow", "br0", "hard_timeout=5,priority=1,actions=drop")
	run(t, d, "add-flow", "br0", "priority=2,actions=drop")
	d.expire(time.Now().Add(10 * time.Second))
	out, _ := runFlags(d, "dump-flows", map[string]string{"no-stats": "true"}, "br0")
	if out != " priority=2 actions=drop\n" {
		t.Errorf("after expiry: %q", out)
	}
	st, err := loadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if f := st.Bridges[0].Flows; len(f) != 1 {
		t.Errorf("saved flows after expiry: %q", f)
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"127.0.0.1:9476", true},
		{"127.1.2.3:1", true},
		{"[::1]:9476", true},
		{"localhost:9476", true},
		{"0.0.0.0:9476", false},
		{"[::]:9476", false},
		{":9476", false},
		{"10.0.0.1:9476", false},
		{"example.com:80", false},
		{"127.0.0.1", false},
		{"127.0.0.1:http", false},
		{"127.0.0.1:70000", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			err := CheckLoopback("--metrics", tt.in)
			if (err == nil) != tt.ok {
				t.Errorf("CheckLoopback(%q) = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

// TestDeviceDropReports checks that frames a port's device dropped before
// the datapath saw them are named in drop-reasons and the metrics.
func TestDeviceDropReports(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	run(t, d, "add-port", "br0", "p1")
	p1, _ := d.bridges["br0"].dp.Port("p1")
	p1.VPort().Device().Close() // down: the port drops what arrives
	frame := flow.BuildFrame(&flow.Key{DlType: flow.EthTypeIPv4, NwTTL: 64, NwProto: flow.IPProtoUDP})
	p1.VPort().(*vport.MemPort).Inject(0, [][]byte{frame, frame, frame})
	if got, want := run(t, d, "drop-reasons", "br0"), "bridge br0:\n  port p1 (ofport 1):\n    device down-or-oversize: 3\n"; got != want {
		t.Errorf("drop-reasons:\n%q\nwant\n%q", got, want)
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	d.writeMetrics(w)
	w.Flush()
	for _, want := range []string{
		`ovsxdp_port_device_rx_drops_total{bridge="br0",port="p1",reason="down-or-oversize"} 3`,
		`ovsxdp_port_device_rx_drops_total{bridge="br0",port="p1",reason="rx-ring-full"} 0`,
	} {
		if !strings.Contains(buf.String(), want+"\n") {
			t.Errorf("metrics lack %s:\n%s", want, buf.String())
		}
	}
}

// TestLockupReports drives a real soft lockup (the legacy policy sending a
// packet with a recorded rx queue to a device without tx queues) and checks
// what watchdog/show, drop-reasons, dump-ports and the metrics say.
func TestLockupReports(t *testing.T) {
	d := newTestDaemon(t, "")
	if _, err := runFlags(d, "add-br", map[string]string{"policy": "legacy"}, "br0"); err != nil {
		t.Fatal(err)
	}
	run(t, d, "add-port", "br0", "p1", "record-rxq=true")
	run(t, d, "add-port", "br0", "p2")
	run(t, d, "add-flow", "br0", "in_port=1,actions=output:2")
	b := d.bridges["br0"]
	p1, _ := b.dp.Port("p1")
	p2, _ := b.dp.Port("p2")
	if err := p2.VPort().Device().SetTxQueues(0); err != nil {
		t.Fatal(err)
	}
	frame := flow.BuildFrame(&flow.Key{DlType: flow.EthTypeIPv4, NwTTL: 64, NwProto: flow.IPProtoUDP})
	if p1.VPort().(*vport.MemPort).Inject(0, [][]byte{frame}) != 1 {
		t.Fatal("inject failed")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b.dp.SpinningLockups() > 0 && p1.Stats().Drops[datapath.DropLockup] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no lockup detected after 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wd := run(t, d, "watchdog/show")
	// A busy machine may add lockups that are not spinning (a
	// descheduled poll thread); exactly one is spinning.
	if !regexp.MustCompile(`^bridge br0: policy legacy, soft lockups detected: \d+, spinning in output: 1\n`).MatchString(wd) ||
		!regexp.MustCompile(`\n  \S+ BUG: soft lockup - pmd#0 stuck for \S+! policy=legacy port=p2 txqueues=0 hash=0\n`).MatchString(wd) {
		t.Errorf("watchdog/show:\n%s", wd)
	}
	drops := run(t, d, "drop-reasons", "br0")
	want := "bridge br0:\n  port p1 (ofport 1):\n    rx lockup:          1\n  port p2 (ofport 2):\n    tx lockup:          1\n"
	if drops != want {
		t.Errorf("drop-reasons:\n%q\nwant\n%q", drops, want)
	}
	if ports := run(t, d, "dump-ports", "br0", "p1"); !strings.Contains(ports, "rx dropped by reason: lockup=1\n") {
		t.Errorf("dump-ports:\n%s", ports)
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	d.writeMetrics(w)
	w.Flush()
	for _, m := range []string{
		`ovsxdp_lockups_spinning_total{bridge="br0"} 1` + "\n",
		`ovsxdp_port_drops_total{bridge="br0",port="p1",reason="lockup"} 1` + "\n",
		`ovsxdp_port_tx_drops_total{bridge="br0",port="p2",reason="lockup"} 1` + "\n",
	} {
		if !strings.Contains(buf.String(), m) {
			t.Errorf("metrics lack %q", m)
		}
	}
}

// TestAddFlowActionLimit checks that add-flow keeps a flow with 100
// outputs whole, as ovs-ofctl does, refuses one over flow.MaxActions with
// an error naming the limit, and that trace names the reason of a drop.
func TestAddFlowActionLimit(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	outputs := func(n int) string {
		acts := make([]string, n)
		for i := range acts {
			acts[i] = "output:" + strconv.Itoa(i+2)
		}
		return "in_port=1,actions=" + strings.Join(acts, ",")
	}
	run(t, d, "add-flow", "br0", outputs(100))
	if dump := run(t, d, "dump-flows", "br0"); strings.Count(dump, "output:") != 100 {
		t.Errorf("dump-flows shows %d outputs, want 100:\n%s", strings.Count(dump, "output:"), dump)
	}
	_, err := runFlags(d, "add-flow", nil, "br0", outputs(flow.MaxActions+1))
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(flow.MaxActions)) || len(err.Error()) > 300 {
		t.Errorf("add-flow with %d actions: err = %v, want the limit %d named", flow.MaxActions+1, err, flow.MaxActions)
	}
	if tr := run(t, d, "ofproto/trace", "br0", "in_port=3,ip"); !strings.Contains(tr, "\nDatapath actions: drop\nDrop reason: no-rule\n") {
		t.Errorf("trace of an unmatched packet:\n%s", tr)
	}
	// The same packet as a datapath flow, the only datapath left out.
	if tr := run(t, d, "ofproto/trace", "in_port(3),eth_type(0x0800),ipv4(frag=no)"); !strings.HasPrefix(tr, "Flow: ip,in_port=3,") ||
		!strings.Contains(tr, "\nDatapath actions: drop\nDrop reason: no-rule\n") {
		t.Errorf("trace of an unmatched datapath flow:\n%s", tr)
	}
}

// TestRemovedPortsRow checks that dump-ports and the metrics keep a
// row for the removed ports, so that the bridge's totals still add up.
func TestRemovedPortsRow(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	run(t, d, "add-port", "br0", "p1")
	run(t, d, "add-port", "br0", "p2")
	run(t, d, "add-flow", "br0", "in_port=1,actions=output:2")
	b := d.bridges["br0"]
	p1, _ := b.dp.Port("p1")
	p2, _ := b.dp.Port("p2")
	frame := flow.BuildFrame(&flow.Key{DlType: flow.EthTypeIPv4, NwTTL: 64, NwProto: flow.IPProtoUDP})
	if p1.VPort().(*vport.MemPort).Inject(0, [][]byte{frame, frame, frame}) != 3 {
		t.Fatal("inject failed")
	}
	deadline := time.Now().Add(20 * time.Second)
	for p2.Stats().TxPackets < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("p2 sent %d of 3 after 20s", p2.Stats().TxPackets)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out := run(t, d, "dump-ports", "br0"); strings.Contains(out, datapath.RemovedPortsName) {
		t.Errorf("removed row before any removal:\n%s", out)
	}
	run(t, d, "del-port", "br0", "p2")
	out := run(t, d, "dump-ports", "br0")
	if !strings.Contains(out, "  port (removed): rx pkts=0, bytes=0, drop=0, errs=0, frame=0, over=0, crc=0\n           tx pkts=3, bytes=") {
		t.Errorf("dump-ports lacks the removed row:\n%s", out)
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	d.writeMetrics(w)
	w.Flush()
	for _, m := range []string{
		`ovsxdp_port_tx_packets_total{bridge="br0",port="(removed)"} 3` + "\n",
		`ovsxdp_port_rx_packets_total{bridge="br0",port="p1"} 3` + "\n",
	} {
		if !strings.Contains(buf.String(), m) {
			t.Errorf("metrics lack %q", m)
		}
	}
}

// TestExpireLearned checks that a flow a packet learned (ofproto/trace
// --generate) expires with its idle timeout, and that the expiry has
// published a new table generation before it returns, so no megaflow built
// on the learned flow is used again unrevalidated.
func TestExpireLearned(t *testing.T) {
	d := newTestDaemon(t, filepath.Join(t.TempDir(), "state.json"))
	run(t, d, "add-br", "br0")
	run(t, d, "add-flow", "br0", "priority=10,actions=learn(table=10,idle_timeout=5,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0x1->NXM_NX_REG0[]),resubmit(,10)")
	run(t, d, "add-flow", "br0", "table=10,priority=0,actions=drop")
	if _, err := runFlags(d, "ofproto/trace", map[string]string{"generate": "true"}, "br0", "in_port=1,dl_src=00:00:00:00:00:01"); err != nil {
		t.Fatal(err)
	}
	learned := " table=10, idle_timeout=5, dl_dst=00:00:00:00:00:01 actions=load:0x1->NXM_NX_REG0[]\n"
	out, _ := runFlags(d, "dump-flows", map[string]string{"no-stats": "true"}, "br0")
	if !strings.Contains(out, learned) {
		t.Fatalf("dump-flows after learning:\n%s\nwant the line %q", out, learned)
	}
	// A trace learns nothing.
	run(t, d, "ofproto/trace", "br0", "in_port=1,dl_src=00:00:00:00:00:02")
	if out, _ := runFlags(d, "dump-flows", map[string]string{"no-stats": "true"}, "br0"); strings.Contains(out, "00:00:00:00:00:02") {
		t.Fatalf("a trace without --generate learned:\n%s", out)
	}
	d.mu.Lock()
	tbl := d.bridges["br0"].dp.Table()
	d.mu.Unlock()
	gen := tbl.Generation()
	d.expire(time.Now().Add(10 * time.Second))
	if tbl.Generation() == gen {
		t.Errorf("expiry returned before publishing a new table generation")
	}
	out, _ = runFlags(d, "dump-flows", map[string]string{"no-stats": "true"}, "br0")
	if strings.Contains(out, "dl_dst=00:00:00:00:00:01") {
		t.Errorf("the learned flow did not expire:\n%s", out)
	}
}

// TestDumpFlowsProtocols checks that dump-flows --protocols spells the
// flows as `ovs-ofctl -O V dump-flows` prints them from Open vSwitch 3.1
// after `ovs-ofctl add-flow` of the same flows (OpenFlow 1.0, whose adds
// reset counters: 1.3's dumps say reset_counts), and refuses a version
// it cannot spell.
func TestDumpFlowsProtocols(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	run(t, d, "add-flow", "br0", "priority=100,in_port=1,vlan_tci=0,actions=set_field:0x1005->vlan_tci,mod_vlan_pcp:3,set_field:0x7->reg1,resubmit(,5)")
	run(t, d, "add-flow", "br0", "table=5,priority=10,dl_vlan=5,actions=set_field:0x2005->vlan_tci,mod_vlan_vid:7,output:2")
	const of10 = " priority=100,in_port=1,vlan_tci=0x0000 actions=mod_vlan_vid:5,mod_vlan_pcp:0,mod_vlan_pcp:3,load:0x7->NXM_NX_REG1[],resubmit(,5)\n" +
		" table=5, priority=10,dl_vlan=5 actions=strip_vlan,mod_vlan_vid:7,output:2\n"
	const of13 = " reset_counts priority=100,in_port=1,vlan_tci=0x0000/0x1fff actions=set_field:0x1005->vlan_tci,set_field:3->vlan_pcp,set_field:0x7->reg1,resubmit(,5)\n" +
		" table=5, reset_counts priority=10,dl_vlan=5 actions=set_field:0x2005->vlan_tci,push_vlan:0x8100,set_field:4103->vlan_vid,output:2\n"
	for _, tt := range []struct{ protocols, want string }{
		{"", of10}, // no goto_table: OpenFlow 1.0
		{"OpenFlow10", of10},
		{"OpenFlow13", of13},
		{"OpenFlow12", of13},
		{"OpenFlow14", of13},
		{"OpenFlow10,OpenFlow13", of13},
	} {
		flags := map[string]string{"no-stats": "true"}
		if tt.protocols != "" {
			flags["protocols"] = tt.protocols
		}
		got, err := runFlags(d, "dump-flows", flags, "br0")
		if err != nil {
			t.Fatalf("--protocols=%s: %v", tt.protocols, err)
		}
		if got != tt.want {
			t.Errorf("--protocols=%s:\n%s\nwant\n%s", tt.protocols, got, tt.want)
		}
	}
	for _, bad := range []string{"OpenFlow11", "OpenFlow15", "OpenFlow99", ""} {
		_, err := runFlags(d, "dump-flows", map[string]string{"protocols": bad}, "br0")
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("--protocols=%q: %v, want %v", bad, err, ErrProtocol)
		}
	}
}

// TestAddFlowProtocols: add-flow and add-flows add as ovs-ofctl -O V
// does: an OpenFlow 1.0 or 1.1 add (the default) has reset_counts, a
// later one not, as an OpenFlow 1.3 dump shows; a version ovs-ofctl does
// not know is refused.
func TestAddFlowProtocols(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	for _, tt := range []struct {
		protocols string
		priority  int
		reset     bool
	}{
		{"", 1, true},
		{"OpenFlow11", 2, true},
		{"OpenFlow10,OpenFlow13", 3, false},
		{"OpenFlow15", 4, false},
	} {
		flags := map[string]string{}
		if tt.protocols != "" {
			flags["protocols"] = tt.protocols
		}
		f := fmt.Sprintf("priority=%d,actions=drop", tt.priority)
		if _, err := runFlags(d, "add-flow", flags, "br0", f); err != nil {
			t.Fatal(err)
		}
		req := &control.Request{Verb: "add-flows", Args: []string{"br0"}, Flags: flags, Input: []string{fmt.Sprintf("table=1,priority=%d,actions=drop", tt.priority)}}
		if _, err := d.Handle(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		dump, _ := runFlags(d, "dump-flows", map[string]string{"no-stats": "true", "protocols": "OpenFlow13"}, "br0")
		for _, table := range []string{"", "table=1, "} {
			line := fmt.Sprintf(" %sreset_counts priority=%d actions=drop\n", table, tt.priority)
			if strings.Contains(dump, line) != tt.reset {
				t.Errorf("--protocols=%q: reset_counts %v, want %v:\n%s", tt.protocols, !tt.reset, tt.reset, dump)
			}
		}
	}
	for _, bad := range []string{"OpenFlow16", "", "of13"} {
		if _, err := runFlags(d, "add-flow", map[string]string{"protocols": bad}, "br0", "actions=drop"); !errors.Is(err, ErrProtocol) {
			t.Errorf("--protocols=%q: %v, want %v", bad, err, ErrProtocol)
		}
	}
}
