package topo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

func requireTopo(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
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

// TestVeth checks a veth pair's queue counts (allocated and in use), the
// peer's tx checksum offload, that traffic passes between the namespaces,
// and the device queries.
func TestVeth(t *testing.T) {
	tests := []struct {
		name       string
		inQueues   int
		wantQueues int
	}{
		{name: "one-queue", inQueues: 1, wantQueues: 1},
		{name: "four-queues", inQueues: 4, wantQueues: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, v := newTopo(t, tt.inQueues)
			checkVeth(t, v, tt.wantQueues)
			// Through /sys too, which a command in the namespace sees as
			// the namespace's own.
			for _, end := range []struct {
				ns  *Namespace
				dev string
			}{{v.HostNS, v.Host}, {v.PeerNS, v.Peer}} {
				for _, dir := range []string{"tx", "rx"} {
					out, err := end.ns.Output(context.Background(), "sh", "-c", "ls /sys/class/net/"+end.dev+"/queues | grep -c "+dir+"-")
					if err != nil {
						t.Fatal(err)
					}
					if got := strings.TrimSpace(out); got != fmt.Sprint(tt.wantQueues) {
						t.Errorf("%s: %s %s queues in /sys, want %d", end.dev, got, dir, tt.wantQueues)
					}
				}
			}
			if st, err := v.HostNS.Ping(context.Background(), net.IPv4(10, 9, 0, 2), 2, 200*time.Millisecond, 10*time.Second); err != nil || st.Received != 2 {
				t.Errorf("ping: %+v, %v; want 2 replies", st, err)
			}
		})
	}
}

// checkVeth checks v of newTopo through netlink and the ethtool ioctl:
// queues allocated and in use on both ends, the peer's tx checksum offload
// off, the addresses, no XDP program, and a permanent neighbour entry that
// SetNeigh adds.
func checkVeth(t *testing.T, v *Veth, wantQueues int) {
	t.Helper()
	for _, end := range []struct {
		ns   *Namespace
		dev  string
		addr string
	}{{v.HostNS, v.Host, "10.9.0.1/24"}, {v.PeerNS, v.Peer, "10.9.0.2/24"}} {
		if rx, tx, err := end.ns.Queues(end.dev); err != nil || rx != wantQueues || tx != wantQueues {
			t.Errorf("%s: %d rx, %d tx queues allocated (%v), want %d", end.dev, rx, tx, err, wantQueues)
		}
		if rx, tx, err := end.ns.Channels(end.dev); err != nil || rx != wantQueues || tx != wantQueues {
			t.Errorf("%s: %d rx, %d tx channels in use (%v), want %d", end.dev, rx, tx, err, wantQueues)
		}
		if addrs, err := end.ns.Addrs(end.dev); err != nil || !slices.Contains(addrs, end.addr) {
			t.Errorf("%s: addresses %v (%v), want %s", end.dev, addrs, err, end.addr)
		}
		if ok, err := end.ns.XDPAttached(end.dev); err != nil || ok {
			t.Errorf("%s: XDP attached %v, %v; want none", end.dev, ok, err)
		}
		if idx, err := end.ns.Ifindex(end.dev); err != nil || idx <= 1 {
			t.Errorf("%s: ifindex %d, %v", end.dev, idx, err)
		}
	}
	if on, err := v.PeerNS.TxChecksum(v.Peer); err != nil || on {
		t.Errorf("peer %s: tx checksum offload on %v (%v), want off", v.Peer, on, err)
	}
	if on, err := v.HostNS.TxChecksum(v.Host); err != nil || !on {
		t.Errorf("host %s: tx checksum offload on %v (%v), want it left on", v.Host, on, err)
	}
	macA, err := v.HostNS.MAC(v.Host)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.PeerNS.SetNeigh(v.Peer, net.IPv4(10, 9, 0, 1), macA); err != nil {
		t.Fatal(err)
	}
	mac, state, err := v.PeerNS.Neigh(v.Peer, net.IPv4(10, 9, 0, 1))
	if err != nil || mac.String() != macA.String() || state != netlink.NUD_PERMANENT {
		t.Errorf("neighbour entry: %v, state %#x, %v; want %v permanent", mac, state, err, macA)
	}
}

// TestWithoutTools builds a topology with neither ip nor ethtool in PATH
// (PATH is an empty directory): namespaces, a veth pair with its queues,
// addresses, tx checksum offload off on the peer, neighbours and a command
// in a namespace all work, and Close removes everything.
func TestWithoutTools(t *testing.T) {
	requireTopo(t)
	cat := testenv.RequireTool(t, "cat", "coreutils")
	t.Setenv("PATH", t.TempDir())
	for _, tool := range []string{"ip", "ethtool", "nsenter"} {
		if _, err := exec.LookPath(tool); err == nil {
			t.Fatalf("%s still found in PATH", tool)
		}
	}
	if err := Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	tp, v := newTopo(t, 2)
	checkVeth(t, v, 2)
	// A command in the namespace sees its devices under /sys.
	idx, err := v.PeerNS.Ifindex(v.Peer)
	if err != nil {
		t.Fatal(err)
	}
	out, err := v.PeerNS.Output(context.Background(), cat, "/sys/class/net/"+v.Peer+"/ifindex")
	if err != nil || strings.TrimSpace(out) != fmt.Sprint(idx) {
		t.Errorf("ifindex of %s in /sys inside %s: %q, %v; want %d", v.Peer, v.PeerNS.Name, out, err, idx)
	}
	if err := v.PeerNS.Exec(context.Background(), "true"); err == nil || !strings.Contains(err.Error(), "executable file not found") {
		t.Errorf("a command not in PATH: %v, want not found", err)
	}
	names := tp.Namespaces()
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	checkGone(t, names)
}

// checkGone fails the test if a namespace of names is still listed or
// still has its file.
func checkGone(t *testing.T, names []string) {
	t.Helper()
	all, err := List()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if slices.Contains(all, n) {
			t.Errorf("namespace %s left after Close", n)
		}
		if _, err := os.Stat(filepath.Join(RunDir, n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("namespace file of %s: %v, want none", n, err)
		}
	}
}

// TestDeleteWhileCommandRuns checks that deleting a namespace frees it
// (its veth goes away) while a command started in another namespace runs
// on: the command's mount namespace holds copies of the namespaces' mounts,
// which the deletion must unmount too.
func TestDeleteWhileCommandRuns(t *testing.T) {
	_, v := newTopo(t, 1)
	sleep := testenv.RequireTool(t, "sleep", "coreutils")
	p, err := v.HostNS.Start(sleep, "60")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	// Wait for the process to have its own mount namespace.
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mnt, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p.Cmd.Process.Pid))
		if err == nil && mnt != self {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not in a mount namespace of its own after 20s: %s, %v", p.Cmd.Process.Pid, mnt, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := v.PeerNS.Delete(); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		_, err := v.HostNS.Ifindex(v.Host)
		if err != nil {
			break // the pair went with the peer's namespace
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists 30s after its peer's namespace was deleted", v.Host)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.Exited() {
		t.Errorf("the process ended: %s", p.Output())
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
	checkGone(t, names)
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
		{name: "duplicate-veth", run: func() error { _, err := AddVeth(v.HostNS, "ta", v.PeerNS, "tx2", 1); return err }, wantErr: "add veth ta in " + v.HostNS.Name + ", peer tx2 in " + v.PeerNS.Name + ": file exists"},
		{name: "bad-address", run: func() error { return v.HostNS.AddAddr("ta", "10.9.0.300/24") }, wantErr: "10.9.0.300/24"},
		{name: "address-on-missing-device", run: func() error { return v.HostNS.AddAddr("nodev", "10.9.0.3/24") }, wantErr: "device nodev in " + v.HostNS.Name},
		{name: "duplicate-namespace", run: func() error { return createNamed(v.HostNS.Name) }, wantErr: "file exists"},
		{name: "bad-namespace-name", run: func() error { return createNamed("a/b") }, wantErr: "not a valid name"},
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

// TestHolders checks that Holders names a socket that keeps a deleted
// namespace alive, and nothing once the socket is closed.
func TestHolders(t *testing.T) {
	_, v := newTopo(t, 1)
	if h, err := v.PeerNS.Holders(); err != nil || h != nil {
		t.Fatalf("Holders before Delete = %q, %v; want none", h, err)
	}
	var ln net.Listener
	if err := v.PeerNS.Do(func() (err error) {
		ln, err = net.Listen("tcp4", "10.9.0.2:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := v.PeerNS.Delete(); err != nil {
		t.Fatal(err)
	}
	h, err := v.PeerNS.Holders()
	if err != nil {
		t.Fatal(err)
	}
	self := fmt.Sprintf("pid %d ", os.Getpid())
	if len(h) != 1 || !strings.HasPrefix(h[0], self) || !strings.Contains(h[0], " socket fd ") {
		t.Fatalf("Holders = %q, want the listener's fd in this process (%s...)", h, self)
	}
	ln.Close()
	if h, err := v.PeerNS.Holders(); err != nil || len(h) != 0 {
		t.Fatalf("Holders after closing the listener = %q, %v; want none", h, err)
	}
}

// TestNewNamespaceLeavesNoThread checks that creating a namespace leaves no
// thread of the process in it. A thread left there keeps the namespace,
// and every device in it, alive after Delete; for the main thread, which
// the Go runtime never ends, for good.
func TestNewNamespaceLeavesNoThread(t *testing.T) {
	requireTopo(t)
	tp := New("ovsxdp-topothr-" + Suffix())
	t.Cleanup(func() {
		if err := tp.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := tp.AddNamespace(fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			ns, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns", "net"))
			if err == nil && ns != own {
				t.Fatalf("namespace %d: thread %s is in %s, not in the process's %s", i, task.Name(), ns, own)
			}
		}
	}
}
