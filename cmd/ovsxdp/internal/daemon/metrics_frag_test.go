package daemon

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestMetricsHeldFragments: a fragment that ct holds for reassembly shows
// in the metrics, on the reassembler and on the port that received it.
func TestMetricsHeldFragments(t *testing.T) {
	d := newTestDaemon(t, "")
	run(t, d, "add-br", "br0")
	run(t, d, "add-port", "br0", "p1")
	run(t, d, "add-port", "br0", "p2")
	run(t, d, "add-flow", "br0", "ip,actions=ct(zone=3),output:2")
	b := d.bridges["br0"]
	p1, _ := b.dp.Port("p1")

	// The first fragment of a UDP datagram: 1,480 data bytes, more to come.
	k := flow.Key{DlType: flow.EthTypeIPv4, NwTTL: 64, NwProto: flow.IPProtoUDP}
	frame := flow.BuildFrame(&k)[:14+20]
	frame = append(frame, make([]byte, 1480)...)
	ip := frame[14:]
	binary.BigEndian.PutUint16(ip[2:], 20+1480)
	binary.BigEndian.PutUint16(ip[4:], 77)
	binary.BigEndian.PutUint16(ip[6:], 0x2000)
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^flow.FoldSum(flow.OnesSum(0, ip[:20])))
	binary.BigEndian.PutUint16(ip[20+4:], 8+3000) // the UDP length of the whole datagram
	if p1.VPort().(*vport.MemPort).Inject(0, [][]byte{frame}) != 1 {
		t.Fatal("inject failed")
	}
	for deadline := time.Now().Add(20 * time.Second); p1.Stats().Held != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("p1 holds %d fragments after 20s, drops %v", p1.Stats().Held, p1.Stats().Drops)
		}
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	d.writeMetrics(w)
	w.Flush()
	for _, m := range []string{
		"# TYPE ovsxdp_conntrack_fragments_held gauge\novsxdp_conntrack_fragments_held 1\n",
		`ovsxdp_port_held_packets{bridge="br0",port="p1"} 1` + "\n",
		`ovsxdp_port_held_packets{bridge="br0",port="p2"} 0` + "\n",
		`ovsxdp_port_drops_total{bridge="br0",port="p1",reason="` + datapath.DropNoRule.String() + `"} 0` + "\n",
	} {
		if !strings.Contains(buf.String(), m) {
			t.Errorf("metrics lack %q", m)
		}
	}
}
