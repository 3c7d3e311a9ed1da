package daemon

import (
	"slices"
	"testing"
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
