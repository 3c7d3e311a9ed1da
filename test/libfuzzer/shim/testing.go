// Package shim stands in for the standard testing package when a Go fuzz
// target is built as a libFuzzer binary: the builder (test/libfuzzer)
// points the "testing" import of the target's test files here. It has the
// parts of testing that fuzz targets and their helpers use: F collects the
// seeds and the fuzz function, T runs one input. Fatal, FailNow and a
// failed Error end the input as a crash, which the generated harness hands
// to libFuzzer; Skip ends the input quietly.
package shim

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

// TB is the interface common to T, B and F.
type TB interface {
	ArtifactDir() string
	Attr(key, value string)
	Chdir(dir string)
	Cleanup(func())
	Context() context.Context
	Error(args ...any)
	Errorf(format string, args ...any)
	Fail()
	FailNow()
	Failed() bool
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Helper()
	Log(args ...any)
	Logf(format string, args ...any)
	Name() string
	Output() io.Writer
	Setenv(key, value string)
	Skip(args ...any)
	SkipNow()
	Skipf(format string, args ...any)
	Skipped() bool
	TempDir() string
}

var (
	_ TB = (*T)(nil)
	_ TB = (*B)(nil)
	_ TB = (*F)(nil)
)

// failNow and skipNow are the panic values that end an input early; the
// harness recovers them.
type (
	failNow struct{}
	skipNow struct{}
)

// common is the state of one test, benchmark, fuzz setup or input.
type common struct {
	mu       sync.Mutex // guards the fields below
	name     string
	log      strings.Builder
	failed   bool
	skipped  bool
	cleanups []func()
	tempDirs []string
	env      []envRestore
	dir      string // working directory before Chdir, "" if unchanged
	ctx      context.Context
	cancel   context.CancelFunc
}

type envRestore struct {
	key, value string
	had        bool
}

func (c *common) init(name string) {
	c.name = name
	c.ctx, c.cancel = context.WithCancel(context.Background())
}

func (c *common) logf(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log.WriteString("    ")
	c.log.WriteString(strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n        "))
	c.log.WriteString("\n")
}

// ArtifactDir returns a directory for the test's output files; here a
// temporary one, removed when the test ends.
func (c *common) ArtifactDir() string { return c.TempDir() }

// Attr records an attribute as a log line.
func (c *common) Attr(key, value string) { c.logf("=== ATTR " + key + " " + value) }

// Chdir changes the working directory until the end of the test.
func (c *common) Chdir(dir string) {
	wd, err := os.Getwd()
	if err != nil {
		c.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		c.Fatal(err)
	}
	c.mu.Lock()
	if c.dir == "" {
		c.dir = wd
	}
	c.mu.Unlock()
}

// Cleanup registers f to run when the test ends, last registered first.
func (c *common) Cleanup(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleanups = append(c.cleanups, f)
}

// Context is canceled just before the cleanups run.
func (c *common) Context() context.Context { return c.ctx }

func (c *common) Error(args ...any) { c.logf(fmt.Sprintln(args...)); c.Fail() }

func (c *common) Errorf(format string, args ...any) { c.logf(fmt.Sprintf(format, args...)); c.Fail() }

// Fail marks the test failed; the input counts as a crash when it ends.
func (c *common) Fail() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed = true
}

// FailNow marks the test failed and ends it.
func (c *common) FailNow() {
	c.Fail()
	panic(failNow{})
}

func (c *common) Failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

func (c *common) Fatal(args ...any) { c.logf(fmt.Sprintln(args...)); c.FailNow() }

func (c *common) Fatalf(format string, args ...any) {
	c.logf(fmt.Sprintf(format, args...))
	c.FailNow()
}

// Helper does nothing: log lines carry no file positions here.
func (c *common) Helper() {}

func (c *common) Log(args ...any) { c.logf(fmt.Sprintln(args...)) }

func (c *common) Logf(format string, args ...any) { c.logf(fmt.Sprintf(format, args...)) }

func (c *common) Name() string { return c.name }

// Output returns a writer into the test's log.
func (c *common) Output() io.Writer { return logWriter{c} }

type logWriter struct{ c *common }

func (w logWriter) Write(p []byte) (int, error) { w.c.logf(string(p)); return len(p), nil }

// Setenv sets an environment variable until the end of the test.
func (c *common) Setenv(key, value string) {
	old, had := os.LookupEnv(key)
	if err := os.Setenv(key, value); err != nil {
		c.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.env = append(c.env, envRestore{key, old, had})
}

func (c *common) Skip(args ...any) { c.logf(fmt.Sprintln(args...)); c.SkipNow() }

func (c *common) Skipf(format string, args ...any) { c.logf(fmt.Sprintf(format, args...)); c.SkipNow() }

// SkipNow ends the test without failing it.
func (c *common) SkipNow() {
	c.mu.Lock()
	c.skipped = true
	c.mu.Unlock()
	panic(skipNow{})
}

func (c *common) Skipped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.skipped
}

// TempDir returns a new directory removed when the test ends.
func (c *common) TempDir() string {
	dir, err := os.MkdirTemp("", "libfuzzer-")
	if err != nil {
		c.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tempDirs = append(c.tempDirs, dir)
	return dir
}

// finish runs the cleanups and undoes Setenv, Chdir and TempDir. A cleanup
// that fails the test counts; one that panics is reported as the panic.
func (c *common) finish() {
	c.cancel()
	for {
		c.mu.Lock()
		n := len(c.cleanups)
		if n == 0 {
			c.mu.Unlock()
			break
		}
		f := c.cleanups[n-1]
		c.cleanups = c.cleanups[:n-1]
		c.mu.Unlock()
		f()
	}
	for i := len(c.env) - 1; i >= 0; i-- {
		e := c.env[i]
		if e.had {
			os.Setenv(e.key, e.value)
		} else {
			os.Unsetenv(e.key)
		}
	}
	c.env = nil
	if c.dir != "" {
		os.Chdir(c.dir)
		c.dir = ""
	}
	for _, d := range c.tempDirs {
		os.RemoveAll(d)
	}
	c.tempDirs = nil
}

// T is one input of a fuzz function, or a subtest of one.
type T struct {
	common
}

// Deadline reports no deadline.
func (t *T) Deadline() (time.Time, bool) { return time.Time{}, false }

// Parallel does nothing: inputs run one at a time.
func (t *T) Parallel() {}

// Run runs f as a subtest, at once, and reports whether it passed. A
// failed subtest fails t.
func (t *T) Run(name string, f func(t *T)) bool {
	sub := &T{}
	sub.init(t.name + "/" + name)
	ok := runSub(&sub.common, func() { f(sub) })
	t.logf(sub.log.String())
	if !ok {
		t.Fail()
	}
	return ok
}

// runSub runs f, ends it at FailNow or SkipNow, runs the cleanups and
// reports whether it passed. Other panics go on up.
func runSub(c *common, f func()) (ok bool) {
	defer c.finish()
	func() {
		defer func() {
			switch r := recover(); r.(type) {
			case nil, failNow, skipNow:
			default:
				panic(r)
			}
		}()
		f()
	}()
	return !c.Failed()
}

// B is a benchmark; here it runs its function once, with N = 1.
type B struct {
	common
	N     int
	start time.Time
	done  bool
}

func (b *B) ResetTimer()                             { b.start = time.Now() }
func (b *B) StartTimer()                             {}
func (b *B) StopTimer()                              {}
func (b *B) ReportAllocs()                           {}
func (b *B) ReportMetric(n float64, unit string)     {}
func (b *B) SetBytes(n int64)                        {}
func (b *B) Elapsed() time.Duration                  { return time.Since(b.start) }
func (b *B) Run(name string, f func(b *B)) (ok bool) { return b.runSub(name, f) }

// Loop is true once.
func (b *B) Loop() bool {
	if b.done {
		return false
	}
	b.done = true
	return true
}

func (b *B) runSub(name string, f func(b *B)) bool {
	sub := &B{N: 1, start: time.Now()}
	sub.init(b.name + "/" + name)
	ok := runSub(&sub.common, func() { f(sub) })
	b.logf(sub.log.String())
	if !ok {
		b.Fail()
	}
	return ok
}

// M stands for the test binary's main; Run runs nothing.
type M struct{}

// Run returns 0.
func (m *M) Run() int { return 0 }

// Short is false and Verbose is false: the binary runs no go test flags.
func Short() bool { return false }

// Verbose reports false.
func Verbose() bool { return false }

// Testing reports true: the code runs under a test harness.
func Testing() bool { return true }

// AllocsPerRun returns the average number of allocations of f over runs
// calls, after one warm-up call, as testing.AllocsPerRun does.
func AllocsPerRun(runs int, f func()) float64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.Mallocs
	for i := 0; i < runs; i++ {
		f()
	}
	runtime.ReadMemStats(&ms)
	return float64((ms.Mallocs - before) / uint64(runs))
}

// SetParallelism does nothing.
func (b *B) SetParallelism(p int) {}

// PB iterates a parallel benchmark; here once, on one goroutine.
type PB struct{ done bool }

// Next is true once.
func (pb *PB) Next() bool {
	if pb.done {
		return false
	}
	pb.done = true
	return true
}

// RunParallel runs body once.
func (b *B) RunParallel(body func(*PB)) { body(&PB{}) }

// BenchmarkResult is what Benchmark returns.
type BenchmarkResult struct {
	N int
	T time.Duration
}

// Benchmark runs f once, with N = 1.
func Benchmark(f func(b *B)) BenchmarkResult {
	b := &B{N: 1, start: time.Now()}
	b.init("Benchmark")
	runSub(&b.common, func() { f(b) })
	return BenchmarkResult{N: 1, T: b.Elapsed()}
}

// CoverMode reports "": the binary is not built with -cover.
func CoverMode() string { return "" }

// Coverage reports 0.
func Coverage() float64 { return 0 }
