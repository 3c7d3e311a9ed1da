package datapath

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/ovsxdp/ovsxdp/vport"
)

// This file models what the kernel's unregister_netdevice_many does to a
// device that is an OVS port, step by step and in the kernel's order, on the
// port's device state and on the bridge. The steps are those during which a
// kernel datapath can still transmit to the device: each is observable
// (timestamped events) and may be delayed, so that the window between the
// device losing its tx queues and the port's deletion can be measured and
// widened, and each can be run on its own, in any order, by a model that
// explores the orders in which a userspace datapath may learn of them.

// UnregisterStep is one step of the unregister sequence.
type UnregisterStep uint8

// The steps, in the kernel's order.
const (
	// StepClose is dev_close: running is cleared; a veth-like device also
	// drops carrier on both ends, a dummy-like one keeps it.
	StepClose UnregisterStep = iota
	// StepUnregistering sets the registration state to unregistering.
	StepUnregistering
	// StepSync is synchronize_net(): a grace period over the poll threads.
	StepSync
	// StepNotify is the NETDEV_UNREGISTER notification. The datapath
	// detaches the port's rx (its rx queues are taken from the poll
	// threads) but defers deleting the port, as OVS's dp_device_event
	// leaves the vport to a work queue.
	StepNotify
	// StepTxQueues sets the number of tx queues in use to 0, as
	// remove_queue_kobjects does. From here until StepDelete the port is
	// still published with no tx queues: the window of the race.
	StepTxQueues
	// StepSyncAgain is the second synchronize_net().
	StepSyncAgain
	// StepDelete is the deferred work: the port is removed from the bridge
	// (after a grace period, as RemovePort) and closed, and the device,
	// its last user gone, becomes unregistered.
	StepDelete
	// NumUnregisterSteps is the number of steps.
	NumUnregisterSteps
)

var stepNames = [NumUnregisterSteps]string{
	StepClose:         "close",
	StepUnregistering: "unregistering",
	StepSync:          "synchronize",
	StepNotify:        "notify",
	StepTxQueues:      "txqueues-0",
	StepSyncAgain:     "synchronize-again",
	StepDelete:        "delete-port",
}

// String names the step with its number in the sequence, as "5:txqueues-0".
func (s UnregisterStep) String() string {
	if s < NumUnregisterSteps {
		return strconv.Itoa(int(s)+1) + ":" + stepNames[s]
	}
	return "step(" + strconv.Itoa(int(s)) + ")"
}

// ErrStepDone is returned when a teardown is asked to run a step it has
// already run.
var ErrStepDone = errors.New("unregister step already done")

// UnregisterConfig sets an unregister sequence's timing and observer.
type UnregisterConfig struct {
	// Delays[s] is how long Unregister waits before step s, standing for
	// the time the kernel spends elsewhere in between. Delays[StepDelete]
	// is the latency of the work queue that runs the deferred deletion;
	// with Delays[StepSyncAgain] and the grace period it makes the window
	// between StepTxQueues and StepDelete.
	// Delays shorter than a millisecond are waited for by polling the
	// clock (yielding the CPU in between), for precision.
	Delays [NumUnregisterSteps]time.Duration
	// OnEvent, if set, is called with the record of each step once the
	// step is done, on the goroutine that ran it.
	OnEvent func(TeardownEvent)
}

// TeardownEvent records one step of an unregister sequence.
type TeardownEvent struct {
	Step       UnregisterStep
	Start, End time.Time
	// State is the device's state when the step was done.
	State vport.DeviceState
	// Note says what the step found when it could not act as usual, for
	// example "port already removed" ("" otherwise).
	Note string
	// Err is the step's error, if it failed.
	Err error
}

func (e TeardownEvent) String() string {
	s := fmt.Sprintf("%s %s (%v): %s", e.Start.Format("15:04:05.000000"), e.Step, e.End.Sub(e.Start), e.State)
	if e.Note != "" {
		s += " [" + e.Note + "]"
	}
	if e.Err != nil {
		s += " error: " + e.Err.Error()
	}
	return s
}

// Teardown is one port's unregister sequence. Unregister runs it whole;
// BeginUnregister returns it unstarted, for a caller that runs the steps
// itself (Step, in order, or Do, in any order). A Teardown is driven by one
// goroutine at a time.
type Teardown struct {
	// Port is the name of the port torn down.
	Port string
	// Events are the steps done so far, in the order they ran.
	Events []TeardownEvent
	// Stats are the port's final counters, once StepDelete has run.
	Stats PortStats

	b    *Bridge
	p    *Port
	cfg  UnregisterConfig
	done [NumUnregisterSteps]bool
}

// ErrMirroredDevice is returned when the simulated unregister sequence is
// asked to run on a port whose device mirrors a real link: the kernel owns
// that link's life, and the link monitor applies its deletion.
var ErrMirroredDevice = errors.New("device mirrors a real link")

// BeginUnregister returns the unregister sequence of the port named name,
// with no step run yet. It refuses a port on a real link
// (ErrMirroredDevice): delete the link instead, and the bridge removes the
// port when the kernel reports it gone.
func (b *Bridge) BeginUnregister(name string, cfg UnregisterConfig) (*Teardown, error) {
	p := b.ports.Load().byName(name)
	if p == nil {
		return nil, fmt.Errorf("unregister %s from %s: %w", name, b.cfg.Name, ErrNoPort)
	}
	if p.dev.Mirrored() {
		return nil, fmt.Errorf("unregister %s from %s: %w (delete the link, as ip link del %s does)", name, b.cfg.Name, ErrMirroredDevice, name)
	}
	return &Teardown{Port: name, b: b, p: p, cfg: cfg}, nil
}

// Unregister runs the unregister sequence of the port named name, every
// step in the kernel's order after its delay, and returns the record. On
// an error (ctx ended during a delay or a grace period) it returns the
// record so far with the error.
func (b *Bridge) Unregister(ctx context.Context, name string, cfg UnregisterConfig) (*Teardown, error) {
	t, err := b.BeginUnregister(name, cfg)
	if err != nil {
		return nil, err
	}
	for {
		s, ok := t.Next()
		if !ok {
			return t, nil
		}
		if err := sleepCtx(ctx, cfg.Delays[s]); err != nil {
			return t, fmt.Errorf("unregister %s: before %s: %w", name, s, err)
		}
		if err := t.Step(ctx); err != nil {
			return t, err
		}
	}
}

// Next returns the first step not yet done, or false when all are.
func (t *Teardown) Next() (UnregisterStep, bool) {
	for s := range NumUnregisterSteps {
		if !t.done[s] {
			return s, true
		}
	}
	return 0, false
}

// Done reports whether every step has run.
func (t *Teardown) Done() bool {
	_, more := t.Next()
	return !more
}

// Ran reports whether step s has run.
func (t *Teardown) Ran(s UnregisterStep) bool { return s < NumUnregisterSteps && t.done[s] }

// Step runs the next step in the kernel's order (without its delay).
func (t *Teardown) Step(ctx context.Context) error {
	s, ok := t.Next()
	if !ok {
		return fmt.Errorf("unregister %s: %w", t.Port, ErrStepDone)
	}
	return t.Do(ctx, s)
}

// Do runs step s now, whatever has run before: a model of a datapath that
// learns of the steps out of order uses it. Each step runs once; a step
// whose object is already gone (the port removed by other means) is
// recorded with a note and does nothing.
func (t *Teardown) Do(ctx context.Context, s UnregisterStep) error {
	if s >= NumUnregisterSteps {
		return fmt.Errorf("unregister %s: %v: no such step", t.Port, s)
	}
	if t.done[s] {
		return fmt.Errorf("unregister %s: %v: %w", t.Port, s, ErrStepDone)
	}
	t.done[s] = true
	ev := TeardownEvent{Step: s, Start: time.Now()}
	ev.Note, ev.Err = t.run(ctx, s)
	ev.End = time.Now()
	ev.State = t.p.dev.Snapshot()
	t.Events = append(t.Events, ev)
	if t.cfg.OnEvent != nil {
		t.cfg.OnEvent(ev)
	}
	if ev.Err != nil {
		return fmt.Errorf("unregister %s: %v: %w", t.Port, s, ev.Err)
	}
	return nil
}

func (t *Teardown) run(ctx context.Context, s UnregisterStep) (note string, err error) {
	dev := t.p.dev
	switch s {
	case StepClose:
		dev.Close()
	case StepUnregistering:
		return "", advanceRegistration(dev, vport.Unregistering)
	case StepSync, StepSyncAgain:
		return "", t.b.rcu.Synchronize(ctx)
	case StepNotify:
		return t.detachRx(), nil
	case StepTxQueues:
		return "", dev.SetTxQueues(0)
	case StepDelete:
		note, err = t.deletePort(ctx)
		if err != nil {
			return note, err
		}
		return note, advanceRegistration(dev, vport.Unregistered)
	}
	return "", nil
}

// detachRx takes the port's rx queues from the poll threads. The port stays
// in the table, so output still reaches it.
func (t *Teardown) detachRx() (note string) {
	b := t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	tbl := b.ports.Load()
	if tbl.lookup(t.p.OFPort) != t.p {
		return "port already removed"
	}
	t.p.rxDetached = true
	b.assignRxQueuesLocked(tbl)
	return ""
}

// deletePort is the deferred deletion: RemovePort of this very port (not of
// a later port that took its name).
func (t *Teardown) deletePort(ctx context.Context) (note string, err error) {
	b := t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ports.Load().lookup(t.p.OFPort) != t.p {
		t.Stats = t.p.Stats()
		return "port already removed", nil
	}
	st, err := b.removeLocked(ctx, t.p)
	t.Stats = t.p.Stats()
	if err != nil {
		return "", err
	}
	t.Stats = st
	return "", nil
}

// Window is the time from the end of StepTxQueues to the start of
// StepDelete: how long the port was published with no tx queues. ok is
// false unless both steps ran, in that order.
func (t *Teardown) Window() (d time.Duration, ok bool) {
	var end, start time.Time
	for _, e := range t.Events {
		switch e.Step {
		case StepTxQueues:
			end = e.End
		case StepDelete:
			start = e.Start
		}
	}
	if end.IsZero() || start.IsZero() || start.Before(end) {
		return 0, false
	}
	return start.Sub(end), true
}

// advanceRegistration moves dev's registration state forward, one state at
// a time, until it is at least r.
func advanceRegistration(dev *vport.Device, r vport.Registration) error {
	for cur := dev.Snapshot().Registration(); cur < r; cur++ {
		if err := dev.SetRegistration(cur + 1); err != nil {
			return err
		}
	}
	return nil
}

// preciseDelay is the longest delay that sleepCtx waits for by polling the
// clock: Go's timers may round a shorter sleep up to about a millisecond,
// which would hide the window widths that matter.
const preciseDelay = time.Millisecond

// sleepCtx waits for d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	if d < preciseDelay {
		for end := time.Now().Add(d); time.Now().Before(end); runtime.Gosched() {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
