package shim

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
)

// Environment variables the generated harness reads.
const (
	// EnvSeeds names a directory: the harness writes the encoded f.Add
	// seeds there, one file each, and the argument types to its file
	// TypesFile, then exits.
	EnvSeeds = "OVSXDP_LIBFUZZER_SEEDS"
	// EnvPkgDir names the directory the fuzz setup runs in (where it
	// finds its testdata); see Harness.
	EnvPkgDir = "OVSXDP_LIBFUZZER_PKGDIR"
	// TypesFile is the name, in the EnvSeeds directory, of the file that
	// lists the fuzz function's argument types, one a line.
	TypesFile = "types.txt"
)

// F is the state of a fuzz target's setup: the seeds it adds and the
// function it fuzzes.
type F struct {
	common
	seeds [][]any
	fn    reflect.Value
	types []reflect.Type
}

// Add records a seed input.
func (f *F) Add(args ...any) {
	f.seeds = append(f.seeds, args)
}

// Fuzz records the fuzz function: func(*testing.T, args...) with
// arguments of the types go test accepts.
func (f *F) Fuzz(ff any) {
	if f.fn.IsValid() {
		panic("testing: F.Fuzz called more than once")
	}
	v := reflect.ValueOf(ff)
	t := v.Type()
	if t.Kind() != reflect.Func || t.NumIn() < 1 || t.In(0) != reflect.TypeFor[*T]() || t.NumOut() != 0 {
		panic("testing: F.Fuzz takes a func(*testing.T, ...)")
	}
	types := make([]reflect.Type, t.NumIn()-1)
	for i := range types {
		types[i] = t.In(i + 1)
	}
	if err := CheckTypes(types); err != nil {
		panic("testing: F.Fuzz: " + err.Error())
	}
	f.fn, f.types = v, types
}

// Harness runs one fuzz target under libFuzzer.
type Harness struct {
	name   string
	srcDir string
	setup  func(*F)

	once     sync.Once
	f        *F
	setupErr error
	skipped  string
}

// NewHarness returns the harness of the fuzz target name, whose setup
// function is setup. The setup runs once, on first use, in the first of
// these directories that exists: $OVSXDP_LIBFUZZER_PKGDIR, the directory
// NAME.pkg beside the executable (where the builder copies the package's
// testdata), srcDir (the package's source directory at build time).
func NewHarness(name, srcDir string, setup func(*F)) *Harness {
	return &Harness{name: name, srcDir: srcDir, setup: setup}
}

// ErrSetup reports a fuzz target whose setup failed or never called Fuzz.
var ErrSetup = errors.New("fuzz target setup failed")

func (h *Harness) pkgDir() string {
	cands := []string{os.Getenv(EnvPkgDir)}
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, exe+".pkg")
	}
	cands = append(cands, h.srcDir)
	for _, d := range cands {
		if d == "" {
			continue
		}
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	return ""
}

func (h *Harness) init() {
	h.once.Do(func() {
		if d := h.pkgDir(); d != "" {
			if wd, err := os.Getwd(); err == nil && os.Chdir(d) == nil {
				defer os.Chdir(wd)
			}
		}
		f := &F{}
		f.init(h.name)
		var panicked any
		var stack []byte
		func() {
			defer func() {
				switch r := recover(); r.(type) {
				case nil, failNow, skipNow:
				default:
					panicked, stack = r, debug.Stack()
				}
			}()
			h.setup(f)
		}()
		// As under go test, what the setup registered (f.Cleanup, f.TempDir,
		// f.Setenv) lasts while inputs run: until the process ends when the
		// setup succeeded.
		if panicked != nil || f.Failed() || f.Skipped() || !f.fn.IsValid() {
			f.finish()
		}
		switch {
		case panicked != nil:
			h.setupErr = fmt.Errorf("%s: panic: %v\n%s%w", h.name, panicked, stack, ErrSetup)
		case f.Failed():
			h.setupErr = fmt.Errorf("%s:\n%s%w", h.name, f.log.String(), ErrSetup)
		case f.Skipped():
			h.skipped = f.log.String()
		case !f.fn.IsValid():
			h.setupErr = fmt.Errorf("%s: no call to f.Fuzz: %w", h.name, ErrSetup)
		}
		h.f = f
	})
}

// Init runs the setup and reports its failure. A skipped setup is no
// failure: every input then passes.
func (h *Harness) Init() error {
	h.init()
	return h.setupErr
}

// Failure is an input that failed: a panic, or a test marked failed.
type Failure struct {
	Name  string
	Log   string
	Panic any    // nil when the test failed without a panic
	Stack []byte // where the panic was raised
}

func (e *Failure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- FAIL: %s\n%s", e.Name, e.Log)
	if e.Panic != nil {
		fmt.Fprintf(&b, "panic: %v\n\n%s", e.Panic, e.Stack)
	}
	return b.String()
}

// Run decodes data into the fuzz function's arguments and calls it. It
// returns a *Failure when the input fails, and the setup's error when the
// setup failed.
func (h *Harness) Run(data []byte) error {
	h.init()
	if h.setupErr != nil {
		return h.setupErr
	}
	if h.skipped != "" || !h.f.fn.IsValid() {
		return nil
	}
	t := &T{}
	t.init(h.name)
	args := append([]reflect.Value{reflect.ValueOf(t)}, Decode(h.f.types, data)...)
	var fail *Failure
	func() {
		defer func() {
			if r := recover(); r != nil {
				fail = &Failure{Panic: r, Stack: debug.Stack()}
			}
		}()
		runSub(&t.common, func() { h.f.fn.Call(args) })
	}()
	if fail == nil && t.Failed() {
		fail = &Failure{}
	}
	if fail != nil {
		fail.Name, fail.Log = h.name, t.log.String()
		return fail
	}
	return nil
}

// Types lists the fuzz function's argument types.
func (h *Harness) Types() ([]reflect.Type, error) {
	h.init()
	if h.setupErr != nil {
		return nil, h.setupErr
	}
	if !h.f.fn.IsValid() {
		return nil, nil
	}
	return h.f.types, nil
}

// WriteSeeds writes the f.Add seeds, encoded, into dir (one file each,
// named by their SHA-1 as libFuzzer names inputs), and the argument types
// to dir/TypesFile.
func (h *Harness) WriteSeeds(dir string) error {
	types, err := h.Types()
	if err != nil {
		return err
	}
	var names []string
	for _, t := range types {
		names = append(names, t.String())
	}
	if err := os.WriteFile(filepath.Join(dir, TypesFile), []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	for i, s := range h.f.seeds {
		if len(s) != len(types) {
			return fmt.Errorf("%s: seed %d has %d values, the fuzz function takes %d", h.name, i, len(s), len(types))
		}
		for j, v := range s {
			if reflect.TypeOf(v) != types[j] {
				return fmt.Errorf("%s: seed %d: argument %d is %T, the fuzz function takes %s", h.name, i, j+1, v, types[j])
			}
		}
		b, err := Encode(s)
		if err != nil {
			return fmt.Errorf("%s: seed %d: %w", h.name, i, err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%x", sha1.Sum(b))), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Main is what the generated harness calls from LLVMFuzzerInitialize: with
// $OVSXDP_LIBFUZZER_SEEDS set it writes the seeds and exits; otherwise it
// runs the setup and exits with the error if it failed.
func (h *Harness) Main() {
	if dir := os.Getenv(EnvSeeds); dir != "" {
		if err := h.WriteSeeds(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if err := h.Init(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if h.skipped != "" {
		fmt.Fprintf(os.Stderr, "--- SKIP: %s\n%s", h.name, h.skipped)
	}
}
