//go:build race

package flow

// raceEnabled reports whether the race detector is on; it slows the
// packet path about tenfold, so long tests run fewer cycles under it.
const raceEnabled = true
