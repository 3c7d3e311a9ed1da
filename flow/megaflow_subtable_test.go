package flow

import (
	"math/bits"
	"math/rand/v2"
	"testing"
)

// TestSubtableLanes checks the group word operations against a byte at a
// time, on words mixing the control bytes and the values next to them
// where a borrow or carry between bytes would show.
func TestSubtableLanes(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	special := []uint8{ctrlEmpty, ctrlDeleted, ctrlFull, ctrlFull | 1, 0xff, 0x7f, 0xfe, 0x81}
	for range 100000 {
		var w uint64
		for l := range groupSlots {
			b := special[r.IntN(len(special))]
			if r.IntN(4) == 0 {
				b = uint8(r.Uint32())
			}
			w |= uint64(b) << (8 * l)
		}
		tag := tagOf(r.Uint64())
		if r.IntN(2) == 0 {
			tag = uint8(w >> (8 * r.IntN(groupSlots))) // a tag the word holds
		}
		var wantZero, wantTag, wantFree uint64
		for l := range groupSlots {
			b := uint8(w >> (8 * l))
			bit := uint64(0x80) << (8 * l)
			if b == 0 {
				wantZero |= bit
			}
			if b == tag {
				wantTag |= bit
			}
			if b&ctrlFull == 0 {
				wantFree |= bit
			}
		}
		if got := zeroLanes(w); got != wantZero {
			t.Fatalf("zeroLanes(%#016x) = %#016x, want %#016x", w, got, wantZero)
		}
		if got := tagLanes(w, tag); got != wantTag {
			t.Fatalf("tagLanes(%#016x, %#02x) = %#016x, want %#016x", w, tag, got, wantTag)
		}
		if got := freeLanes(w); got != wantFree {
			t.Fatalf("freeLanes(%#016x) = %#016x, want %#016x", w, got, wantFree)
		}
	}
}

// collidingMegaflows returns a subtable with n megaflows whose keys differ
// but whose hashes are all h: same home group, same tag, same home lane,
// as if their keys collided completely. Lookups must pass them by key.
func collidingMegaflows(t *testing.T, n int, h uint64) (*mfSubtable, []Key, []*Megaflow) {
	t.Helper()
	mask := Key{InPort: ^uint32(0), NwSrc: ^uint32(0)}
	st := newMfSubtable(&mask)
	keys := make([]Key, n)
	mfs := make([]*Megaflow, n)
	for i := range keys {
		keys[i] = Key{InPort: uint32(i), NwSrc: 0x0a000000 | uint32(i)}
		mfs[i] = st.newMegaflow(&keys[i], h)
		if st.full() {
			st.grow()
		}
		st.insert(mfs[i])
	}
	return st, keys, mfs
}

// TestSubtableCollisions fills probe runs with megaflows whose hashes
// collide entirely, so that they spill over several groups, then removes
// and reinserts them: every megaflow must be found by its key and only by
// it, wherever it landed, and removals must not hide the megaflows after
// them in the probe run.
func TestSubtableCollisions(t *testing.T) {
	for _, h := range []uint64{0, 0xffffffffffffffff, 0x8000000000000007, 0x123456789abcdef0} {
		st, keys, mfs := collidingMegaflows(t, 60, h)
		check := func(what string, alive func(i int) bool) {
			t.Helper()
			n := 0
			for i := range keys {
				got := st.find(&keys[i], h)
				switch {
				case alive(i) && got != mfs[i]:
					t.Fatalf("hash %#x, %s: megaflow %d not found (got %p)", h, what, i, got)
				case !alive(i) && got != nil:
					t.Fatalf("hash %#x, %s: removed megaflow %d found", h, what, i)
				}
				if alive(i) {
					n++
				}
			}
			if st.n != n {
				t.Fatalf("hash %#x, %s: n = %d, want %d", h, what, st.n, n)
			}
			other := Key{InPort: 1000, NwSrc: 1}
			if st.find(&other, h) != nil {
				t.Fatalf("hash %#x, %s: a colliding key that no megaflow has hit", h, what)
			}
		}
		check("inserted", func(int) bool { return true })
		// Remove every third: most sit in full groups of the run, which
		// must keep passing probes on.
		for i := 0; i < len(mfs); i += 3 {
			if !st.remove(mfs[i]) {
				t.Fatalf("hash %#x: remove %d failed", h, i)
			}
			if st.remove(mfs[i]) {
				t.Fatalf("hash %#x: removed %d twice", h, i)
			}
		}
		check("a third removed", func(i int) bool { return i%3 != 0 })
		if st.deleted == 0 {
			t.Errorf("hash %#x: no slot marked deleted in a run of full groups", h)
		}
		// Reinsert them: they take free slots, deleted ones included.
		for i := 0; i < len(mfs); i += 3 {
			if st.full() {
				st.grow()
			}
			st.insert(mfs[i])
		}
		check("reinserted", func(int) bool { return true })
		for i := range mfs {
			if !st.remove(mfs[i]) {
				t.Fatalf("hash %#x: final remove %d failed", h, i)
			}
		}
		check("all removed", func(int) bool { return false })
	}
}

// TestSubtableChurn inserts and removes megaflows for a long time with a
// bounded number alive, as idle expiry and new flows do: the table must
// rebuild away its deleted slots instead of growing, and keep finding
// every live megaflow.
func TestSubtableChurn(t *testing.T) {
	const live, steps = 1000, 200000
	mask := Key{InPort: ^uint32(0), NwSrc: ^uint32(0)}
	c := NewMegaflows()
	r := rand.New(rand.NewPCG(7, 7))
	var alive []*Megaflow
	maxSlots := 0
	for step := range steps {
		if len(alive) == live || (len(alive) > 0 && r.IntN(2) == 0) {
			i := r.IntN(len(alive))
			c.Remove(alive[i])
			alive[i] = alive[len(alive)-1]
			alive = alive[:len(alive)-1]
			continue
		}
		k := Key{InPort: uint32(step), NwSrc: r.Uint32()}
		alive = append(alive, testInsert(c, &k, &mask, nil, 1))
		if len(c.subs) == 1 {
			maxSlots = max(maxSlots, c.subs[0].slots())
		}
	}
	if c.Len() != len(alive) {
		t.Fatalf("Len %d, want %d", c.Len(), len(alive))
	}
	for _, mf := range alive {
		k := mf.Key()
		if got := c.Lookup(&k); got != mf {
			t.Fatalf("live megaflow %+v not found", mf.Match())
		}
	}
	// 1000 megaflows fit in 2048 slots at the load limit, and a table
	// that holds them at most 7/16 full rebuilds at its size: deleted
	// slots must not keep doubling it.
	if maxSlots > 4096 {
		t.Errorf("table grew to %d slots for at most %d megaflows", maxSlots, live)
	}
}

// TestSubtableRebuild checks that a table that deleted slots rather than
// megaflows filled is rebuilt at its size, without them.
func TestSubtableRebuild(t *testing.T) {
	const h = 0x42
	st, keys, mfs := collidingMegaflows(t, 50, h)
	slots := st.slots()
	for i := range 45 {
		st.remove(mfs[i])
	}
	if st.deleted == 0 {
		t.Fatal("no slot marked deleted")
	}
	st.grow()
	if st.slots() != slots || st.deleted != 0 || st.n != 5 {
		t.Fatalf("after rebuild: %d slots, %d deleted, %d megaflows; want %d, 0, 5", st.slots(), st.deleted, st.n, slots)
	}
	for i := 45; i < 50; i++ {
		if st.find(&keys[i], h) != mfs[i] {
			t.Fatalf("megaflow %d lost in the rebuild", i)
		}
	}
}

// TestSubtableCatchall checks a subtable whose mask has no word: every key
// matches its one megaflow.
func TestSubtableCatchall(t *testing.T) {
	c := NewMegaflows()
	var mask Key
	k := Key{InPort: 3}
	mf := testInsert(c, &k, &mask, nil, 1)
	other := Key{InPort: 9, NwSrc: 5}
	if c.Lookup(&other) != mf || c.Lookup(&k) != mf {
		t.Fatal("catch-all megaflow not found")
	}
	c.Remove(mf)
	if c.Lookup(&k) != nil || c.Subtables() != 0 {
		t.Fatal("catch-all megaflow found after removal")
	}
}

// TestSubtableStage checks the subtables' first stage (in_port and
// recirc_id): a key whose ports no megaflow of a subtable has skips it,
// removals clear a value only with its last megaflow (also when two
// values share a bit), and a mask that matches neither field exactly
// leaves the stage off, so that its subtable is always probed.
func TestSubtableStage(t *testing.T) {
	c := NewMegaflows()
	mask := Key{InPort: ^uint32(0), RecircID: ^uint32(0), NwDst: ^uint32(0)}
	// Two ports whose values share a bit of the stage.
	a := uint32(1)
	b := a + 1
	probe := newStage(&mask)
	for probe.of(stageKey(&Key{InPort: b, RecircID: 7})) != probe.of(stageKey(&Key{InPort: a, RecircID: 7})) {
		b++
	}
	var mfs []*Megaflow
	for i, port := range []uint32{a, a, b, 9} {
		k := Key{InPort: port, RecircID: 7, NwDst: uint32(i)}
		mfs = append(mfs, testInsert(c, &k, &mask, nil, 1))
	}
	st := c.subs[0]
	if !st.stage.on() {
		t.Fatal("stage off for a mask with exact in_port and recirc_id")
	}
	if k := (Key{InPort: 9, RecircID: 8, NwDst: 3}); st.stage.mayHold(stageKey(&k)) || c.Lookup(&k) != nil {
		t.Error("a recirc_id no megaflow has reaches the subtable")
	}
	c.Remove(mfs[0])
	if k := (Key{InPort: a, RecircID: 7, NwDst: 1}); c.Lookup(&k) != mfs[1] {
		t.Error("the second megaflow of a port is lost when the first goes")
	}
	c.Remove(mfs[1])
	if k := (Key{InPort: b, RecircID: 7, NwDst: 2}); !st.stage.mayHold(stageKey(&k)) || c.Lookup(&k) != mfs[2] {
		t.Error("a port's megaflow is lost when another port sharing its bit has none left")
	}
	c.Remove(mfs[2])
	if k := (Key{InPort: b, RecircID: 7, NwDst: 2}); st.stage.mayHold(stageKey(&k)) {
		t.Error("the bit of ports without megaflows is still set")
	}
	if k := (Key{InPort: 9, RecircID: 7, NwDst: 3}); c.Lookup(&k) != mfs[3] {
		t.Error("megaflow of another port lost")
	}
	// A mask without an exact in_port or recirc_id: no stage.
	wide := Key{InPort: 0xff, NwDst: ^uint32(0)}
	k := Key{InPort: 0x105, NwDst: 5}
	mf := testInsert(c, &k, &wide, nil, 1)
	if other := (Key{InPort: 0x205, NwDst: 5}); c.Lookup(&other) != mf {
		t.Error("a key agreeing with a megaflow on a partial in_port mask misses it")
	}
}

// TestSubtableLookupLikeFind is a differential test of lookup, which
// hashes and compares masks of up to fastWords words unrolled, against
// find(k, hashKey(k)), which loops over the words, for masks of every
// width from none to past fastWords. Half of each subtable's megaflows
// have keys chosen so that their hashes share the tag and the low bits of
// the first, as a full table's probe run: lookup must pass them by key.
// Probes for keys that differ from a megaflow's in one masked word, or
// only outside the mask, must miss and hit as find does.
func TestSubtableLookupLikeFind(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	// The words after Metadata and Regs, which are never in a megaflow's
	// mask.
	const first = 9
	randomKey := func() Key {
		var k Key
		for i := first; i < KeyWords; i++ {
			k.Words()[i] = r.Uint64()
		}
		return k
	}
	maskedBy := func(k, mask *Key) Key {
		var m Key
		k.Masked(mask, &m)
		return m
	}
	for width := range fastWords + 3 {
		var mask Key
		for _, i := range r.Perm(KeyWords - first)[:width] {
			mask.Words()[first+i] = r.Uint64() | 1
		}
		st := newMfSubtable(&mask)
		if st.nwords != width {
			t.Fatalf("mask of %d words has nwords %d", width, st.nwords)
		}
		var keys []Key
		var mfs []*Megaflow
		add := func(k Key) {
			h := st.hashKey(&k)
			if st.find(&k, h) != nil {
				return // same masked key as one already in
			}
			mf := st.newMegaflow(&k, h)
			if st.full() {
				st.grow()
			}
			st.insert(mf)
			keys, mfs = append(keys, k), append(mfs, mf)
		}
		for range 40 {
			add(randomKey())
		}
		// Keys whose hashes agree with the first's on the tag and on the
		// low 4 bits, its home group while the table has up to 16
		// groups (a mask of no words has one key only).
		if width > 0 {
			const low = 1<<4 - 1
			h0 := st.hashKey(&keys[0])
			for found := 0; found < 40; {
				k := randomKey()
				if h := st.hashKey(&k); tagOf(h) == tagOf(h0) && h&low == h0&low {
					add(k)
					found++
				}
			}
		}
		check := func(k *Key, want *Megaflow, what string) {
			t.Helper()
			if got := st.find(k, st.hashKey(k)); got != want {
				t.Fatalf("%d words, %s: find gave %p, want %p", width, what, got, want)
			}
			var touched uint64
			for _, tp := range []*uint64{nil, &touched} {
				if got := st.lookup(k, tp); got != want {
					t.Fatalf("%d words, %s: lookup gave %p, want %p", width, what, got, want)
				}
			}
		}
		for i := range keys {
			k := keys[i]
			check(&k, mfs[i], "its own key")
			// Outside the mask: the same megaflow.
			for j := first; j < KeyWords; j++ {
				k.Words()[j] ^= ^mask.Words()[j] & r.Uint64()
			}
			check(&k, mfs[i], "bits outside the mask changed")
			if width == 0 {
				continue
			}
			// One masked bit flipped: no megaflow, or another's.
			j := st.words[r.IntN(width)]
			k.Words()[j] ^= uint64(1) << bits.TrailingZeros64(mask.Words()[j])
			var want *Megaflow
			for x := range keys {
				if maskedBy(&keys[x], &mask) == maskedBy(&k, &mask) {
					want = mfs[x]
				}
			}
			check(&k, want, "a masked bit flipped")
		}
	}
}
