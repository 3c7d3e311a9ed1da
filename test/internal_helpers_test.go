package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/netns"
)

// moveInternal moves the internal port dev from the switch namespace sw
// into ns, gives it the address cidr there and brings it up.
func moveInternal(t *testing.T, sw, ns *netns.NS, dev, cidr string) {
	t.Helper()
	sw.IP(t, "link", "set", dev, "netns", ns.Name)
	ns.AddAddr(t, dev, cidr)
	if err := ns.SetLinkUp(dev); err != nil {
		t.Fatal(err)
	}
}

// pings reports whether from reaches addr with one ping within timeout
// (a ping a second).
func pings(from *netns.NS, addr string, timeout time.Duration) bool {
	return netns.Eventually(timeout, func() bool {
		_, err := from.Run("ping", "-n", "-c", "1", "-W", "1", addr)
		return err == nil
	})
}

// linkGone reports whether the device dev has left namespace ns within
// timeout.
func linkGone(ns *netns.NS, dev string, timeout time.Duration) bool {
	return netns.Eventually(timeout, func() bool {
		_, err := ns.Run("ip", "link", "show", dev)
		return err != nil
	})
}

// stopDaemon sends sig to a daemon process and waits until it has exited.
func stopDaemon(t *testing.T, proc *netns.Process, sig syscall.Signal) {
	t.Helper()
	if err := proc.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v to the daemon: %v", sig, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	proc.Wait(ctx) //nolint:errcheck // a signalled process exits with an error
	if !proc.Exited() {
		t.Fatalf("the daemon still runs 30s after %v\n%s", sig, proc.Output())
	}
}

// tunDevices lists the TUN/TAP devices in ns.
func tunDevices(t *testing.T, ns *netns.NS) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(ns.IP(t, "-o", "link", "show", "type", "tun")), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			out = append(out, strings.TrimSuffix(f[1], ":"))
		}
	}
	return out
}

// checkAddr checks that dev in ns has the address cidr.
func checkAddr(t *testing.T, ns *netns.NS, dev, cidr string) {
	t.Helper()
	out, err := ns.Run("ip", "-o", "addr", "show", "dev", dev)
	if err != nil || !strings.Contains(out, " "+cidr+" ") {
		t.Fatalf("%s in namespace %s has lost its address %s: %v\n%s", dev, ns.Name, cidr, err, out)
	}
}

// checkStatePortsOf checks that the state file's bridge br lists the
// ports want, in order.
func checkStatePortsOf(t *testing.T, path, br string, want ...string) {
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
		if b.Name == br {
			for _, p := range b.Ports {
				got = append(got, p.Name)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("state file's %s ports %v, want %v", br, got, want)
	}
}
