package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestOFAddFlowsManyOverChannel pushes 20,000 flows with the real
// ovs-ofctl add-flows over the bridge's OpenFlow channel, as a controller
// installs its pipeline, and checks that they all arrive and that the
// state file holds them soon after. Each flow mod used to rewrite and sync
// the whole state file and rebuild its mask's subtable, which made the
// time of n flow mods grow as n²: 20,000 took many minutes, past the
// generous bound here.
func TestOFAddFlowsManyOverChannel(t *testing.T) {
	const n = 20000
	s := startOFStateSwitch(t)
	var b strings.Builder
	for i := range n {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "priority=100,ip,nw_dst=10.%d.%d.1,actions=output:2\n", i>>8&0xff, i&0xff)
		case 1:
			fmt.Fprintf(&b, "table=1,priority=%d,tcp,nw_src=10.%d.%d.0/24,tp_dst=%d,actions=output:3\n", 10+i%7, i>>8&0xff, i&0xff, 1+i%1000)
		case 2:
			fmt.Fprintf(&b, "table=2,priority=50,reg0=%d,metadata=0x%x,actions=load:0x1->NXM_NX_REG1[],resubmit(,3)\n", i, i/7)
		default:
			fmt.Fprintf(&b, "priority=200,in_port=1,dl_dst=02:00:00:%02x:%02x:%02x,actions=output:1\n", i>>16&0xff, i>>8&0xff, i&0xff)
		}
	}
	file := filepath.Join(t.TempDir(), "flows.txt")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, errOut, err := s.sw.try("OpenFlow13", []string{"--timeout=120"}, "add-flows", file)
	if err != nil {
		t.Fatalf("ovs-ofctl add-flows of %d flows over the channel: %v\n%s\ndaemon log:\n%s", n, err, errOut, s.sw.d.log)
	}
	t.Logf("%d flows over the channel in %v", n, time.Since(start).Round(time.Millisecond))
	out := s.sw.run(t, "OpenFlow13", "dump-aggregate")
	if !strings.Contains(out, "flow_count="+strconv.Itoa(n)) {
		t.Fatalf("dump-aggregate after adding %d flows: %s", n, out)
	}

	// The state file catches up within a save interval; poll it with a
	// generous deadline.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := savedFlows(s.state)
		if err == nil && got == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the state file holds %d flows (%v) 30 s after the add, want %d", got, err, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ofStateSwitch is an ofSwitch whose daemon keeps a state file.
type ofStateSwitch struct {
	sw    *ofSwitch
	state string
}

func startOFStateSwitch(t *testing.T) *ofStateSwitch {
	t.Helper()
	ofctl := testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	bin := buildCLI(t)
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	state := filepath.Join(dir, "state.json")
	d := startCLIDaemon(t, bin, filepath.Join(dir, "ctl.sock"), state, "--rundir", runDir)
	d.run(t, "add-br", "br0")
	for p := 1; p <= 3; p++ {
		d.run(t, "add-port", "br0", "p"+strconv.Itoa(p), "type=mem", "ofport="+strconv.Itoa(p))
	}
	sw := &ofSwitch{d: d, ofctl: ofctl, target: "unix:" + filepath.Join(runDir, "br0.mgmt"), runDir: runDir}
	return &ofStateSwitch{sw: sw, state: state}
}

// savedFlows returns the number of flows the state file at path holds for
// its bridges.
func savedFlows(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var st struct {
		Bridges []struct {
			Flows []string `json:"flows"`
		} `json:"bridges"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, err
	}
	n := 0
	for _, br := range st.Bridges {
		n += len(br.Flows)
	}
	return n, nil
}
