package daemon

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
)

func TestParsePMDCPUMask(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"0x2", []int{1}},
		{"2", []int{1}},
		{"0X6", []int{1, 2}},
		{"f", []int{0, 1, 2, 3}},
		{"0x10", []int{4}},
		{"0xA0", []int{5, 7}},
		{"100000000", []int{32}},
		{"0x0001", []int{0}},
	} {
		got, err := parsePMDCPUMask(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%q: %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"", "no hexadecimal digits"},
		{"0x", "no hexadecimal digits"},
		{"0x0", "selects no CPU"},
		{"000", "selects no CPU"},
		{"0x1g", `'g' at position 4`},
		{"1 2", `' ' at position 2`},
		{"-1", `'-' at position 1`},
		{"0x" + strings.Repeat("f", maxMaskDigits+1), "at most 256"},
	} {
		got, err := parsePMDCPUMask(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, %v; want an error with %q", c.in, got, err, c.want)
		}
	}
}

// TestDaemonPMDCPUMask: Config.PMDCPUMask (daemon --pmd-cpu-mask) pins
// the poll thread of a bridge the daemon runs, and pmd-stats-show gives
// its CPU as core_id. A mask that does not parse, one with a CPU the
// process may not run on, and one given with OVSDB are refused.
func TestDaemonPMDCPUMask(t *testing.T) {
	cpus := datapath.AllowedCPUs()
	c := cpus[len(cpus)-1]
	d, err := New(Config{NoLocalPort: true, Version: "test", Logger: quietLogger(), PMDCPUMask: fmt.Sprintf("0x%x", uint64(1)<<c)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	run(t, d, "add-br", "br0")
	run(t, d, "add-port", "br0", "p1")
	want := fmt.Sprintf("pmd thread numa_id 0 core_id %d:", c)
	deadline := time.Now().Add(10 * time.Second)
	for out := ""; !strings.Contains(out, want); out = run(t, d, "pmd-stats-show") {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s pmd-stats-show says\n%s\nwant %q", out, want)
		}
		time.Sleep(time.Millisecond)
	}
	for _, bad := range []struct{ mask, ovsdb, want string }{
		{"0xq", "", `'q' at position 3 is not a hexadecimal digit`},
		{"0x1" + strings.Repeat("0", maxMaskDigits-1), "", "CPU 1020 is not one the process may run on"},
		{"1", "unix:/nonexistent.sock", "from the database"},
	} {
		d, err := New(Config{NoLocalPort: true, Version: "test", Logger: quietLogger(), PMDCPUMask: bad.mask, OVSDB: bad.ovsdb})
		if err == nil {
			d.Close()
			t.Errorf("mask %q (ovsdb %q) accepted", bad.mask, bad.ovsdb)
		} else if !strings.Contains(err.Error(), bad.want) {
			t.Errorf("mask %q (ovsdb %q): %v, want an error with %q", bad.mask, bad.ovsdb, err, bad.want)
		}
	}
}
