package test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/test/testenv"
	"github.com/ovsxdp/ovsxdp/vport"
)

// udpFrame builds test frame i: UDP from 10.0.0.1:(1000+i) to 10.0.0.2:53
// with a payload of n bytes of value i.
func udpFrame(t *testing.T, i, n int) []byte {
	t.Helper()
	eth := &layers.Ethernet{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4,
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IPv4(10, 0, 0, 1).To4(), DstIP: net.IPv4(10, 0, 0, 2).To4()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(1000 + i), DstPort: 53}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	payload := gopacket.Payload(bytes.Repeat([]byte{byte(i)}, n))
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, payload); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPcapRoundTrip replays a pcap file written by gopacket through a bridge
// that rewrites the destination address, captures the output to another
// pcap file, and checks it frame by frame with gopacket and with tcpdump.
func TestPcapRoundTrip(t *testing.T) {
	tcpdump := testenv.RequireTool(t, "tcpdump", "tcpdump")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.pcap"), filepath.Join(dir, "out.pcap")
	const n = 200

	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	var sent [][]byte
	for i := 0; i < n; i++ {
		fr := udpFrame(t, i, 20+i%50)
		sent = append(sent, fr)
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, int64(i)*1000), CaptureLength: len(fr), Length: len(fr)}
		if err := w.WritePacket(ci, fr); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	br, err := datapath.New(datapath.Config{Name: "br0"})
	if err != nil {
		t.Fatal(err)
	}
	rx, err := vport.NewPcapPort(vport.PcapConfig{Name: "replay", ReadFile: in})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := vport.NewPcapPort(vport.PcapConfig{Name: "capture", WriteFile: out})
	if err != nil {
		t.Fatal(err)
	}
	rp, err := br.AddPort(rx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := br.AddPort(tx, 2); err != nil {
		t.Fatal(err)
	}
	fl, err := flow.ParseFlow("in_port=1,udp,actions=mod_nw_dst:10.9.9.9,output:2", flow.CmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	br.Table().Add(fl)
	if err := br.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for rp.Stats().RxPackets < n {
		if time.Now().After(deadline) {
			t.Fatalf("replayed %d of %d frames", rp.Stats().RxPackets, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := br.Synchronize(ctx); err != nil {
		t.Fatal(err)
	}
	if err := br.Close(); err != nil { // flushes and closes the capture
		t.Fatal(err)
	}

	// Frame by frame with gopacket: the same frames, destination rewritten.
	cf, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	r, err := pcapgo.NewReader(cf)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		data, _, err := r.ReadPacketData()
		if err != nil {
			if i != n {
				t.Fatalf("capture holds %d frames, want %d (%v)", i, n, err)
			}
			break
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip == nil || udp == nil || !ip.DstIP.Equal(net.IPv4(10, 9, 9, 9)) || int(udp.SrcPort) != 1000+i {
			t.Fatalf("frame %d: %v", i, pkt)
		}
		if len(data) != len(sent[i]) {
			t.Fatalf("frame %d: %d bytes, sent %d", i, len(data), len(sent[i]))
		}
	}

	// tcpdump reads the capture and sees every frame and the rewrite.
	cmd := exec.Command(tcpdump, "-r", out, "-nn", "-v")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	text, err := cmd.Output()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, stderr.String())
	}
	lines := strings.Count(string(text), "10.0.0.1.")
	if lines != n || !strings.Contains(string(text), "> 10.9.9.9.53:") {
		t.Fatalf("tcpdump shows %d packets from 10.0.0.1, want %d:\n%s", lines, n, firstLines(string(text), 6))
	}
	if strings.Contains(string(text), "bad udp cksum") || strings.Contains(string(text), "bad cksum") {
		t.Errorf("tcpdump reports bad checksums:\n%s", firstLines(string(text), 6))
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n") + fmt.Sprintf("\n(%d bytes in all)", len(s))
}
