package openflow

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func TestMeterModRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   MeterMod
	}{
		{"add pktps with burst", MeterMod{Command: MeterAdd, Flags: 0x6, MeterID: 1, Bands: []MeterBand{{Type: 1, Rate: 10, Burst: 20}}}},
		{"modify kbps, two bands", MeterMod{Command: MeterModify, Flags: 0x9, MeterID: 7, Bands: []MeterBand{{Type: 1, Rate: 1000}, {Type: 2, Rate: 5, PrecLevel: 3}}}},
		{"add without bands", MeterMod{Command: MeterAdd, MeterID: 2, Bands: []MeterBand{}}},
		{"delete all", MeterMod{Command: MeterDelete, MeterID: 0xffffffff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(Version13, 5, tt.in.Message())
			if err != nil {
				t.Fatal(err)
			}
			h, m, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			u, ok := m.(*Unknown)
			if !ok || h.Type != TypeMeterMod {
				t.Fatalf("decoded %T of type %d", m, h.Type)
			}
			got, err := DecodeMeterMod(u.Body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.in) {
				t.Errorf("got %+v, want %+v", *got, tt.in)
			}
		})
	}
}

func TestMeterModErrors(t *testing.T) {
	band := func(typ, l uint16) []byte {
		b := binary.BigEndian.AppendUint16(nil, typ)
		b = binary.BigEndian.AppendUint16(b, l)
		return append(b, make([]byte, 12)...)
	}
	head := func(cmd, flags uint16) []byte {
		b := binary.BigEndian.AppendUint16(nil, cmd)
		b = binary.BigEndian.AppendUint16(b, flags)
		return binary.BigEndian.AppendUint32(b, 1)
	}
	tests := []struct {
		name     string
		in       []byte
		wantType uint16
		wantCode uint16
	}{
		{"short", []byte{0, 0, 0}, ErrTypeBadRequest, CodeBadRequestLen},
		{"bad command", head(3, 0), ErrTypeMeterModFailed, CodeMeterBadCommand},
		{"kbps and pktps", head(0, 3), ErrTypeMeterModFailed, CodeMeterBadFlags},
		{"band type 3", append(head(0, 1), band(3, 16)...), ErrTypeMeterModFailed, CodeMeterBadBand},
		{"band of 24 bytes", append(append(head(0, 1), band(1, 24)...), 0, 0, 0, 0, 0, 0, 0, 0), ErrTypeBadRequest, CodeBadRequestLen},
		{"trailing bytes", append(append(head(0, 1), band(1, 16)...), 1, 2), ErrTypeBadRequest, CodeBadRequestLen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeMeterMod(tt.in)
			var oe *Error
			if !errors.As(err, &oe) || oe.Type != tt.wantType || oe.Code != tt.wantCode {
				t.Errorf("got %v, want type %d code %d", err, tt.wantType, tt.wantCode)
			}
		})
	}
	// A delete's bands are not read, as in Open vSwitch.
	if _, err := DecodeMeterMod(append(head(2, 0), 9)); err != nil {
		t.Errorf("delete with a stray byte: %v", err)
	}
}

func TestMeterRepliesRoundTrip(t *testing.T) {
	cs := []MeterConfig{{Flags: 6, MeterID: 1, Bands: []MeterBand{{Type: 1, Rate: 10, Burst: 20}}}, {Flags: 1, MeterID: 2, Bands: []MeterBand{}}}
	var b []byte
	for i := range cs {
		b = AppendMeterConfig(b, &cs[i])
	}
	if got, err := DecodeMeterConfigs(b); err != nil || !reflect.DeepEqual(got, cs) {
		t.Errorf("configs: got %+v, %v; want %+v", got, err, cs)
	}
	ss := []MeterStats{{MeterID: 1, FlowCount: 2, PacketInCount: 1000, ByteInCount: 64000, DurationSec: 3, DurationNsec: 4, BandPackets: []uint64{990}, BandBytes: []uint64{63360}},
		{MeterID: 9}}
	b = nil
	for i := range ss {
		b = AppendMeterStats(b, &ss[i])
	}
	if got, err := DecodeMeterStats(b); err != nil || !reflect.DeepEqual(got, ss) {
		t.Errorf("stats: got %+v, %v; want %+v", got, err, ss)
	}
	if id, err := DecodeMeterRequest(MeterRequest(0xffffffff)); err != nil || id != 0xffffffff {
		t.Errorf("request: %d, %v", id, err)
	}
	if _, err := DecodeMeterRequest([]byte{0, 0, 0, 1}); err == nil {
		t.Errorf("a 4-byte meter request was taken")
	}
	f := MeterFeatures{MaxMeter: 1 << 18, BandTypes: 2, Capabilities: 0xf, MaxBands: 8}
	want := []byte{0, 4, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0xf, 8, 0, 0, 0}
	if got := f.Body(); !reflect.DeepEqual(got, want) {
		t.Errorf("features body %x, want %x", got, want)
	}
}

// FuzzDecodeMeterMod: any body decodes to a meter mod or an OpenFlow
// error, never a panic, and a decoded add or modify encodes back to the
// same bytes.
func FuzzDecodeMeterMod(f *testing.F) {
	f.Add([]byte{0, 0, 0, 6, 0, 0, 0, 1, 0, 1, 0, 16, 0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0, 0})
	f.Add([]byte{0, 2, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 1, 0, 3, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, body []byte) {
		mm, err := DecodeMeterMod(body)
		if err != nil {
			var oe *Error
			if !errors.As(err, &oe) {
				t.Fatalf("error %v is not an OpenFlow error", err)
			}
			return
		}
		if mm.Command == MeterDelete {
			return
		}
		again := mm.Message().Body
		mm2, err := DecodeMeterMod(again)
		if err != nil || !reflect.DeepEqual(mm, mm2) {
			t.Fatalf("re-encoded %x decodes to %+v, %v; want %+v", again, mm2, err, mm)
		}
	})
}
