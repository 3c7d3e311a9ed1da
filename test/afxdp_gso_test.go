package test

import (
	"bytes"
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestAFXDPCoalesce sends a run of TCP segments through the datapath
// between AF_XDP ports and checks what the kernel makes of the GSO packet
// the poll thread merges them into. With segmentation offload on the
// egress device (the default), the receiving namespace gets one large
// segment holding the run's payload. With it off, the kernel cuts the
// packet up before the veth, and the receiving namespace must get the
// very frames that were sent, byte for byte. Frames around the run that
// are not TCP go through unchanged and in order.
func TestAFXDPCoalesce(t *testing.T) {
	for _, c := range []struct {
		name    string
		segment bool
	}{{"whole", false}, {"segmented", true}} {
		t.Run(c.name, func(t *testing.T) { coalesceRound(t, c.segment) })
	}
}

func coalesceRound(t *testing.T, segment bool) {
	sw, a, b := netns.New(t, "sw"), netns.New(t, "a"), netns.New(t, "b")
	va := netns.AddVeth(t, sw, "h-a", a, "p-a", 1)
	vb := netns.AddVeth(t, sw, "h-b", b, "p-b", 1)
	if segment {
		ethtool := testenv.RequireTool(t, "ethtool", "ethtool")
		sw.MustRun(t, ethtool, "-K", vb.Host, "tx", "off") // no checksum offload, so no TSO
	}
	br, err := datapath.New(datapath.Config{Name: "br-gso", PMDs: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := br.Close(); err != nil {
			t.Errorf("close bridge: %v", err)
		}
	})
	var egress *vport.XSKPort
	for i, dev := range []string{va.Host, vb.Host} {
		p, err := vport.OpenXSK(vport.XSKConfig{Device: dev, Netns: sw.Path()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := br.AddPort(p, uint32(i+1)); err != nil {
			p.Close()
			t.Fatal(err)
		}
		egress = p
	}
	addFlows(t, br, l2Flows...)

	capture := openCapture(t, b, vb.Peer)
	const mss, segs = 1000, 6
	// The frames are addressed to another host, so that b's stack
	// ignores them.
	sent := [][]byte{udpFrame(t, 1, 20)}
	for i := range segs {
		payload := bytes.Repeat([]byte{byte('a' + i)}, mss)
		sent = append(sent, tcpSegment(t, uint16(100+i), uint32(5000+i*mss), payload, i == segs-1))
	}
	sent = append(sent, udpFrame(t, 2, 20))
	// The frames wait on h-a's socket until the poll thread starts, so
	// that it takes them in one batch.
	inject(t, a, va.Peer, sent)
	time.Sleep(100 * time.Millisecond)
	if err := br.Start(); err != nil {
		t.Fatal(err)
	}

	want := sent
	if !segment {
		whole := slices.Clone(sent[1][:66]) // headers: Ethernet, IPv4, TCP with timestamps
		for _, f := range sent[1 : 1+segs] {
			whole = append(whole, f[66:]...)
		}
		whole[47] = sent[segs][47] // the flags of the last segment (PSH)
		want = [][]byte{sent[0], whole, sent[len(sent)-1]}
	}
	got := capture(len(want))
	if len(got) != len(want) {
		t.Fatalf("p-b got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !segment && i == 1 && len(g) == len(w) {
			// The large segment arrives with its checksum to be
			// completed, and its IP length and checksum rewritten.
			g, w = slices.Clone(g), slices.Clone(w)
			for _, f := range [][]byte{g, w} {
				clear(f[16:18])
				clear(f[24:26])
				clear(f[50:52])
			}
		}
		if !bytes.Equal(g, w) {
			at := 0
			for at < min(len(g), len(w)) && g[at] == w[at] {
				at++
			}
			t.Errorf("frame %d on p-b (%d bytes) is not the one sent (%d bytes): first difference at byte %d\n got %x\nwant %x",
				i, len(g), len(w), at, g[:min(len(g), at+16)], w[:min(len(w), at+16)])
		}
	}

	stats := quiesceStats(t, br)
	checkBalanced(t, stats...)
	pmd := br.PMDStats()[0]
	if pmd.GSOPackets != 1 || pmd.GSOSegments != segs || pmd.GSOFailed != 0 {
		t.Errorf("poll thread: %d GSO packets of %d segments, %d failed; want 1 of %d, 0", pmd.GSOPackets, pmd.GSOSegments, pmd.GSOFailed, segs)
	}
	if st := egress.Stats(); st.TxGSO != 1 || st.TxPackets != uint64(len(sent)) {
		t.Errorf("h-b socket: %d GSO packets, %d frames sent; want 1, %d", st.TxGSO, st.TxPackets, len(sent))
	}
}

// tcpSegment builds a segment of a bulk TCP sender (DF, timestamps, full
// checksums), 66 bytes of headers.
func tcpSegment(t *testing.T, id uint16, seq uint32, payload []byte, psh bool) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, IHL: 5, Id: id, Flags: layers.IPv4DontFragment, TTL: 64,
		Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: seq, Ack: 1, ACK: true, PSH: psh, Window: 500,
		Options: []layers.TCPOption{
			{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 1, 0, 0, 0, 2, 0, 0}},
		}}
	tcp.SetNetworkLayerForChecksum(ip)
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(buf.Bytes())
}

// packetSocket opens a packet socket bound to dev in ns, for every
// protocol (ETH_P_ALL) or none (0: send only).
func packetSocket(t *testing.T, ns *netns.NS, dev string, proto uint16) int {
	t.Helper()
	ifindex, err := ns.Ifindex(dev)
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	err = ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(proto)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex, Protocol: htons(proto)})
	})
	if err != nil {
		t.Fatalf("packet socket on %s: %v", dev, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// inject sends frames out of dev in ns.
func inject(t *testing.T, ns *netns.NS, dev string, frames [][]byte) {
	t.Helper()
	fd := packetSocket(t, ns, dev, 0)
	for _, f := range frames {
		if _, err := unix.Write(fd, f); err != nil {
			t.Fatalf("send on %s: %v", dev, err)
		}
	}
}

// openCapture starts capturing what dev in ns receives (not what it
// sends: the namespace answers the injected traffic) and returns a
// function that waits for n frames, or 5 s, and returns them.
func openCapture(t *testing.T, ns *netns.NS, dev string) func(n int) [][]byte {
	t.Helper()
	fd := packetSocket(t, ns, dev, unix.ETH_P_ALL)
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return func(n int) [][]byte {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var got [][]byte
		buf := make([]byte, 1<<17)
		for len(got) < n && ctx.Err() == nil {
			m, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue // the timeout: check the deadline
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			got = append(got, slices.Clone(buf[:m]))
		}
		return got
	}
}
