package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestExplain(t *testing.T) {
	root := newRootCmd()
	tests := []struct {
		name string
		in   error
		want string
	}{
		{"suggestion", errors.New(`unknown command "dump-flow" for "ovsxdp"`), `unknown command "dump-flow" (did you mean dump-flows?)`},
		{"none", errors.New(`unknown command "zzz" for "ovsxdp"`), "unknown command \"zzz\" (run `ovsxdp help` for the list)"},
		{"other", errors.New("bridge br0: no such bridge"), "bridge br0: no such bridge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := explain(root, tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\nb\r\nc  d\n"); got != "a b c  d" {
		t.Errorf("oneLine = %q", got)
	}
}

func TestAbsolutePaths(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	in := []string{"read=in.pcap", "write=/abs/out.pcap", "rxq=2", "loop=3", "write="}
	absolutePaths(in)
	want := []string{"read=" + filepath.Join(wd, "in.pcap"), "write=/abs/out.pcap", "rxq=2", "loop=3", "write="}
	if !slices.Equal(in, want) {
		t.Errorf("got %q, want %q", in, want)
	}
}

// TestRemoteCommands checks that the tool has a command for every verb of
// the daemon, with its flags.
func TestRemoteCommands(t *testing.T) {
	root := newRootCmd()
	for _, name := range []string{"add-br", "dump-flows", "ofproto/trace", "dpctl/dump-flows", "add-flows", "daemon", "version"} {
		c, _, err := root.Find([]string{name})
		if err != nil || c.Name() != name {
			t.Errorf("no command %s: %v", name, err)
		}
	}
	c, _, _ := root.Find([]string{"dump-flows"})
	if c.Flags().Lookup("no-stats") == nil {
		t.Errorf("dump-flows has no --no-stats")
	}
	if f := c.Flags().ShorthandLookup("O"); f == nil || f.Name != "protocols" {
		t.Errorf("dump-flows has no -O/--protocols (as ovs-ofctl): %v", f)
	}
	c, _, _ = root.Find([]string{"add-flows"})
	if err := c.Args(c, []string{"br0"}); err == nil {
		t.Errorf("add-flows accepts one argument; it needs BR FILE")
	}
	if err := c.Args(c, []string{"br0", "f"}); err != nil {
		t.Errorf("add-flows BR FILE: %v", err)
	}
}
