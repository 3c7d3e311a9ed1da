package datapath

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestOnEachPMDRunsOnTheThread(t *testing.T) {
	b := newTestBridge(t, Config{PMDs: 2, Idle: IdleSleep})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ran := make([]int64, 2)
	err := b.onEachPMD(ctx, func(p *pmd) { ran[p.id] = goroutineID() })
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range b.pmds {
		if want := p.stall.goid.Load(); ran[i] != want {
			t.Errorf("pmd %d: request ran on goroutine %d, want the thread's %d", i, ran[i], want)
		}
	}
}

func TestOnEachPMDNotStartedRunsInline(t *testing.T) {
	b, err := New(Config{Name: "br0", PMDs: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var n atomic.Int32
	if err := b.onEachPMD(context.Background(), func(*pmd) { n.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 3 {
		t.Errorf("ran %d times, want 3", n.Load())
	}
}

func TestOnEachPMDStopped(t *testing.T) {
	b, err := New(Config{Name: "br0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	err = b.onEachPMD(context.Background(), func(*pmd) { t.Error("ran on a stopped bridge") })
	if !errors.Is(err, ErrStopped) {
		t.Errorf("err = %v, want ErrStopped", err)
	}
	if _, err := b.Megaflows(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("Megaflows: err = %v, want ErrStopped", err)
	}
}

// TestOnEachPMDBusyThread holds a poll thread in one request and checks
// that a second requester gives up at its deadline, and that the queue
// still works once the thread is free.
func TestOnEachPMDBusyThread(t *testing.T) {
	b := newTestBridge(t, Config{Idle: IdleSleep})
	release, started := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- b.onEachPMD(context.Background(), func(*pmd) {
			close(started)
			<-release
		})
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ran := make(chan struct{}, 1)
	err := b.onEachPMD(ctx, func(*pmd) { ran <- struct{}{} })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second request: err = %v, want a deadline error", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The abandoned request still runs; the thread goes on serving.
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the abandoned request never ran")
	}
	if err := b.onEachPMD(context.Background(), func(*pmd) {}); err != nil {
		t.Fatal(err)
	}
}

func TestControlQueueOrder(t *testing.T) {
	var q controlQueue
	var got []int
	for i := range 5 {
		q.push(&controlRequest{fn: func(*pmd) { got = append(got, i) }, done: make(chan struct{})})
	}
	q.serve(nil)
	for i, v := range got {
		if v != i {
			t.Fatalf("served in order %v, want 0..4", got)
		}
	}
	if len(got) != 5 || q.head.Load() != nil {
		t.Fatalf("served %d, queue empty %v", len(got), q.head.Load() == nil)
	}
}

// TestControlQueueIdleNoAllocs: the poll loop's check for control requests
// costs no allocation when none is queued.
func TestControlQueueIdleNoAllocs(t *testing.T) {
	var q controlQueue
	if n := testing.AllocsPerRun(1000, func() { q.serve(nil) }); n != 0 {
		t.Errorf("serve on an empty queue: %v allocations, want 0", n)
	}
}
