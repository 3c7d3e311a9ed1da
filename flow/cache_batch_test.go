package flow

import (
	"math"
	"slices"
	"testing"
)

// TestCacheLookupBatchLikeSingle is a differential test of LookupBatch: two
// caches in front of one table, one asked batch by batch and the other key
// by key with Lookup, must give the same answers (megaflows of the same
// match and actions, from the same stage) and keep the same counters,
// exact-match cache and classifier, through batches that repeat keys, hit,
// miss and install megaflows, flow mods that make megaflows stale
// (revalidated or evicted), megaflow removals, and re-rankings of the
// subtables in the middle of a batch.
func TestCacheLookupBatchLikeSingle(t *testing.T) {
	for _, tt := range []struct {
		name       string
		seed       uint64
		emcInvProb uint32
		rules      int // -1: one rule (udp) alone, and keys it matches
		// batchBytes is the classifier size from which the batch looks
		// keys up together: 0, always, as with a large classifier; the
		// most an int holds, never (key by key, as a small classifier).
		batchBytes int
	}{
		{"emc-always", 21, 1, 60, 0},
		{"emc-one-in-3", 22, 3, 200, 0},
		{"emc-off", 23, 0, 100, 0},
		{"few-rules", 24, 1, 4, 0},
		{"small-classifier", 25, 3, 100, math.MaxInt},
		// One rule and keys it matches: a classifier of one subtable
		// (lookupEach's path for it), whose megaflows flow mods make stale.
		{"one-subtable", 26, 3, -1, math.MaxInt},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newFlowGen(tt.seed)
			tbl := NewTable()
			ref := &refTable{}
			fs := make([]Flow, max(tt.rules, 0))
			for i := range fs {
				fs[i] = g.flow()
				ref.add(&fs[i])
			}
			tbl.AddFlows(fs)
			var udp *Flow // the one rule, when rules is -1
			if tt.rules < 0 {
				var err error
				if udp, err = ParseFlow("in_port=1,udp,actions=output:2", CmdAdd); err != nil {
					t.Fatal(err)
				}
				tbl.Add(udp)
			}
			soleRounds := 0
			batched, err := NewCache(tbl, 256, tt.emcInvProb)
			if err != nil {
				t.Fatal(err)
			}
			single, err := NewCache(tbl, 256, tt.emcInvProb)
			if err != nil {
				t.Fatal(err)
			}
			batched.mfs.batchBytes = tt.batchBytes
			var recent []Key
			keys := make([]Key, 80)
			got := make([]*Megaflow, len(keys))
			srcs := make([]Source, len(keys))
			sources := map[Source]int{}
			plainKeys := 0
			rounds := raceRounds(300)
			for round := range rounds {
				if len(batched.mfs.subs) == 1 {
					soleRounds++
				}
				switch {
				case round%7 == 6 && udp != nil:
					// New actions: a new generation, whose megaflows revalidate.
					udp.Actions = g.actions()
					tbl.Modify(udp, true)
				case round%7 == 6:
					randomFlowMod(t, g, tbl, ref)
				case round%11 == 10:
					// Remove the same megaflows from both.
					doomed := func(mf *Megaflow) bool { m := mf.Match(); return m.Key.Hash()%3 == 0 }
					if a, b := batched.Megaflows().RemoveIf(doomed), single.Megaflows().RemoveIf(doomed); a != b {
						t.Fatalf("round %d: removed %d and %d megaflows", round, a, b)
					}
				case round%13 == 12:
					// The next lookups cross a re-ranking.
					lookups := rankInterval - 1 - uint32(g.r.IntN(20))
					batched.mfs.lookups, single.mfs.lookups = lookups, lookups
				}
				n := 1 + g.r.IntN(len(keys))
				for i := range n {
					if i > 0 && g.coin(1, 4) {
						keys[i] = keys[g.r.IntN(i)] // a packet of the same flow in the batch
						continue
					}
					if udp != nil {
						keys[i] = g.keyFor(&udp.Match)
						continue
					}
					keys[i] = nextKey(g, ref, &recent)
				}
				// The plain keys said so, as the datapath says them.
				var plain uint64
				for i := range min(n, 64) {
					if IsPlain(&keys[i]) {
						plain |= 1 << i
						plainKeys++
					}
				}
				if m := batched.LookupBatchPlain(keys[:n], plain, got, srcs); m != n {
					t.Fatalf("LookupBatch handled %d of %d keys", m, n)
				}
				for i := range n {
					want, wantSrc := single.Lookup(&keys[i])
					sources[srcs[i]]++
					if srcs[i] != wantSrc || got[i].Rule != want.Rule || got[i].Match() != want.Match() ||
						!slices.Equal(got[i].Actions, want.Actions) || got[i].Generation != want.Generation {
						t.Fatalf("round %d key %d of %d: batch gave %s %s actions %v gen %d, one by one %s %s actions %v gen %d",
							round, i, n, srcs[i], FormatODPMatch(new(got[i].Match()), nil), got[i].Actions, got[i].Generation,
							wantSrc, FormatODPMatch(new(want.Match()), nil), want.Actions, want.Generation)
					}
				}
				if batched.Stats() != single.Stats() {
					t.Fatalf("round %d: counters %+v batched, %+v one by one", round, batched.Stats(), single.Stats())
				}
				if batched.emc.rng != single.emc.rng || batched.mfs.Len() != single.mfs.Len() ||
					batched.mfs.lookups != single.mfs.lookups {
					t.Fatalf("round %d: caches diverged: emc rng %#x/%#x, %d/%d megaflows, %d/%d lookups", round,
						batched.emc.rng, single.emc.rng, batched.mfs.Len(), single.mfs.Len(), batched.mfs.lookups, single.mfs.lookups)
				}
				bytes := 0
				for _, st := range batched.mfs.subs {
					bytes += st.bytes()
				}
				if bytes != batched.mfs.bytes {
					t.Fatalf("round %d: subtables take %d bytes, classifier counts %d", round, bytes, batched.mfs.bytes)
				}
				for i, st := range batched.mfs.subs {
					if o := single.mfs.subs[i]; st.mask != o.mask || st.hits != o.hits {
						t.Fatalf("round %d: subtable %d differs (hits %d/%d)", round, i, st.hits, o.hits)
					}
				}
			}
			if udp != nil && soleRounds < rounds/2 {
				t.Errorf("the classifier had one subtable in %d of %d rounds only", soleRounds, rounds)
			}
			t.Logf("sources %v; stats %+v; classifier %d bytes; %d plain keys", sources, batched.Stats(), batched.mfs.bytes, plainKeys)
			if batched.mfs.batched() != (tt.batchBytes == 0) {
				t.Errorf("classifier of %d bytes looked up batched %v, want %v", batched.mfs.bytes, batched.mfs.batched(), tt.batchBytes == 0)
			}
			for _, src := range []Source{SourceEMC, SourceMegaflow, SourceUpcall} {
				if tt.emcInvProb == 0 && src == SourceEMC {
					continue
				}
				if sources[src] == 0 {
					t.Errorf("no lookup was answered by %s: the test does not exercise it", src)
				}
			}
			if st := batched.Stats(); st.Revalidated == 0 && st.Evicted == 0 {
				t.Errorf("no megaflow was revalidated or evicted: %+v", st)
			}
		})
	}
}
