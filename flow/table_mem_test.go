package flow

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ovsxdp/ovsxdp/bench/rules/ovnrules"
)

// parseOVNRules parses n of bench/rules' OVN-like rules.
func parseOVNRules(tb testing.TB, n int) []Flow {
	tb.Helper()
	var p Parser
	fs := make([]Flow, 0, n)
	for i := range n {
		f, err := p.ParseFlow(strings.TrimSpace(ovnrules.Rule(i)), CmdAdd)
		if err != nil {
			tb.Fatalf("rule %d %q: %v", i, ovnrules.Rule(i), err)
		}
		fs = append(fs, *f)
	}
	return fs
}

// BenchmarkTable100kRules adds 100,000 OVN-like rules to an empty table
// (as add-flows does, in one call) and reports the time per rule of the
// add (wall and CPU time), and the heap the table keeps per rule once the parsed flows are
// gone: B/rule is the growth of the heap's in-use spans (what the
// process's resident memory follows), heap-B/rule that of its live
// objects. Run with -memprofile to see where it goes.
func BenchmarkTable100kRules(b *testing.B) {
	const n = 100000
	b.ReportAllocs()
	var inuse, live, took, cpu float64
	for b.Loop() {
		b.StopTimer()
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		fs := parseOVNRules(b, n)
		runtime.GC() // the parser's garbage is not the add's
		start, cpu0 := time.Now(), cpuTime(b)
		b.StartTimer()
		t := NewTable()
		if err := t.AddFlows(fs); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		took += float64(time.Since(start).Nanoseconds())
		cpu += float64(cpuTime(b) - cpu0)
		if t.Len() != n {
			b.Fatalf("table holds %d rules, want %d", t.Len(), n)
		}
		fs = nil
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		inuse = float64(int64(after.HeapInuse) - int64(before.HeapInuse))
		live = float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
		runtime.KeepAlive(t)
		b.StartTimer()
	}
	b.ReportMetric(took/float64(b.N)/n, "ns/rule")
	b.ReportMetric(cpu/float64(b.N)/n, "cpu-ns/rule")
	b.ReportMetric(inuse/n, "B/rule")
	b.ReportMetric(live/n, "heap-B/rule")
}

// maxBytesPerRule bounds the heap that the table keeps per OVN-like rule
// (TestTableBytesPerRule). The rule, its counters, its key words, its
// share of the action lists and of the indexes come to about 390 bytes;
// a rule that held its match as two whole keys took 900 (742 when the key
// was 24 words). The bound leaves room for the action lists and the
// indexes to grow, and fails if a rule holds a whole key again.
const maxBytesPerRule = 600

// TestTableBytesPerRule adds 50,000 OVN-like rules to a table and checks
// the heap that the table keeps for them, counted by the runtime's live
// heap once the parsed flows are gone, against maxBytesPerRule. It counts
// bytes, not time, so the machine's load does not change it.
func TestTableBytesPerRule(t *testing.T) {
	if unsafe.Sizeof(Rule{}) >= unsafe.Sizeof(Key{}) {
		t.Errorf("a Rule is %d bytes, a Key %d: a rule holds its match compactly, not as a whole key",
			unsafe.Sizeof(Rule{}), unsafe.Sizeof(Key{}))
	}
	const n = 50000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fs := parseOVNRules(t, n)
	tb := NewTable()
	if err := tb.AddFlows(fs); err != nil {
		t.Fatal(err)
	}
	fs = nil
	runtime.GC()
	runtime.ReadMemStats(&after)
	if tb.Len() != n {
		t.Fatalf("table holds %d rules, want %d", tb.Len(), n)
	}
	perRule := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d heap bytes per rule (bound %d)", perRule, maxBytesPerRule)
	if perRule > maxBytesPerRule {
		t.Errorf("the table keeps %d heap bytes per rule, more than %d", perRule, maxBytesPerRule)
	}
	runtime.KeepAlive(tb)
}

// BenchmarkTableExpire100kRules measures an Expire (the daemon runs one a
// second) over 100,000 OVN-like rules, none of which has a timeout.
func BenchmarkTableExpire100kRules(b *testing.B) {
	t := NewTable()
	if err := t.AddFlows(parseOVNRules(b, 100000)); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if got := t.Expire(now); len(got) != 0 {
			b.Fatalf("%d rules expired, want none", len(got))
		}
	}
}

// cpuTime returns the CPU time the process has used, user and system, in
// nanoseconds: the add's cost including the garbage collector's, less
// dependent than wall time on what else the machine runs.
func cpuTime(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// TestTableCollidingRuleKeys runs add, replace, mod-flows and del-flows
// with every rule key hashing alike, so that every probe of the group's
// rule set meets rules of other keys and deleted markers, and checks the
// table by lookups and dumps.
func TestTableCollidingRuleKeys(t *testing.T) {
	saved := ruleKeyHash
	ruleKeyHash = func([]uint64, uint16) uint64 { return 7 }
	t.Cleanup(func() { ruleKeyHash = saved })

	tb := NewTable()
	const n = 20 // more than a small subtable holds
	var fs []Flow
	for p := uint32(1); p <= n; p++ {
		fs = append(fs, mkFlow(100, out(p), inPort(p)))
	}
	if err := tb.AddFlows(fs); err != nil {
		t.Fatal(err)
	}
	// Replace in_port=3's rule; mod-flows in_port=4's; delete in_port=5's.
	if err := tb.Add(&Flow{Priority: 100, Actions: out(33), Match: fs[2].Match}); err != nil {
		t.Fatal(err)
	}
	mod := mkFlow(100, out(44), inPort(4))
	if n, _ := tb.Modify(&mod, true); n != 1 {
		t.Fatalf("mod-flows --strict in_port=4 changed %d rules, want 1", n)
	}
	del := mkFlow(100, nil, inPort(5))
	if got := tb.Delete(&del, true); len(got) != 1 || got[0].Match().Key.InPort != 5 {
		t.Fatalf("del-flows --strict in_port=5 removed %v, want the in_port=5 rule", got)
	}
	if tb.Len() != n-1 {
		t.Fatalf("table holds %d rules, want %d", tb.Len(), n-1)
	}
	s := tb.Snapshot()
	for p := uint32(1); p <= n; p++ {
		want := p
		switch p {
		case 3:
			want = 33
		case 4:
			want = 44
		}
		k := Key{InPort: p}
		r := s.Lookup(&k, nil)
		if p == 5 {
			if r != nil {
				t.Errorf("in_port=5 finds %v after its rule was deleted", r.Actions)
			}
			continue
		}
		if r == nil || len(r.Actions) != 1 || r.Actions[0].Port != want {
			t.Errorf("in_port=%d: rule %v, want output:%d", p, r, want)
		}
	}
	if got := len(tb.Dump(nil)); got != n-1 {
		t.Errorf("dump-flows lists %d rules, want %d", got, n-1)
	}
	all := mkFlow(0, nil)
	all.Table = TableAll
	if got := len(tb.Delete(&all, false)); got != n-1 || tb.Len() != 0 {
		t.Errorf("del-flows removed %d rules and left %d, want %d and 0", got, tb.Len(), n-1)
	}
}

// TestActionPoolShares checks that equal action lists share one copy that
// an append cannot change, that different lists do not, and that lists no
// rule holds any more leave the pool.
func TestActionPoolShares(t *testing.T) {
	var p actionPool
	a := p.share([]Action{{Type: ActResubmit, Table: 9}})
	b := p.share([]Action{{Type: ActResubmit, Table: 9}})
	c := p.share([]Action{{Type: ActResubmit, Table: 10}})
	if &a[0] != &b[0] {
		t.Errorf("equal lists are two copies")
	}
	if &a[0] == &c[0] || c[0].Table != 10 {
		t.Errorf("different lists share a copy: %v", c)
	}
	if cap(a) != len(a) {
		t.Errorf("a shared list has capacity %d beyond its length %d", cap(a), len(a))
	}
	if got := p.share(nil); got != nil {
		t.Errorf("share(nil) = %v, want nil", got)
	}
	runtime.KeepAlive(b)
	runtime.KeepAlive(c)

	// Lists nobody holds are collected and pruned.
	for i := range 3 * minPrune {
		p.share([]Action{{Type: ActOutput, Port: uint32(i)}})
		if i%minPrune == 0 {
			runtime.GC()
		}
	}
	runtime.GC()
	p.pruneDead()
	if p.n > minPrune {
		t.Errorf("the pool keeps %d lists after the rules that held them are gone", p.n)
	}
}

// TestTableSharesActions checks that rules added with equal action lists
// share them and that mod-flows gives one rule its own list without
// changing the others'.
func TestTableSharesActions(t *testing.T) {
	tb := NewTable()
	var fs []Flow
	for p := uint32(1); p <= 3; p++ {
		fs = append(fs, mkFlow(100, out(7), inPort(p)))
	}
	if err := tb.AddFlows(fs); err != nil {
		t.Fatal(err)
	}
	rs := tb.Dump(nil)
	if &rs[0].Actions[0] != &rs[1].Actions[0] || &rs[1].Actions[0] != &rs[2].Actions[0] {
		t.Errorf("three rules with output:7 keep separate copies")
	}
	mod := mkFlow(100, out(8), inPort(2))
	tb.Modify(&mod, true)
	for _, r := range tb.Dump(nil) {
		want := uint32(7)
		if r.Match().Key.InPort == 2 {
			want = 8
		}
		if r.Actions[0].Port != want {
			t.Errorf("in_port=%d: output:%d, want output:%d", r.Match().Key.InPort, r.Actions[0].Port, want)
		}
	}
}

// TestTrieBatchesKeepPublishedTries inserts prefixes in batches
// (trieInsertIn) and removes some between them, and checks that every
// trie published at the end of a batch still answers for exactly its
// prefixes after the later batches changed their own nodes in place.
func TestTrieBatchesKeepPublishedTries(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for round := range 100 {
		var root *trieNode
		var held []testPrefix
		base := rng.Uint32()
		value := func() uint32 { return base ^ rng.Uint32()>>uint(rng.IntN(33)) }
		type version struct {
			root *trieNode
			held []testPrefix
		}
		var published []version
		gen := newTrieGen()
		for range 1 + rng.IntN(60) {
			switch {
			case rng.IntN(5) == 0: // publish; a new batch starts
				published = append(published, version{root, slices.Clone(held)})
				gen = newTrieGen()
			case len(held) > 0 && rng.IntN(4) == 0:
				i := rng.IntN(len(held))
				root = trieRemove(root, held[i].v, held[i].plen)
				held = append(held[:i:i], held[i+1:]...)
			default:
				p := testPrefix{plen: uint8(1 + rng.IntN(32))}
				p.v = value() & prefixMask32(p.plen)
				root = trieInsertIn(root, p.v, p.plen, gen)
				held = append(held, p)
			}
		}
		published = append(published, version{root, held})
		for _, ver := range published {
			for range 20 {
				v := value()
				gotBits, gotPlens := ver.root.lookup(v)
				wantBits, wantPlens := refTrieLookup(ver.held, v)
				if gotBits != wantBits || gotPlens != wantPlens {
					t.Fatalf("round %d: lookup %#08x in %v: maskbits %d plens %#x, want %d %#x",
						round, v, ver.held, gotBits, gotPlens, wantBits, wantPlens)
				}
			}
		}
	}
}

// TestRuleSetAgainstMap runs random puts, replacements and deletes, with
// well-spread and with badly colliding hashes, on a ruleSet and on a Go
// map, and checks that they agree on every key after each step and on
// the rules a loop yields, also when the loop deletes some.
func TestRuleSetAgainstMap(t *testing.T) {
	for _, collide := range []bool{false, true} {
		if collide {
			saved := ruleKeyHash
			ruleKeyHash = func(vals []uint64, priority uint16) uint64 {
				return saved(vals, priority) & 0xc000000000000003
			}
			t.Cleanup(func() { ruleKeyHash = saved })
		}
		mask := Key{InPort: ^uint32(0)}
		rm := newRuleMask(&mask)
		var s ruleSet
		type ruleKey struct {
			inPort   uint32
			priority uint16
		}
		ref := map[ruleKey]*Rule{}
		rng := rand.New(rand.NewPCG(1, 2))
		keyOf := func() ruleKey {
			return ruleKey{inPort: uint32(rng.IntN(64)), priority: uint16(rng.IntN(3))}
		}
		valsOf := func(rk ruleKey) []uint64 {
			k := Key{InPort: rk.inPort}
			return ruleVals(&k, rm, nil)
		}
		check := func(step int) {
			t.Helper()
			if s.len() != len(ref) {
				t.Fatalf("collide %v, step %d: %d rules, want %d", collide, step, s.len(), len(ref))
			}
			for p := range 64 {
				for prio := range 3 {
					rk := ruleKey{inPort: uint32(p), priority: uint16(prio)}
					if got := s.get(valsOf(rk), rk.priority); got != ref[rk] {
						t.Fatalf("collide %v, step %d: in_port=%d priority %d: %p, want %p", collide, step, p, prio, got, ref[rk])
					}
				}
			}
		}
		for step := range 2000 {
			rk := keyOf()
			switch rng.IntN(3) {
			case 0, 1:
				r := &Rule{Priority: rk.priority, mask: rm, vals: valsOf(rk)}
				s.put(r)
				ref[rk] = r
			default:
				s.del(valsOf(rk), rk.priority)
				delete(ref, rk)
			}
			check(step)
			if step%500 == 499 {
				// A loop that deletes every other rule it is given.
				n, seen := 0, map[*Rule]bool{}
				for r := range s.values() {
					rk := ruleKey{inPort: r.Match().Key.InPort, priority: r.Priority}
					if seen[r] || ref[rk] != r {
						t.Fatalf("collide %v: the loop yields %p twice or under a wrong key", collide, r)
					}
					seen[r] = true
					if n++; n%2 == 0 {
						s.del(r.vals, r.Priority)
						delete(ref, rk)
					}
				}
				if n != len(seen) || len(seen) < len(ref) {
					t.Fatalf("collide %v: the loop yielded %d rules, %d left", collide, n, len(ref))
				}
				check(step)
			}
		}
	}
}

// TestRuleMatchKey checks that rules have equal MatchKeys exactly when
// they have equal matches, over random matches on a few fields whose
// masks and values often coincide.
func TestRuleMatchKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tb := NewTable()
	var fs []Flow
	for i := range 400 {
		var m Match
		if rng.IntN(2) == 0 {
			m.Mask.InPort, m.Key.InPort = ^uint32(0), uint32(rng.IntN(3))
		}
		if rng.IntN(2) == 0 {
			m.Mask.NwDst = ^uint32(0) << rng.IntN(3)
			m.Key.NwDst = uint32(rng.IntN(4))
			m.Mask.DlType, m.Key.DlType = 0xffff, EthTypeIPv4
		}
		if rng.IntN(3) == 0 {
			m.Mask.Regs[rng.IntN(2)] = uint32(rng.IntN(3))
		}
		fs = append(fs, Flow{Match: m, Priority: uint16(i), Actions: out(1)})
	}
	if err := tb.AddFlows(fs); err != nil {
		t.Fatal(err)
	}
	rs := tb.Dump(nil)
	for _, a := range rs {
		for _, b := range rs {
			if same, keys := a.Match() == b.Match(), a.MatchKey() == b.MatchKey(); same != keys {
				t.Fatalf("%s and %s: same match %v, same MatchKey %v", ruleMatchText(a), ruleMatchText(b), same, keys)
			}
		}
	}
}
