package datapath

import (
	"sync"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// Packets over a meter's rate are dropped under DropMeter on their input
// port, every packet accounted for, and the meter's counters agree.
func TestMeterDropsExcess(t *testing.T) {
	b := newTestBridge(t, Config{})
	in, _ := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	out, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	const rate, burst, sent = 1, 10, 200
	if err := b.Table().AddMeter(&flow.MeterConfig{ID: 1, Flags: flow.MeterFlagPktps | flow.MeterFlagBurst,
		Bands: []flow.MeterBand{{Type: flow.MeterBandDrop, Rate: rate, Burst: burst}}}); err != nil {
		t.Fatal(err)
	}
	addFlows(t, b, "in_port=1,actions=meter:1,output:2")
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 20})
	start := time.Now()
	for i := 0; i < sent; {
		i += in.Inject(0, [][]byte{frame})
	}
	quiesce(t, b, in)
	elapsed := time.Since(start)
	passed := len(drainAll(out))
	if limit := burst + int(rate*elapsed.Seconds()) + 1; passed > limit || passed < burst {
		t.Errorf("%d of %d packets passed in %v; want %d to %d", passed, sent, elapsed, burst, limit)
	}
	var st PortStats
	for _, p := range b.Ports() {
		if s := p.Stats(); s.OFPort == 1 {
			st = s
		}
	}
	if got := st.Drops[DropMeter]; got != uint64(sent-passed) {
		t.Errorf("port p1 counts %d meter drops, want %d (%v)", got, sent-passed, st.Drops)
	}
	checkAccounting(t, b)
	ms := b.Table().Snapshot().Meter(1).Run.Stats()
	if ms.Packets != sent || ms.Bytes != uint64(sent*len(frame)) || ms.Bands[0].Packets != uint64(sent-passed) {
		t.Errorf("meter stats %+v, want %d in, %d over the band", ms, sent, sent-passed)
	}
}

// Deleting and re-adding a meter while packets run through it deletes the
// flows that use it, and nothing breaks: every packet is still accounted
// for.
func TestMeterDeleteUnderTraffic(t *testing.T) {
	b := newTestBridge(t, Config{})
	in, _ := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	out, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	cfg := &flow.MeterConfig{ID: 1, Flags: flow.MeterFlagPktps, Bands: []flow.MeterBand{{Type: flow.MeterBandDrop, Rate: 1000}}}
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 20})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			in.Inject(0, [][]byte{frame, frame, frame, frame})
			drainAll(out)
		}
	}()
	for range 50 {
		if err := b.Table().AddMeter(cfg); err != nil {
			t.Fatal(err)
		}
		addFlows(t, b, "in_port=1,actions=meter:1,output:2")
		if n, removed := b.Table().DeleteMeters(1); n != 1 || len(removed) != 1 {
			t.Fatalf("delete: %d meters, %d flows", n, len(removed))
		}
	}
	close(stop)
	wg.Wait()
	quiesce(t, b, in)
	checkAccounting(t, b)
}

// A controller action's meter_id polices the packet ins only: the packets
// that exceed the meter are not sent to the controller (counted as
// meter-drop copies), and the rest of the actions run for every packet.
func TestMeterControllerPacketIns(t *testing.T) {
	b := newTestBridge(t, Config{})
	in, _ := addMemPort(t, b, vport.MemConfig{Name: "p1"}, 1)
	out, _ := addMemPort(t, b, vport.MemConfig{Name: "p2"}, 2)
	const burst, sent = 5, 50
	if err := b.Table().AddMeter(&flow.MeterConfig{ID: 3, Flags: flow.MeterFlagPktps | flow.MeterFlagBurst,
		Bands: []flow.MeterBand{{Type: flow.MeterBandDrop, Rate: 1, Burst: burst}}}); err != nil {
		t.Fatal(err)
	}
	addFlows(t, b, "in_port=1,actions=controller(meter_id=3),output:2")
	b.SetPacketInsWanted(true)
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 20})
	start := time.Now()
	for i := 0; i < sent; {
		i += in.Inject(0, [][]byte{frame})
	}
	quiesce(t, b, in)
	limit := burst + int(time.Since(start).Seconds()) + 1
	if n := len(drainAll(out)); n != sent {
		t.Errorf("port 2 sent %d frames, want all %d", n, sent)
	}
	pins := len(b.PacketIns())
	for range pins {
		b.ReleasePacketIn(<-b.PacketIns())
	}
	if pins < burst || pins > limit {
		t.Errorf("%d packet ins, want %d to %d", pins, burst, limit)
	}
	if s := portStats(t, b, "p1"); s.Drops[DropMeter] != uint64(sent-pins) {
		t.Errorf("meter drops %d, want %d (%v)", s.Drops[DropMeter], sent-pins, s.Drops)
	}
	checkAccounting(t, b)
}
