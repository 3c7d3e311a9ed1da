package ofconn

import (
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TestSetAsyncFilters: what a set async configuration lets through. A
// controller that asks for packet ins for action only, and flow
// removals for deletes only, gets a controller action's packet in and a
// delete's removal, not a table miss's packet in nor an idle timeout's
// removal; a management connection that sets one takes asynchronous
// messages from then on, as Open vSwitch sets a miss_send_len for it.
// test/TestAsyncConfigMatchesOVS holds the replies to Open vSwitch 3.1's.
func TestSetAsyncFilters(t *testing.T) {
	s := newTestServer()
	cl := dialController(t, s, openflow.Version13)
	cl.send(&openflow.SetAsync{AsyncBody: openflow.AsyncBody{Masks: openflow.AsyncMasks{{1 << flow.ReasonAction, 0}, {0x7, 0x7}, {1 << flow.RemovedDelete, 0}}}})
	cl.send(&openflow.GetAsyncRequest{})
	if r := expect[*openflow.GetAsyncReply](cl); r.Masks[0][0] != 1<<flow.ReasonAction || r.Masks[2][0] != 1<<flow.RemovedDelete {
		t.Errorf("async config read back %+v", r.Masks)
	}
	pi, data := testPacketIn()
	miss := &flow.PacketIn{Reason: flow.ReasonNoMatch, MaxLen: flow.MaxLenAll, InPort: 1, Cookie: flow.CookieNone}
	s.PacketIn(miss, data, 64)
	s.PacketIn(pi, data, 64)
	if m := expect[*openflow.PacketIn](cl); m.Reason != openflow.PacketInAction {
		t.Errorf("first packet in: reason %d, want action's: the miss's went through", m.Reason)
	}
	r := removedRule(t)
	s.FlowRemoved(r, flow.RemovedIdleTimeout, r.Installed)
	s.FlowRemoved(r, flow.RemovedDelete, r.Installed)
	if m := expect[*openflow.FlowRemoved](cl); m.Reason != uint8(flow.RemovedDelete) {
		t.Errorf("first flow removed: reason %d, want delete's: the idle timeout's went through", m.Reason)
	}

	svc := dial(t, s, openflow.Version14)
	svc.send(&openflow.SetAsync{AsyncBody: openflow.AsyncBody{Props: true, Properties: []openflow.AsyncProp{
		{Type: 5, Payload: []byte{0, 0, 0, 1 << flow.RemovedHardTimeout}}}}})
	svc.send(&openflow.BarrierRequest{})
	expect[*openflow.BarrierReply](svc)
	s.FlowRemoved(r, flow.RemovedHardTimeout, r.Installed)
	if m := expect[*openflow.FlowRemoved](svc); m.Reason != uint8(flow.RemovedHardTimeout) {
		t.Errorf("management connection: flow removed reason %d", m.Reason)
	}
}

// TestDefaultAsync: each version's default configuration is Open
// vSwitch's, read back as its GET_ASYNC_REPLY carries it.
func TestDefaultAsync(t *testing.T) {
	m := defaultAsync(openflow.Version13)
	b := asyncBody(&m, openflow.Version13, false)
	if want := (openflow.AsyncMasks{{0x3, 0}, {0x7, 0x7}, {0xf, 0}}); b.Masks != want {
		t.Errorf("OpenFlow 1.3 default %x, want %x", b.Masks, want)
	}
	m = defaultAsync(openflow.Version10)
	if m.primary[openflow.AsyncPacketIn]&reasonImplicitMiss == 0 || m.primary[openflow.AsyncFlowRemoved] != 0x7 {
		t.Errorf("OpenFlow 1.0 default %+v", m)
	}
	m = defaultAsync(openflow.Version14)
	b = asyncBody(&m, openflow.Version14, true)
	if len(b.Properties) != 2*openflow.NumAsync || b.Properties[1].Payload[3] != 0x3b || b.Properties[5].Payload[3] != 0x3f {
		t.Errorf("OpenFlow 1.4 default %+v", b.Properties)
	}
}
