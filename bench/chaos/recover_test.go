package main

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeReach is a network of slots where the pairs in down never reach;
// it counts the probes of each pair.
type fakeReach struct {
	mu     sync.Mutex
	down   map[pair]bool
	probes map[pair]int
}

func (f *fakeReach) reach(ctx context.Context, a, b int) bool {
	f.mu.Lock()
	p := pair{a, b}
	f.probes[p]++
	down := f.down[p]
	f.mu.Unlock()
	if down {
		// A lost probe waits for its reply, as a ping does.
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
	}
	return !down
}

func (f *fakeReach) set(down ...pair) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = map[pair]bool{}
	for _, p := range down {
		f.down[p] = true
	}
	f.probes = map[pair]int{}
}

func (f *fakeReach) count(p pair) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.probes[p]
}

// TestRecoverKnownBrokenPairs: a pair that failed recovery is reported
// once, then probed once per check without being waited for until it
// reaches or one of its slots changes state; the other pairs are waited
// for as before.
func TestRecoverKnownBrokenPairs(t *testing.T) {
	healthy := []int{0, 1, 2}
	f := &fakeReach{}
	broken := brokenPairs{}
	ctx := context.Background()

	// Step 0: 0->1 and 1->0 break and are reported.
	f.set(pair{0, 1}, pair{1, 0})
	took, failed, still := recoverPairs(ctx, healthy, broken, 300*time.Millisecond, f.reach)
	if want := []pair{{0, 1}, {1, 0}}; !slices.Equal(failed, want) || len(still) != 0 {
		t.Fatalf("step 0: failed %v, still %v; want failed %v", failed, still, want)
	}
	if !broken[pair{0, 1}] || !broken[pair{1, 0}] || len(broken) != 2 {
		t.Fatalf("step 0: broken %v, want 0->1 and 1->0", broken)
	}

	// Step 1 (on slot 2's neighbour, not 0 or 1): the broken pairs are
	// probed once each and not reported again; 2->0 now breaks and is
	// reported, with the full bound.
	f.set(pair{0, 1}, pair{1, 0}, pair{2, 0})
	took, failed, still = recoverPairs(ctx, healthy, broken, 2*time.Second, f.reach)
	if want := []pair{{2, 0}}; !slices.Equal(failed, want) {
		t.Fatalf("step 1: failed %v, want %v", failed, want)
	}
	if want := []pair{{0, 1}, {1, 0}}; !slices.Equal(still, want) {
		t.Fatalf("step 1: still %v, want %v", still, want)
	}
	for _, p := range []pair{{0, 1}, {1, 0}} {
		if n := f.count(p); n != 1 {
			t.Errorf("step 1: known-broken pair %v probed %d times, want once", p, n)
		}
	}
	if f.count(pair{2, 0}) < 2 {
		t.Errorf("step 1: a newly broken pair was probed %d times: it must be waited for", f.count(pair{2, 0}))
	}

	// Step 2: 0->1 reaches again and leaves the set; 1->0 and 2->0 stay.
	f.set(pair{1, 0}, pair{2, 0})
	took, failed, still = recoverPairs(ctx, healthy, broken, 2*time.Second, f.reach)
	if len(failed) != 0 || !slices.Equal(still, []pair{{1, 0}, {2, 0}}) {
		t.Fatalf("step 2: failed %v, still %v; want none and [1->0 2->0]", failed, still)
	}
	if broken[pair{0, 1}] || len(broken) != 2 {
		t.Fatalf("step 2: broken %v, want 1->0 and 2->0", broken)
	}
	if took < 0 {
		t.Errorf("step 2: took %v: the working pairs were waited for", took)
	}

	// A step on slot 1 forgets the pairs with slot 1: 1->0 is waited for
	// (and reported) again.
	broken.forget(Step{Op: OpMTU, Slot: 1, N: 2000})
	if broken[pair{1, 0}] || !broken[pair{2, 0}] {
		t.Fatalf("after a step on slot 1: broken %v, want 2->0 only", broken)
	}
	f.set(pair{1, 0}, pair{2, 0})
	_, failed, _ = recoverPairs(ctx, healthy, broken, 300*time.Millisecond, f.reach)
	if want := []pair{{1, 0}}; !slices.Equal(failed, want) {
		t.Fatalf("after a step on slot 1: failed %v, want %v", failed, want)
	}

	// A restart forgets every pair.
	broken.forget(Step{Op: OpSigkill})
	if len(broken) != 0 {
		t.Fatalf("after a restart: broken %v, want none", broken)
	}

	// Only known-broken pairs: nothing is waited for, no recovery time.
	broken[pair{0, 1}], broken[pair{1, 0}] = true, true
	f.set(pair{0, 1}, pair{1, 0})
	took, failed, still = recoverPairs(ctx, []int{0, 1}, broken, 2*time.Second, f.reach)
	if took != -1 || len(failed) != 0 || !slices.Equal(still, []pair{{0, 1}, {1, 0}}) {
		t.Fatalf("took %v, failed %v, still %v; want -1, none and [0->1 1->0]", took, failed, still)
	}
}
