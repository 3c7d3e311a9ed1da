package main

import (
	"archive/zip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/libfuzzer/shim"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// plantTag is testdata/plant's Tag: the input that crashes FuzzPlant
// starts with it (4 bytes, little endian), then "plant".
const plantTag = 0x5eed1e55

// requireLibFuzzer returns the linker, or skips (fails under CI=true) when
// clang or libFuzzer's runtime is missing.
func requireLibFuzzer(t *testing.T) *linker {
	t.Helper()
	l, err := findLinker("")
	if errors.Is(err, ErrNoClang) {
		testenv.Missing(t, "clang not found in PATH (install the Debian packages clang-14 and libclang-rt-14-dev, or run `make deps`)")
	}
	if err != nil {
		t.Fatal(err)
	}
	// clang without libFuzzer's runtime (Debian ships it apart) cannot link.
	dir := t.TempDir()
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, []byte("int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(l.cmd, append(l.args, src, "-o", filepath.Join(dir, "probe"))...).CombinedOutput(); err != nil {
		testenv.Missing(t, "%s cannot link a libFuzzer binary (install the Debian package libclang-rt-14-dev): %v\n%s", l.cmd, err, out)
	}
	return l
}

// buildOne builds the target that arg names into a temporary directory and
// returns the binary's path.
func buildOne(t *testing.T, l *linker, arg string) string {
	t.Helper()
	modDir, err := moduleDir()
	if err != nil {
		t.Fatal(err)
	}
	targets, err := selectTargets(modDir, []string{arg})
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 1 {
		t.Fatalf("%s: %d targets", arg, len(targets))
	}
	out := t.TempDir()
	o := &buildOptions{modDir: modDir, out: out, work: t.TempDir(), link: l, bundle: true, log: t.Logf}
	if err := buildTarget(o, targets[0]); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(out, targets[0].binName())
}

func readZip(t *testing.T, path string) map[string]string {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = string(b)
	}
	return out
}

// TestPlantedCrashFound builds testdata/plant's FuzzPlant as a libFuzzer
// binary and runs it from its seed corpus: libFuzzer must find the planted
// crash, which takes a 32-bit tag and a 5-byte string that random inputs
// do not hit and coverage and comparison feedback does (so the build is
// instrumented); the crash file must decode to that input and replay.
func TestPlantedCrashFound(t *testing.T) {
	l := requireLibFuzzer(t)
	bin := buildOne(t, l, "./test/libfuzzer/testdata/plant.FuzzPlant")

	// Seed corpus: the f.Add seed and testdata/fuzz/FuzzPlant/seed1, as
	// the harness decodes them.
	seeds := readZip(t, bin+"_seed_corpus.zip")
	var got []string
	for _, s := range seeds {
		got = append(got, s)
	}
	want := map[string]bool{}
	for _, vals := range [][]any{{uint32(7), []byte("seed")}, {uint32(1), []byte("seed!")}} {
		b, err := shim.Encode(vals)
		if err != nil {
			t.Fatal(err)
		}
		want[string(b)] = true
	}
	if len(seeds) != 2 || !want[got[0]] || !want[got[1]] {
		t.Errorf("seed corpus %q, want the two encoded seeds %v", got, want)
	}

	art := t.TempDir()
	_, out, err := runBinary(bin, 500_000, art)
	if !errors.Is(err, ErrCrash) {
		t.Fatalf("planted crash not found (err %v):\n%s", err, out)
	}
	for _, w := range []string{"--- FAIL: plant_FuzzPlant", "index out of range", "plant.go", "libFuzzer: deadly signal"} {
		if !strings.Contains(out, w) {
			t.Errorf("libFuzzer output lacks %q:\n%s", w, out)
		}
	}
	crash := crashFile(out)
	if crash == "" {
		t.Fatalf("no crash file in the output:\n%s", out)
	}
	in, err := os.ReadFile(crash)
	if err != nil {
		t.Fatal(err)
	}
	vals := shim.Decode([]reflect.Type{reflect.TypeFor[uint32](), reflect.TypeFor[[]byte]()}, in)
	if tag, data := vals[0].Uint(), vals[1].Bytes(); tag != plantTag || !strings.HasPrefix(string(data), "plant") {
		t.Errorf("crash input %q decodes to tag %#x, data %q; want %#x, \"plant...\"", in, tag, data, plantTag)
	}

	// The crash file replays: the binary run on it fails the same way.
	replay, err := exec.Command(bin, crash).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(replay), "index out of range") {
		t.Errorf("replay of %s: %v, want a crash:\n%s", crash, err, replay)
	}
}

// TestModuleTargetRuns builds one of the module's own fuzz targets and runs
// it for a few thousand inputs from its seed corpus: it must pass, with
// libFuzzer seeing coverage counters.
func TestModuleTargetRuns(t *testing.T) {
	l := requireLibFuzzer(t)
	bin := buildOne(t, l, "./flow/openflow.FuzzDecode")
	if n := len(readZip(t, bin+"_seed_corpus.zip")); n < 10 {
		t.Errorf("seed corpus has %d inputs; want the f.Add seed and testdata/fuzz/FuzzDecode's", n)
	}
	summary, out, err := runBinary(bin, 3000, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(summary, "Done 3000 runs") || !strings.Contains(out, "inline 8-bit counters") {
		t.Errorf("summary %q; output:\n%s", summary, out)
	}
}

// TestExternalTestPackage builds a target of an external test package
// (package xplant_test, with an export_test.go helper) whose fuzz function
// takes a string and an int8 and fails through t.Errorf: the binary must
// pass an ordinary input and report the failing one as a crash.
func TestExternalTestPackage(t *testing.T) {
	l := requireLibFuzzer(t)
	bin := buildOne(t, l, "./test/libfuzzer/testdata/xplant.FuzzSum")
	dir := t.TempDir()
	for _, tc := range []struct {
		name      string
		k         int8
		wantCrash bool
	}{
		{"ordinary", 0, false},
		{"planted", 0x7f, true},
	} {
		in, err := shim.Encode([]any{"xplant", tc.k})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, in, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, path).CombinedOutput()
		crashed := err != nil && strings.Contains(string(out), `planted: "xplant"`) && strings.Contains(string(out), "--- FAIL: xplant_FuzzSum")
		if crashed != tc.wantCrash || (!tc.wantCrash && err != nil) {
			t.Errorf("%s input: err %v, want crash: %v\n%s", tc.name, err, tc.wantCrash, out)
		}
	}
}
