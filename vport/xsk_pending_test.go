package vport

import (
	"fmt"
	"testing"
	"time"
)

// TestXSKRxPending checks the rx ring occupancy (and room) that a poll thread reads
// before it naps: datagrams that nobody received yet are counted, a
// Receive takes them off, and a closed port or a queue it does not have
// reports none.
func TestXSKRxPending(t *testing.T) {
	const sent = 10
	tp := newXSKTopo(t, 1)
	p := tp.open(t, XSKConfig{Frames: 64, RingSize: 32})
	if n := p.RxPending(0); n != 0 {
		t.Fatalf("before any traffic: %d pending, want 0", n)
	}
	c := tp.udpIn(t, "10.0.0.1:4200", "10.0.0.2:9")
	for i := range sent {
		if _, err := c.Write([]byte(fmt.Sprintf("pending-%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// The peer's stack may add a frame of its own (none is expected with
	// IPv6 off and the neighbour set): wait for at least the datagrams.
	deadline := time.Now().Add(10 * time.Second)
	for p.RxPending(0) < sent {
		if time.Now().After(deadline) {
			t.Fatalf("%d frames pending after 10s, want %d", p.RxPending(0), sent)
		}
		time.Sleep(5 * time.Millisecond)
	}
	pending := p.RxPending(0)
	if pending > 32 {
		t.Fatalf("%d frames pending on a ring of 32", pending)
	}
	if room := p.RxRoom(0); room != 32-pending {
		t.Errorf("with %d frames pending: room for %d, want %d", pending, room, 32-pending)
	}
	b := newRxBatch()
	got := 0
	for got < pending {
		n, err := p.Receive(0, b.bufs, b.sizes, b.info)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		got += n
	}
	if got < pending {
		t.Errorf("received %d frames, %d were pending", got, pending)
	}
	if n, room := p.RxPending(0), p.RxRoom(0); n != 0 || room != 32 {
		t.Errorf("after receiving them: %d pending, room for %d; want 0 and 32", n, room)
	}
	for _, q := range []int{-1, 1} {
		if n, room := p.RxPending(q), p.RxRoom(q); n != 0 || room != 0 {
			t.Errorf("queue %d: %d pending, room for %d; want 0 and 0", q, n, room)
		}
	}
	if _, err := c.Write([]byte("after-close")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if n, room := p.RxPending(0), p.RxRoom(0); n != 0 || room != 0 {
		t.Errorf("after close: %d pending, room for %d; want 0 and 0", n, room)
	}
}
