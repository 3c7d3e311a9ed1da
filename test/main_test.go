package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestMain removes what the package's tests share once they have all run:
// the programs built for them and the shared sandboxed Open vSwitch.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := ovsref.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "stop the shared Open vSwitch:", err)
		if code == 0 {
			code = 1
		}
	}
	builds.mu.Lock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	builds.mu.Unlock()
	os.Exit(code)
}

// builds holds the programs the tests run, each built once per package
// run: linking cmd/ovsxdp takes seconds on a loaded machine, and some
// forty tests run it.
var builds struct {
	mu   sync.Mutex // guards the fields below
	dir  string     // where the binaries go, removed by TestMain
	done map[string]build
}

type build struct {
	path string
	err  error
}

// buildOnce builds the package pkg (a path relative to the module root,
// such as "./cmd/ovsxdp") the first time a test asks for it and returns
// the binary's path; later calls return the same binary, or fail with the
// first build's error. The binary must not be modified.
func buildOnce(t testing.TB, pkg string) string {
	t.Helper()
	goTool := testenv.RequireTool(t, "go", "golang")
	builds.mu.Lock()
	defer builds.mu.Unlock()
	b, ok := builds.done[pkg]
	if !ok {
		b = buildLocked(goTool, pkg)
		if builds.done == nil {
			builds.done = map[string]build{}
		}
		builds.done[pkg] = b
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func buildLocked(goTool, pkg string) build {
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "ovsxdp-testbin-")
		if err != nil {
			return build{err: err}
		}
		builds.dir = dir
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	bin := filepath.Join(builds.dir, strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "-"))
	cmd := exec.Command(goTool, "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return build{err: fmt.Errorf("go build %s: %v\n%s", pkg, err, out)}
	}
	return build{path: bin}
}
