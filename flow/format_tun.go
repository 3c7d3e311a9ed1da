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

// tunFlagsText writes tunnel flag bits as their names (names, by bit)
// joined by |, lowest bit first, or 0.
func tunFlagsText(names []string, v uint64) string {
	var out []string
	for i, n := range names {
		if v&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return "0"
	}
	return strings.Join(out, "|")
}

// TraceTunnelText writes the tunnel metadata of a packet's flow as
// ofproto/trace's Flow and Final flow lines do ("" for none): for a
// packet that came out of a tunnel (its tunnel destination is set), every
// field Open vSwitch keeps for one, the tun_id only when the tunnel
// header carried a key; otherwise the tun_id alone when it is set.
// Fields ovsxdp has no tunnel for (Group Based Policy, ERSPAN, GTP-U)
// are written as Open vSwitch writes them unset.
func TraceTunnelText(k *Key) string {
	if !k.HasTunnel() {
		if k.TunID != 0 {
			return "tun_id=0x" + strconv.FormatUint(k.TunID, 16)
		}
		return ""
	}
	var f []string
	if k.TunFlags&TunFlagKey != 0 {
		f = append(f, "tun_id="+hexZero(k.TunID))
	}
	f = append(f, "tun_src="+ipv4Text(k.TunSrc), "tun_dst="+ipv4Text(k.TunDst),
		"tun_ipv6_src="+ipv6Text(&k.TunIPv6Src), "tun_ipv6_dst="+ipv6Text(&k.TunIPv6Dst),
		"tun_gbp_id=0", "tun_gbp_flags=0",
		// %x and %u, as Open vSwitch writes them here.
		"tun_tos="+strconv.FormatUint(uint64(k.TunTOS), 16), "tun_ttl="+strconv.Itoa(int(k.TunTTL)),
		"tun_erspan_ver=0", "gtpu_flags=0", "gtpu_msgtype=0",
		// Every flag known, as Open vSwitch writes a flow's.
		"tun_flags="+tunFlagsText(tunFlagMatchNames, uint64(k.TunFlags&tunFlagsMatch)))
	return strings.Join(f, ",")
}
