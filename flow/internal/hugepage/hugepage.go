// Package hugepage asks Linux to back large arrays of the Go heap with
// transparent huge pages.
//
// A lookup in a table of a million entries misses the CPU caches, and with
// 4 KiB pages it misses the TLB too: a page walk on top of the cache miss,
// a longer one in a virtual machine with nested paging. A 2 MiB page
// covers 512 times as much, so the TLB holds the translations of a far
// larger table. Where transparent huge pages are "madvise" (the default of
// most distributions), the Go heap gets none unless told to: Advise tells
// it, for one array.
package hugepage

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Size is the size of a transparent huge page: what one page-middle
// directory entry maps with 4 KiB base pages (x86-64, arm64).
const Size = 2 << 20

// MinBytes is the size from which Advise advises an array. A smaller one
// holds at most one whole huge page, whose TLB entry matters little beside
// the rest of the heap's.
const MinBytes = 4 << 20

// ErrNotSupported is returned when the kernel gives no transparent huge
// pages: built without them, or turned off ("never" in
// /sys/kernel/mm/transparent_hugepage/enabled).
var ErrNotSupported = errors.New("transparent huge pages not supported")

// sysEnabled is the file whose bracketed word is the system's mode.
const sysEnabled = "/sys/kernel/mm/transparent_hugepage/enabled"

// Mode returns the system's transparent huge page mode: "always",
// "madvise" or "never", and "never" when the kernel has none.
var Mode = sync.OnceValue(func() string {
	b, err := os.ReadFile(sysEnabled)
	if err != nil {
		return "never"
	}
	s := string(b)
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return "never"
	}
	return s[i+1 : j]
})

// Advise asks the kernel to back the n bytes of memory at p with huge
// pages, if n is at least MinBytes: the whole huge pages within them, as
// the head and tail share theirs with other objects. It is advice only:
// followed or not, the memory holds what it held, and callers may ignore
// the error, which says why it was not followed (ErrNotSupported: the
// kernel has no huge pages for it).
//
// The advice (MADV_HUGEPAGE) stays with the address range, and makes a
// page of it that nothing has touched yet huge when it is first touched:
// memory the heap has just taken from the kernel, as a large array
// usually is. Memory that the heap hands out again (a reused span), which
// 4 KiB pages already back, keeps them until khugepaged, which by default
// scans 16 MiB every 10 seconds in the background, collapses them. Advise does
// not collapse them itself (MADV_COLLAPSE): that copies each 2 MiB on the
// calling thread, 9–17 ms a huge page on a virtual machine here (290–550
// ms for a 64 MiB array; 49–71 ms in the rebuild of a subtable of 10 MiB
// of records, which took 60–82 ms without it), and the megaflow tables
// are rebuilt on the poll thread that looks packets up in them.
//
// p must point into an object that stays alive through the call.
func Advise(p unsafe.Pointer, n uintptr) error {
	if n < MinBytes {
		return nil
	}
	if Mode() == "never" {
		return fmt.Errorf("advise huge pages: %w (mode never)", ErrNotSupported)
	}
	off, size := interior(uintptr(p), n)
	if size == 0 {
		return nil
	}
	b := unsafe.Slice((*byte)(unsafe.Add(p, off)), size)
	if err := unix.Madvise(b, unix.MADV_HUGEPAGE); err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("advise huge pages: %w: %w", ErrNotSupported, err)
		}
		return fmt.Errorf("advise huge pages: %w", err)
	}
	return nil
}

// AdviseSlice is Advise for the elements of s.
func AdviseSlice[T any](s []T) error {
	if len(s) == 0 {
		return nil
	}
	return Advise(unsafe.Pointer(unsafe.SliceData(s)), uintptr(len(s))*unsafe.Sizeof(s[0]))
}

// interior returns where the whole huge pages within the n bytes at
// address addr start, as an offset from addr, and their size, 0 if there
// are none.
func interior(addr, n uintptr) (off, size uintptr) {
	off = -addr & (Size - 1) // up to the first boundary
	if n < off+Size {
		return 0, 0
	}
	return off, (n - off) &^ (Size - 1)
}
