package datapath

import (
	"testing"
	"time"
)

func TestAdaptive(t *testing.T) {
	const us = time.Microsecond
	for _, c := range []struct {
		name           string
		n              int
		nap, gap, busy time.Duration
		act            idleAction
		next           time.Duration
	}{
		{"full half batch", napThreshold, 20 * us, 1 * us, 1 * us, idlePoll, 0},
		{"full batch while napping", 32, maxNap, 60 * us, 60 * us, idlePoll, 0},
		{"lone packet after a quiet spell", 1, 0, 10 * time.Millisecond, 10 * time.Millisecond, idlePoll, 0},
		{"light load starts napping", 2, 0, 5 * us, 5 * us, idleNap, napStep},
		{"light load at the gap", 1, 0, loadGap, loadGap, idleNap, napStep},
		{"light load goes on napping after a long nap", 3, 30 * us, 80 * us, 80 * us, idleNap, 30*us + napStep},
		{"naps stop growing", 3, maxNap, 90 * us, 90 * us, idleNap, maxNap},
		{"empty poll inside the spin window", 0, 0, 10 * us, 10 * us, idlePoll, 0},
		{"empty poll after a nap", 0, 40 * us, 10 * us, 45 * us, idlePoll, 0},
		{"empty poll past the spin window", 0, 0, spinWindow, spinWindow, idleSleep, 0},
	} {
		act, next := adaptive(c.n, c.nap, c.gap, c.busy)
		if act != c.act || next != c.next {
			t.Errorf("%s: adaptive(%d, %v, %v, %v) = %d, %v; want %d, %v", c.name, c.n, c.nap, c.gap, c.busy, act, next, c.act, c.next)
		}
	}
}

// TestAdaptiveSequences drives the decision through what a thread sees
// under two kinds of traffic: a steady stream of a few packets per poll
// makes the naps grow to maxNap and stay there, and a ping (a request
// after a quiet spell, its reply in the next poll) is never followed by
// a nap before its reply is forwarded.
func TestAdaptiveSequences(t *testing.T) {
	var nap time.Duration
	for i := range 20 {
		act, next := adaptive(4, nap, nap+time.Microsecond, nap+2*time.Microsecond)
		if act != idleNap {
			t.Fatalf("steady stream, poll %d: action %d, want a nap", i, act)
		}
		if next < nap || next > maxNap {
			t.Fatalf("steady stream, poll %d: nap %v after %v", i, next, nap)
		}
		nap = next
	}
	if nap != maxNap {
		t.Errorf("steady stream: naps reached %v, want %v", nap, maxNap)
	}

	act, nap := adaptive(1, 0, 10*time.Millisecond, 10*time.Millisecond) // the request
	if act != idlePoll {
		t.Fatalf("request: action %d, want an immediate poll", act)
	}
	// Polls find nothing until the reply, 30 µs later.
	for since := time.Microsecond; since < 30*time.Microsecond; since += time.Microsecond {
		if act, _ = adaptive(0, nap, since, since); act != idlePoll {
			t.Fatalf("waiting for the reply %v after the request: action %d, want a poll", since, act)
		}
	}
	// The reply is forwarded in the poll that finds it; then the thread
	// may nap, and with nothing more it sleeps once the window is over.
	if act, nap = adaptive(1, nap, 30*time.Microsecond, 30*time.Microsecond); act == idleSleep {
		t.Fatalf("reply: action %d", act)
	}
	if act, _ = adaptive(0, nap, time.Microsecond, spinWindow+time.Microsecond); act != idleSleep {
		t.Errorf("after the reply and the spin window: action %d, want a sleep", act)
	}
}
