package flow

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow/internal/hugepage"
)

// memChildEnv marks the process that TestMegaflowFlushReleasesMemory
// starts.
const memChildEnv = "OVSXDP_TEST_MEM_CHILD"

// memUsage is what the kernel counts of the process's memory, in bytes:
// resident anonymous memory and the part of it huge pages back.
type memUsage struct{ anon, huge uint64 }

// readMemUsage reads the process's resident anonymous memory and
// AnonHugePages from /proc/self/smaps_rollup.
func readMemUsage(t *testing.T) memUsage {
	t.Helper()
	f, err := os.Open("/proc/self/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var u memUsage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), ":")
		var into *uint64
		switch name {
		case "Anonymous":
			into = &u.anon
		case "AnonHugePages":
			into = &u.huge
		default:
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("smaps_rollup: %q: %v", sc.Text(), err)
		}
		*into = kb << 10
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestMegaflowFlushReleasesMemory checks that a classifier emptied of a
// million megaflows gives their memory back: after the Go heap returns
// what it freed (debug.FreeOSMemory), the process's anonymous memory is
// within 64 MiB of what it was before the megaflows, huge pages included.
// The large subtables' arrays have the huge page advice, which stays on
// their address range once they are freed; the runtime returns freed
// memory with MADV_DONTNEED, which drops huge pages as well as small ones,
// so the advice keeps nothing. What did keep the memory was the
// classifier itself holding the subtables it had let go of. It runs in a
// process of its own, whose memory no other test has used.
func TestMegaflowFlushReleasesMemory(t *testing.T) {
	if raceEnabled {
		// Measured: 1,682 MiB kept after a flush, the detector's shadow
		// of the freed heap; the test runs without it in the unit stage.
		t.Skip("the race detector keeps a shadow of freed memory, which this test would count")
	}
	if os.Getenv(memChildEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMegaflowFlushReleasesMemory$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), memChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestMegaflowFlushReleasesMemory") {
			t.Fatalf("the test in a process of its own: %v\n%s", err, out)
		}
		t.Logf("the test in a process of its own:\n%s", out)
		return
	}
	const n, masks, slack = 1 << 20, 4, 64 << 20
	tests := []struct {
		name    string
		inEmpty func(*Megaflows)
	}{
		{name: "flush", inEmpty: (*Megaflows).Flush},
		{name: "remove every megaflow", inEmpty: func(c *Megaflows) { c.RemoveIf(func(*Megaflow) bool { return true }) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.FreeOSMemory()
			base := readMemUsage(t)
			_, c := spreadMegaflows(t, n, masks)
			full := readMemUsage(t)
			tt.inEmpty(c)
			debug.FreeOSMemory()
			empty := readMemUsage(t)
			t.Logf("anonymous/huge pages MiB: before %d/%d, with %d megaflows %d/%d, emptied %d/%d",
				base.anon>>20, base.huge>>20, n, full.anon>>20, full.huge>>20, empty.anon>>20, empty.huge>>20)
			if c.Len() != 0 || c.Subtables() != 0 {
				t.Fatalf("%d megaflows in %d subtables left", c.Len(), c.Subtables())
			}
			for i, st := range c.subs[:cap(c.subs)] {
				if st != nil {
					t.Errorf("the probe order's array still holds a subtable of %d megaflows at %d", st.n, i)
				}
			}
			if full.anon < base.anon+8*slack {
				t.Fatalf("%d megaflows took only %d MiB: the test measures nothing", n, (full.anon-base.anon)>>20)
			}
			if hugepage.Mode() != "never" && full.huge == 0 {
				t.Errorf("no huge pages backed %d megaflows: the advice was not measured", n)
			}
			if empty.anon > base.anon+slack || empty.huge > base.huge+slack {
				t.Errorf("emptied, the classifier keeps %d MiB (%d MiB of huge pages) over the %d MiB before; want at most %d",
					(empty.anon-base.anon)>>20, (empty.huge-base.huge)>>20, base.anon>>20, slack>>20)
			}
			runtime.KeepAlive(c)
		})
	}
}
