package vport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// xskRegistry knows the AF_XDP sockets the process has open, by inode, so
// that ring mappings of any other AF_XDP socket can be recognized as
// orphans: rings that xdp.NewSocket mapped for a socket it then failed to
// bind, and never unmapped.
var xskRegistry = struct {
	// mu serializes socket creation, close and the sweep (a socket being
	// created is not yet in live), and protects live.
	mu   sync.Mutex
	live map[uint64]struct{}
}{live: make(map[uint64]struct{})}

// The page offsets an AF_XDP socket's rings are mapped at (the offset
// column of /proc/self/maps).
var xdpRingOffsets = map[uint64]string{
	unix.XDP_PGOFF_RX_RING:              "rx",
	unix.XDP_PGOFF_TX_RING:              "tx",
	unix.XDP_UMEM_PGOFF_FILL_RING:       "fill",
	unix.XDP_UMEM_PGOFF_COMPLETION_RING: "completion",
}

// socketMapping is one line of /proc/self/maps that maps a socket.
type socketMapping struct {
	start, end uint64
	offset     uint64
	ino        uint64
}

// socketMappings lists the mappings of sockets ("socket:[inode]") in
// /proc/self/maps.
func socketMappings() ([]socketMapping, error) {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, err
	}
	var out []socketMapping
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if m, ok := parseSocketMapping(sc.Bytes()); ok {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

// parseSocketMapping parses a maps line such as
//
//	7f0c2a000000-7f0c2a021000 rw-s 100000000 00:08 1234 socket:[1234]
func parseSocketMapping(line []byte) (socketMapping, bool) {
	f := bytes.Fields(line)
	if len(f) < 6 || !bytes.HasPrefix(f[5], []byte("socket:[")) {
		return socketMapping{}, false
	}
	rng := bytes.SplitN(f[0], []byte("-"), 2)
	if len(rng) != 2 {
		return socketMapping{}, false
	}
	var m socketMapping
	var err1, err2, err3, err4 error
	m.start, err1 = strconv.ParseUint(string(rng[0]), 16, 64)
	m.end, err2 = strconv.ParseUint(string(rng[1]), 16, 64)
	m.offset, err3 = strconv.ParseUint(string(f[2]), 16, 64)
	m.ino, err4 = strconv.ParseUint(string(f[4]), 10, 64)
	if errors.Join(err1, err2, err3, err4) != nil || m.end <= m.start {
		return socketMapping{}, false
	}
	return m, true
}

// XDPRingMappings counts the process's mappings of AF_XDP rings: a leak
// check for tests and diagnostics.
func XDPRingMappings() (int, error) {
	ms, err := socketMappings()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range ms {
		if _, ok := xdpRingOffsets[m.offset]; ok {
			n++
		}
	}
	return n, nil
}

// sweepOrphanRingsLocked unmaps the rings of AF_XDP sockets the process
// does not have open. A socket counts as AF_XDP when one of its mappings
// sits at a tx, fill or completion ring offset (rx rings share offset 0
// with other socket kinds). xskRegistry.mu must be held.
func sweepOrphanRingsLocked() error {
	ms, err := socketMappings()
	if err != nil {
		return fmt.Errorf("sweep AF_XDP rings: %w", err)
	}
	xsk := make(map[uint64]bool)
	for _, m := range ms {
		if _, ok := xdpRingOffsets[m.offset]; ok && m.offset != unix.XDP_PGOFF_RX_RING {
			xsk[m.ino] = true
		}
	}
	var errs []error
	for _, m := range ms {
		if _, live := xskRegistry.live[m.ino]; live || !xsk[m.ino] {
			continue
		}
		if _, ok := xdpRingOffsets[m.offset]; !ok {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MUNMAP, uintptr(m.start), uintptr(m.end-m.start), 0); errno != 0 {
			errs = append(errs, fmt.Errorf("sweep AF_XDP rings: munmap %#x: %w", m.start, errno))
		}
	}
	return errors.Join(errs...)
}

// SweepOrphanXDPRings unmaps AF_XDP ring mappings that belong to no socket
// the port kind has open (see sweepOrphanRingsLocked).
func SweepOrphanXDPRings() error {
	xskRegistry.mu.Lock()
	defer xskRegistry.mu.Unlock()
	return sweepOrphanRingsLocked()
}
