package ovsdb

import (
	"encoding/json"
	"fmt"
	"sync"
)

// EventKind says what happened to a row.
type EventKind int

// Kinds of row change.
const (
	EventInsert EventKind = iota + 1
	EventModify
	EventDelete
)

func (k EventKind) String() string {
	switch k {
	case EventInsert:
		return "insert"
	case EventModify:
		return "modify"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one row change applied to a Replica. Old is nil for an insert,
// New is nil for a delete.
type Event struct {
	Table string
	UUID  UUID
	Kind  EventKind
	Old   Row
	New   Row
}

// Replica is the in-memory copy of the monitored tables of one database:
// table → UUID → row. Every stored row has its "_uuid" column and every
// monitored column (update2 leaves out columns that hold their default
// value; the replica fills them in), each normalised to its schema type
// (see Row.Set and Row.Map). Rows
// returned by its methods are shared and must not be modified.
//
// A replica is updated on the connection's reader goroutine, one whole
// update at a time under its lock, so readers never see half an update.
// After a reconnection it is resynced from the new initial contents.
type Replica struct {
	db       string
	tables   map[string][]string
	cond     bool
	id       string // the monitor id's JSON form
	onChange func([]Event)

	mu     sync.RWMutex // guards the fields below
	schema *Schema
	data   map[string]map[UUID]Row
	syncs  uint64 // times initial contents were applied
}

// DB returns the monitored database's name.
func (r *Replica) DB() string { return r.db }

// Schema returns the schema the replica's contents follow.
func (r *Replica) Schema() *Schema {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.schema
}

// Syncs returns how many times the initial contents were loaded: 1 after
// Monitor, one more after each reconnection.
func (r *Replica) Syncs() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.syncs
}

// Row returns one row.
func (r *Replica) Row(table string, uuid UUID) (Row, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	row, ok := r.data[table][uuid]
	return row, ok
}

// Table returns a copy of one table's index.
func (r *Replica) Table(table string) map[UUID]Row {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[UUID]Row, len(r.data[table]))
	for k, v := range r.data[table] {
		out[k] = v
	}
	return out
}

// Snapshot returns a consistent copy of every monitored table.
func (r *Replica) Snapshot() map[string]map[UUID]Row {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]map[UUID]Row, len(r.data))
	for t, rows := range r.data {
		m := make(map[UUID]Row, len(rows))
		for k, v := range rows {
			m[k] = v
		}
		out[t] = m
	}
	return out
}

// Find returns the rows of table whose column col equals value.
func (r *Replica) Find(table, col string, value any) []Row {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Row
	for _, row := range r.data[table] {
		if datumEqual(row[col], value) {
			out = append(out, row)
		}
	}
	return out
}

// monitorParams returns the monitor or monitor_cond request's third
// parameter.
func (r *Replica) monitorParams() map[string]any {
	p := make(map[string]any, len(r.tables))
	for t, cols := range r.tables {
		req := map[string]any{}
		if len(cols) > 0 {
			req["columns"] = cols
		}
		if r.cond {
			p[t] = []any{req}
		} else {
			p[t] = req
		}
	}
	return p
}

func (r *Replica) checkSchema(s *Schema) error {
	for t, cols := range r.tables {
		ts, ok := s.Tables[t]
		if !ok {
			return fmt.Errorf("monitor %s: no table %q", r.db, t)
		}
		for _, c := range cols {
			if _, ok := ts.Columns[c]; !ok {
				return fmt.Errorf("monitor %s: table %s has no column %q", r.db, t, c)
			}
		}
	}
	return nil
}

// rowUpdate is one row's change decoded from an update or update2.
type rowUpdate struct {
	table string
	uuid  UUID
	// update (monitor): old and/or new; update2: exactly one of the four.
	old, new                Row
	hasOld, hasNew          bool
	initial, insert, modify Row
	delete                  bool
	v2kind                  string
}

// parseTableUpdates decodes <table-updates> (v2=false) or
// <table-updates2> (v2=true) without a schema.
func parseTableUpdates(raw json.RawMessage, v2 bool) ([]rowUpdate, error) {
	v, err := parseJSON(raw)
	if err != nil {
		return nil, err
	}
	tables, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: table updates are %s, not an object", ErrProtocol, jsonKind(v))
	}
	var out []rowUpdate
	for t, tv := range tables {
		rows, ok := tv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: updates of table %s are %s, not an object", ErrProtocol, t, jsonKind(tv))
		}
		for id, rv := range rows {
			obj, ok := rv.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%w: update of %s row %s is %s", ErrProtocol, t, id, jsonKind(rv))
			}
			u := rowUpdate{table: t, uuid: UUID(id)}
			if v2 {
				if len(obj) != 1 {
					return nil, fmt.Errorf("%w: update2 of %s row %s has %d members, want 1", ErrProtocol, t, id, len(obj))
				}
				for k, val := range obj {
					u.v2kind = k
					switch k {
					case "delete":
						u.delete = true
						continue
					case "initial", "insert", "modify":
					default:
						return nil, fmt.Errorf("%w: update2 of %s row %s: unknown member %q", ErrProtocol, t, id, k)
					}
					row, err := rowFromJSON(val)
					if err != nil {
						return nil, fmt.Errorf("%w: %s row %s: %w", ErrProtocol, t, id, err)
					}
					switch k {
					case "initial":
						u.initial = row
					case "insert":
						u.insert = row
					case "modify":
						u.modify = row
					}
				}
			} else {
				for k, val := range obj {
					if k != "old" && k != "new" {
						return nil, fmt.Errorf("%w: update of %s row %s: unknown member %q", ErrProtocol, t, id, k)
					}
					row, err := rowFromJSON(val)
					if err != nil {
						return nil, fmt.Errorf("%w: %s row %s: %w", ErrProtocol, t, id, err)
					}
					if k == "old" {
						u.old, u.hasOld = row, true
					} else {
						u.new, u.hasNew = row, true
					}
				}
				if !u.hasOld && !u.hasNew {
					return nil, fmt.Errorf("%w: update of %s row %s has neither old nor new", ErrProtocol, t, id)
				}
			}
			out = append(out, u)
		}
	}
	return out, nil
}

func (r *Replica) normalizeLocked(table string, uuid UUID, row Row) (Row, error) {
	ts, ok := r.schema.Tables[table]
	if !ok {
		return nil, fmt.Errorf("%w: update for table %q not in the schema", ErrProtocol, table)
	}
	if _, monitored := r.tables[table]; !monitored {
		return nil, fmt.Errorf("%w: update for table %q not monitored", ErrProtocol, table)
	}
	n, err := ts.normalizeRow(row)
	if err != nil {
		return nil, fmt.Errorf("%w: %s row %s: %w", ErrProtocol, table, uuid, err)
	}
	n["_uuid"] = uuid
	return n, nil
}

// fillDefaultsLocked adds the monitored columns that a new row lacks with
// their default values: update2 leaves out columns that hold their
// default, update does not, and a replica holds whole rows either way.
func (r *Replica) fillDefaultsLocked(table string, row Row) {
	ts := r.schema.Tables[table]
	fill := func(col string) {
		if _, ok := row[col]; ok {
			return
		}
		if cs, ok := ts.Columns[col]; ok && col != "_uuid" && col != "_version" {
			row[col] = cs.Type.defaultDatum()
		}
	}
	if cols := r.tables[table]; len(cols) > 0 {
		for _, c := range cols {
			fill(c)
		}
		return
	}
	for c := range ts.Columns {
		fill(c)
	}
}

// applyInitial replaces the replica's contents with a monitor reply's
// initial contents and returns the events that turn the old contents into
// the new ones.
func (r *Replica) applyInitial(schema *Schema, raw json.RawMessage) error {
	ups, err := parseTableUpdates(raw, r.cond)
	if err != nil {
		return err
	}
	r.mu.Lock()
	prev := r.schema
	r.schema = schema
	data := make(map[string]map[UUID]Row, len(r.tables))
	for t := range r.tables {
		data[t] = make(map[UUID]Row)
	}
	for _, u := range ups {
		row := u.new
		if r.cond {
			row = u.initial
		}
		if row == nil {
			r.schema = prev
			r.mu.Unlock()
			return fmt.Errorf("%w: initial contents of %s row %s are not an initial row", ErrProtocol, u.table, u.uuid)
		}
		n, err := r.normalizeLocked(u.table, u.uuid, row)
		if err != nil {
			r.schema = prev
			r.mu.Unlock()
			return err
		}
		r.fillDefaultsLocked(u.table, n)
		data[u.table][u.uuid] = n
	}
	var events []Event
	for t, rows := range r.data {
		for id, old := range rows {
			if _, ok := data[t][id]; !ok {
				events = append(events, Event{Table: t, UUID: id, Kind: EventDelete, Old: old})
			}
		}
	}
	for t, rows := range data {
		for id, nw := range rows {
			old, ok := r.data[t][id]
			switch {
			case !ok:
				events = append(events, Event{Table: t, UUID: id, Kind: EventInsert, New: nw})
			case !rowEqual(old, nw):
				events = append(events, Event{Table: t, UUID: id, Kind: EventModify, Old: old, New: nw})
			}
		}
	}
	r.data = data
	r.syncs++
	r.mu.Unlock()
	r.emit(events)
	return nil
}

// applyUpdate applies an update or update2 notification's table updates.
// An update that does not fit the replica (a modification of an unknown
// row, an insertion of a known one) is a protocol error: the connection
// closes and the resync after reconnecting repairs the replica.
func (r *Replica) applyUpdate(raw json.RawMessage, v2 bool) error {
	ups, err := parseTableUpdates(raw, v2)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.schema == nil {
		r.mu.Unlock()
		return fmt.Errorf("%w: update before the monitor's initial contents", ErrProtocol)
	}
	// Build the changed tables first so that a bad update changes nothing.
	next := make(map[string]map[UUID]Row)
	table := func(t string) map[UUID]Row {
		if m, ok := next[t]; ok {
			return m
		}
		m := make(map[UUID]Row, len(r.data[t]))
		for k, v := range r.data[t] {
			m[k] = v
		}
		next[t] = m
		return m
	}
	var events []Event
	fail := func(err error) error { r.mu.Unlock(); return err }
	for _, u := range ups {
		if _, ok := r.schema.Tables[u.table]; !ok {
			return fail(fmt.Errorf("%w: update for table %q not in the schema", ErrProtocol, u.table))
		}
		rows := table(u.table)
		old, exists := rows[u.uuid]
		var nw Row
		kind := EventModify
		switch {
		case !v2 && !u.hasNew, v2 && u.delete:
			if !exists {
				return fail(fmt.Errorf("%w: delete of unknown %s row %s", ErrProtocol, u.table, u.uuid))
			}
			delete(rows, u.uuid)
			events = append(events, Event{Table: u.table, UUID: u.uuid, Kind: EventDelete, Old: old})
			continue
		case !v2 && !u.hasOld, v2 && (u.insert != nil || u.initial != nil):
			if exists {
				return fail(fmt.Errorf("%w: insert of existing %s row %s", ErrProtocol, u.table, u.uuid))
			}
			src := u.new
			if v2 {
				src = u.insert
				if src == nil {
					src = u.initial
				}
			}
			n, err := r.normalizeLocked(u.table, u.uuid, src)
			if err != nil {
				return fail(err)
			}
			r.fillDefaultsLocked(u.table, n)
			nw, kind = n, EventInsert
		default: // modify
			if !exists {
				return fail(fmt.Errorf("%w: modify of unknown %s row %s", ErrProtocol, u.table, u.uuid))
			}
			var err error
			if v2 {
				nw, err = r.applyDiffLocked(u.table, old, u.modify)
			} else {
				var n Row
				n, err = r.normalizeLocked(u.table, u.uuid, u.new)
				if err == nil {
					nw = old.Clone()
					for k, v := range n {
						nw[k] = v
					}
				}
			}
			if err != nil {
				return fail(err)
			}
		}
		rows[u.uuid] = nw
		events = append(events, Event{Table: u.table, UUID: u.uuid, Kind: kind, Old: old, New: nw})
	}
	for t, m := range next {
		r.data[t] = m
	}
	r.mu.Unlock()
	r.emit(events)
	return nil
}

// applyDiffLocked applies an update2 "modify" row: a column of at most one
// element (a scalar or an optional value) takes the diff as its new value;
// a set column toggles each element of the diff (present → removed, absent
// → added); a map column removes a key whose diff value equals the old
// one, and otherwise sets it.
func (r *Replica) applyDiffLocked(table string, old, diff Row) (Row, error) {
	ts := r.schema.Tables[table]
	nw := old.Clone()
	for col, dv := range diff {
		cs, ok := ts.Columns[col]
		if !ok {
			return nil, fmt.Errorf("%w: %s modify: unknown column %q", ErrProtocol, table, col)
		}
		d, err := cs.Type.normalize(dv)
		if err != nil {
			return nil, fmt.Errorf("%w: %s modify column %q: %w", ErrProtocol, table, col, err)
		}
		switch {
		case cs.Type.Max == 1:
			nw[col] = d
		case cs.Type.IsMap():
			m := make(Map)
			for k, v := range old.Map(col) {
				m[k] = v
			}
			for k, v := range d.(Map) {
				if ov, ok := m[k]; ok && ov == v {
					delete(m, k)
				} else {
					m[k] = v
				}
			}
			nw[col] = m
		default:
			var s Set
			present := make(map[any]int)
			for _, a := range old.Set(col) {
				present[a] = len(s)
				s = append(s, a)
			}
			for _, a := range d.(Set) {
				if i, ok := present[a]; ok {
					s[i] = nil // removed below
					delete(present, a)
				} else {
					present[a] = len(s)
					s = append(s, a)
				}
			}
			out := make(Set, 0, len(present))
			for i, a := range s {
				if a != nil {
					if j, ok := present[a]; ok && j == i {
						out = append(out, a)
					}
				}
			}
			nw[col] = out
		}
	}
	return nw, nil
}

func (r *Replica) emit(events []Event) {
	if r.onChange != nil && len(events) > 0 {
		r.onChange(events)
	}
}

func rowEqual(a, b Row) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !datumEqual(v, w) {
			return false
		}
	}
	return true
}

// datumEqual compares datums; sets compare without regard to order.
func datumEqual(a, b any) bool {
	switch x := a.(type) {
	case Set:
		y, ok := b.(Set)
		if !ok || len(x) != len(y) {
			return false
		}
		in := make(map[any]bool, len(x))
		for _, e := range x {
			in[e] = true
		}
		for _, e := range y {
			if !in[e] {
				return false
			}
		}
		return true
	case Map:
		y, ok := b.(Map)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || w != v {
				return false
			}
		}
		return true
	}
	switch b.(type) {
	case Set, Map:
		return false
	}
	return a == b
}
