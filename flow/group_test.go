package flow

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func TestParseGroupRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // FormatGroup(GroupOF15)
	}{
		{"all", "group_id=1,type=all,bucket=actions=output:2,bucket=output:3",
			"group_id=1,type=all,bucket=bucket_id:0,actions=output:2,bucket=bucket_id:1,actions=output:3"},
		{"indirect", "group_id=2,type=indirect,bucket=actions=mod_dl_src:00:00:00:00:bb:01,output:4",
			"group_id=2,type=indirect,bucket=bucket_id:0,actions=set_field:00:00:00:00:bb:01->eth_src,output:4"},
		{"ff", "group_id=3,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,watch_group:7,actions=output:3",
			"group_id=3,type=ff,bucket=bucket_id:0,watch_port:2,actions=output:2,bucket=bucket_id:1,watch_port:3,watch_group:7,actions=output:3"},
		{"select fields", "group_id=4,type=select,selection_method=hash,fields(ip_dst,ip_src),bucket=bucket_id:5,weight:2,actions=output:2,bucket=actions=output:3",
			"group_id=4,type=select,selection_method=hash,fields(ip_src,ip_dst),bucket=bucket_id:5,weight:2,actions=output:2,bucket=bucket_id:0,actions=output:3"},
		{"select one masked field", "group_id=5,type=select,selection_method=hash,selection_method_param=9,fields=ip_dst=255.255.0.0,bucket=weight:0,actions=output:1",
			"group_id=5,type=select,selection_method=hash,selection_method_param=9,fields=ip_dst=255.255.0.0,bucket=bucket_id:0,weight:0,actions=output:1"},
		{"tp_src is tcp_src", "group_id=6,type=select,selection_method=hash,fields(tp_dst,eth_src),bucket=actions=group:1",
			"group_id=6,type=select,selection_method=hash,fields(eth_src,tcp_dst),bucket=bucket_id:0,actions=group:1"},
		{"ids after an unset one", "group_id=7,type=all,bucket=output:1,bucket=bucket_id:0,output:2,bucket=output:3",
			"group_id=7,type=all,bucket=bucket_id:1,actions=output:1,bucket=bucket_id:0,actions=output:2,bucket=bucket_id:2,actions=output:3"},
		{"register load and set field without a match", "group_id=8,type=all,bucket=actions=load:0x5->NXM_NX_REG3[],set_field:10.1.1.1->ip_dst,resubmit(,3)",
			"group_id=8,type=all,bucket=bucket_id:0,actions=set_field:0x5->reg3,set_field:10.1.1.1->ip_dst,resubmit(,3)"},
		{"no buckets", "group_id=9,type=select", "group_id=9,type=select"},
		{"dp_hash, as OVN's load balancers", "group_id=10,type=select,selection_method=dp_hash,bucket=bucket_id:0,weight:100,actions=ct(commit,table=15,zone=NXM_NX_REG13[0..15],nat(dst=10.0.0.2:8080)),bucket=bucket_id:1,weight:100,actions=ct(commit,table=15,zone=NXM_NX_REG13[0..15],nat(dst=10.0.0.3:8080))",
			"group_id=10,type=select,selection_method=dp_hash,bucket=bucket_id:0,weight:100,actions=ct(commit,table=15,zone=NXM_NX_REG13[0..15],nat(dst=10.0.0.2:8080)),bucket=bucket_id:1,weight:100,actions=ct(commit,table=15,zone=NXM_NX_REG13[0..15],nat(dst=10.0.0.3:8080))"},
		{"dp_hash with an algorithm and basis", "group_id=11,type=select,selection_method=dp_hash,selection_method_param=4294967303,bucket=output:1",
			"group_id=11,type=select,selection_method=dp_hash,selection_method_param=4294967303,bucket=bucket_id:0,actions=output:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := ParseGroup(tt.in, GroupCmdAdd)
			if err != nil {
				t.Fatal(err)
			}
			got := FormatGroup(g, GroupOF15)
			if got != tt.want {
				t.Errorf("FormatGroup:\n got %s\nwant %s", got, tt.want)
			}
			again, err := ParseGroup(got, GroupCmdAdd)
			if err != nil {
				t.Fatalf("parse of the formatted group: %v", err)
			}
			if !again.equal(g) {
				t.Errorf("round trip changed the group:\n%+v\n%+v", g, again)
			}
			if f := FormatGroup(again, GroupOF15); f != got {
				t.Errorf("second format %s, first %s", f, got)
			}
		})
	}
}

func TestParseGroupErrors(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		cmd        GroupCommand
		wantPos    int // byte offset of the offending item
		wantReason string
		wantErr    error
	}{
		{"no group id", "type=all,bucket=output:1", GroupCmdAdd, 0, "must specify a group_id", nil},
		{"no type", "group_id=1,bucket=output:1", GroupCmdAdd, 0, "must specify a type", nil},
		{"bad type", "group_id=1,type=any", GroupCmdAdd, 11, "invalid group type any", nil},
		{"group id too big", "group_id=4294967041,type=all", GroupCmdAdd, 0, "invalid group id", nil},
		{"unknown keyword", "group_id=1,type=all,colour=red", GroupCmdAdd, 20, "unknown keyword colour", nil},
		{"bad action", "group_id=1,type=all,bucket=actions=output:1,frobnicate:2", GroupCmdAdd, 44, "unknown action frobnicate", nil},
		{"ff without watch", "group_id=1,type=ff,bucket=actions=output:1", GroupCmdAdd, 19, "fast failover bucket requires watch_port or watch_group", nil},
		{"weight outside select", "group_id=1,type=all,bucket=weight:3,actions=output:1", GroupCmdAdd, 27, "only select groups can have bucket weights", nil},
		{"two indirect buckets", "group_id=1,type=indirect,bucket=output:1,bucket=output:2", GroupCmdAdd, 41, "at most one bucket", nil},
		{"bucket without actions", "group_id=1,type=all,bucket=weight:0", GroupCmdAdd, 20, "bucket must specify actions", nil},
		{"fields without hash", "group_id=1,type=select,fields(ip_src),bucket=output:1", GroupCmdAdd, 23, `fields may only be specified with "selection_method=hash"`, nil},
		{"unknown hash field", "group_id=1,type=select,selection_method=hash,fields(ip_colour),bucket=output:1", GroupCmdAdd, 52, "unknown field ip_colour", nil},
		{"zero mask", "group_id=1,type=select,selection_method=hash,fields(ip_src=0.0.0.0),bucket=output:1", GroupCmdAdd, 52, "must not be all-zeros", nil},
		{"duplicate bucket id", "group_id=1,type=all,bucket=bucket_id:1,output:1,bucket=bucket_id:1,output:2", GroupCmdAdd, 48, "duplicate bucket_id 1", nil},
		{"dp_hash with fields", "group_id=1,type=select,selection_method=dp_hash,fields(ip_src),bucket=output:1", GroupCmdAdd, 48, `fields may only be specified with "selection_method=hash"`, nil},
		{"method on an all group", "group_id=1,type=all,selection_method=hash", GroupCmdAdd, 20, "only allowed for select groups", nil},
		{"delete with buckets", "group_id=1,bucket=output:1", GroupCmdDelete, 11, "bucket is not needed", nil},
		{"bad group action", "group_id=1,type=all,bucket=actions=group:x", GroupCmdAdd, 35, "group needs a group id", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := ParseGroup(tt.in, tt.cmd)
			if err == nil {
				t.Fatalf("parsed as %+v, want an error", g)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a SyntaxError", err)
			}
			if se.Pos != tt.wantPos {
				t.Errorf("position %d (%v), want %d", se.Pos, err, tt.wantPos)
			}
			if !strings.Contains(se.Reason, tt.wantReason) {
				t.Errorf("reason %q, want it to say %q", se.Reason, tt.wantReason)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
		})
	}
}

func TestParseGroupDelete(t *testing.T) {
	for in, want := range map[string]uint32{"": GroupAllID, "group_id=all": GroupAllID, "group_id=7": 7} {
		g, err := ParseGroup(in, GroupCmdDelete)
		if err != nil || g.ID != want {
			t.Errorf("ParseGroup(%q) = %v, %v; want id %d", in, g, err, want)
		}
	}
}

// liveSet is a PortLiveness whose live ports a test sets.
type liveSet struct {
	mu   sync.Mutex
	live map[uint32]bool
}

func (l *liveSet) PortLive(port uint32) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.live[port]
}

func (l *liveSet) set(port uint32, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live[port] = on
}

// groupTable builds a table with groups and flows in ovs-ofctl syntax.
func groupTable(t *testing.T, groups []string, flows ...string) *Table {
	t.Helper()
	tb := NewTable()
	var gs []*Group
	for _, s := range groups {
		g, err := ParseGroup(s, GroupCmdAdd)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		gs = append(gs, g)
	}
	if err := tb.AddGroups(gs); err != nil {
		t.Fatal(err)
	}
	var fs []Flow
	for _, s := range flows {
		f, err := ParseFlow(s, CmdAdd)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		fs = append(fs, *f)
	}
	if err := tb.AddFlows(fs); err != nil {
		t.Fatal(err)
	}
	return tb
}

func mustMicroflow(t *testing.T, s string) Key {
	t.Helper()
	k, err := ParseMicroflow(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestTranslateGroups(t *testing.T) {
	tb := groupTable(t, []string{
		"group_id=1,type=all,bucket=output:2,bucket=output:3,bucket=output:1",
		"group_id=2,type=indirect,bucket=actions=mod_dl_src:00:00:00:00:bb:01,output:4",
		// An action set: only the last output runs, after the set field;
		// the note cannot be in a set and is left out.
		"group_id=3,type=all,bucket=actions=output:2,output:3,note:01,mod_dl_dst:00:00:00:00:00:aa",
		"group_id=4,type=indirect,bucket=actions=mod_dl_dst:00:00:00:00:00:bb",
		"group_id=5,type=all,bucket=actions=group:2,bucket=actions=output:3",
	},
		"priority=10,ip,nw_dst=10.0.0.1,actions=group:1",
		"priority=10,ip,nw_dst=10.0.0.2,actions=group:2,output:3",
		"priority=10,ip,nw_dst=10.0.0.3,actions=group:3",
		"priority=10,ip,nw_dst=10.0.0.4,actions=group:4,output:2",
		"priority=10,ip,nw_dst=10.0.0.5,actions=group:5",
	)
	tests := []struct {
		in   string
		want string
	}{
		{"in_port=1,ip,nw_dst=10.0.0.1", "output:2,output:3"}, // the ingress port is skipped
		{"in_port=2,ip,nw_dst=10.0.0.1", "output:3,output:1"},
		{"in_port=1,ip,nw_dst=10.0.0.2", "mod_dl_src:00:00:00:00:bb:01,output:4,mod_dl_src:00:00:00:00:00:00,output:3"},
		// The end of translation brings the packet back to the flow.
		{"in_port=1,ip,nw_dst=10.0.0.3", "mod_dl_dst:00:00:00:00:00:aa,output:3,mod_dl_dst:00:00:00:00:00:00"},
		{"in_port=1,ip,nw_dst=10.0.0.4", "output:2"}, // a bucket without an output does nothing
		{"in_port=1,ip,nw_dst=10.0.0.5", "mod_dl_src:00:00:00:00:bb:01,output:4,mod_dl_src:00:00:00:00:00:00,output:3"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			k := mustMicroflow(t, tt.in)
			tr := tb.Snapshot().Translate(&k, false)
			if got := FormatActions(tr.Actions); got != tt.want {
				t.Errorf("actions %s, want %s", got, tt.want)
			}
			if tr.Final != k {
				t.Errorf("the final flow changed: a group's buckets run on copies")
			}
		})
	}
}

func TestSelectGroupHash(t *testing.T) {
	tb := groupTable(t, []string{
		"group_id=1,type=select,selection_method=hash,fields(ip_src,ip_dst=255.255.255.0),bucket=weight:0,actions=output:1,bucket=output:2,bucket=weight:3,output:3",
		// Weights that need 512 hash values: without a selection
		// method, the translation picks.
		"group_id=2,type=select,bucket=weight:1,output:2,bucket=weight:300,output:3",
	},
		"priority=10,tcp,actions=group:1",
		"priority=10,udp,actions=group:2",
	)
	seen := map[string]int{}
	for i := range 256 {
		k := mustMicroflow(t, "in_port=4,tcp,nw_src=10.0.0.1,tp_src=7,nw_dst=10.0.0."+itoa(i))
		tr := tb.Snapshot().Translate(&k, false)
		got := FormatActions(tr.Actions)
		seen[got]++
		if tr.Mask.NwSrc != 0xffffffff || tr.Mask.NwDst != 0xffffff00 {
			t.Fatalf("mask nw_src %#x nw_dst %#x: want the hashed bits, ffffffff and ffffff00", tr.Mask.NwSrc, tr.Mask.NwDst)
		}
		if tr.Mask.TpSrc != 0 {
			t.Fatalf("the megaflow consults tp_src, which the hash does not read")
		}
	}
	// The masked destination is the same for all 256: one bucket.
	if len(seen) != 1 || seen["output:1"] != 0 {
		t.Errorf("buckets chosen %v, want one, never the weight-0 bucket", seen)
	}
	seen = map[string]int{}
	for i := range 256 {
		k := mustMicroflow(t, "in_port=4,tcp,nw_src=10.0."+itoa(i)+".1,nw_dst=10.0.0.1")
		tr := tb.Snapshot().Translate(&k, false)
		seen[FormatActions(tr.Actions)]++
	}
	if seen["output:1"] != 0 || seen["output:2"] == 0 || seen["output:3"] <= seen["output:2"] {
		t.Errorf("buckets chosen %v: want never bucket 0 (weight 0), and bucket 2 (weight 3) more often than bucket 1", seen)
	}
	// The default hash is symmetric: both directions pick the same bucket,
	// and it consults both addresses and the Ethernet addresses.
	a := mustMicroflow(t, "in_port=4,udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=1,tp_dst=2")
	b := mustMicroflow(t, "in_port=4,udp,nw_src=10.0.0.2,nw_dst=10.0.0.1,tp_src=2,tp_dst=1")
	ta, tbb := tb.Snapshot().Translate(&a, false), tb.Snapshot().Translate(&b, false)
	if FormatActions(ta.Actions) != FormatActions(tbb.Actions) {
		t.Errorf("default hash not symmetric: %s and %s", FormatActions(ta.Actions), FormatActions(tbb.Actions))
	}
	if ta.Mask.NwSrc != 0xffffffff || ta.Mask.DlSrc != [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} || ta.Mask.TpSrc != 0 {
		t.Errorf("default hash mask %+v: want nw_src and dl_src, not the UDP ports", ta.Mask)
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// TestFastFailoverLivenessInvalidatesMegaflows checks that a megaflow
// built while a watched port was live is not used once it is not:
// LivenessChanged takes a new generation, and the cache's next lookup
// translates again and fails over.
func TestFastFailoverLivenessInvalidatesMegaflows(t *testing.T) {
	tb := groupTable(t, []string{
		"group_id=1,type=ff,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3",
	}, "ip,actions=group:1")
	live := &liveSet{live: map[uint32]bool{2: true, 3: true}}
	tb.SetPortLiveness(live)
	c, err := NewCache(tb, 1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	k := mustMicroflow(t, "in_port=1,ip,nw_dst=10.0.0.1")
	lookup := func() string {
		mf, _ := c.Lookup(&k)
		return FormatActions(mf.Actions)
	}
	if got := lookup(); got != "output:2" {
		t.Fatalf("with port 2 live: %s, want output:2", got)
	}
	if got := lookup(); got != "output:2" {
		t.Fatalf("cached: %s, want output:2", got)
	}
	gen := tb.Generation()
	live.set(2, false)
	tb.LivenessChanged()
	if tb.Generation() == gen {
		t.Fatal("LivenessChanged did not take a new generation")
	}
	if got := lookup(); got != "output:3" {
		t.Errorf("after port 2 went down: %s, want output:3 (the cached megaflow must not be used)", got)
	}
	live.set(3, false)
	tb.LivenessChanged()
	if got := lookup(); got != "drop" {
		t.Errorf("with no live bucket: %s, want drop", got)
	}
	live.set(2, true)
	tb.LivenessChanged()
	if got := lookup(); got != "output:2" {
		t.Errorf("after port 2 came back: %s, want output:2", got)
	}

	// Without a group that follows liveness, nothing needs revalidating.
	plain := groupTable(t, []string{"group_id=1,type=all,bucket=output:2"}, "actions=group:1")
	gen = plain.Generation()
	plain.LivenessChanged()
	if plain.Generation() != gen {
		t.Errorf("LivenessChanged took a new generation with no group that follows liveness")
	}
}

func TestGroupChangesInvalidateMegaflows(t *testing.T) {
	tb := groupTable(t, []string{"group_id=1,type=all,bucket=output:2"}, "ip,actions=group:1")
	c, err := NewCache(tb, 1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	k := mustMicroflow(t, "in_port=1,ip")
	lookup := func() string {
		mf, _ := c.Lookup(&k)
		return FormatActions(mf.Actions)
	}
	if got := lookup(); got != "output:2" {
		t.Fatalf("%s, want output:2", got)
	}
	g, err := ParseGroup("group_id=1,type=all,bucket=output:3,bucket=output:4", GroupCmdModify)
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.ModifyGroup(g, false); err != nil {
		t.Fatal(err)
	}
	if got := lookup(); got != "output:3,output:4" {
		t.Errorf("after mod-group: %s, want output:3,output:4", got)
	}
	if n, removed := tb.DeleteGroups(1); n != 1 || len(removed) != 1 {
		t.Fatalf("DeleteGroups: %d groups, %d flows; want 1 and the flow that used it", n, len(removed))
	}
	if got := lookup(); got != "drop" {
		t.Errorf("after del-groups: %s, want drop (the flow went with the group)", got)
	}
}

func TestGroupTableErrors(t *testing.T) {
	tb := groupTable(t, []string{"group_id=1,type=all,bucket=output:2"}, "priority=5,actions=group:1", "priority=6,actions=output:3")
	g2, _ := ParseGroup("group_id=2,type=all,bucket=output:2", GroupCmdAdd)
	g1, _ := ParseGroup("group_id=1,type=indirect,bucket=output:4", GroupCmdAdd)
	if err := tb.AddGroups([]*Group{g2, g1}); !errors.Is(err, ErrGroupExists) {
		t.Errorf("adding an existing group: %v, want ErrGroupExists", err)
	}
	if tb.Snapshot().Group(2) != nil {
		t.Errorf("a refused add-groups added group 2 all the same")
	}
	g9, _ := ParseGroup("group_id=9,type=all,bucket=output:2", GroupCmdModify)
	if err := tb.ModifyGroup(g9, false); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("mod-group of a missing group: %v, want ErrUnknownGroup", err)
	}
	if err := tb.ModifyGroup(g9, true); err != nil || tb.Snapshot().Group(9) == nil {
		t.Errorf("mod-group --may-create: %v", err)
	}
	f, _ := ParseFlow("priority=7,actions=output:1,group:5", CmdAdd)
	err := tb.AddFlows([]Flow{*f})
	if !errors.Is(err, ErrBadOutGroup) || !strings.Contains(err.Error(), "group:5") {
		t.Errorf("a flow naming a missing group: %v, want ErrBadOutGroup naming group:5", err)
	}
	if tb.Len() != 2 {
		t.Errorf("%d flows after a refused add, want 2", tb.Len())
	}
	if refs := tb.Snapshot().GroupRefs(1); refs != 1 {
		t.Errorf("group 1 ref_count %d, want 1", refs)
	}
	n, removed := tb.DeleteGroups(GroupAllID)
	if n != 2 || len(removed) != 1 || tb.Len() != 1 {
		t.Errorf("del-groups: %d groups, %d flows removed, %d left; want 2, 1, 1", n, len(removed), tb.Len())
	}
}

func TestGroupStats(t *testing.T) {
	tb := groupTable(t, []string{
		"group_id=1,type=ff,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3",
		"group_id=2,type=all,bucket=output:2,bucket=output:3",
	}, "ip,actions=group:1,group:2")
	tb.SetPortLiveness(&liveSet{live: map[uint32]bool{3: true}})
	c, err := NewCache(tb, 1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	k := mustMicroflow(t, "in_port=1,ip")
	for range 3 {
		mf, _ := c.Lookup(&k)
		c.Account(mf, 1, 100, 1)
	}
	c.CreditRules()
	s := tb.Snapshot()
	p, b, buckets := s.Group(1).Stats()
	if p != 3 || b != 300 || buckets[0] != [2]uint64{0, 0} || buckets[1] != [2]uint64{3, 300} {
		t.Errorf("ff group: %d packets %d bytes, buckets %v; want 3, 300, [0 0] [3 300]", p, b, buckets)
	}
	p, _, buckets = s.Group(2).Stats()
	if p != 3 || buckets[0][0] != 0 {
		t.Errorf("all group: %d packets, buckets %v; want 3 on the group only, as Open vSwitch counts", p, buckets)
	}
	want := "group_id=1,duration=0s,ref_count=1,packet_count=3,byte_count=300,bucket0:packet_count=0,byte_count=0,bucket1:packet_count=3,byte_count=300"
	if got := FormatGroupStats(s.Group(1), s.GroupRefs(1), s.Group(1).Installed); got != want {
		t.Errorf("FormatGroupStats:\n got %s\nwant %s", got, want)
	}
}

// TestGroupChainIsBounded translates through all groups that each run the
// next one twice, 40 deep: without a bound on group actions that is 2^40
// buckets, and since the last one only outputs to the ingress port (which
// a bucket skips) no action cap would end it. The packet is dropped as
// over the limit instead.
func TestGroupChainIsBounded(t *testing.T) {
	var groups []string
	for i := 1; i <= 40; i++ {
		groups = append(groups, "group_id="+itoa(i)+",type=all,bucket=group:"+itoa(i+1)+",bucket=group:"+itoa(i+1))
	}
	groups = append(groups, "group_id=41,type=all,bucket=output:1")
	tb := groupTable(t, groups, "actions=group:1")
	k := mustMicroflow(t, "in_port=1,ip")
	tr := tb.Snapshot().Translate(&k, false)
	if tr.Verdict != VerdictResubmitLimit || len(tr.Actions) != 0 {
		t.Errorf("verdict %v with %d actions, want %v and none", tr.Verdict, len(tr.Actions), VerdictResubmitLimit)
	}
}

// TestGroupMegaflowSoundness runs random packets through a cache in front
// of a pipeline of groups of every type, with random mod-group and
// liveness changes in between: every packet must get from the cache
// exactly the actions a fresh translation gives it. A megaflow wider than
// correct (a hashed field left out of the mask, liveness not revalidated,
// a group change not seen) fails it.
func TestGroupMegaflowSoundness(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	groups := func() []string {
		w := func() string { return itoa(rng.IntN(3)) }
		return []string{
			"group_id=1,type=select,selection_method=hash,fields(ip_src,tcp_dst),bucket=weight:" + w() + ",output:1,bucket=weight:" + w() + ",output:2,bucket=weight:" + w() + ",output:3",
			"group_id=2,type=select,bucket=output:2,bucket=weight:" + w() + ",output:3",
			"group_id=3,type=ff,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,actions=output:3,bucket=watch_group:1,actions=group:1",
			"group_id=4,type=all,bucket=actions=set_field:10.9.9.9->ip_dst,group:3,bucket=actions=output:" + itoa(1+rng.IntN(3)),
			"group_id=5,type=indirect,bucket=actions=resubmit(,1)",
			"group_id=6,type=select,selection_method=dp_hash,bucket=weight:" + w() + ",output:1,bucket=weight:" + w() + ",output:2",
		}
	}
	tb := groupTable(t, groups(),
		"priority=10,ip,nw_dst=10.0.0.1,actions=group:1",
		"priority=10,ip,nw_dst=10.0.0.2,actions=group:2",
		"priority=10,ip,nw_dst=10.0.0.3,actions=group:3",
		"priority=10,ip,nw_dst=10.0.0.4,actions=group:4,output:1",
		"priority=10,ip,nw_dst=10.0.0.6,actions=group:6",
		"priority=5,ip,actions=group:5",
		"table=1,priority=10,tcp,tp_src=1,actions=group:1",
		"table=1,priority=5,actions=group:2",
	)
	live := &liveSet{live: map[uint32]bool{1: true, 2: true, 3: true}}
	tb.SetPortLiveness(live)
	c, err := NewCache(tb, 64, 1)
	if err != nil {
		t.Fatal(err)
	}
	protos := []string{"ip", "tcp", "udp"}
	for i := range 3000 {
		switch op := rng.IntN(20); {
		case op == 0:
			gs := groups()
			g, err := ParseGroup(gs[rng.IntN(len(gs))], GroupCmdModify)
			if err != nil {
				t.Fatal(err)
			}
			if err := tb.ModifyGroup(g, false); err != nil {
				t.Fatal(err)
			}
		case op == 1:
			live.set(uint32(1+rng.IntN(3)), rng.IntN(2) == 0)
			tb.LivenessChanged()
		default:
			s := "in_port=" + itoa(1+rng.IntN(3)) + "," + protos[rng.IntN(3)] +
				",dl_src=00:00:00:00:00:0" + itoa(rng.IntN(3)) +
				",nw_src=10.1.0." + itoa(rng.IntN(4)) + ",nw_dst=10.0.0." + itoa(1+rng.IntN(6))
			if strings.Contains(s, "tcp") || strings.Contains(s, "udp") {
				s += ",tp_src=" + itoa(rng.IntN(3)) + ",tp_dst=" + itoa(rng.IntN(3))
			}
			k := mustMicroflow(t, s)
			mf, _ := c.Lookup(&k)
			want := tb.Snapshot().Translate(&k, false)
			if got, w := FormatActions(mf.Actions), FormatActions(want.Actions); got != w {
				t.Fatalf("step %d, %s: the cache gives %s, a fresh translation %s", i, s, got, w)
			}
		}
	}
}

// TestDeleteGroupsDeletesLearned checks that a flow that del-groups
// deletes takes along what its delete_learned learn action learned, as
// del-flows does, and that the learned flows are among those returned.
func TestDeleteGroupsDeletesLearned(t *testing.T) {
	tb := groupTable(t, []string{"group_id=1,type=all,bucket=output:2"},
		"priority=10,actions=learn(table=10,cookie=0x77,delete_learned,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],output:NXM_OF_IN_PORT[]),group:1",
		"table=10,priority=5,cookie=0x78,dl_dst=00:00:00:00:00:09,actions=output:4")
	c, err := NewCache(tb, 1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	k := mustMicroflow(t, "in_port=1,dl_src=00:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff")
	c.Lookup(&k)
	if tb.Len() != 3 {
		t.Fatalf("%d rules after learning, want 3", tb.Len())
	}
	n, removed := tb.DeleteGroups(1)
	if n != 1 || len(removed) != 2 {
		t.Errorf("DeleteGroups: %d groups, %d flows; want 1 and 2 (the learner and what it learned)", n, len(removed))
	}
	got := tb.Dump(nil)
	if len(got) != 1 || got[0].Cookie != 0x78 {
		var s []string
		for _, r := range got {
			s = append(s, ruleMatchText(r))
		}
		t.Errorf("after del-groups: %d flows %q, want only the cookie 0x78 one", len(got), s)
	}
}
