package vport

import (
	"strings"
	"sync"
	"testing"
)

// devOp is one control operation on the device "a" or its peer "b".
type devOp struct {
	on string // "a" or "b"
	do func(*Device) error
}

func up(on string) devOp   { return devOp{on, (*Device).SetUp} }
func down(on string) devOp { return devOp{on, func(d *Device) error { d.Close(); return nil }} }
func carrier(on string, v bool) devOp {
	return devOp{on, func(d *Device) error { d.SetCarrier(v); return nil }}
}
func running(on string, v bool) devOp {
	return devOp{on, func(d *Device) error { d.SetRunning(v); return nil }}
}
func reg(on string, r Registration) devOp {
	return devOp{on, func(d *Device) error { return d.SetRegistration(r) }}
}
func txq(on string, n int) devOp {
	return devOp{on, func(d *Device) error { return d.SetTxQueues(n) }}
}

func TestDeviceTransitions(t *testing.T) {
	tests := []struct {
		name    string
		inKind  DeviceKind
		inPair  bool // a veth pair a/b; otherwise a lone device a
		inOps   []devOp
		wantA   string
		wantB   string // for pairs
		wantErr string // of the last op
	}{
		{name: "new veth", inKind: VethLike, wantA: "registered,down,no-carrier,txq=4"},
		{name: "new dummy", inKind: DummyLike, wantA: "registered,down,carrier,txq=4"},
		{name: "lone veth up", inKind: VethLike, inOps: []devOp{up("a")}, wantA: "registered,running,carrier,txq=4"},
		{name: "lone veth close drops carrier", inKind: VethLike, inOps: []devOp{up("a"), down("a")},
			wantA: "registered,down,no-carrier,txq=4"},
		{name: "dummy up", inKind: DummyLike, inOps: []devOp{up("a")}, wantA: "registered,running,carrier,txq=4"},
		{name: "dummy close keeps carrier", inKind: DummyLike, inOps: []devOp{up("a"), down("a")},
			wantA: "registered,down,carrier,txq=4"},
		{name: "dummy up keeps lost carrier off", inKind: DummyLike, inOps: []devOp{carrier("a", false), up("a")},
			wantA: "registered,running,no-carrier,txq=4"},
		{name: "pair one end up has no carrier", inPair: true, inOps: []devOp{up("a")},
			wantA: "registered,running,no-carrier,txq=4", wantB: "registered,down,no-carrier,txq=2"},
		{name: "pair both up have carrier", inPair: true, inOps: []devOp{up("a"), up("b")},
			wantA: "registered,running,carrier,txq=4", wantB: "registered,running,carrier,txq=2"},
		{name: "pair close drops carrier on both ends", inPair: true, inOps: []devOp{up("a"), up("b"), down("a")},
			wantA: "registered,down,no-carrier,txq=4", wantB: "registered,running,no-carrier,txq=2"},
		{name: "pair peer close drops carrier on both ends", inPair: true, inOps: []devOp{up("a"), up("b"), down("b")},
			wantA: "registered,running,no-carrier,txq=4", wantB: "registered,down,no-carrier,txq=2"},
		{name: "pair back up", inPair: true, inOps: []devOp{up("a"), up("b"), down("a"), up("a")},
			wantA: "registered,running,carrier,txq=4", wantB: "registered,running,carrier,txq=2"},
		{name: "close when down does nothing", inKind: VethLike, inOps: []devOp{carrier("a", true), down("a")},
			wantA: "registered,down,carrier,txq=4"},
		{name: "set running alone", inKind: VethLike, inOps: []devOp{running("a", true)},
			wantA: "registered,running,no-carrier,txq=4"},
		{name: "kernel unregister sequence veth", inKind: VethLike,
			inOps: []devOp{up("a"), down("a"), reg("a", Unregistering), txq("a", 0), reg("a", Unregistered)},
			wantA: "unregistered,down,no-carrier,txq=0"},
		{name: "kernel unregister sequence dummy keeps carrier", inKind: DummyLike,
			inOps: []devOp{up("a"), down("a"), reg("a", Unregistering), txq("a", 0)},
			wantA: "unregistering,down,carrier,txq=0"},
		{name: "tx queues within bounds", inKind: VethLike, inOps: []devOp{txq("a", 1)},
			wantA: "registered,down,no-carrier,txq=1"},
		{name: "tx queues above max", inKind: VethLike, inOps: []devOp{txq("a", 5)},
			wantA: "registered,down,no-carrier,txq=4", wantErr: "5 tx queues, want 0 to 4"},
		{name: "tx queues negative", inKind: VethLike, inOps: []devOp{txq("a", -1)},
			wantA: "registered,down,no-carrier,txq=4", wantErr: "-1 tx queues"},
		{name: "registration cannot skip", inKind: VethLike, inOps: []devOp{reg("a", Unregistered)},
			wantA: "registered,down,no-carrier,txq=4", wantErr: "cannot go from registered to unregistered"},
		{name: "registration cannot go back", inKind: VethLike, inOps: []devOp{reg("a", Unregistering), reg("a", Registered)},
			wantA: "unregistering,down,no-carrier,txq=4", wantErr: "cannot go from unregistering to registered"},
		{name: "registration same is no-op", inKind: VethLike, inOps: []devOp{reg("a", Registered)},
			wantA: "registered,down,no-carrier,txq=4"},
		{name: "cannot set unregistering device up", inKind: DummyLike, inOps: []devOp{reg("a", Unregistering), up("a")},
			wantA: "unregistering,down,carrier,txq=4", wantErr: "device is unregistering: port down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a, b *Device
			var err error
			if tt.inPair {
				a, b, err = NewVethPair("a", "b", 4, 2)
			} else {
				a, err = NewDevice("a", tt.inKind, 4)
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, op := range tt.inOps {
				d := a
				if op.on == "b" {
					d = b
				}
				err = op.do(d)
				if err != nil && i != len(tt.inOps)-1 {
					t.Fatalf("op %d: %v", i, err)
				}
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
			if got := a.Snapshot().String(); got != tt.wantA {
				t.Errorf("a = %s, want %s", got, tt.wantA)
			}
			if b != nil {
				if got := b.Snapshot().String(); got != tt.wantB {
					t.Errorf("b = %s, want %s", got, tt.wantB)
				}
			}
		})
	}
}

func TestDeviceFieldsRoundTrip(t *testing.T) {
	tests := []DeviceFields{
		{},
		{Kind: DummyLike, Registration: Unregistered, Running: true, Carrier: true, TxQueues: MaxQueues},
		{Kind: VethLike, Registration: Unregistering, Carrier: true, TxQueues: 7},
		{Kind: DummyLike, Registration: Registered, Running: true, TxQueues: 1},
	}
	for _, in := range tests {
		if got := in.State().Fields(); got != in {
			t.Errorf("%+v round-trips to %+v", in, got)
		}
	}
	if got := (DeviceFields{TxQueues: MaxQueues + 10}).State().TxQueues(); got != MaxQueues {
		t.Errorf("TxQueues clamps to %d, want %d", got, MaxQueues)
	}
}

func TestNewDeviceErrors(t *testing.T) {
	tests := []struct {
		name    string
		inName  string
		inKind  DeviceKind
		inTx    int
		wantErr string
	}{
		{"empty name", "", VethLike, 1, "empty name"},
		{"bad kind", "x", DeviceKind(7), 1, "unknown kind 7"},
		{"no tx queues", "x", VethLike, 0, "0 tx queues"},
		{"too many tx queues", "x", DummyLike, MaxQueues + 1, "4097 tx queues"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewDevice(tt.inName, tt.inKind, tt.inTx)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDeviceEvents(t *testing.T) {
	a, b, err := NewVethPair("a", "b", 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	record := func(ev Event) {
		if ev.Time.IsZero() || ev.New.Gen() != ev.Old.Gen()+1 {
			t.Errorf("event %v: bad time or generation", ev)
		}
		got = append(got, ev.Device+" "+ev.Change.String()+" "+ev.New.String())
	}
	cancelA := a.Subscribe(record)
	b.Subscribe(record)
	must(t, a.SetUp())
	must(t, b.SetUp())
	a.Close()
	a.SetCarrier(false) // no change: no event
	must(t, a.SetRegistration(Unregistering))
	must(t, a.SetTxQueues(0))
	cancelA()
	must(t, a.SetRegistration(Unregistered)) // not seen: cancelled
	want := []string{
		"a up registered,running,no-carrier,txq=2",
		"a peer registered,running,carrier,txq=2",
		"b up registered,running,carrier,txq=2",
		"b peer registered,running,no-carrier,txq=2",
		"a close registered,down,no-carrier,txq=2",
		"a registration unregistering,down,no-carrier,txq=2",
		"a txqueues unregistering,down,no-carrier,txq=0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSnapshotAtomic checks that readers never see a half-applied change:
// on a lone veth, SetUp and Close change running and carrier together, so
// every snapshot has both or neither; generations never go back.
func TestSnapshotAtomic(t *testing.T) {
	d, err := NewDevice("v", VethLike, 8)
	if err != nil {
		t.Fatal(err)
	}
	const writes = 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for i := range writes {
				if i%2 == 0 {
					must(t, d.SetUp())
				} else {
					d.Close()
				}
			}
		})
	}
	wg.Go(func() {
		for i := range writes {
			must(t, d.SetTxQueues(i%9))
		}
	})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			var last uint32
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := d.Snapshot()
				if s.Running() != s.Carrier() {
					t.Errorf("torn snapshot %s", s)
					return
				}
				if s.Gen() < last {
					t.Errorf("generation went back from %d to %d", last, s.Gen())
					return
				}
				last = s.Gen()
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
}

// TestVethPairRule checks the veth carrier rule after concurrent ups and
// downs of both ends: carrier on both ends exactly when both are up.
func TestVethPairRule(t *testing.T) {
	a, b, err := NewVethPair("a", "b", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i, d := range []*Device{a, b, a, b} {
		wg.Go(func() {
			for j := range 500 {
				if (i+j)%3 == 0 {
					d.Close()
				} else {
					must(t, d.SetUp())
				}
			}
		})
	}
	wg.Wait()
	sa, sb := a.Snapshot(), b.Snapshot()
	both := sa.Running() && sb.Running()
	if sa.Carrier() != both || sb.Carrier() != both {
		t.Errorf("a=%s b=%s: carrier must be on both ends exactly when both are up", sa, sb)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Error(err)
	}
}
