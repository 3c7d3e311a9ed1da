package datapath

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/ovsxdp/ovsxdp/datapath/tunnel"
	"github.com/ovsxdp/ovsxdp/flow"
)

// TestGeneveEncapTunMetadata: a flow that sets tun_metadata fields and
// outputs to a Geneve port sends them as the Geneve options the bridge's
// TLV map maps them to (class, type, length, value), the critical one
// setting the header's C bit; a packet whose flow sets none goes without
// options, and the two do not share a cached outer header.
func TestGeneveEncapTunMetadata(t *testing.T) {
	r := newTunnelRigKind(t, tunnel.Geneve, map[string]string{"remote_ip": "192.0.2.2", "key": "5"})
	maps := []flow.TLVMapping{{Class: 0x102, Type: 0x80, Len: 4, Index: 0}, {Class: 0xffff, Type: 0x01, Len: 8, Index: 3}}
	if err := r.in.Table().ModTLVMap(flow.TLVAdd, maps); err != nil {
		t.Fatal(err)
	}
	p := flow.Parser{TLV: r.in.Table().TLVMap()}
	for _, s := range []string{
		"priority=40000,in_port=1,udp,tp_dst=2000,actions=set_field:0x1234abcd->tun_metadata0,load:0x7->tun_metadata3[8..15],output:10",
		"priority=40000,in_port=1,udp,tp_dst=2001,actions=move:NXM_OF_UDP_DST[]->NXM_NX_TUN_METADATA0[0..15],output:10",
	} {
		f, err := p.ParseFlow(s, flow.CmdAdd)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if err := r.in.Table().Add(f); err != nil {
			t.Fatal(err)
		}
	}
	send := func(dport uint16) tunnel.Header {
		t.Helper()
		inner := buildFrame(t, frameSpec{src: "10.9.0.1", dst: "10.9.0.2", proto: "udp", sport: 1000, dport: dport, payloadSz: 20})
		r.run(t, r.w, inner)
		out := drainAll(r.up)
		if len(out) != 1 {
			t.Fatalf("uplink sent %d frames, want 1 (drops %v)", len(out), r.wp.Stats().Drops)
		}
		var h tunnel.Header
		if err := (tunnel.Decoder{Kind: tunnel.Geneve}).Decode(out[0], &h); err != nil {
			t.Fatalf("the encapsulation does not decode: %v", err)
		}
		if h.VNI != 5 || h.Dst != rigRemote || !bytes.Equal(h.Inner, inner) {
			t.Fatalf("outer header %+v", h)
		}
		return h
	}
	opt := func(class uint16, typ uint8, val ...byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, class)
		return append(append(b, typ, byte(len(val)/4)), val...)
	}

	h := send(2000)
	want := append(opt(0x102, 0x80, 0x12, 0x34, 0xab, 0xcd), opt(0xffff, 0x01, 0, 0, 0, 0, 0, 0, 7, 0)...)
	if !bytes.Equal(h.Options, want) {
		t.Errorf("options %x, want %x", h.Options, want)
	}
	if !h.Critical {
		t.Error("the C bit is clear, but type 0x80 is critical")
	}

	h = send(2001)
	if want := opt(0x102, 0x80, 0, 0, 0x07, 0xd1); !bytes.Equal(h.Options, want) {
		t.Errorf("options %x, want %x (udp_dst 2001 moved into tun_metadata0)", h.Options, want)
	}

	h = send(3000) // the rig's in_port=1 flow: no tun_metadata
	if len(h.Options) != 0 || h.Critical {
		t.Errorf("a packet without tun_metadata went with options %x (critical %v)", h.Options, h.Critical)
	}
	checkAccounting(t, r.in)
	checkAccounting(t, r.phy)
}
