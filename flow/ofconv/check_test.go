package ofconv

import (
	"errors"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TestCheckActions checks actions against matches as Open vSwitch 3.1
// does (test/TestActionChecksMatchOVS compares with it on the wire): a
// field's missing prerequisites refuse in every version, an action that
// only makes no sense for the flow refuses from OpenFlow 1.1 on.
// checkActionCase is an action list checked against a match, and the
// OFPET_BAD_ACTION code Open vSwitch refuses it with (0: none).
type checkActionCase struct {
	name    string
	inMatch *flow.Match
	inActs  []openflow.Action
	want10  uint16 // the OFPET_BAD_ACTION code in OpenFlow 1.0, 0 for none
	want13  uint16 // and in 1.3
}

func checkActionCases() []checkActionCase {
	var udp, arp, tagged flow.Match
	udp.Key.DlType, udp.Mask.DlType = flow.EthTypeIPv4, 0xffff
	udp.Key.NwProto, udp.Mask.NwProto = flow.IPProtoUDP, 0xff
	arp.Key.DlType, arp.Mask.DlType = flow.EthTypeARP, 0xffff
	tagged = udp
	tagged.Key.VLANs[0].TCI, tagged.Mask.VLANs[0].TCI = flow.VLANPresent|5, 0xffff
	untagged := udp
	set := func(name string, v ...byte) openflow.Action {
		h, _ := openflow.FieldByName(name, false)
		return &openflow.ActSetField{Field: openflow.Field{Name: name, Class: h.Class, Field: h.Field, Value: v}}
	}
	reg := func(name string) openflow.FieldHeader {
		h, _ := openflow.FieldByName(name, true)
		return h
	}
	decTTL := &openflow.ActSimple{Type: openflow.ActTypeDecNWTTL}
	pushVLAN := &openflow.ActEthertype{Type: openflow.ActTypePushVLAN, EtherType: flow.EthTypeVLAN}
	popVLAN := &openflow.ActSimple{Type: openflow.ActTypePopVLAN}
	const none, inconsistent, badOutPort, badTag, badSetArg = 0, codeMatchInconsistent, codeBadOutPort, codeBadTag, openflow.CodeBadActionSetArgument
	return []checkActionCase{
		{name: "tcp_src on udp", inMatch: &udp, inActs: []openflow.Action{set("tcp_src", 0, 80)}, want10: inconsistent, want13: inconsistent},
		{name: "udp_src on udp", inMatch: &udp, inActs: []openflow.Action{set("udp_src", 0, 80)}},
		{name: "ip_src on arp", inMatch: &arp, inActs: []openflow.Action{set("ip_src", 10, 0, 0, 1)}, want10: inconsistent, want13: inconsistent},
		{name: "mpls_ttl on udp", inMatch: &udp, inActs: []openflow.Action{set("mpls_ttl", 5)}, want10: inconsistent, want13: inconsistent},
		{name: "move from tcp_src on udp", inMatch: &udp, inActs: []openflow.Action{&openflow.ActRegMove{NBits: 16, Src: reg("tcp_src"), Dst: reg("reg0")}}, want10: inconsistent, want13: inconsistent},
		{name: "dec_ttl on arp", inMatch: &arp, inActs: []openflow.Action{decTTL}, want13: inconsistent},
		{name: "dec_ttl on udp", inMatch: &udp, inActs: []openflow.Action{decTTL}},
		{name: "dec_ttl in a clone on arp", inMatch: &arp, inActs: []openflow.Action{&openflow.ActClone{Actions: []openflow.Action{decTTL}}}, want13: inconsistent},
		{name: "dec_ttl before a clone on arp", inMatch: &arp, inActs: []openflow.Action{decTTL, &openflow.ActClone{}}, want13: inconsistent},
		{name: "dec_mpls_ttl on udp", inMatch: &udp, inActs: []openflow.Action{&openflow.ActSimple{Type: openflow.ActTypeDecMPLSTTL}}, want13: inconsistent},
		{name: "pop_mpls on udp", inMatch: &udp, inActs: []openflow.Action{&openflow.ActEthertype{Type: openflow.ActTypePopMPLS, EtherType: flow.EthTypeIPv4}}, want13: inconsistent},
		{name: "push_mpls then dec_mpls_ttl", inMatch: &udp, inActs: []openflow.Action{&openflow.ActEthertype{Type: openflow.ActTypePushMPLS, EtherType: 0x8847}, &openflow.ActSimple{Type: openflow.ActTypeDecMPLSTTL}}},
		{name: "vlan_vid untagged", inMatch: &untagged, inActs: []openflow.Action{set("vlan_vid", 0x10, 1)}, want10: inconsistent, want13: inconsistent},
		{name: "vlan_vid tagged", inMatch: &tagged, inActs: []openflow.Action{set("vlan_vid", 0x10, 1)}},
		{name: "vlan_vid without present", inMatch: &tagged, inActs: []openflow.Action{set("vlan_vid", 0, 1)}, want10: badSetArg, want13: badSetArg},
		{name: "push_vlan then vlan_vid", inMatch: &untagged, inActs: []openflow.Action{pushVLAN, set("vlan_vid", 0x10, 1)}},
		{name: "push_vlan, pop_vlan, vlan_vid", inMatch: &untagged, inActs: []openflow.Action{pushVLAN, popVLAN, set("vlan_vid", 0x10, 1)}, want10: inconsistent, want13: inconsistent},
		{name: "third tag", inMatch: &tagged, inActs: []openflow.Action{pushVLAN, pushVLAN}, want10: badTag, want13: badTag},
		{name: "pop_vlan untagged", inMatch: &untagged, inActs: []openflow.Action{popVLAN}, want13: inconsistent},
		{name: "1.0 mod_vlan_vid untagged", inMatch: &untagged, inActs: []openflow.Action{&openflow.ActSetVLANVID{VID: 7}, set("vlan_pcp", 3)}},
		{name: "output to a reserved-range number", inMatch: &udp, inActs: []openflow.Action{decTTL, &openflow.ActOutput{Port: 0xffffff14}}, want10: badOutPort, want13: badOutPort},
		{name: "output to LOCAL", inMatch: &udp, inActs: []openflow.Action{&openflow.ActOutput{Port: 0xfffffffe}}},
		{name: "output_reg errors after a decode error", inMatch: &udp, inActs: []openflow.Action{&openflow.ActOutputReg{Src: reg("tcp_src"), NBits: 16}, &openflow.ActOutput{Port: 0xffffff00}}, want10: badOutPort, want13: badOutPort},
		{name: "learn matching udp_src", inMatch: &udp, inActs: []openflow.Action{&openflow.ActLearn{TableID: 1, Specs: []openflow.LearnSpec{
			{NBits: 16, Src: reg("udp_src"), DstField: reg("udp_src"), Dst: openflow.LearnDstMatch}}}}, want10: inconsistent, want13: inconsistent},
		{name: "learn matching udp after its protocol", inMatch: &udp, inActs: []openflow.Action{&openflow.ActLearn{TableID: 1, Specs: []openflow.LearnSpec{
			{NBits: 16, SrcImmediate: true, Value: []byte{8, 0}, DstField: reg("eth_type"), Dst: openflow.LearnDstMatch},
			{NBits: 8, SrcImmediate: true, Value: []byte{0, 17}, DstField: reg("nw_proto"), Dst: openflow.LearnDstMatch},
			{NBits: 16, Src: reg("udp_src"), DstField: reg("udp_src"), Dst: openflow.LearnDstMatch}}}}},
	}
}

func TestCheckActions(t *testing.T) {
	const none = 0
	for _, tt := range checkActionCases() {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				v    uint8
				want uint16
			}{{openflow.Version10, tt.want10}, {openflow.Version13, tt.want13}} {
				err := CheckActions(c.v, tt.inMatch, tt.inActs)
				var oe *openflow.Error
				switch {
				case c.want == none && err != nil:
					t.Errorf("version 0x%02x: %v, want no error", c.v, err)
				case c.want != none && (!errors.As(err, &oe) || oe.Type != openflow.ErrTypeBadAction || oe.Code != c.want):
					t.Errorf("version 0x%02x: %v, want OFPET_BAD_ACTION code %d", c.v, err, c.want)
				}
			}
		})
	}
}

// TestFlowFromModChecksFirst converts flow mods with TestCheckActions's
// matches and actions: whatever else is wrong with a flow mod, the check
// of its actions against its match answers first, as Open vSwitch checks
// them before it takes the flow mod; without a check error, the flow mod
// converts as it does unchecked.
func TestFlowFromModChecksFirst(t *testing.T) {
	for _, tt := range checkActionCases() {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range []uint8{openflow.Version10, openflow.Version13} {
				fm := &openflow.FlowMod{Command: openflow.FlowAdd, Priority: 10, BufferID: openflow.NoBuffer,
					OutPort: openflow.PortAny, OutGroup: openflow.GroupAny}
				if v == openflow.Version10 {
					fm.Nicira, fm.Actions = true, tt.inActs
				} else {
					fm.Instructions = []openflow.Instruction{{Type: openflow.InstApplyActions, Actions: tt.inActs}}
				}
				fm.Match = FieldsFromMatch(tt.inMatch, v == openflow.Version10)
				want := checkModActions(v, fm, tt.inMatch)
				if want == nil {
					_, want = flowFromMod(nil, v, fm, false)
				}
				_, err := FlowFromMod(nil, v, fm)
				var oe, woe *openflow.Error
				switch {
				case (err == nil) != (want == nil):
					t.Errorf("version 0x%02x: %v, want %v", v, err, want)
				case err != nil && errors.As(want, &woe) && (!errors.As(err, &oe) || oe.Type != woe.Type || oe.Code != woe.Code):
					t.Errorf("version 0x%02x: %v, want %v (type %d code %d)", v, err, want, woe.Type, woe.Code)
				}
			}
		})
	}
}

// TestCheckInstructions checks that write_actions is checked for errors
// only, as what an action set meets cannot be known.
func TestCheckInstructions(t *testing.T) {
	var arp flow.Match
	arp.Key.DlType, arp.Mask.DlType = flow.EthTypeARP, 0xffff
	decTTL := &openflow.ActSimple{Type: openflow.ActTypeDecNWTTL}
	write := []openflow.Instruction{{Type: openflow.InstWriteActions, Actions: []openflow.Action{decTTL}}}
	if err := CheckInstructions(openflow.Version13, &arp, write); err != nil {
		t.Errorf("write_actions(dec_ttl) on arp: %v, want no error", err)
	}
	apply := []openflow.Instruction{{Type: openflow.InstApplyActions, Actions: []openflow.Action{decTTL}}}
	var oe *openflow.Error
	if err := CheckInstructions(openflow.Version13, &arp, apply); !errors.As(err, &oe) || oe.Code != codeMatchInconsistent {
		t.Errorf("apply_actions(dec_ttl) on arp: %v, want OFPBAC_MATCH_INCONSISTENT", err)
	}
}
