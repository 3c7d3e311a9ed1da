package openflow

import (
	"fmt"
	"strings"
)

// The Nicira TLV table messages: the mapping of Geneve options to the
// tunnel metadata fields NXM_NX_TUN_METADATA0-63 (struct nx_tlv_table_mod,
// nx_tlv_table_reply and nx_tlv_map of Open vSwitch's nicira-ext.h).
const (
	nxtTLVTableMod     = 24
	nxtTLVTableRequest = 25
	nxtTLVTableReply   = 26

	tlvMapLen = 8 // struct nx_tlv_map
)

// TLV table mod commands (NXTTMC_*).
const (
	TLVTableAdd    uint16 = 0
	TLVTableDelete uint16 = 1
	TLVTableClear  uint16 = 2
)

// Nicira errors of the TLV table messages: the OFPET_EXPERIMENTER codes
// (OpenFlow 1.2 and later; Open vSwitch sends OpenFlow 1.0 and 1.1 peers
// OFPET_BAD_REQUEST with the code CodeTLV10 gives).
const (
	CodeTLVBadCommand    uint16 = 16 // NXTTMFC_BAD_COMMAND
	CodeTLVBadOptLen     uint16 = 17 // NXTTMFC_BAD_OPT_LEN
	CodeTLVBadFieldIdx   uint16 = 18 // NXTTMFC_BAD_FIELD_IDX
	CodeTLVTableFull     uint16 = 19 // NXTTMFC_TABLE_FULL
	CodeTLVAlreadyMapped uint16 = 20 // NXTTMFC_ALREADY_MAPPED
	CodeTLVDupEntry      uint16 = 21 // NXTTMFC_DUP_ENTRY
	CodeInvalidTLVField  uint16 = 37 // NXFMFC_INVALID_TLV_FIELD: a flow names an unmapped tun_metadata
	CodeTLVInvalidDel    uint16 = 38 // NXTTMFC_INVALID_TLV_DEL: the mapping is in use
	tlvMaxOptLen                = 124
	tlvNumFields                = 64
)

// CodeTLV10 returns the OFPET_BAD_REQUEST code that OpenFlow 1.0 and 1.1
// give a Nicira experimenter code of the TLV table or of NXT_RESUME
// (NX1.0-1.1 numbering), and false for another code.
func CodeTLV10(code uint16) (uint16, bool) {
	switch {
	case code >= CodeTLVBadCommand && code <= CodeTLVDupEntry:
		return 527 + code - CodeTLVBadCommand, true
	case code == CodeInvalidTLVField:
		return 536, true
	case code == CodeTLVInvalidDel:
		return 537, true
	case code == 34 || code == 35: // NXR_NOT_SUPPORTED, NXR_STALE (NXT_RESUME's)
		return 533 + code - 34, true
	}
	return 0, false
}

// TLVMap is one mapping (struct nx_tlv_map): the Geneve option
// (OptionClass, OptionType) of OptionLen bytes is NXM_NX_TUN_METADATA<Index>.
type TLVMap struct {
	OptionClass uint16
	OptionType  uint8
	OptionLen   uint8
	Index       uint16
}

// TLVTableMod is NXT_TLV_TABLE_MOD: add, delete or clear mappings,
// atomically.
type TLVTableMod struct {
	Command  uint16
	Mappings []TLVMap
}

// TLVTableRequest is NXT_TLV_TABLE_REQUEST.
type TLVTableRequest struct{}

// TLVTableReply is NXT_TLV_TABLE_REPLY: the switch's limits and mappings.
type TLVTableReply struct {
	MaxOptionSpace uint32
	MaxFields      uint16
	Mappings       []TLVMap
}

func tlvErr(code uint16, format string, args ...any) *Error {
	return newErr(ErrBadMessage, ErrTypeExperimenter, code, format, args...)
}

// decodeTLVMaps reads mappings until r is empty, checking them as Open
// vSwitch's decoder does: a length that is a multiple of 4 up to 124, an
// index below maxFields.
func decodeTLVMaps(r *rd, maxFields uint16) ([]TLVMap, error) {
	if r.len()%tlvMapLen != 0 {
		return nil, badLen("tlv table mappings")
	}
	var out []TLVMap
	for r.len() > 0 && r.err == nil {
		m := TLVMap{OptionClass: r.u16("tlv map"), OptionType: r.u8("tlv map"), OptionLen: r.u8("tlv map"), Index: r.u16("tlv map")}
		r.skip(2, "tlv map")
		if m.OptionLen%4 != 0 || m.OptionLen > tlvMaxOptLen {
			return nil, tlvErr(CodeTLVBadOptLen, "tlv table option length (%d) is not a valid option size", m.OptionLen)
		}
		if m.Index >= maxFields {
			return nil, tlvErr(CodeTLVBadFieldIdx, "tlv table field index (%d) is too large (max %d)", m.Index, int(maxFields)-1)
		}
		out = append(out, m)
	}
	return out, r.err
}

func appendTLVMaps(w *wr, ms []TLVMap) {
	for _, m := range ms {
		w.u16(m.OptionClass)
		w.u8(m.OptionType)
		w.u8(m.OptionLen)
		w.u16(m.Index)
		w.zeros(2)
	}
}

func decodeTLVTableMod(r *rd) (Message, error) {
	m := &TLVTableMod{Command: r.u16("tlv table mod")}
	r.skip(6, "tlv table mod")
	if r.err != nil {
		return nil, r.err
	}
	if m.Command > TLVTableClear {
		return nil, tlvErr(CodeTLVBadCommand, "tlv table mod command (%d) is out of range", m.Command)
	}
	var err error
	m.Mappings, err = decodeTLVMaps(r, tlvNumFields)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func decodeTLVTableReply(r *rd) (Message, error) {
	m := &TLVTableReply{MaxOptionSpace: r.u32("tlv table reply"), MaxFields: r.u16("tlv table reply")}
	r.skip(10, "tlv table reply")
	if r.err != nil {
		return nil, r.err
	}
	var err error
	m.Mappings, err = decodeTLVMaps(r, m.MaxFields)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (m *TLVTableMod) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *TLVTableMod) appendBody(_ uint8, w *wr) error {
	if m.Command > TLVTableClear {
		return fmt.Errorf("%w: tlv table mod command %d", ErrUnencodable, m.Command)
	}
	nxHeader(w, nxtTLVTableMod)
	w.u16(m.Command)
	w.zeros(6)
	appendTLVMaps(w, m.Mappings)
	return nil
}

func (m *TLVTableRequest) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *TLVTableRequest) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtTLVTableRequest)
	return nil
}

func (m *TLVTableReply) msgType(v uint8) (uint8, error) { return typeOf(kExperimenter, v) }
func (m *TLVTableReply) appendBody(_ uint8, w *wr) error {
	nxHeader(w, nxtTLVTableReply)
	w.u32(m.MaxOptionSpace)
	w.u16(m.MaxFields)
	w.zeros(10)
	appendTLVMaps(w, m.Mappings)
	return nil
}

// tunMetadataFields are NXM_NX_TUN_METADATA0-63 (class NXM1, fields 40 to
// 103): variable-length fields, of the length the switch's TLV map gives
// them (size 0 here; a value has 1 to 124 bytes).
var tunMetadataFields = func() []fieldInfo {
	fs := make([]fieldInfo, tlvNumFields)
	for i := range fs {
		fs[i] = fieldInfo{name: fmt.Sprintf("tun_metadata%d", i), class: ClassNXM1, field: uint8(40 + i), wire: fmt.Sprintf("NXM_NX_TUN_METADATA%d", i)}
	}
	return fs
}()

// tunMetadataField returns the field named tun_metadataN, or nil.
func tunMetadataField(name string) *fieldInfo {
	if !strings.HasPrefix(name, "tun_metadata") {
		// Every field name is looked up here: most are not these.
		return nil
	}
	var n int
	if _, err := fmt.Sscanf(name, "tun_metadata%d", &n); err != nil || n < 0 || n >= tlvNumFields || fmt.Sprintf("tun_metadata%d", n) != name {
		return nil
	}
	return &tunMetadataFields[n]
}
