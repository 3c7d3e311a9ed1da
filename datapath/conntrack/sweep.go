package conntrack

import "time"

// Run sweeps expired connections every interval until stop is closed: the
// tracker's expiry thread, which its owner starts in a goroutine of its
// own and stops by closing stop. now is the clock Track is given (a
// monotonic clock in nanoseconds). Run returns when stop is closed.
func (tr *Tracker) Run(stop <-chan struct{}, interval time.Duration, now func() int64) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			tr.Sweep(now())
		}
	}
}
