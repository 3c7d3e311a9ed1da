package shim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
)

// The argument encoding of a libFuzzer input.
//
// A Go fuzz function takes *testing.T and then one or more arguments of the
// types go test accepts. libFuzzer hands over one byte string, which Decode
// splits into those arguments, deterministically and for every input:
//
//   - fixed-size arguments first, in declaration order, each from the next
//     bytes of the input, little endian (bool: 1 byte, its low bit; int8 and
//     uint8: 1; int16 and uint16: 2; int32, uint32 and float32: 4; int,
//     uint, int64, uint64 and float64: 8; an input that runs short reads
//     zeros);
//   - then the []byte and string arguments, in declaration order: each but
//     the last is a uvarint length (clamped to what is left) and that many
//     bytes; the last takes all that is left.
//
// So a target with one []byte or string argument gets the input unchanged.
// Encode is the inverse: Decode(types, Encode(values)) gives the values back.

// ErrType reports an argument type that go test would not accept either.
var ErrType = errors.New("unsupported fuzz argument type")

var bytesType = reflect.TypeFor[[]byte]()

// fixedSize is the encoded size of a fixed-size type, 0 for []byte and
// string; ok is false for a type a fuzz function may not take.
func fixedSize(t reflect.Type) (n int, ok bool) {
	if t == bytesType {
		return 0, true
	}
	if t.PkgPath() != "" {
		return 0, false // named types are refused, as go test refuses them
	}
	switch t.Kind() {
	case reflect.String:
		return 0, true
	case reflect.Bool, reflect.Int8, reflect.Uint8:
		return 1, true
	case reflect.Int16, reflect.Uint16:
		return 2, true
	case reflect.Int32, reflect.Uint32, reflect.Float32:
		return 4, true
	case reflect.Int, reflect.Uint, reflect.Int64, reflect.Uint64, reflect.Float64:
		return 8, true
	}
	return 0, false
}

// CheckTypes says whether every type may be a fuzz argument.
func CheckTypes(types []reflect.Type) error {
	if len(types) == 0 {
		return fmt.Errorf("fuzz function takes no argument after *testing.T: %w", ErrType)
	}
	for _, t := range types {
		if _, ok := fixedSize(t); !ok {
			return fmt.Errorf("%s: %w", t, ErrType)
		}
	}
	return nil
}

// Decode splits data into arguments of the given types (checked by
// CheckTypes). The values do not alias data.
func Decode(types []reflect.Type, data []byte) []reflect.Value {
	vals := make([]reflect.Value, len(types))
	var varargs []int
	for i, t := range types {
		n, _ := fixedSize(t)
		if n == 0 {
			varargs = append(varargs, i)
			continue
		}
		var buf [8]byte
		data = data[copy(buf[:n], data):]
		vals[i] = fixedValue(t, buf[:n])
	}
	for j, i := range varargs {
		var b []byte
		if j == len(varargs)-1 {
			b, data = data, nil
		} else {
			l, k := binary.Uvarint(data)
			switch {
			case k == 0:
				data, l = nil, 0
			case k < 0:
				data, l = data[-k:], 0
			default:
				data = data[k:]
			}
			l = min(l, uint64(len(data)))
			b, data = data[:l], data[l:]
		}
		if types[i] == bytesType {
			vals[i] = reflect.ValueOf(append([]byte{}, b...))
		} else {
			vals[i] = reflect.ValueOf(string(b)).Convert(types[i])
		}
	}
	return vals
}

func fixedValue(t reflect.Type, b []byte) reflect.Value {
	var u uint64
	for i := len(b) - 1; i >= 0; i-- {
		u = u<<8 | uint64(b[i])
	}
	v := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.Bool:
		v.SetBool(u&1 != 0)
	case reflect.Int8:
		v.SetInt(int64(int8(u)))
	case reflect.Int16:
		v.SetInt(int64(int16(u)))
	case reflect.Int32:
		v.SetInt(int64(int32(u)))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(u))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint, reflect.Uint64:
		v.SetUint(u)
	case reflect.Float32:
		v.SetFloat(float64(math.Float32frombits(uint32(u))))
	case reflect.Float64:
		v.SetFloat(math.Float64frombits(u))
	}
	return v
}

// Encode is the inverse of Decode: the input that decodes, for the types of
// vals, to vals.
func Encode(vals []any) ([]byte, error) {
	var out []byte
	var varargs []any
	for _, x := range vals {
		v := reflect.ValueOf(x)
		if !v.IsValid() {
			return nil, fmt.Errorf("nil: %w", ErrType)
		}
		n, ok := fixedSize(v.Type())
		if !ok {
			return nil, fmt.Errorf("%T: %w", x, ErrType)
		}
		if n == 0 {
			varargs = append(varargs, x)
			continue
		}
		var u uint64
		switch v.Kind() {
		case reflect.Bool:
			if v.Bool() {
				u = 1
			}
		case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int, reflect.Int64:
			u = uint64(v.Int())
		case reflect.Float32:
			u = uint64(math.Float32bits(x.(float32)))
		case reflect.Float64:
			u = math.Float64bits(v.Float())
		default:
			u = v.Uint()
		}
		for i := 0; i < n; i++ {
			out = append(out, byte(u>>(8*i)))
		}
	}
	for j, x := range varargs {
		var b []byte
		if bs, ok := x.([]byte); ok {
			b = bs
		} else {
			b = []byte(reflect.ValueOf(x).String())
		}
		if j < len(varargs)-1 {
			out = binary.AppendUvarint(out, uint64(len(b)))
		}
		out = append(out, b...)
	}
	return out, nil
}
