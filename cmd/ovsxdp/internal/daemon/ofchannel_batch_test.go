package daemon

import (
	"slices"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TestOpenFlowFlowModBatch sends a daemon's management socket 600 of
// bench/rules' flow mods back to back with a barrier, in one write, as a
// controller sends them; one in the middle names a group that does not
// exist. The daemon runs them in batches: that one alone is answered
// with an error, with its xid, before the barrier reply, and once the
// barrier is answered every other flow is in the table.
func TestOpenFlowFlowModBatch(t *testing.T) {
	const n, bad, xid0 = 600, 301, 100
	d, sock := benchDaemon(t)
	p := dialOfctl(t, sock)
	mods := ofctlFlowMods(t, n, xid0)
	f, err := flow.ParseFlow("table=9,priority=7,reg14=0x1,actions=group:9", flow.CmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	acts, err := ofconv.ActionsToOF(openflow.Version10, &f.Match, f.Actions)
	if err != nil {
		t.Fatal(err)
	}
	mods[bad] = p.encode(xid0+bad, &openflow.FlowMod{Nicira: true, TableID: f.Table, Command: openflow.FlowAdd, Priority: f.Priority,
		BufferID: openflow.NoBuffer, OutPort: openflow.PortAny, OutGroup: openflow.GroupAny,
		Match: ofconv.FieldsFromMatch(&f.Match, true), Actions: acts})
	all := slices.Concat(append(mods, p.encode(1<<30, &openflow.BarrierRequest{}))...)
	d.mu.Lock()
	table := d.bridges["br0"].dp.Table()
	d.mu.Unlock()
	gen := table.Generation()
	go func() {
		// Not from the test's goroutine: the replies may fill the
		// socket before the daemon has read every message.
		if err := p.write(all); err != nil {
			t.Error(err)
		}
	}()
	if errs := p.waitBarrier(1 << 30); !slices.Equal(errs, []uint32{xid0 + bad}) {
		t.Errorf("error replies for xids %v, want one for xid %d", errs, xid0+bad)
	}
	if got := table.Len(); got != n-1 {
		t.Errorf("after the barrier reply the table holds %d flows, want %d", got, n-1)
	}
	// Each publication is a generation. The daemon reads at least a few
	// KiB at a time, dozens of flow mods, so that even when the kernel
	// hands the write over in small pieces the batches are many times
	// fewer than the flow mods.
	if pubs := table.Generation() - gen; pubs > n/2 {
		t.Errorf("%d flow mods were published %d times: they were not run in batches", n, pubs)
	}
}
