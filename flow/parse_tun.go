package flow

import "strings"

// setTunnel parses set_tunnel:ID and set_tunnel64:ID: a load of the
// whole of tun_id that remembers how it was written, as Open vSwitch
// keeps NXAST_SET_TUNNEL and NXAST_SET_TUNNEL64 apart.
func (ap *actionParser) setTunnel(t *token, name string) error {
	v, err := parseNum(t.value, 64)
	if !t.hasValue || err != nil {
		return errAt(ap.s, t, "%s needs a tunnel id (a number of up to 64 bits)", name)
	}
	// An id wider than 32 bits needs set_tunnel64 whatever the flow
	// wrote, as Open vSwitch encodes (and prints) it.
	spell := SpellSetTunnel
	if name == "set_tunnel64" || v > 1<<32-1 {
		spell = SpellSetTunnel64
	}
	ap.add(Action{Type: ActLoad, Dst: Subfield{Field: FieldTunID, NBits: 64}, Value: v, Spelling: spell})
	return nil
}

// setTunFlags parses set_field:FLAGS->tun_flags: a number, flag names
// joined by |, or +oam/-oam, optionally /mask. It is one load of the oam
// bit; Open vSwitch prints a plain value back as set_field in OpenFlow
// 1.3 and a signed or masked one as the load.
func (ap *actionParser) setTunFlags(t *token, val string) error {
	v, m, reason := parseTunFlags(val)
	if reason != "" {
		return errAt(ap.s, t, "%s", reason)
	}
	spell := SpellDefault
	if val[0] != '+' && val[0] != '-' && !strings.Contains(val, "/") {
		spell, m = SpellSetField, TunFlagsOpenFlow
	}
	if m&TunFlagsOpenFlow == 0 {
		return errAt(ap.s, t, "set_field on tun_flags with an empty mask")
	}
	ap.add(Action{Type: ActLoad, Dst: Subfield{Field: FieldTunFlags, NBits: 1}, Value: v & 1, Spelling: spell})
	return nil
}

// setOuterTunnel sets the tun_tos or tun_ttl that token t of microflow s
// gives: the outer TOS or TTL a decapsulated packet came with. Open
// vSwitch's ofproto/trace takes them in a microflow, though no OpenFlow
// match can name them (a datapath flow matches them).
func setOuterTunnel(s string, t *token, k *Key) error {
	v, err := parseNum(t.value, 8)
	if !t.hasValue || err != nil {
		return errAt(s, t, "%s needs a number of up to 8 bits", t.key)
	}
	if t.key == "tun_tos" {
		k.TunTOS = uint8(v)
	} else {
		k.TunTTL = uint8(v)
	}
	return nil
}
