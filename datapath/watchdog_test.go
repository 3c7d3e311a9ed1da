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
