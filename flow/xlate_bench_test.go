package flow

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

// Run with: go test ./flow -run '^$' -bench 'PipelineHit|Translate8Tables' -benchmem
// (make bench-pipeline runs them in alternating rounds and writes the
// medians to bench/results/pipeline.md).

// pipelineFlows returns flows whose pipeline an IP packet from port
// inPort crosses in n tables: each table but the last matches the register
// the previous one loaded, loads the next and resubmits; the last outputs.
func pipelineFlows(inPort, n int) []string {
	in := "in_port=" + strconv.Itoa(inPort) + ",ip,"
	var flows []string
	for i := range n - 1 {
		m := ""
		if i > 0 {
			m = "reg" + strconv.Itoa(i-1) + "=" + strconv.Itoa(i) + ","
		}
		flows = append(flows, "table="+strconv.Itoa(i)+","+m+in+"actions=load:"+strconv.Itoa(i+1)+"->NXM_NX_REG"+strconv.Itoa(i)+"[],resubmit(,"+strconv.Itoa(i+1)+")")
	}
	last := ""
	if n > 1 {
		last = "reg" + strconv.Itoa(n-2) + "=" + strconv.Itoa(n-1) + ","
	}
	return append(flows, "table="+strconv.Itoa(n-1)+","+last+in+"nw_dst=10.0.0.0/8,actions=mod_dl_src:00:00:00:00:00:01,output:2")
}

// BenchmarkPipelineHit measures a megaflow hit (lookup and accounting, the
// exact-match cache inserting nothing) for a packet that crossed 1 table
// and one that crossed 8. Two caches each hold both pipelines, for packets
// from ports 1 and 2, with the roles swapped between them, so that neither
// a port's place in the classifier nor a cache's place in memory favours
// one pipeline. The four take turns, a batch of 32 lookups each, in one
// loop, so that the machine's load touches all alike. The benchmark reports
// the ns per hit of each pipeline and their ratio, x8/1 (the target is
// ≤ 1.1: a hit must not cost more for the tables the packet crossed).
func BenchmarkPipelineHit(b *testing.B) {
	const batch = 32
	type run struct {
		c      *Cache
		keys   [64]Key
		tables int // 0 for the 1-table pipeline, 1 for the 8-table one
	}
	var runs []*run
	for swap := range 2 {
		in1, in8 := 1+swap, 2-swap
		c, err := NewCache(pipeline(b, append(pipelineFlows(in1, 1), pipelineFlows(in8, 8)...)...), DefaultEMCEntries, 0)
		if err != nil {
			b.Fatal(err)
		}
		for t, in := range []int{in1, in8} {
			r := &run{c: c, tables: t}
			for j := range r.keys {
				r.keys[j] = Key{InPort: uint32(in), DlType: EthTypeIPv4, NwSrc: uint32(j), NwDst: 0x0a000001 + uint32(j)}
				c.Lookup(&r.keys[j])
			}
			if mf, src := c.Lookup(&r.keys[0]); src != SourceMegaflow || len(mf.Rules) != 1+7*t {
				b.Fatalf("port %d: lookup answered by %s, %d rules", in, src, len(mf.Rules))
			}
			runs = append(runs, r)
		}
	}
	// Each round's time per pipeline, and the round's ratio: their medians
	// leave out the rounds that another thread's time slice fell into.
	nRounds := b.N/(len(runs)*batch) + 1
	perRound := [2][]time.Duration{make([]time.Duration, 0, nRounds), make([]time.Duration, 0, nRounds)}
	ratios := make([]float64, 0, nRounds)
	b.ReportAllocs()
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		var spent [2]time.Duration
		for k := range runs {
			r := runs[(k+round)%len(runs)] // rotate which goes first
			start := time.Now()
			for j := range batch {
				mf, _ := r.c.Lookup(&r.keys[(done+j)&63])
				r.c.Account(mf, 1, 64, 1)
			}
			r.c.CreditRules() // as a poll thread does after each batch
			spent[r.tables] += time.Since(start)
		}
		perRound[0], perRound[1] = append(perRound[0], spent[0]), append(perRound[1], spent[1])
		ratios = append(ratios, float64(spent[1])/float64(spent[0]))
		done += len(runs) * batch
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
	perPipeline := float64(len(runs) / 2 * batch) // hits of one pipeline in a round
	b.ReportMetric(float64(median(perRound[0]))/perPipeline, "ns/hit-1table")
	b.ReportMetric(float64(median(perRound[1]))/perPipeline, "ns/hit-8tables")
	b.ReportMetric(median(ratios), "x8/1")
}

// median returns the median of v, which it sorts.
func median[T time.Duration | float64](v []T) T {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// BenchmarkTranslate8Tables measures translation (the upcall) through an
// 8-table pipeline of 10,000 rules (1,250 a table), each packet crossing
// all 8 tables.
func BenchmarkTranslate8Tables(b *testing.B) {
	tbl := NewTable()
	var fs []Flow
	for t := range 8 {
		for r := range 1250 {
			f := Flow{Priority: DefaultPriority, Table: uint8(t)}
			f.Match.Key.DlType, f.Match.Mask.DlType = EthTypeIPv4, 0xffff
			f.Match.Key.NwDst, f.Match.Mask.NwDst = 0x0a000000|uint32(r), ^uint32(0)
			if t > 0 {
				f.Match.Key.Regs[t-1], f.Match.Mask.Regs[t-1] = uint32(r), ^uint32(0)
			}
			if t < 7 {
				f.Actions = []Action{
					{Type: ActLoad, Dst: Subfield{Field: FieldReg0 + FieldID(t), NBits: 32}, Value: uint64(r)},
					{Type: ActResubmit, Port: PortInPort, Table: uint8(t + 1)},
				}
			} else {
				f.Actions = []Action{{Type: ActOutput, Port: 2}}
			}
			fs = append(fs, f)
		}
	}
	tbl.AddFlows(fs)
	s := tbl.Snapshot()
	keys := make([]Key, 1024)
	for i := range keys {
		keys[i] = Key{InPort: 1, DlType: EthTypeIPv4, NwDst: 0x0a000000 | uint32(i%1250)}
	}
	if tr := s.Translate(&keys[5], false); len(tr.Rules) != 8 || FormatActions(tr.Actions) != "output:2" {
		b.Fatalf("translation hit %d rules: %s", len(tr.Rules), FormatActions(tr.Actions))
	}
	var x xlate
	// The time of each batch of 16 translations: its median leaves out the
	// batches that another thread's time slice fell into.
	const batch = 16
	perBatch := make([]time.Duration, 0, b.N/batch+1)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		start := time.Now()
		for i := range batch {
			x.translate(s, &keys[(done+i)&1023], false, true)
		}
		perBatch = append(perBatch, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "translations/s")
	b.ReportMetric(float64(median(perBatch))/batch, "ns/translation")
}
