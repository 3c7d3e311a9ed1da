package datapath

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/vport"
)

func TestMegaflowsDump(t *testing.T) {
	b := newTestBridge(t, Config{PMDs: 2, Idle: IdleSleep})
	// Each poll thread reads one rx queue and, the queue being recorded,
	// sends on the tx queue of the same number: no two threads share a
	// ring, whose bounded wait drops frames when a thread holding it is
	// descheduled on a loaded machine.
	in, _ := addMemPort(t, b, vport.MemConfig{Name: "p1", RxQueues: 2, RecordRxQueue: true}, 1)
	out, _ := addMemPort(t, b, vport.MemConfig{Name: "p2", TxQueues: 2}, 2)
	addFlows(t, b,
		"priority=100,udp,in_port=1,nw_dst=10.0.0.0/24,actions=output:2",
		"priority=10,actions=drop",
	)
	frame := buildFrame(t, frameSpec{src: "10.1.0.1", dst: "10.0.0.7", proto: "udp", sport: 1, dport: 2, payloadSz: 20})
	const n = 10
	for i := range n {
		if in.Inject(i%2, [][]byte{frame}) != 1 {
			t.Fatal("inject failed")
		}
	}
	quiesce(t, b, in)
	if got := len(drainAll(out)); got != n {
		t.Fatalf("p2 transmitted %d frames, want %d", got, n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mfs, err := b.Megaflows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var k flow.Key
	var off flow.Offsets
	flow.Extract(&k, &off, frame, 1)
	rule := b.Table().Snapshot().Lookup(&k, nil)
	wc := b.Table().Snapshot().Translate(&k, false).Mask
	var packets, bytes uint64
	for _, e := range mfs {
		if e.Match.Mask != wc || e.Rule != rule {
			t.Errorf("pmd %d megaflow %s: want the translation's mask and rule", e.PMD, flow.FormatODPMatch(&e.Match, nil))
		}
		if e.Stale || e.LastUsed.IsZero() {
			t.Errorf("megaflow stale=%v lastUsed=%v", e.Stale, e.LastUsed)
		}
		packets += e.Packets
		bytes += e.Bytes
	}
	if packets != n || bytes != n*uint64(len(frame)) {
		t.Errorf("megaflows counted %d packets, %d bytes; want %d, %d", packets, bytes, n, n*len(frame))
	}
	if p, _ := rule.Stats(); p != n {
		t.Errorf("rule counted %d packets, want %d", p, n)
	}
	line := mfs[0].String(mfs[0].LastUsed.Add(1500 * time.Millisecond))
	// As Open vSwitch's userspace datapath, the packet's address under
	// the mask, its host part included.
	want := "recirc_id(0),in_port(1),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(dst=10.0.0.7/255.255.255.0,proto=17,frag=no), packets:"
	if !strings.HasPrefix(line, want) || !strings.HasSuffix(line, ", used:1.500s, actions:2") {
		t.Errorf("dump line\n %s\nwant %s... used:1.500s, actions:2", line, want)
	}

	b.Table().Add(&flow.Flow{Priority: 200, Actions: []flow.Action{{Type: flow.ActOutput, Port: 2}}})
	mfs, err = b.Megaflows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range mfs {
		if !e.Stale {
			t.Errorf("after a table change the megaflow is not stale")
		}
	}
	if err := b.FlushMegaflows(ctx); err != nil {
		t.Fatal(err)
	}
	if mfs, err = b.Megaflows(ctx); err != nil || len(mfs) != 0 {
		t.Errorf("after a flush: %d megaflows, %v", len(mfs), err)
	}
}
