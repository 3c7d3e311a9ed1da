package xplant_test

import (
	"testing"

	"github.com/ovsxdp/ovsxdp/test/libfuzzer/testdata/xplant"
)

func FuzzSum(f *testing.F) {
	f.Add("ab", int8(-1))
	f.Fuzz(func(t *testing.T, s string, k int8) {
		if got := xplant.Sum([]byte(s)); got < 0 || got > 255*len(s) {
			t.Fatalf("sum %d of %d bytes", got, len(s))
		}
		if k == 0x7f && s == "xplant" {
			t.Errorf("planted: %q", s)
		}
	})
}
