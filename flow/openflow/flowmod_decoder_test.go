package openflow

import (
	"reflect"
	"testing"
)

// TestFlowModDecoder decodes every message of the codec cases with one
// FlowModDecoder, in turn, and checks each against Decode: the same
// message, a flow mod of OpenFlow 1.1 or later in the decoder's own
// (Reused), any other message not.
func TestFlowModDecoder(t *testing.T) {
	var d FlowModDecoder
	for _, tc := range codecCases {
		b, err := Encode(tc.v, 7, tc.m)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		wh, want, werr := Decode(b)
		gh, got, gerr := d.Decode(b)
		if gh != wh || !reflect.DeepEqual(got, want) || (gerr == nil) != (werr == nil) {
			t.Errorf("%s: FlowModDecoder gave %+v %#v %v, Decode %+v %#v %v", tc.name, gh, got, gerr, wh, want, werr)
		}
		fm, isFlowMod := want.(*FlowMod)
		if wantReused := isFlowMod && tc.v != Version10 && !fm.Nicira; d.Reused(got) != wantReused {
			t.Errorf("%s: Reused %v, want %v", tc.name, d.Reused(got), wantReused)
		}
	}
}

// TestFlowModDecoderAllocs checks that decoding an OpenFlow 1.5 flow mod
// without instructions again with a FlowModDecoder makes no allocation:
// the flow mod and its match are the decoder's.
func TestFlowModDecoderAllocs(t *testing.T) {
	fm := &FlowMod{Command: FlowAdd, TableID: 8, Priority: 50, BufferID: NoBuffer, OutPort: PortAny, OutGroup: GroupAny,
		Match: []Field{oxm("in_port", be32(3), nil), oxm("eth_type", be16(0x800), nil), oxm("ip_src", be32(0x0a000000), be32(0xff000000))}}
	b, err := Encode(Version15, 1, fm)
	if err != nil {
		t.Fatal(err)
	}
	var d FlowModDecoder
	d.Decode(b)
	if n := testing.AllocsPerRun(100, func() { d.Decode(b) }); n > 0 {
		t.Errorf("%v allocations a decode, want 0", n)
	}
}
