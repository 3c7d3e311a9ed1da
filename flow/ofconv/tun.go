package ofconv

import (
	"strconv"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// This file converts tunnel metadata between the wire and the flow
// language: the NXM_NX_TUN_* match fields (OXM_OF_TUNNEL_ID for tun_id in
// OpenFlow 1.2+) and the actions NXAST_SET_TUNNEL and NXAST_SET_TUNNEL64.
// Loads and set_field on the tunnel fields need nothing of their own.

// tunFields are the tunnel match fields, by flow field.
var tunFields = map[flow.FieldID]string{
	flow.FieldTunID: "tun_id", flow.FieldTunSrc: "tun_src", flow.FieldTunDst: "tun_dst",
	flow.FieldTunIPv6Src: "tun_ipv6_src", flow.FieldTunIPv6Dst: "tun_ipv6_dst", flow.FieldTunFlags: "tun_flags",
}

// tunFieldsFromMatch returns m's tunnel fields as wire fields, in Open
// vSwitch's order (tun_flags follows tun_id).
func tunFieldsFromMatch(m *flow.Match, add func(name string, v, mask []byte)) {
	k, w := &m.Key, &m.Mask
	if w.TunID != 0 {
		add("tun_id", b64(k.TunID), b64(w.TunID))
	}
	if fm := w.TunFlags & flow.TunFlagsOpenFlow; fm != 0 {
		add("tun_flags", b16(k.TunFlags&fm), b16(fm))
	}
	if w.TunSrc != 0 {
		add("tun_src", b32(k.TunSrc), b32(w.TunSrc))
	}
	if w.TunDst != 0 {
		add("tun_dst", b32(k.TunDst), b32(w.TunDst))
	}
	if w.TunIPv6Src != ([16]byte{}) {
		add("tun_ipv6_src", b16s(k.TunIPv6Src), b16s(w.TunIPv6Src))
	}
	if w.TunIPv6Dst != ([16]byte{}) {
		add("tun_ipv6_dst", b16s(k.TunIPv6Dst), b16s(w.TunIPv6Dst))
	}
	// tun_metadata0-63, each as long as the TLV map made it; a match on
	// a field's presence alone has an all-zero mask.
	k.TunMetaFields(w, func(i int, v, msk []byte) {
		add("tun_metadata"+strconv.Itoa(i), append([]byte(nil), v...), append([]byte(nil), msk...))
	})
}

// setTunnelToOF encodes a load that set_tunnel or set_tunnel64 wrote. As
// Open vSwitch, OpenFlow 1.0 carries it as the Nicira action (the 64-bit
// one when the id needs it), OpenFlow 1.1+ as a set_field on tun_id.
func setTunnelToOF(v uint8, a *flow.Action) (openflow.Action, bool) {
	if a.Spelling != flow.SpellSetTunnel && a.Spelling != flow.SpellSetTunnel64 {
		return nil, false
	}
	if v != openflow.Version10 {
		return &openflow.ActSetField{Field: field("tun_id", false, b64(a.Value), nil)}, true
	}
	return &openflow.ActSetTunnel{TunID: a.Value, Is64: a.Spelling == flow.SpellSetTunnel64 || a.Value > 1<<32-1}, true
}

// setTunnelText writes NXAST_SET_TUNNEL(64) as ovs-ofctl text.
func setTunnelText(a *openflow.ActSetTunnel) string {
	name := "set_tunnel:"
	if a.Is64 {
		name = "set_tunnel64:"
	}
	return name + "0x" + strconv.FormatUint(a.TunID, 16)
}
