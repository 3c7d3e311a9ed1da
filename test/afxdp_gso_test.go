package test

import (
	"bytes"
	"context"
	"encoding/json"
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

// TestAFXDPCoalesce sends a run of TCP segments and a run of UDP
// datagrams through the datapath between AF_XDP ports and checks what the
// kernel makes of the GSO packets the poll thread merges them into. With
// segmentation offload on the egress device (the default), the receiving
// namespace gets one large packet for each run, holding its payload. With
// it off, the kernel cuts the packets up before the veth, and the
// receiving namespace must get the very frames that were sent, byte for
// byte. Frames around the runs go through unchanged and in order.
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
	const mss, segs, dgrams = 1000, 6, 4
	// The frames are addressed to another host, so that b's stack
	// ignores them.
	sent := [][]byte{udpFrame(t, 1, 20)}
	for i := range segs {
		payload := bytes.Repeat([]byte{byte('a' + i)}, mss)
		sent = append(sent, tcpSegment(t, uint16(100+i), uint32(5000+i*mss), payload, i == segs-1))
	}
	for i := range dgrams {
		payload := bytes.Repeat([]byte{byte('A' + i)}, 100-40*(i/(dgrams-1))) // the last one shorter
		sent = append(sent, udpDatagram(t, uint16(200+i), payload))
	}
	sent = append(sent, udpFrame(t, 2, 20))
	// The frames wait on h-a's socket until the poll thread starts, so
	// that it takes them in one batch: wait until h-a has received them
	// all (a busy machine may take its time), then a little more for the
	// redirect's flush, which ends the same softirq.
	rxBefore := linkRxPackets(t, sw, va.Host)
	inject(t, a, va.Peer, sent)
	if !netns.Eventually(20*time.Second, func() bool { return linkRxPackets(t, sw, va.Host)-rxBefore >= uint64(len(sent)) }) {
		t.Fatalf("%s did not receive the %d frames sent in 20s", va.Host, len(sent))
	}
	time.Sleep(20 * time.Millisecond)
	if err := br.Start(); err != nil {
		t.Fatal(err)
	}

	want := sent
	// ignore lists, for each frame wanted, the byte ranges not compared:
	// those a GSO packet's receiver sees before the kernel completes
	// them (lengths, checksums).
	ignore := make([][][2]int, len(want))
	if !segment {
		tcpRun, udpRun := sent[1:1+segs], sent[1+segs:1+segs+dgrams]
		want = [][]byte{sent[0], concatRun(tcpRun, 66), concatRun(udpRun, 42), sent[len(sent)-1]}
		want[1][47] = tcpRun[segs-1][47] // the flags of the last segment (PSH)
		ignore = [][][2]int{nil, {{16, 18}, {24, 26}, {50, 52}}, {{16, 18}, {24, 26}, {38, 42}}, nil}
	}
	got := capture(len(want))
	if len(got) != len(want) {
		t.Fatalf("p-b got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if len(g) == len(w) && ignore[i] != nil {
			g, w = slices.Clone(g), slices.Clone(w)
			for _, r := range ignore[i] {
				clear(g[r[0]:r[1]])
				clear(w[r[0]:r[1]])
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
	if pmd.GSOPackets != 2 || pmd.GSOSegments != segs+dgrams || pmd.GSOFailed != 0 {
		t.Errorf("poll thread: %d GSO packets of %d segments, %d failed; want 2 of %d, 0", pmd.GSOPackets, pmd.GSOSegments, pmd.GSOFailed, segs+dgrams)
	}
	if st := egress.Stats(); st.TxGSO != 2 || st.TxPackets != uint64(len(sent)) {
		t.Errorf("h-b socket: %d GSO packets, %d frames sent; want 2, %d", st.TxGSO, st.TxPackets, len(sent))
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
	return serialize(t, ip, tcp, payload)
}

// udpDatagram builds a datagram of a connected UDP socket's flow (DF, IDs
// counting up).
func udpDatagram(t *testing.T, id uint16, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, IHL: 5, Id: id, Flags: layers.IPv4DontFragment, TTL: 64,
		Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 5201}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, udp, payload)
}

// serialize builds an Ethernet frame (02:00:00:00:00:01 to ...:02) of an
// IPv4 header, a transport header and payload.
func serialize(t *testing.T, ip *layers.IPv4, l4 gopacket.SerializableLayer, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, l4, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(buf.Bytes())
}

// concatRun is the large packet a run of frames with hdr bytes of headers
// stands for: the first frame's headers and every frame's payload.
func concatRun(run [][]byte, hdr int) []byte {
	out := slices.Clone(run[0][:hdr])
	for _, f := range run {
		out = append(out, f[hdr:]...)
	}
	return out
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
// function that waits for n frames, or 20 s, and returns them.
func openCapture(t *testing.T, ns *netns.NS, dev string) func(n int) [][]byte {
	t.Helper()
	fd := packetSocket(t, ns, dev, unix.ETH_P_ALL)
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return func(n int) [][]byte {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
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

// linkRxPackets returns dev's received packet count in ns (XDP included).
func linkRxPackets(t *testing.T, ns *netns.NS, dev string) uint64 {
	t.Helper()
	var links []struct {
		Stats struct {
			Rx struct {
				Packets uint64 `json:"packets"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	out := ns.IP(t, "-s", "-j", "link", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s -j link show dev %s: %v: %q", dev, err, out)
	}
	return links[0].Stats.Rx.Packets
}
