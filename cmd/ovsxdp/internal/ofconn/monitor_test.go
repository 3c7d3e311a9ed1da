package ofconn

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// watchBridge is a tableBridge that reports its flow changes to the
// server's monitors, as the daemon does.
type watchBridge struct {
	*tableBridge
	mu  sync.Mutex // orders flow changes and reports
	srv *Server
}

var _ FlowWatcher = (*watchBridge)(nil)

func (b *watchBridge) WatchFlows(fn func(p *flow.Parser, rules []*flow.Rule) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fn(nil, b.t.Dump(nil))
}

func ruleName(r *flow.Rule) string {
	m := r.Match()
	return fmt.Sprintf("%d/%d/%s", r.Table, r.Priority, flow.FormatMatch(&m, r.Priority))
}

func (b *watchBridge) FlowMod(v uint8, fm *openflow.FlowMod, from Origin) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	before := map[string]*flow.Rule{}
	for _, r := range b.t.Dump(nil) {
		before[ruleName(r)] = r
	}
	if err := b.tableBridge.FlowMod(v, fm, from); err != nil {
		return err
	}
	var changes []FlowChange
	after := map[string]bool{}
	for _, r := range b.t.Dump(nil) {
		after[ruleName(r)] = true
		switch old := before[ruleName(r)]; {
		case old == nil:
			changes = append(changes, FlowChange{Event: FlowAdded, Rule: r})
		case old != r:
			changes = append(changes, FlowChange{Event: FlowModified, Rule: r})
		}
	}
	for name, r := range before {
		if !after[name] {
			changes = append(changes, FlowChange{Event: FlowDeleted, Reason: ReasonDelete, Rule: r})
		}
	}
	b.srv.FlowsChanged(from, changes)
	return nil
}

func newWatchServer() (*Server, *watchBridge) {
	b := &watchBridge{tableBridge: &tableBridge{t: flow.NewTable()}}
	s := newTestServer()
	s.br = b
	b.srv = s
	return s, b
}

// monitorRequest is ovs-ofctl's watch: request in version v, without the
// own flag unless own.
func monitorRequest(v uint8, own bool) *openflow.FlowMonitorRequest {
	flags := monInitial | monAdd | monDelete | monModify | monActions
	fm := openflow.FlowMonitor{ID: 1, OutPort: openflow.PortAny, OutGroup: openflow.GroupAny, TableID: 0xff}
	f := openflow.MonitorNicira
	switch {
	case v == openflow.Version13:
		f = openflow.MonitorONF
	case v >= openflow.Version14:
		f = openflow.MonitorOpenFlow14
	}
	if own {
		flags |= monOwn
		if f == openflow.MonitorOpenFlow14 {
			flags = flags&^monOwn | monOnlyOwn14
		}
	}
	fm.Flags = flags
	return &openflow.FlowMonitorRequest{Format: f, Monitors: []openflow.FlowMonitor{fm}}
}

func addFlow(v uint8, prio uint16, port uint32) *openflow.FlowMod {
	fm := &openflow.FlowMod{Command: openflow.FlowAdd, Priority: prio, BufferID: openflow.NoBuffer, OutPort: openflow.PortAny,
		OutGroup: openflow.GroupAny, Match: []openflow.Field{wireField("reg0", v == openflow.Version10, []byte{0, 0, 0, byte(prio)})}}
	acts := []openflow.Action{&openflow.ActOutput{Port: port}}
	if v == openflow.Version10 {
		fm.Nicira, fm.Actions = true, acts
	} else {
		fm.Instructions = []openflow.Instruction{{Type: openflow.InstApplyActions, Actions: acts}}
	}
	return fm
}

// barrier waits for the connection's earlier requests to be done.
func (cl *client) barrier() {
	cl.t.Helper()
	cl.send(&openflow.BarrierRequest{})
	if _, m := cl.recv(); m == nil {
		cl.t.Fatal("no barrier reply")
	} else if _, ok := m.(*openflow.BarrierReply); !ok {
		cl.t.Fatalf("got %T, want the barrier reply: a request was refused", m)
	}
}

// updates reads the next flow monitor reply.
func (cl *client) updates() (openflow.Header, []openflow.FlowUpdate) {
	cl.t.Helper()
	h, m := cl.recv()
	r, ok := m.(*openflow.FlowMonitorReply)
	if !ok {
		cl.t.Fatalf("got %T (%+v), want a flow monitor reply", m, m)
	}
	return h, r.Updates
}

// TestFlowMonitorOwn checks that a monitor without the own flag hears of
// its own connection's changes as one abbreviated update naming the
// request, of another connection's in full, and with the flag of its
// own in full.
func TestFlowMonitorOwn(t *testing.T) {
	for _, v := range Versions {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			s, _ := newWatchServer()
			a, b := dial(t, s, v), dial(t, s, v)
			b.send(addFlow(v, 1, 1))
			b.barrier()
			xid := a.send(monitorRequest(v, false))
			h, us := a.updates()
			if h.Xid != xid || len(us) != 1 || us[0].Priority != 1 {
				t.Fatalf("initial reply %+v %+v, want flow 1 answering xid %d", h, us, xid)
			}
			abbrev, added := openflow.NXUpdateAbbrev, openflow.NXUpdateAdded
			if v >= openflow.Version14 {
				abbrev, added = openflow.UpdateAbbrev, openflow.UpdateAdded
			}
			xid = a.send(addFlow(v, 2, 1))
			h, us = a.updates()
			if h.Xid != 0 || len(us) != 1 || us[0].Event != abbrev || us[0].Xid != xid {
				t.Fatalf("own change: %+v %+v, want one abbreviated update for xid %d", h, us, xid)
			}
			b.send(addFlow(v, 3, 2))
			if _, us = a.updates(); len(us) != 1 || us[0].Event != added || us[0].Priority != 3 {
				t.Fatalf("another connection's change: %+v, want flow 3 added", us)
			}
			// A new request with id 1 replaces the monitor.
			a.send(monitorRequest(v, true))
			if _, us = a.updates(); len(us) != 3 {
				t.Fatalf("initial reply %+v, want 3 flows", us)
			}
			a.send(addFlow(v, 4, 2))
			if _, us = a.updates(); len(us) != 1 || us[0].Event != added || us[0].Priority != 4 {
				t.Fatalf("own change with own: %+v, want flow 4 added in full", us)
			}
		})
	}
}

// TestFlowMonitorPause checks that a monitor that does not read never
// blocks flow changes: its updates pause, and once it reads again it gets
// every flow and is told they resumed.
func TestFlowMonitorPause(t *testing.T) {
	for _, v := range []uint8{openflow.Version10, openflow.Version13, openflow.Version15} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			s, br := newWatchServer()
			// a stays silent and unread for as long as b's changes
			// take, which under -race on a loaded machine has passed a
			// minute: neither the write timeout nor a probe (an echo
			// request a would read in place of an update) may end it
			// first.
			s.writeTimeout, s.probeInterval = time.Hour, -1
			a, b := dial(t, s, v), dial(t, s, v)
			a.send(monitorRequest(v, true))
			if _, us := a.updates(); len(us) != 0 {
				t.Fatalf("initial reply %+v, want none", us)
			}
			// a does not read (a pipe: nothing is buffered) while b
			// makes many more changes than its queue holds.
			const n = 2 * asyncQueueLen
			for i := range n {
				b.send(addFlow(v, uint16(i+1), 1))
			}
			b.barrier()
			if got := br.t.Len(); got != n {
				t.Fatalf("%d flows, want %d", got, n)
			}
			if s.mons.paused.Load() == 0 {
				t.Fatal("the monitor's updates never paused")
			}
			seen := map[uint16]bool{}
			paused, resumed := false, false
			for !resumed {
				_, m := a.recv()
				switch m := m.(type) {
				case *openflow.FlowMonitorPaused:
					paused = true
				case *openflow.FlowMonitorResumed:
					resumed = true
				case *openflow.FlowMonitorReply:
					for _, u := range m.Updates {
						switch {
						case v >= openflow.Version14 && u.Event == openflow.UpdatePaused:
							paused = true
						case v >= openflow.Version14 && u.Event == openflow.UpdateResumed:
							resumed = true
						default:
							seen[u.Priority] = true
						}
					}
				default:
					t.Fatalf("got %T", m)
				}
				if resumed && !paused {
					t.Fatal("resumed before paused")
				}
			}
			if len(seen) != n {
				t.Fatalf("%d flows reported by the time updates resumed, want all %d", len(seen), n)
			}
			// Updates flow again.
			b.send(addFlow(v, n+1, 1))
			if _, us := a.updates(); len(us) != 1 || us[0].Priority != n+1 {
				t.Fatalf("after resuming: %+v, want flow %d", us, n+1)
			}
		})
	}
}

// TestFlowMonitorCancelErrors checks that cancelling a monitor that does
// not exist gets OFPMOFC_UNKNOWN_MONITOR in the form Open vSwitch gives
// it in each version (ovs-ofctl encode-error-reply OFPMOFC_UNKNOWN_MONITOR).
func TestFlowMonitorCancelErrors(t *testing.T) {
	want := map[uint8]openflow.ErrorMsg{
		openflow.Version10: {Type: 0xb0c2, Code: 0, Data: []byte{0, 0, 0x23, 0x20, 0, 1, 2, 7}},
		openflow.Version13: {Type: openflow.ErrTypeExperimenter, Code: 8, Experimenter: openflow.NiciraExperimenter},
		openflow.Version14: {Type: errTypeMonitorFailed, Code: 3},
	}
	for v, w := range want {
		s, _ := newWatchServer()
		cl := dial(t, s, v)
		cl.send(monitorRequest(v, true))
		cl.updates()
		cl.send(&openflow.FlowMonitorCancel{ID: 1})
		cl.barrier()
		cl.send(&openflow.FlowMonitorCancel{ID: 1})
		_, m := cl.recv()
		em, ok := m.(*openflow.ErrorMsg)
		if !ok || em.Type != w.Type || em.Code != w.Code || em.Experimenter != w.Experimenter || !bytes.HasPrefix(em.Data, w.Data) {
			t.Errorf("v%d: cancelling an unknown monitor: %#v, want %#v", v, m, w)
		}
	}
}
