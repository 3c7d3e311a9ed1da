package vport

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/test/netns"
)

// watchedHost returns the device model of the topology's host end and its
// ifindex, as an XSKPort would build it.
func (tp *xskTopo) watchedHost(t *testing.T) (*Device, int) {
	t.Helper()
	lk := tp.hostLink(t)
	dev, err := deviceFromLink(lk)
	if err != nil {
		t.Fatal(err)
	}
	return dev, lk.Attrs().Index
}

// waitState waits until dev's state satisfies want.
func waitState(t *testing.T, dev *Device, what string, want func(DeviceState) bool) {
	t.Helper()
	if !netns.Eventually(5*time.Second, func() bool { return want(dev.Snapshot()) }) {
		t.Fatalf("%s: device state %v after 5s", what, dev.Snapshot())
	}
}

// checkNoGoroutineLeak fails the test if, once the test is over, more
// goroutines run than when it called this.
func checkNoGoroutineLeak(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		if !netns.Eventually(5*time.Second, func() bool { return runtime.NumGoroutine() <= base }) {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
	})
}

func startMonitor(t *testing.T, cfg LinkMonitorConfig) *LinkMonitor {
	t.Helper()
	m, err := NewLinkMonitor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLinkMonitor follows a veth's host end through down/up, carrier loss
// (the peer goes down), a stale tx queue count, and deletion.
func TestLinkMonitor(t *testing.T) {
	tp := newXSKTopo(t, 4)
	checkNoGoroutineLeak(t)
	m := startMonitor(t, LinkMonitorConfig{Netns: tp.sw.Path()})
	dev, ifindex := tp.watchedHost(t)
	deleted := make(chan *Device, 1)
	if _, err := m.Watch(dev, ifindex, func(d *Device) { deleted <- d }); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Watch(dev, ifindex, nil); err == nil {
		t.Error("watching the same link twice succeeded")
	}

	for _, step := range []struct {
		name   string
		action func(t *testing.T)
		want   func(DeviceState) bool
	}{
		{
			name:   "down",
			action: func(t *testing.T) { tp.sw.IP(t, "link", "set", "h0", "down") },
			want:   func(s DeviceState) bool { return !s.Running() && !s.Carrier() },
		},
		{
			name:   "up",
			action: func(t *testing.T) { tp.sw.IP(t, "link", "set", "h0", "up") },
			want:   func(s DeviceState) bool { return s.Running() && s.Carrier() },
		},
		{
			name:   "peer down: carrier lost",
			action: func(t *testing.T) { tp.peer.IP(t, "link", "set", "p0", "down") },
			want:   func(s DeviceState) bool { return s.Running() && !s.Carrier() },
		},
		{
			name:   "peer up: carrier back",
			action: func(t *testing.T) { tp.peer.IP(t, "link", "set", "p0", "up") },
			want:   func(s DeviceState) bool { return s.Running() && s.Carrier() },
		},
		{
			name: "tx queues from the next event",
			action: func(t *testing.T) {
				if err := dev.SetTxQueues(1); err != nil {
					t.Fatal(err)
				}
				tp.sw.IP(t, "link", "set", "h0", "mtu", "1400")
			},
			want: func(s DeviceState) bool { return s.TxQueues() == 4 },
		},
	} {
		t.Run(step.name, func(t *testing.T) {
			step.action(t)
			waitState(t, dev, step.name, step.want)
		})
	}

	tp.sw.IP(t, "link", "del", "h0")
	select {
	case d := <-deleted:
		if d != dev {
			t.Errorf("callback for %v, want %v", d, dev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no deletion callback 5s after the link was deleted")
	}
	want := DeviceFields{Kind: VethLike, Registration: Unregistered}.State()
	if got := dev.Snapshot(); got&stateFieldsMask != want {
		t.Errorf("state after deletion %v, want %v", got, want)
	}
}

// TestLinkMonitorWatchGone checks that watching a link that no longer
// exists reports its deletion at once.
func TestLinkMonitorWatchGone(t *testing.T) {
	tp := newXSKTopo(t, 1)
	m := startMonitor(t, LinkMonitorConfig{Netns: tp.sw.Path()})
	dev, ifindex := tp.watchedHost(t)
	tp.sw.IP(t, "link", "del", "h0")
	deleted := make(chan struct{})
	if _, err := m.Watch(dev, ifindex, func(*Device) { close(deleted) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-deleted:
	case <-time.After(5 * time.Second):
		t.Fatal("no deletion callback")
	}
	if r := dev.Snapshot().Registration(); r != Unregistered {
		t.Errorf("registration %v, want unregistered", r)
	}
}

// faultySubscriber wraps a real netlink subscription: it can lose events
// (drop) and make the subscription fail on demand, reporting ENOBUFS
// through the error callback as the library does on an overflow, or just
// closing the channel.
type faultySubscriber struct {
	drop  atomic.Bool
	fail  chan bool // true: report ENOBUFS first
	calls atomic.Int32
}

func (f *faultySubscriber) subscribe(ch chan<- netlink.LinkUpdate, done <-chan struct{}, opts netlink.LinkSubscribeOptions) error {
	inner := make(chan netlink.LinkUpdate, 16)
	innerDone := make(chan struct{})
	report := opts.ErrorCallback
	opts.ErrorCallback = func(err error) {
		select {
		case <-innerDone:
		default:
			report(err)
		}
	}
	if err := netlink.LinkSubscribeWithOptions(inner, innerDone, opts); err != nil {
		close(innerDone)
		return err
	}
	f.calls.Add(1)
	go func() {
		defer close(ch)
		defer func() {
			close(innerDone)
			for range inner {
			}
		}()
		for {
			select {
			case <-done:
				return
			case enobufs := <-f.fail:
				if enobufs {
					report(fmt.Errorf("Receive failed: %w", unix.ENOBUFS))
				}
				return
			case u, ok := <-inner:
				if !ok {
					return
				}
				if f.drop.Load() {
					continue
				}
				select {
				case ch <- u:
				case <-done:
					return
				}
			}
		}
	}()
	return nil
}

// TestLinkMonitorResync loses events, then fails the subscription (by an
// ENOBUFS report, then by closing the channel): the monitor resubscribes
// and its resync applies what it missed, deletion included.
func TestLinkMonitorResync(t *testing.T) {
	tp := newXSKTopo(t, 2)
	checkNoGoroutineLeak(t)
	f := &faultySubscriber{fail: make(chan bool)}
	m := startMonitor(t, LinkMonitorConfig{Netns: tp.sw.Path(), subscribe: f.subscribe})
	dev, ifindex := tp.watchedHost(t)
	deleted := make(chan struct{})
	if _, err := m.Watch(dev, ifindex, func(*Device) { close(deleted) }); err != nil {
		t.Fatal(err)
	}

	// Lost: the link goes down.
	f.drop.Store(true)
	tp.sw.IP(t, "link", "set", "h0", "down")
	time.Sleep(300 * time.Millisecond)
	if !dev.Snapshot().Running() {
		t.Fatal("the event was not lost: the test proves nothing")
	}
	f.drop.Store(false)
	f.fail <- true // ENOBUFS
	waitState(t, dev, "resync after ENOBUFS", func(s DeviceState) bool { return !s.Running() && !s.Carrier() })
	if n := m.Subscriptions(); n != 2 {
		t.Errorf("%d subscriptions, want 2", n)
	}

	// Lost: the link is deleted.
	f.drop.Store(true)
	tp.sw.IP(t, "link", "del", "h0")
	time.Sleep(300 * time.Millisecond)
	select {
	case <-deleted:
		t.Fatal("the deletion was not lost: the test proves nothing")
	default:
	}
	f.drop.Store(false)
	f.fail <- false // the channel just closes
	select {
	case <-deleted:
	case <-time.After(5 * time.Second):
		t.Fatal("no deletion callback 5s after the resubscription")
	}
	if r := dev.Snapshot().Registration(); r != Unregistered {
		t.Errorf("registration %v, want unregistered", r)
	}
	if n, r := m.Subscriptions(), m.Resyncs(); n != 3 || r != 3 {
		t.Errorf("%d subscriptions and %d resyncs, want 3 and 3", n, r)
	}
	if n := f.calls.Load(); n != 3 {
		t.Errorf("%d subscribe calls, want 3", n)
	}
}

// TestLinkMonitorWatchName checks that a name watch reports whether the
// link exists, is called when a link of that name appears, and is not
// called once cancelled.
func TestLinkMonitorWatchName(t *testing.T) {
	ns := netns.New(t, "name")
	checkNoGoroutineLeak(t)
	m := startMonitor(t, LinkMonitorConfig{Netns: ns.Path()})
	var calls atomic.Int32
	present, cancel, err := m.WatchName("wn0", func() { calls.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	if present {
		t.Error("WatchName: present before the link exists")
	}
	if _, _, err := m.WatchName("wn0", func() {}); err == nil {
		t.Error("watching the same name twice succeeded")
	}
	ns.IP(t, "link", "add", "wn0", "type", "veth", "peer", "name", "wn0p")
	if !netns.Eventually(5*time.Second, func() bool { return calls.Load() > 0 }) {
		t.Fatal("no call 5s after the link appeared")
	}
	if ok, err := m.LinkExists("wn0"); err != nil || !ok {
		t.Errorf("LinkExists(wn0) = %v, %v after it was created", ok, err)
	}
	cancel()
	if present, cancel2, err := m.WatchName("wn0", func() {}); err != nil || !present {
		t.Errorf("WatchName after cancel = %v, %v; want present", present, err)
	} else {
		cancel2()
	}
}

// TestLinkMonitorWatchReadNotStale: an event that arrives while Watch has
// read the link but not yet applied the read is applied after the read,
// not undone by it. The peer comes up (carrier on) between Watch's read
// (no carrier) and its application; a veth whose two ends are up sends no
// further event, so a stale read applied last would leave the port
// without carrier for good.
func TestLinkMonitorWatchReadNotStale(t *testing.T) {
	tp := newXSKTopo(t, 1)
	m := startMonitor(t, LinkMonitorConfig{Netns: tp.sw.Path()})
	tp.peer.IP(t, "link", "set", "p0", "down")
	dev, ifindex := tp.watchedHost(t)
	if dev.Snapshot().Carrier() {
		t.Fatal("carrier with the peer down")
	}
	watchReadHook = func() {
		tp.peer.IP(t, "link", "set", "p0", "up")
		// Give the monitor the time to apply the event, which it may
		// only do once Watch has applied its read.
		netns.Eventually(2*time.Second, func() bool { return dev.Snapshot().Carrier() })
	}
	defer func() { watchReadHook = nil }()
	if _, err := m.Watch(dev, ifindex, nil); err != nil {
		t.Fatal(err)
	}
	watchReadHook = nil
	waitState(t, dev, "peer up during the watch's read", func(s DeviceState) bool { return s.Running() && s.Carrier() })
}
