package test

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIBadInput checks that each kind of bad input gives a one-line
// error naming the problem and a non-zero exit status, and that the
// daemon keeps running and answering after each.
func TestCLIBadInput(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "ovsxdp.sock")
	state := filepath.Join(dir, "state.json")
	d := startCLIDaemon(t, bin, sock, state)
	d.run(t, "add-br", "br0")
	d.run(t, "add-port", "br0", "p1")
	d.run(t, "add-flow", "br0", "priority=5,actions=drop")
	flowsFile := filepath.Join(dir, "flows.txt")
	if err := os.WriteFile(flowsFile, []byte("# ok\npriority=1,actions=drop\n\nip,nw_dst=10.0.0.300,actions=drop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantShow := d.run(t, "show")
	wantFlows := d.run(t, "dump-flows", "br0", "--no-stats")

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"malformed flow", []string{"add-flow", "br0", "ip,nw_src=10.0.0.1/33,actions=drop"}, `"nw_src=10.0.0.1/33"`},
		{"malformed action", []string{"add-flow", "br0", "ip,actions=output:"}, `"output:": unknown port ""`},
		{"flow without actions", []string{"add-flow", "br0", "ip"}, "must specify actions"},
		{"bad line in a flows file", []string{"add-flows", "br0", flowsFile}, "flows.txt: line 4: "},
		{"missing flows file", []string{"add-flows", "br0", filepath.Join(dir, "nope.txt")}, "nope.txt: no such file or directory"},
		{"unknown port in a flow", []string{"add-flow", "br0", "in_port=eth7,actions=drop"}, `unknown port "eth7"`},
		{"unknown port to delete", []string{"del-port", "br0", "eth7"}, "no port named eth7"},
		{"unknown port to dump", []string{"dump-ports", "br0", "eth7"}, `no port "eth7"`},
		{"unknown bridge", []string{"dump-flows", "br7"}, "bridge br7: no such bridge"},
		{"unknown verb", []string{"frobnicate", "br0"}, `unknown command "frobnicate"`},
		{"misspelt verb", []string{"dump-flow", "br0"}, "did you mean dump-flows?"},
		{"unknown flag", []string{"dump-flows", "br0", "--colour"}, "unknown flag: --colour"},
		{"missing argument", []string{"add-port", "br0"}, "add-port: 1 argument(s) given, want at least 2"},
		{"bad option value", []string{"add-port", "br0", "p2", "rxq=many"}, "option rxq=many: want a whole number"},
		{"bad boolean option", []string{"add-port", "br0", "p2", "record-rxq=perhaps"}, "option record-rxq=perhaps: want true or false"},
		{"unknown option", []string{"add-port", "br0", "p2", "speed=10G"}, "unknown option speed"},
		{"unknown port type", []string{"add-port", "br0", "p2", "type=gre"}, `unknown port type "gre"`},
		{"tunnel without remote", []string{"add-port", "br0", "p2", "type=vxlan"}, `remote_ip is required`},
		{"afxdp without a device", []string{"add-port", "br0", "nosuchdev0", "type=afxdp"}, "port nosuchdev0: xsk port nosuchdev0: Link not found"},
		{"bad policy", []string{"add-br", "br1", "--policy", "yolo"}, `unknown output policy "yolo"`},
		{"bad pmds", []string{"add-br", "br1", "--pmds", "-3"}, "--pmds -3: want a number from 1 to 64"},
		{"duplicate bridge", []string{"add-br", "br0"}, "bridge br0: bridge exists"},
		{"masked microflow", []string{"ofproto/trace", "br0", "ip,nw_dst=10.0.0.0/8"}, "prefix/mask not allowed"},
		{"unreachable socket", []string{"--socket", filepath.Join(dir, "nothing.sock"), "list-br"}, "cannot reach the daemon at " + filepath.Join(dir, "nothing.sock")},
		// The refused daemons get a run directory of the test's: the
		// machine's /run/ovsxdp is not the test's to make.
		{"bad daemon flag", []string{"daemon", "--metrics", "0.0.0.0:9476", "--rundir", filepath.Join(dir, "run2")}, `"0.0.0.0" is not a loopback address`},
		{"second daemon", []string{"daemon", "--state", filepath.Join(dir, "other.json"), "--rundir", filepath.Join(dir, "run2")}, "another daemon is listening on it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := d.try(tt.args...)
			checkOneLineError(t, stdout, stderr, err, tt.want)
			if out, _, err := d.try("list-br"); err != nil || out != "br0\n" {
				t.Fatalf("the daemon no longer answers: %q, %v", out, err)
			}
		})
	}

	t.Run("corrupt state file", func(t *testing.T) {
		bad := filepath.Join(dir, "corrupt.json")
		content := "{\"version\": 1,\n \"bridges\": [{\"name\": \"br0\", \"pmds\": one}]}\n"
		if err := os.WriteFile(bad, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, err := runCLI(bin, "daemon", "--socket", filepath.Join(dir, "other.sock"), "--state", bad, "--rundir", filepath.Join(dir, "run3"))
		checkOneLineError(t, stdout, stderr, err, "state file "+bad+" is corrupt: line 2, column 38: invalid character 'o'")
		if got, _ := os.ReadFile(bad); string(got) != content {
			t.Errorf("the corrupt state file was changed")
		}
	})

	t.Run("protocol abuse", func(t *testing.T) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		for _, tt := range []struct{ in, want string }{
			{"this is not json", "malformed request"},
			{`{"verb": "add-br", "args": ["br9"], "evil": true}`, `unknown field "evil"`},
			{`{"verb": "launch-missiles"}`, `unknown command "launch-missiles"`},
			{`{"verb": "add-port", "args": ["br0"]}`, "wrong arguments"},
		} {
			if _, err := c.Write([]byte(tt.in + "\n")); err != nil {
				t.Fatal(err)
			}
			line, err := r.ReadBytes('\n')
			if err != nil {
				t.Fatal(err)
			}
			var resp struct{ Output, Error string }
			if err := json.Unmarshal(line, &resp); err != nil || !strings.Contains(resp.Error, tt.want) {
				t.Errorf("%q: response %s, want an error containing %q", tt.in, line, tt.want)
			}
		}
		// An oversized request is refused and the connection closed.
		big := make([]byte, 17<<20)
		for i := range big {
			big[i] = 'x'
		}
		go c.Write(append(big, '\n'))
		line, _ := r.ReadBytes('\n')
		if !strings.Contains(string(line), "request too large") {
			t.Errorf("oversized request: %q", line)
		}
		if out, _, err := d.try("list-br"); err != nil || out != "br0\n" {
			t.Fatalf("the daemon no longer answers: %q, %v", out, err)
		}
	})

	// None of the bad commands changed the configuration.
	if got := d.run(t, "show"); got != wantShow {
		t.Errorf("show changed:\n%s\nwant\n%s", got, wantShow)
	}
	if got := d.run(t, "dump-flows", "br0", "--no-stats"); got != wantFlows {
		t.Errorf("flows changed:\n%s\nwant\n%s", got, wantFlows)
	}
}
