package flow

import (
	"errors"
	"slices"
	"testing"
)

// dumpText is t's rules as dump-flows lists them, without counters.
func dumpText(t *Table) []string {
	var out []string
	for _, r := range t.Dump(nil) {
		f := r.Flow()
		out = append(out, FormatFlow(&f))
	}
	return out
}

// TestTableTxn runs adds, a refused add, modifies and deletes as one
// Update and as separate calls: the tables end the same, the Update
// publishes once, and a lookup sees none of its changes before Update
// returns and all of them after.
func TestTableTxn(t *testing.T) {
	one, sep := NewTable(), NewTable()
	key := func(port uint32) Key { return Key{InPort: port, DlType: EthTypeIPv4} }
	base := one.Generation()
	var errs []error
	one.Update(func(tx *TableTxn) {
		for i := range 50 {
			f := mkFlow(uint16(100+i), out(2), inPort(uint32(i)), dlType(EthTypeIPv4))
			errs = append(errs, tx.Add(&f))
		}
		bad := mkFlow(7, []Action{{Type: ActGroup, Value: 9}}, inPort(99))
		if err := tx.CheckGroups(&bad); err == nil {
			t.Error("CheckGroups took a flow that names a missing group")
		}
		errs = append(errs, tx.Add(&bad))
		// Later steps see the earlier ones.
		mod := mkFlow(110, out(5), inPort(10), dlType(EthTypeIPv4))
		if n, added := tx.Modify(&mod, true, false); n != 1 || added {
			t.Errorf("Modify: %d rules, added %v; want 1, false", n, added)
		}
		none := mkFlow(9, out(5), inPort(1000))
		if n, added := tx.Modify(&none, true, false); n != 0 || added {
			t.Errorf("Modify of nothing without add: %d rules, added %v; want 0, false", n, added)
		}
		del := mkFlow(120, nil, inPort(20), dlType(EthTypeIPv4))
		if got := len(tx.Delete(&del, true)); got != 1 {
			t.Errorf("Delete removed %d rules, want 1", got)
		}
		k := key(30)
		if r := one.Snapshot().Lookup(&k, nil); r != nil {
			t.Errorf("a lookup during the Update found %s", describeRule(r))
		}
		if g := one.Generation(); g != base {
			t.Errorf("generation %d during the Update, want %d", g, base)
		}
	})
	if g := one.Generation(); g != base+1 {
		t.Errorf("generation %d after the Update, want %d: one publication", g, base+1)
	}
	for i, err := range errs {
		if i < 50 && err != nil {
			t.Errorf("add %d: %v", i, err)
		}
	}
	if err := errs[50]; !errors.Is(err, ErrBadOutGroup) {
		t.Errorf("add naming a missing group: %v, want ErrBadOutGroup", err)
	}

	for i := range 50 {
		f := mkFlow(uint16(100+i), out(2), inPort(uint32(i)), dlType(EthTypeIPv4))
		if err := sep.Add(&f); err != nil {
			t.Fatal(err)
		}
	}
	mod := mkFlow(110, out(5), inPort(10), dlType(EthTypeIPv4))
	sep.Modify(&mod, true)
	del := mkFlow(120, nil, inPort(20), dlType(EthTypeIPv4))
	sep.Delete(&del, true)
	if got, want := dumpText(one), dumpText(sep); !slices.Equal(got, want) {
		t.Errorf("one Update left\n%q\nseparate calls\n%q", got, want)
	}
	k := key(10)
	if r := one.Snapshot().Lookup(&k, nil); r == nil || r.Priority != 110 || len(r.Actions) != 1 || r.Actions[0].Port != 5 {
		t.Errorf("lookup after the Update: %s, want the modified priority 110 rule", describeRule(r))
	}

	// An Update that changes nothing publishes nothing.
	g := one.Generation()
	one.Update(func(tx *TableTxn) {
		f := mkFlow(1, nil, inPort(4242))
		tx.Delete(&f, true)
	})
	if one.Generation() != g {
		t.Errorf("an Update without a change published a new generation")
	}
}
