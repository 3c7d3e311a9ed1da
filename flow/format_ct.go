package flow

import (
	"net/netip"
	"strconv"
	"strings"
)

// This file prints the connection tracking syntax as ovs-ofctl does: the
// ct_* fields of a match and the ct(...) action.

// formatCtMatch writes the ct_* fields of a match, in Open vSwitch's
// order: after pkt_mark and conj_id, before the protocol.
func formatCtMatch(w *matchWriter, k, mk *Key) {
	if mk.CtState != 0 {
		w.item("ct_state=", ctStateText(k.CtState, mk.CtState))
	}
	if mk.CtZone != 0 {
		w.item("ct_zone=", strconv.Itoa(int(k.CtZone)))
	}
	if mk.CtMark != 0 {
		w.item("ct_mark=", maskedHex(uint64(k.CtMark), uint64(mk.CtMark), 1<<32-1))
	}
	if mk.CtLabel != ([16]byte{}) {
		v, m := get128(k, stCtLabel), get128(mk, stCtLabel)
		text := u128Text(v)
		if m != ones(128) {
			text += "/" + u128Text(m)
		}
		w.item("ct_label=", text)
	}
	formatIPv4(w, "ct_nw_src", k.CtNwSrc, mk.CtNwSrc)
	formatIPv6(w, "ct_ipv6_src", &k.CtIPv6Src, &mk.CtIPv6Src)
	formatIPv4(w, "ct_nw_dst", k.CtNwDst, mk.CtNwDst)
	formatIPv6(w, "ct_ipv6_dst", &k.CtIPv6Dst, &mk.CtIPv6Dst)
	if mk.CtNwProto != 0 {
		w.item("ct_nw_proto=", strconv.Itoa(int(k.CtNwProto)))
		format16(w, "ct_tp_src", k.CtTpSrc, mk.CtTpSrc)
		format16(w, "ct_tp_dst", k.CtTpDst, mk.CtTpDst)
	}
}

// formatCT writes a ct action as ovs-ofctl prints it:
// ct(commit,force,table=T,zone=Z,nat(...),exec(...),alg=A), each argument
// only when it is there. body writes the exec actions in the dialect of
// the dump.
func formatCT(b *strings.Builder, ct *CT, body func(*strings.Builder, []Action)) {
	b.WriteString("ct(")
	n := 0
	arg := func(s ...string) {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		for _, p := range s {
			b.WriteString(p)
		}
	}
	if ct.Commit {
		arg("commit")
	}
	if ct.Force {
		arg("force")
	}
	if ct.Table != CTNoTable {
		arg("table=", strconv.Itoa(int(ct.Table)))
	}
	switch {
	case ct.ZoneSrc.Field != FieldNone:
		arg("zone=", ct.ZoneSrc.String())
	case ct.Zone != 0:
		arg("zone=", strconv.Itoa(int(ct.Zone)))
	}
	if ct.NAT != nil {
		arg(natText(ct.NAT))
	}
	switch {
	case len(ct.Exec) > 0:
		arg("exec(")
		body(b, ct.Exec)
		b.WriteByte(')')
	case ct.SetMark || ct.SetLabel:
		// A resolved ct (a datapath action): what its exec wrote.
		arg("exec(")
		if ct.SetMark {
			b.WriteString("set_field:" + loadValue(uint64(ct.Mark)) + "/" + loadValue(uint64(ct.MarkMask)) + "->ct_mark")
		}
		if ct.SetLabel {
			if ct.SetMark {
				b.WriteByte(',')
			}
			var k, m Key
			k.CtLabel, m.CtLabel = ct.Label, ct.LabelMask
			b.WriteString("set_field:" + u128Text(get128(&k, stCtLabel)) + "/" + u128Text(get128(&m, stCtLabel)) + "->ct_label")
		}
		b.WriteByte(')')
	}
	switch ct.Alg {
	case 0:
	case ctAlgFTP:
		arg("alg=ftp")
	case ctAlgTFTP:
		arg("alg=tftp")
	default:
		arg("alg=", strconv.Itoa(int(ct.Alg)))
	}
	b.WriteByte(')')
}

// natText prints the nat argument of ct: "nat", or nat(src|dst...) with
// its range and flags. An IPv6 address is in brackets when a port
// follows, and the flags print only with a range, as in Open vSwitch.
func natText(n *NAT) string {
	var b strings.Builder
	b.WriteString("nat")
	if n.Kind == NATRestore {
		return b.String()
	}
	if n.Kind == NATDst {
		b.WriteString("(dst")
	} else {
		b.WriteString("(src")
	}
	if n.AddrMin.IsValid() {
		b.WriteByte('=')
		addr := func(a netip.Addr) {
			switch {
			case a.Is4():
				b.WriteString(a.String())
			case n.PortMin != 0:
				a16 := a.As16()
				b.WriteString("[" + ipv6Text(&a16) + "]")
			default:
				a16 := a.As16()
				b.WriteString(ipv6Text(&a16))
			}
		}
		addr(n.AddrMin)
		if n.AddrMax.IsValid() && n.AddrMax != n.AddrMin {
			b.WriteByte('-')
			addr(n.AddrMax)
		}
		if n.PortMin != 0 {
			b.WriteString(":" + strconv.Itoa(int(n.PortMin)))
			if n.PortMax != 0 && n.PortMax != n.PortMin {
				b.WriteString("-" + strconv.Itoa(int(n.PortMax)))
			}
		}
		if n.Persistent {
			b.WriteString(",persistent")
		}
		if n.Hash {
			b.WriteString(",hash")
		}
		if n.Random {
			b.WriteString(",random")
		}
	}
	b.WriteByte(')')
	return b.String()
}

// ctStateText prints a ct_state match as Open vSwitch does: flags joined
// by | for an exact match ("0" for none), else +flag-flag for the bits
// the mask covers, lowest bit first.
func ctStateText(v, m uint8) string {
	return flagsText(ctStateNames[:], uint64(v), uint64(m), 0xff)
}
