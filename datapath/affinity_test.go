package datapath

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/test/testenv"
	"github.com/ovsxdp/ovsxdp/vport"
)

// tasksOn counts the process's threads that the kernel lets run on cpu
// alone.
func tasksOn(t *testing.T, cpu int) int {
	t.Helper()
	pinned, err := testenv.PinnedThreads(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range pinned {
		if c == cpu {
			n++
		}
	}
	return n
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !eventually(10*time.Second, cond) {
		pinned, _ := testenv.PinnedThreads(os.Getpid())
		t.Fatalf("after 10s: %s (the CPUs of the threads pinned to one: %v)", what, pinned)
	}
}

// pinRig is a bridge with two memory ports and a rule from the first to
// the second.
type pinRig struct {
	b    *Bridge
	a, z *vport.MemPort
}

func newPinRig(t *testing.T, cfg Config) *pinRig {
	t.Helper()
	r := &pinRig{b: newTestBridge(t, cfg)}
	r.a, _ = addMemPort(t, r.b, vport.MemConfig{Name: "a"}, 1)
	r.z, _ = addMemPort(t, r.b, vport.MemConfig{Name: "z"}, 2)
	addFlows(t, r.b, "in_port=1,actions=output:2")
	return r
}

// waitCPU waits until the bridge's first poll thread says it runs on
// cpu (-1: any).
func (r *pinRig) waitCPU(t *testing.T, cpu int) {
	t.Helper()
	waitFor(t, "poll thread on CPU "+strconv.Itoa(cpu), func() bool { return r.b.PMDStats()[0].CPU == cpu })
}

// forwards checks that a frame sent into a comes out of z.
func (r *pinRig) forwards(t *testing.T) {
	t.Helper()
	f := buildFrame(t, frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: "udp", sport: 1, dport: 2, payloadSz: 20})
	if r.a.Inject(0, [][]byte{f}) != 1 {
		t.Fatal("inject refused")
	}
	quiesce(t, r.b, r.a)
	if got := drainAll(r.z); len(got) != 1 {
		t.Fatalf("got %d frames out, want 1", len(got))
	}
	checkAccounting(t, r.b)
}

// TestPinnedPollThread: a bridge's own poll thread, with each idle
// strategy, runs on the CPU Config.CPUs names, on an OS thread that only
// it uses (exactly one of the process's threads is pinned there), and
// forwards; once the bridge is closed no thread is left pinned (its OS
// thread ends with it, or, if it is the main thread, which the runtime
// keeps, is unpinned first), so that no other goroutine ever runs pinned.
func TestPinnedPollThread(t *testing.T) {
	cpus := AllowedCPUs()
	c := cpus[len(cpus)-1]
	several := len(cpus) > 1 // with one CPU every thread runs on it alone
	for _, idle := range []IdleStrategy{IdleAdaptive, IdleSpin, IdleSleep} {
		t.Run(idle.String(), func(t *testing.T) {
			r := newPinRig(t, Config{Idle: idle, CPUs: []int{c}})
			r.waitCPU(t, c)
			if n := tasksOn(t, c); several && n != 1 {
				t.Fatalf("%d threads pinned to CPU %d, want the poll thread's alone", n, c)
			}
			r.forwards(t)
			if err := r.b.Close(); err != nil {
				t.Fatal(err)
			}
			if several {
				waitFor(t, "no thread left pinned", func() bool { return tasksOn(t, c) == 0 })
			}
		})
	}
}

// TestThreadsSetCPUs: a pool's running thread moves when SetCPUs pins it,
// pins it elsewhere, and lets it run anywhere again; a CPU the process may
// not use is refused and changes nothing.
func TestThreadsSetCPUs(t *testing.T) {
	cpus := AllowedCPUs()
	first, last := cpus[0], cpus[len(cpus)-1]
	several := len(cpus) > 1
	pool := NewThreads(1)
	r := newPinRig(t, Config{Threads: pool})
	r.forwards(t)
	if cpu := r.b.PMDStats()[0].CPU; cpu != -1 {
		t.Fatalf("unpinned thread says CPU %d, want -1", cpu)
	}
	for _, bad := range [][]int{{-1}, {first, 1 << 20}} {
		if err := pool.SetCPUs(bad); err == nil {
			t.Errorf("SetCPUs(%v) accepted", bad)
		}
	}
	if err := pool.SetCPUs([]int{first}); err != nil {
		t.Fatal(err)
	}
	r.waitCPU(t, first)
	if n := tasksOn(t, first); several && n != 1 {
		t.Fatalf("%d threads pinned to CPU %d, want 1", n, first)
	}
	r.forwards(t)
	if err := pool.SetCPUs([]int{last}); err != nil {
		t.Fatal(err)
	}
	r.waitCPU(t, last)
	if several {
		if n, m := tasksOn(t, first), tasksOn(t, last); n != 0 || m != 1 {
			t.Fatalf("threads pinned to CPU %d: %d, to CPU %d: %d; want 0 and 1", first, n, last, m)
		}
	}
	r.forwards(t)
	if err := pool.SetCPUs(nil); err != nil {
		t.Fatal(err)
	}
	r.waitCPU(t, -1)
	if n := tasksOn(t, last); several && n != 0 {
		t.Fatalf("%d threads still pinned to CPU %d", n, last)
	}
	r.forwards(t)
}

// TestNewRefusesCPUs: New refuses CPUs the process may not use, and CPUs
// together with a pool (whose threads SetCPUs pins).
func TestNewRefusesCPUs(t *testing.T) {
	for _, cfg := range []Config{
		{Name: "neg", CPUs: []int{-1}},
		{Name: "far", CPUs: []int{1 << 20}},
		{Name: "pool", CPUs: []int{AllowedCPUs()[0]}, Threads: NewThreads(1)},
	} {
		if b, err := New(cfg); err == nil {
			b.Close()
			t.Errorf("New(%s, CPUs %v) accepted", cfg.Name, cfg.CPUs)
		}
	}
}
