package vport

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// TestTapFollowsLinkAcrossNamespaces creates a TAP port, brings it up here,
// moves it into another namespace and brings it up there, and deletes that
// namespace: the Device follows each step, and the deletion is reported
// once as the device's unregistration.
func TestTapFollowsLinkAcrossNamespaces(t *testing.T) {
	ns := netns.New(t, "tap")
	name := "tap" + topo.Suffix()
	var gone atomic.Int32
	p, err := NewTapPort(TapConfig{Name: name, OnGone: func() { gone.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dev := p.Device()
	if st := dev.Snapshot(); st.Running() || st.Registration() != Registered {
		t.Fatalf("new tap: %s, want registered and down", st)
	}
	if _, _, err := p.PrepareWait(0); !errors.Is(err, ErrPortDown) {
		t.Fatalf("PrepareWait on a down tap: %v, want ErrPortDown", err)
	}
	lk, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lk); err != nil {
		t.Fatal(err)
	}
	waitState(t, dev, "up here", func(s DeviceState) bool { return s.Running() && s.Carrier() })

	nsh, err := vnetns.GetFromPath(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	err = netlink.LinkSetNsFd(lk, int(nsh))
	nsh.Close() // a handle left open would keep the namespace alive
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, dev, "down after the move", func(s DeviceState) bool { return !s.Running() })
	if st := dev.Snapshot(); st.Registration() != Registered {
		t.Fatalf("moved tap: %s, want registered", st)
	}
	if err := ns.SetLinkUp(name); err != nil {
		t.Fatal(err)
	}
	waitState(t, dev, "up in the namespace", func(s DeviceState) bool { return s.Running() && s.Carrier() })

	if err := ns.Delete(); err != nil {
		t.Fatal(err)
	}
	// A poll thread's read meets the error and wakes the follower (the
	// periodic read would find it too, later).
	bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
	netns.Eventually(5*time.Second, func() bool {
		WaitRx(p, 0, 100*time.Millisecond) //nolint:errcheck // Receive tells
		p.Receive(0, bufs, sizes, nil)     //nolint:errcheck // the state tells
		return dev.Snapshot().Registration() == Unregistered
	})
	waitState(t, dev, "unregistered", func(s DeviceState) bool { return s.Registration() == Unregistered })
	if !netns.Eventually(5*time.Second, func() bool { return gone.Load() == 1 }) {
		t.Fatalf("OnGone called %d times, want 1", gone.Load())
	}
	if _, err := p.Transmit(0, [][]byte{make([]byte, 60)}); !errors.Is(err, ErrPortDown) {
		t.Fatalf("Transmit on a gone tap: %v, want ErrPortDown", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTapCloseDeletesDevice checks that closing the port deletes its
// device, and that a second port cannot take a name in use.
func TestTapCloseDeletesDevice(t *testing.T) {
	netns.Require(t)
	name := "tap" + topo.Suffix()
	p, err := NewTapPort(TapConfig{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewTapPort(TapConfig{Name: name}); err == nil {
		t.Fatal("a second tap of the same name was created")
	}
	if _, err := netlink.LinkByName(name); err != nil {
		t.Fatalf("tap device: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := netlink.LinkByName(name); err == nil {
		t.Fatal("the tap device is still there after Close")
	}
	if _, err := p.Receive(0, [][]byte{make([]byte, 2048)}, []int{0}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Receive after Close: %v, want ErrClosed", err)
	}
}

// TestTapOversizeFrame sends a frame longer than the receive buffers
// through a TAP port: it is dropped and counted, and the port goes on.
func TestTapOversizeFrame(t *testing.T) {
	ns := netns.New(t, "tapbig")
	name := "tap" + topo.Suffix()
	p, err := NewTapPort(TapConfig{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	lk, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	nsh, err := vnetns.GetFromPath(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	err = netlink.LinkSetNsFd(lk, int(nsh))
	nsh.Close()
	if err != nil {
		t.Fatal(err)
	}
	ns.IP(t, "link", "set", name, "mtu", "4000")
	ns.AddAddr(t, name, "10.79.0.1/24")
	if err := ns.SetLinkUp(name); err != nil {
		t.Fatal(err)
	}
	ns.SetNeigh(t, name, "10.79.0.2", []byte{2, 0, 0, 0, 0, 2})
	waitState(t, p.Device(), "up", func(s DeviceState) bool { return s.Running() })
	ns.Run("ping", "-c", "1", "-W", "1", "-s", "3000", "10.79.0.2") //nolint:errcheck // no one answers
	ns.Run("ping", "-c", "1", "-W", "1", "-s", "100", "10.79.0.2")  //nolint:errcheck // no one answers

	bufs := make([][]byte, 4)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	sizes := make([]int, 4)
	var small int
	if !netns.Eventually(10*time.Second, func() bool {
		WaitRx(p, 0, 100*time.Millisecond) //nolint:errcheck // Receive tells
		n, err := p.Receive(0, bufs, sizes, nil)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		for _, sz := range sizes[:n] {
			if sz >= 100+28+14 && sz < 2048 {
				small++
			}
		}
		return small > 0 && p.Stats().RxDropped > 0
	}) {
		t.Fatalf("stats %+v, small frames %d: want the 3000-byte ping dropped and the small one received", p.Stats(), small)
	}
	frame := make([]byte, 60)
	if n := testing.AllocsPerRun(100, func() {
		p.Receive(0, bufs, sizes, nil)     //nolint:errcheck // allocations only
		p.Transmit(0, [][]byte{frame}[:1]) //nolint:errcheck // allocations only
	}); n != 0 {
		t.Errorf("Receive and Transmit allocate %v times a call", n)
	}
}
