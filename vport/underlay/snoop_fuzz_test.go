package underlay

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// FuzzSnoop feeds any frame to the neighbour snooper (seeds: the scapy
// frames of testdata/frames.golden, in testdata/fuzz/FuzzSnoop). It must
// not panic, must fail only with its sentinel errors, must agree with
// gopacket's decoders on what it accepts, and what it learns must be
// what the cache then answers.
func FuzzSnoop(f *testing.F) {
	f.Fuzz(func(t *testing.T, frame []byte) {
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
