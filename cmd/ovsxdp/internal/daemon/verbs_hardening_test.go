package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/control"
)

// badArgs are argument lists no command means: none, too many, names the
// daemon does not have, numbers out of every range, bytes that are not
// text, and words that look like options.
var badArgs = [][]string{
	nil,
	{""},
	{"br0"},
	{"nosuch"},
	{"br0", "p1"},
	{"br0", "p1", "-1", "x", "y", "z", "w"},
	{"br0", "99999999999999999999999"},
	{"br0", "\x00\xff\xfe(", ")("},
	{"br0", strings.Repeat("a", 70000)},
	{"br0", "in_port=1,tcp,actions=output:2"},
	{"-1"},
	{"--", "-"},
	{"br0", "in_port(1),eth(src=00:00:00:00:00:01/ff,dst=x)"},
}

// TestEveryVerbTakesBadArguments: every command, by its own name and by
// ovs-appctl's, with each of badArgs and a bad value for each of its
// flags, answers (an error or not) within 20 s, on a daemon with a bridge,
// a port and a flow; none panics, and the daemon answers afterwards.
func TestEveryVerbTakesBadArguments(t *testing.T) {
	names := map[string]bool{} // ovs-appctl's name → true
	for name := range appctlVerbs() {
		names[name] = true
	}
	for _, v := range Verbs() {
		if v.Name == "exit" {
			continue // it ends the daemon: TestExit and the drop-in tests
		}
		t.Run(strings.ReplaceAll(v.Name, "/", "_"), func(t *testing.T) {
			d := newTestDaemon(t, "")
			run(t, d, "add-br", "br0")
			run(t, d, "add-port", "br0", "p1", "type=mem", "ofport=1")
			run(t, d, "add-flow", "br0", "in_port=1,actions=output:2")
			var reqs []*control.Request
			for _, args := range badArgs {
				reqs = append(reqs, &control.Request{Verb: v.Name, Args: args})
				for _, f := range v.Flags {
					for _, val := range []string{"", "x", "-1", "99999999999999999999", "\x00"} {
						reqs = append(reqs, &control.Request{Verb: v.Name, Args: args, Flags: map[string]string{f.Name: val}})
					}
				}
			}
			for _, r := range reqs[:len(reqs):len(reqs)] {
				for name, ok := range names {
					if ok && verbs[v.Name] == appctlVerbs()[name] {
						ar := *r
						ar.Verb, ar.Appctl = name, true
						reqs = append(reqs, &ar)
					}
				}
			}
			for _, r := range reqs {
				done := make(chan struct{})
				go func() {
					defer close(done)
					d.Handle(context.Background(), r) //nolint:errcheck // any answer will do
				}()
				select {
				case <-done:
				case <-time.After(20 * time.Second):
					t.Fatalf("%s %q %v (appctl %v): no answer after 20 s", r.Verb, r.Args, r.Flags, r.Appctl)
				}
			}
			if _, err := runFlags(d, "version", nil); err != nil {
				t.Errorf("version after %s: %v", v.Name, err)
			}
		})
	}
}
