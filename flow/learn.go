package flow

import (
	"iter"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// MAC learning defaults, as Open vSwitch's other_config:mac-aging-time and
// other_config:mac-table-size.
const (
	DefaultMACAging     = 300 * time.Second
	DefaultMACTableSize = 8192
)

// macProbe is how many consecutive slots a (MAC, VLAN) may occupy from its
// home slot. Lookups and learning look at no more than this many slots, and
// a new address whose window is full of live entries evicts the oldest of
// them.
const macProbe = 16

// MACTable is a bridge's MAC learning table, behind the normal action: which
// port each (MAC address, VLAN) was last seen on. It has a fixed number of
// slots, and entries expire after the aging time.
//
// It is safe for concurrent use by any number of goroutines without locks.
// Each slot is a sequence word and two data words, all atomic, used as a
// sequence lock: a writer claims the slot by compare-and-swap of the
// sequence word to an odd value, stores the data and releases it with a new
// even value; a reader loads the sequence, the data and the sequence again
// and uses the data only if the sequence was even and unchanged. Readers
// never wait: a slot that stays busy for a few retries counts as a miss.
// A writer that finds the slot claimed gives up the update; the next packet
// from the same address retries it.
//
// The races this leaves are benign:
//   - Two threads learning the same new address at once may store it in two
//     slots. Learning and lookup both use the first copy in probe order, so
//     they agree; the other copy is never refreshed and ages out.
//   - Flush (which bumps an epoch that every slot records) races with
//     concurrent learning: an address learned at that moment may survive the
//     flush or be forgotten; either way the next packet corrects it.
//   - The counters are updated after the slot, so they may lag it briefly.
type MACTable struct {
	slots []macSlot
	mask  uint64
	seed  uint64
	aging uint32 // seconds

	epoch atomic.Uint32

	learned atomic.Uint64
	moved   atomic.Uint64
	evicted atomic.Uint64
	skipped atomic.Uint64
}

// macSlot is one entry. seq holds the epoch the entry was written in (high
// 32 bits), a write count and, in bit 0, "write in progress". key holds
// macValid, the VLAN ID and the MAC address; val the port (high 32 bits) and
// the time it was last seen, in seconds (low 32 bits).
type macSlot struct {
	seq atomic.Uint64
	key atomic.Uint64
	val atomic.Uint64
	_   [8]byte // pads a slot to 32 bytes, two per cache line
}

const (
	macValid   = 1 << 63
	seqBusy    = 1
	readTries  = 4
	secondNano = int64(time.Second)
	// staticSeen, as the time an entry was last seen, marks a static
	// entry (fdb/add): it never ages, and learning does not move it.
	staticSeen = ^uint32(0)
)

// MACStats counts MAC table events since the table was made.
type MACStats struct {
	Learned uint64 // new (MAC, VLAN) entries
	Moved   uint64 // entries whose port changed
	Evicted uint64 // live entries replaced by a new one because their probe window was full
	Skipped uint64 // learning not done because another thread was writing the slot
}

// MACEntry is one learned address, as fdb/show lists it.
type MACEntry struct {
	MAC  [6]byte
	VLAN uint16 // VLAN ID; 0 for untagged
	Port uint32
	Age  time.Duration // since the address was last seen, in whole seconds; 0 for a static entry
	// Static is an entry added by AddStatic, which never ages and which
	// learning does not move.
	Static bool
}

// NewMACTable returns a table with room for at least size entries (rounded
// up to a power of two; DefaultMACTableSize when size ≤ 0) whose entries
// expire aging after they were last seen (DefaultMACAging when aging ≤ 0;
// whole seconds, at least one).
func NewMACTable(size int, aging time.Duration) *MACTable {
	if size <= 0 {
		size = DefaultMACTableSize
	}
	size = max(size, macProbe)
	n := 1 << bits.Len(uint(size-1))
	if aging <= 0 {
		aging = DefaultMACAging
	}
	return &MACTable{
		slots: make([]macSlot, n),
		mask:  uint64(n - 1),
		seed:  rand.Uint64() | 1,
		aging: uint32(max(aging/time.Second, 1)),
	}
}

// Cap returns the number of slots, the most entries the table holds.
func (t *MACTable) Cap() int { return len(t.slots) }

// Aging returns the time after which an entry that is not seen again expires.
func (t *MACTable) Aging() time.Duration { return time.Duration(t.aging) * time.Second }

// Normal does a learning switch's work for one packet: it learns k.DlSrc on
// k.InPort in k's VLAN (unless the source is a multicast address) and returns
// the port for k.DlDst: the learned port, PortFlood when the destination is
// multicast, broadcast or unknown, and PortNone (drop) when it was learned
// on the input port. now is a monotonic clock in nanoseconds.
func (t *MACTable) Normal(k *Key, now int64) uint32 {
	vid := uint16(0)
	if k.VLANs[0].TCI&VLANPresent != 0 {
		vid = k.VLANs[0].TCI & VLANVIDMask
	}
	if k.DlSrc[0]&1 == 0 {
		t.Learn(k.DlSrc, vid, k.InPort, now)
	}
	return t.Forward(k, now)
}

// Forward is Normal without learning: where a learning switch sends a
// packet with key k (ofproto/trace asks it, and learns nothing).
func (t *MACTable) Forward(k *Key, now int64) uint32 {
	vid := uint16(0)
	if k.VLANs[0].TCI&VLANPresent != 0 {
		vid = k.VLANs[0].TCI & VLANVIDMask
	}
	if k.DlDst[0]&1 != 0 {
		return PortFlood
	}
	port, ok := t.Lookup(k.DlDst, vid, now)
	switch {
	case !ok:
		return PortFlood
	case port == k.InPort:
		return PortNone
	}
	return port
}

// Lookup returns the port that mac was learned on in VLAN vid, if it has
// not expired at now.
func (t *MACTable) Lookup(mac [6]byte, vid uint16, now int64) (uint32, bool) {
	key := macKey(mac, vid)
	epoch, sec := t.epoch.Load(), seconds(now)
	for i, h := 0, t.home(key); i < macProbe; i, h = i+1, (h+1)&t.mask {
		e, ok := t.slots[h].read()
		if ok && e.key == key && e.live(epoch, sec, t.aging) {
			return e.port(), true
		}
	}
	return 0, false
}

// Learn records that mac was seen on port in VLAN vid at now. It does not
// filter multicast addresses; Normal does.
func (t *MACTable) Learn(mac [6]byte, vid uint16, port uint32, now int64) {
	key := macKey(mac, vid)
	epoch, sec := t.epoch.Load(), seconds(now)
	val := uint64(port)<<32 | uint64(sec)

	// The first copy of the key in probe order is the entry. Remember
	// where a new entry would go on the way.
	v := newVacancy()
	for i, h := 0, t.home(key); i < macProbe; i, h = i+1, (h+1)&t.mask {
		e, ok := t.slots[h].read()
		if !ok {
			continue
		}
		live := e.live(epoch, sec, t.aging)
		if live && e.key == key {
			if e.val == val || e.static() {
				return // same port, already seen this second; or static
			}
			switch {
			case !t.slots[h].write(e.seq, epoch, key, val):
				t.skipped.Add(1)
			case e.port() != port:
				t.moved.Add(1)
			}
			return
		}
		v.note(h, e, live, sec)
	}
	if !t.claim(v, epoch, key, val) {
		t.skipped.Add(1) // every slot of the window was busy, or the slot changed
	}
}

// vacancy is where a new entry goes in a probe window: the first free
// slot, else the oldest learned entry (static entries stay).
type vacancy struct {
	free, oldest int
	oldestAge    uint32
}

func newVacancy() vacancy { return vacancy{free: -1, oldest: -1} }

// note considers slot h, which holds e (live or not) at sec.
func (v *vacancy) note(h uint64, e macSnap, live bool, sec uint32) {
	switch {
	case !live:
		if v.free < 0 {
			v.free = int(h)
		}
	case v.free < 0 && !e.static():
		if age := e.age(sec); v.oldest < 0 || age > v.oldestAge {
			v.oldest, v.oldestAge = int(h), age
		}
	}
}

// claim writes a new entry into the vacancy, provided the slot is still
// what the scan saw, and counts it as learned (and evicted, if it took a
// live entry's slot); false if there was no vacancy or the slot changed.
func (t *MACTable) claim(v vacancy, epoch uint32, key, val uint64) bool {
	slot := v.free
	if slot < 0 {
		slot = v.oldest
	}
	if slot < 0 {
		return false
	}
	if !t.slots[slot].writeIdle(epoch, key, val) {
		return false
	}
	t.learned.Add(1)
	if v.free < 0 {
		t.evicted.Add(1)
	}
	return true
}

// AddStatic makes mac in VLAN vid a static entry on port: one that never
// ages, that learning does not move and that Flush keeps, as Open
// vSwitch's fdb/add. It replaces an entry of the same address (returned as
// old, with replaced true), or takes a free slot of its window, or the
// oldest learned one (counted as evicted); ok is false when the window
// holds only static entries, or another thread kept the slot. now is the
// table's clock, as Normal's.
func (t *MACTable) AddStatic(mac [6]byte, vid uint16, port uint32, now int64) (old MACEntry, replaced, ok bool) {
	key := macKey(mac, vid)
	epoch := t.epoch.Load()
	val := uint64(port)<<32 | uint64(staticSeen)
	sec := seconds(now)
	found := -1
	v := newVacancy()
	for i, h := 0, t.home(key); i < macProbe; i, h = i+1, (h+1)&t.mask {
		e, ok := t.slots[h].read()
		if !ok {
			continue
		}
		live := e.live(epoch, sec, t.aging)
		if live && e.key == key {
			if found < 0 {
				found, old = int(h), e.entry(sec)
			}
			continue
		}
		v.note(h, e, live, sec)
	}
	if found < 0 {
		return MACEntry{}, false, t.claim(v, epoch, key, val)
	}
	if !t.slots[found].writeIdle(epoch, key, val) {
		return MACEntry{}, false, false
	}
	return old, true, true
}

// DeleteStatic forgets the static entry of mac in VLAN vid, as Open
// vSwitch's fdb/del, and reports whether there was one (a learned entry
// is not one).
func (t *MACTable) DeleteStatic(mac [6]byte, vid uint16) bool {
	key := macKey(mac, vid)
	epoch := t.epoch.Load()
	for i, h := 0, t.home(key); i < macProbe; i, h = i+1, (h+1)&t.mask {
		s := &t.slots[h]
		e, ok := s.read()
		if ok && e.key == key && e.static() {
			return s.write(e.seq, epoch, 0, 0)
		}
	}
	return false
}

// Flush forgets every learned entry. Static entries stay, as Open
// vSwitch's fdb/flush leaves them.
func (t *MACTable) Flush() {
	t.epoch.Add(1)
}

// FlushPort forgets the entries on port, learned or static (a port that
// is removed or goes down), and returns how many it removed. An entry
// that another thread is writing at that moment is left; it ages out.
func (t *MACTable) FlushPort(port uint32) int {
	epoch := t.epoch.Load()
	n := 0
	for i := range t.slots {
		s := &t.slots[i]
		e, ok := s.read()
		if ok && e.key&macValid != 0 && (e.epoch() == epoch || e.static()) && e.port() == port && s.write(e.seq, epoch, 0, 0) {
			n++
		}
	}
	return n
}

// Len returns the number of entries that are live at now.
func (t *MACTable) Len(now int64) int {
	n := 0
	for range t.All(now) {
		n++
	}
	return n
}

// All iterates over the entries that are live at now, in slot order.
func (t *MACTable) All(now int64) iter.Seq[MACEntry] {
	return func(yield func(MACEntry) bool) {
		epoch, sec := t.epoch.Load(), seconds(now)
		for i := range t.slots {
			e, ok := t.slots[i].read()
			if !ok || !e.live(epoch, sec, t.aging) {
				continue
			}
			if !yield(e.entry(sec)) {
				return
			}
		}
	}
}

// Stats returns the table's counters.
func (t *MACTable) Stats() MACStats {
	return MACStats{
		Learned: t.learned.Load(),
		Moved:   t.moved.Load(),
		Evicted: t.evicted.Load(),
		Skipped: t.skipped.Load(),
	}
}

// macKey packs a (MAC, VLAN) into a slot key.
func macKey(mac [6]byte, vid uint16) uint64 {
	var m uint64
	for _, b := range mac {
		m = m<<8 | uint64(b)
	}
	return macValid | uint64(vid&VLANVIDMask)<<48 | m
}

// home returns the first slot of key's probe window.
func (t *MACTable) home(key uint64) uint64 {
	hi, lo := bits.Mul64(key^t.seed, 0x9e3779b97f4a7c15)
	return (hi ^ lo) & t.mask
}

// seconds converts a monotonic clock in nanoseconds to the table's clock.
// It wraps after 136 years, and ages are computed modulo 2^32 seconds.
func seconds(now int64) uint32 {
	return uint32(now / secondNano)
}

// macSnap is a consistent copy of a slot.
type macSnap struct {
	seq, key, val uint64
}

func (e macSnap) epoch() uint32 { return uint32(e.seq >> 32) }
func (e macSnap) port() uint32  { return uint32(e.val >> 32) }
func (e macSnap) seen() uint32  { return uint32(e.val) }
func (e macSnap) static() bool  { return e.seen() == staticSeen }

// entry is the snapshot's entry as the table shows it at sec.
func (e macSnap) entry(sec uint32) MACEntry {
	ent := MACEntry{
		VLAN:   uint16(e.key>>48) & VLANVIDMask,
		Port:   e.port(),
		Static: e.static(),
	}
	if !ent.Static {
		ent.Age = time.Duration(e.age(sec)) * time.Second
	}
	for j := range ent.MAC {
		ent.MAC[j] = byte(e.key >> (40 - 8*j))
	}
	return ent
}

// age returns how long ago, in seconds, the entry was last seen. Threads
// read the clock at slightly different times, so an entry may have been
// seen "after" sec; its age is then 0.
func (e macSnap) age(sec uint32) uint32 {
	return uint32(max(int32(sec-e.seen()), 0))
}

// live reports whether the snapshot holds a static entry, or an entry of
// the current epoch that has not expired at sec.
func (e macSnap) live(epoch, sec, aging uint32) bool {
	return e.key&macValid != 0 && (e.static() || e.epoch() == epoch && e.age(sec) < aging)
}

// read takes a consistent snapshot of the slot, or reports false if a writer
// kept it busy for readTries attempts.
func (s *macSlot) read() (macSnap, bool) {
	for range readTries {
		seq := s.seq.Load()
		if seq&seqBusy != 0 {
			continue
		}
		e := macSnap{seq: seq, key: s.key.Load(), val: s.val.Load()}
		if s.seq.Load() == seq {
			return e, true
		}
	}
	return macSnap{}, false
}

// writeIdle is write from the slot's sequence as it is now, provided no
// writer holds it.
func (s *macSlot) writeIdle(epoch uint32, key, val uint64) bool {
	seq := s.seq.Load()
	return seq&seqBusy == 0 && s.write(seq, epoch, key, val)
}

// write stores key and val in the slot, stamped with epoch, provided the
// slot's sequence is still seq (even). It reports whether it did.
func (s *macSlot) write(seq uint64, epoch uint32, key, val uint64) bool {
	if !s.seq.CompareAndSwap(seq, seq|seqBusy) {
		return false
	}
	s.key.Store(key)
	s.val.Store(val)
	count := uint32(seq)>>1 + 1
	s.seq.Store(uint64(epoch)<<32 | uint64(count)<<1&0xffffffff)
	return true
}
