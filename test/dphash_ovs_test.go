package test

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// TestDpHashTraceMatchesOVS compares the megaflows of dp_hash select
// groups with a sandboxed Open vSwitch 3.1's, through ofproto/trace: the
// first pass matches no L4 port nor address and ends hash(l4(B)) (or
// hash(sym_l4(B))) and recirc(id); the recirculated pass, traced by Open
// vSwitch with the dp_hash ovsxdp computed, matches dp_hash under the
// same mask and picks the same bucket (the same hash-to-bucket map),
// running the actions after the group (in its rule, then in the rule
// that resubmitted to it) after it.
func TestDpHashTraceMatchesOVS(t *testing.T) {
	groups := []string{
		"group_id=1,type=select,selection_method=dp_hash,bucket=bucket_id=0,weight=1,actions=output:2,bucket=bucket_id=1,weight=3,actions=output:3",
		"group_id=2,type=select,selection_method=dp_hash,selection_method_param=0x100000007,bucket=bucket_id=0,actions=output:2,bucket=bucket_id=1,actions=output:3,bucket=bucket_id=2,weight=0,actions=output:4",
		"group_id=3,type=select,selection_method=dp_hash,bucket=bucket_id=0,weight=1,actions=output:2,bucket=bucket_id=1,weight=300,actions=output:3",
	}
	flows := []string{
		"table=0,priority=10,in_port=1,tcp,actions=resubmit(,1),output:4",
		"table=0,priority=10,in_port=1,udp,actions=group:2",
		"table=0,priority=10,in_port=1,sctp,actions=group:3",
		"table=1,priority=10,actions=group:1,output:4",
	}
	ports := ovsref.DefaultPorts
	ovs := ovsref.Start(t, "br0", ports)
	if err := ovs.AddGroups("", strings.Join(groups, "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	if err := ovs.AddFlows("OpenFlow15", strings.Join(flows, "\n")+"\n"); err != nil {
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
	for _, g := range groups {
		d.run(t, "add-group", "br0", g)
	}
	for _, f := range flows {
		d.run(t, "add-flow", "br0", f)
	}
	ids := regexp.MustCompile(`recirc(_id=|\()0x[0-9a-f]+`)
	norm := func(s string) string { return ids.ReplaceAllString(s, "recirc${1}ID") }
	xdpPort := func(n int) (string, bool) { s, ok := names[n]; return s, ok }
	hashOf := regexp.MustCompile(`dp_hash=(0x[0-9a-f]+)`)

	seen := map[string]bool{}
	for i := range 48 {
		proto := []string{"tcp", "udp", "sctp"}[i%3]
		l4 := proto + "_src=" + strconv.Itoa(1024+97*i) + "," + proto + "_dst=80"
		mf := "in_port=1," + proto + ",nw_src=10.0." + strconv.Itoa(i) + "." + strconv.Itoa(3*i+1) + ",nw_dst=172.16.0.10," + l4
		out := d.run(t, "ofproto/trace", "br0", mf)
		first, second, ok := strings.Cut(out, "\n"+strings.Repeat("=", 79)+"\n")
		if proto == "sctp" {
			// 301 hash values: more than Open vSwitch maps, so the group
			// selects in the translation, as it does.
			ot, err := ovs.Trace(mf)
			if err != nil {
				t.Fatal(err)
			}
			xt, err := ovsref.ParseTrace(out)
			if err != nil {
				t.Fatal(err)
			}
			if ok || strings.Contains(ot.Actions, "hash(") || strings.Contains(xt.Actions, "hash(") {
				t.Errorf("%s: a group of too many hash values recirculates:\n%s\n%s", mf, ot.Text, out)
			}
			// Both match the ports the translation hashed. (ovsxdp's
			// default selection also matches vlan_tci=0x0000/0x1fff,
			// which Open vSwitch's megaflow leaves out for a packet
			// without a tag: a difference of that selection's, not
			// dp_hash's.)
			for _, f := range []string{",nw_src=", ",tp_src=", ",tp_dst="} {
				if !strings.Contains(xt.Megaflow, f) || !strings.Contains(ot.Megaflow, f) {
					t.Errorf("%s: megaflow without %s\n  ovs:    %s\n  ovsxdp: %s", mf, f, ot.Megaflow, xt.Megaflow)
				}
			}
			continue
		}
		if !ok {
			t.Fatalf("%s: ovsxdp's trace does not recirculate:\n%s", mf, out)
		}
		xt1, err := ovsref.ParseTrace(first)
		if err != nil {
			t.Fatal(err)
		}
		_, second, _ = strings.Cut(second, "\n"+strings.Repeat("=", 79)+"\n")
		xt2, err := ovsref.ParseTrace(second)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		ot1, err := ovs.Trace(mf)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := norm(xt1.Megaflow), norm(ot1.Megaflow); got != want {
			t.Errorf("%s: first megaflow\n  ovs:    %s\n  ovsxdp: %s", mf, want, got)
		}
		if got, want := norm(mapPorts(xt1.Actions, xdpPort)), norm(mapPorts(ot1.Actions, ovs.PortName)); got != want {
			t.Errorf("%s: first datapath actions\n  ovs:    %s\n  ovsxdp: %s", mf, want, got)
		}
		h := hashOf.FindStringSubmatch(xt2.Flow)
		if h == nil {
			t.Fatalf("%s: the recirculated pass has no dp_hash: %s", mf, xt2.Flow)
		}
		// Open vSwitch's own recirculation id, with ovsxdp's hash.
		ovsID := strings.TrimPrefix(ids.FindString(ot1.Actions), "recirc(")
		ot2, err := ovs.Trace("recirc_id=" + ovsID + ",dp_hash=" + h[1] + "," + mf)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := norm(xt2.Megaflow), norm(ot2.Megaflow); got != want {
			t.Errorf("%s: recirculated megaflow\n  ovs:    %s\n  ovsxdp: %s", mf, want, got)
		}
		got, want := mapPorts(xt2.Actions, xdpPort), mapPorts(ot2.Actions, ovs.PortName)
		if got != want {
			t.Errorf("%s, dp_hash=%s: recirculated datapath actions\n  ovs:    %s\n  ovsxdp: %s\n%s\n%s", mf, h[1], want, got, ot2.Text, second)
		}
		seen[proto+" "+got] = true
	}
	// Both groups' live buckets were taken, by some connection.
	for _, k := range []string{"tcp out(p2),out(p4),out(p4)", "tcp out(p3),out(p4),out(p4)", "udp out(p2)", "udp out(p3)"} {
		if !seen[k] {
			t.Errorf("no connection took %s (took %v)", k, seen)
		}
	}
}
