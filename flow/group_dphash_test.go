package flow

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// hashSink runs a packet's datapath actions as a poll thread does: a
// recirculated copy goes through the cache again, at once, and runs the
// actions it gets. It records the outputs and the megaflows each pass
// took.
type hashSink struct {
	c     *Cache
	outs  []uint32
	mfs   []*Megaflow
	depth int
}

func (s *hashSink) Output(port uint32, _ []byte) { s.outs = append(s.outs, port) }

func (s *hashSink) Conntrack([]byte, *Key, *Offsets, *CT, []Action) Verdict {
	return VerdictNoConntrack
}

func (s *hashSink) Recirculate(frame []byte, k *Key, off *Offsets) {
	if s.depth >= 6 {
		return
	}
	s.depth++
	kk := *k
	s.pass(frame, &kk, off)
	s.depth--
}

// pass looks k up in the cache and runs what it finds.
func (s *hashSink) pass(frame []byte, k *Key, off *Offsets) Verdict {
	mf, _ := s.c.Lookup(k)
	s.mfs = append(s.mfs, mf)
	_, v := Execute(frame, k, off, mf.Actions, s)
	if v == VerdictOK {
		v = mf.Verdict
	}
	return v
}

// run sends a packet with key k through the cache and returns its
// outputs and the megaflows its passes took.
func (s *hashSink) run(t *testing.T, k Key) ([]uint32, []*Megaflow) {
	t.Helper()
	s.outs, s.mfs = nil, nil
	var off Offsets
	if v := s.pass(nil, &k, &off); v != VerdictOK {
		t.Fatalf("%s: verdict %v", FormatMicroflow(&k), v)
	}
	return s.outs, s.mfs
}

func newHashSink(t *testing.T, tb *Table) *hashSink {
	t.Helper()
	c, err := NewCache(tb, 1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &hashSink{c: c}
}

// TestDpHashMap checks the bucket of each hash value as Open vSwitch lays
// them out: 16 values at least, a power of two that is at least the total
// weight over the smallest, dealt by Webster's method (weights 1 and 3:
// value 5 is bucket 0's, as ovs-vswitchd 3.1's ofproto/trace of
// dp_hash=0x12345 shows); none past 256 values, for no bucket or no
// weight.
func TestDpHashMap(t *testing.T) {
	for _, tt := range []struct {
		name      string
		inWeights []uint16
		wantLen   int
		wantShare []int // values per bucket
		wantAt    map[int]int
	}{
		{name: "equal", inWeights: []uint16{1, 1}, wantLen: 16, wantShare: []int{8, 8}, wantAt: map[int]int{0: 0, 1: 1, 2: 0}},
		{name: "one to three", inWeights: []uint16{1, 3}, wantLen: 16, wantShare: []int{4, 12}, wantAt: map[int]int{0: 1, 1: 0, 5: 0}},
		{name: "weight 0 never", inWeights: []uint16{0, 100, 300}, wantLen: 16, wantShare: []int{0, 4, 12}},
		{name: "three", inWeights: []uint16{1, 1, 1}, wantLen: 16, wantShare: []int{6, 5, 5}},
		{name: "101 slots", inWeights: []uint16{1, 100}, wantLen: 128, wantShare: []int{1, 127}},
		{name: "256 slots", inWeights: []uint16{1, 255}, wantLen: 256, wantShare: []int{1, 255}},
		{name: "too many", inWeights: []uint16{1, 256}},
		{name: "no weight", inWeights: []uint16{0, 0}},
		{name: "no bucket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bs := make([]Bucket, len(tt.inWeights))
			for i, w := range tt.inWeights {
				bs[i].Weight = w
			}
			m := dpHashMap(bs)
			if len(m) != tt.wantLen {
				t.Fatalf("%d values, want %d", len(m), tt.wantLen)
			}
			share := make([]int, len(bs))
			for _, b := range m {
				share[b]++
			}
			if tt.wantShare != nil && !slices.Equal(share, tt.wantShare) {
				t.Errorf("shares %v, want %v (map %v)", share, tt.wantShare, m)
			}
			for h, b := range tt.wantAt {
				if int(m[h]) != b {
					t.Errorf("value %d: bucket %d, want %d (map %v)", h, m[h], b, m)
				}
			}
		})
	}
}

// dpHashTable is a bridge whose table 0 sends TCP and UDP through a
// dp_hash group of three buckets weighted 0, 1 and 3, from a rule that
// rewrites the TOS first and outputs after it, reached by a resubmit
// that outputs after it too.
func dpHashTable(t *testing.T, param string) *Table {
	return groupTable(t, []string{
		"group_id=1,type=select,selection_method=dp_hash" + param +
			",bucket=bucket_id=0,weight:0,actions=output:1,bucket=bucket_id=1,weight:1,actions=output:2,bucket=bucket_id=2,weight:3,actions=output:3",
	},
		"priority=10,ip,actions=resubmit(,1),output:5",
		"table=1,priority=10,ip,actions=mod_nw_tos:8,group:1,output:6",
	)
}

// connKey is a TCP connection's packet from 10.0.x.y:port to the VIP.
func connKey(t *testing.T, rng *rand.Rand) Key {
	k := mustMicroflow(t, "in_port=4,tcp,nw_dst=172.16.0.10,tp_dst=80")
	k.NwSrc = 0x0a000000 | rng.Uint32N(1<<16)
	k.TpSrc = uint16(1024 + rng.IntN(60000))
	return k
}

// TestDpHashGroupMegaflows checks that a dp_hash group hashes in the
// datapath: thousands of connections take one megaflow that matches no L4
// port nor source address and ends hash(l4(0)),recirc(id), and at most
// 16 recirculated megaflows that match dp_hash under the map's mask; each
// connection keeps its bucket, which is the map's bucket for the low bits
// of its hash; the buckets' shares follow the weights; the actions after
// the group (in its rule and in the resubmit's) run after the bucket.
func TestDpHashGroupMegaflows(t *testing.T) {
	tb := dpHashTable(t, "")
	s := newHashSink(t, tb)
	g := tb.Snapshot().ofGroups[1]
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 3000
	count := map[uint32]int{}
	for range n {
		k := connKey(t, rng)
		outs, mfs := s.run(t, k)
		if len(mfs) != 2 {
			t.Fatalf("%d passes, want 2", len(mfs))
		}
		m0, m1 := mfs[0].Match(), mfs[1].Match()
		if m0.Mask.TpSrc != 0 || m0.Mask.TpDst != 0 || m0.Mask.NwSrc != 0 || m0.Mask.DpHash != 0 {
			t.Fatalf("first pass matches %s", FormatODPMatch(&m0, nil))
		}
		if got := FormatODPActions(mfs[0].Actions); mfs[0].Actions[0].Type != ActSetField || !strings.HasSuffix(got, "hash(l4(0)),recirc(0x1)") {
			t.Fatalf("first pass actions %s", got)
		}
		if m1.Mask.DpHash != 0xf || m1.Mask.TpSrc != 0 || m1.Mask.NwSrc != 0 {
			t.Fatalf("second pass matches %s", FormatODPMatch(&m1, nil))
		}
		want := uint32(1 + g.hashMap[DpHashOf(&k, 0)&0xf]) // buckets output to 1, 2, 3
		if !slices.Equal(outs, []uint32{want, 6, 5}) {
			t.Fatalf("outputs %v, want [%d 6 5]", outs, want)
		}
		// The same connection again, from another MAC: the same bucket.
		k2 := k
		k2.DlSrc[5] ^= 9
		if again, _ := s.run(t, k2); !slices.Equal(again, outs) {
			t.Fatalf("one connection, outputs %v then %v", outs, again)
		}
		count[want]++
	}
	if got := s.c.Megaflows().Len(); got > 1+16 {
		t.Errorf("%d connections took %d megaflows, want at most 17", n, got)
	}
	if count[1] != 0 {
		t.Errorf("the weight-0 bucket took %d connections", count[1])
	}
	// Bucket 1 holds 4 of the 16 values: a quarter of the connections,
	// give or take far more than the hash's spread over 3000.
	if c := count[2]; c < n/4-n/10 || c > n/4+n/10 {
		t.Errorf("the weight-1 bucket took %d of %d connections, want about a quarter (%v)", c, n, count)
	}
}

// TestDpHashGroupSymmetric checks selection_method_param's algorithm 1:
// the datapath action is hash(sym_l4(basis)) and a connection's two
// directions take one bucket.
func TestDpHashGroupSymmetric(t *testing.T) {
	tb := dpHashTable(t, ",selection_method_param=0x100000007")
	s := newHashSink(t, tb)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		k := connKey(t, rng)
		r := k
		r.NwSrc, r.NwDst, r.TpSrc, r.TpDst = k.NwDst, k.NwSrc, k.TpDst, k.TpSrc
		a, mfs := s.run(t, k)
		if got := FormatODPActions(mfs[0].Actions); !strings.Contains(got, "hash(sym_l4(7)),recirc(") {
			t.Fatalf("first pass actions %s", got)
		}
		if b, _ := s.run(t, r); !slices.Equal(a, b) {
			t.Fatalf("one connection: %v one way, %v the other", a, b)
		}
	}
}

// TestDefaultSelectGroupDpHash checks that a select group without a
// selection method whose weights fit a map of 256 values hashes in the
// datapath as Open vSwitch 3.1 does: hash(sym_l4(0)), recirculation, a
// second pass matching dp_hash under the map's mask (16 values for 1, 2
// and 5; 128 for 1 and 100) and no L4 port in either pass, one bucket for
// both directions of a connection; and that weights needing 512 values
// select in the translation.
func TestDefaultSelectGroupDpHash(t *testing.T) {
	tb := groupTable(t, []string{
		"group_id=1,type=select,bucket=weight:1,actions=output:1,bucket=weight:2,actions=output:2,bucket=weight:5,actions=output:3",
		"group_id=2,type=select,bucket=weight:1,actions=output:1,bucket=weight:100,actions=output:2",
		"group_id=3,type=select,bucket=weight:1,actions=output:1,bucket=weight:300,actions=output:2",
	},
		"priority=10,tcp,actions=group:1",
		"priority=10,udp,actions=group:2",
		"priority=10,sctp,actions=group:3",
	)
	s := newHashSink(t, tb)
	rng := rand.New(rand.NewPCG(11, 12))
	for range 200 {
		for _, tt := range []struct {
			proto    uint8
			wantMask uint32
		}{{IPProtoTCP, 0xf}, {IPProtoUDP, 0x7f}} {
			k := connKey(t, rng)
			k.NwProto = tt.proto
			r := k
			r.NwSrc, r.NwDst, r.TpSrc, r.TpDst = k.NwDst, k.NwSrc, k.TpDst, k.TpSrc
			a, mfs := s.run(t, k)
			if len(mfs) != 2 {
				t.Fatalf("%d passes", len(mfs))
			}
			if got := FormatODPActions(mfs[0].Actions); !strings.HasPrefix(got, "hash(sym_l4(0)),recirc(") {
				t.Fatalf("first pass actions %s", got)
			}
			m0, m1 := mfs[0].Match(), mfs[1].Match()
			if m0.Mask.TpSrc|m0.Mask.TpDst|m1.Mask.TpSrc|m1.Mask.TpDst != 0 || m0.Mask.NwSrc != 0 {
				t.Fatalf("passes match %s and %s", FormatODPMatch(&m0, nil), FormatODPMatch(&m1, nil))
			}
			if m1.Mask.DpHash != tt.wantMask {
				t.Fatalf("second pass matches dp_hash under %#x, want %#x", m1.Mask.DpHash, tt.wantMask)
			}
			if b, _ := s.run(t, r); !slices.Equal(a, b) {
				t.Fatalf("one connection: %v one way, %v the other", a, b)
			}
		}
		k := connKey(t, rng)
		k.NwProto = IPProtoSCTP
		tr := tb.Snapshot().Translate(&k, false)
		if slices.ContainsFunc(tr.Actions, func(a Action) bool { return a.Type == ActHash || a.Type == ActRecirc }) || tr.Mask.TpSrc != 0xffff {
			t.Fatalf("a group of 301 slots: %s, want the default selection", FormatODPActions(tr.Actions))
		}
	}
}

// TestDpHashGroupLiveness checks that a bucket that is not live gives its
// hash values to the next live bucket in the map, and that no live bucket
// at all outputs nothing from the group.
func TestDpHashGroupLiveness(t *testing.T) {
	tb := groupTable(t, []string{
		"group_id=1,type=select,selection_method=dp_hash,bucket=bucket_id=0,watch_port=7,actions=output:1,bucket=bucket_id=1,actions=output:2",
		"group_id=2,type=select,selection_method=dp_hash,bucket=bucket_id=0,watch_port=7,actions=output:1",
	},
		"priority=10,tcp,actions=group:1",
		"priority=10,udp,actions=group:2,output:3",
	)
	s := newHashSink(t, tb)
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100 {
		k := connKey(t, rng)
		if outs, _ := s.run(t, k); !slices.Equal(outs, []uint32{2}) {
			t.Fatalf("outputs %v, want the live bucket's [2]", outs)
		}
		k.NwProto = IPProtoUDP
		if outs, _ := s.run(t, k); !slices.Equal(outs, []uint32{3}) {
			t.Fatalf("outputs %v, want only the action after the group", outs)
		}
	}
}

// TestDpHashGroupFallbacks checks where a dp_hash group cannot
// recirculate (in a clone) the translation hashes the packet itself as
// the datapath would, matching the 5-tuple, and picks the same bucket as
// the recirculation does; and that a group whose weights need more than
// 256 hash values selects as one without a method, in the translation.
func TestDpHashGroupFallbacks(t *testing.T) {
	tb := groupTable(t, []string{
		"group_id=1,type=select,selection_method=dp_hash,bucket=weight:1,actions=output:1,bucket=weight:1,actions=output:2,bucket=weight:2,actions=output:3",
		"group_id=2,type=select,selection_method=dp_hash,bucket=weight:1,actions=output:1,bucket=weight:300,actions=output:2",
	},
		"priority=10,tcp,actions=group:1",
		"priority=10,udp,actions=clone(group:1)",
		"priority=10,sctp,actions=group:2",
	)
	s := newHashSink(t, tb)
	snap := tb.Snapshot()
	rng := rand.New(rand.NewPCG(7, 8))
	for range 300 {
		k := connKey(t, rng)
		viaRecirc, _ := s.run(t, k)
		u := k
		u.NwProto = IPProtoUDP
		tr := snap.Translate(&u, false)
		if tr.Mask.TpSrc != 0xffff || tr.Mask.TpDst != 0xffff || tr.Mask.NwSrc != ^uint32(0) || tr.Mask.NwProto != 0xff {
			t.Fatalf("in a clone: mask %+v, want the 5-tuple", tr.Mask)
		}
		// The UDP packet's hash differs from the TCP one's: compare with
		// the TCP packet's own in-translation pick.
		x := xlate{s: snap, flow: k}
		want := x.pickDpHash(snap.ofGroups[1], DpHashOf(&k, 0))
		if !slices.Equal(viaRecirc, []uint32{uint32(want + 1)}) {
			t.Fatalf("recirculation output %v, translation picks bucket %d", viaRecirc, want)
		}
		sc := k
		sc.NwProto = IPProtoSCTP
		tr = snap.Translate(&sc, false)
		if slices.ContainsFunc(tr.Actions, func(a Action) bool { return a.Type == ActHash || a.Type == ActRecirc }) {
			t.Fatalf("a group of 301 slots: %s, want the default selection", FormatODPActions(tr.Actions))
		}
	}
}

// TestDpHashPacketOut checks that a packet out's group action hashes and
// recirculates as a rule's does, and that its recirculated pass runs the
// packet out's actions after the group.
func TestDpHashPacketOut(t *testing.T) {
	tb := dpHashTable(t, "")
	s := newHashSink(t, tb)
	k := mustMicroflow(t, "in_port=4,tcp,nw_src=10.0.0.1,nw_dst=172.16.0.10,tp_src=999,tp_dst=80")
	f, err := ParseFlow("actions=group:1,output:7", CmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	tr := tb.Snapshot().TranslateActions(&k, f.Actions)
	if got := FormatODPActions(tr.Actions); got != "hash(l4(0)),recirc(0x1)" {
		t.Fatalf("packet out's actions %s", got)
	}
	var off Offsets
	if _, v := Execute(nil, &k, &off, tr.Actions, s); v != VerdictOK {
		t.Fatalf("verdict %v", v)
	}
	want := uint32(1 + tb.Snapshot().ofGroups[1].hashMap[DpHashOf(&k, 0)&0xf])
	if !slices.Equal(s.outs, []uint32{want, 7}) {
		t.Errorf("outputs %v, want [%d 7]", s.outs, want)
	}
}

// TestDpHashFormat checks the datapath syntax dpctl/dump-flows and
// ofproto/trace print, as Open vSwitch 3.1 does.
func TestDpHashFormat(t *testing.T) {
	acts := []Action{{Type: ActHash, Value: 0}, {Type: ActRecirc, Value: 1}}
	if got := FormatODPActions(acts); got != "hash(l4(0)),recirc(0x1)" {
		t.Errorf("actions %q", got)
	}
	acts[0].Value = 1<<32 | 0xdeadbeef
	if got := FormatODPActions(acts[:1]); got != "hash(sym_l4(3735928559))" {
		t.Errorf("symmetric %q", got)
	}
	var m Match
	m.Key = mustMicroflow(t, "in_port=1,ip")
	m.Key.RecircID, m.Key.DpHash = 1, 0x12345
	m.Mask.RecircID, m.Mask.DpHash, m.Mask.InPort, m.Mask.DlType = ^uint32(0), 0xf, ^uint32(0), 0xffff
	m.Key.Masked(&m.Mask, &m.Key)
	if got, want := FormatODPMatch(&m, nil), "recirc_id(0x1),dp_hash(0x5/0xf),in_port(1),packet_type(ns=0,id=0),eth_type(0x0800)"; got != want {
		t.Errorf("match %q, want %q", got, want)
	}
}

// FuzzDpHashGroup checks, for any packet, that a dp_hash group's first
// pass matches none of what the hash reads beyond what the pipeline
// consults, that the bucket the recirculation picks is the one the
// translation picks when it hashes the packet itself, and that the
// recirculated pass matches dp_hash under the map's mask alone.
func FuzzDpHashGroup(f *testing.F) {
	f.Add(uint32(0x0a000001), uint32(0xac10000a), uint16(1234), uint16(80), uint8(IPProtoTCP), false)
	f.Add(uint32(1), uint32(2), uint16(53), uint16(53), uint8(IPProtoUDP), true)
	f.Add(uint32(0), uint32(0), uint16(8), uint16(0), uint8(IPProtoICMP), false)
	f.Add(uint32(7), uint32(9), uint16(0), uint16(0), uint8(0), true)
	f.Fuzz(func(t *testing.T, src, dst uint32, sp, dp uint16, proto uint8, v6 bool) {
		tb := groupTable(t, []string{
			"group_id=1,type=select,selection_method=dp_hash,bucket=weight:5,actions=output:1,bucket=weight:1,actions=output:2,bucket=weight:2,actions=output:3",
		}, "priority=10,actions=group:1")
		k := mustMicroflow(t, "in_port=4,ip")
		if v6 {
			k = mustMicroflow(t, "in_port=4,ipv6")
			k.IPv6Src[15], k.IPv6Dst[15], k.IPv6Src[0] = byte(src), byte(dst), byte(src>>8)
		} else {
			k.NwSrc, k.NwDst = src, dst
		}
		k.NwProto, k.TpSrc, k.TpDst = proto, sp, dp
		s := newHashSink(t, tb)
		outs, mfs := s.run(t, k)
		if len(mfs) != 2 {
			t.Fatalf("%d passes", len(mfs))
		}
		m0, m1 := mfs[0].Match(), mfs[1].Match()
		if m0.Mask.TpSrc|m0.Mask.TpDst != 0 || m0.Mask.NwSrc|m0.Mask.NwDst != 0 || m0.Mask.IPv6Src != ([16]byte{}) || m0.Mask.NwProto != 0 {
			t.Fatalf("first pass matches %s", FormatODPMatch(&m0, nil))
		}
		if m1.Mask.DpHash != 0xf || m1.Mask.TpSrc|m1.Mask.TpDst != 0 || m1.Mask.NwSrc != 0 {
			t.Fatalf("second pass matches %s", FormatODPMatch(&m1, nil))
		}
		snap := tb.Snapshot()
		x := xlate{s: snap, flow: k}
		want := x.pickDpHash(snap.ofGroups[1], x.dpHash(snap.ofGroups[1]))
		if !slices.Equal(outs, []uint32{uint32(want + 1)}) {
			t.Fatalf("recirculation outputs %v, the translation's own hash picks bucket %d", outs, want)
		}
		if DpHashOf(&k, 0) == 0 {
			t.Fatal("a hash of 0")
		}
	})
}
