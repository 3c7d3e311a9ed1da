package test

import (
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ovsxdp/ovsxdp/test/netns"
	"github.com/ovsxdp/ovsxdp/test/testenv"
)

// frameBurst sends a frame (hex) count times on dev, as fast as the socket
// takes them (the helper role frame-burst).
func frameBurst(dev, frame string, count int) error {
	b, err := hex.DecodeString(frame)
	if err != nil {
		return err
	}
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	to := &syscall.SockaddrLinklayer{Ifindex: ifi.Index}
	for sent := 0; sent < count; {
		err := syscall.Sendto(fd, b, 0, to)
		switch err {
		case nil:
			sent++
		case syscall.ENOBUFS, syscall.EAGAIN:
			time.Sleep(time.Millisecond) // the veth's queue is full: a send that failed is not counted
		default:
			return err
		}
	}
	return nil
}

var (
	meterInCount   = regexp.MustCompile(`meter:1 flow_count:(\d+) packet_in_count:(\d+) byte_in_count:(\d+)`)
	meterBandCount = regexp.MustCompile(`0: packet_count:(\d+) byte_count:(\d+)`)
)

// TestOpenFlowMeterDropsExcess: ovs-ofctl -O OpenFlow13 adds a meter of
// 10 packets a second with a burst of 20, and a flow that sends UDP from
// one AF_XDP port to the other through it; 1,000 frames sent as fast as
// a socket takes them are policed: the excess is dropped and counted as
// meter-drop on the input port, meter-stats agrees with the ports'
// counters, and the megaflow shows meter(0). Deleting the meter deletes
// the flow.
func TestOpenFlowMeterDropsExcess(t *testing.T) {
	testenv.RequireTool(t, "ovs-ofctl", "openvswitch-common")
	sw := netns.New(t, "metesw")
	a, b := netns.New(t, "metea"), netns.New(t, "meteb")
	netns.AddVeth(t, sw, "meteha", a, "metepa", 1)
	netns.AddVeth(t, sw, "metehb", b, "metepb", 1)
	bin := buildCLI(t)
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	d, _ := startCLIDaemonIn(t, sw, bin, filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "state.json"), "--rundir", runDir)
	d.run(t, "add-br", "br0")
	d.run(t, "add-port", "br0", "meteha", "type=afxdp", "ofport=1")
	d.run(t, "add-port", "br0", "metehb", "type=afxdp", "ofport=2")
	target := "unix:" + filepath.Join(runDir, "br0.mgmt")
	ofctl := func(cmd string, args ...string) string {
		t.Helper()
		out, err := runOfctl(nil, append([]string{"-O", "OpenFlow13", cmd, target}, args...))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	const sent, rate, burst = 1000, 10, 20
	ofctl("add-meter", fmt.Sprintf("meter=1,pktps,burst,stats,band=type=drop,rate=%d,burst_size=%d", rate, burst))
	if got := ofctl("dump-meters"); !strings.Contains(got, "meter=1 pktps burst stats bands=\ntype=drop rate=10 burst_size=20\n") {
		t.Fatalf("dump-meters:\n%s", got)
	}
	ofctl("add-flow", "priority=10,udp,in_port=1,actions=meter:1,output:2")

	eth := &layers.Ethernet{SrcMAC: a.MAC(t, "metepa"), DstMAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(10, 78, 0, 1), DstIP: net.IPv4(10, 78, 0, 2)}
	udp := &layers.UDP{SrcPort: 4000, DstPort: 5000}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(make([]byte, 32))); err != nil {
		t.Fatal(err)
	}
	frame := buf.Bytes()

	start := time.Now()
	a.MustRun(t, helperArgs(t, "frame-burst", "metepa", hex.EncodeToString(frame), strconv.Itoa(sent))...)
	var stats string
	if !netns.Eventually(30*time.Second, func() bool {
		stats = ofctl("meter-stats")
		m := meterInCount.FindStringSubmatch(stats)
		return m != nil && m[2] == strconv.Itoa(sent)
	}) {
		t.Fatalf("the meter did not see %d packets in 30s:\n%s\n%s", sent, stats, d.run(t, "dump-ports", "br0"))
	}
	elapsed := time.Since(start)

	in := meterInCount.FindStringSubmatch(stats)
	band := meterBandCount.FindStringSubmatch(stats)
	if band == nil {
		t.Fatalf("meter-stats without band counts:\n%s", stats)
	}
	dropped, _ := strconv.Atoi(band[1])
	passed := sent - dropped
	limit := burst + int(rate*elapsed.Seconds()) + 1
	t.Logf("%d of %d frames passed in %v (at most %d), %d dropped", passed, sent, elapsed, limit, dropped)
	if dropped < 900 || passed > limit || passed < burst {
		t.Errorf("%d frames passed and %d were dropped in %v; want at least %d passed, at most %d, and at least 900 dropped", passed, dropped, elapsed, burst, limit)
	}
	if in[1] != "1" || in[3] != strconv.Itoa(sent*len(frame)) || band[2] != strconv.Itoa(dropped*len(frame)) {
		t.Errorf("meter-stats: flow_count %s, byte_in_count %s, band bytes %s; want 1, %d, %d", in[1], in[3], band[2], sent*len(frame), dropped*len(frame))
	}
	p1, p2 := d.run(t, "dump-ports", "br0", "1"), d.run(t, "dump-ports", "br0", "2")
	if !strings.Contains(p1, "rx dropped by reason: meter-drop="+strconv.Itoa(dropped)+"\n") {
		t.Errorf("port 1 does not count the %d meter drops:\n%s", dropped, p1)
	}
	if !strings.Contains(p2, "tx pkts="+strconv.Itoa(passed)+",") {
		t.Errorf("port 2 did not send the %d frames that passed:\n%s", passed, p2)
	}
	if flows := d.run(t, "dpctl/dump-flows", "br0"); !strings.Contains(flows, "actions:meter(0),2") {
		t.Errorf("no megaflow through meter(0):\n%s", flows)
	}

	ofctl("del-meters", "meter=1")
	if got := ofctl("dump-flows"); strings.Contains(got, "meter:1") {
		t.Errorf("the flow that used the deleted meter is still there:\n%s", got)
	}
	if got := ofctl("dump-meters"); strings.Contains(got, "meter=1") {
		t.Errorf("dump-meters after del-meters:\n%s", got)
	}
}
