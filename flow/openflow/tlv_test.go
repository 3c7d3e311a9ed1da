package openflow

import (
	"errors"
	"testing"
)

// TestTLVTableDecodeErrors: the TLV table messages are checked as Open
// vSwitch's decoder checks them, with its Nicira error codes.
func TestTLVTableDecodeErrors(t *testing.T) {
	mod := func(cmd uint16, maps ...TLVMap) []byte {
		b, err := Encode(Version13, 1, &TLVTableMod{Command: cmd % 3, Mappings: maps})
		if err != nil {
			t.Fatal(err)
		}
		b[16+1] = byte(cmd) // the command, after the header and experimenter id and type
		return b
	}
	tests := []struct {
		name     string
		in       []byte
		wantCode uint16
		wantType uint16
	}{
		{"bad command", mod(3), CodeTLVBadCommand, ErrTypeExperimenter},
		{"bad length", mod(0, TLVMap{OptionLen: 6}), CodeTLVBadOptLen, ErrTypeExperimenter},
		{"too long", mod(0, TLVMap{OptionLen: 128}), CodeTLVBadOptLen, ErrTypeExperimenter},
		{"index 64", mod(0, TLVMap{OptionLen: 4, Index: 64}), CodeTLVBadFieldIdx, ErrTypeExperimenter},
		{"half a mapping", func() []byte {
			b := mod(0, TLVMap{OptionLen: 4})
			b = b[:len(b)-4]
			b[3] -= 4
			return b
		}(), CodeBadRequestLen, ErrTypeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, m, err := Decode(tc.in)
			var e *Error
			if !errors.As(err, &e) || e.Type != tc.wantType || e.Code != tc.wantCode {
				t.Fatalf("Decode: %T %v, want error type %#x code %d", m, err, tc.wantType, tc.wantCode)
			}
		})
	}
	// A reply's indexes are checked against its own max_fields.
	b, err := Encode(Version13, 1, &TLVTableReply{MaxFields: 4, Mappings: []TLVMap{{OptionLen: 4, Index: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Decode(b); err == nil {
		t.Fatal("a reply mapping index 4 with max_fields 4 decoded")
	}
}
