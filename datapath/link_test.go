package datapath

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/vport"
)

// mirroredPort is an in-memory port whose device mirrors a real link, as
// an AF_XDP port's does, without being on one (no Ifindex): the bridge
// does not follow it.
type mirroredPort struct {
	*vport.MemPort
	dev *vport.Device
}

func (p *mirroredPort) Device() *vport.Device { return p.dev }

func newMirroredPort(t *testing.T, name string) *mirroredPort {
	t.Helper()
	mp, err := vport.NewMemPort(vport.MemConfig{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := vport.NewMirrorDevice(name, vport.DummyLike, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &mirroredPort{MemPort: mp, dev: dev}
}

// linkedPort is a mirrored port on a real link of a test namespace: the
// bridge follows that link as it follows an AF_XDP port's.
type linkedPort struct {
	*mirroredPort
	ifindex int
	netns   string
}

func (p *linkedPort) Ifindex() int  { return p.ifindex }
func (p *linkedPort) Netns() string { return p.netns }

var _ vport.Linked = (*linkedPort)(nil)

// TestBeginUnregisterRefusesMirroredDevice checks that the simulated
// unregister sequence refuses a port whose device mirrors a real link, and
// leaves the port and its device as they were.
func TestBeginUnregisterRefusesMirroredDevice(t *testing.T) {
	b := newTestBridge(t, Config{})
	mp := newMirroredPort(t, "real0")
	if _, err := b.AddPort(mp, 1); err != nil {
		t.Fatal(err)
	}
	addMemPort(t, b, vport.MemConfig{Name: "sim0"}, 2)
	before := mp.dev.Snapshot()
	if _, err := b.BeginUnregister("real0", UnregisterConfig{}); !errors.Is(err, ErrMirroredDevice) {
		t.Errorf("BeginUnregister(real0) = %v, want ErrMirroredDevice", err)
	}
	if _, err := b.Unregister(context.Background(), "real0", UnregisterConfig{}); !errors.Is(err, ErrMirroredDevice) {
		t.Errorf("Unregister(real0) = %v, want ErrMirroredDevice", err)
	}
	if after := mp.dev.Snapshot(); after != before {
		t.Errorf("device changed from %v to %v", before, after)
	}
	if _, ok := b.Port("real0"); !ok {
		t.Error("port real0 was removed")
	}
	if _, err := b.BeginUnregister("sim0", UnregisterConfig{}); err != nil {
		t.Errorf("BeginUnregister(sim0), a simulated device: %v", err)
	}
}

// linkNS is a test namespace in which links come and go.
type linkNS struct {
	ns *netns.NS
	h  *netlink.Handle
}

func newLinkNS(t *testing.T) *linkNS {
	t.Helper()
	ns := netns.New(t, "link")
	nh, err := vnetns.GetFromPath(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return &linkNS{ns: ns, h: h}
}

func (l *linkNS) add(t *testing.T, name string) {
	t.Helper()
	l.ns.IP(t, "link", "add", name, "type", "veth", "peer", "name", name+"p")
	l.ns.IP(t, "link", "set", name+"p", "up")
	l.ns.IP(t, "link", "set", name, "up")
}

func (l *linkNS) del(t *testing.T, name string) {
	t.Helper()
	l.ns.IP(t, "link", "del", name)
}

// open opens a linkedPort on the link name, as vport.OpenXSK opens an
// AF_XDP port: it fails when there is no such link.
func (l *linkNS) open(t *testing.T, name string) func() (vport.Port, error) {
	return func() (vport.Port, error) {
		lk, err := l.h.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("test port %s: %w", name, err)
		}
		return &linkedPort{mirroredPort: newMirroredPort(t, name), ifindex: lk.Attrs().Index, netns: l.ns.Path()}, nil
	}
}

// waitEvent waits for the bridge's next link event of port name.
func waitEvent(t *testing.T, events <-chan LinkEvent, name string, kind LinkEventKind) LinkEvent {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Port == name && ev.Kind == kind {
				return ev
			}
			t.Logf("link event %s %s (err %v), waiting for %s", ev.Kind, ev.Port, ev.Err, kind)
		case <-deadline:
			t.Fatalf("no %s event for port %s in 10s", kind, name)
		}
	}
}

// TestLinkPortFollowsLink adds a port whose link does not exist yet: it is
// configured, detached, with Open vSwitch's error and its OpenFlow port
// number reserved; it is attached when the link appears, detached (not
// removed) when the link is deleted, and attached again, with the same
// number, when a link of its name comes back.
func TestLinkPortFollowsLink(t *testing.T) {
	l := newLinkNS(t)
	events := make(chan LinkEvent, 16)
	b := newTestBridge(t, Config{Links: LinkConfig{OnEvent: func(ev LinkEvent) { events <- ev }}})

	ofport, err := b.AddLinkPort(LinkPort{Name: "lk0", Netns: l.ns.Path(), OFPort: 7, Open: l.open(t, "lk0")})
	if !errors.Is(err, ErrNoDevice) || ofport != 7 {
		t.Fatalf("AddLinkPort of a missing link = %d, %v; want 7 and ErrNoDevice", ofport, err)
	}
	const wantErr = "could not open network device lk0 (No such device)"
	checkDetached := func(what string) {
		t.Helper()
		if _, ok := b.Port("lk0"); ok {
			t.Errorf("%s: port lk0 is attached", what)
		}
		d := b.Detached()
		if len(d) != 1 || d[0].Name != "lk0" || d[0].OFPort != 7 || d[0].Err == nil || d[0].Err.Error() != wantErr {
			t.Errorf("%s: Detached() = %+v, want lk0 on 7 with %q", what, d, wantErr)
		}
	}
	checkAttached := func(what string) {
		t.Helper()
		if p, ok := b.Port("lk0"); !ok || p.OFPort != 7 {
			t.Errorf("%s: port lk0 not attached on OpenFlow port 7 (%v)", what, p)
		}
		if d := b.Detached(); len(d) != 0 {
			t.Errorf("%s: Detached() = %+v, want none", what, d)
		}
	}
	checkDetached("missing at add")

	// The detached port keeps its name and number.
	if _, err := b.AddPort(newMirroredPort(t, "other"), 7); !errors.Is(err, ErrOFPortUsed) {
		t.Errorf("AddPort on the detached port's number: %v, want ErrOFPortUsed", err)
	}
	if _, err := b.AddPort(newMirroredPort(t, "lk0"), 0); !errors.Is(err, ErrPortExists) {
		t.Errorf("AddPort with the detached port's name: %v, want ErrPortExists", err)
	}

	l.add(t, "lk0")
	if ev := waitEvent(t, events, "lk0", LinkAttached); ev.Err != nil || ev.OFPort != 7 {
		t.Fatalf("attach: %+v", ev)
	}
	checkAttached("link added")

	l.del(t, "lk0")
	if ev := waitEvent(t, events, "lk0", LinkDetached); ev.Err != nil {
		t.Fatalf("detach: %+v", ev)
	}
	checkDetached("link deleted")

	l.add(t, "lk0")
	waitEvent(t, events, "lk0", LinkAttached)
	checkAttached("link back")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.RemovePort(ctx, "lk0"); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Port("lk0"); ok || len(b.Detached()) != 0 {
		t.Errorf("lk0 still configured after RemovePort: %v", b.Detached())
	}
}

// TestLinkPortMustExist checks that AddLinkPort with MustExist keeps
// nothing when the link is missing, and returns Open's error.
func TestLinkPortMustExist(t *testing.T) {
	l := newLinkNS(t)
	b := newTestBridge(t, Config{})
	_, err := b.AddLinkPort(LinkPort{Name: "lk1", Netns: l.ns.Path(), Open: l.open(t, "lk1"), MustExist: true})
	if err == nil || errors.Is(err, ErrNoDevice) {
		t.Fatalf("AddLinkPort(MustExist) of a missing link = %v, want Open's error", err)
	}
	if len(b.Detached()) != 0 {
		t.Errorf("Detached() = %+v, want none", b.Detached())
	}
}

// TestAddPortRemovedWithLink checks the glue every user of AddPort relies
// on: a port on a real link is removed, after RemoveDelay, when the kernel
// deletes the link, and the removal is reported with its counters.
func TestAddPortRemovedWithLink(t *testing.T) {
	l := newLinkNS(t)
	check := goroutineBaseline(t)
	events := make(chan LinkEvent, 16)
	b, err := New(Config{Name: "br0", Links: LinkConfig{RemoveDelay: 20 * time.Millisecond, OnEvent: func(ev LinkEvent) { events <- ev }}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	l.add(t, "lk2")
	vp, err := l.open(t, "lk2")()
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.AddPort(vp, 3)
	if err != nil {
		t.Fatal(err)
	}
	if st := p.dev.Snapshot(); !st.Running() || !st.Carrier() {
		t.Errorf("device %v, want running with carrier (the link is up)", st)
	}
	l.del(t, "lk2")
	ev := waitEvent(t, events, "lk2", LinkRemoved)
	if ev.Err != nil || ev.OFPort != 3 || ev.Stats.Name != "lk2" || ev.Took < 20*time.Millisecond {
		t.Errorf("removal %+v", ev)
	}
	if _, ok := b.Port("lk2"); ok || len(b.Detached()) != 0 {
		t.Errorf("lk2 still configured: %v", b.Detached())
	}
	if st := p.dev.Snapshot(); st.Registration() != vport.Unregistered {
		t.Errorf("device %v, want unregistered", st)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	check() // the bridge's monitor and its callbacks are gone
}

// closeTracked is a port that records its Close.
type closeTracked struct {
	vport.Port
	closed *atomic.Bool
}

func (p closeTracked) Close() error {
	p.closed.Store(true)
	return p.Port.Close()
}

// TestRemoveDetachedPortWaitsForOpen checks that RemovePort of a detached
// port whose link just appeared returns only after the open under way has
// closed what it opened: the port's XDP program and sockets must not
// outlive the del-port that removed it (found by bench/chaos, seed 350: a
// veth re-created and its port deleted at once left an XDP program and a
// socket open after del-port returned).
func TestRemoveDetachedPortWaitsForOpen(t *testing.T) {
	l := newLinkNS(t)
	b := newTestBridge(t, Config{})
	var closed atomic.Bool
	opening, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	open := func() (vport.Port, error) {
		p, err := l.open(t, "lk3")()
		if err != nil {
			return nil, err
		}
		once.Do(func() { close(opening) })
		<-release
		return closeTracked{Port: p, closed: &closed}, nil
	}
	if _, err := b.AddLinkPort(LinkPort{Name: "lk3", Netns: l.ns.Path(), Open: open}); !errors.Is(err, ErrNoDevice) {
		t.Fatalf("AddLinkPort of a missing link: %v, want ErrNoDevice", err)
	}
	l.add(t, "lk3")
	select {
	case <-opening:
	case <-time.After(10 * time.Second):
		t.Fatal("the port was not opened within 10s of its link's creation")
	}
	type result struct {
		err          error
		closedBefore bool
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := b.RemovePort(ctx, "lk3")
		done <- result{err, closed.Load()}
	}()
	// Let the open finish only once RemovePort has forgotten the port.
	deadline := time.Now().Add(10 * time.Second)
	for len(b.Detached()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("RemovePort did not forget the detached port within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !r.closedBefore {
			t.Error("RemovePort returned before the port opened meanwhile was closed")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("RemovePort did not return within 30s of the open's end")
	}
	if _, ok := b.Port("lk3"); ok {
		t.Error("lk3 attached after RemovePort")
	}
}
