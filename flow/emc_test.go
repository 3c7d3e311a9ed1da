package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"unsafe"
)

func TestNewEMC(t *testing.T) {
	tests := []struct {
		name      string
		inEntries int
		wantErr   error
	}{
		{name: "default", inEntries: DefaultEMCEntries},
		{name: "smallest", inEntries: 2},
		{name: "zero", inEntries: 0, wantErr: ErrEMCSize},
		{name: "one", inEntries: 1, wantErr: ErrEMCSize},
		{name: "not a power of two", inEntries: 1000, wantErr: ErrEMCSize},
		{name: "negative", inEntries: -8, wantErr: ErrEMCSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewEMC(tt.inEntries, 1)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("NewEMC(%d): error %v, want %v", tt.inEntries, err, tt.wantErr)
			}
		})
	}
}

func TestEMC(t *testing.T) {
	const gen = 7
	live := func() *Megaflow { return &Megaflow{Generation: gen} }
	ka, kb, kc := Key{InPort: 1}, Key{InPort: 2}, Key{InPort: 3}
	tests := []struct {
		name string
		// run stores into e and returns the key and hash to look up and
		// the megaflow expected (nil for a miss).
		run func(t *testing.T, e *EMC) (k Key, h uint64, want *Megaflow)
	}{
		{
			name: "hit",
			run: func(t *testing.T, e *EMC) (Key, uint64, *Megaflow) {
				mf := live()
				e.Store(&ka, 5, mf)
				return ka, 5, mf
			},
		},
		{
			name: "same hash, other key misses",
			run: func(t *testing.T, e *EMC) (Key, uint64, *Megaflow) {
				e.Store(&ka, 5, live())
				return kb, 5, nil
			},
		},
		{
			// in_port shares its word with nw_src, the next word holds
			// nw_dst: a compare that let one word's ones hide the other's
			// differences would take this key for ka's neighbour.
			name: "same hash, key that differs only where the next word has ones, misses",
			run: func(t *testing.T, e *EMC) (Key, uint64, *Megaflow) {
				stored, other := Key{InPort: 1, NwDst: 0xffffffff}, Key{InPort: 3, NwDst: 0xffffffff}
				e.Store(&stored, 5, live())
				return other, 5, nil
			},
		},
		{
			name: "other hash misses",
			run: func(t *testing.T, e *EMC) (Key, uint64, *Megaflow) {
				e.Store(&ka, 5, live())
				return ka, 6, nil
			},
		},
		{
			name: "two keys share a set",
			run: func(t *testing.T, e *EMC) (Key, uint64, *Megaflow) {
				mf := live()
				e.Store(&ka, 5, mf)
				e.Store(&kb, 5, live())
				return ka, 5, mf
			},
		},
		{
			name: "store over the same key replaces",
			run: func(t *testing.T, e *EMC) (Key, uint64, *Megaflow) {
				e.Store(&ka, 5, live())
				mf := live()
				e.Store(&ka, 5, mf)
				e.Store(&kb, 5, live())
				return ka, 5, mf // kb took the other way, not ka's
			},
		},
		{
			name: "dead megaflow misses",
			run: func(t *testing.T, e *EMC) (Key, uint64, *Megaflow) {
				mf := live()
				mf.dead = true
				e.Store(&ka, 5, mf)
				return ka, 5, nil
			},
		},
		{
			name: "old generation misses",
			run: func(t *testing.T, e *EMC) (Key, uint64, *Megaflow) {
				mf := live()
				mf.Generation = gen - 1
				e.Store(&ka, 5, mf)
				return ka, 5, nil
			},
		},
		{
			name: "dead entry is reused before a live one",
			run: func(t *testing.T, e *EMC) (Key, uint64, *Megaflow) {
				a, b := live(), live()
				e.Store(&ka, 5, a)
				e.Store(&kb, 5, b)
				a.dead = true
				e.Store(&kc, 5, live())
				return kb, 5, b
			},
		},
		{
			name: "third key evicts one of two",
			run: func(t *testing.T, e *EMC) (Key, uint64, *Megaflow) {
				mf := live()
				e.Store(&ka, 5, live())
				e.Store(&kb, 5, live())
				e.Store(&kc, 5, mf)
				if e.Lookup(&ka, 5, gen) != nil && e.Lookup(&kb, 5, gen) != nil {
					t.Error("both older keys are still cached")
				}
				return kc, 5, mf
			},
		},
		{
			name: "second way from the high hash bits",
			run: func(t *testing.T, e *EMC) (Key, uint64, *Megaflow) {
				mf := live()
				h := uint64(3)<<32 | 5 // ways 5 and 3
				e.Store(&ka, h, live())
				e.Store(&kb, h, mf)
				return kb, h, mf
			},
		},
		{
			name: "flush",
			run: func(t *testing.T, e *EMC) (Key, uint64, *Megaflow) {
				e.Store(&ka, 5, live())
				e.Flush()
				return ka, 5, nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEMC(16, 1)
			if err != nil {
				t.Fatal(err)
			}
			k, h, want := tt.run(t, e)
			if got := e.Lookup(&k, h, gen); got != want {
				t.Errorf("lookup: got %p, want %p", got, want)
			}
		})
	}
}

func TestEMCInsertProbability(t *testing.T) {
	tests := []struct {
		name      string
		inInvProb uint32
		wantMin   int
		wantMax   int
	}{
		{name: "never", inInvProb: 0, wantMin: 0, wantMax: 0},
		{name: "always", inInvProb: 1, wantMin: 100000, wantMax: 100000},
		{name: "one in a hundred", inInvProb: 100, wantMin: 800, wantMax: 1200},
		{name: "one in two", inInvProb: 2, wantMin: 48000, wantMax: 52000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEMC(DefaultEMCEntries, tt.inInvProb)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for i := range 100000 {
				k := Key{InPort: uint32(i)}
				if e.Insert(&k, EMCHash(&k), &Megaflow{}) {
					n++
				}
			}
			if n < tt.wantMin || n > tt.wantMax {
				t.Errorf("inserted %d of 100000, want %d..%d", n, tt.wantMin, tt.wantMax)
			}
		})
	}
}

// TestHitPathsDoNotAllocate proves that lookups that hit, and lookups that
// revalidate a megaflow after a table change, do not allocate.
func TestHitPathsDoNotAllocate(t *testing.T) {
	tbl := newTestTable(
		mkFlow(100, out(1), dlType(EthTypeIPv4), nwSrc(0x0a000000, 8)),
		mkFlow(0, out(2)),
	)
	k := Key{DlType: EthTypeIPv4, NwSrc: 0x0a000001}

	emcCache, err := NewCache(tbl, DefaultEMCEntries, 1)
	if err != nil {
		t.Fatal(err)
	}
	mfCache, err := NewCache(tbl, DefaultEMCEntries, 0) // no EMC insertions
	if err != nil {
		t.Fatal(err)
	}
	tk := k // a packet from a tunnel, kept with its extra words
	tk.TunID, tk.TunDst = 5, 0xc0000201
	emcCache.Lookup(&k)
	emcCache.Lookup(&tk)
	mfCache.Lookup(&k)
	h, th := EMCHash(&k), EMCHash(&tk)
	gen := tbl.Generation()
	mf := mfCache.Megaflows().Lookup(&k)

	tests := []struct {
		name string
		run  func()
	}{
		{name: "cache emc hit", run: func() { expectSource(t, emcCache, &k, SourceEMC) }},
		{name: "cache megaflow hit", run: func() { expectSource(t, mfCache, &k, SourceMegaflow) }},
		{name: "cache revalidation", run: func() {
			mf.Generation = 0 // as if the table had changed since
			expectSource(t, mfCache, &k, SourceMegaflow)
		}},
		{name: "emc lookup", run: func() {
			if emcCache.EMC().Lookup(&k, h, gen) == nil {
				t.Fatal("emc missed")
			}
		}},
		{name: "emc lookup, tunnel key", run: func() {
			if emcCache.EMC().Lookup(&tk, th, gen) == nil {
				t.Fatal("emc missed")
			}
		}},
		{name: "megaflow lookup", run: func() {
			if mfCache.Megaflows().Lookup(&k) == nil {
				t.Fatal("megaflow classifier missed")
			}
		}},
		{name: "table lookup", run: func() {
			var wc Key
			if tbl.Snapshot().Lookup(&k, &wc) == nil {
				t.Fatal("table lookup missed")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if allocs := testing.AllocsPerRun(1000, tt.run); allocs != 0 {
				t.Errorf("%v allocations per lookup, want 0", allocs)
			}
		})
	}
}

func expectSource(t *testing.T, c *Cache, k *Key, want Source) {
	if _, src := c.Lookup(k); src != want {
		t.Fatalf("lookup answered by %s, want %s", src, want)
	}
}

// TestEMCConntrackWords: keys that differ only in their connection
// tracking fields hash alike (EMCHash leaves those words out) and are
// told apart by the comparison, so each finds its own megaflow.
func TestEMCConntrackWords(t *testing.T) {
	e, err := NewEMC(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	var a Key
	a.InPort, a.DlType, a.RecircID = 1, EthTypeIPv4, 7
	a.CtState = CtStateTracked | CtStateNew
	// The hash seed changes per process: pick a key whose two slots
	// differ, so that both keys below fit.
	for i, j := e.slots(EMCHash(&a)); i == j; i, j = e.slots(EMCHash(&a)) {
		a.InPort++
	}
	b := a
	b.CtState = CtStateTracked | CtStateEst
	c := a
	c.CtLabel[15] = 1
	if EMCHash(&a) != EMCHash(&b) || EMCHash(&a) != EMCHash(&c) {
		t.Fatal("keys that differ only in ct fields hash apart; the test expects them alike")
	}
	mfA, mfB := &Megaflow{}, &Megaflow{}
	e.Store(&a, EMCHash(&a), mfA)
	if got := e.Lookup(&b, EMCHash(&b), 0); got != nil {
		t.Errorf("ct_state=+est+trk found the megaflow of ct_state=+new+trk")
	}
	e.Store(&b, EMCHash(&b), mfB)
	if got := e.Lookup(&a, EMCHash(&a), 0); got != mfA {
		t.Errorf("ct_state=+new+trk: got %p, want %p", got, mfA)
	}
	if got := e.Lookup(&b, EMCHash(&b), 0); got != mfB {
		t.Errorf("ct_state=+est+trk: got %p, want %p", got, mfB)
	}
	if got := e.Lookup(&c, EMCHash(&c), 0); got != nil {
		t.Errorf("a key differing in ct_label found a megaflow")
	}
}

// emcTestKeys are keys of the three kinds the exact-match cache tells
// apart: a packet as it arrives, one that came through a tunnel, and one
// that connection tracking recirculated.
func emcTestKeys() []struct {
	name string
	k    Key
} {
	plain := Key{InPort: 1, DlType: EthTypeIPv4, NwProto: IPProtoUDP, NwSrc: 0x0a000001, NwDst: 0x0a000002, TpSrc: 1024, TpDst: 80}
	tun := plain
	tun.TunID, tun.TunSrc, tun.TunDst, tun.TunFlags = 5, 0xc0000201, 0xc0000209, TunFlagKey
	ct := plain
	ct.RecircID, ct.CtState, ct.CtZone, ct.CtNwSrc, ct.CtNwDst = 3, CtStateTracked|CtStateEst, 9, plain.NwSrc, plain.NwDst
	return []struct {
		name string
		k    Key
	}{{"plain", plain}, {"tunnel", tun}, {"recirculated", ct}}
}

// TestEMCKeyWords: for each kind of key and each packet word, a key that
// differs only in that word is a different key to the cache, even when
// both have the same hash (the lookups below force it): each finds its own
// megaflow, and neither finds the other's alone. Whether a word is one the
// slot keeps or one of the extra words kept beside it, whether the change
// makes a plain key an extended one or changes an extended key, it counts.
func TestEMCKeyWords(t *testing.T) {
	const h = uint64(3)<<32 | 5 // ways 5 and 3
	for _, base := range emcTestKeys() {
		for wi := emcFirstWord; wi < KeyWords; wi++ {
			t.Run(fmt.Sprintf("%s/word %d", base.name, wi), func(t *testing.T) {
				a := base.k
				b := a
				b.Words()[wi] ^= 0x0101010101010101
				e, err := NewEMC(16, 1)
				if err != nil {
					t.Fatal(err)
				}
				mfA, mfB := &Megaflow{}, &Megaflow{}
				e.Store(&b, h, mfB)
				if got := e.Lookup(&a, h, 0); got != nil {
					t.Errorf("a key found the megaflow of a key that differs from it in word %d", wi)
				}
				e.Store(&a, h, mfA)
				if got := e.Lookup(&a, h, 0); got != mfA {
					t.Errorf("a: got %p, want %p", got, mfA)
				}
				if got := e.Lookup(&b, h, 0); got != mfB {
					t.Errorf("b (word %d changed): got %p, want %p", wi, got, mfB)
				}
				e.Flush()
				e.Store(&a, h, mfA)
				if got := e.Lookup(&b, h, 0); got != nil {
					t.Errorf("a key that differs in word %d found the megaflow of the other", wi)
				}
			})
		}
	}
}

// TestEMCHashWords: EMCHash reads every packet word but the connection
// tracking state and the common words that emcCommonHashes leaves to the
// comparison (the ARP hardware addresses, dl_type and the outer VLAN's
// TPID): a key that differs in any other word hashes apart (the hash is
// 64 random bits per key, so a collision here would be a bug, not bad
// luck), one that differs only in those words hashes alike (they are
// compared, not hashed). Tunnel words, tun_metadata, pkt_mark and
// recirc_id count for a key that has no other extra word too, and the
// IPv6 words for an IPv4 key, whose IPv6 words are zero, as for an IPv6
// one.
func TestEMCHashWords(t *testing.T) {
	ctFirst, ctEnd := int(unsafe.Offsetof(Key{}.CtLabel)), int(unsafe.Offsetof(Key{}.TunMeta))
	unhashedFirst, unhashedEnd := int(unsafe.Offsetof(Key{}.ArpSha)), int(unsafe.Offsetof(Key{}.VLANs)+2)
	v6 := Key{InPort: 1, DlType: EthTypeIPv6, NwProto: IPProtoTCP, TpSrc: 1024, TpDst: 80, TcpFlags: 0x10}
	v6.IPv6Src[0], v6.IPv6Src[15], v6.IPv6Dst[0], v6.IPv6Dst[15] = 0xfe, 1, 0xfe, 2
	keys := append(emcTestKeys(), struct {
		name string
		k    Key
	}{"ipv6", v6})
	for _, base := range keys {
		h := EMCHash(&base.k)
		for off := int(unsafe.Offsetof(Key{}.InPort)); off < KeyWords*8; off++ {
			k := base.k
			(*[KeyWords * 8]byte)(unsafe.Pointer(&k))[off] ^= 0x80
			alike := off >= ctFirst && off < ctEnd || off >= unhashedFirst && off < unhashedEnd
			if got := EMCHash(&k); (got == h) != alike {
				t.Errorf("%s: flipping a bit of byte %d: hash %#x, base's %#x (alike: %v, want %v)", base.name, off, got, h, got == h, alike)
			}
		}
	}
}

// TestEMCProbe: the probe a batch lookup works out of a key in one pass
// says what the cache's exported methods work out of it word by word: for
// each kind of key and each byte of it flipped, the key may be cached
// exactly when the byte is not pipeline state, has extra words exactly
// when it had some or the byte is a tunnel or later word, and its tag is
// its hash marked so.
func TestEMCProbe(t *testing.T) {
	tunFirst, tunEnd := int(unsafe.Offsetof(Key{}.TunID)), int(unsafe.Offsetof(Key{}.TunFlags))
	extraFirst := int(unsafe.Offsetof(Key{}.PktMark))
	for _, base := range emcTestKeys() {
		for off := range KeyWords * 8 {
			k := base.k
			(*[KeyWords * 8]byte)(unsafe.Pointer(&k))[off] ^= 0x80
			wantOK := off >= int(unsafe.Offsetof(Key{}.InPort))
			wantExtra := base.name != "plain" || off >= tunFirst && off < tunEnd || off >= extraFirst
			got := emcProbeOf(&k)
			if got.ok != wantOK || got.extra != wantExtra || got.tag != emcTag(got.h, wantExtra) || got.h != EMCHash(&k) {
				t.Errorf("%s: flipping a bit of byte %d: probe %+v, want ok %v, extra %v, tag %#x", base.name, off, got, wantOK, wantExtra, emcTag(got.h, wantExtra))
			}
			if want := probeWith(&k, got.h); got != want {
				t.Errorf("%s: flipping a bit of byte %d: probe %+v, the exported methods' %+v", base.name, off, got, want)
			}
			// A plain key is one the cache may hold without extra words,
			// and its plain probe is its probe.
			if plain := IsPlain(&k); plain != (got.ok && !got.extra) {
				t.Errorf("%s: flipping a bit of byte %d: IsPlain %v, probe %+v", base.name, off, plain, got)
			} else if plain && emcPlainProbe(&k) != got {
				t.Errorf("%s: flipping a bit of byte %d: plain probe %+v, probe %+v", base.name, off, emcPlainProbe(&k), got)
			}
		}
	}
}

// TestEMCTunMetadataSpread: packets of a Geneve tunnel that differ only in
// a tun_metadata option (as a logical port carried in one would make them)
// spread over the cache as other keys do, rather than all sharing two
// slots: 512 such keys in a cache of 1024 slots keep most of themselves.
func TestEMCTunMetadataSpread(t *testing.T) {
	e, err := NewEMC(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	base := emcTestKeys()[1].k // the tunnel key
	base.TunMetaPresent = 1
	keys := make([]Key, 512)
	for i := range keys {
		keys[i] = base
		binary.BigEndian.PutUint32(keys[i].TunMeta[:4], uint32(i))
		e.Store(&keys[i], EMCHash(&keys[i]), &Megaflow{})
	}
	held := 0
	for i := range keys {
		if e.Lookup(&keys[i], EMCHash(&keys[i]), 0) != nil {
			held++
		}
	}
	// Random hashes keep about 460 of 512 in a two-way cache of 1024
	// slots; keys that all hashed alike would keep 2.
	if held < len(keys)*3/4 {
		t.Errorf("the cache holds %d of %d keys that differ in tun_metadata only, want at least %d", held, len(keys), len(keys)*3/4)
	}
}

// FuzzEMCPlain: the exact-match cache answers a key with the megaflow
// stored for another only when the two keys are equal, whether each was
// probed as plain (as ExtractReusing reported it, into a buffer reused as
// the datapath reuses it) or in full, and whatever word of the second key
// was then changed (as tunnel metadata or an action changes a key that is
// then no longer said plain).
func FuzzEMCPlain(f *testing.F) {
	for _, tc := range extractCases(f) {
		f.Add(tc.inFrame, tc.inFrame, uint8(0), uint64(0))
		f.Add(tc.inFrame, tc.inFrame, uint8(30), uint64(5))
	}
	f.Fuzz(func(t *testing.T, frameA, frameB []byte, word uint8, v uint64) {
		var buf Key // one buffer, reused as dispatch reuses its keys
		var off Offsets
		_, plainA := ExtractReusing(&buf, &off, frameA, testInPort, false)
		a := buf
		_, plainB := ExtractReusing(&buf, &off, frameB, testInPort, plainA)
		b := buf
		probe := func(k *Key, plain bool) emcProbe {
			if plain {
				return emcPlainProbe(k)
			}
			return emcProbeOf(k)
		}
		check := func(b *Key, plainB bool) {
			t.Helper()
			e, err := NewEMC(16, 1)
			if err != nil {
				t.Fatal(err)
			}
			mf := &Megaflow{}
			e.store(&a, probe(&a, plainA), mf)
			if got := e.lookup(b, probe(b, plainB), 0); (got == mf) != (a == *b) {
				t.Errorf("keys equal %v, but the lookup found %p (stored %p): a %+v, b %+v", a == *b, got, mf, a, *b)
			}
		}
		check(&b, plainB)
		if v != 0 {
			b.Words()[int(word)%KeyWords] ^= v // no longer plain, said so
			check(&b, false)
		}
	})
}
