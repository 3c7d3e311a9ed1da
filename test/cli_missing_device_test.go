package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestCLIMissingDevice starts a real daemon, in a switch namespace, on a
// state file naming two AF_XDP ports, one of whose veth does not exist.
// The daemon must start, forward on nothing yet but answer, and show the
// missing port with Open vSwitch's error, keeping it in its state; once
// the veth is created the port is attached with its OpenFlow port number
// and the bridge forwards between the two; when the veth is deleted again
// the port goes back to its error, still configured, and comes back with
// the veth.
func TestCLIMissingDevice(t *testing.T) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	bin := buildCLI(t)
	sw := netns.New(t, "sw")
	a := netns.New(t, "a")
	b := netns.New(t, "b")
	va := netns.AddVeth(t, sw, "h-a", a, "p-a", 1)
	a.AddAddr(t, va.Peer, "10.9.0.1/24")

	dir := t.TempDir()
	sock, statePath := filepath.Join(dir, "ovsxdp.sock"), filepath.Join(dir, "state.json")
	st := map[string]any{
		"version": 1,
		"bridges": []any{map[string]any{
			"name": "br0", "policy": "guarded", "pmds": 1,
			"ports": []any{
				map[string]any{"name": "h-a", "type": "afxdp", "ofport": 1},
				map[string]any{"name": "h-b", "type": "afxdp", "ofport": 2},
			},
			"flows": []string{"in_port=1 actions=output:2", "in_port=2 actions=output:1"},
		}},
	}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(statePath, data, 0o600); err != nil {
		t.Fatal(err)
	}

	d, _ := startCLIDaemonIn(t, sw, bin, sock, statePath)

	const wantErr = `error: "could not open network device h-b (No such device)"`
	show := d.run(t, "show")
	if !strings.Contains(show, "Port h-b") || !strings.Contains(show, wantErr) {
		t.Fatalf("show does not list h-b with %s:\n%s", wantErr, show)
	}
	if ha := portBlock(show, "h-a"); ha == "" || strings.Contains(ha, "error:") || !strings.Contains(ha, "ofport: 1") {
		t.Errorf("show: h-a is not attached on ofport 1:\n%s", show)
	}
	// A change saves the state: the missing port stays in it.
	d.run(t, "add-br", "br1")
	checkStatePorts(t, statePath, "h-a", "h-b")

	attached := func() bool {
		out, _, err := d.try("show")
		hb := portBlock(out, "h-b")
		return err == nil && hb != "" && !strings.Contains(hb, "error:") && strings.Contains(hb, "ofport: 2")
	}
	reach := func() bool {
		_, err := a.Run("ping", "-n", "-c", "1", "-W", "1", "10.9.0.2")
		return err == nil
	}
	for round := 1; round <= 2; round++ {
		vb := netns.AddVeth(t, sw, "h-b", b, "p-b", 1)
		b.AddAddr(t, vb.Peer, "10.9.0.2/24")
		a.IP(t, "neigh", "flush", "dev", va.Peer) // p-b has a new MAC address
		if !netns.Eventually(20*time.Second, attached) {
			t.Fatalf("round %d: h-b not attached 20s after its veth was created:\n%s", round, d.run(t, "show"))
		}
		if !netns.Eventually(20*time.Second, reach) {
			t.Fatalf("round %d: p-a does not reach p-b through the bridge in 20s:\n%s\n%s", round, d.run(t, "show"), d.run(t, "dump-ports", "br0"))
		}
		if round == 2 {
			break
		}
		// The kernel deletes the link: the port stays configured, with
		// its error, until the veth comes back.
		sw.IP(t, "link", "del", "h-b")
		if !netns.Eventually(20*time.Second, func() bool {
			out, _, err := d.try("show")
			return err == nil && strings.Contains(portBlock(out, "h-b"), wantErr)
		}) {
			t.Fatalf("h-b does not show its error 20s after its link was deleted:\n%s", d.run(t, "show"))
		}
		checkStatePorts(t, statePath, "h-a", "h-b")
	}
}

// portBlock returns the lines of show's output that describe port name.
func portBlock(show, name string) string {
	i := strings.Index(show, "        Port "+name+"\n")
	if i < 0 {
		return ""
	}
	rest := show[i+1:]
	if j := strings.Index(rest, "        Port "); j >= 0 {
		rest = rest[:j]
	}
	if j := strings.Index(rest, "    Bridge "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// checkStatePorts checks that the state file's bridge br0 lists the ports
// want.
func checkStatePorts(t *testing.T, path string, want ...string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Bridges []struct {
			Name  string
			Ports []struct{ Name string }
		}
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range st.Bridges {
		if b.Name == "br0" {
			for _, p := range b.Ports {
				got = append(got, p.Name)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("state file's br0 ports %v, want %v", got, want)
	}
}
