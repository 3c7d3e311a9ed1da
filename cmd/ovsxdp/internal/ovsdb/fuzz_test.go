package ovsdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"sync"
	"testing"
)

// fuzzSchema is Open vSwitch's schema when it is installed (so that the
// captured seeds apply to a replica), else the small test schema.
var fuzzSchema = sync.OnceValue(func() *Schema {
	if raw, err := os.ReadFile(vswitchSchema); err == nil {
		if s, err := ParseSchema(raw); err == nil {
			return s
		}
	}
	s, err := ParseSchema([]byte(testSchema))
	if err != nil {
		panic(err)
	}
	return s
})

// FuzzDecodeMessage decodes arbitrary bytes as a stream of JSON-RPC
// messages and their OVSDB payloads (datums, rows, table updates, schemas,
// transact results). Invariants: nothing panics; framing does not depend on
// how the bytes are split across reads; a decoded message encodes and
// decodes to the same message, byte-stable on the second encoding; a
// decoded datum or row encodes and decodes to an equal one; a replica that
// accepted an update holds rows that round-trip.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"id":"echo","method":"echo","params":[]}`,
		`{"id":1,"result":["Open_vSwitch","_Server"],"error":null}`,
		`{"id":null,"method":"update2","params":["m",{"I":{"11111111-1111-1111-1111-111111111111":{"modify":{"tags":["set",["a"]],"options":["map",[["k","v"]]]}}}}]}`,
		`{"id":2,"result":null,"error":{"error":"unknown database","details":"x"}}`,
		`{"a":1} {"b":[1,2,{"c":"}"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frames := checkFraming(t, data)
		if len(frames) == 0 {
			frames = [][]byte{data}
		}
		for _, raw := range frames {
			checkMessage(t, raw)
		}
	})
}

// checkFraming splits data into frames reading it whole and in pieces of
// 1 to 7 bytes, and checks both give the same frames and the same end.
func checkFraming(t *testing.T, data []byte) [][]byte {
	split := func(r io.Reader) ([][]byte, string) {
		fr := newFrameReader(r, 4096)
		var out [][]byte
		for len(out) < 1000 {
			m, err := fr.next()
			if err != nil {
				return out, err.Error()
			}
			out = append(out, bytes.Clone(m))
		}
		return out, "too many"
	}
	whole, endWhole := split(bytes.NewReader(data))
	n := 1
	if len(data) > 0 {
		n = int(data[0])%7 + 1
	}
	pieces, endPieces := split(&chunkReader{data: data, n: n})
	if endWhole != endPieces || len(whole) != len(pieces) {
		t.Fatalf("framing depends on reads: whole %d frames (%s), in %d-byte pieces %d frames (%s)",
			len(whole), endWhole, n, len(pieces), endPieces)
	}
	for i := range whole {
		if !bytes.Equal(whole[i], pieces[i]) {
			t.Fatalf("frame %d differs: %q vs %q", i, whole[i], pieces[i])
		}
	}
	return whole
}

func checkMessage(t *testing.T, raw []byte) {
	m, err := DecodeMessage(raw)
	if err != nil {
		if !errors.Is(err, ErrProtocol) {
			t.Fatalf("DecodeMessage error %v is not ErrProtocol", err)
		}
		return
	}
	enc, err := m.Encode()
	if err != nil {
		t.Fatalf("Encode of a decoded message: %v", err)
	}
	m2, err := DecodeMessage(enc)
	if err != nil {
		t.Fatalf("decoding %s again: %v", enc, err)
	}
	if m2.Kind != m.Kind || m2.Method != m.Method || !bytes.Equal(m2.Params, m.Params) ||
		!bytes.Equal(m2.Result, m.Result) || !bytes.Equal(m2.Error, m.Error) || !bytes.Equal(m2.ID, m.ID) {
		t.Fatalf("round trip changed the message:\n%+v\n%+v", m, m2)
	}
	enc2, err := m2.Encode()
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("second encoding differs: %s vs %s (%v)", enc, enc2, err)
	}

	// The OVSDB payloads: the result, each parameter, and one level inside
	// them (rows of a select, a monitor's table updates).
	var payloads []json.RawMessage
	add := func(raw json.RawMessage) {
		payloads = append(payloads, raw)
		var arr []json.RawMessage
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &arr) == nil {
			payloads = append(payloads, arr...)
		} else if json.Unmarshal(raw, &obj) == nil {
			for _, v := range obj {
				payloads = append(payloads, v)
			}
		}
	}
	if m.Kind == KindResponse {
		add(m.Result)
	} else {
		var params []json.RawMessage
		if json.Unmarshal(m.Params, &params) == nil {
			for _, p := range params {
				add(p)
			}
		}
	}
	for _, p := range payloads {
		checkPayload(t, p)
	}
}

func checkPayload(t *testing.T, raw json.RawMessage) {
	if d, err := DecodeDatum(raw); err == nil {
		enc, err := EncodeDatum(d)
		if err != nil {
			t.Fatalf("EncodeDatum of a decoded %s: %v", raw, err)
		}
		d2, err := DecodeDatum(enc)
		if err != nil || !datumEqual(d, d2) {
			t.Fatalf("datum round trip %s → %s: %#v vs %#v (%v)", raw, enc, d, d2, err)
		}
		if enc2, _ := EncodeDatum(d2); !bytes.Equal(enc, enc2) {
			t.Fatalf("datum encoding not stable: %s vs %s", enc, enc2)
		}
	}
	if r, err := DecodeRow(raw); err == nil {
		checkRowRoundTrip(t, r, nil)
	}
	ParseSchema(raw)
	parseTransactResult(raw, nil)
	s := fuzzSchema()
	tables := make(map[string][]string, len(s.Tables))
	for name := range s.Tables {
		tables[name] = nil
	}
	for _, v2 := range []bool{false, true} {
		r := &Replica{db: s.Name, tables: tables, cond: v2}
		if err := r.applyInitial(s, raw); err != nil {
			continue
		}
		r.applyUpdate(raw, v2) // mostly refused: the rows exist already
		for table, rows := range r.Snapshot() {
			for _, row := range rows {
				checkRowRoundTrip(t, row, s.Tables[table])
			}
		}
	}
}

// checkRowRoundTrip encodes a row, decodes it, normalises it by the table
// schema when there is one, and compares.
func checkRowRoundTrip(t *testing.T, r Row, ts *TableSchema) {
	enc, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("encoding row %v: %v", r, err)
	}
	r2, err := DecodeRow(enc)
	if err != nil {
		t.Fatalf("decoding row %s: %v", enc, err)
	}
	if ts != nil {
		if r2, err = ts.normalizeRow(r2); err != nil {
			t.Fatalf("normalising row %s: %v", enc, err)
		}
	}
	if !rowEqual(r, r2) {
		t.Fatalf("row round trip through %s: %v vs %v", enc, r, r2)
	}
}
