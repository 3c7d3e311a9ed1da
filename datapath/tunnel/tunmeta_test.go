package tunnel

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
)

// ovnMap is the mapping OVN installs: {class=0x102,type=0x80,len=4}->tun_metadata0,
// and one more of 8 bytes.
func ovnMap(t *testing.T) *flow.TLVMap {
	t.Helper()
	m, err := (*flow.TLVMap)(nil).Apply(flow.TLVAdd, []flow.TLVMapping{
		{Class: 0x102, Type: 0x80, Len: 4, Index: 0},
		{Class: 0x0001, Type: 0x7f, Len: 8, Index: 9},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGeneveOptionsToTunMetadata decapsulates a Geneve packet whose
// options the TLV map maps, and checks that flows on tun_metadata0 and
// tun_metadata9 match its key, that other values do not, and that a
// megaflow's mask for such a flow covers only the bytes consulted.
func TestGeneveOptionsToTunMetadata(t *testing.T) {
	m := ovnMap(t)
	pkt := build(t, "geneve4-opts-csum") // options 0x102/0x80 (1 2 3 4), 0xffff/5 (empty), 0x1/0x7f (9 9 9 9 8 8 8 8)
	var h Header
	check(t, (Decoder{Kind: Geneve}).Decode(pkt, &h))
	check(t, h.MapOptions(m))
	var k flow.Key
	h.ToKey(&k)
	if got := k.TunMetaValue(0); !bytes.Equal(got, []byte{1, 2, 3, 4}) {
		t.Fatalf("tun_metadata0 = %x", got)
	}
	p := flow.Parser{TLV: m}
	for _, tc := range []struct {
		inMatch   string
		wantMatch bool
	}{
		{"tun_metadata0=0x01020304", true},
		{"tun_metadata0=0x01020000/0xffff0000", true},
		{"tun_metadata0=0x0102/0xffff", false},
		{"tun_metadata0=0x01020305", false},
		{"tun_metadata0", true},
		{"tun_metadata9=0x0909090908080808", true},
		{"tun_metadata9=0x08080808/0xffffffff", true},
		{"tun_metadata9=0x1", false},
		{"tun_id=5000,tun_metadata0=0x01020304,tun_metadata9=0x0909090908080808", true},
	} {
		mt, err := p.ParseMatch(tc.inMatch)
		if err != nil {
			t.Fatalf("%s: %v", tc.inMatch, err)
		}
		if got := mt.Matches(&k); got != tc.wantMatch {
			t.Errorf("%s matches the packet: %v, want %v", tc.inMatch, got, tc.wantMatch)
		}
	}

	// A packet without the options matches none of the fields, not even
	// with a zero value.
	var bare Header
	check(t, (Decoder{Kind: Geneve}).Decode(build(t, "geneve4"), &bare))
	check(t, bare.MapOptions(m))
	var k0 flow.Key
	bare.ToKey(&k0)
	for _, s := range []string{"tun_metadata0", "tun_metadata0=0", "tun_metadata0=0/0"} {
		mt, err := p.ParseMatch(s)
		if err != nil {
			t.Fatal(err)
		}
		if mt.Matches(&k0) {
			t.Errorf("%s matches a packet without the option", s)
		}
	}

	// A mask's tunnel metadata covers the field's descriptor and the
	// masked bytes only.
	mt, err := p.ParseMatch("tun_metadata0=0x0100/0xff00")
	if err != nil {
		t.Fatal(err)
	}
	if mt.Mask.TunMeta != [flow.TunMetaSpace]byte{2: 0xff} {
		t.Errorf("mask of tun_metadata0=0x0100/0xff00: %x", mt.Mask.TunMeta)
	}
}

func TestMapOptionsRefuses(t *testing.T) {
	m := ovnMap(t)
	for _, tc := range []struct {
		name    string
		inOpts  []byte
		wantErr error
	}{
		{"mapped with another length", option(0x102, 0x80, 1, 2, 3, 4, 5, 6, 7, 8), ErrGeneveOption},
		{"unmapped critical", option(0x103, 0x81, 1, 2, 3, 4), ErrGeneveOption},
		{"unmapped not critical", option(0x103, 0x01, 1, 2, 3, 4), nil},
		{"none", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := Header{Options: tc.inOpts}
			if err := h.MapOptions(m); !errors.Is(err, tc.wantErr) {
				t.Fatalf("MapOptions: %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && h.TunMetaPresent != 0 {
				t.Fatalf("an unmapped option gave tunnel metadata %x", h.TunMetaPresent)
			}
		})
	}
}

// TestAppendMetaOptions: the options a key's tunnel metadata makes are
// those MapOptions reads back, in index order, critical when a type is.
func TestAppendMetaOptions(t *testing.T) {
	m := ovnMap(t)
	var k flow.Key
	_, off9, _ := m.Lookup(9)
	k.SetTunMeta(9, off9, 8, []byte{9, 9, 9, 9, 8, 8, 8, 8})
	_, off0, _ := m.Lookup(0)
	k.SetTunMeta(0, off0, 4, []byte{0xde, 0xad, 0xbe, 0xef})
	opts, crit := AppendMetaOptions(nil, m, &k)
	want := append(option(0x102, 0x80, 0xde, 0xad, 0xbe, 0xef), option(0x0001, 0x7f, 9, 9, 9, 9, 8, 8, 8, 8)...)
	if !bytes.Equal(opts, want) || !crit {
		t.Fatalf("options %x critical %v, want %x and critical", opts, crit, want)
	}
	h := Header{Options: opts}
	check(t, h.MapOptions(m))
	if h.TunMeta != k.TunMeta || h.TunMetaPresent != k.TunMetaPresent {
		t.Fatalf("read back %x/%x, want %x/%x", h.TunMeta, h.TunMetaPresent, k.TunMeta, k.TunMetaPresent)
	}
	if n := testing.AllocsPerRun(100, func() { _ = h.MapOptions(m) }); n != 0 {
		t.Errorf("MapOptions allocates %v times", n)
	}
}
