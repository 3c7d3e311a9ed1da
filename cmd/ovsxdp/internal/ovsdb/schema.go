package ovsdb

import (
	"encoding/json"
	"fmt"
)

// Unlimited is ColumnType.Max for a set or map with no upper bound.
const Unlimited = -1

// Schema is a database schema as get_schema returns it (RFC 7047 3.2).
type Schema struct {
	Name    string
	Version string
	Tables  map[string]*TableSchema
}

// TableSchema is one table of a schema. Columns includes the implicit
// _uuid and _version columns.
type TableSchema struct {
	Columns map[string]*ColumnSchema
	MaxRows int // 0 when unlimited
	IsRoot  bool
}

// ColumnSchema is one column of a table.
type ColumnSchema struct {
	Type      ColumnType
	Ephemeral bool
	Mutable   bool
}

// ColumnType is a column's type: a key type, an optional value type (for a
// map) and bounds on the number of elements. A scalar column has Min = Max
// = 1.
type ColumnType struct {
	Key   BaseType
	Value *BaseType
	Min   int
	Max   int // Unlimited for no bound
}

// IsMap reports whether the column is a map.
func (t ColumnType) IsMap() bool { return t.Value != nil }

// IsScalar reports whether the column holds exactly one atom.
func (t ColumnType) IsScalar() bool { return t.Value == nil && t.Min == 1 && t.Max == 1 }

// BaseType is an atomic type with its constraints.
type BaseType struct {
	Type     string // integer, real, boolean, string, uuid
	Enum     Set    // allowed values, nil when unconstrained
	RefTable string
	RefType  string // strong or weak
	// Bounds, present only when the schema gives them.
	MinInteger, MaxInteger *int64
	MinReal, MaxReal       *float64
	MinLength, MaxLength   *int64
}

// ParseSchema decodes a schema from its JSON form.
func ParseSchema(raw []byte) (*Schema, error) {
	var w struct {
		Name    string                     `json:"name"`
		Version string                     `json:"version"`
		Tables  map[string]json.RawMessage `json:"tables"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("%w: schema: %w", ErrBadSchema, err)
	}
	if w.Name == "" {
		return nil, fmt.Errorf("%w: schema has no name", ErrBadSchema)
	}
	s := &Schema{Name: w.Name, Version: w.Version, Tables: make(map[string]*TableSchema, len(w.Tables))}
	for name, rt := range w.Tables {
		t, err := parseTable(rt)
		if err != nil {
			return nil, fmt.Errorf("%w: table %s: %w", ErrBadSchema, name, err)
		}
		s.Tables[name] = t
	}
	return s, nil
}

func parseTable(raw []byte) (*TableSchema, error) {
	var w struct {
		Columns map[string]struct {
			Type      json.RawMessage `json:"type"`
			Ephemeral bool            `json:"ephemeral"`
			Mutable   *bool           `json:"mutable"`
		} `json:"columns"`
		MaxRows int  `json:"maxRows"`
		IsRoot  bool `json:"isRoot"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, err
	}
	t := &TableSchema{Columns: make(map[string]*ColumnSchema, len(w.Columns)+2), MaxRows: w.MaxRows, IsRoot: w.IsRoot}
	for name, c := range w.Columns {
		ct, err := parseColumnType(c.Type)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", name, err)
		}
		t.Columns[name] = &ColumnSchema{Type: ct, Ephemeral: c.Ephemeral, Mutable: c.Mutable == nil || *c.Mutable}
	}
	uuidType := ColumnType{Key: BaseType{Type: "uuid"}, Min: 1, Max: 1}
	t.Columns["_uuid"] = &ColumnSchema{Type: uuidType}
	t.Columns["_version"] = &ColumnSchema{Type: uuidType}
	return t, nil
}

func parseColumnType(raw json.RawMessage) (ColumnType, error) {
	var name string
	if json.Unmarshal(raw, &name) == nil {
		b, err := atomicType(name)
		return ColumnType{Key: BaseType{Type: b}, Min: 1, Max: 1}, err
	}
	var w struct {
		Key   json.RawMessage  `json:"key"`
		Value json.RawMessage  `json:"value"`
		Min   *int             `json:"min"`
		Max   *json.RawMessage `json:"max"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return ColumnType{}, err
	}
	ct := ColumnType{Min: 1, Max: 1}
	key, err := parseBaseType(w.Key)
	if err != nil {
		return ColumnType{}, fmt.Errorf("key: %w", err)
	}
	ct.Key = key
	if len(w.Value) > 0 {
		v, err := parseBaseType(w.Value)
		if err != nil {
			return ColumnType{}, fmt.Errorf("value: %w", err)
		}
		ct.Value = &v
	}
	if w.Min != nil {
		ct.Min = *w.Min
	}
	if w.Max != nil {
		var unl string
		if json.Unmarshal(*w.Max, &unl) == nil {
			if unl != "unlimited" {
				return ColumnType{}, fmt.Errorf("max %q", unl)
			}
			ct.Max = Unlimited
		} else if err := json.Unmarshal(*w.Max, &ct.Max); err != nil {
			return ColumnType{}, fmt.Errorf("max: %w", err)
		}
	}
	if ct.Min < 0 || ct.Min > 1 || (ct.Max != Unlimited && ct.Max < 1) {
		return ColumnType{}, fmt.Errorf("min %d max %d", ct.Min, ct.Max)
	}
	return ct, nil
}

func parseBaseType(raw json.RawMessage) (BaseType, error) {
	var name string
	if json.Unmarshal(raw, &name) == nil {
		b, err := atomicType(name)
		return BaseType{Type: b}, err
	}
	var w struct {
		Type       string          `json:"type"`
		Enum       json.RawMessage `json:"enum"`
		RefTable   string          `json:"refTable"`
		RefType    string          `json:"refType"`
		MinInteger *int64          `json:"minInteger"`
		MaxInteger *int64          `json:"maxInteger"`
		MinReal    *float64        `json:"minReal"`
		MaxReal    *float64        `json:"maxReal"`
		MinLength  *int64          `json:"minLength"`
		MaxLength  *int64          `json:"maxLength"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return BaseType{}, err
	}
	t, err := atomicType(w.Type)
	if err != nil {
		return BaseType{}, err
	}
	b := BaseType{Type: t, RefTable: w.RefTable, RefType: w.RefType,
		MinInteger: w.MinInteger, MaxInteger: w.MaxInteger, MinReal: w.MinReal, MaxReal: w.MaxReal,
		MinLength: w.MinLength, MaxLength: w.MaxLength}
	if b.RefTable != "" && b.RefType == "" {
		b.RefType = "strong"
	}
	if len(w.Enum) > 0 {
		d, err := DecodeDatum(w.Enum)
		if err != nil {
			return BaseType{}, fmt.Errorf("enum: %w", err)
		}
		if s, ok := d.(Set); ok {
			b.Enum = s
		} else {
			b.Enum = Set{d}
		}
	}
	return b, nil
}

func atomicType(s string) (string, error) {
	switch s {
	case "integer", "real", "boolean", "string", "uuid":
		return s, nil
	}
	return "", fmt.Errorf("unknown atomic type %q", s)
}

// normalize converts a datum decoded without a schema to the column's
// type: a set column always holds a Set (the one-element shorthand
// expanded), a map column a Map, a scalar column an atom, and an integer
// that a real column holds becomes a float64.
func (t ColumnType) normalize(v any) (any, error) {
	if t.IsMap() {
		m, ok := v.(Map)
		if !ok {
			return nil, fmt.Errorf("%w: want a map, have %T", ErrBadDatum, v)
		}
		out := make(Map, len(m))
		for k, val := range m {
			nk, err := t.Key.normalize(k)
			if err != nil {
				return nil, err
			}
			nv, err := t.Value.normalize(val)
			if err != nil {
				return nil, err
			}
			out[nk] = nv
		}
		return out, nil
	}
	if t.IsScalar() {
		if s, ok := v.(Set); ok {
			if len(s) != 1 {
				return nil, fmt.Errorf("%w: want one atom, have a set of %d", ErrBadDatum, len(s))
			}
			v = s[0]
		}
		return t.Key.normalize(v)
	}
	var in Set
	switch s := v.(type) {
	case Set:
		in = s
	case Map:
		return nil, fmt.Errorf("%w: want a set, have a map", ErrBadDatum)
	default:
		in = Set{s}
	}
	out := make(Set, len(in))
	for i, a := range in {
		na, err := t.Key.normalize(a)
		if err != nil {
			return nil, err
		}
		out[i] = na
	}
	return out, nil
}

func (b BaseType) normalize(a any) (any, error) {
	ok := false
	switch b.Type {
	case "integer":
		_, ok = a.(int64)
	case "real":
		if i, isInt := a.(int64); isInt {
			return float64(i), nil
		}
		_, ok = a.(float64)
	case "boolean":
		_, ok = a.(bool)
	case "string":
		_, ok = a.(string)
	case "uuid":
		_, ok = a.(UUID)
	}
	if !ok {
		return nil, fmt.Errorf("%w: want %s, have %T", ErrBadDatum, b.Type, a)
	}
	return a, nil
}

// defaultDatum is the column's default value: the atom type's zero value
// (0, 0.0, false, "", the all-zero UUID) for a scalar, Min elements of it
// for a set or map, as OVSDB defines it.
func (t ColumnType) defaultDatum() any {
	if t.IsMap() {
		m := Map{}
		if t.Min == 1 {
			m[t.Key.zero()] = t.Value.zero()
		}
		return m
	}
	if t.IsScalar() {
		return t.Key.zero()
	}
	if t.Min == 1 {
		return Set{t.Key.zero()}
	}
	return Set{}
}

func (b BaseType) zero() any {
	switch b.Type {
	case "integer":
		return int64(0)
	case "real":
		return float64(0)
	case "boolean":
		return false
	case "uuid":
		return UUID("00000000-0000-0000-0000-000000000000")
	}
	return ""
}

// normalizeRow normalises every column the table's schema knows; columns it
// does not know are an error.
func (t *TableSchema) normalizeRow(r Row) (Row, error) {
	out := make(Row, len(r))
	for col, v := range r {
		cs, ok := t.Columns[col]
		if !ok {
			return nil, fmt.Errorf("%w: unknown column %q", ErrBadDatum, col)
		}
		nv, err := cs.Type.normalize(v)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", col, err)
		}
		out[col] = nv
	}
	return out, nil
}
