package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateLock: a second daemon on a state file in use is refused with
// the file and the holder's PID; once the first closes, the file is free.
func TestStateLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	first, err := New(Config{StatePath: path, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{StatePath: path, Logger: quietLogger()})
	want := fmt.Sprintf("state file %s: in use by another daemon (pid %d)", path, os.Getpid())
	if !errors.Is(err, ErrStateLocked) || !strings.Contains(err.Error(), want) {
		t.Errorf("second daemon: %v, want %q", err, want)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	third, err := New(Config{StatePath: path, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("after the first daemon closed: %v", err)
	}
	third.Close()
}
