package daemon

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// ofAdd adds a flow as a flow mod over OpenFlow does: to the table, with
// the state marked to be saved.
func ofAdd(t *testing.T, d *Daemon, s string) {
	t.Helper()
	f, err := flow.ParseFlow(s, flow.CmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	o := &ofBridge{d: d, b: d.bridges["br0"]}
	if err := o.lock(); err != nil {
		t.Fatal(err)
	}
	defer o.unlock()
	if err := o.b.dp.Table().Add(f); err != nil {
		t.Fatal(err)
	}
	o.changedLocked("flow mod")
}

func savedFlowCount(t *testing.T, path string) int {
	t.Helper()
	st, err := loadState(path)
	if err != nil {
		t.Fatal(err)
	}
	return len(st.Bridges[0].Flows)
}

// TestStateSaveCoalesced checks that OpenFlow changes reach the state file
// soon after, without a save each, and that Close saves what is not saved
// yet.
func TestStateSaveCoalesced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	d, err := New(Config{NoLocalPort: true, StatePath: path, Version: "test", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			d.Close()
		}
	})
	run(t, d, "add-br", "br0")
	for i := range 50 {
		ofAdd(t, d, "priority="+strconv.Itoa(100+i)+",actions=drop")
	}
	deadline := time.Now().Add(20 * time.Second)
	for savedFlowCount(t, path) != 50 {
		if time.Now().After(deadline) {
			t.Fatalf("the state file holds %d flows 20 s after 50 flow mods, want 50", savedFlowCount(t, path))
		}
		time.Sleep(20 * time.Millisecond)
	}

	ofAdd(t, d, "priority=7,actions=drop")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if got := savedFlowCount(t, path); got != 51 {
		t.Fatalf("after Close the state file holds %d flows, want 51", got)
	}
}
