package shim

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestCodecRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		in      []any
		wantLen int // encoded length, -1 not checked
	}{
		{"one bytes arg is the input itself", []any{[]byte("raw\x00input")}, 9},
		{"one string arg is the input itself", []any{"text"}, 4},
		{"empty bytes", []any{[]byte{}}, 0},
		{"fixed then bytes", []any{uint32(0x5eed1e55), []byte("plant")}, 9},
		{"bytes before fixed", []any{[]byte("ab"), true, uint8(7)}, 4},
		{"two variable args", []any{[]byte("first"), "second", int16(-2)}, 2 + 1 + 5 + 6},
		{"every fixed kind", []any{
			true, false, int8(-1), uint8(255), int16(-300), uint16(65000), int32(-70000), uint32(4e9),
			int64(math.MinInt64), uint64(math.MaxUint64), int(-5), uint(5), float32(1.5), math.Inf(-1),
		}, 1 + 1 + 1 + 1 + 2 + 2 + 4 + 4 + 8 + 8 + 8 + 8 + 4 + 8},
		{"NaN bits kept", []any{math.Float64frombits(0x7ff8000000000123)}, 8},
		{"empty then long", []any{"", []byte(string(make([]byte, 300)))}, 1 + 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Encode(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantLen >= 0 && len(b) != tc.wantLen {
				t.Errorf("encoded %d bytes, want %d", len(b), tc.wantLen)
			}
			types := make([]reflect.Type, len(tc.in))
			for i, v := range tc.in {
				types[i] = reflect.TypeOf(v)
			}
			if err := CheckTypes(types); err != nil {
				t.Fatal(err)
			}
			got := Decode(types, b)
			for i, v := range got {
				want := reflect.ValueOf(tc.in[i])
				if f, ok := tc.in[i].(float64); ok {
					if math.Float64bits(v.Float()) != math.Float64bits(f) {
						t.Errorf("arg %d: %v, want %v", i, v, f)
					}
					continue
				}
				if !reflect.DeepEqual(v.Interface(), want.Interface()) {
					t.Errorf("arg %d: %#v, want %#v", i, v.Interface(), want.Interface())
				}
			}
		})
	}
}

// Every input decodes, whatever its length and content, and the values do
// not alias the input.
func TestDecodeTotal(t *testing.T) {
	types := []reflect.Type{reflect.TypeFor[[]byte](), reflect.TypeFor[uint64](), reflect.TypeFor[string](), reflect.TypeFor[[]byte](), reflect.TypeFor[bool]()}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		in := make([]byte, rng.IntN(40))
		for j := range in {
			in[j] = byte(rng.Uint32())
		}
		if i%3 == 0 && len(in) > 9 {
			in[9] = 0xff // a long or overflowing length prefix
		}
		vals := Decode(types, in)
		if len(vals) != len(types) {
			t.Fatalf("%x: %d values", in, len(vals))
		}
		for k, v := range vals {
			if v.Type() != types[k] {
				t.Fatalf("%x: arg %d is %s", in, k, v.Type())
			}
		}
		before := string(vals[3].Bytes())
		for j := range in {
			in[j] ^= 0xff
		}
		if string(vals[3].Bytes()) != before {
			t.Fatal("decoded bytes alias the input")
		}
	}
}

func TestCheckTypesRefuses(t *testing.T) {
	type named []byte
	for _, typ := range []reflect.Type{reflect.TypeFor[named](), reflect.TypeFor[[]int](), reflect.TypeFor[complex128](), reflect.TypeFor[*int]()} {
		if err := CheckTypes([]reflect.Type{typ}); err == nil {
			t.Errorf("%s accepted", typ)
		}
	}
	if err := CheckTypes(nil); err == nil {
		t.Error("no argument accepted")
	}
}
