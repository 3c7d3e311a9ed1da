package main

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseCorpusFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []any
		wantErr bool
	}{
		{"bytes", "go test fuzz v1\n[]byte(\"\\x00ab\")\n", []any{[]byte("\x00ab")}, false},
		{"byte and rune literals", "go test fuzz v1\nbyte('0')\nbyte('\\xff')\nrune('é')\n", []any{uint8('0'), uint8(0xff), int32('é')}, false},
		{"integers", "go test fuzz v1\nint(-3)\nint8(-128)\nuint16(0xffff)\nuint64(18446744073709551615)\nint64(-9223372036854775808)\nuint(7)\n",
			[]any{-3, int8(-128), uint16(0xffff), uint64(math.MaxUint64), int64(math.MinInt64), uint(7)}, false},
		{"string bool float", "go test fuzz v1\nstring(\"a\\nb\")\nbool(true)\nfloat64(-1.5)\nfloat32(2)\n", []any{"a\nb", true, -1.5, float32(2)}, false},
		{"float bits", "go test fuzz v1\nmath.Float64frombits(0x7ff8000000000001)\n", []any{math.Float64frombits(0x7ff8000000000001)}, false},
		{"no header", "[]byte(\"x\")\n", nil, true},
		{"not a call", "go test fuzz v1\n\"x\"\n", nil, true},
		{"negative unsigned", "go test fuzz v1\nuint8(-1)\n", nil, true},
		{"unknown type", "go test fuzz v1\ncomplex128(1)\n", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCorpusFile([]byte(tc.in))
			if tc.wantErr {
				if !errors.Is(err, ErrCorpus) {
					t.Fatalf("got %v, %v; want ErrCorpus", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
			for i := range got {
				if f, ok := tc.want[i].(float64); ok && math.IsNaN(f) {
					if g, ok := got[i].(float64); !ok || math.Float64bits(g) != math.Float64bits(f) {
						t.Errorf("value %d: %#v, want NaN bits %x", i, got[i], math.Float64bits(f))
					}
					continue
				}
				if !reflect.DeepEqual(got[i], tc.want[i]) {
					t.Errorf("value %d: %#v (%T), want %#v (%T)", i, got[i], got[i], tc.want[i], tc.want[i])
				}
			}
		})
	}
}

func TestSplitArg(t *testing.T) {
	tests := []struct{ in, wantPkg, wantFuzz string }{
		{"./flow/openflow.FuzzDecode", "./flow/openflow", "FuzzDecode"},
		{"github.com/ovsxdp/ovsxdp/flow.FuzzExtract", "github.com/ovsxdp/ovsxdp/flow", "FuzzExtract"},
		{"./...", "./...", ""},
		{"./flow", "./flow", ""},
	}
	for _, tc := range tests {
		if p, f := splitArg(tc.in); p != tc.wantPkg || f != tc.wantFuzz {
			t.Errorf("splitArg(%q) = %q, %q; want %q, %q", tc.in, p, f, tc.wantPkg, tc.wantFuzz)
		}
	}
}

// Each dictionary in dict/ is named after a target's binary and holds
// only libFuzzer dictionary lines: comments and "quoted" tokens.
func TestDictionaries(t *testing.T) {
	modDir, err := moduleDir()
	if err != nil {
		t.Fatal(err)
	}
	targets, err := selectTargets(modDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tg := range targets {
		names[tg.binName()] = true
	}
	dicts, err := filepath.Glob("dict/*.dict")
	if err != nil || len(dicts) == 0 {
		t.Fatalf("no dictionaries: %v", err)
	}
	for _, d := range dicts {
		if name := strings.TrimSuffix(filepath.Base(d), ".dict"); !names[name] {
			t.Errorf("%s: no fuzz target builds a binary %s (targets: %v)", d, name, names)
		}
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range strings.Split(string(b), "\n") {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			if len(l) < 2 || l[0] != '"' || l[len(l)-1] != '"' {
				t.Errorf("%s:%d: %q is not a quoted token", d, i+1, l)
			}
		}
	}
}
