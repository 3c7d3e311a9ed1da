package datapath

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

// pipelineBench drives one poll thread synchronously (no goroutine) over an
// in-memory port: inject a batch of 64-byte frames, poll once, drain the
// output port. It measures the whole packet path: receive, extraction,
// classification, actions, output policy and transmit.
type pipelineBench struct {
	b        *Bridge
	src, dst *vport.MemPort
	frames   [][]byte
	drain    [][]byte
	sizes    []int
}

func newPipelineBench(tb testing.TB, policy Policy, nflows int, protos []string, flows ...string) *pipelineBench {
	b, err := New(Config{Name: "bench", Policy: policy})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	src, _ := addMemPort(tb, b, vport.MemConfig{Name: "src", RecordRxQueue: true, RingSize: 64}, 1)
	dst, _ := addMemPort(tb, b, vport.MemConfig{Name: "dst", TxQueues: 4, RingSize: 256}, 2)
	addFlows(tb, b, flows...)
	pb := &pipelineBench{b: b, src: src, dst: dst}
	for i := 0; i < nflows; i++ {
		proto := protos[i%len(protos)]
		f := frameSpec{
			src: fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), dst: "192.168.0.1",
			proto: proto, sport: uint16(1024 + i%60000), dport: 80,
		}
		pb.frames = append(pb.frames, buildFrame(tb, f))
	}
	pb.drain = make([][]byte, vport.MaxBatch)
	for i := range pb.drain {
		pb.drain[i] = make([]byte, dst.FrameSize())
	}
	pb.sizes = make([]int, vport.MaxBatch)
	return pb
}

// emcInserting gives the poll thread an exact-match cache that inserts one
// key in invProb (0: never, so that every hit after the first packet of a
// megaflow is a megaflow hit; 1: always). The thread is not running (the
// benchmarks poll it synchronously), so its cache may be replaced.
func (pb *pipelineBench) emcInserting(tb testing.TB, invProb uint32) *pipelineBench {
	c, err := flow.NewCache(pb.b.table, flow.DefaultEMCEntries, invProb)
	if err != nil {
		tb.Fatal(err)
	}
	pb.b.pmds[0].cache = c
	return pb
}

// pollOnce injects batch on the source port, has the poll thread poll it
// and drains the destination port; it returns how many frames came out.
func (pb *pipelineBench) pollOnce(batch [][]byte) int {
	p := pb.b.pmds[0]
	pb.src.Inject(0, batch)
	p.rd.enter()
	p.poll(timeNow())
	p.rd.leave()
	out := 0
	for q := 0; q < pb.dst.TxQueues(); q++ {
		for n := pb.dst.Drain(q, pb.drain, pb.sizes); n > 0; n = pb.dst.Drain(q, pb.drain, pb.sizes) {
			out += n
		}
	}
	return out
}

// tablePipeline returns flows whose pipeline a UDP packet from port 1
// crosses in n tables: each table but the last matches the register the
// previous one loaded, loads the next and resubmits; the last rewrites the
// source MAC address and outputs to port 2. The registers are pipeline
// state, not packet fields, so the megaflow of n tables has the same mask
// and datapath actions as that of one.
func tablePipeline(n int) []string {
	var flows []string
	for i := range n - 1 {
		m := ""
		if i > 0 {
			m = "reg" + strconv.Itoa(i-1) + "=" + strconv.Itoa(i) + ","
		}
		flows = append(flows, "table="+strconv.Itoa(i)+","+m+"in_port=1,udp,actions=load:"+strconv.Itoa(i+1)+"->NXM_NX_REG"+strconv.Itoa(i)+"[],resubmit(,"+strconv.Itoa(i+1)+")")
	}
	last := ""
	if n > 1 {
		last = "reg" + strconv.Itoa(n-2) + "=" + strconv.Itoa(n-1) + ","
	}
	return append(flows, "table="+strconv.Itoa(n-1)+","+last+"in_port=1,udp,actions=mod_dl_src:02:00:00:00:00:09,output:2")
}

func (pb *pipelineBench) run(b *testing.B) {
	p := pb.b.pmds[0]
	rqs := []rxq{{port: pb.b.ports.Load().list[0], q: 0}}
	p.rxqs.Store(&rqs)
	batch := make([][]byte, vport.MaxBatch)
	next := 0
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += vport.MaxBatch {
		for i := range batch {
			batch[i] = pb.frames[next]
			next++
			if next == len(pb.frames) {
				next = 0
			}
		}
		pb.src.Inject(0, batch)
		p.rd.enter()
		p.poll(timeNow())
		p.rd.leave()
		for q := 0; q < pb.dst.TxQueues(); q++ {
			for pb.dst.Drain(q, pb.drain, pb.sizes) > 0 {
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// BenchmarkPipeline is the whole packet path on one poll thread with
// 64-byte frames: exact-match hits (few flows), megaflow hits (more flows
// than the exact-match cache holds) and a protocol mix.
func BenchmarkPipeline(b *testing.B) {
	cases := []struct {
		name   string
		nflows int
		protos []string
		flows  []string
	}{
		{"emc", 64, []string{"udp"}, []string{"in_port=1,udp,actions=output:2"}},
		{"megaflow", 65536, []string{"udp"}, []string{"in_port=1,udp,actions=output:2"}},
		{"mix", 4096, []string{"udp", "tcp", "icmp"}, []string{
			"priority=10,in_port=1,udp,actions=output:2",
			"priority=10,in_port=1,tcp,actions=mod_tp_dst:8080,output:2",
			"priority=5,in_port=1,actions=output:2",
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			newPipelineBench(b, Guarded, c.nflows, c.protos, c.flows...).run(b)
		})
	}
}

// BenchmarkPipelineTables is the whole packet path of a megaflow hit for a
// packet that crossed 1 and 8 tables (tablePipeline), the exact-match
// cache left out: the hit must cost the same whatever the number of
// tables (bench/gobench reports the ratio, target ≤ 1.1).
func BenchmarkPipelineTables(b *testing.B) {
	for _, n := range []int{1, 8} {
		b.Run("tables="+strconv.Itoa(n), func(b *testing.B) {
			newPipelineBench(b, Guarded, 4096, []string{"udp"}, tablePipeline(n)...).emcInserting(b, 0).run(b)
		})
	}
}

// BenchmarkOutputPolicy compares the policies' cost with no teardown: the
// same exact-match pipeline, only the output policy differs.
func BenchmarkOutputPolicy(b *testing.B) {
	for _, pol := range Policies() {
		b.Run(pol.String(), func(b *testing.B) {
			newPipelineBench(b, pol, 64, []string{"udp"}, "in_port=1,udp,actions=output:2").run(b)
		})
	}
}

func timeNow() time.Time { return time.Now() }
