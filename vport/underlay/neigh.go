package underlay

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Aging of the tunnel neighbour cache's entries, as Open vSwitch's.
const (
	// DefaultNeighAging is how long an entry lives after it was last
	// learnt or used.
	DefaultNeighAging = 15 * time.Minute
	// MaxNeighAging is the longest tnl/neigh/aging accepts.
	MaxNeighAging = time.Hour
)

// ErrBadAging: tnl/neigh/aging was given no whole number of seconds
// between 1 and 3600.
var ErrBadAging = errors.New("bad aging value")

// NeighEntry is one entry of the tunnel neighbour cache.
type NeighEntry struct {
	Dev     string     // the device (Open vSwitch: bridge) it was learnt on
	IP      netip.Addr // the neighbour's address
	MAC     [6]byte    // its link-layer address
	Expires time.Time  // when it expires unless it is learnt or used again
}

// neighKey keys the cache: a neighbour on one device.
type neighKey struct {
	dev string
	ip  netip.Addr
}

// neighEntry is an entry as the cache holds it; expires (Unix
// nanoseconds) is pushed on by every lookup, without a lock.
type neighEntry struct {
	mac     [6]byte
	expires atomic.Int64
}

// NeighCache is ovsxdp's own cache of tunnel neighbours, Open vSwitch's
// tnl-neigh cache: link-layer addresses learnt from the ARP and neighbour
// advertisement frames the underlay receives (Snoop) or set by the
// operator (tnl/neigh/set), each kept for the aging time after it was
// last learnt or used. Lookups read an immutable map published
// atomically: they take no lock and do not allocate.
type NeighCache struct {
	// mu serialises the writers, which copy the map and publish it.
	mu sync.Mutex
	m  atomic.Pointer[map[neighKey]*neighEntry]

	aging    atomic.Int64 // time.Duration
	now      func() time.Time
	onChange func() // called, without mu, after an entry was added, changed or removed
}

// NewNeighCache returns an empty cache with the default aging. now is the
// clock (time.Now if nil); onChange, if set, is called after every
// change that a cached path may depend on.
func NewNeighCache(now func() time.Time, onChange func()) *NeighCache {
	if now == nil {
		now = time.Now
	}
	c := &NeighCache{now: now, onChange: onChange}
	c.aging.Store(int64(DefaultNeighAging))
	m := map[neighKey]*neighEntry{}
	c.m.Store(&m)
	return c
}

func (c *NeighCache) changed() {
	if c.onChange != nil {
		c.onChange()
	}
}

// Lookup returns the address of neighbour ip on dev, if the cache has an
// entry that has not expired, and keeps the entry for another aging
// time. It takes no lock and does not allocate.
func (c *NeighCache) Lookup(dev string, ip netip.Addr) ([6]byte, bool) {
	e := (*c.m.Load())[neighKey{dev, ip.Unmap()}]
	if e == nil {
		return [6]byte{}, false
	}
	now := c.now().UnixNano()
	if e.expires.Load() <= now {
		return [6]byte{}, false
	}
	e.expires.Store(now + c.aging.Load())
	return e.mac, true
}

// Set learns that neighbour ip on dev has address mac.
func (c *NeighCache) Set(dev string, ip netip.Addr, mac [6]byte) {
	ip = ip.Unmap()
	k := neighKey{dev, ip}
	c.mu.Lock()
	now := c.now().UnixNano()
	old := *c.m.Load()
	if e := old[k]; e != nil && e.mac == mac && e.expires.Load() > now {
		e.expires.Store(now + c.aging.Load())
		c.mu.Unlock()
		return
	}
	m := maps.Clone(old)
	e := &neighEntry{mac: mac}
	e.expires.Store(now + c.aging.Load())
	m[k] = e
	c.m.Store(&m)
	c.mu.Unlock()
	c.changed()
}

// remove publishes the map without the entries drop selects, and reports
// whether there were any.
func (c *NeighCache) remove(drop func(neighKey, *neighEntry) bool) bool {
	c.mu.Lock()
	old := *c.m.Load()
	m := make(map[neighKey]*neighEntry, len(old))
	for k, e := range old {
		if !drop(k, e) {
			m[k] = e
		}
	}
	gone := len(m) != len(old)
	if gone {
		c.m.Store(&m)
	}
	c.mu.Unlock()
	if gone {
		c.changed()
	}
	return gone
}

// Flush forgets every entry (tnl/neigh/flush).
func (c *NeighCache) Flush() {
	c.remove(func(neighKey, *neighEntry) bool { return true })
}

// FlushDev forgets the entries learnt on dev, as Open vSwitch does when
// a bridge's address changes.
func (c *NeighCache) FlushDev(dev string) {
	c.remove(func(k neighKey, _ *neighEntry) bool { return k.dev == dev })
}

// Expire forgets the entries that expired, and reports whether there were
// any. The table runs it every second.
func (c *NeighCache) Expire() bool {
	now := c.now().UnixNano()
	return c.remove(func(_ neighKey, e *neighEntry) bool { return e.expires.Load() <= now })
}

// Aging returns how long an entry lives after it was last learnt or used.
func (c *NeighCache) Aging() time.Duration { return time.Duration(c.aging.Load()) }

// SetAging sets the aging time (tnl/neigh/aging SECS): whole seconds from
// 1 to 3600. Entries that would now live longer than the new time are
// cut to it.
func (c *NeighCache) SetAging(d time.Duration) error {
	if d < time.Second || d > MaxNeighAging || d%time.Second != 0 {
		return fmt.Errorf("aging %v: %w", d, ErrBadAging)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aging.Store(int64(d))
	limit := c.now().UnixNano() + int64(d)
	for _, e := range *c.m.Load() {
		if e.expires.Load() > limit {
			e.expires.Store(limit)
		}
	}
	return nil
}

// Entries returns the cache's entries, by device and then address.
func (c *NeighCache) Entries() []NeighEntry {
	m := *c.m.Load()
	out := make([]NeighEntry, 0, len(m))
	for k, e := range m {
		out = append(out, NeighEntry{Dev: k.dev, IP: k.ip, MAC: e.mac, Expires: time.Unix(0, e.expires.Load())})
	}
	slices.SortFunc(out, func(a, b NeighEntry) int {
		if c := cmp.Compare(a.Dev, b.Dev); c != 0 {
			return c
		}
		return a.IP.Compare(b.IP)
	})
	return out
}
