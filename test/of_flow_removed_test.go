package test

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// Flow mod flags against Open vSwitch 3.1: send_flow_rem's
// OFPT_FLOW_REMOVED (as ovs-ofctl monitor prints it), check_overlap's
// refusal, and the flags an OpenFlow 1.3+ dump shows.

// flagSwitch is one switch as the flag tests drive it: ovs-ofctl of a
// version against its bridge, and its run directory for monitors.
type flagSwitch struct {
	name, rundir, target string
	ofctl                func(v, cmd string, args ...string) (stdout, stderr string, err error)
}

func flagSwitches(t *testing.T) []flagSwitch {
	t.Helper()
	ports := []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}, {Name: "p3", OFPort: 3}}
	ref := ovsref.StartShared(t, "br0", ports)
	s := startOFSwitchPorts(t, ports)
	refTarget := "unix:" + filepath.Join(ref.Dir, "br0.mgmt")
	return []flagSwitch{
		{name: "Open vSwitch", rundir: ref.Dir, target: refTarget, ofctl: func(v, cmd string, args ...string) (string, string, error) {
			return ref.OfctlStderr(append([]string{"-O", v, "--timeout=30", cmd, refTarget}, args...)...)
		}},
		{name: "ovsxdp", rundir: s.runDir, target: s.target, ofctl: func(v, cmd string, args ...string) (string, string, error) {
			return s.try(v, nil, cmd, args...)
		}},
	}
}

func (s *flagSwitch) must(t *testing.T, v, cmd string, args ...string) string {
	t.Helper()
	out, errOut, err := s.ofctl(v, cmd, args...)
	if err != nil {
		t.Fatalf("%s: ovs-ofctl -O %s %s %s: %v\n%s", s.name, v, cmd, strings.Join(args, " "), err, errOut)
	}
	return out
}

// removedDuration is the part of a flow removed line that differs
// between runs.
var removedDuration = regexp.MustCompile(`duration[0-9.]+s`)

// flowRemovedLines are the flow removed messages a monitor printed, each
// on one line, without its duration.
func flowRemovedLines(out string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "FLOW_REMOVED") {
			ls = append(ls, removedDuration.ReplaceAllString(l, "duration*"))
		}
	}
	return ls
}

// TestFlowRemovedMatchesOVS removes flows with send_flow_rem in each
// way a flow goes (idle and hard timeouts, del-flows, and from OpenFlow
// 1.3 on the deletion of a group it uses, from 1.4 on of a meter), and
// others without it, under ovs-ofctl monitor (which asks for
// asynchronous messages with a miss_send_len) in each version, on Open
// vSwitch 3.1 and on ovsxdp: both print the same flow removed messages,
// in the same order, durations aside; a flow without send_flow_rem and a
// removal the version's default asynchronous configuration leaves out
// send none.
func TestFlowRemovedMatchesOVS(t *testing.T) {
	switches := flagSwitches(t)
	// ovs-ofctl monitor never sets the NXM flow format, which would
	// make them NXT_FLOW_REMOVED: the openflow package's
	// TestCodecAgainstOfctl holds that form to ovs-ofctl's decoding.
	for _, v := range []string{"OpenFlow10", "OpenFlow13", "OpenFlow14", "OpenFlow15"} {
		t.Run(v, func(t *testing.T) {
			got := map[string][]string{}
			for _, s := range switches {
				got[s.name] = flowRemovedSteps(t, &s, v)
			}
			o, x := strings.Join(got["Open vSwitch"], "\n"), strings.Join(got["ovsxdp"], "\n")
			if o != x {
				t.Errorf("ovs-ofctl -O %s monitor br0 65534, flow removed messages:\nOpen vSwitch\n%s\novsxdp\n%s", v, o, x)
			}
		})
	}
}

// flowRemovedSteps removes flows on s under a monitor of version v and
// returns the flow removed messages it printed.
func flowRemovedSteps(t *testing.T, s *flagSwitch, v string) []string {
	t.Helper()
	meters := v == "OpenFlow13" || v == "OpenFlow14" || v == "OpenFlow15"
	s.must(t, v, "del-flows")
	if v != "OpenFlow10" {
		s.must(t, v, "del-groups")
		s.must(t, v, "del-meters")
	}
	m := startMonitorArgs(t, s.rundir, "-O", v, "--timeout=60", "monitor", s.target, "65534")
	n := 0
	want := func(what string, more int) {
		t.Helper()
		n += more
		waitFor(t, func() bool { return len(flowRemovedLines(m.text())) >= n }, s.name+": "+what+": "+m.text())
	}
	// The monitor is connected when its own settings are in: a flow it
	// is told of says so.
	s.must(t, v, "add-flow", "priority=2,icmp,send_flow_rem,actions=drop")
	waitFor(t, func() bool {
		s.must(t, v, "del-flows", "icmp")
		s.must(t, v, "add-flow", "priority=2,icmp,send_flow_rem,actions=drop")
		return len(flowRemovedLines(m.text())) > 0
	}, s.name+": the monitor's first message")
	// The messages so far end with this one's.
	s.must(t, v, "add-flow", "priority=2,icmp,send_flow_rem,cookie=0x99,actions=drop")
	s.must(t, v, "del-flows", "icmp")
	waitFor(t, func() bool {
		l := flowRemovedLines(m.text())
		n = len(l)
		return n > 0 && strings.Contains(l[n-1], "cookie:0x99")
	}, s.name+": the marker's flow removed: "+m.text())
	base := n

	s.must(t, v, "add-flow", "priority=8,udp,idle_timeout=1,send_flow_rem,cookie=0x7,actions=drop")
	want("idle timeout", 1)
	s.must(t, v, "add-flow", "priority=6,arp,hard_timeout=1,idle_timeout=30,send_flow_rem,actions=output:1")
	want("hard timeout", 1)
	s.must(t, v, "add-flow", "table=3,priority=7,tcp,tp_dst=80,send_flow_rem,actions=output:2")
	s.must(t, v, "add-flow", "priority=9,tcp,actions=output:2") // no send_flow_rem
	s.must(t, v, "del-flows", "tcp")
	want("del-flows", 1)
	if v != "OpenFlow10" {
		s.must(t, v, "add-group", "group_id=7,type=all,bucket=output:1")
		s.must(t, v, "add-flow", "priority=4,udp,send_flow_rem,actions=group:7")
		s.must(t, v, "del-groups", "group_id=7")
		want("del-groups", 1)
	}
	if meters {
		s.must(t, v, "add-meter", "meter=1,pktps,band=type=drop,rate=10")
		s.must(t, v, "add-flow", "priority=3,sctp,send_flow_rem,actions=meter:1,output:1")
		s.must(t, v, "del-meters", "meter=1")
		if v != "OpenFlow13" {
			want("del-meters", 1)
		}
	}
	// A last delete: nothing the steps left out comes after it.
	s.must(t, v, "add-flow", "priority=1,send_flow_rem,actions=drop")
	s.must(t, v, "del-flows")
	want("the last del-flows", 1)
	return flowRemovedLines(m.text())[base:]
}

// TestFlowModFlagsMatchOVS: the same flow mods with flags, from
// ovs-ofctl in OpenFlow 1.0 and 1.3, to Open vSwitch 3.1 and to ovsxdp:
// check_overlap refuses the same adds with the same error
// (OFPFMFC_OVERLAP), and ovs-ofctl dump-flows in OpenFlow 1.3 and 1.5
// prints the same flags for the flows left: an OpenFlow 1.0 add's
// reset_counts, the flags an add gave, and a modify's flags, which are
// the flow's old ones.
func TestFlowModFlagsMatchOVS(t *testing.T) {
	overlaps := []struct{ installed, add string }{
		{"priority=5,ip,nw_src=10.0.0.1", "priority=5,ip,nw_dst=10.0.0.2"},
		{"priority=5,ip,nw_src=10.0.0.1", "priority=5,ip,nw_src=10.0.0.0/24"},
		{"priority=5,ip,nw_src=10.0.0.1", "priority=5,ip,nw_src=10.0.1.0/24"},
		{"priority=5,ip,nw_src=10.0.0.1", "priority=6,ip,nw_src=10.0.0.1"},
		{"priority=5,ip,nw_src=10.0.0.1", "priority=5,ip,nw_src=10.0.0.1"},
		{"priority=5,ip", "priority=5,arp"},
		{"priority=5,ip", "priority=5"},
		{"table=1,priority=5,ip", "priority=5,ip"},
		{"priority=5,in_port=1", "priority=5,in_port=2,ip"},
	}
	switches := flagSwitches(t)
	for _, v := range []string{"OpenFlow10", "OpenFlow13"} {
		answers := map[string][]string{}
		for _, s := range switches {
			for _, o := range overlaps {
				s.must(t, v, "del-flows")
				s.must(t, v, "add-flow", o.installed+",actions=drop")
				_, errOut, err := s.ofctl(v, "add-flow", o.add+",check_overlap,actions=output:3")
				answer := "taken"
				if err != nil {
					answer = "refused: " + ofErrorName(errOut)
				}
				answers[s.name] = append(answers[s.name], o.add+" over "+o.installed+": "+answer)
			}
		}
		o, x := strings.Join(answers["Open vSwitch"], "\n"), strings.Join(answers["ovsxdp"], "\n")
		if o != x || !strings.Contains(o, "OFPFMFC_OVERLAP") {
			t.Errorf("ovs-ofctl -O %s add-flow ...,check_overlap:\nOpen vSwitch\n%s\novsxdp\n%s", v, o, x)
		}
	}

	dumps := map[string]string{}
	for _, s := range switches {
		s.must(t, "OpenFlow10", "del-flows")
		s.must(t, "OpenFlow10", "add-flow", "priority=1,ip,actions=drop")
		s.must(t, "OpenFlow10", "add-flow", "priority=2,ip,send_flow_rem,check_overlap,actions=drop")
		s.must(t, "OpenFlow13", "add-flow", "priority=3,ip,actions=drop")
		s.must(t, "OpenFlow13", "add-flow", "priority=4,ip,send_flow_rem,no_packet_counts,no_byte_counts,idle_timeout=50,actions=drop")
		s.must(t, "OpenFlow13", "add-flow", "priority=5,ip,reset_counts,actions=drop")
		s.must(t, "OpenFlow13", "add-flow", "priority=6,udp,actions=drop")
		s.must(t, "OpenFlow13", "mod-flows", "udp,send_flow_rem,reset_counts,actions=output:1")
		for _, v := range []string{"OpenFlow13", "OpenFlow15"} {
			// Sorted: Open vSwitch dumps in its classifier's order.
			lines := strings.Split(flowLines(s.must(t, v, "dump-flows")), "\n")
			slices.Sort(lines)
			dumps[s.name] += strings.Join(lines, "\n") + "\n"
		}
	}
	if dumps["Open vSwitch"] != dumps["ovsxdp"] || !strings.Contains(dumps["Open vSwitch"], "send_flow_rem") {
		t.Errorf("ovs-ofctl dump-flows in OpenFlow 1.3 and 1.5:\nOpen vSwitch\n%s\novsxdp\n%s", dumps["Open vSwitch"], dumps["ovsxdp"])
	}
}

// ofErrorName is the OpenFlow error ovs-ofctl printed on its standard
// error (OFPFMFC_OVERLAP), or the whole of it if it names none.
func ofErrorName(stderr string) string {
	for _, m := range ofErrorNames.FindAllString(stderr, -1) {
		if !strings.HasPrefix(m, "OFPT_") {
			return m
		}
	}
	return strings.TrimSpace(stderr)
}

var ofErrorNames = regexp.MustCompile(`(OFP|NX)[A-Z]+_[A-Z_]+`)

// flagFlowMod is an add of priority 5 (ip, nw_src 10.0.0.1 when narrow,
// else every packet) to output:2, with the flags and idle timeout, in
// version v's standard form (with nicira, OpenFlow 1.0's NXT_FLOW_MOD).
func flagFlowMod(v uint8, nicira, narrow bool, flags, idle uint16) *openflow.FlowMod {
	fm := &openflow.FlowMod{Command: openflow.FlowAdd, Priority: 5, Flags: flags, IdleTimeout: idle, BufferID: openflow.NoBuffer,
		OutPort: openflow.PortAny, OutGroup: 0xffffffff, Nicira: nicira}
	out := []openflow.Action{&openflow.ActOutput{Port: 2, MaxLen: 0xffff}}
	var fields []openflow.Field
	if narrow {
		fields = []openflow.Field{pinField("eth_type", []byte{8, 0}), pinField("ip_src", []byte{10, 0, 0, 1})}
	}
	switch {
	case nicira:
		fm.Actions = out
		for _, f := range fields {
			nf := nxField(f.Name, f.Value)
			fm.Match = append(fm.Match, nf)
		}
	case v == openflow.Version10:
		fm.Actions = out
		fm.Match10 = openflow.Match10{Wildcards: openflow.Wc10All}
		if narrow {
			fm.Match10.Wildcards &^= openflow.Wc10DlType | 0x3f<<openflow.Wc10NwSrcShift
			fm.Match10.DlType, fm.Match10.NwSrc = 0x0800, 0x0a000001
		}
	default:
		fm.Match = fields
		fm.Instructions = []openflow.Instruction{{Type: openflow.InstApplyActions, Actions: out}}
	}
	return fm
}

// TestFlowModFlagErrorsMatchOVS: flow mods with flags their version does
// not carry, OpenFlow 1.0's emergency flag, check_overlap adds that
// overlap, and adds and modifies to every table (255), on the wire to
// Open vSwitch 3.1 and to ovsxdp: both answer the same errors, data
// included, and take the same flow mods.
func TestFlowModFlagErrorsMatchOVS(t *testing.T) {
	const (
		checkOverlap = 1 << 1
		emerg10      = 1 << 2
		resetCounts  = 1 << 2
	)
	one := func(fms ...*openflow.FlowMod) func(t *testing.T) []openflow.Message {
		return func(t *testing.T) []openflow.Message {
			var ms []openflow.Message
			for _, fm := range fms {
				ms = append(ms, fm)
			}
			return ms
		}
	}
	v10, v13, v15 := openflow.Version10, openflow.Version13, openflow.Version15
	allTables := func(v uint8, cmd uint8) *openflow.FlowMod {
		fm := flagFlowMod(v, false, true, 0, 0)
		fm.Command, fm.TableID = cmd, 0xff
		return fm
	}
	cases := []errorCase{
		// OpenFlow 1.2 and later take table 255 (all) for deletes only.
		{"add-all-tables-1.3", v13, one(allTables(v13, openflow.FlowAdd))},
		{"modify-all-tables-1.5", v15, one(allTables(v15, openflow.FlowModify))},
		{"bad-flags-1.0", v10, one(flagFlowMod(v10, false, true, 1<<3, 0))},
		{"bad-flags-nx", v10, one(flagFlowMod(v10, true, true, 1<<5, 0))},
		{"emergency-timeout-1.0", v10, one(flagFlowMod(v10, false, true, emerg10, 5))},
		{"emergency-1.0", v10, one(flagFlowMod(v10, false, true, emerg10, 0))},
		{"bad-flags-1.3", v13, one(flagFlowMod(v13, false, true, 1<<5, 0))},
		{"reset-counts-1.3", v13, one(flagFlowMod(v13, false, true, resetCounts, 0))},
		{"bad-flags-1.5", v15, one(flagFlowMod(v15, false, true, 1<<6, 0))},
		{"overlap-1.0", v10, one(flagFlowMod(v10, false, true, 0, 0), flagFlowMod(v10, false, false, checkOverlap, 0))},
		{"overlap-nx", v10, one(flagFlowMod(v10, true, true, 0, 0), flagFlowMod(v10, true, false, checkOverlap, 0))},
		{"overlap-1.3", v13, one(flagFlowMod(v13, false, true, 0, 0), flagFlowMod(v13, false, false, checkOverlap, 0))},
		{"no-overlap-identical-1.3", v13, one(flagFlowMod(v13, false, true, 0, 0), flagFlowMod(v13, false, true, checkOverlap, 0))},
		{"delete-all-tables-1.3", v13, one(allTables(v13, openflow.FlowDelete))},
	}
	answers := compareCases(t, cases, func(t *testing.T, dirs ...string) {
		for _, dir := range dirs {
			if out, err := exec.Command("ovs-ofctl", "del-flows", "unix:"+filepath.Join(dir, "br0.mgmt")).CombinedOutput(); err != nil {
				t.Fatalf("del-flows: %v\n%s", err, out)
			}
		}
	})
	taken := map[string]bool{}
	for i, a := range answers {
		if a == "" {
			taken[cases[i].name] = true
		}
	}
	if len(taken) != 3 || !taken["reset-counts-1.3"] || !taken["no-overlap-identical-1.3"] || !taken["delete-all-tables-1.3"] {
		t.Errorf("Open vSwitch took %v, want reset-counts-1.3, no-overlap-identical-1.3 and delete-all-tables-1.3", taken)
	}
}
