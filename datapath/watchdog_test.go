package datapath

import (
	"bytes"
	"errors"
	"log/slog"
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

// TestWatchdogCountsOnlyTimeItSaw drives the watchdog's ticks by hand. A
// tick that comes long after the previous one (the watchdog, and with it
// the process, waited for a CPU) adds at most two periods to a batch's
// stuck time, so one late tick never turns an open batch into a lockup;
// ticks on time still reach the threshold, in the number of periods it
// takes, and a batch that ends starts the count again.
func TestWatchdogCountsOnlyTimeItSaw(t *testing.T) {
	b, err := New(Config{Policy: Guarded, Watchdog: WatchdogConfig{Disabled: true, Log: discardLog}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const threshold, period = 800 * time.Millisecond, 100 * time.Millisecond
	w := newWatchdog(WatchdogConfig{Threshold: threshold, Log: discardLog}, b.pmds, b.Policy)
	p := b.pmds[0]
	now := time.Unix(1000, 0)
	o := w.observer(period, now)
	step := func(d time.Duration) uint64 {
		now = now.Add(d)
		o.tick(now)
		_, n := w.Lockups()
		return n
	}

	p.rd.enter()
	step(period) // the batch is seen open
	if n := step(10 * time.Second); n != 0 {
		t.Fatalf("one tick 10s late: %d lockups, want 0", n)
	}
	// 2 periods so far; 6 more on time reach the threshold, not 5.
	for i := 0; i < 5; i++ {
		if n := step(period); n != 0 {
			t.Fatalf("after %d periods on time: %d lockups, want 0", 3+i, n)
		}
	}
	if n := step(period); n != 1 {
		t.Fatalf("at the threshold: %d lockups, want 1", n)
	}
	if ls, _ := w.Lockups(); ls[0].Stuck != threshold || ls[0].Spinning {
		t.Errorf("reported %s, stuck %v; want a stall of %v", ls[0], ls[0].Stuck, threshold)
	}
	if n := step(period); n != 1 {
		t.Errorf("the same stall reported again: %d lockups", n)
	}

	// A new batch starts from nothing.
	p.rd.leave()
	step(period)
	p.rd.enter()
	step(period)
	for i := 0; i < 7; i++ {
		if n := step(period); n != 1 {
			t.Fatalf("new batch after %d periods: %d lockups, want 1", i+1, n)
		}
	}
	if n := step(period); n != 2 {
		t.Errorf("new batch at the threshold: %d lockups, want 2", n)
	}
	p.rd.leave()
}

// TestUnwatchedSpinRefused checks that a policy that can spin is refused,
// at creation and on a policy change, when nothing could end a spin (the
// watchdog disabled and no spin budget), and that a bridge whose spin the
// budget ends closes while a packet spins.
func TestUnwatchedSpinRefused(t *testing.T) {
	for _, pol := range []Policy{Legacy, Carrier, Upstream} {
		_, err := New(Config{Policy: pol, Watchdog: WatchdogConfig{Disabled: true}})
		if !errors.Is(err, ErrUnwatchedSpin) || !strings.Contains(err.Error(), "policy "+pol.String()) {
			t.Errorf("%s without a watchdog: err = %v, want ErrUnwatchedSpin naming the policy", pol, err)
		}
	}
	b := newTestBridge(t, Config{Watchdog: WatchdogConfig{Disabled: true, Log: discardLog}})
	if err := b.SetPolicy(Legacy); !errors.Is(err, ErrUnwatchedSpin) {
		t.Errorf("SetPolicy(legacy) without a watchdog: err = %v, want ErrUnwatchedSpin", err)
	}
	if got := b.Policy(); got != Guarded {
		t.Errorf("policy after a refused change: %s", got)
	}

	// The spin budget alone ends a spin: Close does not block.
	var logged bytes.Buffer
	b2, err := New(Config{Name: "br1", Policy: Legacy, Log: slog.New(slog.NewTextHandler(&logged, nil)),
		Watchdog: WatchdogConfig{Disabled: true, SpinBudget: MinSpinBudget}})
	if err != nil {
		t.Fatal(err)
	}
	src, _ := addMemPort(t, b2, vport.MemConfig{Name: "src", RecordRxQueue: true}, 1)
	dst, _ := addMemPort(t, b2, vport.MemConfig{Name: "dst", TxQueues: 2}, 2)
	addFlows(t, b2, "in_port=1,actions=output:2")
	if err := dst.Device().SetTxQueues(0); err != nil {
		t.Fatal(err)
	}
	if err := b2.Start(); err != nil {
		t.Fatal(err)
	}
	src.Inject(0, [][]byte{buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 18})})
	closed := make(chan error, 1)
	go func() {
		quiesce(t, b2, src)
		closed <- b2.Close()
	}()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close blocked for 30s behind a spin")
	}
	if n := b2.SpinningLockups(); n != 1 {
		t.Errorf("%d spinning lockups, want 1", n)
	}
	// The bridge's logger, not the global one, got the report.
	if !strings.Contains(logged.String(), "BUG: soft lockup - pmd#0") {
		t.Errorf("the bridge's log lacks the lockup report:\n%s", logged.String())
	}
}

// TestZeroQueueWarningLogsToBridge checks that the once-only warning of a
// transmit to a device without tx queues goes to the bridge's logger, once
// per bridge.
func TestZeroQueueWarningLogsToBridge(t *testing.T) {
	for _, name := range []string{"br0", "br1"} {
		var logged bytes.Buffer
		b := newTestBridge(t, Config{Name: name, Policy: Upstream, Log: slog.New(slog.NewTextHandler(&logged, nil)), Watchdog: WatchdogConfig{Log: discardLog}})
		src, _ := addMemPort(t, b, vport.MemConfig{Name: "src"}, 1)
		dst, _ := addMemPort(t, b, vport.MemConfig{Name: "dst", TxQueues: 2}, 2)
		addFlows(t, b, "in_port=1,actions=output:2")
		if err := dst.Device().SetTxQueues(0); err != nil {
			t.Fatal(err)
		}
		frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 18})
		src.Inject(0, [][]byte{frame, frame})
		quiesce(t, b, src)
		if n := strings.Count(logged.String(), "skb_tx_hash: qcount == 0"); n != 1 {
			t.Errorf("%s: %d warnings in the bridge's log, want 1:\n%s", name, n, logged.String())
		}
	}
}
