package test

import (
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestAFXDPForwarding runs ping, TCP and HTTP between two namespaces
// through the datapath over AF_XDP ports (veths with 4 queues), first with
// L2 forwarding rules, then with L3 rules that rewrite fields (TTL, the
// destination address, the destination port) and still deliver.
func TestAFXDPForwarding(t *testing.T) {
	curl := testenv.RequireTool(t, "curl", "curl")
	d := newDPTopo(t)
	a := d.addEndpoint(t, "a", "10.0.0.1", 1, 4, 1024)
	b := d.addEndpoint(t, "b", "10.0.0.2", 2, 4, 1024)
	addFlows(t, d.br, l2Flows...)

	tcp := b.ns.Start(t, helperArgs(t, "tcp-echo", "10.0.0.2:5001")...)
	http := b.ns.Start(t, helperArgs(t, "http-server", "10.0.0.2:8080")...)
	for _, p := range []interface {
		WaitOutput(string, time.Duration) error
	}{tcp, http} {
		if err := p.WaitOutput("listening", 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	checkTCP := func(t *testing.T) {
		out := a.ns.MustRun(t, helperArgs(t, "tcp-client", "10.0.0.2:5001", "4194304")...)
		if !strings.Contains(out, "ok 4194304") {
			t.Fatalf("tcp client: %s", out)
		}
	}
	checkHTTP := func(t *testing.T) {
		out := a.ns.MustRun(t, curl, "-sS", "--max-time", "10", "-o", "/dev/null",
			"-w", "%{http_code} %{size_download}", "http://10.0.0.2:8080/big")
		if out != "200 262144" {
			t.Fatalf("curl /big: %q, want \"200 262144\"", out)
		}
	}

	t.Run("l2", func(t *testing.T) {
		t.Run("ping", func(t *testing.T) {
			if out := a.ping(t, "10.0.0.2", 5); !strings.Contains(out, "ttl=64") {
				t.Errorf("ping: want replies with ttl=64:\n%s", out)
			}
		})
		t.Run("tcp", checkTCP)
		t.Run("http", checkHTTP)
	})

	t.Run("l3", func(t *testing.T) {
		addFlows(t, d.br,
			"priority=40000,in_port=2,icmp,actions=dec_ttl,output:1",
			"priority=40000,in_port=1,tcp,actions=dec_ttl,output:2",
			"priority=40000,in_port=2,tcp,actions=dec_ttl,output:1",
			"priority=40100,in_port=1,udp,tp_dst=9999,actions=mod_tp_dst:7777,output:2",
			"priority=40100,in_port=1,udp,tp_dst=9998,actions=mod_nw_dst:10.0.0.2,output:2",
		)
		t.Run("ping-dec-ttl", func(t *testing.T) {
			if out := a.ping(t, "10.0.0.2", 5); !strings.Contains(out, "ttl=63") {
				t.Errorf("ping: want replies with ttl=63 (dec_ttl):\n%s", out)
			}
		})
		t.Run("tcp-dec-ttl", checkTCP)
		t.Run("http-dec-ttl", checkHTTP)
		t.Run("udp-mod-tp-dst", func(t *testing.T) {
			rx := b.ns.Start(t, helperArgs(t, "udp-recv", "10.0.0.2:7777")...)
			if err := rx.WaitOutput("listening", 10*time.Second); err != nil {
				t.Fatal(err)
			}
			a.ns.MustRun(t, helperArgs(t, "udp-send", "10.0.0.2:9999", "to-9999", "10")...)
			if err := rx.WaitOutput("got to-9999 from 10.0.0.1:", 20*time.Second); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("udp-mod-nw-dst", func(t *testing.T) {
			a.ns.SetNeigh(t, a.veth.Peer, "10.0.0.99", b.ns.MAC(t, b.veth.Peer))
			rx := b.ns.Start(t, helperArgs(t, "udp-recv", "10.0.0.2:9998")...)
			if err := rx.WaitOutput("listening", 10*time.Second); err != nil {
				t.Fatal(err)
			}
			a.ns.MustRun(t, helperArgs(t, "udp-send", "10.0.0.99:9998", "to-99", "10")...)
			if err := rx.WaitOutput("got to-99 from 10.0.0.1:", 20*time.Second); err != nil {
				t.Fatal(err)
			}
		})
		// Every rewriting rule carried the traffic above.
		for _, r := range d.br.Table().Dump(nil) {
			if packets, _ := r.Stats(); r.Priority >= 40000 && packets == 0 {
				t.Errorf("rule %+v matched no packet", r.Flow())
			}
		}
	})

	stats := quiesceStats(t, d.br)
	checkBalanced(t, stats...)
	for _, s := range stats {
		t.Logf("%s: rx %d sent %d tx %d drops %v", s.Name, s.RxPackets, s.Sent, s.TxPackets, s.Drops)
		if s.RxPackets == 0 || s.TxPackets == 0 {
			t.Errorf("%s carried no traffic", s.Name)
		}
	}
	// Every frame the kernel delivered went back to its fill ring, lent
	// to outputs (GSO packets included) or dropped: with the traffic
	// over, each fill ring is full again (a late frame from an endpoint's
	// stack goes back with the next poll).
	for _, e := range []*endpoint{a, b} {
		full := netns.Eventually(10*time.Second, func() bool {
			f := e.port.FillStats()
			return f.Posted == f.Size
		})
		if f := e.port.FillStats(); !full {
			pending := 0
			for q := range e.port.RxQueues() {
				pending += e.port.RxPending(q)
			}
			t.Errorf("%s: fill rings hold %d of their %d frames 10s after the traffic (%d pending on the rx rings)", e.port.Name(), f.Posted, f.Size, pending)
		}
	}
}
