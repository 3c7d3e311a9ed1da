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
	ovs, d, names := startDpHashPair(t, groups, flows)
	seen := map[string]bool{}
	for i := range 48 {
		proto := []string{"tcp", "udp", "sctp"}[i%3]
		l4 := proto + "_src=" + strconv.Itoa(1024+97*i) + "," + proto + "_dst=80"
		mf := "in_port=1," + proto + ",nw_src=10.0." + strconv.Itoa(i) + "." + strconv.Itoa(3*i+1) + ",nw_dst=172.16.0.10," + l4
		// sctp's group has 301 hash values: more than Open vSwitch maps,
		// so it selects in the translation, as it does.
		if got := compareDpHashTraces(t, ovs, d, names, mf, proto != "sctp"); got != "" {
			seen[proto+" "+got] = true
		}
	}
	// Both groups' live buckets were taken, by some connection.
	for _, k := range []string{"tcp out(p2),out(p4),out(p4)", "tcp out(p3),out(p4),out(p4)", "udp out(p2)", "udp out(p3)"} {
		if !seen[k] {
			t.Errorf("no connection took %s (took %v)", k, seen)
		}
	}
}

// TestDefaultSelectTraceMatchesOVS compares select groups without a
// selection method with a sandboxed Open vSwitch 3.1's, through
// ofproto/trace: where the buckets' weights fit a map of at most 256 hash
// values, Open vSwitch hashes them in the datapath as dp_hash groups, with
// the symmetric L4 hash and basis 0 (hash(sym_l4(0)),recirc(id)), and
// the recirculated pass matches dp_hash under the map's mask and picks
// the map's bucket; where they do not (1 and 300; 100 buckets weighing 1
// to 100), the translation picks and the megaflow matches what it hashed.
func TestDefaultSelectTraceMatchesOVS(t *testing.T) {
	var hundred, hundredWeighed []string
	for i := range 100 {
		hundred = append(hundred, "bucket=bucket_id="+strconv.Itoa(i)+",actions=output:"+strconv.Itoa(2+i%3))
		hundredWeighed = append(hundredWeighed, "bucket=bucket_id="+strconv.Itoa(i)+",weight="+strconv.Itoa(i+1)+",actions=output:"+strconv.Itoa(2+i%3))
	}
	groups := []string{
		"group_id=1,type=select,bucket=bucket_id=0,actions=output:2,bucket=bucket_id=1,actions=output:3",
		"group_id=2,type=select,bucket=bucket_id=0,weight=1,actions=output:2,bucket=bucket_id=1,weight=2,actions=output:3,bucket=bucket_id=2,weight=5,actions=output:4",
		// 101 values: a map of 128, past 64.
		"group_id=3,type=select,bucket=bucket_id=0,weight=1,actions=output:2,bucket=bucket_id=1,weight=100,actions=output:3",
		"group_id=4,type=select,bucket=bucket_id=0,weight=1,actions=output:2,bucket=bucket_id=1,weight=255,actions=output:3,bucket=bucket_id=2,weight=0,actions=output:4",
		"group_id=5,type=select,bucket=bucket_id=0,weight=1,actions=output:2,bucket=bucket_id=1,weight=300,actions=output:3",
		"group_id=6,type=select," + strings.Join(hundred, ","),
		"group_id=7,type=select," + strings.Join(hundredWeighed, ","),
	}
	flows := []string{
		"table=0,priority=10,in_port=1,tcp,actions=resubmit(,1),output:4",
		"table=0,priority=10,in_port=1,udp,actions=group:2",
		"table=0,priority=10,in_port=1,sctp,actions=group:3",
		"table=0,priority=10,in_port=1,icmp,actions=group:4",
		"table=0,priority=10,in_port=2,tcp,actions=group:5",
		"table=0,priority=10,in_port=2,udp,actions=group:6",
		"table=0,priority=10,in_port=2,sctp,actions=group:7",
		"table=1,priority=10,actions=group:1,output:4",
	}
	ovs, d, names := startDpHashPair(t, groups, flows)
	seen := map[string]bool{}
	for i := range 63 {
		proto := []string{"tcp", "udp", "sctp", "icmp"}[i%4]
		in := 1 + i/4%2
		if proto == "icmp" && in == 2 {
			continue
		}
		mf := "in_port=" + strconv.Itoa(in) + "," + proto + ",nw_src=10.0." + strconv.Itoa(i) + "." + strconv.Itoa(3*i+1) + ",nw_dst=172.16.0.10"
		if proto != "icmp" {
			mf += "," + proto + "_src=" + strconv.Itoa(1024+97*i) + "," + proto + "_dst=80"
		}
		recirculates := in == 1 || proto == "udp"
		if got := compareDpHashTraces(t, ovs, d, names, mf, recirculates); got != "" {
			seen[mf[:strings.Index(mf, ",nw_src")]+" "+got] = true
		}
	}
	for _, k := range []string{"in_port=1,tcp out(p2),out(p4),out(p4)", "in_port=1,tcp out(p3),out(p4),out(p4)", "in_port=1,udp out(p2)", "in_port=1,udp out(p3)", "in_port=1,udp out(p4)"} {
		if !seen[k] {
			t.Errorf("no connection took %s (took %v)", k, seen)
		}
	}
}

// startDpHashPair starts a sandboxed Open vSwitch and ovsxdp, each with
// bridge br0 of ovsref.DefaultPorts and groups and flows, and returns
// them with the names of ovsxdp's ports by number.
func startDpHashPair(t *testing.T, groups, flows []string) (*ovsref.Switch, *cliDaemon, map[int]string) {
	t.Helper()
	ports := ovsref.DefaultPorts
	ovs := ovsref.StartShared(t, "br0", ports)
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
	return ovs, d, names
}

var (
	traceRecircIDs = regexp.MustCompile(`recirc(_id=|\()0x[0-9a-f]+`)
	traceDpHash    = regexp.MustCompile(`dp_hash=(0x[0-9a-f]+)`)
	traceSeparator = "\n" + strings.Repeat("=", 79) + "\n"
)

// compareDpHashTraces traces microflow mf through Open vSwitch and ovsxdp
// and compares them. When recirculates is set, both must hash and
// recirculate with the same megaflow and actions, and the recirculated
// pass, traced by Open vSwitch with the dp_hash ovsxdp computed, must
// match the same megaflow (dp_hash under the same mask) and run the same
// actions (the same bucket); it returns those actions, ports by name.
// Otherwise neither may hash, and both megaflows must match the addresses
// and ports the translation hashed; it returns "".
func compareDpHashTraces(t *testing.T, ovs *ovsref.Switch, d *cliDaemon, names map[int]string, mf string, recirculates bool) string {
	t.Helper()
	norm := func(s string) string { return traceRecircIDs.ReplaceAllString(s, "recirc${1}ID") }
	xdpPort := func(n int) (string, bool) { s, ok := names[n]; return s, ok }
	out := d.call(t, "ofproto/trace", nil, "br0", mf) // no CLI process per microflow
	first, second, ok := strings.Cut(out, traceSeparator)
	if !recirculates {
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
		// Both match what the translation hashed. (ovsxdp's default
		// selection also matches vlan_tci=0x0000/0x1fff, which Open
		// vSwitch's megaflow leaves out for a packet without a tag: a
		// difference of that selection's, not dp_hash's.)
		for _, f := range []string{",nw_src=", ",tp_src=", ",tp_dst="} {
			if !strings.Contains(xt.Megaflow, f) || !strings.Contains(ot.Megaflow, f) {
				t.Errorf("%s: megaflow without %s\n  ovs:    %s\n  ovsxdp: %s", mf, f, ot.Megaflow, xt.Megaflow)
			}
		}
		return ""
	}
	if !ok {
		t.Fatalf("%s: ovsxdp's trace does not recirculate:\n%s", mf, out)
	}
	xt1, err := ovsref.ParseTrace(first)
	if err != nil {
		t.Fatal(err)
	}
	_, second, _ = strings.Cut(second, traceSeparator)
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
	h := traceDpHash.FindStringSubmatch(xt2.Flow)
	if h == nil {
		t.Fatalf("%s: the recirculated pass has no dp_hash: %s", mf, xt2.Flow)
	}
	// Open vSwitch's own recirculation id, with ovsxdp's hash.
	ovsID := strings.TrimPrefix(traceRecircIDs.FindString(ot1.Actions), "recirc(")
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
	return got
}
