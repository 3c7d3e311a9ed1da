package test

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// TestControllerTraceMatchesOVS traces flows with controller actions
// through Open vSwitch 3.1 and ovsxdp: the datapath actions must agree,
// the controller action printed as Open vSwitch's userspace action. Two
// fields are set aside: Open vSwitch's recirc_id numbers the frozen state
// of a continuation, which ovsxdp does not keep (it prints 0), and its
// trace says dont_send=1 because ofproto/trace sends nothing.
func TestControllerTraceMatchesOVS(t *testing.T) {
	flows := []string{
		"table=0,priority=10,in_port=1,actions=load:5->NXM_NX_REG0[],controller",
		"table=0,priority=10,in_port=2,actions=controller:100,output:3",
		"table=0,priority=10,in_port=3,actions=controller(reason=no_match,max_len=200,id=7,userdata=01.02.03)",
		"table=0,priority=10,in_port=4,ip,actions=mod_dl_src:00:00:00:00:00:01,controller(userdata=aa),output:1",
		"table=0,priority=5,in_port=4,actions=resubmit(,1)",
		// A table-miss flow: Open vSwitch's reason 6 (explicit miss).
		"table=1,cookie=0x2a,priority=0,actions=CONTROLLER:128",
	}
	traces := []string{"in_port=1,ip", "in_port=2,tcp", "in_port=3", "in_port=4,ip", "in_port=4,arp"}
	ports := ovsref.DefaultPorts
	ovs := ovsref.StartShared(t, "br0", ports)
	if err := ovs.AddFlows("OpenFlow13", strings.Join(flows, "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	bin := buildCLI(t)
	dir := t.TempDir()
	d := startCLIDaemon(t, bin, filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json"))
	d.run(t, "add-br", "br0")
	names := map[int]string{}
	for _, p := range ports {
		d.run(t, "add-port", "br0", p.Name, "type=mem", "ofport="+strconv.Itoa(p.OFPort))
		names[p.OFPort] = p.Name
	}
	for _, f := range flows {
		d.run(t, "add-flow", "br0", f)
	}
	norm := regexp.MustCompile(`recirc_id=\d+|dont_send=\d`)
	fix := func(s string) string {
		return norm.ReplaceAllStringFunc(s, func(m string) string {
			k, _, _ := strings.Cut(m, "=")
			return k + "=_"
		})
	}
	for _, mf := range traces {
		ot, err := ovs.Trace(mf)
		if err != nil {
			t.Fatal(err)
		}
		xt, err := ovsref.ParseTrace(d.run(t, "ofproto/trace", "br0", mf))
		if err != nil {
			t.Fatal(err)
		}
		// MapActions leaves out the controller actions of a trace (they
		// send nothing): compare the actions as printed, with port names.
		want := fix(mapPorts(ot.Actions, ovs.PortName))
		got := fix(mapPorts(xt.Actions, func(n int) (string, bool) { s, ok := names[n]; return s, ok }))
		if !strings.Contains(want, "userspace(") {
			t.Fatalf("%s: Open vSwitch's datapath actions have no controller action: %s", mf, want)
		}
		if got != want {
			t.Errorf("%s: datapath actions\n  ovs:    %s\n  ovsxdp: %s\nOpen vSwitch's trace:\n%s\novsxdp's trace:\n%s", mf, want, got, ot.Text, xt.Text)
		}
	}
}

// mapPorts replaces the datapath port numbers among the top-level
// actions by port names.
func mapPorts(actions string, portName func(int) (string, bool)) string {
	var out []string
	depth, start := 0, 0
	parts := []string{}
	for i, c := range actions {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, actions[start:i])
				start = i + 1
			}
		}
	}
	parts = append(parts, actions[start:])
	for _, a := range parts {
		if n, err := strconv.Atoi(a); err == nil {
			if name, ok := portName(n); ok {
				a = "out(" + name + ")"
			}
		}
		out = append(out, a)
	}
	return strings.Join(out, ",")
}
