package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/control"
	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ofconn"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TestOpenFlowBundleAtomic commits bundles through a daemon's bridge. A
// bundle whose flow mod in the middle names a missing group fails at
// that message with OFPBAC_BAD_OUT_GROUP, and none of its changes (flow
// adds, a group delete that takes a flow with it, a port mod) took
// effect or was published; a good bundle takes effect whole, published
// once.
func TestOpenFlowBundleAtomic(t *testing.T) {
	d, _ := benchDaemon(t)
	if _, err := d.Handle(context.Background(), &control.Request{Verb: "add-port", Args: []string{"br0", "p1", "type=mem", "ofport=1"}}); err != nil {
		t.Fatal(err)
	}
	d.channels.mu.Lock()
	ob := d.channels.byName["br0"].ob
	d.channels.mu.Unlock()
	table := ob.b.dp.Table()
	const v = openflow.Version14
	fm := func(text string) ofconn.BundledMod {
		t.Helper()
		f, err := flow.ParseFlow(text, flow.CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		acts, err := ofconv.ActionsToOF(v, &f.Match, f.Actions)
		if err != nil {
			t.Fatal(err)
		}
		return ofconn.BundledMod{Msg: &openflow.FlowMod{Nicira: true, TableID: f.Table, Command: openflow.FlowAdd, Priority: f.Priority,
			BufferID: openflow.NoBuffer, OutPort: openflow.PortAny, OutGroup: openflow.GroupAny,
			Match: ofconv.FieldsFromMatch(&f.Match, true), Actions: acts}}
	}
	group := func(cmd uint16, id uint32) ofconn.BundledMod {
		return ofconn.BundledMod{Msg: &openflow.GroupMod{Command: cmd, Type: openflow.GroupAll, GroupID: id,
			Buckets: []openflow.Bucket{{Actions: []openflow.Action{&openflow.ActOutput{Port: 1}}}}}}
	}
	portDown := ofconn.BundledMod{Msg: &openflow.PortMod{PortNo: 1, Config: openflow.PortConfigDown, Mask: openflow.PortConfigDown}}
	portUp := func() bool {
		p, ok := ob.b.dp.PortByOF(1)
		return ok && p.VPort().Device().Snapshot().Running()
	}
	commit := func(mods ...ofconn.BundledMod) (int, error) {
		t.Helper()
		gen := table.Generation()
		i, err := ob.CommitBundle(v, mods)
		switch pubs := table.Generation() - gen; {
		case err != nil && pubs != 0:
			t.Errorf("a failed commit published %d times", pubs)
		case err == nil && pubs != 1:
			t.Errorf("a commit published %d times, want once", pubs)
		}
		return i, err
	}
	badOutGroup := func(err error) bool {
		var oe *openflow.Error
		return errors.As(err, &oe) && oe.Type == openflow.ErrTypeBadAction && oe.Code == 9 // OFPBAC_BAD_OUT_GROUP
	}

	i, err := commit(fm("priority=10,in_port=1,actions=output:2"), portDown, fm("priority=20,actions=group:9"), fm("priority=30,actions=drop"))
	if i != 2 || !badOutGroup(err) {
		t.Fatalf("commit: message %d failed with %v, want message 2 with OFPBAC_BAD_OUT_GROUP", i, err)
	}
	if n := table.Len(); n != 0 || !portUp() {
		t.Fatalf("after the failed commit: %d flows, port up %v; want none and the port up", n, portUp())
	}
	// Nothing of it is left behind to be published with a later change.
	if err := ob.FlowMod(v, fm("priority=1,actions=drop").Msg.(*openflow.FlowMod), ofconn.Origin{}); err != nil {
		t.Fatal(err)
	}
	if n := table.Len(); n != 1 {
		t.Fatalf("after a flow mod that followed the failed commit: %d flows, want 1", n)
	}

	if i, err := commit(group(openflow.GroupAdd, 9), fm("priority=10,in_port=1,actions=output:2"), fm("priority=20,actions=group:9"), fm("priority=30,actions=drop")); err != nil {
		t.Fatalf("commit: message %d failed: %v", i, err)
	}
	if n := table.Len(); n != 4 || table.Snapshot().Group(9) == nil {
		t.Fatalf("after the commit: %d flows, group 9 %v; want 4 flows and the group", n, table.Snapshot().Group(9))
	}

	// A group delete takes the flow that names the group; undone with
	// the rest when a later message fails.
	before := table.Dump(nil)
	i, err = commit(group(openflow.GroupDelete, 9), fm("priority=40,actions=output:1"), portDown, fm("priority=50,actions=group:8"))
	if i != 3 || !badOutGroup(err) {
		t.Fatalf("commit: message %d failed with %v, want message 3 with OFPBAC_BAD_OUT_GROUP", i, err)
	}
	if after := table.Dump(nil); len(after) != len(before) || table.Snapshot().Group(9) == nil || !portUp() {
		t.Fatalf("after the failed commit: %d flows, group 9 %v, port up %v; want the %d flows, the group and the port as before",
			len(after), table.Snapshot().Group(9), portUp(), len(before))
	}
	for i := range before {
		if table.Dump(nil)[i] != before[i] {
			t.Errorf("flow %d changed: %v, was %v", i, table.Dump(nil)[i], before[i])
		}
	}

	// The same without the bad flow mod: the group and its flow go, the
	// port goes down once the flows are in.
	if i, err := commit(group(openflow.GroupDelete, 9), fm("priority=40,actions=output:1"), portDown); err != nil {
		t.Fatalf("commit: message %d failed: %v", i, err)
	}
	if n := table.Len(); n != 4 || table.Snapshot().Group(9) != nil || portUp() {
		t.Fatalf("after the commit: %d flows, group 9 %v, port up %v; want 4 flows, no group, the port down", n, table.Snapshot().Group(9), portUp())
	}
}

// TestOpenFlowBundleHeldAdds commits bundles whose flow adds CheckFlowMod
// kept as the table keeps them (BundledMod.Adds), in runs between other
// messages: a run installs its adds in order, a failing add is reported
// at its own place in the bundle (the first of a run, or one in the
// middle), with OFPBAC_BAD_OUT_GROUP, and nothing of a failed bundle
// takes effect; a good one ends as the same messages one by one.
func TestOpenFlowBundleHeldAdds(t *testing.T) {
	d, _ := benchDaemon(t)
	d.channels.mu.Lock()
	ob := d.channels.byName["br0"].ob
	d.channels.mu.Unlock()
	table := ob.b.dp.Table()
	const v = openflow.Version14
	// held returns the bundle of flow adds (flows) and group adds (at
	// "group:N" entries), with each flow add checked into one batch.
	held := func(entries ...string) []ofconn.BundledMod {
		t.Helper()
		var adds flow.FlowBatch
		var mods []ofconn.BundledMod
		for _, e := range entries {
			var id uint32
			if _, err := fmt.Sscanf(e, "group:%d", &id); err == nil {
				mods = append(mods, ofconn.BundledMod{Msg: &openflow.GroupMod{Command: openflow.GroupAdd, Type: openflow.GroupAll, GroupID: id,
					Buckets: []openflow.Bucket{{Actions: []openflow.Action{&openflow.ActOutput{Port: 1}}}}}})
				continue
			}
			f, err := flow.ParseFlow(e, flow.CmdAdd)
			if err != nil {
				t.Fatal(err)
			}
			acts, err := ofconv.ActionsToOF(v, &f.Match, f.Actions)
			if err != nil {
				t.Fatal(err)
			}
			fm := &openflow.FlowMod{TableID: f.Table, Command: openflow.FlowAdd, Priority: f.Priority,
				BufferID: openflow.NoBuffer, OutPort: openflow.PortAny, OutGroup: openflow.GroupAny,
				Match: ofconv.FieldsFromMatch(&f.Match, true), Instructions: []openflow.Instruction{{Type: openflow.InstApplyActions, Actions: acts}}}
			mod, added, err := ob.CheckFlowMod(v, fm, &adds)
			if err != nil || !added || mod != nil {
				t.Fatalf("CheckFlowMod(%s): conversion %v, added %v, %v; want it added to the batch", e, mod, added, err)
			}
			mods = append(mods, ofconn.BundledMod{Adds: &adds})
		}
		return mods
	}
	badOutGroup := func(err error) bool {
		var oe *openflow.Error
		return errors.As(err, &oe) && oe.Type == openflow.ErrTypeBadAction && oe.Code == 9 // OFPBAC_BAD_OUT_GROUP
	}
	for _, tc := range []struct {
		name    string
		in      []string
		wantBad int
	}{
		{"first of a run", []string{"priority=1,actions=drop", "group:1", "priority=2,actions=group:9", "priority=3,actions=drop"}, 2},
		{"middle of a run", []string{"group:1", "priority=1,actions=group:1", "priority=2,actions=drop", "priority=3,actions=group:9", "priority=4,actions=drop"}, 3},
	} {
		gen := table.Generation()
		i, err := ob.CommitBundle(v, held(tc.in...))
		if i != tc.wantBad || !badOutGroup(err) {
			t.Errorf("%s: message %d failed with %v, want message %d with OFPBAC_BAD_OUT_GROUP", tc.name, i, err, tc.wantBad)
		}
		if n := table.Len(); n != 0 || table.Generation() != gen || table.Snapshot().Group(1) != nil {
			t.Errorf("%s: after the failed commit: %d flows, generation %d (was %d), group 1 %v; want nothing changed",
				tc.name, n, table.Generation(), gen, table.Snapshot().Group(1))
		}
	}

	good := []string{"priority=1,actions=drop", "priority=2,in_port=1,actions=output:2", "group:9", "priority=3,actions=group:9",
		"priority=2,in_port=1,actions=output:3", "table=1,priority=5,ip,nw_src=10.0.0.0/8,actions=resubmit(,2)"}
	if i, err := ob.CommitBundle(v, held(good...)); err != nil {
		t.Fatalf("commit: message %d failed: %v", i, err)
	}
	want := flow.NewTable()
	g, err := flow.ParseGroup("group_id=9,type=all,bucket=output:1", flow.GroupCmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	if err := want.AddGroups([]*flow.Group{g}); err != nil {
		t.Fatal(err)
	}
	for _, e := range good {
		if e == "group:9" {
			continue
		}
		f, err := flow.ParseFlow(e, flow.CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		if err := want.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	text := func(tb *flow.Table) []string {
		var out []string
		for _, r := range tb.Dump(nil) {
			f := r.Flow()
			out = append(out, flow.FormatFlow(&f))
		}
		return out
	}
	if got, want := text(table), text(want); !slices.Equal(got, want) {
		t.Errorf("after the commit:\n%q\nwant, as the adds one by one:\n%q", got, want)
	}
}
