package flow

import "testing"

// parsedFlow parses s, a flow with a ct action, afresh: each call gives a new
// CT, so that only content can make two of them equal.
func parsedFlow(t *testing.T, s string) *Flow {
	t.Helper()
	f, err := ParseFlow(s, CmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestLearnSameCT: learning a flow whose ct action says what the learned
// rule's says (in a CT of its own) refreshes the rule rather than
// replacing it; a ct action that differs replaces it.
func TestLearnSameCT(t *testing.T) {
	const s = "table=3,priority=5,ip,nw_src=10.0.0.1,actions=ct(commit,zone=NXM_NX_REG13[0..15],nat(src=10.1.0.1),exec(set_field:0x1/0x1->ct_mark,set_field:0x5->ct_label)),output:2"
	tb := NewTable()
	first := tb.Learn([]Flow{*parsedFlow(t, s)})[0]
	again := tb.Learn([]Flow{*parsedFlow(t, s)})[0]
	if again != first {
		t.Errorf("learning the same ct flow again replaced the rule")
	}
	other := parsedFlow(t, "table=3,priority=5,ip,nw_src=10.0.0.1,actions=ct(commit,zone=NXM_NX_REG13[0..15],nat(src=10.1.0.2),exec(set_field:0x1/0x1->ct_mark,set_field:0x5->ct_label)),output:2")
	if changed := tb.Learn([]Flow{*other})[0]; changed == first || changed.Actions[0].CT.NAT.AddrMin != other.Actions[0].CT.NAT.AddrMin {
		t.Errorf("learning a flow with another ct action kept the rule's")
	}
}

// TestActionPoolSharesCT: rules whose ct actions are equal share one
// action list, as rules with any other equal actions do; ct actions that
// differ, if only in the spelling of exec(...), do not.
func TestActionPoolSharesCT(t *testing.T) {
	tb := NewTable()
	for _, s := range []string{
		"priority=1,ip,nw_src=10.0.0.1,actions=ct(commit,table=4,zone=7,exec(set_field:0x5->ct_mark))",
		"priority=1,ip,nw_src=10.0.0.2,actions=ct(commit,table=4,zone=7,exec(set_field:0x5->ct_mark))",
		"priority=1,ip,nw_src=10.0.0.3,actions=ct(commit,table=4,zone=7,exec(load:0x5->NXM_NX_CT_MARK[]))",
		"priority=1,ip,nw_src=10.0.0.4,actions=ct(commit,table=4,zone=8,exec(set_field:0x5->ct_mark))",
	} {
		if err := tb.Add(parsedFlow(t, s)); err != nil {
			t.Fatal(err)
		}
	}
	lists := map[uint32]*Action{}
	for _, r := range tb.Dump(nil) {
		lists[r.Match().Key.NwSrc&0xff] = &r.Actions[0]
	}
	if lists[1] != lists[2] {
		t.Errorf("two rules with the same ct action hold two action lists")
	}
	if lists[3] == lists[1] || lists[4] == lists[1] {
		t.Errorf("rules whose ct actions differ share an action list")
	}
	if lists[1].CT.equal(lists[4].CT) || !lists[1].CT.equal(lists[3].CT) {
		t.Errorf("(*CT).equal: zone 7 vs 8 equal, or set_field vs load unequal")
	}
}
