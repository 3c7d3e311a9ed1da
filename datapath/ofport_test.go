package datapath

import (
	"context"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/vport"
)

// TestOFPortNotReusedSoon: numbers come from a cursor that passes over
// the numbers of ports removed within the hour, as Open vSwitch hands
// them out (the sequence below is the one Open vSwitch 3.1 gives for the
// same adds and removes); a number asked for is taken whenever it is free.
func TestOFPortNotReusedSoon(t *testing.T) {
	b := newTestBridge(t, Config{Name: "br-ofport"})
	add := func(name string, want uint32) {
		t.Helper()
		_, p := addMemPort(t, b, vport.MemConfig{Name: name}, 0)
		if p.OFPort != want {
			t.Errorf("%s got OpenFlow port %d, want %d", name, p.OFPort, want)
		}
	}
	del := func(name string) {
		t.Helper()
		if _, err := b.RemovePort(context.Background(), name); err != nil {
			t.Fatal(err)
		}
	}
	add("p1", 1)
	add("p2", 2)
	add("p3", 3)
	del("p1")
	add("p4", 4)
	add("p1", 5) // not 1, released moments ago
	del("p2")
	add("p2", 6)
	del("p3")
	add("p5", 7)
	// A number asked for is taken even though it was released just now.
	if _, p := addMemPort(t, b, vport.MemConfig{Name: "p6"}, 3); p.OFPort != 3 {
		t.Errorf("p6 asked for 3, got %d", p.OFPort)
	}
	add("p7", 8) // the cursor did not move for p6
}

// TestOFPortOldestReleased: once the cursor went round, a number released
// more than an hour ago is free again, and when every free number was
// released within the hour the one released longest ago is taken.
func TestOFPortOldestReleased(t *testing.T) {
	b := newTestBridge(t, Config{Name: "br-ofport2"})
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.ofports.released = map[uint32]time.Time{}
	for n := uint32(1); n <= autoOFPortMax; n++ {
		b.ofports.released[n] = now.Add(-time.Minute)
	}
	b.ofports.released[40] = now.Add(-2 * time.Minute)
	b.ofports.released[30] = now.Add(-3 * time.Minute)
	b.ofports.cursor = 35
	if n := b.nextOFPortLocked(now); n != 30 {
		t.Errorf("every number released within the hour: got %d, want 30 (released longest ago)", n)
	}
	if b.ofports.cursor != 35 {
		t.Errorf("cursor moved to %d; it goes round back to 35", b.ofports.cursor)
	}
	b.ofports.released[50] = now.Add(-ofportReuseAfter)
	if n := b.nextOFPortLocked(now); n != 50 {
		t.Errorf("a number released an hour ago: got %d, want 50", n)
	}
}
