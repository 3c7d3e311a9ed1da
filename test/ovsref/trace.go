package ovsref

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Trace is the output of ofproto/trace, in parts.
type Trace struct {
	Flow      string // the "Flow:" line, without its label
	Steps     string // the per-table steps, as printed
	FinalFlow string // "Final flow:"; the Flow when it says "unchanged"
	Megaflow  string
	Actions   string // "Datapath actions:"
	Text      string // the whole output
}

// ErrTraceFormat is returned for ofproto/trace output without the lines
// every trace ends with.
var ErrTraceFormat = errors.New("not ofproto/trace output")

// ParseTrace splits ofproto/trace output (Open vSwitch's or ovsxdp's)
// into its parts.
func ParseTrace(out string) (*Trace, error) {
	tr := &Trace{Text: out}
	var steps []string
	inSteps := false
	var seen int
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "Flow: "):
			tr.Flow = strings.TrimPrefix(l, "Flow: ")
			seen |= 1
		case strings.HasPrefix(l, "Final flow: "):
			tr.FinalFlow = strings.TrimPrefix(l, "Final flow: ")
			inSteps = false
			seen |= 2
		case strings.HasPrefix(l, "Megaflow: "):
			tr.Megaflow = strings.TrimPrefix(l, "Megaflow: ")
			seen |= 4
		case strings.HasPrefix(l, "Datapath actions: "):
			tr.Actions = strings.TrimPrefix(l, "Datapath actions: ")
			seen |= 8
		case strings.HasPrefix(l, "bridge(\""):
			inSteps = true
		case inSteps:
			steps = append(steps, l)
		}
	}
	if seen != 15 {
		return nil, fmt.Errorf("%w: a Flow, Final flow, Megaflow or Datapath actions line is missing", ErrTraceFormat)
	}
	if tr.FinalFlow == "unchanged" {
		tr.FinalFlow = tr.Flow
	}
	tr.Steps = strings.Trim(strings.Join(steps, "\n"), "-\n")
	return tr, nil
}

// dropUnsent removes the packet-ins that no controller receives
// (userspace(...controller(...dont_send=1...)), which Open vSwitch emits
// for a TTL exception without a controller, numbered by a recirculation
// id that differs run to run). If what is left only changes the packet
// (set, push and pop), nothing leaves the switch: it returns nothing,
// a drop.
func dropUnsent(parts []string) []string {
	kept := parts[:0:0]
	removed := false
	for _, a := range parts {
		if strings.HasPrefix(a, "userspace(") && strings.Contains(a, "controller(") && strings.Contains(a, "dont_send=1") {
			removed = true
			continue
		}
		kept = append(kept, a)
	}
	if !removed {
		return parts
	}
	for _, a := range kept {
		if !strings.HasPrefix(a, "set(") && !strings.HasPrefix(a, "push_") && !strings.HasPrefix(a, "pop_") {
			return kept
		}
	}
	return nil
}

// MapActions rewrites the port numbers of a datapath action list (the
// outputs, "3", and the clone and sample bodies inside) with portName,
// then sorts each run of consecutive outputs: a switch may emit copies of
// the same packet to several ports in any order (Open vSwitch floods in
// hash order). A port portName does not know is left as "odp:N". A
// packet-in that no controller receives is dropped from the list (see
// dropUnsent).
func MapActions(actions string, portName func(int) (string, bool)) string {
	if actions == "drop" || actions == "" {
		return actions
	}
	parts := dropUnsent(splitTop(actions))
	if len(parts) == 0 {
		return "drop"
	}
	var out, run []string
	flush := func() {
		slices.Sort(run)
		out = append(out, run...)
		run = run[:0]
	}
	for _, a := range parts {
		if n, err := strconv.Atoi(a); err == nil {
			name, ok := portName(n)
			if !ok {
				name = "odp:" + a
			}
			run = append(run, "out("+name+")")
			continue
		}
		flush()
		if i := strings.IndexByte(a, '('); i > 0 && strings.HasSuffix(a, ")") {
			switch a[:i] {
			case "clone":
				a = "clone(" + MapActions(a[i+1:len(a)-1], portName) + ")"
			}
		}
		out = append(out, a)
	}
	flush()
	return strings.Join(out, ",")
}

// splitTop splits s at the commas outside parentheses.
func splitTop(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}
