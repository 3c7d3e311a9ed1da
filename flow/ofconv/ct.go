package ofconv

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// This file converts connection tracking between the wire and the flow
// language: the NXM_NX_CT_* match fields, and the actions ct (with its nat
// and exec(...) arguments) and ct_clear. Decoding writes them as ovs-ofctl
// text, as every other field and action, and the flow parser checks them
// (flow/parse_ct.go): this file refuses only what the text cannot say
// (unknown flags and fields, a nat address without src or dst), and
// ctActionError gives the parser's refusals the OpenFlow errors Open
// vSwitch replies with.

// ctFields are the connection tracking match fields, by wire name.
var ctFields = map[string]flow.FieldID{
	"ct_state": flow.FieldCtState, "ct_zone": flow.FieldCtZone, "ct_mark": flow.FieldCtMark,
	"ct_label": flow.FieldCtLabel, "ct_nw_src": flow.FieldCtNwSrc, "ct_nw_dst": flow.FieldCtNwDst,
	"ct_ipv6_src": flow.FieldCtIPv6Src, "ct_ipv6_dst": flow.FieldCtIPv6Dst,
	"ct_nw_proto": flow.FieldCtNwProto, "ct_tp_src": flow.FieldCtTpSrc, "ct_tp_dst": flow.FieldCtTpDst,
}

// ctFieldsFromMatch returns m's connection tracking fields as wire fields,
// in Open vSwitch's order. As Open vSwitch, the transport ports of the
// tuple are written only with a ct_nw_proto.
func ctFieldsFromMatch(m *flow.Match, add func(name string, v, mask []byte)) {
	k, w := &m.Key, &m.Mask
	if w.CtState != 0 {
		add("ct_state", b32(uint32(k.CtState)), b32(uint32(w.CtState)))
	}
	if w.CtZone != 0 {
		add("ct_zone", b16(k.CtZone), nil)
	}
	if w.CtMark != 0 {
		add("ct_mark", b32(k.CtMark), b32(w.CtMark))
	}
	if w.CtLabel != ([16]byte{}) {
		add("ct_label", b16s(k.CtLabel), b16s(w.CtLabel))
	}
	if w.CtNwSrc != 0 {
		add("ct_nw_src", b32(k.CtNwSrc), b32(w.CtNwSrc))
	}
	if w.CtIPv6Src != ([16]byte{}) {
		add("ct_ipv6_src", b16s(k.CtIPv6Src), b16s(w.CtIPv6Src))
	}
	if w.CtNwDst != 0 {
		add("ct_nw_dst", b32(k.CtNwDst), b32(w.CtNwDst))
	}
	if w.CtIPv6Dst != ([16]byte{}) {
		add("ct_ipv6_dst", b16s(k.CtIPv6Dst), b16s(w.CtIPv6Dst))
	}
	if k.CtNwProto != 0 {
		add("ct_nw_proto", b8(k.CtNwProto), nil)
		if w.CtTpSrc != 0 {
			add("ct_tp_src", b16(k.CtTpSrc), b16(w.CtTpSrc))
		}
		if w.CtTpDst != 0 {
			add("ct_tp_dst", b16(k.CtTpDst), b16(w.CtTpDst))
		}
	}
}

// ctText writes a ct action as ovs-ofctl text: ct(commit,force,zone=Z,
// table=T,alg=A,nat(...),exec(...)). A nat goes first wherever the wire
// puts it, as ovs-ofctl prints it; the other nested actions go in exec.
func ctText(a *openflow.ActCT) (string, error) {
	if a.Flags&^(openflow.CTFlagCommit|openflow.CTFlagForce) != 0 {
		return "", ctArgError("NXAST_CT", "ct flags 0x%x", a.Flags)
	}
	var args, exec []string
	if a.Flags&openflow.CTFlagCommit != 0 {
		args = append(args, "commit")
	}
	if a.Flags&openflow.CTFlagForce != 0 {
		args = append(args, "force")
	}
	if a.ZoneFromField {
		s, err := ctSrcText(a.ZoneSrc, a.ZoneOfs, a.ZoneNBits)
		if err != nil {
			return "", err
		}
		args = append(args, "zone="+s)
	} else if a.ZoneImm != 0 {
		args = append(args, "zone="+strconv.Itoa(int(a.ZoneImm)))
	}
	if a.RecircTable != openflow.CTRecircNone {
		args = append(args, "table="+strconv.Itoa(int(a.RecircTable)))
	}
	switch a.Alg {
	case 0:
	case algFTP:
		args = append(args, "alg=ftp")
	case algTFTP:
		args = append(args, "alg=tftp")
	default:
		args = append(args, "alg="+strconv.Itoa(int(a.Alg))) // the parser names what it takes
	}
	for _, x := range a.Actions {
		var s string
		var err error
		switch x := x.(type) {
		case *openflow.ActNAT:
			if s, err = natText(x); err != nil {
				return "", err
			}
			args = append(args, s)
			continue
		case *openflow.ActRegMove:
			// The source may be a field the parser cannot name.
			if _, err := ctSrcText(x.Src, x.SrcOfs, x.NBits); err != nil {
				return "", err
			}
		}
		if s, err = actionText(x); err != nil {
			// What the flow language cannot write is no action ct takes.
			return "", ctArgError("NXAST_CT", "ct action doesn't support nested action %s", nestedName(x))
		}
		if s != "" {
			exec = append(exec, s)
		}
	}
	if len(exec) > 0 {
		args = append(args, "exec("+strings.Join(exec, ",")+")")
	}
	return "ct(" + strings.Join(args, ",") + ")", nil
}

// nestedName names a wire action as Open vSwitch does when it refuses it
// inside ct.
func nestedName(x openflow.Action) string {
	switch y := x.(type) {
	case *openflow.ActCT:
		return "ct"
	case *openflow.ActNX:
		return openflow.NXActionName(y.Subtype)
	case *openflow.ActRaw:
		return openflow.NXActionName(y.Subtype)
	}
	return fmt.Sprintf("%T", x)
}

// ctArgError is an OFPBAC_BAD_ARGUMENT error about the wire action item.
func ctArgError(item, format string, args ...any) error {
	e := actionError(openflow.CodeBadActionArgument, format, args...)
	e.Item = item
	return e
}

// Connection tracking helpers (ALGs) by port, as NXAST_CT carries them.
const (
	algFTP  = 21
	algTFTP = 69
)

// ctSrcText writes a subfield a ct action reads (its zone, a move's
// source) as text, refusing an unknown field with OFPBAC_BAD_SET_TYPE as
// Open vSwitch does; the parser checks the bits and the prerequisites.
func ctSrcText(h openflow.FieldHeader, ofs, nbits uint16) (string, error) {
	if h.Name == "" || !supportedFields[h.Name] {
		e := actionError(openflow.CodeBadActionSetType, "ct reads field 0x%04x:%d, which ovsxdp does not support", h.Class, h.Field)
		e.Item = "NXAST_CT"
		return "", e
	}
	return subfieldText(h, ofs, nbits)
}

// natText writes a nat nested in ct as text: nat, or
// nat(src|dst[=ADDR[-ADDR][:PORT[-PORT]]][,persistent][,hash][,random]).
func natText(x *openflow.ActNAT) (string, error) {
	var kind string
	switch {
	case x.Flags&openflow.NATFlagSrc != 0 && x.Flags&openflow.NATFlagDst != 0:
		kind = "src,dst" // the parser refuses both
	case x.Flags&openflow.NATFlagSrc != 0:
		kind = "src"
	case x.Flags&openflow.NATFlagDst != 0:
		kind = "dst"
	case x.AddrMin.IsValid():
		return "", ctArgError("NXAST_NAT", "nat with an address but neither src nor dst")
	}
	var args []string
	if kind != "" {
		if x.AddrMin.IsValid() {
			addr := func(a netip.Addr) string {
				if a.Is6() {
					return "[" + a.String() + "]"
				}
				return a.String()
			}
			r := addr(x.AddrMin)
			if x.AddrMax.IsValid() && x.AddrMax != x.AddrMin {
				r += "-" + addr(x.AddrMax)
			}
			if x.ProtoMin != 0 {
				r += ":" + strconv.Itoa(int(x.ProtoMin))
				if x.ProtoMax != 0 && x.ProtoMax != x.ProtoMin {
					r += "-" + strconv.Itoa(int(x.ProtoMax))
				}
			}
			kind += "=" + r
		}
		args = append(args, kind)
	}
	for _, f := range []struct {
		flag uint16
		name string
	}{{openflow.NATFlagPersistent, "persistent"}, {openflow.NATFlagProtoHash, "hash"}, {openflow.NATFlagProtoRandom, "random"}} {
		if x.Flags&f.flag != 0 {
			args = append(args, f.name)
		}
	}
	if len(args) == 0 {
		return "nat", nil
	}
	return "nat(" + strings.Join(args, ",") + ")", nil
}

// ctItem returns the wire action whose text, in the flow text s that this
// package wrote, holds the byte at pos: NXAST_CT for a ct action and what
// it nests.
func ctItem(s string, pos int) (string, bool) {
	if pos < 0 || pos >= len(s) {
		return "", false
	}
	for i := 0; i+3 <= len(s) && i <= pos; i++ {
		if !strings.HasPrefix(s[i:], "ct(") || i > 0 && !strings.ContainsRune(",=(", rune(s[i-1])) {
			continue
		}
		depth, end := 0, len(s)-1
		for j := i + 2; j < len(s); j++ {
			if s[j] == '(' {
				depth++
			} else if s[j] == ')' {
				if depth--; depth == 0 {
					end = j
					break
				}
			}
		}
		if pos <= end {
			return "NXAST_CT", true
		}
		i = end
	}
	return "", false
}

// ctActionError is the OpenFlow error Open vSwitch gives for what the
// flow parser refused, for the reason given, in a ct action: bits outside
// their field are OFPBAC_BAD_SET_LEN; a ct the match does not allow (no
// ip, no tcp for alg=ftp, a commit of +inv, a source field's missing
// prerequisite) is OFPBAC_MATCH_INCONSISTENT; anything else is
// OFPBAC_BAD_ARGUMENT.
func ctActionError(item, reason string) error {
	code := openflow.CodeBadActionArgument
	switch {
	case strings.Contains(reason, "is not valid because field is only"):
		code = openflow.CodeBadActionSetLen
	case strings.Contains(reason, "in the match"), strings.Contains(reason, "lacks correct prerequisites"),
		strings.Contains(reason, "cannot commit"):
		code = codeMatchInconsistent
	}
	e := actionError(code, "%s", reason)
	e.Item = item
	return e
}

// ctToOF encodes a flow ct action as ovs-ofctl does: the nat first, then
// the exec actions.
func (e *encoder) ctToOF(ct *flow.CT) (openflow.Action, error) {
	if ct == nil {
		return nil, fmt.Errorf("%w: ct without arguments", openflow.ErrUnencodable)
	}
	a := &openflow.ActCT{ZoneImm: ct.Zone, RecircTable: ct.Table, Alg: ct.Alg, Actions: []openflow.Action{}}
	if ct.Commit {
		a.Flags |= openflow.CTFlagCommit
	}
	if ct.Force {
		a.Flags |= openflow.CTFlagForce
	}
	if ct.ZoneSrc.Field != flow.FieldNone {
		h, err := header(ct.ZoneSrc.Field)
		if err != nil {
			return nil, err
		}
		a.ZoneFromField, a.ZoneSrc, a.ZoneImm = true, h, 0
		a.ZoneOfs, a.ZoneNBits = uint16(ct.ZoneSrc.Ofs), uint16(ct.ZoneSrc.Bits())
	}
	if n := ct.NAT; n != nil {
		x := &openflow.ActNAT{AddrMin: n.AddrMin, ProtoMin: n.PortMin}
		switch n.Kind {
		case flow.NATSrc:
			x.Flags |= openflow.NATFlagSrc
		case flow.NATDst:
			x.Flags |= openflow.NATFlagDst
		}
		for _, f := range []struct {
			on   bool
			flag uint16
		}{{n.Persistent, openflow.NATFlagPersistent}, {n.Hash, openflow.NATFlagProtoHash}, {n.Random, openflow.NATFlagProtoRandom}} {
			if f.on {
				x.Flags |= f.flag
			}
		}
		if n.AddrMax != n.AddrMin {
			x.AddrMax = n.AddrMax
		}
		if n.PortMax != n.PortMin {
			x.ProtoMax = n.PortMax
		}
		a.Actions = append(a.Actions, x)
	}
	exec, err := e.list(ct.Exec)
	if err != nil {
		return nil, err
	}
	a.Actions = append(a.Actions, exec...)
	return a, nil
}
