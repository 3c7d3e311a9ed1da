package ovsdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeDatum(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    any
		wantErr error
	}{
		{name: "integer", in: `42`, want: int64(42)},
		{name: "negative integer", in: `-7`, want: int64(-7)},
		{name: "real", in: `1.5`, want: 1.5},
		{name: "real with exponent", in: `1e3`, want: 1000.0},
		{name: "real written whole", in: `2.0`, want: 2.0},
		{name: "boolean", in: `true`, want: true},
		{name: "string", in: `"br0"`, want: "br0"},
		{name: "uuid", in: `["uuid","8175fa1f-4bc0-41fc-ada0-9abff781466d"]`, want: UUID("8175fa1f-4bc0-41fc-ada0-9abff781466d")},
		{name: "named-uuid", in: `["named-uuid","row1"]`, want: NamedUUID("row1")},
		{name: "set", in: `["set",[1,2,3]]`, want: Set{int64(1), int64(2), int64(3)}},
		{name: "empty set", in: `["set",[]]`, want: Set{}},
		{name: "set of uuids", in: `["set",[["uuid","a"],["uuid","b"]]]`, want: Set{UUID("a"), UUID("b")}},
		{name: "map", in: `["map",[["n_rxq","2"],["mode","native"]]]`, want: Map{"n_rxq": "2", "mode": "native"}},
		{name: "map string to integer", in: `["map",[["rx_packets",10]]]`, want: Map{"rx_packets": int64(10)}},
		{name: "empty map", in: `["map",[]]`, want: Map{}},
		{name: "duplicate set element", in: `["set",[1,1]]`, wantErr: ErrBadDatum},
		{name: "duplicate map key", in: `["map",[["a","1"],["a","2"]]]`, wantErr: ErrBadDatum},
		{name: "nested set", in: `["set",[["set",[]]]]`, wantErr: ErrBadDatum},
		{name: "map pair of three", in: `["map",[["a","b","c"]]]`, wantErr: ErrBadDatum},
		{name: "uuid not a string", in: `["uuid",1]`, wantErr: ErrBadDatum},
		{name: "unknown tag", in: `["list",[1]]`, wantErr: ErrBadDatum},
		{name: "null", in: `null`, wantErr: ErrBadDatum},
		{name: "object", in: `{"a":1}`, wantErr: ErrBadDatum},
		{name: "integer out of range", in: `99999999999999999999`, wantErr: ErrBadDatum},
		{name: "real out of range", in: `1e999`, wantErr: ErrBadDatum},
		{name: "not JSON", in: `[`, wantErr: ErrProtocol},
		{name: "two values", in: `1 2`, wantErr: ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeDatum([]byte(tc.in))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("DecodeDatum(%s) = %v, %v; want %v", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("DecodeDatum(%s) = %#v, want %#v", tc.in, got, tc.want)
			}
			enc, err := EncodeDatum(got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := DecodeDatum(enc)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip through %s: %#v, %v", enc, again, err)
			}
		})
	}
}

func TestEncodeDatum(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      any
		want    string
		wantErr bool
	}{
		{name: "whole real keeps its point", in: 1.0, want: `1.0`},
		{name: "real", in: 0.25, want: `0.25`},
		{name: "int", in: 5, want: `5`},
		{name: "map sorted by key", in: Map{"b": "2", "a": "1"}, want: `["map",[["a","1"],["b","2"]]]`},
		{name: "set keeps order", in: Set{"z", "a"}, want: `["set",["z","a"]]`},
		{name: "named uuid", in: NamedUUID("x"), want: `["named-uuid","x"]`},
		{name: "string escaping", in: "a\"b\n", want: `"a\"b\n"`},
		{name: "slice is not a datum", in: []string{"a"}, wantErr: true},
		{name: "nested set", in: Set{Set{}}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EncodeDatum(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrBadDatum) {
					t.Fatalf("EncodeDatum(%#v) = %s, %v; want ErrBadDatum", tc.in, got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("EncodeDatum(%#v) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestMessageDecodeEncode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		wantKind MessageKind
		wantOut  string
	}{
		{name: "request", in: `{"method":"echo","params":[],"id":"echo"}`, wantKind: KindRequest,
			wantOut: `{"id":"echo","method":"echo","params":[]}`},
		{name: "notification with null id", in: `{"id":null,"method":"update","params":["m", {}]}`, wantKind: KindNotification,
			wantOut: `{"id":null,"method":"update","params":["m",{}]}`},
		{name: "notification without id", in: `{"method":"update2","params":[]}`, wantKind: KindNotification,
			wantOut: `{"id":null,"method":"update2","params":[]}`},
		{name: "response", in: `{"id":1,"result":["Open_vSwitch"],"error":null}`, wantKind: KindResponse,
			wantOut: `{"error":null,"id":1,"result":["Open_vSwitch"]}`},
		{name: "error response", in: `{"id":2,"result":null,"error":{"error":"unknown database"}}`, wantKind: KindResponse,
			wantOut: `{"error":{"error":"unknown database"},"id":2,"result":null}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := DecodeMessage([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if m.Kind != tc.wantKind {
				t.Fatalf("kind %d, want %d", m.Kind, tc.wantKind)
			}
			out, err := m.Encode()
			if err != nil || string(out) != tc.wantOut {
				t.Fatalf("Encode = %s, %v; want %s", out, err, tc.wantOut)
			}
		})
	}
}

// chunkReader returns its data a few bytes per Read.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(c.n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func TestFrameReader(t *testing.T) {
	stream := ` {"a":"}{"} {"b":[1,{"c":"\\\""}]}` + "\n\n" + `{"d":"\u007d"}{"e":[]}`
	want := []string{`{"a":"}{"}`, `{"b":[1,{"c":"\\\""}]}`, `{"d":"\u007d"}`, `{"e":[]}`}
	for _, chunk := range []int{1, 2, 3, 7, 1 << 20} {
		fr := newFrameReader(&chunkReader{data: []byte(stream), n: chunk}, 1024)
		var got []string
		for {
			m, err := fr.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
			got = append(got, string(m))
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("chunk %d: frames %q, want %q", chunk, got, want)
		}
	}
	// A message over the bound is an error, whether it arrives whole or in
	// pieces, and the reader does not buffer without limit.
	big := `{"x":"` + strings.Repeat("y", 5000) + `"}`
	for _, chunk := range []int{1 << 20, 100} {
		fr := newFrameReader(&chunkReader{data: []byte(big), n: chunk}, 1024)
		if _, err := fr.next(); !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("chunk %d: %v, want ErrMessageTooLarge", chunk, err)
		}
		if cap(fr.buf) > 4*readChunk+1024 {
			t.Fatalf("chunk %d: buffer grew to %d", chunk, cap(fr.buf))
		}
	}
}

// testSchema has a column of each shape the replica treats differently.
const testSchema = `{"name":"T","version":"1.0.0","tables":{"I":{"columns":{
	"name":{"type":"string"},
	"ofport":{"type":{"key":"integer","min":0,"max":1}},
	"mtu":{"type":"integer"},
	"speed":{"type":"real"},
	"up":{"type":"boolean"},
	"peer":{"type":{"key":{"type":"uuid","refTable":"I","refType":"weak"},"min":0,"max":1}},
	"tags":{"type":{"key":"string","min":0,"max":"unlimited"}},
	"ifaces":{"type":{"key":{"type":"uuid","refTable":"I"},"min":1,"max":"unlimited"}},
	"options":{"type":{"key":"string","value":"string","min":0,"max":"unlimited"}},
	"state":{"type":{"key":{"type":"string","enum":["set",["up","down"]]},"min":0,"max":1}}
}}}}`

func newTestReplica(t testing.TB, cond bool) *Replica {
	t.Helper()
	s, err := ParseSchema([]byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	r := &Replica{db: "T", tables: map[string][]string{"I": nil}, cond: cond}
	if err := r.applyInitial(s, json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseSchemaTypes(t *testing.T) {
	s, err := ParseSchema([]byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	cols := s.Tables["I"].Columns
	if ty := cols["state"].Type; !reflect.DeepEqual(ty.Key.Enum, Set{"up", "down"}) || ty.Min != 0 || ty.Max != 1 {
		t.Fatalf("state: %+v", ty)
	}
	if ty := cols["ifaces"].Type; ty.Key.RefTable != "I" || ty.Key.RefType != "strong" || ty.Min != 1 || ty.Max != Unlimited {
		t.Fatalf("ifaces: %+v", ty)
	}
	if ty := cols["peer"].Type; ty.Key.RefType != "weak" {
		t.Fatalf("peer: %+v", ty)
	}
	for _, bad := range []string{
		`{}`, `{"name":"x","tables":{"t":{"columns":{"c":{"type":"float"}}}}}`,
		`{"name":"x","tables":{"t":{"columns":{"c":{"type":{"key":"string","max":"lots"}}}}}}`,
		`{"name":"x","tables":{"t":{"columns":{"c":{"type":{"key":"string","min":2}}}}}}`,
		`[]`,
	} {
		if _, err := ParseSchema([]byte(bad)); !errors.Is(err, ErrBadSchema) {
			t.Errorf("ParseSchema(%s) = %v, want ErrBadSchema", bad, err)
		}
	}
}

func TestReplicaUpdate2Diffs(t *testing.T) {
	const id = "11111111-1111-1111-1111-111111111111"
	for _, tc := range []struct {
		name   string
		modify string // the "modify" row
		want   Row    // columns to check afterwards
	}{
		{name: "scalar replaced", modify: `{"mtu":9000,"name":"q"}`, want: Row{"mtu": int64(9000), "name": "q"}},
		{name: "optional integer replaced", modify: `{"ofport":7}`, want: Row{"ofport": Set{int64(7)}}},
		{name: "optional integer cleared", modify: `{"ofport":["set",[]]}`, want: Row{"ofport": Set{}}},
		{name: "real from a whole number", modify: `{"speed":10}`, want: Row{"speed": 10.0}},
		{name: "set elements toggled", modify: `{"tags":["set",["a","c"]]}`, want: Row{"tags": Set{"b", "c"}}},
		{name: "set one-element shorthand", modify: `{"tags":"b"}`, want: Row{"tags": Set{"a"}}},
		{name: "map: same value removes, new value updates, new key adds",
			modify: `{"options":["map",[["k1","v1"],["k2","new"],["k3","v3"]]]}`,
			want:   Row{"options": Map{"k2": "new", "k3": "v3"}}},
		{name: "untouched columns kept", modify: `{"up":true}`, want: Row{"up": true, "mtu": int64(1500), "tags": Set{"a", "b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestReplica(t, true)
			insert := `{"I":{"` + id + `":{"insert":{"name":"p","mtu":1500,"ofport":5,"tags":["set",["a","b"]],"options":["map",[["k1","v1"],["k2","v2"]]],"ifaces":["uuid","` + id + `"]}}}}`
			if err := r.applyUpdate(json.RawMessage(insert), true); err != nil {
				t.Fatal(err)
			}
			row, _ := r.Row("I", id)
			if !datumEqual(row["up"], false) || !datumEqual(row["peer"], Set{}) || !datumEqual(row["speed"], 0.0) {
				t.Fatalf("defaults not filled in: %v", row)
			}
			mod := `{"I":{"` + id + `":{"modify":` + tc.modify + `}}}`
			if err := r.applyUpdate(json.RawMessage(mod), true); err != nil {
				t.Fatal(err)
			}
			row, _ = r.Row("I", id)
			for col, want := range tc.want {
				if !datumEqual(row[col], want) {
					t.Errorf("%s = %#v, want %#v", col, row[col], want)
				}
			}
		})
	}
}

// TestReplicaRejectsInconsistentUpdates: an update that does not fit the
// replica is a protocol error and leaves the replica as it was.
func TestReplicaRejectsInconsistentUpdates(t *testing.T) {
	const a = "aaaaaaaa-1111-1111-1111-111111111111"
	for _, tc := range []struct {
		name string
		v2   bool
		in   string
	}{
		{name: "modify of an unknown row", v2: true, in: `{"I":{"bbbb":{"modify":{"mtu":1}}}}`},
		{name: "delete of an unknown row", v2: true, in: `{"I":{"bbbb":{"delete":null}}}`},
		{name: "insert of a known row", v2: true, in: `{"I":{"` + a + `":{"insert":{"name":"x"}}}}`},
		{name: "two members", v2: true, in: `{"I":{"` + a + `":{"insert":{},"delete":null}}}`},
		{name: "unknown table", v2: true, in: `{"J":{"` + a + `":{"delete":null}}}`},
		{name: "unknown column", v2: true, in: `{"I":{"` + a + `":{"modify":{"nope":1}}}}`},
		{name: "wrong type", v2: true, in: `{"I":{"` + a + `":{"modify":{"mtu":"big"}}}}`},
		{name: "wrong type in a set", v2: true, in: `{"I":{"` + a + `":{"modify":{"tags":["set",[1]]}}}}`},
		{name: "map for a set", v2: true, in: `{"I":{"` + a + `":{"modify":{"tags":["map",[]]}}}}`},
		{name: "not an object", v2: false, in: `[]`},
		{name: "v1 neither old nor new", v2: false, in: `{"I":{"` + a + `":{}}}`},
		{name: "v1 unknown member", v2: false, in: `{"I":{"` + a + `":{"older":{}}}}`},
		{name: "bad datum", v2: false, in: `{"I":{"` + a + `":{"old":{},"new":{"mtu":["set",[1,1]]}}}}`},
		{name: "second change bad", v2: true, in: `{"I":{"` + a + `":{"modify":{"mtu":2}},"cccc":{"modify":{"mtu":3}}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestReplica(t, tc.v2)
			ins := `{"I":{"` + a + `":{"new":{"name":"x","mtu":1}}}}`
			if tc.v2 {
				ins = `{"I":{"` + a + `":{"insert":{"name":"x","mtu":1}}}}`
			}
			if err := r.applyUpdate(json.RawMessage(ins), tc.v2); err != nil {
				t.Fatal(err)
			}
			before := r.Snapshot()
			err := r.applyUpdate(json.RawMessage(tc.in), tc.v2)
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("applyUpdate(%s) = %v, want ErrProtocol", tc.in, err)
			}
			if after := r.Snapshot(); !reflect.DeepEqual(before, after) {
				t.Fatalf("a rejected update changed the replica:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

func TestOperationJSON(t *testing.T) {
	where := []Condition{Cond("name", "==", "p1")}
	for _, tc := range []struct {
		name string
		op   Operation
		want string
	}{
		{name: "insert", op: Insert("Bridge", Row{"name": "br0", "ports": Set{NamedUUID("p")}}, "br"),
			want: `{"op":"insert","table":"Bridge","row":{"name":"br0","ports":["set",[["named-uuid","p"]]]},"uuid-name":"br"}`},
		{name: "select", op: Select("Interface", where, "ofport"),
			want: `{"op":"select","table":"Interface","where":[["name","==","p1"]],"columns":["ofport"]}`},
		{name: "update", op: Update("Interface", where, Row{"mtu": int64(1500)}),
			want: `{"op":"update","table":"Interface","where":[["name","==","p1"]],"row":{"mtu":1500}}`},
		{name: "mutate", op: Mutate("Interface", where, Mut("statistics", "insert", Map{"a": int64(1)})),
			want: `{"op":"mutate","table":"Interface","where":[["name","==","p1"]],"mutations":[["statistics","insert",["map",[["a",1]]]]]}`},
		{name: "delete", op: Delete("Bridge", Cond("_uuid", "==", UUID("u"))),
			want: `{"op":"delete","table":"Bridge","where":[["_uuid","==",["uuid","u"]]]}`},
		{name: "wait", op: Wait("Interface", where, []string{"mtu"}, "==", []Row{{"mtu": int64(1)}}, 0),
			want: `{"op":"wait","table":"Interface","where":[["name","==","p1"]],"columns":["mtu"],"until":"==","rows":[{"mtu":1}],"timeout":0}`},
		{name: "wait without a bound", op: Wait("Interface", nil, nil, "!=", nil, -1),
			want: `{"op":"wait","table":"Interface","where":[],"columns":[],"until":"!=","rows":[]}`},
		{name: "comment", op: Comment("hi"), want: `{"op":"comment","comment":"hi"}`},
		{name: "assert", op: Assert("l"), want: `{"op":"assert","lock":"l"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.op)
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %s, %v\nwant %s", got, err, tc.want)
			}
		})
	}
	for _, bad := range []Operation{
		Insert("Bridge", Row{}, "1bad"), {Op: "frobnicate"}, Update("T", nil, Row{"c": struct{}{}}),
	} {
		if b, err := json.Marshal(bad); err == nil {
			t.Errorf("%+v marshalled to %s", bad, b)
		}
	}
}

func TestParseTransactResult(t *testing.T) {
	ops := []Operation{Insert("T", Row{}, ""), Update("T", nil, Row{})}
	res, err := parseTransactResult(json.RawMessage(`[{"uuid":["uuid","u1"]},{"count":2}]`), ops)
	if err != nil || res[0].UUID != "u1" || res[1].Count != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	_, err = parseTransactResult(json.RawMessage(`[{"uuid":["uuid","u1"]},{"error":"constraint violation","details":"d"},{"error":"x"}]`), ops)
	var terr *TransactError
	if !errors.As(err, &terr) || terr.Index != 1 || terr.Op != "update" || terr.Reason != "constraint violation" {
		t.Fatalf("%v", err)
	}
	_, err = parseTransactResult(json.RawMessage(`[{"count":1},{"count":1},{"error":"referential integrity violation"}]`), ops)
	if !errors.As(err, &terr) || terr.Index != 2 || terr.Op != "commit" {
		t.Fatalf("commit error: %v", err)
	}
	for _, bad := range []string{`{}`, `[1]`, `[{"uuid":"x"}]`, `[{"count":1.5}]`, `[{"count":1}]`, `[{"rows":[1]},{}]`} {
		if _, err := parseTransactResult(json.RawMessage(bad), ops); err == nil || errors.Is(err, ErrTransaction) {
			t.Errorf("%s: %v, want a decoding error", bad, err)
		}
	}
}

func TestRowAccessors(t *testing.T) {
	r := Row{"s": "x", "os": Set{"y"}, "i": int64(3), "oi": Set{int64(4)}, "none": Set{}, "m": Map{"k": "v"}}
	if r.String("s") != "x" || r.String("os") != "y" || r.String("none") != "" || r.String("i") != "" {
		t.Fatal("String")
	}
	if v, ok := r.Int("i"); !ok || v != 3 {
		t.Fatal("Int")
	}
	if v, ok := r.Int("oi"); !ok || v != 4 {
		t.Fatal("Int of a one-element set")
	}
	if _, ok := r.Int("none"); ok {
		t.Fatal("Int of an empty set")
	}
	if !reflect.DeepEqual(r.Set("s"), Set{"x"}) || r.Set("m") != nil || r.Set("missing") != nil {
		t.Fatal("Set")
	}
	if r.Map("m")["k"] != "v" || r.Map("s") != nil {
		t.Fatal("Map")
	}
	b, err := json.Marshal(r)
	if err != nil || !bytes.Contains(b, []byte(`"m":["map",[["k","v"]]]`)) {
		t.Fatalf("%s %v", b, err)
	}
}
