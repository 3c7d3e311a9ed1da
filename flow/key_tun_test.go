package flow

import (
	"testing"
)

// TestCacheTunnelMetadata: packets that differ only in their tunnel
// metadata (tun_id, tun_src, tun_ipv6_dst, tun_flags) take the rules that
// match it, through an upcall, a megaflow hit and an exact-match cache
// hit alike, and a packet without tunnel metadata takes none of them.
func TestCacheTunnelMetadata(t *testing.T) {
	tbl := NewTable()
	var fs []Flow
	for _, s := range []string{
		"priority=10,tun_id=5,actions=output:1",
		"priority=10,tun_id=6,actions=output:2",
		"priority=20,tun_id=6,tun_src=192.0.2.2,actions=output:3",
		"priority=20,tun_ipv6_dst=2001:db8::/32,actions=output:4",
		"priority=30,tun_flags=+oam,actions=output:5",
		"priority=1,actions=output:9",
	} {
		f, err := ParseFlow(s, CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, *f)
	}
	if err := tbl.AddFlows(fs); err != nil {
		t.Fatal(err)
	}
	c, err := NewCache(tbl, 256, 1)
	if err != nil {
		t.Fatal(err)
	}
	base := Key{InPort: 7, DlType: EthTypeIPv4, NwProto: IPProtoUDP, NwSrc: 0x0a000001, NwDst: 0x0a000002}
	for _, tc := range []struct {
		name string
		edit func(k *Key)
		want uint32
	}{
		{"no tunnel", func(k *Key) {}, 9},
		{"tun_id 5", func(k *Key) { k.TunID, k.TunSrc, k.TunDst = 5, 0xc0000201, 0xc0000209 }, 1},
		{"tun_id 6", func(k *Key) { k.TunID, k.TunSrc, k.TunDst = 6, 0xc0000201, 0xc0000209 }, 2},
		{"tun_id 6 from 192.0.2.2", func(k *Key) { k.TunID, k.TunSrc, k.TunDst = 6, 0xc0000202, 0xc0000209 }, 3},
		{"ipv6 underlay", func(k *Key) { k.TunID, k.TunIPv6Dst = 6, [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1} }, 4},
		{"oam", func(k *Key) { k.TunID, k.TunFlags = 5, TunFlagOAM|TunFlagKey }, 5},
		{"df and key flags are not matched", func(k *Key) { k.TunID, k.TunFlags = 5, TunFlagDF|TunFlagKey|TunFlagCsum }, 1},
	} {
		k := base
		tc.edit(&k)
		// Three lookups: an upcall, then the caches.
		for i := range 3 {
			mf, src := c.Lookup(&k)
			if mf == nil || len(mf.Rule.Actions) != 1 || mf.Rule.Actions[0].Port != tc.want {
				t.Errorf("%s, lookup %d (%s): %s, want output:%d", tc.name, i, src, megaflowRuleText(mf), tc.want)
			}
		}
	}
	if st := c.Stats(); st.EMCHits == 0 {
		t.Errorf("no exact-match cache hits: %+v", st)
	}
}

// megaflowRuleText is the actions of mf's rule, or "no rule".
func megaflowRuleText(mf *Megaflow) string {
	if mf == nil || mf.Rule == nil {
		return "no rule"
	}
	return FormatActions(mf.Rule.Actions)
}
