package test

import (
	"testing"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// matchFlowMod is an OpenFlow 1.3 flow mod case whose match is fs, in
// that order, with instrs.
func matchFlowMod(name string, fs []openflow.Field, instrs ...openflow.Instruction) errorCase {
	return errorCase{name, openflow.Version13, func(t *testing.T) []openflow.Message {
		return []openflow.Message{&openflow.FlowMod{Command: openflow.FlowAdd, Priority: 7, BufferID: openflow.NoBuffer,
			OutPort: openflow.PortAny, OutGroup: 0xffffffff, Match: fs, Instructions: instrs}}
	}}
}

func oxmFields(nv ...any) []openflow.Field {
	var fs []openflow.Field
	for i := 0; i < len(nv); i += 2 {
		fs = append(fs, pinField(nv[i].(string), nv[i+1].([]byte)))
	}
	return fs
}

// TestMatchFieldOrderMatchesOVS sends both switches OXM matches whose
// fields come in orders ovs-ofctl never writes, and fields of the wrong
// length, and compares the errors they answer with (none for a match
// both take). Open vSwitch decodes a match field by field and refuses a
// field that comes before the fields it requires (OFPBMC_BAD_PREREQ),
// except that a connection's tuple needs only ct_state before it; OXM's
// vlan_pcp requires a vlan_vid with OFPVID_PRESENT. It knows a field by
// its header, length included, so one of the wrong length is one it
// does not know (OFPBMC_BAD_FIELD; OFPBAC_BAD_SET_LEN in a set_field).
func TestMatchFieldOrderMatchesOVS(t *testing.T) {
	ip, tcp := []byte{8, 0}, []byte{6}
	trkNew := []byte{0, 0, 0, 0x21}
	cases := []errorCase{
		matchFlowMod("proto-before-type", oxmFields("nw_proto", tcp, "eth_type", ip)),
		matchFlowMod("type-before-proto", oxmFields("eth_type", ip, "nw_proto", tcp)),
		matchFlowMod("ip-src-before-type", oxmFields("ip_src", []byte{1, 2, 3, 4}, "eth_type", ip)),
		matchFlowMod("tcp-dst-before-proto", oxmFields("eth_type", ip, "tcp_dst", []byte{0, 80}, "nw_proto", tcp)),
		matchFlowMod("nd-target-before-type", oxmFields("eth_type", []byte{0x86, 0xdd}, "nw_proto", []byte{58},
			"nd_target", make([]byte, 16), "icmpv6_type", []byte{135}, "icmpv6_code", []byte{0})),
		matchFlowMod("vid-without-present-pcp", oxmFields("vlan_vid", []byte{0, 1}, "vlan_pcp", []byte{0})),
		matchFlowMod("pcp-before-vid", oxmFields("vlan_pcp", []byte{2}, "vlan_vid", []byte{0x10, 1})),
		matchFlowMod("vid-pcp", oxmFields("vlan_vid", []byte{0x10, 1}, "vlan_pcp", []byte{2})),
		matchFlowMod("ct-src-before-state", oxmFields("eth_type", ip, "ct_nw_src", []byte{1, 2, 3, 4}, "ct_state", trkNew)),
		matchFlowMod("ct-state-src-type", oxmFields("ct_state", trkNew, "ct_nw_src", []byte{1, 2, 3, 4}, "eth_type", ip)),
		matchFlowMod("ct-state-tp-proto-type", oxmFields("ct_state", trkNew, "ct_tp_src", []byte{0, 80}, "ct_nw_proto", tcp, "eth_type", ip)),
		matchFlowMod("ct-proto-before-state", oxmFields("ct_nw_proto", tcp, "ct_state", trkNew, "eth_type", ip)),
		matchFlowMod("nxm-in-port-short", []openflow.Field{{Name: "in_port", Class: 0, Field: 0, Value: []byte{6}}}),
		matchFlowMod("oxm-in-port-short", []openflow.Field{{Name: "in_port", Class: 0x8000, Field: 0, Value: []byte{0, 6}}}),
		matchFlowMod("eth-type-short", []openflow.Field{{Name: "eth_type", Class: 0x8000, Field: 5, Value: []byte{8}}}),
		matchFlowMod("eth-type-long", []openflow.Field{{Name: "eth_type", Class: 0x8000, Field: 5, Value: []byte{8, 0, 0}}}),
		matchFlowMod("set-field-short", nil, openflow.Instruction{Type: openflow.InstApplyActions, Actions: []openflow.Action{
			&openflow.ActSetField{Field: openflow.Field{Name: "eth_src", Class: 0x8000, Field: 4, Value: []byte{1, 2, 3}}}}}),
	}
	refused := refusals(compareCases(t, cases, nil))
	// The cases tell something only while Open vSwitch refuses most and
	// takes some.
	if refused < 10 || refused == len(cases) {
		t.Errorf("Open vSwitch refused %d of %d cases; want at least 10 and not all", refused, len(cases))
	}
}
