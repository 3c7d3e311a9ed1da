package ofconv

import (
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TLVMappings converts the mappings of a TLV table message.
func TLVMappings(ms []openflow.TLVMap) []flow.TLVMapping {
	out := make([]flow.TLVMapping, len(ms))
	for i, m := range ms {
		out[i] = flow.TLVMapping{Class: m.OptionClass, Type: m.OptionType, Len: m.OptionLen, Index: m.Index}
	}
	return out
}

// TLVTableReply describes the TLV map m as NXT_TLV_TABLE_REPLY does.
func TLVTableReply(m *flow.TLVMap) *openflow.TLVTableReply {
	r := &openflow.TLVTableReply{MaxOptionSpace: flow.TunMetaSpace, MaxFields: flow.NumTunMeta}
	for _, mp := range m.Mappings() {
		r.Mappings = append(r.Mappings, openflow.TLVMap{OptionClass: mp.Class, OptionType: mp.Type, OptionLen: mp.Len, Index: mp.Index})
	}
	return r
}

// TLVError turns an error of a TLV table change (flow.ErrTLV*) into the
// Nicira error Open vSwitch replies with; other errors are returned as
// they are.
func TLVError(err error) error {
	if code, ok := codeOf(err, tlvCodes); ok {
		return &openflow.Error{Type: openflow.ErrTypeExperimenter, Code: code, Sentinel: openflow.ErrBadMessage, Detail: err.Error()}
	}
	return err
}

// tlvCodes are the Nicira codes of flow's TLV table errors.
var tlvCodes = []errorCode{
	{flow.ErrTLVBadCommand, openflow.CodeTLVBadCommand},
	{flow.ErrTLVBadLen, openflow.CodeTLVBadOptLen},
	{flow.ErrTLVBadIndex, openflow.CodeTLVBadFieldIdx},
	{flow.ErrTLVTableFull, openflow.CodeTLVTableFull},
	{flow.ErrTLVAlreadyMapped, openflow.CodeTLVAlreadyMapped},
	{flow.ErrTLVDupEntry, openflow.CodeTLVDupEntry},
	{flow.ErrTLVInUse, openflow.CodeTLVInvalidDel},
	{flow.ErrTLVUnmapped, openflow.CodeInvalidTLVField},
}
