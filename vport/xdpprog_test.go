package vport

import (
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ovsxdp/ovsxdp/vport/internal/nsthread"
)

// xdpMd is the kernel's struct xdp_md, the context of an XDP program.
type xdpMd struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// TestXDPProgramRedirect runs the port's program through BPF_PROG_TEST_RUN:
// a frame on a queue with a socket is redirected, a frame on a queue
// without one is passed to the kernel's stack.
func TestXDPProgramRedirect(t *testing.T) {
	tp := newXSKTopo(t, 4)
	p := tp.open(t, XSKConfig{Queues: 2})
	frame := udpFrame(t, tp.peerMAC, remoteMAC, peerIP, remoteIP, 4000, 9, []byte("test-run"))
	const xdpRedirect = 4
	for _, tc := range []struct {
		name    string
		inQueue uint32
		want    uint32
	}{
		{name: "queue 0 has a socket", inQueue: 0, want: xdpRedirect},
		{name: "queue 1 has a socket", inQueue: 1, want: xdpRedirect},
		{name: "queue 3 has none", inQueue: 3, want: xdpPass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got uint32
			err := nsthread.Do(tp.sw.Path(), func() error {
				var err error
				got, err = p.prog.prog.Run(&ebpf.RunOptions{
					Data:    frame,
					Context: xdpMd{IngressIfindex: uint32(p.Ifindex()), RxQueueIndex: tc.inQueue},
				})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("action %d, want %d", got, tc.want)
			}
		})
	}
}
