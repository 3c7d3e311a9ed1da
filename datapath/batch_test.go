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
	b    *Bridge
	srcs []*vport.MemPort // ports 1..len(srcs)
	dsts []*vport.MemPort // the ports after them
}

func newSyncBridge(t *testing.T, nsrc, ndst int, flows ...string) *syncBridge {
	t.Helper()
	b, err := New(Config{Name: "sync"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	sb := &syncBridge{b: b}
	for i := range nsrc + ndst {
		mp, _ := addMemPort(t, b, vport.MemConfig{Name: fmt.Sprintf("p%d", i+1), RecordRxQueue: true, RingSize: 256}, uint32(i+1))
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
			sb := newSyncBridge(t, tt.nsrc, 4-tt.nsrc, flows...)
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
	sb := newSyncBridge(t, 1, 1)
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
