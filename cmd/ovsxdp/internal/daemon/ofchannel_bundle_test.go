package daemon

import (
	"context"
	"errors"
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
