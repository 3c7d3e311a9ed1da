package datapath

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/vport"
)

// FuzzTeardown runs teardown schedules (see teardown_sched_test.go) under
// the policies, device kinds and orders their header selects. Under
// guarded, in both orders: no lockup, no output to a port whose snapshot
// was not registered, running, with carrier and tx queues (or that was not
// in the thread's port table), accounting balanced on every port, removed
// ones included. Under the other policies lockups are expected and
// recorded; accounting and the lockup records are still checked. A panic
// anywhere fails the target.
func FuzzTeardown(f *testing.F) {
	loadSchedFixtures(f)
	for _, s := range schedSeeds() {
		f.Add(s.bytes())
	}
	only, err := fuzzPolicy()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cfgs, ops := decodeSchedule(in)
		if only != nil {
			cfgs = pinPolicy(cfgs, *only)
		}
		for _, cfg := range cfgs {
			if _, err := runSchedule(cfg, ops); err != nil {
				t.Fatalf("%s: %v\nschedule:\n%s", cfg, err, describeSchedule(ops))
			}
		}
	})
}

// fuzzPolicy reads OVSXDP_FUZZ_POLICY, which pins FuzzTeardown to one
// policy (CI fuzzes each policy in turn); nil means every policy the input
// asks for.
func fuzzPolicy() (*Policy, error) {
	name := os.Getenv("OVSXDP_FUZZ_POLICY")
	if name == "" {
		return nil, nil
	}
	p, err := ParsePolicy(name)
	if err != nil {
		return nil, fmt.Errorf("OVSXDP_FUZZ_POLICY: %w", err)
	}
	return &p, nil
}

// pinPolicy returns cfgs with every policy replaced by pol, without
// duplicates.
func pinPolicy(cfgs []schedConfig, pol Policy) []schedConfig {
	var out []schedConfig
	for _, c := range cfgs {
		c.policy = pol
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// sched builds a schedule.
type sched struct {
	header [schedHeaderLen]byte
	ops    []byte
}

// newSched starts a schedule for one policy, kind and order.
func newSched(pol Policy, kind vport.DeviceKind, order schedOrder) *sched {
	return &sched{header: [schedHeaderLen]byte{byte(pol), byte(kind), byte(order)}}
}

func (s *sched) bytes() []byte { return append(s.header[:], s.ops...) }

func (s *sched) op(o schedOp, arg byte) *sched {
	s.ops = append(s.ops, opByte(o), arg)
	return s
}

func slotArg(port int) byte { return byte(port-1) & 3 }

func flag2(on bool) byte {
	if on {
		return 4
	}
	return 0
}

// packet injects a packet of the given size class and flow on rx queue rxq
// of port p1-p4 and polls it.
func (s *sched) packet(port, rxq int, recorded bool, size, fl int) *sched {
	a := slotArg(port) | byte(rxq&3)<<2 | byte(size&3)<<5 | byte(fl&1)<<7
	if recorded {
		a |= 0x10
	}
	return s.op(opPacket, a)
}

func (s *sched) link(port int, up bool) *sched    { return s.op(opLink, slotArg(port)|flag2(up)) }
func (s *sched) carrier(port int, on bool) *sched { return s.op(opCarrier, slotArg(port)|flag2(on)) }
func (s *sched) txQueues(port, n int) *sched      { return s.op(opTxQueues, slotArg(port)|byte(n&7)<<2) }
func (s *sched) addPort(port int) *sched          { return s.op(opPort, slotArg(port)|4) }
func (s *sched) removePort(port int) *sched       { return s.op(opPort, slotArg(port)) }
func (s *sched) rules(set int) *sched             { return s.op(opRules, byte(set&7)) }
func (s *sched) grace() *sched                    { return s.op(opGrace, 0) }

// step runs an unregister step of port: st in free order, the next one in
// kernel order (where st only documents which).
func (s *sched) step(port int, st UnregisterStep) *sched {
	return s.op(opStep, slotArg(port)|byte(st)<<2)
}

// steps runs the unregister steps of port in the given order.
func (s *sched) steps(port int, sts ...UnregisterStep) *sched {
	for _, st := range sts {
		s.step(port, st)
	}
	return s
}

var kernelSequence = []UnregisterStep{StepClose, StepUnregistering, StepSync, StepNotify, StepTxQueues, StepSyncAgain, StepDelete}

// A named schedule.
type namedSched struct {
	name string
	s    *sched
}

// schedSeeds are generic schedules, none of which locks up under any
// policy: traffic around a whole teardown (packets between the steps carry
// no recorded rx queue), link and queue changes, and port and rule churn.
// They seed FuzzTeardown and the search of TestFuzzerFindsKnownLockups.
func schedSeeds() []*sched {
	s1 := newSched(Guarded, vport.VethLike, kernelOrder).
		packet(1, 0, true, 0, 0).packet(1, 1, true, 1, 1).packet(2, 0, true, 0, 0)
	for _, st := range kernelSequence {
		s1.step(2, st).packet(1, 0, false, 0, 0)
	}
	s1.addPort(2).packet(1, 1, true, 0, 1).packet(2, 1, true, 2, 0)

	s2 := newSched(Guarded, vport.DummyLike, kernelOrder).
		packet(1, 0, true, 0, 0).link(2, false).packet(1, 0, true, 0, 0).link(2, true).
		txQueues(2, 1).packet(1, 1, true, 1, 0).carrier(2, false).packet(1, 0, false, 0, 1).
		carrier(2, true).txQueues(2, 3).packet(1, 1, true, 3, 1).grace()

	s3 := newSched(Guarded, vport.VethLike, freeOrder).
		rules(1).packet(1, 0, true, 0, 0).removePort(3).packet(1, 0, true, 0, 0).addPort(3).
		rules(2).packet(4, 1, true, 1, 1).rules(5).packet(1, 0, false, 2, 0).packet(2, 0, false, 2, 1).
		rules(6).packet(3, 1, true, 0, 0).op(opGrace, 1)
	return []*sched{s1, s2, s3}
}

// knownLockups are the schedules of the races this project reproduces, as
// committed in testdata/fuzz/FuzzTeardown, each with the policies it locks
// up (under its own kind and order).
var knownLockups = []struct {
	name string
	s    *sched
	// lockup says which policies spin on the schedule.
	lockup map[Policy]bool
	// guardedDrop is why guarded drops the packet the others spin on.
	guardedDrop DropReason
}{
	{
		// Linux 5.10: a veth is deleted under traffic; a packet with a
		// recorded rx queue reaches it between step 5 and the deferred
		// deletion.
		name: "legacy-veth-kernel-order",
		s: newSched(Legacy, vport.VethLike, kernelOrder).
			packet(1, 1, true, 0, 0).
			steps(2, kernelSequence[:5]...).
			packet(1, 1, true, 0, 0).
			steps(2, kernelSequence[5:]...).
			packet(1, 1, true, 0, 0),
		lockup:      map[Policy]bool{Legacy: true},
		guardedDrop: DropNotRegistered,
	},
	{
		// The 2023 fix checks carrier, but a dummy keeps carrier while it
		// is unregistered: the race the 2025 fix closed.
		name: "carrier-dummy-kernel-order",
		s: newSched(Carrier, vport.DummyLike, kernelOrder).
			packet(1, 0, true, 1, 1).
			steps(2, kernelSequence[:6]...).
			packet(1, 0, true, 1, 1).
			steps(2, kernelSequence[6:]...),
		lockup:      map[Policy]bool{Legacy: true, Carrier: true},
		guardedDrop: DropNotRegistered,
	},
	{
		// A userspace datapath that learns of the queue count going to 0
		// before it learns that the device is closed (the link events
		// were coalesced or lost) has nothing but the queue count between
		// it and the spin: both kernel fixes lean on the kernel's order.
		name: "upstream-veth-free-order",
		s: newSched(Upstream, vport.VethLike, freeOrder).
			packet(1, 0, true, 0, 0).
			step(2, StepTxQueues).
			packet(1, 0, true, 0, 0).
			steps(2, StepClose, StepUnregistering, StepSync, StepNotify, StepSyncAgain, StepDelete),
		lockup:      map[Policy]bool{Legacy: true, Carrier: true, Upstream: true},
		guardedDrop: DropNoTxQueues,
	},
}

// TestTeardownReplay replays the known lockups under every policy: each
// policy the schedule names spins (the lockup is recorded on the port being
// torn down, with zero tx queues and the spinning stack) and the others do
// not; guarded drops the packet for a named reason instead.
func TestTeardownReplay(t *testing.T) {
	loadSchedFixtures(t)
	for _, k := range knownLockups {
		cfgs, ops := decodeSchedule(k.s.bytes())
		if len(cfgs) != 1 {
			t.Fatalf("%s: header selects %d runs", k.name, len(cfgs))
		}
		for _, pol := range Policies() {
			cfg := cfgs[0]
			cfg.policy = pol
			t.Run(k.name+"/"+pol.String(), func(t *testing.T) {
				out, err := runSchedule(cfg, ops)
				if err != nil {
					t.Fatalf("%v\nschedule:\n%s", err, describeSchedule(ops))
				}
				if want := k.lockup[pol]; (out.nlock > 0) != want {
					t.Fatalf("%d lockups, want lockup=%v", out.nlock, want)
				}
				if out.nlock > 0 {
					if l := out.lockups[0]; l.Port != "p2" || l.TxQueues != 0 {
						t.Errorf("lockup on %s with %d tx queues, want p2 with 0", l.Port, l.TxQueues)
					}
					t.Logf("%s", out.lockups[0])
				}
				if pol == Guarded && out.drops[k.guardedDrop] == 0 {
					t.Errorf("guarded dropped no packet as %s: %v", k.guardedDrop, out.drops)
				}
			})
		}
	}
}

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the known-lockup schedules in testdata/fuzz/FuzzTeardown")

// TestTeardownCorpus checks that the regression corpus holds the known
// lockups, byte for byte (-update-corpus rewrites them), and that every
// committed entry passes FuzzTeardown's invariants under every run.
func TestTeardownCorpus(t *testing.T) {
	loadSchedFixtures(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzTeardown")
	for _, k := range knownLockups {
		path := filepath.Join(dir, k.name)
		want := corpusFile(k.s.bytes())
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update-corpus)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale (run with -update-corpus):\n got %q\nwant %q", path, got, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		in, err := parseCorpusFile(data)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		cfgs, ops := decodeSchedule(in)
		for _, cfg := range cfgs {
			if _, err := runSchedule(cfg, ops); err != nil {
				t.Errorf("%s under %s: %v", e.Name(), cfg, err)
			}
		}
	}
}

// corpusFile is in in go's fuzz corpus format.
func corpusFile(in []byte) []byte {
	return []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(in)) + ")\n")
}

// parseCorpusFile reads a one-value []byte entry in go's fuzz corpus format.
func parseCorpusFile(data []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(string(data), "go test fuzz v1\n")
	if !ok {
		return nil, fmt.Errorf("no go test fuzz v1 header")
	}
	rest = strings.TrimSpace(rest)
	lit, ok := strings.CutPrefix(rest, "[]byte(")
	if !ok || !strings.HasSuffix(lit, ")") {
		return nil, fmt.Errorf("want one []byte value, got %.40q", rest)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	if err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	return []byte(s), nil
}

// The search of TestFuzzerFindsKnownLockups runs at most searchBudget
// schedules, and at least searchMin so that the lockups it must not find
// had their chance: searchMinShort with -short, and under the race
// detector, which makes each schedule about ten times slower; the search
// is seeded, so the run without the detector goes through the same first
// schedules and then on to searchMin.
const (
	searchBudget   = 20000
	searchMin      = 3000
	searchMinShort = 1000
)

// TestFuzzerFindsKnownLockups is a fuzzing campaign in miniature, with a
// fixed seed so that it is repeatable: it starts from schedSeeds (which lock
// up nowhere), mutates inputs at random, and keeps those that show
// something new (a lockup, drop reasons, teardown progress not seen before
// under their run). Within searchBudget schedules it must find the lockups
// the kernel had: legacy with both device kinds, carrier with dummy-like
// devices; and it must never find one for carrier with veth-like devices or
// for upstream in kernel order, while finding one for upstream in free
// order. Guarded never locks up, nor do the kernel-order runs that
// kernelOrderSafe names (runSchedule fails on those).
func TestFuzzerFindsKnownLockups(t *testing.T) {
	loadSchedFixtures(t)
	rng := rand.New(rand.NewPCG(0x0a11, 0x2025))
	var corpus [][]byte
	for _, s := range schedSeeds() {
		corpus = append(corpus, s.bytes())
	}
	seen := map[uint64]bool{}
	type find struct {
		exec int
		in   []byte
	}
	found := map[schedConfig]find{}
	runs := 0
	explore := func(exec int, in []byte) (novel bool) {
		cfgs, ops := decodeSchedule(in)
		for _, cfg := range cfgs {
			out, err := runSchedule(cfg, ops)
			runs++
			if err != nil {
				t.Fatalf("%s: %v\nschedule %q:\n%s", cfg, err, in, describeSchedule(ops))
			}
			if out.nlock > 0 {
				if _, ok := found[cfg]; !ok {
					found[cfg] = find{exec, slices.Clone(in)}
				}
			}
			for _, f := range outcomeFeatures(out) {
				if !seen[f] {
					seen[f], novel = true, true
				}
			}
		}
		return novel
	}
	for _, in := range corpus {
		explore(-1, in)
	}
	if len(found) != 0 {
		t.Fatalf("the seeds lock up already: %v", found)
	}

	allFound := func() bool {
		for _, w := range wantedLockups {
			if !foundAny(found, w) {
				return false
			}
		}
		return true
	}
	least := searchMin
	if testing.Short() || raceEnabled {
		least = searchMinShort
	}
	execs := 0
	for execs < searchBudget && (execs < least || !allFound()) {
		in := mutateSchedule(rng, corpus[rng.IntN(len(corpus))], corpus)
		if explore(execs, in) {
			corpus = append(corpus, in)
		}
		execs++
	}
	t.Logf("%d schedules (%d runs), corpus %d", execs, runs, len(corpus))
	for cfg, f := range found {
		t.Logf("lockup %-28s first at schedule %5d: %q", cfg, f.exec, f.in)
	}
	for _, w := range wantedLockups {
		if !foundAny(found, w) {
			t.Errorf("no lockup found for %s/%s in %d schedules", w.policy, w.kind, execs)
		}
	}
	for cfg, f := range found {
		if cfg.policy == Guarded || kernelOrderSafe(cfg) {
			_, ops := decodeSchedule(f.in)
			t.Errorf("lockup under %s:\n%s", cfg, describeSchedule(ops))
		}
	}
}

// wantedLockup is a run TestFuzzerFindsKnownLockups must find a lockup in:
// under policy with devices of kind, in the given order or (anyOrder) in
// either.
type wantedLockup struct {
	policy   Policy
	kind     vport.DeviceKind
	order    schedOrder
	anyOrder bool
}

var wantedLockups = []wantedLockup{
	{policy: Legacy, kind: vport.VethLike, anyOrder: true},
	{policy: Legacy, kind: vport.DummyLike, anyOrder: true},
	{policy: Carrier, kind: vport.DummyLike, anyOrder: true},
	{policy: Upstream, kind: vport.VethLike, order: freeOrder},
}

func foundAny[V any](found map[schedConfig]V, w wantedLockup) bool {
	for cfg := range found {
		if cfg.policy == w.policy && cfg.kind == w.kind && (w.anyOrder || cfg.order == w.order) {
			return true
		}
	}
	return false
}

// outcomeFeatures are what a run showed, for the search's novelty test:
// under its run, the set of drop reasons, how far teardowns went, whether
// output happened, and whether it locked up.
func outcomeFeatures(out schedOutcome) []uint64 {
	run := uint64(out.cfg.policy)<<2 | uint64(out.cfg.kind)<<1 | uint64(out.cfg.order)
	var mask uint64
	for i, n := range out.drops {
		if n > 0 {
			mask |= 1 << i
		}
	}
	var lock, outputs uint64
	if out.nlock > 0 {
		lock = 1
	}
	if out.outputs > 0 {
		outputs = 1
	}
	return []uint64{
		1<<60 | run<<32 | mask,
		2<<60 | run<<32 | uint64(out.maxSteps),
		3<<60 | run<<32 | lock<<1 | outputs,
	}
}

// mutateSchedule returns a mutated copy of in: one to four of bit flips,
// random bytes, inserted, deleted or duplicated operations, a splice with
// another corpus entry, or a new header byte.
func mutateSchedule(rng *rand.Rand, in []byte, corpus [][]byte) []byte {
	out := slices.Clone(in)
	for len(out) < schedHeaderLen {
		out = append(out, 0)
	}
	opStart := func() int { // a random operation boundary
		return schedHeaderLen + 2*rng.IntN((len(out)-schedHeaderLen)/2+1)
	}
	for n := 1 + rng.IntN(4); n > 0; n-- {
		switch rng.IntN(7) {
		case 0:
			i := rng.IntN(len(out))
			out[i] ^= 1 << rng.IntN(8)
		case 1:
			out[rng.IntN(len(out))] = byte(rng.Uint32())
		case 2:
			i := opStart()
			out = slices.Insert(out, i, byte(rng.Uint32()), byte(rng.Uint32()))
		case 3:
			if len(out) >= schedHeaderLen+2 {
				i := opStart()
				if i+2 <= len(out) {
					out = slices.Delete(out, i, i+2)
				}
			}
		case 4:
			i, j := opStart(), opStart()
			if i > j {
				i, j = j, i
			}
			if j > len(out) {
				j = len(out) &^ 1
			}
			if i < j {
				out = slices.Insert(out, opStart(), slices.Clone(out[i:j])...)
			}
		case 5:
			other := corpus[rng.IntN(len(corpus))]
			if len(other) > schedHeaderLen {
				cut := opStart()
				from := schedHeaderLen + 2*rng.IntN((len(other)-schedHeaderLen)/2+1)
				out = append(out[:min(cut, len(out))], other[min(from, len(other)):]...)
			}
		case 6:
			out[rng.IntN(schedHeaderLen)] = byte(rng.Uint32())
		}
	}
	return out[:min(len(out), schedHeaderLen+2*schedMaxOps)]
}
