package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The flows file written with bridges the database has not brought up yet
// reads back the same, and a missing or corrupt file is handled.
func TestFlowsFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.json")
	got, err := loadFlows(path)
	if err != nil || len(got) != 0 {
		t.Fatalf("missing file: %v, %v; want none and no error", got, err)
	}
	saved := map[string]*savedBridge{
		"br0": {Name: "br0", Groups: []string{"group_id=3,type=all,bucket=bucket_id:0,actions=output:9"},
			Flows: []string{"priority=100,in_port=7 actions=group:3", `priority=0 actions=note:"x"`}},
		"br1": {Name: "br1", Flows: []string{}},
	}
	d := &Daemon{cfg: Config{FlowsPath: path}, log: slog.New(slog.DiscardHandler), bridges: map[string]*bridge{}, savedFlows: saved}
	d.publishLocked()
	if err := d.saveFlowsLocked(); err != nil {
		t.Fatal(err)
	}
	got, err = loadFlows(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, saved) {
		b, _ := os.ReadFile(path)
		t.Fatalf("read back %v, want %v\n%s", got, saved, b)
	}
	if err := os.WriteFile(path, []byte(`{"version": 1, "bridges": [{"name": "br0", "flows": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadFlows(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("truncated file: %v, want an error naming the file as corrupt", err)
	}
}
