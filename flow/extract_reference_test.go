package flow

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// This file builds a reference flow key from gopacket's decoding of a frame,
// independently of Extract, for differential tests. Each layer is decoded by
// gopacket's own layer decoder (DecodeFromBytes, or gopacket.NewPacket for the
// IPv6 fragment and AH headers, which have no DecodeFromBytes); the reference
// only maps gopacket's fields to the key with OVS's conventions (VLAN
// present bit, EthTypeNone, ARP in the IP fields, IPv6 later fragments as
// protocol 44, ND option rules).
//
// A frame is "valid", and its reference key comparable with Extract's, only
// when all of these hold:
//   - every layer the key is built from decodes without an error and without
//     gopacket reporting truncation (so every length field is consistent with
//     the bytes present, and TCP/IPv4/ND options parse);
//   - the IPv4 total length is not 0 (gopacket reads 0 as "segmentation
//     offload, use the frame length"; OVS rejects it);
//   - the IPv6 payload length is not 0 (gopacket errors or reads a jumbogram;
//     OVS supports neither);
//   - the IPv6 extension chain has at most MaxIPv6ExtHeaders headers (OVS has
//     no bound; Extract's bound is its own policy, tested separately);
//   - an ICMPv6 header has its 8 bytes (gopacket needs only 4).
//
// Layers after the transport header (application protocols) are not decoded:
// they cannot change the key. An excluded frame's reason is returned so that
// the corpus replay can count them.

// reference is the outcome of referenceKey.
type reference struct {
	key     Key
	off     Offsets
	invalid string // why the frame is not comparable; "" when valid
}

// decodeFeedback records gopacket's truncation reports.
type decodeFeedback struct{ truncated bool }

func (d *decodeFeedback) SetTruncated() { d.truncated = true }

// refBuilder carries the state of one reference decoding.
type refBuilder struct {
	frame []byte
	df    decodeFeedback
	ref   reference
}

// referenceKey decodes frame with gopacket and builds the flow key that OVS
// semantics give it.
func referenceKey(frame []byte, inPort uint32) (ref reference) {
	// gopacket's decoders can panic on hostile input (v1.1.19's ARP
	// computes its length in 8 bits and slices past the end); such a frame
	// is not comparable.
	defer func() {
		if p := recover(); p != nil {
			ref = reference{invalid: fmt.Sprintf("gopacket panics: %v", p)}
		}
	}()
	b := refBuilder{frame: frame}
	b.ref.key.InPort = inPort
	b.ref.off = Offsets{L3: NoOffset, L4: NoOffset}
	if err := b.build(); err != nil {
		return reference{invalid: err.Error()}
	}
	if b.df.truncated {
		return reference{invalid: "gopacket reports truncation"}
	}
	return b.ref
}

// offset is where s, a slice of b.frame as gopacket's layers return them,
// starts in the frame.
func (b *refBuilder) offset(s []byte) uint16 {
	return uint16(cap(b.frame) - cap(s))
}

func (b *refBuilder) build() error {
	k := &b.ref.key
	var eth layers.Ethernet
	if err := eth.DecodeFromBytes(b.frame, &b.df); err != nil {
		return fmt.Errorf("ethernet: %w", err)
	}
	k.DlDst = [6]byte(eth.DstMAC)
	k.DlSrc = [6]byte(eth.SrcMAC)
	typ, payload := eth.EthernetType, eth.Payload
	if eth.Length != 0 || typ == layers.EthernetTypeLLC {
		typ = layers.EthernetType(eth.Length) // an 802.3 length: gopacket cut the payload to it
	}

	for i := range k.VLANs {
		if typ != layers.EthernetTypeDot1Q && typ != layers.EthernetTypeQinQ {
			break
		}
		var tag layers.Dot1Q
		if err := tag.DecodeFromBytes(payload, &b.df); err != nil {
			return fmt.Errorf("vlan %d: %w", i, err)
		}
		// The DEI bit is where OVS keeps "present", so it is not copied.
		k.VLANs[i] = VLAN{TPID: uint16(typ), TCI: uint16(tag.Priority)<<13 | VLANPresent | tag.VLANIdentifier}
		typ, payload = tag.Type, tag.Payload
	}

	if typ < EthTypeMinTy {
		var err error
		if typ, payload, err = b.llc(payload); err != nil {
			return err
		}
	}
	k.DlType = uint16(typ)
	b.ref.off.L3 = b.offset(payload)

	switch uint16(typ) {
	case EthTypeARP, EthTypeRARP:
		return b.arp(payload)
	case EthTypeIPv4:
		l4, err := b.ipv4(payload)
		if err != nil || k.NwFrag&FragLater != 0 {
			return err
		}
		return b.l4(l4)
	case EthTypeIPv6:
		l4, err := b.ipv6(payload)
		if err != nil || k.NwFrag&FragLater != 0 {
			return err
		}
		return b.l4(l4)
	}
	return nil
}

// llc decodes an 802.3 frame's LLC and SNAP headers and returns the
// Ethertype OVS gives it and the bytes after the headers it skips.
func (b *refBuilder) llc(data []byte) (layers.EthernetType, []byte, error) {
	var llc layers.LLC
	if err := llc.DecodeFromBytes(data, &b.df); err != nil {
		return 0, nil, fmt.Errorf("llc: %w", err)
	}
	// SNAP's control field is the one byte 0x03 (gopacket merges a 2-byte
	// control field into the same number, hence the length check).
	if llc.DSAP != 0xaa || llc.IG || llc.SSAP != 0xaa || llc.CR || llc.Control != 0x03 || len(llc.Contents) != 3 {
		return EthTypeNone, data, nil
	}
	var snap layers.SNAP
	if err := snap.DecodeFromBytes(llc.Payload, &b.df); err != nil {
		return 0, nil, fmt.Errorf("snap: %w", err)
	}
	if string(snap.OrganizationalCode) != "\x00\x00\x00" {
		return EthTypeNone, data, nil
	}
	if snap.Type < EthTypeMinTy {
		return EthTypeNone, snap.Payload, nil
	}
	return snap.Type, snap.Payload, nil
}

func (b *refBuilder) arp(data []byte) error {
	var arp layers.ARP
	if err := arp.DecodeFromBytes(data, &b.df); err != nil {
		return fmt.Errorf("arp: %w", err)
	}
	// gopacket's LinkType is 8 bits wide, so AddrType is the low byte of the
	// hardware type; the high byte is checked in the header bytes it kept.
	if arp.AddrType != layers.LinkTypeEthernet || arp.Contents[0] != 0 || arp.Protocol != layers.EthernetTypeIPv4 ||
		arp.HwAddressSize != 6 || arp.ProtAddressSize != 4 {
		return nil
	}
	k := &b.ref.key
	if arp.Operation <= 0xff {
		k.NwProto = uint8(arp.Operation)
	}
	k.ArpSha = [6]byte(arp.SourceHwAddress)
	k.ArpTha = [6]byte(arp.DstHwAddress)
	k.NwSrc = binary.BigEndian.Uint32(arp.SourceProtAddress)
	k.NwDst = binary.BigEndian.Uint32(arp.DstProtAddress)
	return nil
}

func (b *refBuilder) ipv4(data []byte) ([]byte, error) {
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(data, &b.df); err != nil {
		return nil, fmt.Errorf("ipv4: %w", err)
	}
	if len(data) >= 4 && binary.BigEndian.Uint16(data[2:4]) == 0 {
		return nil, fmt.Errorf("ipv4: total length 0")
	}
	k := &b.ref.key
	k.NwSrc = binary.BigEndian.Uint32(ip.SrcIP.To4())
	k.NwDst = binary.BigEndian.Uint32(ip.DstIP.To4())
	k.NwTos = ip.TOS
	k.NwTTL = ip.TTL
	k.NwProto = uint8(ip.Protocol)
	if ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0 {
		k.NwFrag = FragAny
		if ip.FragOffset != 0 {
			k.NwFrag |= FragLater
		}
	}
	return ip.Payload, nil
}

func (b *refBuilder) ipv6(data []byte) ([]byte, error) {
	var ip layers.IPv6
	var df decodeFeedback
	if err := ip.DecodeFromBytes(data, &df); err != nil {
		return nil, fmt.Errorf("ipv6: %w", err)
	}
	if ip.Length == 0 {
		return nil, fmt.Errorf("ipv6: payload length 0")
	}
	proto, payload := ip.NextHeader, ip.Payload
	if ip.HopByHop == nil {
		b.df.truncated = b.df.truncated || df.truncated
	} else {
		// gopacket v1.1.19 applies the payload length after removing the
		// hop-by-hop header, so it overruns the packet by that header's
		// size (and reports truncation when the frame has no padding). The
		// reference applies the payload length itself and decodes the
		// hop-by-hop header with the others below.
		end := 40 + int(ip.Length)
		if end > len(data) {
			return nil, fmt.Errorf("ipv6: payload length %d beyond the frame", ip.Length)
		}
		payload = data[40:end]
	}
	var frag uint8
ext:
	for n := 0; ; n++ {
		if ipv6ExtHeaders[proto] && n == MaxIPv6ExtHeaders {
			return nil, fmt.Errorf("ipv6: more than %d extension headers", MaxIPv6ExtHeaders)
		}
		var next layers.IPProtocol
		var rest []byte
		switch proto {
		case layers.IPProtocolIPv6HopByHop:
			var h layers.IPv6HopByHop
			if err := h.DecodeFromBytes(payload, &b.df); err != nil {
				return nil, fmt.Errorf("ipv6 hop-by-hop: %w", err)
			}
			next, rest = h.NextHeader, h.Payload
		case layers.IPProtocolIPv6Destination:
			var h layers.IPv6Destination
			if err := h.DecodeFromBytes(payload, &b.df); err != nil {
				return nil, fmt.Errorf("ipv6 destination options: %w", err)
			}
			next, rest = h.NextHeader, h.Payload
		case layers.IPProtocolIPv6Routing:
			// gopacket's IPv6Routing decodes only the deprecated type 0;
			// its generic extension decoder reads any routing header.
			var h layers.IPv6ExtensionSkipper
			if err := h.DecodeFromBytes(payload, &b.df); err != nil {
				return nil, fmt.Errorf("ipv6 routing: %w", err)
			}
			next, rest = h.NextHeader, h.Payload
		case layers.IPProtocolAH:
			l, err := decodeOne(payload, layers.LayerTypeIPSecAH)
			if err != nil {
				return nil, fmt.Errorf("ipv6 ah: %w", err)
			}
			h := l.(*layers.IPSecAH)
			next, rest = h.NextHeader, h.Payload
		case layers.IPProtocolIPv6Fragment:
			l, err := decodeOne(payload, layers.LayerTypeIPv6Fragment)
			if err != nil {
				return nil, fmt.Errorf("ipv6 fragment: %w", err)
			}
			h := l.(*layers.IPv6Fragment)
			next, rest = h.NextHeader, h.Payload
			if h.FragmentOffset != 0 || h.MoreFragments || h.Reserved2 != 0 {
				frag = FragAny
			}
			if h.FragmentOffset != 0 {
				frag |= FragLater
				next = layers.IPProtocolIPv6Fragment
				proto, payload = next, rest
				break ext
			}
		default:
			break ext
		}
		proto, payload = next, rest
	}
	k := &b.ref.key
	k.IPv6Src = [16]byte(ip.SrcIP)
	k.IPv6Dst = [16]byte(ip.DstIP)
	k.IPv6Label = ip.FlowLabel
	k.NwTos = ip.TrafficClass
	k.NwTTL = ip.HopLimit
	k.NwProto = uint8(proto)
	k.NwFrag = frag
	return payload, nil
}

// ipv6ExtHeaders are the IPv6 extension headers whose chain OVS walks.
var ipv6ExtHeaders = map[layers.IPProtocol]bool{
	layers.IPProtocolIPv6HopByHop:    true,
	layers.IPProtocolIPv6Routing:     true,
	layers.IPProtocolIPv6Destination: true,
	layers.IPProtocolAH:              true,
	layers.IPProtocolIPv6Fragment:    true,
}

// decodeOne decodes data as one layer of type t with gopacket's packet
// decoder (for layers without DecodeFromBytes) and returns that layer.
func decodeOne(data []byte, t gopacket.LayerType) (gopacket.Layer, error) {
	p := gopacket.NewPacket(data, t, gopacket.DecodeOptions{NoCopy: true, Lazy: true})
	if l := p.Layer(t); l != nil {
		return l, nil
	}
	if e := p.ErrorLayer(); e != nil {
		return nil, e.Error()
	}
	return nil, fmt.Errorf("no %v layer", t)
}

func (b *refBuilder) l4(data []byte) error {
	k := &b.ref.key
	switch layers.IPProtocol(k.NwProto) {
	case layers.IPProtocolTCP:
		var tcp layers.TCP
		if err := tcp.DecodeFromBytes(data, &b.df); err != nil {
			return fmt.Errorf("tcp: %w", err)
		}
		k.TpSrc, k.TpDst = uint16(tcp.SrcPort), uint16(tcp.DstPort)
		k.TcpFlags = tcpFlags(&tcp)
	case layers.IPProtocolUDP:
		var udp layers.UDP
		if err := udp.DecodeFromBytes(data, &b.df); err != nil {
			return fmt.Errorf("udp: %w", err)
		}
		k.TpSrc, k.TpDst = uint16(udp.SrcPort), uint16(udp.DstPort)
	case layers.IPProtocolSCTP:
		var sctp layers.SCTP
		if err := sctp.DecodeFromBytes(data, &b.df); err != nil {
			return fmt.Errorf("sctp: %w", err)
		}
		k.TpSrc, k.TpDst = uint16(sctp.SrcPort), uint16(sctp.DstPort)
	case layers.IPProtocolICMPv4:
		var icmp layers.ICMPv4
		if err := icmp.DecodeFromBytes(data, &b.df); err != nil {
			return fmt.Errorf("icmp: %w", err)
		}
		k.TpSrc, k.TpDst = uint16(icmp.TypeCode.Type()), uint16(icmp.TypeCode.Code())
	case layers.IPProtocolICMPv6:
		var icmp layers.ICMPv6
		if err := icmp.DecodeFromBytes(data, &b.df); err != nil {
			return fmt.Errorf("icmpv6: %w", err)
		}
		if len(icmp.Payload) < 4 {
			return fmt.Errorf("icmpv6: shorter than 8 bytes")
		}
		k.TpSrc, k.TpDst = uint16(icmp.TypeCode.Type()), uint16(icmp.TypeCode.Code())
		if icmp.TypeCode.Code() == 0 {
			if err := b.nd(icmp.TypeCode.Type(), icmp.Payload); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	b.ref.off.L4 = b.offset(data)
	return nil
}

// tcpFlags builds the 12-bit flags from gopacket's flag fields; gopacket does
// not decode the three reserved bits, so those come from its header bytes.
func tcpFlags(tcp *layers.TCP) uint16 {
	var f uint16
	for i, set := range []bool{tcp.FIN, tcp.SYN, tcp.RST, tcp.PSH, tcp.ACK, tcp.URG, tcp.ECE, tcp.CWR, tcp.NS} {
		if set {
			f |= 1 << i
		}
	}
	return f | uint16(tcp.Contents[12]&0x0e)<<8
}

// nd fills the ND fields of a neighbour solicitation or advertisement from
// gopacket's decoding of its body, with OVS's option rules: only 8-byte
// link-layer address options count, and a second non-zero one of a kind
// discards the target and both addresses.
func (b *refBuilder) nd(typ uint8, body []byte) error {
	var target []byte
	var opts layers.ICMPv6Options
	switch typ {
	case layers.ICMPv6TypeNeighborSolicitation:
		var ns layers.ICMPv6NeighborSolicitation
		if err := ns.DecodeFromBytes(body, &b.df); err != nil {
			return fmt.Errorf("nd solicitation: %w", err)
		}
		target, opts = ns.TargetAddress, ns.Options
	case layers.ICMPv6TypeNeighborAdvertisement:
		var na layers.ICMPv6NeighborAdvertisement
		if err := na.DecodeFromBytes(body, &b.df); err != nil {
			return fmt.Errorf("nd advertisement: %w", err)
		}
		target, opts = na.TargetAddress, na.Options
	default:
		return nil
	}
	k := &b.ref.key
	k.NdTarget = [16]byte(target)
	for _, o := range opts {
		if len(o.Data) != 6 {
			continue
		}
		var lla *[6]byte
		switch o.Type {
		case layers.ICMPv6OptSourceAddress:
			lla = &k.ArpSha
		case layers.ICMPv6OptTargetAddress:
			lla = &k.ArpTha
		default:
			continue
		}
		if *lla != [6]byte{} {
			k.NdTarget, k.ArpSha, k.ArpTha = [16]byte{}, [6]byte{}, [6]byte{}
			return nil
		}
		*lla = [6]byte(o.Data)
	}
	return nil
}

// keyDiff lists the fields in which got and want differ, for failure
// messages.
func keyDiff(got, want *Key) string {
	var d []string
	g, w := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	for i := 0; i < g.NumField(); i++ {
		name := g.Type().Field(i).Name
		if name == "_" {
			continue
		}
		if gf, wf := g.Field(i).Interface(), w.Field(i).Interface(); !reflect.DeepEqual(gf, wf) {
			d = append(d, fmt.Sprintf("%s: got %#v, want %#v", name, gf, wf))
		}
	}
	return strings.Join(d, "; ")
}
