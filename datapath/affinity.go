package datapath

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Poll threads can be pinned to CPUs, as Open vSwitch pins each PMD thread
// to a core of other_config:pmd-cpu-mask: Config.CPUs for a bridge's own
// threads, Threads.SetCPUs for a pool. A pinned thread is locked to its
// OS thread, whose affinity it sets itself, and which ends with its
// goroutine (unpinned first), so that no other goroutine ever runs
// pinned.

// allowedCPUs are the CPUs the process may run on, as it started: an
// unpinned poll thread runs on these.
var allowedCPUs = func() unix.CPUSet {
	var s unix.CPUSet
	if unix.SchedGetaffinity(0, &s) != nil || s.Count() == 0 {
		s.Zero()
		for i := range runtime.NumCPU() {
			s.Set(i)
		}
	}
	return s
}()

// AllowedCPUs returns, in ascending order, the CPUs the process may run
// on, as it started: the CPUs a poll thread can be pinned to.
func AllowedCPUs() []int {
	var cpus []int
	for i := range len(allowedCPUs) * 64 {
		if allowedCPUs.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

// checkCPUs checks that the process may run on each of cpus.
func checkCPUs(cpus []int) error {
	for _, c := range cpus {
		if c < 0 || !allowedCPUs.IsSet(c) {
			return fmt.Errorf("CPU %d is not one the process may run on (%v)", c, AllowedCPUs())
		}
	}
	return nil
}

// cpuFor is the CPU of thread i of threads pinned to cpus: cpus[i] modulo
// their number, -1 (any) when there are none.
func cpuFor(cpus []int, i int) int32 {
	if len(cpus) == 0 {
		return -1
	}
	return int32(cpus[i%len(cpus)])
}

// SetCPUs pins the pool's threads to cpus, thread i to cpus[i] (modulo
// their number); with none, the threads run on any CPU the process may
// use. A running thread moves before its next round of batches (a
// sleeping one is woken for it). If the process may not run on one of
// cpus, it returns an error and changes nothing.
func (t *Threads) SetCPUs(cpus []int) error {
	if err := checkCPUs(cpus); err != nil {
		return err
	}
	for i, th := range t.threads {
		th.setCPU(cpuFor(cpus, i))
	}
	return nil
}

// setCPU asks the thread to run on cpu (-1: any).
func (t *thread) setCPU(cpu int32) {
	if t.cpu.Swap(cpu) == cpu {
		return
	}
	t.gen.Add(1) // the next round looks (refresh)
	for _, m := range *t.members.Load() {
		m.rd.waker.Wake()
	}
}

// pin moves the thread's OS thread to the CPU it is asked to run on, if
// it is not there. It runs on the thread's goroutine. If the kernel
// refuses (the CPU went offline), the thread stays where it was, and
// PMDStats.CPU says where that is.
func (t *thread) pin() {
	want := t.cpu.Load()
	if want == t.pinned.Load() {
		return
	}
	t.lockOS()
	if setAffinity(want) {
		t.pinned.Store(want)
	}
}

// unpin lets the thread's OS thread run on any CPU again, as its
// goroutine ends. The OS thread ends with the goroutine, unless it is the
// process's main thread, which the runtime parks for good instead.
func (t *thread) unpin() {
	if t.pinned.Load() < 0 {
		return
	}
	setAffinity(-1) // the process may always run where it started
	t.pinned.Store(-1)
}

// setAffinity lets the calling OS thread run on cpu alone, or on any CPU
// the process may use when cpu is -1. It reports whether the kernel took
// it.
func setAffinity(cpu int32) bool {
	set := allowedCPUs
	if cpu >= 0 {
		set.Zero()
		set.Set(int(cpu))
	}
	return unix.SchedSetaffinity(0, &set) == nil
}

// lockOS locks the thread's goroutine to its OS thread, which then ends
// with it (it never unlocks).
func (t *thread) lockOS() {
	if !t.locked {
		runtime.LockOSThread()
		t.locked = true
	}
}
