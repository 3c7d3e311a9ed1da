package openflow

import (
	"encoding/binary"
	"testing"
)

// TestPortFeaturesByVersion encodes a port status whose port runs at
// 10 Gb/s over copper and is live: OpenFlow 1.0 numbers the copper bit 7
// and has no live bit, 1.3 numbers copper 11; both decode to the same
// port.
func TestPortFeaturesByVersion(t *testing.T) {
	p := Port{PortNo: 1, Name: "p1", State: PortStateLive,
		Curr:      PortFeature10GBFD | PortFeatureCopper,
		Supported: PortFeature1GBFD | PortFeature40GBFD | PortFeatureAutoneg}
	tests := []struct {
		name          string
		v             uint8
		off           int // of the state word, then curr, advertised, supported
		wantState     uint32
		wantCurr      uint32
		wantSupported uint32
		wantBack      Port
	}{
		{"1.0", Version10, 8 + 8 + 2 + 6 + 16 + 4, 0, 1<<6 | 1<<7, 1<<5 | 1<<9,
			Port{PortNo: 1, Name: "p1", Curr: p.Curr, Supported: PortFeature1GBFD | PortFeatureAutoneg}},
		{"1.3", Version13, 8 + 8 + 4 + 4 + 6 + 2 + 16 + 4, PortStateLive, 1<<6 | 1<<11, 1<<5 | 1<<7 | 1<<13, p},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.v, 0, &PortStatus{Reason: PortReasonModify, Port: p})
			if err != nil {
				t.Fatal(err)
			}
			word := func(i int) uint32 { return binary.BigEndian.Uint32(b[tt.off+4*i:]) }
			if word(0) != tt.wantState || word(1) != tt.wantCurr || word(3) != tt.wantSupported {
				t.Errorf("state %#x curr %#x supported %#x, want %#x %#x %#x", word(0), word(1), word(3), tt.wantState, tt.wantCurr, tt.wantSupported)
			}
			_, m, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			got := m.(*PortStatus).Port
			want := tt.wantBack
			want.State = tt.wantState
			if got.Curr != want.Curr || got.Supported != want.Supported || got.State != want.State {
				t.Errorf("decoded %+v, want %+v", got, want)
			}
		})
	}
}
