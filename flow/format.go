package flow

import (
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// FormatFlow returns the text ovs-ofctl prints for f after "ADD " in
// `ovs-ofctl parse-flow` output: the match (with its priority unless it is
// the default), then cookie, timeouts, flags and the actions.
func FormatFlow(f *Flow) string {
	var b strings.Builder
	formatFlowHead(&b, f)
	formatActions(&b, f.Actions)
	return b.String()
}

// formatFlowHead writes what FormatFlow writes before the actions, up to
// "actions=".
func formatFlowHead(b *strings.Builder, f *Flow) {
	if f.Table != 0 && f.Table != TableAll {
		b.WriteString("table:" + strconv.Itoa(int(f.Table)) + " ")
	}
	formatMatch(b, &f.Match, f.Priority)
	if b.Len() > 0 && b.String()[b.Len()-1] == ' ' {
		goto cookie
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
cookie:
	switch {
	case f.CookieMask != 0: // mod-flows/del-flows selection
		b.WriteString("cookie:0x" + strconv.FormatUint(f.Cookie, 16) + "/0x" + strconv.FormatUint(f.CookieMask, 16) + " ")
	case f.Cookie != 0 && f.Cookie != 1<<64-1:
		b.WriteString("cookie:0x" + strconv.FormatUint(f.Cookie, 16) + " ")
	}
	if f.IdleTimeout != 0 {
		b.WriteString("idle:" + strconv.Itoa(int(f.IdleTimeout)) + " ")
	}
	if f.HardTimeout != 0 {
		b.WriteString("hard:" + strconv.Itoa(int(f.HardTimeout)) + " ")
	}
	b.WriteString(f.Flags.String())
	b.WriteString("actions=")
}

// FormatMatch returns m as ovs-ofctl prints a match, in Open vSwitch's field
// order, with "priority=N," first unless priority is DefaultPriority. A
// catch-all match with the default priority is the empty string.
func FormatMatch(m *Match, priority uint16) string {
	var b strings.Builder
	formatMatch(&b, m, priority)
	return b.String()
}

// FormatActions returns an action list as ovs-ofctl prints it; an empty
// list is "drop".
func FormatActions(a []Action) string {
	var b strings.Builder
	formatActions(&b, a)
	return b.String()
}

// matchWriter appends comma-separated items.
type matchWriter struct {
	b *strings.Builder
	n int
}

func (w *matchWriter) item(s ...string) {
	if w.n > 0 {
		w.b.WriteByte(',')
	}
	w.n++
	for _, p := range s {
		w.b.WriteString(p)
	}
}

func formatMatch(b *strings.Builder, m *Match, priority uint16) {
	formatMatchTunnel(b, m, priority, "", false)
}

// formatMatchTunnel is formatMatch with tun, when it is not "", written
// as the tunnel's fields, in their place among the others, instead of
// those m matches, and, if inner is set, the inner VLAN tag (vlans[1])
// after the outer one, as Open vSwitch writes a packet's flow.
func formatMatchTunnel(b *strings.Builder, m *Match, priority uint16, tun string, inner bool) {
	w := matchWriter{b: b}
	k, mk := &m.Key, &m.Mask
	if priority != DefaultPriority {
		w.item("priority=", strconv.Itoa(int(priority)))
	}
	if mk.PktMark != 0 {
		w.item("pkt_mark=", maskedHex(uint64(k.PktMark), uint64(mk.PktMark), 1<<32-1))
	}
	if mk.RecircID != 0 { // a packet's key after recirculation (FormatMicroflow)
		w.item("recirc_id=", maskedHex(uint64(k.RecircID), uint64(mk.RecircID), 1<<32-1))
	}
	if mk.DpHash != 0 {
		w.item("dp_hash=", maskedHex(uint64(k.DpHash), uint64(mk.DpHash), 1<<32-1))
	}
	if mk.ConjID != 0 {
		w.item("conj_id=", strconv.FormatUint(uint64(k.ConjID), 10))
	}
	formatCtMatch(&w, k, mk)

	skipType, skipProto := false, false
	if mk.DlType != 0 {
		skipType = true
		proto := ""
		switch k.DlType {
		case EthTypeIPv4, EthTypeIPv6:
			six := ""
			base := "ip"
			if k.DlType == EthTypeIPv6 {
				six, base = "6", "ipv6"
			}
			proto = base
			if mk.NwProto != 0 {
				skipProto = true
				switch k.NwProto {
				case IPProtoICMP:
					if six == "" {
						proto = "icmp"
					} else {
						skipProto = false
					}
				case IPProtoICMPv6:
					if six != "" {
						proto = "icmp6"
					} else {
						skipProto = false
					}
				case IPProtoTCP:
					proto = "tcp" + six
				case IPProtoUDP:
					proto = "udp" + six
				case IPProtoSCTP:
					proto = "sctp" + six
				default:
					skipProto = false
				}
			}
		case EthTypeARP:
			proto = "arp"
		case EthTypeRARP:
			proto = "rarp"
		default:
			skipType = false
		}
		if proto != "" {
			w.item(proto)
		}
	}
	for i := range NumRegs {
		if mk.Regs[i] != 0 {
			w.item("reg", strconv.Itoa(i), "=", maskedHex(uint64(k.Regs[i]), uint64(mk.Regs[i]), 1<<32-1))
		}
	}
	if tun != "" {
		w.item(tun)
	} else {
		formatTunMatch(&w, k, mk)
	}
	if mk.Metadata != 0 {
		w.item("metadata=", maskedHex(k.Metadata, mk.Metadata, 1<<64-1))
	}
	if mk.InPort != 0 {
		w.item("in_port=", portText(k.InPort))
	}
	formatVLAN(&w, "", k.VLANs[0].TCI, mk.VLANs[0].TCI)
	if inner {
		formatVLAN(&w, "1", k.VLANs[1].TCI, mk.VLANs[1].TCI)
	}
	formatMAC(&w, "dl_src", k.DlSrc, mk.DlSrc)
	formatMAC(&w, "dl_dst", k.DlDst, mk.DlDst)
	if !skipType && mk.DlType != 0 {
		w.item("dl_type=0x", hexPad(uint64(k.DlType), 4))
	}
	arp := k.DlType == EthTypeARP || k.DlType == EthTypeRARP
	switch {
	case k.DlType == EthTypeIPv6:
		formatIPv6(&w, "ipv6_src", &k.IPv6Src, &mk.IPv6Src)
		formatIPv6(&w, "ipv6_dst", &k.IPv6Dst, &mk.IPv6Dst)
		if mk.IPv6Label != 0 {
			if mk.IPv6Label == 0xfffff {
				w.item("ipv6_label=0x", hexPad(uint64(k.IPv6Label), 5))
			} else {
				w.item("ipv6_label=0x", hexPad(uint64(k.IPv6Label), 5), "/0x", hexPad(uint64(mk.IPv6Label), 5))
			}
		}
	case arp:
		formatIPv4(&w, "arp_spa", k.NwSrc, mk.NwSrc)
		formatIPv4(&w, "arp_tpa", k.NwDst, mk.NwDst)
	default:
		formatIPv4(&w, "nw_src", k.NwSrc, mk.NwSrc)
		formatIPv4(&w, "nw_dst", k.NwDst, mk.NwDst)
	}
	if !skipProto && mk.NwProto != 0 {
		if arp {
			w.item("arp_op=", strconv.Itoa(int(k.NwProto)))
		} else {
			w.item("nw_proto=", strconv.Itoa(int(k.NwProto)))
		}
	}
	if arp {
		formatMAC(&w, "arp_sha", k.ArpSha, mk.ArpSha)
		formatMAC(&w, "arp_tha", k.ArpTha, mk.ArpTha)
	}
	if mk.NwTos&0xfc != 0 {
		w.item("nw_tos=", strconv.Itoa(int(k.NwTos&0xfc)))
	}
	if mk.NwTos&3 != 0 {
		w.item("nw_ecn=", strconv.Itoa(int(k.NwTos&3)))
	}
	if mk.NwTTL != 0 {
		w.item("nw_ttl=", strconv.Itoa(int(k.NwTTL)))
	}
	formatFrag(&w, k.NwFrag, mk.NwFrag)
	switch {
	case k.DlType == EthTypeIPv4 && k.NwProto == IPProtoICMP:
		format16(&w, "icmp_type", k.TpSrc, mk.TpSrc)
		format16(&w, "icmp_code", k.TpDst, mk.TpDst)
	case k.DlType == EthTypeIPv6 && k.NwProto == IPProtoICMPv6:
		format16(&w, "icmp_type", k.TpSrc, mk.TpSrc)
		format16(&w, "icmp_code", k.TpDst, mk.TpDst)
		formatIPv6(&w, "nd_target", &k.NdTarget, &mk.NdTarget)
		formatMAC(&w, "nd_sll", k.ArpSha, mk.ArpSha)
		formatMAC(&w, "nd_tll", k.ArpTha, mk.ArpTha)
	default:
		format16(&w, "tp_src", k.TpSrc, mk.TpSrc)
		format16(&w, "tp_dst", k.TpDst, mk.TpDst)
	}
	if (k.DlType == EthTypeIPv4 || k.DlType == EthTypeIPv6) && k.NwProto == IPProtoTCP && mk.TcpFlags != 0 {
		w.item("tcp_flags=", tcpFlagsText(k.TcpFlags, mk.TcpFlags))
	}
}

// formatVLAN prints a tag's TCI as dl_vlan/dl_vlan_pcp when it says "this
// VID and/or PCP, tagged", and as vlan_tci otherwise, each name followed
// by level: "" for the outer tag, "1" for the inner.
func formatVLAN(w *matchWriter, level string, tci, mask uint16) {
	if mask == 0 {
		return
	}
	vid, pcp := mask&VLANVIDMask, mask&VLANPCPMask
	if mask&VLANPresent != 0 && tci&VLANPresent != 0 &&
		(vid == 0 || vid == VLANVIDMask) && (pcp == 0 || pcp == VLANPCPMask) && (vid != 0 || pcp != 0) {
		if vid != 0 {
			w.item("dl_vlan", level, "=", strconv.Itoa(int(tci&VLANVIDMask)))
		}
		if pcp != 0 {
			w.item("dl_vlan_pcp", level, "=", strconv.Itoa(int(tci>>13)))
		}
		return
	}
	if mask == 0xffff {
		w.item("vlan_tci", level, "=0x", hexPad(uint64(tci), 4))
		return
	}
	w.item("vlan_tci", level, "=0x", hexPad(uint64(tci), 4), "/0x", hexPad(uint64(mask), 4))
}

func formatMAC(w *matchWriter, name string, v, m [6]byte) {
	if m == ([6]byte{}) {
		return
	}
	if m == ([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
		w.item(name, "=", macText(macNum(v)))
		return
	}
	w.item(name, "=", macText(macNum(v)), "/", macText(macNum(m)))
}

func formatIPv4(w *matchWriter, name string, v, m uint32) {
	if m == 0 {
		return
	}
	switch {
	case m == 1<<32-1:
		w.item(name, "=", ipv4Text(v))
	case isCIDR32(m):
		w.item(name, "=", ipv4Text(v), "/", strconv.Itoa(bits.OnesCount32(m)))
	default:
		w.item(name, "=", ipv4Text(v), "/", ipv4Text(m))
	}
}

func formatIPv6(w *matchWriter, name string, v, m *[16]byte) {
	if *m == ([16]byte{}) {
		return
	}
	n, cidr := ipv6PrefixLen(m)
	switch {
	case n == 128:
		w.item(name, "=", ipv6Text(v))
	case cidr:
		w.item(name, "=", ipv6Text(v), "/", strconv.Itoa(n))
	default:
		w.item(name, "=", ipv6Text(v), "/", ipv6Text(m))
	}
}

// ipv6PrefixLen returns the number of leading one bits of m and whether m
// is exactly a prefix mask.
func ipv6PrefixLen(m *[16]byte) (int, bool) {
	n := 0
	for n < 128 && m[n/8]&(0x80>>(n%8)) != 0 {
		n++
	}
	for i := n; i < 128; i++ {
		if m[i/8]&(0x80>>(i%8)) != 0 {
			return n, false
		}
	}
	return n, true
}

func format16(w *matchWriter, name string, v, m uint16) {
	if m == 0 {
		return
	}
	if m == 0xffff {
		w.item(name, "=", strconv.Itoa(int(v)))
		return
	}
	w.item(name, "=0x", strconv.FormatUint(uint64(v), 16), "/0x", strconv.FormatUint(uint64(m), 16))
}

func formatFrag(w *matchWriter, v, m uint8) {
	var s string
	switch m {
	case FragAny | FragLater:
		switch v {
		case FragAny | FragLater:
			s = "later"
		case FragAny:
			s = "first"
		case 0:
			s = "no"
		default:
			s = "<error>"
		}
	case FragAny:
		s = "no"
		if v&FragAny != 0 {
			s = "yes"
		}
	case FragLater:
		s = "not_later"
		if v&FragLater != 0 {
			s = "later"
		}
	default:
		return
	}
	w.item("nw_frag=", s)
}

// tcpFlagsText prints TCP flags: names joined by | for an exact match, or
// +flag-flag for a masked one, lowest bit first.
func tcpFlagsText(v, m uint16) string {
	return flagsText(tcpFlagNames[:], uint64(v), uint64(m), 0xfff)
}

// flagsText prints a field of flag bits named by names (lowest bit first)
// as Open vSwitch does: with the whole mask (all), the names of the bits
// set joined by | ("0" for none); else +name or -name for each bit the
// mask covers.
func flagsText(names []string, v, m, all uint64) string {
	var b strings.Builder
	if m == all {
		if v == 0 {
			return "0"
		}
		for i, n := range names {
			if v&(1<<i) != 0 {
				if b.Len() > 0 {
					b.WriteByte('|')
				}
				b.WriteString(n)
			}
		}
		return b.String()
	}
	return maskedFlagsText(names, v, m)
}

// maskedFlagsText prints +name (set in v) or -name for each bit of m.
func maskedFlagsText(names []string, v, m uint64) string {
	var b strings.Builder
	for i, n := range names {
		if m&(1<<i) != 0 {
			if v&(1<<i) != 0 {
				b.WriteByte('+')
			} else {
				b.WriteByte('-')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}

// maskedHex prints a value and its mask as Open vSwitch prints registers:
// "0" or 0x-hexadecimal, then "/0x..." unless the mask is full.
func maskedHex(v, m, full uint64) string {
	s := loadValue(v)
	if m != full {
		s += "/0x" + strconv.FormatUint(m, 16)
	}
	return s
}

// portText prints a port as ovs-ofctl does: reserved ports by name.
func portText(p uint32) string {
	switch p {
	case PortInPort:
		return "IN_PORT"
	case PortTable:
		return "TABLE"
	case PortNormal:
		return "NORMAL"
	case PortFlood:
		return "FLOOD"
	case PortAll:
		return "ALL"
	case PortController:
		return "CONTROLLER"
	case PortLocal:
		return "LOCAL"
	case PortNone:
		return "ANY"
	}
	return strconv.FormatUint(uint64(p), 10)
}

func formatActions(b *strings.Builder, acts []Action) {
	// A list with an action set is OpenFlow 1.1+'s, where a goto_table
	// after the set's instructions may not be written as a resubmit.
	set := slices.ContainsFunc(acts, func(a Action) bool { return isActionSetInstr(a.Type) })
	writeActionList(b, acts, func(acts []Action, i int) int {
		if a := &acts[i]; set && a.Type == ActResubmit && a.Spelling == SpellGotoTable {
			b.WriteString("goto_table:" + strconv.Itoa(int(a.Table)))
		} else {
			formatAction(b, a)
		}
		return 0
	})
}

// writeActionList writes acts comma-separated ("drop" when there are
// none), each clone(...) with its body written the same way, and every
// other action with one, which returns how many of the actions after
// acts[i] it wrote too.
func writeActionList(b *strings.Builder, acts []Action, one func(acts []Action, i int) int) {
	if len(acts) == 0 {
		b.WriteString("drop")
		return
	}
	for i := 0; i < len(acts); i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		if name := nestedName(acts[i].Type); name != "" {
			body := nestedBody(acts, i)
			b.WriteString(name + "(")
			if len(body) > 0 {
				writeActionList(b, body, one)
			}
			b.WriteByte(')')
			i += len(body)
			continue
		}
		i += one(acts, i)
	}
}

// nestedName is the keyword of an action with a body (clone,
// write_actions), "" for every other.
func nestedName(t ActionType) string {
	switch t {
	case ActClone:
		return "clone"
	case ActWriteActions:
		return "write_actions"
	}
	return ""
}

// nestedBody returns the body of the clone or write_actions at acts[i],
// clipped to the list.
func nestedBody(acts []Action, i int) []Action {
	n := acts[i].Value
	rest := uint64(len(acts) - i - 1)
	return acts[i+1 : i+1+int(min(n, rest))]
}

// formatAction prints one action in the OpenFlow 1.0 + Nicira extension
// spelling ovs-ofctl uses by default.
func formatAction(b *strings.Builder, a *Action) {
	switch a.Type {
	case ActOutput:
		if a.Port >= PortMax {
			b.WriteString(portText(a.Port))
		} else {
			b.WriteString("output:" + strconv.FormatUint(uint64(a.Port), 10))
		}
	case ActDecTTL:
		b.WriteString("dec_ttl")
		if a.Note != "" {
			b.WriteString("(" + a.Note + ")")
		}
	case ActLoad:
		if formatSetTunnel(b, a) {
			return
		}
		if wholeTCISet(a) {
			// OpenFlow 1.0 has no set_field: Open vSwitch sends one on
			// vlan_tci as the actions that do the same.
			if a.Value&VLANPresent == 0 {
				b.WriteString("strip_vlan")
			} else {
				b.WriteString("mod_vlan_vid:" + strconv.FormatUint(a.Value&VLANVIDMask, 10) + ",mod_vlan_pcp:" + strconv.FormatUint(a.Value>>13&7, 10))
			}
			return
		}
		if isTunMetaField(a.Dst.Field) {
			formatTunMetaLoad(b, a)
			return
		}
		b.WriteString("load:" + loadValue(a.Value) + "->" + a.Dst.String())
	case ActMove:
		b.WriteString("move:" + a.Src.String() + "->" + a.Dst.String())
	case ActOutputReg:
		b.WriteString("output:" + a.Src.String())
	case ActResubmit:
		port := ""
		if a.Port != PortInPort {
			port = portText(a.Port)
		}
		if a.Table == TableCurrent {
			b.WriteString("resubmit:" + port)
		} else {
			b.WriteString("resubmit(" + port + "," + strconv.Itoa(int(a.Table)) + ")")
		}
	case ActWriteMetadata:
		b.WriteString("write_metadata:" + maskedHex(a.Value, a.Mask, 1<<64-1))
	case ActPush:
		b.WriteString("push:" + a.Src.String())
	case ActPop:
		b.WriteString("pop:" + a.Dst.String())
	case ActCheckPktLarger:
		b.WriteString("check_pkt_larger(" + strconv.FormatUint(a.Value, 10) + ")->" + a.Dst.String())
	case ActNote:
		b.WriteString("note:" + noteText(a.Note))
	case ActExit:
		b.WriteString("exit")
	case ActGroup:
		b.WriteString("group:" + strconv.FormatUint(a.Value, 10))
	case ActMeter:
		b.WriteString("meter:" + strconv.FormatUint(a.Value, 10))
	case ActSetVLANVID:
		b.WriteString("mod_vlan_vid:" + strconv.FormatUint(a.Value, 10))
	case ActSetVLANPCP:
		b.WriteString("mod_vlan_pcp:" + strconv.FormatUint(a.Value, 10))
	case ActPopVLAN:
		b.WriteString("strip_vlan")
	case ActPushVLAN:
		b.WriteString("push_vlan:0x" + strconv.FormatUint(a.Value, 16))
	case ActSetField:
		formatSetField(b, a)
	case ActConjunction:
		b.WriteString(conjunctionText(a))
	case ActLearn:
		formatLearn(b, a.Learn)
	case ActFinTimeout:
		formatFinTimeout(b, a)
	case ActController:
		formatController(b, a)
	case ActCT:
		formatCT(b, a.CT, formatActions)
	case ActCTClear:
		b.WriteString("ct_clear")
	case ActClearActions:
		b.WriteString("clear_actions")
	default:
		b.WriteString("unknown_action")
	}
}

func formatSetField(b *strings.Builder, a *Action) {
	switch a.Field {
	case FieldDlSrc:
		b.WriteString("mod_dl_src:" + macText(a.Value))
		return
	case FieldDlDst:
		b.WriteString("mod_dl_dst:" + macText(a.Value))
		return
	case FieldNwSrc:
		b.WriteString("mod_nw_src:" + ipv4Text(uint32(a.Value)))
		return
	case FieldNwDst:
		b.WriteString("mod_nw_dst:" + ipv4Text(uint32(a.Value)))
		return
	case FieldNwTos:
		b.WriteString("mod_nw_tos:" + strconv.FormatUint(a.Value, 10))
		return
	case FieldTpSrc:
		b.WriteString("mod_tp_src:" + strconv.FormatUint(a.Value, 10))
		return
	case FieldTpDst:
		b.WriteString("mod_tp_dst:" + strconv.FormatUint(a.Value, 10))
		return
	}
	if a.Field == FieldTunMeta0 {
		formatTunMetaCommit(b, a) // the datapath's write of the whole metadata
		return
	}
	f := fieldByID[a.Field]
	if f != nil && f.nxm == "" && isL4Port(f.id) {
		b.WriteString("load:" + loadValue(a.Value) + "->" + printNames[f.id] + "[]")
		return
	}
	if f == nil || f.nxm == "" {
		b.WriteString("unknown_set_field")
		return
	}
	if f.kind == kindIPv6 {
		var hi, lo uint64
		for i := 0; i < 8; i++ {
			hi = hi<<8 | uint64(a.IPv6[i])
			lo = lo<<8 | uint64(a.IPv6[8+i])
		}
		b.WriteString("load:" + loadValue(lo) + "->" + f.nxm + "[0..63],")
		b.WriteString("load:" + loadValue(hi) + "->" + f.nxm + "[64..127]")
		return
	}
	b.WriteString("load:" + loadValue(a.Value) + "->" + f.nxm + "[]")
}

// wholeTCISet reports whether a is a set_field:V->vlan_tci written on
// the whole field.
func wholeTCISet(a *Action) bool {
	return a.Type == ActLoad && a.Spelling == SpellSetField && a.Dst.Field == FieldVLANTCI && a.Dst.Ofs == 0 && a.Dst.Bits() == 16
}

func loadValue(v uint64) string {
	if v == 0 {
		return "0"
	}
	return "0x" + strconv.FormatUint(v, 16)
}

// hexPad prints v in lower-case hexadecimal, zero-padded to width digits.
func hexPad(v uint64, width int) string {
	s := strconv.FormatUint(v, 16)
	for len(s) < width {
		s = "0" + s
	}
	return s
}

func macText(v uint64) string {
	const digits = "0123456789abcdef"
	var buf [17]byte
	for i := 0; i < 6; i++ {
		b := byte(v >> (40 - 8*i))
		if i > 0 {
			buf[3*i-1] = ':'
		}
		buf[3*i] = digits[b>>4]
		buf[3*i+1] = digits[b&15]
	}
	return string(buf[:])
}

func ipv4Text(v uint32) string {
	return strconv.Itoa(int(v>>24)) + "." + strconv.Itoa(int(v>>16&0xff)) + "." +
		strconv.Itoa(int(v>>8&0xff)) + "." + strconv.Itoa(int(v&0xff))
}

// ipv6Text prints an IPv6 address as glibc's inet_ntop does: the first
// longest run of two or more zero groups becomes "::", and an address whose
// first 96 bits are zero (other than :: and ::1) or that is IPv4-mapped
// ends in dotted quad.
func ipv6Text(a *[16]byte) string {
	var g [8]uint16
	for i := range g {
		g[i] = uint16(a[2*i])<<8 | uint16(a[2*i+1])
	}
	bestBase, bestLen := -1, 0
	for i := 0; i < 8; {
		if g[i] != 0 {
			i++
			continue
		}
		j := i
		for j < 8 && g[j] == 0 {
			j++
		}
		if j-i > bestLen {
			bestBase, bestLen = i, j-i
		}
		i = j
	}
	if bestLen < 2 {
		bestBase = -1
	}
	var b strings.Builder
	for i := 0; i < 8; i++ {
		if bestBase >= 0 && i >= bestBase && i < bestBase+bestLen {
			if i == bestBase {
				b.WriteByte(':')
			}
			continue
		}
		if i != 0 {
			b.WriteByte(':')
		}
		if i == 6 && bestBase == 0 && (bestLen == 6 || (bestLen == 5 && g[5] == 0xffff)) {
			b.WriteString(ipv4Text(uint32(g[6])<<16 | uint32(g[7])))
			break
		}
		b.WriteString(strconv.FormatUint(uint64(g[i]), 16))
	}
	if bestBase >= 0 && bestBase+bestLen == 8 {
		b.WriteByte(':')
	}
	return b.String()
}
