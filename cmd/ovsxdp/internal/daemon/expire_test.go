package daemon

import (
	"slices"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TestReleasePacer runs the expiry loop's ticks and saves through its
// release decision: memory is released after a quiet second, but never
// before a pending save, whose garbage would then stay resident; and not
// while changes keep coming.
func TestReleasePacer(t *testing.T) {
	type event struct {
		save         bool // a save ended; else a tick
		quiet, dirty bool // the tick's
	}
	tick := func(quiet, dirty bool) event { return event{quiet: quiet, dirty: dirty} }
	save := event{save: true}
	for _, tt := range []struct {
		name        string
		inEvents    []event
		wantRelease []int // the events after which memory is released
	}{
		{name: "quiet and saved", inEvents: []event{tick(false, false), tick(true, false)}, wantRelease: []int{1}},
		{name: "quiet with a save pending", inEvents: []event{tick(false, true), tick(true, true), save, tick(true, false)}, wantRelease: []int{2, 3}},
		{name: "changes resume before the save", inEvents: []event{tick(true, true), tick(false, true), save}},
		{name: "saves while changes stream", inEvents: []event{tick(false, true), save, tick(false, true), save}},
		{name: "a later save releases nothing more", inEvents: []event{tick(true, true), save, save}, wantRelease: []int{1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var p releasePacer
			var got []int
			for i, e := range tt.inEvents {
				var release bool
				if e.save {
					release = p.saved()
				} else {
					release = p.tick(e.quiet, e.dirty)
				}
				if release {
					got = append(got, i)
				}
			}
			if !slices.Equal(got, tt.wantRelease) {
				t.Errorf("released after events %v, want %v", got, tt.wantRelease)
			}
		})
	}
}

// TestBundleAddIsActivity checks that a message added to a bundle counts
// as activity for the expiry loop's release (busyLocked), as a change
// does: a second without changes while a bundle is being built must not
// release memory, or the release just before its commit leaves the
// bundle's memory resident after it.
func TestBundleAddIsActivity(t *testing.T) {
	d, _ := benchDaemon(t)
	d.channels.mu.Lock()
	ob := d.channels.byName["br0"].ob
	d.channels.mu.Unlock()
	_, m, err := openflow.Decode(ofctlFlowMods(t, 1, 1)[0])
	if err != nil {
		t.Fatal(err)
	}
	changes := func() uint64 {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.saver.changes
	}
	before := changes()
	var adds flow.FlowBatch
	if _, _, err := ob.CheckFlowMod(openflow.Version10, m.(*openflow.FlowMod), &adds); err != nil {
		t.Fatal(err)
	}
	if got := changes(); got == before {
		t.Errorf("a bundled flow mod's check left the activity count at %d", got)
	}
	if n := ob.b.dp.Table().Len(); n != 0 {
		t.Errorf("the check added %d flows", n)
	}
}
