package ofconn

import (
	"encoding/binary"
	"fmt"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Table feature property types (OFPTFPT_*).
const (
	tfpInstructions  = 0
	tfpNextTables    = 2
	tfpWriteActions  = 4
	tfpApplyActions  = 6
	tfpMatch         = 8
	tfpWildcards     = 10
	tfpWriteSetField = 12
	tfpApplySetField = 14
)

// matchFields are the OXM fields the tables match on and set_field sets.
var matchFields = []string{"in_port", "metadata", "eth_dst", "eth_src", "eth_type", "vlan_vid", "vlan_pcp",
	"ip_dscp", "nw_ecn", "nw_proto", "ip_src", "ip_dst", "tcp_src", "tcp_dst", "udp_src", "udp_dst",
	"sctp_src", "sctp_dst", "icmp_type", "icmp_code", "arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha",
	"ipv6_src", "ipv6_dst", "ipv6_label", "icmpv6_type", "icmpv6_code", "nd_target", "nd_sll", "nd_tll",
	"tcp_flags", "nw_ttl", "ip_frag", "pkt_mark",
	"reg0", "reg1", "reg2", "reg3", "reg4", "reg5", "reg6", "reg7",
	"reg8", "reg9", "reg10", "reg11", "reg12", "reg13", "reg14", "reg15"}

// tableFeatures describes the tables as a table features reply: what
// every table matches on and which instructions and actions it takes.
func tableFeatures() []openflow.TableFeatures {
	var oxm []byte
	for _, name := range matchFields {
		h, ok := openflow.FieldByName(name, false)
		if !ok {
			continue
		}
		w := uint32(h.Class)<<16 | uint32(h.Field&0x7f)<<9 | uint32(h.Len)
		oxm = binary.BigEndian.AppendUint32(oxm, w)
		if h.Class == openflow.ClassExperimenter {
			oxm = binary.BigEndian.AppendUint32(oxm, h.Experimenter)
		}
	}
	headers := func(types ...uint16) []byte {
		var b []byte
		for _, t := range types {
			b = binary.BigEndian.AppendUint16(b, t)
			b = binary.BigEndian.AppendUint16(b, 4)
		}
		return b
	}
	insts := headers(openflow.InstGotoTable, openflow.InstWriteMetadata, openflow.InstWriteActions, openflow.InstApplyActions, openflow.InstClearActions, openflow.InstMeter)
	acts := headers(openflow.ActTypeOutput, openflow.ActTypePushVLAN, openflow.ActTypePopVLAN, openflow.ActTypeDecNWTTL, openflow.ActTypeSetField)
	// What an action set may hold (flow.InActionSet).
	setActs := headers(openflow.ActTypeOutput, openflow.ActTypeGroup, openflow.ActTypePushVLAN, openflow.ActTypePopVLAN, openflow.ActTypeDecNWTTL, openflow.ActTypeSetField)
	ts := make([]openflow.TableFeatures, nTables)
	for i := range ts {
		var next []byte
		for t := i + 1; t < nTables; t++ {
			next = append(next, byte(t))
		}
		ti := insts
		if i == nTables-1 {
			ti = headers(openflow.InstWriteMetadata, openflow.InstWriteActions, openflow.InstApplyActions, openflow.InstClearActions, openflow.InstMeter)
		}
		ts[i] = openflow.TableFeatures{TableID: uint8(i), Name: fmt.Sprintf("table%d", i),
			MetadataMatch: ^uint64(0), MetadataWrite: ^uint64(0), MaxEntries: 1000000,
			Props: []openflow.Property{
				{Type: tfpInstructions, Data: ti},
				{Type: tfpNextTables, Data: next},
				{Type: tfpWriteActions, Data: setActs},
				{Type: tfpApplyActions, Data: acts},
				{Type: tfpMatch, Data: oxm},
				{Type: tfpWildcards, Data: oxm},
				{Type: tfpWriteSetField, Data: oxm},
				{Type: tfpApplySetField, Data: oxm},
			}}
	}
	return ts
}
