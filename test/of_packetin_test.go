package test

import (
	"bytes"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
	"github.com/ovsxdp/ovsxdp/test/ovsref"
)

// Packet ins in the Nicira format nxt_packet_in (ovs-ofctl -P
// nxt_packet_in monitor), against ovsxdp and against Open vSwitch 3.1: a
// packet out whose pipeline reaches a controller action gives the same
// NXT_PACKET_IN, metadata and frame included, in the same bytes.

// pinFlows send a packet from in_port 1 through three tables to the
// controller, with registers, the metadata and the cookie set on the way.
var pinFlows = []string{
	"cookie=0x3,table=0,priority=5,in_port=1,actions=load:0x5->NXM_NX_REG1[],set_field:0x77->metadata,resubmit(,1)",
	// Registers in each pairing of an OpenFlow 1.5 xreg: both halves,
	// the high one only, the low one only.
	"cookie=0x4,table=1,actions=load:0x7->NXM_NX_REG0[],load:0x9->NXM_NX_REG2[],load:0x3->NXM_NX_REG5[],resubmit(,2)",
	"cookie=0x9,table=2,priority=1,actions=controller",
}

const pinFrame = "ffffffffffff00000000000108004500001c0001000040110000c0a80001c0a800020035003500080000"

// pinHeader is the first line of a packet in that ovs-ofctl prints.
var pinHeader = regexp.MustCompile(`(?m)^NXT_PACKET_IN.*$`)

// TestNXPacketInMatchesOVS compares what ovs-ofctl monitor prints in each
// version, then the bytes of the NXT_PACKET_IN itself.
func TestNXPacketInMatchesOVS(t *testing.T) {
	ports := []ovsref.Port{{Name: "p1", OFPort: 1}, {Name: "p2", OFPort: 2}}
	ref := ovsref.StartShared(t, "br0", ports)
	s := startOFSwitchPorts(t, ports)
	refTarget := "unix:" + filepath.Join(ref.Dir, "br0.mgmt")
	for _, v := range ofVersions {
		t.Run(v, func(t *testing.T) {
			want := runPacketIn(t, v, ref.Dir, refTarget, func(args ...string) {
				if out, err := ref.Ofctl(append([]string{"-O", v}, args...)...); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
			})
			got := runPacketIn(t, v, s.runDir, s.target, func(args ...string) { s.run(t, v, args[0], args[2:]...) })
			t.Logf("Open vSwitch printed:\n%s", want)
			if got != want {
				t.Errorf("ovs-ofctl -O %s -P nxt_packet_in monitor br0 65534\novsxdp:\n%s\nOpen vSwitch:\n%s", v, got, want)
			}
		})
	}
	// The bytes of the packet in in each version and format: the
	// metadata's order and headers are Open vSwitch's (OXM in_port in an
	// OpenFlow 1.0 NXT_PACKET_IN2, xregs in 1.5, NXM in NXT_PACKET_IN).
	installPinFlows(func(args ...string) {
		if out, err := ref.Ofctl(args...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}, refTarget)
	installPinFlows(func(args ...string) { s.run(t, "OpenFlow13", args[0], args[2:]...) }, s.target)
	for _, v := range []uint8{openflow.Version10, openflow.Version13, openflow.Version15} {
		for _, format := range []uint32{openflow.PacketInFormatStandard, openflow.PacketInFormatNXT, openflow.PacketInFormatNXT2} {
			want := rawPacketIn(t, filepath.Join(ref.Dir, "br0.mgmt"), v, format)
			got := rawPacketIn(t, filepath.Join(s.runDir, "br0.mgmt"), v, format)
			if !bytes.Equal(got, want) {
				t.Errorf("version 0x%02x, packet-in format %d\novsxdp:       %x\nOpen vSwitch: %x", v, format, got, want)
			}
		}
	}
}

// installPinFlows replaces the bridge's flows with pinFlows.
func installPinFlows(ofctl func(args ...string), target string) {
	ofctl("del-flows", target)
	for _, f := range pinFlows {
		ofctl("add-flow", target, f)
	}
}

// rawPacketIn connects to a bridge's management socket in version v,
// asks for the packet-in format, sends pinFrame through pinFlows and
// returns the first packet in it gets, as sent.
func rawPacketIn(t *testing.T, sock string, v uint8, format uint32) []byte {
	t.Helper()
	return rawPacketInFrame(t, sock, v, format, pinFrame)
}

// rawPacketInFrame is rawPacketIn for a frame given in hex.
func rawPacketInFrame(t *testing.T, sock string, v uint8, format uint32, hexFrame string) []byte {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	frame, err := hex.DecodeString(hexFrame)
	if err != nil {
		t.Fatal(err)
	}
	hello, _ := openflow.NewHello(v)
	out := &openflow.PacketOut{BufferID: openflow.NoBuffer, InPort: 1, Data: frame,
		Actions: []openflow.Action{&openflow.ActResubmit{InPort: 0xfff8, Table: 0, WithTable: true}}}
	if v >= openflow.Version15 {
		out.Match = []openflow.Field{pinField("in_port", []byte{0, 0, 0, 1})}
	}
	for _, m := range []openflow.Message{hello,
		&openflow.SetPacketInFormat{Format: format},
		&openflow.SetConfig{SwitchConfig: openflow.SwitchConfig{MissSendLen: 0xffff}},
		out,
	} {
		b, err := openflow.Encode(v, 1, m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	r := openflow.NewReader(c, 0)
	for {
		b, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("no packet in from %s: %v", sock, err)
		}
		_, m, err := openflow.Decode(b)
		if err != nil {
			t.Fatalf("%x: %v", b, err)
		}
		switch m := m.(type) {
		case *openflow.PacketIn, *openflow.NXPacketIn, *openflow.PacketIn2:
			return bytes.Clone(b)
		case *openflow.ErrorMsg:
			t.Fatalf("%s answered with an error: %+v", sock, m)
		}
	}
}

// runPacketIn installs pinFlows with ofctl (ovs-ofctl args, the bridge
// second), sends pinFrame out through them under a monitor that asked
// for nxt_packet_in, and returns the packet in the monitor printed.
func runPacketIn(t *testing.T, v, rundir, target string, ofctl func(args ...string)) string {
	t.Helper()
	installPinFlows(ofctl, target)
	ctl := filepath.Join(rundir, "pin-"+v+".ctl")
	m := startMonitorArgs(t, rundir, "-O", v, "-P", "nxt_packet_in", "--timeout=60", "--unixctl="+ctl, "monitor", target, "65534")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ovs-ofctl monitor printed:\n%s", m.text())
		}
	})
	// ovs-ofctl opens its control socket once the switch took the format
	// (it exits if refused) and miss_send_len; the packet out goes on the
	// monitor's own connection, after them.
	waitFor(t, func() bool { _, err := os.Stat(ctl); return err == nil }, "the control socket of a monitor that asked for nxt_packet_in")
	if out, err := exec.Command("ovs-appctl", "-t", ctl, "ofctl/packet-out", "in_port=1,packet="+pinFrame+",actions=resubmit(,0)").CombinedOutput(); err != nil {
		t.Fatalf("ofctl/packet-out: %v\n%s\nmonitor:\n%s", err, out, m.text())
	}
	waitFor(t, func() bool { return pinHeader.MatchString(m.text()) }, "a packet in on the monitor")
	// The packet in and the flow of its frame, ovs-ofctl's next line.
	var lines []string
	waitFor(t, func() bool {
		out := m.text()
		lines = strings.SplitN(out[strings.Index(out, "NXT_PACKET_IN"):], "\n", 3)
		return len(lines) == 3
	}, "the line of the packet in's frame")
	return lines[0] + "\n" + lines[1]
}

func pinField(name string, value []byte) openflow.Field {
	fh, _ := openflow.FieldByName(name, false)
	return openflow.Field{Name: name, Class: fh.Class, Field: fh.Field, Value: value}
}
