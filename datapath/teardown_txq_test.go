package datapath

import (
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/vport"
)

// A transmit never goes out on a tx queue at or above the device's tx
// queue count under Guarded; the kernel-like policies do, as the kernel
// does, and PortStats.TxQueueOver counts it. The chaos fuzzer reads the
// counter from dump-ports after every step.

// newHookedBridge returns a started bridge whose output hook is hook, set
// before its poll threads start.
func newHookedBridge(t *testing.T, cfg Config, hook func(tbl *portTable, dst *Port, st vport.DeviceState, q int)) *Bridge {
	t.Helper()
	cfg.Name = "br0"
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.outputHook = hook
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close bridge: %v", err)
		}
	})
	return b
}

// TestTxQueueOverLegacyNoQueues: a packet without a recorded rx queue,
// sent by Legacy to a device without tx queues, takes reciprocal_scale(hash,
// 0) = queue 0, as in the kernel: it goes out, on a queue at the count,
// and is counted.
func TestTxQueueOverLegacyNoQueues(t *testing.T) {
	b := newTestBridge(t, Config{Policy: Legacy, Watchdog: WatchdogConfig{Threshold: 10 * time.Second}})
	src, _ := addMemPort(t, b, vport.MemConfig{Name: "src"}, 1)
	dst, dp := addMemPort(t, b, vport.MemConfig{Name: "dst", TxQueues: 2}, 2)
	addFlows(t, b, "in_port=1,actions=output:2")
	frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 18})

	// With queues: no transmit over the count.
	src.Inject(0, [][]byte{frame})
	quiesce(t, b, src)
	if s := dp.Stats(); s.TxPackets != 1 || s.TxQueueOver != 0 {
		t.Fatalf("with 2 tx queues: tx %d, over the count %d; want 1, 0", s.TxPackets, s.TxQueueOver)
	}
	if err := dst.Device().SetTxQueues(0); err != nil {
		t.Fatal(err)
	}
	src.Inject(0, [][]byte{frame, frame})
	quiesce(t, b, src)
	if s := dp.Stats(); s.TxPackets != 3 || s.TxQueueOver != 2 {
		t.Errorf("with 0 tx queues: tx %d, over the count %d; want 3, 2", s.TxPackets, s.TxQueueOver)
	}
	if got := len(drainAll(dst)); got != 3 {
		t.Errorf("%d frames out, want 3", got)
	}
	checkAccounting(t, b)
}

// TestTxQueueOverAfterPick: the tx queue count drops after output picked
// the queue and before the batch is transmitted (the hook lowers it, as a
// link event applied meanwhile would). Legacy sends on the picked queue and
// counts it; Guarded drops the copy as no-tx-queues and counts nothing.
func TestTxQueueOverAfterPick(t *testing.T) {
	for _, pol := range []Policy{Legacy, Guarded} {
		t.Run(pol.String(), func(t *testing.T) {
			var dstDev *vport.Device
			picked := -1
			hook := func(_ *portTable, dst *Port, st vport.DeviceState, q int) {
				if dst.Name != "dst" {
					return
				}
				picked = q
				if err := dstDev.SetTxQueues(q); err != nil {
					t.Errorf("set tx queues: %v", err)
				}
			}
			b := newHookedBridge(t, Config{Policy: pol, Watchdog: WatchdogConfig{Threshold: 10 * time.Second}}, hook)
			src, sp := addMemPort(t, b, vport.MemConfig{Name: "src", RxQueues: 2, RecordRxQueue: true}, 1)
			dst, dp := addMemPort(t, b, vport.MemConfig{Name: "dst", TxQueues: 2}, 2)
			dstDev = dst.Device()
			addFlows(t, b, "in_port=1,actions=output:2")
			frame := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 18})

			// Received on rx queue 1: queue 1 of 2 is picked, then the
			// count drops to 1.
			src.Inject(1, [][]byte{frame})
			quiesce(t, b, src)
			if picked != 1 {
				t.Fatalf("picked tx queue %d, want 1", picked)
			}
			s, out := dp.Stats(), len(drainAll(dst))
			if pol == Guarded {
				if s.TxQueueOver != 0 || out != 0 || s.TxDrops[DropNoTxQueues] != 1 || sp.Stats().Drops[DropNoTxQueues] != 1 {
					t.Errorf("over the count %d, %d frames out, no-tx-queues drops %d (on src %d); want 0, 0, 1, 1",
						s.TxQueueOver, out, s.TxDrops[DropNoTxQueues], sp.Stats().Drops[DropNoTxQueues])
				}
			} else if s.TxQueueOver != 1 || out != 1 {
				t.Errorf("over the count %d, %d frames out; want 1, 1", s.TxQueueOver, out)
			}
			checkAccounting(t, b)
		})
	}
}
