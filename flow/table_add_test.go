package flow

import (
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTableAddIndexesEachRuleFewTimes adds rules one call each, as flow
// mods over OpenFlow arrive, and checks through the table's count of
// indexed rules that the work per add does not grow with the rules already
// in the group: a rebuild of the group per add indexes n²/2 rules in all.
func TestTableAddIndexesEachRuleFewTimes(t *testing.T) {
	const n = 4096
	tbl := NewTable()
	for i := range n {
		f := mkFlow(100, out(1), inPort(1), dlType(EthTypeIPv4), nwDst(0x0a000000+uint32(i), 32))
		if err := tbl.Add(&f); err != nil {
			t.Fatal(err)
		}
	}
	if got := tbl.Len(); got != n {
		t.Fatalf("table holds %d rules, want %d", got, n)
	}
	limit := uint64(n * (bits.Len(n) + 1))
	if tbl.indexed > limit {
		t.Fatalf("%d single adds indexed %d rules, want at most %d (log2 n + 1 per rule)", n, tbl.indexed, limit)
	}
	levels := len(tbl.Snapshot().subtables(0))
	if levels > bits.Len(n) {
		t.Fatalf("the group is %d subtables, want at most %d", levels, bits.Len(n))
	}
	t.Logf("%d adds indexed %d rules; the group is %d subtables", n, tbl.indexed, levels)

	// A change other than an add makes the group one subtable again.
	f := mkFlow(100, nil, inPort(1), dlType(EthTypeIPv4), nwDst(0x0a000000, 32))
	if got := len(tbl.Delete(&f, true)); got != 1 {
		t.Fatalf("delete removed %d rules, want 1", got)
	}
	if got := len(tbl.Snapshot().subtables(0)); got != 1 {
		t.Fatalf("after a delete the group is %d subtables, want 1", got)
	}
}

// TestLookupMegaflowPropertySingleAdds is TestLookupMegaflowProperty with
// the rules added one call each, so that groups are split between levels,
// and with some deleted and modified between the adds.
func TestLookupMegaflowPropertySingleAdds(t *testing.T) {
	for _, seed := range []uint64{100, 108, 109, 7} {
		g := newFlowGen(seed)
		tbl := NewTable()
		ref := &refTable{}
		fs := make([]Flow, 300)
		for i := range fs {
			fs[i] = g.flow()
			ref.add(&fs[i])
			if err := tbl.Add(&fs[i]); err != nil {
				t.Fatal(err)
			}
		}
		var all Key
		for i := range fs {
			orWords(&all, &fs[i].Match.Mask)
		}
		s := tbl.Snapshot()
		for range raceRounds(3000) {
			var k Key
			if g.coin(1, 2) {
				k = g.keyFor(&ref.rules[g.r.IntN(len(ref.rules))].match)
			} else {
				k = g.key()
			}
			var wc Key
			r := s.Lookup(&k, &wc)
			want := ref.lookup(&k)
			if !sameRule(r, want) {
				t.Fatalf("seed %d: lookup %+v: got %s, want %s", seed, k, describeRule(r), describeRef(want))
			}
			if !maskCovers(&all, &wc) {
				t.Fatalf("seed %d: consulted bits %+v that no rule matches on", seed, wc)
			}
			checkMegaflowProperty(t, g, ref, &k, &wc, want)
		}
	}
}

// TestConjunctionSingleAdds checks that conjunctive matches translate the
// same with their flows added one call each (groups split between levels)
// as with one add of them all.
func TestConjunctionSingleAdds(t *testing.T) {
	flows := append(slices.Clone(conjPipeline),
		"priority=300,ip,nw_src=10.0.1.0/24,actions=conjunction(40,1/2)",
		"priority=100,ip,nw_src=10.0.1.0/24,actions=output:9",
		"priority=300,tcp,actions=conjunction(40,2/2)",
		"priority=300,conj_id=40,ip,actions=output:4",
		"priority=290,ip,nw_src=10.0.1.0/24,actions=conjunction(41,1/2)",
		"priority=290,udp,actions=conjunction(41,2/2)",
		"priority=290,conj_id=41,ip,actions=output:5",
	)
	batch := conjTable(t, flows)
	single := NewTable()
	for _, s := range flows {
		f, err := ParseFlow(s, CmdAdd)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if err := single.Add(f); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for _, proto := range []string{"tcp", "udp"} {
		for _, src := range []string{"10.0.1.5", "10.0.2.5"} {
			for _, dst := range []string{"10.0.9.1", "10.0.5.7", "10.0.5.8", "10.0.8.1"} {
				for _, port := range []string{"53", "80", "8080"} {
					for _, in := range []uint32{1, 2} {
						m, err := ParseMatch(proto + ",nw_src=" + src + ",nw_dst=" + dst + ",tp_dst=" + port)
						if err != nil {
							t.Fatal(err)
						}
						k := m.Key
						k.InPort = in
						want := FormatActions(batch.Snapshot().Translate(&k, false).Actions)
						got := FormatActions(single.Snapshot().Translate(&k, false).Actions)
						if got != want {
							t.Errorf("in_port=%d,%s,nw_src=%s,nw_dst=%s,tp_dst=%s: %s with single adds, %s with one", in, proto, src, dst, port, got, want)
						}
					}
				}
			}
		}
	}
	if len(single.Snapshot().subtables(0)) <= len(batch.Snapshot().subtables(0)) {
		t.Logf("single adds made %d subtables, one add %d: the groups were not split", len(single.Snapshot().subtables(0)), len(batch.Snapshot().subtables(0)))
	}
}

// TestTablePublishKeepsUnchangedTables checks that a change to one table
// publishes the other tables' lists of subtables as they were, rather
// than gathering and sorting every table's subtables again, and that the
// changed table's new list leaves the one published before it as it was.
func TestTablePublishKeepsUnchangedTables(t *testing.T) {
	tbl := NewTable()
	var fs []Flow
	for i := range 40 {
		f := mkFlow(uint16(100+i), out(1), inPort(uint32(i)), dlType(EthTypeIPv4), nwDst(0x0a000000, 8+i%20))
		f.Table = uint8(i % 2)
		fs = append(fs, f)
	}
	if err := tbl.AddFlows(fs); err != nil {
		t.Fatal(err)
	}
	before := tbl.Snapshot()
	t0, t1 := before.subtables(0), slices.Clone(before.subtables(1))
	f := mkFlow(7, out(2), inPort(99), dlType(EthTypeIPv4), nwDst(0x0b000000, 30))
	f.Table = 1
	if err := tbl.Add(&f); err != nil {
		t.Fatal(err)
	}
	after := tbl.Snapshot()
	if len(after.subtables(0)) != len(t0) || &after.subtables(0)[0] != &t0[0] {
		t.Errorf("table 0 did not change, but its list of subtables was made again")
	}
	if len(after.subtables(1)) == len(t1) {
		t.Errorf("table 1 has %d subtables after an add with a new mask, as before", len(after.subtables(1)))
	}
	if !slices.Equal(before.subtables(1), t1) {
		t.Errorf("publishing table 1's change changed the list an older snapshot holds")
	}
}

// TestPublishFollowsChanges: after each add, modify, delete and batch of a
// random sequence, every table's published subtables are exactly the
// levels of its groups, in lookup order, and the snapshot counts every
// rule; a publication looks only at the groups that changed.
func TestPublishFollowsChanges(t *testing.T) {
	g := newFlowGen(3)
	tbl := NewTable()
	pool := make([]Flow, 300)
	for i := range pool {
		pool[i] = g.flow()
		pool[i].Table = uint8(g.r.IntN(3))
	}
	wr := rand.New(rand.NewPCG(5, 9))
	for op := range 2000 {
		switch wr.IntN(5) {
		case 0, 1:
			f := pool[wr.IntN(len(pool))]
			tbl.Add(&f)
		case 2:
			fs := make([]Flow, 1+wr.IntN(20))
			for i := range fs {
				fs[i] = pool[wr.IntN(len(pool))]
			}
			tbl.AddFlows(fs)
		case 3:
			f := pool[wr.IntN(len(pool))]
			f.Actions = out(uint32(wr.IntN(9)))
			tbl.Modify(&f, wr.IntN(2) == 0)
		case 4:
			f := pool[wr.IntN(len(pool))]
			tbl.Delete(&f, wr.IntN(2) == 0)
		}
		tbl.mu.Lock()
		s := tbl.Snapshot()
		n := 0
		var want [MaxTable + 1]map[*tableSubtable]bool
		for _, grp := range tbl.groups {
			n += grp.rules.len()
			if grp.touched {
				t.Fatalf("op %d: a group is still marked as changed after the publication", op)
			}
			if grp.rules.len() == 0 {
				t.Fatalf("op %d: an empty group was kept", op)
			}
			for _, st := range grp.levels {
				if want[grp.table] == nil {
					want[grp.table] = map[*tableSubtable]bool{}
				}
				want[grp.table][st] = true
			}
		}
		tbl.mu.Unlock()
		if s.n != n {
			t.Fatalf("op %d: snapshot counts %d rules, the groups hold %d", op, s.n, n)
		}
		for tb := range MaxTable + 1 {
			got := s.subtables(tb)
			if len(got) != len(want[tb]) {
				t.Fatalf("op %d: table %d publishes %d subtables, its groups have %d levels", op, tb, len(got), len(want[tb]))
			}
			for i, st := range got {
				if !want[tb][st] {
					t.Fatalf("op %d: table %d publishes a subtable that no group has", op, tb)
				}
				if i > 0 && compareSubtables(got[i-1], st) > 0 {
					t.Fatalf("op %d: table %d's subtables %d and %d are out of lookup order", op, tb, i-1, i)
				}
			}
		}
	}
}
