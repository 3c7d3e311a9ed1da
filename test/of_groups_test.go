package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/ovsref"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// Groups through the OpenFlow channel: the real ovs-ofctl adds, modifies,
// dumps and deletes groups of ovsxdp, in OpenFlow 1.0 (Nicira's
// NXT_GROUP_MOD and NXST_GROUP*), 1.3 and 1.5, and what it dumps is what it
// dumps from a sandboxed Open vSwitch 3.1 fed the same.

// ofGroups are the groups the test adds, per version: OpenFlow 1.3 has
// neither bucket ids nor selection methods; OpenFlow 1.0's Nicira group
// messages have both, with 1.0 actions in the buckets.
var ofGroups = map[string][]string{
	"OpenFlow10": {
		"group_id=1,type=all,bucket=bucket_id:0,actions=output:2,bucket=bucket_id:1,actions=output:3",
		"group_id=2,type=indirect,bucket=actions=mod_dl_src:00:00:00:00:bb:01,output:3",
		"group_id=3,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,watch_group:1,actions=output:3",
		"group_id=4,type=select,selection_method=hash,fields(ip_src,ip_dst),bucket=bucket_id:0,weight:1,actions=output:2,bucket=bucket_id:1,weight:2,actions=output:3",
		"group_id=6,type=all,bucket=actions=group:2,bucket=actions=mod_nw_dst:10.9.9.9,output:3",
		"group_id=7,type=select,bucket=weight:0,actions=output:1,bucket=bucket_id:5,actions=dec_ttl,output:2",
		"group_id=9,type=select,selection_method=dp_hash,bucket=bucket_id:0,weight:100,actions=output:2,bucket=bucket_id:1,weight:100,actions=output:3",
	},
	"OpenFlow13": {
		"group_id=1,type=all,bucket=output:2,bucket=output:3",
		"group_id=2,type=indirect,bucket=actions=mod_dl_src:00:00:00:00:bb:01,output:3",
		"group_id=3,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,watch_group:1,actions=output:3",
		"group_id=4,type=select,bucket=weight:1,actions=output:2,bucket=weight:2,actions=output:3",
		"group_id=6,type=all,bucket=actions=group:2,bucket=actions=set_field:10.9.9.9->ip_dst,output:3",
		"group_id=7,type=select,bucket=weight:0,actions=output:1,bucket=actions=dec_ttl,output:2",
	},
	"OpenFlow15": {
		"group_id=1,type=all,bucket=bucket_id:0,actions=output:2,bucket=bucket_id:1,actions=output:3",
		"group_id=2,type=indirect,bucket=actions=mod_dl_src:00:00:00:00:bb:01,output:3",
		"group_id=3,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,watch_group:1,actions=output:3",
		"group_id=4,type=select,selection_method=hash,fields(ip_src,ip_dst),bucket=bucket_id:0,weight:1,actions=output:2,bucket=bucket_id:1,weight:2,actions=output:3",
		"group_id=6,type=all,bucket=actions=group:2,bucket=actions=set_field:10.9.9.9->ip_dst,output:3",
		"group_id=8,type=select,selection_method=hash,selection_method_param=7,fields(ip_dst=255.255.255.0,nw_proto),bucket=weight:0,actions=output:1,bucket=bucket_id:5,actions=output:2",
		// OVN's load balancers: dp_hash, buckets that commit with NAT.
		"group_id=9,type=select,selection_method=dp_hash,bucket=bucket_id:0,weight:100,actions=ct(commit,table=15,zone=NXM_NX_REG13[0..15],nat(dst=10.0.0.2:8080)),bucket=bucket_id:1,weight:100,actions=ct(commit,table=15,zone=NXM_NX_REG13[0..15],nat(dst=10.0.0.3:8080))",
		"group_id=10,type=select,selection_method=dp_hash,selection_method_param=4294967303,bucket=bucket_id:0,actions=output:2",
	},
}

func TestOpenFlowGroups(t *testing.T) {
	ports := []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}, {Name: "p3", OFPort: 3}}
	ref := ovsref.StartShared(t, "br0", ports)
	s := startOFSwitchPorts(t, ports)
	for _, v := range []string{"OpenFlow10", "OpenFlow13", "OpenFlow15"} {
		t.Run(v, func(t *testing.T) {
			groups := ofGroups[v]
			file := filepath.Join(t.TempDir(), "groups.txt")
			if err := os.WriteFile(file, []byte("# groups\n"+strings.Join(groups[1:], "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := ref.DelFlows(); err != nil {
				t.Fatal(err)
			}
			s.run(t, v, "del-flows")
			s.run(t, v, "del-groups")
			if got := s.d.run(t, "dump-groups", "br0"); got != "" {
				t.Fatalf("del-groups left %q", got)
			}

			// compare checks that ovs-ofctl dumps the same groups from
			// ovsxdp as from Open vSwitch, and that ovsxdp's own
			// dump-groups has them too.
			compare := func(when string) {
				t.Helper()
				want, err := ref.DumpGroups(v)
				if err != nil {
					t.Fatal(err)
				}
				got := ovsref.NormaliseDump(s.run(t, v, "dump-groups"))
				if got != want {
					t.Errorf("%s: ovs-ofctl -O %s dump-groups\novsxdp:\n%s\nOpen vSwitch:\n%s", when, v, got, want)
				}
				if v == "OpenFlow15" {
					if cli := ovsref.NormaliseDump(s.d.run(t, "dump-groups", "br0")); cli != got {
						t.Errorf("%s: ovsxdp dump-groups:\n%s\novs-ofctl dump-groups:\n%s", when, cli, got)
					}
				}
			}

			// add-group, then add-groups FILE.
			if _, err := ref.Ofctl("-O", v, "add-group", "br0", groups[0]); err != nil {
				t.Fatal(err)
			}
			if err := ref.AddGroups(v, strings.Join(groups[1:], "\n")+"\n"); err != nil {
				t.Fatal(err)
			}
			s.run(t, v, "add-group", groups[0])
			s.run(t, v, "add-groups", file)
			compare("after add-group and add-groups")

			// A group id in use is refused, and changes nothing.
			if _, errOut, err := s.try(v, nil, "add-group", "group_id=1,type=indirect,bucket=output:1"); err == nil || !strings.Contains(errOut, "OFPGMFC_GROUP_EXISTS") {
				t.Errorf("add-group of an existing group: %v, %q; want OFPGMFC_GROUP_EXISTS", err, errOut)
			}
			// mod-group of a missing group is refused.
			if _, errOut, err := s.try(v, nil, "mod-group", "group_id=99,type=indirect,bucket=output:1"); err == nil || !strings.Contains(errOut, "OFPGMFC_UNKNOWN_GROUP") {
				t.Errorf("mod-group of a missing group: %v, %q; want OFPGMFC_UNKNOWN_GROUP", err, errOut)
			}
			// A flow that names a missing group is refused.
			if _, errOut, err := s.try(v, nil, "add-flow", "in_port=1,actions=group:99"); err == nil || !strings.Contains(errOut, "OFPBAC_BAD_OUT_GROUP") {
				t.Errorf("add-flow naming a missing group: %v, %q; want OFPBAC_BAD_OUT_GROUP", err, errOut)
			}
			if got := s.cliDump(t); len(got) != 0 {
				t.Fatalf("a refused flow was added: %q", got)
			}
			compare("after refused changes")

			// mod-group replaces the type and buckets.
			mod := "group_id=1,type=select,bucket=weight:3,actions=output:1,bucket=weight:4,actions=output:3"
			if _, err := ref.Ofctl("-O", v, "mod-group", "br0", mod); err != nil {
				t.Fatal(err)
			}
			s.run(t, v, "mod-group", mod)
			compare("after mod-group")
			// mod-group --may-create adds a group that does not exist.
			create := "group_id=20,type=indirect,bucket=actions=output:2"
			if _, err := ref.Ofctl("-O", v, "--may-create", "mod-group", "br0", create); err != nil {
				t.Fatal(err)
			}
			s.run(t, v, "mod-group", "--may-create", create)
			compare("after mod-group --may-create")

			if v != "OpenFlow13" {
				// OpenFlow 1.5's bucket commands, also in 1.0's
				// NXT_GROUP_MOD.
				for _, c := range [][]string{
					{"insert-buckets", "group_id=20,command_bucket_id=first,bucket=bucket_id:7,actions=output:3"},
					{"insert-buckets", "group_id=20,command_bucket_id=last,bucket=bucket_id:8,actions=output:1"},
					{"insert-buckets", "group_id=20,command_bucket_id=7,bucket=bucket_id:9,actions=output:2"},
					{"remove-buckets", "group_id=20,command_bucket_id=0"},
					{"remove-buckets", "group_id=20,command_bucket_id=first"},
				} {
					if _, err := ref.Ofctl("-O", v, c[0], "br0", c[1]); err != nil {
						t.Fatalf("Open vSwitch %s %s: %v", c[0], c[1], err)
					}
					s.run(t, v, c[0], c[1])
					compare("after " + c[0] + " " + c[1])
				}
				if _, errOut, err := s.try(v, nil, "remove-buckets", "group_id=20,command_bucket_id=77"); err == nil || !strings.Contains(errOut, "OFPGMFC_UNKNOWN_BUCKET") {
					t.Errorf("remove-buckets of a missing bucket: %v, %q; want OFPGMFC_UNKNOWN_BUCKET", err, errOut)
				}
			}

			// A flow through a group, added by ovs-ofctl; the group's
			// ref_count counts it.
			flowText := "priority=10,in_port=1,actions=group:1"
			if err := ref.AddFlows(v, flowText+"\n"); err != nil {
				t.Fatal(err)
			}
			s.run(t, v, "add-flow", flowText)
			if got := strings.Join(s.cliDump(t), "\n"); !strings.Contains(got, "group:1") {
				t.Errorf("after add-flow %s, ovsxdp dump-flows:\n%s", flowText, got)
			}
			refStats, err := ref.Ofctl("-O", v, "dump-group-stats", "br0")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ovsref.NormaliseGroupStats(s.run(t, v, "dump-group-stats")), ovsref.NormaliseGroupStats(refStats); got != want {
				t.Errorf("ovs-ofctl -O %s dump-group-stats\novsxdp:\n%s\nOpen vSwitch:\n%s", v, got, want)
			}
			if one := s.run(t, v, "dump-group-stats", "group_id=1"); !strings.Contains(one, "group_id=1,") || !strings.Contains(one, "ref_count=1,") || strings.Contains(one, "group_id=2,") {
				t.Errorf("dump-group-stats group_id=1:\n%s", one)
			}

			// del-groups group_id=1 takes the flow that uses it.
			if _, err := ref.Ofctl("-O", v, "del-groups", "br0", "group_id=1"); err != nil {
				t.Fatal(err)
			}
			s.run(t, v, "del-groups", "group_id=1")
			if got := s.cliDump(t); len(got) != 0 {
				t.Errorf("the flow of a deleted group is still there: %q", got)
			}
			compare("after del-groups group_id=1")

			if out := s.run(t, v, "dump-group-features"); !strings.Contains(out, "select") || !strings.Contains(out, "max_groups=") {
				t.Errorf("dump-group-features:\n%s", out)
			}

			s.run(t, v, "del-groups")
			if got := s.run(t, v, "dump-groups"); ovsref.NormaliseDump(got) != "" {
				t.Errorf("dump-groups after del-groups: %q", got)
			}
		})
	}
}

// TestOpenFlowGroupsState checks that groups and flows that ovs-ofctl
// adds are saved in the state file, as the CLI's are: a restarted daemon
// has them.
func TestOpenFlowGroupsState(t *testing.T) {
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	bin := buildCLI(t)
	dir := t.TempDir()
	runDir, sock, state := filepath.Join(dir, "run"), filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "state.json")
	d := startCLIDaemon(t, bin, sock, state, "--rundir", runDir)
	d.run(t, "add-br", "br0")
	for i, name := range []string{"p1", "p2", "p3"} {
		d.run(t, "add-port", "br0", name, "type=mem", "ofport="+strconv.Itoa(i+1))
	}
	s := &ofSwitch{d: d, ofctl: ofctl, target: "unix:" + filepath.Join(runDir, "br0.mgmt"), runDir: runDir}
	s.run(t, "OpenFlow15", "add-group", ofGroups["OpenFlow15"][3])
	s.run(t, "OpenFlow13", "add-group", ofGroups["OpenFlow13"][0])
	s.run(t, "OpenFlow13", "add-flow", "in_port=1,actions=group:1")
	groups, flows := s.run(t, "OpenFlow15", "dump-groups"), s.d.run(t, "dump-flows", "br0", "--no-stats")

	// OpenFlow changes reach the state file within a save interval (a
	// crash loses at most that much): wait for them before the crash.
	waitFor(t, func() bool {
		b, err := os.ReadFile(state)
		return err == nil && strings.Count(string(b), "group_id=") >= 2 && strings.Contains(string(b), "group:1")
	}, "the groups and the flow in the state file")
	d.crash(t)
	s.d = startCLIDaemon(t, bin, sock, state, "--rundir", runDir)
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(runDir, "br0.mgmt")); return err == nil }, "the restarted daemon's socket")
	if got := s.run(t, "OpenFlow15", "dump-groups"); got != groups {
		t.Errorf("groups after a restart:\n%s\nwant:\n%s", got, groups)
	}
	if got := s.d.run(t, "dump-flows", "br0", "--no-stats"); got != flows {
		t.Errorf("flows after a restart:\n%s\nwant:\n%s", got, flows)
	}
}
