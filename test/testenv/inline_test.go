package testenv

import (
	"maps"
	"testing"
)

func TestParseInlineReport(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]inlineVerdict
	}{{
		name: "can and cannot",
		in: "# example.com/p\n" +
			"p/a.go:3:6: can inline (*T).f with cost 79 as: method(*T) func() bool { return t.x == 0 }\n" +
			"p/a.go:9:6: cannot inline g: function too complex: cost 81 exceeds budget 80\n" +
			"p/a.go:12:6: cannot inline h: marked go:noinline\n" +
			"p/a.go:20:9: inlining call to (*T).f\n",
		want: map[string]inlineVerdict{
			"(*T).f": {can: true},
			"g":      {why: "function too complex: cost 81 exceeds budget 80"},
			"h":      {why: "marked go:noinline"},
		},
	}, {
		name: "generic, every instance inlines",
		in: "p/a.go:5:6: can inline k[go.shape.uint8] with cost 14 as: func() {}\n" +
			"p/a.go:5:6: can inline k[uint8] with cost 21 as: func() {}\n",
		want: map[string]inlineVerdict{"k": {can: true}},
	}, {
		name: "generic, one instance does not",
		in: "p/a.go:5:6: can inline k[go.shape.uint8] with cost 14 as: func() {}\n" +
			"p/a.go:5:6: cannot inline k[go.shape.uint16]: function too complex: cost 90 exceeds budget 80\n" +
			"p/a.go:5:6: can inline k[uint8] with cost 21 as: func() {}\n",
		want: map[string]inlineVerdict{"k": {why: "function too complex: cost 90 exceeds budget 80"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseInlineReport([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("parseInlineReport = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReleaseGoFlags(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "empty", in: "", want: ""},
		{name: "kept", in: "-mod=mod -tags=netgo -trimpath", want: "-mod=mod -tags=netgo -trimpath"},
		{name: "race and cover dropped", in: "-race -mod=mod -cover -covermode=atomic --coverpkg=./...", want: "-mod=mod"},
		{name: "gcflags and sanitizers dropped", in: "-gcflags=all=-N -msan -asan -tags=x", want: "-tags=x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := releaseGoFlags(tt.in); got != tt.want {
				t.Errorf("releaseGoFlags(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
