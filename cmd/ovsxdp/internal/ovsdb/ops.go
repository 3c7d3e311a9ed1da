package ovsdb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Operation is one operation of a transact request (RFC 7047 5.2). Build
// it with Insert, Select, Update, Mutate, Delete, Wait, Comment or Assert.
type Operation struct {
	Op        string
	Table     string
	Row       Row
	UUIDName  string
	Where     []Condition
	Columns   []string
	Mutations []Mutation
	Rows      []Row
	Until     string
	Timeout   *int // milliseconds, wait only
	Comment   string
	Lock      string
}

// Condition is a where clause: [column, function, value]. Functions are
// <, <=, ==, !=, >=, >, includes and excludes.
type Condition struct {
	Column   string
	Function string
	Value    any
}

// Mutation is [column, mutator, value]. Mutators are +=, -=, *=, /=, %=,
// insert and delete.
type Mutation struct {
	Column  string
	Mutator string
	Value   any
}

// Cond builds a Condition.
func Cond(column, function string, value any) Condition {
	return Condition{Column: column, Function: function, Value: value}
}

// Mut builds a Mutation.
func Mut(column, mutator string, value any) Mutation {
	return Mutation{Column: column, Mutator: mutator, Value: value}
}

// Insert inserts row; uuidName, if not empty, names the new row for later
// operations of the same transaction (NamedUUID).
func Insert(table string, row Row, uuidName string) Operation {
	return Operation{Op: "insert", Table: table, Row: row, UUIDName: uuidName}
}

// Select returns the rows matching where; columns limits the columns
// returned (all when empty).
func Select(table string, where []Condition, columns ...string) Operation {
	return Operation{Op: "select", Table: table, Where: where, Columns: columns}
}

// Update sets the columns of row in every row matching where.
func Update(table string, where []Condition, row Row) Operation {
	return Operation{Op: "update", Table: table, Where: where, Row: row}
}

// Mutate applies mutations to every row matching where.
func Mutate(table string, where []Condition, mutations ...Mutation) Operation {
	return Operation{Op: "mutate", Table: table, Where: where, Mutations: mutations}
}

// Delete deletes every row matching where.
func Delete(table string, where ...Condition) Operation {
	return Operation{Op: "delete", Table: table, Where: where}
}

// Wait waits until the columns of the rows matching where are ("==") or
// are not ("!=") exactly rows; timeoutMs < 0 waits without a bound.
func Wait(table string, where []Condition, columns []string, until string, rows []Row, timeoutMs int) Operation {
	op := Operation{Op: "wait", Table: table, Where: where, Columns: columns, Until: until, Rows: rows}
	if timeoutMs >= 0 {
		op.Timeout = &timeoutMs
	}
	return op
}

// Comment adds a comment to the transaction log.
func Comment(text string) Operation { return Operation{Op: "comment", Comment: text} }

// Assert fails the transaction unless the client holds the named lock.
func Assert(lock string) Operation { return Operation{Op: "assert", Lock: lock} }

// MarshalJSON encodes the operation with the members its op takes.
func (op Operation) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"op":`)
	appendString(&b, op.Op)
	member := func(name string) { b.WriteByte(','); appendString(&b, name); b.WriteByte(':') }
	table := func() { member("table"); appendString(&b, op.Table) }
	where := func() error {
		member("where")
		b.WriteByte('[')
		for i, c := range op.Where {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('[')
			appendString(&b, c.Column)
			b.WriteByte(',')
			appendString(&b, c.Function)
			b.WriteByte(',')
			if err := appendDatum(&b, c.Value); err != nil {
				return fmt.Errorf("where %s: %w", c.Column, err)
			}
			b.WriteByte(']')
		}
		b.WriteByte(']')
		return nil
	}
	columns := func() {
		if op.Columns == nil {
			return
		}
		member("columns")
		cols, _ := json.Marshal(op.Columns)
		b.Write(cols)
	}
	row := func() error {
		member("row")
		return appendRow(&b, op.Row)
	}
	var err error
	switch op.Op {
	case "insert":
		table()
		err = row()
		if op.UUIDName != "" {
			if !validIdent(op.UUIDName) {
				return nil, fmt.Errorf("insert %s: uuid-name %q is not an identifier", op.Table, op.UUIDName)
			}
			member("uuid-name")
			appendString(&b, op.UUIDName)
		}
	case "select":
		table()
		err = where()
		columns()
	case "update":
		table()
		if err = where(); err == nil {
			err = row()
		}
	case "mutate":
		table()
		if err = where(); err != nil {
			break
		}
		member("mutations")
		b.WriteByte('[')
		for i, m := range op.Mutations {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('[')
			appendString(&b, m.Column)
			b.WriteByte(',')
			appendString(&b, m.Mutator)
			b.WriteByte(',')
			if err = appendDatum(&b, m.Value); err != nil {
				err = fmt.Errorf("mutation %s: %w", m.Column, err)
				break
			}
			b.WriteByte(']')
		}
		b.WriteByte(']')
	case "delete":
		table()
		err = where()
	case "wait":
		table()
		if err = where(); err != nil {
			break
		}
		if op.Columns == nil {
			op.Columns = []string{}
		}
		columns()
		member("until")
		appendString(&b, op.Until)
		member("rows")
		b.WriteByte('[')
		for i, r := range op.Rows {
			if i > 0 {
				b.WriteByte(',')
			}
			if err = appendRow(&b, r); err != nil {
				break
			}
		}
		b.WriteByte(']')
		if op.Timeout != nil {
			member("timeout")
			fmt.Fprintf(&b, "%d", *op.Timeout)
		}
	case "comment":
		member("comment")
		appendString(&b, op.Comment)
	case "assert":
		member("lock")
		appendString(&b, op.Lock)
	default:
		return nil, fmt.Errorf("unknown operation %q", op.Op)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op.Op, op.Table, err)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// OpResult is the result of one operation.
type OpResult struct {
	Count   int    // update, mutate, delete: rows affected
	UUID    UUID   // insert: the new row
	Rows    []Row  // select
	Error   string // the operation's error, "" on success
	Details string
}

// TransactError reports the first failed operation of a transaction
// (errors.Is(err, ErrTransaction)).
type TransactError struct {
	Index   int // index of the failed operation; len(ops) for a commit error
	Op      string
	Reason  string
	Details string
}

func (e *TransactError) Error() string {
	s := fmt.Sprintf("transact: operation %d (%s): %s", e.Index, e.Op, e.Reason)
	if e.Details != "" {
		s += ": " + e.Details
	}
	return s
}

// Unwrap makes errors.Is(err, ErrTransaction) true.
func (e *TransactError) Unwrap() error { return ErrTransaction }

// parseTransactResult decodes a transact result array, returning a
// *TransactError for the first failed operation.
func parseTransactResult(raw json.RawMessage, ops []Operation) ([]OpResult, error) {
	v, err := parseJSON(raw)
	if err != nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: transact result is %s, not an array", ErrProtocol, jsonKind(v))
	}
	res := make([]OpResult, len(arr))
	var first *TransactError
	for i, e := range arr {
		if e == nil {
			continue // an operation not executed after an earlier failure
		}
		obj, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: transact result %d is %s", ErrProtocol, i, jsonKind(e))
		}
		r := &res[i]
		if n, ok := obj["count"].(json.Number); ok {
			c, err := n.Int64()
			if err != nil {
				return nil, fmt.Errorf("%w: transact result %d count %s", ErrProtocol, i, n)
			}
			r.Count = int(c)
		}
		if u, ok := obj["uuid"]; ok {
			a, err := atomFromJSON(u)
			id, isUUID := a.(UUID)
			if err != nil || !isUUID {
				return nil, fmt.Errorf("%w: transact result %d uuid is not a uuid", ErrProtocol, i)
			}
			r.UUID = id
		}
		if rows, ok := obj["rows"].([]any); ok {
			for _, jr := range rows {
				row, err := rowFromJSON(jr)
				if err != nil {
					return nil, fmt.Errorf("transact result %d: %w", i, err)
				}
				r.Rows = append(r.Rows, row)
			}
		}
		r.Error, _ = obj["error"].(string)
		r.Details, _ = obj["details"].(string)
		if r.Error != "" && first == nil {
			name := "commit"
			if i < len(ops) {
				name = ops[i].Op
			}
			first = &TransactError{Index: i, Op: name, Reason: r.Error, Details: r.Details}
		}
	}
	if first != nil {
		return res, first
	}
	if len(arr) < len(ops) {
		return res, fmt.Errorf("%w: %d results for %d operations", ErrProtocol, len(arr), len(ops))
	}
	return res, nil
}

// validIdent reports whether s can name a uuid-name (RFC 7047 id).
func validIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return !strings.HasPrefix(s, "_")
}
