package hugepage

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"
)

// Backing says how the kernel backs the mapping of the process's memory
// that holds an address (/proc/self/smaps), for tests and diagnostics.
type Backing struct {
	Start, End uintptr // the mapping
	// Advised is whether the mapping has the huge page advice (VmFlags
	// hg).
	Advised bool
	// Huge is the bytes of the mapping that huge pages back
	// (AnonHugePages).
	Huge uint64
}

// BackingOf returns the Backing of the mapping that holds p.
func BackingOf(p unsafe.Pointer) (Backing, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return Backing{}, fmt.Errorf("backing of %p: %w", p, err)
	}
	defer f.Close()
	addr := uintptr(p)
	var b Backing
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		name, rest, _ := strings.Cut(line, " ")
		if start, end, ok := addrRange(name); ok {
			if in {
				break // past the mapping
			}
			in = start <= addr && addr < end
			b = Backing{Start: start, End: end}
			continue
		}
		if !in {
			continue
		}
		switch name {
		case "AnonHugePages:":
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return Backing{}, fmt.Errorf("backing of %p: %q: %w", p, line, err)
			}
			b.Huge = kb << 10
		case "VmFlags:":
			b.Advised = strings.Contains(" "+rest+" ", " hg ")
		}
	}
	if err := sc.Err(); err != nil {
		return Backing{}, fmt.Errorf("backing of %p: %w", p, err)
	}
	if !in {
		return Backing{}, fmt.Errorf("backing of %p: no mapping holds it", p)
	}
	return b, nil
}

// addrRange parses the first field of a mapping's line in smaps,
// "start-end" in hex.
func addrRange(s string) (start, end uintptr, ok bool) {
	lo, hi, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	a, err1 := strconv.ParseUint(lo, 16, 64)
	b, err2 := strconv.ParseUint(hi, 16, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uintptr(a), uintptr(b), true
}
