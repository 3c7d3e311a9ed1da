package flow

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
)

// conjPipeline is a firewall of conjunctive matches in table 0 and
// forwarding in table 1.
var conjPipeline = []string{
	"table=0,priority=500,ip,nw_src=10.0.66.0/24,actions=drop",
	"table=0,priority=300,ip,nw_src=10.0.1.0/24,actions=conjunction(10,1/3)",
	"table=0,priority=300,ip,nw_src=10.0.2.0/24,actions=conjunction(10,1/3)",
	"table=0,priority=300,ip,in_port=1,actions=conjunction(10,2/3)",
	"table=0,priority=300,ip,in_port=2,actions=conjunction(10,2/3)",
	"table=0,priority=300,tcp,tp_dst=0x1f90/0xfffe,actions=conjunction(10,3/3)",
	"table=0,priority=300,tcp,tp_dst=443,actions=note:ab,conjunction(10,3/3)",
	"table=0,priority=300,conj_id=10,ip,actions=load:0xa->NXM_NX_REG3[],resubmit(,1)",
	"table=0,priority=200,ip,nw_dst=10.0.9.0/24,actions=conjunction(20,1/2),conjunction(21,1/2)",
	"table=0,priority=200,udp,udp_dst=53,actions=conjunction(20,2/2)",
	"table=0,priority=200,tcp,tp_dst=53,actions=conjunction(21,2/2)",
	"table=0,priority=200,conj_id=20,ip,actions=load:0x14->NXM_NX_REG3[],resubmit(,1)",
	"table=0,priority=200,conj_id=21,ip,actions=load:0x15->NXM_NX_REG3[],resubmit(,1)",
	"table=0,priority=250,ip,nw_dst=10.0.5.0/24,actions=conjunction(30,1/2)",
	"table=0,priority=250,tcp,actions=conjunction(30,2/2)",
	"table=0,priority=250,ip,nw_dst=10.0.5.7,actions=output:7",
	"table=0,priority=0,actions=drop",
	"table=1,priority=20,reg3=0x15,actions=output:4",
	"table=1,priority=10,ip,nw_dst=10.0.9.0/24,actions=output:3",
	"table=1,priority=10,ip,nw_dst=10.0.8.0/24,actions=output:2",
}

func conjTable(t *testing.T, flows []string) *Table {
	t.Helper()
	tbl := NewTable()
	var fs []Flow
	for _, s := range flows {
		f, err := ParseFlow(s, CmdAdd)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		fs = append(fs, *f)
	}
	if err := tbl.AddFlows(fs); err != nil {
		t.Fatal(err)
	}
	return tbl
}

func TestConjunctionTranslate(t *testing.T) {
	tbl := conjTable(t, conjPipeline)
	tests := []struct {
		name    string
		inFlow  string
		wantAct string
		wantReg uint32
	}{
		{"all three clauses", "in_port=1,tcp,nw_src=10.0.1.5,nw_dst=10.0.9.1,tp_dst=8080", "output:3", 0xa},
		{"port range by mask", "in_port=2,tcp,nw_src=10.0.2.5,nw_dst=10.0.8.1,tp_dst=8081", "output:2", 0xa},
		{"missing clause 2", "in_port=3,tcp,nw_src=10.0.1.5,nw_dst=10.0.8.1,tp_dst=8080", "drop", 0},
		{"missing clause 1, lower conjunction", "in_port=1,tcp,nw_src=10.0.7.5,nw_dst=10.0.9.1,tp_dst=53", "output:4", 0x15},
		{"second id of one clause flow", "in_port=3,udp,nw_src=10.0.7.5,nw_dst=10.0.9.1,tp_dst=53", "output:3", 0x14},
		{"higher ordinary flow wins", "in_port=1,tcp,nw_src=10.0.66.5,nw_dst=10.0.9.1,tp_dst=443", "drop", 0},
		{"conjunction without its flow falls through", "in_port=1,tcp,nw_src=10.0.7.5,nw_dst=10.0.5.1,tp_dst=1", "drop", 0},
		{"ordinary flow of the same priority wins", "in_port=1,tcp,nw_src=10.0.7.5,nw_dst=10.0.5.7,tp_dst=1", "output:7", 0},
		{"no clause", "in_port=1,udp,nw_src=10.0.7.5,nw_dst=10.0.8.1,tp_dst=1", "drop", 0},
	}
	s := tbl.Snapshot()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMatch(tc.inFlow)
			if err != nil {
				t.Fatal(err)
			}
			k := m.Key
			tr := s.Translate(&k, false)
			if got := FormatActions(tr.Actions); got != tc.wantAct {
				t.Errorf("actions %s, want %s", got, tc.wantAct)
			}
			if tr.Final.Regs[3] != tc.wantReg || tr.Final.ConjID != 0 {
				t.Errorf("final reg3=%#x conj_id=%d, want reg3=%#x conj_id=0", tr.Final.Regs[3], tr.Final.ConjID, tc.wantReg)
			}
			if tr.Mask.ConjID != 0 {
				t.Errorf("conj_id in the megaflow mask")
			}
			for _, r := range tr.Rules {
				if conjunctive(r.Actions) {
					t.Errorf("a clause flow was hit: %s", ruleText(r))
				}
			}
		})
	}
}

// TestConjunctionFallsBack checks that when a clause flow's conjunction
// does not complete, a flow with the same match at a lower priority takes
// its place, as in Open vSwitch's classifier.
func TestConjunctionFallsBack(t *testing.T) {
	tbl := conjTable(t, []string{
		"priority=300,ip,nw_src=10.0.1.0/24,actions=conjunction(40,1/2)",
		"priority=100,ip,nw_src=10.0.1.0/24,actions=output:9",
		"priority=300,tcp,actions=conjunction(40,2/2)",
		"priority=300,conj_id=40,ip,actions=output:4",
		"priority=0,actions=output:1",
	})
	for _, tc := range []struct{ in, want string }{
		{"tcp,nw_src=10.0.1.5", "output:4"},
		{"udp,nw_src=10.0.1.5", "output:9"},
		{"udp,nw_src=10.0.2.5", "output:1"},
	} {
		m, err := ParseMatch(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		k := m.Key
		k.InPort = 2
		tr := tbl.Snapshot().Translate(&k, false)
		if got := FormatActions(tr.Actions); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestConjunctionMegaflow checks that the megaflow of a conjunctive match
// holds every field a clause flow consulted, and that packets that differ
// only outside it get the same actions.
func TestConjunctionMegaflow(t *testing.T) {
	tbl := conjTable(t, conjPipeline)
	m, _ := ParseMatch("in_port=1,tcp,nw_src=10.0.1.5,nw_dst=10.0.9.1,tp_dst=8080")
	k := m.Key
	tr := tbl.Snapshot().Translate(&k, false)
	if tr.Mask.NwSrc == 0 || tr.Mask.TpDst == 0 || tr.Mask.InPort == 0 {
		t.Errorf("megaflow %s misses a clause's field", FormatMatch(&Match{Key: k, Mask: tr.Mask}, DefaultPriority))
	}
	// A packet that differs from k in a clause field's consulted bits must
	// not be covered; one that differs elsewhere is.
	q := k
	q.TpDst = 8082 // outside 0x1f90/0xfffe
	if q.TpDst&tr.Mask.TpDst == k.TpDst&tr.Mask.TpDst {
		t.Errorf("tp_dst 8082 is in the megaflow of 8080: %#x", tr.Mask.TpDst)
	}
}

func TestConjunctionParse(t *testing.T) {
	tests := []struct {
		in, wantErr, wantFmt string
	}{
		{in: "ip,actions=conjunction(1,1/2)", wantFmt: "ip actions=conjunction(1,1/2)"},
		{in: "ip,actions=note:01,conjunction(0x10,2/64)", wantFmt: "ip actions=note:01.00.00.00.00.00,conjunction(16,2/64)"},
		{in: "priority=5,conj_id=3,ip,pkt_mark=1,actions=output:1", wantFmt: "priority=5,pkt_mark=0x1,conj_id=3,ip actions=output:1"},
		{in: "ip,actions=conjunction(1,1/2),output:1", wantErr: `"conjunction" actions may be used along with "note" but not any other kind of action (such as the "output" action used here)`},
		{in: "ip,actions=load:1->NXM_NX_REG0[],conjunction(1,1/2)", wantErr: `(such as the "set_field" action used here)`},
		{in: "ip,actions=conjunction(1,3/2)", wantErr: "clause index must be less than or equal to number of clauses"},
		{in: "ip,actions=conjunction(1,0/2)", wantErr: "clause index must be positive"},
		{in: "ip,actions=conjunction(1,1/1)", wantErr: "conjunction must have at least 2 clauses"},
		{in: "ip,actions=conjunction(1,1/65)", wantErr: "conjunction must have at most 64 clauses"},
		{in: "ip,actions=conjunction(1)", wantErr: `"conjunction" syntax is "conjunction(id,i/n)"`},
		{in: "ip,actions=conjunction(1,1/2),conjunction(1,2/3)", wantErr: "conjunction 1 has 2 clauses"},
		{in: "conj_id=3/1,actions=drop", wantErr: "not maskable"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			f, err := ParseFlow(tc.in, CmdAdd)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := FormatFlow(f); got != tc.wantFmt {
				t.Errorf("formats as %q, want %q", got, tc.wantFmt)
			}
		})
	}
}

// TestConjunctionInconsistentClauses checks that a flow giving a
// conjunctive match another number of clauses than a flow of the same
// table and priority is refused, and that the table is then unchanged.
func TestConjunctionInconsistentClauses(t *testing.T) {
	tbl := conjTable(t, []string{"priority=5,ip,actions=conjunction(1,1/2)"})
	gen := tbl.Generation()
	for _, s := range []string{
		"priority=5,tcp,actions=conjunction(1,2/3)",
		"priority=5,udp,actions=output:1\npriority=5,tcp,actions=conjunction(1,2/3)",
	} {
		var fs []Flow
		for _, l := range strings.Split(s, "\n") {
			f, err := ParseFlow(l, CmdAdd)
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, *f)
		}
		err := tbl.AddFlows(fs)
		var ae *AddError
		if !errors.Is(err, ErrConjunctionClauses) || !errors.As(err, &ae) || ae.Index != len(fs)-1 {
			t.Fatalf("AddFlows(%q): %v, want an AddError for flow %d wrapping ErrConjunctionClauses", s, err, len(fs)-1)
		}
		if tbl.Generation() != gen || tbl.Len() != 1 {
			t.Errorf("a refused add changed the table")
		}
	}
	// Other priorities, other tables, and the replacement of the only
	// flow that disagreed are fine.
	for _, s := range []string{
		"priority=6,tcp,actions=conjunction(1,2/3)",
		"table=1,priority=5,tcp,actions=conjunction(1,2/3)",
		"priority=5,ip,actions=conjunction(1,1/4)",
		"priority=5,tcp,actions=conjunction(1,2/4)",
	} {
		f, err := ParseFlow(s, CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		if err := tbl.Add(f); err != nil {
			t.Errorf("Add(%q): %v", s, err)
		}
	}
}

// conjMixNames are actions that may not follow a conjunction, with the kind
// of action Open vSwitch names in its refusal.
var conjMixNames = []struct{ action, kind string }{
	{"ct", "ct"},
	{"ct(commit)", "ct"},
	{"ct_clear", "ct_clear"},
	{"learn(table=1)", "learn"},
	{"fin_timeout(idle_timeout=1)", "fin_timeout"},
	{"controller", "output"},
	{"controller(reason=no_match)", "controller"},
	{"controller(reason=action,max_len=10)", "output"},
	{"controller(userdata=01)", "controller"},
	{"normal", "output"},
	{"in_port", "output"},
	{"output:NXM_NX_REG0[]", "output_reg"},
	{"mod_vlan_vid:3", "set_vlan_vid"},
	{"pop_vlan", "strip_vlan"},
	{"load:1->NXM_NX_REG0[]", "set_field"},
	{"resubmit(,2)", "resubmit"},
	{"group:1", "group"},
	{"clone(drop)", "clone"},
	{"dec_ttl", "dec_ttl"},
}

// TestConjunctionMixNamesAction checks that a list mixing conjunction with
// another action names that action's kind as ovs-ofctl does, and that
// ovs-ofctl, when present, agrees with the table.
func TestConjunctionMixNamesAction(t *testing.T) {
	const prefix = "ip,actions=conjunction(1,1/2),"
	for _, tc := range conjMixNames {
		want := fmt.Sprintf("(such as the %q action used here)", tc.kind)
		_, err := ParseFlow(prefix+tc.action, CmdAdd)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one with %s", tc.action, err, want)
		}
	}
	bin := ofctlBinary(t)
	for _, tc := range conjMixNames {
		out, _ := exec.Command(bin, "parse-flow", prefix+tc.action).CombinedOutput()
		want := fmt.Sprintf("(such as the %q action used here)", tc.kind)
		if !strings.Contains(string(out), want) {
			t.Errorf("ovs-ofctl parse-flow %s: %q, the table says %s", tc.action, out, want)
		}
	}
}

// TestConjunctionIndexFollowsTable: after every add, modify and delete
// of a random sequence, the index of conjunction actions equals a count
// over the installed rules, and an add is refused exactly when an
// installed rule that it does not replace gives its conjunctive match
// another number of clauses.
func TestConjunctionIndexFollowsTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	matches := []string{"ip", "tcp", "udp", "icmp", "arp", "ip,nw_src=10.0.0.1", "tcp,tp_dst=80"}
	tbl := NewTable()
	recount := func() map[conjKey]conjRefs {
		want := map[conjKey]conjRefs{}
		for _, r := range tbl.Dump(nil) {
			for j := range r.Actions {
				if a := &r.Actions[j]; a.Type == ActConjunction {
					c := clauseOf(a)
					ck := conjKey{r.Table, r.Priority, c.id}
					cr := want[ck]
					cr.refs++
					cr.n = c.n
					want[ck] = cr
				}
			}
		}
		return want
	}
	for step := range 3000 {
		m := matches[rng.IntN(len(matches))]
		prio := 5 + rng.IntN(2)
		id, n := 1+rng.IntN(2), 2+rng.IntN(2)
		acts := fmt.Sprintf("conjunction(%d,%d/%d)", id, 1+rng.IntN(n), n)
		if rng.IntN(4) == 0 {
			acts = "output:1"
		}
		s := fmt.Sprintf("priority=%d,%s,actions=%s", prio, m, acts)
		switch op := rng.IntN(10); {
		case op < 6:
			f, err := ParseFlow(s, CmdAdd)
			if err != nil {
				t.Fatal(err)
			}
			// The reference: a scan of the installed rules.
			refuse := false
			if acts != "output:1" {
				fm := f.Match
				fm.Normalize()
				for _, r := range tbl.Dump(nil) {
					if r.Table != f.Table || int(r.Priority) != prio || r.Match() == fm {
						continue
					}
					for j := range r.Actions {
						if a := &r.Actions[j]; a.Type == ActConjunction {
							if c := clauseOf(a); int(c.id) == id && int(c.n) != n {
								refuse = true
							}
						}
					}
				}
			}
			err = tbl.Add(f)
			if refuse != errors.Is(err, ErrConjunctionClauses) || (err != nil && !refuse) {
				t.Fatalf("step %d: Add(%q): %v, want refused %v", step, s, err, refuse)
			}
		case op < 8:
			strict := rng.IntN(2) == 0
			f, err := ParseFlow(m, CmdDelete)
			if err != nil {
				t.Fatal(err)
			}
			f.Priority = uint16(prio) // as del-flows --strict takes it
			tbl.Delete(f, strict)
		default:
			// A modify keeps the clause counts consistent (it is not
			// checked, as in Open vSwitch): it takes conjunction
			// actions away, or gives ones of the count installed.
			s = fmt.Sprintf("priority=%d,%s,actions=output:1", prio, m)
			if cr, ok := recount()[conjKey{0, uint16(prio), uint32(id)}]; ok && rng.IntN(2) == 0 {
				s = fmt.Sprintf("priority=%d,%s,actions=conjunction(%d,1/%d)", prio, m, id, cr.n)
			}
			f, err := ParseFlow(s, CmdModify)
			if err != nil {
				t.Fatal(err)
			}
			tbl.Modify(f, true)
		}
		tbl.mu.Lock()
		got := maps.Clone(tbl.conjs)
		tbl.mu.Unlock()
		if want := recount(); !maps.Equal(got, want) {
			t.Fatalf("step %d (%s): index %v, installed rules %v", step, s, got, want)
		}
	}
}
