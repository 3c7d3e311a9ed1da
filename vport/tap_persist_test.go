package vport

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// TestTapPersistentReattach moves a persistent TAP port's device into a
// namespace and addresses it there; the port is closed after Keep, as a
// stopping daemon leaves it: the device stays there, address and all. A
// port with Reattach takes it up again in that namespace and follows its
// link; closing that port without Keep deletes the device.
func TestTapPersistentReattach(t *testing.T) {
	ns := netns.New(t, "tapkeep")
	name := "tap" + topo.Suffix()
	p, err := NewTapPort(TapConfig{Name: name, Persist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	lk, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if tt, ok := lk.(*netlink.Tuntap); !ok || tt.NonPersist || lk.Attrs().Alias != TapAlias || tt.Owner != uint32(os.Geteuid()) {
		t.Fatalf("device %#v: want a persistent tap owned by %d with alias %q", lk, os.Geteuid(), TapAlias)
	}
	nsh, err := vnetns.GetFromPath(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	err = netlink.LinkSetNsFd(lk, int(nsh))
	nsh.Close()
	if err != nil {
		t.Fatal(err)
	}
	ns.AddAddr(t, name, "10.79.2.1/24")
	ns.IP(t, "link", "set", name, "mtu", "1400")
	if err := ns.SetLinkUp(name); err != nil {
		t.Fatal(err)
	}
	waitState(t, p.Device(), "up in the namespace", func(s DeviceState) bool { return s.Running() && s.Carrier() })

	p.Keep()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	out := ns.IP(t, "addr", "show", "dev", name)
	if !strings.Contains(out, "10.79.2.1/24") || !strings.Contains(out, "mtu 1400") || !strings.Contains(out, "UP") {
		t.Fatalf("the kept device lost its address, MTU or state:\n%s", out)
	}
	if _, err := netlink.LinkByName(name); err == nil {
		t.Fatal("the kept device is back in the test's namespace")
	}

	q, err := NewTapPort(TapConfig{Name: name, Persist: true, Reattach: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := netlink.LinkByName(name); err == nil {
		t.Fatal("Reattach created a device in the test's namespace instead of taking up the moved one")
	}
	waitState(t, q.Device(), "up after the reattach", func(s DeviceState) bool { return s.Running() && s.Carrier() })
	if out := ns.IP(t, "addr", "show", "dev", name); !strings.Contains(out, "10.79.2.1/24") || !strings.Contains(out, "LOWER_UP") {
		t.Fatalf("the device after the reattach:\n%s", out)
	}
	if _, err := NewTapPort(TapConfig{Name: name, Persist: true, Reattach: true}); !errors.Is(err, os.ErrExist) {
		t.Fatalf("a second reattach to a held device: %v, want os.ErrExist", err)
	}
	// Another owner's port does not take up (nor fail on) the device in
	// the other namespace: it makes its own here.
	r, err := NewTapPort(TapConfig{Name: name, Persist: true, Reattach: true, Owner: "another daemon"})
	if err != nil {
		t.Fatalf("another owner's reattach: %v, want a device of its own", err)
	}
	if lk, err := netlink.LinkByName(name); err != nil || lk.Attrs().Alias != tapAlias("another daemon") {
		t.Fatalf("another owner's reattach made no device of its own here: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := ns.Run("ip", "link", "show", name); err == nil {
		t.Fatalf("the device is still there after Close without Keep:\n%s", out)
	}
}

// TestTapReattachOnlyOwnDevice checks that Reattach takes up no device but
// a persistent TAP port's: a device of the name that is not one is an
// os.ErrExist, and with none a new device is created (and Close deletes
// it).
func TestTapReattachOnlyOwnDevice(t *testing.T) {
	netns.Require(t)
	for _, tc := range []struct {
		name string
		make func(name string) netlink.Link
	}{
		{"veth", func(name string) netlink.Link {
			return &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
		}},
		{"unmarked persistent tap", func(name string) netlink.Link {
			return &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name}, Mode: netlink.TUNTAP_MODE_TAP}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "tap" + topo.Suffix()
			lk := tc.make(name)
			if err := netlink.LinkAdd(lk); err != nil {
				t.Fatal(err)
			}
			defer netlink.LinkDel(lk) //nolint:errcheck // gone is fine
			if p, err := NewTapPort(TapConfig{Name: name, Persist: true, Reattach: true}); !errors.Is(err, os.ErrExist) {
				if err == nil {
					p.Close()
				}
				t.Fatalf("reattach over a %s: %v, want os.ErrExist", tc.name, err)
			}
		})
	}
	name := "tap" + topo.Suffix()
	p, err := NewTapPort(TapConfig{Name: name, Persist: true, Reattach: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(name); err != nil {
		t.Fatalf("no device created: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(name); err == nil {
		t.Fatal("the device is still there after Close")
	}
}
