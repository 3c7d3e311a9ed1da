package flow

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTranslateVLANTCIWrites checks load and move into vlan_tci with Open
// vSwitch's meaning: the present (CFI) bit set pushes a tag or rewrites
// it, clear pops it.
func TestTranslateVLANTCIWrites(t *testing.T) {
	for _, tt := range []struct {
		name, flow, in, want string
	}{
		{"present bit pushes a tag", "actions=load:0x1->NXM_OF_VLAN_TCI[12],load:0x7->NXM_OF_VLAN_TCI[0..11],output:2",
			"in_port=1", "push_vlan:0x8100,mod_vlan_vid:7,output:2"},
		{"rewrite of the VID", "actions=load:0x9->NXM_OF_VLAN_TCI[0..11],output:2",
			"in_port=1,vlan_tci=0x1005", "mod_vlan_vid:9,output:2"},
		{"move from metadata", "actions=write_metadata:0x101e,move:OXM_OF_METADATA[0..15]->NXM_OF_VLAN_TCI[],output:2",
			"in_port=1,vlan_tci=0x1005", "mod_vlan_vid:30,output:2"},
		{"clear present bit pops, whatever the VID bits", "actions=write_metadata:0x1e,move:OXM_OF_METADATA[0..15]->NXM_OF_VLAN_TCI[],output:2",
			"in_port=1,vlan_tci=0x1005", "strip_vlan,output:2"},
		{"clear present bit pops", "actions=load:0->NXM_OF_VLAN_TCI[],output:2",
			"in_port=1,vlan_tci=0x1005", "strip_vlan,output:2"},
		{"pop into vlan_tci", "actions=push:NXM_NX_REG0[0..15],pop:NXM_OF_VLAN_TCI[],output:2",
			"in_port=1,vlan_tci=0x1005", "strip_vlan,output:2"},
		{"set_field with the present bit pushes a tag", "actions=set_field:0x3007->vlan_tci,output:2",
			"in_port=1", "push_vlan:0x8100,mod_vlan_vid:7,mod_vlan_pcp:1,output:2"},
		{"set_field with the present bit rewrites the tag", "actions=set_field:0x3007->vlan_tci,output:2",
			"in_port=1,vlan_tci=0x1005", "mod_vlan_vid:7,mod_vlan_pcp:1,output:2"},
		{"set_field without the present bit pops", "actions=set_field:0x2007->vlan_tci,output:2",
			"in_port=1,vlan_tci=0x1005", "strip_vlan,output:2"},
		{"masked set_field of the VID", "actions=set_field:0x9/0xfff->vlan_tci,output:2",
			"in_port=1,vlan_tci=0x7005", "mod_vlan_vid:9,output:2"},
		{"masked set_field of the VID leaves an untagged packet so", "actions=set_field:0x9/0xfff->vlan_tci,output:2",
			"in_port=1", "output:2"},
		{"masked set_field of the present bit", "actions=set_field:0x1000/0x1000->vlan_tci,output:2,set_field:0/0x1000->vlan_tci,output:3",
			"in_port=1", "push_vlan:0x8100,output:2,strip_vlan,output:3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tbl := pipeline(t, tt.flow)
			k := microflow(t, tt.in)
			tr := tbl.Snapshot().Translate(&k, false)
			if got := FormatActions(tr.Actions); got != tt.want {
				t.Errorf("actions %s, want %s", got, tt.want)
			}
			if tr.Mask.VLANs[0].TCI != 0xffff {
				t.Errorf("the megaflow does not consult the tag: mask %#x", tr.Mask.VLANs[0].TCI)
			}
		})
	}
	for _, bad := range []string{"actions=set_field:0x10000->vlan_tci", "actions=set_field:0x1005/0x1fff0->vlan_tci", "actions=set_field:0x1005->vlan_tci/1"} {
		if _, err := ParseFlow(bad, CmdAdd); err == nil {
			t.Errorf("%s: accepted, want an error", bad)
		}
	}
}

// TestVLANTCIWriteFinalFlow checks the final flow after writes into
// vlan_tci without the present bit against Open vSwitch 3.1's
// ofproto/trace: such a header is no tag, a pop leaves it in place (as
// flow_pop_vlan does), and the inner header prints whenever the outer TCI
// is not zero.
func TestVLANTCIWriteFinalFlow(t *testing.T) {
	for _, tt := range []struct{ flow, in, want string }{
		{"actions=set_field:0x2007->vlan_tci,output:1", "in_port=4",
			"in_port=4,vlan_tci=0x2007,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000"},
		{"actions=set_field:0x2000->vlan_tci,mod_vlan_vid:5,output:2", "in_port=1",
			"in_port=1,dl_vlan=5,dl_vlan_pcp=0,vlan_tci1=0x2000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000"},
		{"actions=set_field:0x2000->vlan_tci,push_vlan:0x8100,set_field:4101->vlan_vid,output:2,pop_vlan,output:4", "in_port=3",
			"in_port=3,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000"},
		{"actions=set_field:0x2000->vlan_tci,push_vlan:0x8100,pop_vlan,set_field:0x501e->vlan_tci,output:1", "in_port=2",
			"in_port=2,dl_vlan=30,dl_vlan_pcp=2,vlan_tci1=0x2000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000"},
	} {
		tbl := pipeline(t, tt.flow)
		k := microflow(t, tt.in)
		tr := tbl.Snapshot().Translate(&k, false)
		if got := FormatMicroflow(&tr.Final); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.flow, got, tt.want)
		}
	}
}

// learnPipeline is a MAC-learning pipeline: table 0 learns, into table
// 10, to send frames for the source MAC back out of the ingress port.
var learnPipeline = []string{
	"table=0,priority=10,actions=learn(table=10,idle_timeout=30,priority=100,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),resubmit(,10)",
	"table=10,priority=0,actions=flood",
}

// TestLearnInstallsAtUpcall checks that a cache miss installs what the
// packet learned, that the megaflows built before it revalidate, so a
// packet for the learned MAC gets the learned output, and that tracing
// learns nothing.
func TestLearnInstallsAtUpcall(t *testing.T) {
	tbl := pipeline(t, learnPipeline...)
	c, err := NewCache(tbl, 1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	to1 := microflow(t, "in_port=2,dl_src=00:00:00:00:00:02,dl_dst=00:00:00:00:00:01")
	mf, _ := c.Lookup(&to1)
	if got := FormatActions(mf.Actions); got != "FLOOD" {
		t.Fatalf("before learning: %s, want FLOOD", got)
	}
	// (to1 learned its own source.) Tracing learns nothing.
	n := tbl.Len()
	from1 := microflow(t, "in_port=1,dl_src=00:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff")
	tr := tbl.Snapshot().Translate(&from1, true)
	if len(tr.Learned) != 0 || tbl.Len() != n {
		t.Fatalf("a trace learned: %d flows, table has %d", len(tr.Learned), tbl.Len())
	}
	gen := tbl.Generation()
	mf, src := c.Lookup(&from1)
	if src != SourceUpcall || len(mf.Learned) != 1 {
		t.Fatalf("upcall: source %v, %d learned rules", src, len(mf.Learned))
	}
	if tbl.Generation() == gen || tbl.Len() != n+1 {
		t.Fatalf("learning did not publish a new generation (%d rules)", tbl.Len())
	}
	want := "table:10 priority=100,vlan_tci=0x0000/0x0fff,dl_dst=00:00:00:00:00:01 idle:30 actions=output:1"
	if got := dumpPipeline(tbl); !strings.Contains(got, want) {
		t.Errorf("dump:\n%s\nwant a line %s", got, want)
	}
	// The megaflow for to1, built before, must not be used as it was.
	mf, _ = c.Lookup(&to1)
	if got := FormatActions(mf.Actions); got != "output:1" {
		t.Errorf("after learning: %s, want output:1", got)
	}
	// Learning the same again changes nothing: no new generation.
	gen = tbl.Generation()
	c.Flush()
	c.Lookup(&from1)
	if tbl.Generation() != gen {
		t.Errorf("learning an identical flow published a new generation")
	}
}

// TestLearnedFlowRefreshAndExpiry checks that packets taking a megaflow
// that learned keep the learned flow alive, without allocating, and that
// it expires once they stop, taking the megaflows built on it with it.
func TestLearnedFlowRefreshAndExpiry(t *testing.T) {
	tbl := pipeline(t, learnPipeline...)
	clock := time.Unix(1000, 0)
	tbl.now = func() time.Time { return clock }
	c, err := NewCache(tbl, 1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	from1 := microflow(t, "in_port=1,dl_src=00:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff")
	to1 := microflow(t, "in_port=2,dl_src=00:00:00:00:00:02,dl_dst=00:00:00:00:00:01")
	c.Lookup(&from1)
	c.Lookup(&from1) // revalidates at the new generation
	// Packets keep coming from 00:..:01 for 50 s: the learned flow
	// (idle_timeout=30) must stay.
	for i := 1; i <= 5; i++ {
		clock = clock.Add(10 * time.Second)
		allocs := testing.AllocsPerRun(10, func() {
			mf, _ := c.Lookup(&from1)
			c.Account(mf, 1, 64, clock.UnixNano())
			c.CreditRules()
		})
		if allocs != 0 {
			t.Fatalf("a hit that refreshes a learned flow allocates %.0f times", allocs)
		}
		if gone := tbl.Expire(clock); len(gone) != 0 {
			t.Fatalf("after %d s of traffic the learned flow expired", 10*i)
		}
	}
	mf, _ := c.Lookup(&to1)
	if got := FormatActions(mf.Actions); got != "output:1" {
		t.Fatalf("to the learned MAC: %s, want output:1", got)
	}
	// Silence for longer than the idle timeout: it expires, and the
	// megaflow that used it floods again.
	clock = clock.Add(31 * time.Second)
	gone := tbl.Expire(clock)
	// (to1 learned its own source MAC too.)
	if len(gone) != 2 || gone[0].Table != 10 || gone[1].Table != 10 {
		t.Fatalf("expired %d rules, want the two learned ones", len(gone))
	}
	mf, _ = c.Lookup(&to1)
	if got := FormatActions(mf.Actions); got != "FLOOD" {
		t.Errorf("after expiry: %s, want FLOOD", got)
	}
}

// TestDeleteLearned checks that removing (or changing) a flow whose learn
// action says delete_learned removes what it learned, and only that.
func TestDeleteLearned(t *testing.T) {
	learner := "table=0,priority=10,cookie=0x1,actions=learn(table=10,cookie=0x77,delete_learned,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),resubmit(,10)"
	for _, tt := range []struct {
		name   string
		change func(tbl *Table)
	}{
		{"del-flows", func(tbl *Table) {
			tbl.Delete(&Flow{Table: TableAll, Cookie: 1, CookieMask: ^uint64(0)}, false)
		}},
		{"add-flow replacing the learner", func(tbl *Table) {
			f, err := ParseFlow("priority=10,cookie=0x1,actions=resubmit(,10)", CmdAdd)
			if err != nil {
				t.Fatal(err)
			}
			if err := tbl.Add(f); err != nil {
				t.Fatal(err)
			}
		}},
		{"mod-flows without the learn", func(tbl *Table) {
			f, err := ParseFlow("priority=10,actions=resubmit(,10)", CmdModify)
			if err != nil {
				t.Fatal(err)
			}
			f.Table = 0
			tbl.Modify(f, true)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tbl := pipeline(t, learner, "table=10,priority=0,actions=flood", "table=10,priority=5,cookie=0x78,dl_dst=00:00:00:00:00:09,actions=output:4")
			c, err := NewCache(tbl, 1024, 1)
			if err != nil {
				t.Fatal(err)
			}
			k := microflow(t, "in_port=1,dl_src=00:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff")
			c.Lookup(&k)
			if tbl.Len() != 4 {
				t.Fatalf("%d rules after learning, want 4", tbl.Len())
			}
			tt.change(tbl)
			got := dumpPipeline(tbl)
			if strings.Contains(got, "cookie:0x77") || !strings.Contains(got, "cookie:0x78") {
				t.Errorf("after the learner changed:\n%s", got)
			}
		})
	}
}

// TestLearnCacheSound sends random packets through a cache in front of a
// learning pipeline whose learned flows feed the same pipeline, with
// expiries in between: every answer the cache gives equals a fresh
// translation at the table it was looked up in, and every megaflow it
// installs is sound.
func TestLearnCacheSound(t *testing.T) {
	tbl := pipeline(t,
		"table=0,priority=20,in_port=4,actions=learn(table=20,hard_timeout=20,NXM_NX_REG0[0..15]=NXM_OF_IN_PORT[],load:0x1->NXM_NX_REG1[0]),resubmit(,10)",
		"table=0,priority=10,actions=learn(table=10,idle_timeout=10,priority=100,NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),resubmit(,10)",
		"table=10,priority=50,dl_dst=00:00:00:00:00:09,actions=load:0x4->NXM_NX_REG0[0..15],resubmit(,20),output:4",
		"table=10,priority=0,actions=flood",
		"table=20,priority=0,actions=drop",
	)
	clock := time.Unix(1000, 0)
	tbl.now = func() time.Time { return clock }
	c, err := NewCache(tbl, 64, 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	macs := []string{"00:00:00:00:00:01", "00:00:00:00:00:02", "00:00:00:00:00:03", "00:00:00:00:00:09"}
	for i := range 3000 {
		in := "in_port=" + strconv.Itoa(1+rng.IntN(4)) + ",dl_src=" + macs[rng.IntN(len(macs))] + ",dl_dst=" + macs[rng.IntN(len(macs))]
		if rng.IntN(2) == 0 {
			in += ",vlan_tci=0x1005"
		}
		k := microflow(t, in)
		s := tbl.Snapshot()
		mf, _ := c.Lookup(&k)
		want := s.Translate(&k, false)
		if !slices.Equal(mf.Actions, want.Actions) {
			t.Fatalf("packet %d %s: cache gives %s, translation %s", i, in, FormatActions(mf.Actions), FormatActions(want.Actions))
		}
		checkSound(t, s, &k, want, rng, 4)
		c.Account(mf, 1, 64, clock.UnixNano())
		c.CreditRules()
		if rng.IntN(50) == 0 {
			clock = clock.Add(time.Duration(1+rng.IntN(15)) * time.Second)
			tbl.Expire(clock)
		}
	}
	if tbl.Len() <= 5 {
		t.Errorf("the packets learned nothing (%d rules)", tbl.Len())
	}
}
