package flow

import (
	"strings"
	"testing"
)

// TestTablesAreSeparate checks add-flow, mod-flows, del-flows and
// dump-flows across tables: the same match in two tables is two rules, a
// command with table=N touches table N only, one without table= touches
// every table, and dumps list tables in order.
func TestTablesAreSeparate(t *testing.T) {
	parse := func(s string, cmd Command) *Flow {
		t.Helper()
		f, err := ParseFlow(s, cmd)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		return f
	}
	dump := func(tbl *Table, sel string) string {
		t.Helper()
		var out []string
		for _, r := range tbl.Dump(parse(sel, CmdDelete)) {
			out = append(out, ruleText(r))
		}
		return strings.Join(out, "\n")
	}
	tbl := NewTable()
	for _, s := range []string{
		"table=3,ip,actions=output:3",
		"ip,actions=output:1",
		"table=1,ip,actions=output:2",
		"table=1,arp,actions=output:4",
	} {
		tbl.Add(parse(s, CmdAdd))
	}
	if got, want := dump(tbl, ""), "ip actions=output:1\ntable:1 ip actions=output:2\ntable:1 arp actions=output:4\ntable:3 ip actions=output:3"; got != want {
		t.Fatalf("dump-flows\n%s\nwant\n%s", got, want)
	}
	if got, want := dump(tbl, "table=1"), "table:1 ip actions=output:2\ntable:1 arp actions=output:4"; got != want {
		t.Errorf("dump-flows table=1\n%s\nwant\n%s", got, want)
	}
	if n, added := tbl.Modify(parse("table=1,ip,actions=output:9", CmdModify), true); n != 1 || added {
		t.Errorf("mod-flows --strict table=1: %d changed, added %v", n, added)
	}
	if n, _ := tbl.Modify(parse("ip,actions=drop", CmdModify), false); n != 3 {
		t.Errorf("mod-flows ip (every table): %d changed, want 3", n)
	}
	if got := len(tbl.Delete(parse("table=3", CmdDelete), false)); got != 1 {
		t.Errorf("del-flows table=3 removed %d, want 1", got)
	}
	if got, want := dump(tbl, ""), "ip actions=drop\ntable:1 ip actions=drop\ntable:1 arp actions=output:4"; got != want {
		t.Errorf("after mod-flows and del-flows\n%s\nwant\n%s", got, want)
	}
	k := Key{DlType: EthTypeIPv4}
	if r := tbl.Snapshot().LookupIn(1, &k, nil); r == nil || r.Table != 1 {
		t.Errorf("lookup in table 1: %v", r)
	}
	if r := tbl.Snapshot().LookupIn(3, &k, nil); r != nil {
		t.Errorf("lookup in emptied table 3: %v", r)
	}
	if got := len(tbl.Delete(parse("", CmdDelete), false)); got != 3 || tbl.Len() != 0 {
		t.Errorf("del-flows removed %d, left %d", got, tbl.Len())
	}
}
