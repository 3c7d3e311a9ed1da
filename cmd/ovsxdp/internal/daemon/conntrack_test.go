package daemon

import (
	"errors"
	"net"
	"regexp"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
)

// TestConntrackVerbs checks the tracker's commands: their output in Open
// vSwitch's words, and that a bad argument is refused and changes nothing.
func TestConntrackVerbs(t *testing.T) {
	d := newTestDaemon(t, "")
	if got := run(t, d, "dpctl/ct-get-maxconns"); got != "3000000\n" {
		t.Errorf("ct-get-maxconns = %q, want Open vSwitch's default 3000000", got)
	}
	if got := run(t, d, "dpctl/ct-set-maxconns", "10"); got != "setting maxconns successful\n" {
		t.Errorf("ct-set-maxconns = %q", got)
	}
	if got := run(t, d, "dpctl/ct-get-maxconns"); got != "10\n" {
		t.Errorf("ct-get-maxconns after setting 10 = %q", got)
	}
	run(t, d, "dpctl/ct-set-limits", "default=5", "zone=7,limit=3")
	if got, want := run(t, d, "dpctl/ct-get-limits"), "default limit=5\nzone=7,limit=3,count=0\n"; got != want {
		t.Errorf("ct-get-limits = %q, want %q", got, want)
	}
	if got, want := run(t, d, "dpctl/ct-get-limits", "zone=7,9"), "default limit=5\nzone=7,limit=3,count=0\nzone=9,limit=5,count=0\n"; got != want {
		t.Errorf("ct-get-limits zone=7,9 = %q, want %q", got, want)
	}
	run(t, d, "dpctl/ct-del-limits", "zone=7")
	if got, want := run(t, d, "dpctl/ct-get-limits"), "default limit=5\n"; got != want {
		t.Errorf("ct-get-limits after deleting zone 7 = %q, want %q", got, want)
	}
	if got := run(t, d, "dpctl/dump-conntrack"); got != "" {
		t.Errorf("dump-conntrack of an empty tracker = %q", got)
	}
	if got := run(t, d, "dpctl/dump-conntrack", "-m", "-s", "zone=3"); got != "" {
		t.Errorf("dump-conntrack -m -s zone=3 of an empty tracker = %q", got)
	}
	if got := run(t, d, "dpctl/ct-get-nconns"); got != "0\n" {
		t.Errorf("ct-get-nconns = %q", got)
	}
	run(t, d, "dpctl/flush-conntrack", "zone=3")

	for _, bad := range [][]string{
		{"dpctl/ct-set-limits", "default=5", "zone=70000,limit=1"},
		{"dpctl/ct-set-limits", "zone=1"},
		{"dpctl/dump-conntrack", "zone=x"},
		{"dpctl/dump-conntrack", "-m", "-x"},
		{"dpctl/flush-conntrack", "nat"},
		{"dpctl/ct-set-maxconns", "-1"},
		{"dpctl/ct-stats-show", "zone=1", "zone=2"},
	} {
		if _, err := runFlags(d, bad[0], nil, bad[1:]...); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: error %v, want a usage error", bad, err)
		}
	}
	// The refused ct-set-limits left the default as it was.
	if got, want := run(t, d, "dpctl/ct-get-limits"), "default limit=5\n"; got != want {
		t.Errorf("ct-get-limits after refused commands = %q, want %q", got, want)
	}
}

// TestIPFVerbs checks the fragment reassembly commands against what Open
// vSwitch 3.1 prints for the same commands (dpctl/ipf-*), and that bad
// arguments are refused and change nothing.
func TestIPFVerbs(t *testing.T) {
	d := newTestDaemon(t, "")
	const status = `        Fragmentation Module Status
        ---------------------------
        v4 enabled: 1
        v6 enabled: 0
        max num frags (v4/v6): 500
        num frag: 0
        min v4 frag size: 1000
        v4 frags accepted: 0
        v4 frags completed: 0
        v4 frags expired: 0
        v4 frags too small: 0
        v4 frags overlapped: 0
        v4 frags purged: 0
        min v6 frag size: 1280
        v6 frags accepted: 0
        v6 frags completed: 0
        v6 frags expired: 0
        v6 frags too small: 0
        v6 frags overlapped: 0
        v6 frags purged: 0
`
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dpctl/ipf-set-disabled", "v6"}, "disabling fragmentation reassembly successful\n"},
		{[]string{"dpctl/ipf-set-disabled", "v4"}, "disabling fragmentation reassembly successful\n"},
		{[]string{"dpctl/ipf-set-enabled", "v4"}, "enabling fragmentation reassembly successful\n"},
		{[]string{"dpctl/ipf-set-min-frag", "v4", "1000"}, "setting minimum fragment size successful\n"},
		{[]string{"dpctl/ipf-set-max-nfrags", "500"}, "setting maximum fragments successful\n"},
		{[]string{"dpctl/ipf-get-status"}, status},
		{[]string{"dpctl/ipf-get-status", "-m"}, status + "\n        Fragment Lists:\n\n"},
	} {
		if got := run(t, d, c.args[0], c.args[1:]...); got != c.want {
			t.Errorf("%v = %q, want %q", c.args, got, c.want)
		}
	}
	for _, bad := range [][]string{
		{"dpctl/ipf-set-enabled", "v5"},
		{"dpctl/ipf-set-disabled", "V4"},
		{"dpctl/ipf-set-min-frag", "v7", "1000"},
		{"dpctl/ipf-set-min-frag", "v4", "abc"},
		{"dpctl/ipf-set-max-nfrags", "x"},
		{"dpctl/ipf-get-status", "x"},
	} {
		if _, err := runFlags(d, bad[0], nil, bad[1:]...); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: error %v, want a usage error", bad, err)
		}
	}
	for _, bad := range [][]string{
		{"dpctl/ipf-set-min-frag", "v6", "399"},
		{"dpctl/ipf-set-max-nfrags", "5001"},
	} {
		if _, err := runFlags(d, bad[0], nil, bad[1:]...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if got := run(t, d, "dpctl/ipf-get-status"); got != status {
		t.Errorf("ipf-get-status after refused commands:\n%s", got)
	}
}

// TestDumpConntrackMoreStats checks dump-conntrack's -m and -s, as flags
// of the command line and as ovs-appctl-style arguments.
func TestDumpConntrackMoreStats(t *testing.T) {
	d := newTestDaemon(t, "")
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IPv4(10, 0, 0, 1), DstIP: net.IPv4(10, 0, 0, 2)}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Seq: 1, Window: 1000}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		t.Fatal(err)
	}
	frame := buf.Bytes()
	var fk flow.Key
	var off flow.Offsets
	flow.Extract(&fk, &off, frame, 1)
	if v := d.ct.Track(frame, &fk, &off, &flow.CT{Commit: true, Zone: 4, Table: flow.CTNoTable}, datapath.ConntrackNow()); v != flow.VerdictOK {
		t.Fatalf("track: %v", v)
	}
	re := regexp.MustCompile(`^tcp,orig=\(src=10\.0\.0\.1,dst=10\.0\.0\.2,sport=40000,dport=80\),reply=\(src=10\.0\.0\.2,dst=10\.0\.0\.1,sport=80,dport=40000\),id=0,zone=4,status=0,timeout=(29|30),protoinfo=\(state_orig=SYN_SENT,state_reply=CLOSED,flags_orig=0,flags_reply=0\)\n$`)
	if got, err := runFlags(d, "dpctl/dump-conntrack", map[string]string{"more": "true", "statistics": "true"}, "zone=4"); err != nil || !re.MatchString(got) {
		t.Errorf("dump-conntrack -m -s zone=4 (flags) = %q, %v", got, err)
	}
	if got := run(t, d, "dpctl/dump-conntrack", "-m", "-s"); !re.MatchString(got) {
		t.Errorf("dump-conntrack -m -s (arguments) = %q", got)
	}
	if got := run(t, d, "dpctl/dump-conntrack", "zone=5"); got != "" {
		t.Errorf("dump-conntrack zone=5 = %q", got)
	}
}
