package flow

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

func reportClassifyPPS(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// benchKey returns the i-th of a family of distinct keys that look like
// TCP/IPv4 packets.
func benchKey(i int) Key {
	return Key{
		InPort:  uint32(1 + i%4),
		DlType:  EthTypeIPv4,
		NwSrc:   0x0a000000 | uint32(i),
		NwDst:   0xc0a80000 | uint32(i*7919)&0xffff,
		NwProto: IPProtoTCP,
		TpSrc:   uint16(1024 + i),
		TpDst:   80,
		NwTTL:   64,
		DlSrc:   [6]byte{2, 0, 0, 0, byte(i >> 8), byte(i)},
		DlDst:   [6]byte{2, 0, 0, 0, 0, 1},
	}
}

// benchKeys returns the first n benchKeys.
func benchKeys(n int) []Key {
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	return keys
}

// spreadMegaflows returns n keys and a classifier holding one megaflow for
// each, spread evenly over the given number of masks (at most 64). The
// masks are shaped like real ones: in_port, dl_type, nw_proto, nw_src, an
// nw_dst prefix of a length that differs per mask and, for half of them,
// tp_dst. Key i has in_port i%masks, so it matches only its own megaflow,
// in its own subtable.
func spreadMegaflows(tb testing.TB, n, masks int) ([]Key, *Megaflows) {
	keys := benchKeys(n)
	c := NewMegaflows()
	for i := range keys {
		j := i % masks
		m := Key{InPort: ^uint32(0), DlType: 0xffff, NwProto: 0xff, NwSrc: ^uint32(0), NwDst: prefix32(32 - j%32)}
		if j >= 32 {
			m.TpDst = 0xffff
		}
		keys[i].InPort = uint32(j)
		testInsert(c, &keys[i], &m, nil, 1)
	}
	if c.Len() != n || c.Subtables() != masks {
		tb.Fatalf("%d megaflows in %d subtables, want %d in %d", c.Len(), c.Subtables(), n, masks)
	}
	return keys, c
}

// cachedKeys returns the keys of keys that the EMC holds: two-way sets
// evict some when the cache is loaded.
func cachedKeys(e *EMC, keys []Key, gen uint64) []Key {
	var out []Key
	for i := range keys {
		if e.Lookup(&keys[i], EMCHash(&keys[i]), gen) != nil {
			out = append(out, keys[i])
		}
	}
	return out
}

// BenchmarkEMCHit measures an exact-match cache hit with the key's hash
// already computed (as a batch computes it once per packet), cycling over
// 1024 cached keys.
func BenchmarkEMCHit(b *testing.B) {
	keys := benchKeys(1024)
	hashes := make([]uint64, len(keys))
	e, err := NewEMC(DefaultEMCEntries, 1)
	if err != nil {
		b.Fatal(err)
	}
	mf := &Megaflow{Generation: 1}
	for i := range keys {
		e.Store(&keys[i], EMCHash(&keys[i]), mf)
	}
	keys = cachedKeys(e, keys, 1)
	for i := range keys {
		hashes[i] = EMCHash(&keys[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		j := i % len(keys)
		if e.Lookup(&keys[j], hashes[j], 1) == nil {
			b.Fatal("emc miss")
		}
		i++
	}
	reportClassifyPPS(b)
}

// BenchmarkEMCHash measures EMCHash, the hash the exact-match cache path
// computes for each packet.
func BenchmarkEMCHash(b *testing.B) {
	keys := benchKeys(1024)
	b.ReportAllocs()
	var sum uint64
	i := 0
	for b.Loop() {
		sum += EMCHash(&keys[i&1023])
		i++
	}
	if sum == 0 {
		b.Log(sum)
	}
	reportClassifyPPS(b)
}

// BenchmarkCacheEMCHit measures Cache.Lookup answered by the exact-match
// cache: snapshot load, EMCHash and the EMC probe.
func BenchmarkCacheEMCHit(b *testing.B) {
	keys := benchKeys(1024)
	tbl := newTestTable(mkFlow(0, out(1)))
	c, err := NewCache(tbl, DefaultEMCEntries, 1)
	if err != nil {
		b.Fatal(err)
	}
	for i := range keys {
		c.Lookup(&keys[i])
	}
	keys = cachedKeys(c.EMC(), keys, tbl.Generation())
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, src := c.Lookup(&keys[i%len(keys)]); src != SourceEMC {
			b.Fatalf("answered by %s", src)
		}
		i++
	}
	reportClassifyPPS(b)
}

// BenchmarkMegaflowHit measures megaflow classifier hits with 1024
// megaflows spread evenly over the given number of masks, and traffic
// spread evenly over the megaflows, so over the subtables: each key matches
// in exactly one subtable, and a hit in the i-th subtable in probe order
// probes i subtables, (masks+1)/2 on average (ranking cannot help an even
// spread).
func BenchmarkMegaflowHit(b *testing.B) {
	for _, masks := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("masks=%d", masks), func(b *testing.B) {
			keys, c := spreadMegaflows(b, 1024, masks)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if c.Lookup(&keys[i&1023]) == nil {
					b.Fatal("megaflow miss")
				}
				i++
			}
			reportClassifyPPS(b)
		})
	}
}

// BenchmarkMegaflowHitSkewed is BenchmarkMegaflowHit at 16 masks with
// skewed traffic: 90% of the packets hit 2 of the subtables, which ranking
// moves to the front.
func BenchmarkMegaflowHitSkewed(b *testing.B) {
	keys, c := spreadMegaflows(b, 1024, 16)
	var hot, cold []Key
	for i := range keys {
		if i%16 == 5 || i%16 == 11 {
			hot = append(hot, keys[i])
		} else {
			cold = append(cold, keys[i])
		}
	}
	seq := make([]*Key, 4096)
	r := rand.New(rand.NewPCG(4, 4))
	for i := range seq {
		if r.IntN(10) < 9 {
			seq[i] = &hot[r.IntN(len(hot))]
		} else {
			seq[i] = &cold[r.IntN(len(cold))]
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if c.Lookup(seq[i&4095]) == nil {
			b.Fatal("megaflow miss")
		}
		i++
	}
	reportClassifyPPS(b)
}

// BenchmarkCacheMegaflowHit measures Cache.Lookup answered by the megaflow
// classifier (EMC insertions off, so the EMC always misses), 16 masks
// spread as in BenchmarkMegaflowHit.
func BenchmarkCacheMegaflowHit(b *testing.B) {
	keys, mfs := spreadMegaflows(b, 1024, 16)
	tbl := newTestTable(mkFlow(0, out(1)))
	c, err := NewCache(tbl, DefaultEMCEntries, 0)
	if err != nil {
		b.Fatal(err)
	}
	c.mfs = mfs
	mfs.RemoveIf(func(mf *Megaflow) bool {
		mf.Generation = tbl.Generation()
		return false
	})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, src := c.Lookup(&keys[i&1023]); src != SourceMegaflow {
			b.Fatalf("answered by %s", src)
		}
		i++
	}
	reportClassifyPPS(b)
}

// benchRules returns 1000 rules over 10 masks plus a catch-all, none of
// which matches a source address in 172.16.0.0/12.
func benchRules() []Flow {
	r := rand.New(rand.NewPCG(1, 2))
	var fs []Flow
	for i := range 1000 {
		var f Flow
		switch i % 10 {
		case 0, 1, 2:
			f = mkFlow(uint16(100+i%7), out(1), dlType(EthTypeIPv4), nwSrc(0x0a000000|uint32(i), 32))
		case 3, 4:
			f = mkFlow(200, out(2), dlType(EthTypeIPv4), nwSrc(0x0a000000|uint32(i)<<8, 24), nwProto(IPProtoTCP), tpDst(uint16(i), 0xffff))
		case 5:
			f = mkFlow(300, out(3), inPort(uint32(i)), dlType(EthTypeIPv4), nwSrc(0x0b000000|uint32(i)<<16, 16))
		case 6:
			f = mkFlow(50, out(4), dlType(EthTypeIPv4), nwProto(IPProtoUDP), tpDst(uint16(i), 0xffff))
		case 7:
			f = mkFlow(400, out(5), dlType(EthTypeARP), nwSrc(r.Uint32(), 32))
		case 8:
			f = mkFlow(10, out(6), inPort(uint32(i)))
		case 9:
			f = mkFlow(20, out(7), dlType(EthTypeIPv6), tpDst(uint16(i), 0xfff0))
		}
		fs = append(fs, f)
	}
	return append(fs, mkFlow(0, out(PortNormal)))
}

// BenchmarkMissInstall measures Cache.Lookup for packets that miss both
// caches: the rule-table lookup over 1000 rules in 11 subtables, and the
// megaflow (and EMC, at the default probability) installation. Each packet
// comes from a new input port, which the megaflows must consult (rules
// match in_port exactly), so every one is an upcall; the caches are flushed
// every 65536 packets to bound memory.
func BenchmarkMissInstall(b *testing.B) {
	tbl := newTestTable(benchRules()...)
	c, err := NewCache(tbl, DefaultEMCEntries, DefaultEMCInsertInvProb)
	if err != nil {
		b.Fatal(err)
	}
	k := benchKeys(1)[0]
	b.ReportAllocs()
	i := uint32(0)
	for b.Loop() {
		k.InPort = 1<<20 | i&0xfffff
		if _, src := c.Lookup(&k); src != SourceUpcall {
			b.Fatalf("packet %d answered by %s", i, src)
		}
		i++
		if i%65536 == 0 {
			c.Flush()
		}
	}
	reportClassifyPPS(b)
}

// BenchmarkTableLookup measures the rule-table lookup alone, over the rules
// of BenchmarkMissInstall.
func BenchmarkTableLookup(b *testing.B) {
	s := newTestTable(benchRules()...).Snapshot()
	k := benchKeys(1)[0]
	b.ReportAllocs()
	i := uint32(0)
	for b.Loop() {
		k.NwSrc = 0xac100000 | i&0xfffff
		var wc Key
		if s.Lookup(&k, &wc) == nil {
			b.Fatal("no rule")
		}
		i++
	}
	reportClassifyPPS(b)
}

// BenchmarkMegaflowLookup1M measures megaflow hits with 1,000,000 megaflows
// installed, over 1 and 16 masks (spread as in BenchmarkMegaflowHit), in a
// scattered order, so that most lookups miss the CPU caches. Each packet's
// key is built in place, as extraction would leave it, rather than read from
// a large array. It reports the heap the classifier takes per megaflow,
// megaflows included.
//
// masks=N looks the keys up one by one (Lookup), each lookup waiting for
// its own cache misses; batch/masks=N looks them up 32 at a time, as a
// poll thread's batch (lookupBatch, which Cache.LookupBatch uses), so that
// the misses of a batch overlap. floor/masks=N is masks=N reduced to what
// no layout of the table can spare a lookup: for each key, the same key
// built in place, its subtable found by stage and its hash, and one read
// of the record that the hash points to, a single cache miss, with no
// control word, compare or counting. It is the machine's cost of one
// miss in this loop, which masks=N cannot go below: how close masks=N is
// to it says how much of a lookup's time is anything but that miss.
func BenchmarkMegaflowLookup1M(b *testing.B) {
	const n, batch = 1_000_000, 32
	for _, masks := range []int{1, 16} {
		// Built on first use, so that a run of only some of the
		// sub-benchmarks does not build the others' classifier.
		var (
			c           *Megaflows
			perMegaflow float64
		)
		classifier := func(b *testing.B) *Megaflows {
			if c == nil {
				before := heapInUse()
				_, c = spreadMegaflows(b, n, masks)
				perMegaflow = float64(heapInUse()-before) / n
			}
			return c
		}
		b.Run(fmt.Sprintf("masks=%d", masks), func(b *testing.B) {
			c := classifier(b)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				j := (i * 7919) % n // 7919 is prime, so this visits every key
				k := benchKey(j)
				k.InPort = uint32(j % masks)
				if c.Lookup(&k) == nil {
					b.Fatal("megaflow miss")
				}
				i++
			}
			reportClassifyPPS(b)
			b.ReportMetric(perMegaflow, "B/megaflow")
		})
		b.Run(fmt.Sprintf("floor/masks=%d", masks), func(b *testing.B) {
			c := classifier(b)
			b.ReportAllocs()
			var sink uint64
			i := 0
			for b.Loop() {
				j := (i * 7919) % n
				k := benchKey(j)
				k.InPort = uint32(j % masks)
				for _, st := range c.subs {
					if st.stage.mayHold(stageKey(&k)) {
						sink ^= st.touch(st.hashKey(&k))
						break
					}
				}
				i++
			}
			c.touched ^= sink
			reportClassifyPPS(b)
		})
		b.Run(fmt.Sprintf("batch/masks=%d", masks), func(b *testing.B) {
			c := classifier(b)
			keys := make([]Key, batch)
			idx := make([]uint8, batch)
			for x := range idx {
				idx[x] = uint8(x)
			}
			found := make([]*Megaflow, batch)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				for x := range keys {
					j := (i * 7919) % n
					keys[x] = benchKey(j)
					keys[x].InPort = uint32(j % masks)
					i++
				}
				c.lookupBatch(keys, idx, found)
				for _, mf := range found {
					if mf == nil {
						b.Fatal("megaflow miss")
					}
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "pkts/s")
			b.ReportMetric(perMegaflow, "B/megaflow")
		})
		c = nil
	}
}

// heapInUse returns the bytes of live heap objects after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkCacheLookup1M measures Cache lookups answered by a megaflow
// classifier of 1,000,000 megaflows (EMC insertions off: a million flows
// overflow it anyway), keys scattered as in BenchmarkMegaflowLookup1M and
// built in place 32 at a time, as a poll thread's batch: one by one with
// Lookup, and with LookupBatch.
func BenchmarkCacheLookup1M(b *testing.B) {
	const n, batch = 1_000_000, 32
	for _, masks := range []int{1, 16} {
		_, mfs := spreadMegaflows(b, n, masks)
		tbl := newTestTable(mkFlow(0, out(1)))
		mfs.RemoveIf(func(mf *Megaflow) bool {
			mf.Generation = tbl.Generation()
			return false
		})
		c, err := NewCache(tbl, DefaultEMCEntries, 0)
		if err != nil {
			b.Fatal(err)
		}
		c.mfs = mfs
		keys := make([]Key, batch)
		got := make([]*Megaflow, batch)
		srcs := make([]Source, batch)
		i := 0
		fill := func() {
			for k := range keys {
				j := (i * 7919) % n
				keys[k] = benchKey(j)
				keys[k].InPort = uint32(j % masks)
				i++
			}
		}
		b.Run(fmt.Sprintf("masks=%d/one", masks), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				fill()
				for k := range keys {
					if _, src := c.Lookup(&keys[k]); src != SourceMegaflow {
						b.Fatalf("answered by %s", src)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/pkt")
		})
		b.Run(fmt.Sprintf("masks=%d/batch", masks), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				fill()
				c.LookupBatch(keys, got, srcs)
				for k := range srcs {
					if srcs[k] != SourceMegaflow {
						b.Fatalf("answered by %s", srcs[k])
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/pkt")
		})
	}
}

// BenchmarkCacheLookupSmall measures Cache.LookupBatch where the megaflow
// classifier is small (one megaflow per in_port) and the flows outnumber what the
// exact-match cache holds, as in the datapath's Pipeline/megaflow: most
// keys miss the exact-match cache and hit a megaflow. Two caches in
// front of one table, one as LookupBatch runs on such a classifier (key by
// key, Megaflows.batched) and one forced to look its misses up together,
// take turns, a batch of 32 each, in one loop, so that the machine's load
// touches both alike. It reports each one's ns per packet (medians over
// the rounds) and the median of the rounds' ratios, together/one.
func BenchmarkCacheLookupSmall(b *testing.B) {
	const nflows, batch = 65536, 32
	tbl := newTestTable(mkFlow(0, out(1), dlType(EthTypeIPv4)))
	var caches [2]*Cache // key by key, together
	for i := range caches {
		c, err := NewCache(tbl, DefaultEMCEntries, DefaultEMCInsertInvProb)
		if err != nil {
			b.Fatal(err)
		}
		caches[i] = c
	}
	caches[1].mfs.batchBytes = 0
	keys := benchKeys(nflows)
	got := make([]*Megaflow, batch)
	srcs := make([]Source, batch)
	for _, c := range caches {
		for i := 0; i < nflows; i += batch {
			c.LookupBatch(keys[i:i+batch], got, srcs)
		}
		if c.mfs.Subtables() != 1 || c.mfs.Len() > 4 {
			b.Fatalf("%d megaflows in %d subtables, want one per in_port in one", c.mfs.Len(), c.mfs.Subtables())
		}
	}
	if caches[0].mfs.batched() || !caches[1].mfs.batched() {
		b.Fatal("the caches do not take the paths the benchmark compares")
	}
	nRounds := b.N/(2*batch) + 1
	perRound := [2][]time.Duration{make([]time.Duration, 0, nRounds), make([]time.Duration, 0, nRounds)}
	ratios := make([]float64, 0, nRounds)
	next := 0
	b.ReportAllocs()
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		run := keys[next : next+batch]
		next = (next + batch) % nflows
		var spent [2]time.Duration
		for k := range caches {
			x := (k + round) % 2 // rotate which goes first
			start := time.Now()
			caches[x].LookupBatch(run, got, srcs)
			spent[x] = time.Since(start)
		}
		perRound[0], perRound[1] = append(perRound[0], spent[0]), append(perRound[1], spent[1])
		ratios = append(ratios, float64(spent[1])/float64(spent[0]))
		done += 2 * batch
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
	b.ReportMetric(float64(medianOf(perRound[0]))/batch, "ns/pkt-one")
	b.ReportMetric(float64(medianOf(perRound[1]))/batch, "ns/pkt-together")
	b.ReportMetric(medianOf(ratios), "together/one")
}

// medianOf returns the median of v, which it sorts.
func medianOf[T time.Duration | float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}
