package flow

import (
	"encoding/binary"
	"slices"
	"testing"
)

// fuzzActionLen is how many input bytes decode into one action.
const fuzzActionLen = 10

// decodeFuzzActions turns bytes into up to MaxActions+2 actions:
// for each 10 bytes, a type, a field and a value (also spread over IPv6).
func decodeFuzzActions(b []byte) []Action {
	var acts []Action
	for len(b) >= fuzzActionLen && len(acts) < MaxActions+2 {
		a := Action{
			Type:  ActionType(b[0] % (uint8(ActPopVLAN) + 2)),
			Field: FieldID(b[1] % uint8(numFields+1)),
			Value: binary.BigEndian.Uint64(b[2:10]),
		}
		a.Port = uint32(a.Value)
		for i := range a.IPv6 {
			a.IPv6[i] = b[2+i%8] ^ byte(i)
		}
		acts = append(acts, a)
		b = b[fuzzActionLen:]
	}
	return acts
}

func encodeFuzzActions(acts ...Action) []byte {
	var b []byte
	for _, a := range acts {
		b = append(b, byte(a.Type), byte(a.Field))
		b = binary.BigEndian.AppendUint64(b, a.Value)
	}
	return b
}

// FuzzExecute runs arbitrary actions on arbitrary frames and checks that
// Execute does not panic, keeps the key and offsets equal to extraction of
// the frame it returns, changes the length only by whole VLAN tags within
// the buffer, and keeps every checksum that was right before right after.
func FuzzExecute(f *testing.F) {
	for _, in := range []func() frameSpec{
		ipv4TCP, ipv4UDP, ipv4UDPNoCsum, ipv4ICMP, ipv4SCTP, ipv4Options, ipv6TCP, ipv6UDP, ipv6SCTP,
		ipv6Echo, ipv6NS, ipv6NA, arpRequest, tagged(ipv4TCP, vlanTag(5, 1)), tagged(ipv6UDP, dot1ad(1, 0), vlanTag(2, 0)),
		tagged(ipv4UDP, dot1ad(1, 0), vlanTag(2, 0), vlanTag(3, 0)),
	} {
		frame := in().build(f)
		for _, acts := range [][]Action{
			{set(FieldNwDst, 0x0a000001), set(FieldTpDst, 80), output(1)},
			{act(ActDecTTL, 0), set(FieldIPv6Dst, 1), set(FieldNdSll, 7), set(FieldICMPv6Type, 135)},
			{act(ActPushVLAN, EthTypeVLAN), act(ActPushVLAN, EthTypeQinQ), act(ActPopVLAN, 0), set(FieldNwTos, 0xff)},
			{act(ActPopVLAN, 0), act(ActPopVLAN, 0), set(FieldTpSrc, 1), act(ActSetVLANVID, 3)},
		} {
			f.Add(frame, uint8(8), encodeFuzzActions(acts...))
		}
		f.Add(frame[:len(frame)/2], uint8(4), encodeFuzzActions(set(FieldTpDst, 1), act(ActPopVLAN, 0), set(FieldNwSrc, 1)))
	}
	f.Fuzz(func(t *testing.T, in []byte, spare uint8, actBytes []byte) {
		acts := decodeFuzzActions(actBytes)
		buf := make([]byte, len(in), len(in)+int(spare%16))
		copy(buf, in)
		k, off := extracted(buf, execInPort)
		before := checksumErrors(slices.Clone(buf))

		got, v := Execute(buf, &k, &off, acts, &discard{})

		if v >= numVerdicts {
			t.Fatalf("verdict %d out of range", v)
		}
		if d := len(got) - len(in); d%tagLen != 0 || len(got) > cap(buf) {
			t.Fatalf("frame length %d from %d (cap %d)", len(got), len(in), cap(buf))
		}
		wantKey, wantOff := extracted(got, k.InPort) // set_field may change in_port
		// Metadata, not in the frame: the packet mark and the tunnel
		// fields, which set_field and set_tunnel write.
		wantKey.PktMark = k.PktMark
		wantKey.TunID, wantKey.TunSrc, wantKey.TunDst = k.TunID, k.TunSrc, k.TunDst
		wantKey.TunIPv6Src, wantKey.TunIPv6Dst, wantKey.TunFlags = k.TunIPv6Src, k.TunIPv6Dst, k.TunFlags
		wantKey.TunTOS, wantKey.TunTTL = k.TunTOS, k.TunTTL
		wantKey.TunMeta, wantKey.TunMetaPresent = k.TunMeta, k.TunMetaPresent
		if k != wantKey || off != wantOff {
			t.Fatalf("actions %+v\nin  %x\nout %x\nkey  %+v %+v\nwant %+v %+v", acts, in, got, k, off, wantKey, wantOff)
		}
		// Checksums: compare only when the layers checked are the same
		// ones before and after (a pop can reveal an IP header, a push
		// can hide one).
		inKey, _ := extracted(in, execInPort)
		if inKey.DlType != k.DlType || inKey.NwProto != k.NwProto || inKey.NwFrag != k.NwFrag {
			return
		}
		if p := (packet{b: got, k: &k, off: &off}); p.ipv6() != nil && p.ipv6RoutingPending() {
			return // the L4 checksum covers the final destination, not the header's
		}
		after := checksumErrors(got)
		for _, e := range after {
			if !slices.Contains(before, e) {
				t.Fatalf("actions %+v broke the %s checksum\nin  %x\nout %x", acts, e, in, got)
			}
		}
	})
}
