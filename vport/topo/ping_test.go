package topo

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// TestPing pings across a veth pair between two namespaces, with PATH
// empty: a peer that answers, one that ignores echo requests, and an
// address nobody has. Lost requests are counted and Ping returns once
// wait has passed after the last request.
func TestPing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	tp, v := newTopo(t, 1)
	// A peer that ignores every echo request, in a namespace of its own.
	quiet, err := tp.AddNamespace("quiet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AddVeth(v.HostNS, "tq", quiet, "pq", 1); err != nil {
		t.Fatal(err)
	}
	if err := v.HostNS.AddAddr("tq", "10.9.1.1/24"); err != nil {
		t.Fatal(err)
	}
	if err := quiet.AddAddr("pq", "10.9.1.2/24"); err != nil {
		t.Fatal(err)
	}
	if err := quiet.sysctl("net/ipv4/icmp_echo_ignore_all", "1"); err != nil {
		t.Fatal(err)
	}
	const wait = 300 * time.Millisecond
	tests := []struct {
		name         string
		inIP         string
		inCount      int
		wantReceived int
	}{
		{name: "answers", inIP: "10.9.0.2", inCount: 5, wantReceived: 5},
		{name: "ignores-echo", inIP: "10.9.1.2", inCount: 3, wantReceived: 0},
		{name: "no-such-host", inIP: "10.9.0.3", inCount: 3, wantReceived: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An answering peer gets a generous wait: each reply ends
			// its own wait, so this costs nothing when all goes well.
			w := wait
			if tt.wantReceived > 0 {
				w = 10 * time.Second
			}
			start := time.Now()
			st, err := v.HostNS.Ping(context.Background(), net.ParseIP(tt.inIP), tt.inCount, 10*time.Millisecond, w)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if st.Sent != tt.inCount || st.Received != tt.wantReceived || st.Lost() != tt.inCount-tt.wantReceived {
				t.Errorf("%+v, %d lost; want %d sent, %d received", st, st.Lost(), tt.inCount, tt.wantReceived)
			}
			if (st.AvgRTT > 0) != (tt.wantReceived > 0) {
				t.Errorf("average RTT %v with %d replies", st.AvgRTT, st.Received)
			}
			if tt.wantReceived == 0 && took < w {
				t.Errorf("returned after %v, before the wait of %v had passed", took, w)
			}
			// Bounded: the requests and one wait, with room for a
			// loaded machine.
			if took > 30*time.Second {
				t.Errorf("took %v", took)
			}
		})
	}
}

// TestPingConcurrent runs pings to the same peer from one namespace at
// the same time: each raw socket sees the others' replies and must count
// its own only.
func TestPingConcurrent(t *testing.T) {
	_, v := newTopo(t, 1)
	const pings, count = 4, 10
	var wg sync.WaitGroup
	stats := make([]PingStats, pings)
	errs := make([]error, pings)
	for i := range pings {
		wg.Go(func() {
			stats[i], errs[i] = v.HostNS.Ping(context.Background(), net.IPv4(10, 9, 0, 2), count, 5*time.Millisecond, 10*time.Second)
		})
	}
	wg.Wait()
	for i := range pings {
		if errs[i] != nil || stats[i].Sent != count || stats[i].Received != count {
			t.Errorf("ping %d: %+v, %v; want %d sent and received", i, stats[i], errs[i], count)
		}
	}
}

// TestPingCancel checks that Ping stops when its context ends and returns
// the context's error with what it counted.
func TestPingCancel(t *testing.T) {
	_, v := newTopo(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	st, err := v.HostNS.Ping(ctx, net.IPv4(10, 9, 0, 3), 1000, 10*time.Millisecond, time.Second)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%+v, %v; want the context's deadline", st, err)
	}
	if st.Sent == 0 || st.Sent == 1000 || st.Received != 0 {
		t.Errorf("%+v; want some requests sent, not all, none answered", st)
	}
}

// TestPingErrors checks the arguments Ping refuses, before it needs root.
func TestPingErrors(t *testing.T) {
	n := &Namespace{Name: "none"}
	for _, tt := range []struct {
		name    string
		inIP    net.IP
		inCount int
	}{
		{name: "ipv6", inIP: net.ParseIP("fe80::1"), inCount: 1},
		{name: "nil-ip", inIP: nil, inCount: 1},
		{name: "zero-count", inIP: net.IPv4(10, 0, 0, 1), inCount: 0},
		{name: "count-over-seq-space", inIP: net.IPv4(10, 0, 0, 1), inCount: 1<<16 + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := n.Ping(context.Background(), tt.inIP, tt.inCount, 0, time.Second); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestPingReply checks which received messages count as replies: only the
// first echo reply from the destination to a request sent, with the
// pinger's identifier, within the wait.
func TestPingReply(t *testing.T) {
	dst := net.IPv4(10, 0, 0, 2).To4()
	t0 := time.Unix(1000, 0)
	msg := func(typ ipv4.ICMPType, id, seq int) []byte {
		b, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: pingPayload}}).Marshal(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		inMsg   []byte
		inFrom  net.Addr
		inAfter time.Duration
		wantOK  bool
	}{
		{name: "reply", inMsg: msg(ipv4.ICMPTypeEchoReply, 7, 1), inFrom: &net.IPAddr{IP: dst}, inAfter: time.Millisecond, wantOK: true},
		{name: "other-id", inMsg: msg(ipv4.ICMPTypeEchoReply, 8, 1), inFrom: &net.IPAddr{IP: dst}, inAfter: time.Millisecond},
		{name: "not-sent-yet", inMsg: msg(ipv4.ICMPTypeEchoReply, 7, 2), inFrom: &net.IPAddr{IP: dst}, inAfter: time.Millisecond},
		{name: "other-host", inMsg: msg(ipv4.ICMPTypeEchoReply, 7, 1), inFrom: &net.IPAddr{IP: net.IPv4(10, 0, 0, 3)}, inAfter: time.Millisecond},
		{name: "request", inMsg: msg(ipv4.ICMPTypeEcho, 7, 1), inFrom: &net.IPAddr{IP: dst}, inAfter: time.Millisecond},
		{name: "too-late", inMsg: msg(ipv4.ICMPTypeEchoReply, 7, 1), inFrom: &net.IPAddr{IP: dst}, inAfter: 2 * time.Second},
		{name: "truncated", inMsg: msg(ipv4.ICMPTypeEchoReply, 7, 1)[:3], inFrom: &net.IPAddr{IP: dst}, inAfter: time.Millisecond},
		{name: "udp-peer", inMsg: msg(ipv4.ICMPTypeEchoReply, 7, 1), inFrom: &net.UDPAddr{IP: dst}, inAfter: time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pinger{dst: &net.IPAddr{IP: dst}, id: 7, sent: []time.Time{t0, t0, t0}, got: make([]bool, 3)}
			rtt, ok := p.reply(tt.inMsg, tt.inFrom, 2, t0.Add(tt.inAfter), time.Second)
			if ok != tt.wantOK || (ok && rtt != tt.inAfter) {
				t.Fatalf("reply: %v, %v; want %v", rtt, ok, tt.wantOK)
			}
			if ok {
				if _, again := p.reply(tt.inMsg, tt.inFrom, 2, t0.Add(tt.inAfter), time.Second); again {
					t.Error("a duplicate reply counted twice")
				}
			}
		})
	}
}
