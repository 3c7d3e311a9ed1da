package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoGopacket checks that the binary does not link gopacket: its
// decoders fill tables of every EtherType and IP protocol when the
// program starts (about 7.5 MB of memory and 1.8 MB of binary). gopacket
// is for the tests, as the reference decoder and to craft packets.
func TestNoGopacket(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/google/gopacket") {
			t.Errorf("cmd/ovsxdp links %s", p)
		}
	}
}
