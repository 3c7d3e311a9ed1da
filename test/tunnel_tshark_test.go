package test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/ovsxdp/ovsxdp/datapath/tunnel"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestTunnelTsharkDecodes writes packets that datapath/tunnel encapsulates
// (VXLAN and Geneve with options, IPv4 and IPv6 underlays, checksums on)
// into a pcap and has tshark dissect it: every packet must be read as
// the right protocol and VNI, with no expert warning or error.
func TestTunnelTsharkDecodes(t *testing.T) {
	bin := testenv.RequireTool(t, "tshark", "tshark")
	mac := func(b byte) [6]byte { return [6]byte{2, 0, 0, 0, 0, b} }
	a4, b4 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	a6, b6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	opt := []byte{0x01, 0x02, 0x80, 0x01, 0xde, 0xad, 0xbe, 0xef}
	cases := []struct {
		cfg  tunnel.Config
		want string // what tshark's dissection must say
	}{
		{tunnel.Config{Kind: tunnel.VXLAN, Src: a4, Dst: b4, VNI: 42, DF: true, Csum: true}, "VXLAN Network Identifier (VNI): 42"},
		{tunnel.Config{Kind: tunnel.VXLAN, Src: a4, Dst: b4, VNI: 7, TOS: 0xb8, TTL: 9}, "VXLAN Network Identifier (VNI): 7"},
		{tunnel.Config{Kind: tunnel.VXLAN, Src: a6, Dst: b6, VNI: 0xffffff, Csum: true}, "VXLAN Network Identifier (VNI): 16777215"},
		{tunnel.Config{Kind: tunnel.Geneve, Src: a4, Dst: b4, VNI: 5000, DF: true, Csum: true, Options: opt}, "Virtual Network Identifier (VNI): 0x001388 (5000)"},
		{tunnel.Config{Kind: tunnel.Geneve, Src: a6, Dst: b6, VNI: 77, OAM: true, Csum: true}, "Virtual Network Identifier (VNI): 0x00004d (77)"},
	}
	path := filepath.Join(t.TempDir(), "tunnel.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		c.cfg.EthSrc, c.cfg.EthDst = mac(1), mac(2)
		e, err := tunnel.NewEncap(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		inner := innerUDP(t, mac(0x0a), mac(0x0b), "10.9.0.1", "10.9.0.2", 7777, []byte(fmt.Sprintf("packet %d", i)))
		pkt, err := e.Append(nil, inner, tunnel.SourcePort(uint32(i)*0x9e3779b9), uint16(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WritePacket(captureInfo(len(pkt)), pkt); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := runTool(ctx, bin, "-r", path, "-V", "-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE")
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	frames := strings.Split(out, "\nFrame ")
	if len(frames) != len(cases) {
		t.Fatalf("tshark dissected %d frames, want %d:\n%s", len(frames), len(cases), out)
	}
	for i, c := range cases {
		fr := frames[i]
		if !strings.Contains(fr, c.want) || !strings.Contains(fr, "packet "+fmt.Sprint(i)) {
			t.Errorf("frame %d (%s): tshark does not say %q or carry the inner payload:\n%s", i, c.cfg.Kind, c.want, fr)
		}
		for _, bad := range []string{"Expert Info (Error", "Expert Info (Warning", "Malformed"} {
			if strings.Contains(fr, bad) {
				t.Errorf("frame %d (%s): tshark reports %s:\n%s", i, c.cfg.Kind, bad, fr)
			}
		}
	}
}

// captureInfo describes a frame of n bytes captured whole, now.
func captureInfo(n int) gopacket.CaptureInfo {
	return gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: n, Length: n}
}

// runTool runs a program bounded by ctx and returns its standard output
// (and standard error, on failure).
func runTool(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}
