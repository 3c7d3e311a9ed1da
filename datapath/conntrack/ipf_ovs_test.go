package conntrack

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// ipfFlows send every IPv4 packet through ct and out to port 2, through a
// table-1 rule per ct_state class, told apart by priority.
const ipfFlows = `table=0,priority=100,ip,actions=ct(table=1,zone=0)
table=0,priority=1,actions=drop
table=1,priority=60,ct_state=+trk+inv,actions=output:2
table=1,priority=55,ct_state=+inv-trk,actions=output:2
table=1,priority=40,ct_state=+trk+new,actions=output:2
table=1,priority=1,actions=output:2
`

var ipfClass = map[int]string{60: "+trk+inv", 55: "+inv-trk", 40: "+trk+new", 1: "other"}

// TestIPFRefusedAndExpiredMatchOVS records what Open vSwitch 3.1's ipf
// does with the fragments it will not hold and with those that expire,
// and checks that this reassembler and tracker give the same ct_state:
// a refused fragment (too small, overlapping, over the limit, reassembly
// off) goes on to the tracker and is +trk+inv; an expired fragment is
// sent on, with the next packet that meets ct, as +inv without +trk, and
// ipf-get-status counts it as expired. The flows forward them all.
func TestIPFRefusedAndExpiredMatchOVS(t *testing.T) {
	o := startOVS(t)
	o.must("ovs-ofctl", "del-flows", "br0")
	flows := filepath.Join(o.dir, "ipf.txt")
	if err := os.WriteFile(flows, []byte(ipfFlows), 0o644); err != nil {
		t.Fatal(err)
	}
	o.must("ovs-ofctl", "add-flows", "br0", flows)

	// classes injects frame and returns the classes of the table-1 rules
	// whose counters grew by the time want of them did.
	classes := func(frame []byte, want int) []string {
		t.Helper()
		before := o.counters()
		o.appctl("dpctl/del-flows")
		o.appctl("netdev-dummy/receive", "p1", hex.EncodeToString(frame))
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var got []string
			for p, n := range o.counters() {
				for range n - before[p] {
					got = append(got, ipfClass[p])
				}
			}
			if len(got) >= want || time.Now().After(deadline) {
				return got
			}
		}
	}

	h := newHarness(t, Config{})
	d := NewDefrag()
	ct := &flow.CT{Table: 1}
	// mine gives a fragment to this reassembler and returns its ct_state
	// class when it is refused, "held" when held.
	mine := func(fr []byte) string {
		var k flow.Key
		var off flow.Offsets
		flow.Extract(&k, &off, fr, 1)
		if r := d.Hold(fr, &k, &off, 0, 0, h.now, nil); r.Status != FragInvalid {
			return "held"
		}
		h.tr.Track(fr, &k, &off, ct, h.now)
		if k.CtState&(flow.CtStateTracked|flow.CtStateInv) == flow.CtStateTracked|flow.CtStateInv {
			return "+trk+inv"
		}
		return "other"
	}
	udp := func(sport uint16, size int, id uint16) [][]byte {
		return fragment4(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: sport, dport: 9, payload: make([]byte, size)}.build(t), 1480, id)
	}
	small := fragment4(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: 1, dport: 9, payload: make([]byte, 1000)}.build(t), 496, 7)[0]
	held := udp(3, 3000, 8)
	overlap := append([]byte(nil), held[0]...) // the same first fragment again
	limited := udp(5, 3000, 9)[0]
	disabled := udp(7, 3000, 10)[0]

	check := func(what string, fr []byte, want string) {
		t.Helper()
		if got := classes(fr, 1); len(got) != 1 || got[0] != want {
			t.Errorf("%s: Open vSwitch %v, want %s", what, got, want)
		}
		if got := mine(fr); got != want {
			t.Errorf("%s: this reassembler and tracker %s, Open vSwitch %s", what, got, want)
		}
	}
	check("too small", small, "+trk+inv")
	if got := classes(held[0], 0); len(got) != 0 {
		t.Fatalf("a first fragment went on: %v", got)
	}
	mine(held[0])
	check("overlap", overlap, "+trk+inv")
	o.appctl("dpctl/ipf-set-max-nfrags", "1")
	if err := d.SetMaxFrags(1); err != nil {
		t.Fatal(err)
	}
	check("limit", limited, "+trk+inv")
	o.appctl("dpctl/ipf-set-max-nfrags", "1000")
	if err := d.SetMaxFrags(1000); err != nil {
		t.Fatal(err)
	}
	o.appctl("dpctl/ipf-set-disabled", "v4")
	d.SetEnabled(false, false)
	check("disabled", disabled, "+trk+inv")
	o.appctl("dpctl/ipf-set-enabled", "v4")
	d.SetEnabled(false, true)

	// The held fragment expires after 15 s; Open vSwitch sends it with
	// a later packet through ct.
	deadline := time.Now().Add(90 * time.Second)
	var got []string
	for sport := uint16(100); !strings.Contains(o.appctl("dpctl/ipf-get-status"), "v4 frags expired: 1"); sport++ {
		if time.Now().After(deadline) {
			t.Fatalf("Open vSwitch never sent the expired fragment:\n%s", o.appctl("dpctl/ipf-get-status"))
		}
		time.Sleep(time.Second)
		got = classes(pkt{src: "10.0.0.1", dst: "10.0.0.2", proto: flow.IPProtoUDP, sport: sport, dport: 9, payload: make([]byte, 10)}.build(t), 1)
	}
	var expired int
	for _, c := range got {
		if c == "+inv-trk" {
			expired++
		}
	}
	if expired != 1 {
		t.Errorf("with the expired fragment, Open vSwitch's rules matched %v, want one +inv-trk", got)
	}
	// This reassembler counts it alike.
	d.Expire(h.now + 16e9)
	if c := d.Counters(false); c.Expired != 1 || c.TooSmall != 1 || c.Overlap != 1 {
		t.Errorf("this reassembler's counters %+v", c)
	}
	if got, want := d.Status(), o.appctl("dpctl/ipf-get-status"); got != want {
		t.Errorf("ipf-get-status differs:\nOpen vSwitch:\n%s\nthis reassembler:\n%s", want, got)
	}
}
