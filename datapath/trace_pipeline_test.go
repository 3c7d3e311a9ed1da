package datapath

import (
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestTracePipelineAgreesWithPollThread runs microflows through a
// multi-table pipeline twice: traced, and as packets through the poll
// threads. The frames each port sends and the drop counters that move must
// be what the trace says: both come from the same translation and the same
// output resolver, and this test fails if they drift apart.
func TestTracePipelineAgreesWithPollThread(t *testing.T) {
	b := newTestBridge(t, Config{Idle: IdleSleep})
	var mps []*vport.MemPort
	var ports []*Port
	for i, name := range []string{"p1", "p2", "p3", "p4"} {
		mp, p := addMemPort(t, b, vport.MemConfig{Name: name}, uint32(i+1))
		mps, ports = append(mps, mp), append(ports, p)
	}
	// p4's device has lost its carrier: the guarded policy refuses it, in
	// the trace as on the poll thread (a device without carrier would
	// still take the frames).
	mps[3].Device().SetCarrier(false)
	addFlows(t, b,
		"in_port=1,actions=load:0x2->NXM_NX_REG0[],resubmit(,1)",
		"in_port=2,actions=move:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],load:1->reg1,resubmit(,1)",
		"in_port=3,actions=output:1,resubmit(,0)",
		"table=1,priority=10,reg0=2,reg1=0,ip,actions=dec_ttl,mod_dl_src:00:00:00:00:00:aa,resubmit(,2),output:3",
		"table=1,priority=10,reg0=2,reg1=0,arp,actions=clone(mod_vlan_vid:7,output:2),output:3",
		"table=1,priority=20,reg1=1,actions=write_metadata:0x4,goto_table:2",
		"table=2,ip,nw_ttl=63,actions=output:2",
		"table=2,metadata=0x4,actions=output:NXM_NX_REG0[0..15],output:1",
		"table=1,priority=30,reg0=2,udp,tp_dst=99,actions=mod_nw_tos:8,resubmit(,3)",
		"table=3,actions=output:4,output:9,IN_PORT,FLOOD",
	)
	tests := []struct {
		in          string
		wantActions string // the trace's datapath actions
		wantDrop    string // the trace's drop reasons
		wantDropped string // the reasons of the copies the trace drops, in order
	}{
		{"in_port=1,tcp,nw_ttl=64", "set(eth(src=00:00:00:00:00:aa)),set(ipv4(ttl=63)),2,3", "", ""},
		{"in_port=1,tcp,nw_ttl=10", "set(eth(src=00:00:00:00:00:aa)),set(ipv4(ttl=9)),3", "", ""},
		{"in_port=1,udp,nw_ttl=1", "drop", "ttl-exceeded", ""},
		{"in_port=1,arp,arp_op=1", "push_vlan(vid=7,pcp=0),2,pop_vlan,3", "", ""},
		{"in_port=2,ip,nw_ttl=5", "1", "", "same-port"},
		{"in_port=3,udp,nw_ttl=5", "drop", "resubmit-depth", ""},
		// Every way resolveOutput ends, across tables: a port whose
		// device has no carrier (guarded: no-carrier), a port that does not
		// exist, the ingress port, and a flood that skips it.
		{"in_port=1,udp,tp_dst=99", "set(ipv4(tos=0x8/0xfc)),1,2,3", "", "no-carrier,port-gone,no-carrier"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			k, err := flow.ParseMicroflow(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			tr := b.Trace(k)
			if got := tr.DatapathActions(); got != tt.wantActions {
				t.Errorf("trace: datapath actions %q, want %q\n%s", got, tt.wantActions, tr)
			}
			var reasons []string
			for _, r := range tr.DropReasons() {
				reasons = append(reasons, r.String())
			}
			if got := strings.Join(reasons, ","); got != tt.wantDrop {
				t.Errorf("trace: drop reasons %q, want %q", got, tt.wantDrop)
			}
			var dropped []string
			for _, o := range tr.Outputs {
				if o.Dropped {
					dropped = append(dropped, o.Reason.String())
				}
			}
			if got := strings.Join(dropped, ","); got != tt.wantDropped {
				t.Errorf("trace: copies dropped for %q, want %q", got, tt.wantDropped)
			}

			// What the trace predicts for the in port's drop counters.
			var wantDrops [NumDropReasons]uint64
			sent := false
			for _, o := range tr.Outputs {
				if o.Dropped {
					wantDrops[o.Reason]++
				} else {
					sent = true
				}
			}
			if !sent && len(tr.Outputs) == 0 {
				wantDrops[verdictDrop(tr.Verdict)]++
			}

			in := ports[k.InPort-1]
			before := in.Stats()
			if mps[k.InPort-1].Inject(0, [][]byte{flow.BuildFrame(&k)}) != 1 {
				t.Fatal("inject failed")
			}
			quiesce(t, b, mps...)
			after := in.Stats()
			for r := range after.Drops {
				if d := after.Drops[r] - before.Drops[r]; d != wantDrops[r] {
					t.Errorf("poll thread counted %d %s drops, trace says %d", d, DropReason(r), wantDrops[r])
				}
			}
			checkSentAsTraced(t, tr, mps, &k)
		})
	}
}

// TestTracePipelineFormat checks ofproto/trace's text for a multi-table
// pipeline: each table's step, nested resubmits, the final flow with its
// registers, the megaflow and the datapath actions. The text expected is
// what Open vSwitch 3.1's ofproto/trace printed for the same pipeline and
// microflow (with the bridge's name).
func TestTracePipelineFormat(t *testing.T) {
	b := newTestBridge(t, Config{Idle: IdleSleep})
	for i, name := range []string{"p1", "p2", "p3"} {
		addMemPort(t, b, vport.MemConfig{Name: name}, uint32(i+1))
	}
	addFlows(t, b,
		"in_port=1,actions=load:0x2->NXM_NX_REG0[],resubmit(,1),output:3",
		"table=1,reg0=2,ip,actions=mod_nw_dst:10.0.0.9,resubmit(,2)",
		"table=2,priority=7,actions=output:2",
	)
	k, err := flow.ParseMicroflow("in_port=1,udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_ttl=64,tp_src=1,tp_dst=2")
	if err != nil {
		t.Fatal(err)
	}
	got := b.Trace(k).String()
	want := `Flow: udp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=1,tp_dst=2

bridge("` + b.Name() + `")
` + strings.Repeat("-", len(`bridge("`+b.Name()+`")`)) + `
 0. in_port=1, priority 32768
    load:0x2->NXM_NX_REG0[]
    resubmit(,1)
     1. ip,reg0=0x2, priority 32768
            mod_nw_dst:10.0.0.9
            resubmit(,2)
         2. priority 7
            output:2
    output:3

Final flow: udp,reg0=0x2,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=10.0.0.1,nw_dst=10.0.0.9,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=1,tp_dst=2
Megaflow: recirc_id=0,eth,udp,in_port=1,nw_dst=10.0.0.2,nw_frag=no
Datapath actions: set(ipv4(dst=10.0.0.9)),2,3
`
	if got != want {
		t.Errorf("trace\n%s\nwant\n%s", got, want)
	}
}
