package flow

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The connection tracking corpus is differential-checked as flows.txt is
// (parse_test.go), and also in OpenFlow 1.3: ct_golden13.txt holds what
// `ovs-ofctl -O OpenFlow13 parse-flow` printed.
const (
	ctCorpusPath   = "testdata/ofctl/ct_flows.txt"
	ctGoldenPath   = "testdata/ofctl/ct_golden.txt"
	ctGolden13Path = "testdata/ofctl/ct_golden13.txt"
)

// formatFlow13 is FormatFlow in the OpenFlow 1.3 spelling.
func formatFlow13(f *Flow) string {
	text := FormatFlow(f)
	i := strings.Index(text, "actions=")
	prefix := text[:i]
	if m10 := FormatMatch(&f.Match, f.Priority); m10 != "" {
		prefix = strings.Replace(prefix, m10, FormatMatchIn(OpenFlow13, &f.Match, f.Priority), 1)
	}
	return prefix + "actions=" + FormatActionsIn(OpenFlow13, &f.Match, f.Actions)
}

// compareCt checks one ct corpus line against what Open vSwitch printed
// in OpenFlow 1.0 (want) and 1.3 (want13).
func compareCt(t *testing.T, c corpusLine, want, want13 ofctlResult) {
	t.Helper()
	compare(t, c, want)
	if c.kind != agree || !want.ok {
		return
	}
	f, err := ParseFlow(c.flow, CmdAdd)
	if err != nil {
		return // compare reported it
	}
	if !want13.ok {
		t.Errorf("line %d %q: Open vSwitch accepts it in OpenFlow 1.0 but not in 1.3: %s", c.line, c.flow, want13.reason)
		return
	}
	if got := formatFlow13(f); got != want13.text {
		t.Errorf("line %d %q in OpenFlow 1.3:\n got %s\nwant %s", c.line, c.flow, got, want13.text)
	}
}

func TestCtOfctlGolden(t *testing.T) {
	checkDualGolden(t, dualCorpus{
		corpus: ctCorpusPath, golden: ctGoldenPath, golden13: ctGolden13Path,
		test: "TestCtOfctlGolden", name: "ct", minValid: 60, minInvalid: 50,
	})
}

func TestCtOfctlLive(t *testing.T) { checkDualLive(t, ctCorpusPath) }

// dualCorpus is a corpus of flows checked in OpenFlow 1.0 and 1.3 against
// golden files of what ovs-ofctl prints, with the number of accepted and
// refused lines it must at least hold.
type dualCorpus struct {
	corpus, golden, golden13 string
	test, name               string // the test that regenerates the golden files; the corpus's name in messages
	minValid, minInvalid     int
}

// checkDualGolden compares every line of d's corpus with its golden
// entries (compareCt), regenerating them first with -update-golden.
func checkDualGolden(t *testing.T, d dualCorpus) {
	t.Helper()
	corpus := readCorpusFile(t, d.corpus)
	if *updateGolden {
		bin := ofctlBinary(t)
		base := filepath.Base(d.corpus)
		writeGoldenFile(t, bin, d.golden, "ovs-ofctl parse-flow FLOW", base, d.test, corpus, runOfctlAll(t, bin, corpus))
		writeGoldenFile(t, bin, d.golden13, "ovs-ofctl -O OpenFlow13 parse-flow FLOW", base, d.test, corpus, runOfctlAll(t, bin, corpus, "-O", "OpenFlow13"))
	}
	golden, golden13 := readGoldenFile(t, d.golden), readGoldenFile(t, d.golden13)
	var valid, invalid int
	for _, c := range corpus {
		want, ok := golden[c.flow]
		want13, ok13 := golden13[c.flow]
		if !ok || !ok13 {
			t.Errorf("line %d %q has no golden entry (regenerate: go test ./flow -run %s -update-golden)", c.line, c.flow, d.test)
			continue
		}
		if c.kind == agree && want.ok {
			valid++
		} else {
			invalid++
		}
		compareCt(t, c, want, want13)
	}
	if valid < d.minValid || invalid < d.minInvalid {
		t.Errorf("%s corpus has %d valid and %d invalid lines; want at least %d and %d", d.name, valid, invalid, d.minValid, d.minInvalid)
	}
}

// checkDualLive compares every line of the corpus with what a live
// ovs-ofctl prints in OpenFlow 1.0 and 1.3.
func checkDualLive(t *testing.T, corpusPath string) {
	bin := ofctlBinary(t)
	corpus := readCorpusFile(t, corpusPath)
	res, res13 := runOfctlAll(t, bin, corpus), runOfctlAll(t, bin, corpus, "-O", "OpenFlow13")
	for i, c := range corpus {
		compareCt(t, c, res[i], res13[i])
	}
}

// TestCtParse checks how ct flows are held: what translation and the
// OpenFlow codec read.
func TestCtParse(t *testing.T) {
	reg13 := Subfield{Field: FieldReg0 + 13, NBits: 16}
	tests := []struct {
		name      string
		in        string
		wantMatch func(m *Match) bool
		wantActs  []Action
	}{
		{
			name: "ovn commit with snat and exec",
			in:   "ip,actions=ct(commit,zone=NXM_NX_REG13[0..15],nat(src),exec(set_field:0/0x1->ct_mark,move:NXM_NX_XXREG0[0..31]->NXM_NX_CT_LABEL[96..127]))",
			wantActs: []Action{{Type: ActCT, CT: &CT{
				Commit: true, ZoneSrc: reg13, Table: CTNoTable, NAT: &NAT{Kind: NATSrc},
				Exec: []Action{
					{Type: ActLoad, Dst: Subfield{Field: FieldCtMark, NBits: 1}},
					{Type: ActMove, Src: Subfield{Field: FieldXXReg0, NBits: 32}, Dst: Subfield{Field: FieldCtLabel, Ofs: 96, NBits: 32}},
				},
			}}},
		},
		{
			name:     "ovn recirculation",
			in:       "ip,actions=ct(table=15,zone=NXM_NX_REG13[0..15],nat)",
			wantActs: []Action{{Type: ActCT, CT: &CT{ZoneSrc: reg13, Table: 15, NAT: &NAT{Kind: NATRestore}}}},
		},
		{
			name: "dnat to an address and port range",
			in:   "tcp,actions=ct(commit,force,zone=7,alg=ftp,nat(dst=10.0.0.1-10.0.0.3:80-90,persistent,hash))",
			wantActs: []Action{{Type: ActCT, CT: &CT{Commit: true, Force: true, Zone: 7, Table: CTNoTable, Alg: 21, NAT: &NAT{
				Kind: NATDst, AddrMin: netip.MustParseAddr("10.0.0.1"), AddrMax: netip.MustParseAddr("10.0.0.3"),
				PortMin: 80, PortMax: 90, Persistent: true, Hash: true,
			}}}},
		},
		{
			name: "one address and port is a range of one",
			in:   "ipv6,actions=ct(commit,nat(src=[fd00::1]:1024,random))",
			wantActs: []Action{{Type: ActCT, CT: &CT{Commit: true, Table: CTNoTable, NAT: &NAT{
				Kind: NATSrc, AddrMin: netip.MustParseAddr("fd00::1"), AddrMax: netip.MustParseAddr("fd00::1"),
				PortMin: 1024, PortMax: 1024, Random: true,
			}}}},
		},
		{
			name: "whole ct_label is two loads, lowest first",
			in:   "ip,actions=ct(commit,exec(set_field:0x10000000000000002->ct_label)),ct_clear",
			wantActs: []Action{{Type: ActCT, CT: &CT{Commit: true, Table: CTNoTable, Exec: []Action{
				{Type: ActLoad, Dst: Subfield{Field: FieldCtLabel, NBits: 64}, Value: 2, Spelling: SpellSetField},
				{Type: ActLoad, Dst: Subfield{Field: FieldCtLabel, Ofs: 64, NBits: 64}, Value: 1, Spelling: SpellSetField},
			}}}, {Type: ActCTClear}},
		},
		{
			name: "ct_state flags",
			in:   "ct_state=+trk+est-new,actions=drop",
			wantMatch: func(m *Match) bool {
				return m.Key.CtState == CtStateTracked|CtStateEst && m.Mask.CtState == CtStateTracked|CtStateEst|CtStateNew
			},
		},
		{
			name: "ct_label is big-endian",
			in:   "ct_label=0x0102/0xffff,ct_mark=0x5/0xf,ct_zone=9,actions=drop",
			wantMatch: func(m *Match) bool {
				return m.Key.CtLabel[14] == 1 && m.Key.CtLabel[15] == 2 && m.Mask.CtLabel[14] == 0xff && m.Mask.CtLabel[13] == 0 &&
					m.Key.CtMark == 5 && m.Mask.CtMark == 0xf && m.Key.CtZone == 9 && m.Mask.CtZone == 0xffff
			},
		},
		{
			name: "original-direction tuple",
			in:   "tcp6,ct_state=+est,ct_ipv6_src=fd00::1,ct_nw_proto=6,ct_tp_dst=443,actions=drop",
			wantMatch: func(m *Match) bool {
				return m.Key.CtIPv6Src == netip.MustParseAddr("fd00::1").As16() && m.Key.CtNwProto == 6 && m.Key.CtTpDst == 443 && m.Mask.CtTpDst == 0xffff
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseFlow(tt.in, CmdAdd)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantMatch != nil && !tt.wantMatch(&f.Match) {
				t.Errorf("match = %+v / %+v", f.Match.Key, f.Match.Mask)
			}
			if tt.wantMatch == nil && !reflect.DeepEqual(f.Actions, tt.wantActs) {
				t.Errorf("actions =\n%s\nwant\n%s", actsDump(f.Actions), actsDump(tt.wantActs))
			}
		})
	}
}

func actsDump(acts []Action) string {
	var b strings.Builder
	for _, a := range acts {
		fmt.Fprintf(&b, "%+v", a)
		if a.CT != nil {
			fmt.Fprintf(&b, " CT=%+v", *a.CT)
			if a.CT.NAT != nil {
				fmt.Fprintf(&b, " NAT=%+v", *a.CT.NAT)
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func TestCtParseErrors(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantPos    int
		wantToken  string
		wantReason string
	}{
		{"unknown flag", "ct_state=+trk+foo,actions=1", 0, "ct_state=+trk+foo", `unknown ct_state flag "foo" (valid flags are new, est, rel, rpl, inv, trk, snat, dnat)`},
		{"flag twice", "ct_state=+trk-trk,actions=1", 0, "ct_state=+trk-trk", "ct_state flag trk given twice"},
		{"undefined bits", "ct_state=0x100/0x100,actions=1", 0, "ct_state=0x100/0x100", "0x100/0x100: unknown ct_state flags (defined flags are 0xff)"},
		{"zone mask", "ct_zone=1/1,actions=1", 0, "ct_zone=1/1", "field ct_zone is not maskable"},
		{"tuple without connection", "ip,ct_state=+trk,ct_nw_src=1.2.3.4,actions=1", 17, "ct_nw_src=1.2.3.4",
			"ct_nw_src requires ip and a tracked connection (ct_state=+est, +new, +trk-inv...)"},
		{"ct port without proto", "ip,ct_state=+new,ct_tp_src=80,actions=1", 17, "ct_tp_src=80",
			"ct_tp_src requires ct_nw_proto and a tracked connection (ct_state=+est, +trk-inv..)"},
		{"ct without ip", "actions=ct(commit)", 8, "ct(commit)", "ct requires ip or ipv6 in the match"},
		{"force without commit", "ip,actions=ct(force)", 11, "ct(force)", `ct "force" flag requires "commit" flag`},
		{"exec without commit", "ip,actions=ct(exec(set_field:1->ct_mark))", 11, "ct(exec(set_field:1->ct_mark))",
			"ct requires commit for exec(...) and nat(src|dst); without commit only a bare nat is allowed"},
		{"bad argument", "ip,actions=ct(commit,foo)", 21, "foo", `invalid argument "foo" to "ct" action (commit, force, table, zone, alg, nat, exec)`},
		{"table 255", "ip,actions=ct(table=255)", 14, "table=255", "ct table 255 is not valid (tables are 0 to 254)"},
		{"zone too big", "ip,actions=ct(zone=65536)", 14, "zone=65536", "ct zone: 65536 does not fit in 16 bits (zones are 0 to 65535)"},
		{"zone field too narrow", "ip,actions=ct(zone=reg0[0..7])", 14, "zone=reg0[0..7]", "ct zone reg0[0..7] is 8 bits wide; a zone field must be 16 bits"},
		{"zone field prerequisite", "ip,actions=ct(zone=NXM_OF_TCP_SRC[])", 14, "zone=NXM_OF_TCP_SRC[]", "ct zone: source field tcp_src lacks correct prerequisites (tcp or tcp6)"},
		{"alg", "ip,actions=ct(commit,alg=http)", 21, "alg=http", `invalid "alg" argument "http" (ftp or tftp)`},
		{"ftp needs tcp", "udp,actions=ct(commit,alg=ftp)", 12, "ct(commit,alg=ftp)", "ct alg=ftp requires tcp or tcp6 in the match"},
		{"commit invalid", "ip,ct_state=+trk+inv,actions=ct(commit)", 32, "commit", "ct cannot commit a packet the match says is invalid (ct_state=+inv)"},
		{"nested output", "ip,actions=ct(commit,exec(output:1))", 26, "output:1", "ct action doesn't support nested action output (only set_field, load and move into ct_mark and ct_label)"},
		{"nested register", "ip,actions=ct(commit,exec(load:1->reg0[]))", 26, "load:1->reg0[]", "ct action doesn't support nested modification of reg0 (only ct_mark and ct_label)"},
		{"mark outside exec", "ip,actions=set_field:1->ct_mark", 11, "set_field:1->ct_mark", ctFieldOutside},
		{"label load outside exec", "ip,actions=load:1->NXM_NX_CT_LABEL[0..7]", 11, "load:1->NXM_NX_CT_LABEL[0..7]", ctFieldOutside},
		{"move outside exec", "ip,actions=move:reg0->NXM_NX_CT_MARK[]", 11, "move:reg0->NXM_NX_CT_MARK[]", ctFieldOutside},
		{"nat outside ct", "ip,actions=nat", 11, "nat", `Cannot have NAT action outside of "ct" action`},
		{"nat twice", "ip,actions=ct(nat,nat)", 18, "nat", "ct takes one nat argument"},
		{"nat after exec", "ip,actions=ct(commit,exec(set_field:1->ct_mark),nat)", 48, "nat", "nat must come before exec(...) in ct"},
		{"nat src and dst", "ip,actions=ct(commit,nat(src,dst))", 29, "dst", `nat takes only one of "src" or "dst"`},
		{"nat flags alone", "ip,actions=ct(commit,nat(persistent))", 25, "persistent", `nat flags are allowed only with "src" or "dst"`},
		{"nat hash and random", "ip,actions=ct(commit,nat(src=1.1.1.1,hash,random))", 42, "random", `nat takes "hash" or "random", not both`},
		{"nat range backwards", "ip,actions=ct(commit,nat(src=10.0.0.2-10.0.0.1))", 25, "src=10.0.0.2-10.0.0.1", `invalid nat range "10.0.0.2-10.0.0.1": the last address is below the first`},
		{"nat ports backwards", "ip,actions=ct(commit,nat(src=10.0.0.1:9-8))", 25, "src=10.0.0.1:9-8", `invalid nat range "10.0.0.1:9-8": the last port is below the first`},
		{"nat garbage", "ip,actions=ct(commit,nat(dst=10.0.0.1x))", 25, "dst=10.0.0.1x", `garbage "x" after nat range "10.0.0.1x"`},
		{"nat family", "ip,actions=ct(commit,nat(dst=fd00::1))", 11, "ct(commit,nat(dst=fd00::1))", "ct nat to an IPv6 address requires ipv6 in the match"},
		{"nat without commit", "ip,actions=ct(nat(src=1.1.1.1))", 11, "ct(nat(src=1.1.1.1))",
			"ct requires commit for exec(...) and nat(src|dst); without commit only a bare nat is allowed"},
		{"ct_clear argument", "actions=ct_clear:1", 8, "ct_clear:1", "ct_clear takes no argument"},
		{"ct_nw_proto zero", "ip,ct_state=+new,ct_nw_proto=0,actions=1", 17, "ct_nw_proto=0",
			"ct_nw_proto=0 cannot be matched: Open vSwitch carries ct_nw_proto (and ct_tp_src, ct_tp_dst) only when it is not 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFlow(tt.in, CmdAdd)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("ParseFlow(%q) = %v; want a *SyntaxError", tt.in, err)
			}
			if se.Pos != tt.wantPos || se.Token != tt.wantToken || se.Reason != tt.wantReason {
				t.Errorf("ParseFlow(%q) = at %d %q: %s\nwant at %d %q: %s", tt.in, se.Pos, se.Token, se.Reason, tt.wantPos, tt.wantToken, tt.wantReason)
			}
			if errors.Is(err, ErrUnsupportedSyntax) {
				t.Errorf("ParseFlow(%q): %v is ErrUnsupportedSyntax; ct syntax is supported", tt.in, err)
			}
			checkRejected(t, tt.in, err)
		})
	}
}

// TestCtStateRoundTrip checks that every ct_state value and mask prints
// as text that parses back to it.
func TestCtStateRoundTrip(t *testing.T) {
	for m := 0; m < 256; m++ {
		for v := 0; v < 256; v++ {
			if v&^m != 0 {
				continue
			}
			text := ctStateText(uint8(v), uint8(m))
			if m == 0 {
				continue
			}
			gv, gm, reason := parseCtState(text)
			if reason != "" || gv != uint64(v) || gm != uint64(m) {
				t.Fatalf("ct_state %#x/%#x prints as %q, which parses as %#x/%#x %s", v, m, text, gv, gm, reason)
			}
		}
	}
}

// TestCtSameAction checks that two ct actions parsed apart compare equal
// by what they say, and differ when an argument differs.
func TestCtSameAction(t *testing.T) {
	parse := func(s string) Action {
		t.Helper()
		f, err := ParseFlow(s, CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		return f.Actions[0]
	}
	const base = "ip,actions=ct(commit,zone=NXM_NX_REG13[0..15],nat(src=10.0.0.1:5-6),exec(set_field:1->ct_mark))"
	if a, b := parse(base), parse(base); !sameAction(a, b) || a.CT == b.CT {
		t.Errorf("the same ct action parsed twice is not the same action")
	}
	for _, other := range []string{
		"ip,actions=ct(commit,zone=NXM_NX_REG12[0..15],nat(src=10.0.0.1:5-6),exec(set_field:1->ct_mark))",
		"ip,actions=ct(commit,zone=NXM_NX_REG13[0..15],nat(src=10.0.0.1:5-7),exec(set_field:1->ct_mark))",
		"ip,actions=ct(commit,zone=NXM_NX_REG13[0..15],nat(src=10.0.0.1:5-6),exec(set_field:2->ct_mark))",
		"ip,actions=ct(commit,zone=NXM_NX_REG13[0..15],exec(set_field:1->ct_mark))",
	} {
		if sameAction(parse(base), parse(other)) {
			t.Errorf("%q and %q compare as the same action", base, other)
		}
	}
}

// TestCtInGroupBucket checks a load balancer's group: buckets that commit
// with destination NAT. A bucket has no match, so what ct needs of the
// packet is left to translation; the group prints and parses back whole.
func TestCtInGroupBucket(t *testing.T) {
	const in = "group_id=1,type=select,bucket=weight:100,actions=ct(commit,table=15,zone=NXM_NX_REG13[0..15],nat(dst=10.0.0.2:80),exec(set_field:1->ct_mark)),bucket=weight:100,actions=ct(commit,nat(dst=[fd00::2]:80))"
	const want = "group_id=1,type=select,bucket=bucket_id:0,weight:100,actions=ct(commit,table=15,zone=NXM_NX_REG13[0..15],nat(dst=10.0.0.2:80),exec(set_field:0x1->ct_mark)),bucket=bucket_id:1,weight:100,actions=ct(commit,nat(dst=[fd00::2]:80))"
	g, err := ParseGroup(in, GroupCmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	text := FormatGroup(g, GroupOF15)
	if text != want {
		t.Errorf("FormatGroup:\n got %s\nwant %s", text, want)
	}
	again, err := ParseGroup(text, GroupCmdAdd)
	if err != nil {
		t.Fatalf("%q does not parse back: %v", text, err)
	}
	if !again.equal(g) {
		t.Errorf("%q parses back as another group", text)
	}
	if _, err := ParseGroup("group_id=2,type=all,bucket=actions=ct(commit,exec(output:1))", GroupCmdAdd); err == nil {
		t.Error("a bucket's ct(exec(output:1)) was accepted")
	}
}

// TestCtExecLimit checks that exec(...) is bounded as an action list is.
func TestCtExecLimit(t *testing.T) {
	loads := strings.Repeat("load:1->NXM_NX_CT_MARK[],", MaxActions)
	if _, err := ParseFlow("ip,actions=ct(commit,exec("+loads[:len(loads)-1]+"))", CmdAdd); err != nil {
		t.Errorf("%d loads in exec: %v", MaxActions, err)
	}
	_, err := ParseFlow("ip,actions=ct(commit,exec("+loads+"load:1->NXM_NX_CT_MARK[]))", CmdAdd)
	if !errors.Is(err, ErrTooManyActions) {
		t.Errorf("%d loads in exec: %v; want ErrTooManyActions", MaxActions+1, err)
	}
}
