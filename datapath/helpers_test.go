package datapath

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// newTestBridge returns a started bridge that is closed when the test ends.
func newTestBridge(t testing.TB, cfg Config) *Bridge {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "br0"
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close bridge: %v", err)
		}
	})
	return b
}

// addMemPort adds an unconnected in-memory port (generator/sink side).
func addMemPort(t testing.TB, b *Bridge, cfg vport.MemConfig, ofport uint32) (*vport.MemPort, *Port) {
	t.Helper()
	mp, err := vport.NewMemPort(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.AddPort(mp, ofport)
	if err != nil {
		t.Fatal(err)
	}
	return mp, p
}

// addFlows parses and installs flows in ovs-ofctl syntax.
func addFlows(t testing.TB, b *Bridge, flows ...string) {
	t.Helper()
	for _, s := range flows {
		f, err := flow.ParseFlow(s, flow.CmdAdd)
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		b.Table().Add(f)
	}
}

// quiesce waits until the bridge has forwarded everything injected: every
// rx ring is empty and a grace period has passed (so no batch is in flight).
func quiesce(t testing.TB, b *Bridge, ports ...*vport.MemPort) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending := 0
		for _, p := range ports {
			for q := 0; q < p.RxQueues(); q++ {
				pending += p.RxPending(q)
			}
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d frames still waiting after 10s", pending)
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Synchronize(ctx); err != nil {
		t.Fatal(err)
	}
}

// drainAll returns every frame waiting on mp's tx queues, copied.
func drainAll(mp *vport.MemPort) [][]byte {
	var out [][]byte
	bufs := make([][]byte, vport.MaxBatch)
	sizes := make([]int, vport.MaxBatch)
	for i := range bufs {
		bufs[i] = make([]byte, mp.FrameSize())
	}
	for q := 0; q < mp.TxQueues(); q++ {
		for {
			n := mp.Drain(q, bufs, sizes)
			if n == 0 {
				break
			}
			for i := 0; i < n; i++ {
				out = append(out, append([]byte(nil), bufs[i][:sizes[i]]...))
			}
		}
	}
	return out
}

// checkAccounting asserts the accounting identities on every port.
func checkAccounting(t testing.TB, b *Bridge) {
	t.Helper()
	for _, p := range b.Ports() {
		s := p.Stats()
		if !s.Balanced() {
			t.Errorf("port %s: rx %d + copies %d != sent %d + drops %d (%v)", s.Name, s.RxPackets, s.Copies, s.Sent, s.RxDropped(), s.Drops)
		}
	}
}

type frameSpec struct {
	src, dst  string // IPv4
	proto     string // tcp, udp, icmp
	sport     uint16
	dport     uint16
	vlan      uint16
	payloadSz int
}

// buildFrame builds a frame with gopacket.
func buildFrame(t testing.TB, f frameSpec) []byte {
	t.Helper()
	eth := &layers.Ethernet{
		SrcMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 1},
		DstMAC:       net.HardwareAddr{0x02, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4,
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: net.ParseIP(f.src).To4(), DstIP: net.ParseIP(f.dst).To4()}
	payload := gopacket.Payload(make([]byte, f.payloadSz))
	for i := range payload {
		payload[i] = byte(i)
	}
	var ls []gopacket.SerializableLayer
	if f.vlan != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, eth, &layers.Dot1Q{VLANIdentifier: f.vlan, Type: layers.EthernetTypeIPv4})
	} else {
		ls = append(ls, eth)
	}
	switch f.proto {
	case "tcp":
		ip.Protocol = layers.IPProtocolTCP
		tcp := &layers.TCP{SrcPort: layers.TCPPort(f.sport), DstPort: layers.TCPPort(f.dport), SYN: true, Window: 1000}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, ip, tcp, payload)
	case "udp":
		ip.Protocol = layers.IPProtocolUDP
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.sport), DstPort: layers.UDPPort(f.dport)}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, ip, udp, payload)
	default:
		ip.Protocol = layers.IPProtocolICMPv4
		ls = append(ls, ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1}, payload)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// recorder is a flow.Outputter that keeps copies of what is output.
type recorder struct{ out map[uint32][][]byte }

func (r *recorder) Output(port uint32, frame []byte) {
	r.out[port] = append(r.out[port], append([]byte(nil), frame...))
}

// goroutineBaseline returns a check that fails the test if goroutines
// started after the call are still running at the end.
func goroutineBaseline(t testing.TB) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// spinningLockups returns the recorded lockups that caught a poll thread
// spinning, oldest first.
func spinningLockups(b *Bridge) []Lockup {
	all, _ := b.Lockups()
	var out []Lockup
	for _, l := range all {
		if l.Spinning {
			out = append(out, l)
		}
	}
	return out
}
