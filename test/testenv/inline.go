package testenv

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Inlined is a function that a package's hot path needs the compiler to
// inline: a loop that makes a call keeps its state in memory, and a
// helper that stops inlining after an innocent edit costs throughput
// with no other test failing. It is named as the compiler's -m output
// names it ("mum", "(*EMC).slots", "(*emcEntry).holdsCommon",
// "DeviceState.Running"; a generic function without its type
// arguments), with why: the loop or call site that makes no call
// because of it.
type Inlined struct {
	Name string
	Why  string
}

// CheckInlined fails the test naming every function of must that the Go
// compiler no longer reports it can inline in the package whose import
// path is pkg, with the compiler's reason (its cost, when it is over the
// budget), or that it does not report at all (renamed or removed: the list
// is then out of date). It builds pkg once with -gcflags=pkg=-m=2, so
// that its dependencies report nothing; the go command replays the
// report of a cached build. The report depends on the source and the
// compiler only, never on the machine's load. It checks the build that
// ships: GOFLAGS's -race, -cover and the like are left out
// (releaseGoFlags).
//
// The go tool is the one in $GOROOT/bin (which go test sets for the tests
// it runs), else the first in PATH; with neither, the test skips, or fails
// under CI=true.
func CheckInlined(t *testing.T, pkg string, must []Inlined) {
	t.Helper()
	goTool := goCommand(t)
	cmd := exec.Command(goTool, "build", "-gcflags="+pkg+"=-m=2", pkg)
	cmd.Env = append(os.Environ(), "GOFLAGS="+releaseGoFlags(os.Getenv("GOFLAGS")))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build -gcflags=%s=-m=2 %s: %v\n%s", pkg, pkg, err, out)
	}
	report, err := parseInlineReport(out)
	if err != nil {
		t.Fatalf("go build -gcflags=%s=-m=2 %s: reading its report: %v", pkg, pkg, err)
	}
	for _, m := range must {
		r, ok := report[m.Name]
		switch {
		case !ok:
			t.Errorf("%s: the compiler reports nothing about it (renamed or removed? update the list); it must inline: %s", m.Name, m.Why)
		case !r.can:
			t.Errorf("%s: no longer inlined (%s); it must inline: %s", m.Name, r.why, m.Why)
		}
	}
}

// goCommand returns the path of the go tool that CheckInlined runs.
func goCommand(t *testing.T) string {
	t.Helper()
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		Missing(t, "the go tool, to report the compiler's inlining decisions: neither $GOROOT/bin/go nor go in PATH")
	}
	return p
}

// releaseGoFlags returns goflags (a GOFLAGS value) without the flags
// that build another kind of binary than the one that ships, whose
// inlining differs: -race and -msan (atomics become calls), -asan,
// -cover* (counters add to every function's cost) and -gcflags.
func releaseGoFlags(goflags string) string {
	var keep []string
	for _, f := range strings.Fields(goflags) {
		name, _, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
		switch {
		case name == "race", name == "msan", name == "asan", name == "gcflags",
			strings.HasPrefix(name, "cover"):
		default:
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// inlineVerdict is what -m=2 reports about one function: whether it can
// inline, and if not, why ("function too complex: cost 81 exceeds budget
// 80").
type inlineVerdict struct {
	can bool
	why string
}

// The lines of -m=2's report that give a function's verdict:
// "FILE:LINE:COL: can inline NAME with cost N as: ..." and
// "FILE:LINE:COL: cannot inline NAME: REASON".
var (
	canInline    = regexp.MustCompile(`^[^ ]+:\d+:\d+: can inline ([^ ]+) with cost \d+`)
	cannotInline = regexp.MustCompile(`^[^ ]+:\d+:\d+: cannot inline ([^ ]+): (.*)$`)
)

// parseInlineReport returns the verdict of each function that out (go
// build's -m=2 report) names, by name without type arguments: a generic
// function can inline only if every instance of it the report names can.
func parseInlineReport(out []byte) (map[string]inlineVerdict, error) {
	report := make(map[string]inlineVerdict)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20) // -m=2 prints each inlinable body on one line
	for sc.Scan() {
		line := sc.Text()
		if m := canInline.FindStringSubmatch(line); m != nil {
			name := withoutTypeArgs(m[1])
			if _, seen := report[name]; !seen {
				report[name] = inlineVerdict{can: true}
			}
		} else if m := cannotInline.FindStringSubmatch(line); m != nil {
			report[withoutTypeArgs(m[1])] = inlineVerdict{why: m[2]}
		}
	}
	return report, sc.Err()
}

// withoutTypeArgs returns a function's name without the type arguments
// of a generic instance: "keyBits[go.shape.uint16]" is "keyBits".
func withoutTypeArgs(name string) string {
	if i := strings.IndexByte(name, '['); i >= 0 {
		return name[:i]
	}
	return name
}
