package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// chassis is one hypervisor: a namespace holding its own Open_vSwitch
// database, ovsxdp daemon (br-int, and br-phy when there is an underlay)
// and ovn-controller.
type chassis struct {
	name    string // the system-id, the southbound Chassis row's name
	ns      *netns.NS
	encapIP string // ovn-encap-ip
	// uplink is the underlay veth's end on br-phy, whose LOCAL port holds
	// encapIP; "" with a single chassis, which tunnels to no one.
	uplink string

	db         *ovsref.DB
	dir        string // the daemons' sockets and logs
	runDir     string // the daemon's --rundir, ovn-controller's OVS_RUNDIR
	sock       string // the daemon's control socket
	bin        string
	daemon     *proc
	controller *proc

	// What the run found on this chassis.
	rows           []row
	flowsInstalled int
	// Of those, the flows that match on ct_state, ct_mark or ct_label, and
	// those whose actions run ct(): the stateful ACLs' and load
	// balancer's pipelines.
	ctMatches, ctActions int
	tunnels              []tunnelPort
	tunnelFlows          []string // br-int's megaflows of packets to or from a tunnel
	groups               string   // br-int's groups (dump-groups): the load balancer's
	natFlows             []string // br-int's megaflows that commit with NAT: the load balancer's choices
	diagnostics          []diagnostic
}

// tunnelPort is an Interface row ovn-controller made on br-int.
type tunnelPort struct {
	name, typ, options, ofport, err string
}

// diagnostic is the output of a command run to find out why a ping
// failed.
type diagnostic struct {
	command, output string
}

// cli runs an ovsxdp command against the chassis's daemon.
func (c *chassis) cli(args ...string) (string, error) {
	return sh(nil, c.bin, append([]string{"--socket", c.sock}, args...)...)
}

// vsctl runs ovs-vsctl against the chassis's database; an error ends the
// run.
func (c *chassis) vsctl(t *runner, args ...string) string {
	out, err := c.db.Vsctl(append([]string{"--timeout=30"}, args...)...)
	return must(t, out, err)
}

// start brings up the chassis: the database, the daemon, br-phy with the
// underlay and encapIP (when there is one), then ovn-controller on the
// southbound database sbDB, and waits for br-int's OpenFlow socket.
func (c *chassis) start(t *runner, m *measurement, bin, sbDB string) {
	c.bin = bin
	c.db = ovsref.StartDB(t)
	c.dir = t.TempDir() // short: unix socket paths are bounded
	// Runs once every daemon of the chassis has stopped, before dir is
	// removed.
	logs := map[string]string{}
	t.Cleanup(func() {
		for name, path := range logs {
			if b, err := os.ReadFile(path); err == nil {
				m.logText[name] = string(b)
			}
		}
	})
	c.runDir = filepath.Join(c.dir, "run")
	if err := os.MkdirAll(c.runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.sock = filepath.Join(c.dir, "ovsxdp.sock")
	c.daemon = startProc(t, c.ns, "ovsxdp daemon ("+c.name+")", bin, "daemon", "--socket", c.sock, "--rundir", c.runDir,
		"--ovsdb", c.db.Remote(), "--log-level", "info")
	t.Cleanup(func() { m.logText[c.logName("ovsxdp")] = c.daemon.p.Output() })
	if err := waitFor(c.daemon, cmdTimeout, func() error { _, err := c.cli("show"); return err }); err != nil {
		t.Fatalf("ovsxdp daemon (%s): %v", c.name, err)
	}

	if c.uplink != "" {
		// Native tunnelling as Open vSwitch's userspace datapath does it:
		// br-phy holds the underlay veth, and its LOCAL port (a TAP
		// device) the host's underlay address, so that the tunnel's route
		// leads out through br-phy. Made in standalone mode without a
		// controller, it forwards with the flow priority=0,actions=NORMAL
		// it gets, as from ovs-vswitchd.
		c.vsctl(t, "add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=ovsxdp",
			"--", "add-port", "br-phy", c.uplink, "--", "set", "interface", c.uplink, "type=afxdp")
		if err := waitFor(c.daemon, cmdTimeout, func() error { _, err := c.ns.Run("ip", "link", "show", "br-phy"); return err }); err != nil {
			t.Fatalf("br-phy's LOCAL port on %s: %v", c.name, err)
		}
		c.ns.IP(t, "addr", "add", c.encapIP+"/24", "dev", "br-phy", "nodad")
		if err := c.ns.SetLinkUp("br-phy"); err != nil {
			t.Fatal(err)
		}
	}

	c.vsctl(t, "set", "open_vswitch", ".", "external_ids:system-id="+c.name, "external_ids:ovn-remote="+sbDB,
		"external_ids:ovn-encap-type=geneve", "external_ids:ovn-encap-ip="+c.encapIP, "external_ids:ovn-bridge-datapath-type=ovsxdp")
	ctlLog := filepath.Join(c.dir, "ovn-controller.log")
	logs[c.logName("ovn-controller")] = ctlLog
	// Its own OVN_RUNDIR: ovn-controller's control socket and pinctrl
	// state are per chassis.
	c.controller = startProc(t, c.ns, "ovn-controller ("+c.name+")", "env", "OVS_RUNDIR="+c.runDir, "OVN_RUNDIR="+c.dir,
		"OVN_LOGDIR="+c.dir, "OVN_DBDIR="+c.dir, "ovn-controller", c.db.Remote(), "--no-chdir", "--log-file="+ctlLog)
	mgmt := filepath.Join(c.runDir, "br-int.mgmt")
	if err := waitFor(c.controller, 2*cmdTimeout, func() error { _, err := os.Stat(mgmt); return err }); err != nil {
		t.Fatalf("br-int's OpenFlow socket on %s (ovn-controller creates br-int with datapath_type ovsxdp): %v", c.name, err)
	}
}

// logName names a daemon's log of the chassis, as the report and -logs
// know it.
func (c *chassis) logName(daemon string) string { return daemon + "-" + c.name + ".log" }

// readTunnels reads the tunnel ports ovn-controller made on br-int.
func (c *chassis) readTunnels() error {
	out, err := c.db.Vsctl("--timeout=30", "--format=csv", "--data=bare", "--no-headings",
		"--columns=name,type,options,ofport,error", "find", "interface", "type=geneve")
	if err != nil {
		return err
	}
	c.tunnels = nil
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		f, err := splitCSV(l)
		if err != nil || len(f) != 5 {
			return fmt.Errorf("ovs-vsctl find interface: %q", l)
		}
		c.tunnels = append(c.tunnels, tunnelPort{name: f[0], typ: f[1], options: f[2], ofport: f[3], err: f[4]})
	}
	return nil
}

// diagnose records what the daemon says about its flows, tunnels and
// drops, and a trace through br-int of what it was sent.
func (c *chassis) diagnose(traces ...string) {
	cmds := [][]string{
		{"tnl/ports/show"}, {"ovs/route/show"}, {"tnl/neigh/show"}, {"drop-reasons"},
		{"dump-ports", "br-int"}, {"dump-ports", "br-phy"}, {"dpctl/dump-flows"},
	}
	for _, tr := range traces {
		cmds = append(cmds, []string{"ofproto/trace", "br-int", tr})
	}
	for _, args := range cmds {
		if args[0] == "dump-ports" && args[1] == "br-phy" && c.uplink == "" {
			continue
		}
		out, err := c.cli(args...)
		if err != nil {
			out = err.Error()
		}
		c.diagnostics = append(c.diagnostics, diagnostic{command: "ovsxdp " + strings.Join(args, " "), output: strings.TrimSpace(out)})
	}
}

// splitCSV splits one line of CSV.
func splitCSV(line string) ([]string, error) {
	return csv.NewReader(strings.NewReader(line)).Read()
}
