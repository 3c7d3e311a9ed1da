package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestGenerateReproducible(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		a, b := Generate(seed, 12), Generate(seed, 12)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: two schedules differ:\n%s\n%s", seed, a, b)
		}
		if a.Slots < 3 || a.Slots > 4 || len(a.Steps) != 12 {
			t.Fatalf("seed %d: %d slots, %d steps", seed, a.Slots, len(a.Steps))
		}
		st := initialState(a.Slots)
		for i, s := range a.Steps {
			if !applicable(st, s) {
				t.Fatalf("seed %d: step %d (%s) not applicable in the state before it", seed, i, s)
			}
			apply(st, s)
		}
	}
	if reflect.DeepEqual(Generate(1, 12), Generate(2, 12)) {
		t.Error("seeds 1 and 2 give the same schedule")
	}
}

func TestGenerateCoversEveryOp(t *testing.T) {
	seen := map[Op]bool{}
	for seed := uint64(0); seed < 100; seed++ {
		for _, s := range Generate(seed, 10).Steps {
			seen[s.Op] = true
		}
	}
	for _, w := range weights {
		if !seen[w.op] {
			t.Errorf("no schedule of 100 has %s", w.op)
		}
	}
}

func TestHealRestoresInitialState(t *testing.T) {
	for seed := uint64(0); seed < 100; seed++ {
		s := Generate(seed, 10)
		st := initialState(s.Slots)
		for _, step := range s.Steps {
			apply(st, step)
		}
		for i := range st {
			for _, h := range healSteps(st, i) {
				if applicable(st, h) {
					apply(st, h)
				}
			}
		}
		if !reflect.DeepEqual(st, initialState(s.Slots)) {
			t.Fatalf("seed %d: after the heal %+v", seed, st)
		}
	}
}

func TestShrink(t *testing.T) {
	tests := []struct {
		name    string
		in      []int // step slots, standing for steps
		fails   func(slots []int) bool
		want    []int
		maxRuns int
	}{
		{"one culprit", []int{0, 1, 2, 3, 4, 5, 6, 7}, func(s []int) bool { return slices.Contains(s, 5) }, []int{5}, 100},
		{"two culprits in order", []int{0, 1, 2, 3, 4, 5, 6, 7}, func(s []int) bool {
			i, j := slices.Index(s, 2), slices.Index(s, 6)
			return i >= 0 && j > i
		}, []int{2, 6}, 100},
		{"always", []int{0, 1, 2}, func([]int) bool { return true }, []int{}, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Schedule{Seed: 1, Slots: 8}
			for _, v := range tc.in {
				s.Steps = append(s.Steps, Step{Op: OpHostDown, Slot: v})
			}
			runs := 0
			got := Shrink(s, tc.maxRuns, func(c *Schedule) bool {
				runs++
				var slots []int
				for _, st := range c.Steps {
					slots = append(slots, st.Slot)
				}
				return tc.fails(slots)
			})
			var slots []int
			for _, st := range got.Steps {
				slots = append(slots, st.Slot)
			}
			if !slices.Equal(slots, tc.want) && !(len(slots) == 0 && len(tc.want) == 0) {
				t.Errorf("shrunk to %v, want %v (%d runs)", slots, tc.want, runs)
			}
			if len(s.Steps) != len(tc.in) {
				t.Errorf("the original schedule changed")
			}
		})
	}
}

func TestShrinkBudget(t *testing.T) {
	s := Generate(7, 30)
	runs := 0
	Shrink(s, 5, func(*Schedule) bool { runs++; return false })
	if runs > 5 {
		t.Errorf("%d runs, budget 5", runs)
	}
}

func TestScheduleSaveLoad(t *testing.T) {
	s := Generate(42, 9)
	s.Driver, s.Failure = "ovsxdp-guarded", KindRecovery
	path := filepath.Join(t.TempDir(), "s.json")
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSchedule(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Errorf("loaded %+v, saved %+v", got, s)
	}
}

func TestLoadScheduleErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"bad json":   `{"seed": `,
		"no slots":   `{"seed":1,"slots":0,"steps":[]}`,
		"unknown op": `{"seed":1,"slots":3,"steps":[{"op":"explode","slot":0}]}`,
	} {
		path := filepath.Join(dir, "s.json")
		if err := writeFile(path, body); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadSchedule(path); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

// The regression corpus loads: every file is a valid schedule.
func TestRegressionCorpusLoads(t *testing.T) {
	files, err := filepath.Glob("testdata/regressions/*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := LoadSchedule(f); err != nil {
			t.Error(err)
		}
	}
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o644) }

func TestProcFootprintSelf(t *testing.T) {
	f, err := procFootprint(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if f.FDs < 3 || f.XSK != 0 || f.Orphans != 0 || f.Goroutines != -1 {
		t.Errorf("own footprint %s: want at least 3 fds, no AF_XDP socket, goroutines unknown", f)
	}
	if _, err := procFootprint(1 << 30); err == nil {
		t.Error("footprint of a pid that does not exist: no error")
	}
}

// dumpPorts is dump-ports output of two ports and the removed ports' row,
// with over as the tx-on-queue counts.
func dumpPorts(over ...string) string {
	rows := []string{" 1", " 2", "(removed)"}
	var b strings.Builder
	b.WriteString("OFPST_PORT reply (xid=0x2): 3 ports\n")
	for i, n := range rows {
		fmt.Fprintf(&b, "  port %s: rx pkts=10, bytes=980, drop=0, errs=0, frame=0, over=0, crc=0\n", n)
		b.WriteString("           tx pkts=9, bytes=882, drop=0, errs=0, coll=0\n")
		b.WriteString("           rx dropped by reason: no-carrier=1\n")
		b.WriteString("           tx dropped by reason: none\n")
		if i < len(over) {
			fmt.Fprintf(&b, "           tx on queue >= count: %s\n", over[i])
		}
	}
	return b.String()
}

func TestTxQueueOverInvariant(t *testing.T) {
	if _, err := txQueueOver(dumpPorts("0", "0", "0"), 0); err != nil {
		t.Errorf("all 0: %v", err)
	}
	total, err := txQueueOver(dumpPorts("0", "3", "0"), 0)
	if err == nil || !strings.Contains(err.Error(), "port 2: 3") || total != 3 {
		t.Errorf("port 2 sent 3 over the count: got %d, %v", total, err)
	}
	// Reported once: the next check, with no more of them, passes.
	if total, err := txQueueOver(dumpPorts("0", "3", "0"), 3); err != nil || total != 3 {
		t.Errorf("the same 3 at the next check: got %d, %v", total, err)
	}
	if _, err := txQueueOver(dumpPorts("1", "3", "0"), 3); err == nil || !strings.Contains(err.Error(), "1 transmits") {
		t.Errorf("one more since the last check: got %v", err)
	}
	if _, err := txQueueOver(dumpPorts("0", "0", "2"), 0); err == nil || !strings.Contains(err.Error(), "port (removed): 2") {
		t.Errorf("the removed row sent 2 over the count: got %v", err)
	}
	// A daemon that does not show the count fails the check instead of
	// passing it.
	if _, err := txQueueOver(dumpPorts("0"), 0); err == nil {
		t.Error("rows without the count passed")
	}
	if _, err := txQueueOver("", 0); err == nil {
		t.Error("no rows passed")
	}
}

// daemonLog is what the link monitor logs for h0 (taken down, then deleted
// with its namespace) and h1 (its peer down; lost events and a resync),
// with lines of other ports and other messages between.
const daemonLog = `time=t level=DEBUG msg="link monitor: resync" netns=/run/netns/sw watched=0
time=t level=DEBUG msg="link monitor: watch" netns=/run/netns/sw name=h0 ifindex=5 up=true carrier=true
time=t level=DEBUG msg="link monitor: watch" netns=/run/netns/sw name=h1 ifindex=7 up=true carrier=true
time=t level=DEBUG msg="control: request" verb=show args=[] took=1ms err=<nil>
time=t level=DEBUG msg="link monitor: event" netns=/run/netns/sw name=h1 ifindex=7 type=new up=true carrier=false txqueues=4 watched=true changes=carrier-
time=t level=DEBUG msg="link monitor: event" netns=/run/netns/sw name=h9 ifindex=9 type=new up=true carrier=true txqueues=4 watched=false changes=none
time=t level=DEBUG msg="link monitor: event" netns=/run/netns/sw name=h0 ifindex=5 type=new up=false carrier=false txqueues=4 watched=true changes=running-,carrier-
time=t level=DEBUG msg="link monitor: event" netns=/run/netns/sw name=h0 ifindex=5 type=del up=false carrier=false txqueues=4 watched=true changes=deleted
time=t level=DEBUG msg="link monitor: deleted" netns=/run/netns/sw name=h0 ifindex=5 via=dellink
time=t level=DEBUG msg="link monitor: event" netns=/run/netns/sw name=h0 ifindex=5 type=new up=false carrier=false txqueues=4 watched=true changes=late
time=t level=WARN msg="link monitor: netlink subscription failed, resyncing" netns=/run/netns/sw err="Receive failed: no buffer space available"
time=t level=DEBUG msg="link monitor: resync" netns=/run/netns/sw watched=1
time=t level=DEBUG msg="link monitor: event" netns=/run/netns/sw name=h1 ifindex=7 type=new up=false carrier=true txqueues=4 watched=true changes=running-,carrier+,txqueues=2
`

func TestLinkOrders(t *testing.T) {
	rec := parseLinkRecord([]string{daemonLog}, []string{"h0", "h1"})
	got := map[string][]string{}
	for name, evs := range rec {
		for _, l := range lifetimes(evs) {
			got[name] = append(got[name], signature(l))
		}
	}
	want := map[string][]string{
		"h0": {"new(running-,carrier-) > del > deleted(dellink) > new(late) > lost > resync"},
		"h1": {"new(carrier-) > lost > resync > new(running-,carrier+,txqueues=2)"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("orders\n got %q\nwant %q", got, want)
	}
	o := newOrderStats()
	o.add(rec, map[string]int{"h0": 1, "h1": 2})
	wantDiv := map[string]int{DivLate: 1, DivLost: 2, DivCoalesced: 1, DivCarrierDown: 1, DivTxQInvisible: 1}
	if !reflect.DeepEqual(o.Divergences, wantDiv) {
		t.Errorf("divergences %v, want %v", o.Divergences, wantDiv)
	}
	// A second process: the first one's lifetimes end with it.
	rec = parseLinkRecord([]string{daemonLog, `time=t level=DEBUG msg="link monitor: resync" netns=/run/netns/sw watched=0`}, []string{"h0", "h1"})
	if n := len(lifetimes(rec["h1"])); n != 1 {
		t.Errorf("%d lifetimes of h1 over two processes, want 1", n)
	}
}

func TestTeardownInput(t *testing.T) {
	l := lifetimes(parseLinkRecord([]string{daemonLog}, []string{"h0", "h1"})["h0"])[0]
	in := teardownInput(l)
	if !bytes.HasPrefix(in, []byte{fzAllPolicies, fzVeth, fzFreeOrder}) || (len(in)-3)%2 != 0 {
		t.Fatalf("input % x: want the header 04 00 01 and two bytes per operation", in)
	}
	ops := in[3:]
	var kinds []byte
	for i := 0; i < len(ops); i += 2 {
		if ops[i] != fzPacket {
			kinds = append(kinds, ops[i])
		}
	}
	// running-, carrier-, then the deletion: down, no carrier,
	// unregistering, no tx queues, notify, delete, a grace period.
	want := []byte{fzLink, fzCarrier, fzLink, fzCarrier, fzStep, fzStep, fzStep, fzStep, fzGrace}
	if !bytes.Equal(kinds, want) {
		t.Errorf("operations % x, want % x", kinds, want)
	}
	dir := t.TempDir()
	o := newOrderStats()
	o.Inputs["x"] = in
	if n, err := o.writeCorpus(dir); err != nil || n != 1 {
		t.Fatalf("wrote %d seeds: %v", n, err)
	}
	if n, err := o.writeCorpus(dir); err != nil || n != 0 {
		t.Errorf("wrote %d seeds again: %v", n, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "chaos-*"))
	b, _ := os.ReadFile(files[0])
	if want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", string(in)); string(b) != want {
		t.Errorf("seed file %q, want %q", b, want)
	}
}

// TestLinkOrderWatchedDown: a link watched while down and then deleted
// went down before the deletion (no deleted-while-up), and its model input
// starts with the port down; one watched up and deleted without a down
// event diverges.
func TestLinkOrderWatchedDown(t *testing.T) {
	log := `time=t level=DEBUG msg="link monitor: watch" netns=/n name=h2 ifindex=9 up=false carrier=false
time=t level=DEBUG msg="link monitor: event" netns=/n name=h2 ifindex=9 type=del up=false carrier=false txqueues=4 watched=true changes=deleted
time=t level=DEBUG msg="link monitor: deleted" netns=/n name=h2 ifindex=9 via=dellink
time=t level=DEBUG msg="link monitor: watch" netns=/n name=h2 ifindex=11 up=true carrier=true
time=t level=DEBUG msg="link monitor: event" netns=/n name=h2 ifindex=11 type=del up=false carrier=false txqueues=4 watched=true changes=deleted
time=t level=DEBUG msg="link monitor: deleted" netns=/n name=h2 ifindex=11 via=dellink
`
	ls := lifetimes(parseLinkRecord([]string{log}, []string{"h2"})["h2"])
	if len(ls) != 2 {
		t.Fatalf("%d lifetimes, want 2", len(ls))
	}
	if got, want := signature(ls[0]), "(watched down) > del > deleted(dellink)"; got != want {
		t.Errorf("signature %q, want %q", got, want)
	}
	if d := divergences(ls[0]); len(d) != 0 {
		t.Errorf("watched down, then deleted: divergences %v, want none", d)
	}
	if d := divergences(ls[1]); !slices.Equal(d, []string{DivDeleteUp}) {
		t.Errorf("watched up, then deleted: divergences %v, want %v", d, []string{DivDeleteUp})
	}
	if in := teardownInput(ls[0]); !bytes.HasPrefix(in[3:], []byte{fzLink, 0, fzCarrier, 0, fzPacket}) {
		t.Errorf("input % x does not start with the port down and without carrier", in)
	}
}

func TestLinkStateMismatches(t *testing.T) {
	show := `    Bridge br0
        datapath_type: ovsxdp
        Port h0
            Interface h0
                type: afxdp
                ofport: 1
                link_state: up
        Port h1
            Interface h1
                type: afxdp
                ofport: 2
                link_state: down
        Port h2
            Interface h2
                type: afxdp
                error: "could not open network device h2 (No such device)"
                ofport: 3
                link_state: down
        Port br0
            Interface br0
                type: internal
                ofport: 65534
                link_state: down
`
	// h3 has no link in the kernel (gone meanwhile).
	kernel := map[string]string{"lo": "up", "h0": "up", "h1": "up", "h2": "down"}
	st := initialState(4)
	got := linkStateMismatches(show, kernel, st)
	if want := []string{"h1: kernel up, daemon down"}; !slices.Equal(got, want) {
		t.Errorf("mismatches %q, want %q", got, want)
	}
	st[1].Port = false // not a port: not compared
	if got := linkStateMismatches(show, kernel, st); len(got) != 0 {
		t.Errorf("mismatches %q, want none", got)
	}
	kernel["h0"] = "down"
	if got := linkStateMismatches(show, kernel, st); !slices.Equal(got, []string{"h0: kernel down, daemon up"}) {
		t.Errorf("h0 without carrier: mismatches %q", got)
	}
}

func TestLockupCount(t *testing.T) {
	tests := []struct {
		name         string
		in           string
		want, wantSp int
		wantOK       bool
	}{
		{"none", "bridge br0: policy guarded, soft lockups detected: 0, spinning in output: 0\n", 0, 0, true},
		{"spinning", "bridge br0: policy legacy, soft lockups detected: 1, spinning in output: 1\n  BUG: soft lockup - pmd#0 stuck for 1s! policy=legacy port=h2 txqueues=0 hash=0", 1, 1, true},
		{"stalls", "bridge br0: policy guarded, soft lockups detected: 2, spinning in output: 0\n  BUG: soft lockup - pmd#0 stuck for 2s! policy=guarded (not spinning)", 2, 0, true},
		{"no count", "bridge br0: policy guarded\n", 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, sp, ok := lockupCount(tc.in)
			if n != tc.want || sp != tc.wantSp || ok != tc.wantOK {
				t.Errorf("lockupCount(%q) = %d, %d, %v; want %d, %d, %v", tc.in, n, sp, ok, tc.want, tc.wantSp, tc.wantOK)
			}
		})
	}
}
