package vport

import (
	"github.com/vishvananda/netlink"

	"errors"
	"net"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/vport/internal/nsthread"
)

// xskTopo is a switch namespace holding the host end of a veth pair (the
// side an XSKPort opens) and a peer namespace with the other end, which
// has the address 10.0.0.1/24.
type xskTopo struct {
	sw, peer *netns.NS
	veth     *netns.Veth
	hostMAC  net.HardwareAddr
	peerMAC  net.HardwareAddr
}

var (
	peerIP   = net.IPv4(10, 0, 0, 1).To4()
	remoteIP = net.IPv4(10, 0, 0, 2).To4()
	// remoteMAC stands for a host behind the port.
	remoteMAC = net.HardwareAddr{0x02, 0x6f, 0x76, 0, 0, 2}
)

func newXSKTopo(t *testing.T, queues int) *xskTopo {
	t.Helper()
	sw := netns.New(t, "sw")
	peer := netns.New(t, "peer")
	v := netns.AddVeth(t, sw, "h0", peer, "p0", queues)
	peer.AddAddr(t, "p0", "10.0.0.1/24")
	peer.SetNeigh(t, "p0", remoteIP.String(), remoteMAC)
	return &xskTopo{sw: sw, peer: peer, veth: v, hostMAC: sw.MAC(t, "h0"), peerMAC: peer.MAC(t, "p0")}
}

// open opens an XSKPort on the host end, closed when the test ends.
// hostLink returns the netlink link of the topology's host end, read in the
// switch namespace.
func (tp *xskTopo) hostLink(t *testing.T) netlink.Link {
	t.Helper()
	h, err := netlinkHandle(tp.sw.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lk, err := h.LinkByName(tp.veth.Host)
	if err != nil {
		t.Fatal(err)
	}
	return lk
}

func (tp *xskTopo) open(t *testing.T, cfg XSKConfig) *XSKPort {
	t.Helper()
	cfg.Device, cfg.Netns = tp.veth.Host, tp.sw.Path()
	if cfg.Frames == 0 {
		cfg.Frames = 256
	}
	p, err := OpenXSK(cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

// udpIn returns a UDP socket of the peer namespace bound to laddr and, if
// raddr is not empty, connected to raddr.
func (tp *xskTopo) udpIn(t *testing.T, laddr, raddr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := nsthread.Do(tp.peer.Path(), func() error {
		la, err := net.ResolveUDPAddr("udp4", laddr)
		if err != nil {
			return err
		}
		if raddr == "" {
			c, err = net.ListenUDP("udp4", la)
			return err
		}
		ra, err := net.ResolveUDPAddr("udp4", raddr)
		if err != nil {
			return err
		}
		c, err = net.DialUDP("udp4", la, ra)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpFrame builds an Ethernet/IPv4/UDP frame.
func udpFrame(t testing.TB, srcMAC, dstMAC net.HardwareAddr, srcIP, dstIP net.IP, sport, dport uint16, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: srcIP, DstIP: dstIP}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rxBatch is a caller-owned receive batch.
type rxBatch struct {
	bufs  [][]byte
	sizes []int
	info  []RxInfo
}

func newRxBatch() *rxBatch {
	b := &rxBatch{sizes: make([]int, MaxBatch), info: make([]RxInfo, MaxBatch)}
	for range MaxBatch {
		b.bufs = append(b.bufs, make([]byte, 2048))
	}
	return b
}

// receiveUntil polls every rx queue of p, handing each frame to fn, until
// fn returns true or timeout passes. It returns whether fn was satisfied.
func receiveUntil(t *testing.T, p *XSKPort, timeout time.Duration, fn func(q int, frame []byte, info RxInfo) bool) bool {
	t.Helper()
	b := newRxBatch()
	var poller Poller
	for q := range p.RxQueues() {
		if err := poller.Add(p, q); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for q := range p.RxQueues() {
			n, err := p.Receive(q, b.bufs, b.sizes, b.info)
			if err != nil {
				t.Fatalf("receive queue %d: %v", q, err)
			}
			for i := range n {
				if fn(q, b.bufs[i][:b.sizes[i]], b.info[i]) {
					return true
				}
			}
		}
		if _, err := poller.Wait(20 * time.Millisecond); err != nil && !errors.Is(err, ErrPortDown) {
			t.Fatal(err)
		}
	}
	return false
}
