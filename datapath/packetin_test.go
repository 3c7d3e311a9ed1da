package datapath

import (
	"bytes"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestPacketIn checks the controller action on a running bridge: each
// packet's copy, cut to max_len, reaches the packet-in queue with what the
// packet in reports, the output after it still happens, and a copy that
// finds no controller or a full queue is dropped under its own reason,
// every packet accounted.
func TestPacketIn(t *testing.T) {
	b := newTestBridge(t, Config{})
	m1, _ := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	m2, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	addFlows(t, b, "cookie=0x99,in_port=1,udp,actions=load:7->NXM_NX_REG3[],controller(max_len=40,userdata=aa.bb),output:2")
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 100})

	// No controller takes packet ins yet.
	m1.Inject(0, [][]byte{frame})
	quiesce(t, b, m1)
	if n := len(drainAll(m2)); n != 1 {
		t.Fatalf("port 2 sent %d frames, want 1", n)
	}
	if s := portStats(t, b, "p1"); s.Drops[DropNoController] != 1 {
		t.Errorf("no-controller drops %d, want 1 (%v)", s.Drops[DropNoController], s.Drops)
	}

	b.SetPacketInsWanted(true)
	m1.Inject(0, [][]byte{frame})
	quiesce(t, b, m1)
	select {
	case pi := <-b.PacketIns():
		if pi.TotalLen != len(frame) || !bytes.Equal(pi.Data, frame[:40]) {
			t.Errorf("packet in of %d bytes (total %d), want the first 40 of %d", len(pi.Data), pi.TotalLen, len(frame))
		}
		if pi.Reason != flow.ReasonAction || pi.Cookie != 0x99 || pi.Table != 0 || pi.InPort != 1 || pi.Regs[3] != 7 || !bytes.Equal(pi.Userdata, []byte{0xaa, 0xbb}) {
			t.Errorf("packet in %+v", *pi.PacketIn)
		}
		b.ReleasePacketIn(pi)
	case <-time.After(10 * time.Second):
		t.Fatal("no packet in within 10s")
	}

	// Fill the queue: nothing reads it.
	batch := make([][]byte, 32)
	for i := range batch {
		batch[i] = frame
	}
	sent := 0
	for sent < PacketInQueueLen+64 {
		sent += m1.Inject(0, batch)
		quiesce(t, b, m1)
	}
	drainAll(m2)
	s := portStats(t, b, "p1")
	if s.Drops[DropPacketInQueueFull] == 0 {
		t.Errorf("no packet-in-queue-full drops after %d packet ins (%v)", sent, s.Drops)
	}
	if got := uint64(len(b.PacketIns())); got != PacketInQueueLen {
		t.Errorf("queue holds %d, want %d", got, PacketInQueueLen)
	}
	queued, dropped := b.PacketInStats()
	if queued+dropped != uint64(sent+2) {
		t.Errorf("queued %d + dropped %d != %d packet ins", queued, dropped, sent+2)
	}
	checkAccounting(t, b)
}

// TestMissToController checks that a table miss becomes a packet in with
// reason no_match while the bridge sends misses to the controller, and
// drops again once it does not.
func TestMissToController(t *testing.T) {
	b := newTestBridge(t, Config{})
	m1, _ := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 10})
	b.SetPacketInsWanted(true)
	m1.Inject(0, [][]byte{frame})
	quiesce(t, b, m1)
	if len(b.PacketIns()) != 0 {
		t.Fatal("a miss became a packet in without the miss policy")
	}
	b.SetMissToController(true)
	m1.Inject(0, [][]byte{frame})
	quiesce(t, b, m1)
	select {
	case pi := <-b.PacketIns():
		if pi.Reason != flow.ReasonImplicitMiss || pi.Cookie != flow.CookieNone || len(pi.Data) != len(frame) {
			t.Errorf("miss packet in %+v, %d bytes", *pi.PacketIn, len(pi.Data))
		}
	default:
		t.Fatal("no packet in for a miss")
	}
	b.SetMissToController(false)
	m1.Inject(0, [][]byte{frame})
	quiesce(t, b, m1)
	if len(b.PacketIns()) != 0 {
		t.Error("a miss became a packet in after the policy was turned off")
	}
	if s := portStats(t, b, "p1"); s.Drops[DropNoRule] != 2 {
		t.Errorf("no-rule drops %d, want 2", s.Drops[DropNoRule])
	}
	checkAccounting(t, b)
}

func portStats(t *testing.T, b *Bridge, name string) PortStats {
	t.Helper()
	for _, p := range b.Ports() {
		if s := p.Stats(); s.Name == name {
			return s
		}
	}
	t.Fatalf("no port %s", name)
	return PortStats{}
}

// TestFailOpen checks that a bridge in fail-open forwards with the normal
// action whatever its flows say, and follows them again afterwards.
func TestFailOpen(t *testing.T) {
	b := newTestBridge(t, Config{})
	m1, _ := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	m2, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	addFlows(t, b, "priority=10,actions=drop")
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 10})
	send := func() int {
		m1.Inject(0, [][]byte{frame})
		quiesce(t, b, m1)
		return len(drainAll(m2))
	}
	if n := send(); n != 0 {
		t.Fatalf("the drop flow let %d frames through", n)
	}
	b.SetFailOpen(true)
	if n := send(); n != 1 {
		t.Fatalf("fail-open: port 2 sent %d frames, want 1 (flooded by the normal action)", n)
	}
	b.SetFailOpen(false)
	if n := send(); n != 0 {
		t.Fatalf("after fail-open: %d frames through the drop flow", n)
	}
	checkAccounting(t, b)
}
