package flow

import (
	"testing"
)

// FuzzExtract checks Extract on arbitrary bytes: it must not panic, its
// output must satisfy the invariants, extracting into a used key must give
// the same result, and wherever gopacket decodes the frame as valid (see
// referenceKey) every key field and both offsets must equal the reference.
func FuzzExtract(f *testing.F) {
	for _, tc := range extractCases(f) {
		f.Add(tc.inFrame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		compareWithReference(t, frame)
	})
}

// compareWithReference extracts frame, checks the invariants and agreement
// with the gopacket reference, and reports whether the reference called the
// frame valid (and if not, why) and whether Extract agreed with it.
func compareWithReference(t *testing.T, frame []byte) (valid, agreed bool, excluded string) {
	t.Helper()
	var k Key
	var off Offsets
	why := Extract(&k, &off, frame, testInPort)
	checkInvariants(t, frame, &k, &off, why)

	again := Key{NwSrc: 1, TpDst: 2, VLANs: [2]VLAN{{TPID: 3}}}
	againOff := Offsets{L3: 4, L4: 5}
	if againWhy := Extract(&again, &againOff, frame, testInPort); againWhy != why || again != k || againOff != off {
		t.Errorf("extracting again into a used key differs: %v %+v, key diff %s", againWhy, againOff, keyDiff(&again, &k))
	}

	checkExtractReusing(t, frame, &k, &off, why)

	// The one-pass path for common frames and the general path agree.
	general := Key{InPort: testInPort}
	var generalOff Offsets
	if generalWhy := extractGeneral(&general, &generalOff, frame); generalWhy != why || general != k || generalOff != off {
		t.Errorf("general path differs: %v %+v, key diff %s (frame %x)", generalWhy, generalOff, keyDiff(&general, &k), frame)
	}

	ref := referenceKey(frame, testInPort)
	if ref.invalid != "" {
		return false, false, ref.invalid
	}
	agreed = true
	// A frame gopacket decodes whole can still break OVS's ND option rule
	// (a repeated link-layer address), which Extract reports; nothing else.
	if why != MalformedNone && why != MalformedBadNDOption {
		t.Errorf("Extract = %v for a frame gopacket decodes as valid (frame %x)", why, frame)
		agreed = false
	}
	if k != ref.key {
		t.Errorf("key differs from the gopacket reference: %s (frame %x)", keyDiff(&k, &ref.key), frame)
		agreed = false
	}
	if off != ref.off {
		t.Errorf("offsets = %+v, reference %+v (frame %x)", off, ref.off, frame)
		agreed = false
	}
	return true, agreed, ""
}

// checkExtractReusing checks that ExtractReusing gives Extract's reason,
// key and offsets (want) into a key buffer reused in each way the datapath
// reuses one: a plain key that a plain extraction left, and a key that is
// not plain (said so); and that a key it reports plain is plain, with the
// exact-match probe of any key.
func checkExtractReusing(t *testing.T, frame []byte, want *Key, wantOff *Offsets, wantWhy Malformed) {
	t.Helper()
	// A plain key, with every word a plain key may have set not zero.
	var plainKey Key
	pw := plainKey.Words()
	for i := emcFirstWord; i < emcTunWord; i++ {
		pw[i] = ^uint64(0)
	}
	for i := emcTunEndWord; i < emcExtraWord; i++ {
		pw[i] = ^uint64(0)
	}
	if !IsPlain(&plainKey) {
		t.Fatal("a key with the common words set is not plain")
	}
	// A key that is not plain: every word set.
	var dirty Key
	for i := range dirty.Words() {
		dirty.Words()[i] = ^uint64(0)
	}
	for _, in := range []struct {
		name  string
		key   Key
		plain bool
	}{{"plain", plainKey, true}, {"not plain", dirty, false}, {"plain, said not", plainKey, false}} {
		k, off := in.key, Offsets{L3: 4, L4: 5}
		why, plain := ExtractReusing(&k, &off, frame, testInPort, in.plain)
		if why != wantWhy || k != *want || off != *wantOff {
			t.Errorf("ExtractReusing into a %s key differs from Extract: %v %+v, key diff %s (frame %x)", in.name, why, off, keyDiff(&k, want), frame)
		}
		if plain && !IsPlain(&k) {
			t.Errorf("ExtractReusing into a %s key reported a key that is not plain: %+v (frame %x)", in.name, k, frame)
		}
	}
	if IsPlain(want) {
		if got, w := emcPlainProbe(want), emcProbeOf(want); got != w {
			t.Errorf("plain probe %+v, probe %+v (frame %x)", got, w, frame)
		}
	}
}
