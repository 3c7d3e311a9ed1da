package daemon

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
)

// TestParseFlowLinesInParts checks that a file parsed in parts, one per
// goroutine, gives the flows in the file's order with their lines, and
// that of several bad lines in different parts the first is the one
// reported.
func TestParseFlowLinesInParts(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // parts even on one CPU
	const n = 5 * parseLinesPerWorker
	input := make([]string, 0, n)
	flows := 0
	for i := range n {
		switch {
		case i%1000 == 7:
			input = append(input, "# a comment")
		case i%1000 == 8:
			input = append(input, "")
		default:
			flows++
			input = append(input, fmt.Sprintf("priority=%d,in_port=%d,actions=output:%d", i%7, i, i%5+1))
		}
	}
	var p flow.Parser
	table := flow.NewTable()
	batch, lines, err := parseFlowLines(&p, table, input, flow.FlagResetCounts)
	if err != nil {
		t.Fatal(err)
	}
	if batch.Len() != flows || len(lines) != flows {
		t.Fatalf("%d flows, %d lines, want %d", batch.Len(), len(lines), flows)
	}
	for j, l := range lines {
		if (j > 0 && l <= lines[j-1]) || !strings.HasPrefix(input[l-1], "priority=") {
			t.Fatalf("flow %d: line %d, after %d", j, l, lines[max(j-1, 0)])
		}
	}
	if err := table.AddBatch(batch); err != nil {
		t.Fatal(err)
	}
	// Each rule's in_port is its line - 1, and the install order (dump
	// order within one priority) is the file's.
	for prio := range 7 {
		last := -1
		for _, r := range table.Dump(nil) {
			if int(r.Priority) != prio {
				continue
			}
			in := int(r.Match().Key.InPort)
			if in <= last || !strings.HasPrefix(input[in], fmt.Sprintf("priority=%d,in_port=%d,", prio, in)) {
				t.Fatalf("priority %d: rule in_port=%d out of the file's order (after %d)", prio, in, last)
			}
			last = in
		}
	}
	if got, want := table.Len(), flows; got != want {
		t.Errorf("%d rules, want %d", got, want)
	}

	bad := append([]string(nil), input...)
	bad[n-10] = "in_port=1,actions=output:zz" // in the last part
	bad[n/2+3] = "in_port=1,actions=resubmit" // in a middle part: reported
	if _, _, err := parseFlowLines(&p, flow.NewTable(), bad, 0); err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("line %d: ", n/2+4)) {
		t.Errorf("error %v, want one for line %d", err, n/2+4)
	}
}
