package vport

import (
	"errors"
	"fmt"
	"sync"
)

// MaxXSKFrames is the most UMEM frames one AF_XDP socket may have: 256 MiB
// of locked memory with 2048-byte frames.
const MaxXSKFrames = 1 << 17

// DefaultUMEMLimit is the default cap on the UMEM that all the AF_XDP
// sockets of a process pin together.
const DefaultUMEMLimit = 1 << 30

// ErrUMEMLimit means opening a port would pin more UMEM than its
// UMEMBudget allows.
var ErrUMEMLimit = errors.New("UMEM limit reached")

// UMEMBudget caps the UMEM (locked memory) that AF_XDP sockets pin
// together: a port reserves what its sockets need before it opens them,
// and releases it when it closes.
type UMEMBudget struct {
	limit int64

	mu     sync.Mutex // protects pinned
	pinned int64
}

// NewUMEMBudget returns a budget of limit bytes.
func NewUMEMBudget(limit int64) *UMEMBudget { return &UMEMBudget{limit: limit} }

// defaultUMEM is the budget of the ports whose XSKConfig.UMEM is nil: one
// for the whole process, as locked memory is a process's resource.
var defaultUMEM = NewUMEMBudget(DefaultUMEMLimit)

// Limit is the budget's cap in bytes.
func (b *UMEMBudget) Limit() int64 { return b.limit }

// Pinned is how many bytes are reserved.
func (b *UMEMBudget) Pinned() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pinned
}

// reserve takes n bytes from the budget, or returns an error wrapping
// ErrUMEMLimit that names the amount asked, the limit and what is pinned.
func (b *UMEMBudget) reserve(n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n < 0 || n > b.limit-b.pinned {
		return fmt.Errorf("%s of UMEM asked, %s pinned already by other AF_XDP sockets, over the limit of %s: %w",
			formatBytes(n), formatBytes(b.pinned), formatBytes(b.limit), ErrUMEMLimit)
	}
	b.pinned += n
	return nil
}

// release gives back n bytes that reserve took.
func (b *UMEMBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pinned -= n
}

// formatBytes writes n in the largest binary unit that divides it, as
// "256 MiB".
func formatBytes(n int64) string {
	for _, u := range []struct {
		name  string
		shift uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
