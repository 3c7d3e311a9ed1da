package datapath

import (
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// A port's counters are written by one poll thread each and read by anyone
// (stats dumps, metrics, port removal). A locked atomic add per packet per
// counter would cost more than the rest of a hit, so the thread adds to a
// plain running total and publishes it once per batch with one atomic
// store; readers load what was published. A reader therefore lags the
// thread by the batch in flight at most, and never sees a torn value; once
// a thread has passed a quiescent state everything it counted before is
// published.

// counter is one statistic of one poll thread.
type counter struct {
	run uint64        // the running total; only the writing thread touches it
	pub atomic.Uint64 // run as of the last publish
	// owner lists the counter's portCounters for publication on its first
	// change since the last publish; nil for a counter made without
	// newPortCounters, whose adds then go straight to pub.
	owner *portCounters
}

// Add adds n to the running total. Only the counter's thread may call it.
func (c *counter) Add(n uint64) {
	o := c.owner
	if o == nil {
		c.pub.Add(n)
		return
	}
	c.run += n
	i := (uintptr(unsafe.Pointer(c)) - uintptr(unsafe.Pointer(o))) / unsafe.Sizeof(counter{})
	o.changed[i/64] |= 1 << (i % 64)
	if !o.listed {
		o.listed = true
		o.list.add(o)
	}
}

// Load returns the published total. Any goroutine may call it.
func (c *counter) Load() uint64 { return c.pub.Load() }

// publish makes the running total visible to readers.
func (c *counter) publish() {
	if c.owner != nil && c.run != c.pub.Load() {
		c.pub.Store(c.run)
	}
}

// publishList is a poll thread's list of the portCounters it changed since
// it last published. Its capacity is fixed; when it fills up, the entries
// are published at once.
type publishList struct {
	pending []*portCounters
}

// maxPending is how many portCounters a thread may hold unpublished.
const maxPending = 64

func newPublishList() *publishList {
	return &publishList{pending: make([]*portCounters, 0, maxPending)}
}

func (l *publishList) add(pc *portCounters) {
	if len(l.pending) == cap(l.pending) {
		l.publish()
	}
	l.pending = append(l.pending, pc)
}

// publish publishes every listed portCounters and empties the list. Only
// the list's thread may call it.
func (l *publishList) publish() {
	for i, pc := range l.pending {
		pc.publish()
		pc.listed = false
		l.pending[i] = nil
	}
	l.pending = l.pending[:0]
}

// newPortCounters returns a port's counters, one set per poll thread of b,
// each published through its thread's list.
func (b *Bridge) newPortCounters() []portCounters {
	cs := make([]portCounters, len(b.pmds))
	for i := range cs {
		cs[i].init(b.pmds[i].published)
	}
	return cs
}

// init links each of c's counters to c and c to l.
func (c *portCounters) init(l *publishList) {
	c.list = l
	for i := range c.all() {
		c.all()[i].owner = c
	}
}

// publish publishes each of c's counters that changed since it last did:
// a port's counters are many (a pair per drop reason) and a batch changes
// few of them.
func (c *portCounters) publish() {
	all := c.all()
	for w := range c.changed {
		for m := c.changed[w]; m != 0; m &= m - 1 {
			all[w*64+bits.TrailingZeros64(m)].publish()
		}
		c.changed[w] = 0
	}
}

// numPortCounters is the number of counters in a portCounters, which are
// its first fields.
const numPortCounters = 8 + 2*int(NumDropReasons)

// The counters must be exactly the fields before list, and changed must
// have a bit for each.
var (
	_ = [1]struct{}{}[unsafe.Offsetof(portCounters{}.list)-uintptr(numPortCounters)*unsafe.Sizeof(counter{})]
	_ = [1]struct{}{}[numPortCounters/(64*len(portCounters{}.changed)+1)]
)

// all returns c's counters as an array.
func (c *portCounters) all() *[numPortCounters]counter {
	return (*[numPortCounters]counter)(unsafe.Pointer(c))
}
