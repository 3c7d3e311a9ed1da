package vport

// Each test here triggers one defect of github.com/asavie/xdp v0.3.3 and
// checks that the xsk port kind contains it. Where it is cheap to do so, a
// "library" subtest first shows the defect on a bare library socket.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asavie/xdp"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/vport/internal/nsthread"
)

// librarySocket opens a bare library socket on queue 0 of the host end.
func (tp *xskTopo) librarySocket(t *testing.T) (*xdp.Socket, error) {
	t.Helper()
	lk := tp.hostLink(t)
	var s *xdp.Socket
	err := nsthread.Do(tp.sw.Path(), func() error {
		var err error
		s, err = xdp.NewSocket(lk.Attrs().Index, 0, nil)
		return err
	})
	return s, err
}

// closeLibrarySocket closes a library socket and unmaps the rings its
// Close leaves behind.
func closeLibrarySocket(t *testing.T, s *xdp.Socket) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := SweepOrphanXDPRings(); err != nil {
		t.Error(err)
	}
}

// TestXSKDefectTransmitLinkDeleted: the library's Transmit panics when
// sendto fails with ENETDOWN or ENXIO. The port's Transmit, hammered from
// another goroutine while the link is deleted, never panics and reports
// ErrPortDown.
func TestXSKDefectTransmitLinkDeleted(t *testing.T) {
	t.Run("library", func(t *testing.T) {
		tp := newXSKTopo(t, 1)
		s, err := tp.librarySocket(t)
		if err != nil {
			t.Fatal(err)
		}
		defer closeLibrarySocket(t, s)
		tp.sw.IP(t, "link", "set", tp.veth.Host, "down")
		panicked := func() (v any) {
			defer func() { v = recover() }()
			s.Transmit(s.GetDescs(1))
			return nil
		}()
		if panicked == nil {
			t.Fatal("the library's Transmit did not panic on a link that is down: the defect is gone, revisit the containment")
		}
		t.Logf("library Transmit panicked: %v", panicked)
	})

	t.Run("port", func(t *testing.T) {
		tp := newXSKTopo(t, 4)
		p := tp.open(t, XSKConfig{})
		f := udpFrame(t, remoteMAC, tp.peerMAC, remoteIP, peerIP, 5000, 7010, make([]byte, 200))
		batch := [][]byte{f, f, f, f, f, f, f, f}
		type result struct {
			sent  int
			err   error
			panic any
		}
		res := make(chan result, 1)
		started := make(chan struct{})
		go func() {
			var r result
			defer func() {
				r.panic = recover()
				res <- r
			}()
			for i := 0; ; i++ {
				n, err := p.Transmit(i%p.TxQueues(), batch)
				r.sent += n
				if i == 100 {
					close(started)
				}
				if err != nil {
					r.err = err
					return
				}
			}
		}()
		<-started
		tp.sw.IP(t, "link", "del", tp.veth.Host)
		select {
		case r := <-res:
			if r.panic != nil {
				t.Fatalf("transmit panicked: %v", r.panic)
			}
			if !errors.Is(r.err, ErrPortDown) {
				t.Fatalf("transmit ended with %v, want ErrPortDown", r.err)
			}
			t.Logf("%d frames sent before the link went away", r.sent)
		case <-time.After(10 * time.Second):
			t.Fatal("transmit still succeeding 10s after the link was deleted")
		}
		// And it stays down.
		if _, err := p.Transmit(0, batch); !errors.Is(err, ErrPortDown) {
			t.Errorf("transmit after deletion: %v, want ErrPortDown", err)
		}
	})
}

// TestXSKDefectPollLinkDeleted: once the link is deleted the kernel unbinds
// the socket, and poll(2) on it never reports anything again, so the
// library's Poll(-1) never returns. A thread sleeping through the port
// (PrepareWait and poll with a timeout) learns it within a bounded time.
func TestXSKDefectPollLinkDeleted(t *testing.T) {
	tp := newXSKTopo(t, 2)
	p := tp.open(t, XSKConfig{})
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := WaitRx(p, 1, 100*time.Millisecond); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(150 * time.Millisecond)
	deleted := time.Now()
	tp.sw.IP(t, "link", "del", tp.veth.Host)
	select {
	case err := <-errc:
		if !errors.Is(err, ErrPortDown) {
			t.Fatalf("wait ended with %v, want ErrPortDown", err)
		}
		t.Logf("the poll thread learned of the deletion after %v", time.Since(deleted).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("poll thread still waiting 5s after the link was deleted")
	}

	// The defect itself: the unbound socket stays silent under poll(2).
	fds := []unix.PollFd{{Fd: int32(p.socks[0].fd), Events: unix.POLLIN | unix.POLLOUT}}
	n, err := unix.Poll(fds, 300)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Logf("poll(2) on the unbound socket reported %#x: the kernel now wakes pollers", fds[0].Revents)
	}
	if _, _, err := p.PrepareWait(0); !errors.Is(err, ErrPortDown) {
		t.Errorf("prepare wait on queue 0: %v, want ErrPortDown", err)
	}
}

// resources are the process-wide resources a port holds.
type resources struct {
	fds, rings int
	vmSizeKB   int
}

func measureResources(t *testing.T) resources {
	t.Helper()
	// Descriptors that only a finalizer closes would make the count drift.
	runtime.GC()
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	rings, err := XDPRingMappings()
	if err != nil {
		t.Fatal(err)
	}
	return resources{fds: len(ents), rings: rings, vmSizeKB: vmSizeKB(t)}
}

func vmSizeKB(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmSize:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmSize in /proc/self/status")
	return 0
}

// TestXSKDefectReopen: the library's Close never unmaps the rings, so the
// socket is never released and its queue stays bound (EBUSY); the kernel
// also releases a closed socket's queue asynchronously. The port closes
// and reopens the same queues 100 times without an error and without
// leaking descriptors, ring mappings or UMEM.
func TestXSKDefectReopen(t *testing.T) {
	t.Run("library", func(t *testing.T) {
		tp := newXSKTopo(t, 1)
		before := measureResources(t)
		s, err := tp.librarySocket(t)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := tp.librarySocket(t); err == nil || !strings.Contains(err.Error(), unix.EBUSY.Error()) {
			t.Fatalf("rebind after the library's Close: %v; want EBUSY (the defect is gone, revisit the containment)", err)
		}
		if r := measureResources(t); r.rings <= before.rings {
			t.Fatalf("%d ring mappings after the library's Close, %d before: no leak to sweep", r.rings, before.rings)
		}
		if err := SweepOrphanXDPRings(); err != nil {
			t.Fatal(err)
		}
		if r := measureResources(t); r.rings != before.rings {
			t.Fatalf("%d ring mappings after the sweep, want %d", r.rings, before.rings)
		}
		// With the rings gone the kernel releases the queue.
		p := tp.open(t, XSKConfig{})
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("port", func(t *testing.T) {
		tp := newXSKTopo(t, 2)
		cfg := XSKConfig{Device: tp.veth.Host, Netns: tp.sw.Path(), Frames: 1024}
		// One cycle first, so that one-time allocations are not counted.
		p, err := OpenXSK(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		before := measureResources(t)
		const cycles = 100
		start := time.Now()
		for i := range cycles {
			p, err := OpenXSK(cfg)
			if err != nil {
				t.Fatalf("cycle %d: open: %v", i, err)
			}
			if err := p.Close(); err != nil {
				t.Fatalf("cycle %d: close: %v", i, err)
			}
		}
		after := measureResources(t)
		t.Logf("%d cycles in %v; before %+v, after %+v", cycles, time.Since(start).Round(time.Millisecond), before, after)
		if after.fds > before.fds {
			t.Errorf("%d file descriptors after %d cycles, %d before", after.fds, cycles, before.fds)
		}
		if after.rings != before.rings {
			t.Errorf("%d ring mappings after %d cycles, %d before", after.rings, cycles, before.rings)
		}
		// Each cycle maps 2 UMEMs of 2 MiB; a leak would add 400 MiB. The
		// bound is half that: the Go runtime itself reserves address space
		// in 64 MiB arenas as the heap grows.
		if grow := after.vmSizeKB - before.vmSizeKB; grow > 200<<10 && !raceEnabled {
			t.Errorf("virtual memory grew by %d KiB over %d cycles", grow, cycles)
		}
		if tp.sw.XDPAttached(t, tp.veth.Host) {
			t.Error("XDP program still attached")
		}
	})
}

// TestXSKDefectForeignProgram: the library's Program.Attach hangs when a
// generic-mode program is attached and silently replaces other programs.
// The port, whatever the mode, refuses within a bounded time with
// ErrXDPBusy and a message naming the problem, and leaves the other
// program in place.
func TestXSKDefectForeignProgram(t *testing.T) {
	type foreign struct {
		name   string
		attach func(t *testing.T, tp *xskTopo, ifindex int, prog *xdpProgram) (detach func())
	}
	viaNetlink := func(flags int) func(t *testing.T, tp *xskTopo, ifindex int, prog *xdpProgram) func() {
		return func(t *testing.T, tp *xskTopo, ifindex int, prog *xdpProgram) func() {
			set := func(fd int) error {
				return nsthread.Do(tp.sw.Path(), func() error {
					lk, err := netlink.LinkByIndex(ifindex)
					if err != nil {
						return err
					}
					return netlink.LinkSetXdpFdWithFlags(lk, fd, flags)
				})
			}
			if err := set(prog.prog.FD()); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := set(-1); err != nil {
					t.Error(err)
				}
			}
		}
	}
	viaLink := func(t *testing.T, tp *xskTopo, ifindex int, prog *xdpProgram) func() {
		var l link.Link
		err := nsthread.Do(tp.sw.Path(), func() error {
			var err error
			l, err = link.AttachXDP(link.XDPOptions{Program: prog.prog, Interface: ifindex, Flags: link.XDPGenericMode})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return func() { l.Close() }
	}
	for _, fg := range []foreign{
		{name: "netlink-generic", attach: viaNetlink(nl.XDP_FLAGS_SKB_MODE)},
		{name: "netlink-native", attach: viaNetlink(nl.XDP_FLAGS_DRV_MODE)},
		{name: "link-generic", attach: viaLink},
	} {
		for _, mode := range []XDPMode{XDPBestEffort, XDPNative, XDPGeneric} {
			t.Run(fmt.Sprintf("%s/%v", fg.name, mode), func(t *testing.T) {
				tp := newXSKTopo(t, 1)
				lk := tp.hostLink(t)
				ifindex := lk.Attrs().Index
				other, err := loadXDPProgram("other", 1)
				if err != nil {
					t.Fatal(err)
				}
				defer other.Close()
				detach := fg.attach(t, tp, ifindex, other)
				defer detach()
				before := measureResources(t)

				done := make(chan error, 1)
				go func() {
					p, err := OpenXSK(XSKConfig{Device: tp.veth.Host, Netns: tp.sw.Path(), Mode: mode})
					if err == nil {
						p.Close()
					}
					done <- err
				}()
				select {
				case err := <-done:
					if !errors.Is(err, ErrXDPBusy) || !strings.Contains(err.Error(), "XDP program") {
						t.Fatalf("open: %v; want ErrXDPBusy naming the XDP program", err)
					}
					t.Logf("open: %v", err)
				case <-time.After(10 * time.Second):
					t.Fatal("open hung for 10s on a device with another XDP program")
				}
				lk = tp.hostLink(t)
				if x := lk.Attrs().Xdp; x == nil || !x.Attached {
					t.Error("the other program was detached")
				}
				if r := measureResources(t); r.rings != before.rings || r.fds > before.fds {
					t.Errorf("resources %+v after the refused open, %+v before", r, before)
				}

				// The kernel-level check, without the netlink pre-check.
				mine, err := loadXDPProgram("mine", 1)
				if err != nil {
					t.Fatal(err)
				}
				defer mine.Close()
				err = nsthread.Do(tp.sw.Path(), func() error { return mine.attach(tp.veth.Host, ifindex, mode) })
				if !errors.Is(err, ErrXDPBusy) {
					t.Fatalf("attach: %v; want ErrXDPBusy", err)
				}
			})
		}
	}
}
