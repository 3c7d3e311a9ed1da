package datapath

import (
	"bytes"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// TestHitPathDoesNotAllocate runs whole batches through a poll thread
// (receive, extraction, cache hit, actions, output policy, transmit) and
// checks that a batch of hits allocates nothing: exact-match hits, and
// megaflow hits for packets that crossed one table and eight. It also
// checks that the batches were the hits the case names, and were sent.
func TestHitPathDoesNotAllocate(t *testing.T) {
	tests := []struct {
		name       string
		inTables   int
		inMegaflow bool // the exact-match cache never inserts
		wantRules  int  // rules behind the megaflow
	}{
		{name: "emc hit, one table", inTables: 1, wantRules: 1},
		{name: "emc hit, eight tables", inTables: 8, wantRules: 8},
		{name: "megaflow hit, one table", inTables: 1, inMegaflow: true, wantRules: 1},
		{name: "megaflow hit, eight tables", inTables: 8, inMegaflow: true, wantRules: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb := newPipelineBench(t, Guarded, vport.MaxBatch, []string{"udp"}, tablePipeline(1, tt.inTables)...)
			if tt.inMegaflow {
				pb.emcInserting(t, 0)
			} else {
				pb.emcInserting(t, 1)
			}
			p := pb.b.pmds[0]
			rqs := []rxq{{port: pb.b.ports.Load().list[0], q: 0}}
			p.rxqs.Store(&rqs)
			batch := pb.frames[:vport.MaxBatch]
			// The first batch translates (one upcall); the second fills
			// the exact-match cache if it inserts.
			for range 2 {
				if out := pb.pollOnce(batch); out != len(batch) {
					t.Fatalf("warm-up: %d of %d frames sent", out, len(batch))
				}
			}
			n := 0
			p.cache.Megaflows().Range(func(mf *flow.Megaflow) bool {
				n++
				if len(mf.Rules) != tt.wantRules {
					t.Errorf("megaflow of %d rules, want %d", len(mf.Rules), tt.wantRules)
				}
				return true
			})
			if n != 1 {
				t.Fatalf("%d megaflows, want 1", n)
			}

			emc0, mf0, up0 := p.counters.emcHits.Load(), p.counters.mfHits.Load(), p.counters.upcalls.Load()
			sent := 0
			const runs = 100
			allocs := testing.AllocsPerRun(runs, func() { sent += pb.pollOnce(batch) })
			if allocs != 0 {
				t.Errorf("%v allocations per batch of %d hits, want 0", allocs, len(batch))
			}
			total := uint64(runs+1) * uint64(len(batch)) // AllocsPerRun runs once more to warm up
			emc, mf, up := p.counters.emcHits.Load()-emc0, p.counters.mfHits.Load()-mf0, p.counters.upcalls.Load()-up0
			switch {
			case up != 0:
				t.Errorf("%d upcalls while measuring, want none", up)
			case tt.inMegaflow && mf != total:
				t.Errorf("%d megaflow hits, %d exact-match hits, want %d megaflow hits", mf, emc, total)
			case !tt.inMegaflow && (emc == 0 || emc+mf != total):
				// A key may lose its exact-match slot to two others
				// (the cache is two-way, its hash seeded at random):
				// then it is a megaflow hit.
				t.Errorf("%d exact-match hits, %d megaflow hits, want %d hits, mostly exact-match", emc, mf, total)
			}
			if uint64(sent) != total {
				t.Errorf("%d frames sent, want %d", sent, total)
			}
			checkAccounting(t, pb.b)
		})
	}
}

// TestDispatchRuns sends one batch whose packets take three megaflows in
// runs of different lengths, interleaved: two output to a port each, one to
// a port that does not exist. Each port must receive exactly its packets,
// in the order they came, and the ingress port's ledger must count the
// rest as dropped for the missing port.
func TestDispatchRuns(t *testing.T) {
	pb := newPipelineBench(t, Guarded, 0, nil,
		"in_port=1,udp,actions=output:2",
		"in_port=1,tcp,actions=output:3",
		"in_port=1,icmp,actions=output:9")
	dst3, _ := addMemPort(t, pb.b, vport.MemConfig{Name: "dst3", RingSize: 256}, 3)
	p := pb.b.pmds[0]
	rqs := []rxq{{port: pb.b.ports.Load().list[0], q: 0}}
	p.rxqs.Store(&rqs)

	protos := "uutuuittuiiuttttuuuuituuttiuutuu" // a batch: udp, tcp, icmp
	var batch [][]byte
	wantFrames := map[byte][][]byte{}
	for i, c := range []byte(protos) {
		proto := map[byte]string{'u': "udp", 't': "tcp", 'i': "icmp"}[c]
		f := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: proto, sport: uint16(1000 + i), dport: 80})
		batch = append(batch, f)
		wantFrames[c] = append(wantFrames[c], f)
	}
	// Twice: the first batch translates, the second hits the caches.
	for round := range 2 {
		if n := pb.src.Inject(0, batch); n != len(batch) {
			t.Fatalf("injected %d of %d", n, len(batch))
		}
		p.rd.enter()
		p.poll(timeNow())
		p.rd.leave()
		drain := func(mp *vport.MemPort) [][]byte {
			var got [][]byte
			for q := range mp.TxQueues() {
				for n := mp.Drain(q, pb.drain, pb.sizes); n > 0; n = mp.Drain(q, pb.drain, pb.sizes) {
					for i := range n {
						got = append(got, append([]byte(nil), pb.drain[i][:pb.sizes[i]]...))
					}
				}
			}
			return got
		}
		for _, tt := range []struct {
			name string
			port *vport.MemPort
			want [][]byte
		}{{"udp to port 2", pb.dst, wantFrames['u']}, {"tcp to port 3", dst3, wantFrames['t']}} {
			got := drain(tt.port)
			if len(got) != len(tt.want) {
				t.Fatalf("round %d, %s: %d frames, want %d", round, tt.name, len(got), len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("round %d, %s: frame %d is not the %dth of its kind sent", round, tt.name, i, i)
				}
			}
		}
	}
	st := pb.b.ports.Load().lookup(1).Stats()
	if got, want := st.Drops[DropPortGone], uint64(2*len(wantFrames['i'])); got != want {
		t.Errorf("%d dropped for a missing port, want %d", got, want)
	}
	if got, want := st.Sent, uint64(2*(len(wantFrames['u'])+len(wantFrames['t']))); got != want {
		t.Errorf("%d sent, want %d", got, want)
	}
	if !st.Balanced() {
		t.Errorf("ingress ledger does not balance: %+v", st)
	}
}

// TestDispatchReusedKeys checks that a key buffer whose last packet's
// actions wrote to the key is zeroed whole before the next extraction into
// it: the first batch's packets get pkt_mark 5 from their actions, which
// write it into their keys; the second batch's packets arrive with pkt_mark
// 0 into the same buffers and must not match the pkt_mark=5 rule. A third
// batch like the first and a fourth like the second check that the plain
// keys of the second are reused right too.
func TestDispatchReusedKeys(t *testing.T) {
	pb := newPipelineBench(t, Guarded, 0, nil,
		"priority=10,pkt_mark=5,actions=output:3",
		"priority=5,in_port=1,udp,tp_dst=80,actions=load:5->NXM_NX_PKT_MARK[],output:2",
		"priority=1,in_port=1,actions=output:4")
	dst3, _ := addMemPort(t, pb.b, vport.MemConfig{Name: "dst3", RingSize: 256}, 3)
	dst4, _ := addMemPort(t, pb.b, vport.MemConfig{Name: "dst4", RingSize: 256}, 4)
	p := pb.b.pmds[0]
	rqs := []rxq{{port: pb.b.ports.Load().list[0], q: 0}}
	p.rxqs.Store(&rqs)
	count := func(mp *vport.MemPort) int {
		got := 0
		for q := range mp.TxQueues() {
			for n := mp.Drain(q, pb.drain, pb.sizes); n > 0; n = mp.Drain(q, pb.drain, pb.sizes) {
				got += n
			}
		}
		return got
	}
	for round, dport := range []uint16{80, 81, 80, 81} {
		batch := make([][]byte, vport.MaxBatch)
		for i := range batch {
			batch[i] = buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: uint16(1000 + i), dport: dport})
		}
		if n := pb.src.Inject(0, batch); n != len(batch) {
			t.Fatalf("injected %d of %d", n, len(batch))
		}
		p.rd.enter()
		p.poll(timeNow())
		p.rd.leave()
		want := map[uint16][3]int{80: {len(batch), 0, 0}, 81: {0, 0, len(batch)}}[dport]
		if got := [3]int{count(pb.dst), count(dst3), count(dst4)}; got != want {
			t.Errorf("round %d (udp to %d): ports 2, 3 and 4 got %v frames, want %v", round, dport, got, want)
		}
	}
}
