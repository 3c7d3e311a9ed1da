package vport

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// peerRx reads the peer end's rx packet and byte counters.
func (tp *xskTopo) peerRx(t *testing.T) (packets, bytes uint64) {
	t.Helper()
	for i, name := range []string{"rx_packets", "rx_bytes"} {
		out := tp.peer.MustRun(t, "cat", "/sys/class/net/"+tp.veth.Peer+"/statistics/"+name)
		v, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			packets = v
		} else {
			bytes = v
		}
	}
	return packets, bytes
}

// TestXSKTransmitGSO sends a GSO packet of 3 segments to the peer: the
// peer's stack gets it as one packet, and the port counts it as the 3
// frames it stands for. A description that does not fit the frame is
// refused before the kernel sees it, and a device that is down refuses
// the packet with ErrPortDown.
func TestXSKTransmitGSO(t *testing.T) {
	tp := newXSKTopo(t, 1)
	p := tp.open(t, XSKConfig{})
	ip := &layers.IPv4{Version: 4, IHL: 5, Flags: layers.IPv4DontFragment, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: remoteIP, DstIP: peerIP}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 9, Seq: 1, ACK: true, Window: 100}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	eth := &layers.Ethernet{SrcMAC: remoteMAC, DstMAC: tp.peerMAC, EthernetType: layers.EthernetTypeIPv4}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(bytes.Repeat([]byte{7}, 2500))); err != nil {
		t.Fatal(err)
	}
	frame := buf.Bytes()
	// The checksum the kernel completes starts from the pseudo-header
	// sum; its value does not matter for delivery to a local stack.
	g := GSO{L4: 34, HeaderLen: 54, MSS: 1000}

	for _, bad := range []GSO{{L4: 34, HeaderLen: 54}, {L4: 34, HeaderLen: 54, MSS: 2500}, {L4: 4, HeaderLen: 54, MSS: 1000}, {L4: 34, HeaderLen: 40, MSS: 1000}, {UDP: true, L4: 34, HeaderLen: 40, MSS: 1000}} {
		if err := p.TransmitGSO(frame, bad); !errors.Is(err, errGSOShape) {
			t.Errorf("TransmitGSO with %+v: %v, want %v", bad, err, errGSOShape)
		}
	}
	pkts, byts := tp.peerRx(t)
	if err := p.TransmitGSO(frame, g); err != nil {
		t.Fatalf("TransmitGSO: %v", err)
	}
	pkts2, byts2 := tp.peerRx(t)
	if pkts2-pkts != 1 || byts2-byts != uint64(len(frame)) {
		t.Errorf("peer received %d packets of %d bytes, want 1 of %d", pkts2-pkts, byts2-byts, len(frame))
	}
	st := p.Stats()
	if st.TxGSO != 1 || st.TxPackets != 3 || st.TxBytes != uint64(len(frame)+2*54) {
		t.Errorf("stats: %d GSO packets, %d frames, %d bytes; want 1, 3, %d", st.TxGSO, st.TxPackets, st.TxBytes, len(frame)+2*54)
	}

	tp.sw.MustRun(t, "ip", "link", "set", tp.veth.Host, "down")
	if err := p.TransmitGSO(frame, g); !errors.Is(err, ErrPortDown) {
		t.Errorf("TransmitGSO on a device that is down: %v, want %v", err, ErrPortDown)
	}
}

// TestGSOSendInterrupted checks that a GSO write that signals keep
// interrupting gives up after a bounded number of tries with an error
// (the datapath then sends the segments the ordinary way), rather than
// retrying forever.
func TestGSOSendInterrupted(t *testing.T) {
	tests := []struct {
		name      string
		inErrnos  []unix.Errno // what the successive writes return; the last one repeats
		wantCalls int
		wantErr   error // nil: no error; errAny: any other error
	}{
		{"sent", []unix.Errno{0}, 1, nil},
		{"interrupted then sent", []unix.Errno{unix.EINTR, unix.EINTR, 0}, 3, nil},
		{"device down", []unix.Errno{unix.ENETDOWN}, 1, ErrPortDown},
		{"interrupted forever", []unix.Errno{unix.EINTR}, gsoMaxEINTR, unix.EINTR},
		{"no buffer", []unix.Errno{unix.ENOBUFS}, 1, unix.ENOBUFS},
	}
	frame := make([]byte, 14+20+20+3000)
	g := GSO{L4: 34, HeaderLen: 54, MSS: 1448}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			s := &gsoSocket{fd: -1, sys: func(int, []unix.Iovec) unix.Errno {
				calls++
				if calls > 10*gsoMaxEINTR {
					t.Fatalf("%d writes for one packet", calls)
				}
				return tt.inErrnos[min(calls, len(tt.inErrnos))-1]
			}}
			err := s.send(frame, g)
			if calls != tt.wantCalls {
				t.Errorf("%d writes, want %d", calls, tt.wantCalls)
			}
			if (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
		})
	}
}
