package shim

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// harnessFor is a harness whose fuzz function is fn, with the given seeds.
func harnessFor(fn any, seeds ...[]any) *Harness {
	return NewHarness("FuzzT", "", func(f *F) {
		for _, s := range seeds {
			f.Add(s...)
		}
		f.Fuzz(fn)
	})
}

func TestHarnessOutcomes(t *testing.T) {
	var cleaned []string
	tests := []struct {
		name      string
		fn        func(t *T, b []byte)
		wantFail  bool
		wantPanic bool
		wantLog   string
	}{
		{"pass", func(t *T, b []byte) {}, false, false, ""},
		{"fatal ends the input as a failure", func(t *T, b []byte) { t.Fatalf("bad %q", b); panic("not reached") }, true, false, `bad "in"`},
		{"error fails and goes on", func(t *T, b []byte) { t.Error("first"); t.Log("after") }, true, false, "after"},
		{"skip passes quietly", func(t *T, b []byte) { t.Skip("not this one"); t.Fatal("not reached") }, false, false, ""},
		{"panic is a failure", func(t *T, b []byte) { _ = b[len(b)+1] }, true, true, ""},
		{"failed subtest fails the input", func(t *T, b []byte) {
			t.Run("sub", func(t *T) { t.Fatal("in sub") })
		}, true, false, "in sub"},
		{"cleanup runs", func(t *T, b []byte) { t.Cleanup(func() { cleaned = append(cleaned, "x") }) }, false, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := harnessFor(tc.fn).Run([]byte("in"))
			if !tc.wantFail {
				if err != nil {
					t.Fatalf("failed: %v", err)
				}
				return
			}
			var fail *Failure
			if !errors.As(err, &fail) {
				t.Fatalf("got %v, want a *Failure", err)
			}
			if (fail.Panic != nil) != tc.wantPanic {
				t.Errorf("panic %v, want panic: %v", fail.Panic, tc.wantPanic)
			}
			if !strings.Contains(fail.Error(), tc.wantLog) || !strings.Contains(fail.Error(), "--- FAIL: FuzzT") {
				t.Errorf("report %q lacks %q", fail.Error(), tc.wantLog)
			}
		})
	}
	if len(cleaned) != 1 {
		t.Errorf("cleanup ran %d times, want 1", len(cleaned))
	}
}

func TestHarnessTempDirRemoved(t *testing.T) {
	var dir string
	h := harnessFor(func(t *T, b []byte) {
		dir = t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	if err := h.Run([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir %s left behind: %v", dir, err)
	}
}

func TestHarnessSetup(t *testing.T) {
	failing := NewHarness("FuzzT", "", func(f *F) { f.Fatal("no fixture") })
	if err := failing.Run(nil); !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "no fixture") {
		t.Errorf("setup Fatal: got %v", err)
	}
	if err := NewHarness("FuzzT", "", func(f *F) {}).Init(); !errors.Is(err, ErrSetup) {
		t.Errorf("no f.Fuzz: got %v", err)
	}
	skipped := NewHarness("FuzzT", "", func(f *F) { f.Skip("needs a thing"); f.Fuzz(func(t *T, b []byte) { t.Fatal("ran") }) })
	if err := skipped.Run([]byte("x")); err != nil {
		t.Errorf("skipped setup: got %v", err)
	}
	dir := t.TempDir()
	var wd string
	inDir := NewHarness("FuzzT", dir, func(f *F) {
		wd, _ = os.Getwd()
		f.Fuzz(func(t *T, b []byte) {})
	})
	before, _ := os.Getwd()
	if err := inDir.Init(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Getwd(); wd != dir || after != before {
		t.Errorf("setup ran in %s (want %s), then the directory is %s (want %s)", wd, dir, after, before)
	}
}

func TestWriteSeeds(t *testing.T) {
	h := harnessFor(func(t *T, n uint16, s string) {}, []any{uint16(258), "ab"}, []any{uint16(0), ""})
	dir := t.TempDir()
	if err := h.WriteSeeds(dir); err != nil {
		t.Fatal(err)
	}
	types, err := os.ReadFile(filepath.Join(dir, TypesFile))
	if err != nil || string(types) != "uint16\nstring\n" {
		t.Fatalf("types file %q, %v", types, err)
	}
	ents, _ := os.ReadDir(dir)
	got := map[string]bool{}
	for _, e := range ents {
		if e.Name() != TypesFile {
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			got[string(b)] = true
		}
	}
	if len(got) != 2 || !got["\x02\x01ab"] || !got["\x00\x00"] {
		t.Errorf("seeds %v", got)
	}
	bad := harnessFor(func(t *T, n uint16) {}, []any{7})
	if err := bad.WriteSeeds(t.TempDir()); err == nil {
		t.Error("a seed of the wrong type was written")
	}
}

// What the setup registers lasts while the inputs run, as under go test.
func TestHarnessSetupStateLasts(t *testing.T) {
	var dir string
	h := NewHarness("FuzzT", "", func(f *F) {
		dir = f.TempDir()
		f.Fuzz(func(t *T, b []byte) {
			if _, err := os.Stat(dir); err != nil {
				t.Fatalf("setup's temp dir: %v", err)
			}
		})
	})
	for i := 0; i < 2; i++ {
		if err := h.Run(nil); err != nil {
			t.Fatal(err)
		}
	}
	h.f.finish()
}
