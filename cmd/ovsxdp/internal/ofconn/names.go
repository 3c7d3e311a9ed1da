package ofconn

import (
	"encoding/binary"
	"fmt"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Names of OpenFlow messages and errors as Open vSwitch spells them, for
// the rejection counts (rejections.go).

var msgNames10 = [...]string{"OFPT_HELLO", "OFPT_ERROR", "OFPT_ECHO_REQUEST", "OFPT_ECHO_REPLY", "OFPT_VENDOR",
	"OFPT_FEATURES_REQUEST", "OFPT_FEATURES_REPLY", "OFPT_GET_CONFIG_REQUEST", "OFPT_GET_CONFIG_REPLY",
	"OFPT_SET_CONFIG", "OFPT_PACKET_IN", "OFPT_FLOW_REMOVED", "OFPT_PORT_STATUS", "OFPT_PACKET_OUT",
	"OFPT_FLOW_MOD", "OFPT_PORT_MOD", "OFPT_STATS_REQUEST", "OFPT_STATS_REPLY", "OFPT_BARRIER_REQUEST",
	"OFPT_BARRIER_REPLY", "OFPT_QUEUE_GET_CONFIG_REQUEST", "OFPT_QUEUE_GET_CONFIG_REPLY"}

var msgNames = [...]string{"OFPT_HELLO", "OFPT_ERROR", "OFPT_ECHO_REQUEST", "OFPT_ECHO_REPLY", "OFPT_EXPERIMENTER",
	"OFPT_FEATURES_REQUEST", "OFPT_FEATURES_REPLY", "OFPT_GET_CONFIG_REQUEST", "OFPT_GET_CONFIG_REPLY",
	"OFPT_SET_CONFIG", "OFPT_PACKET_IN", "OFPT_FLOW_REMOVED", "OFPT_PORT_STATUS", "OFPT_PACKET_OUT",
	"OFPT_FLOW_MOD", "OFPT_GROUP_MOD", "OFPT_PORT_MOD", "OFPT_TABLE_MOD", "OFPT_MULTIPART_REQUEST",
	"OFPT_MULTIPART_REPLY", "OFPT_BARRIER_REQUEST", "OFPT_BARRIER_REPLY", "OFPT_QUEUE_GET_CONFIG_REQUEST",
	"OFPT_QUEUE_GET_CONFIG_REPLY", "OFPT_ROLE_REQUEST", "OFPT_ROLE_REPLY", "OFPT_GET_ASYNC_REQUEST",
	"OFPT_GET_ASYNC_REPLY", "OFPT_SET_ASYNC", "OFPT_METER_MOD", "OFPT_ROLE_STATUS", "OFPT_TABLE_STATUS",
	"OFPT_REQUESTFORWARD", "OFPT_BUNDLE_CONTROL", "OFPT_BUNDLE_ADD_MESSAGE", "OFPT_CONTROLLER_STATUS"}

// nxtNames are the Nicira message subtypes.
var nxtNames = map[uint32]string{
	10: "NXT_ROLE_REQUEST", 11: "NXT_ROLE_REPLY", 12: "NXT_SET_FLOW_FORMAT", 13: "NXT_FLOW_MOD",
	14: "NXT_FLOW_REMOVED", 15: "NXT_FLOW_MOD_TABLE_ID", 16: "NXT_SET_PACKET_IN_FORMAT", 17: "NXT_PACKET_IN",
	18: "NXT_FLOW_AGE", 19: "NXT_SET_ASYNC_CONFIG", 20: "NXT_SET_CONTROLLER_ID", 21: "NXT_FLOW_MONITOR_CANCEL",
	22: "NXT_FLOW_MONITOR_PAUSED", 23: "NXT_FLOW_MONITOR_RESUMED", 24: "NXT_TLV_TABLE_MOD",
	25: "NXT_TLV_TABLE_REQUEST", 26: "NXT_TLV_TABLE_REPLY", 27: "NXT_SET_ASYNC_CONFIG2", 28: "NXT_RESUME",
	29: "NXT_CT_FLUSH_ZONE", 30: "NXT_PACKET_IN2",
}

// mpNames are the multipart types of OpenFlow 1.3 and later.
var mpNames = [...]string{"OFPMP_DESC", "OFPMP_FLOW", "OFPMP_AGGREGATE", "OFPMP_TABLE", "OFPMP_PORT_STATS",
	"OFPMP_QUEUE", "OFPMP_GROUP", "OFPMP_GROUP_DESC", "OFPMP_GROUP_FEATURES", "OFPMP_METER",
	"OFPMP_METER_CONFIG", "OFPMP_METER_FEATURES", "OFPMP_TABLE_FEATURES", "OFPMP_PORT_DESC",
	"OFPMP_TABLE_DESC", "OFPMP_QUEUE_DESC", "OFPMP_FLOW_MONITOR", "OFPMP_FLOW_STATS",
	"OFPMP_CONTROLLER_STATUS", "OFPMP_BUNDLE_FEATURES"}

var stNames10 = [...]string{"OFPST_DESC", "OFPST_FLOW", "OFPST_AGGREGATE", "OFPST_TABLE", "OFPST_PORT", "OFPST_QUEUE"}

// nxstNames are the Nicira statistics subtypes.
var nxstNames = map[uint32]string{0: "NXST_FLOW", 1: "NXST_AGGREGATE", 2: "NXST_FLOW_MONITOR",
	3: "NXST_IPFIX_BRIDGE", 4: "NXST_IPFIX_FLOW"}

// onfExperimenter is the Open Networking Foundation's experimenter id.
const onfExperimenter uint32 = 0x4f4e4600

// MessageName names the OpenFlow message b as Open vSwitch does:
// "OFPT_FLOW_MOD", "NXT_TLV_TABLE_REQUEST", "OFPMP_METER_FEATURES" (a
// multipart request; a reply is "... reply"). A message too short to tell
// is named by what its header says.
func MessageName(b []byte) string {
	if len(b) < openflow.HeaderLen {
		return "(truncated header)"
	}
	v, t := b[0], int(b[1])
	u16 := func(off int) (uint16, bool) {
		if len(b) < off+2 {
			return 0, false
		}
		return binary.BigEndian.Uint16(b[off:]), true
	}
	u32 := func(off int) (uint32, bool) {
		if len(b) < off+4 {
			return 0, false
		}
		return binary.BigEndian.Uint32(b[off:]), true
	}
	names := msgNames[:]
	mpReq, mpRep := 18, 19
	if v == openflow.Version10 {
		names = msgNames10[:]
		mpReq, mpRep = 16, 17
	}
	// Every message read is named (rejections.go): a known type's name
	// is not formatted.
	var name string
	if t < len(names) {
		name = names[t]
	} else {
		name = fmt.Sprintf("OFPT_%d", t)
	}
	switch {
	case t == 4: // experimenter (vendor) message
		exp, ok := u32(8)
		st, ok2 := u32(12)
		if !ok || !ok2 {
			return name
		}
		switch exp {
		case openflow.NiciraExperimenter:
			if n, ok := nxtNames[st]; ok {
				return n
			}
			return fmt.Sprintf("NXT_%d", st)
		case onfExperimenter:
			switch st {
			case onfBundleControl:
				return "ONFT_BUNDLE_CONTROL"
			case onfBundleAdd:
				return "ONFT_BUNDLE_ADD_MESSAGE"
			}
			return fmt.Sprintf("ONFT_%d", st)
		}
		return fmt.Sprintf("%s 0x%08x:%d", name, exp, st)
	case t == mpReq || t == mpRep:
		suffix := ""
		if t == mpRep {
			suffix = " reply"
		}
		mt, ok := u16(8)
		if !ok {
			return name
		}
		if mt == openflow.MPExperimenter {
			off := 16 // 1.3+: type, flags, pad, experimenter, exp_type
			if v == openflow.Version10 {
				off = 12 // 1.0: type, flags, vendor, subtype
			}
			exp, ok := u32(off)
			st, ok2 := u32(off + 4)
			if !ok || !ok2 {
				return name + suffix
			}
			if exp == openflow.NiciraExperimenter {
				if n, ok := nxstNames[st]; ok {
					return n + suffix
				}
				return fmt.Sprintf("NXST_%d%s", st, suffix)
			}
			if exp == onfExperimenter {
				return fmt.Sprintf("ONFST_%d%s", st, suffix)
			}
			return fmt.Sprintf("%s 0x%08x:%d%s", name, exp, st, suffix)
		}
		if v == openflow.Version10 {
			if int(mt) < len(stNames10) {
				return stNames10[mt] + suffix
			}
			return fmt.Sprintf("OFPST_%d%s", mt, suffix)
		}
		if int(mt) < len(mpNames) {
			return mpNames[mt] + suffix
		}
		return fmt.Sprintf("OFPMP_%d%s", mt, suffix)
	}
	return name
}

var errTypeNames = map[uint16]string{
	0: "OFPET_HELLO_FAILED", 1: "OFPET_BAD_REQUEST", 2: "OFPET_BAD_ACTION", 3: "OFPET_BAD_INSTRUCTION",
	4: "OFPET_BAD_MATCH", 5: "OFPET_FLOW_MOD_FAILED", 6: "OFPET_GROUP_MOD_FAILED", 7: "OFPET_PORT_MOD_FAILED",
	8: "OFPET_TABLE_MOD_FAILED", 9: "OFPET_QUEUE_OP_FAILED", 10: "OFPET_SWITCH_CONFIG_FAILED",
	11: "OFPET_ROLE_REQUEST_FAILED", 12: "OFPET_METER_MOD_FAILED", 13: "OFPET_TABLE_FEATURES_FAILED",
	14: "OFPET_BAD_PROPERTY", 15: "OFPET_ASYNC_CONFIG_FAILED", 16: "OFPET_FLOW_MONITOR_FAILED",
	17: "OFPET_BUNDLE_FAILED", 0xffff: "OFPET_EXPERIMENTER",
}

var errCodeNames = map[uint16][]string{
	0: {"OFPHFC_INCOMPATIBLE", "OFPHFC_EPERM"},
	1: {"OFPBRC_BAD_VERSION", "OFPBRC_BAD_TYPE", "OFPBRC_BAD_MULTIPART", "OFPBRC_BAD_EXPERIMENTER",
		"OFPBRC_BAD_EXP_TYPE", "OFPBRC_EPERM", "OFPBRC_BAD_LEN", "OFPBRC_BUFFER_EMPTY", "OFPBRC_BUFFER_UNKNOWN",
		"OFPBRC_BAD_TABLE_ID", "OFPBRC_IS_SLAVE", "OFPBRC_BAD_PORT", "OFPBRC_BAD_PACKET",
		"OFPBRC_MULTIPART_BUFFER_OVERFLOW"},
	2: {"OFPBAC_BAD_TYPE", "OFPBAC_BAD_LEN", "OFPBAC_BAD_EXPERIMENTER", "OFPBAC_BAD_EXP_TYPE",
		"OFPBAC_BAD_OUT_PORT", "OFPBAC_BAD_ARGUMENT", "OFPBAC_EPERM", "OFPBAC_TOO_MANY", "OFPBAC_BAD_QUEUE",
		"OFPBAC_BAD_OUT_GROUP", "OFPBAC_MATCH_INCONSISTENT", "OFPBAC_UNSUPPORTED_ORDER", "OFPBAC_BAD_TAG",
		"OFPBAC_BAD_SET_TYPE", "OFPBAC_BAD_SET_LEN", "OFPBAC_BAD_SET_ARGUMENT"},
	3: {"OFPBIC_UNKNOWN_INST", "OFPBIC_UNSUP_INST", "OFPBIC_BAD_TABLE_ID", "OFPBIC_UNSUP_METADATA",
		"OFPBIC_UNSUP_METADATA_MASK", "OFPBIC_BAD_EXPERIMENTER", "OFPBIC_BAD_EXP_TYPE", "OFPBIC_BAD_LEN",
		"OFPBIC_EPERM"},
	4: {"OFPBMC_BAD_TYPE", "OFPBMC_BAD_LEN", "OFPBMC_BAD_TAG", "OFPBMC_BAD_DL_ADDR_MASK",
		"OFPBMC_BAD_NW_ADDR_MASK", "OFPBMC_BAD_WILDCARDS", "OFPBMC_BAD_FIELD", "OFPBMC_BAD_VALUE",
		"OFPBMC_BAD_MASK", "OFPBMC_BAD_PREREQ", "OFPBMC_DUP_FIELD", "OFPBMC_EPERM"},
	5: {"OFPFMFC_UNKNOWN", "OFPFMFC_TABLE_FULL", "OFPFMFC_BAD_TABLE_ID", "OFPFMFC_OVERLAP", "OFPFMFC_EPERM",
		"OFPFMFC_BAD_TIMEOUT", "OFPFMFC_BAD_COMMAND", "OFPFMFC_BAD_FLAGS"},
	6: {"OFPGMFC_GROUP_EXISTS", "OFPGMFC_INVALID_GROUP", "OFPGMFC_WEIGHT_UNSUPPORTED", "OFPGMFC_OUT_OF_GROUPS",
		"OFPGMFC_OUT_OF_BUCKETS", "OFPGMFC_CHAINING_UNSUPPORTED", "OFPGMFC_WATCH_UNSUPPORTED", "OFPGMFC_LOOP",
		"OFPGMFC_UNKNOWN_GROUP", "OFPGMFC_CHAINED_GROUP", "OFPGMFC_BAD_TYPE", "OFPGMFC_BAD_COMMAND",
		"OFPGMFC_BAD_BUCKET", "OFPGMFC_BAD_WATCH", "OFPGMFC_EPERM"},
	7: {"OFPPMFC_BAD_PORT", "OFPPMFC_BAD_HW_ADDR", "OFPPMFC_BAD_CONFIG", "OFPPMFC_BAD_ADVERTISE", "OFPPMFC_EPERM"},
	12: {"OFPMMFC_UNKNOWN", "OFPMMFC_METER_EXISTS", "OFPMMFC_INVALID_METER", "OFPMMFC_UNKNOWN_METER",
		"OFPMMFC_BAD_COMMAND", "OFPMMFC_BAD_FLAGS", "OFPMMFC_BAD_RATE", "OFPMMFC_BAD_BURST", "OFPMMFC_BAD_BAND",
		"OFPMMFC_BAD_BAND_VALUE", "OFPMMFC_OUT_OF_METERS", "OFPMMFC_OUT_OF_BANDS"},
	13: {"OFPTFFC_BAD_TABLE", "OFPTFFC_BAD_METADATA", "OFPTFFC_BAD_TYPE", "OFPTFFC_BAD_LEN", "OFPTFFC_BAD_ARGUMENT", "OFPTFFC_EPERM"},
	14: {"OFPBPC_BAD_TYPE", "OFPBPC_BAD_LEN", "OFPBPC_BAD_VALUE", "OFPBPC_TOO_MANY", "OFPBPC_DUP_TYPE",
		"OFPBPC_BAD_EXPERIMENTER", "OFPBPC_BAD_EXP_TYPE", "OFPBPC_BAD_EXP_VALUE", "OFPBPC_EPERM"},
	17: {"OFPBFC_UNKNOWN", "OFPBFC_EPERM", "OFPBFC_BAD_ID", "OFPBFC_BUNDLE_EXIST", "OFPBFC_BUNDLE_CLOSED",
		"OFPBFC_OUT_OF_BUNDLES", "OFPBFC_BAD_TYPE", "OFPBFC_BAD_FLAGS", "OFPBFC_MSG_BAD_LEN", "OFPBFC_MSG_BAD_XID",
		"OFPBFC_MSG_UNSUP", "OFPBFC_MSG_CONFLICT", "OFPBFC_MSG_TOO_MANY", "OFPBFC_MSG_FAILED", "OFPBFC_TIMEOUT",
		"OFPBFC_BUNDLE_IN_PROGRESS"},
	16: {"OFPMOFC_UNKNOWN", "OFPMOFC_MONITOR_EXISTS", "OFPMOFC_INVALID_MONITOR", "OFPMOFC_UNKNOWN_MONITOR",
		"OFPMOFC_BAD_COMMAND", "OFPMOFC_BAD_FLAGS", "OFPMOFC_BAD_TABLE_ID", "OFPMOFC_BAD_OUT"},
}

// nxErrorNames are the Nicira experimenter error codes ovsxdp sends.
var nxErrorNames = map[uint16]string{
	openflow.CodeTLVBadCommand: "NXTTMFC_BAD_COMMAND", openflow.CodeTLVBadOptLen: "NXTTMFC_BAD_OPT_LEN",
	openflow.CodeTLVBadFieldIdx: "NXTTMFC_BAD_FIELD_IDX", openflow.CodeTLVTableFull: "NXTTMFC_TABLE_FULL",
	openflow.CodeTLVAlreadyMapped: "NXTTMFC_ALREADY_MAPPED", openflow.CodeTLVDupEntry: "NXTTMFC_DUP_ENTRY",
	openflow.CodeInvalidTLVField: "NXFMFC_INVALID_TLV_FIELD", openflow.CodeTLVInvalidDel: "NXTTMFC_INVALID_TLV_DEL",
}

// ErrorName names an OpenFlow error type and code (OpenFlow 1.3 and
// later numbering, as the codec and this package use them):
// "OFPBAC_BAD_EXP_TYPE", or "OFPET_x code N" for a code without a name.
func ErrorName(typ, code uint16) string {
	if n, ok := nxErrorNames[code]; ok && typ == openflow.ErrTypeExperimenter {
		return n
	}
	if cs, ok := errCodeNames[typ]; ok && int(code) < len(cs) {
		return cs[code]
	}
	tn, ok := errTypeNames[typ]
	if !ok {
		tn = fmt.Sprintf("error type %d", typ)
	}
	return fmt.Sprintf("%s code %d", tn, code)
}
