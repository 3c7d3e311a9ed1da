package topo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

func requireTopo(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "ip", "iproute2")
	testenv.RequireTool(t, "ethtool", "ethtool")
}

// newTopo returns a topology with two namespaces joined by a veth pair
// with queues queues and addresses 10.9.0.1/24 (a) and 10.9.0.2/24 (b).
func newTopo(t *testing.T, queues int) (*Topology, *Veth) {
	t.Helper()
	requireTopo(t)
	tp := New("ovsxdp-topotest-" + Suffix())
	t.Cleanup(func() {
		if err := tp.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	a, err := tp.AddNamespace("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := tp.AddNamespace("b")
	if err != nil {
		t.Fatal(err)
	}
	v, err := AddVeth(a, "ta", b, "tb", queues)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddAddr("ta", "10.9.0.1/24"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddAddr("tb", "10.9.0.2/24"); err != nil {
		t.Fatal(err)
	}
	return tp, v
}

// TestVeth checks a veth pair's queue counts, the peer's tx checksum
// offload, and that traffic passes between the namespaces.
func TestVeth(t *testing.T) {
	tests := []struct {
		name       string
		inQueues   int
		wantQueues string
	}{
		{name: "one-queue", inQueues: 1, wantQueues: "1"},
		{name: "four-queues", inQueues: 4, wantQueues: "4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, v := newTopo(t, tt.inQueues)
			for _, end := range []struct {
				ns  *Namespace
				dev string
			}{{v.HostNS, v.Host}, {v.PeerNS, v.Peer}} {
				for _, dir := range []string{"tx", "rx"} {
					out, err := end.ns.Output(context.Background(), "sh", "-c", "ls /sys/class/net/"+end.dev+"/queues | grep -c "+dir+"-")
					if err != nil {
						t.Fatal(err)
					}
					if got := strings.TrimSpace(out); got != tt.wantQueues {
						t.Errorf("%s: %s %s queues, want %s", end.dev, got, dir, tt.wantQueues)
					}
				}
			}
			out, err := v.PeerNS.Output(context.Background(), "ethtool", "-k", v.Peer)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "tx-checksumming: off") {
				t.Errorf("peer %s: tx checksum offload not off:\n%s", v.Peer, out)
			}
			if err := v.HostNS.Exec(context.Background(), "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", "10.9.0.2"); err != nil {
				t.Error(err)
			}
			for _, end := range []*Namespace{v.HostNS, v.PeerNS} {
				if ok, err := end.XDPAttached(map[*Namespace]string{v.HostNS: v.Host, v.PeerNS: v.Peer}[end]); err != nil || ok {
					t.Errorf("%s: XDP attached %v, %v; want none", end.Name, ok, err)
				}
			}
			macA, err := v.HostNS.MAC(v.Host)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.PeerNS.SetNeigh(v.Peer, net.IPv4(10, 9, 0, 1), macA); err != nil {
				t.Fatal(err)
			}
			out, err = v.PeerNS.IP("neigh", "show", "10.9.0.1")
			if err != nil || !strings.Contains(out, macA.String()) || !strings.Contains(out, "PERMANENT") {
				t.Errorf("neighbour entry: %v: %q", err, out)
			}
		})
	}
}

// TestDo checks that sockets created in Do belong to the namespace: a
// listener in b accepts a connection dialed from a, and a dial from the
// caller's namespace finds no such address.
func TestDo(t *testing.T) {
	_, v := newTopo(t, 1)
	var ln net.Listener
	if err := v.PeerNS.Do(func() (err error) {
		ln, err = net.Listen("tcp4", "10.9.0.2:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.WriteString(c, "hello")
			c.Close()
		}
	}()
	var c net.Conn
	if err := v.HostNS.Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v; want hello", got, err)
	}
	if c, err := net.DialTimeout("tcp4", ln.Addr().String(), 200*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("the namespace's listener is reachable from the caller's namespace")
	}
	wantErr := errors.New("fn's error")
	if err := v.HostNS.Do(func() error { return wantErr }); !errors.Is(err, wantErr) {
		t.Fatalf("Do returned %v, want fn's error", err)
	}
}

// TestClose checks that Close kills the processes, deletes the namespaces
// (their veths with them), is idempotent, and that the topology refuses
// additions afterwards.
func TestClose(t *testing.T) {
	tp, v := newTopo(t, 2)
	p, err := v.PeerNS.Start("sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	names := tp.Namespaces()
	if len(names) != 2 {
		t.Fatalf("namespaces %v, want 2", names)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() {
		t.Error("process runs on after Close")
	}
	all, err := List()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if slices.Contains(all, n) {
			t.Errorf("namespace %s left after Close", n)
		}
	}
	if got := tp.Namespaces(); len(got) != 0 {
		t.Errorf("namespaces after Close: %v", got)
	}
	if err := tp.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := tp.AddNamespace("c"); !errors.Is(err, ErrClosed) {
		t.Errorf("AddNamespace after Close: %v, want ErrClosed", err)
	}
	if _, err := v.PeerNS.Start("true"); !errors.Is(err, ErrNamespaceDeleted) {
		t.Errorf("Start in a deleted namespace: %v, want ErrNamespaceDeleted", err)
	}
}

// TestErrors checks that bad requests fail with an error naming what was
// wrong.
func TestErrors(t *testing.T) {
	_, v := newTopo(t, 1)
	tests := []struct {
		name    string
		run     func() error
		wantErr string
	}{
		{name: "zero-queues", run: func() error { _, err := AddVeth(v.HostNS, "tz", v.PeerNS, "tz2", 0); return err }, wantErr: "0 queues"},
		{name: "duplicate-veth", run: func() error { _, err := AddVeth(v.HostNS, "ta", v.PeerNS, "tx2", 1); return err }, wantErr: "ip -n " + v.HostNS.Name + " link add ta"},
		{name: "missing-device", run: func() error { _, err := v.HostNS.MAC("nodev"); return err }, wantErr: "nodev"},
		{name: "failing-command", run: func() error { return v.HostNS.Exec(context.Background(), "false") }, wantErr: "in " + v.HostNS.Name + ": false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestCheck checks that Check accepts this environment once the test's
// requirements hold, and that a process without a command is refused.
func TestCheck(t *testing.T) {
	requireTopo(t)
	if err := Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	_, v := newTopo(t, 1)
	if _, err := v.HostNS.Start(); err == nil || !strings.Contains(err.Error(), "no command") {
		t.Fatalf("Start with no command: %v", err)
	}
}

// TestSyncBuffer checks that a SyncBuffer keeps every write whole while
// several goroutines write to it and another reads it.
func TestSyncBuffer(t *testing.T) {
	const writers, writes = 4, 500
	var b SyncBuffer
	stop := make(chan struct{})
	var reader sync.WaitGroup
	reader.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				_ = b.String()
			}
		}
	})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for range writes {
				fmt.Fprintf(&b, "writer %d\n", w)
			}
		})
	}
	wg.Wait()
	close(stop)
	reader.Wait()
	got := b.String()
	if lines := strings.Count(got, "\n"); lines != writers*writes {
		t.Errorf("%d lines, want %d", lines, writers*writes)
	}
	for w := range writers {
		if n := strings.Count(got, fmt.Sprintf("writer %d\n", w)); n != writes {
			t.Errorf("writer %d: %d whole writes, want %d", w, n, writes)
		}
	}
}
