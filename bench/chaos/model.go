package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// This file sets what the datapath learnt from netlink beside what the
// userspace model of the kernel's unregister sequence assumes. ovsxdp's
// link monitor records, at debug level, each event of a watched link with
// the state changes it carries, its resyncs, lost subscriptions (ENOBUFS)
// and the deletions it applied (vport/linkmon.go). The driver hands the
// daemon's log over; linkOrders splits it into each port's link lifetimes
// (from a watch to a deletion), checks them against the model's kernel
// order (datapath/teardown_sched_test.go), and turns each into a
// FuzzTeardown input that replays the same order of state changes, with
// packets between them, through the model under every policy.

// linkRecorder is a driver whose datapath records the link events it saw.
type linkRecorder interface {
	// LinkRecord is the datapath's log since Start, one entry per
	// process.
	LinkRecord() []string
}

// linkEvent is one record of the link monitor about one port.
type linkEvent struct {
	What    string // "watch", "new", "del", "deleted", "resync", "lost"
	Up      bool
	Carrier bool
	Changes []string // the state changes a "new" event carried
	Late    bool     // an event of a link already deleted
	Via     string   // how a deletion was learnt: dellink, resync, watch
}

func (e linkEvent) String() string {
	switch e.What {
	case "new":
		if e.Late {
			return "new(late)"
		}
		if len(e.Changes) == 0 {
			return "new(none)"
		}
		return "new(" + strings.Join(e.Changes, ",") + ")"
	case "deleted":
		return "deleted(" + e.Via + ")"
	}
	return e.What
}

// logfmt parses a slog text line into its keys and values.
func logfmt(line string) map[string]string {
	kv := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		k, rest, ok := strings.Cut(line, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for end < len(rest) && (rest[end] != '"' || rest[end-1] == '\\') {
				end++
			}
			if end < len(rest) {
				if u, err := strconv.Unquote(rest[:end+1]); err == nil {
					v = u
				}
				rest = rest[end+1:]
			} else {
				rest = ""
			}
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		kv[k] = v
		line = rest
	}
	return kv
}

// parseLinkRecord returns the link monitor's records by port name, in the
// order they were logged, from the logs of one or more processes. Resyncs
// (but the first, which watches nothing yet) and lost subscriptions
// concern every port: they are added to each port's list. A process's end
// ends its ports' lifetimes.
func parseLinkRecord(logs []string, ports []string) map[string][]linkEvent {
	out := map[string][]linkEvent{}
	all := func(e linkEvent) {
		for _, p := range ports {
			if len(out[p]) > 0 {
				out[p] = append(out[p], e)
			}
		}
	}
	for _, log := range logs {
		parseProcessLog(log, out, all)
		all(linkEvent{What: "exit"})
	}
	return out
}

func parseProcessLog(log string, out map[string][]linkEvent, all func(linkEvent)) {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="link monitor: `) {
			continue
		}
		kv := logfmt(line)
		name := kv["name"]
		switch kv["msg"] {
		case "link monitor: watch":
			out[name] = append(out[name], linkEvent{What: "watch", Up: kv["up"] != "false", Carrier: kv["carrier"] != "false"})
		case "link monitor: event":
			if kv["watched"] != "true" {
				continue
			}
			e := linkEvent{What: kv["type"], Up: kv["up"] == "true", Carrier: kv["carrier"] == "true"}
			switch ch := kv["changes"]; ch {
			case "late":
				e.Late = true
			case "none", "deleted":
			default:
				e.Changes = strings.Split(ch, ",")
			}
			out[name] = append(out[name], e)
		case "link monitor: deleted":
			out[name] = append(out[name], linkEvent{What: "deleted", Via: kv["via"]})
		case "link monitor: resync":
			if kv["watched"] != "0" {
				all(linkEvent{What: "resync"})
			}
		case "link monitor: netlink subscription failed, resyncing":
			all(linkEvent{What: "lost"})
		}
	}
}

// lifetimes splits a port's records into the lifetimes of its links: each
// starts at a watch (its first element, with the state the link was
// watched in) and ends at the next one, or at its process's exit. Records
// outside a lifetime are dropped.
func lifetimes(evs []linkEvent) [][]linkEvent {
	var out [][]linkEvent
	in := false
	for _, e := range evs {
		switch {
		case e.What == "watch":
			out = append(out, []linkEvent{e})
			in = true
		case e.What == "exit":
			in = false
		case in:
			out[len(out)-1] = append(out[len(out)-1], e)
		}
	}
	return out
}

// The ways an order the datapath saw departs from the model's kernel
// order, in which the datapath learns each state change on its own, a veth
// gains carrier only while up, nothing changes once the unregister began,
// and the tx queue count stays 1 or more until the unregister sets it to 0.
const (
	DivCoalesced    = "coalesced"          // one event carried two or more state changes
	DivCarrierDown  = "carrier-while-down" // carrier gained while the device was down
	DivLate         = "late-event"         // an event of a link after its deletion
	DivDeleteUp     = "deleted-while-up"   // the deletion was the first sign: no down event before it
	DivResync       = "learnt-by-resync"   // a deletion learnt from a resync, not an event
	DivLost         = "events-lost"        // the subscription lost events (ENOBUFS) during the lifetime
	DivTxQInvisible = "txqueues-invisible" // ethtool -L changed the tx queue count and no event said so
	DivTxQZero      = "txqueues-zero"      // an event said 0 tx queues before the deletion
)

// divergences lists how lifetime l departs from the model's kernel order.
func divergences(l []linkEvent) []string {
	var out []string
	add := func(d string) {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	up := true
	for _, e := range l {
		switch e.What {
		case "new":
			if e.Late {
				add(DivLate)
				continue
			}
			if coalesced(e.Changes) {
				add(DivCoalesced)
			}
			for _, c := range e.Changes {
				switch {
				case c == "carrier+" && !e.Up:
					add(DivCarrierDown)
				case c == "txqueues=0":
					add(DivTxQZero)
				}
			}
			up = e.Up
		case "deleted":
			if up {
				add(DivDeleteUp)
			}
			if e.Via == "resync" {
				add(DivResync)
			}
		case "lost":
			add(DivLost)
		case "watch":
			up = e.Up
		}
	}
	return out
}

// coalesced reports whether one event carried state changes that the
// model makes one by one: two or more, but for running and carrier going
// together, which the model's close (and a veth's open) change at once.
func coalesced(ch []string) bool {
	if len(ch) < 2 {
		return false
	}
	if len(ch) == 2 && (slices.Equal(ch, []string{"running-", "carrier-"}) || slices.Equal(ch, []string{"carrier+", "running+"})) {
		return false
	}
	return true
}

// FuzzTeardown's encoding (datapath/teardown_sched_test.go): a header of
// policy, device kind and order, then two bytes per operation.
const (
	fzAllPolicies = 4
	fzVeth        = 0
	fzFreeOrder   = 1

	fzPacket   = 0
	fzLink     = 4
	fzCarrier  = 5
	fzTxQueues = 6
	fzStep     = 7
	fzGrace    = 11

	fzUnregistering = 1 // datapath.StepUnregistering
	fzNotify        = 3 // datapath.StepNotify
	fzStepTxQueues  = 4 // datapath.StepTxQueues
	fzDelete        = 6 // datapath.StepDelete
)

// teardownInput turns lifetime l of a port into a FuzzTeardown input: port
// p1 stands for the port, p2 sends to it (the model's first rule set), and
// after every state change the lifetime's events carried, in the order the
// link monitor applied them, p2 sends one packet with its rx queue
// recorded and one without. A deletion is applied as the monitor applies
// it (down, no carrier, unregistering, no tx queues), then the port's
// rx is detached and the port deleted, with packets in between. It runs in
// free order, in which the model takes state changes in any order, under
// every policy.
func teardownInput(l []linkEvent) []byte {
	b := []byte{fzAllPolicies, fzVeth, fzFreeOrder}
	const p1, p2 = 0, 1
	packets := func() {
		b = append(b, fzPacket, p2|1<<2|0x10, fzPacket, p2)
	}
	flag := func(on bool) byte {
		if on {
			return 4
		}
		return 0
	}
	for _, e := range l {
		if e.What != "watch" {
			continue
		}
		if !e.Up {
			b = append(b, fzLink, p1)
		}
		if !e.Carrier {
			b = append(b, fzCarrier, p1)
		}
	}
	packets()
	for _, e := range l {
		switch e.What {
		case "new":
			for _, c := range e.Changes {
				switch {
				case c == "running-" || c == "running+":
					b = append(b, fzLink, p1|flag(c == "running+"))
				case c == "carrier-" || c == "carrier+":
					b = append(b, fzCarrier, p1|flag(c == "carrier+"))
				case strings.HasPrefix(c, "txqueues="):
					n, _ := strconv.Atoi(strings.TrimPrefix(c, "txqueues="))
					b = append(b, fzTxQueues, p1|byte(n&7)<<2)
				}
				packets()
			}
		case "deleted":
			b = append(b, fzLink, p1, fzCarrier, p1, fzStep, p1|fzUnregistering<<2, fzStep, p1|fzStepTxQueues<<2)
			packets()
			b = append(b, fzStep, p1|fzNotify<<2)
			packets()
			b = append(b, fzStep, p1|fzDelete<<2, fzGrace, 0)
			packets()
			return b
		}
	}
	return b
}

// orderStats gathers the orders seen over many schedules.
type orderStats struct {
	Lifetimes   int
	Orders      map[string]int // by signature
	Divergences map[string]int // lifetimes showing each kind
	Examples    map[string]string
	Inputs      map[string][]byte // FuzzTeardown inputs, by signature
}

func newOrderStats() *orderStats {
	return &orderStats{Orders: map[string]int{}, Divergences: map[string]int{}, Examples: map[string]string{}, Inputs: map[string][]byte{}}
}

// changesState reports whether lifetime l changed the device's state: a
// lifetime that did not gives the model nothing to replay.
func changesState(l []linkEvent) bool {
	return slices.ContainsFunc(l, func(e linkEvent) bool { return len(e.Changes) > 0 || e.What == "deleted" })
}

// signature names a lifetime's order: its events, after the state it
// was watched in when that was not up with carrier.
func signature(l []linkEvent) string {
	var parts []string
	n := 0
	for _, e := range l {
		if e.What == "watch" {
			switch {
			case !e.Up:
				parts = append(parts, "(watched down)")
			case !e.Carrier:
				parts = append(parts, "(watched without carrier)")
			}
			continue
		}
		parts = append(parts, e.String())
		n++
	}
	if n == 0 {
		parts = append(parts, "(no event)")
	}
	return strings.Join(parts, " > ")
}

// note counts one lifetime showing divergence d, with an example.
func (o *orderStats) note(d, example string) {
	o.Divergences[d]++
	if _, ok := o.Examples[d]; !ok {
		o.Examples[d] = example
	}
}

// add adds the lifetimes of a schedule's record; txqSteps are the tx queue
// count changes done on each port's links, by port name (a port whose
// links never showed one counts once as txqueues-invisible).
func (o *orderStats) add(record map[string][]linkEvent, txqSteps map[string]int) {
	for _, name := range slices.Sorted(maps.Keys(record)) {
		sawTxq := false
		var last string
		for _, l := range lifetimes(record[name]) {
			o.Lifetimes++
			sig := signature(l)
			last = sig
			o.Orders[sig]++
			for _, d := range divergences(l) {
				o.note(d, name+": "+sig)
			}
			sawTxq = sawTxq || slices.ContainsFunc(l, func(e linkEvent) bool {
				return slices.ContainsFunc(e.Changes, func(c string) bool { return strings.HasPrefix(c, "txqueues=") })
			})
			if _, ok := o.Inputs[sig]; !ok && changesState(l) {
				o.Inputs[sig] = teardownInput(l)
			}
		}
		if txqSteps[name] > 0 && !sawTxq {
			o.note(DivTxQInvisible, fmt.Sprintf("%s: %d tx queue count changes; %s", name, txqSteps[name], last))
		}
	}
}

// merge adds p's counts to o.
func (o *orderStats) merge(p *orderStats) {
	o.Lifetimes += p.Lifetimes
	for k, v := range p.Orders {
		o.Orders[k] += v
	}
	for k, v := range p.Divergences {
		o.Divergences[k] += v
	}
	for k, v := range p.Examples {
		if _, ok := o.Examples[k]; !ok {
			o.Examples[k] = v
		}
	}
	for k, v := range p.Inputs {
		if _, ok := o.Inputs[k]; !ok {
			o.Inputs[k] = v
		}
	}
}

// writeCorpus writes each input that dir does not hold yet as a seed of
// FuzzTeardown's corpus (go test's file format) and returns how many it
// wrote.
func (o *orderStats) writeCorpus(dir string) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	n := 0
	for _, sig := range slices.Sorted(maps.Keys(o.Inputs)) {
		in := o.Inputs[sig]
		h := sha256.Sum256(in)
		path := filepath.Join(dir, "chaos-"+hex.EncodeToString(h[:8]))
		if _, err := os.Stat(path); err == nil {
			continue
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", string(in))
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// text describes the orders for the report.
func (o *orderStats) text() string {
	if o.Lifetimes == 0 {
		return "- netlink event orders: none recorded\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "- netlink event orders the datapath saw: %d link lifetimes, %d distinct orders\n", o.Lifetimes, len(o.Orders))
	if len(o.Divergences) == 0 {
		b.WriteString("- divergences from the model's kernel order: none\n")
	} else {
		b.WriteString("- divergences from the model's kernel order (lifetimes; first example):\n")
		for _, d := range slices.Sorted(maps.Keys(o.Divergences)) {
			fmt.Fprintf(&b, "  - %s: %d (`%s`)\n", d, o.Divergences[d], o.Examples[d])
		}
	}
	sigs := slices.SortedFunc(maps.Keys(o.Orders), func(x, y string) int {
		if o.Orders[x] != o.Orders[y] {
			return o.Orders[y] - o.Orders[x]
		}
		return strings.Compare(x, y)
	})
	b.WriteString("- most frequent orders:\n")
	for i, s := range sigs {
		if i == 8 {
			break
		}
		fmt.Fprintf(&b, "  - %d × `%s`\n", o.Orders[s], s)
	}
	return b.String()
}
