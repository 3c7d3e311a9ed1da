package flow

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"
)

const sec = int64(time.Second)

// testMAC returns a unicast, locally administered MAC built from i.
func testMAC(i uint32) [6]byte {
	m := [6]byte{0x02}
	binary.BigEndian.PutUint32(m[2:], i)
	return m
}

// l2Key is a key with just what Normal reads.
func l2Key(src, dst [6]byte, inPort uint32, vid uint16) *Key {
	k := &Key{DlSrc: src, DlDst: dst, InPort: inPort}
	if vid != 0 {
		k.VLANs[0] = VLAN{TPID: EthTypeVLAN, TCI: VLANPresent | vid}
	}
	return k
}

func TestMACTableNormal(t *testing.T) {
	a, b, c := testMAC(1), testMAC(2), testMAC(3)
	bcast := [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcast := [6]byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}
	type step struct {
		src, dst [6]byte
		inPort   uint32
		vid      uint16
		at       int64
		wantPort uint32
	}
	tests := []struct {
		name      string
		steps     []step
		wantLen   int
		wantStats MACStats
	}{
		{"unknown destination floods, reply is unicast", []step{
			{a, b, 1, 0, 0, PortFlood},
			{b, a, 2, 0, 0, 1},
			{a, b, 1, 0, 0, 2},
		}, 2, MACStats{Learned: 2}},
		{"broadcast and multicast destinations flood", []step{
			{b, a, 2, 0, 0, PortFlood},
			{a, bcast, 1, 0, 0, PortFlood},
			{a, mcast, 1, 0, 0, PortFlood},
		}, 2, MACStats{Learned: 2}},
		{"multicast source is not learned", []step{
			{mcast, a, 1, 0, 0, PortFlood},
			{a, mcast, 2, 0, 0, PortFlood},
		}, 1, MACStats{Learned: 1}},
		{"destination on the input port is dropped", []step{
			{a, c, 1, 0, 0, PortFlood},
			{b, a, 1, 0, 0, PortNone},
		}, 2, MACStats{Learned: 2}},
		{"a MAC that moves follows its port", []step{
			{a, c, 1, 0, 0, PortFlood},
			{b, a, 2, 0, 0, 1},
			{a, c, 4, 0, 0, PortFlood},
			{b, a, 2, 0, 0, 4},
		}, 2, MACStats{Learned: 2, Moved: 1}},
		{"VLANs are separate tables", []step{
			{a, c, 1, 10, 0, PortFlood},
			{b, a, 2, 10, 0, 1},
			{b, a, 2, 20, 0, PortFlood},
			{b, a, 2, 0, 0, PortFlood},
		}, 4, MACStats{Learned: 4}},
		{"entries expire after the aging time", []step{
			{a, c, 1, 0, 0, PortFlood},
			{b, a, 2, 0, 299 * sec, 1},
			{b, a, 2, 0, 300 * sec, PortFlood},
		}, 1, MACStats{Learned: 2}},
		{"seeing a MAC again refreshes it", []step{
			{a, c, 1, 0, 0, PortFlood},
			{a, c, 1, 0, 200 * sec, PortFlood},
			{b, a, 2, 0, 450 * sec, 1},
		}, 2, MACStats{Learned: 2}},
		{"a clock slightly behind the entry's does not expire it", []step{
			{a, c, 1, 0, 10*sec + sec/2, PortFlood},
			{b, a, 2, 0, 9 * sec, 1},
		}, 2, MACStats{Learned: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewMACTable(0, 0)
			var last int64
			for i, s := range tt.steps {
				if got := tab.Normal(l2Key(s.src, s.dst, s.inPort, s.vid), s.at); got != s.wantPort {
					t.Fatalf("step %d: Normal = %#x, want %#x", i, got, s.wantPort)
				}
				last = s.at
			}
			if got := tab.Len(last); got != tt.wantLen {
				t.Errorf("Len = %d, want %d", got, tt.wantLen)
			}
			if got := tab.Stats(); got != tt.wantStats {
				t.Errorf("Stats = %+v, want %+v", got, tt.wantStats)
			}
		})
	}
}

func TestMACTableDefaultsAndAging(t *testing.T) {
	tab := NewMACTable(0, 0)
	if tab.Cap() != DefaultMACTableSize || tab.Aging() != DefaultMACAging {
		t.Errorf("defaults: cap %d aging %v, want %d %v", tab.Cap(), tab.Aging(), DefaultMACTableSize, DefaultMACAging)
	}
	tab = NewMACTable(1000, 15*time.Second)
	if tab.Cap() != 1024 || tab.Aging() != 15*time.Second {
		t.Errorf("cap %d aging %v, want 1024 15s", tab.Cap(), tab.Aging())
	}
	tab.Learn(testMAC(1), 0, 7, 100*sec)
	for _, tt := range []struct {
		at     int64
		wantOK bool
	}{{100 * sec, true}, {114 * sec, true}, {115 * sec, false}, {1000 * sec, false}} {
		if _, ok := tab.Lookup(testMAC(1), 0, tt.at); ok != tt.wantOK {
			t.Errorf("Lookup at %ds: found %v, want %v", tt.at/sec, ok, tt.wantOK)
		}
	}
	// An expired slot is reused.
	tab.Learn(testMAC(1), 0, 8, 1000*sec)
	if p, ok := tab.Lookup(testMAC(1), 0, 1000*sec); !ok || p != 8 || tab.Len(1000*sec) != 1 {
		t.Errorf("relearn after expiry: port %d found %v len %d", p, ok, tab.Len(1000*sec))
	}
}

func TestMACTableCapacity(t *testing.T) {
	t.Run("never more entries than slots", func(t *testing.T) {
		tab := NewMACTable(64, 0)
		const n = 1000
		for i := range uint32(n) {
			tab.Learn(testMAC(i), 0, i%16+1, int64(i)*sec/100)
		}
		now := int64(n) * sec / 100
		st := tab.Stats()
		if got := tab.Len(now); got > tab.Cap() || got != int(st.Learned-st.Evicted) {
			t.Errorf("Len %d, cap %d, stats %+v", got, tab.Cap(), st)
		}
		if st.Learned != n || st.Evicted == 0 {
			t.Errorf("stats %+v, want %d learned and some evicted", st, n)
		}
		// The most recent address is always there.
		if p, ok := tab.Lookup(testMAC(n-1), 0, now); !ok || p != (n-1)%16+1 {
			t.Errorf("last learned MAC: port %d found %v", p, ok)
		}
	})
	t.Run("a full window evicts its oldest entry", func(t *testing.T) {
		tab := NewMACTable(macProbe, 0) // the window is the whole table
		for i := range uint32(macProbe) {
			tab.Learn(testMAC(i), 0, 1, int64(i)*sec)
		}
		tab.Learn(testMAC(0), 0, 1, 20*sec) // refresh the oldest: 1 is now the oldest
		tab.Learn(testMAC(100), 0, 2, 21*sec)
		if _, ok := tab.Lookup(testMAC(1), 0, 21*sec); ok {
			t.Error("oldest entry survived eviction")
		}
		for _, i := range []uint32{0, 2, macProbe - 1, 100} {
			if _, ok := tab.Lookup(testMAC(i), 0, 21*sec); !ok {
				t.Errorf("MAC %d evicted", i)
			}
		}
		if st := tab.Stats(); st.Evicted != 1 || tab.Len(21*sec) != macProbe {
			t.Errorf("stats %+v len %d", st, tab.Len(21*sec))
		}
	})
}

func TestMACTableFlushAndIterate(t *testing.T) {
	tab := NewMACTable(256, 0)
	tab.Learn(testMAC(1), 0, 1, 10*sec)
	tab.Learn(testMAC(2), 5, 2, 12*sec)
	tab.Learn(testMAC(3), 5, 1, 13*sec)

	got := map[[6]byte]MACEntry{}
	for e := range tab.All(15 * sec) {
		got[e.MAC] = e
	}
	want := map[[6]byte]MACEntry{
		testMAC(1): {MAC: testMAC(1), VLAN: 0, Port: 1, Age: 5 * time.Second},
		testMAC(2): {MAC: testMAC(2), VLAN: 5, Port: 2, Age: 3 * time.Second},
		testMAC(3): {MAC: testMAC(3), VLAN: 5, Port: 1, Age: 2 * time.Second},
	}
	if len(got) != len(want) {
		t.Fatalf("All: %+v, want %+v", got, want)
	}
	for m, w := range want {
		if got[m] != w {
			t.Errorf("All: entry %+v, want %+v", got[m], w)
		}
	}
	for range tab.All(15 * sec) {
		break // stopping early must not panic
	}

	if n := tab.FlushPort(1); n != 2 {
		t.Errorf("FlushPort(1) removed %d, want 2", n)
	}
	if _, ok := tab.Lookup(testMAC(1), 0, 15*sec); ok {
		t.Error("MAC on flushed port still found")
	}
	if p, ok := tab.Lookup(testMAC(2), 5, 15*sec); !ok || p != 2 {
		t.Errorf("MAC on another port: port %d found %v", p, ok)
	}

	tab.Flush()
	if n := tab.Len(15 * sec); n != 0 {
		t.Errorf("Len after Flush = %d", n)
	}
	tab.Learn(testMAC(2), 5, 3, 16*sec)
	if p, ok := tab.Lookup(testMAC(2), 5, 16*sec); !ok || p != 3 || tab.Len(16*sec) != 1 {
		t.Errorf("learning after Flush: port %d found %v", p, ok)
	}
}

// TestMACTableConcurrent has several goroutines learn and look up
// overlapping addresses in a table far too small for them, so that entries
// are evicted and rewritten all the time, while another goroutine flushes
// and iterates. MAC i is only ever learned on port i+1, so a lookup that
// returns another port read a torn entry.
func TestMACTableConcurrent(t *testing.T) {
	tab := NewMACTable(macProbe, 0)
	const workers, iters, macs = 4, 50000, 3 * macProbe
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range iters {
				i := uint32(n*7+w*13) % macs
				j := uint32(n*11+w*3) % macs
				// Every packet is a new second, so every learning writes.
				got := tab.Normal(l2Key(testMAC(i), testMAC(j), i+1, 0), int64(n)*sec)
				if got != PortFlood && got != PortNone && got != j+1 {
					errs <- fmt.Sprintf("MAC %d looked up on port %d; it is only learned on %d", j, got, j+1)
					return
				}
			}
		}()
	}
	var ctl sync.WaitGroup
	ctl.Add(1)
	go func() {
		defer ctl.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
			for e := range tab.All(0) {
				if e.Port != binary.BigEndian.Uint32(e.MAC[2:])+1 {
					errs <- fmt.Sprintf("All: torn entry %+v", e)
					return
				}
			}
			if n%10 == 0 {
				tab.FlushPort(3)
				tab.Flush()
			}
		}
	}()
	wg.Wait()
	close(stop)
	ctl.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestMACTableAllocs(t *testing.T) {
	tab := NewMACTable(0, 0)
	k1 := l2Key(testMAC(1), testMAC(2), 1, 0)
	k2 := l2Key(testMAC(2), testMAC(1), 2, 0)
	n := int64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		n += sec
		tab.Normal(k1, n)
		tab.Normal(k2, n)
		tab.Learn(testMAC(uint32(n/sec)), 0, 3, n) // new entries, evictions
	})
	if allocs != 0 {
		t.Errorf("Normal/Learn allocate %v times, want 0", allocs)
	}
}

func BenchmarkMACTableNormal(b *testing.B) {
	tab := NewMACTable(0, 0)
	const hosts = 1024
	keys := make([]*Key, hosts)
	for i := range keys {
		keys[i] = l2Key(testMAC(uint32(i)), testMAC(uint32((i+1)%hosts)), uint32(i%8+1), 0)
		tab.Normal(keys[i], 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tab.Normal(keys[i%hosts], sec)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// TestMACTableStatic checks fdb/add's entries: they never age, learning
// does not move them, eviction passes them by, Flush keeps them, and
// DeleteStatic removes them (and only them) one by one.
func TestMACTableStatic(t *testing.T) {
	tab := NewMACTable(macProbe, 10*time.Second) // the window is the whole table
	if _, replaced, ok := tab.AddStatic(testMAC(1), 5, 3, 1*sec); !ok || replaced {
		t.Fatalf("AddStatic into an empty table: replaced %v, ok %v", replaced, ok)
	}
	// Learning the address on another port does not move it; it is found
	// long after the aging time.
	tab.Learn(testMAC(1), 5, 9, 2*sec)
	if p, ok := tab.Lookup(testMAC(1), 5, 1000*sec); !ok || p != 3 {
		t.Errorf("static entry after learning elsewhere, 1000 s later: port %d found %v, want 3", p, ok)
	}
	if st := tab.Stats(); st.Learned != 1 || st.Moved != 0 {
		t.Errorf("stats %+v, want 1 learned (the static entry), none moved", st)
	}
	var got []MACEntry
	for e := range tab.All(1000 * sec) {
		got = append(got, e)
	}
	if want := (MACEntry{MAC: testMAC(1), VLAN: 5, Port: 3, Static: true}); len(got) != 1 || got[0] != want {
		t.Errorf("All: %+v, want [%+v]", got, want)
	}
	// A static entry again, elsewhere, replaces it and says what it was.
	if old, replaced, ok := tab.AddStatic(testMAC(1), 5, 4, 1000*sec); !ok || !replaced || old != (MACEntry{MAC: testMAC(1), VLAN: 5, Port: 3, Static: true}) {
		t.Errorf("AddStatic over a static entry: old %+v, replaced %v, ok %v", old, replaced, ok)
	}
	// A learned entry becomes static, on the port given.
	tab.Learn(testMAC(2), 0, 4, 1000*sec)
	if old, replaced, ok := tab.AddStatic(testMAC(2), 0, 6, 1002*sec); !ok || !replaced || old != (MACEntry{MAC: testMAC(2), Port: 4, Age: 2 * time.Second}) {
		t.Fatalf("AddStatic over a learned entry: old %+v, replaced %v, ok %v", old, replaced, ok)
	}
	if p, ok := tab.Lookup(testMAC(2), 0, 5000*sec); !ok || p != 6 {
		t.Errorf("learned entry made static: port %d found %v, want 6", p, ok)
	}
	// Flush forgets learned entries only.
	tab.Learn(testMAC(3), 0, 1, 5000*sec)
	tab.Flush()
	if n := tab.Len(5000 * sec); n != 2 {
		t.Errorf("Len after Flush = %d, want the 2 static entries", n)
	}
	// A window full of static entries refuses another one, and learning
	// finds no slot to evict.
	for i := uint32(3); tab.Len(5000*sec) < macProbe; i++ {
		if _, _, ok := tab.AddStatic(testMAC(i), 0, 1, 5000*sec); !ok {
			t.Fatalf("AddStatic %d of %d failed", tab.Len(5000*sec)+1, macProbe)
		}
	}
	if _, _, ok := tab.AddStatic(testMAC(1000), 0, 1, 5000*sec); ok {
		t.Error("AddStatic into a window of static entries succeeded")
	}
	tab.Learn(testMAC(1001), 0, 1, 5000*sec)
	if _, ok := tab.Lookup(testMAC(1001), 0, 5000*sec); ok {
		t.Error("learning evicted a static entry")
	}
	// DeleteStatic removes a static entry, once; not a learned one.
	if !tab.DeleteStatic(testMAC(1), 5) || tab.DeleteStatic(testMAC(1), 5) {
		t.Error("DeleteStatic of a static entry: want true, then false")
	}
	tab.Learn(testMAC(1002), 0, 2, 5000*sec)
	if tab.DeleteStatic(testMAC(1002), 0) {
		t.Error("DeleteStatic deleted a learned entry")
	}
	// FlushPort removes static entries of the port too.
	if n := tab.FlushPort(6); n != 1 {
		t.Errorf("FlushPort(6) removed %d, want the static entry on it", n)
	}
}
