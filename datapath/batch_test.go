package datapath

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// syncBridge is a bridge whose one poll thread the test drives itself
// (the bridge is not started): inject frames, poll once, drain.
type syncBridge struct {
	b     *Bridge
	srcs  []*vport.MemPort // ports 1..len(srcs)
	dsts  []*vport.MemPort // the ports after them
	lends []*lendPort      // the source ports, when they lend
	taps  []*tapPort       // every port, as the bridge sees it
}

// rxMode is how a syncBridge's source ports hand their frames over.
type rxMode int

const (
	rxCopied  rxMode = iota // copied into the poll thread's buffers
	rxLent                  // lent out of buffers of a lendPort's own
	rxMemLent               // lent out of the MemPort's rx ring, checked by a lendPort
	rxMemRun                // as rxMemLent, given back in runs too (vport.RunLender)
)

func (m rxMode) String() string { return [...]string{"copied", "lent", "mem lent", "mem runs"}[m] }

// newSyncBridge builds a bridge of nsrc source ports, which hand their
// frames over as mode says, and ndst other ports.
func newSyncBridge(t *testing.T, nsrc, ndst int, mode rxMode, flows ...string) *syncBridge {
	t.Helper()
	b, err := New(Config{Name: "sync"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	sb := &syncBridge{b: b}
	for i := range nsrc + ndst {
		mp, err := vport.NewMemPort(vport.MemConfig{Name: fmt.Sprintf("p%d", i+1), RecordRxQueue: true, RingSize: 256})
		if err != nil {
			t.Fatal(err)
		}
		var vp vport.Port = mp
		lend := mode != rxCopied
		if i < nsrc && lend {
			lp := newLendPort(mp, mode == rxMemLent || mode == rxMemRun)
			sb.lends = append(sb.lends, lp)
			vp = lp
		}
		tap := &tapPort{Port: vp, sb: sb}
		sb.taps = append(sb.taps, tap)
		switch {
		case i < nsrc && mode == rxMemRun:
			vp = &runLendTap{&lendTap{tapPort: tap, lp: sb.lends[len(sb.lends)-1]}}
		case i < nsrc && lend:
			vp = &lendTap{tapPort: tap, lp: sb.lends[len(sb.lends)-1]}
		default:
			vp = tap
		}
		if _, err := b.AddPort(vp, uint32(i+1)); err != nil {
			t.Fatal(err)
		}
		if i < nsrc {
			sb.srcs = append(sb.srcs, mp)
		} else {
			sb.dsts = append(sb.dsts, mp)
		}
	}
	addFlows(t, b, flows...)
	var rqs []rxq
	for i := range nsrc {
		rqs = append(rqs, rxq{port: b.ports.Load().lookup(uint32(i + 1)), q: 0})
	}
	b.pmds[0].rxqs.Store(&rqs)
	return sb
}

// lendPort is an in-memory port that lends frames out of buffers of its
// own, as an AF_XDP port lends UMEM frames (or, with mem, out of its
// MemPort's rx ring), and checks that every frame comes back once: a frame
// given back is overwritten at once, so a frame given back before it was
// sent goes out corrupted.
type lendPort struct {
	*vport.MemPort
	mem   bool
	bufs  [][]byte
	free  []int
	out   map[*byte]int // lent frames by the last byte of their buffer
	loan  [][]byte      // the frames of the last loan, with mem
	errs  []string
	lends int
}

func newLendPort(mp *vport.MemPort, mem bool) *lendPort {
	lp := &lendPort{MemPort: mp, mem: mem, out: map[*byte]int{}}
	for i := range 2 * vport.MaxBatch {
		lp.bufs = append(lp.bufs, make([]byte, 2048, 2048+64))
		lp.free = append(lp.free, i)
	}
	return lp
}

func lastByte(b []byte) *byte { return &b[:cap(b)][cap(b)-1] }

func (lp *lendPort) ReceiveLent(q int, frames [][]byte, info []vport.RxInfo) (int, error) {
	if lp.mem {
		n, err := lp.MemPort.ReceiveLent(q, frames, info)
		if n > 0 {
			lp.loan = append(lp.loan[:0], frames[:n]...)
		}
		for _, f := range frames[:n] {
			lp.out[lastByte(f)] = -1
			lp.lends++
		}
		return n, err
	}
	k := min(len(frames), len(lp.free))
	bufs := make([][]byte, k)
	sizes := make([]int, k)
	for i := range k {
		bufs[i] = lp.bufs[lp.free[i]]
	}
	n, err := lp.MemPort.Receive(q, bufs, sizes, info)
	for i := range n {
		idx := lp.free[i]
		frames[i] = lp.bufs[idx][:sizes[i]]
		lp.out[lastByte(frames[i])] = idx
		lp.lends++
	}
	lp.free = lp.free[n:]
	return n, err
}

func (lp *lendPort) Release(q int, frames [][]byte) {
	lp.release(q, frames, true)
}

// ReleaseRun gives back a run of the last loan by place, with the checks
// of Release, and then to the MemPort by place (mem only).
func (lp *lendPort) ReleaseRun(q, first, n int) {
	if first < 0 || n <= 0 || first+n > len(lp.loan) {
		lp.errs = append(lp.errs, fmt.Sprintf("a run %d+%d given back outside the loan of %d", first, n, len(lp.loan)))
		return
	}
	lp.release(q, lp.loan[first:first+n], false)
	lp.MemPort.ReleaseRun(q, first, n)
}

// release checks frames given back and overwrites them; with mem and
// toMem, it gives them back to the MemPort too.
func (lp *lendPort) release(q int, frames [][]byte, toMem bool) {
	for _, f := range frames {
		idx, ok := lp.out[lastByte(f)]
		if !ok {
			lp.errs = append(lp.errs, "a frame given back that is not lent")
			continue
		}
		delete(lp.out, lastByte(f))
		if lp.mem {
			b := f[:cap(f)]
			for i := range b {
				b[i] = 0xee
			}
			if toMem {
				lp.MemPort.Release(q, [][]byte{f})
			}
			continue
		}
		b := lp.bufs[idx][:cap(lp.bufs[idx])]
		for i := range b {
			b[i] = 0xee
		}
		lp.free = append(lp.free, idx)
	}
}

// tapPort counts the frames transmitted that are a source port's lent
// buffer or a poll thread's rx buffer, not a copy.
type tapPort struct {
	vport.Port
	sb      *syncBridge
	aliased int
}

func (tp *tapPort) Transmit(q int, frames [][]byte) (int, error) {
	for _, f := range frames {
		for _, lp := range tp.sb.lends {
			if _, ok := lp.out[lastByte(f)]; ok {
				tp.aliased++
			}
		}
	}
	return tp.Port.Transmit(q, frames)
}

// lendTap is a tapPort on a lendPort, which lends too.
type lendTap struct {
	*tapPort
	lp *lendPort
}

func (lt *lendTap) ReceiveLent(q int, frames [][]byte, info []vport.RxInfo) (int, error) {
	return lt.lp.ReceiveLent(q, frames, info)
}

func (lt *lendTap) Release(q int, frames [][]byte) { lt.lp.Release(q, frames) }

// runLendTap is a lendTap that gives back runs by place too.
type runLendTap struct{ *lendTap }

var _ vport.RunLender = (*runLendTap)(nil)

func (rt *runLendTap) ReleaseRun(q, first, n int) { rt.lp.ReleaseRun(q, first, n) }

func (sb *syncBridge) poll() {
	p := sb.b.pmds[0]
	p.rd.enter()
	p.poll(timeNow())
	p.rd.leave()
}

// expected runs acts on a copy of frame as flow.Execute does and returns
// what each port's output gets.
func expected(t *testing.T, frame []byte, inPort uint32, acts string) map[uint32][][]byte {
	t.Helper()
	f, err := flow.ParseFlow("actions="+acts, flow.CmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(frame), len(frame)+64)
	copy(buf, frame)
	var k flow.Key
	var off flow.Offsets
	flow.Extract(&k, &off, buf, inPort)
	rec := &recorder{out: map[uint32][][]byte{}}
	flow.Execute(buf, &k, &off, f.Actions, rec)
	return rec.out
}

// TestOutputTakesReceivedFrame checks that the last output of a packet
// queues the received frame itself (its rx buffer becomes an output buffer)
// instead of a copy, and that every port still gets the bytes it would
// get with a copy per output: an output before a rewrite sees the frame as
// it was, several queues' frames in one poll do not overwrite each other's
// (the next Receive fills another buffer), and a poll that fills the
// output buffers flushes midway.
func TestOutputTakesReceivedFrame(t *testing.T) {
	for _, mode := range []rxMode{rxCopied, rxLent, rxMemLent, rxMemRun} {
		t.Run(mode.String(), func(t *testing.T) { testOutputTakes(t, mode) })
	}
}

// testOutputTakes is TestOutputTakesReceivedFrame with source ports that
// lend their frames or not. Lent frames must all be given back by the end
// of the poll, each once, and none before it was sent.
func testOutputTakes(t *testing.T, mode rxMode) {
	tests := []struct {
		name     string
		nsrc     int
		acts     string // of in_port=1..nsrc, udp
		perSrc   int    // frames injected on each source port
		wantTake bool   // the rx buffer of frame 0 ends in the output buffers
	}{
		{"final output", 1, "output:3", 4, true},
		{"rewrite between outputs", 1, "output:2,mod_dl_dst:02:00:00:00:00:99,output:3", 4, true},
		{"rewrite after last output", 1, "output:3,mod_dl_dst:02:00:00:00:00:99", 4, false},
		{"push tag then output", 1, "mod_vlan_vid:7,output:3", 4, true},
		{"pop tag then output", 1, "push_vlan:0x8100,mod_vlan_vid:7,output:2,strip_vlan,output:3", 4, true},
		{"flood", 1, "FLOOD", 4, true},
		{"two rx queues", 2, "output:3", 32, true},
		{"more than the output buffers", 2, "output:3,output:4", 32, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var flows []string
			for i := range tt.nsrc {
				flows = append(flows, fmt.Sprintf("in_port=%d,udp,actions=%s", i+1, tt.acts))
			}
			sb := newSyncBridge(t, tt.nsrc, 4-tt.nsrc, mode, flows...)
			p := sb.b.pmds[0]
			rx0 := &p.bufs[0][:cap(p.bufs[0])][cap(p.bufs[0])-1]

			want := map[string][][]byte{} // by port name
			for s, src := range sb.srcs {
				var batch [][]byte
				for i := range tt.perSrc {
					f := buildFrame(t, frameSpec{src: fmt.Sprintf("10.0.%d.%d", s, i), dst: "10.9.9.9", proto: "udp", sport: uint16(1000 + i), dport: 53, payloadSz: 20 + i})
					batch = append(batch, f)
					for port, frames := range expected(t, f, uint32(s+1), tt.acts) {
						if port == flow.PortFlood {
							for _, mp := range append(append([]*vport.MemPort{}, sb.srcs...), sb.dsts...) {
								if mp != src {
									want[mp.Name()] = append(want[mp.Name()], frames...)
								}
							}
							continue
						}
						name := fmt.Sprintf("p%d", port)
						want[name] = append(want[name], frames...)
					}
				}
				if n := src.Inject(0, batch); n != len(batch) {
					t.Fatalf("injected %d of %d", n, len(batch))
				}
			}
			sb.poll()

			taken := false
			for _, b := range p.out.bufs {
				taken = taken || &b[:cap(b)][cap(b)-1] == rx0
			}
			if mode != rxCopied {
				aliased := 0
				for _, tap := range sb.taps {
					aliased += tap.aliased
				}
				taken = aliased > 0
				for _, lp := range sb.lends {
					if lp.lends != tt.perSrc || len(lp.out) != 0 || len(lp.errs) != 0 {
						t.Errorf("port %s: lent %d frames, want %d; %d not given back; %v", lp.Name(), lp.lends, tt.perSrc, len(lp.out), lp.errs)
					}
					if pending := lp.RxPending(0); pending != 0 {
						t.Errorf("port %s: %d frames left in its rx ring", lp.Name(), pending)
					}
				}
			}
			if taken != tt.wantTake {
				t.Errorf("rx buffer taken by an output: %v, want %v", taken, tt.wantTake)
			}
			for _, mp := range append(append([]*vport.MemPort{}, sb.srcs...), sb.dsts...) {
				got := drainAll(mp)
				w := want[mp.Name()]
				if len(got) != len(w) {
					t.Errorf("port %s: %d frames, want %d", mp.Name(), len(got), len(w))
					continue
				}
				// Each source's frames keep their order; sources may
				// interleave, so match them as a multiset.
				left := append([][]byte(nil), w...)
				for _, g := range got {
					found := false
					for i, x := range left {
						if bytes.Equal(g, x) {
							left = append(left[:i], left[i+1:]...)
							found = true
							break
						}
					}
					if !found {
						t.Errorf("port %s: unexpected frame %x", mp.Name(), g)
					}
				}
			}
			checkAccounting(t, sb.b)
		})
	}
}

// TestPacketOutCopies checks that a packet out, whose frame is not in an
// rx buffer, never hands a thread buffer to its output.
func TestPacketOutCopies(t *testing.T) {
	sb := newSyncBridge(t, 1, 1, rxCopied)
	p := sb.b.pmds[0]
	rx0 := &p.bufs[0][:cap(p.bufs[0])][cap(p.bufs[0])-1]
	f := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2})
	if err := sb.b.PacketOut(t.Context(), f, flow.PortNone, []flow.Action{{Type: flow.ActOutput, Port: 2}}); err != nil {
		t.Fatal(err)
	}
	if got := &p.bufs[0][:cap(p.bufs[0])][cap(p.bufs[0])-1]; got != rx0 {
		t.Error("packet out swapped rx buffer 0")
	}
	got := drainAll(sb.dsts[0])
	if len(got) != 1 || !bytes.Equal(got[0], f) {
		t.Errorf("port 2 got %x, want %x", got, f)
	}
}

// TestQueueBatches queues copies for ports and tx queues in turn: each
// (port, queue) keeps one batch, its frames in the order they came,
// whichever batch the copy before went to, and a reset empties them.
func TestQueueBatches(t *testing.T) {
	a, b := &Port{OFPort: 1}, &Port{OFPort: 2}
	type dest struct {
		port *Port
		q    int
	}
	in := []dest{{a, 0}, {a, 0}, {b, 0}, {a, 0}, {a, 1}, {b, 0}, {a, 1}, {a, 0}}
	want := []struct {
		dest
		frames []byte // the first byte of each frame
	}{
		{dest{a, 0}, []byte{0, 1, 3, 7}},
		{dest{b, 0}, []byte{2, 5}},
		{dest{a, 1}, []byte{4, 6}},
	}
	var o outBatches
	o.init()
	for round := range 2 {
		for i, d := range in {
			o.queue(d.port, a, d.q, []byte{byte(i)})
		}
		if len(o.pending) != len(want) {
			t.Fatalf("round %d: %d batches, want %d", round, len(o.pending), len(want))
		}
		for i, w := range want {
			got := o.pending[i]
			var firsts []byte
			for _, f := range got.frames {
				firsts = append(firsts, f[0])
			}
			if got.port != w.port || got.q != w.q || !bytes.Equal(firsts, w.frames) || len(got.origins) != 1 || got.origins[0].n != len(got.frames) {
				t.Errorf("round %d: batch %d is port %d queue %d frames %v, want port %d queue %d frames %v",
					round, i, got.port.OFPort, got.q, firsts, w.port.OFPort, w.q, w.frames)
			}
		}
		o.reset()
		if len(o.pending) != 0 {
			t.Fatalf("round %d: %d batches after reset", round, len(o.pending))
		}
	}
}
