package datapath

import (
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestHitPathDoesNotAllocate runs whole batches through a poll thread
// (receive, extraction, cache hit, actions, output policy, transmit) and
// checks that a batch of hits allocates nothing: exact-match hits, and
// megaflow hits for packets that crossed one table and eight. It also
// checks that the batches were the hits the case names, and were sent.
func TestHitPathDoesNotAllocate(t *testing.T) {
	tests := []struct {
		name       string
		inTables   int
		inMegaflow bool // the exact-match cache never inserts
		wantRules  int  // rules behind the megaflow
	}{
		{name: "emc hit, one table", inTables: 1, wantRules: 1},
		{name: "emc hit, eight tables", inTables: 8, wantRules: 8},
		{name: "megaflow hit, one table", inTables: 1, inMegaflow: true, wantRules: 1},
		{name: "megaflow hit, eight tables", inTables: 8, inMegaflow: true, wantRules: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb := newPipelineBench(t, Guarded, vport.MaxBatch, []string{"udp"}, tablePipeline(1, tt.inTables)...)
			if tt.inMegaflow {
				pb.emcInserting(t, 0)
			} else {
				pb.emcInserting(t, 1)
			}
			p := pb.b.pmds[0]
			rqs := []rxq{{port: pb.b.ports.Load().list[0], q: 0}}
			p.rxqs.Store(&rqs)
			batch := pb.frames[:vport.MaxBatch]
			// The first batch translates (one upcall); the second fills
			// the exact-match cache if it inserts.
			for range 2 {
				if out := pb.pollOnce(batch); out != len(batch) {
					t.Fatalf("warm-up: %d of %d frames sent", out, len(batch))
				}
			}
			n := 0
			p.cache.Megaflows().Range(func(mf *flow.Megaflow) bool {
				n++
				if len(mf.Rules) != tt.wantRules {
					t.Errorf("megaflow of %d rules, want %d", len(mf.Rules), tt.wantRules)
				}
				return true
			})
			if n != 1 {
				t.Fatalf("%d megaflows, want 1", n)
			}

			emc0, mf0, up0 := p.counters.emcHits.Load(), p.counters.mfHits.Load(), p.counters.upcalls.Load()
			sent := 0
			const runs = 100
			allocs := testing.AllocsPerRun(runs, func() { sent += pb.pollOnce(batch) })
			if allocs != 0 {
				t.Errorf("%v allocations per batch of %d hits, want 0", allocs, len(batch))
			}
			total := uint64(runs+1) * uint64(len(batch)) // AllocsPerRun runs once more to warm up
			emc, mf, up := p.counters.emcHits.Load()-emc0, p.counters.mfHits.Load()-mf0, p.counters.upcalls.Load()-up0
			switch {
			case up != 0:
				t.Errorf("%d upcalls while measuring, want none", up)
			case tt.inMegaflow && mf != total:
				t.Errorf("%d megaflow hits, %d exact-match hits, want %d megaflow hits", mf, emc, total)
			case !tt.inMegaflow && (emc == 0 || emc+mf != total):
				// A key may lose its exact-match slot to two others
				// (the cache is two-way, its hash seeded at random):
				// then it is a megaflow hit.
				t.Errorf("%d exact-match hits, %d megaflow hits, want %d hits, mostly exact-match", emc, mf, total)
			}
			if uint64(sent) != total {
				t.Errorf("%d frames sent, want %d", sent, total)
			}
			checkAccounting(t, pb.b)
		})
	}
}
