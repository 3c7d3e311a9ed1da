//go:build race

package vport

// raceEnabled reports whether the race detector is on: its instrumentation
// of system calls allocates where a normal build does not.
const raceEnabled = true
