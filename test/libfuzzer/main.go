// Command libfuzzer builds the module's Go fuzz targets as libFuzzer
// binaries, the way OSS-Fuzz builds Go native fuzzers, and runs them.
//
//	go run ./test/libfuzzer build [-o DIR] [-cc CLANG] [PKG.FuzzName | PKG-PATTERN ...]
//	go run ./test/libfuzzer run [-runs N] BINARY ...
//
// build: for each func FuzzX(f *testing.F) (default: every one in ./...),
// without touching the source tree (go build -overlay), the package's test
// files that its fuzz targets need become ordinary files of the package,
// their "testing" import (and that of the module's test helper packages)
// pointed at test/libfuzzer/shim; a generated main package
// under the package's directory exports LLVMFuzzerTestOneInput through cgo
// and feeds each input to the target's fuzz function (one []byte or string
// argument gets the input as it is; several are decoded as shim.Decode
// says). It is built with -buildmode=c-archive -gcflags=all=-d=libfuzzer
// and linked by clang -fsanitize=fuzzer (under OSS-Fuzz: $CXX $CXXFLAGS
// $LIB_FUZZING_ENGINE). DIR (default bin/libfuzzer) gets, per target, the
// binary PKG_FuzzX (PKG the package's last path element), its seed corpus
// PKG_FuzzX_seed_corpus.zip (f.Add seeds and testdata/fuzz/FuzzX, encoded
// as the binary decodes them), PKG_FuzzX.dict if test/libfuzzer/dict has
// one, and PKG_FuzzX.pkg/testdata, a copy of the package's other testdata
// for setups that read files.
//
// run: runs each binary for a fixed number of inputs (-runs) from its seed
// corpus, with its dictionary, and fails at the first crash, printing the
// report and keeping the crashing input.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = buildCmd(os.Args[2:])
	case "run":
		err = runCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "libfuzzer:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: libfuzzer build [-o DIR] [-cc CLANG] [PKG.FuzzName | PKG-PATTERN ...]\n       libfuzzer run [-runs N] BINARY ...")
	os.Exit(2)
}

func buildCmd(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	out := fs.String("o", "bin/libfuzzer", "output `dir`ectory")
	cc := fs.String("cc", "", "clang to link with (default: $CXX under OSS-Fuzz, else the first clang in PATH)")
	work := fs.String("work", "", "keep the generated files in this `dir`ectory (default: a temporary one, removed)")
	bundle := fs.Bool("bundle", true, "copy each package's testdata (but testdata/fuzz) beside its binary")
	fs.Parse(args)
	modDir, err := moduleDir()
	if err != nil {
		return err
	}
	link, err := findLinker(*cc)
	if err != nil {
		return err
	}
	targets, err := selectTargets(modDir, fs.Args())
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("./...: %w", ErrNoTarget)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	outDir, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	o := &buildOptions{modDir: modDir, out: outDir, link: link, bundle: *bundle,
		log: func(format string, args ...any) { fmt.Printf(format+"\n", args...) }}
	if *work != "" {
		if err := os.MkdirAll(*work, 0o755); err != nil {
			return err
		}
		o.work = *work
	} else {
		if o.work, err = os.MkdirTemp("", "libfuzzer-build-"); err != nil {
			return err
		}
		defer os.RemoveAll(o.work)
	}
	for _, t := range targets { // one at a time: each build is a whole toolchain's worth of CPU
		if err := buildTarget(o, t); err != nil {
			return err
		}
	}
	return nil
}

// moduleDir is the directory of the main module.
func moduleDir() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
