package flow

import (
	"fmt"
	"slices"
	"testing"
)

// TestCacheMatchesLinearScan is the classification acceptance test: over
// random rule sets and random flow mods interleaved with lookups, the cached
// path (exact-match cache, megaflows, rule table) returns exactly the rule
// that a linear scan of a reference model returns, and every megaflow it
// returns gives that answer for every packet it matches.
func TestCacheMatchesLinearScan(t *testing.T) {
	tests := []struct {
		name       string
		seed       uint64
		emcInvProb uint32
		inRules    int
		iterations int
	}{
		{name: "default", seed: 1, emcInvProb: 1, inRules: 60, iterations: 400},
		{name: "other-seed", seed: 2, emcInvProb: 1, inRules: 60, iterations: 400},
		{name: "emc-default-probability", seed: 4, emcInvProb: DefaultEMCInsertInvProb, inRules: 200, iterations: 300},
		{name: "1000-rules", seed: 5, emcInvProb: 1, inRules: 1000, iterations: 200},
		{name: "few-rules", seed: 7, emcInvProb: 2, inRules: 3, iterations: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newFlowGen(tt.seed)
			tbl := NewTable()
			ref := &refTable{}
			fs := make([]Flow, tt.inRules)
			for i := range fs {
				fs[i] = g.flow()
				ref.add(&fs[i])
			}
			tbl.AddFlows(fs)
			checkDump(t, tbl, ref)

			c, err := NewCache(tbl, 1024, tt.emcInvProb)
			if err != nil {
				t.Fatal(err)
			}
			var recent []Key
			sources := map[Source]int{}
			for iter := range raceRounds(tt.iterations) {
				op := randomFlowMod(t, g, tbl, ref)
				checkDump(t, tbl, ref)
				for range 40 {
					k := nextKey(g, ref, &recent)
					mf, src := c.Lookup(&k)
					sources[src]++
					want := ref.lookup(&k)
					if !sameRule(mf.Rule, want) {
						t.Fatalf("iteration %d (after %s): %s lookup of %+v: got rule %s, want %s",
							iter, op, src, k, describeRule(mf.Rule), describeRef(want))
					}
					if fresh := tbl.Snapshot().Translate(&k, false); !slices.Equal(mf.Actions, fresh.Actions) {
						t.Fatalf("iteration %d: megaflow actions %v, a fresh translation gives %v", iter, mf.Actions, fresh.Actions)
					}
					if mf.FinalOutputs() != FinalOutputs(mf.Actions) || mf.OutputsNormal() != OutputsNormal(mf.Actions) {
						t.Fatalf("iteration %d: megaflow of %v says %d final outputs, normal %v", iter, mf.Actions, mf.FinalOutputs(), mf.OutputsNormal())
					}
					checkMegaflowProperty(t, g, ref, &k, mf.Mask, want)
				}
			}
			t.Logf("sources: %v; megaflows %d in %d subtables; stats %+v", sources, c.Megaflows().Len(), c.Megaflows().Subtables(), c.Stats())
			for _, src := range []Source{SourceEMC, SourceMegaflow, SourceUpcall} {
				if sources[src] == 0 {
					t.Errorf("no lookup was answered by %s: the test does not exercise it", src)
				}
			}
		})
	}
}

// nextKey draws the next packet of the acceptance test: a recent packet
// again (so that caches hit), a packet that matches a random rule, or a
// random one.
func nextKey(g *flowGen, ref *refTable, recent *[]Key) Key {
	switch n := g.r.IntN(8); {
	case n < 4 && len(*recent) > 0:
		return (*recent)[g.r.IntN(len(*recent))]
	case n < 6 && len(ref.rules) > 0:
		k := g.keyFor(&ref.rules[g.r.IntN(len(ref.rules))].match)
		remember(recent, k)
		return k
	default:
		k := g.key()
		remember(recent, k)
		return k
	}
}

func remember(recent *[]Key, k Key) {
	if len(*recent) < 64 {
		*recent = append(*recent, k)
		return
	}
	copy(*recent, (*recent)[1:])
	(*recent)[len(*recent)-1] = k
}

// checkMegaflowProperty checks that packets agreeing with k on mask get the
// same answer from the reference as k does.
func checkMegaflowProperty(t *testing.T, g *flowGen, ref *refTable, k, mask *Key, want *refRule) {
	t.Helper()
	for range 4 {
		var other Key
		if g.coin(1, 2) && len(ref.rules) > 0 {
			other = g.keyFor(&ref.rules[g.r.IntN(len(ref.rules))].match)
		} else {
			other = g.key()
		}
		p, ok := agreeLike(k, &other, mask)
		if !ok {
			continue
		}
		if got := ref.lookup(&p); got != want {
			t.Fatalf("megaflow mask %+v of key %+v is too wide: key %+v agrees with it but gets %s, want %s",
				*mask, *k, p, describeRef(got), describeRef(want))
		}
	}
}

// randomFlowMod applies one random flow mod to both tables, checks that
// they report the same effect, and describes it.
func randomFlowMod(t *testing.T, g *flowGen, tbl *Table, ref *refTable) string {
	t.Helper()
	f := g.flow()
	strict := g.coin(1, 2)
	if len(ref.rules) > 0 && g.coin(3, 4) {
		// Aim at an existing rule: its exact match for strict, a
		// generalization of it otherwise.
		r := ref.rules[g.r.IntN(len(ref.rules))]
		f.Match, f.Priority = r.match, r.priority
		if !strict {
			f.Match = generalize(g, &r.match)
		}
	}
	if g.coin(1, 4) {
		f.CookieMask = pick(g.r, []uint64{1, 2, 3, ^uint64(0)})
	}
	switch g.r.IntN(4) {
	case 0:
		f.CookieMask = 0
		gen := tbl.Generation()
		tbl.Add(&f)
		ref.add(&f)
		if tbl.Generation() == gen {
			t.Fatalf("add did not change the generation")
		}
		return "add"
	case 1:
		gotN, gotAdded := tbl.Modify(&f, strict)
		wantN, wantAdded := ref.modify(&f, strict)
		if gotN != wantN || gotAdded != wantAdded {
			t.Fatalf("modify (strict %v) %+v: got (%d, %v), want (%d, %v)", strict, f, gotN, gotAdded, wantN, wantAdded)
		}
		return fmt.Sprintf("modify strict=%v n=%d added=%v", strict, gotN, gotAdded)
	case 2:
		if g.coin(1, 3) {
			f.OutPort = uint32(1 + g.r.IntN(6))
		}
		got := len(tbl.Delete(&f, strict))
		want := ref.delete(&f, strict)
		if got != want {
			t.Fatalf("delete (strict %v) %+v: got %d, want %d", strict, f, got, want)
		}
		return fmt.Sprintf("delete strict=%v n=%d", strict, got)
	}
	return "none"
}

// generalize returns m with some of its field segments dropped from the
// mask.
func generalize(g *flowGen, m *Match) Match {
	out := *m
	mw := out.Mask.Words()
	for _, seg := range keySegments {
		if g.coin(1, 2) {
			mw[seg.word] &^= seg.bits
		}
	}
	out.Normalize()
	return out
}

// checkDump checks that the table holds the reference's rules, in dump
// order.
func checkDump(t *testing.T, tbl *Table, ref *refTable) {
	t.Helper()
	want := slices.Clone(ref.rules)
	slices.SortFunc(want, func(a, b *refRule) int {
		if a.priority != b.priority {
			return int(b.priority) - int(a.priority)
		}
		return int(a.seq) - int(b.seq)
	})
	got := tbl.Dump(nil)
	if len(got) != len(want) || tbl.Len() != len(want) {
		t.Fatalf("table has %d rules (Len %d), reference %d", len(got), tbl.Len(), len(want))
	}
	for i := range got {
		if !sameRule(got[i], want[i]) {
			t.Fatalf("dump entry %d: got %s, want %s", i, describeRule(got[i]), describeRef(want[i]))
		}
	}
}

func describeRule(r *Rule) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("{priority %d cookie %d actions %v match %+v}", r.Priority, r.Cookie, r.Actions, r.Match())
}

func describeRef(r *refRule) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("{priority %d cookie %d actions %v match %+v}", r.priority, r.cookie, r.actions, r.match)
}

// TestCacheLookupBatch checks that a batch lookup answers as single lookups
// do.
func TestCacheLookupBatch(t *testing.T) {
	g := newFlowGen(11)
	tbl := NewTable()
	ref := &refTable{}
	fs := make([]Flow, 100)
	for i := range fs {
		fs[i] = g.flow()
		ref.add(&fs[i])
	}
	tbl.AddFlows(fs)
	c, err := NewCache(tbl, 256, 1)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]Key, 32)
	mfs := make([]*Megaflow, len(keys))
	srcs := make([]Source, len(keys))
	for round := range 20 {
		for i := range keys {
			if round > 0 && g.coin(1, 2) {
				continue // keep some keys from the last round, so that caches hit
			}
			keys[i] = g.keyFor(&ref.rules[g.r.IntN(len(ref.rules))].match)
		}
		if n := c.LookupBatch(keys, mfs, srcs); n != len(keys) {
			t.Fatalf("LookupBatch handled %d of %d keys", n, len(keys))
		}
		for i := range keys {
			if want := ref.lookup(&keys[i]); !sameRule(mfs[i].Rule, want) {
				t.Fatalf("round %d packet %d (%s): got %s, want %s", round, i, srcs[i], describeRule(mfs[i].Rule), describeRef(want))
			}
		}
	}
	if n := c.LookupBatch(keys, mfs[:3], srcs); n != 3 {
		t.Errorf("LookupBatch with room for 3 results handled %d keys", n)
	}
	if st := c.Stats(); st.EMCHits == 0 || st.Upcalls == 0 {
		t.Errorf("batches did not exercise the caches: %+v", st)
	}
}
