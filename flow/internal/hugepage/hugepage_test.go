package hugepage

import (
	"os"
	"testing"
	"unsafe"
)

func TestInterior(t *testing.T) {
	tests := []struct {
		name              string
		inAddr, inLen     uintptr
		wantOff, wantSize uintptr
	}{
		{name: "aligned", inAddr: 4 * Size, inLen: 3 * Size, wantOff: 0, wantSize: 3 * Size},
		{name: "unaligned head and tail", inAddr: 4*Size + 8, inLen: 3 * Size, wantOff: Size - 8, wantSize: 2 * Size},
		{name: "just one page", inAddr: 4*Size + 8, inLen: 2*Size - 8, wantOff: Size - 8, wantSize: Size},
		{name: "short of one page", inAddr: 4*Size + 8, inLen: 2*Size - 9},
		{name: "smaller than a page", inAddr: 4 * Size, inLen: Size - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off, size := interior(tt.inAddr, tt.inLen)
			if size != tt.wantSize || size != 0 && off != tt.wantOff {
				t.Fatalf("interior = %d bytes at +%d, want %d at +%d", size, off, tt.wantSize, tt.wantOff)
			}
		})
	}
}

// requireTHP skips the test where the kernel gives no transparent huge
// pages, except in CI, whose machines do.
func requireTHP(t *testing.T) {
	t.Helper()
	if Mode() == "never" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("transparent huge pages are off (%s says never) on a CI machine", sysEnabled)
		}
		t.Skipf("transparent huge pages are off: %s says never", sysEnabled)
	}
}

// TestAdviseSlice advises a fresh 16 MiB array, writes it and checks that
// its mapping has the advice and huge pages.
func TestAdviseSlice(t *testing.T) {
	requireTHP(t)
	s := make([]uint64, 16<<20/8)
	if err := AdviseSlice(s); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(s); i += 512 {
		s[i] = uint64(i)
	}
	mid := unsafe.Pointer(&s[len(s)/2])
	b, err := BackingOf(mid)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Advised || b.Huge == 0 {
		t.Fatalf("mapping %#x-%#x of the array: advised %v, %d bytes of huge pages; want advised and some", b.Start, b.End, b.Advised, b.Huge)
	}
}

func TestAdviseSmall(t *testing.T) {
	s := make([]uint64, MinBytes/8-1)
	if err := AdviseSlice(s); err != nil {
		t.Fatalf("advising %d bytes: %v, want nothing done", len(s)*8, err)
	}
	if err := AdviseSlice([]byte(nil)); err != nil {
		t.Fatalf("advising nothing: %v", err)
	}
}
