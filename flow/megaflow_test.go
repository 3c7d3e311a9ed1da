package flow

import (
	"math/rand/v2"
	"testing"
)

// testMasks are a few megaflow masks of different shapes.
var testMasks = []Key{
	{InPort: ^uint32(0)},
	{InPort: ^uint32(0), DlType: 0xffff, NwDst: 0xffffff00},
	{DlType: 0xffff, NwSrc: ^uint32(0), NwDst: ^uint32(0), NwProto: 0xff, TpDst: 0xffff},
	{DlDst: [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, VLANs: [2]VLAN{{TCI: 0x1fff}}},
	// Masks over the tunnel words and the words after the packet's
	// fields, which a megaflow keeps only when its mask covers them.
	{InPort: ^uint32(0), TunID: 0xffffff, TunDst: ^uint32(0), TunFlags: TunFlagOAM},
	{TunIPv6Dst: [16]byte{15: 0xff}, NwDst: 0xff, RecircID: ^uint32(0), CtState: 0xff},
	{}, // catch-all
}

// TestMegaflowsAgainstMap runs random inserts, removals and lookups against
// a map of (mask, masked key) to megaflow. The key space is small, so that
// probe runs collide and backward-shift deletion gets exercised.
func TestMegaflowsAgainstMap(t *testing.T) {
	type id struct{ mask, key Key }
	r := rand.New(rand.NewPCG(3, 3))
	c := NewMegaflows()
	ref := map[id]*Megaflow{}
	randKey := func() Key {
		var k Key
		k.InPort = uint32(r.IntN(40))
		k.DlType = uint16(r.IntN(3))
		k.NwSrc, k.NwDst = uint32(r.IntN(8)), uint32(r.IntN(600))
		k.NwProto = uint8(r.IntN(2))
		k.TpDst = uint16(r.IntN(4))
		k.DlDst[5] = byte(r.IntN(30))
		k.VLANs[0].TCI = uint16(r.IntN(3))
		if r.IntN(2) == 0 {
			k.TunID, k.TunDst, k.TunFlags = uint64(r.IntN(3)), uint32(r.IntN(3)), uint16(r.IntN(2))
			k.TunIPv6Dst[15] = byte(r.IntN(3))
		}
		k.RecircID, k.CtState = uint32(r.IntN(2)), uint8(r.IntN(2))
		return k
	}
	for step := range 40000 {
		k := randKey()
		mask := testMasks[r.IntN(len(testMasks))]
		var mk Key
		k.Masked(&mask, &mk)
		switch op := r.IntN(10); {
		case op < 4:
			mf := testInsert(c, &k, &mask, nil, uint64(step))
			if old := ref[id{mask, mk}]; old != nil && old != mf {
				t.Fatalf("step %d: insert of an existing megaflow made a new one", step)
			}
			if mf.Key() != mk || *mf.Mask != mask || mf.Generation != uint64(step) || !mf.Alive() {
				t.Fatalf("step %d: inserted megaflow %+v is not what was asked", step, mf)
			}
			ref[id{mask, mk}] = mf
		case op < 7:
			mf := ref[id{mask, mk}]
			if mf == nil {
				continue
			}
			c.Remove(mf)
			delete(ref, id{mask, mk})
			if mf.Alive() {
				t.Fatalf("step %d: removed megaflow still alive", step)
			}
			c.Remove(mf) // removing twice is harmless
		default:
			got := c.Lookup(&k)
			var anyMatch bool
			for _, m := range testMasks {
				var kk Key
				k.Masked(&m, &kk)
				anyMatch = anyMatch || ref[id{m, kk}] != nil
			}
			switch {
			case got == nil && anyMatch:
				t.Fatalf("step %d: lookup missed an installed megaflow", step)
			case got != nil && ref[id{*got.Mask, got.Key()}] != got:
				t.Fatalf("step %d: lookup returned a megaflow that is not installed", step)
			case got != nil:
				m := got.Match()
				if !m.Matches(&k) {
					t.Fatalf("step %d: lookup returned a megaflow that does not match", step)
				}
			}
		}
		if c.Len() != len(ref) {
			t.Fatalf("step %d: Len %d, want %d", step, c.Len(), len(ref))
		}
	}
	n := 0
	c.Range(func(mf *Megaflow) bool {
		if ref[id{*mf.Mask, mf.Key()}] != mf {
			t.Fatalf("Range visits a megaflow that is not installed")
		}
		n++
		return true
	})
	if n != len(ref) {
		t.Errorf("Range visited %d megaflows, want %d", n, len(ref))
	}
	// Every installed megaflow is found by its own key.
	for _, mf := range ref {
		k := mf.Key()
		if got := c.Lookup(&k); got == nil {
			t.Fatalf("megaflow %+v not found by its key", mf.Match())
		}
	}
}

func TestMegaflowsRemoveIfAndFlush(t *testing.T) {
	c := NewMegaflows()
	var all []*Megaflow
	for i := range 100 {
		k := Key{InPort: uint32(i), NwSrc: uint32(i)}
		all = append(all, testInsert(c, &k, &testMasks[i%2], nil, uint64(i%3)))
	}
	if got := c.Subtables(); got != 2 {
		t.Fatalf("%d subtables, want 2", got)
	}
	removed := c.RemoveIf(func(mf *Megaflow) bool { return mf.Generation == 0 })
	if removed != 34 || c.Len() != 66 {
		t.Fatalf("RemoveIf removed %d, left %d; want 34, 66", removed, c.Len())
	}
	for _, mf := range all {
		if mf.Alive() != (mf.Generation != 0) {
			t.Fatalf("megaflow of generation %d alive %v", mf.Generation, mf.Alive())
		}
	}
	c.Flush()
	if c.Len() != 0 || c.Subtables() != 0 {
		t.Fatalf("after Flush: %d megaflows in %d subtables", c.Len(), c.Subtables())
	}
	for _, mf := range all {
		if mf.Alive() {
			t.Fatal("megaflow alive after Flush")
		}
	}
	k := Key{InPort: 1}
	if c.Lookup(&k) != nil {
		t.Fatal("lookup hit after Flush")
	}
	// The classifier works after a flush.
	testInsert(c, &k, &testMasks[0], nil, 9)
	if mf := c.Lookup(&k); mf == nil || mf.Generation != 9 {
		t.Fatalf("lookup after re-insert: %v", mf)
	}
}

func TestMegaflowsRank(t *testing.T) {
	c := NewMegaflows()
	a := Key{InPort: 1}
	b := Key{InPort: 2, DlType: 1, NwDst: 0x0a000100}
	testInsert(c, &a, &testMasks[0], nil, 1)
	testInsert(c, &b, &testMasks[1], nil, 1)
	// Only b's subtable hits; b's key misses in a's subtable (in_port 2).
	for range 10 {
		c.Lookup(&b)
	}
	if c.subs[0].mask != testMasks[0] {
		t.Fatalf("subtables re-ranked before Rank")
	}
	c.Rank()
	if c.subs[0].mask != testMasks[1] {
		t.Errorf("after Rank the most hit subtable is not first")
	}
}

func TestMegaflowAccount(t *testing.T) {
	tbl := newTestTable(mkFlow(1, out(1)))
	r := tbl.Dump(nil)[0]
	c := NewMegaflows()
	var k, mask Key
	mf := testInsert(c, &k, &mask, r, tbl.Generation())
	mf.Account(2, 128, 50)
	mf.Account(1, 64, 40)
	if mf.Packets != 3 || mf.Bytes != 192 || mf.LastUsed != 50 {
		t.Errorf("megaflow counters %d/%d/%d, want 3/192/50", mf.Packets, mf.Bytes, mf.LastUsed)
	}
	if p, b := r.Stats(); p != 0 || b != 0 {
		t.Errorf("rule counters %d/%d before Credit, want 0/0", p, b)
	}
	mf.Credit()
	if p, b := r.Stats(); p != 3 || b != 192 {
		t.Errorf("rule counters %d/%d, want 3/192", p, b)
	}
	drop := testInsert(c, &Key{InPort: 1}, &testMasks[0], nil, 1)
	drop.Account(1, 60, 1) // no rule: only the megaflow counts
	if drop.Actions != nil || drop.Packets != 1 {
		t.Errorf("drop megaflow: actions %v packets %d", drop.Actions, drop.Packets)
	}
}

// TestMegaflowPacketKey checks that a megaflow keeps the key of the
// packet that installed it, which dpctl/dump-flows prints under the mask,
// beside its masked key; a later packet of the same megaflow changes
// neither.
func TestMegaflowPacketKey(t *testing.T) {
	c := NewMegaflows()
	mask := Key{InPort: ^uint32(0), DlType: 0xffff, NwSrc: 0xffffff00, NwTos: 0x03}
	first := Key{InPort: 1, DlType: EthTypeIPv4, NwSrc: 0x0a000005, NwTos: 0xb9, NwTTL: 64}
	mf := testInsert(c, &first, &mask, nil, 1)
	second := first
	second.NwSrc, second.NwTos = 0x0a000009, 0x05
	if again := testInsert(c, &second, &mask, nil, 1); again != mf {
		t.Fatal("a packet under the same mask and masked key made a second megaflow")
	}
	pk, k := mf.PacketKey(), mf.Key()
	if pk.NwSrc != 0x0a000005 || pk.NwTos != 0xb9 || pk.InPort != 1 || pk.DlType != EthTypeIPv4 {
		t.Errorf("packet key nw_src %#x nw_tos %#x in_port %d dl_type %#x; want the first packet's", pk.NwSrc, pk.NwTos, pk.InPort, pk.DlType)
	}
	if k.NwSrc != 0x0a000000 || k.NwTos != 0x01 {
		t.Errorf("masked key nw_src %#x nw_tos %#x, want 0xa000000 and 0x1", k.NwSrc, k.NwTos)
	}
	var masked Key
	pk.Masked(&mask, &masked)
	if masked != k {
		t.Error("the packet key under the mask is not the masked key")
	}
}

// testInsert inserts a megaflow with mask that takes rule's actions (nil:
// drop), as a translation that consulted mask and hit rule would.
func testInsert(c *Megaflows, k, mask *Key, rule *Rule, gen uint64) *Megaflow {
	tr := &Translation{Mask: *mask}
	if rule != nil {
		tr.Rules = []*Rule{rule}
		tr.Actions = rule.Actions
	}
	return c.Insert(k, tr, gen)
}

// TestMegaflowsLarge checks lookups in subtables that grew many times:
// every key finds its own megaflow, before and after half of them are
// removed, and keys that no megaflow matches miss.
func TestMegaflowsLarge(t *testing.T) {
	const n, masks = 40000, 16
	keys, c := spreadMegaflows(t, n, masks)
	mfs := make([]*Megaflow, n)
	for i := range keys {
		mf := c.Lookup(&keys[i])
		if mf == nil {
			t.Fatalf("key %d: miss", i)
		}
		if m := mf.Match(); !m.Matches(&keys[i]) || m.Key.InPort != keys[i].InPort {
			t.Fatalf("key %d: found a megaflow that is not its own", i)
		}
		mfs[i] = mf
	}
	for i := 0; i < n; i += 2 {
		c.Remove(mfs[i])
	}
	if c.Len() != n/2 {
		t.Fatalf("Len %d after removing half, want %d", c.Len(), n/2)
	}
	for i := range keys {
		got := c.Lookup(&keys[i])
		switch {
		case i%2 == 0 && got != nil:
			t.Fatalf("key %d: removed megaflow still found", i)
		case i%2 == 1 && got != mfs[i]:
			t.Fatalf("key %d: lost its megaflow after removals", i)
		}
	}
	k := keys[1]
	k.InPort = masks // no mask has this in_port's megaflows
	if c.Lookup(&k) != nil {
		t.Fatal("a key that no megaflow matches hit")
	}
}

// TestLookupBatchLikeLookup: lookupBatch gives, for every key of a batch,
// the megaflow Lookup gives, over subtables whose stages admit one key
// each (in_port matched exactly), several, or all (masks without in_port),
// with keys that hit, miss, or match in several subtables, in batches of
// every size and in any order of idx.
func TestLookupBatchLikeLookup(t *testing.T) {
	keys, c := spreadMegaflows(t, 4000, 40)
	// Megaflows whose masks leave in_port out, so that every key's stage
	// admits their subtables, some holding keys the staged ones hold too.
	for i := 0; i < len(keys); i += 3 {
		m := Key{DlType: 0xffff, NwSrc: ^uint32(0), TpDst: uint16(0xff << (i % 2 * 8))}
		testInsert(c, &keys[i], &m, nil, 1)
	}
	r := rand.New(rand.NewPCG(19, 5))
	batch := make([]Key, maxLookupBatch)
	idx := make([]uint8, maxLookupBatch)
	found := make([]*Megaflow, maxLookupBatch)
	for round := range 3000 {
		n := 1 + r.IntN(maxLookupBatch)
		for i := range batch {
			batch[i] = keys[r.IntN(len(keys))]
			switch r.IntN(4) {
			case 0:
				batch[i].InPort = uint32(r.IntN(64)) // another port's subtable, or none
			case 1:
				batch[i].NwSrc ^= 1 << 31 // matches nothing
			}
		}
		for x, i := range r.Perm(maxLookupBatch)[:n] {
			idx[x] = uint8(i)
		}
		c.lookupBatch(batch, idx[:n], found[:n])
		for x := range n {
			if want := c.Lookup(&batch[idx[x]]); found[x] != want {
				t.Fatalf("round %d, key %d of %d: lookupBatch found %p, Lookup %p", round, x, n, found[x], want)
			}
		}
	}
}

// TestMegaflowActionsShape checks what a megaflow tells the datapath of
// its actions before it runs them, as FinalOutputs and OutputsNormal find
// it, and that it follows the actions when an insertion replaces them.
func TestMegaflowActionsShape(t *testing.T) {
	setField := Action{Type: ActSetField}
	tests := []struct {
		name       string
		inActs     []Action
		wantFinal  int
		wantNormal bool
	}{
		{name: "drop", inActs: nil},
		{name: "one output", inActs: []Action{output(2)}, wantFinal: 1},
		{name: "outputs then a rewrite", inActs: []Action{output(2), setField}, wantFinal: 0},
		{name: "rewrite then outputs", inActs: []Action{setField, output(2), setField, output(3)}, wantFinal: 2},
		{name: "normal", inActs: []Action{output(PortNormal)}, wantFinal: 1, wantNormal: true},
		{name: "normal not last", inActs: []Action{output(PortNormal), setField}, wantNormal: true},
	}
	c := NewMegaflows()
	var k, mask Key
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FinalOutputs(tt.inActs); got != tt.wantFinal {
				t.Errorf("FinalOutputs = %d, want %d", got, tt.wantFinal)
			}
			if got := OutputsNormal(tt.inActs); got != tt.wantNormal {
				t.Errorf("OutputsNormal = %v, want %v", got, tt.wantNormal)
			}
			// The same key each time: the insertion replaces the actions.
			mf := c.Insert(&k, &Translation{Mask: mask, Actions: tt.inActs}, 1)
			if mf.FinalOutputs() != tt.wantFinal || mf.OutputsNormal() != tt.wantNormal {
				t.Errorf("megaflow: %d final outputs, normal %v; want %d, %v", mf.FinalOutputs(), mf.OutputsNormal(), tt.wantFinal, tt.wantNormal)
			}
		})
	}
	if c.Len() != 1 {
		t.Errorf("%d megaflows, want the one replaced", c.Len())
	}
}
