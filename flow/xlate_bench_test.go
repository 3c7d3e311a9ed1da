package flow

import (
	"strconv"
	"testing"
)

// Run with: go test ./flow -run '^$' -bench 'PipelineHit|Translate8Tables' -benchmem

// pipelineOf returns a table whose pipeline crosses n tables: each table
// matches a register the previous one loaded, loads the next and
// resubmits; the last outputs.
func pipelineOf(tb testing.TB, n int) *Table {
	var flows []string
	for i := range n - 1 {
		m := ""
		if i > 0 {
			m = "reg" + strconv.Itoa(i-1) + "=" + strconv.Itoa(i) + ","
		}
		flows = append(flows, "table="+strconv.Itoa(i)+","+m+"ip,actions=load:"+strconv.Itoa(i+1)+"->NXM_NX_REG"+strconv.Itoa(i)+"[],resubmit(,"+strconv.Itoa(i+1)+")")
	}
	last := ""
	if n > 1 {
		last = "reg" + strconv.Itoa(n-2) + "=" + strconv.Itoa(n-1) + ","
	}
	flows = append(flows, "table="+strconv.Itoa(n-1)+","+last+"ip,nw_dst=10.0.0.0/8,actions=mod_dl_src:00:00:00:00:00:01,output:2")
	return pipeline(tb, flows...)
}

// BenchmarkPipelineHit measures a megaflow hit for packets that crossed 1
// and 8 tables: the cost must not depend on the number of tables.
func BenchmarkPipelineHit(b *testing.B) {
	for _, n := range []int{1, 8} {
		b.Run("tables="+strconv.Itoa(n), func(b *testing.B) {
			c, err := NewCache(pipelineOf(b, n), DefaultEMCEntries, 0) // no EMC: megaflow hits
			if err != nil {
				b.Fatal(err)
			}
			keys := make([]Key, 64)
			for i := range keys {
				keys[i] = Key{InPort: 1, DlType: EthTypeIPv4, NwSrc: uint32(i), NwDst: 0x0a000001 + uint32(i)}
				c.Lookup(&keys[i])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				mf, _ := c.Lookup(&keys[i&63])
				c.Account(mf, 1, 64, 1)
				if i&31 == 31 {
					c.CreditRules() // as a poll thread does after each batch
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}

// BenchmarkTranslate8Tables measures translation (the upcall) through an
// 8-table pipeline of 10,000 rules.
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
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		x.translate(s, &keys[i&1023], false)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "translations/s")
}
