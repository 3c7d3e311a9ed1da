package ovsdb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// The values of OVSDB's data model (RFC 7047 section 5.1) in Go:
//
//	integer    int64
//	real       float64
//	boolean    bool
//	string     string
//	uuid       UUID
//	named-uuid NamedUUID
//	set        Set
//	map        Map
//
// A datum is an atom, a Set or a Map. Decoding without a schema gives an
// atom where the wire has one (the one-element set shorthand cannot be told
// from a scalar); a Replica normalises every column by its schema type.

// UUID is an OVSDB uuid atom, ["uuid", "..."] on the wire.
type UUID string

// NamedUUID is a name given to a row inserted earlier in the same
// transaction, ["named-uuid", "..."] on the wire.
type NamedUUID string

// Set is an OVSDB set: ["set", [atom, ...]] on the wire, or the atom itself
// when it has exactly one element.
type Set []any

// Map is an OVSDB map: ["map", [[key, value], ...]] on the wire. Keys and
// values are atoms.
type Map map[any]any

// Row is a table row: column name → datum.
type Row map[string]any

// Clone returns a shallow copy of the row (datums are never modified in
// place by this package, so a shallow copy is independent).
func (r Row) Clone() Row {
	if r == nil {
		return nil
	}
	c := make(Row, len(r))
	for k, v := range r {
		c[k] = v
	}
	return c
}

// UUID returns the row's _uuid column, or "" if it has none.
func (r Row) UUID() UUID {
	u, _ := r["_uuid"].(UUID)
	return u
}

// String returns the column as a string; a one-element set of a string
// (an optional string column that is set) counts. It returns "" otherwise.
func (r Row) String(col string) string {
	switch v := r[col].(type) {
	case string:
		return v
	case Set:
		if len(v) == 1 {
			s, _ := v[0].(string)
			return s
		}
	}
	return ""
}

// Int returns the column as an integer; a one-element set of an integer
// (an optional integer column that is set) counts.
func (r Row) Int(col string) (int64, bool) {
	switch v := r[col].(type) {
	case int64:
		return v, true
	case Set:
		if len(v) == 1 {
			i, ok := v[0].(int64)
			return i, ok
		}
	}
	return 0, false
}

// Set returns the column as a set; an atom is the one-element set.
func (r Row) Set(col string) Set {
	switch v := r[col].(type) {
	case nil:
		return nil
	case Set:
		return v
	case Map:
		return nil
	default:
		return Set{v}
	}
}

// Map returns the column as a map, or nil.
func (r Row) Map(col string) Map {
	m, _ := r[col].(Map)
	return m
}

// MarshalJSON encodes the row as a JSON object of datums.
func (r Row) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if err := appendRow(&b, r); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// EncodeDatum returns the wire form of a datum. Go int, int32 and uint32
// are accepted as integers for convenience.
func EncodeDatum(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := appendDatum(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func appendRow(b *bytes.Buffer, r Row) error {
	cols := make([]string, 0, len(r))
	for k := range r {
		cols = append(cols, k)
	}
	sort.Strings(cols)
	b.WriteByte('{')
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		appendString(b, c)
		b.WriteByte(':')
		if err := appendDatum(b, r[c]); err != nil {
			return fmt.Errorf("column %q: %w", c, err)
		}
	}
	b.WriteByte('}')
	return nil
}

func appendDatum(b *bytes.Buffer, v any) error {
	switch d := v.(type) {
	case Set:
		b.WriteString(`["set",[`)
		for i, a := range d {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := appendAtom(b, a); err != nil {
				return err
			}
		}
		b.WriteString("]]")
		return nil
	case Map:
		keys := make([]any, 0, len(d))
		for k := range d {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return atomLess(keys[i], keys[j]) })
		b.WriteString(`["map",[`)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('[')
			if err := appendAtom(b, k); err != nil {
				return err
			}
			b.WriteByte(',')
			if err := appendAtom(b, d[k]); err != nil {
				return err
			}
			b.WriteByte(']')
		}
		b.WriteString("]]")
		return nil
	}
	return appendAtom(b, v)
}

func appendAtom(b *bytes.Buffer, v any) error {
	switch a := v.(type) {
	case int64:
		b.WriteString(strconv.FormatInt(a, 10))
	case int:
		b.WriteString(strconv.FormatInt(int64(a), 10))
	case int32:
		b.WriteString(strconv.FormatInt(int64(a), 10))
	case uint32:
		b.WriteString(strconv.FormatUint(uint64(a), 10))
	case float64:
		if math.IsNaN(a) || math.IsInf(a, 0) {
			return fmt.Errorf("%w: real %v has no JSON form", ErrBadDatum, a)
		}
		s := strconv.FormatFloat(a, 'g', -1, 64)
		if !strings.ContainsAny(s, ".e") {
			s += ".0" // keeps a real a real when decoded again
		}
		b.WriteString(s)
	case bool:
		if a {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		appendString(b, a)
	case UUID:
		b.WriteString(`["uuid",`)
		appendString(b, string(a))
		b.WriteByte(']')
	case NamedUUID:
		b.WriteString(`["named-uuid",`)
		appendString(b, string(a))
		b.WriteByte(']')
	default:
		return fmt.Errorf("%w: %T is not an OVSDB atom", ErrBadDatum, v)
	}
	return nil
}

func appendString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always marshals
	b.Write(enc)
}

// atomKind orders atoms of different types in encoded maps.
func atomKind(a any) int {
	switch a.(type) {
	case int64, int, int32, uint32:
		return 0
	case float64:
		return 1
	case bool:
		return 2
	case string:
		return 3
	case UUID:
		return 4
	case NamedUUID:
		return 5
	}
	return 6
}

func atomLess(x, y any) bool {
	kx, ky := atomKind(x), atomKind(y)
	if kx != ky {
		return kx < ky
	}
	switch a := x.(type) {
	case float64:
		return a < y.(float64)
	case bool:
		return !a && y.(bool)
	case string:
		return a < y.(string)
	case UUID:
		return a < y.(UUID)
	case NamedUUID:
		return a < y.(NamedUUID)
	}
	ix, _ := toInt64(x)
	iy, _ := toInt64(y)
	return ix < iy
}

func toInt64(v any) (int64, bool) {
	switch a := v.(type) {
	case int64:
		return a, true
	case int:
		return int64(a), true
	case int32:
		return int64(a), true
	case uint32:
		return int64(a), true
	}
	return 0, false
}

// DecodeDatum decodes a datum's wire form without a schema.
func DecodeDatum(raw []byte) (any, error) {
	v, err := parseJSON(raw)
	if err != nil {
		return nil, err
	}
	return datumFromJSON(v)
}

// DecodeRow decodes a row's wire form (a JSON object of datums) without a
// schema.
func DecodeRow(raw []byte) (Row, error) {
	v, err := parseJSON(raw)
	if err != nil {
		return nil, err
	}
	return rowFromJSON(v)
}

// parseJSON decodes one JSON value, keeping numbers as json.Number so that
// integers and reals can be told apart.
func parseJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after a JSON value", ErrProtocol)
	}
	return v, nil
}

func rowFromJSON(v any) (Row, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: a row is a JSON object, not %s", ErrBadDatum, jsonKind(v))
	}
	r := make(Row, len(obj))
	for col, jv := range obj {
		d, err := datumFromJSON(jv)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", col, err)
		}
		r[col] = d
	}
	return r, nil
}

func datumFromJSON(v any) (any, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) != 2 {
		return atomFromJSON(v)
	}
	tag, _ := arr[0].(string)
	switch tag {
	case "set":
		elems, ok := arr[1].([]any)
		if !ok {
			return nil, fmt.Errorf("%w: a set's elements are a JSON array", ErrBadDatum)
		}
		s := make(Set, 0, len(elems))
		seen := make(map[any]bool, len(elems))
		for _, e := range elems {
			a, err := atomFromJSON(e)
			if err != nil {
				return nil, err
			}
			if seen[a] {
				return nil, fmt.Errorf("%w: duplicate set element %v", ErrBadDatum, a)
			}
			seen[a] = true
			s = append(s, a)
		}
		return s, nil
	case "map":
		pairs, ok := arr[1].([]any)
		if !ok {
			return nil, fmt.Errorf("%w: a map's pairs are a JSON array", ErrBadDatum)
		}
		m := make(Map, len(pairs))
		for _, p := range pairs {
			kv, ok := p.([]any)
			if !ok || len(kv) != 2 {
				return nil, fmt.Errorf("%w: a map pair is a two-element array", ErrBadDatum)
			}
			k, err := atomFromJSON(kv[0])
			if err != nil {
				return nil, err
			}
			val, err := atomFromJSON(kv[1])
			if err != nil {
				return nil, err
			}
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("%w: duplicate map key %v", ErrBadDatum, k)
			}
			m[k] = val
		}
		return m, nil
	}
	return atomFromJSON(v)
}

func atomFromJSON(v any) (any, error) {
	switch a := v.(type) {
	case json.Number:
		return numberAtom(a)
	case bool:
		return a, nil
	case string:
		return a, nil
	case []any:
		if len(a) == 2 {
			tag, _ := a[0].(string)
			s, ok := a[1].(string)
			switch {
			case tag == "uuid" && ok:
				return UUID(s), nil
			case tag == "named-uuid" && ok:
				return NamedUUID(s), nil
			}
		}
		return nil, fmt.Errorf("%w: array is not an atom (want [\"uuid\", S] or [\"named-uuid\", S])", ErrBadDatum)
	}
	return nil, fmt.Errorf("%w: %s is not an atom", ErrBadDatum, jsonKind(v))
}

func numberAtom(n json.Number) (any, error) {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: integer %s out of 64-bit range", ErrBadDatum, s)
		}
		return i, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: real %s out of range", ErrBadDatum, s)
	}
	return f, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}
