package ovsref

import (
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ovsxdp/ovsxdp/test/testenv"
	"github.com/ovsxdp/ovsxdp/vport/nldump"
	"github.com/ovsxdp/ovsxdp/vport/topo"
)

// taps returns the tap devices of the namespace ns and their aliases.
func taps(t *testing.T, ns netns.NsHandle) map[string]string {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := nldump.Retry(h.LinkList)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range links {
		if _, ok := l.(*netlink.Tuntap); ok {
			out[l.Attrs().Name] = l.Attrs().Alias
		}
	}
	return out
}

// TestStopDeletesTaps starts a switch, keeps its namespace open past the
// test that owns it, and checks that the switch's taps, marked while it
// ran, are gone when its cleanup is over: Open vSwitch's exit leaves
// them, persistent, and a namespace that something holds keeps them.
func TestStopDeletesTaps(t *testing.T) {
	Require(t) // the subtests would skip, and the test read their results
	var held netns.NsHandle = -1
	t.Cleanup(func() {
		if held >= 0 {
			held.Close()
		}
	})
	t.Run("switch", func(t *testing.T) {
		s := Start(t, "br0", []Port{{"p1", 1}, {"p2", 2}})
		var err error
		if held, err = netns.GetFromPath(s.NS().Path()); err != nil {
			t.Fatal(err)
		}
		got := taps(t, held)
		for _, name := range []string{"br0", "p1", "p2", datapathTap} {
			if alias, ok := got[name]; !ok || alias != tapMark {
				t.Errorf("tap %s: alias %q (present %v), want %q; taps %v", name, alias, ok, tapMark, got)
			}
		}
	})
	if held < 0 {
		t.Fatal("the switch did not start")
	}
	if got := taps(t, held); len(got) != 0 {
		t.Errorf("taps left in the switch's namespace after its cleanup: %v", got)
	}
}

// TestStaleTapsSwept makes a marked tap and an unmarked one in the test
// process's namespace, as a killed run would leave the first: the sweep
// deletes the marked one only.
func TestStaleTapsSwept(t *testing.T) {
	testenv.RequireRoot(t)
	suffix := topo.Suffix()
	stale, other := "ovrst-"+suffix, "ovrot-"+suffix
	for _, name := range []string{stale, other} {
		tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name}, Mode: netlink.TUNTAP_MODE_TAP}
		if err := netlink.LinkAdd(tap); err != nil {
			t.Fatalf("add tap %s: %v", name, err)
		}
		t.Cleanup(func() {
			if l, err := netlink.LinkByName(name); err == nil {
				netlink.LinkDel(l)
			}
		})
	}
	l, err := netlink.LinkByName(stale)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetAlias(l, tapMark); err != nil {
		t.Fatal(err)
	}
	if err := deleteMarkedTaps(); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName(stale); err == nil {
		t.Errorf("marked tap %s is still there", stale)
	}
	if _, err := netlink.LinkByName(other); err != nil {
		t.Errorf("unmarked tap %s: %v, want it left alone", other, err)
	}
}
