package conntrack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// fragment4 splits an IPv4 frame into fragments carrying size data bytes
// each (the last fewer).
func fragment4(frame []byte, size int, id uint16) [][]byte {
	ip := frame[14:]
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	data := ip[20:total]
	var out [][]byte
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := append(append([]byte(nil), frame[:34]...), data[off:end]...)
		h := f[14:34]
		binary.BigEndian.PutUint16(h[2:], uint16(20+end-off))
		binary.BigEndian.PutUint16(h[4:], id)
		fo := uint16(off / 8)
		if end < len(data) {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(h[6:], fo)
		fixIPv4Csum(h)
		out = append(out, f)
	}
	return out
}

// fragment6 splits an IPv6 frame (no extension headers) into fragments.
func fragment6(frame []byte, size int, id uint32) [][]byte {
	next := frame[14+6]
	data := frame[14+40:]
	var out [][]byte
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := append([]byte(nil), frame[:54]...)
		f[14+6] = 44
		binary.BigEndian.PutUint16(f[14+4:], uint16(8+end-off))
		fh := make([]byte, 8)
		fh[0] = next
		offlg := uint16(off)
		if end < len(data) {
			offlg |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], offlg)
		binary.BigEndian.PutUint32(fh[4:], id)
		f = append(append(f, fh...), data[off:end]...)
		out = append(out, f)
	}
	return out
}

func addFrag(t *testing.T, d *Defrag, fr []byte, now int64) (FragStatus, []byte, [][]byte) {
	t.Helper()
	var k flow.Key
	var off flow.Offsets
	flow.Extract(&k, &off, fr, 1)
	return d.Add(fr, &k, &off, 0, now)
}

func TestDefragThenTrack(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name, cli, srv, nat := "ipv4", "10.0.0.1", "10.0.0.2", "192.0.2.10"
		if v6 {
			name, cli, srv, nat = "ipv6", "fd00::1", "fd00::2", "2001:db8::10"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Config{})
			d := NewDefrag()
			payload := make([]byte, 3000)
			for i := range payload {
				payload[i] = byte(i * 7)
			}
			orig := pkt{src: cli, dst: srv, proto: flow.IPProtoUDP, sport: 4000, dport: 9000, payload: payload}.build(t)
			var frags [][]byte
			if v6 {
				frags = fragment6(orig, 1448, 77)
			} else {
				frags = fragment4(orig, 1480, 77)
			}
			if len(frags) != 3 {
				t.Fatalf("%d fragments", len(frags))
			}
			// A fragment alone is invalid to the tracker.
			if k, _ := h.run(append([]byte(nil), frags[1]...), commit(0)); k.CtState != trk|inv {
				t.Fatalf("lone fragment: %s", stateString(k.CtState))
			}
			for i, j := range []int{2, 0} {
				if st, _, _ := addFrag(t, d, frags[j], h.now); st != FragHeld {
					t.Fatalf("fragment %d (%d): status %d, want held", j, i, st)
				}
			}
			st, whole, held := addFrag(t, d, frags[1], h.now)
			if st != FragComplete || len(held) != 3 || d.Held() != 0 {
				t.Fatalf("last fragment: status %d, %d held, %d still held", st, len(held), d.Held())
			}
			if !v6 {
				// The reassembled header keeps the fragments' identification.
				binary.BigEndian.PutUint16(orig[14+4:], 77)
				fixIPv4Csum(orig[14:34])
			}
			if !bytes.Equal(whole, orig) {
				t.Fatalf("reassembled packet differs from the original (%d vs %d bytes)", len(whole), len(orig))
			}
			// Track the whole packet with SNAT, then carry it over.
			var wk flow.Key
			var wo flow.Offsets
			flow.Extract(&wk, &wo, whole, 1)
			ct := natCT(0, flow.NATSrc, nat, "", 0, 0)
			if v := h.tr.Track(whole, &wk, &wo, &ct, h.now); v != flow.VerdictOK || wk.CtState != trk|new_|snat {
				t.Fatalf("reassembled: %v %s", v, stateString(wk.CtState))
			}
			fk := make([]flow.Key, len(held))
			for i := range held {
				var off flow.Offsets
				flow.Extract(&fk[i], &off, held[i], 1)
			}
			Finish(whole, &wk, held, fk)
			for i := range held {
				if fk[i].CtState != wk.CtState || fk[i].CtNwProto != flow.IPProtoUDP {
					t.Fatalf("fragment %d: ct_state %s", i, stateString(fk[i].CtState))
				}
				var k flow.Key
				var off flow.Offsets
				flow.Extract(&k, &off, held[i], 1)
				if k.NwSrc != wk.NwSrc || k.IPv6Src != wk.IPv6Src || k.NwSrc != fk[i].NwSrc || k.IPv6Src != fk[i].IPv6Src {
					t.Fatalf("fragment %d keeps its old source", i)
				}
				if !v6 && flow.FoldSum(flow.OnesSum(0, held[i][14:34])) != 0xffff {
					t.Fatalf("fragment %d: IP header checksum broken", i)
				}
			}
			// The translated fragments still make a whole, right packet.
			d2 := NewDefrag()
			var again []byte
			for _, f := range held {
				_, again, _ = addFrag(t, d2, f, h.now)
			}
			if again == nil || !checksumsValid(t, again) {
				t.Fatalf("the translated fragments do not reassemble into a valid packet")
			}
			if c := d.Counters(v6); c.Accepted != 3 || c.CompletedSent != 3 {
				t.Fatalf("counters %+v", c)
			}
		})
	}
}

func TestDefragRefuses(t *testing.T) {
	d := NewDefrag()
	now := int64(time.Hour)
	big := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1, dport: 2, payload: make([]byte, 3000)}.build(t)
	if st, _, _ := addFrag(t, d, big, now); st != NotFragment {
		t.Fatalf("whole packet: %d", st)
	}
	small := fragment4(big, 512, 1)
	if st, _, _ := addFrag(t, d, small[0], now); st != FragInvalid || d.Counters(false).TooSmall != 1 {
		t.Fatalf("a 532-byte fragment that is not the last: %d, counters %+v", st, d.Counters(false))
	}
	frags := fragment4(big, 1480, 2)
	addFrag(t, d, frags[0], now)
	over := fragment4(big, 1480, 2)[0]
	if st, _, _ := addFrag(t, d, over, now); st != FragInvalid || d.Counters(false).Overlap != 1 {
		t.Fatalf("duplicate fragment: %d", st)
	}
	if d.Held() != 1 {
		t.Fatalf("%d held", d.Held())
	}
	// An incomplete packet's fragments go after 15 s.
	if n := d.Expire(now + int64(14*time.Second)); n != 0 {
		t.Fatalf("expired %d early", n)
	}
	if n := d.Expire(now + int64(16*time.Second)); n != 1 || d.Held() != 0 || d.Counters(false).Expired != 1 {
		t.Fatalf("expired %d, %d held", n, d.Held())
	}
}

func TestDefragLimit(t *testing.T) {
	d := NewDefrag()
	now := int64(time.Hour)
	big := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1, dport: 2, payload: make([]byte, 3000)}.build(t)
	for i := range DefaultMaxFrags {
		if st, _, _ := addFrag(t, d, fragment4(big, 1480, uint16(i))[0], now); st != FragHeld {
			t.Fatalf("fragment %d: %d", i, st)
		}
	}
	if st, _, _ := addFrag(t, d, fragment4(big, 1480, 5000)[0], now); st != FragInvalid || d.Held() != DefaultMaxFrags {
		t.Fatalf("fragment over the limit: %d, %d held", st, d.Held())
	}
}

func TestDefragSettings(t *testing.T) {
	d := NewDefrag()
	if err := d.SetMinFragSize(false, 399); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("min size 399: %v", err)
	}
	if err := d.SetMaxFrags(5001); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("max frags 5001: %v", err)
	}
	big := pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1, dport: 2, payload: make([]byte, 1000)}.build(t)
	frags := fragment4(big, 496, 1)
	if st, _, _ := addFrag(t, d, frags[0], 0); st != FragInvalid {
		t.Fatalf("516-byte fragment under the default minimum: %d", st)
	}
	if err := d.SetMinFragSize(false, 400); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := addFrag(t, d, frags[0], 0); st != FragHeld {
		t.Fatalf("516-byte fragment over a minimum of 400: %d", st)
	}
	d.SetEnabled(false, false)
	if st, _, _ := addFrag(t, d, frags[1], 0); st != FragInvalid {
		t.Fatalf("fragment with IPv4 reassembly disabled: %d", st)
	}
	if s := d.Status(); !strings.Contains(s, "        v4 enabled: 0\n") || !strings.Contains(s, "        min v4 frag size: 400\n") {
		t.Fatalf("status:\n%s", s)
	}
}
