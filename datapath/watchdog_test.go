package datapath

import (
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/vport"
)

// TestWatchdogTellsStallsFromSpins holds a poll thread's batch open without
// spinning, as a busy machine does when it deschedules the thread: the
// watchdog reports a lockup that is not spinning, leaves the thread alone
// (releasing it would turn its next terminating queue reduction into a
// lockup drop) and does not count it as spinning. When the same batch then
// spins, the watchdog reports that too, releases the thread and counts it.
func TestWatchdogTellsStallsFromSpins(t *testing.T) {
	b, err := New(Config{Policy: Legacy, Watchdog: WatchdogConfig{Disabled: true, SpinBudget: MinSpinBudget, Log: discardLog}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, port := addMemPort(t, b, vport.MemConfig{Name: "dst"}, 1)
	p := b.pmds[0]
	w := newWatchdog(WatchdogConfig{Threshold: 20 * time.Millisecond, Log: discardLog}, b.pmds, b.Policy)
	w.start()
	defer w.close()

	waitLockups := func(n uint64) []Lockup {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			if ls, got := w.Lockups(); got >= n {
				return ls
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d lockups never reported", n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	p.rd.enter() // a batch that the machine holds
	l := waitLockups(1)[0]
	if l.Spinning || l.Port != "" || !strings.HasSuffix(l.String(), "(not spinning)") {
		t.Errorf("stall reported as %s (spinning %v)", l, l.Spinning)
	}
	if w.SpinningLockups() != 0 {
		t.Errorf("a stall counted as %d spinning lockups", w.SpinningLockups())
	}
	if p.stall.released.Load() {
		t.Error("the watchdog released a thread that was not spinning")
	}
	// A terminating reduction in the same batch is not cut short.
	if q, ok := kernelQueueLoop(5, 2, &p.stall); !ok || q != 1 {
		t.Errorf("queue loop after a stall: queue %d, ok %v; want 1, true", q, ok)
	}

	// The same batch now spins: reported once more, and released.
	p.stall.cur = port
	p.stall.noteSpin(3, 0)
	ls := waitLockups(2)
	if l := ls[1]; !l.Spinning || l.Port != "dst" {
		t.Errorf("spin reported as %s (spinning %v)", l, l.Spinning)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !p.stall.released.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the spinning thread was not released")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := w.SpinningLockups(); n != 1 {
		t.Errorf("%d spinning lockups, want 1", n)
	}
	p.rd.leave()
	p.stall.clear()
}
