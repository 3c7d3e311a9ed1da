package flow

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// pipeline installs flows (ovs-ofctl syntax, table= given) in a new table.
func pipeline(t testing.TB, flows ...string) *Table {
	t.Helper()
	tbl := NewTable()
	for _, s := range flows {
		f, err := ParseFlow(s, CmdAdd)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		tbl.Add(f)
	}
	return tbl
}

func microflow(t testing.TB, s string) Key {
	t.Helper()
	k, err := ParseMicroflow(s)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return k
}

func TestTranslate(t *testing.T) {
	tests := []struct {
		name        string
		flows       []string
		in          string
		wantActions string // FormatActions of the datapath actions
		wantVerdict Verdict
		wantMask    string // FormatMatch of the megaflow mask's fields, "-" to skip
		wantFinal   string // checked when not empty: FormatMatch of the final registers and metadata
	}{
		{name: "resubmit to a later table",
			flows: []string{"actions=resubmit(,1)", "table=1,in_port=1,actions=output:2"},
			in:    "in_port=1", wantActions: "output:2", wantMask: "recirc_id=0,in_port=1,dl_type=0x0000"},
		{name: "miss in a later table drops",
			flows: []string{"actions=resubmit(,1)", "table=1,in_port=2,actions=output:2"},
			in:    "in_port=1", wantActions: "drop", wantMask: "recirc_id=0,in_port=1,dl_type=0x0000"},
		{name: "registers carry state between tables, and stay out of the megaflow",
			flows: []string{"in_port=1,actions=load:0x5->NXM_NX_REG0[],resubmit(,1)",
				"table=1,reg0=5,actions=output:3", "table=1,reg0=6,actions=output:4"},
			in: "in_port=1", wantActions: "output:3", wantMask: "recirc_id=0,in_port=1,dl_type=0x0000", wantFinal: "reg0=0x5"},
		{name: "move from a packet field consults it",
			flows: []string{"actions=move:NXM_OF_ETH_SRC[0..7]->NXM_NX_REG1[8..15],resubmit(,1)",
				"table=1,reg1=0x200/0xff00,actions=output:1"},
			in: "in_port=3,dl_src=00:00:00:00:00:02", wantActions: "output:1", wantMask: "recirc_id=0,in_port=3,dl_src=00:00:00:00:00:02/00:00:00:00:00:ff,dl_type=0x0000", wantFinal: "reg1=0x200"},
		{name: "goto_table and write_metadata",
			flows: []string{"actions=write_metadata:0x1/0x1,goto_table:3", "table=3,metadata=0x1/0x1,actions=output:2"},
			in:    "in_port=1", wantActions: "output:2", wantMask: "recirc_id=0,in_port=1,dl_type=0x0000", wantFinal: "metadata=0x1"},
		{name: "resubmit loop hits the depth limit",
			flows: []string{"actions=output:2,resubmit(,0)"},
			in:    "in_port=1", wantActions: "drop", wantVerdict: VerdictResubmitDepth, wantMask: "-"},
		{name: "exit stops the whole pipeline",
			flows: []string{"actions=resubmit(,1),output:3", "table=1,actions=output:2,exit,output:4"},
			in:    "in_port=1", wantActions: "output:2", wantMask: "recirc_id=0,in_port=1,dl_type=0x0000"},
		{name: "clone undoes its changes for later outputs",
			flows:       []string{"actions=clone(mod_dl_src:00:00:00:00:00:09,output:2),output:3"},
			in:          "in_port=1,dl_src=00:00:00:00:00:01",
			wantActions: "mod_dl_src:00:00:00:00:00:09,output:2,mod_dl_src:00:00:00:00:00:01,output:3",
			wantMask:    "recirc_id=0,in_port=1,dl_src=00:00:00:00:00:01,dl_type=0x0000"},
		{name: "dec_ttl becomes a TTL set",
			flows: []string{"ip,actions=dec_ttl,output:2"},
			in:    "in_port=1,udp,nw_ttl=64", wantActions: "load:0x3f->NXM_NX_IP_TTL[],output:2", wantMask: "recirc_id=0,udp,in_port=1,nw_ttl=64,nw_frag=no"},
		{name: "no IP header change for protocol 0, as Open vSwitch",
			flows: []string{"ip,actions=dec_ttl,output:2"},
			in:    "in_port=1,ip,nw_ttl=64", wantActions: "output:2", wantMask: "recirc_id=0,ip,in_port=1,nw_proto=0,nw_ttl=64,nw_frag=no"},
		{name: "dec_ttl on TTL 1 stops the list",
			flows: []string{"ip,actions=dec_ttl,output:2"},
			in:    "in_port=1,ip,nw_ttl=1", wantActions: "drop", wantVerdict: VerdictTTLExceeded, wantMask: "recirc_id=0,ip,in_port=1,nw_proto=0,nw_ttl=1,nw_frag=no"},
		{name: "push and pop",
			flows: []string{"actions=load:7->reg2,push:reg2,load:0->reg2,pop:reg3,resubmit(,1)",
				"table=1,reg3=7,reg2=0,actions=output:5"},
			in: "in_port=1", wantActions: "output:5", wantMask: "recirc_id=0,in_port=1,dl_type=0x0000", wantFinal: "reg3=0x7"},
		{name: "output to a register",
			flows: []string{"actions=load:4->reg0,output:NXM_NX_REG0[0..15]"},
			in:    "in_port=1", wantActions: "output:4", wantMask: "recirc_id=0,in_port=1,dl_type=0x0000"},
		{name: "pkt_mark is a datapath field",
			flows: []string{"actions=set_field:5->pkt_mark,output:2"},
			in:    "in_port=1", wantActions: "load:0x5->NXM_NX_PKT_MARK[],output:2", wantMask: "pkt_mark=0,recirc_id=0,in_port=1,dl_type=0x0000"},
		{name: "resubmit with a port looks up with that in_port, and the actions run with the packet's",
			flows: []string{"in_port=1,actions=resubmit(7,1)", "table=1,in_port=7,actions=output:IN_PORT,output:7"},
			in:    "in_port=1", wantActions: "IN_PORT,output:7", wantMask: "recirc_id=0,in_port=1,dl_type=0x0000"},
		{name: "mod_vlan_vid pushes a tag",
			flows: []string{"actions=mod_vlan_vid:5,output:2"},
			in:    "in_port=1", wantActions: "push_vlan:0x8100,mod_vlan_vid:5,output:2", wantMask: "-"},
		{name: "a set the packet already has is not written",
			flows: []string{"actions=mod_dl_dst:00:00:00:00:00:05,output:2"},
			in:    "in_port=1,dl_dst=00:00:00:00:00:05", wantActions: "output:2", wantMask: "recirc_id=0,in_port=1,dl_dst=00:00:00:00:00:05,dl_type=0x0000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := pipeline(t, tt.flows...)
			k := microflow(t, tt.in)
			tr := tbl.Snapshot().Translate(&k, false)
			if got := FormatActions(tr.Actions); got != tt.wantActions {
				t.Errorf("actions %q, want %q", got, tt.wantActions)
			}
			if tr.Verdict != tt.wantVerdict {
				t.Errorf("verdict %v, want %v", tr.Verdict, tt.wantVerdict)
			}
			if tt.wantMask != "-" {
				m := Match{Key: k, Mask: tr.Mask}
				m.Normalize()
				if got := FormatMatch(&m, DefaultPriority); got != tt.wantMask {
					t.Errorf("megaflow %q, want %q", got, tt.wantMask)
				}
			}
			if tt.wantFinal != "" {
				var mk Key
				for i, r := range tr.Final.Regs {
					if r != 0 {
						mk.Regs[i] = ^uint32(0)
					}
				}
				if tr.Final.Metadata != 0 {
					mk.Metadata = ^uint64(0)
				}
				m := Match{Key: tr.Final, Mask: mk}
				m.Normalize()
				if got := FormatMatch(&m, DefaultPriority); got != tt.wantFinal {
					t.Errorf("final pipeline state %q, want %q", got, tt.wantFinal)
				}
			}
			checkSound(t, tbl.Snapshot(), &k, tr, rand.New(rand.NewPCG(1, 2)), 200)
		})
	}
}

func TestTranslateResubmitLimit(t *testing.T) {
	// Tables 0 to 12 each resubmit twice to the next: 8190 resubmits,
	// none of them nesting deeper (each goes to a later table).
	var flows []string
	for i := range 12 {
		next := strconv.Itoa(i + 1)
		flows = append(flows, "table="+strconv.Itoa(i)+",actions=resubmit(,"+next+"),resubmit(,"+next+")")
	}
	flows = append(flows, "table=12,actions=output:1")
	tbl := pipeline(t, flows...)
	k := microflow(t, "in_port=2")
	tr := tbl.Snapshot().Translate(&k, true)
	if tr.Verdict != VerdictResubmitLimit || len(tr.Actions) != 0 {
		t.Fatalf("verdict %v with %d actions, want %v and none", tr.Verdict, len(tr.Actions), VerdictResubmitLimit)
	}
	var b strings.Builder
	FormatTrace(&b, tr.Trace)
	if !strings.Contains(b.String(), " >>>> over 4096 resubmit actions <<<<") {
		t.Errorf("trace does not name the limit")
	}
}

func TestFormatTrace(t *testing.T) {
	tbl := pipeline(t,
		"in_port=1,actions=load:0x1->NXM_NX_REG0[],resubmit(,1),output:3",
		"table=1,reg0=1,actions=resubmit(,2)",
		"table=2,priority=5,cookie=0x9,actions=output:2",
	)
	k := microflow(t, "in_port=1")
	tr := tbl.Snapshot().Translate(&k, true)
	var b strings.Builder
	FormatTrace(&b, tr.Trace)
	// A table lookup that is the last step of its list continues at its
	// parent's indentation; any other is nested under it.
	want := ` 0. in_port=1, priority 32768
    load:0x1->NXM_NX_REG0[]
    resubmit(,1)
     1. reg0=0x1, priority 32768
            resubmit(,2)
         2. priority 5, cookie 0x9
            output:2
    output:3
`
	if b.String() != want {
		t.Errorf("trace\n%s\nwant\n%s", b.String(), want)
	}
}

// checkSound checks the megaflow property of translation tr of k: n
// random keys that agree with k on tr.Mask get the same datapath actions
// and verdict.
func checkSound(t *testing.T, s *TableSnapshot, k *Key, tr *Translation, rng *rand.Rand, n int) {
	t.Helper()
	for range n {
		other := randomKey(rng)
		q, ok := agreeLike(k, &other, &tr.Mask)
		if !ok {
			continue
		}
		got := s.Translate(&q, false)
		if !slices.Equal(got.Actions, tr.Actions) || got.Verdict != tr.Verdict {
			t.Fatalf("unsound megaflow: %s gets %s (%v), but %s in the same megaflow gets %s (%v)",
				FormatMatch(&Match{Key: *k, Mask: fullMask()}, DefaultPriority), FormatActions(tr.Actions), tr.Verdict,
				FormatMatch(&Match{Key: q, Mask: fullMask()}, DefaultPriority), FormatActions(got.Actions), got.Verdict)
		}
	}
}

func fullMask() Key {
	var m Key
	for i := range m.Words() {
		m.Words()[i] = ^uint64(0)
	}
	m.Regs = [NumRegs]uint32{}
	m.Metadata = 0
	m.ConjID = 0
	return m
}

// randomKey returns a packet key from a small domain, so that random
// rules match it often.
func randomKey(rng *rand.Rand) Key {
	pick := func(vs ...uint64) uint64 { return vs[rng.IntN(len(vs))] }
	k := Key{
		InPort: uint32(pick(1, 2, 3)),
		DlType: uint16(pick(EthTypeIPv4, EthTypeARP, EthTypeIPv6)),
		DlSrc:  [6]byte{0, 0, 0, 0, 0, byte(pick(1, 2, 7))},
		DlDst:  [6]byte{0, 0, 0, 0, byte(pick(0, 1)), byte(pick(1, 5))},
	}
	if rng.IntN(3) == 0 {
		k.VLANs[0] = VLAN{TPID: EthTypeVLAN, TCI: VLANPresent | uint16(pick(0, 5))}
	}
	switch k.DlType {
	case EthTypeIPv4:
		k.NwSrc = uint32(pick(0x0a000001, 0x0a000002, 0x0a000009, 0x0a010203, 0xc0a80001))
		k.NwDst = uint32(pick(0x0a000001, 0x0a000002, 0x0a0000fe, 0xac100001))
		k.NwProto = uint8(pick(IPProtoTCP, IPProtoUDP, IPProtoICMP))
		k.NwTTL = uint8(pick(0, 1, 2, 64))
		k.TpSrc = uint16(pick(0, 53, 1024, 1100, 40000))
		k.TpDst = uint16(pick(80, 81, 95, 443, 8080))
		if k.NwProto == IPProtoTCP {
			k.TcpFlags = uint16(pick(0, 0x002, 0x012, 0x010))
		}
	case EthTypeARP:
		k.NwProto = uint8(pick(1, 2))
		k.NwSrc = 0x0a000000 | uint32(pick(1, 2, 9))
	case EthTypeIPv6:
		k.NwProto = uint8(pick(IPProtoTCP, IPProtoUDP))
		k.NwTTL = uint8(pick(1, 64))
		k.IPv6Src[15] = byte(pick(1, 2))
	}
	packetLike(&k)
	return k
}

var (
	randomMatches = []string{
		"in_port=1", "in_port=2", "ip", "tcp,tp_dst=80", "udp", "arp", "reg0=1", "reg0=0x2/0x2",
		"reg1=2", "reg1=0x300/0xff00", "metadata=0x1/0x1", "ip,nw_src=10.0.0.1", "dl_vlan=5", "vlan_tci=0/0x1000",
		"pkt_mark=0", "pkt_mark=3", "dl_src=00:00:00:00:00:07", "ip,nw_ttl=1", "ipv6",
		"reg1=1", "reg1=3", "reg2=1", "reg0=2", "reg1=0x200/0xff00", "dl_dst=00:00:00:00:00:05",
		"conj_id=1", "conj_id=2", "conj_id=3", "conj_id=3,ip",
	}
	// randomTrieMatches are prefixes of varied lengths and port matches,
	// for the prefix tries and the ports tries.
	randomTrieMatches = []string{
		"ip,nw_src=10.0.0.0/30", "ip,nw_src=10.0.0.8/29", "ip,nw_src=10.1.0.0/16", "ip,nw_src=0.0.0.0/1",
		"ip,nw_dst=10.0.0.2/31", "ip,nw_dst=10.0.0.0/24", "ip,nw_dst=10.0.0.0/8", "ip,nw_dst=172.16.0.0/12",
		"ip,nw_dst=10.0.0.254", "ip,nw_src=10.0.0.0/255.0.0.255", "arp,arp_spa=10.0.0.0/30",
		"tcp,tp_dst=443", "tcp,tp_dst=0x50/0xfff0", "udp,tp_src=53", "tcp,tp_src=0x400/0xfc00",
		"tcp,tp_src=1024,tp_dst=8080", "tcp,tcp_flags=+syn", "tcp,tp_dst=80,tcp_flags=+syn-ack",
	}
	randomClauseMatches = []string{
		"in_port=1", "in_port=2", "ip", "tcp,tp_dst=80", "udp", "ip,nw_src=10.0.0.1", "ip,nw_src=10.0.0.2",
		"dl_dst=00:00:00:00:00:05", "reg0=1",
	}
	// randomClauses are clause flows' actions: conjunctive match N has
	// N+1 clauses, so every flow that names it agrees.
	randomClauses = []string{
		"conjunction(1,1/2)", "conjunction(1,2/2)", "conjunction(1,1/2)", "conjunction(1,2/2)", "conjunction(2,1/3)", "conjunction(2,2/3)",
		"conjunction(2,3/3)", "conjunction(3,1/4)", "conjunction(3,2/4)", "conjunction(3,3/4)",
		"conjunction(3,4/4)", "conjunction(1,2/2),conjunction(2,3/3)", "note:01,conjunction(3,2/4)",
	}
	randomActions = []string{
		"load:1->NXM_NX_REG0[]", "load:2->reg0", "move:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15]",
		"move:NXM_OF_ETH_SRC[0..7]->NXM_NX_REG1[8..15]", "output:1", "output:2", "output:3", "in_port",
		"write_metadata:0x1/0x1", "mod_nw_src:10.0.0.9", "mod_dl_dst:00:00:00:00:00:05", "dec_ttl",
		"push:NXM_NX_REG0[]", "pop:NXM_NX_REG2[]", "pop:NXM_NX_REG0[0..15]", "exit",
		"clone(mod_dl_src:00:00:00:00:00:07,output:2)", "mod_vlan_vid:9", "strip_vlan",
		"output:NXM_NX_REG1[0..15]", "set_field:3->pkt_mark", "move:NXM_NX_REG0[0..7]->NXM_OF_ETH_DST[0..7]",
		"normal", "flood", "push_vlan:0x8100", "mod_tp_dst:8080",
	}
)

// randomFlow returns a random flow for table table of a pipeline with
// tables tables, in ovs-ofctl syntax.
func randomFlow(rng *rand.Rand, table, tables int) string {
	var parts []string
	parts = append(parts, "table="+strconv.Itoa(table), "priority="+strconv.Itoa(rng.IntN(4)))
	for range rng.IntN(3) {
		parts = append(parts, randomMatches[rng.IntN(len(randomMatches))])
	}
	switch rng.IntN(6) {
	case 0, 1: // a clause flow: the clauses of a conjunction share a priority
		// Mostly in table 0, where every packet starts, so that
		// conjunctions complete often.
		parts = []string{"table=" + strconv.Itoa(table*rng.IntN(2)), "priority=2"}
		if rng.IntN(3) > 0 {
			parts = append(parts, randomClauseMatches[rng.IntN(len(randomClauseMatches))])
		}
		return strings.Join(parts, ",") + ",actions=" + randomClauses[rng.IntN(len(randomClauses))]
	case 2: // the flow of a conjunctive match
		parts[0] = "table=" + strconv.Itoa(table*rng.IntN(2))
		parts = append(parts, "conj_id="+strconv.Itoa(1+rng.IntN(3)))
	default:
		if rng.IntN(2) == 0 {
			parts = append(parts, randomTrieMatches[rng.IntN(len(randomTrieMatches))])
		}
	}
	var acts []string
	for range rng.IntN(6) {
		if rng.IntN(4) == 0 {
			to := rng.IntN(tables)
			if rng.IntN(3) == 0 {
				acts = append(acts, "resubmit("+strconv.Itoa(1+rng.IntN(3))+","+strconv.Itoa(to)+")")
			} else {
				acts = append(acts, "resubmit(,"+strconv.Itoa(to)+")")
			}
			continue
		}
		acts = append(acts, randomActions[rng.IntN(len(randomActions))])
	}
	if table+1 < tables && rng.IntN(2) == 0 {
		acts = append(acts, "resubmit(,"+strconv.Itoa(table+1)+")") // a pipeline, mostly
	}
	if len(acts) == 0 {
		acts = append(acts, "drop")
	}
	return strings.Join(parts, ",") + ",actions=" + strings.Join(acts, ",")
}

// TestMegaflowSoundness builds random small multi-table pipelines and
// checks that every packet that matches an installed megaflow gets exactly
// the actions a fresh translation gives it, also right after random rule
// changes.
func TestMegaflowSoundness(t *testing.T) {
	const tables = 4
	const maxSeeds = 40
	seeds := uint64(maxSeeds)
	if raceEnabled {
		seeds = 8 // the race detector makes each translation about ten times slower
	}
	conjHits := 0 // translations that took a conjunctive match
	// Megaflows whose nw_src, nw_dst or ports mask no rule has: a prefix
	// or ports trie chose how many bits to consult.
	trieMasks := 0
	// At least seeds pipelines, and more (up to maxSeeds) until one took a
	// conjunctive match.
	for seed := uint64(0); seed < seeds || conjHits == 0 && seed < maxSeeds; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		tbl := NewTable()
		add := func() {
			for {
				s := randomFlow(rng, rng.IntN(tables), tables)
				f, err := ParseFlow(s, CmdAdd)
				if err != nil {
					continue // a random combination without its prerequisites
				}
				tbl.Add(f)
				return
			}
		}
		for range 8 + rng.IntN(24) {
			add()
		}
		c, err := NewCache(tbl, 256, 1)
		if err != nil {
			t.Fatal(err)
		}
		for round := range 20 {
			switch rng.IntN(4) {
			case 0:
				add()
			case 1:
				rs := tbl.Dump(nil)
				if len(rs) > 0 {
					r := rs[rng.IntN(len(rs))]
					tbl.Delete(&Flow{Match: r.Match(), Priority: r.Priority, Table: r.Table}, true)
				}
			case 2: // mod-flows --strict: another rule's actions
				rs := tbl.Dump(nil)
				if len(rs) > 1 {
					r, o := rs[rng.IntN(len(rs))], rs[rng.IntN(len(rs))]
					tbl.Modify(&Flow{Match: r.Match(), Priority: r.Priority, Table: r.Table, Actions: o.Actions}, true)
				}
			}
			s := tbl.Snapshot()
			for range 40 {
				k := randomKey(rng)
				mf, _ := c.Lookup(&k)
				fresh := s.Translate(&k, false)
				if !slices.Equal(mf.Actions, fresh.Actions) || mf.Verdict != fresh.Verdict {
					t.Fatalf("seed %d round %d: cached %s (%v), fresh translation %s (%v) for %s\npipeline:\n%s",
						seed, round, FormatActions(mf.Actions), mf.Verdict, FormatActions(fresh.Actions), fresh.Verdict,
						FormatMatch(&Match{Key: k, Mask: fullMask()}, DefaultPriority), dumpPipeline(tbl))
				}
				checkSound(t, s, &k, fresh, rng, 8)
				if trieShaped(tbl, &fresh.Mask) {
					trieMasks++
				}
				for _, r := range fresh.Rules {
					if r.Match().Mask.ConjID != 0 {
						conjHits++
					}
				}
			}
		}
	}
	if conjHits == 0 {
		t.Errorf("no translation took a conjunctive match: the pipelines do not exercise conjunctions")
	}
	if trieMasks == 0 {
		t.Errorf("no megaflow has a prefix or ports mask that no rule has: the pipelines do not exercise the tries")
	}
	t.Logf("%d rule hits through conjunctive matches, %d megaflows shaped by the tries", conjHits, trieMasks)
}

// trieShaped reports whether mask has an nw_src, nw_dst, tp_src or tp_dst
// mask that is neither empty, nor whole, nor any rule's of tbl.
func trieShaped(tbl *Table, mask *Key) bool {
	seen32 := map[uint32]bool{0: true, ^uint32(0): true}
	seen16 := map[uint16]bool{0: true, 0xffff: true}
	for _, r := range tbl.Dump(nil) {
		m := r.Match().Mask
		seen32[m.NwSrc], seen32[m.NwDst], seen16[m.TpSrc], seen16[m.TpDst] = true, true, true, true
	}
	return !seen32[mask.NwSrc] || !seen32[mask.NwDst] || !seen16[mask.TpSrc] || !seen16[mask.TpDst]
}

func dumpPipeline(tbl *Table) string {
	var b strings.Builder
	for _, r := range tbl.Dump(nil) {
		b.WriteString(ruleText(r) + "\n")
	}
	return b.String()
}

// TestMultiTableHitDoesNotAllocate checks that a megaflow hit for a packet
// that crossed eight tables allocates nothing.
func TestMultiTableHitDoesNotAllocate(t *testing.T) {
	var flows []string
	for i := range 7 {
		flows = append(flows, "table="+strconv.Itoa(i)+",actions=load:"+strconv.Itoa(i+1)+"->NXM_NX_REG"+strconv.Itoa(i)+"[],resubmit(,"+strconv.Itoa(i+1)+")")
	}
	flows = append(flows, "table=7,reg6=7,ip,actions=mod_nw_src:10.0.0.9,output:2")
	tbl := pipeline(t, flows...)
	c, err := NewCache(tbl, DefaultEMCEntries, 0) // no EMC insertions: every hit is a megaflow hit
	if err != nil {
		t.Fatal(err)
	}
	k := microflow(t, "in_port=1,udp,nw_src=10.0.0.1")
	if mf, src := c.Lookup(&k); src != SourceUpcall || FormatActions(mf.Actions) != "mod_nw_src:10.0.0.9,output:2" || len(mf.Rules) != 8 {
		t.Fatalf("first lookup: %s %s, %d rules", src, FormatActions(mf.Actions), len(mf.Rules))
	}
	if allocs := testing.AllocsPerRun(1000, func() {
		mf, src := c.Lookup(&k)
		if src != SourceMegaflow {
			t.Fatalf("lookup answered by %s", src)
		}
		c.Account(mf, 1, 64, 1)
		c.CreditRules()
	}); allocs != 0 {
		t.Errorf("%v allocations per megaflow hit, want 0", allocs)
	}
}

// FuzzTranslate translates random packets through random pipelines (the
// two numbers seed them) and checks that translation, traced or not, ends,
// agrees with itself, and gives sound megaflows.
func FuzzTranslate(f *testing.F) {
	for i := range uint64(8) {
		f.Add(i, i*7919)
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		rng := rand.New(rand.NewPCG(a, b))
		tbl := NewTable()
		for range 1 + rng.IntN(24) {
			if fl, err := ParseFlow(randomFlow(rng, rng.IntN(4), 4), CmdAdd); err == nil {
				tbl.Add(fl)
			}
		}
		s := tbl.Snapshot()
		for range 8 {
			k := randomKey(rng)
			tr := s.Translate(&k, true)
			plain := s.Translate(&k, false)
			if !slices.Equal(tr.Actions, plain.Actions) || tr.Mask != plain.Mask || tr.Verdict != plain.Verdict {
				t.Fatalf("tracing changes the translation")
			}
			var sb strings.Builder
			FormatTrace(&sb, tr.Trace)
			checkSound(t, s, &k, plain, rng, 4)
		}
	})
}
