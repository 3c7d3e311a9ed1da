package underlay

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// FuzzSnoop feeds any frame to the neighbour snooper (seeds: the scapy
// frames of testdata/frames.golden and variants of their options, in
// testdata/fuzz/FuzzSnoop). It must not panic, must fail only with its
// sentinel errors, must agree with gopacket's decoders on what it
// accepts, and what it learns must be what the cache then answers.
//
// A neighbour discovery message passes only with a right ICMPv6
// checksum, which a mutation almost never keeps: with fixSum set the
// checksum is computed afresh before snooping, so that mutations reach
// the message and its options rather than stopping at ErrChecksum.
func FuzzSnoop(f *testing.F) {
	f.Fuzz(func(t *testing.T, frame []byte, fixSum bool) {
		if fixSum {
			setICMPv6Checksum(frame)
		}
		c := NewNeighCache(nil, nil)
		var m NeighMessage
		learnt, err := c.Snoop("u0", frame, &m)
		if err != nil {
			if !errors.Is(err, ErrNotNeigh) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrChecksum) {
				t.Fatalf("Snoop: unexpected error %v", err)
			}
			if learnt || len(c.Entries()) != 0 {
				t.Fatal("a refused frame taught the cache")
			}
			return
		}
		p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		switch m.Kind {
		case KindARP:
			if l, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok {
				if l.Operation != m.Op || [6]byte(l.SourceHwAddress) != m.SHA || netip.AddrFrom4([4]byte(l.SourceProtAddress)) != m.SPA ||
					[6]byte(l.DstHwAddress) != m.THA || netip.AddrFrom4([4]byte(l.DstProtAddress)) != m.TPA {
					t.Fatalf("ARP %+v, gopacket decodes %+v", m, l)
				}
			}
		case KindNeighSolicit:
			if l, ok := p.Layer(layers.LayerTypeICMPv6NeighborSolicitation).(*layers.ICMPv6NeighborSolicitation); ok {
				if a, _ := netip.AddrFromSlice(l.TargetAddress); a != m.Target {
					t.Fatalf("solicitation for %s, gopacket decodes %s", m.Target, a)
				}
			}
		case KindNeighAdvert:
			if l, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement); ok {
				if a, _ := netip.AddrFromSlice(l.TargetAddress); a != m.Target {
					t.Fatalf("advertisement for %s, gopacket decodes %s", m.Target, a)
				}
			}
		default:
			t.Fatalf("accepted a frame of kind %d", m.Kind)
		}
		ip, mac, ok := m.Learnt()
		if ok != learnt {
			t.Fatalf("Learnt %v, Snoop learnt %v", ok, learnt)
		}
		if !ok {
			if len(c.Entries()) != 0 {
				t.Fatal("a frame that teaches nothing taught the cache")
			}
			return
		}
		if got, found := c.Lookup("u0", ip); !found || got != mac || mac == [6]byte{} {
			t.Fatalf("learnt %s at %x, the cache answers %x (%v)", ip, mac, got, found)
		}
	})
}

// setICMPv6Checksum writes the right checksum into the ICMPv6 message of
// frame (found as ParseNeigh finds it, after up to two VLAN tags), if it
// has one with room for the checksum.
func setICMPv6Checksum(frame []byte) {
	et, p, ok := etherPayload(frame)
	if !ok || et != etherTypeIPv6 || len(p) < 40 || p[6] != protoICMPv6 {
		return
	}
	n := int(binary.BigEndian.Uint16(p[4:]))
	if n < 4 || n > len(p)-40 {
		return
	}
	msg := p[40 : 40+n]
	binary.BigEndian.PutUint16(msg[2:], 0)
	binary.BigEndian.PutUint16(msg[2:], icmpv6Checksum(p[8:24], p[24:40], msg))
}
