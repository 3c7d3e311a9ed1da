package ofconn

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// batchBridge is a tableBridge that runs flow mods in batches, one table
// update each, as the daemon does, and records the batches' sizes.
type batchBridge struct {
	tableBridge
	mu      sync.Mutex // guards batches
	batches []int
}

var _ FlowModBatcher = (*batchBridge)(nil)

func (b *batchBridge) FlowMods(v uint8, fms []*openflow.FlowMod, _ []Origin) []error {
	b.mu.Lock()
	b.batches = append(b.batches, len(fms))
	b.mu.Unlock()
	errs := make([]error, len(fms))
	b.t.Update(func(tx *flow.TableTxn) {
		for i, fm := range fms {
			mod, err := ofconv.FlowFromMod(nil, v, fm)
			if err != nil {
				errs[i] = err
				continue
			}
			switch mod.Cmd {
			case flow.CmdAdd:
				if err := tx.CheckGroups(mod.Flow); err != nil {
					errs[i] = ofconv.TableError(err)
				} else if err := tx.Add(mod.Flow); err != nil {
					errs[i] = ofconv.TableError(err)
				}
			case flow.CmdModify:
				tx.Modify(mod.Flow, mod.Strict, v == openflow.Version10)
			default:
				tx.Delete(mod.Flow, mod.Strict)
			}
		}
	})
	return errs
}

// largest returns the largest batch the bridge ran.
func (b *batchBridge) largest() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Max(append([]int{0}, b.batches...))
}

// encodeAll encodes ms as cl's next messages, into one buffer to be sent
// in one write, and returns their xids.
func (cl *client) encodeAll(ms ...openflow.Message) ([]byte, []uint32) {
	cl.t.Helper()
	var out []byte
	var xids []uint32
	for _, m := range ms {
		cl.xd++
		b, err := openflow.Encode(cl.v, cl.xd, m)
		if err != nil {
			cl.t.Fatal(err)
		}
		out = append(out, b...)
		xids = append(xids, cl.xd)
	}
	return out, xids
}

// missingGroupFlow is a flow mod that outputs to group 9, which no test
// adds: the bridge refuses it with OFPBAC_BAD_OUT_GROUP.
func missingGroupFlow(v uint8, prio uint16) *openflow.FlowMod {
	fm := addFlow(v, prio, 1)
	acts := []openflow.Action{&openflow.ActU32{Type: openflow.ActTypeGroup, Value: 9}}
	if v == openflow.Version10 {
		fm.Actions = acts
	} else {
		fm.Instructions = []openflow.Instruction{{Type: openflow.InstApplyActions, Actions: acts}}
	}
	return fm
}

// TestFlowModBatchErrorInMiddle sends flow mods back to back, one of them
// refused, then a barrier, in one write: the flow mods run in batches,
// the refused one alone gets an error reply, with its xid, before the
// barrier reply, and every other one is installed.
func TestFlowModBatchErrorInMiddle(t *testing.T) {
	for _, v := range []uint8{openflow.Version10, openflow.Version13} {
		t.Run(fmt.Sprintf("0x%02x", v), func(t *testing.T) {
			const n, bad = 40, 17
			br := &batchBridge{tableBridge: tableBridge{t: flow.NewTable()}}
			cl := dial(t, NewServer(br, Config{Logger: slog.New(slog.DiscardHandler)}), v)
			var ms []openflow.Message
			if v == openflow.Version10 {
				ms = append(ms, &openflow.SetFlowFormat{Format: openflow.FlowFormatNXM})
			}
			first := len(ms)
			for i := range n {
				if i == bad {
					ms = append(ms, missingGroupFlow(v, uint16(100+i)))
				} else {
					ms = append(ms, addFlow(v, uint16(100+i), 1))
				}
			}
			ms = append(ms, &openflow.BarrierRequest{})
			b, xids := cl.encodeAll(ms...)
			cl.sendRaw(b)
			var errXids []uint32
			for {
				h, m := cl.recv()
				if em, ok := m.(*openflow.ErrorMsg); ok {
					// OpenFlow 1.0 has no OFPBAC_BAD_OUT_GROUP: it
					// travels as a Nicira error there.
					if v != openflow.Version10 && em.Type != openflow.ErrTypeBadAction {
						t.Errorf("error reply for xid %d: type %d code %d, want OFPET_BAD_ACTION", h.Xid, em.Type, em.Code)
					}
					errXids = append(errXids, h.Xid)
					continue
				}
				if _, ok := m.(*openflow.BarrierReply); !ok || h.Xid != xids[len(xids)-1] {
					t.Fatalf("got %T xid %d, want the barrier reply (xid %d)", m, h.Xid, xids[len(xids)-1])
				}
				break
			}
			if want := []uint32{xids[first+bad]}; !slices.Equal(errXids, want) {
				t.Errorf("error replies for xids %v, want %v (the refused flow mod's only)", errXids, want)
			}
			if got := br.t.Len(); got != n-1 {
				t.Errorf("the table holds %d flows, want %d", got, n-1)
			}
			for _, r := range br.t.Dump(nil) {
				if r.Priority == 100+bad {
					t.Errorf("the refused flow mod's flow is installed: %+v", r)
				}
			}
			if got := br.largest(); got < 2 {
				t.Errorf("the largest batch held %d flow mods: the flow mods were not batched", got)
			}
		})
	}
}

// TestFlowModBatchOrder sends flow mods with a flow stats request and
// deletes among them, then a barrier, in one write: the request sees
// exactly the flow mods before it, the deletes those before them, and the
// barrier reply comes once every flow mod is in effect.
func TestFlowModBatchOrder(t *testing.T) {
	const v = openflow.Version13
	br := &batchBridge{tableBridge: tableBridge{t: flow.NewTable()}}
	cl := dial(t, NewServer(br, Config{Logger: slog.New(slog.DiscardHandler)}), v)
	var ms []openflow.Message
	for i := range 30 {
		ms = append(ms, addFlow(v, uint16(100+i), 1))
	}
	ms = append(ms, &openflow.FlowStatsRequest{Aggregate: true, TableID: 0xff, OutPort: openflow.PortAny, OutGroup: openflow.GroupAny})
	for i := range 20 {
		ms = append(ms, addFlow(v, uint16(200+i), 1))
	}
	// Delete the first ten flows (strict, by priority and match).
	for i := range 10 {
		fm := addFlow(v, uint16(100+i), 1)
		fm.Command, fm.TableID, fm.Instructions = openflow.FlowDeleteStrict, 0, nil
		ms = append(ms, fm)
	}
	ms = append(ms, &openflow.BarrierRequest{})
	b, xids := cl.encodeAll(ms...)
	cl.sendRaw(b)
	h, m := cl.recv()
	ag, ok := m.(*openflow.AggregateReply)
	if !ok || h.Xid != xids[30] {
		t.Fatalf("got %T xid %d, want the aggregate reply (xid %d)", m, h.Xid, xids[30])
	}
	if ag.FlowCount != 30 {
		t.Errorf("the stats request counted %d flows, want the 30 added before it", ag.FlowCount)
	}
	h, m = cl.recv()
	if _, ok := m.(*openflow.BarrierReply); !ok || h.Xid != xids[len(xids)-1] {
		t.Fatalf("got %T xid %d, want the barrier reply", m, h.Xid)
	}
	if got := br.t.Len(); got != 40 {
		t.Errorf("after the barrier the table holds %d flows, want 40", got)
	}
	if got := br.largest(); got < 2 {
		t.Errorf("the largest batch held %d flow mods: the flow mods were not batched", got)
	}
}

// TestFlowModBatchBounded checks that a batch is run when it is full, not
// held for as long as the peer keeps sending.
func TestFlowModBatchBounded(t *testing.T) {
	const v = openflow.Version13
	br := &batchBridge{tableBridge: tableBridge{t: flow.NewTable()}}
	cl := dial(t, NewServer(br, Config{Logger: slog.New(slog.DiscardHandler)}), v)
	var ms []openflow.Message
	for i := range 3 * maxBatchedFlowMods {
		ms = append(ms, addFlow(v, uint16(i), 1))
	}
	ms = append(ms, &openflow.BarrierRequest{})
	b, _ := cl.encodeAll(ms...)
	cl.sendRaw(b)
	if _, m := cl.recv(); m == nil {
		t.Fatal("no barrier reply")
	}
	if got := br.t.Len(); got != 3*maxBatchedFlowMods {
		t.Errorf("the table holds %d flows, want %d", got, 3*maxBatchedFlowMods)
	}
	if got := br.largest(); got > maxBatchedFlowMods {
		t.Errorf("a batch held %d flow mods, more than %d", got, maxBatchedFlowMods)
	}
}

// TestFlowModBarrierPairs sends flow mods each followed by a barrier, as
// ovs-ofctl add-flows sends them, all in one write, one of the flow mods
// refused: the refused one alone gets an error reply, with its xid, just
// before its own barrier's reply; no barrier is answered before the flow
// mods ahead of it are in the table; and a flow mod followed by a
// barrier runs on its own, not held for a batch.
func TestFlowModBarrierPairs(t *testing.T) {
	for _, v := range []uint8{openflow.Version10, openflow.Version13} {
		t.Run(fmt.Sprintf("0x%02x", v), func(t *testing.T) {
			const n, bad = 30, 11
			br := &batchBridge{tableBridge: tableBridge{t: flow.NewTable()}}
			cl := dial(t, NewServer(br, Config{Logger: slog.New(slog.DiscardHandler)}), v)
			if v == openflow.Version10 {
				cl.send(&openflow.SetFlowFormat{Format: openflow.FlowFormatNXM})
			}
			var ms []openflow.Message
			for i := range n {
				fm := addFlow(v, uint16(100+i), 1)
				if i == bad {
					fm = missingGroupFlow(v, uint16(100+i))
				}
				ms = append(ms, fm, &openflow.BarrierRequest{})
			}
			b, xids := cl.encodeAll(ms...)
			cl.sendRaw(b)
			for i := range n {
				modXid, barrierXid := xids[2*i], xids[2*i+1]
				h, m := cl.recv()
				if i == bad {
					if _, ok := m.(*openflow.ErrorMsg); !ok || h.Xid != modXid {
						t.Fatalf("pair %d: got %T xid %d, want the refused flow mod's error (xid %d)", i, m, h.Xid, modXid)
					}
					h, m = cl.recv()
				}
				if _, ok := m.(*openflow.BarrierReply); !ok || h.Xid != barrierXid {
					t.Fatalf("pair %d: got %T xid %d, want the barrier reply (xid %d)", i, m, h.Xid, barrierXid)
				}
				want := i + 1
				if i >= bad {
					want--
				}
				// The flow mods after this barrier may be in already,
				// never fewer than those before it.
				if got := br.t.Len(); got < want {
					t.Fatalf("barrier %d answered with %d flows in the table, want at least %d", i, got, want)
				}
			}
			if got := br.t.Len(); got != n-1 {
				t.Errorf("the table holds %d flows, want %d", got, n-1)
			}
			if got := br.largest(); got != 0 {
				t.Errorf("a batch held %d flow mods: a flow mod followed by a barrier was held", got)
			}
		})
	}
}
