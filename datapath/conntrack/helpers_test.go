package conntrack

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/flow"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

// pkt describes a test packet; build turns it into a frame.
type pkt struct {
	src, dst     string // addresses (IPv4 or IPv6)
	proto        uint8  // TCP, UDP, ICMP or ICMPv6; anything else: an IP packet of that protocol
	sport, dport uint16
	flags        uint16 // TCP flags
	seq, ack     uint32
	win          uint16
	payload      []byte
	wscale       int    // >0: a TCP window scale option of wscale-1
	icmpType     uint8  // ICMP/ICMPv6 type
	icmpCode     uint8  // ICMP/ICMPv6 code
	icmpID       uint16 // echo identifier
	quote        []byte // ICMP error: the IP packet it quotes
}

func (p pkt) build(t testing.TB) []byte {
	t.Helper()
	src, dst := netip.MustParseAddr(p.src), netip.MustParseAddr(p.dst)
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB}
	var ls []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	if src.Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocol(p.proto), SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ls, nl = append(ls, eth, ip), ip
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocol(p.proto), SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		ls, nl = append(ls, eth, ip), ip
	}
	body := p.payload
	switch p.proto {
	case flow.IPProtoTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), Seq: p.seq, Ack: p.ack, Window: p.win,
			FIN: p.flags&tcpFIN != 0, SYN: p.flags&tcpSYN != 0, RST: p.flags&tcpRST != 0, PSH: p.flags&tcpPSH != 0,
			ACK: p.flags&tcpACK != 0, URG: p.flags&tcpURG != 0}
		if p.wscale > 0 {
			tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{byte(p.wscale - 1)}}}
		}
		_ = tcp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, tcp)
	case flow.IPProtoUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
		_ = udp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, udp)
	case flow.IPProtoICMP:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(p.icmpType, p.icmpCode), Id: p.icmpID, Seq: 1})
		if p.quote != nil {
			body = p.quote
		}
	case flow.IPProtoICMPv6:
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(p.icmpType, p.icmpCode)}
		_ = icmp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, icmp)
		rest := make([]byte, 4)
		if p.quote != nil {
			body = append(rest, p.quote...) // unused word, then the quote
		} else {
			rest[0], rest[1] = byte(p.icmpID>>8), byte(p.icmpID)
			rest[3] = 1
			body = append(rest, p.payload...)
		}
	}
	ls = append(ls, gopacket.Payload(body))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// ipPacket returns the IP packet of a frame (the frame without Ethernet).
func ipPacket(frame []byte) []byte { return append([]byte(nil), frame[14:]...) }

// harness runs frames through one tracker with a clock the test moves.
type harness struct {
	t   testing.TB
	tr  *Tracker
	now int64
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, tr: tr, now: int64(time.Hour)}
}

// run extracts the frame's key and runs ct on it; it returns the key
// afterwards and the verdict.
func (h *harness) run(frame []byte, ct flow.CT) (flow.Key, flow.Verdict) {
	h.t.Helper()
	var k flow.Key
	var off flow.Offsets
	flow.Extract(&k, &off, frame, 1)
	v := h.tr.Track(frame, &k, &off, &ct, h.now)
	return k, v
}

// state runs ct on a packet and returns its ct_state.
func (h *harness) state(p pkt, ct flow.CT) uint8 {
	h.t.Helper()
	k, v := h.run(p.build(h.t), ct)
	if v != flow.VerdictOK {
		h.t.Fatalf("verdict %v, want ok", v)
	}
	return k.CtState
}

func (h *harness) advance(d time.Duration) { h.now += int64(d) }

// dump returns the table as dump-conntrack lines.
func (h *harness) dump(zone int) []string {
	var out []string
	for e := range h.tr.Dump(h.now, zone) {
		out = append(out, e.String())
	}
	return out
}

const (
	trk  = flow.CtStateTracked
	new_ = flow.CtStateNew
	est  = flow.CtStateEst
	rel  = flow.CtStateRel
	rpl  = flow.CtStateRpl
	inv  = flow.CtStateInv
	snat = flow.CtStateSNAT
	dnat = flow.CtStateDNAT
)

func commit(zone uint16) flow.CT { return flow.CT{Commit: true, Zone: zone, Table: flow.CTNoTable} }
func lookup(zone uint16) flow.CT { return flow.CT{Zone: zone, Table: flow.CTNoTable} }

// stateString names ct_state bits for failure messages.
func stateString(s uint8) string {
	names := []string{"new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"}
	out := ""
	for i, n := range names {
		if s&(1<<i) != 0 {
			out += "+" + n
		}
	}
	if out == "" {
		return "0"
	}
	return out
}

// checksumsValid reports whether a frame's IP and transport checksums are
// right, as the tracker's own checks judge them.
func checksumsValid(t testing.TB, frame []byte) bool {
	t.Helper()
	var k flow.Key
	var off flow.Offsets
	flow.Extract(&k, &off, frame, 1)
	var p packet
	return extract(frame, &k, &off, 0, &p)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
