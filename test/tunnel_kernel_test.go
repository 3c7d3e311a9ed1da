package test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/datapath/tunnel"
	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// kernelTunnel is one configuration of a Linux vxlan or geneve device and
// the outer header fields it must produce.
type kernelTunnel struct {
	name    string
	kind    tunnel.Kind
	v6      bool
	ipArgs  []string // after "ip link add DEV type KIND id VNI remote ADDR"
	port    uint16   // 0: the kind's default
	wantTOS uint8
	wantTTL uint8
	wantDF  bool
	csum    bool
}

// kernelTunnels are VXLAN only: the kernels CI runs on are built without
// the geneve device (CONFIG_GENEVE), and a test that needs it would fail
// there. Geneve's encoding is compared with scapy's (datapath/tunnel's
// testdata) instead.
var kernelTunnels = []kernelTunnel{
	{name: "vxlan4", kind: tunnel.VXLAN, ipArgs: []string{"noudpcsum"}, wantTTL: 64},
	{name: "vxlan4-default", kind: tunnel.VXLAN, wantTTL: 64, csum: true},
	{name: "vxlan4-csum-df-tos-ttl", kind: tunnel.VXLAN, ipArgs: []string{"udpcsum", "df", "set", "tos", "0x28", "ttl", "9", "dstport", "8472"},
		port: 8472, wantTOS: 0x28, wantTTL: 9, wantDF: true, csum: true},
	{name: "vxlan6", kind: tunnel.VXLAN, v6: true, wantTTL: 64, csum: true},
	{name: "vxlan6-zero-csum", kind: tunnel.VXLAN, v6: true, ipArgs: []string{"udp6zerocsumtx", "udp6zerocsumrx", "ttl", "3", "tos", "0xb8"}, wantTTL: 3, wantTOS: 0xb8},
}

const tunnelVNI = 4242

// kernelTunnelTopo is two "host" namespaces joined by an underlay veth:
// a (192.0.2.1, 2001:db8:1::1 on a0) runs the kernel's tunnel device tun0
// (10.9.0.1/24) towards b (192.0.2.2, 2001:db8:1::2 on b0).
type kernelTunnelTopo struct {
	a, b         *netns.NS
	macA, macB   [6]byte
	outerA, outB netip.Addr
}

func newKernelTunnelTopo(t *testing.T, kt kernelTunnel) *kernelTunnelTopo {
	t.Helper()
	testenv.RequireTool(t, "ip", "iproute2")
	a, b := netns.New(t, "tuna"), netns.New(t, "tunb")
	if kt.v6 {
		for _, ns := range []*netns.NS{a, b} {
			for _, key := range []string{"all", "default"} {
				ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+key+".disable_ipv6=0")
			}
		}
	}
	// The peer end (a0) has tx checksum offload off, so the kernel's
	// tunnel packets carry complete checksums on the wire.
	netns.AddVeth(t, b, "b0", a, "a0", 1)
	tp := &kernelTunnelTopo{a: a, b: b, macA: [6]byte(a.MAC(t, "a0")), macB: [6]byte(b.MAC(t, "b0"))}
	if kt.v6 {
		a.IP(t, "addr", "add", "2001:db8:1::1/64", "dev", "a0", "nodad")
		b.IP(t, "addr", "add", "2001:db8:1::2/64", "dev", "b0", "nodad")
		a.SetNeigh(t, "a0", "2001:db8:1::2", b.MAC(t, "b0"))
		b.SetNeigh(t, "b0", "2001:db8:1::1", a.MAC(t, "a0"))
		tp.outerA, tp.outB = netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:1::2")
	} else {
		a.AddAddr(t, "a0", "192.0.2.1/24")
		b.AddAddr(t, "b0", "192.0.2.2/24")
		a.SetNeigh(t, "a0", "192.0.2.2", b.MAC(t, "b0"))
		b.SetNeigh(t, "b0", "192.0.2.1", a.MAC(t, "a0"))
		tp.outerA, tp.outB = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	}
	args := []string{"link", "add", "tun0", "type", kt.kind.String(), "id", fmt.Sprint(tunnelVNI), "remote", tp.outB.String()}
	if kt.kind == tunnel.VXLAN {
		args = append(args, "local", tp.outerA.String(), "dev", "a0")
		if kt.port == 0 {
			args = append(args, "dstport", "4789")
		}
	}
	if out, err := a.Namespace.IP(append(args, kt.ipArgs...)...); err != nil {
		if strings.Contains(out, "Unknown device type") {
			testenv.Missing(t, "the kernel has no %s device (CONFIG_%s)", kt.kind, strings.ToUpper(kt.kind.String()))
		}
		t.Fatal(err)
	}
	// The tunnel device carries only the test's IPv4 packets: with IPv6
	// on, it would send its own multicast listener reports and router
	// solicitations when it comes up, through the tunnel, among them.
	a.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.tun0.disable_ipv6=1")
	a.IP(t, "link", "set", "tun0", "address", "02:00:00:00:09:01", "up")
	a.AddAddr(t, "tun0", "10.9.0.1/24")
	a.SetNeigh(t, "tun0", "10.9.0.2", net.HardwareAddr{2, 0, 0, 0, 9, 2})
	return tp
}

// TestTunnelKernelEncapsulation captures with tcpdump what the kernel's
// vxlan and geneve devices send on the underlay, decodes it with
// tunnel.Decoder, and re-encodes the inner frames with tunnel.Encap
// configured as the device is: the packets must be identical, byte for
// byte (the kernel's UDP source port and IPv4 identification are taken
// from the capture, since they come from its own hash and counter).
func TestTunnelKernelEncapsulation(t *testing.T) {
	testenv.RequireTool(t, "tcpdump", "tcpdump")
	for _, kt := range kernelTunnels {
		t.Run(kt.name, func(t *testing.T) {
			tp := newKernelTunnelTopo(t, kt)
			port := kt.port
			if port == 0 {
				port = kt.kind.DefaultPort()
			}
			pcap := filepath.Join(t.TempDir(), "underlay.pcap")
			const n = 3
			dump := tp.b.Start(t, "tcpdump", "-i", "b0", "-n", "-U", "-c", fmt.Sprint(n), "-w", pcap, "udp", "dst", "port", fmt.Sprint(port))
			if err := dump.WaitOutput("listening on", 20*time.Second); err != nil {
				t.Fatalf("tcpdump: %v: %s", err, dump.Output())
			}
			payloads := sendUDP(t, tp.a, "10.9.0.2:9999", n)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := dump.Wait(ctx); err != nil {
				t.Fatalf("tcpdump did not see %d packets: %v: %s", n, err, dump.Output())
			}
			frames := readCLIPcap(t, pcap)
			if len(frames) != n {
				t.Fatalf("captured %d frames, want %d", len(frames), n)
			}
			d := tunnel.Decoder{Kind: kt.kind, DstPort: port}
			for i, f := range frames {
				var h tunnel.Header
				if err := d.Decode(f, &h); err != nil {
					t.Fatalf("frame %d: %v\n%x", i, err, f)
				}
				switch {
				case h.VNI != tunnelVNI || h.Src != tp.outerA || h.Dst != tp.outB:
					t.Errorf("frame %d: vni %d %s > %s", i, h.VNI, h.Src, h.Dst)
				case h.TOS != kt.wantTOS || h.TTL != kt.wantTTL || h.DF != kt.wantDF || h.Csum != kt.csum:
					t.Errorf("frame %d: tos %#x ttl %d df %v csum %v, want %#x %d %v %v", i, h.TOS, h.TTL, h.DF, h.Csum, kt.wantTOS, kt.wantTTL, kt.wantDF, kt.csum)
				case !bytes.Contains(h.Inner, payloads[i]):
					t.Errorf("frame %d: inner frame %x lacks the payload %q", i, h.Inner, payloads[i])
				}
				e, err := tunnel.NewEncap(tunnel.Config{
					Kind: kt.kind, EthSrc: tp.macA, EthDst: tp.macB, Src: tp.outerA, Dst: tp.outB, DstPort: kt.port,
					VNI: tunnelVNI, TOS: kt.wantTOS, TTL: kt.wantTTL, DF: kt.wantDF, Csum: kt.csum,
				})
				if err != nil {
					t.Fatal(err)
				}
				var ipID uint16
				if !kt.v6 {
					ipID = binary.BigEndian.Uint16(f[tunnel.EthLen+4:])
				}
				got, err := e.Append(nil, h.Inner, h.SrcPort, ipID)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, f) {
					t.Errorf("frame %d differs from the kernel's:\nkernel %x\novsxdp %x", i, f, got)
				}
			}
		})
	}
}

// TestTunnelKernelDecapsulation sends frames that tunnel.Encap built onto
// the underlay (from b, as the far tunnel end would) and checks that the
// kernel's device in a decapsulates them: a UDP socket on 10.9.0.1 gets
// every payload.
func TestTunnelKernelDecapsulation(t *testing.T) {
	for _, kt := range kernelTunnels {
		t.Run(kt.name, func(t *testing.T) {
			tp := newKernelTunnelTopo(t, kt)
			var conn *net.UDPConn
			err := tp.a.Do(func() (err error) {
				conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP{10, 9, 0, 1}, Port: 7777})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			e, err := tunnel.NewEncap(tunnel.Config{
				Kind: kt.kind, EthSrc: tp.macB, EthDst: tp.macA, Src: tp.outB, Dst: tp.outerA, DstPort: kt.port,
				VNI: tunnelVNI, TTL: 64, DF: true, Csum: kt.csum,
			})
			if err != nil {
				t.Fatal(err)
			}
			var frames [][]byte
			want := map[string]bool{}
			for i := range 3 {
				payload := fmt.Sprintf("from ovsxdp %d", i)
				want[payload] = true
				inner := innerUDP(t, [6]byte{2, 0, 0, 0, 9, 2}, [6]byte{2, 0, 0, 0, 9, 1}, "10.9.0.2", "10.9.0.1", 7777, []byte(payload))
				f, err := e.Append(nil, inner, tunnel.SourcePort(uint32(i)*0x9e3779b9), uint16(i))
				if err != nil {
					t.Fatal(err)
				}
				frames = append(frames, f)
			}
			inject(t, tp.b, "b0", frames)
			if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			for len(want) > 0 {
				n, _, err := conn.ReadFromUDP(buf)
				if err != nil {
					t.Fatalf("the kernel's %s device delivered %d of 3 datagrams: %v (missing %v)", kt.kind, 3-len(want), err, want)
				}
				delete(want, string(buf[:n]))
			}
		})
	}
}

// sendUDP sends n datagrams to addr from a socket in ns and returns their
// payloads.
func sendUDP(t *testing.T, ns *netns.NS, addr string, n int) [][]byte {
	t.Helper()
	var conn net.Conn
	if err := ns.Do(func() (err error) { conn, err = net.Dial("udp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out [][]byte
	for i := range n {
		p := []byte(strings.Repeat(fmt.Sprintf("tunnel payload %d ", i), i*10+1))
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// innerUDP builds an Ethernet/IPv4/UDP frame with gopacket.
func innerUDP(t *testing.T, src, dst [6]byte, srcIP, dstIP string, port uint16, payload []byte) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP(srcIP), DstIP: net.ParseIP(dstIP)}
	udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(port)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
		&layers.Ethernet{SrcMAC: src[:], DstMAC: dst[:], EthernetType: layers.EthernetTypeIPv4}, ip, udp, gopacket.Payload(payload))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
