package flow

import (
	"strconv"
	"strings"
)

// formatTunMatch writes the tunnel fields of a match in Open vSwitch's
// order (after the registers, before metadata).
func formatTunMatch(w *matchWriter, k, mk *Key) {
	if mk.TunID != 0 {
		w.item("tun_id=", maskedHex(k.TunID, mk.TunID, 1<<64-1))
	}
	formatIPv4(w, "tun_src", k.TunSrc, mk.TunSrc)
	formatIPv4(w, "tun_dst", k.TunDst, mk.TunDst)
	formatIPv6(w, "tun_ipv6_src", &k.TunIPv6Src, &mk.TunIPv6Src)
	formatIPv6(w, "tun_ipv6_dst", &k.TunIPv6Dst, &mk.TunIPv6Dst)
	// Only a megaflow consults the outer TOS and TTL and the flags
	// OpenFlow does not see (a decapsulated packet's, tunnelReceived):
	// Open vSwitch writes them as a megaflow's match in ofproto/trace.
	if mk.TunTOS != 0 {
		w.item("tun_tos=", strconv.FormatUint(uint64(k.TunTOS), 16)) // %x, unmasked
	}
	if mk.TunTTL != 0 {
		w.item("tun_ttl=", strconv.Itoa(int(k.TunTTL)))
	}
	if m := mk.TunFlags & tunFlagsMatch; m != 0 {
		w.item("tun_flags=", flagsText(tunFlagMatchNames, uint64(k.TunFlags&m), uint64(m), tunFlagsMatch))
	}
	if mk.TunMetaPresent != 0 {
		formatTunMetaMatch(w, k, mk)
	}
}

// tunFlagsMatch are the tunnel flags a match may write: OpenFlow's and
// those of a decapsulated packet's outer header, named by bit in
// tunFlagMatchNames, as Open vSwitch names its FLOW_TNL_F_* flags.
const tunFlagsMatch = TunFlagOAM | TunFlagDF | TunFlagCsum | TunFlagKey

var tunFlagMatchNames = []string{"oam", "df", "csum", "key"}

// formatSetTunnel writes a load that set_tunnel or set_tunnel64 wrote as
// ovs-ofctl prints it back, and reports whether a was one.
func formatSetTunnel(b *strings.Builder, a *Action) bool {
	if a.Spelling != SpellSetTunnel && a.Spelling != SpellSetTunnel64 {
		return false
	}
	if a.Spelling == SpellSetTunnel64 {
		b.WriteString("set_tunnel64:")
	} else {
		b.WriteString("set_tunnel:")
	}
	if a.Value == 0 {
		b.WriteString("0")
	} else {
		b.WriteString("0x" + strconv.FormatUint(a.Value, 16))
	}
	return true
}

// setField128Text writes the value of a set_field on a whole 128-bit
// field as OpenFlow 1.3 dumps print it: an address for the tunnel's IPv6
// fields, a number for the others.
func setField128Text(f FieldID, v u128) string {
	if f == FieldTunIPv6Src || f == FieldTunIPv6Dst {
		var a [16]byte
		for i := range 8 {
			a[i] = byte(v.hi >> (56 - 8*i))
			a[8+i] = byte(v.lo >> (56 - 8*i))
		}
		return ipv6Text(&a)
	}
	return u128Text(v)
}

// tunFlagsText writes tun_flags bits as flag names joined by |, or 0.
func tunFlagsText(v uint64) string {
	var names []string
	for i, n := range tunFlagNames {
		if v&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "0"
	}
	return strings.Join(names, "|")
}
