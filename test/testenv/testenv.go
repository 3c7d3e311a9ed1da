// Package testenv holds what ovsxdp's tests share about their environment:
// whether they run in CI, and checks for tools and privileges that skip a
// test outside CI and fail it in CI, where everything must run.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test with the reason, or fails it in CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and a requirement is missing: "+format, args...)
	}
	t.Skipf("skipped, requirement missing: "+format, args...)
}

// RequireTool returns the path of the named program, or skips (fails in CI)
// naming the Debian package that provides it.
func RequireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not found in PATH (install the Debian package %s, or run `make deps`)", name, debianPackage)
	}
	return path
}

// RequireRoot skips (fails in CI) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root (network namespaces, AF_XDP)")
	}
}
