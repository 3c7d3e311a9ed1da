package test

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// Meters through the OpenFlow channel: the real ovs-ofctl adds, modifies,
// dumps and deletes meters of ovsxdp in OpenFlow 1.3 and 1.5, and what it
// prints (dump-meters, meter-stats, meter-features, dump-flows, errors) is
// what it prints from a sandboxed Open vSwitch 3.1 with the userspace
// datapath fed the same.

// ofMeterSteps are the ovs-ofctl commands of the differential test, run
// in order on both switches; each prints something or fails.
var ofMeterSteps = [][]string{
	{"meter-features"},
	{"add-meter", "meter=1,pktps,burst,stats,band=type=drop,rate=10,burst_size=20"},
	{"add-meter", "meter=2,kbps,band=type=drop,rate=1000"},
	{"add-meter", "meter=3,kbps,stats,bands=type=drop,rate=100,type=drop,rate=200"},
	{"add-meter", "meter=controller,pktps,band=type=drop,rate=5"}, // for packet ins without a meter_id
	{"dump-meters"},
	{"dump-meters", "meter=2"},
	{"add-meter", "meter=1,pktps,band=type=drop,rate=5"},                     // OFPMMFC_METER_EXISTS
	{"mod-meter", "meter=9,pktps,band=type=drop,rate=5"},                     // OFPMMFC_UNKNOWN_METER
	{"add-meter", "meter=4,pktps,band=type=dscp_remark,rate=5,prec_level=1"}, // the userspace datapath has drop bands only
	{"add-flow", "in_port=1,actions=meter:7,output:2"},                       // OFPMMFC_INVALID_METER
	{"add-flow", "in_port=1,actions=meter:1,output:2"},
	{"add-flow", "in_port=2,actions=meter:3,output:1"},
	{"add-flow", "in_port=3,actions=controller(max_len=128,meter_id=2),output:1"},
	{"add-flow", "in_port=4,actions=controller(meter_id=8)"}, // an unknown meter_id is taken
	{"dump-flows"},
	{"-O OpenFlow10", "dump-flows"}, // no meters in OpenFlow 1.0: the meter is left out
	{"trace"},                       // the datapath actions of the flows through meters
	{"meter-stats"},
	{"meter-stats", "meter=5"}, // OFPMMFC_UNKNOWN_METER
	{"mod-meter", "meter=1,kbps,band=type=drop,rate=5"},
	{"dump-meters", "meter=1"},
	{"meter-stats", "meter=1"},
	{"del-meters", "meter=1"},
	{"dump-flows"},
	{"dump-meters"},
	{"del-meters"},
	{"dump-meters"},
	{"dump-flows"},
}

var (
	meterXid      = regexp.MustCompile(`\(xid=0x[0-9a-f]+\)`)
	meterDuration = regexp.MustCompile(`duration:[0-9.]+s`)
	meterError    = regexp.MustCompile(`OFP[A-Z]+_[A-Z_]+`)
)

// normaliseMeterOutput drops what differs between any two runs: xids,
// durations, flow dumps' order and counters.
func normaliseMeterOutput(cmd, out string) string {
	if cmd == "dump-flows" {
		return ovsref.NormaliseDump(out)
	}
	out = meterXid.ReplaceAllString(out, "(xid)")
	out = meterDuration.ReplaceAllString(out, "duration:?")
	// Open vSwitch lists meters in its hash table's order: sort the
	// meters (blocks after the reply's header line).
	head, body, _ := strings.Cut(out, "\n")
	blocks := strings.Split(strings.TrimSpace(body), "\n\n")
	slices.Sort(blocks)
	return head + "\n" + strings.Join(blocks, "\n\n")
}

func TestOpenFlowMetersMatchOVS(t *testing.T) {
	ports := []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}, {Name: "p3", OFPort: 3}, {Name: "p4", OFPort: 4}}
	ref := ovsref.Start(t, "br0", ports)
	s := startOFSwitchPorts(t, ports)
	for _, v := range []string{"OpenFlow13", "OpenFlow15"} {
		t.Run(v, func(t *testing.T) {
			for i, step := range ofMeterSteps {
				if step[0] == "trace" {
					if v == "OpenFlow13" {
						// Only on the first run: Open vSwitch frees a
						// deleted meter's datapath id after a grace
						// period, and keeps the id of a meter its
						// datapath refused, so later ids differ.
						compareMeterTraces(t, ref, s)
					}
					continue
				}
				cmd, args, ver := step[0], step[1:], v
				if strings.HasPrefix(cmd, "-O ") {
					ver, cmd, args = strings.TrimPrefix(cmd, "-O "), args[0], args[1:]
				}
				extra := []string{}
				if cmd == "dump-flows" {
					extra = []string{"--no-stats"}
				}
				refOut, refErr, rerr := ref.OfctlStderr(append(append([]string{"-O", ver}, extra...), append([]string{cmd, "br0"}, args...)...)...)
				got, gotErr, gerr := s.try(ver, extra, cmd, args...)
				if (rerr == nil) != (gerr == nil) {
					t.Errorf("step %d %s %s: Open vSwitch: %v %s; ovsxdp: %v %s", i, cmd, strings.Join(args, " "), rerr, refErr, gerr, gotErr)
					continue
				}
				if rerr != nil {
					if r, g := meterError.FindString(refErr), meterError.FindString(gotErr); r != g {
						t.Errorf("step %d %s %s: Open vSwitch fails with %s (%q), ovsxdp with %s (%q)", i, cmd, strings.Join(args, " "), r, refErr, g, gotErr)
					}
					continue
				}
				if r, g := normaliseMeterOutput(cmd, refOut), normaliseMeterOutput(cmd, got); r != g {
					t.Errorf("step %d %s %s:\novsxdp:\n%s\nOpen vSwitch:\n%s", i, cmd, strings.Join(args, " "), g, r)
				}
			}
			ref.DelFlows()
			s.run(t, v, "del-flows")
		})
	}
}

// meterRecirc is the recirculation id of a userspace action, which Open
// vSwitch allocates for a controller action and ovsxdp, without
// continuations, does not.
var meterRecirc = regexp.MustCompile(`recirc_id=0x[0-9a-f]+|recirc_id=[0-9]+`)

// compareMeterTraces checks that ofproto/trace gives the same datapath
// actions on both switches for the flows through meters: meter(N) with
// the datapath meter ids Open vSwitch gives (meter 1 is meter(0)), and a
// metered controller action in a sample.
func compareMeterTraces(t *testing.T, ref *ovsref.Switch, s *ofSwitch) {
	t.Helper()
	for _, mf := range []string{"in_port=1,udp", "in_port=2,udp", "in_port=3,udp", "in_port=4,udp"} {
		want, err := ref.Trace(mf)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ovsref.ParseTrace(s.d.run(t, "ofproto/trace", "br0", mf))
		if err != nil {
			t.Fatal(err)
		}
		// Open vSwitch outputs to its datapath port numbers: the
		// flows' last action is an output, written as the OpenFlow
		// port here.
		w := meterRecirc.ReplaceAllString(want.Actions, "recirc_id=?")
		if i := strings.LastIndexByte(w, ','); i >= 0 {
			if odp, err := strconv.Atoi(w[i+1:]); err == nil {
				name, _ := ref.PortName(odp)
				of, _ := ref.OFPort(name)
				w = w[:i+1] + strconv.Itoa(of)
			}
		}
		if g := meterRecirc.ReplaceAllString(got.Actions, "recirc_id=?"); g != w {
			t.Errorf("trace %s: datapath actions\novsxdp:       %s\nOpen vSwitch: %s", mf, g, w)
		}
	}
}
