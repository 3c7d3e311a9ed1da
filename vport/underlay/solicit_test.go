package underlay

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
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

	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// referenceFrames reads testdata/frames.golden: the frames scapy builds
// (testdata/frames.py), by name.
func referenceFrames(t testing.TB) map[string][]byte {
	t.Helper()
	f, err := os.Open("testdata/frames.golden")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, h, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("frames.golden: bad line %q", sc.Text())
		}
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatalf("frames.golden %s: %v", name, err)
		}
		out[name] = b
	}
	return out
}

var (
	testMAC = [6]byte{2, 0, 0, 0, 0, 1}
	gwMAC   = [6]byte{2, 0, 0, 0, 0, 0xfe}
)

// TestSolicitFrames compares the ARP request and the neighbour
// solicitation byte for byte with scapy's.
func TestSolicitFrames(t *testing.T) {
	ref := referenceFrames(t)
	a := netip.MustParseAddr
	arp, err := AppendARPRequest(nil, testMAC, a("192.0.2.1"), a("192.0.2.254"))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := AppendNeighSolicit(nil, testMAC, a("2001:db8:1::1"), a("2001:db8:1::fe"))
	if err != nil {
		t.Fatal(err)
	}
	viaPath, err := AppendSolicit(make([]byte, 0, NeighSolicitLen), Path{SrcMAC: testMAC, Src: a("2001:db8:1::1"), NextHop: a("2001:db8:1::fe")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		got  []byte
		want string
		n    int
	}{
		{"arp request", arp, "arp-request", ARPRequestLen},
		{"neighbour solicitation", ns, "neigh-solicit", NeighSolicitLen},
		{"solicitation for a path", viaPath, "neigh-solicit", NeighSolicitLen},
	} {
		if hex.EncodeToString(tc.got) != hex.EncodeToString(ref[tc.want]) || len(tc.got) != tc.n {
			t.Errorf("%s:\n got %x\nwant %x (scapy)", tc.name, tc.got, ref[tc.want])
		}
	}
	if _, err := AppendARPRequest(nil, testMAC, a("2001:db8::1"), a("192.0.2.1")); !errors.Is(err, ErrFamily) {
		t.Errorf("ARP request from an IPv6 address: %v, want ErrFamily", err)
	}
	if _, err := AppendNeighSolicit(nil, testMAC, a("192.0.2.1"), a("2001:db8::1")); !errors.Is(err, ErrFamily) {
		t.Errorf("solicitation from an IPv4 address: %v, want ErrFamily", err)
	}
	b := make([]byte, 0, NeighSolicitLen)
	if n := testing.AllocsPerRun(100, func() {
		b, _ = AppendNeighSolicit(b[:0], testMAC, a("2001:db8:1::1"), a("2001:db8:1::fe"))
	}); n != 0 {
		t.Errorf("AppendNeighSolicit allocates %v times", n)
	}
}

// TestScapyReference builds the reference frames with scapy again, so
// that frames.golden cannot drift from what scapy builds.
func TestScapyReference(t *testing.T) {
	py := ""
	for _, c := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(c, "-c", "import scapy.all").Run() == nil {
			py = c
			break
		}
	}
	if py == "" {
		testenv.Missing(t, "python3 with scapy (Debian: python3-scapy)")
		return
	}
	out, err := exec.Command(py, "testdata/frames.py").Output()
	if err != nil {
		t.Fatalf("frames.py: %v", err)
	}
	want, err := os.ReadFile("testdata/frames.golden")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(want) {
		t.Errorf("scapy builds\n%s\nframes.golden has\n%s", out, want)
	}
}

// TestSnoop: what each reference frame teaches the neighbour cache, as
// Open vSwitch's snooping takes it.
func TestSnoop(t *testing.T) {
	ref := referenceFrames(t)
	a := netip.MustParseAddr
	corrupt := func(name string, i int) []byte {
		b := append([]byte(nil), ref[name]...)
		b[i] ^= 0x40
		return b
	}
	ns := ref["neigh-solicit"]
	for _, tc := range []struct {
		name      string
		inFrame   []byte
		wantKind  NeighKind
		wantErr   error
		wantIP    string
		wantMAC   [6]byte
		wantLearn bool
	}{
		{"arp reply", ref["arp-reply"], KindARP, nil, "192.0.2.254", gwMAC, true},
		{"gratuitous arp", ref["garp"], KindARP, nil, "192.0.2.253", [6]byte{2, 0, 0, 0, 0, 0xfd}, true},
		{"arp request for us", ref["arp-request-other"], KindARP, nil, "", [6]byte{}, false},
		{"our own arp request", ref["arp-request"], KindARP, nil, "", [6]byte{}, false},
		{"neighbour advertisement", ref["neigh-advert"], KindNeighAdvert, nil, "2001:db8:1::fe", gwMAC, true},
		{"advertisement in a vlan", ref["neigh-advert-vlan"], KindNeighAdvert, nil, "2001:db8:1::fe", gwMAC, true},
		{"advertisement without its link-layer address", ref["neigh-advert-no-tll"], KindNeighAdvert, nil, "", [6]byte{}, false},
		{"neighbour solicitation", ns, KindNeighSolicit, nil, "", [6]byte{}, false},
		{"advertisement from off link", ref["neigh-advert-hlim64"], 0, ErrMalformed, "", [6]byte{}, false},
		{"advertisement with a bad checksum", corrupt("neigh-advert", 14+40+8), 0, ErrChecksum, "", [6]byte{}, false},
		{"truncated arp", ref["arp-reply"][:30], 0, ErrMalformed, "", [6]byte{}, false},
		{"arp for another protocol", corrupt("arp-reply", 16), 0, ErrMalformed, "", [6]byte{}, false},
		{"truncated advertisement", ref["neigh-advert"][:70], 0, ErrMalformed, "", [6]byte{}, false},
		{"zero-length option", withChecksum(append(append([]byte(nil), ns[:len(ns)-8]...), 1, 0, 0, 0, 0, 0, 0, 0)), 0, ErrMalformed, "", [6]byte{}, false},
		{"two target link-layer options", withChecksum(append(append([]byte(nil), ref["neigh-advert"]...), 2, 1, 2, 0, 0, 0, 0, 0xfe)), 0, ErrMalformed, "", [6]byte{}, false},
		{"option past the message", withChecksum(append(append([]byte(nil), ref["neigh-advert"][:len(ref["neigh-advert"])-8]...), 2, 2, 2, 0, 0, 0, 0, 0xfe)), 0, ErrMalformed, "", [6]byte{}, false},
		{"ipv4 frame", append(append([]byte(nil), ns[:12]...), 0x08, 0x00, 0x45), 0, ErrNotNeigh, "", [6]byte{}, false},
		{"runt", ns[:10], 0, ErrNotNeigh, "", [6]byte{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			c := NewNeighCache(func() time.Time { return now }, nil)
			var m NeighMessage
			learnt, err := c.Snoop("u0", tc.inFrame, &m)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Snoop: %v, want %v", err, tc.wantErr)
			}
			if err == nil && m.Kind != tc.wantKind {
				t.Errorf("kind %d, want %d", m.Kind, tc.wantKind)
			}
			if learnt != tc.wantLearn {
				t.Fatalf("learnt %v, want %v (%+v)", learnt, tc.wantLearn, m)
			}
			es := c.Entries()
			if !tc.wantLearn {
				if len(es) != 0 {
					t.Errorf("cache %+v, want empty", es)
				}
				return
			}
			if mac, ok := c.Lookup("u0", a(tc.wantIP)); !ok || mac != tc.wantMAC {
				t.Errorf("cache has %x (%v) for %s, want %x", mac, ok, tc.wantIP, tc.wantMAC)
			}
			if _, ok := c.Lookup("u1", a(tc.wantIP)); ok {
				t.Errorf("learnt on u0, known on u1")
			}
		})
	}
	var m NeighMessage
	c := NewNeighCache(nil, nil)
	frame := ref["neigh-advert"]
	c.Snoop("u0", frame, &m)
	if n := testing.AllocsPerRun(100, func() { c.Snoop("u0", frame, &m) }); n != 0 {
		t.Errorf("snooping a known neighbour allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { c.Lookup("u0", a("2001:db8:1::fe")) }); n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
}

// withChecksum sets an untagged neighbour discovery frame's payload
// length and ICMPv6 checksum to fit its bytes.
func withChecksum(b []byte) []byte {
	ip, msg := b[14:54], b[54:]
	binary.BigEndian.PutUint16(ip[4:], uint16(len(msg)))
	msg[2], msg[3] = 0, 0
	binary.BigEndian.PutUint16(msg[2:], icmpv6Checksum(ip[8:24], ip[24:40], msg))
	return b
}

// TestNeighAging: an entry lives for the aging time after it was last
// learnt or used; tnl/neigh/aging cuts longer lives to the new time.
func TestNeighAging(t *testing.T) {
	now := time.Unix(1000, 0)
	changes := 0
	c := NewNeighCache(func() time.Time { return now }, func() { changes++ })
	ip := netip.MustParseAddr("192.0.2.9")
	c.Set("br0", ip, [6]byte{2, 0, 0, 0, 0, 9})
	if changes != 1 {
		t.Errorf("%d changes after a new entry, want 1", changes)
	}
	c.Set("br0", ip, [6]byte{2, 0, 0, 0, 0, 9})
	if changes != 1 {
		t.Errorf("%d changes after learning the same again, want 1", changes)
	}
	now = now.Add(10 * time.Minute)
	if _, ok := c.Lookup("br0", ip); !ok {
		t.Fatal("entry gone after 10 minutes")
	}
	now = now.Add(10 * time.Minute) // 20 minutes after it was learnt, 10 after it was used
	if _, ok := c.Lookup("br0", ip); !ok {
		t.Fatal("a lookup did not keep the entry")
	}
	if c.Expire() {
		t.Error("Expire removed a live entry")
	}
	if err := c.SetAging(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	now = now.Add(31 * time.Second)
	if _, ok := c.Lookup("br0", ip); ok {
		t.Error("entry alive past the new aging time")
	}
	if !c.Expire() || len(c.Entries()) != 0 {
		t.Errorf("Expire left %+v", c.Entries())
	}
	for _, d := range []time.Duration{0, 3601 * time.Second, 1500 * time.Millisecond} {
		if err := c.SetAging(d); !errors.Is(err, ErrBadAging) {
			t.Errorf("SetAging(%v): %v, want ErrBadAging", d, err)
		}
	}
}

// TestSolicitTshark has tshark dissect the requests: an ARP request and a
// neighbour solicitation with a correct checksum, and no expert warning
// or error.
func TestSolicitTshark(t *testing.T) {
	bin := testenv.RequireTool(t, "tshark", "tshark")
	a := netip.MustParseAddr
	arp, err := AppendARPRequest(nil, testMAC, a("192.0.2.1"), a("192.0.2.254"))
	if err != nil {
		t.Fatal(err)
	}
	ns, err := AppendNeighSolicit(nil, testMAC, a("2001:db8:1::1"), a("2001:db8:1::fe"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "solicit.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, frame := range [][]byte{arp, ns} {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(frame), Length: len(frame)}
		if err := w.WritePacket(ci, frame); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	out, err := exec.Command(bin, "-r", path, "-V", "-o", "icmpv6.checksum:TRUE").CombinedOutput()
	if err != nil {
		// Older tshark has no such preference: ICMPv6 checksums are checked anyway.
		out, err = exec.Command(bin, "-r", path, "-V").CombinedOutput()
	}
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"Opcode: request (1)", "Sender IP address: 192.0.2.1", "Target IP address: 192.0.2.254",
		"Type: Neighbor Solicitation (135)", "Target Address: 2001:db8:1::fe", "Destination Address: ff02::1:ff00:fe",
		"[Checksum Status: Good]", "Link-layer address: 02:00:00:00:00:01",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("tshark's dissection lacks %q:\n%s", want, text)
		}
	}
	for _, bad := range []string{"Expert Info (Error", "Expert Info (Warning", "Malformed"} {
		if strings.Contains(text, bad) {
			t.Errorf("tshark says %q:\n%s", bad, text)
		}
	}
}
