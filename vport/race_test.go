//go:build race

package vport

// raceEnabled reports whether the race detector is on: its instrumentation
// of system calls allocates where a normal build does not, and it reserves
// shadow memory as the heap grows, so virtual memory size says nothing about
// UMEM leaks under it.
const raceEnabled = true
