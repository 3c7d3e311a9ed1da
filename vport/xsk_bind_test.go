package vport

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// TestXSKZeroCopyFallback opens a port on a veth, which has no zero-copy
// AF_XDP: the port asks for zero-copy first, the kernel refuses, and the
// port falls back to copy mode, with need_wakeup, and says so in its info.
// The port then receives and transmits. In copy mode the kernel leaves the
// fill ring's wakeup flag clear (it takes fill frames as packets arrive):
// receiving costs no system call.
func TestXSKZeroCopyFallback(t *testing.T) {
	for _, mode := range []XDPMode{XDPNative, XDPGeneric} {
		t.Run(mode.String(), func(t *testing.T) {
			tp := newXSKTopo(t, 2)
			p := tp.open(t, XSKConfig{Mode: mode})
			info := p.Info()
			t.Logf("info %+v", info)
			if info.ZeroCopy || info.BindMode() != "copy" {
				t.Errorf("bound in %s mode on a veth, want copy", info.BindMode())
			}
			if !errors.Is(info.ZeroCopyErr, unix.EOPNOTSUPP) {
				t.Errorf("zero-copy refusal %v, want EOPNOTSUPP", info.ZeroCopyErr)
			}
			if !info.NeedWakeup {
				t.Error("sockets bound without need_wakeup")
			}
			for _, s := range p.socks {
				if zc, err := boundZeroCopy(s.fd); zc || err != nil {
					t.Errorf("queue %d: XDP_OPTIONS zero-copy %v, %v; want copy", s.queue, zc, err)
				}
			}

			const flows = 8
			for i := range flows {
				c := tp.udpIn(t, fmt.Sprintf("10.0.0.1:%d", 4100+i), "10.0.0.2:9")
				if _, err := c.Write([]byte(fmt.Sprintf("zc-%02d", i))); err != nil {
					t.Fatal(err)
				}
			}
			seen := map[string]bool{}
			receiveUntil(t, p, 10*time.Second, func(q int, frame []byte, info RxInfo) bool {
				pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
				if app := pkt.ApplicationLayer(); app != nil && bytes.HasPrefix(app.Payload(), []byte("zc-")) {
					seen[string(app.Payload())] = true
				}
				return len(seen) == flows
			})
			if len(seen) != flows {
				t.Fatalf("received %d of %d datagrams", len(seen), flows)
			}
			if fill, _ := p.Wakeups(); fill != 0 {
				t.Errorf("%d fill ring wakeups in copy mode, want 0", fill)
			}

			srv := tp.udpIn(t, "10.0.0.1:7100", "")
			f := udpFrame(t, remoteMAC, tp.peerMAC, remoteIP, peerIP, 5000, 7100, []byte("zc-tx"))
			if n, err := p.Transmit(0, [][]byte{f}); n != 1 || err != nil {
				t.Fatalf("transmit: %d, %v", n, err)
			}
			buf := make([]byte, 64)
			srv.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := srv.Read(buf); err != nil || string(buf[:n]) != "zc-tx" {
				t.Fatalf("peer read %q, %v", buf[:n], err)
			}
			if _, tx := p.Wakeups(); tx == 0 {
				t.Error("no tx kick in copy mode, whose tx ring always asks for one")
			}
		})
	}
}

// TestXSKCopyMode checks that CopyMode binds in copy mode without asking
// for zero-copy.
func TestXSKCopyMode(t *testing.T) {
	tp := newXSKTopo(t, 1)
	p := tp.open(t, XSKConfig{CopyMode: true})
	if info := p.Info(); info.ZeroCopy || info.ZeroCopyErr != nil || !info.NeedWakeup {
		t.Errorf("info %+v, want copy mode with need_wakeup, no zero-copy refusal", info)
	}
}

// TestXSKBusyPoll opens a port that prefers busy polling: the kernel takes
// the socket options, the port says so, and it still receives and sends.
func TestXSKBusyPoll(t *testing.T) {
	tp := newXSKTopo(t, 1)
	p := tp.open(t, XSKConfig{Mode: XDPNative, BusyPollBudget: MaxBatch})
	if info := p.Info(); !info.BusyPoll || info.BusyPollErr != nil {
		t.Fatalf("info %+v, want busy polling", info)
	}
	c := tp.udpIn(t, "10.0.0.1:4300", "10.0.0.2:9")
	if _, err := c.Write([]byte("bp-rx")); err != nil {
		t.Fatal(err)
	}
	if !receiveUntil(t, p, 10*time.Second, func(q int, frame []byte, info RxInfo) bool {
		return bytes.HasSuffix(frame, []byte("bp-rx"))
	}) {
		t.Fatal("nothing received")
	}
	t.Logf("NAPI ids %v", p.NAPIIDs())
	srv := tp.udpIn(t, "10.0.0.1:7300", "")
	f := udpFrame(t, remoteMAC, tp.peerMAC, remoteIP, peerIP, 5000, 7300, []byte("bp-tx"))
	if n, err := p.Transmit(0, [][]byte{f}); n != 1 || err != nil {
		t.Fatalf("transmit: %d, %v", n, err)
	}
	buf := make([]byte, 64)
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := srv.Read(buf); err != nil || string(buf[:n]) != "bp-tx" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
}

// TestXSKLend receives frames without a copy: they are the UMEM frames,
// with room after them to push a tag, and they stay off the fill ring
// until Release gives them back. Frames that are never given back starve
// the queue (the kernel drops for want of a fill frame); frames given back
// keep it going for many times the ring.
func TestXSKLend(t *testing.T) {
	const ring = 16
	tp := newXSKTopo(t, 1)
	p := tp.open(t, XSKConfig{Frames: 2 * ring, RingSize: ring})
	s := p.socks[0]
	c := tp.udpIn(t, "10.0.0.1:4400", "10.0.0.2:9")
	frames := make([][]byte, MaxBatch)
	info := make([]RxInfo, MaxBatch)
	// lendUntil lends frames until want of them carry the prefix, and
	// returns those, not given back.
	lendUntil := func(prefix string, want int) [][]byte {
		t.Helper()
		var got [][]byte
		deadline := time.Now().Add(10 * time.Second)
		for len(got) < want && time.Now().Before(deadline) {
			n, err := p.ReceiveLent(0, frames, info)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if info[i].RxQueue != RecordRxQueue(0) {
					t.Errorf("frame records rx queue %d", info[i].RxQueue.Queue())
				}
				if bytes.Contains(frames[i], []byte(prefix)) {
					got = append(got, frames[i])
				} else {
					p.Release(0, frames[i:i+1])
				}
			}
			if n == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		if len(got) != want {
			t.Fatalf("lent %d %q frames, want %d", len(got), prefix, want)
		}
		return got
	}

	// Rounds of half a ring, each given back: four rings' worth.
	for r := range 8 {
		prefix := fmt.Sprintf("lend%d-", r)
		for i := range ring / 2 {
			if _, err := c.Write([]byte(fmt.Sprintf("%s%02d", prefix, i))); err != nil {
				t.Fatal(err)
			}
		}
		fillBefore := atomic.LoadUint32(s.fill.prod)
		got := lendUntil(prefix, ring/2)
		for _, f := range got {
			off := uintptr(unsafe.Pointer(unsafe.SliceData(f))) - uintptr(unsafe.Pointer(unsafe.SliceData(s.umem)))
			if off >= uintptr(len(s.umem)) {
				t.Fatalf("lent frame is not in the UMEM")
			}
			if cap(f)-len(f) < 4 {
				t.Errorf("lent frame of %d bytes has %d bytes of room, want at least 4", len(f), cap(f)-len(f))
			}
		}
		if back := atomic.LoadUint32(s.fill.prod) - fillBefore; back != 0 {
			t.Errorf("round %d: %d frames back on the fill ring before Release", r, back)
		}
		p.Release(0, got)
		if back := atomic.LoadUint32(s.fill.prod) - fillBefore; back != ring/2 {
			t.Errorf("round %d: %d frames back on the fill ring after Release, want %d", r, back, ring/2)
		}
	}
	if ks, err := s.kernelStats(); err != nil || ks.Rx_dropped != 0 || ks.Rx_ring_full != 0 {
		t.Fatalf("kernel stats %+v, %v: want no drop", ks, err)
	}

	// Frames kept: the queue runs dry.
	for i := range 2 * ring {
		if _, err := c.Write([]byte(fmt.Sprintf("keep-%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	kept := lendUntil("keep-", ring)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ks, err := s.kernelStats()
		if err != nil {
			t.Fatal(err)
		}
		if ks.Rx_dropped == ring {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kernel stats %+v: want %d drops for want of a fill frame", ks, ring)
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Release(0, kept)
	// A frame that is not the socket's is ignored.
	before := atomic.LoadUint32(s.fill.prod)
	p.Release(0, [][]byte{make([]byte, 64, 2048)})
	if atomic.LoadUint32(s.fill.prod) != before {
		t.Error("a foreign slice went on the fill ring")
	}
}
