package vport

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

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
