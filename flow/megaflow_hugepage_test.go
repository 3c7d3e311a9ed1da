package flow

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"unsafe"

	"github.com/ovsxdp/ovsxdp/flow/internal/hugepage"
)

// hugePageChildEnv marks the process that TestSubtableHugePages starts.
const hugePageChildEnv = "OVSXDP_TEST_HUGEPAGE_CHILD"

// TestSubtableHugePages checks that a large subtable's records get huge
// pages: that the mapping holding them has the advice and is partly
// backed by huge pages once they are written. It runs in a process of its
// own, whose heap takes the records fresh from the kernel: memory that
// earlier tests touched and freed keeps its 4 KiB pages (see
// hugepage.Advise), which would leave the result to the tests' order.
func TestSubtableHugePages(t *testing.T) {
	if hugepage.Mode() == "never" {
		if os.Getenv("CI") == "true" {
			t.Fatal("transparent huge pages are off (never) on a CI machine")
		}
		t.Skip("transparent huge pages are off: /sys/kernel/mm/transparent_hugepage/enabled says never")
	}
	if os.Getenv(hugePageChildEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSubtableHugePages$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), hugePageChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestSubtableHugePages") {
			t.Fatalf("the test in a process of its own: %v\n%s", err, out)
		}
		t.Logf("the test in a process of its own:\n%s", out)
		return
	}
	mask := Key{InPort: ^uint32(0), DlType: 0xffff, NwSrc: ^uint32(0)}
	st := newMfSubtable(&mask)
	log2 := uint(minGroupsLog2)
	for uintptr(groupSlots<<log2)*st.stride < 16<<20 {
		log2++
	}
	st.alloc(log2)
	// Write every record, as insertions spread over the table would.
	for i := range uint64(st.slots()) {
		clear(st.recKey(st.rec(i)))
	}
	recs := uintptr(st.slots()) * st.stride
	b, err := hugepage.BackingOf(unsafe.Add(st.recs, recs/2))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Advised || b.Huge == 0 {
		t.Fatalf("mapping %#x-%#x of %d MiB of records: advised %v, %d bytes of huge pages; want advised and some",
			b.Start, b.End, recs>>20, b.Advised, b.Huge)
	}
	t.Logf("%d MiB of records; their mapping %#x-%#x has %d MiB of huge pages", recs>>20, b.Start, b.End, b.Huge>>20)
}
