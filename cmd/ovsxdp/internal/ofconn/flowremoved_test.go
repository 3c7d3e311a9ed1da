package ofconn

import (
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// removedRule is a rule of table 2 with send_flow_rem, as a table keeps
// it.
func removedRule(t *testing.T) *flow.Rule {
	t.Helper()
	f, err := flow.ParseFlow("table=2,priority=6,arp,cookie=0x5,idle_timeout=30,hard_timeout=1,send_flow_rem,actions=drop", flow.CmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	tbl := flow.NewTable()
	if err := tbl.Add(f); err != nil {
		t.Fatal(err)
	}
	r := tbl.Dump(nil)[0]
	r.AddStats(3, 180, time.Now().UnixNano())
	return r
}

// TestFlowRemovedForms: a flow removal reaches each connection in its
// version and flow format (NXT_FLOW_REMOVED for OpenFlow 1.0 with NXM),
// for the reasons its version's default asynchronous configuration
// sends (a group's deletion from OpenFlow 1.3 on, a meter's from 1.4),
// and never a slave. test/TestFlowRemovedMatchesOVS holds the messages
// to Open vSwitch 3.1's.
func TestFlowRemovedForms(t *testing.T) {
	r := removedRule(t)
	at := r.Installed.Add(2500 * time.Millisecond)
	for _, v := range Versions {
		s := newTestServer()
		cl := dialController(t, s, v)
		nxm := dialController(t, s, v)
		nxm.send(&openflow.SetFlowFormat{Format: openflow.FlowFormatNXM})
		nxm.send(&openflow.BarrierRequest{})
		expect[*openflow.BarrierReply](nxm)
		slave := dialController(t, s, v)
		if v == openflow.Version10 {
			slave.send(&openflow.NXRoleRequest{Role: 2})
			expect[*openflow.NXRoleReply](slave)
		} else {
			slave.send(&openflow.RoleRequest{Role: openflow.Role{Role: openflow.RoleSlave}})
			expect[*openflow.RoleReply](slave)
		}

		s.FlowRemoved(r, flow.RemovedMeterDelete, at)
		s.FlowRemoved(r, flow.RemovedGroupDelete, at)
		s.FlowRemoved(r, flow.RemovedHardTimeout, at)
		want := []flow.RemovedReason{flow.RemovedHardTimeout}
		if v >= openflow.Version13 {
			want = append([]flow.RemovedReason{flow.RemovedGroupDelete}, want...)
		}
		if v >= openflow.Version14 {
			want = append([]flow.RemovedReason{flow.RemovedMeterDelete}, want...)
		}
		for _, c := range []*client{cl, nxm} {
			for _, reason := range want {
				m := expect[*openflow.FlowRemoved](c)
				nx := c == nxm && v == openflow.Version10
				table := uint8(2)
				if v == openflow.Version10 && !nx {
					table = 0xff // OpenFlow 1.0's form has none
				}
				if m.Nicira != nx || m.Reason != uint8(reason) || m.Cookie != 5 || m.Priority != 6 || m.TableID != table ||
					m.DurationSec != 2 || m.DurationNsec != 5e8 || m.IdleTimeout != 30 || m.PacketCount != 3 || m.ByteCount != 180 {
					t.Errorf("v%d (nxm %v): %s: flow removed %+v", v, c == nxm, reason, m)
				}
				if hard := uint16(1); v >= openflow.Version13 && m.HardTimeout != hard {
					t.Errorf("v%d: hard timeout %d, want %d", v, m.HardTimeout, hard)
				}
				if v == openflow.Version10 && !nx && m.Match10.DlType != 0x0806 || (v != openflow.Version10 || nx) && len(m.Match) != 1 {
					t.Errorf("v%d (nxm %v): match %+v %v", v, c == nxm, m.Match10, m.Match)
				}
			}
		}
		// The slave got none: the first thing it hears is its barrier's
		// reply.
		slave.send(&openflow.BarrierRequest{})
		if _, m := slave.recv(); m == nil {
			t.Fatalf("v%d: slave: nothing", v)
		} else if _, ok := m.(*openflow.BarrierReply); !ok {
			t.Errorf("v%d: a slave got %T before its barrier reply", v, m)
		}
	}
}
