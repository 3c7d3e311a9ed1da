package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLockRunExcludesSecondRun: while one run holds the lock a second is
// refused, naming the holder, and the lock is free again once released.
func TestLockRunExcludesSecondRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	unlock, err := lockRun(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockRun(path); err == nil {
		t.Fatal("a second run took the lock while the first held it")
	} else if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("refusal %q does not name the holder's pid", err)
	}
	unlock()
	again, err := lockRun(path)
	if err != nil {
		t.Fatalf("lock not free after release: %v", err)
	}
	again()
}
