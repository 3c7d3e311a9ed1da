package vport

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var allProtos = []ProtoShare{
	{ProtoUDP, 2}, {ProtoTCP, 1}, {ProtoICMP, 1}, {ProtoUDP6, 1}, {ProtoTCP6, 1}, {ProtoARP, 2},
}

func newTestGen(t testing.TB, p *MemPort, cfg GenConfig) *Generator {
	t.Helper()
	g, err := NewGenerator(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Stop)
	return g
}

// reserialize decodes frame with gopacket and serializes it again with
// checksums recomputed: equal bytes mean frame's checksums are valid.
func reserialize(t *testing.T, frame []byte) []byte {
	t.Helper()
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	var stack []gopacket.SerializableLayer
	var nl gopacket.NetworkLayer
	for _, l := range pkt.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			nl = l
		case *layers.IPv6:
			nl = l
		case *layers.UDP:
			l.SetNetworkLayerForChecksum(nl)
		case *layers.TCP:
			l.SetNetworkLayerForChecksum(nl)
		}
		if sl, ok := l.(gopacket.SerializableLayer); ok {
			stack = append(stack, sl)
		} else {
			stack = append(stack, gopacket.Payload(l.LayerContents()))
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, stack...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGeneratorFlows(t *testing.T) {
	p := newTestMem(t, MemConfig{RxQueues: 4})
	cfg := GenConfig{Seed: 7, Flows: 100, Mix: allProtos, VLANFraction: 0.3, Sizes: []int{64, 128, 1518}}
	g := newTestGen(t, p, cfg)
	flows := g.Flows()

	wantProtos := map[Proto]int{ProtoUDP: 25, ProtoTCP: 13, ProtoICMP: 12, ProtoUDP6: 12, ProtoTCP6: 12, ProtoARP: 26}
	gotProtos := map[Proto]int{}
	tagged, perQueue := 0, make([]int, 4)
	for _, f := range flows {
		gotProtos[f.Proto]++
		if f.VLAN {
			tagged++
		}
		perQueue[f.Queue]++
	}
	total := 0
	for proto, want := range wantProtos {
		total += gotProtos[proto]
		if d := gotProtos[proto] - want; d < -1 || d > 1 {
			t.Errorf("%d %s flows, want %d±1 (share of weights)", gotProtos[proto], proto, want)
		}
	}
	if total != 100 || tagged != 30 {
		t.Errorf("%d flows, %d tagged; want 100, 30", total, tagged)
	}
	for q, n := range perQueue {
		if n == 0 {
			t.Errorf("no flow hashed to rx queue %d of 4: %v", q, perQueue)
		}
	}

	for i, f := range flows {
		size := cfg.Sizes[i%3]
		minLen := ethLen + f.Proto.headerLen() + StampLen
		if f.VLAN {
			minLen += vlanLen
		}
		if want := max(size-FCSLen, minLen); f.Len != want {
			t.Errorf("flow %d (%s, vlan %v): length %d, want %d", i, f.Proto, f.VLAN, f.Len, want)
		}
		frame := g.Frame(i)
		pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
		wantLayer := map[Proto]gopacket.LayerType{
			ProtoUDP: layers.LayerTypeUDP, ProtoTCP: layers.LayerTypeTCP, ProtoICMP: layers.LayerTypeICMPv4,
			ProtoUDP6: layers.LayerTypeUDP, ProtoTCP6: layers.LayerTypeTCP, ProtoARP: layers.LayerTypeARP,
		}[f.Proto]
		if pkt.Layer(wantLayer) == nil {
			t.Errorf("flow %d: no %s layer in %s", i, wantLayer, pkt)
		}
		if (pkt.Layer(layers.LayerTypeDot1Q) != nil) != f.VLAN {
			t.Errorf("flow %d: 802.1Q layer present = %v, want %v", i, !f.VLAN, f.VLAN)
		}
		if (f.Proto == ProtoUDP6 || f.Proto == ProtoTCP6) != (pkt.Layer(layers.LayerTypeIPv6) != nil) {
			t.Errorf("flow %d (%s): wrong IP version", i, f.Proto)
		}
		if id, seq, err := VerifyStamp(frame); err != nil || int(id) != i || seq != 0 {
			t.Errorf("flow %d: stamp %d/%d %v", i, id, seq, err)
		}
	}
}

// TestStampKeepsChecksums stamps every flow's frame with many sequence
// numbers and checks, with gopacket as the reference, that the IP and L4
// checksums computed at setup stay valid.
func TestStampKeepsChecksums(t *testing.T) {
	p := newTestMem(t, MemConfig{})
	g := newTestGen(t, p, GenConfig{Seed: 3, Flows: 24, Mix: allProtos, VLANFraction: 0.5, MinSize: 64, MaxSize: 301})
	for i, f := range g.flows {
		frame := bytes.Clone(f.frame)
		for _, seq := range []uint32{0, 1, 2, 0xffff, 0x10000, 0x7fffffff, 0xfffffffe, 0xffffffff, 12345678} {
			writeStamp(frame, seq, f.base)
			if got := reserialize(t, frame); !bytes.Equal(got, frame) {
				t.Fatalf("flow %d (%s, %d bytes) seq %d: checksums changed:\n got %x\nwant %x", i, f.Proto, f.Len, seq, frame, got)
			}
			if id, gotSeq, err := VerifyStamp(frame); err != nil || int(id) != i || gotSeq != seq {
				t.Fatalf("flow %d seq %d: VerifyStamp = %d, %d, %v", i, seq, id, gotSeq, err)
			}
		}
	}
}

// TestStampDetectsEveryByte flips each byte of stamped frames in turn.
func TestStampDetectsEveryByte(t *testing.T) {
	p := newTestMem(t, MemConfig{})
	g := newTestGen(t, p, GenConfig{Seed: 5, Flows: 6, Mix: allProtos, Sizes: []int{64, 65, 200}})
	for i, f := range g.flows {
		frame := bytes.Clone(f.frame)
		writeStamp(frame, 99, f.base)
		for pos := range frame {
			for _, flip := range []byte{0x01, 0x80, 0xff} {
				frame[pos] ^= flip
				_, _, err := VerifyStamp(frame)
				inMagic := pos >= len(frame)-StampLen && pos < len(frame)-StampLen+2
				switch {
				case inMagic && !errors.Is(err, ErrNoStamp):
					t.Errorf("flow %d: flipping magic byte %d gave %v, want ErrNoStamp", i, pos, err)
				case !inMagic && !errors.Is(err, ErrCorrupt):
					t.Errorf("flow %d: flipping byte %d with %#x gave %v, want ErrCorrupt", i, pos, flip, err)
				}
				frame[pos] ^= flip
			}
		}
		if _, _, err := VerifyStamp(frame[:len(frame)-1]); err == nil {
			t.Errorf("flow %d: truncated frame verified", i)
		}
	}
	frame := g.Frame(0)
	if allocs := testing.AllocsPerRun(50, func() { VerifyStamp(frame) }); allocs != 0 {
		t.Errorf("VerifyStamp: %v allocations, want 0", allocs)
	}
	if g.Frame(-1) != nil || g.Frame(6) != nil || g.Sent(6) != 0 {
		t.Error("out-of-range flow accessors returned data")
	}
	if _, _, err := VerifyStamp([]byte{1, 2, 3}); !errors.Is(err, ErrNoStamp) {
		t.Errorf("short frame: %v, want ErrNoStamp", err)
	}
}

func TestGeneratorDeterministic(t *testing.T) {
	p := newTestMem(t, MemConfig{RxQueues: 2})
	cfg := GenConfig{Seed: 42, Flows: 20, Mix: allProtos, VLANFraction: 0.5, MinSize: 64, MaxSize: 1518}
	a, b := newTestGen(t, p, cfg), newTestGen(t, p, cfg)
	cfg.Seed = 43
	c := newTestGen(t, p, cfg)
	differ := false
	for i := range 20 {
		if !bytes.Equal(a.Frame(i), b.Frame(i)) || a.Flows()[i] != b.Flows()[i] {
			t.Errorf("flow %d differs between two generators with one seed", i)
		}
		differ = differ || !bytes.Equal(a.Frame(i), c.Frame(i))
	}
	if !differ {
		t.Error("another seed gave the same frames")
	}
}

func TestGeneratorConfigErrors(t *testing.T) {
	p := newTestMem(t, MemConfig{FrameSize: 1024})
	tests := []struct {
		name    string
		in      GenConfig
		wantErr string
	}{
		{"too many flows", GenConfig{Flows: maxGenFlows + 1}, "flows, want 1 to"},
		{"small size", GenConfig{Sizes: []int{64, 63}}, "size 63 (Sizes[1]) is below 64"},
		{"bad range", GenConfig{MinSize: 100, MaxSize: 90}, "sizes 100 to 90"},
		{"bad vlan fraction", GenConfig{VLANFraction: 1.5}, "VLAN fraction 1.5"},
		{"negative rate", GenConfig{Rate: -1}, "rate -1"},
		{"no weight", GenConfig{Mix: []ProtoShare{{ProtoUDP, 0}}}, "no weight"},
		{"unknown proto", GenConfig{Mix: []ProtoShare{{Proto(9), 1}}}, "unknown protocol 9"},
		{"frame too big for port", GenConfig{Sizes: []int{1518}}, "exceeds port mem0 frame size 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewGenerator(p, tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := ParseProto("sctp"); err == nil || !strings.Contains(err.Error(), `"sctp"`) {
		t.Errorf("ParseProto(sctp) = %v", err)
	}
	if got, err := ParseProto("TCP6"); got != ProtoTCP6 || err != nil {
		t.Errorf("ParseProto(TCP6) = %v, %v", got, err)
	}
}

// forward moves frames from every rx queue of p to its tx queue 0, with
// edit applied to each frame (by count of frames forwarded), until stop.
func forward(t *testing.T, p *MemPort, stop <-chan struct{}, edit func(k int, frame []byte)) {
	t.Helper()
	bufs, sizes := batchBufs(MaxBatch, p.FrameSize())
	tx := make([][]byte, MaxBatch)
	var poller Poller
	for q := range p.RxQueues() {
		must(t, poller.Add(p, q))
	}
	k := 0
	for {
		moved := 0
		for q := range p.RxQueues() {
			n, err := p.Receive(q, bufs, sizes, nil)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range n {
				tx[i] = bufs[i][:sizes[i]]
				if edit != nil {
					edit(k, tx[i])
				}
				k++
			}
			for off := 0; off < n; {
				m, err := p.Transmit(0, tx[off:n])
				if err != nil {
					t.Error(err)
					return
				}
				off += m
				if m == 0 {
					runtime.Gosched()
				}
			}
			moved += n
		}
		if moved == 0 {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := poller.Wait(time.Millisecond); err != nil {
				t.Error(err)
				return
			}
		}
	}
}

// runPipeline runs generator -> port rx -> forward (with edit) -> port tx ->
// sink until the generator has sent count packets and the sink has seen
// them all.
func runPipeline(t *testing.T, cfg GenConfig, edit func(int, []byte), onFrame func(int, []byte)) (*Generator, *Sink) {
	p := newTestMem(t, MemConfig{RxQueues: 2, RingSize: 256})
	g := newTestGen(t, p, cfg)
	s, err := NewSink(p, SinkConfig{Flows: cfg.Flows, OnFrame: onFrame})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { forward(t, p, stop, edit) })
	must(t, s.Start())
	must(t, g.Start())
	select {
	case <-g.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("generator did not finish")
	}
	deadline := time.Now().Add(60 * time.Second)
	for s.Stats().Packets < cfg.Count && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	s.Stop()
	return g, s
}

func TestGeneratorSinkIntegrity(t *testing.T) {
	const count = 20000
	cfg := GenConfig{Seed: 1, Flows: 50, Mix: allProtos, VLANFraction: 0.2, MinSize: 64, MaxSize: 1518, Count: count, Lossless: true}
	g, s := runPipeline(t, cfg, nil, nil)
	st := s.Stats()
	want := SinkStats{Packets: count, Bytes: st.Bytes}
	if st != want {
		t.Errorf("sink stats %+v, want %+v", st, want)
	}
	var bytesSent uint64
	for i, f := range g.Flows() {
		fs := s.Flow(i)
		if fs.Packets != g.Sent(i) || g.Dropped(i) != 0 || fs.NextSeq != uint32(g.Sent(i)) {
			t.Errorf("flow %d: sink saw %+v, generator sent %d dropped %d", i, fs, g.Sent(i), g.Dropped(i))
		}
		bytesSent += g.Sent(i) * uint64(f.Len)
	}
	if g.Total() != count || st.Bytes != bytesSent {
		t.Errorf("generator total %d (want %d); sink bytes %d, want %d", g.Total(), count, st.Bytes, bytesSent)
	}
}

// TestSinkDetectsCorruption corrupts one byte of one frame in transit and
// swaps two frames of a flow; the sink must notice both.
func TestSinkDetectsCorruption(t *testing.T) {
	const count = 2000
	cfg := GenConfig{Seed: 9, Flows: 1, Count: count, Lossless: true, Sizes: []int{128}}
	_, s := runPipeline(t, cfg, func(k int, frame []byte) {
		switch k {
		case 100:
			frame[30] ^= 0x04 // an IPv4 address byte
		case 500, 501:
			// The flow's frames differ only in their stamps: swapping
			// the sequence numbers of 500 and 501 swaps the frames.
			writeStamp(frame, uint32(1001-k), stampBase(frame))
		}
	}, nil)
	// Sequence 100 arrives corrupt (so it is also missing), 501 arrives
	// before 500: two gaps, one late frame.
	want := SinkStats{Packets: count, Bytes: count * 124, Corrupt: 1, OutOfOrder: 1, Lost: 2}
	if st := s.Stats(); st != want {
		t.Errorf("sink stats %+v, want %+v", st, want)
	}
	if fs := s.Flow(0); fs.Packets != count-1 || fs.NextSeq != count {
		t.Errorf("flow 0: %+v, want %d intact packets, next seq %d", fs, count-1, count)
	}
}

// TestSinkCapture checks, byte for byte, the frames that come out of the
// pipeline: flow 0's frame with the stamp of each sequence number in turn.
func TestSinkCapture(t *testing.T) {
	const count = 40
	var got [][]byte
	g, _ := runPipeline(t, GenConfig{Seed: 4, Flows: 1, Mix: []ProtoShare{{ProtoTCP6, 1}}, VLANFraction: 1, Count: count, Lossless: true},
		nil, func(q int, frame []byte) {
			if q != 0 {
				t.Errorf("frame on tx queue %d", q)
			}
			got = append(got, bytes.Clone(frame))
		})
	if len(got) != count {
		t.Fatalf("captured %d frames, want %d", len(got), count)
	}
	want := g.Frame(0)
	for k, frame := range got {
		writeStamp(want, uint32(k), stampBase(want))
		if !bytes.Equal(frame, want) {
			t.Fatalf("frame %d:\n got %x\nwant %x", k, frame, want)
		}
	}
}

func TestGeneratorLossy(t *testing.T) {
	p := newTestMem(t, MemConfig{RingSize: 16})
	g := newTestGen(t, p, GenConfig{Flows: 4, Count: 100})
	must(t, g.Start())
	<-g.Done()
	var sent, dropped uint64
	for i := range 4 {
		sent += g.Sent(i)
		dropped += g.Dropped(i)
	}
	if sent != 16 || dropped != 84 || p.RxPending(0) != 16 {
		t.Errorf("sent %d dropped %d pending %d; want 16, 84, 16", sent, dropped, p.RxPending(0))
	}
	// The sink sees the gap as loss, not as corruption.
	bufs, sizes := batchBufs(MaxBatch, 2048)
	n, _ := p.Receive(0, bufs, sizes, nil)
	for i := range n {
		if _, _, err := VerifyStamp(bufs[i][:sizes[i]]); err != nil {
			t.Errorf("frame %d: %v", i, err)
		}
	}
}

// TestGeneratorPacing checks that the rate is applied: never more than
// the rate allows over the time it ran (plus one batch of slack), and some
// traffic. It does not hold the generator to a lower bound on speed, nor
// to a time by which its first packet must go out.
func TestGeneratorPacing(t *testing.T) {
	p := newTestMem(t, MemConfig{RingSize: 1 << 14})
	const rate = 2000
	g := newTestGen(t, p, GenConfig{Flows: 3, Rate: rate})
	start := time.Now()
	must(t, g.Start())
	// At least 150 ms, and on until the first packet went out: a loaded
	// machine may not run the generator's goroutine at once.
	for time.Since(start) < 150*time.Millisecond || g.Total() == 0 && time.Since(start) < 20*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	g.Stop()
	elapsed := time.Since(start)
	sent := g.Total()
	if limit := uint64(rate*elapsed.Seconds()) + MaxBatch; sent > limit || sent == 0 {
		t.Errorf("sent %d packets in %v at %d/s, want 1 to %d", sent, elapsed, rate, limit)
	}
	// Unpaced, the same time lets through far more (the ring's worth).
	fast := newTestGen(t, p, GenConfig{Flows: 3, Count: 1 << 13})
	must(t, fast.Start())
	<-fast.Done()
	if fast.Total() != 1<<13 {
		t.Errorf("unpaced generator sent %d, want %d", fast.Total(), 1<<13)
	}
}

func TestGeneratorNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	p := newTestMem(t, MemConfig{RingSize: 64})
	g := newTestGen(t, p, GenConfig{Flows: 8, Lossless: true})
	s, err := NewSink(p, SinkConfig{Flows: 8})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		must(t, g.Start())
		must(t, s.Start())
		if err := g.Start(); err == nil {
			t.Error("second Start succeeded")
		}
		if err := s.Start(); err == nil {
			t.Error("second sink Start succeeded")
		}
		time.Sleep(5 * time.Millisecond)
		g.Stop()
		g.Stop()
		s.Stop()
		s.Stop()
	}
	if g.Total() == 0 {
		t.Error("the generator sent nothing")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after Stop:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

func BenchmarkGenerator(b *testing.B) {
	p := newTestMem(b, MemConfig{RingSize: 4096})
	g := newTestGen(b, p, GenConfig{Flows: 64, Mix: allProtos, Count: uint64(b.N), Lossless: true})
	bufs, sizes := batchBufs(MaxBatch, 2048)
	b.ReportAllocs()
	must(b, g.Start())
	for got := 0; got < b.N; {
		n, _ := p.Receive(0, bufs, sizes, nil)
		got += n
		if n == 0 {
			runtime.Gosched()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// TestGeneratorAccountsEveryFrame stops a lossless generator while it
// waits for room in a full rx ring, again and again: every frame it
// stamped is sent, dropped or unsent, Total counts only the frames handed
// to the port, and the port holds exactly the frames sent.
func TestGeneratorAccountsEveryFrame(t *testing.T) {
	const ring = 64
	p := newTestMem(t, MemConfig{RxQueues: 2, RingSize: ring})
	g := newTestGen(t, p, GenConfig{Seed: 3, Flows: 16, Lossless: true})
	queueOf := make([]int, 0, 16)
	for _, f := range g.Flows() {
		queueOf = append(queueOf, f.Queue)
	}
	// sentOn is what went to rx queue q. Once a ring is full the
	// generator waits in a flush, with its batch and those of the other
	// queues unsent.
	sentOn := func(q int) (n uint64) {
		for i, fq := range queueOf {
			if fq == q {
				n += g.Sent(i)
			}
		}
		return n
	}
	var received [2]uint64
	bufs, sizes := make([][]byte, MaxBatch), make([]int, MaxBatch)
	for i := range bufs {
		bufs[i] = make([]byte, p.FrameSize())
	}
	leftSome := false
	for cycle := 0; cycle < 20 && !(leftSome && cycle >= 3); cycle++ {
		must(t, g.Start())
		deadline := time.Now().Add(20 * time.Second)
		for sentOn(0)-received[0] < ring && sentOn(1)-received[1] < ring && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		g.Stop()
		var sent, dropped, unsent uint64
		for i := range queueOf {
			s, d, u := g.Sent(i), g.Dropped(i), g.Unsent(i)
			if stamped := uint64(g.seqs[i]); s+d+u != stamped {
				t.Errorf("cycle %d, flow %d: sent %d + dropped %d + unsent %d != %d stamped", cycle, i, s, d, u, stamped)
			}
			sent, dropped, unsent = sent+s, dropped+d, unsent+u
		}
		if g.Total() != sent+dropped || g.UnsentTotal() != unsent {
			t.Fatalf("cycle %d: Total %d, UnsentTotal %d; want sent+dropped %d, unsent %d", cycle, g.Total(), g.UnsentTotal(), sent+dropped, unsent)
		}
		leftSome = leftSome || unsent > 0
		// The port holds what was sent and not yet received.
		for q := range received {
			for {
				n, err := p.Receive(q, bufs, sizes, nil)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				received[q] += uint64(n)
			}
			if received[q] != sentOn(q) {
				t.Fatalf("cycle %d: queue %d received %d, generator sent %d", cycle, q, received[q], sentOn(q))
			}
		}
	}
	if !leftSome {
		t.Error("no stop left a frame unsent: the test did not catch the generator waiting for room")
	}
}
