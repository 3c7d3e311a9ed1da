package ofconn

import (
	"encoding/binary"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// OpenFlow 1.0 has no OFPET_BAD_MATCH or OFPET_BAD_INSTRUCTION, and
// numbers OFPET_FLOW_MOD_FAILED and OFPET_PORT_MOD_FAILED 3 and 4. Open
// vSwitch sends the errors that 1.0 lacks as Nicira vendor errors
// (NXET_VENDOR / NXVC_VENDOR_ERROR, then the Nicira vendor id, type and
// code); errorMsg10 does the same, with Open vSwitch's numbers.
const (
	nxetVendor       uint16 = 0xb0c2
	nxvcVendorError  uint16 = 0
	type10FlowModErr uint16 = 3
	type10PortModErr uint16 = 4
	type10QueueOpErr uint16 = 5
)

// nx10 is a Nicira error of OpenFlow 1.0: type and code.
type nx10 struct{ typ, code uint16 }

// vendorError10 is Nicira error e as OpenFlow 1.0 sends it: a vendor
// error whose data are Nicira's id, e's type and code, then data.
func vendorError10(e nx10, data []byte) *openflow.ErrorMsg {
	d := binary.BigEndian.AppendUint32(nil, openflow.NiciraExperimenter)
	d = binary.BigEndian.AppendUint16(d, e.typ)
	d = binary.BigEndian.AppendUint16(d, e.code)
	return &openflow.ErrorMsg{Type: nxetVendor, Code: nxvcVendorError, Data: append(d, data...)}
}

// badMatch10 are the OFPET_BAD_MATCH codes as OpenFlow 1.0 Nicira errors;
// a code without one is NXBRC_NXM_INVALID.
var badMatch10 = map[uint16]nx10{
	5:  {1, 262}, // OFPBMC_BAD_WILDCARDS
	6:  {0, 263}, // OFPBMC_BAD_FIELD
	7:  {1, 258}, // OFPBMC_BAD_VALUE
	8:  {1, 259}, // OFPBMC_BAD_MASK
	9:  {1, 260}, // OFPBMC_BAD_PREREQ
	10: {1, 261}, // OFPBMC_DUP_FIELD
}

// errorMsg builds the error message of version v for an OpenFlow 1.1+
// error type and code (the codec's and this package's numbering).
func errorMsg(v uint8, typ, code uint16, data []byte) *openflow.ErrorMsg {
	em := &openflow.ErrorMsg{Type: typ, Code: code, Data: data}
	if typ == errTypeMonitorFailed && v < openflow.Version14 {
		return monitorError(v, code, data)
	}
	if (typ == openflow.ErrTypeBadProperty || typ == openflow.ErrTypeAsyncConfigFailed) && v < openflow.Version14 {
		return propertyError10(v, typ, code, data)
	}
	if typ == errTypeBundleFailed && v == openflow.Version13 {
		// ONF's bundle errors (bundle.go).
		return &openflow.ErrorMsg{Type: openflow.ErrTypeExperimenter, Code: onfBundleErrBase + code, Experimenter: onfExperimenter, Data: data}
	}
	if typ == openflow.ErrTypeExperimenter {
		// Nicira's own errors (the TLV table's): OFPET_EXPERIMENTER from
		// OpenFlow 1.2 on, a Nicira vendor error in OpenFlow 1.0.
		if c10, ok := openflow.CodeTLV10(code); ok && v == openflow.Version10 {
			return vendorError10(nx10{openflow.ErrTypeBadRequest, c10}, data)
		}
		em.Experimenter = openflow.NiciraExperimenter
		return em
	}
	if v != openflow.Version10 {
		return em
	}
	vendor := func(e nx10) *openflow.ErrorMsg { return vendorError10(e, data) }
	switch typ {
	case openflow.ErrTypeBadMatch:
		if e, ok := badMatch10[code]; ok {
			return vendor(e)
		}
		return vendor(nx10{1, 256}) // NXBRC_NXM_INVALID
	case openflow.ErrTypeBadInstruction:
		return vendor(nx10{2, 257}) // OFPBIC_UNSUP_INST
	case errTypeQueueOpFailed:
		em.Type = type10QueueOpErr
	case openflow.ErrTypeFlowModFailed:
		if code >= 256 { // OFPFMFC_BAD_FLAGS: NX1.0(3,258)
			return vendor(nx10{type10FlowModErr, code})
		}
		em.Type = type10FlowModErr
	case openflow.ErrTypePortModFailed:
		if code > 1 { // only BAD_PORT and BAD_HW_ADDR exist in 1.0
			em.Type, em.Code = openflow.ErrTypeBadRequest, codeBadRequestEPerm
		} else {
			em.Type = type10PortModErr
		}
	case openflow.ErrTypeBadRequest:
		switch code {
		case codeBadReqIsSlave:
			em.Code = codeBadRequestEPerm // OFPBRC_EPERM is 1.0's "is slave"
		case codeBadReqBadPort:
			return vendor(nx10{1, 514})
		}
	case openflow.ErrTypeGroupModFailed:
		// NXT_GROUP_MOD's errors: Open vSwitch sends them with their
		// 1.1+ type and code.
		return vendor(nx10{openflow.ErrTypeGroupModFailed, code})
	case openflow.ErrTypeBadAction:
		switch {
		case code == 9: // OFPBAC_BAD_OUT_GROUP, of an NXAST_GROUP
			return vendor(nx10{openflow.ErrTypeBadAction, code})
		case code == 10: // OFPBAC_MATCH_INCONSISTENT
			return vendor(nx10{1, 522})
		case code >= 13 && code <= 15: // OFPBAC_BAD_SET_TYPE, _LEN, _ARGUMENT (ct's exec, nat)
			return vendor(nx10{1, 510 + code})
		case code > 8:
			em.Code = openflow.CodeBadActionArgument
		}
	}
	return em
}

// monitorErrors10 are the OFPMOFC codes Open vSwitch has before OpenFlow
// 1.4, as Nicira errors: the 1.0 vendor code, the 1.2-1.3 experimenter
// type.
var monitorErrors10 = map[uint16]struct{ code10, exp uint16 }{
	codeUnknownMonitor:  {0x207, 8},
	codeMonitorBadFlags: {0x206, 7},
}

// monitorError is an OFPET_FLOW_MONITOR_FAILED error before OpenFlow 1.4,
// as Open vSwitch sends it; a code it has no such form for is
// OFPBRC_EPERM.
func monitorError(v uint8, code uint16, data []byte) *openflow.ErrorMsg {
	e, ok := monitorErrors10[code]
	switch {
	case !ok:
		return errorMsg(v, openflow.ErrTypeBadRequest, codeBadRequestEPerm, data)
	case v == openflow.Version10:
		return vendorError10(nx10{1, e.code10}, data)
	}
	return &openflow.ErrorMsg{Type: openflow.ErrTypeExperimenter, Code: e.exp, Experimenter: openflow.NiciraExperimenter, Data: data}
}

// propertyError10 is an OFPET_BAD_PROPERTY or OFPET_ASYNC_CONFIG_FAILED
// error (OpenFlow 1.4's) before OpenFlow 1.4, as Open vSwitch sends it:
// a bad property as OpenFlow 1.3's OFPET_TABLE_FEATURES_FAILED (type 13,
// the code 2 on), a Nicira error of that type and code in 1.0; an async
// config failure as ONF's experimenter error 2370 on in 1.3, and in 1.0,
// which cannot say it, as Nicira's NXBRC_UNENCODABLE_ERROR.
func propertyError10(v uint8, typ, code uint16, data []byte) *openflow.ErrorMsg {
	switch {
	case typ == openflow.ErrTypeBadProperty && v == openflow.Version10:
		return vendorError10(nx10{typeTableFeaturesFailed, code + 2}, data)
	case typ == openflow.ErrTypeBadProperty:
		return &openflow.ErrorMsg{Type: typeTableFeaturesFailed, Code: code + 2, Data: data}
	case v == openflow.Version13:
		return &openflow.ErrorMsg{Type: openflow.ErrTypeExperimenter, Code: onfAsyncErrBase + code, Experimenter: onfExperimenter, Data: data}
	}
	return vendorError10(nx10{openflow.ErrTypeBadRequest, nxbrcUnencodableError}, data)
}

const (
	typeTableFeaturesFailed uint16 = 13   // OpenFlow 1.3's OFPET_TABLE_FEATURES_FAILED
	onfAsyncErrBase         uint16 = 2370 // ONF's OFPACFC_INVALID in OpenFlow 1.3
	nxbrcUnencodableError   uint16 = 521  // NXBRC_UNENCODABLE_ERROR
)
