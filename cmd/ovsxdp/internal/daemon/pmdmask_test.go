package daemon

import (
	"slices"
	"strings"
	"testing"
)

func TestParsePMDCPUMask(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"0x2", []int{1}},
		{"2", []int{1}},
		{"0X6", []int{1, 2}},
		{"f", []int{0, 1, 2, 3}},
		{"0x10", []int{4}},
		{"0xA0", []int{5, 7}},
		{"100000000", []int{32}},
		{"0x0001", []int{0}},
	} {
		got, err := parsePMDCPUMask(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%q: %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"", "no hexadecimal digits"},
		{"0x", "no hexadecimal digits"},
		{"0x0", "selects no CPU"},
		{"000", "selects no CPU"},
		{"0x1g", `'g' at position 4`},
		{"1 2", `' ' at position 2`},
		{"-1", `'-' at position 1`},
		{"0x" + strings.Repeat("f", maxMaskDigits+1), "at most 256"},
	} {
		got, err := parsePMDCPUMask(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, %v; want an error with %q", c.in, got, err, c.want)
		}
	}
}
