package ethtool_test

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
	"github.com/ovsxdp/ovsxdp/vport/ethtool"
)

// veth returns a namespace holding one end, "e0", of a veth pair with 4
// queues, and a handle in that namespace.
func veth(t *testing.T) (*netns.NS, *ethtool.Handle) {
	t.Helper()
	a := netns.New(t, "etha")
	b := netns.New(t, "ethb")
	netns.AddVeth(t, a, "e0", b, "e1", 4)
	var h *ethtool.Handle
	if err := a.Do(func() (err error) { h, err = ethtool.Open(); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return a, h
}

// cliChannels reads the "Current hardware settings" rx and tx counts of
// ethtool -l.
func cliChannels(t *testing.T, ns *netns.NS, dev string) (rx, tx int) {
	t.Helper()
	out := ns.MustRun(t, "ethtool", "-l", dev)
	_, cur, ok := strings.Cut(out, "Current hardware settings:")
	if !ok {
		t.Fatalf("ethtool -l %s: %s", dev, out)
	}
	num := func(key string) int {
		m := regexp.MustCompile(`(?m)^` + key + `:\s+(\d+)`).FindStringSubmatch(cur)
		if m == nil {
			t.Fatalf("ethtool -l %s: no %s in %s", dev, key, cur)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return num("RX"), num("TX")
}

func TestChannelsMatchEthtool(t *testing.T) {
	testenv.RequireTool(t, "ethtool", "ethtool")
	ns, h := veth(t)
	c, err := h.Channels("e0")
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxRx != 4 || c.MaxTx != 4 {
		t.Fatalf("maxima %+v, want rx 4 tx 4", c)
	}
	if rx, tx := cliChannels(t, ns, "e0"); int(c.Rx) != rx || int(c.Tx) != tx {
		t.Fatalf("channels %+v, ethtool -l says rx %d tx %d", c, rx, tx)
	}
	c.Rx, c.Tx = 3, 1
	if err := h.SetChannels("e0", c); err != nil {
		t.Fatal(err)
	}
	if rx, tx := cliChannels(t, ns, "e0"); rx != 3 || tx != 1 {
		t.Fatalf("after setting rx 3 tx 1, ethtool -l says rx %d tx %d", rx, tx)
	}
	c.Tx = 9
	if err := h.SetChannels("e0", c); err == nil {
		t.Fatal("9 tx queues of a veth with 4 were accepted")
	}
	if _, err := h.Channels("nosuchdev0"); err == nil {
		t.Fatal("channels of a missing device: no error")
	}
}

func TestFeaturesMatchEthtool(t *testing.T) {
	testenv.RequireTool(t, "ethtool", "ethtool")
	ns, h := veth(t)
	f, err := h.Features("e0")
	if err != nil {
		t.Fatal(err)
	}
	cli := map[string]bool{}
	for _, line := range strings.Split(ns.MustRun(t, "ethtool", "-k", "e0"), "\n") {
		name, state, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if ok && (strings.HasPrefix(state, "on") || strings.HasPrefix(state, "off")) {
			cli[name] = strings.HasPrefix(state, "on")
		}
	}
	common := 0
	for name, on := range f {
		want, ok := cli[name]
		if !ok {
			continue // ethtool -k shows some under older names
		}
		common++
		if on != want {
			t.Fatalf("%s: %v, ethtool -k says %v", name, on, want)
		}
	}
	if common < 20 {
		t.Fatalf("only %d features named as ethtool -k names them: %v", common, f)
	}
	if !f["tx-checksum-ip-generic"] {
		t.Fatal("a new veth has tx-checksum-ip-generic off")
	}
	if err := h.SetFeatures("e0", map[string]bool{"tx-checksum-ip-generic": false}); err != nil {
		t.Fatal(err)
	}
	if out := ns.MustRun(t, "ethtool", "-k", "e0"); !strings.Contains(out, "tx-checksum-ip-generic: off") {
		t.Fatalf("ethtool -k after turning tx-checksum-ip-generic off:\n%s", out)
	}
	if f, err = h.Features("e0"); err != nil || f["tx-checksum-ip-generic"] {
		t.Fatalf("tx-checksum-ip-generic after turning it off: %v (%v)", f["tx-checksum-ip-generic"], err)
	}
	err = h.SetFeatures("e0", map[string]bool{"no-such-feature": true})
	if !errors.Is(err, ethtool.ErrUnknownFeature) {
		t.Fatalf("unknown feature: %v, want ErrUnknownFeature", err)
	}
}

// grow calls fn from depth frames down, so that the goroutine's stack
// grows (and moves) during the calls fn makes.
func grow(depth int, fn func()) {
	var pad [256]byte
	if depth == 0 {
		fn()
		return
	}
	grow(depth-1, fn)
	_ = pad
}

// TestReadsSurviveStackGrowth: reads from new goroutines, whose small
// stacks grow while the read runs, always come back complete. A library
// that hands the kernel a stack address as an integer reads back zeros
// here now and then.
func TestReadsSurviveStackGrowth(t *testing.T) {
	_, h := veth(t)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				grow((g*7+i)%40, func() {
					c, err := h.Channels("e0")
					if err == nil && (c.MaxRx != 4 || c.MaxTx != 4) {
						err = errors.New("channels read back " + strconv.Itoa(int(c.MaxRx)) + "/" + strconv.Itoa(int(c.MaxTx)))
					}
					if err == nil {
						var f map[string]bool
						if f, err = h.Features("e0"); err == nil && len(f) < 32 {
							err = errors.New("features read back " + strconv.Itoa(len(f)) + " names")
						}
					}
					if err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				})
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// TestSettingsMatchEthtool reads a veth's link settings and compares its
// speed, duplex, port and autonegotiation with what ethtool DEV prints.
func TestSettingsMatchEthtool(t *testing.T) {
	testenv.RequireTool(t, "ethtool", "ethtool")
	ns, h := veth(t)
	s, err := h.Settings("e0")
	if err != nil {
		t.Fatal(err)
	}
	out := ns.MustRun(t, "ethtool", "e0")
	field := func(key string) string {
		m := regexp.MustCompile(`(?m)^\s*` + key + `:\s+(.*)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("ethtool e0: no %s in\n%s", key, out)
		}
		return strings.TrimSpace(m[1])
	}
	ports := map[uint8]string{ethtool.PortTP: "Twisted Pair", ethtool.PortFibre: "FIBRE"}
	duplex := map[uint8]string{ethtool.DuplexHalf: "Half", ethtool.DuplexFull: "Full"}
	autoneg := map[bool]string{false: "off", true: "on"}
	if got, want := strconv.FormatUint(uint64(s.Speed), 10)+"Mb/s", field("Speed"); got != want {
		t.Errorf("speed %s, ethtool says %s", got, want)
	}
	if got, want := duplex[s.Duplex], field("Duplex"); got != want {
		t.Errorf("duplex %d (%s), ethtool says %s", s.Duplex, got, want)
	}
	if got, want := ports[s.Port], field("Port"); got != want {
		t.Errorf("port %d (%s), ethtool says %s", s.Port, got, want)
	}
	if got, want := autoneg[s.Autoneg], field("Auto-negotiation"); got != want {
		t.Errorf("autonegotiation %s, ethtool says %s", got, want)
	}
	// A veth reports no link modes: ethtool prints "Not reported".
	if field("Supported link modes") == "Not reported" && s.Supported != 0 {
		t.Errorf("supported link modes %#x, ethtool reports none", s.Supported)
	}
	if field("Advertised link modes") == "Not reported" && s.Advertising != 0 {
		t.Errorf("advertised link modes %#x, ethtool reports none", s.Advertising)
	}
}
