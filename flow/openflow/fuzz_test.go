package openflow

import (
	"bytes"
	"testing"
)

// FuzzDecode checks that decoding never panics and that decode → encode →
// decode → encode is stable: whatever Decode accepts, Encode can write, and
// the written form decodes to a message that encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{1, 0, 0, 8, 0, 0, 0, 1})
	for _, m := range []Message{
		&TLVTableMod{Command: TLVTableAdd, Mappings: []TLVMap{{OptionClass: 0x102, OptionType: 0x80, OptionLen: 4}}},
		&TLVTableMod{Command: TLVTableClear},
		&TLVTableRequest{},
		&TLVTableReply{MaxOptionSpace: 16, MaxFields: 64, Mappings: []TLVMap{{OptionClass: 0xffff, OptionLen: 124, Index: 63}}},
	} {
		for _, v := range []uint8{Version10, Version13} {
			b, err := Encode(v, 9, m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	for _, c := range codecCases {
		if b, err := Encode(c.v, 7, c.m); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, m, err := Decode(raw)
		if err != nil {
			return
		}
		b1, err := Encode(h.Version, h.Xid, m)
		if err != nil {
			// Values outside what a version can carry are not produced by
			// Decode of that version.
			t.Fatalf("encode %T decoded from %x: %v", m, raw, err)
		}
		h2, m2, err := Decode(b1)
		if err != nil {
			t.Fatalf("re-decode %x (from %x): %v", b1, raw, err)
		}
		if h2.Version != h.Version || h2.Xid != h.Xid {
			t.Fatalf("header changed: %+v -> %+v", h, h2)
		}
		b2, err := Encode(h2.Version, h2.Xid, m2)
		if err != nil {
			t.Fatalf("re-encode %T: %v", m2, err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("unstable round trip\n b1 %x\n b2 %x\nraw %x", b1, b2, raw)
		}
	})
}
