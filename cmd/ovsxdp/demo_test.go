package main

import (
	"context"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestDemo runs the in-memory demo with few teardowns: guarded never locks
// up, legacy does on both device kinds, and every row forwarded traffic.
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
		case r.policy == datapath.Guarded && r.lockups != 0:
			t.Errorf("guarded/%s: %d lockups", r.kind, r.lockups)
		case r.policy == datapath.Legacy && r.lockups == 0:
			t.Errorf("legacy/%s: no lockup in %d teardowns", r.kind, r.teardowns)
		case r.policy == datapath.Carrier && r.kind == vport.VethLike && r.lockups != 0:
			t.Errorf("carrier/veth: %d lockups in kernel order", r.lockups)
		}
	}
}
