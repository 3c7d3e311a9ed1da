package flow

import (
	"fmt"
	"strings"
)

// tunFields are the tunnel metadata fields (ovs-fields(7) "Tunnel
// Fields") that OpenFlow carries: what a tunnel port found in the outer
// headers of a packet it received, and what set_tunnel and set_field give
// a packet to send through one. All are NXM only and written as pipeline
// state (load:V->NXM_NX_TUN_*[]).
//
// tun_tos and tun_ttl are in the key (datapath flows match them) but not
// here: Open vSwitch 3.1 has no OpenFlow encoding for them and refuses a
// flow that names them. tun_metadata0-63 (Geneve options) are not yet
// supported.
var tunFields = []field{
	{id: FieldTunID, name: "tun_id", aliases: []string{"tunnel_id"}, kind: kindNum, st: stTunID, max: 1<<64 - 1, bits: 1<<64 - 1, maskable: true, set: setReg, nxm: "NXM_NX_TUN_ID"},
	{id: FieldTunSrc, name: "tun_src", kind: kindIPv4, st: stTunSrc, maskable: true, set: setReg, nxm: "NXM_NX_TUN_IPV4_SRC"},
	{id: FieldTunDst, name: "tun_dst", kind: kindIPv4, st: stTunDst, maskable: true, set: setReg, nxm: "NXM_NX_TUN_IPV4_DST"},
	{id: FieldTunIPv6Src, name: "tun_ipv6_src", kind: kindIPv6, st: stTunIPv6Src, maskable: true, set: setReg, nxm: "NXM_NX_TUN_IPV6_SRC"},
	{id: FieldTunIPv6Dst, name: "tun_ipv6_dst", kind: kindIPv6, st: stTunIPv6Dst, maskable: true, set: setReg, nxm: "NXM_NX_TUN_IPV6_DST"},
	// tun_flags is 16 bits in NXM, of which OpenFlow sees one (oam): as a
	// subfield it is 1 bit wide, as in Open vSwitch.
	{id: FieldTunFlags, name: "tun_flags", kind: kindTunFlags, st: stTunFlags, max: TunFlagsOpenFlow, bits: TunFlagsOpenFlow, maskable: true, set: setReg, nxm: "NXM_NX_TUN_FLAGS"},
}

// tunFlagNames are the tun_flags names, by bit.
var tunFlagNames = []string{"oam"}

// parseTunFlags parses a tun_flags match: +oam or -oam, a bare flag name
// (set), or value/mask in numbers. Only the flags OpenFlow sees
// (TunFlagsOpenFlow) may be named or set.
func parseTunFlags(s string) (v, m uint64, reason string) {
	const unknown = ": unknown tunnel flag(s)"
	switch {
	case s == "":
		return 0, 0, "missing tunnel flags"
	case s[0] == '+' || s[0] == '-':
		return parseSignedFlags(s, tunFlagNames, "tunnel flag", " (valid: oam)")
	case s[0] >= '0' && s[0] <= '9':
		val, maskText, hasMask := strings.Cut(s, "/")
		var err error
		if v, err = parseNum(val, 16); err != nil {
			return 0, 0, err.Error()
		}
		m = 0xffff
		if hasMask {
			if m, err = parseNum(maskText, 16); err != nil {
				return 0, 0, "mask: " + err.Error()
			}
		}
		if v&^TunFlagsOpenFlow != 0 || m&^TunFlagsOpenFlow != 0 && m != 0xffff {
			return 0, 0, string(Clipped(s)) + unknown
		}
		return v & m & TunFlagsOpenFlow, m & TunFlagsOpenFlow, ""
	}
	for _, name := range strings.Split(s, "|") {
		b, ok := flagBit(tunFlagNames, name)
		if !ok {
			return 0, 0, string(Clipped(name)) + unknown
		}
		v |= b
	}
	return v, v, ""
}

// parseTunValue parses the value (and optional mask) of set_field on a
// tunnel field, in the field's own syntax, as 128-bit numbers in the
// field's units.
func parseTunValue(f *field, val string) (v, m u128, reason string) {
	valText, maskText, hasMask := strings.Cut(val, "/")
	switch f.kind {
	case kindIPv4:
		ip, ok := ipv4FromText(valText)
		if !ok {
			return v, m, fmt.Sprintf("%s: invalid IP address for %s", Clipped(valText), f.name)
		}
		mk := uint32(1<<32 - 1)
		if hasMask {
			var err string
			if mk, err = parseIPv4Mask(maskText); err != "" {
				return v, m, err
			}
		}
		return u128{lo: uint64(ip)}, u128{lo: uint64(mk)}, ""
	case kindIPv6:
		ip, ok := ipv6FromText(valText)
		if !ok {
			return v, m, fmt.Sprintf("%s: invalid IPv6 address for %s", Clipped(valText), f.name)
		}
		mk := ones(128)
		if hasMask {
			b, err := parseIPv6Mask(maskText)
			if err != "" {
				return v, m, err
			}
			mk = bytesU128(b)
		}
		return bytesU128(ip), mk, ""
	}
	v, reason = parse128(valText, f.name)
	m = ones(f.width())
	if reason == "" && hasMask {
		m, reason = parse128(maskText, f.name)
	}
	return v, m, reason
}

// bytesU128 reads 16 big-endian bytes as a 128-bit number.
func bytesU128(b [16]byte) u128 {
	var v u128
	for i := range 8 {
		v.hi = v.hi<<8 | uint64(b[i])
		v.lo = v.lo<<8 | uint64(b[8+i])
	}
	return v
}
