package test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
	"github.com/ovsxdp/ovsxdp/vport"
)

// dpTopo is a datapath over AF_XDP ports: a switch namespace holds the host
// ends of the endpoints' veths, the bridge's ports are opened on them, and
// the bridge removes a port whose link is deleted.
type dpTopo struct {
	sw *netns.NS
	br *datapath.Bridge
	// removed receives the final counters of each port that the bridge
	// removed because its link was deleted.
	removed chan removal
}

type removal struct {
	stats datapath.PortStats
	err   error
	took  time.Duration // from the deletion's notice to the port closed
}

// endpoint is a namespace with one end of a veth, whose other end is a
// bridge port.
type endpoint struct {
	ns   *netns.NS
	veth *netns.Veth
	ip   string
	port *vport.XSKPort
	dp   *datapath.Port
}

// newDPTopo starts a bridge (policy guarded, one poll thread) on a new
// switch namespace.
func newDPTopo(t *testing.T) *dpTopo {
	t.Helper()
	d := &dpTopo{sw: netns.New(t, "sw"), removed: make(chan removal, 16)}
	onLink := func(ev datapath.LinkEvent) {
		if ev.Kind == datapath.LinkRemoved {
			d.removed <- removal{stats: ev.Stats, err: ev.Err, took: ev.Took}
		}
	}
	br, err := datapath.New(datapath.Config{Name: "br-afxdp", PMDs: 1, Links: datapath.LinkConfig{OnEvent: onLink}})
	if err != nil {
		t.Fatal(err)
	}
	if err := br.Start(); err != nil {
		t.Fatal(err)
	}
	d.br = br
	t.Cleanup(func() {
		if err := br.Close(); err != nil {
			t.Errorf("close bridge: %v", err)
		}
	})
	return d
}

// addEndpoint creates namespace ROLE with the veth pair h-ROLE (switch
// side, bridge port ofport) and p-ROLE (address ip/24), with queues queues
// and frames UMEM frames per socket.
func (d *dpTopo) addEndpoint(t *testing.T, role, ip string, ofport uint32, queues, frames int) *endpoint {
	t.Helper()
	ns := netns.New(t, role)
	v := netns.AddVeth(t, d.sw, "h-"+role, ns, "p-"+role, queues)
	ns.AddAddr(t, v.Peer, ip+"/24")
	port, err := vport.OpenXSK(vport.XSKConfig{Device: v.Host, Netns: d.sw.Path(), Frames: frames})
	if err != nil {
		t.Fatal(err)
	}
	dp, err := d.br.AddPort(port, ofport)
	if err != nil {
		port.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		if _, err := d.br.RemovePort(ctx, v.Host); err != nil && !errors.Is(err, datapath.ErrNoPort) {
			t.Errorf("remove port %s: %v", v.Host, err)
		}
	})
	return &endpoint{ns: ns, veth: v, ip: ip, port: port, dp: dp}
}

// addFlows parses and installs flows in ovs-ofctl syntax.
func addFlows(t *testing.T, br *datapath.Bridge, flows ...string) {
	t.Helper()
	for _, s := range flows {
		f, err := flow.ParseFlow(s, flow.CmdAdd)
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		br.Table().Add(f)
	}
}

// l2Flows forwards between OpenFlow ports 1 and 2.
var l2Flows = []string{"in_port=1,actions=output:2", "in_port=2,actions=output:1"}

// ping pings ip from e, count times, and returns ping's output; it fails
// the test unless every reply came back.
func (e *endpoint) ping(t *testing.T, ip string, count int) string {
	t.Helper()
	testenv.RequireTool(t, "ping", "iputils-ping")
	out, err := e.ns.Run("ping", "-n", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "2", ip)
	if err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping %s from %s: %v\n%s", ip, e.ns.Name, err, out)
	}
	return out
}

// reach pings ip from e until a reply comes back or timeout passes.
func (e *endpoint) reach(ip string, timeout time.Duration) bool {
	return netns.Eventually(timeout, func() bool {
		_, err := e.ns.Run("ping", "-n", "-c", "1", "-W", "1", ip)
		return err == nil
	})
}

// quiesceStats waits for a grace period of the bridge, so that no batch is
// in flight, and returns every port's counters.
func quiesceStats(t *testing.T, br *datapath.Bridge) []datapath.PortStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := br.Synchronize(ctx); err != nil {
		t.Fatal(err)
	}
	var out []datapath.PortStats
	for _, p := range br.Ports() {
		out = append(out, p.Stats())
	}
	return out
}

// checkBalanced fails the test for every port whose ingress ledger does
// not balance.
func checkBalanced(t *testing.T, stats ...datapath.PortStats) {
	t.Helper()
	for _, s := range stats {
		if !s.Balanced() {
			t.Errorf("port %s: ledger does not balance: rx %d + copies %d != sent %d + drops %d (%v)",
				s.Name, s.RxPackets, s.Copies, s.Sent, s.RxDropped(), s.Drops)
		}
	}
}
