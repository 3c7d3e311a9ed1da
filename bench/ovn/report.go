package main

import (
	"bufio"
	"cmp"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// command is how the report says it was produced.
func command() string {
	args := os.Args[1:]
	if len(args) >= 2 && args[0] == "-out" && args[1] == "bench/results" {
		args = args[2:] // the Makefile's own
	}
	if len(args) == 0 {
		return "make bench-ovn"
	}
	return "make bench-ovn OVN_ARGS='" + strings.Join(args, " ") + "'"
}

func machine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%s, %d CPUs, Linux %s", cpu, runtime.NumCPU(), strings.TrimSpace(string(kernel)))
}

// vlogPrefix is the time, sequence number and module of an Open vSwitch
// log line: "2026-12-05T11:00:00.000Z|00012|ofctrl|INFO|".
var vlogPrefix = regexp.MustCompile(`^\S+\|\d+\|([^|]+)\|([A-Z]+)\|`)

// xidOrNumber hides the transaction ids and addresses that make otherwise
// equal messages distinct.
var xidOrNumber = regexp.MustCompile(`\(xid=0x[0-9a-f]+\)|xid=0x[0-9a-f]+|\(OF1\.\d\) \(xid=0x[0-9a-f]+\)`)

// distinctLines returns the log's messages at WARN or above, and its
// INFO messages that mention an error, without their time stamps, with
// the first line that follows a message of several lines, each with how
// often it appears, most frequent first.
func distinctLines(log string) []logCount {
	counts := map[string]int{}
	lines := strings.Split(log, "\n")
	for i, l := range lines {
		sm := vlogPrefix.FindStringSubmatch(l)
		if sm == nil {
			continue
		}
		if i+1 < len(lines) && lines[i+1] != "" && vlogPrefix.FindStringSubmatch(lines[i+1]) == nil {
			l += " / " + lines[i+1]
		}
		level := sm[2]
		if level != "WARN" && level != "ERR" && level != "EMER" && !strings.Contains(l, "error") && !strings.Contains(l, "ERROR") {
			continue
		}
		text := sm[1] + "|" + level + "|" + strings.TrimSpace(l[len(sm[0]):])
		text = xidOrNumber.ReplaceAllString(text, "(xid=…)")
		if len(text) > 300 {
			text = text[:300] + "…"
		}
		counts[text]++
	}
	out := make([]logCount, 0, len(counts))
	for t, n := range counts {
		out = append(out, logCount{t, n})
	}
	slices.SortFunc(out, func(a, b logCount) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.text, b.text)) })
	return out
}

type logCount struct {
	text string
	n    int
}

func writeReport(o options, m *measurement) error {
	var refused, received []row
	recvBy, refusedBy := map[string]uint64{}, map[string]uint64{}
	var totalRecv, totalRefused uint64
	for _, r := range m.rows {
		if r.kind == "refused" {
			refused = append(refused, r)
			refusedBy[r.message] += r.count
			totalRefused += r.count
		} else {
			received = append(received, r)
			recvBy[r.message] += r.count
			totalRecv += r.count
		}
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# OVN 23.03 on ovsxdp: what ovn-controller sends that ovsxdp refuses\n\n")
	p("Produced by `%s` (as root) on %s, %s.\n\n", command(), time.Now().UTC().Format("2006-01-02 15:04 MST"), machine())
	p("| component | version |\n|---|---|\n")
	for _, k := range []string{"ovsxdp", "ovn-controller", "ovn-northd", "ovsdb-server", "go"} {
		p("| %s | %s |\n", k, strings.ReplaceAll(m.versions[k], "|", "/"))
	}
	p("\nSetup: a sandboxed ovsdb-server with the Open_vSwitch database; the ovsxdp daemon on it (`--ovsdb`, `--rundir` = the `OVS_RUNDIR` ovn-controller uses) in a network namespace of its own; OVN's northbound and southbound ovsdb-servers and ovn-northd; ovn-controller with `system-id`, `ovn-remote` (the southbound database), `ovn-encap-type=geneve`, `ovn-encap-ip=127.0.0.1` and `ovn-bridge-datapath-type=ovsxdp`, so that the br-int it creates is an ovsxdp bridge whose OpenFlow socket it connects to. One logical switch `sw0` with two logical ports, each bound to a network namespace through a veth whose host end is a `type=afxdp` port of br-int with `external_ids:iface-id` set to the port (tx checksum offload off on the namespace side).\n\n")

	p("## Result\n\n")
	for _, lp := range m.ports {
		p("- logical port %s (%s %s): bound to the chassis: %s; up: %s\n", lp.name, lp.mac, lp.ip, yesNo(lp.bound), yesNo(lp.up))
	}
	p("- waited %s for the ports to be bound and up (`-bind-wait %s` at most each)\n", m.bindTime, o.bindWait)
	if m.hvSynced {
		p("- `ovn-nbctl --wait=hv sync` returned: ovn-controller reported the northbound configuration in place\n")
	} else {
		p("- `ovn-nbctl --wait=hv sync` did not return: %s\n", oneLine(m.hvSyncErr))
	}
	for _, pr := range m.pings {
		verdict := "**passed**"
		if pr.stats.Received == 0 {
			verdict = "**failed**"
		}
		p("- ping %s → %s %s: %s, %d sent, %d received, %d lost", m.ports[0].ip, m.ports[1].ip, pr.what, verdict, pr.stats.Sent, pr.stats.Received, pr.stats.Lost())
		if pr.err != nil {
			p(" (%s)", oneLine(pr.err.Error()))
		}
		p("\n")
	}
	fmRecv, fmRef := recvBy["OFPT_FLOW_MOD"], refusedBy["OFPT_FLOW_MOD"]
	p("- OpenFlow messages received on br-int: %d, refused: %d\n", totalRecv, totalRefused)
	p("- flow mods (OFPT_FLOW_MOD) sent by ovn-controller: %d, accepted: %d, refused: %d; flows in br-int's table at the end: %d\n",
		fmRecv, fmRecv-fmRef, fmRef, m.flowsInstalled)
	if n := recvBy["OFPT_BUNDLE_ADD_MESSAGE"]; n > 0 {
		p("- ovn-controller sends its flow, group and meter mods in bundles: %d OFPT_BUNDLE_ADD_MESSAGE; the messages inside them are counted under their own names (OFPT_FLOW_MOD, ...) in the counts above and below\n", n)
	}
	cycles := recvBy["NXT_TLV_TABLE_REQUEST"]
	if cycles > 0 {
		p("- ovn-controller's flow connection (ofctrl) was made %d times: it asks for the Geneve option table once per connection, and drops the connection at the first error reply it reads and starts over (clear everything, install everything), so each refused flow is sent again on every connection; the \"per connection\" column divides by %d. The messages it sent before it read the error still arrive, so a count per connection is how many were sent before it noticed, not how many distinct flows ovsxdp refuses\n", cycles, cycles)
	}

	p("\n## Refused messages, match fields, actions and instructions\n\n")
	p("Every error reply ovsxdp sent, as `ovsxdp ofproto/rejections br-int` counts it: the message ovn-controller sent, what in it was refused (the action, match field or instruction the error names; `message not supported` for a message ovsxdp does not implement), and the error.\n\n")
	if len(refused) == 0 {
		p("None.\n")
	} else {
		p("| message | refused item | error | count | per connection | distinct messages |\n|---|---|---|---:|---:|---:|\n")
		for _, r := range refused {
			p("| %s | %s | %s | %d | %s | %d |\n", r.message, cell(r.reason), r.errName, r.count, perCycle(r.count, cycles), r.distinct)
		}
		p("\n\"distinct messages\" counts the different messages of a row, transaction ids aside (the daemon hashes each): ovn-controller sends the same flows again on each connection, so this is how many different flows (or requests) of OVN's ovsxdp refused.\n")
		p("\nThe first message of each row, as `ovs-ofctl ofp-print` prints it:\n\n")
		for _, r := range refused {
			if r.printed == "" {
				continue
			}
			p("- %s, %s:\n\n```\n%s\n```\n", r.message, cell(r.reason), clipLines(r.printed, 12))
		}
	}
	p("\n## Messages received\n\n| message | received | refused |\n|---|---:|---:|\n")
	for _, r := range received {
		p("| %s | %d | %d |\n", r.message, r.count, refusedBy[r.message])
	}

	p("\n## What ovn-controller's log says\n\n")
	lines := distinctLines(m.logText["ovn-controller.log"])
	if len(lines) == 0 {
		p("Nothing at WARN or above, and no OpenFlow error.\n")
	} else {
		p("Its lines at WARN or above and those that mention an error, without time stamps and transaction ids, with how often each appears (the %d most frequent of %d distinct):\n\n```\n", min(len(lines), 40), len(lines))
		for _, l := range lines[:min(len(lines), 40)] {
			p("%6d  %s\n", l.n, l.text)
		}
		p("```\n")
	}
	if len(m.problems) > 0 {
		p("\n## Problems during the run\n\n")
		for _, e := range m.problems {
			p("- %s\n", oneLine(e))
		}
	}
	if err := os.WriteFile(filepath.Join(o.out, "ovn.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(o.out, "ovn.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"kind", "message", "error", "type", "code", "reason", "count", "distinct", "example"})
	for _, r := range m.rows {
		d := ""
		if r.kind == "refused" {
			d = strconv.Itoa(r.distinct)
		}
		w.Write([]string{r.kind, r.message, r.errName, typeCode(r, r.typ), typeCode(r, r.code), r.reason, strconv.FormatUint(r.count, 10), d, r.example})
	}
	for _, pr := range m.pings {
		w.Write([]string{"ping", pr.what, "", "", "", "sent/received", fmt.Sprintf("%d/%d", pr.stats.Sent, pr.stats.Received), "", ""})
	}
	w.Flush()
	return cmp.Or(w.Error(), f.Close())
}

func perCycle(n, cycles uint64) string {
	if cycles == 0 {
		return ""
	}
	return strconv.FormatFloat(float64(n)/float64(cycles), 'f', 1, 64)
}

// clipLines keeps the first n lines of s.
func clipLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}

func typeCode(r row, v int) string {
	if r.kind != "refused" {
		return ""
	}
	return strconv.Itoa(v)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func cell(s string) string {
	if s == "" {
		return "—"
	}
	return strings.ReplaceAll(s, "|", "\\|")
}
