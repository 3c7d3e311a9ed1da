package openflow

import (
	"fmt"
	"math/bits"
)

// Hello element types.
const HelloElemVersionBitmap uint16 = 1

// HelloElement is one ofp_hello_elem. Data excludes the 4-byte element
// header and the padding.
type HelloElement struct {
	Type uint16
	Data []byte
}

// Hello is OFPT_HELLO. Elements is empty for a 1.0-style hello.
type Hello struct {
	Elements []HelloElement
}

// NewHello returns the hello a switch speaking versions vs sends: header
// version = the highest, with a version bitmap element.
func NewHello(vs ...uint8) (*Hello, uint8) {
	var bm uint32
	var max uint8
	for _, v := range vs {
		if v < 32 {
			bm |= 1 << v
		}
		max = maxU8(max, v)
	}
	w := &wr{}
	w.u32(bm)
	return &Hello{Elements: []HelloElement{{Type: HelloElemVersionBitmap, Data: w.b}}}, max
}

func maxU8(a, b uint8) uint8 {
	if a > b {
		return a
	}
	return b
}

// VersionBitmap returns the versions in the hello's bitmap element, and
// whether there was one.
func (m *Hello) VersionBitmap() ([]uint8, bool) {
	for _, e := range m.Elements {
		if e.Type != HelloElemVersionBitmap {
			continue
		}
		var vs []uint8
		for i := 0; i+4 <= len(e.Data); i += 4 {
			word := uint32(e.Data[i])<<24 | uint32(e.Data[i+1])<<16 | uint32(e.Data[i+2])<<8 | uint32(e.Data[i+3])
			for word != 0 {
				b := bits.TrailingZeros32(word)
				word &^= 1 << b
				if v := i/4*32 + b; v < 256 {
					vs = append(vs, uint8(v))
				}
			}
		}
		return vs, true
	}
	return nil, false
}

// Negotiate picks the version for a connection as OpenFlow 1.3.1+ section
// 6.3.1 says: when both hellos carry a version bitmap, the highest version in
// both; otherwise the smaller of the two header versions, which must be one
// we support. ours lists the versions we speak; peerVersion is the version in
// the peer hello's header. The error wraps ErrIncompatible; the reply is
// OFPET_HELLO_FAILED / OFPHFC_INCOMPATIBLE.
func Negotiate(ours []uint8, peerVersion uint8, peer *Hello) (uint8, error) {
	var mine uint64
	var ourMax uint8
	for _, v := range ours {
		if v < 64 {
			mine |= 1 << v
		}
		ourMax = maxU8(ourMax, v)
	}
	if vs, ok := peer.VersionBitmap(); ok {
		var best uint8
		found := false
		for _, v := range vs {
			if v < 64 && mine&(1<<v) != 0 && (!found || v > best) {
				best, found = v, true
			}
		}
		if found {
			return best, nil
		}
		return 0, &Error{Type: ErrTypeHelloFailed, Code: CodeHelloIncompatible, Sentinel: ErrIncompatible,
			Detail: fmt.Sprintf("peer versions %v, ours %v", vs, ours)}
	}
	v := min(peerVersion, ourMax)
	if v < 64 && mine&(1<<v) != 0 {
		return v, nil
	}
	return 0, &Error{Type: ErrTypeHelloFailed, Code: CodeHelloIncompatible, Sentinel: ErrIncompatible,
		Detail: fmt.Sprintf("peer version 0x%02x, ours %v", peerVersion, ours)}
}

func decodeHello(r *rd) (*Hello, error) {
	m := &Hello{}
	for r.len() >= 4 {
		t := r.u16("hello element")
		l := int(r.u16("hello element"))
		if l < 4 {
			return nil, badMessage("hello element length %d", l)
		}
		data := r.copyN(l-4, "hello element")
		// Elements are padded to 8 bytes; tolerate a missing final pad.
		if p := pad8(l) - l; p <= r.len() {
			r.skip(p, "hello element padding")
		} else {
			r.skip(r.len(), "hello element padding")
		}
		if r.err != nil {
			return nil, r.err
		}
		m.Elements = append(m.Elements, HelloElement{Type: t, Data: data})
	}
	// Per the specification, trailing bytes that do not form an element are
	// ignored, so that a future hello still negotiates.
	r.rest()
	return m, nil
}

func (m *Hello) msgType(uint8) (uint8, error) { return 0, nil }
func (m *Hello) appendBody(_ uint8, w *wr) error {
	for _, e := range m.Elements {
		start := w.pos()
		if 4+len(e.Data) > 0xffff {
			return fmt.Errorf("%w: hello element of %d bytes", ErrTooLong, len(e.Data))
		}
		w.u16(e.Type)
		w.u16(uint16(4 + len(e.Data)))
		w.bytes(e.Data)
		w.pad8(start)
	}
	return nil
}
