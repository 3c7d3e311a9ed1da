package flow

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The differential tests run every line of testdata/ofctl/flows.txt
// through ovsxdp and compare with what `ovs-ofctl parse-flow` printed for
// it (golden.txt), or prints now (TestOfctlLive).
//
// Open vSwitch 3.1 accepts a field whose prerequisites are missing, drops
// it and logs "normalization changed ofp_match"; it also accepts some
// actions whose prerequisites are missing and then fails to decode its own
// message ("decode error"). ovsxdp rejects both, so either counts as Open
// vSwitch rejecting the flow, as does a non-zero exit status.

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/ofctl/golden.txt from the ovs-ofctl in PATH")

const (
	corpusPath = "testdata/ofctl/flows.txt"
	goldenPath = "testdata/ofctl/golden.txt"
)

// corpusPaths are every flow corpus: flows.txt, the tunnel corpus
// (parse_tun_test.go) and the connection
// tracking corpus (parse_ct_test.go), in the same format.
var corpusPaths = []string{corpusPath, ctCorpusPath, tunCorpusPath}

// corpusKind says what a corpus line expects of ovsxdp.
type corpusKind uint8

const (
	agree      corpusKind = iota // same answer as Open vSwitch
	mustReject                   // "! ": ovsxdp rejects
	mustAccept                   // "+ ": ovsxdp accepts; OVS's default protocols cannot carry it
)

type corpusLine struct {
	flow string
	kind corpusKind
	line int
}

func readCorpus(t testing.TB) []corpusLine { return readCorpusFile(t, corpusPath) }

// readAllCorpora returns the lines of every corpus.
func readAllCorpora(t testing.TB) []corpusLine {
	var out []corpusLine
	for _, p := range corpusPaths {
		out = append(out, readCorpusFile(t, p)...)
	}
	return out
}

func readCorpusFile(t testing.TB, path string) []corpusLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []corpusLine
	seen := map[string]int{}
	for i, l := range strings.Split(string(data), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		c := corpusLine{flow: l, line: i + 1}
		switch {
		case strings.HasPrefix(l, "! "):
			c.kind, c.flow = mustReject, l[2:]
		case strings.HasPrefix(l, "+ "):
			c.kind, c.flow = mustAccept, l[2:]
		}
		if prev, dup := seen[c.flow]; dup {
			t.Fatalf("%s:%d repeats line %d", path, c.line, prev)
		}
		seen[c.flow] = c.line
		out = append(out, c)
	}
	return out
}

// ofctlResult is what ovs-ofctl made of one flow.
type ofctlResult struct {
	ok     bool
	text   string // after "ADD ", when ok
	reason string // why it was rejected
}

func (r ofctlResult) String() string {
	if r.ok {
		return r.text
	}
	return "REJECT: " + r.reason
}

// runOfctl runs `ovs-ofctl [OPTION...] parse-flow FLOW` and classifies the
// result.
func runOfctl(ctx context.Context, bin, flow string, opts ...string) ofctlResult {
	cmd := exec.CommandContext(ctx, bin, append(opts, "parse-flow", flow)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	firstErr := func() string {
		for _, l := range strings.Split(stderr.String(), "\n") {
			if r, ok := strings.CutPrefix(l, "ovs-ofctl: "); ok {
				return r
			}
		}
		return strings.TrimSpace(stderr.String())
	}
	switch {
	case err != nil:
		return ofctlResult{reason: firstErr()}
	case strings.Contains(stderr.String(), "normalization changed ofp_match"):
		return ofctlResult{reason: "normalization changed ofp_match"}
	case strings.Contains(stdout.String(), "decode error"):
		return ofctlResult{reason: "decode error (" + firstErr() + ")"}
	}
	for _, l := range strings.Split(stdout.String(), "\n") {
		if _, text, ok := strings.Cut(l, ": ADD "); ok {
			return ofctlResult{ok: true, text: text}
		}
	}
	return ofctlResult{reason: "no ADD line in output: " + stdout.String()}
}

// runOfctlAll runs every flow through ovs-ofctl, a few at a time.
func runOfctlAll(t *testing.T, bin string, flows []corpusLine, opts ...string) []ofctlResult {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := make([]ofctlResult, len(flows))
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				out[i] = runOfctl(ctx, bin, flows[i].flow, opts...)
			}
		}()
	}
	for i := range flows {
		work <- i
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("ovs-ofctl: %v", ctx.Err())
	}
	return out
}

// ofctlBinary finds ovs-ofctl, failing under CI and skipping elsewhere.
func ofctlBinary(t *testing.T) string {
	bin, err := exec.LookPath("ovs-ofctl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ovs-ofctl not in PATH (install openvswitch-common): %v", err)
		}
		t.Skip("ovs-ofctl not in PATH; install openvswitch-common to run the live comparison")
	}
	return bin
}

func readGolden(t *testing.T) map[string]ofctlResult { return readGoldenFile(t, goldenPath) }

func readGoldenFile(t *testing.T, path string) map[string]ofctlResult {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (regenerate: go test ./flow -run TestOfctlGolden -update-golden)", err)
	}
	defer f.Close()
	out := map[string]ofctlResult{}
	sc := bufio.NewScanner(f)
	var flow string
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "flow: "):
			flow = l[len("flow: "):]
		case strings.HasPrefix(l, "=> REJECT: "):
			out[flow] = ofctlResult{reason: l[len("=> REJECT: "):]}
		case strings.HasPrefix(l, "=> "):
			out[flow] = ofctlResult{ok: true, text: l[len("=> "):]}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func writeGolden(t *testing.T, bin string, corpus []corpusLine, res []ofctlResult) {
	writeGoldenFile(t, bin, goldenPath, "ovs-ofctl parse-flow FLOW", "flows.txt", "TestOfctlGolden", corpus, res)
}

// writeGoldenFile writes what command printed for each line of the corpus
// named from into path; test regenerates it.
func writeGoldenFile(t *testing.T, bin, path, command, from, test string, corpus []corpusLine, res []ofctlResult) {
	version, _ := exec.Command(bin, "--version").Output()
	var b strings.Builder
	fmt.Fprintf(&b, "# What `%s` printed for each line of %s:\n", command, from)
	b.WriteString("# the text after \"ADD \", or REJECT and the reason (non-zero exit,\n")
	b.WriteString("# \"normalization changed ofp_match\" or a decode error).\n")
	fmt.Fprintf(&b, "# ovs-ofctl: %s\n", strings.SplitN(string(version), "\n", 2)[0])
	fmt.Fprintf(&b, "# Regenerate with:\n#   go test ./flow -run %s -update-golden\n\n", test)
	for i, c := range corpus {
		fmt.Fprintf(&b, "flow: %s\n=> %s\n", c.flow, res[i])
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkRejected asserts that err is a SyntaxError that points into s and
// names its token.
func checkRejected(t *testing.T, s string, err error) {
	t.Helper()
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Errorf("%q: error %v is not a *SyntaxError", s, err)
		return
	}
	if se.Pos < 0 || se.Pos > len(s) || (len(s) > 0 && se.Pos >= len(s) && se.Token != "") {
		t.Errorf("%q: Pos %d outside the string", s, se.Pos)
	}
	if se.Pos+len(se.Token) > len(s) || s[se.Pos:se.Pos+len(se.Token)] != se.Token {
		t.Errorf("%q: Token %q is not the text at Pos %d", s, se.Token, se.Pos)
	}
	if !strings.Contains(se.Error(), fmt.Sprintf("%q", se.Token)) || se.Reason == "" {
		t.Errorf("%q: message %q does not name the token and a reason", s, se.Error())
	}
}

// compare checks ovsxdp against Open vSwitch's result for one corpus line.
func compare(t *testing.T, c corpusLine, want ofctlResult) {
	t.Helper()
	f, err := ParseFlow(c.flow, CmdAdd)
	switch c.kind {
	case mustReject:
		if err == nil {
			t.Errorf("line %d %q: ovsxdp accepted it as %q; want rejection", c.line, c.flow, FormatFlow(f))
			return
		}
		checkRejected(t, c.flow, err)
	case mustAccept:
		if err != nil {
			t.Errorf("line %d %q: %v", c.line, c.flow, err)
		}
		if want.ok || !strings.Contains(want.reason, "no usable protocol") {
			t.Errorf("line %d %q: Open vSwitch says %v; want \"no usable protocol\"", c.line, c.flow, want)
		}
	default:
		switch {
		case !want.ok && err == nil:
			t.Errorf("line %d %q: ovsxdp accepted it as %q; Open vSwitch rejects it: %s", c.line, c.flow, FormatFlow(f), want.reason)
		case !want.ok:
			checkRejected(t, c.flow, err)
		case err != nil:
			t.Errorf("line %d %q: %v; Open vSwitch prints %q", c.line, c.flow, err, want.text)
		default:
			if got := FormatFlow(f); got != want.text {
				t.Errorf("line %d %q:\n got %s\nwant %s", c.line, c.flow, got, want.text)
			}
		}
	}
}

func TestOfctlGolden(t *testing.T) {
	corpus := readCorpus(t)
	if *updateGolden {
		bin := ofctlBinary(t)
		writeGolden(t, bin, corpus, runOfctlAll(t, bin, corpus))
	}
	golden := readGolden(t)
	var valid, invalid int
	for _, c := range corpus {
		want, ok := golden[c.flow]
		if !ok {
			t.Errorf("line %d %q has no golden entry (regenerate: go test ./flow -run TestOfctlGolden -update-golden)", c.line, c.flow)
			continue
		}
		if c.kind == agree && want.ok {
			valid++
		} else {
			invalid++
		}
		compare(t, c, want)
	}
	if valid < 160 || invalid < 40 {
		t.Errorf("corpus has %d valid and %d invalid lines; want at least 160 and 40", valid, invalid)
	}
}

func TestOfctlLive(t *testing.T) {
	bin := ofctlBinary(t)
	corpus := readCorpus(t)
	res := runOfctlAll(t, bin, corpus)
	for i, c := range corpus {
		compare(t, c, res[i])
	}
}

// TestRoundTrip checks Parse(Format(Parse(s))) == Parse(s) for every
// corpus line ovsxdp accepts.
func TestRoundTrip(t *testing.T) {
	n, n13 := 0, 0
	for _, c := range readAllCorpora(t) {
		f1, err := ParseFlow(c.flow, CmdAdd)
		if err != nil {
			continue
		}
		n++
		text := FormatFlow(f1)
		f2, err := ParseFlow(text, CmdAdd)
		if err != nil {
			t.Errorf("line %d %q formats as %q, which does not parse: %v", c.line, c.flow, text, err)
			continue
		}
		if f2.Match = readBack(c.flow, f1.Match, f2.Match); !reflect.DeepEqual(forgetSpelling(f1), forgetSpelling(f2)) {
			t.Errorf("line %d %q formats as %q, which parses differently:\n%+v\n%+v", c.line, c.flow, text, f1, f2)
		}
		if again := FormatFlow(f2); again != text {
			t.Errorf("line %d %q: format is not stable: %q then %q", c.line, c.flow, text, again)
		}
		// The spelling as written reads back as exactly the same flow.
		written := FormatFlowAsWritten(f1)
		if f4, err := ParseFlow(written, CmdAdd); err != nil || !sameFlowReadBack(c.flow, f1, f4) {
			t.Errorf("line %d %q formats as written as %q, which parses as %+v, %v", c.line, c.flow, written, f4, err)
		}
		// The OpenFlow 1.3 spelling reads back as itself, where there is
		// one: OpenFlow 1.0's mod_* actions need no prerequisite, and
		// Open vSwitch cannot add such a flow in OpenFlow 1.3 either.
		text13 := text[:strings.Index(text, "actions=")+len("actions=")] + FormatActionsIn(OpenFlow13, &f1.Match, f1.Actions)
		f3, err := ParseFlow(text13, CmdAdd)
		if err != nil {
			if !strings.Contains(err.Error(), " requires ") {
				t.Errorf("line %d %q formats in OpenFlow 1.3 as %q, which does not parse: %v", c.line, c.flow, text13, err)
			}
			continue
		}
		n13++
		if again := FormatActionsIn(OpenFlow13, &f3.Match, f3.Actions); !strings.HasSuffix(text13, "actions="+again) {
			t.Errorf("line %d %q: OpenFlow 1.3 format is not stable: %q then %q", c.line, c.flow, text13, again)
		}
	}
	if n < 200 || n13 < 200 {
		t.Errorf("only %d corpus lines parse, %d in their OpenFlow 1.3 spelling; want at least 200", n, n13)
	}
}

func FuzzParseFlow(f *testing.F) {
	for _, c := range readAllCorpora(f) {
		f.Add(c.flow)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, cmd := range []Command{CmdAdd, CmdModify, CmdDelete} {
			fl, err := ParseFlow(s, cmd)
			if err != nil {
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("%q: error %v is not a *SyntaxError", s, err)
				}
				if se.Pos < 0 || se.Pos > len(s) || s[se.Pos:min(len(s), se.Pos+len(se.Token))] != se.Token {
					t.Fatalf("%q: bad position %d for token %q", s, se.Pos, se.Token)
				}
				continue
			}
			if cmd != CmdAdd {
				continue
			}
			text := FormatFlow(fl)
			fl2, err := ParseFlow(text, CmdAdd)
			if err != nil {
				t.Fatalf("%q formats as %q, which does not parse: %v", s, text, err)
			}
			if fl2.Match = readBack(s, fl.Match, fl2.Match); !reflect.DeepEqual(forgetSpelling(fl), forgetSpelling(fl2)) {
				t.Fatalf("%q formats as %q, which parses differently:\n%+v\n%+v", s, text, fl, fl2)
			}
			written := FormatFlowAsWritten(fl)
			if fl3, err := ParseFlow(written, CmdAdd); err != nil || !sameFlowReadBack(s, fl, fl3) {
				t.Fatalf("%q formats as written as %q, which parses as %+v, %v", s, written, fl3, err)
			}
		}
		if m, err := ParseMatch(s); err == nil {
			text := FormatMatch(m, DefaultPriority)
			m2, err := ParseMatch(text)
			if err != nil || !readsBackAs(s, *m, *m2) {
				t.Fatalf("match %q formats as %q, which parses as %v, %v", s, text, m2, err)
			}
		}
	})
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		cmd        Command
		wantPos    int
		wantToken  string
		wantReason string
		wantUnsup  bool
	}{
		{"bad IPv4", "ip,in_port=1,nw_dst=10.0.0/24,actions=1", CmdAdd, 13, "nw_dst=10.0.0/24", `invalid IP address "10.0.0"`, false},
		{"no actions", "priority=5", CmdAdd, 0, "priority=5", `must specify actions ("actions=...")`, false},
		{"port out of range", "tcp,tp_src=65536,actions=1", CmdAdd, 4, "tp_src=65536", "value 65536 out of range for tp_src (at most 65535)", false},
		{"mask on exact field", "ip,nw_ttl=1/1,actions=1", CmdAdd, 3, "nw_ttl=1/1", "field nw_ttl is not maskable", false},
		{"unknown field", "foo=1,actions=1", CmdAdd, 0, "foo=1", "unknown field foo", false},
		{"drop with output", "actions=drop,output:1", CmdAdd, 8, "drop", `"drop" must not be accompanied by any other action or instruction`, false},
		{"vid too big", "actions=mod_vlan_vid:4096", CmdAdd, 8, "mod_vlan_vid:4096", `"4096" is not a valid VLAN VID (0 to 4095)`, false},
		{"tos low bits", "ip,actions=mod_nw_tos:3", CmdAdd, 11, "mod_nw_tos:3", `"3" is not a valid TOS (0 to 252, a multiple of 4)`, false},
		{"missing prerequisite", "in_port=1,nw_src=10.0.0.1,actions=1", CmdAdd, 10, "nw_src=10.0.0.1", "nw_src requires ip, arp or rarp", false},
		{"tp_dst without l4", "ip,tp_dst=80,actions=1", CmdAdd, 3, "tp_dst=80", "tp_dst requires tcp, udp or sctp (or tcp6, udp6, sctp6)", false},
		{"nd_target wrong type", "icmp6,icmp_type=137,nd_target=fe80::1,actions=1", CmdAdd, 20, "nd_target=fe80::1", "nd_target requires icmp6 with icmp_type=135 or 136 and icmp_code=0", false},
		{"shorthand proto lost", "tcp,dl_type=0x0700,actions=1", CmdAdd, 0, "tcp", "tcp sets nw_proto, which requires ip, ipv6, arp or rarp", false},
		{"set_field prerequisite", "actions=set_field:5->nw_ttl", CmdAdd, 8, "set_field:5->nw_ttl", "set_field of nw_ttl requires ip or ipv6", false},
		{"read-only field", "ip,actions=set_field:6->nw_proto", CmdAdd, 11, "set_field:6->nw_proto", "nw_proto is read-only", false},
		{"bad MAC", "dl_src=00:11:22:33:44,actions=1", CmdAdd, 0, "dl_src=00:11:22:33:44", `invalid Ethernet address "00:11:22:33:44"`, false},
		{"prefix too long", "ipv6,ipv6_src=fe80::1/129,actions=1", CmdAdd, 5, "ipv6_src=fe80::1/129", `invalid prefix length "129" (0 to 128)`, false},
		{"bad frag", "ip,ip_frag=maybe,actions=1", CmdAdd, 3, "ip_frag=maybe", `unknown fragment type "maybe" (valid types are "no", "yes", "first", "later", "not_later")`, false},
		{"flag twice", "tcp,tcp_flags=+syn+syn,actions=1", CmdAdd, 4, "tcp_flags=+syn+syn", "TCP flag syn given twice", false},
		{"unknown port", "in_port=eth0,actions=1", CmdAdd, 0, "in_port=eth0", `unknown port "eth0"`, false},
		{"output to ANY", "actions=output:NONE", CmdAdd, 8, "output:NONE", "cannot output to port ANY", false},
		{"octal-looking number", "tcp,tp_src=010,actions=1", CmdAdd, 4, "tp_src=010", `invalid number "010"`, false},
		{"cookie mask on add", "cookie=1/1,actions=1", CmdAdd, 0, "cookie=1/1", "add-flow cannot use a cookie mask", false},
		{"out_port on add", "out_port=1,actions=1", CmdAdd, 0, "out_port=1", "out_port is not allowed with add-flow", false},
		{"actions on delete", "ip,actions=1", CmdDelete, 3, "actions=1", "del-flows takes no actions", false},
		{"priority on delete", "priority=5,ip", CmdDelete, 0, "priority=5", "priority is not allowed with del-flows", false},
		{"misspelt actions", "ip actionsx=1", CmdAdd, 3, "actionsx=1", `expected "actions=" followed by the action list`, false},
		{"unbalanced", "actions=resubmit(,1", CmdAdd, 8, "resubmit(,1", "unbalanced parentheses", false},

		{"enqueue", "actions=1,enqueue(1,2)", CmdAdd, 10, "enqueue(1,2)", "action enqueue(...) is not supported", true},
		{"table above 254", "table=255,actions=1", CmdAdd, 0, "table=255", "table 255 out of range: add-flow takes tables 0 to 254", false},
		{"table above 255", "table=256", CmdDelete, 0, "table=256", "table 256 out of range: tables are 0 to 254 (255: all)", false},
		{"register out of range", "reg16=1,actions=1", CmdAdd, 0, "reg16=1", "unknown field reg16", false},
		{"bit range out of bounds", "actions=load:1->NXM_NX_REG0[30..33]", CmdAdd, 8, "load:1->NXM_NX_REG0[30..33]", "NXM_NX_REG0[30..33]: ending bit 33 is not valid because field is only 32 bits wide", false},
		{"move between widths", "actions=move:reg0->reg1[0..15]", CmdAdd, 8, "move:reg0->reg1[0..15]", "reg0->reg1[0..15]: source field is 32 bits wide but destination is 16 bits wide", false},
		{"goto backwards", "table=3,actions=goto_table:2", CmdAdd, 16, "goto_table:2", "goto_table:2 must go to a table after this flow's table 3", false},
		{"value too wide", "actions=load:0x1ff->reg0[0..7]", CmdAdd, 8, "load:0x1ff->reg0[0..7]", "0x1ff->reg0[0..7]: value 0x1ff does not fit into 8 bits", false},
		{"resubmit nowhere", "actions=resubmit(,)", CmdAdd, 8, "resubmit(,)", `at least one "in_port" or "table" must be specified on resubmit`, false},
		{"half load", "ipv6,actions=load:0x1->NXM_NX_IPV6_SRC[0..63]", CmdAdd, 13, "load:0x1->NXM_NX_IPV6_SRC[0..63]", "a 128-bit field must be loaded whole: load to NAME[0..63] followed by load to NAME[64..127]", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFlow(tt.in, tt.cmd)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseFlow(%q) = %v; want a *SyntaxError", tt.in, err)
			}
			if se.Pos != tt.wantPos || se.Token != tt.wantToken || se.Reason != tt.wantReason {
				t.Errorf("ParseFlow(%q) = at %d %q: %s\nwant at %d %q: %s", tt.in, se.Pos, se.Token, se.Reason, tt.wantPos, tt.wantToken, tt.wantReason)
			}
			if got := errors.Is(err, ErrUnsupportedSyntax); got != tt.wantUnsup {
				t.Errorf("errors.Is(err, ErrUnsupportedSyntax) = %v; want %v", got, tt.wantUnsup)
			}
			want := fmt.Sprintf("flow: at column %d %q: %s", tt.wantPos+1, tt.wantToken, tt.wantReason)
			if err.Error() != want {
				t.Errorf("Error() = %s; want %s", err, want)
			}
		})
	}
}

func TestParseCommands(t *testing.T) {
	tests := []struct {
		name string
		in   string
		cmd  Command
		want Flow
	}{
		{
			name: "delete by cookie and out_port",
			in:   "ip,cookie=0x5/0xff,out_port=3",
			cmd:  CmdDelete,
			want: Flow{Priority: DefaultPriority, Table: TableAll, Cookie: 5, CookieMask: 0xff, OutPort: 3,
				Match: Match{Key: Key{DlType: EthTypeIPv4}, Mask: Key{DlType: 0xffff}}},
		},
		{
			name: "delete everything",
			in:   "",
			cmd:  CmdDelete,
			want: Flow{Priority: DefaultPriority, Table: TableAll, OutPort: PortNone},
		},
		{
			name: "modify with cookie mask",
			in:   "cookie=0x10/0xf0,out_port=LOCAL,priority=7,idle_timeout=9,actions=normal",
			cmd:  CmdModify,
			want: Flow{Priority: 7, Table: TableAll, Cookie: 0x10, CookieMask: 0xf0, OutPort: PortLocal, IdleTimeout: 9,
				Actions: []Action{{Type: ActOutput, Port: PortNormal}}},
		},
		{
			name: "add with everything",
			in:   "cookie=0x5,idle_timeout=5,hard_timeout=7,priority=7,table=0,actions=",
			cmd:  CmdAdd,
			want: Flow{Priority: 7, Cookie: 5, IdleTimeout: 5, HardTimeout: 7, OutPort: PortNone},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFlow(tt.in, tt.cmd)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("ParseFlow(%q) =\n%+v\nwant\n%+v", tt.in, *got, tt.want)
			}
		})
	}
}

func TestPortNames(t *testing.T) {
	names := map[string]uint32{"eth0": 1, "veth-b": 7}
	p := Parser{PortNames: func(n string) (uint32, bool) { v, ok := names[n]; return v, ok }}
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "in_port=eth0,actions=veth-b", want: "in_port=1 actions=output:7"},
		{in: "in_port=veth-b,actions=output:eth0,LOCAL", want: "in_port=7 actions=output:1,LOCAL"},
		{in: "in_port=3,actions=local", want: "in_port=3 actions=LOCAL"},
		{in: "in_port=eth9,actions=1", wantErr: `flow: at column 1 "in_port=eth9": unknown port "eth9"`},
		{in: "actions=output:eth9", wantErr: `flow: at column 9 "output:eth9": unknown port "eth9"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			f, err := p.ParseFlow(tt.in, CmdAdd)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got %v; want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := FormatFlow(f); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
	if _, err := ParseFlow("in_port=eth0,actions=1", CmdAdd); err == nil {
		t.Error("the zero Parser resolved a port name")
	}
}

func TestParseMatch(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "in_port=1,tcp,nw_src=10.0.0.1,tp_dst=80", want: "tcp,in_port=1,nw_src=10.0.0.1,tp_dst=80"},
		{in: "icmp6,icmp_type=135,nd_target=fe80::1", want: "icmp6,icmp_type=135,nd_target=fe80::1"},
		{in: "", want: ""},
		{in: "priority=5,ip", wantErr: true},
		{in: "ip,actions=1", wantErr: true},
		{in: "tp_dst=80", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := ParseMatch(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseMatch(%q) = %s; want an error", tt.in, FormatMatch(m, DefaultPriority))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := FormatMatch(m, DefaultPriority); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}

func BenchmarkParseFlow(b *testing.B) {
	const s = "priority=100,tcp,in_port=1,dl_vlan=5,nw_src=10.0.0.0/8,tp_dst=80,tcp_flags=+syn-ack,actions=mod_dl_src:00:11:22:33:44:55,dec_ttl,output:2"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFlow(s, CmdAdd); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
}

func BenchmarkFormatFlow(b *testing.B) {
	f, err := ParseFlow("priority=100,tcp,in_port=1,dl_vlan=5,nw_src=10.0.0.0/8,tp_dst=80,tcp_flags=+syn-ack,actions=mod_dl_src:00:11:22:33:44:55,dec_ttl,output:2", CmdAdd)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = FormatFlow(f)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
}

// forgetSpelling returns f without how its actions were written, which the
// OpenFlow 1.0 spelling that FormatFlow prints does not keep (nor does
// Open vSwitch's OpenFlow 1.0 dump), also inside ct(exec(...)).
// readsBackAs reports whether m2, parsed from the text that match m
// (parsed from s) prints as, is m. One difference is Open vSwitch's own:
// ovs-ofctl picks OpenFlow 1.0 or NXM by the fields as they are written,
// not by the match they make. "vlan_tci=0/1,vlan_tci=1" needs NXM for its
// first field and stays vlan_tci=0x0001, which prints as
// "vlan_tci=0x0001"; that text goes as OpenFlow 1.0, which turns a match
// on "no VLAN header" into exactly vlan_tci=0x0000 (`ovs-ofctl
// parse-flow` does both; flows.txt keeps the pair). So when s names a
// field twice, m2 may be m as OpenFlow 1.0 carries it.
func readsBackAs(s string, m, m2 Match) bool {
	return m == m2 || namesFieldTwice(s) && of10VLAN(m) == m2
}

// readBack is m when m2 reads back as m (readsBackAs), m2 otherwise.
func readBack(s string, m, m2 Match) Match {
	if readsBackAs(s, m, m2) {
		return m
	}
	return m2
}

// sameFlowReadBack reports whether f2, parsed from what f (parsed from s)
// prints as, is f, with readsBackAs's allowance for the match.
func sameFlowReadBack(s string, f, f2 *Flow) bool {
	c := *f2
	c.Match = readBack(s, f.Match, f2.Match)
	return reflect.DeepEqual(f, &c)
}

// of10VLAN is m as OpenFlow 1.0 carries it: a match on the VLAN present
// bit being 0 is exactly vlan_tci=0x0000.
func of10VLAN(m Match) Match {
	if m.Mask.VLANs[0].TCI&VLANPresent != 0 && m.Key.VLANs[0].TCI&VLANPresent == 0 {
		m.Key.VLANs[0].TCI, m.Mask.VLANs[0].TCI = 0, 0xffff
		m.Normalize()
	}
	return m
}

// namesFieldTwice reports whether two items of s set the same storage
// (vlan_tci and dl_vlan share one; a protocol shorthand sets dl_type).
func namesFieldTwice(s string) bool {
	seen := map[storage]bool{}
	l := lexer{s: s, end: len(s)}
	for {
		t, ok, err := l.next()
		if err != nil || !ok || strings.HasPrefix(t.key, "action") {
			return false
		}
		f := fieldByName[t.key]
		if _, proto := protocols[t.key]; proto {
			f = fieldByName["dl_type"]
		}
		if f == nil {
			continue
		}
		if seen[f.st] {
			return true
		}
		seen[f.st] = true
	}
}

func forgetSpelling(f *Flow) *Flow {
	c := *f
	c.Actions = forgetActionSpelling(f.Actions)
	return &c
}

func forgetActionSpelling(acts []Action) []Action {
	out := slices.Clone(acts)
	for i := range out {
		out[i].Spelling, out[i].Named = SpellDefault, FieldNone
		if ct := out[i].CT; ct != nil && ct.Exec != nil {
			c := *ct
			c.Exec = forgetActionSpelling(ct.Exec)
			out[i].CT = &c
		}
	}
	return out
}
