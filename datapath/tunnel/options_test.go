package tunnel

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
)

func TestParseOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		inKind  Kind
		in      map[string]string
		want    Options
		wantErr error
	}{
		{"defaults", VXLAN, map[string]string{"remote_ip": "192.0.2.2"},
			Options{Kind: VXLAN, Remote: v4B, DstPort: 4789, DF: true}, nil},
		{"geneve default port", Geneve, map[string]string{"remote_ip": "2001:db8::2"},
			Options{Kind: Geneve, Remote: v6B, DstPort: 6081, DF: true}, nil},
		{"everything", VXLAN, map[string]string{"remote_ip": "192.0.2.2", "local_ip": "192.0.2.1", "key": "42", "dst_port": "8472",
			"csum": "true", "df_default": "false", "tos": "0xb8", "ttl": "9"},
			Options{Kind: VXLAN, Remote: v4B, Local: v4A, InKey: 42, OutKey: 42, DstPort: 8472, Csum: true, TOS: 0xb8, TTL: 9}, nil},
		{"flow everywhere", Geneve, map[string]string{"remote_ip": "flow", "local_ip": "flow", "key": "flow", "tos": "inherit", "ttl": "inherit"},
			Options{Kind: Geneve, RemoteFlow: true, LocalFlow: true, InKeyFlow: true, OutKeyFlow: true, DstPort: 6081, DF: true, TOSInherit: true, TTLInherit: true}, nil},
		{"in and out keys override key", VXLAN, map[string]string{"remote_ip": "192.0.2.2", "key": "5", "out_key": "flow"},
			Options{Kind: VXLAN, Remote: v4B, InKey: 5, OutKeyFlow: true, DstPort: 4789, DF: true}, nil},
		{"mapped address", VXLAN, map[string]string{"remote_ip": "::ffff:192.0.2.2"},
			Options{Kind: VXLAN, Remote: v4B, DstPort: 4789, DF: true}, nil},
		{"no remote", VXLAN, map[string]string{"key": "1"}, Options{}, ErrOption},
		{"unknown option", VXLAN, map[string]string{"remote_ip": "192.0.2.2", "remote": "x"}, Options{}, ErrOption},
		{"bad address", VXLAN, map[string]string{"remote_ip": "192.0.2"}, Options{}, ErrOption},
		{"multicast remote", VXLAN, map[string]string{"remote_ip": "239.1.1.1"}, Options{}, ErrOption},
		{"unspecified remote", VXLAN, map[string]string{"remote_ip": "0.0.0.0"}, Options{}, ErrOption},
		{"zone", VXLAN, map[string]string{"remote_ip": "fe80::1%eth0"}, Options{}, ErrOption},
		{"key too wide", VXLAN, map[string]string{"remote_ip": "192.0.2.2", "key": "0x1000000"}, Options{}, ErrOption},
		{"port zero", VXLAN, map[string]string{"remote_ip": "192.0.2.2", "dst_port": "0"}, Options{}, ErrOption},
		{"port too big", VXLAN, map[string]string{"remote_ip": "192.0.2.2", "dst_port": "65536"}, Options{}, ErrOption},
		{"csum yes", VXLAN, map[string]string{"remote_ip": "192.0.2.2", "csum": "yes"}, Options{}, ErrOption},
		{"tos with ecn", VXLAN, map[string]string{"remote_ip": "192.0.2.2", "tos": "1"}, Options{}, ErrOption},
		{"ttl zero", VXLAN, map[string]string{"remote_ip": "192.0.2.2", "ttl": "0"}, Options{}, ErrOption},
		{"ttl too big", VXLAN, map[string]string{"remote_ip": "192.0.2.2", "ttl": "256"}, Options{}, ErrOption},
		{"local flow without remote flow", VXLAN, map[string]string{"remote_ip": "192.0.2.2", "local_ip": "flow"}, Options{}, ErrOption},
		{"mixed families", VXLAN, map[string]string{"remote_ip": "192.0.2.2", "local_ip": "2001:db8::1"}, Options{}, ErrOption},
		{"kind", 0, map[string]string{"remote_ip": "192.0.2.2"}, Options{}, ErrKind},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOptions(tc.inKind, tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ParseOptions: %v, want %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestAccepts(t *testing.T) {
	h := Header{Src: v4B, Dst: v4A, VNI: 42}
	for _, tc := range []struct {
		name string
		in   map[string]string
		want bool
	}{
		{"remote and key", map[string]string{"remote_ip": "192.0.2.2", "key": "42"}, true},
		{"other remote", map[string]string{"remote_ip": "192.0.2.3", "key": "42"}, false},
		{"other key", map[string]string{"remote_ip": "192.0.2.2", "key": "43"}, false},
		{"no key means 0", map[string]string{"remote_ip": "192.0.2.2"}, false},
		{"key flow", map[string]string{"remote_ip": "192.0.2.2", "in_key": "flow"}, true},
		{"local matches", map[string]string{"remote_ip": "flow", "local_ip": "192.0.2.1", "key": "42"}, true},
		{"local differs", map[string]string{"remote_ip": "flow", "local_ip": "192.0.2.9", "key": "42"}, false},
		{"remote flow", map[string]string{"remote_ip": "flow", "key": "flow"}, true},
	} {
		o, err := ParseOptions(VXLAN, tc.in)
		check(t, err)
		if got := o.Accepts(&h); got != tc.want {
			t.Errorf("%s: Accepts = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestKeyRoundTrip: what decapsulation stores in a key is what a
// remote_ip=flow, local_ip=flow, key=flow port sends back with.
func TestKeyRoundTrip(t *testing.T) {
	for name, c := range configs() {
		if c.DstPort != 0 {
			continue
		}
		pkt := build(t, name)
		var h Header
		check(t, Decoder{Kind: c.Kind}.Decode(pkt, &h))
		var k flow.Key
		h.ToKey(&k)
		if k.TunID != uint64(c.VNI) || k.TunTOS != h.TOS || k.TunTTL != h.TTL || k.TunFlags&flow.TunFlagKey == 0 ||
			(k.TunFlags&flow.TunFlagCsum != 0) != c.Csum || (k.TunFlags&flow.TunFlagOAM != 0) != c.OAM ||
			k.TunFlags&flow.TunFlagDF != 0 || (k.TunFlags&flow.TunFlagOpts != 0) != (len(h.Options) > 0) || !k.HasTunnel() {
			t.Errorf("%s: key %+v from header %+v", name, k, h)
		}
		o, err := ParseOptions(c.Kind, map[string]string{"remote_ip": "flow", "local_ip": "flow", "key": "flow", "csum": "true"})
		check(t, err)
		// Send back to where it came from.
		k.TunSrc, k.TunDst = k.TunDst, k.TunSrc
		k.TunIPv6Src, k.TunIPv6Dst = k.TunIPv6Dst, k.TunIPv6Src
		got, err := o.Config(&k, 0x2b, 17)
		check(t, err)
		if got.Src != c.Dst || got.Dst != c.Src || got.VNI != c.VNI || got.TOS != 3 || got.TTL != 0 || !got.DF || !got.Csum {
			t.Errorf("%s: config %+v", name, got)
		}
		if _, err := NewEncap(got); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestConfigFromOptions(t *testing.T) {
	var k flow.Key
	k.TunID = 0x1234567
	o, err := ParseOptions(Geneve, map[string]string{"remote_ip": "flow", "key": "flow", "tos": "inherit", "ttl": "inherit"})
	check(t, err)
	if _, err := o.Config(&k, 0, 0); !errors.Is(err, ErrNoRemote) {
		t.Errorf("remote_ip=flow without tun_dst: %v", err)
	}
	k.TunIPv6Dst = v6B.As16()
	c, err := o.Config(&k, 0xb9, 33)
	check(t, err)
	if c.Dst != v6B || c.Src.IsValid() || c.VNI != 0x234567 || c.TOS != 0xb9 || c.TTL != 33 || c.DstPort != 6081 {
		t.Errorf("config %+v", c)
	}
	o, err = ParseOptions(VXLAN, map[string]string{"remote_ip": "192.0.2.2", "key": "7", "tos": "0x28"})
	check(t, err)
	c, err = o.Config(&k, 0x01, 33)
	check(t, err)
	if c.Dst != netip.MustParseAddr("192.0.2.2") || c.VNI != 7 || c.TOS != 0x29 || c.TTL != 0 || !c.DF || c.Csum {
		t.Errorf("fixed options: config %+v", c)
	}
}
