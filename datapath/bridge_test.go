package datapath

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// predict returns what the flow layer's reference semantics say leaves each
// port for frame received on inPort: the first rule of a linear scan in
// priority order, its actions run on a copy, outputs resolved as a switch
// resolves them (in_port, flood/all to every other port; no normal here).
func predict(t *testing.T, b *Bridge, inPort uint32, frame []byte) map[uint32][][]byte {
	t.Helper()
	var key flow.Key
	var off flow.Offsets
	if m := flow.Extract(&key, &off, frame, inPort); m != flow.MalformedNone {
		return nil
	}
	var rule *flow.Rule
	for _, r := range b.Table().Dump(nil) {
		if m := r.Match(); m.Matches(&key) {
			rule = r
			break
		}
	}
	if rule == nil {
		return nil
	}
	buf := make([]byte, len(frame), len(frame)+bufSpare)
	copy(buf, frame)
	rec := &recorder{out: map[uint32][][]byte{}}
	flow.Execute(buf, &key, &off, rule.Actions, rec)
	out := map[uint32][][]byte{}
	for port, frames := range rec.out {
		switch port {
		case flow.PortInPort:
			out[inPort] = append(out[inPort], frames...)
		case flow.PortFlood, flow.PortAll:
			for _, p := range b.Ports() {
				if p.OFPort != inPort {
					out[p.OFPort] = append(out[p.OFPort], frames...)
				}
			}
		default:
			if port != inPort {
				out[port] = append(out[port], frames...)
			}
		}
	}
	return out
}

func TestForwardingMatchesFlowSemantics(t *testing.T) {
	b := newTestBridge(t, Config{})
	var mps []*vport.MemPort
	for i := 1; i <= 4; i++ {
		mp, _ := addMemPort(t, b, vport.MemConfig{Name: fmt.Sprintf("p%d", i)}, uint32(i))
		mps = append(mps, mp)
	}
	addFlows(t, b,
		"priority=200,in_port=1,udp,tp_dst=53,actions=output:2",
		"priority=100,in_port=1,tcp,actions=mod_nw_dst:10.9.9.9,mod_tp_dst:8080,dec_ttl,output:3",
		"priority=100,in_port=1,icmp,actions=output:2,mod_dl_src:00:11:22:33:44:55,output:3,in_port",
		"priority=50,in_port=2,actions=flood",
		"priority=50,in_port=3,dl_vlan=7,actions=strip_vlan,output:4",
		"priority=40,in_port=3,actions=push_vlan:0x8100,mod_vlan_vid:9,output:1",
		"in_port=4,actions=drop",
	)
	type inject struct {
		port  uint32
		frame []byte
	}
	var ins []inject
	for i := 0; i < 20; i++ {
		sp := uint16(1000 + i)
		ins = append(ins,
			inject{1, buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: sp, dport: 53, payloadSz: 20 + i})},
			inject{1, buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: sp, dport: 54, payloadSz: 20})},
			inject{1, buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.3", proto: "tcp", sport: sp, dport: 80, payloadSz: 10})},
			inject{1, buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.4", proto: "icmp", payloadSz: 32})},
			inject{2, buildFrame(t, frameSpec{src: "10.0.1.1", dst: "10.0.1.2", proto: "udp", sport: sp, dport: 7, payloadSz: 8})},
			inject{3, buildFrame(t, frameSpec{src: "10.0.2.1", dst: "10.0.2.2", proto: "udp", sport: sp, dport: 7, vlan: 7, payloadSz: 8})},
			inject{3, buildFrame(t, frameSpec{src: "10.0.2.1", dst: "10.0.2.2", proto: "tcp", sport: sp, dport: 7, payloadSz: 8})},
			inject{4, buildFrame(t, frameSpec{src: "10.0.3.1", dst: "10.0.3.2", proto: "tcp", sport: sp, dport: 7, payloadSz: 8})},
		)
	}
	ins = append(ins, inject{1, []byte{1, 2, 3}}) // malformed: shorter than Ethernet

	want := map[uint32][][]byte{}
	for _, in := range ins {
		for port, frames := range predict(t, b, in.port, in.frame) {
			want[port] = append(want[port], frames...)
		}
		// One at a time, so that the order across input ports is known.
		if n := mps[in.port-1].Inject(0, [][]byte{in.frame}); n != 1 {
			t.Fatalf("inject: %d", n)
		}
		quiesce(t, b, mps...)
	}
	for i, mp := range mps {
		port := uint32(i + 1)
		got := drainAll(mp)
		if len(got) != len(want[port]) {
			t.Errorf("port %d: got %d frames, want %d", port, len(got), len(want[port]))
			continue
		}
		for j := range got {
			if !bytes.Equal(got[j], want[port][j]) {
				t.Errorf("port %d frame %d:\n got %x\nwant %x", port, j, got[j], want[port][j])
			}
		}
	}
	checkAccounting(t, b)
	p1, _ := b.Port("p1")
	// 20 UDP frames to port 54 match no rule.
	if s := p1.Stats(); s.Drops[DropMalformed] != 1 || s.Drops[DropNoRule] != 20 {
		t.Errorf("p1 drops: %v", s.Drops)
	}
	p4, _ := b.Port("p4")
	if s := p4.Stats(); s.Drops[DropNoRule] != 20 {
		t.Errorf("p4: %d explicit drops, want 20", s.Drops[DropNoRule])
	}
}

// closeChecker wraps a port and fails the test if the datapath touches it
// after Close.
type closeChecker struct {
	*vport.MemPort
	t      testing.TB
	closed atomic.Bool
	late   *atomic.Int64
}

func (c *closeChecker) Receive(q int, bufs [][]byte, sizes []int, info []vport.RxInfo) (int, error) {
	if c.closed.Load() {
		c.late.Add(1)
	}
	return c.MemPort.Receive(q, bufs, sizes, info)
}

func (c *closeChecker) Transmit(q int, frames [][]byte) (int, error) {
	if c.closed.Load() {
		c.late.Add(1)
	}
	return c.MemPort.Transmit(q, frames)
}

func (c *closeChecker) Close() error {
	c.closed.Store(true)
	return c.MemPort.Close()
}

func TestPortChurnUnderLoad(t *testing.T) {
	checkLeaks := goroutineBaseline(t)
	cycles := 2000
	if testing.Short() || raceEnabled {
		cycles = 300
	}
	b, err := New(Config{Name: "br0", PMDs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	src, _ := addMemPort(t, b, vport.MemConfig{Name: "src", RxQueues: 2, RecordRxQueue: true}, 1)
	dst, _ := addMemPort(t, b, vport.MemConfig{Name: "dst", TxQueues: 2}, 2)
	addFlows(t, b, "in_port=1,actions=output:2,output:3,output:4", "actions=drop")

	gen, err := vport.NewGenerator(src, vport.GenConfig{Seed: 1, Flows: 64})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := vport.NewSink(dst, vport.SinkConfig{Flows: 64})
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.Start(); err != nil {
		t.Fatal(err)
	}
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}

	var late atomic.Int64
	var removed []PortStats
	for i := 0; i < cycles; i++ {
		mp, err := vport.NewMemPort(vport.MemConfig{Name: "churn", RingSize: 64})
		if err != nil {
			t.Fatal(err)
		}
		cc := &closeChecker{MemPort: mp, t: t, late: &late}
		if _, err := b.AddPort(cc, uint32(3+i%2)); err != nil {
			t.Fatal(err)
		}
		// Drain so the churn port's ring does not just fill up.
		drainAll(mp)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := b.RemovePort(ctx, "churn")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		removed = append(removed, st)
	}
	beforeStop := sink.Stats().Packets
	gen.Stop()
	time.Sleep(20 * time.Millisecond)
	quiesce(t, b, src)
	sink.Stop()

	if late.Load() != 0 {
		t.Errorf("%d Receive/Transmit calls on ports after Close", late.Load())
	}
	var toChurn uint64
	for _, st := range removed {
		toChurn += st.TxPackets
		if n := st.TxDrops[DropTxError]; n != 0 {
			t.Errorf("removed port: %d tx errors", n)
		}
	}
	if beforeStop == 0 {
		t.Error("the other port forwarded nothing during the churn")
	}
	if s := sink.Stats(); s.Corrupt != 0 {
		t.Errorf("sink: %d corrupt frames", s.Corrupt)
	}
	t.Logf("%d add/remove cycles; generated %d, sink got %d, churn ports got %d", cycles, gen.Total(), sink.Stats().Packets, toChurn)
	checkAccounting(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	checkLeaks()
}

func TestAddPortErrors(t *testing.T) {
	b := newTestBridge(t, Config{})
	addMemPort(t, b, vport.MemConfig{Name: "a"}, 5)
	tests := []struct {
		name    string
		inName  string
		inOF    uint32
		wantErr error
	}{
		{"duplicate name", "a", 0, ErrPortExists},
		{"ofport in use", "b", 5, ErrOFPortUsed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mp, err := vport.NewMemPort(vport.MemConfig{Name: tt.inName})
			if err != nil {
				t.Fatal(err)
			}
			defer mp.Close()
			if _, err := b.AddPort(mp, tt.inOF); !errors.Is(err, tt.wantErr) {
				t.Errorf("AddPort: %v, want %v", err, tt.wantErr)
			}
		})
	}
	mp, _ := vport.NewMemPort(vport.MemConfig{Name: "c"})
	if p, err := b.AddPort(mp, 0); err != nil || p.OFPort != 1 {
		t.Errorf("automatic number: %v %v, want 1", p, err)
	}
	if _, err := b.RemovePort(context.Background(), "nope"); !errors.Is(err, ErrNoPort) {
		t.Errorf("RemovePort: %v", err)
	}
}

func TestPollOnce(t *testing.T) {
	b, err := New(Config{Name: "br0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	src, _ := addMemPort(t, b, vport.MemConfig{Name: "src"}, 1)
	dst, _ := addMemPort(t, b, vport.MemConfig{Name: "dst"}, 2)
	addFlows(t, b, "in_port=1,actions=output:2")
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 18})
	src.Inject(0, [][]byte{frame, frame, frame})
	if n, err := b.PollOnce(0); n != 3 || err != nil {
		t.Fatalf("PollOnce = %d, %v; want 3, nil", n, err)
	}
	if got := drainAll(dst); len(got) != 3 || !bytes.Equal(got[0], frame) {
		t.Fatalf("forwarded %d frames", len(got))
	}
	if _, err := b.PollOnce(1); err == nil {
		t.Error("PollOnce(1) on a bridge with one poll thread succeeded")
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PollOnce(0); err == nil {
		t.Error("PollOnce on a started bridge succeeded")
	}
	checkAccounting(t, b)
}

// TestRemovedPortsKeepLedger removes a port that received and sent
// traffic: its counters move to the bridge's removed row, so that the
// rows still add up to everything the bridge received, and every row
// balances.
func TestRemovedPortsKeepLedger(t *testing.T) {
	b := newTestBridge(t, Config{Idle: IdleSleep})
	src, _ := addMemPort(t, b, vport.MemConfig{Name: "src"}, 1)
	vic, _ := addMemPort(t, b, vport.MemConfig{Name: "vic"}, 2)
	addMemPort(t, b, vport.MemConfig{Name: "dst"}, 3)
	addFlows(t, b, "in_port=1,actions=output:2,output:9", "in_port=2,actions=output:3")
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 18})
	src.Inject(0, [][]byte{frame, frame, frame})
	vic.Inject(0, [][]byte{frame, frame})
	quiesce(t, b, src, vic)
	if r := b.RemovedStats(); r.Ports != 0 || r.Stats.Name != RemovedPortsName {
		t.Errorf("removed row before any removal: %+v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	final, err := b.RemovePort(ctx, "vic")
	if err != nil {
		t.Fatal(err)
	}
	r := b.RemovedStats()
	if r.Ports != 1 || r.Stats.RxPackets != 2 || r.Stats.TxPackets != 3 || r.Stats.Sent != 2 || !r.Stats.Balanced() || r.Device.RxPackets != 2 {
		t.Errorf("removed row %+v, want the final counters of vic %+v", r, final)
	}
	rows := []PortStats{r.Stats}
	for _, p := range b.Ports() {
		rows = append(rows, p.Stats())
	}
	var rx, out uint64
	for _, s := range rows {
		if !s.Balanced() {
			t.Errorf("row %s does not balance: %+v", s.Name, s)
		}
		rx += s.RxPackets + s.Copies
		out += s.Sent + s.RxDropped()
	}
	if rx != 5+3 || out != rx {
		t.Errorf("bridge ledger: rx+copies %d, sent+drops %d; want 8 and 8", rx, out)
	}

	// A second removal adds to the row.
	if _, err := b.RemovePort(ctx, "dst"); err != nil {
		t.Fatal(err)
	}
	if r := b.RemovedStats(); r.Ports != 2 || r.Stats.TxPackets != 3+2 || !r.Stats.Balanced() {
		t.Errorf("removed row after two removals: %+v", r)
	}
}

// TestAddPortSeenOnReturn checks that a port is in every poll thread's
// view once AddPort returns: a frame sent to it right away is forwarded,
// never dropped as port-gone by a batch that loaded the table before the
// port was there. A thread that is mid-batch when the port is added makes
// the race; a busy-polling thread is nearly always mid-batch, and each
// round adds a new port while it polls.
func TestAddPortSeenOnReturn(t *testing.T) {
	b := newTestBridge(t, Config{Name: "br0", Idle: IdleSpin})
	src, in := addMemPort(t, b, vport.MemConfig{Name: "src"}, 1)
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 18})
	for i := range 50 {
		of := uint32(2 + i)
		dst, _ := addMemPort(t, b, vport.MemConfig{Name: fmt.Sprintf("dst%d", i)}, of)
		addFlows(t, b, fmt.Sprintf("in_port=1,actions=output:%d", of))
		if n := src.Inject(0, [][]byte{frame}); n != 1 {
			t.Fatalf("round %d: injected %d frames", i, n)
		}
		quiesce(t, b, src)
		if got := len(drainAll(dst)); got != 1 {
			t.Fatalf("round %d: port %d got %d frames, want 1; drops of src: %v", i, of, got, in.Stats().Drops)
		}
	}
}

// The bridge's LOCAL port takes OpenFlow number flow.PortLocal (and no
// other number above MaxOFPort); output:LOCAL, in_port=LOCAL and flooding
// reach it as any other port.
func TestLocalPort(t *testing.T) {
	b := newTestBridge(t, Config{})
	local, lp := addMemPort(t, b, vport.MemConfig{Name: "br0"}, flow.PortLocal)
	a, _ := addMemPort(t, b, vport.MemConfig{Name: "a"}, 0)
	c, _ := addMemPort(t, b, vport.MemConfig{Name: "c"}, 0)
	if lp.OFPort != flow.PortLocal {
		t.Fatalf("LOCAL port got %d", lp.OFPort)
	}
	if p, ok := b.PortByOF(flow.PortLocal); !ok || p != lp {
		t.Fatalf("PortByOF(LOCAL) = %v, %v", p, ok)
	}
	for _, of := range []uint32{MaxOFPort + 1, flow.PortLocal} {
		mp, err := vport.NewMemPort(vport.MemConfig{Name: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.AddPort(mp, of); err == nil {
			t.Errorf("AddPort with OpenFlow port %#x succeeded", of)
		}
		mp.Close()
	}
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2})

	addFlows(t, b, "in_port=1,actions=output:LOCAL", "in_port=LOCAL,actions=output:2", "in_port=2,actions=flood")
	a.Inject(0, [][]byte{frame})
	quiesce(t, b, a)
	if got := len(drainAll(local)); got != 1 {
		t.Errorf("output:LOCAL: %d frames on LOCAL, want 1", got)
	}
	local.Inject(0, [][]byte{frame})
	quiesce(t, b, local)
	if got := len(drainAll(c)); got != 1 {
		t.Errorf("in_port=LOCAL: %d frames on port 2, want 1", got)
	}

	c.Inject(0, [][]byte{frame})
	quiesce(t, b, c)
	if la, ll, lc := len(drainAll(a)), len(drainAll(local)), len(drainAll(c)); la != 1 || ll != 1 || lc != 0 {
		t.Errorf("flood from port 2: a %d, LOCAL %d, c %d frames; want 1, 1, 0", la, ll, lc)
	}
	checkAccounting(t, b)
	if _, err := b.RemovePort(context.Background(), "br0"); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.PortByOF(flow.PortLocal); ok {
		t.Error("LOCAL port still found once removed")
	}
}
