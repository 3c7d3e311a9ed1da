package daemon

import (
	"errors"
	"testing"
)

// TestConntrackVerbs checks the tracker's commands: their output in Open
// vSwitch's words, and that a bad argument is refused and changes nothing.
func TestConntrackVerbs(t *testing.T) {
	d := newTestDaemon(t, "")
	if got := run(t, d, "dpctl/ct-get-maxconns"); got != "3000000\n" {
		t.Errorf("ct-get-maxconns = %q, want Open vSwitch's default 3000000", got)
	}
	if got := run(t, d, "dpctl/ct-set-maxconns", "10"); got != "setting maxconns successful\n" {
		t.Errorf("ct-set-maxconns = %q", got)
	}
	if got := run(t, d, "dpctl/ct-get-maxconns"); got != "10\n" {
		t.Errorf("ct-get-maxconns after setting 10 = %q", got)
	}
	run(t, d, "dpctl/ct-set-limits", "default=5", "zone=7,limit=3")
	if got, want := run(t, d, "dpctl/ct-get-limits"), "default limit=5\nzone=7,limit=3,count=0\n"; got != want {
		t.Errorf("ct-get-limits = %q, want %q", got, want)
	}
	if got, want := run(t, d, "dpctl/ct-get-limits", "zone=7,9"), "default limit=5\nzone=7,limit=3,count=0\nzone=9,limit=5,count=0\n"; got != want {
		t.Errorf("ct-get-limits zone=7,9 = %q, want %q", got, want)
	}
	run(t, d, "dpctl/ct-del-limits", "zone=7")
	if got, want := run(t, d, "dpctl/ct-get-limits"), "default limit=5\n"; got != want {
		t.Errorf("ct-get-limits after deleting zone 7 = %q, want %q", got, want)
	}
	if got := run(t, d, "dpctl/dump-conntrack"); got != "" {
		t.Errorf("dump-conntrack of an empty tracker = %q", got)
	}
	if got := run(t, d, "dpctl/ct-get-nconns"); got != "0\n" {
		t.Errorf("ct-get-nconns = %q", got)
	}
	run(t, d, "dpctl/flush-conntrack", "zone=3")

	for _, bad := range [][]string{
		{"dpctl/ct-set-limits", "default=5", "zone=70000,limit=1"},
		{"dpctl/ct-set-limits", "zone=1"},
		{"dpctl/dump-conntrack", "zone=x"},
		{"dpctl/flush-conntrack", "nat"},
		{"dpctl/ct-set-maxconns", "-1"},
		{"dpctl/ct-stats-show", "zone=1", "zone=2"},
	} {
		if _, err := runFlags(d, bad[0], nil, bad[1:]...); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: error %v, want a usage error", bad, err)
		}
	}
	// The refused ct-set-limits left the default as it was.
	if got, want := run(t, d, "dpctl/ct-get-limits"), "default limit=5\n"; got != want {
		t.Errorf("ct-get-limits after refused commands = %q, want %q", got, want)
	}
}
