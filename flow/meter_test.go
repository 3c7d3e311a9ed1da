package flow

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

// admitN offers n packets of size bytes at now and returns how many passed.
func admitN(m *Meter, now int64, n, size int) int {
	passed := 0
	for range n {
		if m.Admit(now, size) {
			passed++
		}
	}
	return passed
}

func TestMeterBucket(t *testing.T) {
	type step struct {
		at      int64 // ns
		n, size int
		want    int // packets that pass
	}
	tests := []struct {
		name  string
		inCfg MeterConfig
		steps []step
	}{
		{name: "pktps: a full bucket of burst packets, then rate per second",
			inCfg: MeterConfig{ID: 1, Flags: MeterFlagPktps | MeterFlagBurst, Bands: []MeterBand{{Type: MeterBandDrop, Rate: 10, Burst: 20}}},
			steps: []step{{at: 1000 * ms, n: 25, want: 20}, {at: 1050 * ms, n: 5, want: 0}, {at: 1100 * ms, n: 5, want: 1},
				{at: 1350 * ms, n: 5, want: 2}, {at: 60000 * ms, n: 100, want: 20}}},
		{name: "pktps without a burst size: the burst is the rate",
			inCfg: MeterConfig{ID: 1, Flags: MeterFlagPktps, Bands: []MeterBand{{Type: MeterBandDrop, Rate: 10}}},
			steps: []step{{at: 0, n: 15, want: 10}, {at: 1000 * ms, n: 15, want: 10}}},
		{name: "kbps: bits of the packets against kilobits",
			// 10 kbit of burst is 12 packets of 800 bits; 1 Mbit/s
			// refills 1000 bits a millisecond.
			inCfg: MeterConfig{ID: 1, Flags: MeterFlagKbps | MeterFlagBurst, Bands: []MeterBand{{Type: MeterBandDrop, Rate: 1000, Burst: 10}}},
			steps: []step{{at: 5 * ms, n: 20, size: 100, want: 12}, {at: 6 * ms, n: 5, size: 100, want: 1}, {at: 6 * ms, n: 10, size: 10, want: 7}}},
		{name: "no flags is kbps, as in Open vSwitch",
			inCfg: MeterConfig{ID: 1, Bands: []MeterBand{{Type: MeterBandDrop, Rate: 8}}},
			steps: []step{{at: 0, n: 3, size: 1000, want: 1}, {at: 1000 * ms, n: 3, size: 1000, want: 1}}},
		{name: "a packet larger than the bucket never passes",
			inCfg: MeterConfig{ID: 1, Flags: MeterFlagKbps | MeterFlagBurst, Bands: []MeterBand{{Type: MeterBandDrop, Rate: 1000, Burst: 1}}},
			steps: []step{{at: 0, n: 3, size: 200, want: 0}, {at: 0, n: 1, size: 100, want: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMeter(&tt.inCfg)
			var in, dropped uint64
			for i, s := range tt.steps {
				size := s.size
				if size == 0 {
					size = 64
				}
				if got := admitN(m, s.at, s.n, size); got != s.want {
					t.Errorf("step %d (%d packets at %v): %d passed, want %d", i, s.n, time.Duration(s.at), got, s.want)
				}
				in += uint64(s.n)
				dropped += uint64(s.n - s.want)
			}
			st := m.Stats()
			if st.Packets != in || st.Bands[0].Packets != dropped {
				t.Errorf("stats: %d in, %d dropped; want %d, %d", st.Packets, st.Bands[0].Packets, in, dropped)
			}
		})
	}
}

// A packet that exceeds several bands counts on the one of the highest
// rate; one that exceeds only the slower band counts there.
func TestMeterBandsCountHighestRate(t *testing.T) {
	m := NewMeter(&MeterConfig{ID: 1, Flags: MeterFlagPktps | MeterFlagBurst, Bands: []MeterBand{
		{Type: MeterBandDrop, Rate: 10, Burst: 2},
		{Type: MeterBandDrop, Rate: 100, Burst: 5},
	}})
	if got := admitN(m, 0, 10, 64); got != 2 {
		t.Fatalf("%d passed, want 2", got)
	}
	st := m.Stats()
	// Packets 3-5 exceed band 0 only (band 1 still had room); 6-10 both.
	if st.Bands[0].Packets != 3 || st.Bands[1].Packets != 5 || st.Bands[1].Bytes != 5*64 {
		t.Errorf("band counts %+v, want 3 and 5", st.Bands)
	}
}

// Poll threads share a meter: at one instant, no more than the burst
// passes, however the threads interleave.
func TestMeterConcurrentNeverOverAdmits(t *testing.T) {
	m := NewMeter(&MeterConfig{ID: 1, Flags: MeterFlagPktps | MeterFlagBurst, Bands: []MeterBand{{Type: MeterBandDrop, Rate: 1, Burst: 100}}})
	total := admitConcurrently(m, 7*ms, 4, 1000)
	if total != 100 {
		t.Errorf("%d packets passed a burst of 100", total)
	}
	if st := m.Stats(); st.Packets != 4000 || st.Bands[0].Packets != uint64(4000-total) {
		t.Errorf("stats %+v after 4000 packets, %d passed", st, total)
	}
}

// Threads that contend for one bucket never lose a packet that had tokens
// to the contention: when exactly the bucket's tokens are offered, at one
// instant and again after a refill, every packet passes, and one more
// packet does not. A goroutine that keeps moving the bucket by one tick
// and back makes compare-and-swaps fail as often as another poll thread
// would; the tick is within the bucket's slack (a rate of 3 packets per
// second does not divide the ticks of a second), so it changes no
// decision.
func TestMeterContendedIsExact(t *testing.T) {
	const threads, each = 4, 25000
	const burst = threads * each
	m := NewMeter(&MeterConfig{ID: 1, Flags: MeterFlagPktps | MeterFlagBurst, Bands: []MeterBand{{Type: MeterBandDrop, Rate: 3, Burst: burst}}})
	b := &m.bands[0]
	if slack := b.burst - burst*b.cost; slack < 2 {
		t.Fatalf("bucket of %d ticks, %d packets of %d: no slack for the interfering tick", b.burst, burst, b.cost)
	}
	var stop, running atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			b.tat.Add(1)
			b.tat.Add(-1)
			running.Store(true)
		}
	}()
	defer func() { stop.Store(true); <-done }()
	for !running.Load() {
		runtime.Gosched()
	}
	// A full bucket at 7 ms; then, 2 s later, the 6 packets 3 per second
	// refill.
	steps := []struct {
		at        int64
		n, inWant int
	}{
		{at: 7 * ms, n: burst, inWant: burst},
		{at: 7 * ms, n: 1, inWant: 0},
		{at: 2007 * ms, n: 6, inWant: 6},
		{at: 2007 * ms, n: 1, inWant: 0},
	}
	offered, passed := 0, 0
	for i, s := range steps {
		per := max(s.n/threads, 1)
		got := admitConcurrently(m, s.at, s.n/per, per)
		if got != s.inWant {
			t.Errorf("step %d: %d of %d packets at %v passed, want %d", i, got, s.n, time.Duration(s.at), s.inWant)
		}
		offered += s.n
		passed += got
	}
	if st := m.Stats(); st.Packets != uint64(offered) || st.Bands[0].Packets != uint64(offered-passed) {
		t.Errorf("stats %d in, %d over; want %d, %d", st.Packets, st.Bands[0].Packets, offered, offered-passed)
	}
}

// admitConcurrently offers each packets of 64 bytes at now from each of
// threads goroutines, started together, and returns how many passed.
func admitConcurrently(m *Meter, now int64, threads, each int) int {
	var wg sync.WaitGroup
	start := make(chan struct{})
	passed := make([]int, threads)
	for g := range passed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			passed[g] = admitN(m, now, each, 64)
		}()
	}
	close(start)
	wg.Wait()
	total := 0
	for _, p := range passed {
		total += p
	}
	return total
}

func TestMeterTable(t *testing.T) {
	tbl := NewTable()
	drop := []MeterBand{{Type: MeterBandDrop, Rate: 10}}
	for _, id := range []uint32{5, 7} {
		if err := tbl.AddMeter(&MeterConfig{ID: id, Flags: MeterFlagPktps, Bands: drop}); err != nil {
			t.Fatal(err)
		}
	}
	errTests := []struct {
		name    string
		inMod   bool
		inCfg   MeterConfig
		wantErr error
	}{
		{"meter exists", false, MeterConfig{ID: 5, Flags: MeterFlagPktps, Bands: drop}, ErrMeterExists},
		{"meter 0", false, MeterConfig{ID: 0, Bands: drop}, ErrInvalidMeter},
		{"meter all", false, MeterConfig{ID: MeterAll, Bands: drop}, ErrInvalidMeter},
		{"kbps and pktps", false, MeterConfig{ID: 9, Flags: MeterFlagKbps | MeterFlagPktps, Bands: drop}, ErrMeterBadFlags},
		{"unknown flag", false, MeterConfig{ID: 9, Flags: 0x10, Bands: drop}, ErrMeterBadFlags},
		{"dscp_remark", false, MeterConfig{ID: 9, Bands: []MeterBand{{Type: MeterBandDSCPRemark, Rate: 1}}}, ErrMeterBadBand},
		{"rate 0", false, MeterConfig{ID: 9, Bands: []MeterBand{{Type: MeterBandDrop}}}, ErrMeterBadRate},
		{"nine bands", false, MeterConfig{ID: 9, Bands: make([]MeterBand, 9)}, ErrOutOfBands},
		{"modify unknown", true, MeterConfig{ID: 9, Bands: drop}, ErrUnknownMeter},
		{"modify to dscp_remark", true, MeterConfig{ID: 5, Bands: []MeterBand{{Type: MeterBandDSCPRemark, Rate: 1}}}, ErrMeterBadBand},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.inMod {
				err = tbl.ModifyMeter(&tt.inCfg)
			} else {
				err = tbl.AddMeter(&tt.inCfg)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}

	f, err := ParseFlow("in_port=1,actions=meter:7,output:2", CmdAdd)
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Add(f); err != nil {
		t.Fatal(err)
	}
	if bad, _ := ParseFlow("in_port=3,actions=meter:8,output:2", CmdAdd); !errors.Is(tbl.Add(bad), ErrInvalidMeter) {
		t.Errorf("a flow naming meter 8, which does not exist, was not refused with ErrInvalidMeter")
	}
	s := tbl.Snapshot()
	if got := s.MeterRefs(7); got != 1 {
		t.Errorf("meter 7 has %d flows, want 1", got)
	}
	if m5, m7 := s.Meter(5), s.Meter(7); m5.DpID != 0 || m7.DpID != 1 {
		t.Errorf("datapath ids %d, %d; want 0, 1", m5.DpID, m7.DpID)
	}
	k := microflow(t, "in_port=1")
	tr := s.Translate(&k, false)
	if got, want := FormatDatapathActions(tr.Actions, &k, nil), "meter(1),2"; got != want {
		t.Errorf("datapath actions %q, want %q", got, want)
	}
	if tr.Actions[0].Meter != s.Meter(7).Run {
		t.Errorf("the datapath action does not run meter 7's datapath meter")
	}

	// A modified meter is a new datapath meter, in a new generation.
	gen := s.Generation()
	if err := tbl.ModifyMeter(&MeterConfig{ID: 7, Flags: MeterFlagKbps, Bands: drop}); err != nil {
		t.Fatal(err)
	}
	s2 := tbl.Snapshot()
	if s2.Generation() == gen || s2.Meter(7).Run == s.Meter(7).Run || s2.Meter(7).DpID != 1 || !s2.Meter(7).Created.Equal(s.Meter(7).Created) {
		t.Errorf("modify: generation %d→%d, same datapath meter %v, dp id %d", gen, s2.Generation(), s2.Meter(7).Run == s.Meter(7).Run, s2.Meter(7).DpID)
	}

	// Deleting the meter deletes the flow that uses it; the freed
	// datapath id is the next one given.
	n, removed := tbl.DeleteMeters(7)
	if n != 1 || len(removed) != 1 || removed[0].Priority != f.Priority {
		t.Errorf("delete: %d meters, %d flows", n, len(removed))
	}
	if tbl.Snapshot().Meter(7) != nil || tbl.Snapshot().MeterRefs(7) != 0 {
		t.Errorf("meter 7 or its flow survived the delete")
	}
	if err := tbl.AddMeter(&MeterConfig{ID: 8, Bands: drop}); err != nil {
		t.Fatal(err)
	}
	if got := tbl.Snapshot().Meter(8).DpID; got != 1 {
		t.Errorf("meter 8 has datapath id %d, want 1 (the lowest free)", got)
	}
	if n, _ := tbl.DeleteMeters(MeterAll); n != 2 || len(tbl.Snapshot().Meters()) != 0 {
		t.Errorf("delete all: %d meters deleted, %d left", n, len(tbl.Snapshot().Meters()))
	}
}

// A meter action of a meter that does not exist translates to nothing,
// and a controller action's meter_id wraps the packet in in a sample
// through the meter, as Open vSwitch prints it.
func TestMeterTranslate(t *testing.T) {
	tbl := NewTable()
	if err := tbl.AddMeter(&MeterConfig{ID: 3, Flags: MeterFlagPktps, Bands: []MeterBand{{Type: MeterBandDrop, Rate: 1}}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"in_port=1,actions=controller(meter_id=3),output:2", "in_port=2,actions=controller(max_len=64,meter_id=4)", "in_port=3,actions=controller:32"} {
		f, err := ParseFlow(s, CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		if err := tbl.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		in, wantODP string
	}{
		{"in_port=1", "sample(sample=100.0%,actions(meter(0),userspace(pid=0,controller(reason=1,dont_send=0,continuation=0,recirc_id=0,rule_cookie=0,controller_id=0,max_len=65535)))),2"},
		{"in_port=2", "userspace(pid=0,controller(reason=1,dont_send=0,continuation=0,recirc_id=0,rule_cookie=0,controller_id=0,max_len=64))"},
		{"in_port=3", "userspace(pid=0,controller(reason=1,dont_send=0,continuation=0,recirc_id=0,rule_cookie=0,controller_id=0,max_len=32))"},
	}
	for _, tt := range tests {
		k := microflow(t, tt.in)
		tr := tbl.Snapshot().Translate(&k, false)
		if got := FormatDatapathActions(tr.Actions, &k, nil); got != tt.wantODP {
			t.Errorf("%s:\n got %s\nwant %s", tt.in, got, tt.wantODP)
		}
	}
}

// The "controller" meter polices the packet ins of controller actions
// without a meter_id, as in Open vSwitch; one with a meter_id keeps its
// own.
func TestMeterControllerMeter(t *testing.T) {
	tbl := NewTable()
	drop := []MeterBand{{Type: MeterBandDrop, Rate: 1}}
	for _, id := range []uint32{MeterController, 3} {
		if err := tbl.AddMeter(&MeterConfig{ID: id, Flags: MeterFlagPktps, Bands: drop}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"in_port=1,actions=controller:32", "in_port=2,actions=controller(meter_id=3)"} {
		f, err := ParseFlow(s, CmdAdd)
		if err != nil {
			t.Fatal(err)
		}
		if err := tbl.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		in     string
		wantDp string
	}{{"in_port=1", "meter(0)"}, {"in_port=2", "meter(1)"}} {
		k := microflow(t, tt.in)
		tr := tbl.Snapshot().Translate(&k, false)
		if got := FormatDatapathActions(tr.Actions, &k, nil); !strings.Contains(got, "actions("+tt.wantDp+",userspace(") {
			t.Errorf("%s: %s, want the packet in through %s", tt.in, got, tt.wantDp)
		}
	}
}

func TestMeterExecute(t *testing.T) {
	m := NewMeter(&MeterConfig{ID: 1, Flags: MeterFlagPktps | MeterFlagBurst, Bands: []MeterBand{{Type: MeterBandDrop, Rate: 1, Burst: 1}}})
	acts := []Action{{Type: ActMeter, Value: 0, Meter: m}, {Type: ActOutput, Port: 2}}
	out := &meterRecorder{}
	frame := make([]byte, 60)
	var k Key
	var off Offsets
	if _, v := Execute(frame, &k, &off, acts, out); v != VerdictOK || out.outputs != 1 {
		t.Errorf("first packet: verdict %v, %d outputs", v, out.outputs)
	}
	if _, v := Execute(frame, &k, &off, acts, out); v != VerdictMeterDrop || out.outputs != 1 {
		t.Errorf("second packet: verdict %v, %d outputs; want meter-drop, 1", v, out.outputs)
	}
}

type meterRecorder struct{ outputs int }

func (r *meterRecorder) Output(uint32, []byte)                   { r.outputs++ }
func (r *meterRecorder) Meter(_ uint32, m *Meter, size int) bool { return m.Admit(0, size) }

func TestMeterActionText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"actions=meter:1,output:2", "meter:1,output:2"},
		{"actions=controller(meter_id=5)", "controller(meter_id=5)"},
		{"actions=controller(reason=no_match,max_len=10,id=2,userdata=01,meter_id=5)", "controller(reason=no_match,max_len=10,id=2,userdata=01,meter_id=5)"},
		{"actions=controller(meter_id=0)", "CONTROLLER:65535"},
	} {
		f, err := ParseFlow(tt.in, CmdAdd)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if got := FormatActions(f.Actions); got != tt.want {
			t.Errorf("%s: formatted %q, want %q", tt.in, got, tt.want)
		}
	}
	if _, err := ParseFlow("actions=meter", CmdAdd); err == nil {
		t.Errorf("meter without an id was taken")
	}
}

func TestParseMeter(t *testing.T) {
	tests := []struct {
		in      string
		inCmd   MeterCommand
		want    string // FormatMeter with " "; or the error
		wantErr bool
	}{
		{"meter=1,pktps,band=type=drop,rate=10", MeterCmdAdd, "meter=1 pktps bands= type=drop rate=10", false},
		{"meter=2 kbps burst stats bands=type=drop rate=1000 burst_size=50 type=drop rate=2000 burst_size=60", MeterCmdAdd,
			"meter=2 kbps burst stats bands= type=drop rate=1000 burst_size=50 type=drop rate=2000 burst_size=60", false},
		{"meter=3,pktps,band=type=dscp_remark,rate=5,prec_level=1", MeterCmdModify, "meter=3 pktps bands= type=dscp_remark rate=5 prec_level=1", false},
		{"meter=1", MeterCmdDelete, "meter=1 bands=", false},
		{"", MeterCmdDelete, "meter=all bands=", false},
		{"meter=1,pktps", MeterCmdAdd, "must specify bands", true},
		{"pktps,band=type=drop,rate=10", MeterCmdAdd, "must specify 'meter'", true},
		{"meter=1,band=type=drop,rate=10", MeterCmdAdd, "meter must specify either 'kbps' or 'pktps'", true},
		{"meter=1,pktps,band=rate=10", MeterCmdAdd, "band must start with the 'type' keyword", true},
		{"meter=1,pktps,band=type=drop", MeterCmdAdd, "band must have 'rate'", true},
		{"meter=1,pktps,burst,band=type=drop,rate=1", MeterCmdAdd, "band must have 'burst_size' when 'burst' flag is set", true},
		{"meter=1,pktps,band=type=drop,rate=1,burst_size=3", MeterCmdAdd, "band may have 'burst_size' only when 'burst' flag is set", true},
		{"meter=0,pktps,band=type=drop,rate=1", MeterCmdAdd, "invalid value for meter", true},
		{"meter=1,pktps,band=type=foo,rate=1", MeterCmdAdd, "field type unknown value foo", true},
	}
	for _, tt := range tests {
		c, err := ParseMeter(tt.in, tt.inCmd)
		switch {
		case tt.wantErr && (err == nil || err.Error() != tt.want):
			t.Errorf("%q: error %v, want %q", tt.in, err, tt.want)
		case !tt.wantErr && err != nil:
			t.Errorf("%q: %v", tt.in, err)
		case !tt.wantErr:
			if got := FormatMeter(c, " "); got != tt.want {
				t.Errorf("%q: formatted %q, want %q", tt.in, got, tt.want)
			}
			if tt.inCmd != MeterCmdDelete {
				again, err := ParseMeter(FormatMeter(c, "\n"), tt.inCmd)
				if err != nil || FormatMeter(again, " ") != tt.want {
					t.Errorf("%q: the dump does not parse back: %v", tt.in, err)
				}
			}
		}
	}
}
