package daemon

import (
	"runtime"
	"time"
)

// expireInterval is how often the daemon removes the flows whose idle or
// hard timeout has passed.
const expireInterval = time.Second

// expireLoop removes expired flows from every bridge's table each
// expireInterval (and saves the state when it removed any), and saves the
// state at most each saveInterval after changes mark it dirty (state.go),
// until Close, for which it saves a dirty state last.
func (d *Daemon) expireLoop() {
	defer close(d.done)
	t := time.NewTicker(expireInterval)
	defer t.Stop()
	save := time.NewTimer(saveInterval)
	save.Stop()
	var saveAt time.Time // when the next save may start
	var changes uint64   // d.saver.changes at the last tick
	// releaseDue: the changes stopped while their save was pending. The
	// memory is released once that save is done: a save formats every
	// flow, and its garbage, released before it, would stay resident.
	releaseDue := false
	for {
		select {
		case <-d.stop:
			d.saveIfDirty(runtime.GOMAXPROCS(0))
			return
		case now := <-t.C:
			d.expire(now)
			d.mu.Lock()
			quiet := d.saver.changes == changes
			changes = d.saver.changes
			dirty := d.saver.dirty
			d.mu.Unlock()
			switch {
			case !quiet:
				releaseDue = false
			case dirty:
				releaseDue = true
			default:
				releaseDue = false
				releaseMemory()
			}
		case <-d.saver.kick:
			save.Reset(time.Until(saveAt))
		case <-save.C:
			start := time.Now()
			// A save formats every flow (without the daemon's
			// lock): with many flows, it waits for four times as
			// long as the last one took, so that saving takes at
			// most a fifth of the time. It formats on one
			// goroutine: it takes as much CPU as on all of them,
			// and so at most a fifth of one CPU, not of every CPU
			// the changes that keep coming need.
			d.saveIfDirty(1)
			saveAt = time.Now().Add(max(saveInterval, 4*time.Since(start)))
			if releaseDue {
				releaseDue = false
				releaseMemory()
			}
		}
	}
}

// expire removes the flows expired at now.
func (d *Daemon) expire(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, b := range d.sortedLocked() {
		expired := b.dp.Table().Expire(now)
		for _, r := range expired {
			n++
			d.log.Debug("flow expired", "bridge", b.name, "priority", r.Priority, "cookie", r.Cookie)
		}
		if len(expired) > 0 {
			d.reportExpiredLocked(b, expired, now) // ofmonitor.go
		}
	}
	if n == 0 {
		return
	}
	if err := d.saveLocked(); err != nil {
		d.log.Error("saving the state after flows expired", "err", err)
	}
}
