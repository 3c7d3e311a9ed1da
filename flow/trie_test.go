package flow

import (
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

type testPrefix struct {
	v    uint32
	plen uint8
}

// refTrieLookup is trieNode.lookup by brute force over the prefixes held.
func refTrieLookup(ps []testPrefix, v uint32) (maskbits uint8, plens uint32) {
	lcp := func(p testPrefix) uint8 { return uint8(bits.LeadingZeros32(v ^ p.v)) }
	var d uint8
	for _, p := range ps {
		d = max(d, min(lcp(p), p.plen))
		if lcp(p) >= p.plen {
			plens |= 1 << (p.plen - 1)
		}
	}
	if d == 32 {
		return 32, plens
	}
	for _, p := range ps {
		if p.plen > d && lcp(p) >= d {
			return d + 1, plens // a longer prefix branches off at bit d
		}
	}
	return d, plens
}

// TestTrieAgainstBruteForce inserts and removes random prefixes and checks
// every lookup against a brute-force answer, and that older tries are
// not changed by later inserts and removes.
func TestTrieAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for round := range 200 {
		var root *trieNode
		var held []testPrefix
		// Values near each other, so that prefixes share paths.
		base := rng.Uint32()
		value := func() uint32 { return base ^ rng.Uint32()>>uint(rng.IntN(33)) }
		type version struct {
			root *trieNode
			held []testPrefix
		}
		var versions []version
		for range 1 + rng.IntN(30) {
			if len(held) > 0 && rng.IntN(3) == 0 {
				i := rng.IntN(len(held))
				root = trieRemove(root, held[i].v, held[i].plen)
				held = append(held[:i:i], held[i+1:]...)
			} else {
				p := testPrefix{plen: uint8(1 + rng.IntN(32))}
				p.v = value() & prefixMask32(p.plen)
				root = trieInsert(root, p.v, p.plen)
				held = append(held, p)
			}
			versions = append(versions, version{root, held})
		}
		for _, ver := range versions {
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
		for _, p := range held {
			root = trieRemove(root, p.v, p.plen)
		}
		if root != nil {
			t.Fatalf("round %d: a trie emptied by removes is not nil", round)
		}
	}
}

func TestPrefixLen32(t *testing.T) {
	for _, tt := range []struct {
		m    uint32
		want uint8
	}{{0, 0}, {0x80000000, 1}, {0xffffff00, 24}, {0xffffffff, 32}, {0xff00ff00, 0}, {0x00ff0000, 0}} {
		if got := prefixLen32(tt.m); got != tt.want {
			t.Errorf("prefixLen32(%#08x) = %d, want %d", tt.m, got, tt.want)
		}
	}
}

// TestTableTriesFollowRules checks that a table's prefix tries hold
// exactly the prefixes of its rules after adds, replacements, deletes and
// expiry.
func TestTableTriesFollowRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	tbl := NewTable()
	start := time.Unix(1000, 0)
	tbl.now = func() time.Time { return start }
	var pool []Flow
	for i := range 60 {
		f := mkFlow(uint16(rng.IntN(3)), out(1), dlType(EthTypeIPv4), nwDst(0x0a000000|rng.Uint32()&0xffff, 8+rng.IntN(25)))
		if rng.IntN(2) == 0 {
			nwSrc(0xc0a80000|rng.Uint32()&0xff, 16+rng.IntN(17))(&f)
		}
		f.Table = uint8(rng.IntN(2))
		if i%5 == 0 {
			f.HardTimeout = 10
		}
		pool = append(pool, f)
	}
	for step := range 300 {
		f := pool[rng.IntN(len(pool))]
		switch rng.IntN(4) {
		case 0, 1:
			tbl.Add(&f)
		case 2:
			tbl.Delete(&f, rng.IntN(2) == 0)
		case 3:
			if step%50 == 0 {
				tbl.Expire(start.Add(time.Minute))
			}
		}
		var want [MaxTable + 1][numTries]*trieNode
		for _, r := range tbl.Dump(nil) {
			rulePrefixes(r, func(j int, v uint32, plen uint8) {
				want[r.Table][j] = trieInsert(want[r.Table][j], v, plen)
			})
		}
		s := tbl.Snapshot()
		for table := range 2 {
			for j := range numTries {
				for range 20 {
					v := 0x0a000000 | rng.Uint32()&0xffff
					if j == trieNwSrc {
						v = 0xc0a80000 | rng.Uint32()&0xff
					}
					gb, gp := s.trie(table, j).lookup(v)
					wb, wp := want[table][j].lookup(v)
					if gb != wb || gp != wp {
						t.Fatalf("step %d: table %d trie %d lookup %#08x: %d %#x, want %d %#x", step, table, j, v, gb, gp, wb, wp)
					}
				}
			}
		}
	}
}

// TestDeleteGroupsRemovesPrefixes checks that del-groups takes the
// prefixes of the flows it deletes out of the tries: a prefix left behind
// makes megaflows narrower than the remaining flows call for. The tries
// and the masks must be those of a table built from the remaining flows
// alone, and a prefix that a remaining flow also has must stay.
func TestDeleteGroupsRemovesPrefixes(t *testing.T) {
	groups := []string{"group_id=1,type=all,bucket=output:2", "group_id=2,type=all,bucket=output:5"}
	remaining := []string{
		"priority=7,ip,nw_src=192.168.1.0/24,actions=output:4",
		"priority=6,ip,nw_src=172.16.0.0/12,actions=group:2",
		"priority=6,ip,nw_dst=10.1.2.0/24,actions=output:7",
		"priority=5,ip,nw_dst=10.0.0.0/8,actions=output:3",
	}
	tb := groupTable(t, groups, append([]string{
		"priority=10,ip,nw_dst=10.1.2.0/24,actions=group:1",
		"priority=9,ip,nw_dst=10.1.128.0/17,actions=output:6,group:1",
		"priority=9,ip,nw_dst=10.200.0.0/26,actions=group:1",
		"priority=8,ip,nw_src=192.168.1.0/24,actions=group:1",
	}, remaining...)...)
	if n, removed := tb.DeleteGroups(1); n != 1 || len(removed) != 4 {
		t.Fatalf("DeleteGroups: %d groups, %d flows; want 1 and 4", n, len(removed))
	}
	fresh := groupTable(t, groups, remaining...)
	got, want := tb.Snapshot(), fresh.Snapshot()
	for j := range numTries {
		for _, v := range []uint32{0x0a010203, 0x0a010909, 0x0a018001, 0x0ac80001, 0xc0a80101, 0xc0a80201, 0xac100001, 0x0b000001} {
			gb, gp := got.trie(0, j).lookup(v)
			wb, wp := want.trie(0, j).lookup(v)
			if gb != wb || gp != wp {
				t.Errorf("trie %d lookup %#08x: %d %#x, want %d %#x (as the remaining flows give)", j, v, gb, gp, wb, wp)
			}
		}
	}
	for _, s := range []string{
		"in_port=1,ip,nw_src=1.1.1.1,nw_dst=10.200.0.1",
		"in_port=1,ip,nw_src=1.1.1.1,nw_dst=10.1.9.9",
		"in_port=1,ip,nw_src=1.1.1.1,nw_dst=10.1.2.3",
		"in_port=1,ip,nw_src=1.1.1.1,nw_dst=10.1.200.1",
		"in_port=1,ip,nw_src=192.168.1.9,nw_dst=10.1.2.3",
		"in_port=1,ip,nw_src=192.168.2.9,nw_dst=10.1.2.3",
	} {
		k := mustMicroflow(t, s)
		g, w := got.Translate(&k, false), want.Translate(&k, false)
		if !slices.Equal(g.Actions, w.Actions) || g.Mask != w.Mask {
			gm, wm := Match{Key: k, Mask: g.Mask}, Match{Key: k, Mask: w.Mask}
			t.Errorf("%s: %s, megaflow %s; want %s, megaflow %s", s,
				FormatActions(g.Actions), FormatMatch(&gm, 0), FormatActions(w.Actions), FormatMatch(&wm, 0))
		}
	}
	// The mask itself: 10.200.0.1 misses the /24 flow on its first 9
	// bits, and the deleted /26 must not make it look at 24.
	k := mustMicroflow(t, "in_port=1,ip,nw_src=1.1.1.1,nw_dst=10.200.0.1")
	if m := got.Translate(&k, false).Mask.NwDst; m != 0xff800000 {
		t.Errorf("10.200.0.1: nw_dst mask %#08x, want 0xff800000", m)
	}
}

// trie returns table tb's prefix trie j in s (nil when the table has no
// rules).
func (s *TableSnapshot) trie(tb, j int) *trieNode {
	if v := s.tables.at(tb); v != nil {
		return v.tries[j]
	}
	return nil
}
