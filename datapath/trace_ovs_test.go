package datapath

import (
	"os"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestTraceMatchesOpenVSwitch traces the pipelines of
// testdata/ovs-trace.txt and compares the text with what Open vSwitch 3.1
// printed for them: the steps of every table, the final flow, the megaflow
// and the datapath actions. Lines that only ovsxdp prints (the copies the
// datapath would drop and the drop reason) are left out of the comparison.
func TestTraceMatchesOpenVSwitch(t *testing.T) {
	data, err := os.ReadFile("testdata/ovs-trace.txt")
	if err != nil {
		t.Fatal(err)
	}
	type tcase struct {
		flows []string
		trace string
		want  []string
	}
	var cases []tcase
	var cur *tcase
	inText := false
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case inText && l == "end":
			inText = false
		case inText:
			cur.want = append(cur.want, l)
		case l == "case:":
			cases = append(cases, tcase{})
			cur = &cases[len(cases)-1]
		case strings.HasPrefix(l, "flow: "):
			cur.flows = append(cur.flows, l[len("flow: "):])
		case strings.HasPrefix(l, "trace: "):
			cur.trace = l[len("trace: "):]
			inText = true
		}
	}
	if len(cases) < 10 {
		t.Fatalf("%d cases in testdata/ovs-trace.txt", len(cases))
	}
	for _, c := range cases {
		t.Run(strings.Join(c.flows, " "), func(t *testing.T) {
			b := newTestBridge(t, Config{Idle: IdleSleep})
			for i, name := range []string{"p1", "p2", "p3"} {
				addMemPort(t, b, vport.MemConfig{Name: name}, uint32(i+1))
			}
			addFlows(t, b, c.flows...)
			// Open vSwitch's trace takes udp_src/udp_dst; ovsxdp's
			// microflows take the same fields.
			k, err := flow.ParseMicroflow(c.trace)
			if err != nil {
				t.Fatal(err)
			}
			s := b.Trace(k).String()
			s = s[strings.Index(s, "bridge("):]
			var got []string
			for _, l := range strings.Split(s, "\n") {
				if strings.HasPrefix(l, "Drop reason: ") || strings.HasPrefix(l, "     >> output to port ") {
					continue
				}
				got = append(got, l)
			}
			g, w := strings.Join(got, "\n"), strings.Join(c.want, "\n")
			if strings.TrimSpace(g) != strings.TrimSpace(w) {
				t.Errorf("ovsxdp:\n%s\nOpen vSwitch:\n%s", g, w)
			}
		})
	}
}
