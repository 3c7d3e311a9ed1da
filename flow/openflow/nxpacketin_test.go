package openflow

import (
	"bytes"
	"encoding/hex"
	"slices"
	"testing"
)

// ovsNXPacketIn is the NXT_PACKET_IN Open vSwitch 3.1's ovs-vswitchd sent
// an OpenFlow 1.0 connection that asked for nxt_packet_in, for the frame
// below sent out with in_port=1,actions=resubmit(,0) through the flows
//
//	cookie=0x3,table=0,priority=5,in_port=1,actions=load:0x5->NXM_NX_REG1[],set_field:0x77->metadata,resubmit(,2)
//	cookie=0x9,table=2,priority=1,actions=controller
//
// (test/of_packetin_test.go compares the same message, live, with
// ovsxdp's).
const ovsNXPacketIn = "01040074000000000000232000000011" + // header, Nicira, NXT_PACKET_IN
	"ffffffff002a01020000000000000009001a000000000000" + // buffer_id, total_len, reason, table_id, cookie, match_len, pad
	"000000020001" + "0001020400000005" + "800004080000000000000077" + "000000000000" + // in_port, reg1, metadata, padding to 8
	"0000" + // the 2 bytes before the frame
	"ffffffffffff00000000000108004500001c0001000040110000c0a80001c0a800020035003500080000"

func TestNXPacketInOpenVSwitchBytes(t *testing.T) {
	raw, err := hex.DecodeString(ovsNXPacketIn)
	if err != nil {
		t.Fatal(err)
	}
	frame := raw[len(raw)-42:]
	want := &NXPacketIn{BufferID: NoBuffer, TotalLen: 42, Reason: PacketInAction, TableID: 2, Cookie: 9,
		Match: []Field{named("in_port", be16(1), nil), reg(1, 5), named("metadata", be64(0x77), nil)}, Data: frame}

	b, err := Encode(Version10, 0, want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, raw) {
		t.Errorf("encode:\n got %x\nwant %x", b, raw)
	}

	h, m, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := m.(*NXPacketIn)
	if !ok || h.Version != Version10 {
		t.Fatalf("decoded %T in version %d, want *NXPacketIn in 1.0", m, h.Version)
	}
	if got.BufferID != want.BufferID || got.TotalLen != want.TotalLen || got.Reason != want.Reason ||
		got.TableID != want.TableID || got.Cookie != want.Cookie || !bytes.Equal(got.Data, frame) {
		t.Errorf("decoded %+v, want %+v", got, want)
	}
	if !slices.EqualFunc(got.Match, want.Match, func(a, b Field) bool {
		return a.Class == b.Class && a.Field == b.Field && bytes.Equal(a.Value, b.Value) && a.Mask == nil && b.Mask == nil
	}) {
		t.Errorf("decoded match %+v, want %+v", got.Match, want.Match)
	}
}

// TestNXPacketInBad checks that a truncated or inconsistent NXT_PACKET_IN
// is an error, not a crash or a message.
func TestNXPacketInBad(t *testing.T) {
	raw, _ := hex.DecodeString(ovsNXPacketIn)
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"fixed-part-cut", raw[:30]},
		{"match-cut", raw[:50]},
		{"match-len-past-end", func() []byte {
			b := bytes.Clone(raw[:72])
			b[33] = 0xff // match_len 0xff: more than the message holds
			return b
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(tc.in)
			b[2], b[3] = byte(len(b)>>8), byte(len(b))
			if _, m, err := Decode(b); err == nil {
				t.Errorf("decoded %x as %+v, want an error", b, m)
			}
		})
	}
}
