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
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# OVN 23.03 on ovsxdp: what ovn-controller sends that ovsxdp refuses\n\n")
	p("Produced by `%s` (as root) on %s, %s.\n\n", command(), time.Now().UTC().Format("2006-01-02 15:04 MST"), machine())
	p("| component | version |\n|---|---|\n")
	for _, k := range []string{"ovsxdp", "ovn-controller", "ovn-northd", "ovsdb-server", "go"} {
		p("| %s | %s |\n", k, strings.ReplaceAll(m.versions[k], "|", "/"))
	}
	if len(m.chassis) == 1 {
		p("\nSetup: one chassis: a sandboxed ovsdb-server with the Open_vSwitch database; the ovsxdp daemon on it (`--ovsdb`, `--rundir` = the `OVS_RUNDIR` ovn-controller uses) in a network namespace of its own; OVN's northbound and southbound ovsdb-servers and ovn-northd; ovn-controller with `system-id`, `ovn-remote` (the southbound database), `ovn-encap-type=geneve`, `ovn-encap-ip=127.0.0.1` and `ovn-bridge-datapath-type=ovsxdp`, so that the br-int it creates is an ovsxdp bridge whose OpenFlow socket it connects to. One logical switch `sw0` with two logical ports, each bound to a network namespace through a veth whose host end is a `type=afxdp` port of br-int with `external_ids:iface-id` set to the port (tx checksum offload off on the namespace side).\n\n")
	} else {
		p("\nSetup: %d chassis, each a network namespace with its own sandboxed ovsdb-server (the Open_vSwitch database), its own ovsxdp daemon on it (`--ovsdb`, `--rundir` = the `OVS_RUNDIR` its ovn-controller uses) and its own ovn-controller with `system-id`, `ovn-remote` (the southbound database), `ovn-encap-type=geneve`, `ovn-encap-ip` the host's underlay address and `ovn-bridge-datapath-type=ovsxdp`, so that the br-int it creates is an ovsxdp bridge. Each host's underlay is set up as Open vSwitch's userspace datapath does native tunnelling: br-phy, an ovsxdp bridge made with ovs-vsctl, holds the underlay veth as a `type=afxdp` port, and its LOCAL port (a TAP device) the host's address (192.0.2.N/24), so that the route to the other host leads out through br-phy; br-phy forwards with the flow `priority=0,actions=NORMAL` that a bridge made in standalone mode without a controller gets, as from ovs-vswitchd. The two underlay veths meet in a namespace of their own where a Linux bridge joins them, so that tcpdump sees the Geneve packets (a capture on an AF_XDP port's device sees neither what XDP redirects nor what AF_XDP sends). OVN's northbound and southbound ovsdb-servers and ovn-northd run beside the first chassis. One logical switch `sw0`: two logical ports on chassis-1, one on chassis-2, each bound to a network namespace (MTU 1400) through a veth whose host end is a `type=afxdp` port of br-int with `external_ids:iface-id` set to the port (tx checksum offload off on the namespace side). ovn-controller makes on each br-int the Geneve port to the other chassis.\n\n", len(m.chassis))
	}

	p("## Result\n\n")
	for _, lp := range m.ports {
		p("- logical port %s (%s %s, tunnel key %d) on %s: bound to the chassis: %s; up: %s\n", lp.name, lp.mac, lp.ip, lp.key, lp.chassis.name, yesNo(lp.bound), yesNo(lp.up))
	}
	p("- waited %s for the ports to be bound and up (`-bind-wait %s` at most each)\n", m.bindTime, o.bindWait)
	if m.hvSynced {
		p("- `ovn-nbctl --wait=hv sync` returned: every ovn-controller reported the northbound configuration in place\n")
	} else {
		p("- `ovn-nbctl --wait=hv sync` did not return: %s\n", oneLine(m.hvSyncErr))
	}
	for _, pr := range m.pings {
		verdict := "**passed**"
		if pr.stats.Received == 0 {
			verdict = "**failed**"
		}
		where := "on " + pr.from.chassis.name
		if pr.from.chassis != pr.to.chassis {
			where = pr.from.chassis.name + " → " + pr.to.chassis.name + ", through Geneve"
		}
		p("- ping %s %s → %s %s (%s) %s: %s, %d sent, %d received, %d lost", pr.from.name, pr.from.ip, pr.to.name, pr.to.ip, where, pr.what,
			verdict, pr.stats.Sent, pr.stats.Received, pr.stats.Lost())
		if pr.err != nil {
			p(" (%s)", oneLine(pr.err.Error()))
		}
		p("\n")
	}
	for _, c := range m.chassis {
		recvBy, refusedBy, totalRecv, totalRefused := tally(c.rows)
		fmRecv, fmRef := recvBy["OFPT_FLOW_MOD"], refusedBy["OFPT_FLOW_MOD"]
		p("- %s: OpenFlow messages received on br-int: %d, refused: %d; flow mods (OFPT_FLOW_MOD): %d, accepted: %d, refused: %d; flows in br-int's table at the end: %d; ovn-controller's flow connection (ofctrl) made %d times\n",
			c.name, totalRecv, totalRefused, fmRecv, fmRecv-fmRef, fmRef, c.flowsInstalled, recvBy["NXT_TLV_TABLE_REQUEST"])
	}
	p("- ovn-controller sends its flow, group and meter mods in bundles (OFPT_BUNDLE_ADD_MESSAGE); the messages inside them are counted under their own names (OFPT_FLOW_MOD, ...) in the counts above and below. It asks for the Geneve option table once per flow connection, and drops the connection at the first error reply it reads and starts over (clear everything, install everything), so each refused flow is sent again on every connection; the \"per connection\" column below divides by the number of connections. The messages it sent before it read the error still arrive, so a count per connection is how many were sent before it noticed, not how many distinct flows ovsxdp refuses\n")

	writeRouted(p, m)
	if len(m.chassis) > 1 {
		writeTunnels(p, m)
	}

	p("\n## Refused messages, match fields, actions and instructions\n\n")
	p("Every error reply ovsxdp sent, as `ovsxdp ofproto/rejections br-int` counts it on each chassis: the message ovn-controller sent, what in it was refused (the action, match field or instruction the error names; `message not supported` for a message ovsxdp does not implement), and the error.\n\n")
	var anyRefused bool
	for _, c := range m.chassis {
		for _, r := range c.rows {
			anyRefused = anyRefused || r.kind == "refused"
		}
	}
	if !anyRefused {
		p("None.\n")
	} else {
		p("| chassis | message | refused item | error | count | per connection | distinct messages |\n|---|---|---|---|---:|---:|---:|\n")
		for _, c := range m.chassis {
			recvBy, _, _, _ := tally(c.rows)
			for _, r := range c.rows {
				if r.kind == "refused" {
					p("| %s | %s | %s | %s | %d | %s | %d |\n", c.name, r.message, cell(r.reason), r.errName, r.count, perCycle(r.count, recvBy["NXT_TLV_TABLE_REQUEST"]), r.distinct)
				}
			}
		}
		p("\n\"distinct messages\" counts the different messages of a row, transaction ids aside (the daemon hashes each): ovn-controller sends the same flows again on each connection, so this is how many different flows (or requests) of OVN's ovsxdp refused.\n")
		p("\nThe first message of each row, as `ovs-ofctl ofp-print` prints it:\n\n")
		for _, c := range m.chassis {
			for _, r := range c.rows {
				if r.kind == "refused" && r.printed != "" {
					p("- %s, %s, %s:\n\n```\n%s\n```\n", c.name, r.message, cell(r.reason), clipLines(r.printed, 12))
				}
			}
		}
	}

	p("\n## Messages received\n\n| message |")
	for _, c := range m.chassis {
		p(" %s received | refused |", c.name)
	}
	p("\n|---|")
	for range m.chassis {
		p("---:|---:|")
	}
	p("\n")
	var names []string
	for _, c := range m.chassis {
		for _, r := range c.rows {
			if r.kind != "refused" && !slices.Contains(names, r.message) {
				names = append(names, r.message)
			}
		}
	}
	slices.Sort(names)
	for _, name := range names {
		p("| %s |", name)
		for _, c := range m.chassis {
			recvBy, refusedBy, _, _ := tally(c.rows)
			p(" %d | %d |", recvBy[name], refusedBy[name])
		}
		p("\n")
	}

	p("\n## What ovn-controller's log says\n")
	for _, c := range m.chassis {
		p("\n### %s\n\n", c.name)
		lines := distinctLines(m.logText[c.logName("ovn-controller")])
		if len(lines) == 0 {
			p("Nothing at WARN or above, and no OpenFlow error.\n")
			continue
		}
		p("Its lines at WARN or above and those that mention an error, without time stamps and transaction ids, with how often each appears (the %d most frequent of %d distinct):\n\n```\n", min(len(lines), 40), len(lines))
		for _, l := range lines[:min(len(lines), 40)] {
			p("%6d  %s\n", l.n, l.text)
		}
		p("```\n")
	}
	var diag bool
	for _, c := range m.chassis {
		diag = diag || len(c.diagnostics) > 0
	}
	if diag {
		p("\n## What the daemons said after a ping failed\n")
		for _, c := range m.chassis {
			for _, d := range c.diagnostics {
				p("\n%s, `%s`:\n\n```\n%s\n```\n", c.name, d.command, clipLines(d.output, 60))
			}
		}
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
	w.Write([]string{"chassis", "kind", "message", "error", "type", "code", "reason", "count", "distinct", "example"})
	for _, c := range m.chassis {
		for _, r := range c.rows {
			d := ""
			if r.kind == "refused" {
				d = strconv.Itoa(r.distinct)
			}
			w.Write([]string{c.name, r.kind, r.message, r.errName, typeCode(r, r.typ), typeCode(r, r.code), r.reason, strconv.FormatUint(r.count, 10), d, r.example})
		}
	}
	for _, pr := range m.pings {
		w.Write([]string{pr.from.chassis.name, "ping", pr.from.name + " → " + pr.to.name + " " + pr.what, "", "", "", "sent/received",
			fmt.Sprintf("%d/%d", pr.stats.Sent, pr.stats.Received), "", ""})
	}
	for _, r := range m.hops {
		w.Write([]string{r.from.chassis.name, "ping", r.from.name + " → " + r.to.name + " " + r.what, "", "", "", "sent/received",
			fmt.Sprintf("%d/%d", r.stats.Sent, r.stats.Received), "", ""})
	}
	for _, c := range m.conns {
		w.Write([]string{c.from.chassis.name, "tcp", c.from.name + " → " + c.to + " " + c.what, "", "", "", "result", connVerdict(c.err), "", ""})
	}
	w.Flush()
	return cmp.Or(w.Error(), f.Close())
}

// writeRouted reports the pings across lr0 and the TCP connections under
// sw0's ACLs and to the load balancer.
func writeRouted(p func(string, ...any), m *measurement) {
	p("\n## Across a logical router, stateful ACLs, a load balancer\n\n")
	p("A second logical switch `sw1` (10.0.1.0/24) with a port on each chassis (ports numbered after sw0's), and a logical router `lr0` joining it to sw0 (10.0.0.0/24): a router port on each switch (%s %s on sw0, %s %s on sw1), a switch port of type `router` facing each, and each namespace's default route through its switch's router port. sw0 has stateful ACLs: `to-lport 1002 'ip4 && icmp' allow-related` and `to-lport 1002 'ip4 && tcp && tcp.dst == %d' allow-related`, and the port group `pg_servers` (lsp2) has `to-lport 1001 'outport == @pg_servers && ip4.src == $clients && tcp.dst == %d' drop`, `$clients` an address set of every client's address. The load balancer `lb0`, on both switches, sends %s to port %d of %s. Each backend listens on port %d, and lsp2 also on port %d, and answers each connection with its logical port's name.\n\n",
		gateways["sw0"].mac, gateways["sw0"].ip, gateways["sw1"].mac, gateways["sw1"].ip, backendPort, deniedPort, vip, backendPort, backendNames(m), backendPort, deniedPort)
	for _, lp := range m.routed {
		p("- logical port %s (%s %s, tunnel key %d) of sw1 on %s: bound to the chassis: %s; up: %s\n", lp.name, lp.mac, lp.ip, lp.key, lp.chassis.name, yesNo(lp.bound), yesNo(lp.up))
	}
	for _, r := range m.hops {
		verdict := "**passed**"
		if !r.ok() {
			verdict = "**failed**"
		}
		where := "on " + r.from.chassis.name
		if r.from.chassis != r.to.chassis {
			where = r.from.chassis.name + " → " + r.to.chassis.name + ", through Geneve"
		}
		p("- ping %s %s → %s %s (%s) across lr0: %s, %d sent, %d received, %d lost; the echo requests seen in %s's namespace (tcpdump): %d, the first from %s to %s with TTL %d (sent with 64; want the router port's MAC %s as source, %s's MAC as destination, TTL 63)",
			r.from.name, r.from.ip, r.to.name, r.to.ip, where, verdict, r.stats.Sent, r.stats.Received, r.stats.Lost(), r.to.name, r.seen,
			orNone(r.ethSrc), orNone(r.ethDst), r.ttl, gateways[r.to.sw].mac, r.to.name)
		if r.err != nil {
			p(" (%s)", oneLine(r.err.Error()))
		}
		if r.captureErr != "" {
			p(" (capture: %s)", oneLine(r.captureErr))
		}
		p("\n")
	}
	for _, c := range m.conns {
		verdict := "**passed**"
		if !c.ok() {
			verdict = "**failed**"
		}
		want := "an answer"
		if !c.wantOK {
			want = "no answer: the SYN dropped"
		}
		got := connVerdict(c.err)
		if c.answered != "" {
			got += " by " + c.answered
		}
		p("- TCP %s %s → %s, %s: %s; want %s, got: %s\n", c.from.name, c.from.ip, c.to, c.what, verdict, want, oneLine(got))
	}
	if len(m.lbBackends) > 0 {
		var seen, missed []string
		for _, b := range m.lbBackends {
			if b.seen {
				seen = append(seen, b.lp.name)
			} else {
				missed = append(missed, b.lp.name)
			}
		}
		if len(missed) == 0 {
			p("- the load balancer's backends that answered a connection to %s from %s: %s: **passed**, every backend\n", vip, m.ports[0].name, strings.Join(seen, ", "))
		} else {
			p("- the load balancer's backends that answered no connection to %s from %s in %d: %s: **failed**\n", vip, m.ports[0].name, maxVIPConns, strings.Join(missed, ", "))
		}
	}
	for _, c := range m.chassis {
		p("- %s: of br-int's %d flows at the end, %d match on ct_state, ct_mark or ct_label and %d run ct()\n", c.name, c.flowsInstalled, c.ctMatches, c.ctActions)
	}
	p("\nThe load balancer's group, as each daemon's br-int holds it (`ovsxdp dump-groups br-int`), and the megaflows at the end that DNAT to a backend (`ovsxdp dpctl/dump-flows`, those with `nat(dst=`): a select group with `selection_method=dp_hash` has the datapath hash the connection's 5-tuple (`hash(l4(0))`) and recirculate, as Open vSwitch's does; the megaflows after the recirculation pick the bucket by `dp_hash` under the group's mask, not by the 5-tuple.\n")
	for _, c := range m.chassis {
		p("\n%s:\n\n```\n%s\n", c.name, clipLines(orNone(c.groups), 10))
		if len(c.natFlows) > 0 {
			p("\n%s\n", clipLines(strings.Join(c.natFlows, "\n"), 12))
		}
		p("```\n")
	}
}

// backendNames names the load balancer's backends.
func backendNames(m *measurement) string {
	var names []string
	for _, b := range m.lbBackends {
		names = append(names, b.lp.name)
	}
	return orNone(strings.Join(names, " and "))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// tally sums a chassis's rows by message.
func tally(rows []row) (recvBy, refusedBy map[string]uint64, totalRecv, totalRefused uint64) {
	recvBy, refusedBy = map[string]uint64{}, map[string]uint64{}
	for _, r := range rows {
		if r.kind == "refused" {
			refusedBy[r.message] += r.count
			totalRefused += r.count
		} else {
			recvBy[r.message] += r.count
			totalRecv += r.count
		}
	}
	return recvBy, refusedBy, totalRecv, totalRefused
}

// writeTunnels reports the Geneve ports ovn-controller made and the
// packets captured between the chassis, with OVN's option read back.
func writeTunnels(p func(string, ...any), m *measurement) {
	p("\n## Geneve between the chassis\n\n")
	p("The tunnel ports ovn-controller made on br-int, as the Open_vSwitch database holds them after the run (`ovs-vsctl find interface type=geneve`; `error` is what ovsxdp wrote back):\n\n")
	p("| chassis | port | type | options | ofport | error |\n|---|---|---|---|---|---|\n")
	for _, c := range m.chassis {
		if len(c.tunnels) == 0 {
			p("| %s | none | | | | |\n", c.name)
		}
		for _, tp := range c.tunnels {
			p("| %s | %s | %s | %s | %s | %s |\n", c.name, tp.name, tp.typ, cell(tp.options), tp.ofport, cell(tp.err))
		}
	}
	p("\nThe megaflows each daemon's br-int held at the end for the packets it decapsulated or encapsulated (`ovsxdp dpctl/dump-flows`, br-int's):\n")
	for _, c := range m.chassis {
		if len(c.tunnelFlows) == 0 {
			p("\n%s: none.\n", c.name)
			continue
		}
		p("\n%s:\n\n```\n%s\n```\n", c.name, clipLines(strings.Join(c.tunnelFlows, "\n"), 20))
	}
	g := m.geneve
	if g == nil {
		p("\nNo capture of the wire.\n")
		return
	}
	byKey := map[int]string{}
	for _, lp := range m.ports {
		byKey[lp.key] = lp.name
	}
	name := func(k int) string {
		if n, ok := byKey[k]; ok {
			return fmt.Sprintf("%d (%s)", k, n)
		}
		if k >= 32768 {
			return fmt.Sprintf("%d (multicast group)", k)
		}
		return strconv.Itoa(k)
	}
	p("\nThe wire's Geneve packets during the pings (tcpdump on the Linux bridge between the underlay veths, decoded by tshark with the outer UDP checksum checked): %d packets. sw0's tunnel key is %d. OVN's option is class 0x0102, type 0x80, 4 bytes: the logical ingress port's tunnel key in bits 16–30, the egress port's (or multicast group's) in bits 0–15.\n\n", g.packets, m.dpKey)
	if len(g.groups) == 0 {
		return
	}
	p("| outer source → destination | inner packet | packets | outer UDP checksum | VNI | option class | type | length | data | logical ingress → egress |\n|---|---|---:|---|---|---|---|---|---|---|\n")
	for _, gr := range g.groups {
		ports := "—"
		if in, eg, ok := ovnPorts(gr.data); ok && !strings.Contains(gr.data, ",") {
			ports = name(in) + " → " + name(eg)
		}
		p("| %s → %s | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", gr.src, gr.dst, gr.inner, gr.n, gr.csum, cell(gr.vni), cell(gr.class), cell(gr.typ),
			cell(gr.length), cell(gr.data), ports)
	}
	p("\n%s\n", geneveVerdict(m))
}

// geneveVerdict says whether every captured packet carried sw0's VNI and
// OVN's option alone, with a good outer checksum, and whether the echo
// requests and replies between the chassis named their logical ports.
func geneveVerdict(m *measurement) string {
	g := m.geneve
	var bad []string
	for _, gr := range g.groups {
		if vni, err := strconv.ParseUint(gr.vni, 0, 32); err != nil || int(vni) != m.dpKey {
			bad = append(bad, fmt.Sprintf("%d packets of VNI %s", gr.n, gr.vni))
		}
		if strings.Contains(gr.class, ",") || !slices.Contains([]string{"0x0102", "258"}, gr.class) || !slices.Contains([]string{"0x80", "128"}, gr.typ) {
			bad = append(bad, fmt.Sprintf("%d packets with option class %q type %q", gr.n, gr.class, gr.typ))
		}
		if gr.csum != "good" {
			bad = append(bad, fmt.Sprintf("%d packets with outer UDP checksum %s", gr.n, gr.csum))
		}
		in, eg, ok := ovnPorts(gr.data)
		if !ok {
			bad = append(bad, fmt.Sprintf("%d packets whose option data %q is not 4 bytes", gr.n, gr.data))
			continue
		}
		if strings.HasPrefix(gr.inner, "ICMP") {
			var want [2]string
			for _, pr := range m.pings {
				if pr.from.chassis == pr.to.chassis {
					continue
				}
				src, dst := pr.from, pr.to
				if gr.inner == "ICMP echo reply" {
					src, dst = dst, src
				}
				if gr.src == src.chassis.encapIP {
					want = [2]string{src.name, dst.name}
				}
			}
			got := [2]string{}
			for _, lp := range m.ports {
				if lp.key == in {
					got[0] = lp.name
				}
				if lp.key == eg {
					got[1] = lp.name
				}
			}
			if got != want {
				bad = append(bad, fmt.Sprintf("%d %s packets from %s name ports %d → %d, want %s → %s", gr.n, gr.inner, gr.src, in, eg, want[0], want[1]))
			}
		}
	}
	if g.packets == 0 {
		return "**No Geneve packet crossed the wire.**"
	}
	if len(bad) > 0 {
		return "**Not as OVN sends them:** " + strings.Join(bad, "; ") + "."
	}
	return "**Every packet as OVN sends it:** sw0's VNI, one option of class 0x0102 and type 0x80, a good outer UDP checksum (csum=true), and each echo request and reply names its logical ingress and egress ports."
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
