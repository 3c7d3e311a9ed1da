package flow

import (
	"errors"
	"fmt"
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

// TestTableUpdateAtomic runs adds (to a new mask, to an existing one, one
// replacing a rule), a modify, deletes and group changes (a group delete
// takes a flow with it) as one UpdateAtomic that then fails: nothing is
// published, the table holds the same rules as before (the same Rules,
// whose counters go on), the groups are as before, and lookups and their
// megaflow masks (which the prefix tries narrow) agree with a table that
// never saw the change, before and after a later publication. The same
// change, kept, is published once and leaves the table as Update does.
func TestTableUpdateAtomic(t *testing.T) {
	build := func() *Table {
		tb := NewTable()
		for i := range 20 {
			f := mkFlow(uint16(100+i), out(2), inPort(uint32(i)), dlType(EthTypeIPv4))
			if err := tb.Add(&f); err != nil {
				t.Fatal(err)
			}
		}
		if err := tb.AddGroups([]*Group{{ID: 7, Type: GroupAll, Buckets: []Bucket{{Actions: out(4)}}}}); err != nil {
			t.Fatal(err)
		}
		for _, f := range []Flow{
			mkFlow(50, out(3), dlType(EthTypeIPv4), nwDst(0x0a000000, 8)),
			mkFlow(60, []Action{{Type: ActGroup, Value: 7}}, inPort(77)),
		} {
			if err := tb.Add(&f); err != nil {
				t.Fatal(err)
			}
		}
		return tb
	}
	change := func(tx *TableTxn) {
		for _, f := range []Flow{
			mkFlow(70, out(5), dlType(EthTypeIPv4), nwDst(0x0a010200, 24)), // a new mask
			mkFlow(105, out(6), inPort(5), dlType(EthTypeIPv4)),            // replaces a rule
			mkFlow(130, out(7), inPort(30), dlType(EthTypeIPv4)),
		} {
			if err := tx.Add(&f); err != nil {
				t.Fatal(err)
			}
		}
		mod := mkFlow(110, out(8), inPort(10), dlType(EthTypeIPv4))
		tx.Modify(&mod, true, false)
		del := mkFlow(112, nil, inPort(12), dlType(EthTypeIPv4))
		tx.Delete(&del, true)
		all8 := mkFlow(0, nil, dlType(EthTypeIPv4), nwDst(0x0a000000, 8))
		all8.Table = TableAll
		tx.Delete(&all8, false)
		if n, gone := tx.DeleteGroups(7); n != 1 || len(gone) != 1 {
			t.Errorf("DeleteGroups: %d groups, %d flows; want 1 and 1", n, len(gone))
		}
		if err := tx.AddGroups([]*Group{{ID: 8, Type: GroupAll, Buckets: []Bucket{{Actions: out(1)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	keys := []Key{
		{InPort: 5, DlType: EthTypeIPv4, NwDst: 0x0a010203},
		{InPort: 10, DlType: EthTypeIPv4},
		{InPort: 12, DlType: EthTypeIPv4, NwDst: 0x0a7f0001},
		{InPort: 30, DlType: EthTypeIPv4, NwDst: 0x0b000001},
		{InPort: 77, DlType: EthTypeIPv6},
		{InPort: 99, DlType: EthTypeIPv4, NwDst: 0x0a010299},
	}
	agree := func(when string, a, b *Table) {
		t.Helper()
		if got, want := dumpText(a), dumpText(b); !slices.Equal(got, want) {
			t.Errorf("%s: the table holds\n%q\nwant\n%q", when, got, want)
		}
		for _, k := range keys {
			var wa, wb Key
			ra, rb := a.Snapshot().Lookup(&k, &wa), b.Snapshot().Lookup(&k, &wb)
			if describeRule(ra) != describeRule(rb) || wa != wb {
				t.Errorf("%s: lookup of %+v: %s with mask %+v, want %s with mask %+v", when, k, describeRule(ra), wa, describeRule(rb), wb)
			}
		}
		if (a.Snapshot().Group(7) == nil) != (b.Snapshot().Group(7) == nil) || (a.Snapshot().Group(8) == nil) != (b.Snapshot().Group(8) == nil) {
			t.Errorf("%s: groups %v, want %v", when, a.Groups(), b.Groups())
		}
	}

	one, ref := build(), build()
	before, gen := one.Dump(nil), one.Generation()
	stop := errors.New("stop")
	err := one.UpdateAtomic(func(tx *TableTxn) error {
		change(tx)
		return stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("UpdateAtomic returned %v, want its function's error", err)
	}
	if g := one.Generation(); g != gen {
		t.Errorf("a discarded UpdateAtomic published %d times", g-gen)
	}
	if after := one.Dump(nil); !slices.Equal(after, before) {
		t.Errorf("after a discarded UpdateAtomic the rules are\n%v\nwant the same as before\n%v", after, before)
	}
	agree("after a discarded change", one, ref)
	// The writer's state was reverted too: a later change publishes
	// what a table that never saw the discarded one publishes.
	for _, tb := range []*Table{one, ref} {
		f := mkFlow(1, out(9), inPort(999))
		if err := tb.Add(&f); err != nil {
			t.Fatal(err)
		}
	}
	agree("after a later add", one, ref)

	// A panic discards the change too.
	func() {
		defer func() { recover() }()
		one.UpdateAtomic(func(tx *TableTxn) error {
			change(tx)
			panic("half-way")
		})
	}()
	agree("after a change that panicked", one, ref)

	gen = one.Generation()
	if err := one.UpdateAtomic(func(tx *TableTxn) error { change(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	ref.Update(change)
	if g := one.Generation(); g != gen+1 {
		t.Errorf("a kept UpdateAtomic published %d times, want once", g-gen)
	}
	agree("after a kept change", one, ref)
}

// TestTableTxnSnapshot looks up through tx.Snapshot in the middle of an
// atomic run: it sees the changes so far (an add, a modify, a delete,
// in a group changed twice), not those after, and neither the published
// snapshot nor the run's outcome changes, whether it commits or fails.
func TestTableTxnSnapshot(t *testing.T) {
	tbl := NewTable()
	for _, p := range []uint32{1, 2} {
		f := mkFlow(100, out(p+10), inPort(p), dlType(EthTypeIPv4))
		if err := tbl.Add(&f); err != nil {
			t.Fatal(err)
		}
	}
	outOf := func(s *TableSnapshot, port uint32) uint32 {
		k := Key{InPort: port, DlType: EthTypeIPv4}
		r := s.Lookup(&k, nil)
		if r == nil {
			return 0
		}
		return r.Actions[0].Port
	}
	for _, fail := range []bool{false, true} {
		base := tbl.Generation()
		err := tbl.UpdateAtomic(func(tx *TableTxn) error {
			add := mkFlow(100, out(13), inPort(3), dlType(EthTypeIPv4))
			if err := tx.Add(&add); err != nil {
				return err
			}
			mod := mkFlow(100, out(21), inPort(1), dlType(EthTypeIPv4))
			tx.Modify(&mod, true, false)
			mid := tx.Snapshot()
			for _, c := range []struct{ port, want uint32 }{{1, 21}, {2, 12}, {3, 13}, {4, 0}} {
				if got := outOf(mid, c.port); got != c.want {
					t.Errorf("mid-run snapshot: in_port=%d goes to %d, want %d", c.port, got, c.want)
				}
			}
			if got := outOf(tbl.Snapshot(), 3); got != 0 {
				t.Errorf("the published snapshot sees the run's add (output %d)", got)
			}
			del := mkFlow(100, nil, inPort(2), dlType(EthTypeIPv4))
			tx.Delete(&del, true)
			later := tx.Snapshot()
			if got := outOf(later, 2); got != 0 {
				t.Errorf("a later snapshot still finds in_port=2 (output %d)", got)
			}
			if got := outOf(later, 1); got != 21 {
				t.Errorf("a later snapshot: in_port=1 goes to %d, want 21", got)
			}
			if fail {
				return errors.New("refused")
			}
			return nil
		})
		if fail != (err != nil) {
			t.Fatalf("fail %v: UpdateAtomic returned %v", fail, err)
		}
		want := map[uint32]uint32{1: 21, 2: 0, 3: 13}
		if fail {
			want = map[uint32]uint32{1: 11, 2: 12, 3: 0}
			if g := tbl.Generation(); g != base {
				t.Errorf("a failed run published (generation %d, was %d)", g, base)
			}
		}
		for p, w := range want {
			if got := outOf(tbl.Snapshot(), p); got != w {
				t.Errorf("fail %v: after the run in_port=%d goes to %d, want %d", fail, p, got, w)
			}
		}
		if fail {
			continue
		}
		// Back to the first state for the failing run.
		tbl.Update(func(tx *TableTxn) {
			del := mkFlow(100, nil, inPort(3), dlType(EthTypeIPv4))
			tx.Delete(&del, true)
			for _, p := range []uint32{1, 2} {
				f := mkFlow(100, out(p+10), inPort(p), dlType(EthTypeIPv4))
				tx.Add(&f)
			}
		})
	}
}

// TestTableTxnAddBatch installs flows built into a FlowBatch one at a
// time (as a bundle's adds are, with no Grow), in runs, against the same
// flows added one by one: the tables end the same, the runs take the
// batch's flows in order, and a refused flow (a missing group, a
// conjunction's clauses given another count by an earlier flow of the
// run) is named by its place in its run, with the error Add gives it.
func TestTableTxnAddBatch(t *testing.T) {
	lines := []string{
		"priority=5,ip,actions=conjunction(1,1/2)",
		"table=1,priority=7,in_port=3,actions=output:2",
		"priority=9,tcp,tp_dst=80,actions=resubmit(,1)",
		"table=1,priority=7,in_port=3,actions=output:4", // replaces the second
		"priority=5,udp,actions=conjunction(1,2/2)",
	}
	for n := range 70 {
		lines = append(lines, fmt.Sprintf("table=2,priority=%d,ip,nw_src=10.0.%d.0/24,actions=drop", 100+n, n))
	}
	flows := make([]Flow, len(lines))
	for i, l := range lines {
		f, err := ParseFlow(l, CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		flows[i] = *f
	}
	one, sep := NewTable(), NewTable()
	var b FlowBatch
	for i := range flows {
		f := flows[i]
		b.Add(&f)
	}
	err := one.UpdateAtomic(func(tx *TableTxn) error {
		for _, run := range []int{2, 1, 50, len(flows) - 53} {
			if err := tx.AddBatch(&b, run); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range flows {
		if err := sep.Add(&flows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := dumpText(one), dumpText(sep); !slices.Equal(got, want) {
		t.Errorf("flows added from a batch:\n%q\nwant, added one by one:\n%q", got, want)
	}
	if b.Len() != 0 {
		t.Errorf("%d flows left in the batch after all were installed", b.Len())
	}

	for _, tc := range []struct {
		name      string
		in        []string
		wantIndex int
		wantErr   error
	}{
		{"missing group", []string{"priority=1,actions=output:1", "priority=2,actions=group:9", "priority=3,actions=output:2"}, 1, ErrBadOutGroup},
		{"conjunction clauses", []string{"priority=1,actions=output:1", "priority=5,tcp,actions=conjunction(2,1/2)", "priority=5,udp,actions=conjunction(2,2/3)", "priority=2,actions=group:9"}, 2, ErrConjunctionClauses},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl := NewTable()
			gen := tbl.Generation()
			var b FlowBatch
			for _, l := range tc.in {
				f, err := ParseFlow(l, CmdAdd)
				if err != nil {
					t.Fatal(err)
				}
				b.Add(f)
			}
			err := tbl.UpdateAtomic(func(tx *TableTxn) error { return tx.AddBatch(&b, len(tc.in)) })
			var ae *AddError
			if !errors.Is(err, tc.wantErr) || !errors.As(err, &ae) || ae.Index != tc.wantIndex {
				t.Fatalf("AddBatch: %v, want an AddError for flow %d wrapping %v", err, tc.wantIndex, tc.wantErr)
			}
			if tbl.Generation() != gen || tbl.Len() != 0 {
				t.Errorf("a refused run changed the table: generation %d (was %d), %d flows", tbl.Generation(), gen, tbl.Len())
			}
		})
	}
}
