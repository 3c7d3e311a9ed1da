package ovsref

import (
	"strings"
	"testing"
)

// TestSwitch starts a sandboxed Open vSwitch, loads a two-table pipeline
// and checks what the helpers read back: the flow table, a trace through
// both tables, and datapath actions mapped to port names.
func TestSwitch(t *testing.T) {
	ports := []Port{{"p1", 1}, {"p2", 2}, {"p3", 3}}
	s := Start(t, "br0", ports)
	flows := "table=0,priority=10,in_port=1,actions=load:0x2->NXM_NX_REG0[],resubmit(,1)\n" +
		"table=1,priority=5,reg0=2,actions=output:3,output:2\n"
	if err := s.AddFlows("", flows); err != nil {
		t.Fatal(err)
	}
	dump, err := s.DumpFlows("")
	if err != nil {
		t.Fatal(err)
	}
	want := "priority=10,in_port=1 actions=load:0x2->NXM_NX_REG0[],resubmit(,1)\n" +
		"table=1, priority=5,reg0=0x2 actions=output:3,output:2"
	if dump != want {
		t.Errorf("dump-flows:\n%s\nwant:\n%s", dump, want)
	}
	tr, err := s.Trace("in_port=1,ip,nw_dst=10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if got := MapActions(tr.Actions, s.PortName); got != "out(p2),out(p3)" {
		t.Errorf("datapath actions %q mapped to %q, want out(p2),out(p3)\n%s", tr.Actions, got, tr.Text)
	}
	if !strings.Contains(tr.FinalFlow, "reg0=0x2") {
		t.Errorf("final flow %q has no reg0=0x2", tr.FinalFlow)
	}
	if !strings.Contains(tr.Steps, "1. reg0=0x2, priority 5") {
		t.Errorf("the steps do not show table 1:\n%s", tr.Steps)
	}
	tr, err = s.Trace("in_port=2")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Actions != "drop" {
		t.Errorf("a miss in fail-mode secure: datapath actions %q, want drop", tr.Actions)
	}
	if _, err := s.Trace("in_port=1,nosuchfield=1"); err == nil {
		t.Error("a bad microflow traced without error")
	}
	t.Logf("%s", tr.Text)
}

func TestMapActions(t *testing.T) {
	names := map[int]string{1: "p2", 2: "p1", 3: "p3"}
	pn := func(n int) (string, bool) { s, ok := names[n]; return s, ok }
	for _, tt := range []struct{ in, want string }{
		{"drop", "drop"},
		{"3,1", "out(p2),out(p3)"},
		{"set(eth(src=00:00:00:00:00:01)),2,9", "set(eth(src=00:00:00:00:00:01)),out(odp:9),out(p1)"},
		{"clone(set(ipv4(ttl=3)),1),2", "clone(set(ipv4(ttl=3)),out(p2)),out(p1)"},
		{"set(eth(src=00:00:00:00:aa:01)),userspace(pid=0,controller(reason=2,dont_send=1,continuation=0,recirc_id=4))", "drop"},
		{"1,userspace(pid=0,controller(reason=2,dont_send=1,recirc_id=4))", "out(p2)"},
		{"userspace(pid=0,controller(reason=2,dont_send=0,recirc_id=4))", "userspace(pid=0,controller(reason=2,dont_send=0,recirc_id=4))"},
	} {
		if got := MapActions(tt.in, pn); got != tt.want {
			t.Errorf("MapActions(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestExpand(t *testing.T) {
	got, err := Expand("in_port={1|2},ip,nw_dst={10.0.0.1|10.0.0.2}")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"in_port=1,ip,nw_dst=10.0.0.1", "in_port=1,ip,nw_dst=10.0.0.2", "in_port=2,ip,nw_dst=10.0.0.1", "in_port=2,ip,nw_dst=10.0.0.2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"a{1|2", "a|b", "a{b{c}}"} {
		if _, err := Expand(bad); err == nil {
			t.Errorf("Expand(%q): no error", bad)
		}
	}
}
