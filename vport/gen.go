package vport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
)

// FCSLen is the length of the Ethernet frame check sequence. Frame sizes in
// a GenConfig include it, as benchmark frame sizes do (a "64-byte frame"),
// but software never sees it: a 64-byte frame is 60 bytes in memory.
const FCSLen = 4

// Proto is a kind of traffic the generator emits.
type Proto uint8

const (
	ProtoUDP  Proto = iota // UDP over IPv4
	ProtoTCP               // TCP over IPv4 (ACK segments)
	ProtoICMP              // ICMP echo requests over IPv4
	ProtoUDP6              // UDP over IPv6
	ProtoTCP6              // TCP over IPv6
	ProtoARP               // ARP requests
	numProtos
)

var protoNames = [numProtos]string{"udp", "tcp", "icmp", "udp6", "tcp6", "arp"}

func (p Proto) String() string {
	if p < numProtos {
		return protoNames[p]
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// ParseProto parses a Proto by its name ("udp", "tcp", "icmp", "udp6",
// "tcp6", "arp").
func ParseProto(s string) (Proto, error) {
	for i, n := range protoNames {
		if strings.EqualFold(s, n) {
			return Proto(i), nil
		}
	}
	return 0, fmt.Errorf("unknown protocol %q, want one of %s", s, strings.Join(protoNames[:], ", "))
}

// ProtoShare is a protocol's weight in the generator's mix.
type ProtoShare struct {
	Proto  Proto
	Weight int
}

// GenConfig describes the traffic of a Generator. Each flow has one
// protocol, one frame size and one VLAN tag (or none), fixed at setup.
type GenConfig struct {
	// Seed makes the flows (addresses, ports, assignment of protocols,
	// sizes and tags) deterministic.
	Seed uint64
	// Flows is the number of distinct flows; default 1, at most 1<<20.
	Flows int
	// Sizes are frame sizes including the FCS (64 to 1518 for untagged
	// Ethernet); flow i gets Sizes[i%len(Sizes)]. If Sizes is empty, each
	// flow gets a size drawn from [MinSize, MaxSize], by default 64. A
	// size too small for a protocol's headers plus the stamp is raised to
	// the smallest that fits (IPv4 TCP and IPv6 frames cannot be 64 bytes).
	Sizes            []int
	MinSize, MaxSize int
	// Mix is the protocols' shares of the flows; default all UDP.
	Mix []ProtoShare
	// VLANFraction is the share of flows tagged with an 802.1Q header,
	// with VLAN ID VLANID (default 100).
	VLANFraction float64
	VLANID       uint16
	// Rate is the target in packets per second; 0 is as fast as the port
	// takes them.
	Rate float64
	// Count stops the generator after this many packets; 0 runs until Stop.
	Count uint64
	// Lossless makes the generator wait for room when an rx ring is full;
	// otherwise it drops the packet (and counts it) as a NIC drops what
	// overflows its rx ring.
	Lossless bool
}

// FlowInfo describes one generated flow.
type FlowInfo struct {
	ID    int
	Proto Proto
	VLAN  bool
	Len   int // frame length in memory, without FCS
	Queue int // the rx queue it is injected on (by flow hash)
}

// Generator emits stamped frames of a set of flows into the rx queues of a
// MemPort. Frames are built once, at setup; per packet the generator only
// copies a flow's frame and stamps it with the next sequence number. Flows
// take turns, round robin. One goroutine, started by Start and stopped by
// Stop, does the work.
//
// Every stamped frame of a flow is counted once: Sent (the port took it),
// Dropped (the rx ring was full) or Unsent (the generator stopped, or the
// port closed, before the frame was handed over: a batch waiting for room
// in Lossless mode, or the batches of the other queues behind it). An
// unsent frame used its sequence number, so a sink sees it as missing.
type Generator struct {
	port  *MemPort
	cfg   GenConfig
	flows []genFlow

	sent, dropped, unsent []atomic.Uint64 // per flow
	total                 atomic.Uint64   // packets sent or dropped, over all runs
	unsentTotal           atomic.Uint64

	// mu serializes Start and Stop and protects stop and done.
	mu   sync.Mutex
	stop chan struct{}
	done chan struct{}

	// Owned by the running goroutine (and so by one run at a time).
	cursor int
	seqs   []uint32
	issued uint64
}

type genFlow struct {
	FlowInfo
	frame []byte // with a stamp of sequence number 0
	base  uint32 // stampBase(frame)
}

// NewGenerator builds the flows of cfg for port.
func NewGenerator(port *MemPort, cfg GenConfig) (*Generator, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	g := &Generator{port: port, cfg: cfg}
	if err := g.buildFlows(); err != nil {
		return nil, err
	}
	g.sent = make([]atomic.Uint64, cfg.Flows)
	g.dropped = make([]atomic.Uint64, cfg.Flows)
	g.unsent = make([]atomic.Uint64, cfg.Flows)
	g.seqs = make([]uint32, cfg.Flows)
	done := make(chan struct{})
	close(done)
	g.done = done
	return g, nil
}

const maxGenFlows = 1 << 20

func (c *GenConfig) setDefaults() error {
	if c.Flows == 0 {
		c.Flows = 1
	}
	if len(c.Sizes) == 0 {
		if c.MinSize == 0 {
			c.MinSize = 64
		}
		if c.MaxSize == 0 {
			c.MaxSize = c.MinSize
		}
	}
	if len(c.Mix) == 0 {
		c.Mix = []ProtoShare{{Proto: ProtoUDP, Weight: 1}}
	}
	if c.VLANID == 0 {
		c.VLANID = 100
	}
	switch {
	case c.Flows < 1 || c.Flows > maxGenFlows:
		return fmt.Errorf("generator: %d flows, want 1 to %d", c.Flows, maxGenFlows)
	case c.VLANFraction < 0 || c.VLANFraction > 1:
		return fmt.Errorf("generator: VLAN fraction %g, want 0 to 1", c.VLANFraction)
	case c.VLANID > 4094:
		return fmt.Errorf("generator: VLAN ID %d, want 1 to 4094", c.VLANID)
	case c.Rate < 0:
		return fmt.Errorf("generator: rate %g, want 0 or more packets per second", c.Rate)
	case len(c.Sizes) == 0 && (c.MinSize < 64 || c.MaxSize < c.MinSize):
		return fmt.Errorf("generator: sizes %d to %d, want 64 <= min <= max", c.MinSize, c.MaxSize)
	}
	for i, s := range c.Sizes {
		if s < 64 {
			return fmt.Errorf("generator: size %d (Sizes[%d]) is below 64", s, i)
		}
	}
	total := 0
	for i, m := range c.Mix {
		if m.Proto >= numProtos {
			return fmt.Errorf("generator: Mix[%d]: unknown protocol %d", i, m.Proto)
		}
		if m.Weight < 0 {
			return fmt.Errorf("generator: Mix[%d] (%s): negative weight %d", i, m.Proto, m.Weight)
		}
		total += m.Weight
	}
	if total == 0 {
		return errors.New("generator: protocol mix has no weight")
	}
	return nil
}

// Flows describes the generated flows, by flow id.
func (g *Generator) Flows() []FlowInfo {
	out := make([]FlowInfo, len(g.flows))
	for i := range g.flows {
		out[i] = g.flows[i].FlowInfo
	}
	return out
}

// Frame returns a copy of flow i's frame as built at setup (stamped with
// sequence number 0), or nil if there is no flow i.
func (g *Generator) Frame(i int) []byte {
	if i < 0 || i >= len(g.flows) {
		return nil
	}
	f := make([]byte, len(g.flows[i].frame))
	copy(f, g.flows[i].frame)
	writeStamp(f, 0, g.flows[i].base)
	return f
}

// Sent is the number of packets of flow i the port took (0 if there is
// no flow i).
func (g *Generator) Sent(i int) uint64 {
	if i < 0 || i >= len(g.sent) {
		return 0
	}
	return g.sent[i].Load()
}

// Dropped is the number of packets of flow i dropped because the rx ring
// was full (never in Lossless mode).
func (g *Generator) Dropped(i int) uint64 {
	if i < 0 || i >= len(g.dropped) {
		return 0
	}
	return g.dropped[i].Load()
}

// Unsent is the number of packets of flow i stamped but never handed to
// the port, because the generator stopped (or the port closed) first.
func (g *Generator) Unsent(i int) uint64 {
	if i < 0 || i >= len(g.unsent) {
		return 0
	}
	return g.unsent[i].Load()
}

// Total is the number of packets handed to the port: sent or dropped, over
// all flows. Packets left unsent are not in it (UnsentTotal).
func (g *Generator) Total() uint64 { return g.total.Load() }

// UnsentTotal is the number of packets left unsent over all flows.
func (g *Generator) UnsentTotal() uint64 { return g.unsentTotal.Load() }

// Start starts generating. It fails if the generator is running.
func (g *Generator) Start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.done:
	default:
		return errors.New("generator: already running")
	}
	g.stop = make(chan struct{})
	g.done = make(chan struct{})
	go g.run(g.stop, g.done)
	return nil
}

// Stop stops generating and waits for the goroutine to exit. It is
// idempotent.
func (g *Generator) Stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stop != nil {
		close(g.stop)
		g.stop = nil
	}
	<-g.done
}

// Done is closed when the generator is not running: after Stop, or once it
// has generated Count packets.
func (g *Generator) Done() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.done
}

// genBatch is a batch of frames bound for one rx queue.
type genBatch struct {
	frames [MaxBatch][]byte
	flows  [MaxBatch]int
	n      int
}

func (g *Generator) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	batches := make([]genBatch, g.port.RxQueues())
	for q := range batches {
		arena := make([]byte, MaxBatch*g.port.FrameSize())
		for i := range batches[q].frames {
			batches[q].frames[i] = arena[i*g.port.FrameSize() : (i+1)*g.port.FrameSize()]
		}
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	var runIssued uint64
	for {
		select {
		case <-stop:
			return
		default:
		}
		if g.port.closed.Load() {
			return
		}
		budget := uint64(MaxBatch)
		if g.cfg.Count > 0 {
			if g.issued >= g.cfg.Count {
				return
			}
			budget = min(budget, g.cfg.Count-g.issued)
		}
		if g.cfg.Rate > 0 {
			due := uint64(time.Since(start).Seconds() * g.cfg.Rate)
			if due <= runIssued {
				next := start.Add(time.Duration(float64(runIssued+1) / g.cfg.Rate * float64(time.Second)))
				timer.Reset(time.Until(next))
				select {
				case <-stop:
					return
				case <-timer.C:
				}
				continue
			}
			budget = min(budget, due-runIssued)
		}
		for range budget {
			g.fill(batches)
		}
		runIssued += budget
		g.issued += budget
		for q := range batches {
			if !g.flush(q, &batches[q], stop) {
				for r := q + 1; r < len(batches); r++ {
					g.leave(&batches[r], 0)
				}
				return
			}
		}
	}
}

// fill stamps the next flow's next packet into its queue's batch.
func (g *Generator) fill(batches []genBatch) {
	f := &g.flows[g.cursor]
	g.cursor++
	if g.cursor == len(g.flows) {
		g.cursor = 0
	}
	b := &batches[f.Queue]
	buf := b.frames[b.n][:len(f.frame)]
	copy(buf, f.frame)
	writeStamp(buf, g.seqs[f.ID], f.base)
	g.seqs[f.ID]++
	b.frames[b.n] = buf
	b.flows[b.n] = f.ID
	b.n++
}

// flush injects a batch, waiting for room in Lossless mode. It returns
// false if the generator was stopped (or the port closed) meanwhile, with
// the frames it did not hand over counted as unsent.
func (g *Generator) flush(q int, b *genBatch, stop <-chan struct{}) bool {
	defer func() { b.n = 0 }()
	off := 0
	for tries := 0; off < b.n; tries++ {
		k := g.port.Inject(q, b.frames[off:b.n])
		for _, id := range b.flows[off : off+k] {
			g.sent[id].Add(1)
		}
		g.total.Add(uint64(k))
		off += k
		if off == b.n {
			break
		}
		if !g.cfg.Lossless {
			for _, id := range b.flows[off:b.n] {
				g.dropped[id].Add(1)
			}
			g.total.Add(uint64(b.n - off))
			break
		}
		if g.port.closed.Load() {
			g.leave(b, off)
			return false
		}
		select {
		case <-stop:
			g.leave(b, off)
			return false
		default:
		}
		if tries < 16 {
			runtime.Gosched()
		} else {
			time.Sleep(20 * time.Microsecond)
		}
	}
	return true
}

// leave counts the frames of b from off on as unsent.
func (g *Generator) leave(b *genBatch, off int) {
	for _, id := range b.flows[off:b.n] {
		g.unsent[id].Add(1)
	}
	g.unsentTotal.Add(uint64(b.n - off))
	b.n = 0
}

// buildFlows assigns protocols, tags and sizes to the flows (exactly in the
// configured proportions, in a seeded random order) and builds their frames.
func (g *Generator) buildFlows() error {
	cfg := &g.cfg
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	n := cfg.Flows

	weights := make([]int, len(cfg.Mix))
	for i, m := range cfg.Mix {
		weights[i] = m.Weight
	}
	protos := make([]Proto, 0, n)
	for i, c := range apportion(n, weights) {
		for range c {
			protos = append(protos, cfg.Mix[i].Proto)
		}
	}
	rng.Shuffle(n, func(i, j int) { protos[i], protos[j] = protos[j], protos[i] })

	tagged := make([]bool, n)
	for i := range int(cfg.VLANFraction*float64(n) + 0.5) {
		tagged[i] = true
	}
	rng.Shuffle(n, func(i, j int) { tagged[i], tagged[j] = tagged[j], tagged[i] })

	g.flows = make([]genFlow, n)
	for i := range g.flows {
		size := 0
		if len(cfg.Sizes) > 0 {
			size = cfg.Sizes[i%len(cfg.Sizes)]
		} else {
			size = cfg.MinSize + rng.IntN(cfg.MaxSize-cfg.MinSize+1)
		}
		f := &g.flows[i]
		f.FlowInfo = FlowInfo{ID: i, Proto: protos[i], VLAN: tagged[i]}
		f.build(size-FCSLen, cfg.VLANID, rng, g.port.RxQueues())
		if len(f.frame) > g.port.FrameSize() {
			return fmt.Errorf("generator: flow %d (%s): %d-byte frame exceeds port %s frame size %d",
				i, f.Proto, len(f.frame), g.port.Name(), g.port.FrameSize())
		}
	}
	return nil
}

// apportion splits n into len(weights) counts proportional to weights by
// largest remainder (ties to the earlier weight).
func apportion(n int, weights []int) []int {
	total := 0
	for _, w := range weights {
		total += w
	}
	counts := make([]int, len(weights))
	rems := make([]int, len(weights))
	left := n
	for i, w := range weights {
		counts[i] = n * w / total
		rems[i] = n * w % total
		left -= counts[i]
	}
	for ; left > 0; left-- {
		best := 0
		for i := range rems {
			if rems[i] > rems[best] {
				best = i
			}
		}
		counts[best]++
		rems[best] = -1
	}
	return counts
}

// Header lengths that bound the smallest frame of each protocol.
const (
	ethLen  = 14
	vlanLen = 4
	ipv4Len = 20
	ipv6Len = 40
	udpLen  = 8
	tcpLen  = 20
	icmpLen = 8
	arpLen  = 28
)

func (p Proto) headerLen() int {
	switch p {
	case ProtoUDP:
		return ipv4Len + udpLen
	case ProtoTCP:
		return ipv4Len + tcpLen
	case ProtoICMP:
		return ipv4Len + icmpLen
	case ProtoUDP6:
		return ipv6Len + udpLen
	case ProtoTCP6:
		return ipv6Len + tcpLen
	}
	return arpLen
}

// build makes the flow's frame of (at least) length frameLen: addresses
// and ports from the flow id and rng, a payload of seeded bytes, and the
// stamp in its last StampLen bytes. Its checksums are right: those of the
// IPv4 header and of ICMP, and the TCP and UDP ones over their
// pseudo-header.
func (f *genFlow) build(frameLen int, vid uint16, rng *rand.Rand, rxQueues int) {
	hdr := ethLen + f.Proto.headerLen()
	if f.VLAN {
		hdr += vlanLen
	}
	frameLen = max(frameLen, hdr+StampLen)
	f.Len = frameLen
	frame := make([]byte, frameLen)
	be := binary.BigEndian

	id := uint32(f.ID) + 1
	src := [6]byte{0x02, 0x00, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	dst := [6]byte{0x02, 0x01, byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}
	etherType := uint16(0x0800)
	switch f.Proto {
	case ProtoUDP6, ProtoTCP6:
		etherType = 0x86dd
	case ProtoARP:
		etherType = 0x0806
		dst = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	copy(frame[0:6], dst[:])
	copy(frame[6:12], src[:])
	l3 := ethLen
	if f.VLAN {
		be.PutUint16(frame[12:], 0x8100)
		be.PutUint16(frame[14:], vid) // priority 0
		l3 += vlanLen
	}
	be.PutUint16(frame[l3-2:], etherType)

	srcPort, dstPort := uint16(1024+rng.IntN(64512)), uint16(1+rng.IntN(65535))
	tuple := make([]byte, 0, 40)
	var l4 int
	var proto byte
	var pseudo uint64 // the pseudo-header's sum, for TCP and UDP
	switch f.Proto {
	case ProtoUDP, ProtoTCP, ProtoICMP:
		proto = 17
		switch f.Proto {
		case ProtoTCP:
			proto = 6
		case ProtoICMP:
			proto = 1
		}
		ip := frame[l3 : l3+ipv4Len]
		l4 = l3 + ipv4Len
		ip[0] = 0x45
		be.PutUint16(ip[2:], uint16(frameLen-l3))
		be.PutUint16(ip[4:], uint16(rng.Uint32()))
		ip[8], ip[9] = 64, proto
		copy(ip[12:16], []byte{10, byte(id >> 16), byte(id >> 8), byte(id)})
		copy(ip[16:20], []byte{172, 16 + byte(rng.IntN(16)), byte(rng.Uint32()), byte(1 + rng.IntN(254))})
		be.PutUint16(ip[10:], ^flow.FoldSum(flow.OnesSum(0, ip)))
		tuple = append(tuple, ip[12:20]...)
		pseudo = flow.OnesSum(0, ip[12:20]) + uint64(proto) + uint64(frameLen-l4)
	case ProtoUDP6, ProtoTCP6:
		proto = 17
		if f.Proto == ProtoTCP6 {
			proto = 6
		}
		ip := frame[l3 : l3+ipv6Len]
		l4 = l3 + ipv6Len
		ip[0] = 0x60
		be.PutUint16(ip[4:], uint16(frameLen-l4))
		ip[6], ip[7] = proto, 64
		ip[8], ip[24], ip[25] = 0xfd, 0xfd, 0x01
		be.PutUint32(ip[20:24], id)
		be.PutUint64(ip[32:40], rng.Uint64())
		tuple = append(tuple, ip[8:40]...)
		pseudo = flow.OnesSum(0, ip[8:40]) + uint64(proto) + uint64(frameLen-l4)
	case ProtoARP:
		a := frame[l3 : l3+arpLen]
		l4 = l3 + arpLen
		copy(a, []byte{0, 1, 0x08, 0x00, 6, 4, 0, 1}) // Ethernet, IPv4, request
		copy(a[8:14], src[:])
		copy(a[14:18], []byte{10, byte(id >> 16), byte(id >> 8), byte(id)})
		copy(a[24:28], []byte{10, 255, byte(rng.Uint32()), byte(1 + rng.IntN(254))})
		tuple = append(append(tuple, a[14:18]...), a[24:28]...)
	}
	tuple = append(tuple, byte(f.Proto))

	csum := -1 // where the transport checksum goes, if any
	switch f.Proto {
	case ProtoUDP, ProtoUDP6:
		u := frame[l4:]
		be.PutUint16(u[0:], srcPort)
		be.PutUint16(u[2:], dstPort)
		be.PutUint16(u[4:], uint16(frameLen-l4))
		csum = l4 + 6
		tuple = be.AppendUint16(be.AppendUint16(tuple, srcPort), dstPort)
	case ProtoTCP, ProtoTCP6:
		tc := frame[l4:]
		be.PutUint16(tc[0:], srcPort)
		be.PutUint16(tc[2:], dstPort)
		be.PutUint32(tc[4:], rng.Uint32()) // sequence number
		be.PutUint32(tc[8:], rng.Uint32()) // acknowledgement number
		tc[12], tc[13] = 5<<4, 0x18        // no options; ACK and PSH
		be.PutUint16(tc[14:], 65535)
		csum = l4 + 16
		tuple = be.AppendUint16(be.AppendUint16(tuple, srcPort), dstPort)
	case ProtoICMP:
		ic := frame[l4:]
		ic[0] = 8 // echo request, code 0
		be.PutUint16(ic[4:], uint16(id))
		be.PutUint16(ic[6:], 1)
		csum = l4 + 2
		pseudo = 0
		tuple = be.AppendUint16(tuple, uint16(id))
	}

	payload := frame[hdr:]
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	initStamp(payload, uint32(f.ID))
	if csum >= 0 {
		c := ^flow.FoldSum(flow.OnesSum(pseudo, frame[l4:]))
		if c == 0 && f.Proto != ProtoICMP && f.Proto != ProtoTCP && f.Proto != ProtoTCP6 {
			c = 0xffff // a UDP checksum of 0 means none (RFC 768)
		}
		be.PutUint16(frame[csum:], c)
	}
	f.frame = frame
	f.base = stampBase(f.frame)

	h := fnv.New32a()
	h.Write(tuple)
	f.Queue = int(h.Sum32() % uint32(rxQueues))
}
