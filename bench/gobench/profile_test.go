package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestBenchPattern(t *testing.T) {
	for name, want := range map[string]string{
		"EMCHit":                     "^BenchmarkEMCHit$",
		"Pipeline/emc":               "^BenchmarkPipeline$/^emc$",
		"MegaflowHit/masks=16":       "^BenchmarkMegaflowHit$/^masks=16$",
		"MegaflowLookup1M/batch/x.y": `^BenchmarkMegaflowLookup1M$/^batch$/^x\.y$`,
	} {
		got := benchPattern(name)
		if got != want {
			t.Errorf("benchPattern(%q) = %q, want %q", name, got, want)
		}
		for _, part := range strings.Split(got, "/") {
			regexp.MustCompile(part)
		}
	}
}

func TestVerdicts(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{atMost(60, 60), "yes"},
		{atMost(95.2, 60), "no, missed by 59%"},
		{atLeast(5.03, 5), "yes"},
		{atLeast(4.76, 5), "no, missed by 5%"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestParseTop(t *testing.T) {
	out := `File: bench.test
Type: cpu
Duration: 2.61s, Total samples = 2.45s (93.87%)
Showing nodes accounting for 2.10s, 85.71% of 2.45s total
Dropped 40 nodes (cum <= 0.01s)
Showing top 2 nodes out of 60
      flat  flat%   sum%        cum   cum%
     0.50s 20.41% 20.41%      0.90s 36.73%  github.com/ovsxdp/ovsxdp/flow.(*EMC).Lookup
     0.30s 12.24% 32.65%      0.30s 12.24%  runtime.memequal
`
	p := parseTop("EMCHit", out)
	if p.header != "Duration: 2.61s, Total samples = 2.45s (93.87%)" {
		t.Errorf("header %q", p.header)
	}
	if len(p.top) != 3 || !strings.HasSuffix(p.top[1], " flow.(*EMC).Lookup") || !strings.Contains(p.top[0], "flat%") {
		t.Errorf("top %q", p.top)
	}
}
