package ofconn

import (
	"testing"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// flowModWith is an add of one flow in table 0 with the match fields and
// apply-actions given.
func flowModWith(match []openflow.Field, insts ...openflow.Instruction) *openflow.FlowMod {
	return &openflow.FlowMod{Command: openflow.FlowAdd, BufferID: openflow.NoBuffer, OutPort: openflow.PortAny,
		OutGroup: 0xffffffff, Match: match, Instructions: insts}
}

func applyActions(acts ...openflow.Action) openflow.Instruction {
	return openflow.Instruction{Type: openflow.InstApplyActions, Actions: acts}
}

// nxRaw is a Nicira action of subtype st with zeroed arguments, padded to
// a multiple of 8 bytes.
func nxRaw(st uint16, argLen int) *openflow.ActRaw {
	return &openflow.ActRaw{Type: 0xffff, Experimenter: openflow.NiciraExperimenter, Subtype: st, Data: make([]byte, argLen)}
}

func TestRejectionsCounted(t *testing.T) {
	gbpID := openflow.Field{Name: "tun_gbp_id", Class: 0x0001, Field: 38, Value: []byte{0, 5}}
	ethType := openflow.Field{Name: "eth_type", Class: 0x8000, Field: 5, Value: []byte{0x08, 0x00}}
	tests := []struct {
		name       string
		msg        openflow.Message
		times      int
		wantMsg    string
		wantError  string
		wantReason string
	}{
		{"sample action", flowModWith(nil, applyActions(nxRaw(29, 14))), 2, "OFPT_FLOW_MOD", "OFPBAC_BAD_TYPE", "NXAST_SAMPLE"},
		{"unknown nicira action", flowModWith(nil, applyActions(nxRaw(99, 6))), 1, "OFPT_FLOW_MOD", "OFPBAC_BAD_EXP_TYPE", "NXAST_99"},
		{"tun_gbp_id match", flowModWith([]openflow.Field{ethType, gbpID}, applyActions(&openflow.ActOutput{Port: 1})), 1,
			"OFPT_FLOW_MOD", "OFPBMC_BAD_FIELD", "tun_gbp_id"},
		{"meter instruction of an unknown meter", flowModWith(nil, openflow.Instruction{Type: openflow.InstMeter, MeterID: 1}), 1,
			"OFPT_FLOW_MOD", "OFPMMFC_INVALID_METER", "meter"},
		{"tlv table mod", &openflow.Experimenter{Experimenter: openflow.NiciraExperimenter, ExpType: 24, Data: make([]byte, 8)}, 1,
			"NXT_TLV_TABLE_MOD", "OFPBRC_BAD_EXP_TYPE", ReasonUnsupported},
		{"bundle features", &openflow.MultipartRaw{Type: 19, Body: make([]byte, 8)}, 1, "OFPMP_BUNDLE_FEATURES", "OFPBRC_BAD_MULTIPART", ReasonUnsupported},
		{"meter add", &openflow.Unknown{Type: 29, Body: []byte{0, 0, 0, 0, 0, 0, 0, 1}}, 1, "OFPT_METER_MOD", "OFPMMFC_INVALID_METER", "meter"},
		{"requestforward", &openflow.Unknown{Type: 32, Body: make([]byte, 8)}, 1, "OFPT_REQUESTFORWARD", "OFPBRC_BAD_TYPE", ReasonUnsupported},
	}
	s := newTestServer()
	cl := dial(t, s, openflow.Version15)
	wantRejected := 0
	for _, tc := range tests {
		for range tc.times {
			xid := cl.send(tc.msg)
			h, m := cl.recv()
			if _, ok := m.(*openflow.ErrorMsg); !ok || h.Xid != xid {
				t.Fatalf("%s: answered with %T (xid %d, want %d), want an error", tc.name, m, h.Xid, xid)
			}
			wantRejected++
		}
	}
	// An accepted flow mod is received but not rejected.
	cl.send(flowModWith(nil, applyActions(&openflow.ActOutput{Port: 1})))
	cl.send(&openflow.BarrierRequest{})
	if _, m := cl.recv(); m == nil {
		t.Fatal("no barrier reply")
	} else if _, ok := m.(*openflow.BarrierReply); !ok {
		t.Fatalf("the accepted flow mod was answered with %T", m)
	}

	got := s.Rejections()
	var total uint64
	for _, r := range got {
		total += r.Count
	}
	if total != uint64(wantRejected) || len(got) != len(tests) {
		t.Fatalf("%d rows counting %d rejections, want %d rows counting %d: %+v", len(got), total, len(tests), wantRejected, got)
	}
	// The sample flow mod was sent twice with different xids: one message.
	if got[0].Reason != "NXAST_SAMPLE" || got[0].Count != 2 || got[0].Distinct != 1 {
		t.Errorf("most frequent row %+v, want NXAST_SAMPLE counted twice (one distinct message) first", got[0])
	}
	for _, tc := range tests {
		found := false
		for _, r := range got {
			if r.Message == tc.wantMsg && r.Error == tc.wantError && r.Reason == tc.wantReason && r.Count == uint64(tc.times) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no row %s / %s / %q counting %d in %+v", tc.name, tc.wantMsg, tc.wantError, tc.wantReason, tc.times, got)
		}
	}
	recv := s.Received()
	// Six flow mods were refused, one accepted.
	if recv["OFPT_FLOW_MOD"] != 6 || recv["OFPT_HELLO"] != 1 || recv["OFPT_BARRIER_REQUEST"] != 1 || recv["OFPMP_BUNDLE_FEATURES"] != 1 {
		t.Errorf("received %v", recv)
	}
}

// A hello that negotiates nothing is counted as a refused OFPT_HELLO.
func TestRejectionsHello(t *testing.T) {
	s := newTestServer()
	cl := dial(t, s, 0x03) // OpenFlow 1.2: not spoken by ovsxdp
	if _, m := cl.recv(); m == nil {
		t.Fatal("no reply")
	} else if e, ok := m.(*openflow.ErrorMsg); !ok || e.Type != openflow.ErrTypeHelloFailed {
		t.Fatalf("hello answered with %#v", m)
	}
	got := s.Rejections()
	if len(got) != 1 || got[0].Message != "OFPT_HELLO" || got[0].Error != "OFPHFC_INCOMPATIBLE" || got[0].Count != 1 {
		t.Fatalf("rejections %+v", got)
	}
}

func TestRejectionsBounded(t *testing.T) {
	var a accounting
	msg := []byte{openflow.Version13, 14, 0, 8, 0, 0, 0, 1}
	for i := range maxRejectionKeys + 10 {
		a.countRejected(msg, openflow.ErrTypeBadAction, 0, &openflow.Error{Item: "item" + string(rune('a'+i%26)) + string(rune(i))})
	}
	if n := len(a.rejected); n != maxRejectionKeys+1 {
		t.Fatalf("%d rows, want %d and the overflow row", n, maxRejectionKeys)
	}
	var other uint64
	for k, v := range a.rejected {
		if k.reason == OtherReason {
			other = v
		}
	}
	if other != 10 {
		t.Fatalf("overflow row counts %d, want 10", other)
	}
}

func TestMessageName(t *testing.T) {
	hdr := func(v, typ uint8, rest ...byte) []byte {
		b := append([]byte{v, typ, 0, 0, 0, 0, 0, 1}, rest...)
		b[3] = byte(len(b))
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"flow mod 1.3", hdr(openflow.Version13, 14), "OFPT_FLOW_MOD"},
		{"port mod 1.0", hdr(openflow.Version10, 15), "OFPT_PORT_MOD"},
		{"group mod 1.5", hdr(openflow.Version15, 15), "OFPT_GROUP_MOD"},
		{"meter mod", hdr(openflow.Version15, 29), "OFPT_METER_MOD"},
		{"nicira tlv", hdr(openflow.Version15, 4, 0, 0, 0x23, 0x20, 0, 0, 0, 25), "NXT_TLV_TABLE_REQUEST"},
		{"nicira unknown", hdr(openflow.Version10, 4, 0, 0, 0x23, 0x20, 0, 0, 0, 99), "NXT_99"},
		{"meter features", hdr(openflow.Version13, 18, 0, 11, 0, 0, 0, 0, 0, 0), "OFPMP_METER_FEATURES"},
		{"port desc reply", hdr(openflow.Version13, 19, 0, 13, 0, 0, 0, 0, 0, 0), "OFPMP_PORT_DESC reply"},
		{"nxst flow", hdr(openflow.Version10, 16, 0xff, 0xff, 0, 0, 0, 0, 0x23, 0x20, 0, 0, 0, 0), "NXST_FLOW"},
		{"1.3 nicira stats", hdr(openflow.Version13, 18, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x23, 0x20, 0, 0, 0, 2), "NXST_FLOW_MONITOR"},
		{"stats 1.0", hdr(openflow.Version10, 16, 0, 1), "OFPST_FLOW"},
		{"short experimenter", hdr(openflow.Version13, 4), "OFPT_EXPERIMENTER"},
		{"short", []byte{1, 2}, "(truncated header)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := MessageName(tc.in); got != tc.want {
				t.Errorf("MessageName = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestMessageNameAllocs checks that naming the messages a flow mod stream
// is made of allocates nothing: every message read is named, to be
// counted.
func TestMessageNameAllocs(t *testing.T) {
	for _, in := range [][]byte{
		{openflow.Version13, 14, 0, 8, 0, 0, 0, 1},                                // OFPT_FLOW_MOD
		{openflow.Version10, 18, 0, 8, 0, 0, 0, 1},                                // OFPT_BARRIER_REQUEST
		{openflow.Version10, 4, 0, 16, 0, 0, 0, 1, 0, 0, 0x23, 0x20, 0, 0, 0, 13}, // NXT_FLOW_MOD
	} {
		if n := testing.AllocsPerRun(100, func() { MessageName(in) }); n != 0 {
			t.Errorf("MessageName(%s) allocates %v times", MessageName(in), n)
		}
	}
}

func TestErrorName(t *testing.T) {
	for _, tc := range []struct {
		typ, code uint16
		want      string
	}{
		{2, 3, "OFPBAC_BAD_EXP_TYPE"},
		{4, 6, "OFPBMC_BAD_FIELD"},
		{1, 1, "OFPBRC_BAD_TYPE"},
		{12, 3, "OFPMMFC_UNKNOWN_METER"},
		{12, 30, "OFPET_METER_MOD_FAILED code 30"},
		{99, 1, "error type 99 code 1"},
	} {
		if got := ErrorName(tc.typ, tc.code); got != tc.want {
			t.Errorf("ErrorName(%d, %d) = %q, want %q", tc.typ, tc.code, got, tc.want)
		}
	}
}
