package test

import (
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// TestAFXDPKill9 runs the datapath as a separate process (test/cmd/xdpfwd)
// between two namespaces, kills it with SIGKILL under traffic, and checks
// that the kernel detached its XDP programs (they were attached through BPF
// links, which die with the process) and that the veths carry traffic
// again through the kernel's own path (a Linux bridge).
func TestAFXDPKill9(t *testing.T) {
	testenv.RequireTool(t, "ping", "iputils-ping")
	netns.Require(t)
	bin := buildOnce(t, "./test/cmd/xdpfwd")

	sw := netns.New(t, "sw")
	a, b := netns.New(t, "a"), netns.New(t, "b")
	va := netns.AddVeth(t, sw, "h-a", a, "p-a", 2)
	vb := netns.AddVeth(t, sw, "h-b", b, "p-b", 2)
	a.AddAddr(t, va.Peer, "10.0.0.1/24")
	b.AddAddr(t, vb.Peer, "10.0.0.2/24")
	ea := &endpoint{ns: a, veth: va, ip: "10.0.0.1"}

	fwd := sw.Start(t, bin, "-ports", "h-a,h-b", "-frames", "256")
	if err := fwd.WaitOutput("ready", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"h-a", "h-b"} {
		if !sw.XDPAttached(t, dev) {
			t.Fatalf("no XDP program on %s while xdpfwd runs", dev)
		}
	}
	ea.ping(t, "10.0.0.2", 3)

	flood := a.Start(t, "ping", "-n", "-i", "0.01", "10.0.0.2")
	time.Sleep(300 * time.Millisecond)
	fwd.Kill() // SIGKILL to its process group
	if !netns.Eventually(20*time.Second, func() bool { return !sw.XDPAttached(t, "h-a") && !sw.XDPAttached(t, "h-b") }) {
		t.Fatal("XDP programs still attached 20s after xdpfwd was killed")
	}
	flood.Kill()
	t.Logf("xdpfwd killed under traffic; XDP programs detached by the kernel")

	// The kernel's path: a Linux bridge between the two host ends.
	sw.IP(t, "link", "add", "br-k", "type", "bridge")
	sw.IP(t, "link", "set", "h-a", "master", "br-k")
	sw.IP(t, "link", "set", "h-b", "master", "br-k")
	sw.IP(t, "link", "set", "br-k", "up")
	if !ea.reach("10.0.0.2", 10*time.Second) {
		t.Fatal("no traffic through the kernel bridge after the kill")
	}
	ea.ping(t, "10.0.0.2", 3)
}
