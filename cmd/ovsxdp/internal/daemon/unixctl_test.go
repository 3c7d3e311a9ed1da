package daemon

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/control"
	"github.com/ovsxdp/ovsxdp/datapath"
)

func appctl(d *Daemon, method string, args ...string) (string, error) {
	return d.Handle(context.Background(), &control.Request{Verb: method, Args: args, Appctl: true})
}

// TestAppctlCommands checks how ovs-appctl's commands reach the verbs:
// by Open vSwitch's names, with its options, and refused in its words
// (those of Open vSwitch 3.1's unixctl server for the first three).
func TestAppctlCommands(t *testing.T) {
	d := newTestDaemon(t, "")
	if _, err := runFlags(d, "add-br", map[string]string{"pmds": "2"}, "br0"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      []string
		want    string // a regexp the output matches
		wantErr string // the error, whole
	}{
		{"unknown", []string{"pmd-stats-show"}, "", `"pmd-stats-show" is not a valid command (use "list-commands" to see a list of valid commands)`},
		{"too many", []string{"version", "x"}, "", `"version" command takes at most 0 arguments`},
		{"too few", []string{"ofproto/trace"}, "", `"ofproto/trace" command requires at least 1 arguments`},
		{"version", []string{"version"}, `^ovsxdp test\n$`, ""},
		{"renamed", []string{"dpif-netdev/pmd-stats-show"}, `(?s)^bridge br0:\npmd thread numa_id 0 core_id 0:.*core_id 1:`, ""},
		{"one pmd, one dash", []string{"dpif-netdev/pmd-stats-show", "-pmd", "1", "br0"}, `^bridge br0:\npmd thread numa_id 0 core_id 1:\n(  .*\n)*$`, ""},
		{"one pmd, equals", []string{"dpif-netdev/pmd-stats-show", "--pmd=0"}, `^bridge br0:\npmd thread numa_id 0 core_id 0:\n(  .*\n)*$`, ""},
		{"value missing", []string{"dpif-netdev/pmd-stats-show", "-pmd"}, "", `"dpif-netdev/pmd-stats-show" command: option -pmd needs a value (usage: [--pmd PMD] [BR])`},
		{"value counted", []string{"dpif-netdev/pmd-stats-show", "-pmd", "0", "br0", "x"}, "", `"dpif-netdev/pmd-stats-show" command takes at most 3 arguments`},
		{"bad value", []string{"dpif-netdev/pmd-stats-show", "-pmd", "x"}, "", `wrong arguments: --pmd "x" is not a core_id`},
		{"bool with a value", []string{"exit", "--cleanup=yes"}, "", `"exit" command: option --cleanup=yes takes no value (usage: [--cleanup])`},
		{"options count", []string{"exit", "--cleanup", "x"}, "", `"exit" command takes at most 1 arguments`},
		{"not an option", []string{"exit", "x"}, "", `"exit" command: 1 arguments besides options, want at most 0 (usage: [--cleanup])`},
		{"bool flag", []string{"ofproto/trace", "br0", "in_port=1", "-generate"}, `(?s)^Flow: in_port=1,.*No match`, ""},
		{"dash argument left to the verb", []string{"dpctl/dump-conntrack", "-m"}, `^$`, ""},
		{"dash argument the verb refuses", []string{"dpctl/dump-flows", "-x"}, "", `bridge -x: no such bridge`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := appctl(d, tt.in[0], tt.in[1:]...)
			switch {
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Fatalf("error %v; want %s", err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr == "" && !regexp.MustCompile(tt.want).MatchString(out):
				t.Fatalf("output %q does not match %s", out, tt.want)
			}
		})
	}
}

// TestAppctlPMDStatsClear clears one poll thread's counters: the other
// keeps its baseline (none yet: zero).
func TestAppctlPMDStatsClear(t *testing.T) {
	d := newTestDaemon(t, "")
	if _, err := runFlags(d, "add-br", map[string]string{"pmds": "2"}, "br0"); err != nil {
		t.Fatal(err)
	}
	b := d.bridges["br0"]
	if _, err := appctl(d, "dpif-netdev/pmd-stats-clear", "-pmd", "1"); err != nil {
		t.Fatal(err)
	}
	// A recorded baseline names its thread, and an unpinned one's CPU is -1.
	if len(b.baseline) != 2 || b.baseline[0] != (datapath.PMDStats{}) || b.baseline[1].ID != 1 || b.baseline[1].CPU != -1 {
		t.Fatalf("baseline after clearing core 1: %+v", b.baseline)
	}
	if _, err := appctl(d, "dpif-netdev/pmd-stats-clear", "-pmd", "0"); err != nil {
		t.Fatal(err)
	}
	if b.baseline[0].ID != 0 || b.baseline[0].CPU != -1 || b.baseline[1].ID != 1 {
		t.Fatalf("baseline after clearing core 0 too: %+v", b.baseline)
	}
}

// TestAppctlListCommands checks list-commands' layout (Open vSwitch's:
// a head line, then each command padded to 23 characters and its
// arguments) and that it lists every command it answers.
func TestAppctlListCommands(t *testing.T) {
	d := newTestDaemon(t, "")
	out, err := appctl(d, "list-commands")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != "The available commands are:" {
		t.Errorf("head line %q", lines[0])
	}
	for _, want := range []string{
		"  exit                    [--cleanup]",
		"  dpif-netdev/pmd-stats-show [--pmd PMD] [BR]",
		"  ofproto/trace           [--generate] [BR] FLOW",
		"  dpctl/dump-conntrack    [-m] [-s] [zone=N]",
		"  list-commands           ",
		"  version                 ",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("no line %q in\n%s", want, out)
		}
	}
	for _, l := range lines[1:] {
		name := strings.Fields(l)[0]
		if _, err := appctl(d, name, "--no-such-option-anywhere"); err != nil && strings.Contains(err.Error(), "is not a valid command") {
			t.Errorf("%s is listed but not answered", name)
		}
	}
	if len(lines)-1 != len(appctlVerbs())+1 {
		t.Errorf("%d commands listed, %d answered", len(lines)-1, len(appctlVerbs())+1)
	}
}
