package main

import (
	"context"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestDemo runs the in-memory demo with few teardowns: guarded never spins
// into a lockup, legacy does on both device kinds, carrier does not on
// veth-like devices, and every row forwarded traffic. Only lockups that
// caught a poll thread spinning count: on a busy machine the watchdog's
// short threshold also catches a descheduled thread.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: the demo runs for several seconds")
	}
	o := demoOptions{teardowns: 10, rate: 50000, window: 3 * time.Millisecond, threshold: 50 * time.Millisecond, traffic: 200 * time.Millisecond}
	results, err := demoResults(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 8 {
		t.Fatalf("%d rows, want 8", len(results))
	}
	for _, r := range results {
		if r.teardowns != o.teardowns || r.pps == 0 {
			t.Errorf("%s/%s: %d teardowns, %.0f pkt/s", r.policy, r.kind, r.teardowns, r.pps)
		}
		switch {
		case r.policy == datapath.Guarded && r.lockups.spinning != 0:
			t.Errorf("guarded/%s: %d spinning lockups: %s", r.kind, r.lockups.spinning, r.lockups.example)
		case r.policy == datapath.Legacy && r.lockups.spinning == 0:
			t.Errorf("legacy/%s: no lockup in %d teardowns", r.kind, r.teardowns)
		case r.policy == datapath.Carrier && r.kind == vport.VethLike && r.lockups.spinning != 0:
			t.Errorf("carrier/veth: %d spinning lockups in kernel order: %s", r.lockups.spinning, r.lockups.example)
		}
	}
}
