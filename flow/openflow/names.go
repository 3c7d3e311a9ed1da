package openflow

import "fmt"

// Names of actions and instructions as Open vSwitch's sources and
// ovs-ofctl's error messages spell them, for errors that name what a
// switch refused (Error.Item).

// nxActionNames are the Nicira action subtypes (NXAST_*).
var nxActionNames = map[uint16]string{
	1: "NXAST_RESUBMIT", 2: "NXAST_SET_TUNNEL", 4: "NXAST_SET_QUEUE", 5: "NXAST_POP_QUEUE",
	6: "NXAST_REG_MOVE", 7: "NXAST_REG_LOAD", 8: "NXAST_NOTE", 9: "NXAST_SET_TUNNEL64",
	10: "NXAST_MULTIPATH", 12: "NXAST_BUNDLE", 13: "NXAST_BUNDLE_LOAD", 14: "NXAST_RESUBMIT_TABLE",
	15: "NXAST_OUTPUT_REG", 16: "NXAST_LEARN", 17: "NXAST_EXIT", 18: "NXAST_DEC_TTL",
	19: "NXAST_FIN_TIMEOUT", 20: "NXAST_CONTROLLER", 21: "NXAST_DEC_TTL_CNT_IDS", 22: "NXAST_WRITE_METADATA",
	23: "NXAST_PUSH_MPLS", 24: "NXAST_POP_MPLS", 25: "NXAST_SET_MPLS_TTL", 26: "NXAST_DEC_MPLS_TTL",
	27: "NXAST_STACK_PUSH", 28: "NXAST_STACK_POP", 29: "NXAST_SAMPLE", 30: "NXAST_SET_MPLS_LABEL",
	31: "NXAST_SET_MPLS_TC", 32: "NXAST_OUTPUT_REG2", 33: "NXAST_REG_LOAD2", 34: "NXAST_CONJUNCTION",
	35: "NXAST_CT", 36: "NXAST_NAT", 37: "NXAST_CONTROLLER2", 38: "NXAST_SAMPLE2",
	39: "NXAST_OUTPUT_TRUNC", 41: "NXAST_SAMPLE3", 42: "NXAST_CLONE", 43: "NXAST_CT_CLEAR",
	44: "NXAST_RESUBMIT_TABLE_CT", 45: "NXAST_LEARN2", 46: "NXAST_ENCAP", 47: "NXAST_DECAP",
	48: "NXAST_DEC_NSH_TTL", 49: "NXAST_CHECK_PKT_LARGER", 50: "NXAST_DELETE_FIELD",
	0xfe: "NXAST_DEBUG_SLOW", 0xff: "NXAST_DEBUG_RECIRC",
}

// NXActionName names the Nicira action subtype st ("NXAST_CT").
func NXActionName(st uint16) string {
	if n, ok := nxActionNames[st]; ok {
		return n
	}
	return fmt.Sprintf("NXAST_%d", st)
}

var actionNames10 = [...]string{"OFPAT_OUTPUT", "OFPAT_SET_VLAN_VID", "OFPAT_SET_VLAN_PCP", "OFPAT_STRIP_VLAN",
	"OFPAT_SET_DL_SRC", "OFPAT_SET_DL_DST", "OFPAT_SET_NW_SRC", "OFPAT_SET_NW_DST", "OFPAT_SET_NW_TOS",
	"OFPAT_SET_TP_SRC", "OFPAT_SET_TP_DST", "OFPAT_ENQUEUE"}

var actionNames = map[uint16]string{
	0: "OFPAT_OUTPUT", 11: "OFPAT_COPY_TTL_OUT", 12: "OFPAT_COPY_TTL_IN", 15: "OFPAT_SET_MPLS_TTL",
	16: "OFPAT_DEC_MPLS_TTL", 17: "OFPAT_PUSH_VLAN", 18: "OFPAT_POP_VLAN", 19: "OFPAT_PUSH_MPLS",
	20: "OFPAT_POP_MPLS", 21: "OFPAT_SET_QUEUE", 22: "OFPAT_GROUP", 23: "OFPAT_SET_NW_TTL",
	24: "OFPAT_DEC_NW_TTL", 25: "OFPAT_SET_FIELD", 26: "OFPAT_PUSH_PBB", 27: "OFPAT_POP_PBB",
	28: "OFPAT_COPY_FIELD", 29: "OFPAT_METER", 0xffff: "OFPAT_EXPERIMENTER",
}

// ActionTypeName names the standard action type t of version v
// ("OFPAT_SET_QUEUE").
func ActionTypeName(v uint8, t uint16) string {
	if v == Version10 && int(t) < len(actionNames10) {
		return actionNames10[t]
	}
	if n, ok := actionNames[t]; ok && v != Version10 {
		return n
	}
	return fmt.Sprintf("OFPAT_%d", t)
}

var instructionNames = map[uint16]string{
	1: "OFPIT_GOTO_TABLE", 2: "OFPIT_WRITE_METADATA", 3: "OFPIT_WRITE_ACTIONS", 4: "OFPIT_APPLY_ACTIONS",
	5: "OFPIT_CLEAR_ACTIONS", 6: "OFPIT_METER", 7: "OFPIT_STAT_TRIGGER", 0xffff: "OFPIT_EXPERIMENTER",
}

// InstructionName names the instruction type t ("OFPIT_METER").
func InstructionName(t uint16) string {
	if n, ok := instructionNames[t]; ok {
		return n
	}
	return fmt.Sprintf("OFPIT_%d", t)
}
