package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
)

// runner lets the harness use the project's test helpers (test/ovsref,
// test/netns), which take a testing.TB, outside go test: Fatal and Skip
// end the goroutine the setup runs in, as in a test, and Cleanup
// functions run in reverse order when it has ended, whether it failed or
// not. The embedded testing.TB is nil: a helper calling a method that
// runner does not define panics, which run reports as a failure.
type runner struct {
	testing.TB
	log *slog.Logger

	mu       sync.Mutex // protects the fields below
	cleanups []func()
	errs     []string
}

var _ testing.TB = (*runner)(nil)

func newRunner(log *slog.Logger) *runner { return &runner{log: log} }

// run runs body in a goroutine of its own and returns once it has ended
// (normally, by Fatal or by a panic), without running the cleanups.
func (r *runner) run(body func(t *runner)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				r.Errorf("panic: %v", p)
			}
		}()
		body(r)
	}()
	<-done
}

// cleanup runs the cleanup functions, last registered first.
func (r *runner) cleanup() {
	for {
		r.mu.Lock()
		n := len(r.cleanups)
		if n == 0 {
			r.mu.Unlock()
			return
		}
		f := r.cleanups[n-1]
		r.cleanups = r.cleanups[:n-1]
		r.mu.Unlock()
		r.run(func(*runner) { f() })
	}
}

// errors returns the failures reported so far.
func (r *runner) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

func (r *runner) Helper()      {}
func (r *runner) Name() string { return "bench-ovn" }
func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}
func (r *runner) Failed() bool { return len(r.errors()) > 0 }
func (r *runner) Log(args ...any) {
	r.log.Info(fmt.Sprint(args...))
}
func (r *runner) Logf(format string, args ...any) { r.log.Info(fmt.Sprintf(format, args...)) }
func (r *runner) Error(args ...any)               { r.fail(fmt.Sprint(args...)) }
func (r *runner) Errorf(format string, args ...any) {
	r.fail(fmt.Sprintf(format, args...))
}
func (r *runner) Fail()    { r.fail("failed") }
func (r *runner) FailNow() { r.fail("failed"); runtime.Goexit() }
func (r *runner) Fatal(args ...any) {
	r.fail(fmt.Sprint(args...))
	runtime.Goexit()
}
func (r *runner) Fatalf(format string, args ...any) {
	r.fail(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// A requirement a helper finds missing (testenv.Missing) ends the run:
// the harness cannot measure without it.
func (r *runner) Skip(args ...any) { r.Fatal(args...) }
func (r *runner) Skipf(format string, args ...any) {
	r.Fatalf(format, args...)
}
func (r *runner) SkipNow()      { r.Fatal("skipped") }
func (r *runner) Skipped() bool { return false }
func (r *runner) TempDir() string {
	dir, err := os.MkdirTemp("", "bench-ovn-")
	if err != nil {
		r.Fatal(err)
	}
	r.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (r *runner) fail(msg string) {
	r.log.Error(msg)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, msg)
}
